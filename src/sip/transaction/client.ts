/**
 * Client transactions over reliable flows (RFC 3261 17.1), matched by the
 * top Via branch plus CSeq method (17.1.3):
 *
 * - non-INVITE (17.1.2): no retransmissions (Timer E is not used on
 *   TCP/TLS), Timer F for no final response; resolves with the final response.
 * - INVITE (17.1.1, with RFC 6026): every response goes to the handler; a
 *   non-2xx final is ACKed here (hop by hop, same branch, 17.1.1.3); 2xx
 *   responses keep arriving for Timer M (retransmissions, forks) because their
 *   ACK is the dialog's job (13.2.2.4); Timer B for no final response; CANCEL
 *   is built from the INVITE (9.1).
 */
import { ErrorCodes, SoftphoneError } from '../../errors.js';
import { Headers } from '../message/headers.js';
import type { SipRequest, SipResponse } from '../message/types.js';
import { parseCSeq, parseVia } from '../message/uri.js';
import type { SipConnection } from '../transport/connection.js';
import { TIMER_B, TIMER_F, TIMER_M } from './timers.js';

interface Pending {
  key: string;
  flow: SipConnection;
  resolve: (response: SipResponse) => void;
  reject: (error: SoftphoneError) => void;
  timer: NodeJS.Timeout;
  onProvisional: ((response: SipResponse) => void) | undefined;
}

export interface ClientRequestOptions {
  /** Defaults to Timer F (32 s). */
  timeoutMs?: number;
  onProvisional?: (response: SipResponse) => void;
}

export function transactionKey(branch: string, method: string): string {
  return `${branch}\n${method.toUpperCase()}`;
}

export interface InviteClientHandlers {
  /**
   * Every response: provisionals, the non-2xx final once, and every 2xx
   * (retransmissions and other forks too) until Timer M ends.
   */
  onResponse(response: SipResponse): void;
  /** No final response within Timer B (RFC 3261 17.1.1.2). */
  onTimeout(): void;
  /** The connection closed before a final response. */
  onClosed(error: SoftphoneError): void;
}

export interface InviteClientTransaction {
  readonly request: SipRequest;
  readonly connection: SipConnection;
  /** True once a final response arrived (or the transaction timed out or lost its connection). */
  readonly completed: boolean;
  /**
   * RFC 3261 9.1: CANCEL with the INVITE's top Via (same branch), Request-URI,
   * Call-ID, From, To and CSeq number. Resolves with the CANCEL's own final response.
   */
  cancel(): Promise<SipResponse>;
  /** Stops delivering responses (the TU is gone). */
  dispose(): void;
}

interface InviteEntry {
  key: string;
  tx: InviteClientTransaction;
  handlers: InviteClientHandlers;
  timer: NodeJS.Timeout | undefined;
  completed: boolean;
  /** The ACK for a non-2xx final, re-sent if the final is retransmitted. */
  ack: SipRequest | undefined;
}

export class ClientTransactions {
  readonly #pending = new Map<string, Pending>();
  readonly #invites = new Map<string, InviteEntry>();

  get size(): number {
    return this.#pending.size;
  }

