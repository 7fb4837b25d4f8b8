/**
 * The per-packet receive logic of one call's media, as a pure processor (no
 * socket, no clock): datagram → RTP parse/validate (RFC 3550 5.1, A.1) →
 * source latch → payload-type dispatch → jitter buffer (G.711 decode) or
 * RFC 4733 DTMF. MediaSession feeds it from its socket and tick; the media
 * benchmark drives the very same code without sockets.
 *
 * Times are positions on the call's timeline: samples of wall clock since
 * the answer (t0).
 */

import { isRtpInvalid, parseRtp } from '../rtp/packet.js';
import type { Codec } from '../sdp/negotiate.js';
import type { PacketStats } from '../sinks/sidecar.js';
import { codecOf, TELEPHONE_EVENT_PT } from './codec.js';
import { DtmfDeduper, type DtmfDigit, parseTelephoneEvent } from './dtmf.js';
import { type FrameCallback, JitterBuffer, type JitterBufferOptions } from './jitter-buffer.js';

export interface Endpoint {
  address: string;
  port: number;
}

export interface ReceiveMedia {
  codec: Codec;
  /** Payload type of the audio codec. */
  payloadType: number;
  /** RFC 4733 telephone-event payload type, when negotiated. */
  telephoneEventPt?: number;
}

export type ReceiveOutcome =
  | 'audio'
  | 'duplicate'
  | 'late'
  | 'dtmf'
  /** A payload type that is neither the codec nor telephone-event (e.g. comfort noise, RFC 3389). */
  | 'other'
  | 'foreign'
  | 'invalid';

export interface ReceiveStats extends PacketStats {
  /** Times the jitter buffer re-anchored the timeline (untrustworthy timestamps). */
  resync: number;
  ssrcChange: number;
  /** Packets of other payload types (comfort noise 13 and the like), not played. */
  otherPayload: number;
  /** Key presses reported. */
  dtmf: number;
}

export type DtmfListener = (digit: DtmfDigit, atSamples: number) => void;

/** Where an unlatched path takes packets from. */
type LatchMode =
  /** Only the address:port of the SDP. */
  | 'expected'
  /** The SDP's address:port, or else the first valid source (RFC 4961 symmetric RTP, NAT). */
  | 'any';

export interface ReceivePathOptions extends JitterBufferOptions {
  media: ReceiveMedia;
  /** The remote media address from SDP, resolved to an IP (undefined until known). */
  expected?: Endpoint;
  onDtmf?: DtmfListener;
}

export class ReceivePath {
  readonly jitter: JitterBuffer;
  #media: ReceiveMedia;
  #decode: Int16Array;
  #expected: Endpoint | undefined;
  #mode: LatchMode = 'expected';
  #latched: Endpoint | undefined;
  /** After a change of remote, the old source must not win the race to re-latch. */
  #excluded: Endpoint | undefined;
  #lastValidAt = -1;
  readonly #dtmf = new DtmfDeduper();
  readonly #onDtmf: DtmfListener | undefined;
  #foreign = 0;
  #invalid = 0;
  #other = 0;
  #dtmfCount = 0;

  constructor(options: ReceivePathOptions) {
    this.jitter = new JitterBuffer(options);
    this.#media = { ...options.media };
    this.#decode = decodeTable(options.media.codec);
    this.#expected = options.expected && normalize(options.expected);
    this.#onDtmf = options.onDtmf;
  }

  /** The source packets are taken from, once latched. */
  get latched(): Readonly<Endpoint> | undefined {
    return this.#latched;
  }

  /** Timeline position of the last valid packet from the latched source, -1 before any. */
  get lastValidAt(): number {
    return this.#lastValidAt;
  }

  get stats(): ReceiveStats {
    const j = this.jitter.stats;
    return {
      received: j.received,
      lost: j.lost,
      late: j.late,
      duplicate: j.duplicate,
      reordered: j.reordered,
      foreignSource: this.#foreign,
      invalid: this.#invalid,
      resync: j.resync,
      ssrcChange: j.ssrcChange,
      otherPayload: this.#other,
      dtmf: this.#dtmfCount,
    };
  }

