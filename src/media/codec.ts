/**
 * The codec table: everything the media path and SDP need to know about an
 * audio codec, in one place (payload type, RTP clock rate, working rates,
 * decode, encode). SDP negotiation, the receive path, the sender and the
 * test traffic generator all read it; nothing else says "PCMA ? … : …".
 *
 * Two kinds of codec:
 * - table-driven (G.711): one byte per sample, decoded by table lookup as the
 *   jitter buffer places each packet (the per-sample fast path), no state;
 * - stateful (Opus, RFC 6716 / RFC 7587): a decoder object per stream that
 *   must see the packets in order, with loss concealment (PLC) and in-band
 *   FEC, and an encoder object per stream.
 * Every codec offers the stateful interface (`createDecoder`/`createEncoder`),
 * so a path that keeps encoded packets and decodes at playout can treat all
 * codecs alike; G.711 keeps its table besides.
 *
 * Two rates are kept apart: the RTP clock rate (timestamps: 8000 for G.711,
 * 48000 for Opus per RFC 7587 4.1) and the working rate (the rate of the PCM
 * the call records and streams: 8000 narrowband, 16000 wideband).
 */
import {
  ALAW_SILENCE,
  ALAW_TO_LINEAR,
  encodeAlawFrame,
  encodeUlawFrame,
  ULAW_SILENCE,
  ULAW_TO_LINEAR,
} from './g711.js';
import { loadOpus, OpusDecoder, OpusEncoder, type OpusEncoderOptions } from './opus.js';

export type G711Name = 'PCMU' | 'PCMA';
export type CodecName = G711Name | 'opus';

/** The rate of a call's decoded PCM: 8 kHz narrowband (G.711), 16 kHz wideband (Opus). */
export type SampleRate = 8000 | 16000;
export const SAMPLE_RATES: readonly SampleRate[] = [8000, 16000];

/** Why a payload gave no audio; the caller counts it as an invalid packet. Never thrown. */
export type DecodeError = 'empty' | 'too-large' | 'invalid' | 'closed';

export type DecodeResult =
  | {
      ok: true;
      /** PCM at the decoder's rate, a fresh array the caller may keep. */
      pcm: Int16Array;
      /** decodeFec only: the packet really carried FEC for the lost one (otherwise this is concealment). */
      recovered?: boolean;
    }
  | { ok: false; error: DecodeError };

/** One stream's decoder. Packets must be given in order; never throws for what a remote sends. */
export interface FrameDecoder {
  readonly sampleRate: number;
  /** One RTP payload → its samples (G.711: one per byte; Opus: 2.5 to 120 ms). */
  decode(payload: Uint8Array): DecodeResult;
  /** `samples` standing in for a packet that never came (PLC; silence for G.711). */
  conceal(samples: number): Int16Array;
  /**
   * The `samples` lost just before `next`, rebuilt from the FEC that `next`
   * carries (Opus LBRR), else concealed. Decode `next` itself afterwards.
   */
  decodeFec(next: Uint8Array, samples: number): DecodeResult;
  /** A new stream (SSRC change): forget the signal history. */
  reset(): void;
  close(): void;
}

/** One stream's encoder: PCM frames at its rate → payloads. */
export interface FrameEncoder {
  readonly sampleRate: number;
  /** One frame (Opus: 2.5-60 ms; G.711: any length) → one payload, a fresh array. */
  encode(pcm: Int16Array): Uint8Array;
  /** Start a new stream of frames (after a gap the far end decoded as something else). */
  reset(): void;
  close(): void;
}

export type EncoderOptions = OpusEncoderOptions;

interface CodecBase {
  readonly name: CodecName;
  /** The rtpmap encoding name as we write it (matched case-insensitively, RFC 4855 3). */
  readonly encodingName: string;
  /** RFC 3551 static payload type, or the dynamic one we use in our offers. */
  readonly payloadType: number;
  /** A dynamic payload type (96-127): the number is whatever the offer says. */
  readonly dynamic: boolean;
  /** RTP clock rate in our offers and answers (timestamps); an offer may name another (see sdp/). */
  readonly clockRate: number;
  /** Channels in the rtpmap (RFC 7587 7: Opus is always signalled as 2). */
  readonly channels: number;
  /** Working rates this codec can decode to and encode from, the preferred first. */
  readonly sampleRates: readonly SampleRate[];
  createDecoder(sampleRate: SampleRate): FrameDecoder;
  createEncoder(sampleRate: SampleRate, options?: EncoderOptions): FrameEncoder;
}

export interface TableCodec extends CodecBase {
  readonly kind: 'table';
  /** The encoded byte of a zero sample (G.711: one byte per sample). */
  readonly silence: number;
  /** Encoded byte → 16-bit linear sample. */
  readonly decodeTable: Int16Array;
  /** Encodes `samples` into `out` (one byte per sample); returns the bytes written. */
  encodeFrame(samples: Int16Array, out: Uint8Array): number;
}

export interface StatefulCodec extends CodecBase {
  readonly kind: 'stateful';
  /** Loads the codec's library (WASM) once per process; await before createDecoder/createEncoder. */
  load(): Promise<void>;
}

