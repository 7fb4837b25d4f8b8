/**
 * One timer for the media of every call in the process (a thin adapter over
 * setTimeout and setImmediate), instead of one per call.
 *
 * Each call's media asks to run at its own next due time (a packet to send,
 * a frame to play out): `MediaTimer.arm(dueMs)`. The scheduler keeps them in
 * a heap by due time and sets one Node.js timer for the earliest. When it
 * fires it runs every task that is due, on the due tasks' own clock (nothing
 * runs early, nothing is aligned to a common grid), and work that must see
 * the sockets read first goes to `afterPoll`, the check phase after the poll
 * phase (setImmediate).
 *
 * Both run in slices of at most `sliceMs`: when a slice is used up the rest
 * waits for the next turn of the event loop, after its poll phase. So a SIP
 * message that arrives while a thousand calls are due waits for one slice,
 * not for all of them (after a stall — GC, a descheduled process — every
 * call is due at once). Each task still does exactly what it would have done
 * on its own timer; only when is bounded.
 *
 * With a thousand calls this is 1 000 wake-ups a second instead of 50 000
 * timer callbacks, and no Timeout object per tick.
 */
import { performance } from 'node:perf_hooks';

export interface MediaSchedulerOptions {
  /** Longest run of tasks before the event loop gets a turn (ms). Default 2. */
  sliceMs?: number;
  /** The clock (ms, monotonic); default performance.now. */
  now?: () => number;
}

/** How long a slice of media work may hold the event loop before I/O gets a turn. */
export const MEDIA_SLICE_MS = 2;

/** One task's place in the scheduler: armed for a due time, or idle. */
export class MediaTimer {
  /** Position in the heap; -1 while not armed. */
  index = -1;
  due = 0;
  /** Arming order, so tasks due at the same time run first come, first served. */
  order = 0;
  readonly #scheduler: MediaScheduler;
  readonly callback: () => void;

  constructor(scheduler: MediaScheduler, callback: () => void) {
    this.#scheduler = scheduler;
    this.callback = callback;
  }

  get armed(): boolean {
    return this.index >= 0;
  }

  /** Runs the callback once at `dueMs` (on the scheduler's clock) or as soon after as the loop allows; replaces an earlier arm. */
  arm(dueMs: number): void {
    this.#scheduler.arm(this, dueMs);
  }

  /** Idempotent. */
  cancel(): void {
    this.#scheduler.cancel(this);
  }
}

export class MediaScheduler {
  readonly #sliceMs: number;
  readonly #now: () => number;
  readonly #heap: MediaTimer[] = [];
  #order = 0;
  /** The Node.js timer for the earliest task, and when it is set to fire. */
  #timeout: NodeJS.Timeout | undefined;
  #timeoutAt = Number.POSITIVE_INFINITY;
  /** Due tasks are being run (a later slice is queued with setImmediate). */
  #running = false;
  /** Work for after the next poll phase, in order; `#afterPollStart` is where the unrun part begins. */
  #afterPoll: (() => void)[] = [];
  #afterPollStart = 0;
  #afterPollQueued = false;

  constructor(options: MediaSchedulerOptions = {}) {
    this.#sliceMs = options.sliceMs ?? MEDIA_SLICE_MS;
    this.#now = options.now ?? (() => performance.now());
  }

  /** A timer for one task (a call's media). */
  timer(callback: () => void): MediaTimer {
    return new MediaTimer(this, callback);
  }

  /** Tasks armed now. */
  get size(): number {
    return this.#heap.length;
  }

  arm(timer: MediaTimer, dueMs: number): void {
    timer.due = dueMs;
    timer.order = this.#order++;
    if (timer.index < 0) {
      timer.index = this.#heap.length;
      this.#heap.push(timer);
      this.#up(timer.index);
    } else {
      // Earlier or later than before: one of the two moves does nothing.
      this.#up(timer.index);
      this.#down(timer.index);
    }
    this.#wake();
  }

