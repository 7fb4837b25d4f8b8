/**
 * `npm run bench`: every benchmark in one run, figures printed as they come.
 * Speed and capacity live here, never in timed tests. Select a subset with
 * `npm run bench -- sip-parse media-path`. Flags (`--calls 100`, …) go to
 * codec-capacity: `npm run bench -- codec-capacity --calls 100 --scenarios pcmu,opus`.
 * The knee of the capacity (bench/knee.ts, 8-15 minutes) runs only
 * when named: `npm run bench -- knee`.
 */
import { benchCapacity } from './capacity.js';
import {
  benchCodecCapacity,
  CODEC_CAPACITY_VALUE_FLAGS,
  parseCodecCapacityArgs,
  printCodecCapacity,
} from './codec-capacity.js';
import { benchFlood } from './flood.js';
import { benchKnee } from './knee.js';
import { benchLiveDelay } from './live-delay.js';
import { benchMediaLoad } from './media-load.js';
import { benchMediaPath } from './media-path.js';
import { benchOpus } from './opus.js';
import { benchOutbound } from './outbound.js';
import { benchServeCapacity } from './serve-capacity.js';
import { benchSipParse } from './sip-parse.js';
import { benchSpikes } from './spikes.js';
import { benchStreamLatency } from './stream-latency.js';

/** `explicit`: runs only when named (`npm run bench -- knee`): it takes 8-15 minutes. */
type Bench = { name: string; run: () => Promise<unknown>; explicit?: boolean };

