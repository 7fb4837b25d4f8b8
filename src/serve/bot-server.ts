/**
 * `serve` as a library: the SIP endpoint of RingCentral's bot-partner
 * interface. RingCX connects to us (UDP, TCP or TLS), sends an INVITE for a
 * DID; the bot bots.json names for it answers, records, streams the caller
 * to its engine, sends the engine's intents back as SIP INFO (JSON), and
 * RingCX hangs up.
 *
 * Built from the parts `listen` uses: SipListener (admission, limits,
 * framing) → SipDispatcher (transactions, OPTIONS, malformed requests) →
 * CallManager (routing, one CallSession per call) with the bot's settings
 * per call (the route hook). Every response and in-dialog request goes over
 * the connection the INVITE came on (for UDP: to its source address and
 * port); RingCX never uses our Contact.
 */
import type { Call, CallEndInfo, PlayPcm } from '../call/call.js';
import {
  CallManager,
  type CallOverrides,
  type CallRoute,
  type CallSignalling,
} from '../call/call-manager.js';
import { attachPipe, attachStream, createStream } from '../call/live-sinks.js';
import { DEFAULTS } from '../config/options.js';
import { describeError, ErrorCodes, isSoftphoneError, SoftphoneError } from '../errors.js';
import { loadAudioFile, PLAY_SAMPLE_RATE } from '../media/audio-file.js';
import type { SampleRate } from '../media/codec.js';
import { RtpPortPool } from '../media/port-pool.js';
import { SafeEmitter } from '../safe-emitter.js';
import { defaultSrtpPolicy, type SrtpPolicy } from '../sdp/crypto.js';
import type { MediaStreamClient } from '../sinks/media-stream.js';
import { prepareRecordDir } from '../sinks/record-dir.js';
import type { IntentRecord } from '../sinks/sidecar.js';
import { USER_AGENT } from '../sip/capabilities.js';
import type { SipRequest } from '../sip/message/types.js';
import { parseUri } from '../sip/message/uri.js';
import type { IncomingRequest } from '../sip/transaction/server.js';
import {
  type DropReason,
  type ListenAddress,
  type ListenerLimits,
  type PeerInfo,
  type RefusalReason,
  SipListener,
} from '../sip/transport/listener.js';
import { SipDispatcher } from '../sip/ua/dispatch.js';
import { type Bot, chooseBot } from './bots.js';
import {
  type Intent,
  intentBody,
  intentFromEngineLine,
  intentFromStreamMessage,
  isFinalIntent,
} from './intents.js';

export interface BotServerOptions {
  /** Where to listen: `{ transport: 'tcp' | 'tls' | 'udp', host, port }` (port 0: any free one). */
  listen: readonly ListenAddress[];
  /** Who may connect: the allow-list's test (RingCentral's supernets). */
  admit: (address: string) => boolean;
  /** The certificate and key for tls:// addresses (PEM). */
  tls?: { cert: string; key: string };
  bots: readonly Bot[];
  /** Calls at once over every bot; more get 486. Default: the sum of the bots' maxCalls. */
  maxCalls?: number;
  /** UDP port range for RTP. Default DEFAULTS.rtpPorts. */
  rtpPorts?: { min: number; max: number };
  /** The address in our SDP; default: the local address the call's INVITE arrived on. */
  mediaIp?: string;
  sendSilence?: boolean;
  /** SRTP for every call; default per transport: required over TLS (RingCX), off over TCP and UDP. */
  srtp?: SrtpPolicy;
  /** Force every call's audio rate (WAV, engine, frames); default: each call's negotiated one. */
  sampleRate?: SampleRate;
  /** After a final intent, the BYE we send when the far end has not hung up by then. */
  finalByeTimeoutMs?: number;
  /** The listener's connection limits and deadlines (DEFAULTS.serve). */
  limits?: Partial<ListenerLimits>;
  /** How long our 200 waits for its ACK (Timer H). */
  ackTimeoutMs?: number;
}

/** What the INVITE said, for the engine and the events. */
export interface ServeCallInfo {
  /** The Request-URI's user part, as received. */
  did: string;
  /** The bot that answers. */
  bot: string;
  /** The caller: the From URI's user part (or the From header when it has none). */
  caller: string;
  /** The INVITE's header fields by name, as received; repeated fields joined with ", ". */
  sipHeaders: Record<string, string>;
}

