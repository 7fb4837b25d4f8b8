/**
 * Playout timeline for one call: a pure processor (no clock, no I/O). RTP
 * packets go in with the wall-clock position at which they arrived; 20 ms PCM
 * frames come out in timeline order once they are `delay` old.
 *
 * The timeline is the call's wall clock, in samples since the answer, so the
 * recording is as long as the call. Packets are placed by RTP timestamp
 * relative to an anchor; the anchor is set from arrival time when a stream
 * starts, when the SSRC changes, and when the timestamp cannot be trusted
 * (it jumps past the wall clock, backwards over audio already placed, or the
 * stream has fallen behind the playout point). Everything not covered by a
 * packet plays out as silence: loss, DTX gaps, the time before the first packet.
 *
 * Playout phase: packets land on the timeline's 20 ms grid at the frame
 * boundary at or before their arrival, so a packet that arrives x samples
 * into its frame is complete x samples after the frame began. Frames are
 * emitted `delay` after that moment, with x the smallest seen since the
 * stream was anchored (the packets with the least network delay): a steady
 * stream waits `delay`, not `delay` plus the rest of the frame, and jitter up
 * to `delay` above that baseline is absorbed.
 *
 * Positions are plain numbers of samples (exact in float64 for ~35 000 years of
 * audio at 8 kHz); RTP timestamps are only ever compared as signed 32-bit
 * differences against a recent anchor, so their wrap is harmless (RFC 3550 5.1).
 */
import { seqDiff, tsDiff } from '../rtp/seq.js';
import { FRAME_MS, FRAME_SAMPLES, JITTER_DELAY_MS } from './frame.js';
import type { FrameInfo } from './frame-sink.js';

export interface JitterBufferOptions {
  /** Samples per output frame (20 ms at 8 kHz). */
  frameSamples?: number;
  /** Playout delay: how long audio waits for reordered and jittered packets. Default JITTER_DELAY_MS. */
  delaySamples?: number;
  /**
   * How far ahead of the wall clock a packet may be placed after a gap before
   * its timestamp is distrusted. Bounds the silence a hostile timestamp can add.
   */
  leadLimitSamples?: number;
  /** Most audio held ahead of the wall clock (after a network stall); beyond it packets count as late. */
  maxBufferedSamples?: number;
}

export interface AudioPacket {
  ssrc: number;
  sequenceNumber: number;
  timestamp: number;
  /** Encoded payload, one byte per sample (G.711). */
  payload: Uint8Array;
}

export interface JitterStats {
  /** Valid packets from the latched source, audio and telephone-event alike. */
  received: number;
  /** Never arrived: expected minus received, per RFC 3550 A.3, summed over SSRCs. */
  lost: number;
  /** Arrived after its place on the timeline had played out (or beyond the buffer). */
  late: number;
  duplicate: number;
  /** Arrived after a packet with a higher sequence number. */
  reordered: number;
  /** Times the anchor was reset because the timestamp could not be trusted. */
  resync: number;
  ssrcChange: number;
}

export type { FrameInfo };

/** Where pull/flush put the frames they emit (the session's adapter). */
export type FrameCallback = (frame: Int16Array, info: FrameInfo) => void;

export type PushOutcome = 'placed' | 'duplicate' | 'late' | 'event';

/** Sequence numbers older than this are not tracked for duplicates (they are late anyway). */
const SEEN_WINDOW = 1024;
/** RFC 3550 A.1: a jump of more than this many sequence numbers is a restart, not loss. */
const MAX_DROPOUT = 3000;
/** RFC 3550 A.1: a packet this far behind is from before a restart, not a reorder. */
const MAX_MISORDER = 100;

interface Stream {
  ssrc: number;
  /** Anchor: RTP timestamp `tsBase` sits at timeline position `posBase`. */
  tsBase: number;
  posBase: number;
  /** Extended (wrap-counted) sequence numbers of the current segment. */
  baseExt: number;
  maxExt: number;
  uniqueReceived: number;
  seen: Float64Array;
}

