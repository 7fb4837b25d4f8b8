/**
 * One connection-oriented SIP flow (RFC 5626 section 3.5) over TCP or TLS: a
 * thin adapter around a socket, the pure framer and the parser. It owns its
 * socket and timers and closes them once; reconnecting is the caller's job.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { ErrorCodes, SoftphoneError } from '../../errors.js';
import { type ParseResult, parseMessage } from '../message/parse.js';
import { serialize } from '../message/serialize.js';
import type { SipMessage } from '../message/types.js';
import { type SipConnection, unmapIpv4 } from './connection.js';
import { type FramerLimits, StreamFramer } from './framer.js';

export type TransportName = 'tcp' | 'tls';

export interface FlowTarget {
  host: string;
  port: number;
}

export interface FlowOptions extends FlowTarget {
  transport: TransportName;
  /** Verify the server certificate (TLS). Only an explicit opt-out turns this off. */
  tlsVerify?: boolean;
  /** Extra CA certificates (PEM) to trust, e.g. a test server's self-signed certificate. */
  tlsCa?: string | string[];
  /** SNI and certificate name check; defaults to the host when it is a name. */
  tlsServername?: string;
  /** Resolves the host (default: the system resolver, dns.lookup); tests inject failures. */
  lookup?: net.LookupFunction;
  connectTimeoutMs?: number;
  /** RFC 5626 4.4.1 keep-alive: send CRLFCRLF when nothing was sent for this long. 0 disables. */
  keepAliveIntervalMs?: number;
  /**
   * How long to wait for the CRLF pong before declaring the flow dead (RFC
   * 5626 4.4.1: 10 s); never longer than the keep-alive interval, so a
   * half-open connection is found within two keep-alive periods.
   */
  pongTimeoutMs?: number;
  /**
   * A message that started arriving must be complete within this time,
   * counted from its first byte (RFC 4475 3.1.2.2): bytes trickling in (or
   * keep-alives landing inside a body a lying Content-Length announced) do
   * not extend it. Default MESSAGE_DEADLINE_MS.
   */
  incompleteMessageTimeoutMs?: number;
  maxHeaderBytes?: number;
  maxBodyBytes?: number;
  /** Largest oversized message read past (and answered 513) instead of closing the flow; see StreamFramer. */
  maxSkipBytes?: number;
}

export type TraceDirection = 'send' | 'recv';

/** What a flow a listener accepted takes (serve): the limits; the far end is the socket's. */
export type AcceptedFlowOptions = Pick<
  FlowOptions,
  'transport' | 'incompleteMessageTimeoutMs' | 'maxHeaderBytes' | 'maxBodyBytes' | 'maxSkipBytes'
>;

export interface FlowEvents {
  message: [message: SipMessage];
  /**
   * A framed message that failed to parse, or one over the size limits (then
   * `bytes` is its head only and the status 513); requests among them deserve
   * an answer with `result.status`.
   */
  malformed: [result: Extract<ParseResult, { ok: false }>, bytes: Uint8Array];
  /** Emitted once; `error` is undefined for a close we asked for. */
  close: [error: SoftphoneError | undefined];
  trace: [direction: TraceDirection, bytes: Uint8Array];
  /** The server answered one of our keep-alive pings. */
  pong: [];
  /**
   * A ping went unanswered by a server not known to answer pings (no pong
   * yet, no outbound support): the owner should probe liveness another way.
   */
  pingUnanswered: [];
}

export const KEEPALIVE_INTERVAL_MS = 30_000;
export const PONG_TIMEOUT_MS = 10_000;
/** Whole-message deadline: generous for a 64 KiB message on a slow link, short for a lie. */
export const MESSAGE_DEADLINE_MS = 10_000;
const PING = Buffer.from('\r\n\r\n');
const PONG = Buffer.from('\r\n');
/** A server ping's two CRLFs arrive back to back; this is generous for a split across reads. */
const SPLIT_PING_MS = 1000;

let nextFlowId = 1;

