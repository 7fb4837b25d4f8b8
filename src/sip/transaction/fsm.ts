/**
 * The four transaction state machines of RFC 3261 17 (with the Accepted
 * states of RFC 6026), pure: no sockets, no clocks. Each event (the TU
 * sends or answers, a message arrives, a timer fires) returns the actions
 * its adapter carries out: send the request or the last response again, ACK,
 * start or stop a named timer, hand a response to the TU, report a timeout,
 * forget the transaction. The adapters (client.ts, server.ts) own the
 * messages and the real timers; these classes own the rules.
 *
 * Reliable transports (TCP, TLS) and unreliable ones (UDP) differ only in
 * timer values, as the RFC words it: the retransmission timers (A, E, G)
 * are not started on a reliable transport, and the wait-for-retransmissions
 * timers (D, K, I, J) are zero there.
 */
import { T1, T2, T4, TIMER_D_UNRELIABLE } from './timers.js';

export type TimerName = 'A' | 'B' | 'D' | 'E' | 'F' | 'K' | 'M' | 'G' | 'H' | 'I' | 'J' | 'L';

export type TransactionAction =
  /** Client: (re)transmit the request. Server: (re)transmit the last response. */
  | { type: 'send' }
  /** INVITE client: (re)send the ACK for the non-2xx final response (17.1.1.3). */
  | { type: 'ack' }
  | { type: 'start'; timer: TimerName; ms: number }
  | { type: 'stop'; timer: TimerName }
  /** Client: hand the response that caused this to the TU. */
  | { type: 'deliver' }
  /** B or F: no final response. H: no ACK for our final response. */
  | { type: 'timeout' }
  /** Forget the transaction (its timers are stopped with it). */
  | { type: 'terminated' };

export interface TransactionTiming {
  /** TCP or TLS: no retransmissions, no waiting for retransmissions. */
  reliable: boolean;
  t1?: number;
  t2?: number;
  t4?: number;
  /** Timer F (or B) override: the TU gives up sooner (a BYE at hang-up, a probe). */
  timeoutMs?: number;
  /**
   * How long a completed non-INVITE server transaction stays on a reliable
   * transport (RFC 3261 says 0): we keep answering a request a failing-over
   * proxy sends again instead of processing it twice.
   */
  reliableRetainMs?: number;
}

type Actions = TransactionAction[];

const start = (timer: TimerName, ms: number): TransactionAction => ({ type: 'start', timer, ms });
const stop = (timer: TimerName): TransactionAction => ({ type: 'stop', timer });
const SEND: TransactionAction = { type: 'send' };
const DELIVER: TransactionAction = { type: 'deliver' };
const TERMINATED: TransactionAction = { type: 'terminated' };

class Timing {
  readonly reliable: boolean;
  readonly t1: number;
  readonly t2: number;
  readonly t4: number;
  readonly timeoutMs: number;
  readonly reliableRetainMs: number;

  constructor(t: TransactionTiming) {
    this.reliable = t.reliable;
    this.t1 = t.t1 ?? T1;
    this.t2 = t.t2 ?? T2;
    this.t4 = t.t4 ?? T4;
    this.timeoutMs = t.timeoutMs ?? 64 * this.t1;
    this.reliableRetainMs = t.reliableRetainMs ?? 0;
  }
}

// ── client ───────────────────────────────────────────────────────────────

export type InviteClientState = 'calling' | 'proceeding' | 'accepted' | 'completed' | 'terminated';

/** RFC 3261 17.1.1.2, with RFC 6026 7.2 (Accepted, Timer M). */
export class InviteClientFsm {
  readonly #t: Timing;
  #state: InviteClientState = 'calling';
  #a: number;

  constructor(timing: TransactionTiming) {
    this.#t = new Timing(timing);
    this.#a = this.#t.t1;
  }

  get state(): InviteClientState {
    return this.#state;
  }

