/**
 * The INVITE server and in-dialog request handling (RFC 3261 13, 15, 9):
 * answers inbound calls, keeps their dialogs, and routes every request of a
 * dialog to its call. Installed as the UserAgent's request handler.
 */

import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { describeError, ErrorCodes, isSoftphoneError, SoftphoneError } from '../errors.js';
import { TELEPHONE_EVENT_PT } from '../media/codec.js';
import { parseDtmfRelay } from '../media/dtmf.js';
import type { RtpPortPool } from '../media/port-pool.js';
import { MediaSession, type OutboundSource } from '../media/session.js';
import {
  acceptAnswer,
  createOffer,
  type LocalMedia,
  type NegotiatedMedia,
  negotiateAnswer,
} from '../sdp/negotiate.js';
import { recordingPaths } from '../sinks/recording-path.js';
import { WavWriter } from '../sinks/wav.js';
import { Dialog, requestDialogKey } from '../sip/dialog/dialog.js';
import { generateTag, warningHeader } from '../sip/message/build.js';
import type { NameAddr, SipRequest, SipResponse } from '../sip/message/types.js';
import { T1, T2, TIMER_H } from '../sip/transaction/timers.js';
import type { SipFlow } from '../sip/transport/flow.js';
import { ALLOW } from '../sip/ua/registration.js';
import type { IncomingRequest, UserAgent } from '../sip/ua/user-agent.js';
import { Call, type CallEndInfo, type CallEndReason, type CallParty } from './call.js';

export interface CallManagerOptions {
  ports: RtpPortPool;
  /** Address for our SDP; default: the local address of the signalling flow. */
  mediaIp?: string | undefined;
  /** Directory for WAV + JSON sidecar; undefined: do not record. */
  recordDir?: string | undefined;
  /** Chooses the WAV path per call (library use); overrides recordDir naming. */
  recordPath?:
    | ((call: { callId: string; from: CallParty; to: CallParty; startedAt: Date }) => string | undefined)
    | undefined;
  /** Concurrent calls; beyond it INVITEs get 486 Busy Here. */
  maxCalls: number;
  /** BYE when no RTP arrives for this long (ms); 0 disables. */
  mediaTimeoutMs: number;
  /** BYE after this long (ms); 0 disables. */
  maxDurationMs: number;
  /** Send RTP silence after priming, like a phone. */
  sendSilence: boolean;
  /** How long to wait for the ACK of our 200 (Timer H, 32 s). */
  ackTimeoutMs?: number;
  /** Talk-back audio source per call (WebSocket streams). */
  outboundFor?: ((call: Call) => OutboundSource | undefined) | undefined;
}

export interface CallManagerEvents {
  incoming: [call: Call];
  answered: [call: Call];
  rejected: [info: { callId: string; from: string; status: number; reason: string }];
  ended: [call: Call, info: CallEndInfo];
  warning: [info: { code: string; message: string; callId?: string }];
}

/** One SDP o= session id per call; the version grows with each new SDP we send (RFC 3264 8). */
interface LocalSdp {
  media: LocalMedia;
  /** The SDP we last sent (answer or offer). */
  sdp: string;
  /** Our offer awaiting an answer in the ACK (INVITE without SDP). */
  pendingOffer: string | undefined;
}

export class CallManager extends EventEmitter<CallManagerEvents> {
  readonly #ua: UserAgent;
  readonly #options: CallManagerOptions;
  /** Calls by dialog key (Call-ID + tags). */
  readonly #dialogs = new Map<string, Call>();
  /** Calls by Call-ID before and after the dialog exists. */
  readonly #calls = new Map<string, Call>();
  readonly #sdp = new WeakMap<Call, LocalSdp>();
  /** INVITE server transactions still waiting for our final response, by Call-ID. */
  readonly #pendingInvites = new Map<string, IncomingRequest>();
  #accepting = true;
  readonly #watchedFlows = new WeakSet<SipFlow>();
  /** Calls whose 2xx has been ACKed. */
  readonly #acked = new WeakSet<Call>();
  readonly #timers = new WeakMap<Call, NodeJS.Timeout[]>();
  /** Calls whose hang-up (BYE) is under way, with the reason it was started for. */
  readonly #closing = new WeakMap<Call, CallEndReason>();

