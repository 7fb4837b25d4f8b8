/**
 * Timing on both ends of the smoke call. Both devices run in one process on
 * one monotonic clock (performance.now), so a one-way delay is a plain
 * difference of two readings:
 *
 * - Sending: {@link PatternSource} is the call's talk-back source
 *   (`outboundFor`). The send path asks it for each frame just before that
 *   frame's packet goes out, so the moment it hands out a tone's first frame
 *   is the moment the tone left, exact to the tick (call.play() would only
 *   tell when it was queued, up to a frame earlier, and when it ended).
 * - Receiving: {@link PlayoutClock} notes when each frame of the recording
 *   played out of the jitter buffer (the call's `frame` event carries the
 *   WAV's samples in the WAV's order, as they are handed to the sinks). A
 *   position in the WAV maps to the moment a live listener heard it.
 *
 * So latency = heard − sent is mouth-to-ear as our own live sinks experience
 * it: network transit plus the receiver's playout delay (the live stream's
 * adaptive delay, 40 ms at first) plus tick granularity. DTMF gives the transit alone: `dtmfSent`
 * fires as a key's first RFC 4733 packet is built and `dtmf` as it arrives.
 */
import { performance } from 'node:perf_hooks';
import type { SampleRate } from '../media/codec.js';
import { FRAME_MS } from '../media/frame.js';
import type { OutboundSource } from '../media/session.js';

export interface PatternTiming {
  /** When each tone's first frame went out (performance.now()); undefined if it never did. */
  toneSentAt: (number | undefined)[];
  /** When the last frame went out. */
  endedAt: number | undefined;
}

/**
 * A talk-back source that is silent until start(pcm), then hands out `pcm`
 * 20 ms at a time and notes when the frames at `marks` (frame indices: the
 * tones' first frames) are taken.
 */
export class PatternSource implements OutboundSource {
  readonly #now: () => number;
  #pcm: Int16Array | undefined;
  #frameSamples = 160;
  #marks: number[] = [];
  #index = 0;
  #timing: PatternTiming = { toneSentAt: [], endedAt: undefined };
  #resolve: ((timing: PatternTiming) => void) | undefined;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  get playing(): boolean {
    return this.#pcm !== undefined;
  }

  /** The rate of the pattern: 20 ms frames of `frameSamples` (the send path resamples it to the codec's). */
  get sampleRate(): SampleRate {
    return ((this.#frameSamples * 1000) / FRAME_MS) as SampleRate;
  }

  get timing(): PatternTiming {
    return { toneSentAt: [...this.#timing.toneSentAt], endedAt: this.#timing.endedAt };
  }

  /**
   * Plays `pcm` from the next frame the call sends; `marks` are the frame
   * indices to time. Resolves once the last frame has gone out (or at stop()).
   */
  start(pcm: Int16Array, frameSamples: number, marks: number[]): Promise<PatternTiming> {
    if (this.#pcm) throw new Error('the pattern is already playing');
    this.#pcm = pcm;
    this.#frameSamples = frameSamples;
    this.#marks = marks;
    this.#index = 0;
    this.#timing = { toneSentAt: marks.map(() => undefined), endedAt: undefined };
    return new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** The call ended before the pattern did: resolve with what went out. */
  stop(): void {
    this.#finish();
  }

  nextFrame(): Int16Array | undefined {
    const pcm = this.#pcm;
    if (!pcm) return undefined;
    const offset = this.#index * this.#frameSamples;
    if (offset >= pcm.length) {
      this.#finish();
      return undefined;
    }
    const at = this.#now();
    const mark = this.#marks.indexOf(this.#index);
    if (mark >= 0) this.#timing.toneSentAt[mark] = at;
    this.#index++;
    this.#timing.endedAt = at;
    return pcm.subarray(offset, offset + this.#frameSamples);
  }

  #finish(): void {
    this.#pcm = undefined;
    const resolve = this.#resolve;
    this.#resolve = undefined;
    resolve?.(this.timing);
  }
}

/**
 * The live stream as it played out (the call's `frame` event: what a
 * listener hears, one frame every 20 ms), its samples and when each frame
 * was heard, to map a position in it to the shared clock. Frames are noted
 * in order from the call's first (subscribe before its media start: at
 * `outgoingCall` / `incomingCall`). The WAV holds the same audio placed by
 * timestamp 1 s later, so latency is measured here, the tones' shapes there.
 */
export class PlayoutClock {
  readonly #starts: number[] = [];
  readonly #times: number[] = [];
  readonly #frames: Int16Array[] = [];
  readonly rate: number;
  #samples = 0;

  constructor(rate: number) {
    this.rate = rate;
  }

  /** A frame played out at `atMs` (copied: the call reuses its array). */
  note(frame: Int16Array, atMs: number): void {
    this.#starts.push(this.#samples);
    this.#times.push(atMs);
    this.#frames.push(frame.slice());
    this.#samples += frame.length;
  }

  /** Everything that played out, in order. */
  get audio(): Int16Array {
    const out = new Int16Array(this.#samples);
    let at = 0;
    for (const f of this.#frames) {
      out.set(f, at);
      at += f.length;
    }
    return out;
  }

  /** Samples noted so far (the recording's length, if nothing was missed). */
  get samples(): number {
    return this.#samples;
  }

  /** When the last frame played out; undefined before any. */
  get lastAt(): number | undefined {
    return this.#times.at(-1);
  }

  /**
   * When the sample at `position` was heard: its frame's playout time plus
   * its offset in the frame. Undefined outside what was noted.
   */
  timeAt(position: number): number | undefined {
    if (position < 0 || position >= this.#samples) return undefined;
    // The last frame starting at or before `position`.
    let lo = 0;
    let hi = this.#starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#starts[mid]! <= position) lo = mid;
      else hi = mid - 1;
    }
    return this.#times[lo]! + ((position - this.#starts[lo]!) / this.rate) * 1000;
  }
}

/** One key press at either end, on the shared clock. */
export interface DtmfTiming {
  digit: string;
  at: number;
}

/**
 * One-way transit of each key that arrived: its arrival minus the send of
 * the same press (the n-th sent `5` pairs with the n-th received `5`).
 */
export function dtmfTransits(sent: readonly DtmfTiming[], received: readonly DtmfTiming[]): number[] {
  const used = new Set<number>();
  const out: number[] = [];
  for (const r of received) {
    const i = sent.findIndex((s, k) => !used.has(k) && s.digit === r.digit);
    if (i < 0) continue;
    used.add(i);
    out.push(r.at - sent[i]!.at);
  }
  return out;
}

/**
 * Jitter from a series of transit times: the mean of |D| between consecutive
 * ones, RFC 3550 6.4.1's transit difference D without A.8's 1/16 smoothing
 * (a handful of samples would leave the running estimate near zero).
 * Undefined for fewer than two.
 */
export function transitJitter(transits: readonly number[]): number | undefined {
  if (transits.length < 2) return undefined;
  let sum = 0;
  for (let i = 1; i < transits.length; i++) sum += Math.abs(transits[i]! - transits[i - 1]!);
  return sum / (transits.length - 1);
}
