/**
 * The call registry and INVITE server (RFC 3261 13, 15, 9): admits or
 * refuses new INVITEs, routes every other request to the call whose dialog
 * it belongs to, places outbound calls, and ends every call on shutdown or
 * when the connection its dialog lives on is lost. Each call is owned by its
 * CallSession; this module only decides who gets what.
 */
import { EventEmitter } from 'node:events';
import { DEFAULTS } from '../config/options.js';
import { ErrorCodes, SoftphoneError } from '../errors.js';
import type { CodecName, SampleRate } from '../media/codec.js';
import type { RtpPortPool } from '../media/port-pool.js';
import type { OutboundSource } from '../media/session.js';
import type { SrtpPolicy } from '../sdp/crypto.js';
import { ALLOW } from '../sip/capabilities.js';
import { requestDialogKey } from '../sip/dialog/dialog.js';
import type { DialogHost } from '../sip/dialog/invite-session.js';
import { generateCallId, generateTag } from '../sip/message/build.js';
import type { IncomingRequest } from '../sip/transaction/server.js';
import type { SipConnection } from '../sip/transport/connection.js';
import type { RequestHandler } from '../sip/ua/dispatch.js';
import type { UserAgent } from '../sip/ua/user-agent.js';
import type { Call, CallEndInfo, CallParty } from './call.js';
import { type CallContext, CallSession, type SessionEvents } from './call-session.js';

/**
 * What the registry needs of the SIP layer under it: a registered device's
 * UserAgent (calls come over its flow, and move to the next flow after a
 * reconnect), or the bot-partner listener's endpoint (`serve`: calls come
 * over the connections the far end opened).
 */
export interface CallSignalling
  extends Pick<UserAgent, 'userAgent' | 'request' | 'invite' | 'answerChallenge' | 'registered'> {
  readonly identity: { readonly username: string; readonly domain: string };
  /** Where new outbound calls go (none for a listener). */
  readonly flow: SipConnection | undefined;
  /** Our Contact header value for a dialog on `connection`. */
  dialogContact(connection: SipConnection): string;
  onRequest(handler: RequestHandler): void;
  /** A new registration: calls whose connection was lost move to the new flow. */
  on(event: 'registered', listener: () => void): unknown;
}

/** Per-call settings that replace the manager's for one inbound call (serve: the bot's). */
export type CallOverrides = Partial<
  Pick<
    CallContext,
    | 'recordDir'
    | 'recordPath'
    | 'codecs'
    | 'srtp'
    | 'mediaTimeoutMs'
    | 'maxCallDurationMs'
    | 'sendSilence'
    | 'outboundFor'
    | 'liveSinks'
    | 'aor'
    | 'sidecarExtra'
    | 'sampleRate'
  >
>;

/** Who answers an INVITE: the manager's settings with these overrides, or a refusal. */
export type CallRoute =
  | { ok: true; overrides?: CallOverrides }
  | { ok: false; status: number; reason: string };

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
  maxCallDurationMs: number;
  /** Send RTP silence after priming, like a phone. */
  sendSilence: boolean;
  /** After a stall longer than this (ms), sending skips ahead (default 100). */
  sendCatchUpMs?: number;
  /** Force the calls' audio rate (8000 or 16000); default: per call, the negotiated one. */
  sampleRate?: SampleRate;
  /** How long to wait for the ACK of our 200 (Timer H, 32 s). */
  ackTimeoutMs?: number;
  /** Codec preference, most preferred first. */
  codecs?: readonly CodecName[];
  /** SDES SRTP policy (default off; the Softphone picks required on TLS). */
  srtp?: SrtpPolicy;
  /** Follow the far end's REFER (blind transfer, we are the transferee); default false: 603. */
  followRefer?: boolean;
  /** Talk-back audio source per call (WebSocket streams). */
  outboundFor?: ((call: Call) => OutboundSource | undefined) | undefined;
  /** Answer inbound calls at once (default); false: they ring until call.accept()/reject(). */
  autoAnswer?: boolean;
  /** How long an unanswered inbound call rings (480 after), and an outbound one waits for an answer (CANCEL). */
  ringTimeoutMs?: number;
  /** Live sinks for an answered call (engine pipe, media stream), attached after its listeners. */
  liveSinks?: (call: Call, port: LiveSinkPort) => void;
  /**
   * Chooses what answers each new INVITE (serve: the bot its DID names),
   * after the manager's own checks; a refusal is sent as is (404, 486, …).
   */
  route?: (incoming: IncomingRequest) => CallRoute;
}

