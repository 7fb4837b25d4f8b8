/**
 * The bounded buffer between the bot and a broker (pure, synchronous). Events
 * wait here while the broker is slow or gone; when it is full the oldest
 * event makes room for the newest and is counted as dropped, so memory stays
 * bounded whatever the outage and the count says exactly what was lost.
 *
 * Every event gets a sequence number as it enters; a sender takes a batch by
 * `peek`, and after the broker took it, `ack(lastSeq)` removes everything up
 * to that number. Entries dropped while the batch was in flight are simply no
 * longer there to remove (nothing is removed twice).
 */

export interface BufferedEvent {
  /** 1, 2, 3, … in the order events entered; never reused. */
  readonly seq: number;
  readonly data: string;
}

export class BoundedEventBuffer {
  readonly capacity: number;
  readonly #ring: (BufferedEvent | undefined)[];
  #head = 0;
  #length = 0;
  #nextSeq = 1;
  #dropped = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`bad capacity ${capacity}`);
    this.capacity = capacity;
    this.#ring = new Array(capacity);
  }

  /** Events waiting. */
  get length(): number {
    return this.#length;
  }

  /** Events pushed out by newer ones since the start. */
  get dropped(): number {
    return this.#dropped;
  }

  /** The sequence number the next event gets. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Appends; returns the event's sequence number. A full buffer drops its oldest event first. */
  push(data: string): number {
    if (this.#length === this.capacity) {
      this.#ring[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.capacity;
      this.#length--;
      this.#dropped++;
    }
    const seq = this.#nextSeq++;
    this.#ring[(this.#head + this.#length) % this.capacity] = { seq, data };
    this.#length++;
    return seq;
  }

  /** Up to `max` of the oldest events, oldest first, without removing them. */
  peek(max: number): BufferedEvent[] {
    const n = Math.min(max, this.#length);
    const out: BufferedEvent[] = [];
    for (let i = 0; i < n; i++) out.push(this.#ring[(this.#head + i) % this.capacity] as BufferedEvent);
    return out;
  }

  /** Removes every event with a sequence number up to `seq` (delivered). */
  ack(seq: number): void {
    while (this.#length > 0) {
      const head = this.#ring[this.#head] as BufferedEvent;
      if (head.seq > seq) return;
      this.#ring[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.capacity;
      this.#length--;
    }
  }
}
