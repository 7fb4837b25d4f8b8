/**
 * Streaming sample-rate conversion for the live path, one 20 ms frame at a
 * time: 16 kHz wideband calls → 8 kHz for sinks whose format is narrowband
 * (the Twilio Media Streams format is `audio/x-mulaw` at 8000 by definition;
 * `--sample-rate 8000`), and 8 → 16 kHz the other way.
 *
 * libsamplerate's sinc converter (via libsamplerate-js, as audio-file.ts
 * uses for whole files) with its `full` API: the converter keeps its filter
 * state from one frame to the next, so a tone crossing frame boundaries
 * comes out continuous, where resampling each frame on its own would click
 * at every boundary (each frame's filter starts from silence).
 *
 * A sinc filter needs samples from after the one it computes, so the
 * converter holds some input back: its first call returns fewer samples than
 * the ratio says (e.g. 114 of 160 for 16 → 8 kHz, medium quality) and every
 * call after that returns exactly the ratio. To hand out exactly
 * `frame × to / from` samples every time, the first frame's output is
 * preceded by that deficit of zeros. That deficit is the added delay
 * (`delaySamples`, at the output rate); `flush()` returns the held-back tail
 * at the end.
 *
 * Delay and cost per 20 ms frame, measured on the project machine:
 *
 *   quality   16 → 8 kHz delay   8 → 16 kHz delay   cost per frame
 *   fastest   19 (2.4 ms)         40 (2.5 ms)         ~50 µs
 *   medium    46 (5.75 ms)        94 (5.9 ms)         ~105 µs  (default)
 *   best      143 (17.9 ms)       288 (18 ms)         ~310-380 µs
 *
 * libsamplerate-js is compiled to plain JavaScript (wasm2js), hence the cost:
 * at medium quality 200 streamed calls would take about one core. Each
 * converter also reserves a 26 MB ArrayBuffer (its pages mostly untouched:
 * ~2 MB of RSS).
 */
import libsamplerate from '@alexanderolsen/libsamplerate-js';
import type { SampleRate } from './codec.js';

export type ResampleQuality = 'best' | 'medium' | 'fastest';

const CONVERTER = {
  best: libsamplerate.ConverterType.SRC_SINC_BEST_QUALITY,
  // libsamplerate's figures: 121 dB SNR, 90 % of the band kept (3.6 kHz at 8 kHz): the telephone band and more.
  medium: libsamplerate.ConverterType.SRC_SINC_MEDIUM_QUALITY,
  // 97 dB SNR, 80 % of the band (3.2 kHz at 8 kHz): cuts the top of the 300-3400 Hz telephone band.
  fastest: libsamplerate.ConverterType.SRC_SINC_FASTEST,
} as const;

type Converter = Awaited<ReturnType<typeof libsamplerate.create>>;

export interface StreamResamplerOptions {
  /** Default 'medium': the telephone band intact at a third of the cost of 'best'. */
  quality?: ResampleQuality;
}

export class StreamResampler {
  readonly from: SampleRate;
  readonly to: SampleRate;
  #src: Converter | undefined;
  #in = new Float32Array(0);
  #out = new Float32Array(0);
  /** Converted samples not handed out yet (int16), FIFO. */
  #fifo = new Int16Array(64);
  #fifoLength = 0;
  #delay = 0;
  #started = false;
  #underruns = 0;

  private constructor(from: SampleRate, to: SampleRate, src: Converter | undefined) {
    this.from = from;
    this.to = to;
    this.#src = src;
  }

  /** A converter from `from` to `to` Hz (mono). Same rates: a pass-through. */
  static async create(
    from: SampleRate,
    to: SampleRate,
    options: StreamResamplerOptions = {},
  ): Promise<StreamResampler> {
    if (from === to) return new StreamResampler(from, to, undefined);
    const src = await libsamplerate.create(1, from, to, {
      converterType: CONVERTER[options.quality ?? 'medium'],
    });
    return new StreamResampler(from, to, src);
  }

  /**
   * Samples of delay this converter adds, at the output rate: the zeros
   * before the first converted sample. Known after the first frame (0 before).
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
