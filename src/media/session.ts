/**
 * One call's media: the thin adapter around {@link ReceivePath} that owns the
 * call's RTP socket and its single tick timer.
 *
 * - Priming: one RFC 4733 telephone-event packet towards the SDP's media
 *   address, because RingCentral's media server (like most behind NAT) sends
 *   RTP to wherever the device's first packet came from (latching). Then
 *   silence (or talk-back audio) at the negotiated ptime, unless told not to.
 * - Receiving: datagrams go through ReceivePath (parse, latch, jitter buffer,
 *   DTMF); one 20 ms tick pulls frames to the WAV and the 'frame' listeners.
 * - The recording's timeline is the call's wall clock from t0 (the answer) to
 *   stop(), on the monotonic clock (performance.now): every send and pull
 *   time is computed from t0, never accumulated, so nothing drifts.
 */
import { randomBytes } from 'node:crypto';
import type dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { describeError, ErrorCodes, SoftphoneError } from '../errors.js';
import { serializeRtp } from '../rtp/packet.js';
import type { NegotiatedMedia } from '../sdp/negotiate.js';
import type { WavWriter } from '../sinks/wav.js';
import { codecOf } from './codec.js';
import type { DtmfDigit } from './dtmf.js';
import { encodeTelephoneEvent } from './dtmf.js';
import { FRAME_MS, JITTER_DELAY_MS } from './frame.js';
import type { FrameInfo } from './jitter-buffer.js';
import { type Endpoint, type ReceiveMedia, ReceivePath, type ReceiveStats } from './receive-path.js';

/** Talk-back audio: 20 ms frames of 8 kHz PCM (160 samples); undefined when there is none right now. */
export interface OutboundSource {
  nextFrame(): Int16Array | undefined;
}

export interface MediaSessionOptions {
  /** Bound UDP socket for this call (from RtpPortPool); closed by stop(). */
  socket: dgram.Socket;
  negotiated: NegotiatedMedia;
  /** performance.now() when the call was answered: position 0 of the recording. */
  t0: number;
  /** Recording sink; closed by stop(). */
  wav?: WavWriter;
  /** Send RTP silence after priming (keeps NAT bindings and media servers happy). Default true. */
  sendSilence?: boolean;
  /** Audio to send instead of silence. */
  outbound?: OutboundSource;
  /** Emit 'inactive' after this long without valid RTP from the latched source; 0 = never. Default 0. */
  inactivityTimeoutMs?: number;
  /** Playout delay that absorbs reordering and jitter. Default JITTER_DELAY_MS (70 ms). */
  jitterDelayMs?: number;
  /**
   * How far a timestamp jump after a DTX gap may place audio ahead of the wall
   * clock before the timestamp is distrusted and the stream re-anchored at
   * arrival. The recording always follows the wall clock, so a gap never adds
   * more silence than the time that passed. Default: the jitter buffer's (delay + 40 ms).
   */
  maxGapMs?: number;
}

export interface DtmfEvent {
  digit: DtmfDigit;
  /** Milliseconds since t0, when the first packet of the press arrived. */
  atMs: number;
}

export interface MediaStats extends ReceiveStats {
  /** 20 ms frames delivered to the WAV and 'frame' listeners (the last may be short). */
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
   * A frame of the recording, in timeline order, emitted synchronously right
   * after the WAV got the same samples. The array is reused after the call:
   * copy it to keep it.
   */
  frame: [frame: Int16Array, info: FrameInfo];
  /** One per key press (RFC 4733). */
  dtmf: [event: DtmfEvent];
  /** Packets are now taken from this source only. */
  latched: [source: Endpoint];
  /** No valid RTP for inactivityTimeoutMs (hold time excluded); emitted once. */
  inactive: [info: { quietMs: number }];
  /** SINK_WRITE_FAILED, once; the call goes on. Only emitted when someone listens. */
  error: [error: SoftphoneError];
}