/** How live sinks join a call. */
export interface LiveSinkPort {
  addSink: CallSession['addSink'];
  addStats: CallSession['addStats'];
}

export interface CallManagerEvents {
  incoming: [call: Call];
  answered: [call: Call];
  rejected: [info: { callId: string; from: string; status: number; reason: string }];
  ended: [call: Call, info: CallEndInfo];
  warning: [info: { code: string; message: string; callId?: string }];
}

export interface DialOptions {
  /** Extra header fields for the INVITE. */
  headers?: [string, string][];
  /** Give up (CANCEL) when nobody answers within this long; default the manager's ringTimeoutMs. */
  ringTimeoutMs?: number;
}

/** Methods that only exist inside a dialog (RFC 3261 15, RFC 3311, RFC 3262). */
const DIALOG_ONLY = new Set(['BYE', 'UPDATE', 'PRACK']);
/** Default ring timeout, both ways. */
const RING_TIMEOUT_MS = DEFAULTS.ringTimeoutMs;

export class CallManager extends EventEmitter<CallManagerEvents> {
  readonly #ua: CallSignalling;
  readonly #options: CallManagerOptions;
  readonly #ctx: CallContext;
  readonly #events: SessionEvents;
  /** Every session not yet ended, by Call-ID. */
  readonly #sessions = new Map<string, CallSession>();
  /** Established dialogs, by dialog key. */
  readonly #dialogs = new Map<string, CallSession>();
  readonly #watchedFlows = new WeakSet<SipConnection>();
  #accepting = true;

