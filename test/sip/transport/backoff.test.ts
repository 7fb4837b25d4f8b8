import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../../src/sip/transport/backoff.js';

describe('backoffDelay', () => {
  it('doubles from the base and stops at the cap', () => {
    const noJitter = { baseMs: 1000, maxMs: 30_000, jitter: 0 };
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffDelay(n, noJitter))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
  });

  it('randomises within [1 - jitter, 1] of the delay', () => {
    expect(backoffDelay(3, { baseMs: 1000, jitter: 0.5 }, () => 0)).toBe(4000);
    expect(backoffDelay(3, { baseMs: 1000, jitter: 0.5 }, () => 0.999999)).toBe(2000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(2, { baseMs: 1000, jitter: 0.5 });
      expect(d).toBeGreaterThanOrEqual(1000);
      expect(d).toBeLessThanOrEqual(2000);
    }
  });
});
