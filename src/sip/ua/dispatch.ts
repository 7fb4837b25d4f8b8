/**
 * The UA core's message dispatch, for any connection (RFC 3261 8.2, 17):
 * responses go to their client transaction; requests pass the server
 * transactions (retransmissions answered again, an ACK for a non-2xx
 * absorbed), then get an IncomingRequest whose responses go back over the
 * connection they came on (RFC 3261 18.2.2; RingCentral and RingCX never
 * use our Contact). OPTIONS is answered here; every other request goes to
 * the handler the call layer installs, 501 when nobody takes it. A framed
 * message that does not parse gets the 400/505/513 its error calls for.
 *
 * The registered device (UserAgent) and the bot-partner listener (serve)
 * share it, so both answer a bad or unexpected request the same way.
 */
import type { ErrorCode } from '../../errors.js';
import { ACCEPT, ALLOW } from '../capabilities.js';
import { createErrorResponse, createResponse, generateTag } from '../message/build.js';
import type { ParseResult } from '../message/parse.js';
import type { SipMessage, SipRequest } from '../message/types.js';
import { ClientTransactions } from '../transaction/client.js';
import { type IncomingRequest, type ServerTransaction, ServerTransactions } from '../transaction/server.js';
import type { SipConnection } from '../transport/connection.js';

/** Returns true when the request was taken (and will be, or was, answered). */
export type RequestHandler = (incoming: IncomingRequest) => boolean;

export interface DispatchWarning {
  code: ErrorCode | 'SIP_STRAY_RESPONSE';
  message: string;
}

export interface DispatcherOptions {
  /** Our User-Agent / Server value. */
  userAgent: () => string;
  /** Something odd but survivable: a malformed message, a stray response. */
  warn: (warning: DispatchWarning) => void;
  /** Option tags for OPTIONS answers (default `outbound`; '' for none). */
  supported?: string;
}

/** Request-URI schemes this UA serves: its Contact is a sip: URI, sips: over TLS. */
const SUPPORTED_SCHEMES: ReadonlySet<string> = new Set(['sip', 'sips']);

export class SipDispatcher {
  readonly client = new ClientTransactions();
  readonly server = new ServerTransactions();
  readonly #options: DispatcherOptions;
  #handler: RequestHandler | undefined;

  constructor(options: DispatcherOptions) {
    this.#options = options;
  }

  /** Installs the handler for requests other than OPTIONS (the call layer). */
  onRequest(handler: RequestHandler): void {
    this.#handler = handler;
  }

  /** A message that arrived on `connection`. */
  message(connection: SipConnection, message: SipMessage): void {
    if (message.type === 'response') {
      if (!this.client.handleResponse(message)) {
        this.#options.warn({
          code: 'SIP_STRAY_RESPONSE',
          message: `dropped a response matching no transaction: ${message.status} ${message.headers.get('CSeq') ?? ''}`,
        });
      }
      return;
    }
    const match = this.server.match(message, connection);
    // An absorbed ACK, or a retransmission (answered again by the transaction).
    if (match.kind === 'ack-absorbed' || match.kind === 'retransmission') return;
    const transaction = match.kind === 'new' ? match.transaction : undefined;
    const incoming = this.#incoming(message, connection, transaction);
    if (!SUPPORTED_SCHEMES.has(uriScheme(message.uri))) {
      // RFC 3261 8.2.2.1: a Request-URI scheme we do not serve (RFC 4475 3.3.2).
      if (message.method !== 'ACK') incoming.respond(416, undefined, { toTag: generateTag() });
      return;
    }
    if (message.method === 'OPTIONS') {
      incoming.respond(200, undefined, {
        toTag: generateTag(),
        headers: [
          ['Allow', ALLOW],
          ['Accept', ACCEPT],
          ...(this.#options.supported === ''
            ? []
            : [['Supported', this.#options.supported ?? 'outbound'] as [string, string]]),
          ['User-Agent', this.#options.userAgent()],
        ],
      });
      return;
    }
    if (this.#handler?.(incoming)) return;
    if (message.method === 'ACK') return; // never answered
    incoming.respond(501, undefined, { toTag: generateTag(), headers: [['Allow', ALLOW]] });
  }

  /**
   * A framed message that failed to parse (or was over the size limits). RFC
   * 3261 8.2 / 21.4.1: a request gets a 400 (505, 513) saying what is wrong,
   * back over this connection whatever its Via says (RFC 3261 18.2.2).
   */
  malformed(connection: SipConnection, result: Extract<ParseResult, { ok: false }>): void {
    const partial = result.message;
    const response =
      partial?.type === 'request' && result.status !== undefined
        ? createErrorResponse(partial, result.status, result.error.message)
        : undefined;
    if (response) connection.send(response);
    this.#options.warn({
      code: result.error.code,
      message: response
        ? `answered a malformed request with ${response.status}: ${result.error.message}`
        : `dropped a malformed ${partial?.type ?? 'message'}: ${result.error.message}`,
    });
  }

  /** Every transaction ends (the UA is stopping). */
  close(): void {
    this.client.close();
    this.server.clear();
  }

  #incoming(
    request: SipRequest,
    connection: SipConnection,
    transaction: ServerTransaction | undefined,
  ): IncomingRequest {
    return {
      request,
      flow: connection,
      respond: (status, reason, options) => {
        const response = createResponse(request, status, reason, options);
        if (transaction) this.server.respond(transaction, response);
        else connection.send(response);
        return response;
      },
    };
  }
}

/** The lowercased scheme of a Request-URI the parser accepted (RFC 3261 19.1.1, RFC 3986 3.1). */
function uriScheme(uri: string): string {
  const colon = uri.indexOf(':');
  return colon === -1 ? '' : uri.slice(0, colon).toLowerCase();
}
