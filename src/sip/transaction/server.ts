/**
 * Server transactions (RFC 3261 17.2), matched as 17.2.3 says (top Via
 * branch + sent-by + method, ACK matching the INVITE). The rules are the
 * pure state machines of fsm.ts; this module is their adapter.
 *
 * A request matching a live or recently completed transaction gets the last
 * response again instead of being processed twice: over UDP that is how a
 * lost response is recovered; on TCP/TLS a proxy that fails over or a
 * confused peer may resend too. Over UDP a non-2xx final to an INVITE is
 * retransmitted (Timer G) until its ACK arrives (Timer H gives up), and the
 * ACK's retransmissions are absorbed (Timer I); the 2xx's retransmissions
 * are the dialog's (13.3.1.4).
 */
import type { CreateResponseOptions } from '../message/build.js';
import type { SipRequest, SipResponse } from '../message/types.js';
import { isReliable, type SipConnection } from '../transport/connection.js';
import { InviteServerFsm, NonInviteServerFsm, type TimerName, type TransactionAction } from './fsm.js';
import { TransactionTimers } from './timer-port.js';
import { TIMER_J } from './timers.js';

/** A request in its server transaction, as the layers above see it. */
export interface IncomingRequest {
  readonly request: SipRequest;
  /** The connection it came on; every response goes back over it (RFC 3261 18.2.2). */
  readonly flow: SipConnection;
  /** Sends a response; the first final response completes the transaction. */
  respond(status: number, reason?: string, options?: CreateResponseOptions): SipResponse;
}

export interface ServerTransaction {
  readonly key: string;
  readonly request: SipRequest;
  readonly flow: SipConnection;
  readonly lastResponse: SipResponse | undefined;
}

export type ServerMatch =
  | { kind: 'new'; transaction: ServerTransaction }
  /** The request again: the last response (if any) went out again; nothing else to do. */
  | { kind: 'retransmission'; transaction: ServerTransaction }
  /** An ACK for a non-2xx final response: part of the INVITE transaction, absorbed here (17.2.1). */
  | { kind: 'ack-absorbed' }
  /** Not transaction-bound (ACK for a 2xx, or a request without a usable branch): the UA core's job. */
  | { kind: 'none' };

interface Entry extends ServerTransaction {
  lastResponse: SipResponse | undefined;
  readonly fsm: InviteServerFsm | NonInviteServerFsm;
  readonly timers: TransactionTimers;
}

function keyOf(request: SipRequest, method: string): string | undefined {
  const via = request.headers.topVia();
  const branch = via?.params.get('branch');
  if (!via || !branch?.startsWith('z9hG4bK')) return undefined;
  return `${branch}\n${via.host}:${via.port ?? ''}\n${method}`;
}

export class ServerTransactions {
  readonly #live = new Map<string, Entry>();
  readonly #retainMs: number;

  /**
   * Completed non-INVITE transactions on TCP/TLS are kept `retainMs` (RFC
   * 3261 says 0) to answer a re-sent request again; over UDP Timer J rules.
   */
  constructor(retainMs = TIMER_J) {
    this.#retainMs = retainMs;
  }

  get size(): number {
    return this.#live.size;
  }

  match(request: SipRequest, flow: SipConnection): ServerMatch {
    this.#sweep();
    if (request.method === 'ACK') {
      const inviteKey = keyOf(request, 'INVITE');
      const invite = inviteKey ? this.#live.get(inviteKey) : undefined;
      if (invite?.lastResponse && invite.lastResponse.status >= 300) {
        if (invite.fsm instanceof InviteServerFsm) this.#run(invite, invite.fsm.ack());
        return { kind: 'ack-absorbed' };
      }
      return { kind: 'none' };
    }
    const key = keyOf(request, request.method);
    if (!key) return { kind: 'none' };
    const existing = this.#live.get(key);
    if (existing) {
      this.#run(existing, existing.fsm.request());
      return { kind: 'retransmission', transaction: existing };
    }
    const timing = { reliable: isReliable(flow), reliableRetainMs: this.#retainMs };
    const entry: Entry = {
      key,
      request,
      flow,
      lastResponse: undefined,
      fsm: request.method === 'INVITE' ? new InviteServerFsm(timing) : new NonInviteServerFsm(timing),
      timers: new TransactionTimers((name: TimerName) => this.#run(entry, entry.fsm.timer(name))),
    };
    this.#live.set(key, entry);
    return { kind: 'new', transaction: entry };
  }

  /** The INVITE transaction a CANCEL refers to (RFC 3261 9.2: same branch). */
  findInvite(cancel: SipRequest): ServerTransaction | undefined {
    const key = keyOf(cancel, 'INVITE');
    return key ? this.#live.get(key) : undefined;
  }

  /**
   * Sends `response` in `transaction` (on its connection) and keeps it for
   * retransmissions. A response after the final one is not sent.
   */
  respond(transaction: ServerTransaction, response: SipResponse): void {
    const entry = this.#live.get(transaction.key);
    if (entry !== transaction) {
      // Already forgotten (the connection went away, or it ended): nothing to retransmit.
      transaction.flow.send(response);
      return;
    }
    const actions = entry.fsm.respond(response.status);
    if (actions.length > 0) entry.lastResponse = response;
    this.#run(entry, actions);
  }

  clear(): void {
    for (const entry of this.#live.values()) entry.timers.clear();
    this.#live.clear();
  }

  #run(entry: Entry, actions: TransactionAction[]): void {
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          if (entry.lastResponse) entry.flow.send(entry.lastResponse);
          break;
        case 'start':
          entry.timers.start(action.timer, action.ms);
          break;
        case 'stop':
          entry.timers.stop(action.timer);
          break;
        case 'terminated':
          entry.timers.clear();
          if (this.#live.get(entry.key) === entry) this.#live.delete(entry.key);
          break;
        default:
          // 'timeout' (Timer H: no ACK for our non-2xx final) needs nothing more: the call never existed.
          break;
      }
    }
  }

  /** Transactions whose connection closed before they completed can never complete. */
  #sweep(): void {
    for (const [key, t] of this.#live) {
      if (t.flow.closed && t.fsm.state !== 'completed') {
        t.timers.clear();
        this.#live.delete(key);
      }
    }
  }
}