  /**
   * Lets the path latch to any source, not only the SDP's address: called once
   * we have sent our first packet (priming), because a media server behind NAT
   * answers from an address of its own, towards wherever our packet came from.
   */
  allowAnySource(): void {
    this.#mode = 'any';
  }

  /**
   * A re-INVITE changed the media. A new remote address drops the latch so the
   * new stream can be taken (the old one is kept out); the codec may change too.
   */
  update(media: ReceiveMedia, expected: Endpoint | undefined): void {
    this.#media = { ...media };
    this.#decode = decodeTable(media.codec);
    const next = expected && normalize(expected);
    if (next && !(this.#expected && same(next, this.#expected))) {
      this.#expected = next;
      if (this.#latched && !same(this.#latched, next)) this.#excluded = this.#latched;
      this.#latched = undefined;
    }
  }

  /**
   * One datagram from `from`, arrived at timeline position `now`. Never
   * throws for anything a remote can send.
   */
  receive(datagram: Uint8Array, fromAddress: string, fromPort: number, now: number): ReceiveOutcome {
    const packet = parseRtp(datagram);
    if (isRtpInvalid(packet)) {
      this.#invalid++;
      return 'invalid';
    }
    if (!this.#accepts(fromAddress, fromPort)) {
      this.#foreign++;
      return 'foreign';
    }
    this.#lastValidAt = now;
    const pt = packet.payloadType;
    if (pt === this.#media.payloadType) {
      const outcome = this.jitter.push(packet, now, this.#decode);
      return outcome === 'placed' ? 'audio' : outcome === 'event' ? 'other' : outcome;
    }
    // Events and comfort noise share the stream's sequence space (RFC 4733 2.1,
    // RFC 3389 4): they count for loss and duplicates, leave silence in place and
    // never move the timeline (an event's timestamp is its start, RFC 4733 2.5.1.2).
    const outcome = this.jitter.push(packet, now, undefined);
    if (pt !== (this.#media.telephoneEventPt ?? TELEPHONE_EVENT_PT)) {
      this.#other++;
      return 'other';
    }
    if (outcome === 'duplicate') return 'duplicate';
    const event = parseTelephoneEvent(packet.payload);
    if (event === undefined) return 'dtmf';
    // RFC 4733 2.5.1.2: every packet of one press carries the press's timestamp.
    const digit = this.#dtmf.accept(packet.ssrc, packet.timestamp, event);
    if (digit !== undefined) {
      this.#dtmfCount++;
      this.#onDtmf?.(digit, now);
    }
    return 'dtmf';
  }

  /** Emits the frames whose playout time has come (see JitterBuffer.pull). */
  pull(now: number, sink: FrameCallback): number {
    return this.jitter.pull(now, sink);
  }

  /** Ends the timeline at `end` (or the end of the newest audio, if later). */
  flush(end: number, sink: FrameCallback): void {
    this.jitter.flush(end, sink);
  }

  #accepts(address: string, port: number): boolean {
    const latched = this.#latched;
    if (latched) return latched.port === port && latched.address === unmap(address);
    const from = { address: unmap(address), port };
    const expected = this.#expected;
    const fromExpected = expected !== undefined && same(from, expected);
    if (!fromExpected) {
      if (this.#mode !== 'any') return false;
      if (this.#excluded && same(from, this.#excluded)) return false;
    }
    this.#latched = from;
    this.#excluded = undefined;
    return true;
  }
}

export function decodeTable(codec: Codec): Int16Array {
  return codecOf(codec).decodeTable;
}

function same(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.address === b.address;
}

function normalize(e: Endpoint): Endpoint {
  return { address: unmap(e.address), port: e.port };
}

/** A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; compare them as a.b.c.d. */
function unmap(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
