/**
 * One call's received audio as a timeline, with two outputs: a pure
 * processor (no clock, no I/O). RTP packets go in with the wall-clock
 * position at which they arrived; 20 ms PCM frames come out twice, in
 * timeline order each time:
 *
 * - the recording (`pullRecording`): every position of the timeline once,
 *   `recordingDelay` (1 s) behind the wall clock, so a packet that arrives up
 *   to that late still lands exactly where its timestamp puts it. This is
 *   the WAV.
 * - the live stream (`pullLive`): one frame every 20 ms of wall clock, about
 *   an adaptive target delay behind the packets (see LiveDelay). It may
 *   differ from the recording in three ways only: while audio is overdue and
 *   nothing after it has arrived (a delay spike) it plays silence and waits
 *   for it (concealment: the live delay grows); it gives that delay back by
 *   leaving out quiet frames, never speech; and a packet that misses its
 *   live slot while later ones were in time is silence live (but in the WAV).
 *
 * The timeline is the call's wall clock, in samples since the answer, so the
 * recording is as long as the call. Packets are placed by RTP timestamp
 * relative to an anchor (RFC 3550 5.1: the media clock); wall-clock arrival
 * decides only what the media clock cannot:
 *
 * - where a stream starts (its first packet's arrival, on the 20 ms grid, in
 *   the phase the previous stream's packets arrived in), and an earlier start
 *   when later packets prove the first one was held up (anchor shift);
 * - a timestamp jump that disagrees with arrival (backwards over its own
 *   audio, or ahead of the wall clock by more than `leadLimit`): a sender
 *   restart, or a hostile timestamp, placed by arrival (`resync`);
 * - a packet more than the bound late whose place the recording has already
 *   written (a spike beyond the bound): placed by arrival (`resync`);
 * - an SSRC change (the new stream is placed by its arrival, never glued to
 *   the end of the old one).
 *
 * A DTX gap (a timestamp jump forward within the stream) is placed by its
 * timestamp as long as that agrees with arrival (within the bound behind,
 * `leadLimit` ahead), so silence suppression leaves silence of the right length.
 *
 * Streams (SSRCs). The call's first stream, and the first after the latch
 * moved, is taken at once. Any other new SSRC is on probation (RFC 3550 A.1):
 * it counts only after 3 packets in sequence, spread over at least 30 ms of
 * arrivals, with no in-order packet of the current stream among them; until
 * then its packets wait (and are placed at their arrival if it wins). So one
 * forged packet, a burst, or a second stream interleaved with the established
 * one never reaches the timeline. If the established stream comes back after
 * a stream took over, it takes over again at once. A sequence jump within a
 * stream (A.1 MAX_DROPOUT) counts only once the next packet follows it.
 *
 * Positions are plain numbers of samples (exact in float64 for ~35 000 years of
 * audio at 8 kHz); RTP timestamps are only ever compared as signed 32-bit
 * differences against a recent anchor, so their wrap is harmless (RFC 3550 5.1).
 */
import { seqDiff, tsDiff } from '../rtp/seq.js';
import {
  FRAME_MS,
  FRAME_SAMPLES,
  LIVE_TARGET_INITIAL_MS,
  LIVE_TARGET_MAX_MS,
  LIVE_TARGET_MIN_MS,
  RECORDING_DELAY_MS,
} from './frame.js';
import type { FrameInfo } from './frame-sink.js';
import { LiveDelay } from './live-delay.js';

export interface JitterBufferOptions {
  /** Samples per output frame (20 ms at 8 kHz). */
  frameSamples?: number;
  /** How late a packet may arrive and still be placed by its timestamp; the recording runs this far behind. Default 1 s. */
  recordingDelaySamples?: number;
  /** Bounds and start of the live stream's adaptive target delay. Defaults 40, 300 and 60 ms. */
  liveTargetMinSamples?: number;
  liveTargetMaxSamples?: number;
  liveTargetInitialSamples?: number;
  /**
   * How far ahead of the wall clock a timestamp jump (not loss) may place a
   * packet before the timestamp is distrusted: it bounds the silence a
   * hostile timestamp can add. Default 100 ms.
   */
  leadLimitSamples?: number;
  /** Beyond this live delay, live drops even audio to catch up (it never gets there from spikes alone). Default 3 s. */
  maxLiveDelaySamples?: number;
  /** Accepted event packets (RFC 4733, comfort noise: pushed without a decode table), in order, once their stream counts. */
  onEvent?: (packet: AudioPacket, now: number) => void;
  /**
   * Timeline samples per RTP timestamp unit: the working rate over the RTP
   * clock rate (1 for G.711 recorded at 8 kHz, 1/3 for opus/48000 recorded
   * at 16 kHz, 2 for G.711 recorded at 16 kHz). Default 1.
   */
  timestampRatio?: number;
}

