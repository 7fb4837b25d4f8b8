/**
 * One RTP stream's decoder as the playout side of a jitter buffer needs it,
 * for every codec alike: decode the packets in timeline order, and fill the
 * holes between them. Pure (no clock, no I/O).
 *
 * A hole (a lost packet, a late one, a DTX pause) before a packet that has
 * arrived is filled, in timeline order, with:
 *   1. packet loss concealment continuing the signal (RFC 6716 4.4), at most
 *      `maxConcealMs` of it, since PLC fades out and a long made-up tail is
 *      worse than silence;
 *   2. silence for the rest of a long hole;
 *   3. the last frame of the hole rebuilt from the in-band FEC the next
 *      packet carries (RFC 6716 2.1.7: SILK LBRR holds the previous frame
 *      again at a lower rate), when it carries any.
 * The decode stage (decode-stage.ts) repairs a hole only once the packet
 * after it has arrived (or its wait ran out), so a single loss is mostly FEC.
 * G.711 has neither PLC nor FEC here: its holes are silence.
 *
 * Decoding order matters for Opus (each packet's decoding leans on the
 * previous one): call decode() and fill() in timeline order, fill() for a
 * hole before decode() of the packet after it.
 */
import type { Codec, DecodeResult, FrameDecoder, SampleRate } from './codec.js';
import { inspectOpusPacket } from './opus.js';
import { StreamResampler } from './resample.js';

export interface StreamDecoderOptions {
  /** Longest stretch of PLC before silence takes over, ms. Default 60 (three 20 ms packets). */
  maxConcealMs?: number;
}

export interface StreamDecoderStats {
  /** Packets decoded. */
  decoded: number;
  /** Payloads the codec rejected (malformed): the caller's `invalid` packet count. */
  invalid: number;
  /** Samples rebuilt from in-band FEC. */
  fecSamples: number;
  /** Samples made up by PLC. */
  concealedSamples: number;
  /** Samples of holes played as silence. */
  silentSamples: number;
}

