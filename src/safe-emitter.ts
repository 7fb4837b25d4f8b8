/**
 * EventEmitters whose listeners are the user's code (Softphone, Call).
 *
 * A listener that throws must not unwind into the emitter: Call events fire
 * inside the media tick and the close path, so one bad `frame` handler would
 * otherwise end every call in the process. As mediasoup's `safeEmit` does,
 * each listener runs on its own; a throw is reported (once per event name)
 * to the owner's handler and counted, and the remaining listeners still run.
 */
import { EventEmitter } from 'node:events';

export type ListenerErrorHandler = (info: { event: string; error: unknown; count: number }) => void;

type AnyListener = (...args: unknown[]) => unknown;

export class SafeEmitter<T extends Record<keyof T, unknown[]>> extends EventEmitter<T> {
  #onListenerError: ListenerErrorHandler | undefined;
  #listenerErrors = 0;
  readonly #reported = new Set<string | symbol>();

  constructor() {
    super();
    // Assigned rather than overridden: the typed emit signature stays the base's.
    this.emit = safeEmit as unknown as typeof this.emit;
  }

  /** Listener exceptions caught so far. */
  get listenerErrors(): number {
    return this.#listenerErrors;
  }

  /** Where the first failure of each event's listeners is reported (the owner sets it). */
  setListenerErrorHandler(handler: ListenerErrorHandler): void {
    this.#onListenerError = handler;
  }

  /** @internal */
  listenerFailed(event: string | symbol, error: unknown): void {
    this.#listenerErrors++;
    if (this.#reported.has(event)) return;
    this.#reported.add(event);
    const info = { event: String(event), error, count: this.#listenerErrors };
    try {
      if (this.#onListenerError) this.#onListenerError(info);
      else process.emitWarning(`a '${info.event}' listener threw: ${describe(error)}`, 'ListenerError');
    } catch {
      // The reporter itself threw (a throwing 'warning' listener): nothing more to do safely.
    }
  }
}

function safeEmit(this: SafeEmitter<Record<string, unknown[]>>, event: string | symbol, ...args: unknown[]) {
  // rawListeners is a copy (once-wrappers included, which remove themselves when called),
  // so listeners added or removed meanwhile do not disturb this round, as with emit().
  const listeners = this.rawListeners(event as never) as unknown as AnyListener[];
  if (listeners.length === 0) {
    // Keep Node's rule: an 'error' nobody listens to is thrown, never swallowed.
    if (event === 'error') throw args[0] instanceof Error ? args[0] : new Error(String(args[0]));
    return false;
  }
  for (const listener of listeners) {
    try {
      Reflect.apply(listener, this, args);
    } catch (error) {
      this.listenerFailed(event, error);
    }
  }
  return true;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
