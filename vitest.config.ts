import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Interop tests start real daemons; keep files from fighting over the two cores.
    maxWorkers: 2,
  },
});
