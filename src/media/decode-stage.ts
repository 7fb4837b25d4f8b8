/**
 * Decoding in front of the jitter buffer, for the codecs that cannot be
 * decoded by table as each packet is placed: Opus (each packet's decoding
 * leans on the one before, RFC 6716 4), and G.711 in a call recorded at
 * 16 kHz (its resampler's filter runs on the samples in order). Pure: no
 * clock, no I/O. The jitter buffer then places PCM exactly as it places
 * G.711 (by timestamp, with every rule about late packets, spikes and
 * streams); only the order of decoding is decided here.
 *
 * Per SSRC, packets are decoded in sequence order:
 * - the next packet in sequence is decoded at once;
 * - a packet after a gap waits (`held`), because the missing one may only be
 *   reordered. It waits until the gap fills, or until settle() finds it has
 *   waited `wait` samples of wall clock (the caller makes that end just before
 *   the live stream would play the hole). Then the hole is repaired
 *   (StreamDecoder.fill: Opus PLC, and the last frame rebuilt from the in-band
 *   FEC the waiting packet carries; silence for G.711) and handed on with the
 *   waiting packet's own audio, as one packet starting where the hole starts;
 * - a packet behind what was decoded (its hole was repaired already: it came
 *   later than the live stream could wait) is not decoded: the decoder has
 *   moved on. Its place keeps the repair, in the WAV too. The caller counts it
 *   (it is not lost, it was late).
 * A jump of more than MAX_GAP packets, or a hole longer than MAX_HOLE_MS, is
 * not repaired (a restart, a long pause): the packet is decoded as it comes
 * and the jitter buffer places it by its timestamp, or by arrival.
 */
import { seqDiff, tsDiff } from '../rtp/seq.js';
import type { Codec, SampleRate } from './codec.js';
import type { AudioPacket } from './jitter-buffer.js';
import { StreamDecoder } from './stream-decoder.js';

export interface DecodeStageOptions {
  codec: Codec;
  /** RTP clock rate of the stream (48000 for opus/48000/2; RingCentral's OPUS/16000 runs at 16000). */
  clockRate: number;
  /** Rate of the PCM handed on: the call's working rate. */
  sampleRate: SampleRate;
  /** Longest PLC before silence (StreamDecoder's option). */
  maxConcealMs?: number;
}

/** Where decoded packets go, with the wall-clock position at which their (last) packet arrived. */
export type DecodedSink = (packet: AudioPacket, now: number) => void;

export type StageOutcome =
  /** Decoded and handed on (with any packets waiting behind it). */
  | 'decoded'
  /** Waits for the packet before it. */
  | 'held'
  /** The same sequence number is waiting already. */
  | 'duplicate'
  /** Behind what was decoded: not decoded (see the header). */
  | 'behind'
  /** The codec rejected the payload. */
  | 'invalid';

export interface DecodeStageStats {
  /** Samples of holes rebuilt from in-band FEC. */
  fecSamples: number;
  /** Samples of holes filled by packet loss concealment. */
  concealedSamples: number;
  /** Packets not decoded because they came after their hole was repaired. */
  behind: number;
  /** Payloads the codec rejected. */
  invalid: number;
}

/** A jump of more than this many packets is a restart or a long pause, not loss to repair. */
const MAX_GAP = 50;
/** Holes longer than this are left to the jitter buffer (silence), not filled here. */
const MAX_HOLE_MS = 1000;
/** Packets waiting per stream; more (a flood behind one hole) repair the hole at once. */
const MAX_HELD = 16;
/** Streams decoded at once: the current one and a newcomer on probation; a third evicts the oldest. */
const MAX_STREAMS = 2;

interface Held {
  packet: AudioPacket;
  now: number;
}

interface StreamState {
  ssrc: number;
  decoder: StreamDecoder;
  /** Sequence number of the next packet in order. */
  nextSeq: number;
  /** RTP timestamp just after the last decoded audio. */
  endTs: number;
  /** Packets after a gap, in sequence order. */
  held: Held[];
}

