/**
 * The library surface: a RingCentral device that registers, stays registered,
 * answers inbound calls and records them. The CLI's `listen` is a thin shell
 * around this class.
 */
import type { Call, CallEndInfo } from './call/call.js';
import { CallManager, type DialOptions } from './call/call-manager.js';
import {
  attachPipe,
  attachStream,
  createStream,
  type PipeOptions,
  type StreamOptions,
} from './call/live-sinks.js';
import { resolveOptions } from './config/options.js';
import { deriveInstanceId, type SipInfo, tlsCertificatePem } from './config/sip-info.js';
import { describeError, ErrorCodes, SoftphoneError } from './errors.js';
import { type CodecName, prepareCodecs, type SampleRate } from './media/codec.js';
import { RtpPortPool } from './media/port-pool.js';
import type { OutboundSource } from './media/session.js';
import { SafeEmitter } from './safe-emitter.js';
import type { SrtpPolicy } from './sdp/crypto.js';
import { prepareRecordDir, type RecordDirProblem } from './sinks/record-dir.js';
import type { BackoffOptions } from './sip/transport/backoff.js';
import {
  type ReconnectingEvent,
  type RegisteredEvent,
  type RegistrationFailedEvent,
  UserAgent,
} from './sip/ua/user-agent.js';

export type { SipInfo };

/**
 * Option values the constructor cannot work with (a malformed mediaIp or
 * stream URL, an empty recordDir) throw CONFIG_INVALID with `details.option`
 * naming the option; a recordDir that cannot be written makes `start()` reject.
 */
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
  /**
   * Record every call as WAV + JSON sidecar into this directory, created if
   * missing. `start()` rejects (CONFIG_INVALID) when it cannot be written.
   */
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
  /** Take RTP ports from this pool (shared by the devices of a fleet) instead of one of our own over rtpPorts. */
  portPool?: RtpPortPool;
  /** IPv4 or IPv6 address put in our SDP; default: the local address of the SIP connection. */
  mediaIp?: string;
  /** Send RTP silence like a phone does after priming. Default true. */
  sendSilence?: boolean;
  /**
   * After a stall of this process longer than this (ms), sending skips ahead
   * (the timestamp jump tells the far end time passed) instead of sending the
   * backlog at once. Default 100; smoke uses 1000.
   */
  sendCatchUpMs?: number;
  /** Hang up when no RTP arrives for this long (ms); 0 disables. Default 60 000. */
  mediaTimeoutMs?: number;
  /** Hang up calls after this long (ms); 0 disables. Default 4 h. */
  maxCallDurationMs?: number;
  /** Answer inbound calls at once (default true); false: they ring until call.accept()/reject(). */
  autoAnswer?: boolean;
  /** How long a call rings (ms): outbound calls are cancelled after it, unanswered inbound ones get 480. Default 60 000. */
  ringTimeoutMs?: number;
  /** Codec preference, most preferred first (default opus, PCMU, PCMA: Opus when the far end offers it). */
  codecs?: CodecName[];
  /**
   * Force the audio rate of every call (WAV, frames, engine pipe): 8000 or
   * 16000. Default: each call's own, 16000 for wideband Opus, 8000 for G.711.
   */
  sampleRate?: SampleRate;
  /**
   * SDES SRTP (RFC 4568): `required` (only RTP/SAVP or a=crypto offers; ours
   * is RTP/SAVP), `optional` (either; ours offers a=crypto on RTP/AVP), `off`.
   * Default: required on TLS (as RingCentral expects), off on TCP.
   */
  srtp?: SrtpPolicy;
  /**
   * Follow a REFER from the far end (a blind transfer, we are the
   * transferee): call the Refer-To target with Referred-By, report its
   * progress back with NOTIFY, and end the call once the new one is answered
   * (reason `transferred`). Default false: REFERs are declined with 603 and
   * reported as the call's `refer` event.
   */
  followRefer?: boolean;
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
  /**
   * A call for us: with autoAnswer (the default) it is being answered (it
   * records from the 200 OK on); without, it rings until call.accept(),
   * decline(), reject() or redirect().
   */
  incomingCall: [call: Call];
  /** A call we placed (softphone.call()): the INVITE is out. */
  outgoingCall: [call: Call];
  /**
   * The 200 OK went out and the media path is being primed. The live sinks
   * (pipe, stream) start right after the listeners ran, so a listener that
   * subscribes to the call's sink events here sees every one of them.
   */
  callAnswered: [call: Call];
  /** An INVITE we did not take: busy, no acceptable codec, cancelled, … */
  callRejected: [info: { callId: string; from: string; status: number; reason: string }];
  callEnded: [call: Call, info: CallEndInfo];
}

