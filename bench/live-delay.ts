/**
 * The live stream's delay under a jitter profile, adaptive target versus the
 * fixed 70 ms of the design before issue 11, on the pure receive path
 * (ReceivePath: the code MediaSession runs) with a per-sample clock: 60 s of
 * real speech (goforward.raw, its pauses included) per profile.
 *
 * - clean LAN: 0–2 ms of jitter.
 * - mobile path: every packet late by an exponential amount (mean 10 ms),
 *   and every ~3 s a delay spike of 80–300 ms (the packets held, then
 *   released in a burst);
 * - jittery mobile path: the same with a mean of 25 ms.
 *
 * For each: the live delay of the audio frames (after the best-placed
 * packets' arrival) p50/p99, what the live stream concealed, skipped and
 * missed (packets after their live slot, in the WAV but silence live), and
 * the recording's frames bit-exact at their place.
 */
import { ULAW_TO_LINEAR } from '../src/media/g711.js';
import { ReceivePath } from '../src/media/receive-path.js';
import { serializeRtp } from '../src/rtp/packet.js';
import { speechFrames } from './spikes.js';

const F = 160;
const MS = 8;
const SOURCE = { address: '192.0.2.10', port: 40000 };

export interface LiveDelayRun {
  profile: string;
  design: string;
  p50Ms: number;
  p99Ms: number;
  targetMs: number;
  concealed: number;
  skipped: number;
  stretched: number;
  liveLate: number;
  /** Recording frames bit-exact at their place, of all frames. */
  exact: number;
  frames: number;
}

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) / 0x1000000;
  };
}

type Profile = { name: string; delay: (k: number) => number };

function profiles(count: number): Profile[] {
  const lan = rng(1);
  const mobile = (name: string, meanMs: number, seed: number): Profile => {
    const random = rng(seed);
    const extra = Array.from({ length: count }, () => -Math.log(1 - random()) * meanMs * MS);
    // Spikes: every ~3 s, 80–300 ms; packets sent meanwhile wait for its end.
    for (let k = 100; k < count; k += 120 + Math.floor(random() * 60)) {
      const ms = 80 + random() * 220;
      const end = k * F + ms * MS;
      for (let j = k; j < count && j * F < end; j++) extra[j] = Math.max(extra[j]!, end - j * F);
    }
    return { name, delay: (k) => Math.floor(extra[k]!) };
  };
  return [
    { name: 'clean LAN', delay: () => Math.floor(lan() * 2 * MS) },
    mobile('mobile', 10, 2),
    mobile('jittery mobile', 25, 3),
  ];
}

function runOne(profile: Profile, design: 'adaptive' | 'fixed 70 ms', frames: Uint8Array[]): LiveDelayRun {
  const fixed =
    design === 'fixed 70 ms' ? { liveTargetMinSamples: 70 * MS, liveTargetMaxSamples: 70 * MS } : {};
  const path = new ReceivePath({ media: { codec: 'PCMU', payloadType: 0 }, expected: SOURCE, ...fixed });
  const arrivals = frames
    .map((payload, k) => ({
      at: 837 + k * F + profile.delay(k),
      k,
      bytes: serializeRtp({ payloadType: 0, sequenceNumber: k & 0xffff, timestamp: k * F, ssrc: 7, payload }),
    }))
    .sort((a, b) => a.at - b.at || a.k - b.k);
  const recording: Int16Array[] = [];
  const keep = (f: Int16Array) => recording.push(f.slice());
  const drop = () => {};
  const end = 837 + frames.length * F + 9000;
  let i = 0;
  for (let now = 0; now <= end; now++) {
    while (i < arrivals.length && arrivals[i]!.at <= now)
      path.receive(arrivals[i++]!.bytes, SOURCE.address, SOURCE.port, now);
    path.pullLive(now, drop);
    path.pullRecording(now, keep);
  }
  path.flush(end, keep, drop);
  const out = new Int16Array(recording.reduce((n, f) => n + f.length, 0));
  let o = 0;
  for (const f of recording) {
    out.set(f, o);
    o += f.length;
  }
  let exact = 0;
  frames.forEach((payload, k) => {
    const at = 800 + k * F;
    let same = true;
    for (let j = 0; same && j < F; j++) if (out[at + j] !== ULAW_TO_LINEAR[payload[j]!]) same = false;
    if (same) exact++;
  });
  const s = path.jitter.liveStats;
  return {
    profile: profile.name,
    design,
    p50Ms: s.liveDelayP50Ms,
    p99Ms: s.liveDelayP99Ms,
    targetMs: s.liveTargetMs,
    concealed: s.liveConcealed,
    skipped: s.liveSkipped,
    stretched: s.liveStretched,
    liveLate: s.liveLate,
    exact,
    frames: frames.length,
  };
}

export function benchLiveDelay(seconds = 60): LiveDelayRun[] {
  const frames = speechFrames(seconds * 50);
  const out: LiveDelayRun[] = [];
  for (const profile of profiles(frames.length))
    for (const design of ['adaptive', 'fixed 70 ms'] as const) out.push(runOne(profile, design, frames));
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of benchLiveDelay()) console.log(JSON.stringify(r));
}
