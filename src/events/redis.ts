/**
 * Events to a Redis Stream (ioredis): one XADD per event, a batch in one
 * pipeline, the stream trimmed to about `maxLen` entries (MAXLEN ~, which
 * Redis trims in whole nodes: cheap, and never below maxLen). Each entry has
 * the fields `event` (the name) and `data` (the whole JSON object).
 *
 * The client never queues on its own (enableOfflineQueue false, no per-request
 * retries): while Redis is away a send fails at once and the exporter's
 * bounded buffer is the only queue. It reconnects by itself, with backoff.
 */
import { Redis } from 'ioredis';
import type { BrokerUrl } from './broker-url.js';
import type { BufferedEvent } from './buffer.js';
import type { EventTransport } from './exporter.js';

export const DEFAULT_STREAM_MAXLEN = 100_000;

/** An ioredis client that fails fast while disconnected and reconnects forever (capped backoff). */
export function createRedisClient(broker: BrokerUrl, name: string): Redis {
  const client = new Redis({
    host: broker.host,
    port: broker.port,
    db: broker.db,
    ...(broker.username !== undefined && { username: broker.username }),
    ...(broker.password !== undefined && { password: broker.password }),
    ...(broker.tls && { tls: { servername: broker.host } }),
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 5000,
    commandTimeout: 5000,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 3000),
    lazyConnect: false,
  });
  // ioredis reports connection errors as 'error' events; the callers see them
  // as failed commands, so the event itself only needs a listener.
  client.on('error', () => {});
  return client;
}

/**
 * Resolves once the client is connected, or after `waitMs` (the command
 * that follows then fails fast): a command sent in the instant the client is
 * still connecting would otherwise fail for nothing.
 */
export function whenReady(client: Redis, waitMs = 1000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      client.off('ready', done);
      resolve();
    };
    const timer = setTimeout(done, waitMs);
    client.once('ready', done);
  });
}

export class RedisEventTransport implements EventTransport {
  readonly kind = 'redis';
  readonly description: string;
  readonly stream: string;
  readonly #client: Redis;
  readonly #maxLen: number;

  constructor(broker: BrokerUrl, options: { stream: string; maxLen?: number }) {
    this.stream = options.stream;
    this.#maxLen = options.maxLen ?? DEFAULT_STREAM_MAXLEN;
    this.description = `Redis stream ${options.stream} at ${broker.shown}`;
    this.#client = createRedisClient(broker, 'rc-softphone-events');
  }

  async send(batch: readonly BufferedEvent[]): Promise<void> {
    await whenReady(this.#client);
    const pipeline = this.#client.pipeline();
    for (const item of batch) {
      pipeline.xadd(
        this.stream,
        'MAXLEN',
        '~',
        String(this.#maxLen),
        '*',
        'event',
        eventName(item.data),
        'data',
        item.data,
      );
    }
    const results = await pipeline.exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw failed?.[0] ?? new Error('Redis pipeline returned nothing');
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }
}

/** The `event` field of a serialized event (cheap: it is the object's first or near-first key). */
export function eventName(data: string): string {
  const m = /"event":"([^"\\]{1,100})"/.exec(data);
  return m?.[1] ?? 'unknown';
}
