/**
 * The UA core: one registration flow to the outbound proxy, kept alive and
 * registered for as long as the process runs. It owns the flow, the client and
 * server transactions and the registration timers; it answers OPTIONS itself
 * and hands every other request to the handler the call layer installs
 * (501 when nobody takes it). Responses always go back over the flow the
 * request came on: RingCentral never uses the Contact address.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { type ErrorCode, ErrorCodes, isSoftphoneError, SoftphoneError } from '../../errors.js';
import { DigestSession, parseChallenge } from '../auth/digest.js';
import { USER_AGENT } from '../capabilities.js';
import { generateBranch, generateCallId, generateTag } from '../message/build.js';
import { Headers } from '../message/headers.js';
import type { SipRequest, SipResponse } from '../message/types.js';
import type { InviteClientHandlers, InviteClientTransaction } from '../transaction/client.js';
import type { IncomingRequest } from '../transaction/server.js';
import { type BackoffOptions, backoffDelay } from '../transport/backoff.js';
import type { SipConnection } from '../transport/connection.js';
import {
  type FlowTarget,
  PONG_TIMEOUT_MS,
  SipFlow,
  type TraceDirection,
  type TransportName,
} from '../transport/flow.js';
import { type RequestHandler, SipDispatcher } from './dispatch.js';
import {
  buildRegister,
  contactHeader,
  contactUri,
  grantedExpires,
  minExpires,
  type RegistrationIdentity,
  refreshDelayMs,
  registerFailurePolicy,
  retryAfterSeconds,
  supportsOutbound,
} from './registration.js';

export interface SipCredentials {
  username: string;
  password: string;
  /** Digest username (RingCentral's authorizationId). */
  authorizationId: string;
  domain: string;
  outboundProxy: FlowTarget;
  outboundProxyBackup?: FlowTarget | undefined;
  transport: TransportName;
}