export interface IntentOutcome extends IntentRecord {
  info: Intent;
  /** Why it could not be sent, when it could not (CALL_STATE, SIP_TRANSACTION_TIMEOUT, …). */
  code?: string;
}

export interface BotServerEvents {
  /** Every address is bound. */
  listening: [addresses: ListenAddress[]];
  /** A connection or datagram refused before a byte was read (allow-list, limits). */
  refused: [info: PeerInfo & { reason: RefusalReason }];
  /** An admitted connection closed for its behaviour (silent, trickling, unframeable, TLS failed). */
  dropped: [info: PeerInfo & { reason: DropReason; message: string }];
  /** A call for a bot; it is being answered. */
  incomingCall: [call: Call];
  callAnswered: [call: Call];
  /** An INVITE we did not take (unknown DID 404, busy 486, …). */
  callRejected: [info: { callId: string; from: string; status: number; reason: string }];
  callEnded: [call: Call, info: CallEndInfo];
  /** An intent was sent as INFO (or could not be): its outcome. */
  intent: [call: Call, outcome: IntentOutcome];
  /** The far end did not hang up within finalByeTimeoutMs of the final intent: we did. */
  finalHangup: [call: Call, info: { afterMs: number }];
  warning: [info: { code: string; message: string; callId?: string }];
  /** Raw SIP; NOT redacted (the CLI's logger redacts it). */
  sipTrace: [info: { direction: 'send' | 'recv'; flowId: number; text: string }];
}

interface CallState extends ServeCallInfo {
  botConfig: Bot;
  intents: IntentRecord[];
  /** The intent whose INFO is out, recorded the moment its final response is handled. */
  pending: IntentRecord | undefined;
  /** Intents go out one after another, in order. */
  queue: Promise<void>;
  stream: MediaStreamClient | undefined;
  finalTimer: NodeJS.Timeout | undefined;
  ended: boolean;
}

