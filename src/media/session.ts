/**
 * One call's media: the thin adapter around {@link ReceivePath} that owns the
 * call's RTP socket and its tick (one timer of the process's MediaScheduler,
 * shared by every call).
 *
 * - Priming: one RFC 4733 telephone-event packet towards the SDP's media
 *   address, because RingCentral's media server (like most behind NAT) sends
 *   RTP to wherever the device's first packet came from (latching). Then
 *   silence (or talk-back audio) at the negotiated ptime, unless told not to.
 * - Receiving: datagrams go through ReceivePath (parse, latch, jitter buffer,
 *   DTMF); the tick pulls two outputs out of it: 'frame' events, the
 *   recording's timeline, 1 s behind the wall clock so late packets still land
 *   at their place (for the WAV), and 'liveFrame' events, one every 20 ms at
 *   an adaptive delay (for the engine pipe, the media stream and listeners).
 *   The call's fan-out hands them on; media never imports sinks.
 * - The recording's timeline is the call's wall clock from t0 (the answer) to
 *   stop(), on the monotonic clock (performance.now): every send and pull
 *   time is computed from t0, never accumulated, so nothing drifts.
 */
import type dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { describeError, ErrorCodes, SoftphoneError } from '../errors.js';
import type { NegotiatedMedia } from '../sdp/negotiate.js';
import type { SampleRate } from './codec.js';
import type { DtmfDigit } from './dtmf.js';
import type { DtmfSendOptions } from './dtmf-sender.js';
import {
  FRAME_MS,
  LIVE_TARGET_INITIAL_MS,
  LIVE_TARGET_MAX_MS,
  LIVE_TARGET_MIN_MS,
  RECORDING_DELAY_MS,
} from './frame.js';
import type { FrameInfo } from './frame-sink.js';
import type { LiveStats } from './jitter-buffer.js';
import { opusEncoderOptions } from './opus.js';
import {
  type Endpoint,
  type LatchInfo,
  type ReceiveMedia,
  ReceivePath,
  type ReceiveStats,
} from './receive-path.js';
import type { MediaSocket } from './rtp-transport.js';
import { type MediaScheduler, type MediaTimer, mediaScheduler } from './scheduler.js';
import { type OutboundSource, type SendMedia, SendPath } from './send-path.js';

export type { LatchInfo, OutboundSource };

export interface MediaSessionOptions {
  /** Bound UDP socket for this call (from RtpPortPool); closed by stop(). */
  socket: MediaSocket;
  negotiated: NegotiatedMedia;
  /**
   * The rate of the recording and of every frame out, fixed for the call (a
   * WAV cannot change rate): default the negotiated working rate. A codec
   * that decodes at another rate is resampled (G.711 in a 16 kHz call).
   */
  sampleRate?: SampleRate;
  /** performance.now() when the call was answered: position 0 of the recording. */
  t0: number;
  /** Send RTP silence after priming (keeps NAT bindings and media servers happy). Default true. */
  sendSilence?: boolean;
  /** Runs the tick; default the process's (one timer for every call). */
  scheduler?: MediaScheduler;
  /** Audio to send instead of silence. */
  outbound?: OutboundSource;
  /** After a stall longer than this (ms), sending skips ahead instead of sending the backlog. Default 100. */
  maxCatchUpMs?: number;
  /** Emit 'inactive' after this long without valid RTP from the latched source; 0 = never. Default 0. */
  inactivityTimeoutMs?: number;
  /**
   * How late a packet may arrive and still be placed by its timestamp; the
   * recording ('frame') runs this far behind the wall clock. Default
   * RECORDING_DELAY_MS (1 s).
   */
  recordingDelayMs?: number;
  /** Bounds and start of the live stream's adaptive delay. Default 40, 300 and 40 ms (frame.ts). */
  liveDelayMs?: { min?: number; max?: number; initial?: number };
  /**
   * How far a timestamp (after a DTX gap, say) may place audio ahead of the
   * wall clock before it is distrusted and the stream re-placed at arrival.
   * The recording follows the wall clock, so a gap never adds more silence
   * than the time that passed. Default 100 ms.
   */
  maxGapMs?: number;
}