  /** The TU sends the INVITE. */
  start(): Actions {
    const out: Actions = [SEND];
    if (!this.#t.reliable) out.push(start('A', this.#a));
    out.push(start('B', this.#t.timeoutMs));
    return out;
  }

  response(status: number): Actions {
    switch (this.#state) {
      case 'calling':
      case 'proceeding':
        if (status < 200) {
          // RFC 3261 17.1.1.2: Timer B only guards Calling. A callee may ring
          // for minutes; the TU's own timers end a call that rings too long
          // (the ring timeout) or a re-INVITE stuck after its 100.
          const out: Actions = this.#state === 'calling' ? [stop('A'), stop('B')] : [];
          this.#state = 'proceeding';
          return [...out, DELIVER];
        }
        if (status < 300) {
          this.#state = 'accepted';
          return [stop('A'), stop('B'), start('M', 64 * this.#t.t1), DELIVER];
        }
        this.#state = 'completed';
        return [
          stop('A'),
          stop('B'),
          { type: 'ack' },
          start('D', this.#t.reliable ? 0 : TIMER_D_UNRELIABLE),
          DELIVER,
        ];
      case 'accepted':
        // RFC 6026 7.2: further 2xx (retransmissions, other forks) go to the TU, which ACKs them.
        return status >= 200 && status < 300 ? [DELIVER] : [];
      case 'completed':
        // A retransmitted final: ACK it again, tell nobody.
        return status >= 300 ? [{ type: 'ack' }] : [];
      default:
        return [];
    }
  }

  timer(name: TimerName): Actions {
    if (name === 'A' && this.#state === 'calling') {
      this.#a *= 2;
      return [SEND, start('A', this.#a)];
    }
    if (name === 'B' && this.#state === 'calling') {
      this.#state = 'terminated';
      return [stop('A'), { type: 'timeout' }, TERMINATED];
    }
    if ((name === 'D' && this.#state === 'completed') || (name === 'M' && this.#state === 'accepted')) {
      this.#state = 'terminated';
      return [TERMINATED];
    }
    return [];
  }

  /** The connection failed or closed (17.1.4). */
  transportError(): Actions {
    if (this.#state === 'terminated') return [];
    this.#state = 'terminated';
    return [TERMINATED];
  }
}

export type NonInviteClientState = 'trying' | 'proceeding' | 'completed' | 'terminated';

/** RFC 3261 17.1.2.2. */
export class NonInviteClientFsm {
  readonly #t: Timing;
  #state: NonInviteClientState = 'trying';
  #e: number;

  constructor(timing: TransactionTiming) {
    this.#t = new Timing(timing);
    this.#e = this.#t.t1;
  }

  get state(): NonInviteClientState {
    return this.#state;
  }

  start(): Actions {
    const out: Actions = [SEND];
    if (!this.#t.reliable) out.push(start('E', this.#e));
    out.push(start('F', this.#t.timeoutMs));
    return out;
  }

  response(status: number): Actions {
    if (this.#state !== 'trying' && this.#state !== 'proceeding') return [];
    if (status < 200) {
      this.#state = 'proceeding';
      return [DELIVER];
    }
    this.#state = 'completed';
    // Timer K: absorb the final's retransmissions for T4 on UDP.
    return [stop('E'), stop('F'), start('K', this.#t.reliable ? 0 : this.#t.t4), DELIVER];
  }

  timer(name: TimerName): Actions {
    if (name === 'E' && (this.#state === 'trying' || this.#state === 'proceeding')) {
      // Trying: doubling up to T2. Proceeding: every T2.
      this.#e = this.#state === 'trying' ? Math.min(2 * this.#e, this.#t.t2) : this.#t.t2;
      return [SEND, start('E', this.#e)];
    }
    if (name === 'F' && (this.#state === 'trying' || this.#state === 'proceeding')) {
      this.#state = 'terminated';
      return [stop('E'), { type: 'timeout' }, TERMINATED];
    }
    if (name === 'K' && this.#state === 'completed') {
      this.#state = 'terminated';
      return [TERMINATED];
    }
    return [];
  }

  transportError(): Actions {
    if (this.#state === 'terminated') return [];
    this.#state = 'terminated';
    return [TERMINATED];
  }
}

// ── server ───────────────────────────────────────────────────────────────

export type InviteServerState = 'proceeding' | 'accepted' | 'completed' | 'confirmed' | 'terminated';

/** RFC 3261 17.2.1, with RFC 6026 8.7 (Accepted, Timer L). */
export class InviteServerFsm {
  readonly #t: Timing;
  #state: InviteServerState = 'proceeding';
  #g: number;
  #responded = false;

  constructor(timing: TransactionTiming) {
    this.#t = new Timing(timing);
    this.#g = this.#t.t1;
  }

  get state(): InviteServerState {
    return this.#state;
  }

  /** The TU answers with `status`. */
  respond(status: number): Actions {
    if (this.#state !== 'proceeding') return [];
    this.#responded = true;
    if (status < 200) return [SEND];
    if (status < 300) {
      // The 2xx's retransmissions are the TU's (RFC 3261 13.3.1.4).
      this.#state = 'accepted';
      return [SEND, start('L', 64 * this.#t.t1)];
    }
    this.#state = 'completed';
    const out: Actions = [SEND];
    if (!this.#t.reliable) out.push(start('G', this.#g));
    out.push(start('H', 64 * this.#t.t1));
    return out;
  }

  /**
   * The INVITE arrived again: the last response again (RFC 6026 8.7 absorbs
   * it once accepted; sending the 2xx again gets a caller whose 2xx was
   * lost going sooner, and the dialog retransmits it anyway).
   */
  request(): Actions {
    if (this.#state === 'confirmed' || this.#state === 'terminated' || !this.#responded) return [];
    return [SEND];
  }

  /** An ACK for our non-2xx final (the 2xx's ACK is the dialog's). Returns [] when absorbed. */
  ack(): Actions {
    if (this.#state !== 'completed') return [];
    this.#state = 'confirmed';
    return [stop('G'), stop('H'), start('I', this.#t.reliable ? 0 : this.#t.t4)];
  }

  timer(name: TimerName): Actions {
    if (name === 'G' && this.#state === 'completed') {
      this.#g = Math.min(2 * this.#g, this.#t.t2);
      return [SEND, start('G', this.#g)];
    }
    if (name === 'H' && this.#state === 'completed') {
      this.#state = 'terminated';
      return [stop('G'), { type: 'timeout' }, TERMINATED];
    }
    if ((name === 'I' && this.#state === 'confirmed') || (name === 'L' && this.#state === 'accepted')) {
      this.#state = 'terminated';
      return [TERMINATED];
    }
    return [];
  }

  transportError(): Actions {
    if (this.#state === 'terminated') return [];
    this.#state = 'terminated';
    return [TERMINATED];
  }
}

export type NonInviteServerState = 'trying' | 'proceeding' | 'completed' | 'terminated';

/** RFC 3261 17.2.2. */
export class NonInviteServerFsm {
  readonly #t: Timing;
  #state: NonInviteServerState = 'trying';

  constructor(timing: TransactionTiming) {
    this.#t = new Timing(timing);
  }

  get state(): NonInviteServerState {
    return this.#state;
  }

  respond(status: number): Actions {
    if (this.#state === 'completed' || this.#state === 'terminated') return [];
    if (status < 200) {
      this.#state = 'proceeding';
      return [SEND];
    }
    this.#state = 'completed';
    return [SEND, start('J', this.#t.reliable ? this.#t.reliableRetainMs : 64 * this.#t.t1)];
  }

  /** The request arrived again: absorbed in Trying, the last response again after that. */
  request(): Actions {
    return this.#state === 'proceeding' || this.#state === 'completed' ? [SEND] : [];
  }

  timer(name: TimerName): Actions {
    if (name === 'J' && this.#state === 'completed') {
      this.#state = 'terminated';
      return [TERMINATED];
    }
    return [];
  }

  transportError(): Actions {
    if (this.#state === 'terminated') return [];
    this.#state = 'terminated';
    return [TERMINATED];
  }
}