export interface AudioPacket {
  ssrc: number;
  sequenceNumber: number;
  timestamp: number;
  /** Encoded payload, one byte per sample (G.711), decoded by the table push() is given. */
  payload: Uint8Array;
  /**
   * The packet's audio already decoded at the working rate (a stateful codec:
   * Opus, or G.711 resampled; see DecodeStage): placed as is, and `payload`
   * is not read. It may start before the packet's own audio (the repair of a
   * lost packet before it), so `timestamp` is where this PCM starts.
   */
  pcm?: Int16Array;
  /** Carried along for onEvent; the buffer itself never looks at it. */
  payloadType?: number;
}

export interface JitterStats {
  /** Valid packets of accepted streams, audio and telephone-event alike. */
  received: number;
  /** Never arrived: expected minus received, per RFC 3550 A.3, summed over SSRCs. */
  lost: number;
  /** Could not be placed: later than the bound (their place already written), or ahead of the wall clock. */
  late: number;
  duplicate: number;
  /** Arrived after a packet with a higher sequence number. */
  reordered: number;
  /** Times a stream was re-placed by arrival because its timestamps could not be trusted. */
  resync: number;
  /** Times the accepted SSRC changed (a new stream won probation, or the established one came back). */
  ssrcChange: number;
  /** Packets of streams that never counted: a new SSRC or a sequence jump not followed in sequence (RFC 3550 A.1), or one that lost to the established stream. */
  probationDropped: number;
}

export interface LiveStats {
  /** Frames of the live stream: one per 20 ms of wall clock. */
  liveFrames: number;
  /** Silent frames the live stream played while audio was overdue, before that audio (a spike): not in the WAV. */
  liveConcealed: number;
  /** Quiet frames of the WAV left out of the live stream to give back delay. */
  liveSkipped: number;
  /** Silent frames added in pauses to raise the live delay to a higher target: not in the WAV. */
  liveStretched: number;
  /** Packets that came after their live slot (silence live) but in time for the WAV. */
  liveLate: number;
  /** Audio frames dropped from the live stream because its delay passed the hard limit (3 s). */
  liveOverrun: number;
  /** Live delay of the audio frames (emitted after the best-placed packets' arrival), median and 99th percentile; 0 before any. */
  liveDelayP50Ms: number;
  liveDelayP99Ms: number;
  /** The adaptive target delay now. */
  liveTargetMs: number;
}

export type { FrameInfo };

/** Where pull/flush put the frames they emit (the session's adapter). */
export type FrameCallback = (frame: Int16Array, info: FrameInfo) => void;

export type PushOutcome = 'placed' | 'duplicate' | 'late' | 'event' | 'pending';

/** Sequence numbers older than this are not tracked for duplicates (they are late anyway). */
const SEEN_WINDOW = 1024;
/** RFC 3550 A.1: a jump of more than this many sequence numbers is a restart, not loss. */
const MAX_DROPOUT = 3000;
/** RFC 3550 A.1: a packet this far behind is from before a restart, not a reorder. */
const MAX_MISORDER = 100;
/**
 * RFC 3550 A.1 MIN_SEQUENTIAL is 2; one more, because a forger's burst costs
 * nothing: a new SSRC counts after this many packets in sequence ...
 */
const PROBATION_PACKETS = 3;
/** ... whose arrivals span at least this (a 20 ms stream interleaved with it always lands inside). */
const PROBATION_SPAN_MS = 30;
/** A new SSRC that has not proved itself by this many packets is a flood: it starts over. */
const PROBATION_MAX_PACKETS = 16;
/** A stream with this many packets is established: when displaced it may come back. */
const ESTABLISHED_PACKETS = 25;
/** How long a displaced established stream may come back (a long pause in silence suppression). */
const DISPLACED_TTL_MS = 60_000;
/** A quiet frame: RMS at most −48 dBFS (~130 of 32768), well below speech, above the G.711 idle noise. */
const QUIET_MEAN_SQUARE = 130 * 130;
/** The live delay histogram: 1 ms bins up to 1 s, then 10 ms bins up to 5 s (6 KB a call). */
const FINE_MS = 1000;
const COARSE_MS = 10;
const LIVE_HISTOGRAM_MS = 5000;
const LIVE_BINS = FINE_MS + (LIVE_HISTOGRAM_MS - FINE_MS) / COARSE_MS + 1;