export interface UserAgentOptions {
  credentials: SipCredentials;
  /** `urn:uuid:…`, persisted per device so the registrar replaces rather than adds bindings. */
  instanceId: string;
  /** Requested registration expiry in seconds (default 600). */
  expires?: number;
  userAgent?: string;
  keepAliveIntervalMs?: number;
  pongTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** TLS certificate verification; only `false` (the user's explicit opt-out) disables it. */
  tlsVerify?: boolean;
  tlsCa?: string | string[];
  /**
   * Where each proxy was configured, for errors that ask the user to fix it:
   * a variable (`SIP_INFO_OUTBOUND_PROXY`) or a file field
   * (`sipInfo.outboundProxy in ./sip-info.json`). Default: the credential's
   * field name.
   */
  proxySettingNames?: { outboundProxy?: string; outboundProxyBackup?: string };
  /** Host name resolver for the proxies (default: the system's); tests inject failures. */
  lookup?: net.LookupFunction;
  backoff?: BackoffOptions;
  /** Timer F override (tests). */
  transactionTimeoutMs?: number;
  /** How long shutdown waits for the un-REGISTER answer. */
  unregisterTimeoutMs?: number;
}

export interface RegisteredEvent {
  /** Seconds the registrar granted. */
  expires: number;
  /** True for the first registration of this run. */
  first: boolean;
  target: string;
  refreshInMs: number;
}

export interface RegistrationFailedEvent {
  status: number | undefined;
  reason: string;
  code: ErrorCode;
  /** False when this rejection ends start() (the first registration of the run). */
  willRetry: boolean;
  /** When the next REGISTER goes out (ms from now; to the backup proxy if `reconnecting` names it). */
  retryInMs: number | undefined;
  /** The server's Retry-After in seconds (bounded, see MAX_RETRY_AFTER_S), when it gave one. */
  retryAfter: number | undefined;
}

export interface ReconnectingEvent {
  attempt: number;
  delayMs: number;
  target: string;
  reason: string;
}

export type { IncomingRequest, RequestHandler };

export interface UserAgentEvents {
  connected: [info: { target: string; local: string }];
  registered: [event: RegisteredEvent];
  registrationFailed: [event: RegistrationFailedEvent];
  reconnecting: [event: ReconnectingEvent];
  unregistered: [];
  /** A flow went away (the reconnect follows). */
  disconnected: [info: { target: string; reason: string }];
  /** Raw SIP as sent/received (NOT redacted: the logger redacts). */
  trace: [info: { direction: TraceDirection; flowId: number; text: string }];
  /** Something odd but survivable: malformed message, stray response, bad request. */
  warning: [info: { code: ErrorCode | 'SIP_STRAY_RESPONSE'; message: string }];
}

type State = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

const DEFAULT_EXPIRES = 600;

export class UserAgent extends EventEmitter<UserAgentEvents> {
  readonly identity: RegistrationIdentity;
  readonly #options: UserAgentOptions;
  readonly #targets: FlowTarget[];
  readonly #dispatch = new SipDispatcher({
    userAgent: () => this.userAgent,
    warn: (warning) => this.emit('warning', warning),
  });
  readonly #client = this.#dispatch.client;
  readonly #digest = new DigestSession();
  /** The realm the registrar challenged us in: the only one calls may answer challenges for. */
  #registrarRealm: string | undefined;
  /** The registrar's 2xx showed no outbound support: register the flow's address as Contact. */
  #plainRegistrar = false;
  /** The routable Contact address (this flow's local address and port) when #plainRegistrar. */
  #routable: { address: string; port: number } | undefined;
  readonly #callId = generateCallId();
  readonly #fromTag = generateTag();
  #cseq = 1;
  #expires: number;
  #state: State = 'idle';
  #flow: SipFlow | undefined;
  #targetIndex = 0;
  #attempt = 0;
  #registered = false;
  #everRegistered = false;
  /** performance.now() when the current binding expires (undefined while unregistered). */
  #bindingExpiresAt: number | undefined;
  /**
   * Per target, performance.now() before which it gets no request: the
   * Retry-After of its last refusal (RFC 3261 21.5.4).
   */
  readonly #unavailableUntil: number[] = [];
  /**
   * Targets that failed for a setting to fix before the first registration
   * (a certificate we cannot verify, a name that does not exist), by index.
   */
  readonly #misconfigured = new Map<number, SoftphoneError>();
  #timer: NodeJS.Timeout | undefined;
  #startResolve: (() => void) | undefined;
  #startReject: ((err: SoftphoneError) => void) | undefined;

  constructor(options: UserAgentOptions) {
    super();
    this.#options = options;
    const c = options.credentials;
    this.identity = {
      username: c.username,
      domain: c.domain,
      transport: c.transport,
      instanceId: options.instanceId,
    };
    this.#targets = [c.outboundProxy, ...(c.outboundProxyBackup ? [c.outboundProxyBackup] : [])];
    this.#expires = options.expires ?? DEFAULT_EXPIRES;
  }

  get registered(): boolean {
    return this.#registered;
  }

  /** The current registration flow (undefined while reconnecting). */
  get flow(): SipFlow | undefined {
    return this.#flow && !this.#flow.closed ? this.#flow : undefined;
  }

  get contact(): string {
    return contactHeader(this.identity, this.#routable);
  }

  /** Our Contact URI: the outbound (.invalid) one, or the flow's address behind a plain proxy. */
  get contactUri(): string {
    return contactUri(this.identity, this.#routable);
  }

  get userAgent(): string {
    return this.#options.userAgent ?? USER_AGENT;
  }

  /** The digest realm of the registrar (its REGISTER challenge), else the SIP domain. */
  get registrarRealm(): string {
    return this.#registrarRealm ?? this.identity.domain;
  }

  /**
   * Credentials for a 401/407 to a request of ours other than REGISTER (an
   * INVITE), with the device's credentials and only for the registrar's
   * realm: a challenge from anywhere else is never answered (the digest would
   * let a stranger try the password offline).
   */
  answerChallenge(
    response: SipResponse,
    request: SipRequest,
    digest: DigestSession,
  ): { ok: true; name: string; value: string } | { ok: false; code: ErrorCode; reason: string } {
    const proxy = response.status === 407;
    const headerName = proxy ? 'Proxy-Authenticate' : 'WWW-Authenticate';
    const value = response.headers.get(headerName);
    if (!value) {
      return {
        ok: false,
        code: ErrorCodes.SIP_AUTH_REJECTED,
        reason: `${response.status} without ${headerName}`,
      };
    }
    const parsed = parseChallenge(value);
    if (!parsed.ok) {
      const code = parsed.unsupported ? ErrorCodes.SIP_AUTH_UNSUPPORTED : ErrorCodes.SIP_AUTH_REJECTED;
      return { ok: false, code, reason: parsed.reason };
    }
    const realm = parsed.challenge.realm;
    if (realm !== this.registrarRealm) {
      return {
        ok: false,
        code: ErrorCodes.SIP_AUTH_REALM,
        reason: `challenged for realm "${realm}", not the registrar's "${this.registrarRealm}": credentials not sent`,
      };
    }
    const c = this.#options.credentials;
    const answer = digest.respond(
      value,
      { username: c.authorizationId, password: c.password, method: request.method, uri: request.uri },
      realm,
    );
    if (!answer.ok) {
      const code = answer.unsupported ? ErrorCodes.SIP_AUTH_UNSUPPORTED : ErrorCodes.SIP_AUTH_REJECTED;
      return { ok: false, code, reason: answer.reason };
    }
    return { ok: true, name: proxy ? 'Proxy-Authorization' : 'Authorization', value: answer.header };
  }

  /** An INVITE client transaction over `connection` (calls and re-INVITEs). */
  invite(
    connection: SipConnection,
    request: SipRequest,
    handlers: InviteClientHandlers,
    timeoutMs?: number,
  ): InviteClientTransaction {
    return this.#client.invite(connection, request, handlers, {
      ...(timeoutMs !== undefined && { timeoutMs }),
    });
  }

  /** Installs the handler for requests other than OPTIONS (the call layer). */
  onRequest(handler: RequestHandler): void {
    this.#dispatch.onRequest(handler);
  }

  /** Our Contact for a dialog (any connection: requests come over the flow). */
  dialogContact(_connection?: SipConnection): string {
    return `<${this.contactUri}>`;
  }

  /**
   * Connects and registers. Resolves at the first successful registration;
   * rejects when that first registration is refused for the credentials or
   * the user (wrong password, 403, 404, …; see registerFailurePolicy), since
   * retrying would only hammer the registrar with the same mistake. A server
   * that is unavailable (408, 5xx, Retry-After) is waited out, on the backup
   * proxy first. Connection failures are retried with backoff meanwhile,
   * except a TLS certificate that fails verification on every proxy
   * (SIP_TLS_CERTIFICATE).
   */
  start(): Promise<void> {
    if (this.#state !== 'idle') return Promise.reject(new Error('UserAgent.start() called twice'));
    this.#state = 'starting';
    return new Promise((resolve, reject) => {
      this.#startResolve = resolve;
      this.#startReject = reject;
      void this.#connectAndRegister();
    });
  }

  /** Sends a request in a client transaction over `flow` (default: the registration flow). */
  request(
    request: SipRequest,
    flow: SipConnection | undefined = this.flow,
    timeoutMs?: number,
  ): Promise<SipResponse> {
    if (!flow || flow.closed) {
      return Promise.reject(new SoftphoneError(ErrorCodes.SIP_TRANSPORT_CLOSED, 'no SIP flow to send on'));
    }
    return this.#client.send(flow, request, {
      timeoutMs: timeoutMs ?? this.#options.transactionTimeoutMs,
    });
  }

  /** Unregisters (Expires: 0), closes the flow and every timer. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    const wasStarting = this.#state === 'starting';
    this.#state = 'stopping';
    this.#clearTimer();
    const flow = this.flow;
    if (this.#registered && flow) {
      try {
        await this.#register(flow, 0, this.#options.unregisterTimeoutMs ?? 3000);
      } catch {
        // Best effort: the binding expires on its own.
      }
      this.#registered = false;
      this.emit('unregistered');
    }
    this.#state = 'stopped';
    this.#dispatch.close();
    this.#flow?.close();
    this.#flow = undefined;
    if (wasStarting)
      this.#settleStart(new SoftphoneError(ErrorCodes.CLOSED, 'stopped before the first registration'));
  }

  // ── connection lifecycle ──────────────────────────────────────────────

  get #active(): boolean {
    return this.#state === 'starting' || this.#state === 'running';
  }

  #targetName(target: FlowTarget): string {
    return `${this.identity.transport.toUpperCase()} ${target.host}:${target.port}`;
  }

  async #connectAndRegister(): Promise<void> {
    if (!this.#active) return;
    const index = this.#targetIndex % this.#targets.length;
    const target = this.#targets[index] as FlowTarget;
    let flow: SipFlow;
    try {
      const o = this.#options;
      flow = await SipFlow.connect({
        ...target,
        transport: this.identity.transport,
        ...(o.tlsVerify !== undefined && { tlsVerify: o.tlsVerify }),
        ...(o.tlsCa !== undefined && { tlsCa: o.tlsCa }),
        ...(o.lookup !== undefined && { lookup: o.lookup }),
        ...(o.keepAliveIntervalMs !== undefined && { keepAliveIntervalMs: o.keepAliveIntervalMs }),
        ...(o.pongTimeoutMs !== undefined && { pongTimeoutMs: o.pongTimeoutMs }),
        ...(o.connectTimeoutMs !== undefined && { connectTimeoutMs: o.connectTimeoutMs }),
      });
    } catch (err) {
      const setting = this.#everRegistered ? undefined : this.#settingProblem(err, index);
      if (setting) {
        const known = this.#misconfigured.has(index);
        this.#misconfigured.set(index, setting);
        if (this.#misconfigured.size === this.#targets.length) {
          // No proxy is usable as configured (CA, --tls-insecure, a host name
          // that does not exist): a setting to fix, not a hiccup to wait out.
          this.#settleStart(this.#settingsError());
          void this.stop();
          return;
        }
        if (!known)
          this.emit('warning', { code: setting.code, message: `${setting.message}; trying the next proxy` });
      } else {
        // Not (or no longer) a setting problem. After the first registration
        // even a name that does not resolve is retried: DNS may be flapping.
        this.#misconfigured.delete(index);
      }
      this.#scheduleReconnect(err instanceof Error ? err.message : String(err), true);
      return;
    }
    this.#misconfigured.delete(index);
    if (!this.#active) {
      flow.close();
      return;
    }
    this.#flow = flow;
    this.#wireFlow(flow);
    this.emit('connected', {
      target: this.#targetName(target),
      local: `${flow.localAddress}:${flow.localPort}`,
    });
    await this.#registerLoop(flow);
  }

  /**
   * A connect failure that no retry fixes, as its error for the user, or
   * undefined: a certificate we cannot verify (SIP_TLS_CERTIFICATE), or a
   * proxy name that does not exist (SIP_PROXY_NOT_FOUND, named by the setting
   * it came from). A resolver that cannot answer (EAI_AGAIN) is not one.
   */
  #settingProblem(err: unknown, index: number): SoftphoneError | undefined {
    if (isSoftphoneError(err, ErrorCodes.SIP_TLS_CERTIFICATE)) return err;
    if (!isSoftphoneError(err, ErrorCodes.SIP_PROXY_NOT_FOUND)) return undefined;
    const target = this.#targets[index] as FlowTarget;
    const names = this.#options.proxySettingNames;
    const setting =
      index === 0
        ? (names?.outboundProxy ?? 'outboundProxy')
        : (names?.outboundProxyBackup ?? 'outboundProxyBackup');
    return new SoftphoneError(
      ErrorCodes.SIP_PROXY_NOT_FOUND,
      `${setting} names ${target.host}, which does not resolve (ENOTFOUND)`,
      { cause: err, details: { setting, host: target.host } },
    );
  }

  /** The error start() rejects with once every proxy has a setting problem. */
  #settingsError(): SoftphoneError {
    const errors = [...this.#misconfigured.entries()].sort(([a], [b]) => a - b).map(([, e]) => e);
    const notFound = errors.filter((e) => e.code === ErrorCodes.SIP_PROXY_NOT_FOUND);
    const names = notFound.map((e) => e.message).join('; ');
    const certificate = errors.findLast((e) => e.code !== ErrorCodes.SIP_PROXY_NOT_FOUND);
    if (certificate === undefined) {
      const plural = notFound.length > 1 ? 's' : '';
      return new SoftphoneError(ErrorCodes.SIP_PROXY_NOT_FOUND, `${names}; check the host name${plural}`, {
        details: { settings: notFound.map((e) => e.details.setting) },
      });
    }
    if (notFound.length === 0) return certificate;
    return new SoftphoneError(certificate.code, `${certificate.message}; and ${names}`, {
      cause: certificate,
    });
  }

  #wireFlow(flow: SipFlow): void {
    this.#routable = this.#plainRegistrar ? { address: flow.localAddress, port: flow.localPort } : undefined;
    flow.on('pingUnanswered', () => void this.#probe(flow));
    flow.on('trace', (direction, bytes) =>
      this.emit('trace', { direction, flowId: flow.id, text: Buffer.from(bytes).toString('utf8') }),
    );
    flow.on('message', (message) => this.#dispatch.message(flow, message));
    flow.on('malformed', (result) => this.#dispatch.malformed(flow, result));
    flow.once('close', (error) => {
      this.#client.flowClosed(flow, error);
      if (this.#flow !== flow) return;
      this.#flow = undefined;
      const wasRegistered = this.#registered;
      this.#registered = false;
      this.#bindingExpiresAt = undefined;
      this.#clearTimer();
      if (!this.#active) return;
      const reason = error?.message ?? 'flow closed';
      this.emit('disconnected', {
        target: `${flow.transport.toUpperCase()} ${flow.remote.host}:${flow.remote.port}`,
        reason,
      });
      // A flow that served a registration gets one quick retry on the same target.
      this.#scheduleReconnect(reason, !wasRegistered);
    });
  }

  #scheduleReconnect(reason: string, switchTarget: boolean): void {
    if (!this.#active) return;
    if (switchTarget) this.#targetIndex++; // RFC 5626 4.5: try the backup proxy when the primary fails
    this.#attempt++;
    const delayMs = this.#retryDelayMs();
    this.#announceReconnect(delayMs, reason);
    this.#setTimer(delayMs, () => void this.#connectAndRegister());
  }

  /** The backoff of this attempt, or longer while the current target's Retry-After runs. */
  #retryDelayMs(): number {
    const index = this.#targetIndex % this.#targets.length;
    const blockedMs = Math.ceil((this.#unavailableUntil[index] ?? 0) - performance.now());
    return Math.max(backoffDelay(this.#attempt, this.#options.backoff), blockedMs);
  }

  #announceReconnect(delayMs: number, reason: string): void {
    const target = this.#targets[this.#targetIndex % this.#targets.length] as FlowTarget;
    this.emit('reconnecting', { attempt: this.#attempt, delayMs, target: this.#targetName(target), reason });
  }

  // ── registration ──────────────────────────────────────────────────────

  /** Registers on `flow`, then keeps refreshing on timers until the flow dies or we stop. */
  async #registerLoop(flow: SipFlow): Promise<void> {
    if (!this.#active || flow.closed) return;
    let outcome = await this.#registerOnFlow(flow);
    if (outcome === undefined || !this.#active || flow.closed) return;
    if (outcome.ok && !outcome.outbound && !this.#plainRegistrar && outcome.expires > 0) {
      // RFC 5626 unsupported: a proxy without it routes in-dialog requests to our
      // Contact, which must then be the flow's address, not a .invalid name.
      // Re-register at once with it, removing the outbound binding.
      const old = contactUri(this.identity);
      this.#plainRegistrar = true;
      this.#routable = { address: flow.localAddress, port: flow.localPort };
      outcome = await this.#registerOnFlow(flow, [old]);
      if (outcome === undefined || !this.#active || flow.closed) return;
    }
    if (outcome.ok) {
      // RFC 5626 4.4.1: with outbound a missing pong means a dead flow, from the first ping on.
      if (outcome.outbound) flow.expectPongs();
      const first = !this.#everRegistered;
      this.#everRegistered = true;
      this.#registered = true;
      this.#attempt = 0;
      this.#bindingExpiresAt = performance.now() + outcome.expires * 1000;
      const refreshInMs = refreshDelayMs(outcome.expires);
      this.#state = 'running';
      this.emit('registered', {
        expires: outcome.expires,
        first,
        target: this.#targetName(flow.remote),
        refreshInMs,
      });
      this.#settleStart();
      this.#setTimer(refreshInMs, () => void this.#registerLoop(flow));
      return;
    }
    this.#registrationRefused(flow, outcome);
  }

  /**
   * A final non-2xx to REGISTER. Only a refusal of the credentials or the
   * user ends the first registration (registerFailurePolicy); anything else
   * is retried, never before the server's Retry-After and the backoff allow.
   */
  #registrationRefused(flow: SipFlow, outcome: RegisterRefusal): void {
    this.#registered = false;
    const policy = registerFailurePolicy(outcome.status, outcome.retryAfter);
    const event = {
      status: outcome.status,
      reason: outcome.reason,
      code: outcome.code,
      retryAfter: outcome.retryAfter,
    };
    if (!this.#everRegistered && policy.fatalFirst) {
      this.emit('registrationFailed', { ...event, willRetry: false, retryInMs: undefined });
      const err = new SoftphoneError(
        outcome.code,
        `registration rejected: ${outcome.status ?? ''} ${outcome.reason}`.replace('  ', ' '),
        { details: { status: outcome.status } },
      );
      this.#settleStart(err);
      void this.stop();
      return;
    }
    const now = performance.now();
    const index = this.#targetIndex % this.#targets.length;
    if (outcome.retryAfter !== undefined) this.#unavailableUntil[index] = now + outcome.retryAfter * 1000;
    const reason = `${outcome.status ?? ''} ${outcome.reason}`.trim();
    this.#attempt++;
    const sameFlowDelayMs = this.#retryDelayMs();
    // RFC 3261 21.5.4 / RFC 3263 4.3: an unavailable proxy is left for the
    // next one. Before the first registration at once; after it only when
    // the binding would lapse before this proxy takes requests again, since
    // the flow carries the calls in progress, which end with it.
    const lapses = now + sameFlowDelayMs >= (this.#bindingExpiresAt ?? 0);
    if (policy.failover && this.#targets.length > 1 && (!this.#everRegistered || lapses)) {
      this.#targetIndex++;
      const delayMs = this.#retryDelayMs();
      this.emit('registrationFailed', { ...event, willRetry: true, retryInMs: delayMs });
      this.#dropFlow(flow, `${reason}: trying the next proxy`);
      this.#announceReconnect(delayMs, reason);
      this.#setTimer(delayMs, () => void this.#connectAndRegister());
      return;
    }
    // Retried on the same flow: its binding (if any) stays valid meanwhile.
    this.emit('registrationFailed', { ...event, willRetry: true, retryInMs: sameFlowDelayMs });
    this.#announceReconnect(sameFlowDelayMs, reason);
    this.#setTimer(sameFlowDelayMs, () => void this.#registerLoop(flow));
  }

  /** Closes a flow we give up on ourselves; no reconnect follows from its close. */
  /**
   * A ping went unanswered on a flow whose server is not known to pong: probe
   * with an OPTIONS instead (any answer proves the flow alive); no answer in
   * time means it is half-open: drop it and reconnect.
   */
  async #probe(flow: SipFlow): Promise<void> {
    if (!this.#active || flow.closed || this.#flow !== flow) return;
    const host = flow.localAddress.includes(':') ? `[${flow.localAddress}]` : flow.localAddress;
    const headers = new Headers()
      .append(
        'Via',
        `SIP/2.0/${flow.transport.toUpperCase()} ${host}:${flow.localPort};branch=${generateBranch()};rport`,
      )
      .append('Max-Forwards', '70')
      .append('From', `<sip:${this.identity.username}@${this.identity.domain}>;tag=${generateTag()}`)
      .append('To', `<sip:${this.identity.domain}>`)
      .append('Call-ID', generateCallId())
      .append('CSeq', '1 OPTIONS')
      .append('User-Agent', this.userAgent);
    const options: SipRequest = {
      type: 'request',
      method: 'OPTIONS',
      uri: `sip:${this.identity.domain}`,
      headers,
      body: new Uint8Array(0),
    };
    try {
      await this.#client.send(flow, options, { timeoutMs: this.#options.pongTimeoutMs ?? PONG_TIMEOUT_MS });
    } catch (err) {
      if (!this.#active || flow.closed || this.#flow !== flow) return;
      if (!isSoftphoneError(err, ErrorCodes.SIP_TRANSACTION_TIMEOUT)) return;
      const reason = 'no pong and no answer to an OPTIONS probe: the connection is half-open';
      this.#dropFlow(flow, reason);
      this.#scheduleReconnect(reason, false);
    }
  }

  #dropFlow(flow: SipFlow, reason: string): void {
    this.emit('disconnected', { target: this.#targetName(flow.remote), reason });
    if (this.#flow === flow) this.#flow = undefined;
    this.#registered = false;
    this.#bindingExpiresAt = undefined;
    flow.close();
  }

  /**
   * One REGISTER exchange including digest challenges and 423 Min-Expires.
   * Rejects only when the transaction fails (timeout, flow gone).
   */
  /**
   * REGISTER on the flow; undefined when it got no answer within Timer F: the
   * flow is as good as dead (RFC 5626 4.4), so it is dropped and a reconnect
   * scheduled.
   */
  async #registerOnFlow(flow: SipFlow, remove?: string[]): Promise<RegisterOutcome | undefined> {
    try {
      return await this.#register(flow, this.#expires, undefined, remove);
    } catch (err) {
      if (!this.#active || flow.closed) return undefined;
      const reason = isSoftphoneError(err) ? err.message : String(err);
      this.#dropFlow(flow, reason);
      this.#scheduleReconnect(reason, true);
      return undefined;
    }
  }

  async #register(
    flow: SipFlow,
    expires: number,
    timeoutMs?: number,
    remove?: string[],
  ): Promise<RegisterOutcome> {
    const c = this.#options.credentials;
    let authorization: { header: 'Authorization' | 'Proxy-Authorization'; value: string } | undefined;
    let requested = expires;
    this.#digest.succeeded(); // a new exchange: fresh attempt count
    for (let round = 0; round < 6; round++) {
      const request = buildRegister({
        identity: this.identity,
        callId: this.#callId,
        fromTag: this.#fromTag,
        cseq: this.#cseq++,
        expires: requested,
        local: { address: flow.localAddress, port: flow.localPort },
        userAgent: this.userAgent,
        ...(authorization && { authorization }),
        ...(this.#routable && { routable: this.#routable }),
        ...(remove && { remove }),
      });
      const response = await this.#client.send(flow, request, {
        timeoutMs: timeoutMs ?? this.#options.transactionTimeoutMs,
      });
      const status = response.status;
      const retryAfter = retryAfterSeconds(response);
      if (status >= 200 && status < 300) {
        this.#digest.succeeded();
        const outbound = supportsOutbound(response);
        if (requested === 0) return { ok: true, expires: 0, outbound };
        const granted = grantedExpires(response, this.identity, this.#routable) ?? requested;
        if (granted <= 0) {
          return {
            ok: false,
            status,
            reason: 'registrar granted 0 seconds',
            code: ErrorCodes.SIP_REGISTRATION_REJECTED,
            retryAfter,
          };
        }
        return { ok: true, expires: granted, outbound };
      }
      if (status === 401 || status === 407) {
        const headerName = status === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate';
        const challenge = response.headers.get(headerName);
        if (!challenge) {
          return {
            ok: false,
            status,
            reason: `${status} without ${headerName}`,
            code: ErrorCodes.SIP_AUTH_REJECTED,
            retryAfter,
          };
        }
        const realm = parseChallenge(challenge);
        if (realm.ok) this.#registrarRealm = realm.challenge.realm;
        const answer = this.#digest.respond(challenge, {
          username: c.authorizationId,
          password: c.password,
          method: 'REGISTER',
          uri: request.uri,
        });
        if (!answer.ok) {
          return {
            ok: false,
            status,
            reason: `${response.reason} (${answer.reason}; check the password and authorization id)`,
            code: answer.unsupported ? ErrorCodes.SIP_AUTH_UNSUPPORTED : ErrorCodes.SIP_AUTH_REJECTED,
            retryAfter,
          };
        }
        authorization = {
          header: status === 401 ? 'Authorization' : 'Proxy-Authorization',
          value: answer.header,
        };
        continue;
      }
      if (status === 423) {
        // RFC 3261 10.2.8: retry with at least Min-Expires.
        const min = minExpires(response);
        if (min === undefined || min <= requested) {
          return {
            ok: false,
            status,
            reason: '423 without a usable Min-Expires',
            code: ErrorCodes.SIP_REGISTRATION_REJECTED,
            retryAfter,
          };
        }
        requested = min;
        this.#expires = min;
        continue;
      }
      return {
        ok: false,
        status,
        reason: response.reason || `status ${status}`,
        code: status === 403 ? ErrorCodes.SIP_AUTH_REJECTED : ErrorCodes.SIP_REGISTRATION_REJECTED,
        retryAfter,
      };
    }
    return {
      ok: false,
      status: undefined,
      reason: 'too many REGISTER rounds',
      code: ErrorCodes.SIP_REGISTRATION_REJECTED,
      retryAfter: undefined,
    };
  }

  // ── helpers ───────────────────────────────────────────────────────────

  #settleStart(error?: SoftphoneError): void {
    const resolve = this.#startResolve;
    const reject = this.#startReject;
    this.#startResolve = this.#startReject = undefined;
    if (error) reject?.(error);
    else resolve?.();
  }

  #setTimer(ms: number, fn: () => void): void {
    this.#clearTimer();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      fn();
    }, ms);
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

interface RegisterRefusal {
  ok: false;
  status: number | undefined;
  reason: string;
  code: ErrorCode;
  /** Retry-After of the refusal, seconds (bounded). */
  retryAfter: number | undefined;
}

type RegisterOutcome = { ok: true; expires: number; outbound: boolean } | RegisterRefusal;
