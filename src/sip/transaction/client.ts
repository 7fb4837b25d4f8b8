/**
 * Client non-INVITE transactions over reliable flows (RFC 3261 17.1.2): no
 * retransmissions (Timer E is not used on TCP/TLS), Timer F for no final
 * response, matched by the top Via branch plus CSeq method (17.1.3).
 */
import { ErrorCodes, SoftphoneError } from '../../errors.js';
import type { SipRequest, SipResponse } from '../message/types.js';
import { parseCSeq, parseVia } from '../message/uri.js';
import type { SipConnection } from '../transport/connection.js';
import { TIMER_F } from './timers.js';

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

export class ClientTransactions {
  readonly #pending = new Map<string, Pending>();

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

  /** Routes a response to its transaction; false for a stray response (to be dropped). */
  handleResponse(response: SipResponse): boolean {
    const branch = parseVia(response.headers.getAll('Via')[0] ?? '')?.params.get('branch');
    const cseq = parseCSeq(response.headers.get('CSeq') ?? '');
    if (!branch || !cseq) return false;
    const key = transactionKey(branch, cseq.method);
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
    for (const p of [...this.#pending.values()]) {
      this.#settle(p.key, (q) => q.reject(new SoftphoneError(ErrorCodes.CLOSED, 'user agent closed')));
    }
  }

  #settle(key: string, fn: (p: Pending) => void): void {
    const p = this.#pending.get(key);
    if (!p) return;
    this.#pending.delete(key);
    clearTimeout(p.timer);
    fn(p);
  }
}