export class BotServer extends SafeEmitter<BotServerEvents> {
  readonly #options: BotServerOptions;
  readonly #dispatch: SipDispatcher;
  readonly #calls: CallManager;
  readonly #state = new Map<string, CallState>();
  readonly #greetings = new Map<string, PlayPcm>();
  #listener: SipListener | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: BotServerOptions) {
    super();
    if (options.bots.length === 0) {
      throw new SoftphoneError(ErrorCodes.CONFIG_INVALID, 'bots: at least one bot is needed', {
        details: { option: 'bots' },
      });
    }
    this.#options = options;
    this.setListenerErrorHandler(({ event, error }) =>
      this.emit('warning', {
        code: ErrorCodes.LISTENER_FAILED,
        message: `a '${event}' listener threw (further failures of it are only counted): ${describeError(error)}`,
      }),
    );
    this.#dispatch = new SipDispatcher({
      userAgent: () => USER_AGENT,
      warn: (w) => this.emit('warning', w),
      supported: '',
    });
    const dispatch = this.#dispatch;
    const signalling: CallSignalling = {
      identity: { username: 'rc-softphone', domain: 'invalid' },
      userAgent: USER_AGENT,
      flow: undefined,
      registered: false,
      dialogContact: (c) => `<sip:${hostPort(c.localAddress, c.localPort)};transport=${c.transport}>`,
      request: (request, connection, timeoutMs) => {
        if (!connection || connection.closed) {
          return Promise.reject(
            new SoftphoneError(ErrorCodes.SIP_TRANSPORT_CLOSED, 'the call’s connection is gone'),
          );
        }
        const intent = this.#pendingIntent(request);
        return dispatch.client.send(connection, request, {
          ...(timeoutMs !== undefined && { timeoutMs }),
          // The sidecar must hold an intent whose 200 arrives in the same read as RingCX's BYE.
          ...(intent && { onFinal: intent }),
        });
      },
      invite: (connection, request, handlers, timeoutMs) =>
        dispatch.client.invite(connection, request, handlers, timeoutMs === undefined ? {} : { timeoutMs }),
      // RingCX authenticates nobody, and we call nobody.
      answerChallenge: () => ({
        ok: false,
        code: ErrorCodes.SIP_AUTH_REJECTED,
        reason: 'serve answers no digest challenges',
      }),
      onRequest: (handler) => dispatch.onRequest(handler),
      // A listener's calls never move to a new registration: one whose connection is lost ends.
      on: () => signalling,
    };
    const maxCalls = options.maxCalls ?? options.bots.reduce((n, b) => n + b.maxCalls, 0);
    this.#calls = new CallManager(signalling, {
      ports: new RtpPortPool(options.rtpPorts ?? DEFAULTS.rtpPorts),
      mediaIp: options.mediaIp,
      recordDir: undefined,
      maxCalls,
      mediaTimeoutMs: DEFAULTS.mediaTimeoutMs,
      maxCallDurationMs: DEFAULTS.maxCallDurationMs,
      sendSilence: options.sendSilence ?? DEFAULTS.sendSilence,
      ...(options.ackTimeoutMs !== undefined && { ackTimeoutMs: options.ackTimeoutMs }),
      route: (incoming) => this.#route(incoming),
    });
    this.#calls.on('incoming', (call) => this.emit('incomingCall', call));
    this.#calls.on('answered', (call) => this.#answered(call));
    this.#calls.on('rejected', (info) => {
      this.#forget(info.callId);
      this.emit('callRejected', info);
    });
    this.#calls.on('ended', (call, info) => {
      // callInfo() still answers for the listeners; forgotten after them.
      try {
        this.emit('callEnded', call, info);
      } finally {
        this.#forget(call.id);
      }
    });
    this.#calls.on('warning', (w) => this.emit('warning', w));
  }

  /** The bound addresses (with the ports chosen for port 0), once started. */
  get addresses(): ListenAddress[] {
    return this.#listener?.addresses ?? [];
  }

  /** Calls in progress. */
  get activeCalls(): Call[] {
    return this.#calls.active;
  }

  /** The listener's counters (refusals, drops, connections, datagrams). */
  get listenerStats(): SipListener['stats'] | undefined {
    return this.#listener?.stats;
  }

  /** What the INVITE of a call said, which bot answers it, its intents so far (undefined after `callEnded`). */
  callInfo(call: Call): (ServeCallInfo & { intents: readonly IntentRecord[] }) | undefined {
    const s = this.#state.get(call.id);
    return (
      s && { did: s.did, bot: s.bot, caller: s.caller, sipHeaders: s.sipHeaders, intents: [...s.intents] }
    );
  }

  /**
   * Checks every bot's record dir and loads its greeting, then binds every
   * address. Rejects with CONFIG_INVALID (`details.option` naming the bot's
   * setting) before any socket opens, or with the bind error.
   */
  async start(): Promise<void> {
    for (const bot of this.#options.bots) {
      if (bot.recordDir !== undefined) {
        const problem = prepareRecordDir(bot.recordDir);
        if (problem) {
          throw new SoftphoneError(
            ErrorCodes.CONFIG_INVALID,
            `bot "${bot.name}": recordDir ${bot.recordDir}: ${problem.reason}`,
            { cause: problem.cause, details: { option: 'recordDir', bot: bot.name, reason: problem.reason } },
          );
        }
      }
      if (bot.play !== undefined && !this.#greetings.has(bot.play)) {
        try {
          this.#greetings.set(bot.play, {
            pcm: await loadAudioFile(bot.play, PLAY_SAMPLE_RATE),
            sampleRate: PLAY_SAMPLE_RATE,
          });
        } catch (err) {
          throw new SoftphoneError(
            ErrorCodes.CONFIG_INVALID,
            `bot "${bot.name}": play ${describeError(err)}`,
            {
              cause: err,
              details: { option: 'play', bot: bot.name },
            },
          );
        }
      }
    }
    const listener = await SipListener.listen({
      addresses: this.#options.listen,
      admit: this.#options.admit,
      ...(this.#options.tls && { tls: this.#options.tls }),
      ...this.#options.limits,
    });
    this.#listener = listener;
    listener.on('message', (connection, message) => this.#dispatch.message(connection, message));
    listener.on('malformed', (connection, result) => this.#dispatch.malformed(connection, result));
    listener.on('connectionClosed', (connection, error) =>
      this.#dispatch.client.flowClosed(connection, error),
    );
    listener.on('refused', (info) => this.emit('refused', info));
    listener.on('dropped', (info) => this.emit('dropped', info));
    listener.on('trace', (t) =>
      this.emit('sipTrace', { direction: t.direction, flowId: t.connectionId, text: t.text }),
    );
    this.emit('listening', listener.addresses);
  }

  /**
   * Sends `info` as SIP INFO (application/json) in the call's dialog, after
   * any intent still going out; resolves with the outcome (also the `intent`
   * event, and the sidecar). After a final one (`"final": true`) the far end
   * has finalByeTimeoutMs to hang up before we do. Never rejects.
   */
  sendIntent(call: Call, info: Intent, source: IntentRecord['source'] = 'api'): Promise<IntentOutcome> {
    const state = this.#state.get(call.id);
    const atMs = Math.round(call.durationMs);
    const final = isFinalIntent(info);
    const send = async (): Promise<IntentOutcome> => {
      const record: IntentRecord = { atMs, source, final, status: null, reason: '' };
      const outcome: IntentOutcome = { ...record, info };
      const body = intentBody(info);
      if (!body.ok) {
        outcome.reason = body.reason;
        outcome.code = ErrorCodes.CONFIG_INVALID;
      } else {
        if (state) state.pending = record;
        try {
          const r = await call.sendInfo(body.body, 'application/json');
          outcome.status = r.status;
          outcome.reason = r.reason;
        } catch (err) {
          if (isSoftphoneError(err, ErrorCodes.SIP_TRANSACTION_TIMEOUT)) outcome.status = 408;
          outcome.reason = err instanceof Error ? err.message : String(err);
          if (isSoftphoneError(err)) outcome.code = err.code;
        } finally {
          if (state?.pending === record) state.pending = undefined;
        }
      }
      if (!state?.intents.includes(record)) {
        record.status = outcome.status;
        record.reason = outcome.reason;
        state?.intents.push(record);
      }
      this.emit('intent', call, outcome);
      if (final && state && !state.ended && !call.ended) this.#armFinalHangup(call, state);
      return outcome;
    };
    if (!state) return send();
    const next = state.queue.then(send);
    state.queue = next.then(
      () => {},
      () => {},
    );
    return next;
  }

  /** Refuses new calls (503), hangs up every call, waits for them to end, and closes the listener. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#calls.closeAll();
      await this.#listener?.close();
      this.#dispatch.close();
    })();
    return this.#stopping;
  }

  /** Ends every call at once without signalling, recordings finished (a second signal). */
  stopNow(): void {
    this.#calls.abortAll();
  }

  // ── per call ──────────────────────────────────────────────────────────

  #route(incoming: IncomingRequest): CallRoute {
    const { request } = incoming;
    const did = requestUser(request);
    const bot = chooseBot(this.#options.bots, {
      did,
      header: (name) => request.headers.getAll(name),
    });
    if (!bot) return { ok: false, status: 404, reason: 'Not Found' };
    let active = 0;
    for (const s of this.#state.values()) if (s.botConfig === bot && !s.ended) active++;
    if (active >= bot.maxCalls) return { ok: false, status: 486, reason: 'Busy Here' };
    const callId = request.headers.callId() ?? '';
    const state: CallState = {
      did,
      bot: bot.name,
      caller: callerOf(request),
      sipHeaders: sipHeadersOf(request),
      botConfig: bot,
      intents: [],
      pending: undefined,
      queue: Promise.resolve(),
      stream: undefined,
      finalTimer: undefined,
      ended: false,
    };
    this.#state.set(callId, state);
    const host = incoming.flow.localAddress;
    const overrides: CallOverrides = {
      recordDir: bot.recordDir,
      mediaTimeoutMs: bot.mediaTimeoutMs,
      maxCallDurationMs: bot.maxCallDurationMs,
      srtp: this.#options.srtp ?? defaultSrtpPolicy(incoming.flow.transport),
      ...(this.#options.sampleRate !== undefined && { sampleRate: this.#options.sampleRate }),
      aor: `<sip:${did === '' ? 'rc-softphone' : escapeUser(did)}@${host.includes(':') ? `[${host}]` : host}>`,
      sidecarExtra: () => ({ serve: { did: state.did, bot: state.bot, intents: [...state.intents] } }),
      liveSinks: (call, port) => this.#attachSinks(call, state, port),
      ...(bot.codecs && { codecs: bot.codecs }),
      ...(bot.streamUrl !== undefined && {
        outboundFor: () => {
          state.stream = createStream({ url: bot.streamUrl as string });
          return state.stream.outbound;
        },
      }),
    };
    return { ok: true, overrides };
  }

  #answered(call: Call): void {
    this.emit('callAnswered', call);
    const state = this.#state.get(call.id);
    const greeting =
      state?.botConfig.play === undefined ? undefined : this.#greetings.get(state.botConfig.play);
    if (greeting) {
      call
        .play(greeting)
        .catch((err: unknown) =>
          this.emit('warning', { code: 'PLAY_FAILED', message: describeError(err), callId: call.id }),
        );
    }
  }

  #attachSinks(
    call: Call,
    state: CallState,
    port: Parameters<NonNullable<CallOverrides['liveSinks']>>[1],
  ): void {
    const bot = state.botConfig;
    if (bot.pipe !== undefined) {
      attachPipe(call, port, {
        command: bot.pipe,
        graceMs: bot.pipeGraceMs,
        env: {
          RC_SIP_HEADERS: JSON.stringify(state.sipHeaders),
          RC_DID: state.did,
          RC_CALLER: state.caller,
          RC_BOT: state.bot,
        },
      });
      call.on('engine', (line) => {
        const intent = intentFromEngineLine(line.json);
        if (intent) void this.sendIntent(call, intent, 'pipe');
      });
    }
    if (state.stream && bot.streamUrl !== undefined) {
      attachStream(call, port, state.stream, {
        url: bot.streamUrl,
        customParameters: {
          did: state.did,
          caller: state.caller,
          bot: state.bot,
          sipHeaders: JSON.stringify(state.sipHeaders),
        },
      });
      state.stream.on('message', (message) => {
        const intent = intentFromStreamMessage(message);
        if (intent) void this.sendIntent(call, intent, 'stream');
      });
    }
  }

  /**
   * For an INFO going out: records the pending intent of its call as its
   * final response is handled, when the INFO is that intent's (JSON).
   */
  #pendingIntent(request: SipRequest): ((response: { status: number; reason: string }) => void) | undefined {
    if (request.method !== 'INFO') return undefined;
    const state = this.#state.get(request.headers.callId() ?? '');
    const record = state?.pending;
    const type = request.headers.get('Content-Type')?.split(';')[0]?.trim().toLowerCase();
    if (!state || !record || type !== 'application/json') return undefined;
    return (response) => {
      record.status = response.status;
      record.reason = response.reason;
      if (!state.intents.includes(record)) state.intents.push(record);
    };
  }

  #armFinalHangup(call: Call, state: CallState): void {
    if (state.finalTimer) return;
    const afterMs = this.#options.finalByeTimeoutMs ?? DEFAULTS.serve.finalByeTimeoutMs;
    state.finalTimer = setTimeout(() => {
      state.finalTimer = undefined;
      if (call.ended) return;
      this.emit('finalHangup', call, { afterMs });
      void call.hangup();
    }, afterMs);
  }

  #forget(callId: string): void {
    const state = this.#state.get(callId);
    if (!state) return;
    state.ended = true;
    if (state.finalTimer) clearTimeout(state.finalTimer);
    this.#state.delete(callId);
  }
}

