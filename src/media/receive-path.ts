/**
 * The per-packet receive logic of one call's media, as a pure processor (no
 * socket, no clock): datagram → RTP parse/validate (RFC 3550 5.1, A.1) →
 * source latch → payload-type dispatch → jitter buffer (G.711 decoded by
 * table as it is placed; Opus, and G.711 recorded at 16 kHz, through the
 * DecodeStage in front of it) or RFC 4733 DTMF. MediaSession feeds it from its socket and tick; the media
 * benchmark drives the very same code without sockets.
 *
 * Times are positions on the call's timeline: samples of wall clock since
 * the answer (t0).
 */

import { isRtpInvalid, parseRtp, type RtpPacket } from '../rtp/packet.js';
import type { Codec } from '../sdp/negotiate.js';
import type { PacketStats } from '../sinks/sidecar.js';
import { codecInfo, type SampleRate, TELEPHONE_EVENT_PT } from './codec.js';
import { type DecodedSink, DecodeStage } from './decode-stage.js';
import { DtmfDeduper, type DtmfDigit, parseTelephoneEvent } from './dtmf.js';
import { FRAME_MS } from './frame.js';
import {
  type AudioPacket,
  type FrameCallback,
  JitterBuffer,
  type JitterBufferOptions,
} from './jitter-buffer.js';
import { MAX_OPUS_PAYLOAD } from './opus.js';

export interface Endpoint {
  address: string;
  port: number;
}

export interface ReceiveMedia {
  codec: Codec;
  /** Payload type of the audio codec. */
  payloadType: number;
  /** RTP clock rate of the audio (default the codec's: 8000 G.711, 48000 Opus). */
  clockRate?: number;
  /** RFC 4733 telephone-event payload type, when negotiated. */
  telephoneEventPt?: number;
  /** Packetization asked for (a=ptime, ms; default 20): bounds the audio payloads taken. */
  ptime?: number;
}

export type ReceiveOutcome =
  | 'audio'
  | 'duplicate'
  | 'late'
  | 'dtmf'
  /** A payload type that is neither the codec nor telephone-event (e.g. comfort noise, RFC 3389). */
  | 'other'
  /** From the latched source, but a new SSRC (or a sequence jump) still on probation. */
  | 'pending'
  | 'foreign'
  | 'invalid';

export interface ReceiveStats extends PacketStats {
  /** Times the jitter buffer re-placed a stream by arrival (untrustworthy timestamps, spikes beyond the bound). */
  resync: number;
  ssrcChange: number;
  /** Packets of SSRCs (or sequence jumps) that never proved themselves, or lost to the established stream. */
  probationDropped: number;
  /** Audio packets whose payload does not fit the codec and ptime (empty, or over 3 ptimes and 60 ms): dropped. */
  invalidPayload: number;
  /** Times the latch took a source: the first latch and every re-latch. */
  latches: number;
  /** Packets of other payload types (comfort noise 13 and the like), not played. */
  otherPayload: number;
  /** Key presses reported. */
  dtmf: number;
  /** Opus: ms of lost audio rebuilt from the in-band FEC of the packet after it. */
  fecMs: number;
  /** Opus: ms of lost audio filled by packet loss concealment (the rest of a long hole is silence). */
  plcMs: number;
}

export type DtmfListener = (digit: DtmfDigit, atSamples: number) => void;

/** Why the latch took a source. */
export type LatchReason =
  /** It is the address:port of the SDP: always preferred, taken from its first valid packet. */
  | 'sdp'
  /** Another source (NAT, RFC 4961 symmetric RTP), after several valid packets in sequence from it. */
  | 'symmetric';

export interface LatchInfo extends Endpoint {
  reason: LatchReason;
  /** The source latched before (a re-latch). */
  previous?: Endpoint;
}

/** Where an unlatched path takes packets from. */
type LatchMode =
  /** Only the address:port of the SDP. */
  | 'expected'
  /** The SDP's address:port, or else a source that proves itself (RFC 4961 symmetric RTP, NAT). */
  | 'any';

export interface ReceivePathOptions extends Omit<JitterBufferOptions, 'onEvent' | 'timestampRatio'> {
  media: ReceiveMedia;
  /** The rate of the timeline and of every frame out (the call's working rate). Default 8000. */
  sampleRate?: SampleRate;
  /** The remote media address from SDP, resolved to an IP (undefined until known). */
  expected?: Endpoint;
  onDtmf?: DtmfListener;
}