  cancel(timer: MediaTimer): void {
    const i = timer.index;
    if (i < 0) return;
    timer.index = -1;
    const last = this.#heap.pop()!;
    if (last !== timer) {
      this.#heap[i] = last;
      last.index = i;
      this.#up(i);
      this.#down(i);
    }
    if (this.#heap.length === 0) this.#clearTimeout();
  }

  /**
   * Runs `fn` after the event loop's next poll phase (every datagram that
   * had arrived by now is read first), in slices with the other work queued
   * this way.
   */
  afterPoll(fn: () => void): void {
    this.#afterPoll.push(fn);
    if (!this.#afterPollQueued) {
      this.#afterPollQueued = true;
      setImmediate(this.#runAfterPoll);
    }
  }

  // --- running -----------------------------------------------------------------

  /** Makes sure the Node.js timer fires for the earliest task (unless a slice is already queued). */
  #wake(): void {
    if (this.#running) return;
    const first = this.#heap[0];
    if (first === undefined) {
      this.#clearTimeout();
      return;
    }
    if (first.due >= this.#timeoutAt) return;
    this.#clearTimeout();
    // Timers may fire a little early (whole ms): the run then finds nothing due and sets another.
    const delay = Math.max(0, Math.ceil(first.due - this.#now()));
    this.#timeoutAt = first.due;
    this.#timeout = setTimeout(this.#onTimeout, delay);
  }

  #clearTimeout(): void {
    if (this.#timeout !== undefined) clearTimeout(this.#timeout);
    this.#timeout = undefined;
    this.#timeoutAt = Number.POSITIVE_INFINITY;
  }

  readonly #onTimeout = (): void => {
    this.#timeout = undefined;
    this.#timeoutAt = Number.POSITIVE_INFINITY;
    this.#runDue();
  };

  readonly #runDue = (): void => {
    this.#running = true;
    const start = this.#now();
    // Tasks armed while this runs (due at once, say) wait for the next run: no task loops.
    const limit = this.#order;
    let now = start;
    for (;;) {
      const first = this.#heap[0];
      if (first === undefined || first.due > now || first.order >= limit) break;
      if (now - start >= this.#sliceMs) {
        // The rest after the poll phase: SIP and RTP get their turn first.
        setImmediate(this.#runDue);
        return;
      }
      this.cancel(first);
      run(first.callback);
      now = this.#now();
    }
    this.#running = false;
    this.#wake();
  };

  readonly #runAfterPoll = (): void => {
    this.#afterPollQueued = false;
    const queue = this.#afterPoll;
    // What is queued while these run waits for the next turn of the loop.
    const end = queue.length;
    const start = this.#now();
    let i = this.#afterPollStart;
    while (i < end) {
      run(queue[i]!);
      i++;
      if (i < end && this.#now() - start >= this.#sliceMs) break;
    }
    if (i === queue.length) {
      this.#afterPoll = [];
      this.#afterPollStart = 0;
      return;
    }
    if (i > 1024 && i > queue.length >> 1) {
      // Under lasting overload the queue never empties: drop what has run.
      this.#afterPoll = queue.slice(i);
      i = 0;
    }
    this.#afterPollStart = i;
    this.#afterPollQueued = true;
    setImmediate(this.#runAfterPoll);
  };

  // --- the heap ------------------------------------------------------------------

  #before(a: MediaTimer, b: MediaTimer): boolean {
    return a.due < b.due || (a.due === b.due && a.order < b.order);
  }

  #up(i: number): void {
    const heap = this.#heap;
    const timer = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p]!;
      if (!this.#before(timer, parent)) break;
      heap[i] = parent;
      parent.index = i;
      i = p;
    }
    heap[i] = timer;
    timer.index = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const timer = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && this.#before(heap[r]!, heap[l]!) ? r : l;
      const c = heap[child]!;
      if (!this.#before(c, timer)) break;
      heap[i] = c;
      c.index = i;
      i = child;
    }
    heap[i] = timer;
    timer.index = i;
  }
}

/** Runs one task; its failure is thrown on its own (as from its own timer) and the others still run. */
function run(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

/** The process's scheduler: every MediaSession uses it unless given another. */
export const mediaScheduler = new MediaScheduler();