/** dBFS reported for digital silence (log of zero). */
export const MIN_DBFS = -100;
/** Level is the RMS of this many recent frames (100 ms). */
const LEVEL_FRAMES = 5;
/** After a stall longer than this, sending skips ahead instead of bursting the backlog. */
const MAX_CATCH_UP_MS = 100;
/** RFC 4733 priming event: digit 0, end bit, -10 dBm0, one 20 ms frame long. */
const PRIME_EVENT = { event: 0, end: true, volume: 10, duration: 160 };

export class MediaSession extends EventEmitter<MediaSessionEvents> {
  readonly t0: number;
  readonly #socket: dgram.Socket;
  readonly #wav: WavWriter | undefined;
  readonly #sendSilence: boolean;
  readonly #outbound: OutboundSource | undefined;
  readonly #inactivityMs: number;
  readonly #receive: ReceivePath;
  readonly #rate: number;
  #negotiated: NegotiatedMedia;

  // Sending (RFC 3550 5.1: random SSRC, initial sequence number and timestamp).
  readonly #ssrc = random32();
  readonly #seq0 = random32() & 0xffff;
  readonly #ts0 = random32();
  #packetsSent = 0;
  #sendErrors = 0;
  /** Resolved destination; undefined until known or when the SDP gives none. */
  #target: Endpoint | undefined;
  #targetGeneration = 0;
  #primed = false;
  /** Index of the next frame to send; frame n is due at t0 + n·ptime. */
  #sendIndex = 0;
  #marker = true;
  #ptime = FRAME_MS;
  #frameSamples = 160;
  #pcm = new Int16Array(160);
  #payload = new Uint8Array(160);
  #leftover: Int16Array | undefined;
  #outboundFailed = false;