export class JitterBuffer {
  readonly frameSamples: number;
  readonly delaySamples: number;
  readonly #leadLimit: number;
  readonly #maxBuffered: number;
  readonly #stats: JitterStats = {
    received: 0,
    lost: 0,
    late: 0,
    duplicate: 0,
    reordered: 0,
    resync: 0,
    ssrcChange: 0,
  };
  /** Lost packets of finished segments; the current one is computed on demand. */
  #lostBefore = 0;
  #stream: Stream | undefined;
  /** Next timeline position to play out. */
  #played = 0;
  /** End of the newest audio placed (exclusive). */
  #lastEnd = 0;
  /** Pending frames by frame index; absent means silence. */
  #frames = new Map<number, Int16Array>();
  /** Whether any audio has been placed yet. */
  #hasAudio = false;
  /**
   * How much earlier than `frame end + delay` frames are emitted (0..frame):
   * a frame less the stream's baseline, the smallest arrival offset into its
   * frame since the stream was anchored.
   */
  #lead = 0;
  #pool: Int16Array[] = [];
  readonly #silence: Int16Array;

  constructor(options: JitterBufferOptions = {}) {
    this.frameSamples = options.frameSamples ?? FRAME_SAMPLES;
    this.delaySamples = options.delaySamples ?? Math.round((this.frameSamples * JITTER_DELAY_MS) / FRAME_MS);
    if (!Number.isInteger(this.delaySamples) || this.delaySamples < 0)
      throw new RangeError('delaySamples must be a whole number of samples, 0 or more');
    this.#leadLimit = options.leadLimitSamples ?? this.delaySamples + 2 * this.frameSamples;
    this.#maxBuffered = options.maxBufferedSamples ?? 2 * 8000;
    this.#silence = new Int16Array(this.frameSamples);
  }

  /** Timeline position up to which frames have been emitted. */
  get played(): number {
    return this.#played;
  }

  /** The wall-clock position (`now`) at which the next frame is due. */
  get nextFrameDue(): number {
    return this.#played + this.frameSamples + this.delaySamples - this.#lead;
  }

  get stats(): Readonly<JitterStats> {
    const s = this.#stream;
    this.#stats.lost = this.#lostBefore + (s ? Math.max(0, s.maxExt - s.baseExt + 1 - s.uniqueReceived) : 0);
    return this.#stats;
  }

  /**
   * Accepts one valid RTP packet from the latched source. `now` is the arrival
   * position on the timeline (samples since the call was answered). `decode`
   * maps a payload byte to a linear sample; pass `undefined` for packets that
   * share the stream's sequence space but carry no audio (RFC 4733 events):
   * they count for loss and duplicate detection and leave silence in place.
   */
  push(packet: AudioPacket, now: number, decode: Int16Array | undefined): PushOutcome {
    this.#stats.received++;
    let stream = this.#stream;
    let newest: boolean;
    let ext: number;
    /** The stream was just anchored at this packet's arrival; its position needs no checks. */
    let fresh = false;
    if (!stream || stream.ssrc !== packet.ssrc) {
      if (stream) {
        this.#stats.ssrcChange++;
        this.#endSegment(stream);
      }
      stream = this.#startStream(packet, now);
      ext = stream.maxExt;
      newest = true;
      fresh = true;
    } else {
      const prev = stream.maxExt;
      const diff = seqDiff(packet.sequenceNumber, prev);
      if (diff > MAX_DROPOUT || diff < -MAX_MISORDER) {
        // The sender restarted its sequence (RFC 3550 A.1): a new segment, not 3000 lost packets.
        this.#endSegment(stream);
        stream.baseExt = stream.maxExt = packet.sequenceNumber + 65536;
        stream.uniqueReceived = 0;
        stream.seen.fill(-1);
        ext = stream.maxExt;
        newest = true;
      } else {
        ext = prev + diff;
        const slot = ext % SEEN_WINDOW;
        if (stream.seen[slot] === ext) {
          this.#stats.duplicate++;
          return 'duplicate';
        }
        newest = diff > 0;
        if (!newest) this.#stats.reordered++;
        if (ext < stream.baseExt) stream.baseExt = ext;
      }
      if (newest) stream.maxExt = ext;
    }
    stream.seen[ext % SEEN_WINDOW] = ext;
    stream.uniqueReceived++;
    // RFC 4733 2.5.1.2: an event's timestamp is the START of the event and repeats
    // in every packet of it, so it says nothing about where "now" is on the
    // timeline: events never move the anchor (they would shift the audio after them).
    if (!decode) return 'event';

    const n = packet.payload.length;
    let position = stream.posBase + tsDiff(packet.timestamp, stream.tsBase);
    if (newest) {
      const overlapsOrPast = position < this.#lastEnd || position + n <= this.#played;
      const jumpsAhead = position > this.#lastEnd && position - now > this.#leadLimit;
      if (!fresh && (overlapsOrPast || jumpsAhead)) {
        position = this.#anchorPosition(now);
        this.#stats.resync++;
      }
      // Re-anchor on every in-order packet so timestamp differences stay small.
      stream.posBase = position;
      stream.tsBase = packet.timestamp;
    }
    if (position + n <= this.#played || position + n - now > this.#maxBuffered) {
      this.#stats.late++;
      return 'late';
    }
    this.#place(position, packet.payload, decode);
    this.#hasAudio = true;
    if (newest) {
      this.#lastEnd = Math.max(this.#lastEnd, position + n);
      // Arrived earlier in its frame than the baseline so far: play out that much sooner.
      const lag = now - position;
      if (lag >= 0) this.#lead = Math.max(this.#lead, this.frameSamples - lag);
    }
    return 'placed';
  }

  /** Emits every frame whose time has come (`delay` behind `now`). */
  pull(now: number, sink: FrameCallback): number {
    let emitted = 0;
    const f = this.frameSamples;
    while (this.#played + f + this.delaySamples - this.#lead <= now) {
      this.#emit(f, sink);
      emitted++;
    }
    return emitted;
  }

  /**
   * Ends the timeline: emits everything up to `end` or the end of the newest
   * audio, whichever is later, so no received audio is lost. The last frame
   * may be short.
   */
  flush(end: number, sink: FrameCallback): void {
    const stop = Math.max(Math.floor(end), this.#lastEnd);
    while (this.#played < stop) this.#emit(Math.min(this.frameSamples, stop - this.#played), sink);
  }

  #emit(length: number, sink: FrameCallback): void {
    const index = Math.floor(this.#played / this.frameSamples);
    const frame = this.#frames.get(index);
    const position = this.#played;
    if (frame) {
      this.#frames.delete(index);
      sink(length === frame.length ? frame : frame.subarray(0, length), { position, audio: true });
      this.#pool.push(frame);
    } else {
      sink(length === this.#silence.length ? this.#silence : this.#silence.subarray(0, length), {
        position,
        audio: false,
      });
    }
    this.#played += length;
  }

  #startStream(packet: AudioPacket, now: number): Stream {
    const ext = packet.sequenceNumber + 65536; // headroom so a reordered predecessor stays positive
    const stream: Stream = {
      ssrc: packet.ssrc,
      tsBase: packet.timestamp,
      posBase: this.#anchorPosition(now),
      baseExt: ext,
      maxExt: ext,
      uniqueReceived: 0,
      seen: new Float64Array(SEEN_WINDOW).fill(-1),
    };
    this.#stream = stream;
    return stream;
  }

  #endSegment(stream: Stream): void {
    this.#lostBefore += Math.max(0, stream.maxExt - stream.baseExt + 1 - stream.uniqueReceived);
  }

  /**
   * Where a stream whose timestamps give no usable position starts: at its
   * arrival time (frame-aligned), or straight after the newest audio when that
   * is still queued and close, so a change of source leaves neither a gap nor
   * an overlap. Never in the past, never over queued audio.
   */
  #anchorPosition(now: number): number {
    const f = this.frameSamples;
    let target = Math.floor(now / f) * f;
    // A new stream close behind earlier audio continues right after it (no gap,
    // no shift); before any audio there is nothing to continue from.
    if (this.#hasAudio && this.#lastEnd >= this.#played && target < this.#lastEnd + this.delaySamples + f)
      target = this.#lastEnd;
    const position = Math.max(target, this.#played, this.#lastEnd);
    // The stream's packets arrive `now - position` after their place on the timeline begins.
    this.#lead = Math.min(f, Math.max(0, f - (now - position)));
    return position;
  }

  #place(position: number, payload: Uint8Array, decode: Int16Array): void {
    const f = this.frameSamples;
    let i = 0;
    // A reordered packet straddling the playout point keeps only its unplayed part.
    if (position < this.#played) i = this.#played - position;
    const n = payload.length;
    while (i < n) {
      const pos = position + i;
      const index = Math.floor(pos / f);
      const offset = pos - index * f;
      let frame = this.#frames.get(index);
      if (!frame) {
        frame = this.#pool.pop()?.fill(0) ?? new Int16Array(f);
        this.#frames.set(index, frame);
      }
      const count = Math.min(f - offset, n - i);
      for (let k = 0; k < count; k++) frame[offset + k] = decode[payload[i + k]!]!;
      i += count;
    }
  }
}