  constructor(ua: UserAgent, options: CallManagerOptions) {
    super();
    this.#ua = ua;
    this.#options = options;
    ua.onRequest((incoming) => this.#handle(incoming));
  }

  /** Calls not yet ended. */
  get active(): Call[] {
    return [...this.#calls.values()].filter((c) => !c.ended);
  }

  /** Stop answering (486 from now on), hang up every call and wait until each has ended. */
  async closeAll(): Promise<void> {
    this.#accepting = false;
    const calls = [...this.#calls.values()];
    for (const [callId, pending] of this.#pendingInvites) {
      this.#pendingInvites.delete(callId);
      pending.respond(503, 'Service Unavailable', { toTag: generateTag() });
    }
    await Promise.all(calls.map((c) => this.#hangup(c, 'shutdown')));
    await Promise.all(calls.map((c) => c.done));
  }

  // ── dispatch ──────────────────────────────────────────────────────────

  #handle(incoming: IncomingRequest): boolean {
    const { request } = incoming;
    const hasToTag = request.headers.to()?.params.has('tag') ?? false;
    if (request.method === 'CANCEL') {
      this.#onCancel(incoming);
      return true;
    }
    if (!hasToTag) {
      if (request.method === 'INVITE') {
        void this.#onInvite(incoming).catch((err) =>
          this.#warn(`INVITE handling failed: ${describeError(err)}`),
        );
        return true;
      }
      if (request.method === 'ACK') return true;
      // RFC 3261 15.1.2 (and 12.2.2 for the other in-dialog-only methods): a BYE,
      // UPDATE or PRACK that matches no dialog is 481, not an unknown method (501).
      if (DIALOG_ONLY.has(request.method)) {
        incoming.respond(481, 'Call/Transaction Does Not Exist', { toTag: generateTag() });
        return true;
      }
      // Out-of-dialog INFO/NOTIFY/MESSAGE: accept politely (RingCentral sends some).
      if (request.method === 'INFO' || request.method === 'NOTIFY' || request.method === 'MESSAGE') {
        incoming.respond(200, undefined, { toTag: generateTag() });
        return true;
      }
      return false; // 501 by the UA core
    }
    const key = requestDialogKey(request);
    const call = key ? this.#dialogs.get(key) : undefined;
    if (!call || call.ended) {
      if (request.method === 'ACK') return true; // nothing to answer
      // RFC 3261 12.2.2: a request for a dialog we do not know.
      incoming.respond(481, 'Call/Transaction Does Not Exist');
      return true;
    }
    const dialog = call.dialog as Dialog;
    if (!dialog.acceptRemoteCSeq(request)) {
      if (request.method !== 'ACK') incoming.respond(500, 'CSeq out of order');
      return true;
    }
    switch (request.method) {
      case 'ACK':
        this.#onAck(call, request);
        return true;
      case 'BYE':
        incoming.respond(200);
        this.#end(call, 'remote-bye');
        return true;
      case 'INVITE':
      case 'UPDATE':
        this.#onReinvite(call, incoming);
        return true;
      case 'INFO': {
        const type = request.headers.get('Content-Type')?.split(';')[0]?.trim().toLowerCase();
        if (type === 'application/dtmf-relay') {
          const relay = parseDtmfRelay(Buffer.from(request.body).toString('utf8'));
          if (relay) call.recordDtmf(relay.digit, call.durationMs, 'info');
        }
        incoming.respond(200);
        return true;
      }
      case 'NOTIFY':
      case 'MESSAGE':
      case 'OPTIONS':
        incoming.respond(200, undefined, { headers: [['Allow', ALLOW]] });
        return true;
      default:
        return false; // 501 by the UA core
    }
  }

  // ── INVITE ────────────────────────────────────────────────────────────

  async #onInvite(incoming: IncomingRequest): Promise<void> {
    const { request, flow } = incoming;
    const callId = request.headers.callId() ?? '';
    const from = party(request.headers.from(), request.headers.get('From'));
    const to = party(request.headers.to(), request.headers.get('To'));
    const reject = (status: number, reason?: string, headers: [string, string][] = []) => {
      const response = incoming.respond(status, reason, { toTag: generateTag(), headers });
      this.emit('rejected', { callId, from: from.header, status, reason: response.reason });
    };
    if (this.#calls.has(callId)) {
      // A second INVITE with the same Call-ID but no To tag: a loop or a fork we already took.
      reject(482, 'Loop Detected');
      return;
    }
    if (!this.#accepting) return reject(503, 'Service Unavailable');
    if (this.active.length + this.#pendingInvites.size >= this.#options.maxCalls) {
      return reject(486, 'Busy Here');
    }
    incoming.respond(100, 'Trying');
    this.#pendingInvites.set(callId, incoming);

    let socket: Awaited<ReturnType<RtpPortPool['allocate']>>;
    try {
      socket = await this.#options.ports.allocate(
        this.#options.mediaIp ? { address: bindAddressFor(this.#options.mediaIp) } : {},
      );
    } catch (err) {
      if (!this.#pendingInvites.delete(callId)) return; // cancelled meanwhile
      this.#warn(describeError(err), callId);
      return reject(503, 'No RTP port available', [['Retry-After', '5']]);
    }
    // CANCEL may have arrived while we were allocating.
    if (!this.#pendingInvites.delete(callId)) {
      socket.close();
      return;
    }
    const address = this.#options.mediaIp ?? flow.localAddress;
    const media: LocalMedia = {
      address,
      port: socket.address().port,
      sessionId: String(Date.now()),
      sessionVersion: 1,
    };
    const offer = request.body.byteLength > 0 ? Buffer.from(request.body).toString('utf8') : undefined;
    let negotiated: NegotiatedMedia | undefined;
    let body: string;
    let pendingOffer: string | undefined;
    if (offer !== undefined) {
      const result = negotiateAnswer(offer, media);
      if (!result.ok) {
        socket.close();
        return reject(result.status, result.reason, [
          ['Warning', warningHeader(result.warnCode, result.warning)],
        ]);
      }
      negotiated = result.media;
      body = result.answer;
    } else {
      // RFC 3261 13.2.1: no offer in the INVITE → our offer in the 200, the answer comes in the ACK.
      body = createOffer(media);
      pendingOffer = body;
    }

    const startedAt = new Date();
    const paths = this.#recordingPaths(callId, from, to, startedAt);
    const call = new Call({
      callId,
      from,
      to,
      startedAt,
      wavPath: paths?.wav,
      sidecarPath: paths?.json,
    });
    const localTag = generateTag();
    const dialog = new Dialog(request, localTag, flow);
    call.dialog = dialog;
    call.negotiated = negotiated;
    call.localMedia = { address: media.address, port: media.port };
    call.hangupHandler = (reason) => this.#hangup(call, reason);
    this.#sdp.set(call, { media, sdp: body, pendingOffer });
    this.#calls.set(callId, call);
    this.#dialogs.set(dialog.key, call);
    this.emit('incoming', call);

    // RFC 3261 12.1.1: the 2xx copies Record-Route, and our Contact is the remote target.
    const headers: [string, string][] = request.headers
      .getAll('Record-Route')
      .map((rr) => ['Record-Route', rr]);
    headers.push(
      ['Contact', `<${this.#ua.contactUri}>`],
      ['Allow', ALLOW],
      ['Supported', 'outbound'],
      ['User-Agent', this.#ua.userAgent],
    );
    const ok = incoming.respond(200, 'OK', {
      toTag: localTag,
      headers,
      body: Buffer.from(body, 'utf8'),
      contentType: 'application/sdp',
    });
    call.answeredAt = performance.now();
    this.#retransmitUntilAck(call, flow, ok);

    // Opened after the 200 is on its way (file creation is synchronous disk
    // I/O), before the media session starts: the recording still begins at the answer.
    const wav = paths ? this.#openRecording(call, paths.wav) : undefined;

    const session = new MediaSession({
      socket,
      negotiated: negotiated ?? placeholderMedia(),
      t0: call.answeredAt,
      // Even with a late offer: sending starts once the ACK's answer says where to (the
      // placeholder media below holds it until then).
      sendSilence: this.#options.sendSilence,
      inactivityTimeoutMs: this.#options.mediaTimeoutMs,
      ...(this.#options.outboundFor && { outbound: this.#outboundFor(call) }),
    });
    call.attachMedia(session, wav);
    session.on('inactive', () => void this.#hangup(call, 'media-timeout'));
    call.once('ended', (info) => {
      this.emit('ended', call, info);
    });
    if (negotiated) this.#prime(call);

    this.#timer(call, this.#options.ackTimeoutMs ?? TIMER_H, () => {
      if (!this.#acked.has(call)) void this.#hangup(call, 'no-ack');
    });
    if (this.#options.maxDurationMs > 0) {
      this.#timer(call, this.#options.maxDurationMs, () => void this.#hangup(call, 'max-duration'));
    }
    this.#watchFlow(flow);
    this.emit('answered', call);
    // After 'answered', so listeners attached there hear it; a late offer reports at the ACK.
    if (negotiated) call.setNegotiated(negotiated);
  }

  /**
   * RFC 3261 13.3.1.4: the UAS core retransmits its 2xx (T1 doubling to T2)
   * until the ACK arrives, whatever the transport: a proxy may forward it to
   * the caller over UDP, where it can be lost.
   */
  #retransmitUntilAck(call: Call, flow: SipFlow, response: SipResponse): void {
    let interval = T1;
    const again = () => {
      if (call.ended || this.#acked.has(call) || flow.closed) return;
      flow.send(response);
      interval = Math.min(interval * 2, T2);
      this.#timer(call, interval, again);
    };
    this.#timer(call, interval, again);
  }

  /** One close listener per flow (not per call: hundreds of calls share the registration flow). */
  #watchFlow(flow: SipFlow): void {
    if (this.#watchedFlows.has(flow)) return;
    this.#watchedFlows.add(flow);
    flow.once('close', () => {
      // The flow the dialogs live on is gone: no BYE can reach the callers over it.
      for (const call of [...this.#calls.values()]) {
        if (call.dialog?.flow === flow && !call.ended) this.#end(call, 'flow-lost');
      }
    });
  }

  #prime(call: Call): void {
    call.media?.prime().catch((err) => this.#warn(`priming failed: ${describeError(err)}`, call.id));
  }

  #onAck(call: Call, request: SipRequest): void {
    this.#acked.add(call);
    const local = this.#sdp.get(call);
    if (!local?.pendingOffer) return;
    const offer = local.pendingOffer;
    local.pendingOffer = undefined;
    const answer = Buffer.from(request.body).toString('utf8');
    const result = acceptAnswer(offer, answer);
    if (!result.ok) {
      // RFC 3261 13.2.1: a bad answer in the ACK ends the session with BYE.
      this.#warn(`unusable SDP answer in ACK: ${result.reason}`, call.id);
      void this.#hangup(call, 'error');
      return;
    }
    const first = call.negotiated === undefined;
    call.setNegotiated(result.media);
    call.media?.update(result.media);
    if (first) this.#prime(call);
  }

  /** re-INVITE / UPDATE: a new offer (address, port, hold) or none (we offer again). */
  #onReinvite(call: Call, incoming: IncomingRequest): void {
    const { request } = incoming;
    const local = this.#sdp.get(call);
    const dialog = call.dialog as Dialog;
    if (!local) return void incoming.respond(500);
    dialog.refreshTarget(request);
    const contact: [string, string][] = [['Contact', `<${this.#ua.contactUri}>`]];
    if (request.body.byteLength === 0) {
      if (request.method === 'UPDATE') return void incoming.respond(200, undefined, { headers: contact });
      const offer = nextSdp(local, () => createOffer(local.media));
      local.sdp = offer;
      local.pendingOffer = offer;
      incoming.respond(200, undefined, {
        headers: contact,
        body: Buffer.from(offer),
        contentType: 'application/sdp',
      });
      return;
    }
    const reoffer = Buffer.from(request.body).toString('utf8');
    const result = negotiateAnswer(reoffer, local.media);
    if (!result.ok) {
      // RFC 3261 14.2: a rejected re-INVITE leaves the session as it was.
      incoming.respond(result.status, result.reason, {
        headers: [['Warning', warningHeader(result.warnCode, result.warning)]],
      });
      return;
    }
    const answer = nextSdp(local, () => (negotiateAnswer(reoffer, local.media) as typeof result).answer);
    local.sdp = answer;
    const first = call.negotiated === undefined;
    call.setNegotiated(result.media);
    call.media?.update(result.media);
    if (first) this.#prime(call);
    incoming.respond(200, undefined, {
      headers: contact,
      body: Buffer.from(answer),
      contentType: 'application/sdp',
    });
  }

  #onCancel(incoming: IncomingRequest): void {
    const { request } = incoming;
    const callId = request.headers.callId() ?? '';
    const pending = this.#pendingInvites.get(callId);
    if (pending) {
      // RFC 3261 9.2: 200 to the CANCEL, 487 to the INVITE.
      this.#pendingInvites.delete(callId);
      incoming.respond(200, undefined, { toTag: generateTag() });
      const toTag = generateTag();
      pending.respond(487, 'Request Terminated', { toTag });
      this.emit('rejected', {
        callId,
        from: pending.request.headers.get('From') ?? '',
        status: 487,
        reason: 'cancelled by the caller',
      });
      return;
    }
    if (this.#calls.has(callId)) {
      // Already answered: the CANCEL has no effect (9.2); the caller sends BYE.
      incoming.respond(200, undefined, { toTag: generateTag() });
      return;
    }
    incoming.respond(481, 'Call/Transaction Does Not Exist', { toTag: generateTag() });
  }

  // ── ending ────────────────────────────────────────────────────────────

  /**
   * Hangs up: the BYE goes out first, and the call keeps recording until the
   * far end answers it (its last packets are still in flight, and it keeps
   * sending until it has our BYE), at most BYE_RECORDING_TAIL_MS; only then
   * are the media stopped and the sidecar written. Nothing slow (disk I/O)
   * happens between deciding to hang up and the BYE leaving.
   */
  async #hangup(call: Call, reason: CallEndReason): Promise<void> {
    if (call.ended || this.#closing.has(call)) return call.done.then(() => {});
    this.#closing.set(call, reason);
    this.#clearTimers(call);
    const dialog = call.dialog;
    if (dialog && !dialog.flow.closed) {
      const bye = dialog.createRequest(
        'BYE',
        { transport: dialog.flow.transport, address: dialog.flow.localAddress, port: dialog.flow.localPort },
        this.#ua.userAgent,
      );
      const answered = this.#ua.request(bye, dialog.flow, 5000).then(
        (response) => {
          if (response.status >= 300 && response.status !== 481) {
            this.#warn(`BYE answered ${response.status} ${response.reason}`, call.id);
          }
        },
        (err) => {
          if (!isSoftphoneError(err, ErrorCodes.CLOSED))
            this.#warn(`BYE failed: ${describeError(err)}`, call.id);
        },
      );
      let tail: NodeJS.Timeout | undefined;
      await Promise.race([
        answered,
        new Promise<void>((resolve) => {
          tail = setTimeout(resolve, BYE_RECORDING_TAIL_MS);
        }),
      ]);
      clearTimeout(tail);
    }
    this.#end(call, reason);
  }

  /** Ends the call now (the reason of a hang-up already under way wins over a crossing BYE). */
  #end(call: Call, reason: CallEndReason): CallEndInfo {
    this.#clearTimers(call);
    if (call.dialog) this.#dialogs.delete(call.dialog.key);
    this.#calls.delete(call.id);
    return call.finish(this.#closing.get(call) ?? reason);
  }

  #clearTimers(call: Call): void {
    for (const t of this.#timers.get(call) ?? []) clearTimeout(t);
    this.#timers.delete(call);
  }

  #timer(call: Call, ms: number, fn: () => void): void {
    const t = setTimeout(fn, ms);
    const list = this.#timers.get(call) ?? [];
    list.push(t);
    this.#timers.set(call, list);
  }

  /**
   * Creates the call's WAV. A record directory deleted while we run is made
   * again; anything else that stops the recording is kept on the call
   * (`recordingError`), so call.ended and the sidecar say so.
   */
  #openRecording(call: Call, path: string): WavWriter | undefined {
    try {
      try {
        return WavWriter.open(path);
      } catch (err) {
        if (!isSoftphoneError(err, ErrorCodes.SINK_WRITE_FAILED) || err.details.errno !== 'ENOENT') throw err;
        mkdirSync(dirname(path), { recursive: true });
        this.#warn(`the record directory ${dirname(path)} had disappeared; created it again`, call.id);
        return WavWriter.open(path);
      }
    } catch (err) {
      const error = isSoftphoneError(err)
        ? err
        : new SoftphoneError(ErrorCodes.SINK_WRITE_FAILED, `cannot create ${path}: ${describeError(err)}`);
      call.recordingFailed(error);
      this.#warn(`this call is not recorded: ${describeError(err)}`, call.id);
      return undefined;
    }
  }