export class Softphone extends SafeEmitter<SoftphoneEvents> {
  readonly options: Readonly<SoftphoneOptions>;
  readonly #codecs: readonly CodecName[];
  readonly ua: UserAgent;
  readonly calls: CallManager;
  readonly #streams = new WeakMap<Call, ReturnType<typeof createStream>>();

  constructor(options: SoftphoneOptions) {
    super();
    const resolved = resolveOptions({ ...options, transport: options.sipInfo.transport });
    this.options = options;
    this.#codecs = resolved.codecs;
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
      expires: resolved.registrationExpires,
      keepAliveIntervalMs: resolved.keepAliveIntervalMs,
      ...(options.tlsInsecure && { tlsVerify: false }),
      ...trustedCas(options),
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
      ports: options.portPool ?? new RtpPortPool(resolved.rtpPorts),
      mediaIp: resolved.mediaIp,
      recordDir: resolved.recordDir,
      recordPath: options.recordPath,
      maxCalls: resolved.maxCalls,
      mediaTimeoutMs: resolved.mediaTimeoutMs,
      maxCallDurationMs: resolved.maxCallDurationMs,
      sendSilence: resolved.sendSilence,
      sendCatchUpMs: resolved.sendCatchUpMs,
      autoAnswer: resolved.autoAnswer,
      ringTimeoutMs: resolved.ringTimeoutMs,
      codecs: resolved.codecs,
      ...(options.followRefer && { followRefer: true }),
      ...(resolved.sampleRate !== undefined && { sampleRate: resolved.sampleRate }),
      srtp: resolved.srtp,
      outboundFor: (call) => {
        if (options.stream) {
          const client = createStream(options.stream);
          this.#streams.set(call, client);
          return client.outbound;
        }
        return options.outboundFor?.(call);
      },
      // Called after the callAnswered listeners, so a sink that fails as it starts
      // (a refused stream URL or header) reaches the sinkError listeners they added.
      liveSinks: (call, port) => {
        if (options.pipe) attachPipe(call, port, options.pipe);
        const client = this.#streams.get(call);
        if (client && options.stream) attachStream(call, port, client, options.stream);
      },
    });
    this.calls.on('incoming', (call) => this.emit('incomingCall', call));
    this.calls.on('answered', (call) => this.emit('callAnswered', call));
    this.calls.on('rejected', (info) => this.emit('callRejected', info));
    this.calls.on('ended', (call, info) => this.emit('callEnded', call, info));
    this.calls.on('warning', (w) => this.emit('warning', w));
  }

  /** Calls in progress. */
  get activeCalls(): Call[] {
    return this.calls.active;
  }

  /** True while the device is registered. */
  get registered(): boolean {
    return this.ua.registered;
  }

  /**
   * Calls `target` (a number, an extension or a SIP URI) over the registered
   * connection. Resolves with the Call once the INVITE is out; its events say
   * the rest (`progress`, `answered`, `failed`, `ended`). Rejects when not
   * registered or the target is not a valid number or URI.
   */
  async call(target: string, options: DialOptions = {}): Promise<Call> {
    const call = await this.calls.dial(target, options);
    this.emit('outgoingCall', call);
    return call;
  }

  /**
   * Ends every call at once without signalling, every recording finished
   * synchronously: for a forced exit (a second Ctrl-C). Prefer stop().
   */
  stopNow(): void {
    this.calls.abortAll();
  }

  /**
   * Checks recordDir (creating it if missing), then registers; resolves at
   * the first registration. Rejects with CONFIG_INVALID (details.option
   * 'recordDir') before any network I/O when recordings cannot be written
   * there, or with the registrar's refusal.
   */
  async start(): Promise<void> {
    const dir = this.options.recordDir;
    if (dir !== undefined) {
      const problem = prepareRecordDir(dir);
      if (problem) throw recordDirError(dir, problem);
    }
    // Opus's WASM is loaded before the first call can need it (a broken install fails here, not mid-call).
    await prepareCodecs(this.#codecs);
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

/** TLS trust beyond the system CAs: the user's (`tlsCa`) and the certificate sip-provision gave the device. */
function trustedCas(options: SoftphoneOptions): { tlsCa?: string[] } {
  const extra = [...[options.tlsCa ?? []].flat()];
  const provisioned = tlsCertificatePem(options.sipInfo);
  if (provisioned !== undefined) extra.push(provisioned);
  return extra.length > 0 ? { tlsCa: extra } : {};
}

function recordDirError(dir: string, problem: RecordDirProblem): SoftphoneError {
  return new SoftphoneError(ErrorCodes.CONFIG_INVALID, `recordDir ${dir}: ${problem.reason}`, {
    cause: problem.cause,
    details: {
      option: 'recordDir',
      path: dir,
      reason: problem.reason,
      ...(problem.errno !== undefined && { errno: problem.errno }),
    },
  });
}