interface Stream {
  ssrc: number;
  /** Anchor: RTP timestamp `tsBase` sits at timeline position `posBase` (the newest in-order audio). */
  tsBase: number;
  posBase: number;
  /** Extended (wrap-counted) sequence numbers of the current segment. */
  baseExt: number;
  maxExt: number;
  uniqueReceived: number;
  seen: Float64Array;
  /** Where the current run of placements began (an anchor by arrival), and what before it is not ours. */
  start: number;
  floor: number;
  /** End of the stream's newest audio (exclusive); before any audio, its anchor. */
  end: number;
  /** Timeline position of its newest packet's arrival. */
  heardAt: number;
  /** A sequence jump waiting for the packet that confirms it (RFC 3550 A.1 bad_seq). */
  jump: Held | undefined;
}

interface Held {
  packet: AudioPacket;
  now: number;
  decode: Int16Array | undefined;
}

interface Candidate {
  ssrc: number;
  nextSeq: number;
  firstAt: number;
  packets: Held[];
}

export class JitterBuffer {
  readonly frameSamples: number;
  readonly recordingDelaySamples: number;
  readonly #leadLimit: number;
  readonly #maxLiveDelay: number;
  readonly #perMs: number;
  #timestampRatio: number;
  readonly #onEvent: ((packet: AudioPacket, now: number) => void) | undefined;
  readonly #stats: JitterStats = {
    received: 0,
    lost: 0,
    late: 0,
    duplicate: 0,
    reordered: 0,
    resync: 0,
    ssrcChange: 0,
    probationDropped: 0,
  };
  /** Lost packets of finished segments; the current ones are computed on demand. */
  #lostBefore = 0;
  #stream: Stream | undefined;
  /** The established stream a probation winner displaced: it may come back. */
  #displaced: Stream | undefined;
  #candidate: Candidate | undefined;
  /** The next new SSRC is taken at once (the call's first, or the first from a newly latched source). */
  #trustNext = true;
  /** ... and may overwrite what the old source left ahead of its arrival (the old source was the wrong one). */
  #overwriteNext = false;
  /** End of the newest audio placed (exclusive). */
  #lastEnd = 0;
  /** Arrival of the newest in-order audio packet. */
  #lastNewestAt = Number.NEGATIVE_INFINITY;
  /** Pending frames by frame index; absent means silence. Freed once both outputs have passed them. */
  #frames = new Map<number, Int16Array>();
  #pool: Int16Array[] = [];
  readonly #silence: Int16Array;
  readonly #delay: LiveDelay;

  // Recording output.
  /** Next timeline position the recording emits. */
  #recorded = 0;

  // Live output.
  /** Next timeline position the live stream plays (frame-aligned). */
  #live = 0;
  /** Wall-clock time of the next live frame: one every frame, whatever it holds. */
  #liveSlot: number;
  /** Silence played while the frame at #live was overdue, not yet matched to a gap or committed as concealment. */
  #holds = 0;
  /** The last frame the live stream played or skipped was quiet (a pause, not the end of a word). */
  #prevQuiet = false;
  #playedAudio = false;
  readonly #liveCounts: Omit<LiveStats, 'liveDelayP50Ms' | 'liveDelayP99Ms' | 'liveTargetMs'> = {
    liveFrames: 0,
    liveConcealed: 0,
    liveSkipped: 0,
    liveStretched: 0,
    liveLate: 0,
    liveOverrun: 0,
  };
  readonly #liveDelays = new Uint32Array(LIVE_BINS);
  #liveDelayCount = 0;

  constructor(options: JitterBufferOptions = {}) {
    this.frameSamples = options.frameSamples ?? FRAME_SAMPLES;
    const f = this.frameSamples;
    if (!Number.isInteger(f) || f < 1) throw new RangeError('frameSamples must be a whole number, 1 or more');
    this.#perMs = f / FRAME_MS;
    const ms = (v: number) => Math.round(v * this.#perMs);
    this.recordingDelaySamples = options.recordingDelaySamples ?? ms(RECORDING_DELAY_MS);
    if (!Number.isInteger(this.recordingDelaySamples) || this.recordingDelaySamples < 0)
      throw new RangeError('recordingDelaySamples must be a whole number of samples, 0 or more');
    this.#leadLimit = options.leadLimitSamples ?? ms(100);
    this.#maxLiveDelay = options.maxLiveDelaySamples ?? ms(3000);
    this.#onEvent = options.onEvent;
    this.#timestampRatio = ratioOf(options.timestampRatio);
    const min = options.liveTargetMinSamples ?? ms(LIVE_TARGET_MIN_MS);
    const max = options.liveTargetMaxSamples ?? ms(LIVE_TARGET_MAX_MS);
    const initial =
      options.liveTargetInitialSamples ?? Math.min(max, Math.max(min, ms(LIVE_TARGET_INITIAL_MS)));
    this.#delay = new LiveDelay({
      samplesPerMs: this.#perMs,
      minSamples: min,
      maxSamples: max,
      initialSamples: initial,
    });
    this.#liveSlot = f + this.#delay.target;
    this.#silence = new Int16Array(f);
  }

  /** Timeline position up to which the recording has been emitted. */
  get recorded(): number {
    return this.#recorded;
  }

  /** Timeline position of the next frame the live stream plays. */
  get live(): number {
    return this.#live;
  }

  /** The wall-clock position (`now`) at which the next recording frame is due. */
  get nextRecordingDue(): number {
    return this.#recorded + this.frameSamples + this.recordingDelaySamples;
  }

  /** The wall-clock position at which the next live frame is due. */
  get nextLiveDue(): number {
    return this.#liveSlot;
  }

  /** A re-INVITE changed the codec: RTP timestamps now map to the timeline at this ratio (see the option). */
  setTimestampRatio(ratio: number): void {
    this.#timestampRatio = ratioOf(ratio);
  }

  /** The live stream's target delay now (samples after the best-placed packets). */
  get liveTarget(): number {
    return this.#delay.target;
  }

  get stats(): Readonly<JitterStats> {
    this.#stats.lost = this.#lostBefore + this.#lostIn(this.#stream) + this.#lostIn(this.#displaced);
    return this.#stats;
  }

  get liveStats(): LiveStats {
    return {
      ...this.#liveCounts,
      liveDelayP50Ms: this.#liveDelayQuantile(0.5),
      liveDelayP99Ms: this.#liveDelayQuantile(0.99),
      liveTargetMs: Math.round(this.#delay.target / this.#perMs),
    };
  }

  /**
   * The source changed (the latch moved): the next SSRC is taken at once,
   * and nothing of the old source's streams can come back.
   */
  newSource(): void {
    this.#trustNext = true;
    this.#overwriteNext = this.#stream !== undefined;
    this.#dropCandidate();
    if (this.#displaced) {
      this.#endSegment(this.#displaced);
      this.#displaced = undefined;
    }
  }

  /**
   * Accepts one valid RTP packet from the latched source. `now` is the arrival
   * position on the timeline (samples since the call was answered). `decode`
   * maps a payload byte to a linear sample; pass `undefined` for packets that
   * share the stream's sequence space but carry no audio (RFC 4733 events,
   * comfort noise): they count for loss and duplicate detection, leave
   * silence in place, and go to `onEvent` once their stream counts.
   */
  push(packet: AudioPacket, now: number, decode: Int16Array | undefined): PushOutcome {
    const stream = this.#stream;
    if (stream !== undefined && packet.ssrc === stream.ssrc)
      return this.#pushOwn(stream, packet, now, decode);
    const displaced = this.#displaced;
    if (displaced !== undefined && packet.ssrc === displaced.ssrc) {
      const diff = seqDiff(packet.sequenceNumber, displaced.maxExt);
      if (diff > 0 && diff <= MAX_DROPOUT && now - displaced.heardAt <= DISPLACED_TTL_MS * this.#perMs) {
        // The established stream is back: the one that displaced it loses (keep the established one).
        this.#dropStream(this.#stream);
        this.#stream = displaced;
        this.#displaced = undefined;
        this.#dropCandidate();
        this.#stats.ssrcChange++;
        return this.#pushOwn(displaced, packet, now, decode);
      }
    }
    if (stream === undefined || this.#trustNext) {
      this.#trustNext = false;
      if (stream) {
        this.#stats.ssrcChange++;
        this.#dropStream(stream);
      }
      this.#dropCandidate();
      return this.#pushOwn(this.#open(packet, now), packet, now, decode);
    }
    return this.#probation(packet, now, decode);
  }

  /** Emits every recording frame whose time has come (`recordingDelay` behind `now`). */
  pullRecording(now: number, sink: FrameCallback): number {
    let emitted = 0;
    const f = this.frameSamples;
    while (this.#recorded + f + this.recordingDelaySamples <= now) {
      this.#emitRecording(f, sink);
      emitted++;
    }
    return emitted;
  }

  /** Emits one live frame per frame of wall clock up to `now` (see the live rules in the header). */
  pullLive(now: number, sink: FrameCallback): number {
    let emitted = 0;
    while (this.#liveSlot <= now) {
      this.#liveStep(now, sink);
      this.#liveSlot += this.frameSamples;
      emitted++;
    }
    return emitted;
  }

  /**
   * Ends the timeline: the recording gets everything up to `end` or the end
   * of the newest audio, whichever is later (the last frame may be short);
   * the live stream gets every frame it has not played up to there at once
   * (silence it already stood in with is not repeated), so no received audio
   * is lost on either.
   */
  flush(end: number, recording: FrameCallback, live?: FrameCallback): void {
    const stop = Math.max(Math.floor(end), this.#lastEnd);
    while (this.#recorded < stop)
      this.#emitRecording(Math.min(this.frameSamples, stop - this.#recorded), recording);
    if (!live) return;
    const f = this.frameSamples;
    while (this.#live < stop) {
      const index = Math.floor(this.#live / f);
      const frame = this.#frames.get(index);
      if (frame === undefined && this.#holds > 0) {
        this.#holds--;
        this.#live += f;
        continue;
      }
      this.#emitLive(index, frame, Math.min(f, stop - this.#live), live, end);
      this.#live += f;
    }
  }

  // --- placement -------------------------------------------------------------

  #pushOwn(stream: Stream, packet: AudioPacket, now: number, decode: Int16Array | undefined): PushOutcome {
    const prev = stream.maxExt;
    const diff = seqDiff(packet.sequenceNumber, prev);
    if (diff > MAX_DROPOUT || diff < -MAX_MISORDER) {
      // RFC 3550 A.1: a big jump is a restart only if the next packet follows it;
      // until then it waits (one forged packet does not move the stream).
      const held = stream.jump;
      if (held === undefined || seqDiff(packet.sequenceNumber, held.packet.sequenceNumber) !== 1) {
        if (held) this.#stats.probationDropped++;
        stream.jump = { packet: copy(packet), now, decode };
        return 'pending';
      }
      stream.jump = undefined;
      this.#endSegment(stream);
      stream.baseExt = stream.maxExt = held.packet.sequenceNumber + 65536;
      stream.uniqueReceived = 0;
      stream.seen.fill(-1);
      this.#place(stream, held.packet, held.now, held.decode, stream.maxExt, true);
      return this.#pushOwn(stream, packet, now, decode);
    }
    if (stream.jump) {
      // The stream went on where it was: the jump was a stray (or forged) packet.
      stream.jump = undefined;
      this.#stats.probationDropped++;
    }
    const ext = prev + diff;
    const slot = ext % SEEN_WINDOW;
    if (stream.seen[slot] === ext) {
      this.#stats.received++;
      this.#stats.duplicate++;
      return 'duplicate';
    }
    const newest = diff > 0;
    if (!newest && stream.uniqueReceived > 0) this.#stats.reordered++;
    if (ext < stream.baseExt) stream.baseExt = ext;
    if (newest) {
      stream.maxExt = ext;
      // An in-order packet of the current stream: any rival that started meanwhile is interleaved with it.
      if (this.#candidate) this.#dropCandidate();
    }
    return this.#place(stream, packet, now, decode, ext, newest);
  }

  /** Records the packet in its stream's sequence space and puts its audio on the timeline. */
  #place(
    stream: Stream,
    packet: AudioPacket,
    now: number,
    decode: Int16Array | undefined,
    ext: number,
    newest: boolean,
  ): PushOutcome {
    this.#stats.received++;
    stream.seen[ext % SEEN_WINDOW] = ext;
    stream.uniqueReceived++;
    if (newest) stream.heardAt = now;
    // RFC 4733 2.5.1.2: an event's timestamp is the START of the event and repeats
    // in every packet of it, so it says nothing about where "now" is on the
    // timeline: events never move the anchor (they would shift the audio after them).
    const pcm = packet.pcm;
    if (!decode && !pcm) {
      this.#onEvent?.(packet, now);
      return 'event';
    }
    const f = this.frameSamples;
    const n = pcm ? pcm.length : packet.payload.length;
    const r = this.#timestampRatio;
    let position =
      stream.posBase +
      (r === 1
        ? tsDiff(packet.timestamp, stream.tsBase)
        : Math.round(tsDiff(packet.timestamp, stream.tsBase) * r));
    if (newest) {
      const gap = position - stream.end;
      // Arrived before its place began (by more than a little jitter), close
      // behind the stream's newest audio: the packet that anchored the stream
      // was held up (a spike at its start, a burst), so the anchor is late.
      // Move the stream earlier while the recording has not reached it.
      if (now - position < -(f >> 2) && gap <= this.#leadLimit)
        position -= this.#shiftEarlier(stream, position - now);
      const backwards = position < stream.end;
      const beyondBound = position + n <= this.#recorded;
      // A forward jump (not loss) to beyond the wall clock: a restart, or a hostile timestamp.
      const jumpsAhead = gap > this.#leadLimit && position - now > this.#leadLimit;
      if (backwards || beyondBound || jumpsAhead) {
        position = this.#arrivalPosition(now);
        stream.start = position;
        stream.floor = Math.max(this.#lastEnd, this.#recorded);
        this.#stats.resync++;
      }
      // Re-anchor on every in-order packet so timestamp differences stay small.
      stream.posBase = position;
      stream.tsBase = packet.timestamp;
    } else if (position < stream.start) {
      // A reordered packet from before the stream's first one: fine while nothing else is there.
      if (position < stream.floor) {
        this.#stats.late++;
        return 'late';
      }
      stream.start = position;
    }
    // Audio may run ahead of the wall clock (a burst after a spike beyond the
    // bound, a fast or hostile sender) by at most the bound: the file can
    // never grow by more than that.
    if (position + n <= this.#recorded || position - now > this.recordingDelaySamples) {
      this.#stats.late++;
      return 'late';
    }
    if (position + n <= stream.floor) {
      // Entirely over the audio of the stream before (a handover's overlap): that one keeps it.
      this.#stats.late++;
      return 'late';
    }
    this.#write(position, Math.max(stream.floor, this.#recorded), pcm ?? packet.payload, decode);
    if (position < this.#live) this.#liveCounts.liveLate++;
    if (newest) {
      stream.end = position + n;
      if (stream.end > this.#lastEnd) this.#lastEnd = stream.end;
    }
    // Packets that come in together with the one before them (a burst after a
    // spike) are one late event, not many: only the first counts as jitter.
    const burst = newest && now - this.#lastNewestAt < this.#perMs;
    if (newest) this.#lastNewestAt = now;
    this.#delay.observe(now - position, now, !burst);
    return 'placed';
  }

  /**
   * A stream that starts now (the call's first, or a new SSRC that won),
   * placed at its first packet's arrival. Where that overlaps the end of the
   * old stream by a frame or two (a media server handing over, both sending
   * for a moment), the old stream keeps its audio and the new one's start
   * is left out (below its `floor`); only when the old stream ran further
   * ahead (after a spike beyond the bound) does the new one start after it.
   */
  #open(packet: AudioPacket, now: number): Stream {
    const f = this.frameSamples;
    const overwrite = this.#overwriteNext;
    this.#overwriteNext = false;
    // Another source's packets say nothing about this one's phase.
    const arrival = this.#arrivalPosition(now, false, !overwrite);
    const position = !overwrite && this.#lastEnd - arrival > 2 * f ? this.#lastEnd : arrival;
    const ext = packet.sequenceNumber + 65536; // headroom so a reordered predecessor stays positive
    const stream: Stream = {
      ssrc: packet.ssrc,
      tsBase: packet.timestamp,
      posBase: position,
      baseExt: ext,
      maxExt: ext - 1,
      uniqueReceived: 0,
      seen: new Float64Array(SEEN_WINDOW).fill(-1),
      start: position,
      // A new source's stream owns the timeline from its arrival on; a new SSRC of the same source yields to the old one's audio.
      floor: overwrite ? this.#recorded : Math.max(this.#lastEnd, this.#recorded),
      end: position,
      heardAt: now,
      jump: undefined,
    };
    this.#stream = stream;
    return stream;
  }

  /**
   * Where a packet whose timestamp gives no usable position goes: at its
   * arrival, on the 20 ms grid in the phase the established packets arrive in
   * (their baseline lag), so a new stream from the same sender lands in its
   * slot even when its first packet is a little late. Never before what the
   * recording has written, and (unless `overlap`) never over audio already placed.
   */
  #arrivalPosition(now: number, overlap = true, inPhase = true): number {
    const f = this.frameSamples;
    const phase = inPhase ? ((this.#delay.baseline % f) + f) % f : 0;
    // An eighth of a frame of slack for a packet slightly earlier than the baseline.
    const slack = phase === 0 ? 0 : f >> 3;
    const target = Math.max(Math.floor((now - phase + slack) / f) * f, this.#recorded);
    return overlap ? Math.max(target, this.#lastEnd) : target;
  }

  /**
   * Moves the stream's current run `early` samples (rounded up to whole
   * frames, so the packet lands in the frame it arrived in) earlier, as far
   * as the recording and earlier audio allow; returns how far it moved. Frames move with it; the live stream keeps playing the
   * same audio in order (its delay grows by what it had already played of
   * the silence before).
   */
  #shiftEarlier(stream: Stream, early: number): number {
    const f = this.frameSamples;
    if (stream.start % f !== 0 || early > this.recordingDelaySamples) return 0;
    const lowest = Math.ceil(Math.max(stream.floor, this.#recorded) / f) * f;
    const k = Math.min(Math.ceil(early / f), Math.floor((stream.start - lowest) / f));
    if (k <= 0) return 0;
    const by = k * f;
    const first = stream.start / f;
    const last = Math.ceil(stream.end / f) - 1;
    for (let i = first; i <= last; i++) {
      const frame = this.#frames.get(i);
      if (frame === undefined) continue;
      this.#frames.delete(i);
      this.#frames.set(i - k, frame);
    }
    const newStart = stream.start - by;
    if (this.#live > newStart) this.#live -= Math.min(this.#live - newStart, by);
    stream.start -= by;
    stream.posBase -= by;
    if (this.#lastEnd === stream.end) this.#lastEnd -= by;
    stream.end -= by;
    this.#delay.shift(by);
    return by;
  }

  // --- probation ---------------------------------------------------------------

  /** A packet of an SSRC other than the current stream's (RFC 3550 A.1 probation). */
  #probation(packet: AudioPacket, now: number, decode: Int16Array | undefined): PushOutcome {
    let c = this.#candidate;
    if (c !== undefined && c.ssrc === packet.ssrc && (packet.sequenceNumber & 0xffff) === c.nextSeq) {
      if (c.packets.length >= PROBATION_MAX_PACKETS) {
        // Many packets in no time: a flood, not a stream. It starts over.
        this.#dropCandidate();
        c = undefined;
      }
    } else {
      this.#dropCandidate();
      c = undefined;
    }
    if (c === undefined) {
      c = { ssrc: packet.ssrc, nextSeq: 0, firstAt: now, packets: [] };
      this.#candidate = c;
    }
    c.packets.push({ packet: copy(packet), now, decode });
    c.nextSeq = (packet.sequenceNumber + 1) & 0xffff;
    if (c.packets.length < PROBATION_PACKETS || now - c.firstAt < PROBATION_SPAN_MS * this.#perMs)
      return 'pending';
    // It proved itself: the new stream starts where its first packet arrived.
    this.#candidate = undefined;
    const old = this.#stream!;
    this.#stats.ssrcChange++;
    if (old.uniqueReceived >= ESTABLISHED_PACKETS) {
      if (this.#displaced) this.#endSegment(this.#displaced);
      this.#displaced = old;
    } else {
      this.#dropStream(old);
    }
    const first = c.packets[0]!;
    const stream = this.#open(first.packet, first.now);
    let outcome: PushOutcome = 'pending';
    for (const held of c.packets) outcome = this.#pushOwn(stream, held.packet, held.now, held.decode);
    return outcome;
  }

  #dropCandidate(): void {
    const c = this.#candidate;
    if (c === undefined) return;
    this.#stats.probationDropped += c.packets.length;
    this.#candidate = undefined;
  }

  /** A stream that is finished for good: its loss joins the totals. */
  #dropStream(stream: Stream | undefined): void {
    if (stream === undefined) return;
    this.#endSegment(stream);
    if (stream.jump) {
      this.#stats.probationDropped++;
      stream.jump = undefined;
    }
  }

  #endSegment(stream: Stream): void {
    this.#lostBefore += this.#lostIn(stream);
    stream.baseExt = stream.maxExt + 1;
    stream.uniqueReceived = 0;
  }

  #lostIn(stream: Stream | undefined): number {
    return stream ? Math.max(0, stream.maxExt - stream.baseExt + 1 - stream.uniqueReceived) : 0;
  }

  /**
   * Puts the audio on the timeline from `position`, leaving out what lies
   * before `from`: a G.711 payload through its decode table, or PCM as is.
   */
  #write(
    position: number,
    from: number,
    payload: Uint8Array | Int16Array,
    decode: Int16Array | undefined,
  ): void {
    const f = this.frameSamples;
    let i = 0;
    // A packet straddling what the recording has written (or the stream before's end) keeps only the rest.
    if (position < from) i = from - position;
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
      if (decode === undefined) frame.set(payload.subarray(i, i + count), offset);
      else for (let k = 0; k < count; k++) frame[offset + k] = decode[payload[i + k]!]!;
      i += count;
    }
  }

  // --- outputs -----------------------------------------------------------------

  #emitRecording(length: number, sink: FrameCallback): void {
    const f = this.frameSamples;
    const index = Math.floor(this.#recorded / f);
    const frame = this.#frames.get(index);
    const position = this.#recorded;
    this.#recorded += length;
    if (frame) {
      sink(length === frame.length ? frame : frame.subarray(0, length), { position, audio: true });
      // The live stream may still need it (it can run behind the recording after a spike).
      if (this.#live >= position + f) this.#release(index, frame);
    } else {
      sink(length === f ? this.#silence : this.#silence.subarray(0, length), { position, audio: false });
    }
  }

  #release(index: number, frame: Int16Array): void {
    this.#frames.delete(index);
    this.#pool.push(frame);
  }

  /**
   * One live slot. The frame at the live position is played, unless:
   * nothing at or after it has arrived (overdue, or a pause) → silence, and
   * wait for it; the delay is over the target by more than half a frame and
   * the frame is a gap, or quiet after quiet → leave it out (and look at the
   * next); the delay is under the target by more than half a frame and the
   * frame is quiet after quiet → silence before it. "After quiet" keeps the
   * soft end of a word and the frame before an onset.
   */
  #liveStep(now: number, sink: FrameCallback): void {
    const f = this.frameSamples;
    const target = this.#delay.target;
    const baseline = this.#delay.baseline;
    for (;;) {
      const index = Math.floor(this.#live / f);
      const frame = this.#frames.get(index);
      const arrived = frame !== undefined || this.#lastEnd > this.#live;
      if (!arrived) {
        // Overdue, or nothing more is coming yet: stand in with silence and wait.
        this.#holds++;
        this.#emitInserted(sink, 'concealment');
        return;
      }
      if (this.#holds > 0) {
        if (frame === undefined) {
          // A gap the silence already played stood in for: the two cancel out.
          this.#holds--;
          this.#live += f;
          continue;
        }
        // The audio the silence waited for: that silence was concealment.
        this.#liveCounts.liveConcealed += this.#holds;
        this.#holds = 0;
      }
      const delay = this.#liveSlot - this.#live - baseline;
      if (delay - target >= f / 2 + 1) {
        if (frame === undefined) {
          // Silence before the first audio is no difference worth counting.
          if (this.#playedAudio) this.#liveCounts.liveSkipped++;
          this.#prevQuiet = true;
          this.#live += f;
          continue;
        }
        const quiet = isQuiet(frame);
        if (quiet && this.#prevQuiet) {
          this.#liveCounts.liveSkipped++;
          this.#live += f;
          continue;
        }
        if (delay > this.#maxLiveDelay) {
          this.#liveCounts.liveOverrun++;
          this.#prevQuiet = quiet;
          this.#live += f;
          continue;
        }
        this.#prevQuiet = quiet;
      } else if (target - delay >= f / 2 + 1) {
        const quiet = frame === undefined || isQuiet(frame);
        if (quiet && this.#prevQuiet) {
          // A pause: play a little more silence so later audio has more time to arrive.
          this.#liveCounts.liveStretched++;
          this.#emitInserted(sink, 'stretch');
          return;
        }
        this.#prevQuiet = quiet;
      } else {
        this.#prevQuiet = false;
      }
      this.#emitLive(index, frame, f, sink, now);
      this.#live += f;
      return;
    }
  }

  #emitInserted(sink: FrameCallback, filler: 'concealment' | 'stretch'): void {
    this.#liveCounts.liveFrames++;
    sink(this.#silence, { position: this.#live, audio: false, filler });
  }

  #emitLive(
    index: number,
    frame: Int16Array | undefined,
    length: number,
    sink: FrameCallback,
    now: number,
  ): void {
    const position = this.#live;
    const f = this.frameSamples;
    this.#liveCounts.liveFrames++;
    if (frame === undefined) {
      sink(length === f ? this.#silence : this.#silence.subarray(0, length), { position, audio: false });
      return;
    }
    this.#playedAudio = true;
    const delayMs = Math.max(0, Math.round((now - position - this.#delay.baseline) / this.#perMs));
    const bin = delayMs < FINE_MS ? delayMs : FINE_MS + Math.floor((delayMs - FINE_MS) / COARSE_MS);
    this.#liveDelays[Math.min(LIVE_BINS - 1, bin)]!++;
    this.#liveDelayCount++;
    sink(length === frame.length ? frame : frame.subarray(0, length), { position, audio: true });
    if (this.#recorded >= position + f) this.#release(index, frame);
  }

  #liveDelayQuantile(q: number): number {
    const n = this.#liveDelayCount;
    if (n === 0) return 0;
    const want = Math.ceil(n * q);
    let seen = 0;
    for (let bin = 0; bin < LIVE_BINS; bin++) {
      seen += this.#liveDelays[bin]!;
      if (seen >= want) return bin < FINE_MS ? bin : FINE_MS + (bin - FINE_MS) * COARSE_MS;
    }
    return LIVE_HISTOGRAM_MS;
  }
}

/** RMS at most −48 dBFS: a pause, not speech. Stops at the first loud stretch (speech is decided in a few samples). */
function isQuiet(frame: Int16Array): boolean {
  const limit = QUIET_MEAN_SQUARE * frame.length;
  let energy = 0;
  for (let i = 0; i < frame.length; i++) {
    energy += frame[i]! * frame[i]!;
    if (energy > limit) return false;
  }
  return true;
}

function ratioOf(ratio: number | undefined): number {
  const r = ratio ?? 1;
  if (!Number.isFinite(r) || r <= 0)
    throw new RangeError(`timestampRatio must be a positive number, got ${ratio}`);
  return r;
}

/** A packet kept for later: its payload may be a reused buffer (decoded PCM is always a fresh array). */
function copy(packet: AudioPacket): AudioPacket {
  return { ...packet, payload: packet.payload.slice() };
}
