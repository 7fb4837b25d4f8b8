/**
 * Events to a NATS JetStream subject (@nats-io/transport-node with
 * @nats-io/jetstream). The stream is created when missing (file storage,
 * bounded to `maxLen` messages, the oldest discarded first); each publish
 * waits for JetStream's acknowledgement and carries the message id
 * `source:seq`, so a batch sent again after a lost answer is stored once
 * (within the stream's duplicate window).
 *
 * The connection is made on the first send and again after it closes, so a
 * NATS that is down at start-up is an outage like any other: the exporter
 * buffers and retries, nothing blocks.
 */
import {
  DiscardPolicy,
  type JetStreamClient,
  jetstream,
  jetstreamManager,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection, nanos } from '@nats-io/transport-node';
import type { BrokerUrl } from './broker-url.js';
import type { BufferedEvent } from './buffer.js';
import type { EventTransport } from './exporter.js';
import { DEFAULT_STREAM_MAXLEN } from './redis.js';

/** A NATS connection for our brokers: fails fast on the first connect, then reconnects forever. */
export async function connectNats(broker: BrokerUrl, name: string): Promise<NatsConnection> {
  return connect({
    servers: `${broker.host.includes(':') ? `[${broker.host}]` : broker.host}:${broker.port}`,
    name,
    ...(broker.username !== undefined && broker.password === undefined && { token: broker.username }),
    ...(broker.username !== undefined &&
      broker.password !== undefined && { user: broker.username, pass: broker.password }),
    ...(broker.tls && { tls: {} }),
    timeout: 5000,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
}

export class NatsEventTransport implements EventTransport {
  readonly kind = 'nats';
  readonly description: string;
  readonly subject: string;
  readonly streamName: string;
  readonly #broker: BrokerUrl;
  readonly #maxLen: number;
  #connecting: Promise<{ nc: NatsConnection; js: JetStreamClient }> | undefined;
  #closed = false;

  constructor(broker: BrokerUrl, options: { subject: string; stream: string; maxLen?: number }) {
    this.#broker = broker;
    this.subject = options.subject;
    this.streamName = options.stream;
    this.#maxLen = options.maxLen ?? DEFAULT_STREAM_MAXLEN;
    this.description = `NATS JetStream subject ${options.subject} (stream ${options.stream}) at ${broker.shown}`;
  }

  async send(batch: readonly BufferedEvent[], source: string): Promise<void> {
    const { js } = await this.#connection();
    // Published back to back on one connection: stored in this order.
    await Promise.all(
      batch.map((item) =>
        js.publish(this.subject, item.data, { msgID: `${source}:${item.seq}`, timeout: 5000 }),
      ),
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pending = this.#connecting;
    this.#connecting = undefined;
    if (!pending) return;
    try {
      await (await pending).nc.close();
    } catch {
      // never connected
    }
  }

  #connection(): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
    if (this.#closed) return Promise.reject(new Error('closed'));
    this.#connecting ??= (async () => {
      const nc = await connectNats(this.#broker, 'rc-softphone-events');
      try {
        const jsm = await jetstreamManager(nc, { timeout: 5000 });
        try {
          await jsm.streams.info(this.streamName);
        } catch {
          await jsm.streams.add({
            name: this.streamName,
            subjects: [this.subject],
            storage: StorageType.File,
            max_msgs: this.#maxLen,
            discard: DiscardPolicy.Old,
            duplicate_window: nanos(120_000),
          });
        }
        void nc.closed().then(() => {
          // Closed for good (not a reconnect): connect again on the next send.
          if (this.#connecting && !this.#closed) this.#connecting = undefined;
        });
        return { nc, js: jetstream(nc, { timeout: 5000 }) };
      } catch (err) {
        await nc.close().catch(() => {});
        throw err;
      }
    })();
    const pending = this.#connecting;
    pending.catch(() => {
      if (this.#connecting === pending) this.#connecting = undefined;
    });
    return pending;
  }
}