export class DecodeStage {
  readonly sampleRate: SampleRate;
  readonly #codec: Codec;
  /** Working-rate samples per RTP timestamp unit. */
  readonly #ratio: number;
  readonly #maxHole: number;
  readonly #maxConcealMs: number | undefined;
  /** Most recently used last. */
  readonly #streams: StreamState[] = [];
  readonly #stats: DecodeStageStats = { fecSamples: 0, concealedSamples: 0, behind: 0, invalid: 0 };
  /** Repair counts of the streams already closed. */
  #closedFec = 0;
  #closedConcealed = 0;

  /** For Opus the library must be loaded (prepareCodecs); throws CODEC_FAILED otherwise. */
  constructor(options: DecodeStageOptions) {
    this.#codec = options.codec;
    this.sampleRate = options.sampleRate;
    this.#ratio = options.sampleRate / options.clockRate;
    this.#maxHole = Math.round((MAX_HOLE_MS * options.sampleRate) / 1000);
    this.#maxConcealMs = options.maxConcealMs;
  }

  get stats(): Readonly<DecodeStageStats> {
    let fec = this.#closedFec;
    let concealed = this.#closedConcealed;
    for (const s of this.#streams) {
      fec += s.decoder.stats.fecSamples;
      concealed += s.decoder.stats.concealedSamples;
    }
    this.#stats.fecSamples = fec;
    this.#stats.concealedSamples = concealed;
    return this.#stats;
  }

  /** Packets waiting behind a gap, over all streams. */
  get held(): number {
    let n = 0;
    for (const s of this.#streams) n += s.held.length;
    return n;
  }

  /**
   * One audio packet of the latched source, arrived at `now`. Decoded packets
   * go to `sink` (this one, and any that waited behind it) before this returns.
   */
  push(packet: AudioPacket, now: number, sink: DecodedSink): StageOutcome {
    let s = this.#stream(packet.ssrc);
    if (s === undefined) {
      s = this.#open(packet.ssrc);
      return this.#decodeFirst(s, packet, now, sink);
    }
    const d = seqDiff(packet.sequenceNumber, s.nextSeq);
    if (d === 0) {
      const outcome = this.#decodeNext(s, packet, now, sink, undefined);
      this.#drain(s, sink);
      return outcome;
    }
    if (d > MAX_GAP || d < -MAX_GAP) {
      // A restart or a long pause: whatever waited is repaired first, then this starts over.
      this.#repairAll(s, sink);
      return this.#decodeFirst(s, packet, now, sink);
    }
    if (d < 0) {
      this.#stats.behind++;
      return 'behind';
    }
    const at = s.held.findIndex((h) => seqDiff(h.packet.sequenceNumber, packet.sequenceNumber) >= 0);
    if (at >= 0 && s.held[at]!.packet.sequenceNumber === packet.sequenceNumber) return 'duplicate';
    const held = { packet: { ...packet, payload: packet.payload.slice() }, now };
    if (at < 0) s.held.push(held);
    else s.held.splice(at, 0, held);
    if (s.held.length > MAX_HELD) this.#repairNext(s, sink);
    return 'held';
  }

  /**
   * Repairs every hole whose first waiting packet arrived at or before
   * `now − wait` (a negative `wait`, or none: every hole), and hands on what
   * follows it. The caller runs this before each playout.
   */
  settle(sink: DecodedSink, now = Number.POSITIVE_INFINITY, wait = 0): void {
    for (const s of this.#streams) {
      while (s.held.length > 0 && s.held[0]!.now <= now - wait) this.#repairNext(s, sink);
    }
  }

  /** A new source: nothing of the old streams continues. */
  reset(): void {
    for (const s of this.#streams) this.#closeStream(s);
    this.#streams.length = 0;
  }

  close(): void {
    this.reset();
  }

  // ---------------------------------------------------------------------------

  #stream(ssrc: number): StreamState | undefined {
    const i = this.#streams.findIndex((s) => s.ssrc === ssrc);
    if (i < 0) return undefined;
    const s = this.#streams[i]!;
    if (i !== this.#streams.length - 1) {
      this.#streams.splice(i, 1);
      this.#streams.push(s);
    }
    return s;
  }

  #open(ssrc: number): StreamState {
    if (this.#streams.length >= MAX_STREAMS) this.#closeStream(this.#streams.shift()!);
    const decoder = new StreamDecoder(
      this.#codec,
      this.sampleRate,
      this.#maxConcealMs === undefined ? {} : { maxConcealMs: this.#maxConcealMs },
    );
    const s: StreamState = { ssrc, decoder, nextSeq: 0, endTs: 0, held: [] };
    this.#streams.push(s);
    return s;
  }

  #closeStream(s: StreamState): void {
    this.#closedFec += s.decoder.stats.fecSamples;
    this.#closedConcealed += s.decoder.stats.concealedSamples;
    s.decoder.close();
    s.held.length = 0;
  }