  /** Sends `request` on `flow` and resolves with its final response. */
  send(flow: SipConnection, request: SipRequest, options: ClientRequestOptions = {}): Promise<SipResponse> {
    const via = parseVia(request.headers.getAll('Via')[0] ?? '');
    const branch = via?.params.get('branch');
    if (!branch) throw new Error('client request without a Via branch');
    const key = transactionKey(branch, request.method);
    const timeoutMs = options.timeoutMs ?? TIMER_F;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(key);
        reject(
          new SoftphoneError(
            ErrorCodes.SIP_TRANSACTION_TIMEOUT,
            `no response to ${request.method} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.#pending.set(key, { key, flow, resolve, reject, timer, onProvisional: options.onProvisional });
      if (!flow.send(request)) {
        this.#settle(key, (p) =>
          p.reject(
            new SoftphoneError(
              ErrorCodes.SIP_TRANSPORT_CLOSED,
              `flow closed before ${request.method} was sent`,
            ),
          ),
        );
      }
    });
  }

  /** Starts an INVITE client transaction on `connection`; responses go to `handlers`. */
  invite(
    connection: SipConnection,
    request: SipRequest,
    handlers: InviteClientHandlers,
    options: { timeoutMs?: number } = {},
  ): InviteClientTransaction {
    const branch = parseVia(request.headers.getAll('Via')[0] ?? '')?.params.get('branch');
    if (!branch) throw new Error('client request without a Via branch');
    const key = transactionKey(branch, 'INVITE');
    const entry: InviteEntry = {
      key,
      handlers,
      timer: undefined,
      completed: false,
      ack: undefined,
      tx: {
        request,
        connection,
        get completed() {
          return entry.completed;
        },
        cancel: () => this.send(connection, cancelFor(request)),
        dispose: () => this.#dropInvite(entry),
      },
    };
    this.#invites.set(key, entry);
    entry.timer = setTimeout(() => {
      if (entry.completed) return;
      entry.completed = true;
      this.#dropInvite(entry);
      handlers.onTimeout();
    }, options.timeoutMs ?? TIMER_B);
    if (!connection.send(request)) {
      queueMicrotask(() => this.#inviteClosed(entry, undefined));
    }
    return entry.tx;
  }

  /** Routes a response to its transaction; false for a stray response (to be dropped). */
  handleResponse(response: SipResponse): boolean {
    const branch = parseVia(response.headers.getAll('Via')[0] ?? '')?.params.get('branch');
    const cseq = parseCSeq(response.headers.get('CSeq') ?? '');
    if (!branch || !cseq) return false;
    const key = transactionKey(branch, cseq.method);
    if (cseq.method === 'INVITE') {
      const entry = this.#invites.get(key);
      if (!entry) return false;
      this.#inviteResponse(entry, response);
      return true;
    }
    const pending = this.#pending.get(key);
    if (!pending) return false;
    if (response.status < 200) {
      pending.onProvisional?.(response);
      return true;
    }
    this.#settle(key, (p) => p.resolve(response));
    return true;
  }

  /** A flow died: every transaction that used it fails now rather than at Timer F. */
  flowClosed(flow: SipConnection, error?: SoftphoneError): void {
    for (const entry of [...this.#invites.values()]) {
      if (entry.tx.connection === flow) this.#inviteClosed(entry, error);
    }
    for (const p of [...this.#pending.values()]) {
      if (p.flow !== flow) continue;
      this.#settle(p.key, (q) =>
        q.reject(
          error ?? new SoftphoneError(ErrorCodes.SIP_TRANSPORT_CLOSED, 'flow closed before a final response'),
        ),
      );
    }
  }

  close(): void {
    for (const entry of [...this.#invites.values()]) {
      this.#inviteClosed(entry, new SoftphoneError(ErrorCodes.CLOSED, 'user agent closed'));
    }
    for (const p of [...this.#pending.values()]) {
      this.#settle(p.key, (q) => q.reject(new SoftphoneError(ErrorCodes.CLOSED, 'user agent closed')));
    }
  }

  #inviteResponse(entry: InviteEntry, response: SipResponse): void {
    const status = response.status;
    if (status >= 300) {
      // RFC 3261 17.1.1.3: the transaction ACKs a non-2xx final itself; a
      // retransmission of it gets the same ACK again and is not reported twice.
      const first = entry.ack === undefined;
      entry.ack ??= ackForFailure(entry.tx.request, response);
      entry.tx.connection.send(entry.ack);
      if (!first) return;
      this.#complete(entry, 0);
      entry.handlers.onResponse(response);
      return;
    }
    if (entry.ack !== undefined) return; // a 1xx/2xx after the failure: stale
    if (status >= 200) {
      // RFC 6026 7.2 Timer M: keep passing 2xx (retransmissions, forks) to the TU.
      if (!entry.completed) this.#complete(entry, TIMER_M);
    }
    entry.handlers.onResponse(response);
  }

  /** The final response arrived: Timer B stops; the entry stays `lingerMs` for retransmissions. */
  #complete(entry: InviteEntry, lingerMs: number): void {
    entry.completed = true;
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.#dropInvite(entry), lingerMs);
    entry.timer.unref?.();
  }

  #inviteClosed(entry: InviteEntry, error: SoftphoneError | undefined): void {
    const wasCompleted = entry.completed;
    entry.completed = true;
    this.#dropInvite(entry);
    if (!wasCompleted) {
      entry.handlers.onClosed(
        error ??
          new SoftphoneError(
            ErrorCodes.SIP_TRANSPORT_CLOSED,
            'flow closed before a final response to INVITE',
          ),
      );
    }
  }

  #dropInvite(entry: InviteEntry): void {
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = undefined;
    if (this.#invites.get(entry.key) === entry) this.#invites.delete(entry.key);
  }

  #settle(key: string, fn: (p: Pending) => void): void {
    const p = this.#pending.get(key);
    if (!p) return;
    this.#pending.delete(key);
    clearTimeout(p.timer);
    fn(p);
  }
}

/** RFC 3261 9.1: the CANCEL for an INVITE (same top Via, so the same branch; Route copied). */
export function cancelFor(invite: SipRequest): SipRequest {
  const h = invite.headers;
  const headers = new Headers().append('Via', h.getAll('Via')[0] ?? '');
  for (const route of h.getAll('Route')) headers.append('Route', route);
  headers
    .append('Max-Forwards', '70')
    .append('From', h.get('From') ?? '')
    .append('To', h.get('To') ?? '')
    .append('Call-ID', h.get('Call-ID') ?? '')
    .append('CSeq', `${h.cseq()?.seq ?? 1} CANCEL`);
  const ua = h.get('User-Agent');
  if (ua !== undefined) headers.append('User-Agent', ua);
  return { type: 'request', method: 'CANCEL', uri: invite.uri, headers, body: new Uint8Array(0) };
}

/** RFC 3261 17.1.1.3: the ACK for a non-2xx final (same branch, the response's To with its tag). */
function ackForFailure(invite: SipRequest, response: SipResponse): SipRequest {
  const h = invite.headers;
  const headers = new Headers().append('Via', h.getAll('Via')[0] ?? '');
  for (const route of h.getAll('Route')) headers.append('Route', route);
  headers
    .append('Max-Forwards', '70')
    .append('From', h.get('From') ?? '')
    .append('To', response.headers.get('To') ?? h.get('To') ?? '')
    .append('Call-ID', h.get('Call-ID') ?? '')
    .append('CSeq', `${h.cseq()?.seq ?? 1} ACK`);
  return { type: 'request', method: 'ACK', uri: invite.uri, headers, body: new Uint8Array(0) };
}
