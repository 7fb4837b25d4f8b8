/**
 * Drives a JitterBuffer on a per-sample clock (packets first, then both
 * pulls, at every sample), so emission times are exact, and collects both
 * outputs: the recording (every position once) and the live stream (one
 * frame per 20 ms, with when each came out).
 */
import type { FrameInfo } from '../../src/media/frame-sink.js';
import type { AudioPacket, JitterBuffer } from '../../src/media/jitter-buffer.js';

/** Every byte decodes to a distinct, recognisable sample. */
export const DECODE = Int16Array.from({ length: 256 }, (_, i) => (i - 128) * 100 + 1);
export const F = 160;

/** Payload for packet k: bytes that encode k, so the output tells which packet played where. */
export function payloadFor(k: number, n = F): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (k * 7 + i) % 256);
}

export function decoded(k: number, n = F): number[] {
  return Array.from(payloadFor(k, n), (b) => DECODE[b]!);
}

/**
 * A quiet payload for packet k (a pause: RMS far below −48 dBFS with DECODE),
 * still unique per k (below 3^8): bytes 127..129 decode to −99, 1 and 101,
 * and the first eight carry k in base 3.
 */
export function quietPayloadFor(k: number, n = F): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i < 8 ? 127 + (Math.floor(k / 3 ** i) % 3) : 128));
}

/** Decoded samples of quietPayloadFor(k). */
export function decodedQuiet(k: number, n = F): number[] {
  return Array.from(quietPayloadFor(k, n), (b) => DECODE[b]!);
}

export interface Arrival {
  /** Arrival time on the timeline, in samples. */
  at: number;
  packet: AudioPacket;
  event?: boolean;
}

export function stream(
  count: number,
  opts: {
    ssrc?: number;
    seq0?: number;
    ts0?: number;
    start?: number;
    k0?: number;
    payload?: (k: number) => Uint8Array;
  } = {},
): Arrival[] {
  const { ssrc = 0x1234, seq0 = 1000, ts0 = 50_000, start = 800, k0 = 0, payload = payloadFor } = opts;
  return Array.from({ length: count }, (_, i) => ({
    at: start + i * F,
    packet: {
      ssrc,
      sequenceNumber: (seq0 + i) & 0xffff,
      timestamp: (ts0 + i * F) >>> 0,
      payload: payload(k0 + i),
    },
  }));
}

export interface LiveFrame {
  /** When it came out (the `now` of the pull). */
  at: number;
  position: number;
  audio: boolean;
  filler: 'concealment' | 'stretch' | undefined;
  samples: Int16Array;
}

export interface Run {
  /** The recording: every timeline position once. */
  recording: Int16Array;
  live: LiveFrame[];
}

/** Feeds arrivals (in time order, stable) with both outputs pulled at every sample, then flushes at `end`. */
export function run(jb: JitterBuffer, arrivals: Arrival[], end: number): Run {
  const rec: Int16Array[] = [];
  const live: LiveFrame[] = [];
  let now = 0;
  const recording = (frame: Int16Array) => rec.push(frame.slice());
  const liveSink = (frame: Int16Array, info: FrameInfo) =>
    live.push({
      at: now,
      position: info.position,
      audio: info.audio,
      filler: info.filler,
      samples: frame.slice(),
    });
  const sorted = arrivals.map((a, i) => ({ a, i })).sort((x, y) => x.a.at - y.a.at || x.i - y.i);
  let next = 0;
  for (; now <= end; now++) {
    while (next < sorted.length && sorted[next]!.a.at <= now) {
      const { a } = sorted[next++]!;
      jb.push(a.packet, now, a.event ? undefined : DECODE);
    }
    jb.pullLive(now, liveSink);
    jb.pullRecording(now, recording);
  }
  jb.flush(end, recording, liveSink);
  const total = rec.reduce((n, f) => n + f.length, 0);
  const out = new Int16Array(total);
  let o = 0;
  for (const f of rec) {
    out.set(f, o);
    o += f.length;
  }
  return { recording: out, live };
}

export function indexOf(hay: ArrayLike<number>, needle: ArrayLike<number>, from = 0): number {
  outer: for (let i = Math.max(0, from); i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The samples at `position` are exactly packets `ks` back to back. */
export function audioAt(out: ArrayLike<number>, position: number, ks: number[]): boolean {
  const expected = ks.flatMap((k) => decoded(k));
  for (let i = 0; i < expected.length; i++) if (out[position + i] !== expected[i]) return false;
  return true;
}

export function silent(out: ArrayLike<number>, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (out[i] !== 0) return false;
  return true;
}
