/**
 * Streaming sample-rate conversion for the live path, one 20 ms frame at a
 * time: 16 kHz wideband calls → 8 kHz for sinks whose format is narrowband
 * (the Twilio Media Streams format is `audio/x-mulaw` at 8000 by definition;
 * `--sample-rate 8000`), and 8 → 16 kHz the other way.
 *
 * Every converter here keeps its filter state from one frame to the next,
 * so a tone crossing frame boundaries comes out continuous, where resampling
 * each frame on its own clicks at every boundary (each frame's filter starts
 * and ends on silence). Every `process()` returns exactly
 * `frame × to / from` samples.
 *
 * Two engines:
 * - 'halfband' (the default): a 63-tap Kaiser-windowed half-band FIR of our
 *   own, for exactly 2:1 and 1:2, in polyphase form (only the non-zero taps
 *   are computed). 3.4 kHz passes at −0.001 dB, everything from 4.6 kHz is
 *   ≥ 70 dB down (what folds back from 4-4.6 kHz lands above the telephone
 *   band). Its delay is fixed and known at once.
 * - 'best' / 'medium' / 'fastest': libsamplerate's sinc converters (via
 *   libsamplerate-js, as audio-file.ts uses for whole files) with its `full`
 *   API. A sinc converter holds input back, so its first call returns fewer
 *   samples than the ratio says (114 of 160 for 16 → 8 kHz at medium) and
 *   every call after that exactly the ratio: the first frame's output is
 *   preceded by that deficit of zeros, once; the deficit is the delay.
 *
 * Delay (`delaySamples`, at the output rate) and cost per 20 ms frame,
 * measured on the project machine:
 *
 *   engine     16 → 8 kHz delay   8 → 16 kHz delay   cost per frame
 *   halfband   15 (1.9 ms)         31 (1.9 ms)         ~11 µs   (default)
 *   fastest    19 (2.4 ms)         40 (2.5 ms)         ~50 µs
 *   medium     46 (5.75 ms)        94 (5.9 ms)         ~100 µs
 *   best       143 (17.9 ms)       288 (18 ms)         ~310-380 µs
 *
 * libsamplerate-js is compiled to plain JavaScript (wasm2js), hence its cost
 * (at medium, 200 streamed calls would take a whole core) and its memory:
 * each converter reserves a 26 MB ArrayBuffer (~2 MB of it touched). That is
 * why the half-band filter is the default for the live path; `flush()`
 * returns the held-back tail at the end either way.
 */
import libsamplerate from '@alexanderolsen/libsamplerate-js';
import type { SampleRate } from './codec.js';

export type ResampleQuality = 'halfband' | 'best' | 'medium' | 'fastest';

const CONVERTER = {
  best: libsamplerate.ConverterType.SRC_SINC_BEST_QUALITY,
  // libsamplerate's figures: 121 dB SNR, 90 % of the band kept (3.6 kHz at 8 kHz): the telephone band and more.
  medium: libsamplerate.ConverterType.SRC_SINC_MEDIUM_QUALITY,
  // 97 dB SNR, 80 % of the band (3.2 kHz at 8 kHz): cuts the top of the 300-3400 Hz telephone band.
  fastest: libsamplerate.ConverterType.SRC_SINC_FASTEST,
} as const;

type Converter = Awaited<ReturnType<typeof libsamplerate.create>>;

export interface StreamResamplerOptions {
  /**
   * 'halfband' (default): our own half-band FIR, exact for 2:1 and 1:2, 0.001 dB
   * at 3.4 kHz, ≥ 70 dB stopband from 4.6 kHz, ~1.9 ms delay, a few µs per frame.
   * 'best' / 'medium' / 'fastest': libsamplerate's sinc converters (see above).
   */
  quality?: ResampleQuality;
}

export class StreamResampler {
  readonly from: SampleRate;
  readonly to: SampleRate;
  #src: Converter | undefined;
  #halfband: Halfband | undefined;
  #in = new Float32Array(0);
  #out = new Float32Array(0);
  /** Converted samples not handed out yet (int16), FIFO. */
  #fifo = new Int16Array(64);
  #fifoLength = 0;
  #delay = 0;
  #started = false;
  #underruns = 0;

  private constructor(from: SampleRate, to: SampleRate, src: Converter | undefined, halfband?: Halfband) {
    this.from = from;
    this.to = to;
    this.#src = src;
    this.#halfband = halfband;
    if (halfband !== undefined) this.#delay = halfband.delay;
  }

  /**
   * The half-band converter (or a pass-through for equal rates), made at once:
   * for the per-packet paths, which cannot wait for a promise.
   */
  static halfband(from: SampleRate, to: SampleRate): StreamResampler {
    if (from === to) return new StreamResampler(from, to, undefined);
    if (from !== 2 * to && to !== 2 * from)
      throw new RangeError(`the half-band resampler converts 2:1 or 1:2 only, not ${from} to ${to} Hz`);
    return new StreamResampler(
      from,
      to,
      undefined,
      from > to ? new HalfbandDecimator() : new HalfbandInterpolator(),
    );
  }

