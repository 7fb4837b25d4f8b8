/**
 * The library surface: a RingCentral device that registers, stays registered,
 * answers inbound calls and records them. The CLI's `listen` is a thin shell
 * around this class.
 */
import type { Call, CallEndInfo } from './call/call.js';
import { CallManager } from './call/call-manager.js';
import {
  attachPipe,
  attachStream,
  createStream,
  type PipeOptions,
  type StreamOptions,
} from './call/live-sinks.js';
import { deriveInstanceId, type SipInfo } from './config/sip-info.js';
import { describeError, ErrorCodes } from './errors.js';
import { RtpPortPool } from './media/port-pool.js';
import type { OutboundSource } from './media/session.js';
import { SafeEmitter } from './safe-emitter.js';
import type { BackoffOptions } from './sip/transport/backoff.js';
import {
  type ReconnectingEvent,
  type RegisteredEvent,
  type RegistrationFailedEvent,
  UserAgent,
} from './sip/ua/user-agent.js';

export type { SipInfo };

export interface SoftphoneOptions {
  sipInfo: SipInfo;
  /**
   * `urn:uuid:…` that stays the same for this device across restarts (a fresh
   * one per run piles up bindings until the registrar answers 603). Default:
   * `sipInfo.instanceId`, else one derived from the SIP identity.
   */
  instanceId?: string;
  /** Requested registration expiry, seconds (default 600). */
  registrationExpires?: number;
  /** Idle-flow keep-alive (RFC 5626 CRLFCRLF), ms; default 30 000, 0 disables. */
  keepAliveIntervalMs?: number;
  /** Skip TLS certificate verification (explicit opt-out only). */
  tlsInsecure?: boolean;
  /** Extra CA certificates (PEM) to trust for TLS. */
  tlsCa?: string | string[];
  /**
   * How errors name where each proxy was set (the CLI passes
   * `resolveSipInfo().proxySettingNames`). Default `sipInfo.outboundProxy`
   * and `sipInfo.outboundProxyBackup`.
   */
  proxySettingNames?: { outboundProxy?: string; outboundProxyBackup?: string };
  /** Reconnect backoff. */
  backoff?: BackoffOptions;
  /** Record every call as WAV + JSON sidecar into this directory. */
  recordDir?: string;
  /** Choose the WAV path per call yourself (return undefined to not record that call). */
  recordPath?: (call: {
    callId: string;
    from: Call['from'];
    to: Call['to'];
    startedAt: Date;
  }) => string | undefined;
  /** Concurrent calls; more get 486 Busy Here. Default 10. */
  maxCalls?: number;
  /** UDP port range for RTP, one port per call. Default 20000-29999. */
  rtpPorts?: { min: number; max: number };
  /** Address put in our SDP; default: the local address of the SIP connection. */
  mediaIp?: string;
  /** Send RTP silence like a phone does after priming. Default true. */
  sendSilence?: boolean;
  /** Hang up when no RTP arrives for this long (ms); 0 disables. Default 60 000. */
  mediaTimeoutMs?: number;
  /** Hang up calls after this long (ms); 0 disables. Default 4 h. */
  maxCallDurationMs?: number;
  /** Talk-back audio for a call (your own source; `stream` brings its own). */
  outboundFor?: (call: Call) => OutboundSource | undefined;
  /** Pipe each call's audio to a speech engine process. */
  pipe?: PipeOptions;
  /** Stream each call's audio to a WebSocket server (Twilio Media Streams format), both ways. */
  stream?: StreamOptions;
}

export interface SoftphoneEvents {
  registered: [event: RegisteredEvent];
  registrationFailed: [event: RegistrationFailedEvent];
  reconnecting: [event: ReconnectingEvent];
  unregistered: [];
  connected: [info: { target: string; local: string }];
  disconnected: [info: { target: string; reason: string }];
  /** Raw SIP trace; NOT redacted (the CLI's logger redacts it). */
  sipTrace: [info: { direction: 'send' | 'recv'; flowId: number; text: string }];
  warning: [info: { code: string; message: string; callId?: string }];
  /** An INVITE is being answered (the Call records from the 200 OK on). */
  incomingCall: [call: Call];
  /** The 200 OK went out and the media path is being primed. */
  callAnswered: [call: Call];
  /** An INVITE we did not take: busy, no acceptable codec, cancelled, … */
  callRejected: [info: { callId: string; from: string; status: number; reason: string }];
  callEnded: [call: Call, info: CallEndInfo];
}

