/**
 * The timers adapter of a transaction state machine (fsm.ts): one real timer
 * per RFC timer name, started and stopped as the machine says; a timer that
 * fires is handed back to the machine by name.
 */
import type { TimerName } from './fsm.js';

/**
 * Timers that only absorb stray retransmissions, or keep repeating a refusal
 * until its ACK: they must not keep the process alive. Those a TU waits on
 * (A, B, E, F) do, as the pending request does.
 */
const LINGER: ReadonlySet<TimerName> = new Set(['D', 'K', 'M', 'G', 'H', 'I', 'J', 'L']);

export class TransactionTimers {
  readonly #handles = new Map<TimerName, NodeJS.Timeout>();
  readonly #fire: (name: TimerName) => void;

  constructor(fire: (name: TimerName) => void) {
    this.#fire = fire;
  }

  start(name: TimerName, ms: number): void {
    this.stop(name);
    const handle = setTimeout(() => {
      this.#handles.delete(name);
      this.#fire(name);
    }, ms);
    if (LINGER.has(name)) handle.unref();
    this.#handles.set(name, handle);
  }

  stop(name: TimerName): void {
    const handle = this.#handles.get(name);
    if (handle === undefined) return;
    clearTimeout(handle);
    this.#handles.delete(name);
  }

  clear(): void {
    for (const handle of this.#handles.values()) clearTimeout(handle);
    this.#handles.clear();
  }
}