/**
 * A source other than the SDP's is latched only after this many valid packets
 * in sequence from it: a stream that was already aimed at the port (the
 * previous user of a recycled port, a scanner) must not win the race against
 * the caller by arriving first.
 */
const LATCH_PACKETS = 3;
/** Unknown sources tracked at once; a flood from many ports only recycles these. */
const LATCH_CANDIDATES = 4;
/** Payloads of at most this many ms (or 3 ptimes, if longer) are taken: one 8 000-byte packet is not 1 s of audio. */
const MAX_PAYLOAD_MS = 60;

interface SourceCandidate {
  ssrc: number;
  nextSeq: number;
  packets: { packet: RtpPacket; now: number }[];
}

export class ReceivePath {
  readonly jitter: JitterBuffer;
  readonly sampleRate: SampleRate;
  #media: ReceiveMedia;
  /** G.711 at 8 kHz: decoded by this table as the jitter buffer places it. */
  #decode: Int16Array | undefined;
  /** Every other codec and rate: decoded in sequence order before the jitter buffer. */
  #stage: DecodeStage | undefined;
  /** Repair counts of the stages replaced by a change of codec. */
  #fecBefore = 0;
  #plcBefore = 0;
  /** Packets behind what the stage had decoded (their place was repaired): late. */
  #behind = 0;
  #maxPayload = 0;
  #expected: Endpoint | undefined;
  #mode: LatchMode = 'expected';
  #latched: Endpoint | undefined;
  #latchInfo: LatchInfo | undefined;
  /** The source the latch was dropped from (re-INVITE), reported as `previous` with the next latch. */
  #unlatched: Endpoint | undefined;
  #latches = 0;
  /** After a change of remote, the old source must not win the race to re-latch. */
  #excluded: Endpoint | undefined;
  readonly #candidates = new Map<string, SourceCandidate>();
  #lastValidAt = -1;
  readonly #dtmf = new DtmfDeduper();
  readonly #onDtmf: DtmfListener | undefined;
  #foreign = 0;
  #invalid = 0;
  #invalidPayload = 0;
  #other = 0;
  #dtmfCount = 0;

  constructor(options: ReceivePathOptions) {
    const { media, expected, onDtmf, sampleRate, ...jitter } = options;
    this.sampleRate = sampleRate ?? 8000;
    this.jitter = new JitterBuffer({
      ...jitter,
      timestampRatio: this.sampleRate / clockRateOf(media),
      onEvent: (packet, now) => this.#onEvent(packet, now),
    });
    this.#media = { ...media };
    this.#setCodec(media);
    this.#expected = expected && normalize(expected);
    this.#onDtmf = onDtmf;
  }

  /** The source packets are taken from, once latched. */
  get latched(): Readonly<Endpoint> | undefined {
    return this.#latched;
  }

  /** The latest latch: the source, why it was taken, and the one before it. */
  get latchInfo(): Readonly<LatchInfo> | undefined {
    return this.#latchInfo;
  }

  /** Timeline position of the last valid packet from the latched source, -1 before any. */
  get lastValidAt(): number {
    return this.#lastValidAt;
  }

