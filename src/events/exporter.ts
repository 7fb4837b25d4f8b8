/**
 * Sends every event of the JSON contract to a broker without ever making a
 * call wait for it. `publish()` is synchronous and only appends to the
 * bounded buffer; a pump sends batches in order, one at a time, and on a
 * failure keeps the batch at the head and retries with capped backoff, so
 * delivery resumes where it stopped once the broker is back. What the buffer
 * had to drop meanwhile is counted (`stats.dropped`) and said in one warning
 * when delivery resumes.
 *
 * Delivery is at least once: a batch whose answer was lost is sent again.
 * Each event carries `source` (this process) and `seq` (its place in this
 * process's stream), so a consumer drops repeats by (source, seq) and sees a
 * gap exactly where events were dropped. The NATS transport also sets the
 * JetStream message id to `source:seq`, which makes the server drop repeats.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { describeError } from '../errors.js';
import { SafeEmitter } from '../safe-emitter.js';
import { backoffDelay } from '../sip/transport/backoff.js';
import { BoundedEventBuffer, type BufferedEvent } from './buffer.js';

/** A broker adapter: takes a batch in order or throws. */
export interface EventTransport {
  /** `redis` or `nats`, for metrics and messages. */
  readonly kind: string;
  /** Where events go, credentials redacted (for messages). */
  readonly description: string;
  send(batch: readonly BufferedEvent[], source: string): Promise<void>;
  close(): Promise<void>;
}

export interface EventExporterOptions {
  transport: EventTransport;
  /** Events held while the broker is away; the oldest are dropped beyond it. */
  capacity?: number;
  /** Events per send. */
  batchSize?: number;
  /** This process's name in every event (`source`); default host:pid:random. */
  source?: string;
  retry?: { baseMs?: number; maxMs?: number };
}

export interface ExporterStats {
  /** Events handed to publish(). */
  published: number;
  /** Events the broker acknowledged. */
  delivered: number;
  /** Events pushed out of the full buffer (never delivered). */
  dropped: number;
  /** Events waiting now. */
  buffered: number;
  /** Failed sends (each retried). */
  failures: number;
  /** False from the first failed send until a send succeeds again. */
  connected: boolean;
}

export interface EventExporterEvents {
  /** The broker stopped taking events (once per outage). */
  down: [info: { reason: string }];
  /** It takes them again; `dropped` events were lost meanwhile. */
  resumed: [info: { dropped: number; downMs: number }];
}

export const DEFAULT_EVENT_BUFFER = 10_000;
const DEFAULT_BATCH = 200;