export class SipFlow extends EventEmitter<FlowEvents> implements SipConnection {
  readonly id = nextFlowId++;
  readonly transport: TransportName;
  readonly remote: FlowTarget;
  readonly #socket: net.Socket;
  readonly #framer: StreamFramer;
  readonly #options: FlowOptions;
  #closed = false;
  #keepAliveTimer: NodeJS.Timeout | undefined;
  #pongTimer: NodeJS.Timeout | undefined;
  #incompleteTimer: NodeJS.Timeout | undefined;
  #lastSendAt = 0;
  /** RFC 5626 4.4.1: only a server that has answered a ping before can be judged by a missing pong. */
  #serverAnswersPings = false;
  /** Our pings not yet answered: a CRLF is their pong only while there is one. */
  #pingsOutstanding = 0;
  /** When a CRLF nobody asked for arrived: with another right behind it, a server ping split across reads. */
  #strayCrlfAt: number | undefined;

  private constructor(socket: net.Socket, options: FlowOptions) {
    super();
    this.#socket = socket;
    this.#options = options;
    this.transport = options.transport;
    this.remote = { host: options.host, port: options.port };
    const limits: FramerLimits = this.#limits();
    if (options.maxSkipBytes !== undefined) limits.maxSkipBytes = options.maxSkipBytes;
    this.#framer = new StreamFramer(limits);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => {
      this.#fail(
        new SoftphoneError(ErrorCodes.SIP_TRANSPORT_CLOSED, `connection error: ${err.message}`, {
          cause: err,
        }),
      );
    });
    socket.on('close', () => {
      const held = this.#framer.buffered;
      this.#fail(
        held > 0
          ? new SoftphoneError(
              ErrorCodes.SIP_FRAME_INCOMPLETE,
              `connection closed by the server in the middle of a message (${held} bytes held)`,
            )
          : new SoftphoneError(ErrorCodes.SIP_TRANSPORT_CLOSED, 'connection closed by the server'),
      );
    });
    this.#lastSendAt = performance.now();
    this.#armKeepAlive();
  }

  /**
   * Opens a flow; rejects with SIP_TRANSPORT_CONNECT_FAILED, SIP_TLS_CERTIFICATE,
   * or SIP_PROXY_NOT_FOUND when the host name does not exist (ENOTFOUND; a
   * resolver that could not answer, EAI_AGAIN, is a connect failure like any).
   */
  static connect(options: FlowOptions): Promise<SipFlow> {
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const target = `${options.transport.toUpperCase()} ${options.host}:${options.port}`;
      let socket: net.Socket;
      if (options.transport === 'tls') {
        const servername = options.tlsServername ?? (net.isIP(options.host) ? undefined : options.host);
        const tlsOptions: tls.ConnectionOptions = {
          host: options.host,
          port: options.port,
          rejectUnauthorized: options.tlsVerify !== false,
        };
        if (options.lookup) tlsOptions.lookup = options.lookup;
        if (servername) tlsOptions.servername = servername;
        // Extra CAs are added to the system's, not put in their place.
        if (options.tlsCa) tlsOptions.ca = [...tls.rootCertificates, ...[options.tlsCa].flat()];
        socket = tls.connect(tlsOptions);
      } else {
        socket = net.connect({
          host: options.host,
          port: options.port,
          ...(options.lookup && { lookup: options.lookup }),
        });
      }
      const readyEvent = options.transport === 'tls' ? 'secureConnect' : 'connect';
      const timer = setTimeout(() => {
        cleanup();
        socket.destroy();
        reject(
          new SoftphoneError(
            ErrorCodes.SIP_TRANSPORT_CONNECT_FAILED,
            `${target}: no connection after ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const onError = (err: NodeJS.ErrnoException) => {
        cleanup();
        socket.destroy();
        const certCodes = [
          'CERT_',
          'UNABLE_TO_',
          'SELF_SIGNED',
          'DEPTH_ZERO',
          'ERR_TLS_CERT',
          'HOSTNAME_MISMATCH',
        ];
        const isCert = typeof err.code === 'string' && certCodes.some((c) => err.code?.includes(c));
        if (err.code === 'ENOTFOUND') {
          reject(
            new SoftphoneError(
              ErrorCodes.SIP_PROXY_NOT_FOUND,
              `${target}: the name ${options.host} does not resolve (ENOTFOUND)`,
              { cause: err },
            ),
          );
        } else if (isCert) {
          reject(
            new SoftphoneError(
              ErrorCodes.SIP_TLS_CERTIFICATE,
              `${target}: TLS certificate rejected (${err.code}: ${err.message}); trust its CA with NODE_EXTRA_CA_CERTS=ca.pem (library: tlsCa), or pass --tls-insecure to connect without verification`,
              { cause: err },
            ),
          );
        } else {
          reject(
            new SoftphoneError(
              ErrorCodes.SIP_TRANSPORT_CONNECT_FAILED,
              `${target}: ${err.code ?? ''} ${err.message}`.trim(),
              {
                cause: err,
              },
            ),
          );
        }
      };
      const onReady = () => {
        cleanup();
        resolve(new SipFlow(socket, options));
      };
      const cleanup = () => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off(readyEvent, onReady);
      };
      socket.once('error', onError);
      socket.once(readyEvent, onReady);
    });
  }

  /**
   * A connection a listener accepted (serve), connected (TLS: secured): the
   * far end pings and we answer (RFC 5626 4.4.1); we never ping first.
   */
  static accepted(socket: net.Socket, options: AcceptedFlowOptions): SipFlow {
    return new SipFlow(socket, {
      ...options,
      host: unmapIpv4(socket.remoteAddress ?? ''),
      port: socket.remotePort ?? 0,
      keepAliveIntervalMs: 0,
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  get localAddress(): string {
    return unmapIpv4(this.#socket.localAddress ?? '0.0.0.0');
  }

  get localPort(): number {
    return this.#socket.localPort ?? 0;
  }

  /** Sends a message; returns false if the flow is already closed. */
  send(message: SipMessage): boolean {
    if (this.#closed) return false;
    const bytes = serialize(message);
    this.emit('trace', 'send', bytes);
    this.#write(bytes);
    return true;
  }

  /**
   * RFC 5626 4.4.1 ping. A server known to answer pings (it did before, or
   * its registrar supports outbound, expectPongs()) that does not answer in
   * time makes the flow dead; any other one only raises `pingUnanswered`, so
   * the owner can probe with a request instead of trusting silence.
   */
  ping(): void {
    if (this.#closed) return;
    this.#write(PING);
    this.#pingsOutstanding++;
    if (this.#pongTimer) return;
    const timeoutMs = this.#pongTimeoutMs();
    this.#pongTimer = setTimeout(() => {
      this.#pongTimer = undefined;
      if (this.#pingsOutstanding === 0 || this.#closed) return;
      if (this.#serverAnswersPings) {
        this.#fail(
          new SoftphoneError(ErrorCodes.SIP_TRANSPORT_CLOSED, `no keep-alive pong within ${timeoutMs} ms`),
        );
      } else {
        this.emit('pingUnanswered');
      }
    }, timeoutMs);
  }

  /** RFC 5626 4.4.1: the registrar supports outbound, so a missing pong means a dead flow from the first ping on. */
  expectPongs(): void {
    this.#serverAnswersPings = true;
  }

  /** The pong timeout in use (never above the keep-alive interval). */
  #pongTimeoutMs(): number {
    const interval = this.#options.keepAliveIntervalMs ?? KEEPALIVE_INTERVAL_MS;
    const timeout = this.#options.pongTimeoutMs ?? PONG_TIMEOUT_MS;
    return interval > 0 ? Math.min(timeout, interval) : timeout;
  }

  /** Closes the flow; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimers();
    this.#socket.end();
    // Give the FIN a moment, then make sure the descriptor is gone.
    setTimeout(() => this.#socket.destroy(), 1000).unref();
    this.emit('close', undefined);
  }

  #write(bytes: Uint8Array): void {
    this.#lastSendAt = performance.now();
    this.#socket.write(bytes);
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    let completed = false;
    for (const event of this.#framer.push(chunk)) {
      if (this.#closed) return;
      if (event.type === 'message' || event.type === 'oversized') completed = true;
      switch (event.type) {
        case 'message': {
          this.#strayCrlfAt = undefined;
          this.emit('trace', 'recv', event.bytes);
          const result = parseMessage(event.bytes, this.#limits());
          if (result.ok) this.emit('message', result.message);
          else this.emit('malformed', result, event.bytes);
          break;
        }
        case 'oversized': {
          // RFC 3261 21.5.14: too large to process; the head is all there is
          // to answer from (the framer discards the rest, the flow stays).
          this.#strayCrlfAt = undefined;
          this.emit('trace', 'recv', event.head);
          const parsed = parseMessage(event.head, this.#limits());
          const message = parsed.ok ? parsed.message : parsed.message;
          const result: Extract<ParseResult, { ok: false }> = { ok: false, error: event.error };
          if (message !== undefined) result.message = message;
          if (message?.type === 'request') result.status = 513;
          this.emit('malformed', result, event.head);
          break;
        }
        case 'ping':
          // RFC 5626 4.4.1: answer a CRLFCRLF ping with a CRLF pong.
          this.#strayCrlfAt = undefined;
          this.#socket.write(PONG);
          break;
        case 'pong': {
          if (this.#pingsOutstanding > 0) {
            this.#pingsOutstanding = 0;
            this.#strayCrlfAt = undefined;
            this.#serverAnswersPings = true;
            if (this.#pongTimer) clearTimeout(this.#pongTimer);
            this.#pongTimer = undefined;
            this.emit('pong');
            break;
          }
          // Not an answer to us: the first half of a CRLFCRLF ping that arrived
          // split across reads, if the second half follows right away.
          const now = performance.now();
          if (this.#strayCrlfAt !== undefined && now - this.#strayCrlfAt < SPLIT_PING_MS) {
            this.#strayCrlfAt = undefined;
            this.#socket.write(PONG);
          } else {
            this.#strayCrlfAt = now;
          }
          break;
        }
        case 'error':
          // Framing errors are unrecoverable on a stream: we cannot find the next message.
          this.#fail(event.error);
          return;
      }
    }
    this.#watchIncomplete(completed);
  }

  #limits(): { maxHeaderBytes?: number; maxBodyBytes?: number } {
    const limits: { maxHeaderBytes?: number; maxBodyBytes?: number } = {};
    if (this.#options.maxHeaderBytes !== undefined) limits.maxHeaderBytes = this.#options.maxHeaderBytes;
    if (this.#options.maxBodyBytes !== undefined) limits.maxBodyBytes = this.#options.maxBodyBytes;
    return limits;
  }

  /**
   * RFC 4475 3.1.2.2: a message that does not complete must not hold the
   * flow. The deadline runs from the message's first byte and is not
   * extended by more bytes of it: a peer that announces more body than it
   * sends, then drips (or whose keep-alive CRLFs land inside that body),
   * would otherwise swallow every later request, a caller's BYE included.
   * A message that completes clears it; the next one starts its own.
   */
  #watchIncomplete(completedOne: boolean): void {
    if (this.#closed || !this.#framer.inMessage) {
      if (this.#incompleteTimer) clearTimeout(this.#incompleteTimer);
      this.#incompleteTimer = undefined;
      return;
    }
    if (this.#incompleteTimer && !completedOne) return;
    if (this.#incompleteTimer) clearTimeout(this.#incompleteTimer);
    const timeoutMs = this.#options.incompleteMessageTimeoutMs ?? MESSAGE_DEADLINE_MS;
    this.#incompleteTimer = setTimeout(() => {
      this.#incompleteTimer = undefined;
      if (this.#framer.inMessage) {
        this.#fail(
          new SoftphoneError(
            ErrorCodes.SIP_FRAME_INCOMPLETE,
            `a message was still incomplete ${timeoutMs} ms after it began (${this.#framer.buffered} bytes held); Content-Length larger than the body?`,
          ),
        );
      }
    }, timeoutMs);
  }

  #armKeepAlive(): void {
    const interval = this.#options.keepAliveIntervalMs ?? KEEPALIVE_INTERVAL_MS;
    if (interval <= 0 || this.#closed) return;
    const due = this.#lastSendAt + interval - performance.now();
    this.#keepAliveTimer = setTimeout(
      () => {
        this.#keepAliveTimer = undefined;
        if (this.#closed) return;
        if (performance.now() - this.#lastSendAt >= interval - 1) this.ping();
        this.#armKeepAlive();
      },
      Math.max(1, due),
    );
    this.#keepAliveTimer.unref();
  }

  #fail(error: SoftphoneError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimers();
    this.#socket.destroy();
    this.emit('close', error);
  }

  #clearTimers(): void {
    for (const t of [this.#keepAliveTimer, this.#pongTimer, this.#incompleteTimer]) if (t) clearTimeout(t);
    this.#keepAliveTimer = this.#pongTimer = this.#incompleteTimer = undefined;
  }
}
