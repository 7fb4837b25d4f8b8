/**
 * The codec table: everything the media path and SDP need to know about an
 * audio codec, in one place (payload type, clock rate, silence, decode,
 * encode). SDP negotiation, the receive path, the sender and the test
 * traffic generator all read it; nothing else says "PCMA ? … : …".
 */
import {
  ALAW_SILENCE,
  ALAW_TO_LINEAR,
  encodeAlawFrame,
  encodeUlawFrame,
  ULAW_SILENCE,
  ULAW_TO_LINEAR,
} from './g711.js';

export type CodecName = 'PCMU' | 'PCMA';

export interface Codec {
  readonly name: CodecName;
  /** RFC 3551 static payload type. */
  readonly payloadType: number;
  /** RTP clock rate, and the rate of the decoded PCM. */
  readonly clockRate: number;
  /** The encoded byte of a zero sample (G.711: one byte per sample). */
  readonly silence: number;
  /** Encoded byte → 16-bit linear sample. */
  readonly decodeTable: Int16Array;
  /** Encodes `samples` into `out` (one byte per sample); returns the bytes written. */
  encodeFrame(samples: Int16Array, out: Uint8Array): number;
}

export const CODECS: Readonly<Record<CodecName, Codec>> = Object.freeze({
  PCMU: {
    name: 'PCMU',
    payloadType: 0,
    clockRate: 8000,
    silence: ULAW_SILENCE,
    decodeTable: ULAW_TO_LINEAR,
    encodeFrame: encodeUlawFrame,
  },
  PCMA: {
    name: 'PCMA',
    payloadType: 8,
    clockRate: 8000,
    silence: ALAW_SILENCE,
    decodeTable: ALAW_TO_LINEAR,
    encodeFrame: encodeAlawFrame,
  },
});

/** Our codec preference when the user sets none (PCMU first, as RingCentral's edge). */
export const DEFAULT_CODECS: readonly CodecName[] = ['PCMU', 'PCMA'];

/**
 * RFC 4733 telephone-event: the dynamic payload type we offer, and the one a
 * receiver assumes when an offer carried none (the de-facto number).
 */
export const TELEPHONE_EVENT_PT = 101;

export function codecOf(name: CodecName): Codec {
  return CODECS[name];
}