  constructor(ua: CallSignalling, options: CallManagerOptions) {
    super();
    this.#ua = ua;
    this.#options = options;
    const host: DialogHost = {
      get userAgent() {
        return ua.userAgent;
      },
      contact: (connection) => ua.dialogContact(connection),
      request: (request, connection, timeoutMs) => ua.request(request, connection, timeoutMs),
      invite: (connection, request, handlers) => ua.invite(connection, request, handlers),
    };
    this.#ctx = {
      host,
      ports: options.ports,
      mediaIp: options.mediaIp,
      recordDir: options.recordDir,
      recordPath: options.recordPath,
      mediaTimeoutMs: options.mediaTimeoutMs,
      maxCallDurationMs: options.maxCallDurationMs,
      codecs: options.codecs ?? DEFAULTS.codecs,
      srtp: options.srtp ?? 'off',
      sendSilence: options.sendSilence,
      sendCatchUpMs: options.sendCatchUpMs,
      sampleRate: options.sampleRate,
      ackTimeoutMs: options.ackTimeoutMs,
      outboundFor: options.outboundFor,
      aor: `<sip:${ua.identity.username}@${ua.identity.domain}>`,
      domain: ua.identity.domain,
      answerChallenge: (response, request, digest) => ua.answerChallenge(response, request, digest),
      liveSinks: options.liveSinks,
      warn: (message, callId, code) => this.#warn(message, callId, code),
      ...(options.followRefer && {
        transferTo: (target: string, referredBy: string) =>
          this.dial(target, { headers: [['Referred-By', referredBy]] }),
      }),
    };
    this.#events = {
      incoming: (call) => this.emit('incoming', call),
      answered: (call) => this.emit('answered', call),
      rejected: (info) => this.emit('rejected', info),
      ended: (call, info) => this.emit('ended', call, info),
      dialog: (session, key) => this.#noteDialog(session, key),
      removed: (session) => {
        if (this.#sessions.get(session.callId) === session) this.#sessions.delete(session.callId);
      },
    };
    ua.onRequest((incoming) => this.#handle(incoming));
    // A new registration (after a reconnect): move every detached call to the new flow.
    ua.on('registered', () => {
      const flow = ua.flow;
      if (!flow) return;
      for (const session of [...this.#sessions.values()]) {
        if (session.detached) {
          this.#watchFlow(flow);
          void session.rehome(flow);
        }
      }
    });
  }

  /** Calls not yet ended. */
  get active(): Call[] {
    return [...this.#sessions.values()].map((s) => s.call).filter((c) => !c.ended);
  }

  /**
   * Places a call to `target`: a SIP URI, or a number or extension (sent to
   * the device's domain). Resolves with the Call as soon as the INVITE is
   * out; its events tell the rest (progress, answered, failed, ended).
   */
  async dial(target: string, options: DialOptions = {}): Promise<Call> {
    const flow = this.#ua.flow;
    if (!flow || !this.#ua.registered) {
      throw new SoftphoneError(ErrorCodes.SIP_TRANSPORT_CLOSED, 'not registered: cannot place a call');
    }
    if (!this.#accepting) throw new SoftphoneError(ErrorCodes.CLOSED, 'the softphone is stopping');
    const requestUri = targetUri(target, this.#ua.identity.domain);
    const callId = generateCallId();
    const session = await CallSession.outbound(this.#ctx, this.#events, flow, {
      requestUri,
      to: `<${requestUri}>`,
      callId,
      ringTimeoutMs: options.ringTimeoutMs ?? this.#options.ringTimeoutMs ?? RING_TIMEOUT_MS,
      ...(options.headers && { headers: options.headers }),
    });
    this.#sessions.set(callId, session);
    this.#watchFlow(flow);
    return session.call;
  }

  /** Stop answering (503 from now on), hang up every call and wait until each has ended. */
  async closeAll(): Promise<void> {
    this.#accepting = false;
    const sessions = [...this.#sessions.values()];
    // Every BYE/CANCEL goes out before any call is finished (no BYE waits for another's sidecar).
    await Promise.all(sessions.map((s) => s.close('shutdown')));
    await Promise.all(sessions.map((s) => s.done));
  }

  /** Ends every call now without signalling, recordings finished synchronously (a forced exit). */
  abortAll(): void {
    this.#accepting = false;
    for (const s of [...this.#sessions.values()]) void s.close('shutdown', { signal: false, exiting: true });
  }

  // ── dispatch ──────────────────────────────────────────────────────────

  #handle(incoming: IncomingRequest): boolean {
    const { request } = incoming;
    if (request.method === 'CANCEL') {
      this.#onCancel(incoming);
      return true;
    }
    const hasToTag = request.headers.to()?.params.has('tag') ?? false;
    if (!hasToTag) {
      if (request.method === 'INVITE') {
        this.#onInvite(incoming);
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
        incoming.respond(200, undefined, { toTag: generateTag(), headers: [['Allow', ALLOW]] });
        return true;
      }
      return false; // 501 by the UA core
    }
    const key = requestDialogKey(request);
    const session = key ? this.#dialogs.get(key) : undefined;
    if (!session || session.call.ended) {
      if (request.method === 'ACK') return true; // nothing to answer
      // RFC 3261 12.2.2: a request for a dialog we do not know.
      incoming.respond(481, 'Call/Transaction Does Not Exist');
      return true;
    }
    session.receive(incoming);
    return true;
  }

  #onInvite(incoming: IncomingRequest): void {
    const { request } = incoming;
    const callId = request.headers.callId() ?? '';
    const from = request.headers.get('From') ?? '';
    const reject = (status: number, reason: string, headers: [string, string][] = []) => {
      const response = incoming.respond(status, reason, { toTag: generateTag(), headers });
      this.emit('rejected', { callId, from, status, reason: response.reason });
    };
    if (this.#sessions.has(callId)) {
      // A second INVITE with the same Call-ID but no To tag: a loop or a fork we already took.
      reject(482, 'Loop Detected');
      return;
    }
    if (!this.#accepting) {
      reject(503, 'Service Unavailable');
      return;
    }
    const route = this.#route(incoming);
    if (!route.ok) {
      reject(route.status, route.reason);
      return;
    }
    if (this.#sessions.size >= this.#options.maxCalls) {
      reject(486, 'Busy Here');
      return;
    }
    incoming.respond(100, 'Trying');
    const ctx = route.overrides ? { ...this.#ctx, ...route.overrides } : this.#ctx;
    const session = CallSession.inbound(ctx, this.#events, incoming, {
      autoAnswer: this.#options.autoAnswer ?? true,
      ringTimeoutMs: this.#options.ringTimeoutMs ?? RING_TIMEOUT_MS,
    });
    this.#sessions.set(callId, session);
    this.#watchFlow(incoming.flow);
  }

  /** The route hook is user code (a library's serve): a throw refuses the call, never the process. */
  #route(incoming: IncomingRequest): CallRoute {
    if (!this.#options.route) return { ok: true };
    try {
      return this.#options.route(incoming);
    } catch (err) {
      this.#warn(
        `choosing who answers the call failed: ${err instanceof Error ? err.message : String(err)}`,
        incoming.request.headers.callId(),
        ErrorCodes.LISTENER_FAILED,
      );
      return { ok: false, status: 500, reason: 'Server Internal Error' };
    }
  }

  #onCancel(incoming: IncomingRequest): void {
    const callId = incoming.request.headers.callId() ?? '';
    const session = this.#sessions.get(callId);
    if (session) {
      session.cancelReceived(incoming);
      return;
    }
    incoming.respond(481, 'Call/Transaction Does Not Exist', { toTag: generateTag() });
  }

  #noteDialog(session: CallSession, key: string | undefined): void {
    for (const [k, s] of this.#dialogs) if (s === session && k !== key) this.#dialogs.delete(k);
    if (key !== undefined) this.#dialogs.set(key, session);
  }

  /** One close listener per flow (not per call: hundreds of calls share the registration flow). */
  #watchFlow(flow: SipConnection): void {
    if (this.#watchedFlows.has(flow)) return;
    this.#watchedFlows.add(flow);
    flow.once('close', () => {
      // The flow the dialogs live on is gone. Answered calls keep their media and
      // wait to be re-homed on the next flow (issue 11); the rest cannot go on.
      for (const session of [...this.#sessions.values()]) {
        if (session.connection === flow && !session.call.ended) session.detach();
      }
    });
  }

  #warn(message: string, callId?: string, code = 'CALL_WARNING'): void {
    this.emit('warning', { code, message, ...(callId !== undefined && { callId }) });
  }
}

/**
 * The Request-URI for a dial target: a SIP(S) or tel URI as given, else a
 * number or extension at the device's domain (spaces, dashes, dots and
 * parentheses in a phone number are dropped; a leading + is kept).
 */
export function targetUri(target: string, domain: string): string {
  const t = target.trim();
  if (/^(sips?|tel):/i.test(t)) return t;
  if (t.includes('@')) return `sip:${t}`;
  const user = /^[+\d][\d\s().-]*$/.test(t) ? t.replace(/[\s().-]/g, '') : t;
  if (!/^[A-Za-z0-9+._~*#-]+$/.test(user)) {
    throw new SoftphoneError(
      ErrorCodes.CONFIG_INVALID,
      `"${target}" is not a number, an extension or a SIP URI`,
    );
  }
  return `sip:${user}@${domain}`;
}
