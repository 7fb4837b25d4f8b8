/**
 * Server transactions over reliable flows (RFC 3261 17.2). On TCP/TLS the
 * peer does not retransmit on its own, but a proxy that fails over or a
 * confused peer may resend a request: a request matching a live or recently
 * completed transaction gets the last response again instead of being
 * processed twice (17.2.3 matching: top Via branch + sent-by + method, ACK
 * matching the INVITE).
 */
import type { SipRequest, SipResponse } from '../message/types.js';
import type { SipConnection } from '../transport/connection.js';
import { TIMER_J } from './timers.js';

export interface ServerTransaction {
  readonly key: string;
  readonly request: SipRequest;
  readonly flow: SipConnection;
  lastResponse: SipResponse | undefined;
  /** performance.now() when the final response was sent. */
  completedAt: number | undefined;
}

export type ServerMatch =
  | { kind: 'new'; transaction: ServerTransaction }
  | { kind: 'retransmission'; transaction: ServerTransaction }
  /** An ACK for a non-2xx final response: part of the INVITE transaction, absorbed here (17.2.1). */
  | { kind: 'ack-absorbed' }
  /** Not transaction-bound (ACK for a 2xx, or a request without a usable branch): the UA core's job. */
  | { kind: 'none' };

function keyOf(request: SipRequest, method: string): string | undefined {
  const via = request.headers.topVia();
  const branch = via?.params.get('branch');
  if (!via || !branch?.startsWith('z9hG4bK')) return undefined;
  return `${branch}\n${via.host}:${via.port ?? ''}\n${method}`;
}

export class ServerTransactions {
  readonly #live = new Map<string, ServerTransaction>();
  readonly #retainMs: number;

  /** Completed transactions are kept this long to absorb retransmissions (Timer J, 32 s). */
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
      if (invite?.lastResponse && invite.lastResponse.status >= 300) return { kind: 'ack-absorbed' };
      return { kind: 'none' };
    }
    const key = keyOf(request, request.method);
    if (!key) return { kind: 'none' };
    const existing = this.#live.get(key);
    if (existing) return { kind: 'retransmission', transaction: existing };
    const transaction: ServerTransaction = {
      key,
      request,
      flow,
      lastResponse: undefined,
      completedAt: undefined,
    };
    this.#live.set(key, transaction);
    return { kind: 'new', transaction };
  }

  /** The INVITE transaction a CANCEL refers to (RFC 3261 9.2: same branch). */
  findInvite(cancel: SipRequest): ServerTransaction | undefined {
    const key = keyOf(cancel, 'INVITE');
    return key ? this.#live.get(key) : undefined;
  }

  responded(transaction: ServerTransaction, response: SipResponse): void {
    transaction.lastResponse = response;
    if (response.status >= 200 && transaction.completedAt === undefined)
      transaction.completedAt = performance.now();
  }

  clear(): void {
    this.#live.clear();
  }

  #sweep(): void {
    const cutoff = performance.now() - this.#retainMs;
    for (const [key, t] of this.#live) {
      if (t.completedAt !== undefined && t.completedAt < cutoff) this.#live.delete(key);
      else if (t.completedAt === undefined && t.flow.closed) this.#live.delete(key);
    }
  }
}