/** The Request-URI's user part (the DID), '' when it has none. */
function requestUser(request: SipRequest): string {
  const uri = parseUri(request.uri);
  if (uri && 'user' in uri && typeof uri.user === 'string') return uri.user;
  // tel:+16505550100 (RFC 3966): the number is the whole opaque part.
  if (uri && 'opaque' in uri && uri.scheme === 'tel') return (uri.opaque.split(';')[0] ?? '').trim();
  return '';
}

function callerOf(request: SipRequest): string {
  const from = request.headers.from();
  const uri = from?.uri as { user?: string } | undefined;
  return uri?.user ?? request.headers.get('From') ?? '';
}

/** Credentials never reach an engine, a stream or a log line. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization']);

/**
 * Every header field of the INVITE, by name as received, repeated fields
 * joined (RFC 3261 7.3.1); Authorization and Proxy-Authorization left out.
 */
export function sipHeadersOf(request: SipRequest): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  request.headers.forEach((value, name) => {
    if (CREDENTIAL_HEADERS.has(name.toLowerCase())) return;
    out[name] = name in out ? `${out[name]}, ${value}` : value;
  });
  return { ...out };
}

function escapeUser(user: string): string {
  return user.replace(
    /[^A-Za-z0-9\-_.!~*'()&=+$,;?/]/g,
    (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
