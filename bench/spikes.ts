/**
 * Delay spikes and a loaded host, replayed through the pure receive path
 * (ReceivePath: parse, latch, jitter buffer, decode) on a per-sample clock:
 * how many frames of a 490-frame call end up in the recording bit-exact at
 * their place (where frame 0 landed plus k·20 ms).
 *
 * - spike N ms: the caller holds its packets from frame 100 on for N ms and
 *   then releases them in one burst (nothing lost, timestamps contiguous),
 *   as a real caller whose uplink stalls does.
 * - loaded host: the bot's host reads its socket late, again and again:
 *   every 0.6–1.8 s a stall of 50–400 ms during which arrivals wait and come
 *   in at once at its end; the playout clock keeps time.
 *
 * The same scenarios run against the recording timeline of any version of
 * ReceivePath (the one before issue 11 had a single `pull`), so the figures
 * before and after compare like with like.
 */
import { existsSync, readFileSync } from 'node:fs';
import { encodeUlaw, ULAW_TO_LINEAR } from '../src/media/g711.js';
import { ReceivePath } from '../src/media/receive-path.js';
import { serializeRtp } from '../src/rtp/packet.js';

const F = 160;
const SOURCE = { address: '192.0.2.10', port: 40000 };
const SPEECH = '/usr/share/pocketsphinx/test/data/goforward.raw';

export interface Arrival {
  /** Arrival on the call's timeline, in samples. */
  at: number;
  /** Frame index (0-based) the packet carries. */
  frame: number;
  bytes: Uint8Array;
}

export interface Scenario {
  name: string;
  arrivals: Arrival[];
  frames: Uint8Array[];
  /** End of the call on the timeline (samples). */
  end: number;
}

export interface SpikeFigures {
  name: string;
  /** Frames bit-exact at their place (frame 0's position + k·160). */
  exact: number;
  frames: number;
  resync: number;
  late: number;
  /** Largest displacement of a frame from its place, in ms (0 when every frame is exact). */
  maxShiftMs: number;
}

/** 8 kHz µ-law speech (goforward.raw decimated) or a voice-like signal; every frame unique. */
export function speechFrames(count: number): Uint8Array[] {
  let pcm: Int16Array;
  if (existsSync(SPEECH)) {
    const raw = readFileSync(SPEECH);
    pcm = new Int16Array(Math.floor(raw.length / 4));
    for (let i = 0; i < pcm.length; i++) pcm[i] = raw.readInt16LE(i * 4);
  } else {
    pcm = Int16Array.from({ length: count * F }, (_, i) =>
      Math.round(6000 * Math.sin(i / 9) * Math.sin(i / 1300) + 2000 * Math.sin(i / 3.1)),
    );
  }
  let seed = 12345;
  const frames: Uint8Array[] = [];
  for (let k = 0; k < count; k++) {
    const frame = new Uint8Array(F);
    for (let i = 0; i < F; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const dither = ((seed >>> 16) % 65) - 32;
      const s = pcm[(k * F + i) % pcm.length]! + dither;
      frame[i] = encodeUlaw(Math.max(-30000, Math.min(30000, s)));
    }
    frames.push(frame);
  }
  return frames;
}

function packet(k: number, payload: Uint8Array): Uint8Array {
  return serializeRtp({
    payloadType: 0,
    sequenceNumber: (40000 + k) & 0xffff,
    timestamp: (987_654 + k * F) >>> 0,
    ssrc: 0x5eed_0001,
    marker: k === 0,
    payload,
  });
}

/** Frame k is sent at 800 + phase + k·160; `delay` gives its extra network (or read) delay. */
function build(name: string, count: number, delay: (k: number, sentAt: number) => number): Scenario {
  const frames = speechFrames(count);
  const phase = 37;
  const arrivals = frames.map((payload, k) => {
    const sentAt = 800 + phase + k * F;
    return { at: sentAt + delay(k, sentAt), frame: k, bytes: packet(k, payload) };
  });
  const end = 800 + phase + count * F + 3 * 8000;
  return { name, arrivals, frames, end };
}