export function defaultSource(): string {
  return `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

export class EventExporter extends SafeEmitter<EventExporterEvents> {
  readonly source: string;
  readonly transport: EventTransport;
  readonly #buffer: BoundedEventBuffer;
  readonly #batchSize: number;
  readonly #retry: { baseMs: number; maxMs: number };
  #published = 0;
  #delivered = 0;
  #failures = 0;
  /** Events the buffer dropped while they were in a batch being sent, which then arrived after all. */
  #recovered = 0;
  #sending = false;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #downSince: number | undefined;
  #droppedAtDown = 0;
  #closed = false;
  readonly #idleWaiters = new Set<() => void>();

  constructor(options: EventExporterOptions) {
    super();
    this.transport = options.transport;
    this.source = options.source ?? defaultSource();
    this.#buffer = new BoundedEventBuffer(options.capacity ?? DEFAULT_EVENT_BUFFER);
    this.#batchSize = options.batchSize ?? DEFAULT_BATCH;
    this.#retry = { baseMs: options.retry?.baseMs ?? 250, maxMs: options.retry?.maxMs ?? 5000 };
  }

  get stats(): ExporterStats {
    return {
      published: this.#published,
      delivered: this.#delivered,
      dropped: this.#buffer.dropped - this.#recovered,
      buffered: this.#buffer.length,
      failures: this.#failures,
      connected: this.#downSince === undefined,
    };
  }

  /**
   * Queues one event: an object of the JSON contract, or its JSON text (the
   * logger's line). Never blocks, never throws; `source` and `seq` are added
   * in front. Ignored after close().
   */
  publish(record: Readonly<Record<string, unknown>> | string): void {
    if (this.#closed) return;
    this.#published++;
    const seq = this.#buffer.nextSeq;
    const head = `{"source":${JSON.stringify(this.source)},"seq":${seq}`;
    let data: string;
    try {
      const text = typeof record === 'string' ? record : JSON.stringify(record);
      data = text.startsWith('{')
        ? `${head}${text === '{}' ? '' : ','}${text.slice(1)}`
        : `${head},"value":${text}}`;
    } catch (err) {
      data = `${head},"event":"event.unserializable","message":${JSON.stringify(describeError(err))}}`;
    }
    this.#buffer.push(data);
    this.#kick();
  }

  /** Resolves true once everything queued was delivered, false if `timeoutMs` passes first. */
  flush(timeoutMs: number): Promise<boolean> {
    if (this.#buffer.length === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.#idleWaiters.delete(onIdle);
        resolve(ok);
      };
      const onIdle = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#idleWaiters.add(onIdle);
      // A retry may be waiting out its backoff: try now, shutdown is no time to wait.
      if (!this.#sending) {
        if (this.#timer) clearTimeout(this.#timer);
        this.#timer = undefined;
        void this.#pump();
      }
    });
  }

  /** Stops sending (what is still buffered is lost; flush() first) and closes the transport. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      await this.transport.close();
    } catch {
      // Closing a broken connection: nothing left to do.
    }
  }

  #kick(): void {
    if (this.#sending || this.#timer !== undefined || this.#closed) return;
    // The send starts on a later tick: publish() stays synchronous and cheap,
    // and events published in the same tick go out in one batch.
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#pump();
    }, 0);
  }

  async #pump(): Promise<void> {
    if (this.#sending || this.#closed) return;
    this.#sending = true;
    try {
      for (;;) {
        const batch = this.#buffer.peek(this.#batchSize);
        if (batch.length === 0 || this.#closed) break;
        try {
          await this.transport.send(batch, this.source);
        } catch (err) {
          this.#failed(err);
          return;
        }
        const last = batch[batch.length - 1] as BufferedEvent;
        // Events of this batch the full buffer pushed out while it was in flight
        // arrived all the same: delivered, not dropped (the counts stay exact).
        const head = this.#buffer.peek(1)[0]?.seq ?? this.#buffer.nextSeq;
        const arrivedAnyway = batch.filter((e) => e.seq < head).length;
        this.#recovered += arrivedAnyway;
        const before = this.#buffer.length;
        this.#buffer.ack(last.seq);
        this.#delivered += before - this.#buffer.length + arrivedAnyway;
        this.#succeeded();
      }
    } finally {
      this.#sending = false;
    }
    if (this.#buffer.length === 0) {
      for (const waiter of [...this.#idleWaiters]) waiter();
    } else if (!this.#closed && this.#timer === undefined && this.#attempt === 0) {
      this.#kick();
    }
  }

  #failed(err: unknown): void {
    this.#failures++;
    this.#attempt++;
    if (this.#downSince === undefined) {
      this.#downSince = Date.now();
      this.#droppedAtDown = this.stats.dropped;
      this.emit('down', { reason: describeError(err) });
    }
    if (this.#closed) return;
    const delay = backoffDelay(this.#attempt, { ...this.#retry, jitter: 0.3 });
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#pump();
    }, delay);
    this.#timer.unref();
  }

  #succeeded(): void {
    this.#attempt = 0;
    if (this.#downSince === undefined) return;
    const downMs = Date.now() - this.#downSince;
    this.#downSince = undefined;
    this.emit('resumed', { dropped: this.stats.dropped - this.#droppedAtDown, downMs });
  }
}