  /** A converter from `from` to `to` Hz (mono). Same rates: a pass-through. */
  static async create(
    from: SampleRate,
    to: SampleRate,
    options: StreamResamplerOptions = {},
  ): Promise<StreamResampler> {
    if (from === to) return new StreamResampler(from, to, undefined);
    const quality = options.quality ?? 'halfband';
    if (quality === 'halfband') return StreamResampler.halfband(from, to);
    const src = await libsamplerate.create(1, from, to, { converterType: CONVERTER[quality] });
    return new StreamResampler(from, to, src);
  }

  /**
   * Samples of delay this converter adds, at the output rate: the zeros
   * before the first converted sample. For libsamplerate known after the
   * first frame (0 before); for the half-band filter from the start.
   */
  get delaySamples(): number {
    return this.#delay;
  }

  /** Times a frame came out short and was completed with zeros (0 for the rates supported). */
  get underruns(): number {
    return this.#underruns;
  }

  /**
   * Converts one frame; returns exactly `frame.length × to / from` samples
   * (a fresh array), rounded down.
   */
  process(frame: Int16Array): Int16Array {
    const want = Math.floor((frame.length * this.to) / this.from);
    if (this.from === this.to) return frame.slice();
    if (this.#halfband !== undefined) return this.#halfband.process(frame);
    const src = this.#src;
    if (src === undefined) throw new Error('StreamResampler is closed');
    const produced = this.#convert(src, frame);
    if (!this.#started) {
      // The converter's start-up: put its deficit of zeros in front, once.
      this.#started = true;
      this.#delay = Math.max(0, want - produced.length);
      this.#push(new Int16Array(this.#delay));
    }
    this.#push(produced);
    return this.#take(want);
  }

  /**
   * The audio still inside the converter (its last `delaySamples`), pushed out
   * with silence: call once after the last frame when the tail matters (a file).
   */
  flush(): Int16Array {
    if (this.#halfband !== undefined)
      return this.#halfband.process(new Int16Array(this.from / 50)).slice(0, this.#delay);
    const src = this.#src;
    if (src === undefined || !this.#started) return new Int16Array(0);
    const inputNeeded = Math.ceil((this.#delay * this.from) / this.to) + this.from / 100;
    this.#push(this.#convert(src, new Int16Array(inputNeeded)));
    return this.#take(Math.min(this.#delay, this.#fifoLength));
  }

  /** Frees the converter. Idempotent; process() after close() is a programming error. */
  close(): void {
    this.#src?.destroy();
    this.#src = undefined;
    if (this.#halfband !== undefined) this.#halfband.closed = true;
  }

  #convert(src: Converter, frame: Int16Array): Int16Array {
    if (this.#in.length < frame.length) this.#in = new Float32Array(frame.length);
    const input = this.#in.subarray(0, frame.length);
    for (let i = 0; i < frame.length; i++) input[i] = frame[i]! / 32768;
    const capacity = Math.ceil((frame.length * this.to) / this.from) + 16;
    if (this.#out.length < capacity) this.#out = new Float32Array(capacity);
    const result = { frames: 0 };
    src.full(input, this.#out, result);
    const n = result.frames;
    const out = new Int16Array(n);
    for (let i = 0; i < n; i++) {
      const v = Math.round(this.#out[i]! * 32768);
      out[i] = Math.min(32767, Math.max(-32768, v)); // an Int16Array would wrap, not clip
    }
    return out;
  }

  #push(samples: Int16Array): void {
    const need = this.#fifoLength + samples.length;
    if (need > this.#fifo.length) {
      const grown = new Int16Array(Math.max(need, this.#fifo.length * 2));
      grown.set(this.#fifo.subarray(0, this.#fifoLength));
      this.#fifo = grown;
    }
    this.#fifo.set(samples, this.#fifoLength);
    this.#fifoLength = need;
  }

  #take(n: number): Int16Array {
    const out = new Int16Array(n);
    const have = Math.min(n, this.#fifoLength);
    out.set(this.#fifo.subarray(0, have));
    if (have < n) this.#underruns++;
    this.#fifo.copyWithin(0, have, this.#fifoLength);
    this.#fifoLength -= have;
    return out;
  }
}

// ---------------------------------------------------------------------------
// Half-band FIR for exactly 2:1 and 1:2

/** Taps of the half-band low-pass (4K + 3 long, so every other tap but the centre is zero). */
const HALFBAND_LENGTH = 63;
/**
 * Kaiser window β for ≥ 70 dB stopband: with 63 taps the band edges are
 * 3.4 kHz (−0.001 dB) and 4.6 kHz (−70.7 dB) at 16 kHz, so what folds back
 * from 4-4.6 kHz lands above the 300-3400 Hz telephone band.
 */
const HALFBAND_BETA = 7;

/** Zeroth-order modified Bessel function of the first kind (series), for the Kaiser window. */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 60 && term > 1e-12 * sum; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
  }
  return sum;
}

/** The windowed-sinc half-band low-pass at a quarter of the high rate, DC gain 1. */
function halfbandTaps(): Float64Array {
  const n = HALFBAND_LENGTH;
  const c = (n - 1) / 2;
  const h = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const d = i - c;
    const sinc = d === 0 ? 1 : Math.sin((Math.PI * d) / 2) / ((Math.PI * d) / 2);
    const r = (2 * i) / (n - 1) - 1;
    h[i] = (0.5 * sinc * besselI0(HALFBAND_BETA * Math.sqrt(1 - r * r))) / besselI0(HALFBAND_BETA);
  }
  const sum = h.reduce((a, b) => a + b, 0);
  for (let i = 0; i < n; i++) h[i]! /= sum;
  return h;
}

const TAPS = halfbandTaps();
const CENTRE = (HALFBAND_LENGTH - 1) / 2;
/** The non-zero side taps, h[CENTRE + d] for d = 1, 3, 5, …, CENTRE (the filter is symmetric). */
const SIDE = Float64Array.from({ length: (CENTRE + 1) / 2 }, (_, j) => TAPS[CENTRE + 2 * j + 1]!);
/** Scales the interpolator's side-tap phase to a DC gain of exactly 1, like its centre-tap phase. */
const SIDE_GAIN = 1 / (2 * SIDE.reduce((a, b) => a + b, 0));

interface Halfband {
  readonly delay: number;
  closed: boolean;
  process(frame: Int16Array): Int16Array;
}

function toInt16(v: number): number {
  const r = Math.round(v);
  return r > 32767 ? 32767 : Math.max(-32768, r);
}

/**
 * 16 → 8 kHz: low-pass, keep every other sample. Each output is computed on
 * the odd input sample of its pair, which makes the filter's delay (CENTRE
 * input samples, odd) a whole number of output samples: (CENTRE − 1) / 2.
 */
class HalfbandDecimator implements Halfband {
  readonly delay = (CENTRE - 1) / 2;
  closed = false;
  /** The last HALFBAND_LENGTH − 1 input samples, then room for a frame. */
  #buf = new Float64Array(HALFBAND_LENGTH - 1 + 320);

  process(frame: Int16Array): Int16Array {
    if (this.closed) throw new Error('StreamResampler is closed');
    const h = HALFBAND_LENGTH - 1;
    this.#buf = afterHistory(this.#buf, h, frame);
    const buf = this.#buf;
    const out = new Int16Array(frame.length >> 1);
    const centre = TAPS[CENTRE]!;
    for (let j = 0; j < out.length; j++) {
      const mid = h + 2 * j + 1 - CENTRE;
      let acc = centre * buf[mid]!;
      for (let k = 0; k < SIDE.length; k++) {
        const d = 2 * k + 1;
        acc += SIDE[k]! * (buf[mid - d]! + buf[mid + d]!);
      }
      out[j] = toInt16(acc);
    }
    buf.copyWithin(0, frame.length, frame.length + h);
    return out;
  }
}

/**
 * A half-band filter's input: the last `history` samples kept at the start
 * of `buf`, then `frame` after them (the buffer grown when a frame is longer
 * than any before). Returns the buffer to keep.
 */
function afterHistory(
  buf: Float64Array<ArrayBuffer>,
  history: number,
  frame: Int16Array,
): Float64Array<ArrayBuffer> {
  let out = buf;
  if (out.length < history + frame.length) {
    out = new Float64Array(history + frame.length);
    out.set(buf.subarray(0, history));
  }
  for (let i = 0; i < frame.length; i++) out[history + i] = frame[i]!;
  return out;
}

/**
 * 8 → 16 kHz: insert a zero between samples, low-pass with gain 2. In
 * polyphase form the odd outputs are the input delayed (the centre tap) and
 * the even ones the side taps; the delay is CENTRE output samples.
 */
class HalfbandInterpolator implements Halfband {
  readonly delay = CENTRE;
  closed = false;
  /** The last CENTRE input samples (what the filter still reaches back to), then room for a frame. */
  #buf = new Float64Array(CENTRE + 160);

  process(frame: Int16Array): Int16Array {
    if (this.closed) throw new Error('StreamResampler is closed');
    const h = CENTRE;
    this.#buf = afterHistory(this.#buf, h, frame);
    const buf = this.#buf;
    const out = new Int16Array(frame.length * 2);
    for (let p = 0; p < out.length; p += 2) {
      // Even output p: side taps k = CENTRE ± d (d odd) reach inputs (p − k) / 2.
      let acc = 0;
      for (let j = 0; j < SIDE.length; j++) {
        const d = 2 * j + 1;
        acc += SIDE[j]! * (buf[h + (p - CENTRE + d) / 2]! + buf[h + (p - CENTRE - d) / 2]!);
      }
      out[p] = toInt16(acc * SIDE_GAIN);
      // Odd output p + 1: the centre tap (2 × ½) alone.
      out[p + 1] = buf[h + (p + 1 - CENTRE) / 2]!;
    }
    buf.copyWithin(0, frame.length, frame.length + h);
    return out;
  }
}
