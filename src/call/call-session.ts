/**
 * One call's owner, inbound or outbound: the INVITE dialog usage, the SDP
 * session, the RTP media, the recording and the live sinks, and the call's
 * timers. Everything that ends a call goes through one path: hangup (BYE or
 * CANCEL first, while the recording still runs) then finish: timers → media
 * (the jitter buffer's tail into the sinks) → the WAV closed → stats →
 * sidecar → live sinks closed → `ended`. The Call facade is what users see.
 */
import type dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import { describeError, ErrorCodes, isSoftphoneError, SoftphoneError } from '../errors.js';
import { loadAudioFile } from '../media/audio-file.js';
import {
  type CodecName,
  codecInfo,
  prepareCodecs,
  type SampleRate,
  TELEPHONE_EVENT_PT,
} from '../media/codec.js';
import { parseDtmfRelay } from '../media/dtmf.js';
import { DTMF_DEFAULTS, type DtmfSendOptions } from '../media/dtmf-sender.js';
import { FRAME_MS } from '../media/frame.js';
import type { RtpPortPool } from '../media/port-pool.js';
import { RtcpSession } from '../media/rtcp-session.js';
import { RtpTransport } from '../media/rtp-transport.js';
import { MediaSession, type MediaStats, MIN_DBFS, type OutboundSource } from '../media/session.js';
import { parseRtp } from '../rtp/packet.js';
import { ReceptionStatistics } from '../rtp/rtcp.js';
import { SrtpContext } from '../rtp/srtp.js';
import type { SrtpKeys, SrtpPolicy } from '../sdp/crypto.js';
import type { MediaDirection, NegotiatedMedia } from '../sdp/negotiate.js';
import { SdpSession } from '../sdp/session.js';
import { recordingPaths } from '../sinks/recording-path.js';
import {
  type CallSidecar,
  type DtmfRecord,
  type PacketStats,
  writeSidecar,
  writeSidecarAsync,
} from '../sinks/sidecar.js';
import { WavWriter } from '../sinks/wav.js';
import { WavSink } from '../sinks/wav-sink.js';
import { DigestSession } from '../sip/auth/digest.js';
import {
  type DialogHost,
  InviteSession,
  type OutgoingInit,
  type SessionDescriptionHandler,
  type Termination,
} from '../sip/dialog/invite-session.js';
import { warningHeader } from '../sip/message/build.js';
import type { IncomingRequest } from '../sip/transaction/server.js';
import type { SipConnection } from '../sip/transport/connection.js';
import {
  Call,
  type CallEndInfo,
  type CallEndReason,
  type CallOwner,
  type CallParty,
  type CallState,
  type PlaySource,
  type RingCentralIds,
  type TransferResult,
} from './call.js';
import { FrameFanOut } from './frame-fanout.js';

/** What every call of a Softphone shares (options resolved once, the UA, the port pool). */
export interface CallContext {
  readonly host: DialogHost;
  readonly ports: RtpPortPool;
  /** Address for our SDP; default: the local address of the call's connection. */
  readonly mediaIp: string | undefined;
  readonly recordDir: string | undefined;
  readonly recordPath:
    | ((call: { callId: string; from: CallParty; to: CallParty; startedAt: Date }) => string | undefined)
    | undefined;
  readonly mediaTimeoutMs: number;
  readonly maxCallDurationMs: number;
  readonly sendSilence: boolean;
  readonly sendCatchUpMs: number | undefined;
  /** The call's audio rate when forced (`--sample-rate`); else the negotiated one. */
  readonly sampleRate: SampleRate | undefined;
  /** Codec preference for our offers and answers. */
  readonly codecs: readonly CodecName[];
  /** Which offers we take and what we offer (SDES SRTP, RFC 4568). */
  readonly srtp: SrtpPolicy;
  readonly ackTimeoutMs: number | undefined;
  readonly outboundFor: ((call: Call) => OutboundSource | undefined) | undefined;
  /**
   * Places the call a REFER asks for (the owner opted in: followRefer), with
   * Referred-By; undefined: REFERs are declined (603).
   */
  readonly transferTo?: ((target: string, referredBy: string) => Promise<Call>) | undefined;
  /** Our address of record, for From and Referred-By: `<sip:user@domain>`. */
  readonly aor: string;
  /** More for the sidecar, asked for as it is written (serve: the DID, the bot, the intents). */
  readonly sidecarExtra?: (() => Pick<CallSidecar, 'serve'>) | undefined;
  readonly domain: string;
  /** Answers a digest challenge to one of our INVITEs (registrar realm only). */
  /** Live sinks for an answered call (engine pipe, media stream), attached after its listeners ran. */
  readonly liveSinks:
    | ((call: Call, port: { addSink: CallSession['addSink']; addStats: CallSession['addStats'] }) => void)
    | undefined;
  readonly answerChallenge: (
    response: Parameters<NonNullable<DialogHost['authorize']>>[0],
    request: Parameters<NonNullable<DialogHost['authorize']>>[1],
    digest: DigestSession,
  ) => ReturnType<NonNullable<DialogHost['authorize']>>;
  warn(message: string, callId?: string, code?: string): void;
}

/** What the registry hears from a session. */
export interface SessionEvents {
  incoming(call: Call): void;
  answered(call: Call): void;
  rejected(info: { callId: string; from: string; status: number; reason: string }): void;
  ended(call: Call, info: CallEndInfo): void;
  /** The dialog exists (register it for routing) or is gone (forget it). */
  dialog(session: CallSession, key: string | undefined): void;
  /** The session is over: drop it from every table. */
  removed(session: CallSession): void;
}

/**
 * How long a call we hang up keeps recording while its BYE awaits an answer:
 * a round trip is plenty for the far end's last packets; a silent peer must
 * not hold the recording (and shutdown) open for the whole BYE transaction.
 */
export const BYE_RECORDING_TAIL_MS = 2000;
/**
 * How long an answered call whose connection was lost waits for a new one to
 * re-home on (the UA reconnects at once, then backs off): its media and
 * recording run meanwhile.
 */
export const REHOME_TIMEOUT_MS = 32_000;
/** BYE transaction timeout for a hang-up (the result only decides a warning). */
const BYE_TIMEOUT_MS = 5000;

