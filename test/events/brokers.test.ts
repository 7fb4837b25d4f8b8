/**
 * The event export against real brokers started by the suite (redis-server,
 * nats-server with JetStream): every event arrives, in order; a broker
 * restarted while events keep coming loses nothing beyond what the bounded
 * buffer counted as dropped, and delivery resumes by itself.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { parseBrokerUrl } from '../../src/events/broker-url.js';
import { EventExporter, type EventTransport } from '../../src/events/exporter.js';
import { NatsEventTransport } from '../../src/events/nats.js';
import { RedisEventTransport } from '../../src/events/redis.js';
import { type Broker, startNats, startRedis } from '../helpers/brokers.js';
import { waitFor } from '../helpers/ports.js';
import { describeInterop } from '../helpers/tools.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function broker(url: string) {
  const parsed = parseBrokerUrl(url);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.value;
}

interface Received {
  seq: number;
  source: string;
  event: string;
  i: number;
}

async function readRedis(b: Broker, stream: string): Promise<Received[]> {
  const client = new Redis(b.port, '127.0.0.1');
  try {
    const entries = await client.xrange(stream, '-', '+');
    return entries.map(([, fields]) => {
      const data = JSON.parse(fields[fields.indexOf('data') + 1] as string) as Received;
      expect(fields[fields.indexOf('event') + 1]).toBe(data.event);
      return data;
    });
  } finally {
    client.disconnect();
  }
}

async function readNats(b: Broker, stream: string): Promise<Received[]> {
  const nc = await connect({ servers: `127.0.0.1:${b.port}` });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream);
    const out: Received[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (m) out.push(m.json<Received>());
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** Received events of one source, repeats dropped (at least once), checked to be in order. */
function inOrder(events: Received[], source: string): number[] {
  const seqs: number[] = [];
  for (const e of events) {
    expect(e.source).toBe(source);
    if (seqs.includes(e.seq)) continue;
    if (seqs.length > 0) expect(e.seq).toBeGreaterThan(seqs[seqs.length - 1] as number);
    seqs.push(e.seq);
  }
  return seqs;
}

const KINDS: {
  name: string;
  tool: 'redis-server' | 'nats-server';
  start: () => Promise<Broker>;
  transport: (b: Broker) => EventTransport;
  read: (b: Broker) => Promise<Received[]>;
}[] = [
  {
    name: 'Redis Stream',
    tool: 'redis-server',
    start: startRedis,
    transport: (b) =>
      new RedisEventTransport(broker(b.url), { stream: 'rc-softphone:t:events', maxLen: 100_000 }),
    read: (b) => readRedis(b, 'rc-softphone:t:events'),
  },
  {
    name: 'NATS JetStream',
    tool: 'nats-server',
    start: startNats,
    transport: (b) =>
      new NatsEventTransport(broker(b.url), {
        subject: 'rc-softphone.t.events',
        stream: 'RC_T_EVENTS',
        maxLen: 100_000,
      }),
    read: (b) => readNats(b, 'RC_T_EVENTS'),
  },
];

for (const kind of KINDS) {
  describeInterop(`events to ${kind.name}`, [kind.tool], () => {
    it('delivers every event in order', { timeout: 60_000 }, async () => {
      const b = await kind.start();
      cleanups.push(() => b.close());
      const exporter = new EventExporter({
        transport: kind.transport(b),
        capacity: 10_000,
        source: 'test-a',
      });
      cleanups.push(() => exporter.close());
      for (let i = 1; i <= 1000; i++)
        exporter.publish({ event: i % 10 === 0 ? 'call.ended' : 'call.dtmf', i });
      expect(await exporter.flush(30_000)).toBe(true);
      const got = await kind.read(b);
      expect(inOrder(got, 'test-a')).toEqual(Array.from({ length: 1000 }, (_, k) => k + 1));
      expect(got.find((e) => e.seq === 10)).toMatchObject({ event: 'call.ended', i: 10 });
      expect(exporter.stats).toMatchObject({ published: 1000, delivered: 1000, dropped: 0, buffered: 0 });
    });

    it('survives a broker restart: nothing lost beyond the counted drops, delivery resumes', {
      timeout: 90_000,
    }, async () => {
      const b = await kind.start();
      cleanups.push(() => b.close());
      const exporter = new EventExporter({
        transport: kind.transport(b),
        capacity: 50,
        source: 'test-b',
        retry: { baseMs: 50, maxMs: 500 },
      });
      cleanups.push(() => exporter.close());
      const downs: string[] = [];
      const resumed: number[] = [];
      exporter.on('down', (e) => downs.push(e.reason));
      exporter.on('resumed', (e) => resumed.push(e.dropped));
      let i = 0;
      for (; i < 40; i++) exporter.publish({ event: 'before', i });
      expect(await exporter.flush(30_000)).toBe(true);
      await b.stop();
      // Events keep coming while the broker is away: the buffer keeps the newest 50.
      for (; i < 240; i++) exporter.publish({ event: 'during', i });
      await waitFor(() => downs.length > 0, { timeoutMs: 20_000, message: 'exporter saw the outage' });
      await b.start();
      for (; i < 270; i++) exporter.publish({ event: 'after', i });
      expect(await exporter.flush(60_000)).toBe(true);
      const seqs = inOrder(await kind.read(b), 'test-b');
      const { dropped, published } = exporter.stats;
      expect(published).toBe(270);
      expect(dropped).toBeGreaterThanOrEqual(150);
      // Exactly the dropped ones are missing; everything else arrived, once each, in order.
      expect(seqs.length).toBe(published - dropped);
      expect(seqs.slice(0, 40)).toEqual(Array.from({ length: 40 }, (_, k) => k + 1));
      expect(seqs.slice(-30)).toEqual(Array.from({ length: 30 }, (_, k) => 241 + k));
      // Said once when delivery came back (drops counted from when the outage was noticed).
      expect(resumed.length).toBeGreaterThanOrEqual(1);
      expect(resumed[0]).toBeLessThanOrEqual(dropped);
    });
  });
}
