/**
 * Client transactions (RFC 3261 17.1), matched by the top Via branch plus
 * CSeq method (17.1.3). The rules are the pure state machines of fsm.ts;
 * this module is their adapter: it sends, runs the timers and tells the TU.
 *
 * - non-INVITE (17.1.2): over UDP the request is retransmitted (Timer E) and
 *   the final's retransmissions absorbed (Timer K); Timer F for no final
 *   response; resolves with the final response.
 * - INVITE (17.1.1, with RFC 6026): over UDP the INVITE is retransmitted
 *   (Timer A); every response goes to the handler; a non-2xx final is ACKed
 *   here (hop by hop, same branch, 17.1.1.3), and again for its
 *   retransmissions (Timer D); 2xx responses keep arriving for Timer M
 *   (retransmissions, forks) because their ACK is the dialog's job
 *   (13.2.2.4); Timer B for no final response; CANCEL is built from the INVITE (9.1).
 */
import { ErrorCodes, SoftphoneError } from '../../errors.js';
import { Headers } from '../message/headers.js';
import type { SipRequest, SipResponse } from '../message/types.js';
import { parseVia } from '../message/uri.js';
import { isReliable, type SipConnection } from '../transport/connection.js';
import { InviteClientFsm, NonInviteClientFsm, type TimerName, type TransactionAction } from './fsm.js';
import { TransactionTimers } from './timer-port.js';
import { TIMER_F } from './timers.js';

export interface ClientRequestOptions {
  /** Defaults to Timer F (32 s). */
  timeoutMs?: number;
  onProvisional?: (response: SipResponse) => void;
  /**
   * The final response, synchronously as it is handled (before the promise's
   * continuations run): for a caller whose bookkeeping must not trail a
   * message that arrives with it (a BYE in the same read).
   */
  onFinal?: (response: SipResponse) => void;
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

interface Pending {
  key: string;
  flow: SipConnection;
  request: SipRequest;
  fsm: NonInviteClientFsm;
  timers: TransactionTimers;
  timeoutMs: number;
  resolve: (response: SipResponse) => void;
  reject: (error: SoftphoneError) => void;
  onProvisional: ((response: SipResponse) => void) | undefined;
  onFinal: ((response: SipResponse) => void) | undefined;
  settled: boolean;
}

interface InviteEntry {
  key: string;
  tx: InviteClientTransaction;
  handlers: InviteClientHandlers;
  fsm: InviteClientFsm;
  timers: TransactionTimers;
  /** The ACK for a non-2xx final, re-sent if the final is retransmitted. */
  ack: SipRequest | undefined;
  /** A final response arrived, or the transaction timed out or lost its connection. */
  completed: boolean;
}

export class ClientTransactions {
  readonly #pending = new Map<string, Pending>();
  readonly #invites = new Map<string, InviteEntry>();