export class Softphone extends SafeEmitter<SoftphoneEvents> {
  readonly options: Readonly<SoftphoneOptions>;
  readonly ua: UserAgent;
  readonly calls: CallManager;
  readonly #streams = new WeakMap<Call, ReturnType<typeof createStream>>();

  constructor(options: SoftphoneOptions) {
    super();
    this.options = options;
    // A listener of the user's that throws is reported, never fatal (see SafeEmitter).
    this.setListenerErrorHandler(({ event, error }) =>
      this.emit('warning', {
        code: ErrorCodes.LISTENER_FAILED,
        message: `a '${event}' listener threw (further failures of it are only counted): ${describeError(error)}`,
      }),
    );
    this.ua = new UserAgent({
      credentials: options.sipInfo,
      instanceId: options.instanceId ?? options.sipInfo.instanceId ?? deriveInstanceId(options.sipInfo),
      ...(options.registrationExpires !== undefined && { expires: options.registrationExpires }),
      ...(options.keepAliveIntervalMs !== undefined && { keepAliveIntervalMs: options.keepAliveIntervalMs }),
      ...(options.tlsInsecure && { tlsVerify: false }),
      ...(options.tlsCa !== undefined && { tlsCa: options.tlsCa }),
      proxySettingNames: {
        outboundProxy: 'sipInfo.outboundProxy',
        outboundProxyBackup: 'sipInfo.outboundProxyBackup',
        ...options.proxySettingNames,
      },
      ...(options.backoff !== undefined && { backoff: options.backoff }),
    });
    this.ua.on('registered', (e) => this.emit('registered', e));
    this.ua.on('registrationFailed', (e) => this.emit('registrationFailed', e));
    this.ua.on('reconnecting', (e) => this.emit('reconnecting', e));
    this.ua.on('unregistered', () => this.emit('unregistered'));
    this.ua.on('connected', (e) => this.emit('connected', e));
    this.ua.on('disconnected', (e) => this.emit('disconnected', e));
    this.ua.on('trace', (e) => this.emit('sipTrace', e));
    this.ua.on('warning', (e) => this.emit('warning', e));
    this.calls = new CallManager(this.ua, {
      ports: new RtpPortPool(options.rtpPorts ?? { min: 20000, max: 29999 }),
      mediaIp: options.mediaIp,
      recordDir: options.recordDir,
      recordPath: options.recordPath,
      maxCalls: options.maxCalls ?? 10,
      mediaTimeoutMs: options.mediaTimeoutMs ?? 60_000,
      maxDurationMs: options.maxCallDurationMs ?? 4 * 3600_000,
      sendSilence: options.sendSilence ?? true,
      outboundFor: (call) => {
        if (options.stream) {
          const client = createStream(options.stream);
          this.#streams.set(call, client);
          return client.outbound;
        }
        return options.outboundFor?.(call);
      },
    });
    this.calls.on('incoming', (call) => {
      call.setListenerErrorHandler(({ event, error }) =>
        this.emit('warning', {
          code: ErrorCodes.LISTENER_FAILED,
          message: `a call '${event}' listener threw (further failures of it are only counted; the call goes on): ${describeError(error)}`,
          callId: call.id,
        }),
      );
      call.addStats(
        (): Record<string, number> =>
          call.listenerErrors > 0 ? { listenerErrors: call.listenerErrors } : {},
      );
      this.emit('incomingCall', call);
    });
    this.calls.on('answered', (call) => {
      if (options.pipe) attachPipe(call, options.pipe);
      const client = this.#streams.get(call);
      if (client && options.stream) attachStream(call, client, options.stream);
      this.emit('callAnswered', call);
    });
    this.calls.on('rejected', (info) => this.emit('callRejected', info));
    this.calls.on('ended', (call, info) => this.emit('callEnded', call, info));
    this.calls.on('warning', (w) => this.emit('warning', w));
  }

  /** Calls in progress. */
  get activeCalls(): Call[] {
    return this.calls.active;
  }

  /** Registers; resolves at the first registration, rejects if it is rejected. */
  start(): Promise<void> {
    return this.ua.start();
  }

  /**
   * Hangs up every call (BYE), finishes every recording, unregisters and
   * closes the connection. Idempotent.
   */
  async stop(): Promise<void> {
    await this.calls.closeAll();
    await this.ua.stop();
  }
}