export class CallSession implements CallOwner {
  readonly call: Call;
  readonly callId: string;
  readonly #ctx: CallContext;
  readonly #events: SessionEvents;
  readonly #fanOut: FrameFanOut;
  readonly #dtmf: DtmfRecord[] = [];
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #statSources: (() => Record<string, number>)[] = [];
  readonly #rcIds: RingCentralIds = {};
  readonly #sdh: SessionDescriptionHandler;
  #invite: InviteSession | undefined;
  #sdp: SdpSession | undefined;
  /** The RTP socket behind SRTP and RTCP demultiplexing (the media session's socket). */
  #transport: RtpTransport | undefined;
  /** Our RTCP port when not multiplexed (RFC 3550 11), announced with a=rtcp. */
  #rtcpSocket: dgram.Socket | undefined;
  #rtcp: RtcpSession | undefined;
  #rtcpMux = false;
  /** The SRTP keys the current context was built from. */
  #srtpKeys: SrtpKeys | undefined;
  /** Our reception of the far end's stream, for our RTCP reports. */
  readonly #reception = new ReceptionStatistics();
  #rtcpStats: Record<string, number> = {};
  #media: MediaSession | undefined;
  #negotiated: NegotiatedMedia | undefined;
  /** Media negotiated by the last offer/answer, applied on the usage's 'media' event. */
  #pendingMedia: NegotiatedMedia | undefined;
  /** The rate of the call's audio, fixed when its media start (the WAV cannot change rate). */
  #sampleRate: SampleRate | undefined;
  /** The negotiated media the last `media` event reported. */
  #reported: NegotiatedMedia | undefined;
  #state: CallState = 'ringing';
  #answeredAt: number | undefined;
  /** The call's media events may go out (it was answered and announced). */
  #announced = false;
  /** 'incoming' was emitted: the user knows this call, so it must also hear how it ends. */
  #incomingEmitted = false;
  #recording = false;
  #recordingError: SoftphoneError | undefined;
  #closing: CallEndReason | undefined;
  #detached = false;
  #rehomeTimer: NodeJS.Timeout | undefined;
  #endInfo: CallEndInfo | undefined;
  #failure: { status?: number; reason?: string; code?: string } | undefined;
  #resolveDone: (info: CallEndInfo) => void = () => {};
  readonly done: Promise<CallEndInfo> = new Promise((resolve) => {
    this.#resolveDone = resolve;
  });
  readonly #wavPath: string | undefined;
  readonly #sidecarPath: string | undefined;