export class StreamDecoder {
  readonly sampleRate: SampleRate;
  readonly #decoder: FrameDecoder;
  readonly #maxConceal: number;
  /** The codec has PLC and in-band FEC (Opus); G.711 fills holes with silence. */
  readonly #repairs: boolean;
  readonly #stats: StreamDecoderStats = {
    decoded: 0,
    invalid: 0,
    fecSamples: 0,
    concealedSamples: 0,
    silentSamples: 0,
  };
  /** Samples of PLC since the last decoded packet (PLC is not restarted within one hole). */
  #concealedRun = 0;
  /** Whether a packet has been decoded since the start or the last reset: no PLC before any signal. */
  #primed = false;

  /** For Opus the library must be loaded (prepareCodecs); throws CODEC_FAILED otherwise. */
  constructor(codec: Codec, sampleRate: SampleRate, options: StreamDecoderOptions = {}) {
    this.sampleRate = sampleRate;
    this.#decoder = decoderAt(codec, sampleRate);
    this.#repairs = codec.kind === 'stateful';
    this.#maxConceal = Math.round(((options.maxConcealMs ?? 60) * sampleRate) / 1000);
  }

  get stats(): Readonly<StreamDecoderStats> {
    return this.#stats;
  }

  /**
   * One packet's audio (a fresh array, ptime long: split it into 20 ms
   * frames), or undefined for a payload the codec rejects (counted as
   * invalid; play the slot as a hole). Never throws.
   */
  decode(payload: Uint8Array): Int16Array | undefined {
    const r = this.#decoder.decode(payload);
    if (!r.ok) {
      this.#stats.invalid++;
      return undefined;
    }
    this.#stats.decoded++;
    this.#concealedRun = 0;
    this.#primed = true;
    return r.pcm;
  }

  /**
   * `samples` of audio for a hole in the timeline, just before `next` (the
   * packet after the hole, when it has arrived; undefined when the hole runs
   * up to the playout point with nothing after it yet). Never throws.
   */
  fill(samples: number, next?: Uint8Array): Int16Array {
    const n = Math.max(0, Math.floor(samples));
    if (!this.#repairs) {
      // Silence, through the decoder: a resampling one must see the hole to keep its filter in step.
      this.#stats.silentSamples += n;
      return n === 0 ? new Int16Array(0) : this.#decoder.conceal(n);
    }
    const out = new Int16Array(n);
    if (n === 0) return out;
    // The FEC part: the last frame before `next`, as long as the frame `next` carries.
    let fec = 0;
    if (next !== undefined && this.#primed) {
      const info = inspectOpusPacket(next);
      if (info?.hasFec)
        fec = Math.min(n, Math.round((info.samples48k / info.frames / 48000) * this.sampleRate));
    }
    const before = n - fec;
    const budget = Math.max(0, this.#maxConceal - this.#concealedRun);
    const conceal = this.#primed ? Math.min(before, budget) : 0;
    if (conceal > 0) {
      out.set(this.#decoder.conceal(conceal), 0);
      this.#concealedRun += conceal;
      this.#stats.concealedSamples += conceal;
    }
    this.#stats.silentSamples += before - conceal;
    if (fec > 0) {
      const r = this.#decoder.decodeFec(next!, fec);
      if (r.ok && r.recovered) {
        out.set(r.pcm.subarray(0, fec), before);
        this.#stats.fecSamples += fec;
      } else if (r.ok) {
        out.set(r.pcm.subarray(0, fec), before);
        this.#stats.concealedSamples += fec;
      } else {
        this.#stats.silentSamples += fec;
      }
    }
    return out;
  }

  /** A new stream (SSRC change, codec restart): forget the signal history. */
  reset(): void {
    this.#decoder.reset();
    this.#concealedRun = 0;
    this.#primed = false;
  }

  close(): void {
    this.#decoder.close();
  }
}

/**
 * The codec's decoder at `rate`: its own when it decodes to that rate (Opus
 * to 8 or 16 kHz, G.711 to 8), else its own at its native rate followed by
 * the half-band resampler (G.711 in a call recorded at 16 kHz: `--sample-rate
 * 16000`, or a re-INVITE from Opus to G.711). The resampler runs on every
 * sample in order, holes included, so its filter state stays continuous.
 */
export function decoderAt(codec: Codec, rate: SampleRate): FrameDecoder {
  if (codec.sampleRates.includes(rate)) return codec.createDecoder(rate);
  return new ResamplingDecoder(codec.createDecoder(codec.sampleRates[0]!), rate);
}

class ResamplingDecoder implements FrameDecoder {
  readonly sampleRate: SampleRate;
  readonly #inner: FrameDecoder;
  readonly #resampler: StreamResampler;

  constructor(inner: FrameDecoder, rate: SampleRate) {
    this.#inner = inner;
    this.sampleRate = rate;
    this.#resampler = StreamResampler.halfband(inner.sampleRate as SampleRate, rate);
  }

  decode(payload: Uint8Array): DecodeResult {
    return this.#convert(this.#inner.decode(payload));
  }

  conceal(samples: number): Int16Array {
    return this.#resampler.process(this.#inner.conceal(this.#innerSamples(samples)));
  }

  decodeFec(next: Uint8Array, samples: number): DecodeResult {
    return this.#convert(this.#inner.decodeFec(next, this.#innerSamples(samples)));
  }

  reset(): void {
    this.#inner.reset();
  }

  close(): void {
    this.#inner.close();
    this.#resampler.close();
  }

  #innerSamples(samples: number): number {
    return Math.round((samples * this.#inner.sampleRate) / this.sampleRate);
  }

  #convert(r: DecodeResult): DecodeResult {
    return r.ok ? { ...r, pcm: this.#resampler.process(r.pcm) } : r;
  }
}