  // Receiving.
  #timer: NodeJS.Timeout | undefined;
  #lastTickMs: number;
  /** The tick's time: what the pending playout plays out up to. */
  #playoutUntilMs = 0;
  #lastHeardMs: number;
  #quietMs = 0;
  #inactiveEmitted = false;
  #errorReported = false;
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
    this.#negotiated = { ...options.negotiated };
    this.#wav = options.wav;
    this.#sendSilence = options.sendSilence ?? true;
    this.#outbound = options.outbound;
    this.#inactivityMs = Math.max(0, options.inactivityTimeoutMs ?? 0);
    this.#rate = this.#negotiated.clockRate;
    const perMs = this.#rate / 1000;
    const frameSamples = FRAME_MS * perMs;
    const delayMs = options.jitterDelayMs ?? JITTER_DELAY_MS;
    this.#setTarget(this.#negotiated);
    this.#receive = new ReceivePath({
      media: receiveMedia(this.#negotiated),
      ...(this.#target ? { expected: this.#target } : {}),
      frameSamples,
      delaySamples: Math.round(Math.max(0, delayMs) * perMs),
      ...(options.maxGapMs === undefined ? {} : { leadLimitSamples: Math.round(options.maxGapMs * perMs) }),
      onDtmf: (digit, at) => this.emit('dtmf', { digit, atMs: at / perMs }),
    });
    this.#setPtime(this.#negotiated.ptime);
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
      framesWritten: this.#framesWritten,
      durationMs: (this.#samplesWritten / this.#rate) * 1000,
      packetsSent: this.#packetsSent,
      sendErrors: this.#sendErrors,
      rmsDbfs: dbfs(Math.sqrt(this.#sumSquares / Math.max(1, this.#audioSamples))),
      peakDbfs: dbfs(this.#peak),
    };
  }

  /** RMS of the last 100 ms of the recording, in dBFS (MIN_DBFS for silence): for a live status line. */
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
    if (negotiated.ptime !== before.ptime) this.#setPtime(negotiated.ptime);
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
    if (!wasSending && this.#canSend()) this.#skipToNow();
    this.#arm();
  }

  /**
   * Ends the media: writes the jitter buffer's tail up to the wall clock now,
   * closes the WAV and the socket (its port returns to the pool), clears the
   * timer. Idempotent; returns the final statistics.
   */
  stop(): MediaStats {
    if (this.#final) return { ...this.#final };
    this.#targetGeneration++;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#socket.off('message', this.#onMessage);
    this.#receive.flush(this.#nowSamples(), this.#onFrame);
    this.#wav?.close();
    this.#reportSinkError();
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
      if (latched) this.emit('latched', { ...latched });
    }
  };

  readonly #onSocketError = (): void => {
    this.#sendErrors++;
  };

  /** Delivers one frame: WAV first, then listeners, so both see the same samples in the same order. */
  readonly #onFrame = (frame: Int16Array, info: FrameInfo): void => {
    const wav = this.#wav;
    if (wav !== undefined && !wav.closed) wav.write(frame);
    this.#framesWritten++;
    this.#samplesWritten += frame.length;
    let energy = 0;
    if (info.audio) {
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
    this.#recentEnergy[this.#recentIndex] = energy;
    this.#recentCount[this.#recentIndex] = frame.length;
    this.#recentIndex = (this.#recentIndex + 1) % LEVEL_FRAMES;
    this.emit('frame', frame, info);
  };

  #reportSinkError(): void {
    const error = this.#wav?.error;
    if (error === undefined || this.#errorReported) return;
    this.#errorReported = true;
    // Emitting 'error' with no listener would throw; the failure stays visible in wav.error.
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  // --- the tick --------------------------------------------------------------

  /** One timer for the call, re-armed to the next due time (send or playout). */
  #arm(): void {
    if (this.stopped) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const perMs = this.#rate / 1000;
    const j = this.#receive.jitter;
    let due = this.t0 + j.nextFrameDue / perMs;
    if (this.#canSend()) due = Math.min(due, this.t0 + this.#sendIndex * this.#ptime);
    // Timers may fire a little early; the tick then finds nothing due and re-arms.
    const delay = Math.max(0, Math.ceil(due - performance.now()));
    this.#timer = setTimeout(this.#tick, delay);
  }

  readonly #tick = (): void => {
    this.#timer = undefined;
    if (this.stopped) return;
    const nowMs = performance.now();
    if (this.#canSend()) this.#sendDue(nowMs);
    // Play out up to this moment, but only after the event loop's poll phase has
    // read every datagram that arrived by now. A stall before this tick (GC, a
    // busy callback) or between it and the playout (a slow callback in the same
    // poll phase, the process descheduled) then never makes on-time packets look
    // late and put a gap in the recording.
    this.#playoutUntilMs = nowMs;
    setImmediate(this.#playout);
  };

  readonly #playout = (): void => {
    if (this.stopped) return;
    this.#receive.pull(this.#nowSamplesAt(this.#playoutUntilMs), this.#onFrame);
    this.#reportSinkError();
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
      (this.#sendSilence || this.#outbound !== undefined) &&
      !n.onHold &&
      (n.direction === 'sendrecv' || n.direction === 'sendonly')
    );
  }

  #sendDue(nowMs: number): void {
    if (nowMs - (this.t0 + this.#sendIndex * this.#ptime) > MAX_CATCH_UP_MS) this.#skipToNow();
    while (this.t0 + this.#sendIndex * this.#ptime <= nowMs) {
      this.#sendFrame();
      this.#sendIndex++;
    }
  }

  /** Next frame is the one due now; the timestamp jump tells the receiver time passed. */
  #skipToNow(): void {
    const index = Math.ceil((performance.now() - this.t0) / this.#ptime);
    if (index > this.#sendIndex) this.#sendIndex = index;
    this.#marker = true;
  }

  #sendFrame(): void {
    const n = this.#frameSamples;
    let haveAudio = false;
    if (this.#outbound) haveAudio = this.#fillOutbound();
    if (!haveAudio && !this.#sendSilence) return;
    const codec = codecOf(this.#negotiated.codec);
    if (haveAudio) codec.encodeFrame(this.#pcm, this.#payload);
    else this.#payload.fill(codec.silence);
    this.#send(
      this.#negotiated.payloadType,
      this.#timestampOf(this.#sendIndex),
      this.#payload.subarray(0, n),
    );
  }

  /** Fills #pcm with one ptime of talk-back audio; false when the source had none. */
  #fillOutbound(): boolean {
    const source = this.#outbound!;
    const pcm = this.#pcm;
    let filled = 0;
    while (filled < pcm.length) {
      let chunk = this.#leftover;
      this.#leftover = undefined;
      chunk ??= this.#nextOutboundFrame(source);
      if (chunk === undefined) break;
      const take = Math.min(chunk.length, pcm.length - filled);
      pcm.set(chunk.subarray(0, take), filled);
      filled += take;
      // A ptime that is not 20 ms splits frames; keep a copy, the source may reuse its array.
      if (take < chunk.length) this.#leftover = chunk.slice(take);
    }
    if (filled === 0) return false;
    pcm.fill(0, filled);
    return true;
  }

  /** The user's source is user code: a throw means "no audio now" (reported once), never a dead tick. */
  #nextOutboundFrame(source: OutboundSource): Int16Array | undefined {
    try {
      return source.nextFrame();
    } catch (err) {
      if (!this.#outboundFailed) {
        this.#outboundFailed = true;
        const error = new SoftphoneError(
          ErrorCodes.LISTENER_FAILED,
          `the talk-back source threw (sending silence for now): ${describeError(err)}`,
          { cause: err },
        );
        if (this.listenerCount('error') > 0) this.emit('error', error);
      }
      return undefined;
    }
  }

  #sendPrime(): void {
    if (this.#target === undefined) return;
    // The event and the first frame after it must not share a timestamp.
    const index = Math.max(this.#sendIndex, Math.floor((performance.now() - this.t0) / this.#ptime));
    const n = this.#negotiated;
    // RFC 4733 2.5.1.1 / RFC 3550 5.1: M bit on the first packet of an event or talkspurt.
    this.#marker = true;
    if (n.telephoneEventPt === undefined) {
      // No telephone-event was negotiated, so no event may be sent (the offer's
      // 101 may even be another codec): one frame of silence in the codec primes as well.
      this.#payload.fill(codecOf(n.codec).silence);
      this.#send(n.payloadType, this.#timestampOf(index), this.#payload.subarray(0, this.#frameSamples));
    } else {
      this.#send(n.telephoneEventPt, this.#timestampOf(index), encodeTelephoneEvent(PRIME_EVENT));
    }
    this.#sendIndex = index + 1;
  }

  #send(payloadType: number, timestamp: number, payload: Uint8Array): void {
    const target = this.#target;
    if (target === undefined) return;
    const packet = serializeRtp({
      marker: this.#marker,
      payloadType,
      sequenceNumber: (this.#seq0 + this.#packetsSent) & 0xffff,
      timestamp,
      ssrc: this.#ssrc,
      payload,
    });
    this.#marker = false;
    this.#packetsSent++;
    try {
      this.#socket.send(packet, target.port, target.address, (err) => {
        if (err) this.#sendErrors++;
      });
    } catch {
      // The socket was closed under us (ERR_SOCKET_DGRAM_NOT_RUNNING).
      this.#sendErrors++;
    }
  }

  #timestampOf(index: number): number {
    return (this.#ts0 + index * this.#frameSamples) >>> 0;
  }

  #setPtime(ptime: number): void {
    // Sanity bounds for a remote-supplied value (RFC 4566 a=ptime).
    const ms = Number.isFinite(ptime) ? Math.min(120, Math.max(10, Math.round(ptime))) : FRAME_MS;
    if (this.#primed) {
      // Keep the timestamp running at the clock rate across the change of frame size.
      const elapsed = this.#sendIndex * this.#ptime;
      this.#ptime = ms;
      this.#sendIndex = Math.ceil(elapsed / ms);
    } else {
      this.#ptime = ms;
    }
    this.#frameSamples = (ms * this.#rate) / 1000;
    this.#pcm = new Int16Array(this.#frameSamples);
    this.#payload = new Uint8Array(this.#frameSamples);
    this.#leftover = undefined;
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
    if (this.#primed && !this.#sendSilence && this.#target !== undefined) this.#sendPrime();
  }
}

function receiveMedia(n: NegotiatedMedia): ReceiveMedia {
  return n.telephoneEventPt === undefined
    ? { codec: n.codec, payloadType: n.payloadType }
    : { codec: n.codec, payloadType: n.payloadType, telephoneEventPt: n.telephoneEventPt };
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

function random32(): number {
  return randomBytes(4).readUInt32BE(0);
}