const benches: Bench[] = [
  { name: 'sip-parse', run: () => benchSipParse() },
  {
    name: 'media-path',
    run: async () => {
      const r = await benchMediaPath();
      console.log(
        'media path per RTP packet (parse, validate, latch, jitter buffer with both outputs, G.711 decode, WAV write), CPU time:',
      );
      console.log(
        `  ${r.nsPerPacket.toFixed(0)} ns/packet median (best ${r.nsPerPacketBest.toFixed(0)} ns), ${Math.round(r.packetsPerSecond).toLocaleString('en-US')} packets/s`,
      );
      console.log(
        `  ≈ ${Math.round(r.callsPerCore).toLocaleString('en-US')} calls per core for the receive path alone`,
      );
      for (const s of r.srtp) {
        console.log(
          `  SRTP ${s.suite}: ${s.nsPerPacket} ns/packet with unprotect (best ${s.nsPerPacketBest} ns; unprotect alone ${s.unprotectNsPerPacket} ns), ×${s.ratio.toFixed(2)} = +${s.addedPercent.toFixed(1)}% (target < 25%), ≈ ${s.callsPerCore.toLocaleString('en-US')} calls per core`,
        );
      }
      return r;
    },
  },
  {
    name: 'media-load',
    run: async () => {
      const r = await benchMediaLoad();
      console.log(
        `${r.calls} calls' media in one process (real MediaSessions on loopback UDP, WAVs written, no SIP), ${r.seconds} s:`,
      );
      console.log(
        `  ${r.cpuPercent} % of a core = ${r.perCallUsPer20Ms} µs per call per 20 ms; event-loop delay p99 ${r.eventLoopDelayMs.p99} ms, max ${r.eventLoopDelayMs.max} ms; GC ${r.gc.pauses} pauses, longest ${r.gc.maxMs} ms; lost ${r.lost}, late ${r.late} of ${r.received} (the sender: ${r.senderCpuPercent} %)`,
      );
      return r;
    },
  },
  {
    name: 'opus',
    run: async () => {
      const r = await benchOpus();
      const us = r.perFrameUs;
      const core = (v: number) => `${((r.realtime.calls * 50 * v) / 1e4).toFixed(1)} % of a core`;
      console.log(`per 20 ms frame, and for ${r.realtime.calls} calls (× 50 frames/s):`);
      for (const [name, v] of Object.entries(us))
        console.log(`  ${name.padEnd(28)} ${v.toFixed(1).padStart(6)} µs   ${core(v)}`);
      console.log(
        `  packets: RingCentral-like wideband ${r.bytesPerPacket.rcWideband} B, fullband stereo ${r.bytesPerPacket.fullbandStereo} B`,
      );
      for (const [name, t] of [
        ['PCMU', r.realtime.pcmu],
        ['Opus', r.realtime.opus],
      ] as const) {
        console.log(
          `  real time, ${r.realtime.calls} calls × ${r.realtime.seconds} s, ${name} decode: tick work p50 ${t.workP50Ms} ms, p99 ${t.workP99Ms} ms, max ${t.workMaxMs} ms (CPU p50 ${t.cpuP50Ms} ms, p99 ${t.cpuP99Ms} ms); late p99 ${t.lateP99Ms} ms, max ${t.lateMaxMs} ms; overruns ${t.overruns}; CPU ${t.cpuPercent} % of a core; ${t.frames} frames`,
        );
      }
      return r;
    },
  },
  {
    name: 'spikes',
    run: async () => {
      const r = benchSpikes();
      console.log('recording under delay spikes (490 frames; pure receive path, per-sample clock):');
      for (const s of r) {
        console.log(
          `  ${s.name.padEnd(13)} ${String(s.exact).padStart(3)}/${s.frames} frames bit-exact at their place (resync ${s.resync}, late ${s.late}, largest shift ${s.maxShiftMs} ms)`,
        );
      }
      return r;
    },
  },
  {
    name: 'live-delay',
    run: async () => {
      const r = benchLiveDelay();
      console.log('live stream under jitter profiles (60 s of speech each), adaptive target vs fixed 70 ms:');
      for (const x of r) {
        console.log(
          `  ${x.profile.padEnd(15)} ${x.design.padEnd(12)} live delay p50 ${x.p50Ms} ms, p99 ${x.p99Ms} ms (target ${x.targetMs} ms); concealed ${x.concealed}, skipped ${x.skipped}, stretched ${x.stretched}, late for live ${x.liveLate}; WAV ${x.exact}/${x.frames} exact`,
        );
      }
      return r;
    },
  },
  {
    name: 'flood',
    run: async () => {
      const r = await benchFlood();
      console.log('floods at a recording call (real MediaSession on UDP, caller at 50 packets/s):');
      for (const p of r.phases)
        console.log(
          `  ${p.name.padEnd(18)} ${String(p.floodPps).padStart(6)} packets/s: ${p.cpuPercent}% of a core`,
        );
      console.log(
        `  caller: ${r.callerReceived}/${r.callerSent} received, lost ${r.lost}, late ${r.late}; dropped: foreign ${r.foreignSource}, invalid ${r.invalid}, probation ${r.probationDropped}`,
      );
      console.log(
        `  receive path alone per flood packet: foreign ${r.nsPerPacket.foreign} ns, malformed ${r.nsPerPacket.malformed} ns, forged SSRC ${r.nsPerPacket.forged} ns`,
      );
      return r;
    },
  },
  {
    name: 'stream-latency',
    run: async () => {
      const r = await benchStreamLatency();
      const ms = (v: number) => v.toFixed(3);
      const pp = (f: { p50Ms: number; p99Ms: number }) => `p50 ${ms(f.p50Ms)} ms, p99 ${ms(f.p99Ms)} ms`;
      const range = (f: { minMs: number; maxMs: number }) => `${ms(f.minMs)}–${ms(f.maxMs)} ms`;
      console.log('sink alone: frame handed to the sink → bytes at the consumer:');
      console.log(`  --pipe engine stdin:    ${pp(r.pipe)}`);
      console.log(`  --stream-url WebSocket: ${pp(r.ws)}`);
      const e = r.endToEnd;
      console.log(
        `end to end: real MediaSession on UDP, PCMU every 20 ms from a separate process (${e.packetsCounted} of ${e.packetsSent} packets; first ${e.warmupPackets} are warm-up):`,
      );
      console.log(
        `  jitter-buffer hold (arrival → live frame emitted): ${pp(e.jitterHold)}, range ${range(e.jitterHold)} (by design the adaptive live target, ${e.jitterDelayMs} ms at the end, ± half a frame of cadence, plus timer lateness)`,
      );
      console.log(
        `    far end sends ${ms(e.slotPhaseMs)} ms into each playout slot (random per run, as on a real call); arrivals ${range(e.slotOffset)} into their slot (${e.onGrid}/${e.packetsCounted} in [0, 20) ms); playout timer late by ${pp(e.playoutLateness)}`,
      );
      for (const [label, s] of [
        ['RTP arrival → engine stdin', e.pipe],
        ['RTP arrival → WebSocket   ', e.ws],
      ] as const) {
        console.log(
          `  ${label}: total ${pp(s.total)}; beyond the hold ${pp(s.beyondHold)}; total − ${e.jitterDelayMs} ms ${pp(s.totalMinusDelay)}`,
        );
      }
      console.log(
        `  (send → arrival in the bot ${pp(e.sendToArrival)}; session lost ${e.session.lost}, late ${e.session.late}, resync ${e.session.resync}; sink drops pipe ${e.pipe.dropped}, ws ${e.ws.dropped})`,
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
  {
    // serve: SIPp as RingCX straight to the listener, over UDP, then TCP (one connection for every call).
    name: 'serve-capacity',
    run: async () => {
      const out = [];
      for (const transport of ['udp', 'tcp'] as const) {
        const r = await benchServeCapacity({ transport });
        console.log(JSON.stringify(r, null, 2));
        out.push(r);
      }
      return out;
    },
  },
  {
    name: 'knee',
    explicit: true,
    run: () => benchKnee(),
  },
  {
    name: 'outbound',
    run: async () => {
      const r = await benchOutbound();
      const s = r.setup.inviteTo200;
      console.log(
        `${r.calls} concurrent outbound calls through Kamailio (407 answered) to SIPp, ${r.seconds} s each, both ways talking:`,
      );
      console.log(
        `  setup (first INVITE sent → 200 received): p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms, max ${s.maxMs} ms; frames lost ${r.frames.lost}, late ${r.frames.late}; WAVs bit-exact ${r.recordings.bitExact}/${r.calls}; bot CPU ${r.cpu.allUpAvgPercent} % of a core with every call up; event-loop delay p99 ${r.eventLoopDelayMs?.p99} ms`,
      );
      console.log(JSON.stringify(r, null, 2));
      return r;
    },
  },
  {
    name: 'codec-capacity',
    run: async () => {
      const r = await benchCodecCapacity(parseCodecCapacityArgs(args), (line) => console.log(line));
      printCodecCapacity(r);
      return r;
    },
  },
];

const args = process.argv.slice(2);
// Bench names; flags and their values are codec-capacity's.
const wanted = args.filter(
  (a, i) => !a.startsWith('--') && !CODEC_CAPACITY_VALUE_FLAGS.includes(args[i - 1] ?? ''),
);
for (const bench of benches) {
  if (wanted.length > 0 ? !wanted.includes(bench.name) : bench.explicit) continue;
  console.log(`\n== ${bench.name}`);
  try {
    await bench.run();
  } catch (err) {
    console.log(`  FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