  /** The first packet of a stream, or the first after a jump: no history to repair from. */
  #decodeFirst(s: StreamState, packet: AudioPacket, now: number, sink: DecodedSink): StageOutcome {
    s.held.length = 0;
    s.decoder.reset();
    s.nextSeq = packet.sequenceNumber;
    s.endTs = packet.timestamp;
    return this.#decodeNext(s, packet, now, sink, undefined);
  }

  /**
   * Decodes `packet`, the next in sequence, with `repair` (the audio of the
   * hole before it, from its timestamp `repairTs`) in front.
   */
  #decodeNext(
    s: StreamState,
    packet: AudioPacket,
    now: number,
    sink: DecodedSink,
    repair: { pcm: Int16Array; ts: number } | undefined,
  ): StageOutcome {
    const pcm = s.decoder.decode(packet.payload);
    if (pcm === undefined) {
      this.#stats.invalid++;
      if (repair === undefined) return 'invalid'; // as if lost: the packet after it waits, then repairs its slot
      // The hole before it was repaired already: that audio still goes out, under its number.
      s.nextSeq = (packet.sequenceNumber + 1) & 0xffff;
      sink({ ...packet, timestamp: repair.ts, pcm: repair.pcm }, now);
      s.endTs = (repair.ts + Math.round(repair.pcm.length / this.#ratio)) >>> 0;
      return 'invalid';
    }
    s.nextSeq = (packet.sequenceNumber + 1) & 0xffff;
    s.endTs = (packet.timestamp + Math.round(pcm.length / this.#ratio)) >>> 0;
    if (repair === undefined || repair.pcm.length === 0) {
      sink({ ...packet, pcm }, now);
    } else {
      const joined = new Int16Array(repair.pcm.length + pcm.length);
      joined.set(repair.pcm, 0);
      joined.set(pcm, repair.pcm.length);
      sink({ ...packet, timestamp: repair.ts, pcm: joined }, now);
    }
    return 'decoded';
  }

  /** Decodes the packets waiting that are now in sequence. */
  #drain(s: StreamState, sink: DecodedSink): void {
    while (s.held.length > 0) {
      const first = s.held[0]!;
      const d = seqDiff(first.packet.sequenceNumber, s.nextSeq);
      if (d > 0) return;
      s.held.shift();
      if (d === 0) this.#decodeNext(s, first.packet, first.now, sink, undefined);
      else this.#stats.behind++;
    }
  }

  /** Gives up on the hole before the first waiting packet: repairs it and decodes on. */
  #repairNext(s: StreamState, sink: DecodedSink): void {
    const first = s.held.shift();
    if (first === undefined) return;
    const holeTs = tsDiff(first.packet.timestamp, s.endTs);
    const hole = Math.round(holeTs * this.#ratio);
    if (hole <= 0 || hole > this.#maxHole) {
      // Nothing to fill by timestamp (a sender that reset its clock), or a pause too long to
      // conceal: decode it as it comes; the jitter buffer places it by timestamp or arrival.
      this.#decodeNext(s, first.packet, first.now, sink, undefined);
    } else {
      const pcm = s.decoder.fill(hole, first.packet.payload);
      this.#decodeNext(s, first.packet, first.now, sink, { pcm, ts: s.endTs });
    }
    this.#drain(s, sink);
  }

  #repairAll(s: StreamState, sink: DecodedSink): void {
    while (s.held.length > 0) this.#repairNext(s, sink);
  }
}
