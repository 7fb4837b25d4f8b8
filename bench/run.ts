/**
 * `npm run bench`: every benchmark in one run, figures printed as they come.
 * Speed and capacity live here, never in timed tests. Select a subset with
 * `npm run bench -- sip-parse media-path`.
 */
import { benchSipParse } from './sip-parse.js';

type Bench = { name: string; run: () => Promise<unknown> };

const benches: Bench[] = [{ name: 'sip-parse', run: () => benchSipParse() }];

const wanted = process.argv.slice(2);
for (const bench of benches) {
  if (wanted.length > 0 && !wanted.includes(bench.name)) continue;
  console.log(`\n== ${bench.name}`);
  try {
    await bench.run();
  } catch (err) {
    console.log(`  FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