export interface DtmfEvent {
  digit: DtmfDigit;
  /** Milliseconds since t0, when the first packet of the press arrived. */
  atMs: number;
}

export interface MediaStats extends ReceiveStats, LiveStats {
  /** 20 ms frames of the recording emitted as 'frame' events (the last may be short). */
  framesWritten: number;
  /** Length of the recorded timeline. */
  durationMs: number;
  packetsSent: number;
  sendErrors: number;
  /** RMS of all received audio, in dBFS (MIN_DBFS when none). */
  rmsDbfs: number;
  /** Largest absolute received sample, in dBFS (MIN_DBFS when none). */
  peakDbfs: number;
}

export interface MediaSessionEvents {
  /**
   * A frame of the recording (the WAV), in timeline order, every position of
   * the call once, about 1 s behind the wall clock. The array is reused after
   * the call: copy it to keep it.
   */
  frame: [frame: Int16Array, info: FrameInfo];
  /**
   * A frame of the live stream (engine pipe, media stream, listeners): one
   * every 20 ms of wall clock at an adaptive delay. The same audio as the
   * recording, except silence while audio is overdue, pauses shortened or
   * lengthened to track the delay, and packets too late for live but not for
   * the WAV (see JitterBuffer). Reused array: copy it to keep it.
   */
  liveFrame: [frame: Int16Array, info: FrameInfo];
  /** One per key press (RFC 4733). */
  dtmf: [event: DtmfEvent];
  /** A key we send: its first RFC 4733 packet just went out. */
  dtmfSent: [event: { digit: DtmfDigit }];
  /** Packets are now taken from this source only: every latch and re-latch, with why (LatchInfo). */
  latched: [source: LatchInfo];
  /** No valid RTP for inactivityTimeoutMs (hold time excluded); emitted once. */
  inactive: [info: { quietMs: number }];
  /** SINK_WRITE_FAILED, once; the call goes on. Only emitted when someone listens. */
  error: [error: SoftphoneError];
}

/** dBFS reported for digital silence (log of zero). */
export const MIN_DBFS = -100;
/** Level is the RMS of this many recent frames (100 ms). */
const LEVEL_FRAMES = 5;

export class MediaSession extends EventEmitter<MediaSessionEvents> {
  readonly t0: number;
  readonly #socket: MediaSocket;
  readonly #send: SendPath;
  readonly #inactivityMs: number;
  readonly #receive: ReceivePath;
  readonly #rate: SampleRate;
  #negotiated: NegotiatedMedia;

  #sendErrors = 0;
  /** Resolved destination; undefined until known or when the SDP gives none. */
  #target: Endpoint | undefined;
  #targetGeneration = 0;
  #primed = false;

  // Receiving.
  readonly #scheduler: MediaScheduler;
  readonly #timer: MediaTimer;
  #lastTickMs: number;
  /** The tick's time: what the pending playout plays out up to. */
  #playoutUntilMs = 0;
  #lastHeardMs: number;
  #quietMs = 0;
  #inactiveEmitted = false;
  #framesWritten = 0;
  #samplesWritten = 0;
  #sumSquares = 0;
  #audioSamples = 0;
  #peak = 0;
  readonly #recentEnergy = new Float64Array(LEVEL_FRAMES);
  readonly #recentCount = new Float64Array(LEVEL_FRAMES);
  #recentIndex = 0;
  #latched: Endpoint | undefined;
  #final: MediaStats | undefined;