  private constructor(
    ctx: CallContext,
    events: SessionEvents,
    init: { callId: string; direction: 'inbound' | 'outbound'; from: CallParty; to: CallParty },
  ) {
    this.#ctx = ctx;
    this.#events = events;
    this.callId = init.callId;
    const startedAt = new Date();
    const paths = this.#recordingPaths(init.callId, init.from, init.to, startedAt, init.direction);
    this.#wavPath = paths?.wav;
    this.#sidecarPath = paths?.json;
    this.call = new Call(
      {
        callId: init.callId,
        direction: init.direction,
        from: init.from,
        to: init.to,
        startedAt,
        wavPath: paths?.wav,
        sidecarPath: paths?.json,
      },
      this,
    );
    // A listener of the user's that throws is reported (once per event) and counted, never fatal.
    this.call.setListenerErrorHandler(({ event, error }) =>
      ctx.warn(
        `a call '${event}' listener threw (further failures of it are only counted; the call goes on): ${describeError(error)}`,
        init.callId,
        ErrorCodes.LISTENER_FAILED,
      ),
    );
    this.#fanOut = new FrameFanOut(
      (err) => this.call.emit('sinkError', asSinkError(err)),
      (frame) => this.call.emit('frame', frame),
    );
    this.#sdh = {
      getOffer: () => this.#sdpSession().offer(),
      getSameOffer: () => this.#sdpSession().reoffer(),
      onOffer: (sdp) => {
        const result = this.#sdpSession().answer(sdp);
        if (!result.ok) {
          return {
            ok: false,
            status: result.status,
            reason: result.reason,
            warning: warningHeader(result.warnCode, result.warning),
          };
        }
        this.#pendingMedia = result.media;
        return { ok: true, answer: result.answer };
      },
      onAnswer: (sdp, info) => {
        const result = this.#sdpSession().accept(sdp, { keepOffer: info.early });
        if (!result.ok) return { ok: false, reason: result.reason };
        this.#pendingMedia = result.media;
        return { ok: true };
      },
      rollback: () => this.#sdp?.rollback(),
    };
  }

  // ── creating calls ────────────────────────────────────────────────────

  /**
   * An INVITE for us (admission already done by the registry). With
   * `autoAnswer` it is answered as soon as its RTP port is ready; otherwise
   * it rings (180) until call.accept()/reject() or `ringTimeoutMs` (480).
   */
  static inbound(
    ctx: CallContext,
    events: SessionEvents,
    incoming: IncomingRequest,
    options: { autoAnswer: boolean; ringTimeoutMs: number },
  ): CallSession {
    const { request } = incoming;
    const s = new CallSession(ctx, events, {
      callId: request.headers.callId() ?? '',
      direction: 'inbound',
      from: partyOf(request.headers.from(), request.headers.get('From')),
      to: partyOf(request.headers.to(), request.headers.get('To')),
    });
    s.#noteRcIds(request.headers.get('P-Rc-Api-Ids'));
    const invite = InviteSession.incoming(incoming, ctx.host, s.#sdh, {
      ...(ctx.ackTimeoutMs !== undefined && { ackTimeoutMs: ctx.ackTimeoutMs }),
    });
    s.#attach(invite);
    void s.#prepareInbound(incoming.flow, options).catch((err) => {
      ctx.warn(`INVITE handling failed: ${describeError(err)}`, s.callId);
      invite.reject(500, 'Server Internal Error');
    });
    return s;
  }

  /** Places a call to `target` (a SIP URI) over `connection`. Resolves once the INVITE is sent. */
  static async outbound(
    ctx: CallContext,
    events: SessionEvents,
    connection: SipConnection,
    init: {
      requestUri: string;
      to: string;
      callId: string;
      ringTimeoutMs: number;
      headers?: [string, string][];
    },
  ): Promise<CallSession> {
    const s = new CallSession(ctx, events, {
      callId: init.callId,
      direction: 'outbound',
      from: partyOf(undefined, ctx.aor, ctx.aor),
      to: partyOf(undefined, init.to, init.to),
    });
    await s.#prepareMedia(connection);
    const digest = new DigestSession();
    const host: DialogHost = {
      userAgent: ctx.host.userAgent,
      contact: (c) => ctx.host.contact(c),
      request: (r, c, t) => ctx.host.request(r, c, t),
      invite: (c, r, h) => ctx.host.invite(c, r, h),
      authorize: (response, request) => ctx.answerChallenge(response, request, digest),
    };
    const outgoing: OutgoingInit = {
      target: init.requestUri,
      from: ctx.aor,
      to: init.to,
      callId: init.callId,
      ...(init.headers && { headers: init.headers }),
    };
    const invite = InviteSession.outgoing(outgoing, connection, host, s.#sdh);
    s.#attach(invite);
    if (init.ringTimeoutMs > 0) {
      s.#timer(init.ringTimeoutMs, () => {
        if (s.#state === 'ringing' || s.#state === 'early') void s.#hangup('no-answer');
      });
    }
    return s;
  }

  // ── CallOwner (what the facade reads and asks) ─────────────────────────

  get state(): CallState {
    return this.#state;
  }

  get negotiated(): NegotiatedMedia | undefined {
    return this.#negotiated;
  }

  get localMedia(): { address: string; port: number } | undefined {
    return this.#sdp?.address;
  }

  get sampleRate(): SampleRate | undefined {
    return this.#sampleRate;
  }

  get answeredAt(): number | undefined {
    return this.#answeredAt;
  }

  get level(): number {
    return this.#media?.level ?? MIN_DBFS;
  }

  get endInfo(): CallEndInfo | undefined {
    return this.#endInfo;
  }

  /** The media's statistics so far with the live sinks' counters (the final ones once ended). */
  get stats(): CallEndInfo['stats'] {
    if (this.#endInfo) return this.#endInfo.stats;
    const media = this.#media?.stats;
    return media && ({ ...media, ...this.#fanOut.stats() } as CallEndInfo['stats']);
  }

  get rcIds(): RingCentralIds {
    return this.#rcIds;
  }

  /** The dialog's connection (for flow-loss handling). */
  get connection(): SipConnection | undefined {
    return this.#invite?.connection;
  }

  /** True while the dialog's connection is gone and a new one is awaited (re-homing). */
  get detached(): boolean {
    return this.#detached;
  }

  /**
   * The connection the dialog lived on was lost. An answered call keeps its
   * media and recording running and waits (REHOME_TIMEOUT_MS at most) for a
   * new connection to re-home on; anything else cannot go on without it.
   */
  detach(): void {
    if (this.#state === 'ended' || this.#detached) return;
    if (this.#state !== 'answered' || this.#invite?.state !== 'confirmed') {
      void this.close('flow-lost', { signal: false });
      return;
    }
    this.#detached = true;
    this.#rehomeTimer = setTimeout(() => {
      this.#rehomeTimer = undefined;
      if (!this.#detached) return;
      this.call.emit('rehomed', { outcome: 'failed', status: 408, reason: 'no new connection in time' });
      void this.close('flow-lost', { signal: false });
    }, REHOME_TIMEOUT_MS);
  }

  /**
   * Re-homes the dialog on `connection` (RFC 3261 14: a re-INVITE with the
   * unchanged SDP and our new Contact). A refusal (481, 408, timeout) ends the
   * call: no BYE can reach the far end any more.
   */
  async rehome(connection: SipConnection): Promise<void> {
    if (!this.#detached || this.#state === 'ended') return;
    this.#detached = false;
    if (this.#rehomeTimer) clearTimeout(this.#rehomeTimer);
    this.#rehomeTimer = undefined;
    const invite = this.#invite as InviteSession;
    const result = await invite.rehome(connection);
    this.call.emit('rehomed', {
      outcome: result.ok ? 'ok' : 'failed',
      status: result.status,
      reason: result.reason,
    });
    if (!result.ok && !this.call.ended) await this.close('flow-lost', { signal: false });
  }

  /** Counters a live sink adds to the call's final stats (engine, stream). */
  addStats(source: () => Record<string, number>): void {
    this.#statSources.push(source);
  }

  /** A live sink: every frame after the WAV; closed when the call ends. */
  addSink(sink: Parameters<FrameFanOut['add']>[0]): void {
    this.#fanOut.add(sink);
  }

  /** An in-dialog request the registry routed here. */
  receive(incoming: IncomingRequest): void {
    this.#invite?.receive(incoming);
  }

  /** A CANCEL for this call's INVITE (RFC 3261 9.2). */
  cancelReceived(incoming: IncomingRequest): void {
    if (this.#invite && this.call.direction === 'inbound') this.#invite.cancelReceived(incoming);
    else incoming.respond(481, 'Call/Transaction Does Not Exist');
  }

  hangup(): Promise<void> {
    return this.#hangup(this.#state === 'answered' ? 'local-hangup' : 'cancelled');
  }

  async play(source: PlaySource): Promise<void> {
    const media = this.#requireMedia('play audio');
    // A file is converted once, straight to the rate the encoder takes; PCM given is resampled as it plays.
    const { pcm, sampleRate } =
      typeof source === 'string'
        ? { pcm: await loadAudioFile(source, media.sendSampleRate), sampleRate: media.sendSampleRate }
        : source instanceof Int16Array
          ? { pcm: source, sampleRate: 8000 as const }
          : source;
    const frameSamples = (sampleRate * FRAME_MS) / 1000;
    if (this.#state === 'ended') return;
    await new Promise<void>((resolve) => {
      let offset = 0;
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        media.removeSource(player);
        resolve();
      };
      const player: OutboundSource = {
        sampleRate,
        nextFrame: () => {
          if (offset >= pcm.length) {
            // Asked again after the last frame: that frame has gone out.
            queueMicrotask(finish);
            return undefined;
          }
          const frame = pcm.subarray(offset, offset + frameSamples);
          offset += frameSamples;
          return frame;
        },
      };
      media.addSource(player);
      void this.done.then(finish);
    });
  }

  async sendDtmf(digits: string, options: DtmfSendOptions = {}): Promise<void> {
    const media = this.#requireMedia('send DTMF');
    if (media.negotiated.telephoneEventPt !== undefined) return media.sendDtmf(digits, options);
    // No telephone-event negotiated: SIP INFO application/dtmf-relay, one key at a time.
    const o = { ...DTMF_DEFAULTS, ...options };
    for (const ch of digits) {
      if (ch === ',') {
        await delay(o.pauseMs);
        continue;
      }
      await this.sendInfo(
        `Signal=${ch.toUpperCase()}\r\nDuration=${o.durationMs}\r\n`,
        'application/dtmf-relay',
      );
      this.call.emit('dtmfSent', { digit: ch.toUpperCase() as never });
      await delay(o.durationMs + o.gapMs);
    }
  }

  hold(): Promise<void> {
    return this.#changeDirection('sendonly', 'hold');
  }

  unhold(): Promise<void> {
    return this.#changeDirection('sendrecv', 'unhold');
  }

  async transfer(target: string): Promise<TransferResult> {
    const invite = this.#requireAnswered('transfer');
    const outcome = await invite.refer(target, this.#ctx.aor);
    const ok = outcome.status >= 200 && outcome.status < 300;
    // RFC 5589 6: once the transferee reports success, the transferor hangs up.
    if (ok) await this.#hangup('local-hangup');
    return { ok, status: outcome.status, reason: outcome.reason };
  }

  async sendInfo(body: unknown, contentType?: string): Promise<{ status: number; reason: string }> {
    const invite = this.#requireAnswered('send INFO');
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const type = contentType ?? (typeof body === 'string' ? 'text/plain' : 'application/json');
    const response = await invite.info(type, text);
    return { status: response.status, reason: response.reason };
  }

  async accept(): Promise<void> {
    if (this.call.direction !== 'inbound' || this.#state !== 'ringing') {
      throw new SoftphoneError(ErrorCodes.CALL_STATE, `cannot accept: the call is ${this.#state}`);
    }
    if (!this.#sdp) await this.#ready;
    this.#answerNow();
  }

  reject(status: number, reason?: string): void {
    if (!Number.isInteger(status) || status < 400 || status > 699) {
      throw new RangeError(`reject() takes a 4xx-6xx status, got ${status}`);
    }
    this.#refuse(status, reason);
  }

  redirect(target: string): void {
    const uri = target.includes(':') ? target : `sip:${target}@${this.#ctx.domain}`;
    this.#refuse(302, 'Moved Temporarily', [['Contact', `<${uri}>`]]);
  }

  // ── ending ────────────────────────────────────────────────────────────

  /**
   * Hangs up for `reason`: BYE (answered), CANCEL (outbound, unanswered) or
   * 480 (inbound, unanswered), recording on until it is answered (at most
   * BYE_RECORDING_TAIL_MS), then finish. Every trigger comes here.
   */
  async #hangup(reason: CallEndReason): Promise<void> {
    if (this.#state === 'ended' || this.#closing !== undefined) {
      await this.done;
      return;
    }
    this.#closing = reason;
    this.#clearTimers();
    const invite = this.#invite;
    // Detached from its connection: no BYE can reach the far end; end it here.
    if (invite && invite.state !== 'terminated' && !this.#detached) {
      if (invite.state === 'calling' || invite.state === 'early') {
        await invite.cancel();
      } else if (invite.state === 'incoming') {
        invite.reject(480, 'Temporarily Unavailable');
      } else {
        let tail: NodeJS.Timeout | undefined;
        await Promise.race([
          invite.bye(BYE_TIMEOUT_MS).then(
            (response) => {
              if (response && response.status >= 300 && response.status !== 481) {
                this.#ctx.warn(`BYE answered ${response.status} ${response.reason}`, this.callId);
              }
            },
            (err) => {
              if (!isSoftphoneError(err, ErrorCodes.CLOSED))
                this.#ctx.warn(`BYE failed: ${describeError(err)}`, this.callId);
            },
          ),
          new Promise<void>((resolve) => {
            tail = setTimeout(resolve, BYE_RECORDING_TAIL_MS);
          }),
        ]);
        clearTimeout(tail);
      }
    }
    this.#finish(reason);
  }

  /**
   * The registry's shutdown and flow loss: hang up (shutdown), or end now
   * without signalling; `exiting`: the process exits next, so the sidecar is
   * on disk before this returns.
   */
  close(
    reason: CallEndReason,
    options: { signal: boolean; exiting?: boolean } = { signal: true },
  ): Promise<void> {
    if (options.signal) return this.#hangup(reason);
    this.#closing ??= reason;
    this.#finish(reason, options.exiting ?? false);
    return this.done.then(() => {});
  }

  /**
   * Ends the call locally, once: timers, media (the jitter buffer's tail into
   * the WAV), the WAV closed, stats, sidecar; then the live sinks close (an
   * engine's grace may take seconds) and `ended` fires. The sidecar is
   * written on the thread pool (its fsync never holds up the other calls'
   * signalling), before `ended`; synchronously when the process is `exiting`.
   */
  #finish(reason: CallEndReason, exiting = false): CallEndInfo {
    if (this.#endInfo) return this.#endInfo;
    const final = this.#closing ?? reason;
    this.#clearTimers();
    this.#invite?.dispose();
    const wasAnswered = this.#answeredAt !== undefined;
    this.#state = 'ended';
    // RTCP BYE (RFC 3550 6.6) while the socket still lives, then the media.
    if (this.#rtcp) this.#collectRtcp(this.#rtcp.close({ bye: true }));
    const transportStats = this.#transport?.stats;
    // The call ends when its media stop (the WAV's end), not when the sidecar is written:
    // flushing the recording's last second can take a while on a loaded host.
    const endedAt = performance.now();
    const mediaStats = this.#media?.stop();
    if (!this.#media) this.#releaseSocket();
    this.#closeRtcpSocket();
    // The WAV is final (header patched) before the sidecar that names it is written.
    this.#fanOut.closeRecording();
    const extra = Object.assign(
      {},
      this.#srtpKeys && transportStats
        ? {
            srtpAuthFailed: transportStats.srtpAuthFailed,
            srtpReplayed: transportStats.srtpReplayed,
            srtpMalformed: transportStats.srtpMalformed,
          }
        : {},
      this.#rtcpStats,
      this.#receptionJitter(),
      this.#fanOut.stats(),
      ...this.#statSources.map((source) => source()),
      this.call.listenerErrors > 0 ? { listenerErrors: this.call.listenerErrors } : {},
    ) as Record<string, number>;
    const stats = mediaStats ? { ...mediaStats, ...extra } : undefined;
    const durationMs = Math.round(this.#answeredAt === undefined ? 0 : endedAt - this.#answeredAt);
    const wav = this.#recording ? this.#wavPath : undefined;
    const failure = this.#recordingError;
    const recordingError = failure && { code: failure.code, message: failure.message };
    const sidecarPath = this.#sidecarPath;
    let sidecarData: CallSidecar | undefined;
    if (sidecarPath && (wasAnswered || this.#recording)) {
      sidecarData = {
        callId: this.callId,
        direction: this.call.direction,
        from: this.call.from.header,
        to: this.call.to.header,
        startedAt: this.call.startedAt.toISOString(),
        endedAt: new Date().toISOString(),
        durationMs,
        codec: this.#negotiated?.codec ?? null,
        sampleRate: this.#sampleRate ?? null,
        wav: wav ?? null,
        ...(recordingError && { recordingError }),
        ...(this.#rcIds.partyId !== undefined || this.#rcIds.sessionId !== undefined
          ? { ringCentral: { ...this.#rcIds } }
          : {}),
        endReason: final,
        ...(this.#failure?.status !== undefined && { status: this.#failure.status }),
        stats: { ...sidecarStats(mediaStats), ...extra },
        dtmf: [...this.#dtmf],
        ...this.#ctx.sidecarExtra?.(),
      };
    }
    let sidecarWritten: Promise<boolean> = Promise.resolve(false);
    if (sidecarPath && sidecarData) {
      const failed = (err: unknown) => {
        this.call.emit('sinkError', asSinkError(err));
        return false;
      };
      if (exiting) {
        try {
          writeSidecar(sidecarPath, sidecarData);
          sidecarWritten = Promise.resolve(true);
        } catch (err) {
          sidecarWritten = Promise.resolve(failed(err));
        }
      } else {
        sidecarWritten = writeSidecarAsync(sidecarPath, sidecarData).then(() => true, failed);
      }
    }
    const info: CallEndInfo = {
      reason: final,
      durationMs,
      wav,
      sidecar: sidecarData ? sidecarPath : undefined,
      stats,
      dtmf: [...this.#dtmf],
      ...(this.#failure?.status !== undefined && { status: this.#failure.status }),
      ...(this.#failure?.reason !== undefined && { statusReason: this.#failure.reason }),
      ...(this.#failure?.code !== undefined && { code: this.#failure.code }),
      ...(recordingError && { recordingError }),
    };
    this.#endInfo = info;
    this.#events.dialog(this, undefined);
    this.#events.removed(this);
    void Promise.all([this.#fanOut.close(), sidecarWritten]).then(([, written]) => {
      // The sidecar is named once it is on disk.
      if (!written) info.sidecar = undefined;
      this.call.emit('ended', info);
      this.#events.ended(this.call, info);
      this.#resolveDone(info);
    });
    return info;
  }

  // ── inbound internals ─────────────────────────────────────────────────

  #resolveReady: () => void = () => {};
  readonly #ready = new Promise<void>((resolve) => {
    this.#resolveReady = resolve;
  });

  async #prepareInbound(
    connection: SipConnection,
    options: { autoAnswer: boolean; ringTimeoutMs: number },
  ): Promise<void> {
    try {
      await this.#prepareMedia(connection);
    } catch (err) {
      if (this.#invite?.state !== 'incoming') return; // cancelled meanwhile
      this.#ctx.warn(describeError(err), this.callId);
      this.#refuse(503, 'No RTP port available', [['Retry-After', '5']]);
      return;
    }
    // CANCEL may have arrived while we were allocating.
    if (this.#invite?.state !== 'incoming') {
      this.#releaseSocket();
      return;
    }
    this.#resolveReady();
    if (options.autoAnswer) {
      this.#answerNow();
      return;
    }
    this.#invite.progress(180);
    this.#emitIncoming();
    if (options.ringTimeoutMs > 0) {
      this.#timer(options.ringTimeoutMs, () => {
        if (this.#state === 'ringing') this.#refuse(480, 'Temporarily Unavailable');
      });
    }
  }

  /** 200 OK (our answer or our offer), then the recording and the media start. */
  #answerNow(): void {
    const invite = this.#invite as InviteSession;
    if (!invite.accept()) {
      // 400/488: the offer cannot be taken. The usage answered; the session ended 'rejected'.
      return;
    }
    this.#answeredAt = performance.now();
    this.#state = 'answered';
    this.#events.dialog(this, invite.dialog?.key);
    if (!this.#incomingEmitted) this.#emitIncoming();
    this.#startMedia();
    if (this.#ctx.maxCallDurationMs > 0)
      this.#timer(this.#ctx.maxCallDurationMs, () => void this.#hangup('max-duration'));
    this.#announce();
  }

  /**
   * The call is answered: 'answered' to the user, then the live sinks (after
   * the listeners, so a sink that fails at once reaches the sinkError
   * listeners they added), then the media as negotiated.
   */
  #announce(): void {
    // The media as negotiated are in place before anyone hears 'answered' (sendDtmf, play work at once).
    this.#applyMedia();
    this.#announced = true;
    this.call.emit('answered');
    try {
      this.#events.answered(this.call);
    } finally {
      if (this.#state === 'answered' && this.#closing === undefined) {
        this.#ctx.liveSinks?.(this.call, {
          addSink: (sink) => this.addSink(sink),
          addStats: (source) => this.addStats(source),
        });
      }
    }
    this.#reportMedia();
  }

  #emitIncoming(): void {
    this.#incomingEmitted = true;
    this.#events.incoming(this.call);
  }

  #refuse(status: number, reason?: string, headers: [string, string][] = []): void {
    const invite = this.#invite;
    if (invite?.state !== 'incoming') {
      throw new SoftphoneError(ErrorCodes.CALL_STATE, `cannot refuse: the call is ${this.#state}`);
    }
    invite.reject(status, reason, headers);
  }

  // ── media ─────────────────────────────────────────────────────────────

  async #prepareMedia(connection: SipConnection): Promise<void> {
    // Opus's WASM, once per process (the Softphone loads it at start; this covers other owners).
    await prepareCodecs(this.#ctx.codecs);
    const mediaIp = this.#ctx.mediaIp;
    const bind = mediaIp ? { address: bindAddressFor(mediaIp) } : {};
    const socket = await this.#ctx.ports.allocate(bind);
    this.#transport = new RtpTransport(socket, {
      onRtp: (packet, rinfo, arrivalMs) => this.#noteReception(packet, rinfo, arrivalMs),
    });
    // RTCP's own port, for a far end that does not multiplex (RFC 3550 11); any
    // free port of the range, announced with a=rtcp (RFC 3605). None left: mux only.
    try {
      this.#rtcpSocket = await this.#ctx.ports.allocate(bind);
    } catch {
      this.#rtcpSocket = undefined;
    }
    this.#sdp = new SdpSession({
      address: mediaIp ?? connection.localAddress,
      port: socket.address().port,
      sessionId: String(Date.now()),
      codecs: [...this.#ctx.codecs],
      ...(this.#ctx.sampleRate !== undefined && { sampleRate: this.#ctx.sampleRate }),
      srtp: this.#ctx.srtp,
      rtcpMux: true,
      ...(this.#rtcpSocket && { rtcpPort: this.#rtcpSocket.address().port }),
    });
  }

  /** Opens the WAV and starts RTP (the recording begins now: the answer, or early media). */
  #startMedia(): void {
    if (this.#media || !this.#transport) return;
    const rate = this.#workingRate();
    this.#sampleRate = rate;
    const wav = this.#wavPath ? this.#openRecording(this.#wavPath, rate) : undefined;
    const media = new MediaSession({
      socket: this.#transport,
      negotiated: this.#pendingMedia ?? placeholderMedia(),
      sampleRate: rate,
      t0: performance.now(),
      sendSilence: this.#ctx.sendSilence,
      ...(this.#ctx.sendCatchUpMs === undefined ? {} : { maxCatchUpMs: this.#ctx.sendCatchUpMs }),
      inactivityTimeoutMs: this.#ctx.mediaTimeoutMs,
      ...(this.#ctx.outboundFor && { outbound: this.#outboundFor() }),
    });
    this.#media = media;
    this.#recording = wav !== undefined;
    if (wav) {
      this.#fanOut.setRecording(
        new WavSink(wav, (err) => {
          this.#recordingError ??= err;
          this.call.emit('sinkError', err);
        }),
      );
    }
    media.on('dtmf', (e) => this.#recordDtmf(e.digit, e.atMs, 'rfc4733'));
    media.on('dtmfSent', (e) => this.call.emit('dtmfSent', e));
    // The recording's frames (every packet at its place, 1 s behind) and the
    // live stream's (one every 20 ms) take different routes: WAV and live sinks.
    media.on('frame', (frame, info) => this.#fanOut.writeRecording(frame, info));
    media.on('liveFrame', (frame, info) => this.#fanOut.writeLive(frame, info));
    media.on('latched', (latch) => this.call.emit('latched', latch));
    media.on('error', (err) => this.call.emit('sinkError', err));
    media.on('inactive', () => void this.#hangup('media-timeout'));
  }

  /** The usage finished an offer/answer: apply what was negotiated to the media and report it. */
  #applyMedia(): void {
    const next = this.#pendingMedia;
    if (!next || this.#state === 'ended') return;
    // Outbound, the first answer (a 183 or the 200) starts the recording: early media counts.
    if (this.call.direction === 'outbound' && !this.#media) this.#startMedia();
    const media = this.#media;
    if (!media) return; // inbound, not answered yet: applied at the answer
    if (next !== this.#negotiated) {
      const first = this.#negotiated === undefined;
      this.#negotiated = next;
      const rekeyed = this.#applySrtp(next);
      media.update(next);
      this.#applyRtcp(next, media, rekeyed);
      if (first)
        media.prime().catch((err) => this.#ctx.warn(`priming failed: ${describeError(err)}`, this.callId));
    }
    if (this.#announced || this.#state === 'early') this.#reportMedia();
  }

  /**
   * SRTP as negotiated: a context built from the keys (a new one only when a
   * key changed), or none. Returns whether the context changed.
   */
  #applySrtp(n: NegotiatedMedia): boolean {
    const transport = this.#transport as RtpTransport;
    const keys = n.srtp;
    const current = this.#srtpKeys;
    if (!keys) {
      if (!current) return false;
      transport.setSrtp(undefined);
      this.#srtpKeys = undefined;
      return true;
    }
    if (current && keys.sameRemoteKey(current) && keys.localKeySalt.equals(current.localKeySalt))
      return false;
    transport.setSrtp(
      new SrtpContext({
        suite: keys.suite,
        localKeySalt: keys.localKeySalt,
        remoteKeySalt: keys.remoteKeySalt,
        ...(keys.remoteMki !== undefined && { remoteMki: keys.remoteMki }),
      }),
    );
    this.#srtpKeys = keys;
    return true;
  }

  /**
   * RTCP as negotiated (RFC 3550 6, RFC 5761): multiplexed on the RTP port or
   * on our own RTCP port, towards the far end's; reports on the interval,
   * SRTCP with the call's context. A new context (re-key) starts a new session.
   */
  #applyRtcp(n: NegotiatedMedia, media: MediaSession, rekeyed: boolean): void {
    const transport = this.#transport as RtpTransport;
    const target = n.rtcp;
    if (!target || target.port === 0 || isIP(target.address) === 0) {
      this.#rtcp?.setRemote(undefined);
      return;
    }
    const remote = { address: target.address, port: target.port };
    if (this.#rtcp && !rekeyed && this.#rtcpMux === target.mux) {
      this.#rtcp.setRemote(remote);
      return;
    }
    if (this.#rtcp) this.#collectRtcp(this.#rtcp.close());
    let socket: ConstructorParameters<typeof RtcpSession>[0]['socket'];
    if (target.mux) {
      // RFC 5761: RTCP on the RTP port; the transport hands it over, SRTCP is the session's.
      const channel = new EventEmitter<{ message: [Buffer, dgram.RemoteInfo] }>();
      transport.setRtcpHandler((msg, rinfo) => channel.emit('message', msg, rinfo));
      socket = {
        send: (msg, port, address, cb) => transport.socket.send(msg, port, address, cb),
        on: (_e, l) => channel.on('message', l),
        off: (_e, l) => channel.off('message', l),
        close: () => transport.setRtcpHandler(undefined),
      };
      // Our own RTCP port is not needed any more.
      this.#closeRtcpSocket();
    } else if (this.#rtcpSocket) {
      socket = this.#rtcpSocket;
      this.#rtcpSocket = undefined; // the RTCP session owns and closes it now
    } else {
      return;
    }
    this.#rtcpMux = target.mux;
    this.#rtcp = new RtcpSession({
      socket,
      mux: target.mux,
      remote,
      ssrc: media.ssrc,
      reception: () => this.#reception.snapshot(),
      sending: () => media.sending,
      ...(transport.srtp && { srtp: transport.srtp }),
      clockRate: n.clockRate,
    });
  }

  /** An RTP packet that got through SRTP: our reception statistics, from the latched source only. */
  #noteReception(packet: Buffer, rinfo: dgram.RemoteInfo, arrivalMs: number): void {
    const latched = this.#media?.latched;
    if (!latched || latched.port !== rinfo.port || !sameHost(latched.address, rinfo.address)) return;
    const p = parseRtp(packet);
    if (typeof p === 'string') return;
    const rate = this.#negotiated?.clockRate ?? 8000;
    const audio = p.payloadType === this.#negotiated?.payloadType;
    this.#reception.update(
      p.ssrc,
      p.sequenceNumber,
      p.timestamp,
      Math.round((arrivalMs * rate) / 1000),
      audio,
    );
  }

  /** RFC 3550 A.8 interarrival jitter of the far end's audio as we received it, in ms. */
  #receptionJitter(): { jitterMs?: number } {
    const r = this.#reception.snapshot();
    const rate = this.#negotiated?.clockRate;
    return r && rate ? { jitterMs: Math.round((r.jitter / rate) * 1000 * 100) / 100 } : {};
  }

  /** Keeps the RTCP figures of a session that ended (re-key, call end) for the final stats. */
  #collectRtcp(stats: object): void {
    for (const [k, v] of Object.entries(stats)) {
      if (typeof v === 'number' && Number.isFinite(v)) this.#rtcpStats[k] = v;
    }
  }

  /** The `media` event, once per negotiated state. */
  #reportMedia(): void {
    const n = this.#negotiated;
    if (!n || n === this.#reported) return;
    this.#reported = n;
    const local = this.#sdp?.address;
    this.call.emit('media', {
      codec: n.codec,
      sampleRate: this.#sampleRate ?? n.sampleRate ?? 8000,
      localMedia: local ? hostPort(local.address, local.port) : '',
      remoteMedia: hostPort(n.remoteAddress, n.remotePort),
      direction: n.direction,
      onHold: n.onHold,
    });
  }

  async #changeDirection(direction: MediaDirection, verb: string): Promise<void> {
    const invite = this.#requireAnswered(verb);
    const sdp = this.#sdp as SdpSession;
    const before = sdp.direction;
    if (before === direction) return;
    sdp.setDirection(direction);
    const result = await invite.reinvite();
    if (!result.ok) {
      sdp.setDirection(before);
      throw new SoftphoneError(
        ErrorCodes.CALL_STATE,
        `${verb} failed: re-INVITE answered ${result.status} ${result.reason}`,
        {
          details: { status: result.status },
        },
      );
    }
  }

  /**
   * The call's audio rate: forced, else the negotiated one; before an answer
   * (a late offer) the rate our preferred codec would have.
   */
  #workingRate(): SampleRate {
    return (
      this.#ctx.sampleRate ??
      this.#pendingMedia?.sampleRate ??
      codecInfo(this.#ctx.codecs[0] ?? 'PCMU').sampleRates[0]!
    );
  }

  #openRecording(path: string, sampleRate: SampleRate): WavWriter | undefined {
    try {
      try {
        return WavWriter.open(path, { sampleRate });
      } catch (err) {
        if (!isSoftphoneError(err, ErrorCodes.SINK_WRITE_FAILED) || err.details.errno !== 'ENOENT') throw err;
        // A record directory deleted while we run is made again.
        mkdirSync(dirname(path), { recursive: true });
        this.#ctx.warn(
          `the record directory ${dirname(path)} had disappeared; created it again`,
          this.callId,
        );
        return WavWriter.open(path, { sampleRate });
      }
    } catch (err) {
      const error = isSoftphoneError(err)
        ? err
        : new SoftphoneError(ErrorCodes.SINK_WRITE_FAILED, `cannot create ${path}: ${describeError(err)}`);
      this.#recordingError ??= error;
      this.#ctx.warn(`this call is not recorded: ${describeError(err)}`, this.callId);
      return undefined;
    }
  }

  /** The talk-back source comes from user code (`outboundFor`): a throw means none. */
  #outboundFor(): OutboundSource | undefined {
    try {
      return this.#ctx.outboundFor?.(this.call);
    } catch (err) {
      this.#ctx.warn(
        `outboundFor threw; the call has no talk-back audio: ${describeError(err)}`,
        this.callId,
        ErrorCodes.LISTENER_FAILED,
      );
      return undefined;
    }
  }

  #releaseSocket(): void {
    this.#transport?.close();
    this.#closeRtcpSocket();
  }

  /** Our own RTCP port, when the RTCP session did not take it over. */
  #closeRtcpSocket(): void {
    const socket = this.#rtcpSocket;
    this.#rtcpSocket = undefined;
    try {
      socket?.close();
    } catch {
      // Already closed.
    }
  }

  /**
   * We are the transferee (RFC 3515, RFC 5589 blind transfer): call the
   * Refer-To target with Referred-By, report its progress to the transferor
   * as NOTIFY sipfrag, and once it is answered, end this call ('transferred').
   * A new call that fails is reported with its status; this call goes on.
   */
  async #followRefer(invite: InviteSession, referTo: string, referredBy: string | undefined): Promise<void> {
    const transferTo = this.#ctx.transferTo;
    if (transferTo === undefined) return;
    let next: Call;
    try {
      next = await transferTo(referTarget(referTo), referredBy ?? this.#ctx.aor);
    } catch (err) {
      this.#ctx.warn(`cannot follow the transfer to ${referTo}: ${describeError(err)}`, this.callId);
      await invite.notifyRefer(503, 'Service Unavailable');
      return;
    }
    next.on('progress', (p) => {
      if (p.status === 180 || p.status === 183) void invite.notifyRefer(p.status, p.reason);
    });
    const answered = await new Promise<boolean>((resolve) => {
      next.once('answered', () => resolve(true));
      void next.done.then(() => resolve(false));
    });
    if (answered) {
      await invite.notifyRefer(200, 'OK');
      // The transferor normally hangs up now; if it does not, the old call ends here.
      if (this.#state !== 'ended') await this.#hangup('transferred');
      return;
    }
    const end = await next.done;
    await invite.notifyRefer(end.status ?? 487, end.statusReason ?? 'Request Terminated');
  }

  // ── the usage's events ────────────────────────────────────────────────

  #attach(invite: InviteSession): void {
    this.#invite = invite;
    invite.followRefers(this.#ctx.transferTo !== undefined);
    invite.on('media', () => this.#applyMedia());
    invite.on('progress', (response) => {
      this.#noteRcIds(response.headers.get('P-Rc-Api-Ids'));
      if (this.#state === 'ringing') this.#state = 'early';
      this.call.emit('progress', {
        status: response.status,
        reason: response.reason,
        earlyMedia: response.body.byteLength > 0,
      });
    });
    invite.on('confirmed', () => {
      if (this.call.direction !== 'outbound') return;
      this.#answeredAt = performance.now();
      this.#state = 'answered';
      this.#events.dialog(this, invite.dialog?.key);
      if (!this.#media) this.#startMedia();
      if (this.#ctx.maxCallDurationMs > 0)
        this.#timer(this.#ctx.maxCallDurationMs, () => void this.#hangup('max-duration'));
      this.#announce();
    });
    invite.on('ackTimeout', () => void this.#hangup('no-ack'));
    invite.on('info', (info) => this.#onInfo(info));
    invite.on('refer', (info) => {
      this.call.emit('refer', info);
      if (info.accepted) void this.#followRefer(invite, info.referTo, info.referredBy);
    });
    invite.on('terminated', (t) => this.#onTerminated(t));
  }

  #onTerminated(t: Termination): void {
    if (this.#state === 'ended') return;
    switch (t.cause) {
      case 'remote-bye':
        this.#finish('remote-bye');
        return;
      case 'local-bye':
        return; // our own hangup: #hangup finishes
      case 'bad-answer':
        this.#ctx.warn(`unusable SDP answer: ${t.reason ?? ''}`, this.callId);
        void this.#hangup('error');
        return;
      case 'ack-timeout':
        void this.#hangup('no-ack');
        return;
      default:
        break;
    }
    // The call was never established.
    this.#releaseMediaIfUnused();
    if (this.call.direction === 'inbound') {
      const status = t.status ?? 487;
      const reason = t.cause === 'cancelled' ? 'cancelled by the caller' : (t.reason ?? '');
      this.#events.rejected({ callId: this.callId, from: this.call.from.header, status, reason });
      if (this.#incomingEmitted) {
        this.#failure = { status, reason };
        this.#finish(t.cause === 'cancelled' ? 'cancelled' : 'rejected');
      } else {
        this.#state = 'ended';
        this.#events.removed(this);
      }
      return;
    }
    this.#failure = {
      ...(t.status !== undefined && { status: t.status }),
      reason: t.reason ?? t.cause,
      ...(t.code !== undefined && { code: t.code }),
    };
    const reason: CallEndReason =
      this.#closing ??
      (t.cause === 'cancelled' ? 'cancelled' : t.cause === 'connection-lost' ? 'flow-lost' : 'rejected');
    if (reason === 'rejected' || reason === 'flow-lost') {
      this.call.emit('failed', { status: t.status, reason: t.reason ?? t.cause, code: t.code });
    }
    this.#finish(reason);
  }

  #releaseMediaIfUnused(): void {
    if (!this.#media) this.#releaseSocket();
  }

  #onInfo(info: { contentType: string; body: Uint8Array }): void {
    const text = Buffer.from(info.body).toString('utf8');
    if (info.contentType === 'application/dtmf-relay') {
      const relay = parseDtmfRelay(text);
      if (relay)
        this.#recordDtmf(
          relay.digit,
          this.#answeredAt === undefined ? 0 : performance.now() - this.#answeredAt,
          'info',
        );
      return;
    }
    if (text.length > 0) this.call.emit('info', { contentType: info.contentType, body: text });
  }

  #recordDtmf(digit: string, atMs: number, source: 'rfc4733' | 'info'): void {
    const record: DtmfRecord = { digit, atMs: Math.round(atMs), source };
    this.#dtmf.push(record);
    this.call.emit('dtmf', { digit: digit as never, atMs: record.atMs, source });
  }

  /** RingCentral's P-Rc-Api-Ids: `party-id=p-…;session-id=s-…` (names vary in case and separators). */
  #noteRcIds(value: string | undefined): void {
    if (!value) return;
    const found: RingCentralIds = {};
    for (const part of value.split(/[;,]/)) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      const name = part.slice(0, eq).trim().toLowerCase().replace(/[_-]/g, '');
      const v = part
        .slice(eq + 1)
        .trim()
        .replace(/^"|"$/g, '');
      if (!v) continue;
      if (name === 'partyid') found.partyId = v;
      else if (name === 'sessionid' || name === 'telephonysessionid') found.sessionId = v;
    }
    if (found.partyId === this.#rcIds.partyId && found.sessionId === this.#rcIds.sessionId) return;
    if (found.partyId === undefined && found.sessionId === undefined) return;
    Object.assign(this.#rcIds, found);
    this.call.emit('ids', { ...this.#rcIds });
  }

  // ── helpers ───────────────────────────────────────────────────────────

  #sdpSession(): SdpSession {
    if (!this.#sdp) throw new SoftphoneError(ErrorCodes.CALL_STATE, 'no media port yet');
    return this.#sdp;
  }

  #requireMedia(what: string): MediaSession {
    if (this.#state === 'ended' || !this.#media || !this.#negotiated) {
      throw new SoftphoneError(
        ErrorCodes.CALL_STATE,
        `cannot ${what}: the call has no media (${this.#state})`,
      );
    }
    return this.#media;
  }

  #requireAnswered(what: string): InviteSession {
    const invite = this.#invite;
    if (this.#state !== 'answered' || !invite || this.#closing !== undefined) {
      throw new SoftphoneError(
        ErrorCodes.CALL_STATE,
        `cannot ${what}: the call is ${this.#closing ? 'ending' : this.#state}`,
      );
    }
    return invite;
  }

  #timer(ms: number, fn: () => void): void {
    this.#timers.push(setTimeout(fn, ms));
  }

  #clearTimers(): void {
    for (const t of this.#timers.splice(0)) clearTimeout(t);
    if (this.#rehomeTimer) clearTimeout(this.#rehomeTimer);
    this.#rehomeTimer = undefined;
  }

  #recordingPaths(
    callId: string,
    from: CallParty,
    to: CallParty,
    startedAt: Date,
    direction: 'inbound' | 'outbound',
  ) {
    try {
      const custom = this.#ctx.recordPath?.({ callId, from, to, startedAt });
      if (custom) return { wav: custom, json: `${custom.replace(/\.wav$/i, '')}.json` };
      if (!this.#ctx.recordDir) return undefined;
      // The file is named after the other party: the caller inbound, the callee outbound.
      const other = direction === 'inbound' ? from : to;
      return recordingPaths(this.#ctx.recordDir, { startedAt, callerUser: other.user, callId });
    } catch (err) {
      this.#ctx.warn(`recording disabled for this call: ${describeError(err)}`, callId);
      return undefined;
    }
  }
}

function partyOf(
  parsed: { uri: unknown; displayName?: string | undefined } | undefined,
  header: string | undefined,
  uriText?: string,
): CallParty {
  const uri = parsed?.uri as { user?: string } | undefined;
  let user = uri && typeof uri === 'object' && 'user' in uri ? uri.user : undefined;
  if (user === undefined && uriText) user = /sips?:([^@;>]+)@/i.exec(uriText)?.[1];
  return { header: header ?? '', user, displayName: parsed?.displayName };
}

/** Bind RTP to the media IP when it is a local address; a public (NAT) address is announced but not bound. */
function bindAddressFor(mediaIp: string): string {
  return mediaIp.includes(':') ? '::' : '0.0.0.0';
}

/** Until an answer says where to send, the session records but sends nothing. */
/** The URI a Refer-To names: without its angle brackets, header parameters and field parameters. */
export function referTarget(referTo: string): string {
  const inBrackets = /<([^>]*)>/.exec(referTo);
  const uri = (inBrackets ? inBrackets[1]! : referTo.split(';')[0]!).trim();
  // Embedded headers (?Replaces=… for an attended transfer) are not acted on.
  return uri.split('?')[0]!;
}

function placeholderMedia(): NegotiatedMedia {
  return {
    codec: 'PCMU',
    payloadType: 0,
    clockRate: 8000,
    telephoneEventPt: TELEPHONE_EVENT_PT,
    remoteAddress: '0.0.0.0',
    remotePort: 0,
    ptime: 20,
    direction: 'inactive',
    onHold: true,
  };
}

/** Every numeric media statistic, the seven packet counters first (always present). */
function sidecarStats(stats: MediaStats | undefined): PacketStats & Record<string, number> {
  const out: PacketStats & Record<string, number> = {
    received: stats?.received ?? 0,
    lost: stats?.lost ?? 0,
    late: stats?.late ?? 0,
    duplicate: stats?.duplicate ?? 0,
    reordered: stats?.reordered ?? 0,
    foreignSource: stats?.foreignSource ?? 0,
    invalid: stats?.invalid ?? 0,
  };
  for (const [k, v] of Object.entries(stats ?? {})) {
    if (typeof v === 'number' && Number.isFinite(v) && !(k in out)) out[k] = v;
  }
  return out;
}

function asSinkError(err: unknown): SoftphoneError {
  return err instanceof SoftphoneError
    ? err
    : new SoftphoneError(ErrorCodes.SINK_WRITE_FAILED, `a sink failed: ${describeError(err)}`, {
        cause: err,
      });
}

/** A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d. */
function sameHost(a: string, b: string): boolean {
  const unmap = (x: string) => (x.startsWith('::ffff:') && x.includes('.') ? x.slice(7) : x);
  return unmap(a) === unmap(b);
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
