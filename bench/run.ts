/**
 * `npm run bench`: every benchmark in one run, figures printed as they come.
 * Speed and capacity live here, never in timed tests. Select a subset with
 * `npm run bench -- sip-parse media-path`.
 */
import { benchCapacity } from './capacity.js';
import { benchMediaPath } from './media-path.js';
import { benchSipParse } from './sip-parse.js';
import { benchStreamLatency } from './stream-latency.js';

type Bench = { name: string; run: () => Promise<unknown> };

const benches: Bench[] = [
  { name: 'sip-parse', run: () => benchSipParse() },
  {
    name: 'media-path',
    run: async () => {
      const r = await benchMediaPath();
      console.log(
        'media path per RTP packet (parse, validate, latch, jitter buffer, G.711 decode, WAV write):',
      );
      console.log(
        `  ${r.nsPerPacket.toFixed(0)} ns/packet median (best ${r.nsPerPacketBest.toFixed(0)} ns), ${Math.round(r.packetsPerSecond).toLocaleString('en-US')} packets/s`,
      );
      console.log(
        `  ≈ ${Math.round(r.callsPerCore).toLocaleString('en-US')} calls per core for the receive path alone`,
      );
      return r;
    },
  },
  {
    name: 'stream-latency',
    run: async () => {
      const r = await benchStreamLatency();
      console.log("frame handed to the sink → bytes at the consumer (on top of the jitter buffer's 60 ms):");
      console.log(
        `  --pipe engine stdin: p50 ${r.pipe.p50Ms.toFixed(3)} ms, p99 ${r.pipe.p99Ms.toFixed(3)} ms`,
      );
      console.log(
        `  --stream-url WebSocket: p50 ${r.ws.p50Ms.toFixed(3)} ms, p99 ${r.ws.p99Ms.toFixed(3)} ms`,
      );
      return r;
    },
  },
  {
    name: 'capacity',
    run: async () => {
      const r = await benchCapacity();
      console.log(JSON.stringify(r, null, 2));
      return r;
    },
  },
];

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