/** The caller holds frames from `from` on for `ms`, then sends everything held at once. */
export function spikeScenario(ms: number, from = 100, count = 490): Scenario {
  const start = 800 + 37 + from * F;
  const release = start + ms * 8;
  return build(`spike ${ms} ms`, count, (_k, sentAt) =>
    sentAt >= start && sentAt < release ? release - sentAt : 0,
  );
}

/** The bot's host stalls every 0.6–1.8 s for 50–400 ms; packets arriving meanwhile are read at the stall's end. */
export function loadedHostScenario(count = 490, seed = 7): Scenario {
  let s = seed;
  const rand = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) / 0x1000000;
  };
  const stalls: Array<[number, number]> = [];
  for (let t = 800 + Math.round(rand() * 8000); t < 800 + count * F; ) {
    const length = Math.round((50 + rand() * 350) * 8);
    stalls.push([t, t + length]);
    t += length + Math.round((600 + rand() * 1200) * 8);
  }
  return build('loaded host', count, (_k, sentAt) => {
    for (const [a, b] of stalls) if (sentAt >= a && sentAt < b) return b - sentAt;
    return 0;
  });
}

interface AnyPath {
  receive(d: Uint8Array, address: string, port: number, now: number): unknown;
  stats: { resync: number; late: number };
}

/** Replays a scenario through ReceivePath on a per-sample clock; returns the recording. */
export function record(scenario: Scenario): { samples: Int16Array; path: AnyPath } {
  const path = new ReceivePath({
    media: { codec: 'PCMU', payloadType: 0 },
    expected: SOURCE,
  }) as unknown as AnyPath & Record<string, (...args: unknown[]) => unknown>;
  const out: number[] = [];
  const sink = (frame: Int16Array) => {
    for (const s of frame) out.push(s);
  };
  const noop = () => {};
  const split = typeof path.pullRecording === 'function';
  const pull = (now: number) => {
    if (split) {
      path.pullRecording!(now, sink);
      path.pullLive!(now, noop);
    } else path.pull!(now, sink);
  };
  const sorted = [...scenario.arrivals].sort((a, b) => a.at - b.at || a.frame - b.frame);
  let i = 0;
  for (let now = 0; now <= scenario.end; now++) {
    while (i < sorted.length && sorted[i]!.at <= now) {
      const a = sorted[i++]!;
      path.receive(a.bytes, SOURCE.address, SOURCE.port, now);
    }
    pull(now);
  }
  if (split) path.flush!(scenario.end, sink, noop);
  else path.flush!(scenario.end, sink);
  return { samples: Int16Array.from(out), path };
}

function find(hay: Int16Array, needle: Int16Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

export function evaluate(scenario: Scenario): SpikeFigures {
  const { samples, path } = record(scenario);
  const decoded = scenario.frames.map((f) => Int16Array.from(f, (b) => ULAW_TO_LINEAR[b]!));
  const origin = find(samples, decoded[0]!);
  let exact = 0;
  let maxShift = 0;
  decoded.forEach((want, k) => {
    const at = origin + k * F;
    let same = origin >= 0 && at + F <= samples.length;
    for (let j = 0; same && j < F; j++) if (samples[at + j] !== want[j]) same = false;
    if (same) {
      exact++;
      return;
    }
    const found = find(samples, want);
    maxShift = Math.max(maxShift, found < 0 ? Number.POSITIVE_INFINITY : Math.abs(found - at) / 8);
  });
  return {
    name: scenario.name,
    exact,
    frames: decoded.length,
    resync: path.stats.resync,
    late: path.stats.late,
    maxShiftMs: maxShift,
  };
}

export function benchSpikes(): SpikeFigures[] {
  return [
    evaluate(spikeScenario(60)),
    evaluate(spikeScenario(150)),
    evaluate(spikeScenario(400)),
    evaluate(spikeScenario(1000)),
    // Beyond the bound: arrival decides, nothing is dropped, the rest of the stream moves.
    evaluate(spikeScenario(1500)),
    evaluate(loadedHostScenario()),
  ];
}

// `node --import tsx bench/spikes.ts` prints the table on its own (also against an older checkout).
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of benchSpikes()) {
    console.log(
      `${r.name.padEnd(12)} ${String(r.exact).padStart(3)}/${r.frames} frames bit-exact at their place; resync ${r.resync}, late ${r.late}, largest shift ${r.maxShiftMs} ms`,
    );
  }
}