export type Codec = TableCodec | StatefulCodec;

function g711(
  name: G711Name,
  payloadType: number,
  silence: number,
  decodeTable: Int16Array,
  encodeFrame: (samples: Int16Array, out: Uint8Array) => number,
): TableCodec {
  const narrowband = (rate: number): void => {
    // G.711 is 8 kHz by definition (ITU-T G.711); other rates are the resampler's job.
    if (rate !== 8000) throw new RangeError(`${name} runs at 8000 Hz, not ${rate}`);
  };
  return {
    kind: 'table',
    name,
    encodingName: name,
    payloadType,
    dynamic: false,
    clockRate: 8000,
    channels: 1,
    sampleRates: [8000],
    silence,
    decodeTable,
    encodeFrame,
    createDecoder(rate) {
      narrowband(rate);
      return new G711Decoder(decodeTable);
    },
    createEncoder(rate) {
      narrowband(rate);
      return {
        sampleRate: 8000,
        encode(pcm) {
          const out = new Uint8Array(pcm.length);
          encodeFrame(pcm, out);
          return out;
        },
        reset() {},
        close() {},
      };
    },
  };
}

/** G.711 through the stateful interface: no memory, no FEC, silence for loss. */
class G711Decoder implements FrameDecoder {
  readonly sampleRate = 8000;
  readonly #table: Int16Array;
  #closed = false;

  constructor(table: Int16Array) {
    this.#table = table;
  }

  decode(payload: Uint8Array): DecodeResult {
    if (this.#closed) return { ok: false, error: 'closed' };
    if (payload.length === 0) return { ok: false, error: 'empty' };
    const pcm = new Int16Array(payload.length);
    for (let i = 0; i < payload.length; i++) pcm[i] = this.#table[payload[i]!]!;
    return { ok: true, pcm };
  }

  conceal(samples: number): Int16Array {
    return new Int16Array(Math.max(0, Math.floor(samples)));
  }

  decodeFec(next: Uint8Array, samples: number): DecodeResult {
    if (this.#closed) return { ok: false, error: 'closed' };
    if (next.length === 0) return { ok: false, error: 'empty' };
    return { ok: true, pcm: this.conceal(samples), recovered: false };
  }

  reset(): void {}

  close(): void {
    this.#closed = true;
  }
}

const OPUS: StatefulCodec = {
  kind: 'stateful',
  name: 'opus',
  encodingName: 'opus',
  // 111: the number WebRTC stacks and RingCentral's edge use for opus/48000/2.
  payloadType: 111,
  dynamic: true,
  clockRate: 48000,
  channels: 2,
  // Wideband first: what the recording and the engines get from an Opus call.
  sampleRates: [16000, 8000],
  load: loadOpus,
  createDecoder: (rate) => new OpusDecoder(rate),
  createEncoder: (rate, options) => new OpusEncoder(rate, options),
};

export const CODECS: Readonly<Record<CodecName, Codec>> = Object.freeze({
  PCMU: g711('PCMU', 0, ULAW_SILENCE, ULAW_TO_LINEAR, encodeUlawFrame),
  PCMA: g711('PCMA', 8, ALAW_SILENCE, ALAW_TO_LINEAR, encodeAlawFrame),
  opus: OPUS,
});

/** Issue 12's preference: Opus whenever the far end offers it, else PCMU as RingCentral's edge prefers. */
export const OPUS_FIRST_CODECS: readonly CodecName[] = ['opus', 'PCMU', 'PCMA'];
/** Our codec preference when the user sets none (`--codecs`). */
export const DEFAULT_CODECS: readonly CodecName[] = OPUS_FIRST_CODECS;

/**
 * RFC 4733 telephone-event: the dynamic payload type we offer, and the one a
 * receiver assumes when an offer carried none (the de-facto number).
 */
export const TELEPHONE_EVENT_PT = 101;

/** The table entry of a codec, whatever its kind. */
export function codecInfo(name: CodecName): Codec {
  return CODECS[name];
}

/**
 * The table-driven (G.711) entry, for the per-sample paths (jitter buffer
 * placement, silence bytes). A stateful codec has no table: asking for one
 * is a programming error, since Opus must go through createDecoder.
 */
export function codecOf(name: CodecName): TableCodec {
  const codec = CODECS[name];
  if (codec.kind !== 'table')
    throw new TypeError(`${name} is not table-driven: use codecInfo(name).createDecoder()`);
  return codec;
}

/** A codec by the name a user or an rtpmap writes it (`opus`, `PCMU`, `pcma`), case-insensitively. */
export function codecByName(name: string): CodecName | undefined {
  const upper = name.trim().toUpperCase();
  return (Object.keys(CODECS) as CodecName[]).find((c) => c.toUpperCase() === upper);
}

/** Loads what the given codecs need (the Opus WASM) once; the media path awaits this at start. */
export async function prepareCodecs(names: readonly CodecName[]): Promise<void> {
  await Promise.all(
    [...new Set(names)].map((n) => {
      const codec = CODECS[n];
      return codec.kind === 'stateful' ? codec.load() : undefined;
    }),
  );
}