  get stats(): ReceiveStats {
    const j = this.jitter.stats;
    const stage = this.#stage?.stats;
    const ms = (samples: number) => Math.round((samples * 1000) / this.sampleRate);
    return {
      received: j.received,
      lost: j.lost,
      late: j.late + this.#behind,
      duplicate: j.duplicate,
      reordered: j.reordered,
      foreignSource: this.#foreign,
      invalid: this.#invalid,
      resync: j.resync,
      ssrcChange: j.ssrcChange,
      probationDropped: j.probationDropped,
      invalidPayload: this.#invalidPayload,
      latches: this.#latches,
      otherPayload: this.#other,
      dtmf: this.#dtmfCount,
      fecMs: ms(this.#fecBefore + (stage?.fecSamples ?? 0)),
      plcMs: ms(this.#plcBefore + (stage?.concealedSamples ?? 0)),
    };
  }

  /**
   * Lets the path latch to sources other than the SDP's: called once we have
   * sent our first packet (priming), because a media server behind NAT
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
    const before = this.#media;
    this.#media = { ...media };
    if (media.codec !== before.codec || clockRateOf(media) !== clockRateOf(before)) {
      this.#settle(); // what waited is decoded by the codec it came in
      this.#setCodec(media);
      this.jitter.setTimestampRatio(this.sampleRate / clockRateOf(media));
    }
    const next = expected && normalize(expected);
    if (next && !(this.#expected && same(next, this.#expected))) {
      this.#expected = next;
      const latched = this.#latched;
      if (latched && !same(latched, next)) this.#excluded = latched;
      if (latched) {
        this.#unlatched = latched;
        this.#latched = undefined;
        // Whoever is latched next starts a new stream, taken as it comes.
        this.#settle();
        this.#stage?.reset();
        this.jitter.newSource();
      }
      this.#candidates.clear();
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
    if (packet.payloadType === this.#media.payloadType) {
      const n = packet.payload.length;
      if (n === 0 || n > this.#maxPayload) {
        this.#invalidPayload++;
        return 'invalid';
      }
    }
    const latched = this.#latched;
    if (latched === undefined || latched.port !== fromPort || latched.address !== unmap(fromAddress)) {
      if (!this.#latch(packet, fromAddress, fromPort, now)) {
        this.#foreign++;
        return 'foreign';
      }
    }
    return this.#take(packet, now);
  }

  /** Emits the recording frames whose time has come (see JitterBuffer.pullRecording). */
  pullRecording(now: number, sink: FrameCallback): number {
    this.#settle(now);
    return this.jitter.pullRecording(now, sink);
  }

  /** Emits the live frames whose time has come (see JitterBuffer.pullLive). */
  pullLive(now: number, sink: FrameCallback): number {
    this.#settle(now);
    return this.jitter.pullLive(now, sink);
  }

  /** Ends both timelines at `end` (or the end of the newest audio, if later). */
  flush(end: number, recording: FrameCallback, live?: FrameCallback): void {
    this.#settle();
    this.jitter.flush(end, recording, live);
  }

  /** Frees the decoders (the media ended). */
  close(): void {
    this.#stage?.close();
  }

  /**
   * Lets the decode stage repair holes whose packets after them have waited
   * long enough: until just before the live stream plays the hole (its target
   * delay less two frames: the packet after a hole arrived about a frame after
   * the hole's place, and the playout runs up to a frame late). Every hole
   * when `now` is not given.
   */
  #settle(now?: number): void {
    const stage = this.#stage;
    if (stage === undefined || stage.held === 0) return;
    if (now === undefined) stage.settle(this.#toJitter);
    else stage.settle(this.#toJitter, now, this.jitter.liveTarget - 2 * this.jitter.frameSamples);
  }

  readonly #toJitter: DecodedSink = (packet, now) => {
    this.jitter.push(packet, now, undefined);
  };

  #setCodec(media: ReceiveMedia): void {
    const codec = codecInfo(media.codec);
    if (this.#stage !== undefined) {
      const s = this.#stage.stats;
      this.#fecBefore += s.fecSamples;
      this.#plcBefore += s.concealedSamples;
      this.#stage.close();
      this.#stage = undefined;
    }
    this.#decode = undefined;
    if (codec.kind === 'table' && this.sampleRate === codec.clockRate) {
      this.#decode = codec.decodeTable;
    } else {
      this.#stage = new DecodeStage({ codec, clockRate: clockRateOf(media), sampleRate: this.sampleRate });
    }
    this.#maxPayload = maxPayload(media);
  }

  #take(packet: RtpPacket, now: number): ReceiveOutcome {
    this.#lastValidAt = now;
    const pt = packet.payloadType;
    if (pt === this.#media.payloadType) {
      const stage = this.#stage;
      if (stage === undefined) {
        const outcome = this.jitter.push(packet, now, this.#decode);
        return outcome === 'placed' ? 'audio' : outcome === 'event' ? 'other' : outcome;
      }
      return this.#takeDecoded(stage, packet, now);
    }
    // Events and comfort noise share the stream's sequence space (RFC 4733 2.1,
    // RFC 3389 4): they count for loss and duplicates, leave silence in place and
    // never move the timeline (an event's timestamp is its start, RFC 4733 2.5.1.2).
    // Key presses are read in #onEvent once their stream counts.
    const outcome = this.jitter.push(packet, now, undefined);
    if (pt !== (this.#media.telephoneEventPt ?? TELEPHONE_EVENT_PT)) {
      this.#other++;
      return 'other';
    }
    return outcome === 'duplicate' || outcome === 'pending' ? outcome : 'dtmf';
  }

  /** An audio packet through the decode stage; what it hands on goes to the jitter buffer. */
  #takeDecoded(stage: DecodeStage, packet: RtpPacket, now: number): ReceiveOutcome {
    let last: ReturnType<JitterBuffer['push']> | undefined;
    const outcome = stage.push(packet, now, (decoded, at) => {
      const r = this.jitter.push(decoded, at, undefined);
      if (decoded.sequenceNumber === packet.sequenceNumber && decoded.ssrc === packet.ssrc) last = r;
    });
    switch (outcome) {
      case 'decoded':
        return last === undefined || last === 'placed' ? 'audio' : last === 'event' ? 'other' : last;
      case 'held':
        return 'audio';
      case 'duplicate':
        return 'duplicate';
      case 'invalid':
        this.#invalidPayload++;
        return 'invalid';
      case 'behind': {
        // Its place was repaired already. The jitter buffer still counts it (received,
        // reordered; a duplicate if it is one) but gets no audio from it.
        const r = this.jitter.push({ ...packet, payloadType: -1 }, now, undefined);
        if (r === 'duplicate') return 'duplicate';
        this.#behind++;
        return 'late';
      }
    }
  }

  #onEvent(packet: AudioPacket, now: number): void {
    if (packet.payloadType !== (this.#media.telephoneEventPt ?? TELEPHONE_EVENT_PT)) return;
    const event = parseTelephoneEvent(packet.payload);
    if (event === undefined) return;
    // RFC 4733 2.5.1.2: every packet of one press carries the press's timestamp.
    const digit = this.#dtmf.accept(packet.ssrc, packet.timestamp, event);
    if (digit !== undefined) {
      this.#dtmfCount++;
      this.#onDtmf?.(digit, now);
    }
  }

  /**
   * Whether a packet from a source other than the latched one moves the latch
   * to it. The SDP's address:port always does, from its first valid packet
   * (it is who the far end said would send). Any other source, only once
   * priming allowed it and nothing is latched, and only after LATCH_PACKETS
   * valid packets in sequence from it; its earlier packets are then taken too.
   */
  #latch(packet: RtpPacket, address: string, port: number, now: number): boolean {
    const expected = this.#expected;
    const unmapped = unmap(address);
    if (expected !== undefined && expected.port === port && expected.address === unmapped) {
      this.#setLatch({ address: unmapped, port }, 'sdp');
      return true;
    }
    if (this.#mode !== 'any' || this.#latched !== undefined) return false;
    const excluded = this.#excluded;
    if (excluded !== undefined && excluded.port === port && excluded.address === unmapped) return false;
    const key = `${unmapped}|${port}`;
    let c = this.#candidates.get(key);
    const seq = packet.sequenceNumber;
    if (c === undefined || c.ssrc !== packet.ssrc || c.nextSeq !== seq) {
      if (c === undefined && this.#candidates.size >= LATCH_CANDIDATES) {
        this.#candidates.delete(this.#candidates.keys().next().value as string);
      }
      c = { ssrc: packet.ssrc, nextSeq: 0, packets: [] };
      this.#candidates.set(key, c);
    }
    c.nextSeq = (seq + 1) & 0xffff;
    if (c.packets.length + 1 < LATCH_PACKETS) {
      c.packets.push({ packet: { ...packet, payload: packet.payload.slice() }, now });
      return false;
    }
    this.#candidates.clear();
    this.#setLatch({ address: unmapped, port }, 'symmetric');
    // Its first packets were counted as foreign while it proved itself: take them now, in order.
    for (const held of c.packets) {
      this.#foreign--;
      this.#take(held.packet, held.now);
    }
    return true;
  }

  #setLatch(source: Endpoint, reason: LatchReason): void {
    const previous = this.#latched ?? this.#unlatched;
    this.#unlatched = undefined;
    this.#latched = source;
    this.#latchInfo = previous ? { ...source, reason, previous } : { ...source, reason };
    this.#latches++;
    this.#excluded = undefined;
    this.#candidates.clear();
    // A new source's stream is taken as it comes; nothing of the old one may come back.
    if (this.#latches > 1) this.jitter.newSource();
  }
}

function clockRateOf(media: ReceiveMedia): number {
  return media.clockRate ?? codecInfo(media.codec).clockRate;
}

/**
 * Largest audio payload taken, in bytes: G.711 carries one byte per sample
 * (RFC 3551 4.5.14), and a=ptime is a hint (RFC 4566 6), so up to three
 * times it, and never less than 60 ms. An Opus packet's size says nothing
 * of its length: its decoder checks it (RFC 6716 3.4), up to MAX_OPUS_PAYLOAD.
 */
function maxPayload(media: ReceiveMedia): number {
  const codec = codecInfo(media.codec);
  if (codec.kind !== 'table') return MAX_OPUS_PAYLOAD;
  const ptime = media.ptime ?? FRAME_MS;
  return Math.ceil((codec.clockRate / 1000) * Math.max(MAX_PAYLOAD_MS, 3 * ptime));
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