  /** Non-INVITE transactions still waiting for their final response. */
  get size(): number {
    let n = 0;
    for (const p of this.#pending.values()) if (!p.settled) n++;
    return n;
  }

  /** Sends `request` on `flow` and resolves with its final response. */
  send(flow: SipConnection, request: SipRequest, options: ClientRequestOptions = {}): Promise<SipResponse> {
    const via = parseVia(request.headers.getAll('Via')[0] ?? '');
    const branch = via?.params.get('branch');
    if (!branch) throw new Error('client request without a Via branch');
    const key = transactionKey(branch, request.method);
    const timeoutMs = options.timeoutMs ?? TIMER_F;
    return new Promise((resolve, reject) => {
      const entry: Pending = {
        key,
        flow,
        request,
        fsm: new NonInviteClientFsm({ reliable: isReliable(flow), timeoutMs }),
        timers: new TransactionTimers((name) => this.#pendingTimer(entry, name)),
        timeoutMs,
        resolve,
        reject,
        onProvisional: options.onProvisional,
        onFinal: options.onFinal,
        settled: false,
      };
      this.#pending.get(key)?.timers.clear();
      this.#pending.set(key, entry);
      this.#runPending(entry, entry.fsm.start(), undefined, true);
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
      fsm: new InviteClientFsm({
        reliable: isReliable(connection),
        ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
      }),
      timers: new TransactionTimers((name) => this.#runInvite(entry, entry.fsm.timer(name), undefined)),
      ack: undefined,
      completed: false,
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
    this.#runInvite(entry, entry.fsm.start(), undefined, true);
    return entry.tx;
  }

  /** Routes a response to its transaction; false for a stray response (to be dropped). */
  handleResponse(response: SipResponse): boolean {
    // The parser built both already (every layer reads them): no second parse per response.
    const branch = response.headers.topVia()?.params.get('branch');
    const cseq = response.headers.cseq();
    if (!branch || !cseq) return false;
    const key = transactionKey(branch, cseq.method);
    if (cseq.method === 'INVITE') {
      const entry = this.#invites.get(key);
      if (!entry) return false;
      this.#runInvite(entry, entry.fsm.response(response.status), response);
      return true;
    }
    const pending = this.#pending.get(key);
    if (!pending) return false;
    this.#runPending(pending, pending.fsm.response(response.status), response);
    return true;
  }

  /** A flow died: every transaction that used it fails now rather than at Timer F. */
  flowClosed(flow: SipConnection, error?: SoftphoneError): void {
    for (const entry of [...this.#invites.values()]) {
      if (entry.tx.connection === flow) this.#inviteClosed(entry, error);
    }
    for (const p of [...this.#pending.values()]) {
      if (p.flow !== flow) continue;
      this.#fail(
        p,
        error ?? new SoftphoneError(ErrorCodes.SIP_TRANSPORT_CLOSED, 'flow closed before a final response'),
      );
    }
  }

  close(): void {
    for (const entry of [...this.#invites.values()]) {
      this.#inviteClosed(entry, new SoftphoneError(ErrorCodes.CLOSED, 'user agent closed'));
    }
    for (const p of [...this.#pending.values()]) {
      this.#fail(p, new SoftphoneError(ErrorCodes.CLOSED, 'user agent closed'));
    }
  }

  // ── non-INVITE adapter ────────────────────────────────────────────────

  #pendingTimer(entry: Pending, name: TimerName): void {
    this.#runPending(entry, entry.fsm.timer(name), undefined);
  }

  #runPending(
    entry: Pending,
    actions: TransactionAction[],
    response: SipResponse | undefined,
    first = false,
  ): void {
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          if (!entry.flow.send(entry.request) && first) {
            this.#fail(
              entry,
              new SoftphoneError(
                ErrorCodes.SIP_TRANSPORT_CLOSED,
                `flow closed before ${entry.request.method} was sent`,
              ),
            );
            return;
          }
          break;
        case 'start':
          entry.timers.start(action.timer, action.ms);
          break;
        case 'stop':
          entry.timers.stop(action.timer);
          break;
        case 'deliver':
          if (!response || entry.settled) break;
          if (response.status < 200) entry.onProvisional?.(response);
          else {
            entry.settled = true;
            entry.onFinal?.(response);
            entry.resolve(response);
          }
          break;
        case 'timeout':
          this.#fail(
            entry,
            new SoftphoneError(
              ErrorCodes.SIP_TRANSACTION_TIMEOUT,
              `no response to ${entry.request.method} within ${entry.timeoutMs} ms`,
            ),
          );
          break;
        case 'terminated':
          this.#dropPending(entry);
          break;
        default:
          break;
      }
    }
  }

  /** Rejects (once) and forgets the transaction. */
  #fail(entry: Pending, error: SoftphoneError): void {
    this.#dropPending(entry);
    if (entry.settled) return;
    entry.settled = true;
    entry.reject(error);
  }

  #dropPending(entry: Pending): void {
    entry.timers.clear();
    if (this.#pending.get(entry.key) === entry) this.#pending.delete(entry.key);
  }

  // ── INVITE adapter ────────────────────────────────────────────────────

  #runInvite(
    entry: InviteEntry,
    actions: TransactionAction[],
    response: SipResponse | undefined,
    first = false,
  ): void {
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          if (!entry.tx.connection.send(entry.tx.request) && first) {
            queueMicrotask(() => this.#inviteClosed(entry, undefined));
            return;
          }
          break;
        case 'ack':
          if (response) entry.ack ??= ackForFailure(entry.tx.request, response);
          if (entry.ack) entry.tx.connection.send(entry.ack);
          break;
        case 'start':
          entry.timers.start(action.timer, action.ms);
          break;
        case 'stop':
          entry.timers.stop(action.timer);
          break;
        case 'deliver':
          if (response && response.status >= 200) entry.completed = true;
          if (response && this.#invites.get(entry.key) === entry) entry.handlers.onResponse(response);
          break;
        case 'timeout':
          entry.completed = true;
          this.#dropInvite(entry);
          entry.handlers.onTimeout();
          break;
        case 'terminated':
          this.#dropInvite(entry);
          break;
        default:
          break;
      }
    }
  }

  #inviteClosed(entry: InviteEntry, error: SoftphoneError | undefined): void {
    const wasCompleted = entry.completed;
    entry.completed = true;
    entry.fsm.transportError();
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
    entry.timers.clear();
    if (this.#invites.get(entry.key) === entry) this.#invites.delete(entry.key);
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