  /** The talk-back source comes from user code (`outboundFor`): a throw means none. */
  #outboundFor(call: Call): OutboundSource | undefined {
    try {
      return this.#options.outboundFor?.(call);
    } catch (err) {
      this.emit('warning', {
        code: ErrorCodes.LISTENER_FAILED,
        message: `outboundFor threw; the call has no talk-back audio: ${describeError(err)}`,
        callId: call.id,
      });
      return undefined;
    }
  }

  #recordingPaths(callId: string, from: CallParty, to: CallParty, startedAt: Date) {
    try {
      const custom = this.#options.recordPath?.({ callId, from, to, startedAt });
      if (custom) return { wav: custom, json: custom.replace(/\.wav$/i, '') + '.json' };
      if (!this.#options.recordDir) return undefined;
      return recordingPaths(this.#options.recordDir, { startedAt, callerUser: from.user, callId });
    } catch (err) {
      this.#warn(`recording disabled for this call: ${describeError(err)}`, callId);
      return undefined;
    }
  }

  #warn(message: string, callId?: string): void {
    this.emit('warning', { code: 'CALL_WARNING', message, ...(callId !== undefined && { callId }) });
  }
}

/**
 * How long a call we hang up keeps recording while its BYE awaits an answer:
 * a round trip is plenty for the far end's last packets; a silent peer must
 * not hold the recording (and shutdown) open for the whole BYE transaction.
 */
const BYE_RECORDING_TAIL_MS = 2000;

/**
 * RFC 3264 8: a new SDP of ours carries the next o= version only when it
 * differs from the previous one; an unchanged one keeps the version (and must
 * then be identical). `build` renders at local.media.sessionVersion.
 */
function nextSdp(local: LocalSdp, build: () => string): string {
  const same = build();
  if (same === local.sdp) return same;
  local.media.sessionVersion++;
  return build();
}

/** Methods that only exist inside a dialog (RFC 3261 15, RFC 3311, RFC 3262). */
const DIALOG_ONLY = new Set(['BYE', 'UPDATE', 'PRACK']);

function party(parsed: NameAddr | undefined, header: string | undefined): CallParty {
  const uri = parsed?.uri;
  const user = uri && 'user' in uri ? uri.user : undefined;
  return { header: header ?? '', user, displayName: parsed?.displayName };
}

/** Bind RTP to the media IP when it is a local address; a public (NAT) address is announced but not bound. */
function bindAddressFor(mediaIp: string): string {
  return mediaIp.includes(':') ? '::' : '0.0.0.0';
}

/** Until the ACK brings the answer, the session records but sends nothing. */
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