  constructor(options: MediaSessionOptions) {
    super();
    this.t0 = options.t0;
    this.#socket = options.socket;
    this.#scheduler = options.scheduler ?? mediaScheduler;
    this.#timer = this.#scheduler.timer(this.#tick);
    this.#negotiated = { ...options.negotiated };
    this.#rate = options.sampleRate ?? this.#negotiated.sampleRate ?? 8000;
    this.#send = new SendPath({
      media: sendMedia(this.#negotiated),
      sendSilence: options.sendSilence ?? true,
      onSourceError: (err) => this.#sourceFailed(err),
      onDtmfSent: (digit) => this.emit('dtmfSent', { digit }),
      ...(options.maxCatchUpMs === undefined ? {} : { maxCatchUpMs: options.maxCatchUpMs }),
    });
    if (options.outbound) this.#send.addSource(options.outbound);
    this.#inactivityMs = Math.max(0, options.inactivityTimeoutMs ?? 0);
    const perMs = this.#rate / 1000;
    const frameSamples = FRAME_MS * perMs;
    const samples = (ms: number) => Math.round(Math.max(0, ms) * perMs);
    const live = options.liveDelayMs ?? {};
    this.#setTarget(this.#negotiated);
    this.#receive = new ReceivePath({
      media: receiveMedia(this.#negotiated),
      sampleRate: this.#rate,
      ...(this.#target ? { expected: this.#target } : {}),
      frameSamples,
      recordingDelaySamples: samples(options.recordingDelayMs ?? RECORDING_DELAY_MS),
      liveTargetMinSamples: samples(live.min ?? LIVE_TARGET_MIN_MS),
      liveTargetMaxSamples: samples(live.max ?? LIVE_TARGET_MAX_MS),
      liveTargetInitialSamples: samples(live.initial ?? LIVE_TARGET_INITIAL_MS),
      ...(options.maxGapMs === undefined ? {} : { leadLimitSamples: samples(options.maxGapMs) }),
      onDtmf: (digit, at) => this.emit('dtmf', { digit, atMs: at / perMs }),
    });
    const now = performance.now();
    this.#lastTickMs = now;
    this.#lastHeardMs = now;
    this.#socket.on('message', this.#onMessage);
    // Send failures are counted through the send callback; this only keeps
    // an asynchronous socket error from becoming an uncaught exception.
    this.#socket.on('error', this.#onSocketError);
    this.#arm();
  }

  get negotiated(): Readonly<NegotiatedMedia> {
    return this.#negotiated;
  }

  /** The rate of the recording and of the frames out. */
  get sampleRate(): SampleRate {
    return this.#rate;
  }

  /** The rate the encoder takes: sources given at it need no resampling. */
  get sendSampleRate(): SampleRate {
    return this.#send.sampleRate;
  }

  /** The remote source packets are taken from, once latched. */
  get latched(): Readonly<Endpoint> | undefined {
    return this.#receive.latched;
  }

  /** Local address and port of the RTP socket. */
  get localAddress(): Endpoint {
    const a = this.#socket.address();
    return { address: a.address, port: a.port };
  }

  get stopped(): boolean {
    return this.#final !== undefined;
  }

  /** Live statistics (final ones once stopped). */
  get stats(): MediaStats {
    if (this.#final) return { ...this.#final };
    return {
      ...this.#receive.stats,
      ...this.#receive.jitter.liveStats,
      framesWritten: this.#framesWritten,
      durationMs: (this.#samplesWritten / this.#rate) * 1000,
      packetsSent: this.#send.packetsSent,
      sendErrors: this.#sendErrors,
      rmsDbfs: dbfs(Math.sqrt(this.#sumSquares / Math.max(1, this.#audioSamples))),
      peakDbfs: dbfs(this.#peak),
    };
  }

  /** Our RTP source (SSRC), for RTCP. */
  get ssrc(): number {
    return this.#send.ssrc;
  }

  /** What we have sent so far, for RTCP sender reports (RFC 3550 6.4.1); undefined before we send. */
  get sending(): { packetCount: number; octetCount: number; rtpTimestamp: number } | undefined {
    if (this.#send.packetsSent === 0) return undefined;
    return {
      packetCount: this.#send.packetsSent,
      octetCount: this.#send.octetsSent,
      rtpTimestamp: this.#send.rtpTimestampAt(this.#nowMs()),
    };
  }

  /** RMS of the last 100 ms of the live stream, in dBFS (MIN_DBFS for silence): for a live status line. */
  get level(): number {
    let energy = 0;
    let count = 0;
    for (let i = 0; i < LEVEL_FRAMES; i++) {
      energy += this.#recentEnergy[i]!;
      count += this.#recentCount[i]!;
    }
    return count === 0 ? MIN_DBFS : dbfs(Math.sqrt(energy / count));
  }

  /**
   * Sends the priming packet (resolving a hostname in the SDP once), then
   * lets the tick send silence or talk-back audio. Rejects with
   * SDP_NOT_ACCEPTABLE when the media host cannot be resolved; the session
   * still records whatever arrives (it latches to the first source).
   */
  async prime(): Promise<void> {
    if (this.stopped || this.#primed) return;
    let failure: unknown;
    if (this.#target === undefined && needsLookup(this.#negotiated)) {
      try {
        await this.#resolve(this.#targetGeneration);
      } catch (err) {
        failure = err;
      }
    }
    if (this.stopped || this.#primed) return;
    this.#primed = true;
    // Even without a destination, whoever sends to us now is who we latch to.
    this.#receive.allowAnySource();
    this.#sendPrime();
    this.#arm();
    if (failure !== undefined) throw failure;
  }

  /**
   * A re-INVITE: new remote address/port (the latch may move to it), hold or
   * resume, codec or ptime. Recording continues on the same timeline.
   */
  update(negotiated: NegotiatedMedia): void {
    if (this.stopped) return;
    const before = this.#negotiated;
    const wasSending = this.#canSend();
    this.#negotiated = { ...negotiated };
    this.#send.update(sendMedia(negotiated), this.#nowMs());
    const moved =
      negotiated.remoteAddress !== before.remoteAddress || negotiated.remotePort !== before.remotePort;
    if (moved) {
      this.#targetGeneration++;
      this.#setTarget(negotiated);
      if (this.#target === undefined && needsLookup(negotiated)) {
        // Resolve in the background; sending pauses until then. Failure leaves us receive-only.
        this.#resolve(this.#targetGeneration).catch(() => {});
      }
    }
    this.#receive.update(receiveMedia(negotiated), this.#target);
    if (moved) this.#primeAgain();
    if (!wasSending && this.#canSend()) this.#send.skipTo(this.#nowMs());
    this.#arm();
  }

  /**
   * Ends the media: writes the jitter buffer's tail up to the wall clock now
   * (the recording's last second, then what the live stream has not played),
   * closes the socket (its port returns to the pool), clears the timer.
   * Idempotent; returns the final statistics.
   */
  stop(): MediaStats {
    if (this.#final) return { ...this.#final };
    this.#targetGeneration++;
    this.#timer.cancel();
    this.#socket.off('message', this.#onMessage);
    this.#send.close();
    this.#receive.flush(this.#nowSamples(), this.#onFrame, this.#onLiveFrame);
    this.#receive.close();
    try {
      this.#socket.close();
    } catch {
      // Already closed by someone else: nothing left to release.
    }
    const stats = this.stats;
    this.#final = stats;
    return { ...stats };
  }

  // --- receiving -----------------------------------------------------------

  readonly #onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    const outcome = this.#receive.receive(msg, rinfo.address, rinfo.port, this.#nowSamples());
    if (outcome === 'invalid' || outcome === 'foreign') return;
    this.#lastHeardMs = performance.now();
    const latched = this.#receive.latched;
    if (latched !== this.#latched) {
      this.#latched = latched;
      const info = this.#receive.latchInfo;
      if (latched && info) this.emit('latched', { ...info });
    }
  };

  readonly #onSocketError = (): void => {
    this.#sendErrors++;
  };

  /** Emits one recording frame (the call's fan-out gives it to the WAV). */
  readonly #onFrame = (frame: Int16Array, info: FrameInfo): void => {
    this.#framesWritten++;
    this.#samplesWritten += frame.length;
    if (info.audio) {
      let energy = 0;
      let peak = this.#peak;
      for (let i = 0; i < frame.length; i++) {
        const s = frame[i]!;
        energy += s * s;
        if (s > peak) peak = s;
        else if (-s > peak) peak = -s;
      }
      this.#peak = peak;
      this.#sumSquares += energy;
      this.#audioSamples += frame.length;
    }
    this.emit('frame', frame, info);
  };

  /** Emits one live frame (the call's fan-out gives it to the live sinks and listeners). */
  readonly #onLiveFrame = (frame: Int16Array, info: FrameInfo): void => {
    let energy = 0;
    if (info.audio) for (let i = 0; i < frame.length; i++) energy += frame[i]! * frame[i]!;
    this.#recentEnergy[this.#recentIndex] = energy;
    this.#recentCount[this.#recentIndex] = frame.length;
    this.#recentIndex = (this.#recentIndex + 1) % LEVEL_FRAMES;
    this.emit('liveFrame', frame, info);
  };

  // --- the tick --------------------------------------------------------------

  /** The call's one timer, re-armed to the next due time (send or playout). */
  #arm(): void {
    if (this.stopped) return;
    const perMs = this.#rate / 1000;
    const j = this.#receive.jitter;
    let due = this.t0 + Math.min(j.nextLiveDue, j.nextRecordingDue) / perMs;
    if (this.#canSend()) due = Math.min(due, this.t0 + this.#send.nextDueMs);
    this.#timer.arm(due);
  }

  readonly #tick = (): void => {
    if (this.stopped) return;
    const nowMs = performance.now();
    if (this.#canSend()) this.#send.due(nowMs - this.t0, this.#transmit);
    // Play out up to this moment, but only after the event loop's poll phase has
    // read every datagram that arrived by now. A stall before this tick (GC, a
    // busy callback) or between it and the playout (a slow callback in the same
    // poll phase, the process descheduled) then never makes on-time packets look
    // late and put a gap in the recording.
    this.#playoutUntilMs = nowMs;
    this.#scheduler.afterPoll(this.#playout);
  };

  readonly #playout = (): void => {
    if (this.stopped) return;
    const now = this.#nowSamplesAt(this.#playoutUntilMs);
    // The live stream first: the recording's frames are a second old, nobody waits for them.
    this.#receive.pullLive(now, this.#onLiveFrame);
    this.#receive.pullRecording(now, this.#onFrame);
    this.#checkInactivity(performance.now());
    this.#arm();
  };

  #checkInactivity(nowMs: number): void {
    const elapsed = nowMs - this.#lastTickMs;
    this.#lastTickMs = nowMs;
    if (this.#lastHeardMs > nowMs - elapsed) {
      // Heard something since the last tick: quiet time restarts at that packet.
      this.#quietMs = nowMs - this.#lastHeardMs;
    } else if (!this.#negotiated.onHold) {
      // Time on hold does not count: a held call is legitimately silent.
      this.#quietMs += elapsed;
    }
    if (this.#inactivityMs > 0 && !this.#inactiveEmitted && this.#quietMs >= this.#inactivityMs) {
      this.#inactiveEmitted = true;
      this.emit('inactive', { quietMs: Math.round(this.#quietMs) });
    }
  }

  #nowSamples(): number {
    return this.#nowSamplesAt(performance.now());
  }

  #nowSamplesAt(ms: number): number {
    return Math.max(0, Math.floor(((ms - this.t0) * this.#rate) / 1000));
  }

  // --- sending -------------------------------------------------------------

  /** RFC 3264 6.1: nothing to send while the remote holds, or when our direction excludes sending. */
  #canSend(): boolean {
    const n = this.#negotiated;
    return (
      this.#primed &&
      this.#target !== undefined &&
      (this.#send.sendsSilence || this.#send.hasContent) &&
      !n.onHold &&
      (n.direction === 'sendrecv' || n.direction === 'sendonly')
    );
  }

  /**
   * Plays a source into the call (mixed with any other): resolves when it has
   * no more audio. Talk-back streams are added with the constructor's `outbound`.
   */
  addSource(source: OutboundSource): void {
    if (this.stopped) return;
    const wasSending = this.#canSend();
    this.#send.addSource(source);
    if (!wasSending && this.#canSend()) this.#send.skipTo(this.#nowMs());
    this.#arm();
  }

  removeSource(source: OutboundSource): void {
    this.#send.removeSource(source);
  }

  /**
   * Sends DTMF as RFC 4733 events (see DtmfSender): resolves once the last
   * packet is out; rejects with SDP_NOT_ACCEPTABLE when no telephone-event
   * was negotiated (the caller may fall back to SIP INFO).
   */
  sendDtmf(digits: string, options: DtmfSendOptions = {}): Promise<void> {
    if (this.#negotiated.telephoneEventPt === undefined) {
      return Promise.reject(
        new SoftphoneError(ErrorCodes.SDP_NOT_ACCEPTABLE, 'the far end did not negotiate telephone-event'),
      );
    }
    return new Promise((resolve, reject) => {
      try {
        const wasSending = this.#canSend();
        this.#send.sendDtmf(digits, options, resolve);
        if (!wasSending && this.#canSend()) this.#send.skipTo(this.#nowMs());
        this.#arm();
      } catch (err) {
        reject(err);
      }
    });
  }

  readonly #transmit = (packet: Buffer): void => {
    const target = this.#target;
    if (target === undefined) return;
    try {
      this.#socket.send(packet, target.port, target.address, this.#onSent);
    } catch {
      // The socket was closed under us (ERR_SOCKET_DGRAM_NOT_RUNNING).
      this.#sendErrors++;
    }
  };

  /** One callback for every packet (not a closure each). */
  readonly #onSent = (err: Error | null): void => {
    if (err) this.#sendErrors++;
  };

  /** The user's source threw: reported once; it is skipped for that frame. */
  #sourceFailed(err: unknown): void {
    const error = new SoftphoneError(
      ErrorCodes.LISTENER_FAILED,
      `the talk-back source threw (sending silence for now): ${describeError(err)}`,
      { cause: err },
    );
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  #sendPrime(): void {
    if (this.#target === undefined) return;
    this.#transmit(this.#send.prime(this.#nowMs()));
  }

  #nowMs(): number {
    return performance.now() - this.t0;
  }

  /** Takes the SDP address as the destination when it is an IP; hostnames go through #resolve. */
  #setTarget(n: NegotiatedMedia): void {
    const usable = !isNullAddress(n.remoteAddress) && n.remotePort > 0 && net.isIP(n.remoteAddress) !== 0;
    this.#target = usable ? { address: n.remoteAddress, port: n.remotePort } : undefined;
  }

  /** dns.lookup of the SDP's hostname, once per host; stale answers (after update/stop) are dropped. */
  async #resolve(generation: number): Promise<void> {
    const n = this.#negotiated;
    const family = this.#socket.address().family === 'IPv6' ? 6 : 4;
    let address: string;
    try {
      ({ address } = await lookup(n.remoteAddress, { family }));
    } catch (err) {
      throw new SoftphoneError(
        ErrorCodes.SDP_NOT_ACCEPTABLE,
        `Cannot resolve the media host ${n.remoteAddress} from the SDP: ${describeError(err)}`,
        { cause: err, details: { host: n.remoteAddress } },
      );
    }
    if (generation !== this.#targetGeneration || this.stopped) return;
    this.#target = { address, port: n.remotePort };
    this.#receive.update(receiveMedia(n), this.#target);
    this.#primeAgain();
    this.#arm();
  }

  /**
   * A new destination after priming: when neither silence nor audio will go
   * there, prime it again so a latching media server learns where we are.
   */
  #primeAgain(): void {
    if (this.#primed && !this.#send.sendsSilence && this.#target !== undefined) this.#sendPrime();
  }
}

/**
 * What the send path needs: the far end's clock (RingCentral's OPUS/16000
 * runs at 16000), our encoder's rate (the negotiated working rate: the far
 * end said what it plays), and for Opus the far end's wishes (FEC, band, bitrate).
 */
function sendMedia(n: NegotiatedMedia): SendMedia {
  return {
    codec: n.codec,
    payloadType: n.payloadType,
    telephoneEventPt: n.telephoneEventPt,
    ptime: n.ptime,
    clockRate: n.clockRate,
    sampleRate: n.sampleRate,
    ...(n.codec === 'opus' && { encoder: opusEncoderOptions(n, n.sampleRate ?? 16000) }),
  };
}

function receiveMedia(n: NegotiatedMedia): ReceiveMedia {
  const media: ReceiveMedia = {
    codec: n.codec,
    payloadType: n.payloadType,
    clockRate: n.clockRate,
    ptime: n.ptime,
  };
  if (n.telephoneEventPt !== undefined) media.telephoneEventPt = n.telephoneEventPt;
  return media;
}

function needsLookup(n: NegotiatedMedia): boolean {
  return n.remotePort > 0 && !isNullAddress(n.remoteAddress) && net.isIP(n.remoteAddress) === 0;
}

/** RFC 3264 8.4: c=0.0.0.0 (or ::) means "do not send". */
function isNullAddress(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '';
}

function dbfs(amplitude: number): number {
  return amplitude <= 0 ? MIN_DBFS : Math.max(MIN_DBFS, 20 * Math.log10(amplitude / 32768));
}
