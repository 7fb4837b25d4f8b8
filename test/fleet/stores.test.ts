/**
 * The lease stores against real servers (redis-server, nats-server with
 * JetStream): only the holder's token renews or releases, a lease expires
 * after its TTL, a taken lease says how long it has left, membership counts
 * live processes and forgets silent ones.
 */
import { afterEach, expect, it } from 'vitest';
import { parseBrokerUrl } from '../../src/events/broker-url.js';
import type { LeaseStore } from '../../src/fleet/coordinator.js';
import { NatsLeaseStore } from '../../src/fleet/nats-store.js';
import { RedisLeaseStore } from '../../src/fleet/redis-store.js';
import { type Broker, startNats, startRedis } from '../helpers/brokers.js';
import { waitFor } from '../helpers/ports.js';
import { describeInterop } from '../helpers/tools.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const TTL = 1500;
const MEMBER_TTL = 1000;

const KINDS: {
  name: string;
  tool: 'redis-server' | 'nats-server';
  start: () => Promise<Broker>;
  store: (b: Broker) => LeaseStore;
}[] = [
  {
    name: 'Redis',
    tool: 'redis-server',
    start: startRedis,
    store: (b) => new RedisLeaseStore(url(b.url), 'test'),
  },
  {
    name: 'NATS KV',
    tool: 'nats-server',
    start: startNats,
    store: (b) => new NatsLeaseStore(url(b.url), 'test', { leaseMs: TTL, memberMs: MEMBER_TTL }),
  },
];

function url(text: string) {
  const r = parseBrokerUrl(text);
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}

for (const kind of KINDS) {
  describeInterop(`lease store: ${kind.name}`, [kind.tool], () => {
    it('compare-and-set: only the holder renews and releases; the lease expires after its TTL', {
      timeout: 30_000,
    }, async () => {
      const b = await kind.start();
      cleanups.push(() => b.close());
      const s1 = kind.store(b);
      const s2 = kind.store(b);
      cleanups.push(
        () => s1.close(),
        () => s2.close(),
      );
      expect(await s1.acquire('dev-1', 'p1', TTL)).toEqual({ ok: true });
      const taken = await s2.acquire('dev-1', 'p2', TTL);
      expect(taken.ok).toBe(false);
      if (!taken.ok) expect(taken.remainingMs).toBeLessThanOrEqual(TTL);
      expect(await s2.renew('dev-1', 'p2', TTL)).toBe(false);
      await s2.release('dev-1', 'p2'); // not its token: no effect
      expect(await s1.renew('dev-1', 'p1', TTL)).toBe(true);
      expect((await s2.acquire('dev-1', 'p2', TTL)).ok).toBe(false);
      // Not renewed: it lapses, and the other takes it; the old holder's renewal is refused.
      await waitFor(async () => (await s2.acquire('dev-1', 'p2', TTL)).ok, {
        timeoutMs: 10_000,
        intervalMs: 100,
      });
      expect(await s1.renew('dev-1', 'p1', TTL)).toBe(false);
      await s2.release('dev-1', 'p2');
      expect(await s1.acquire('dev-1', 'p1', TTL)).toEqual({ ok: true });
    });

    it('membership counts live processes and forgets the silent', { timeout: 30_000 }, async () => {
      const b = await kind.start();
      cleanups.push(() => b.close());
      const s = kind.store(b);
      cleanups.push(() => s.close());
      expect(await s.heartbeat('p1', MEMBER_TTL)).toBe(1);
      expect(await s.heartbeat('p2', MEMBER_TTL)).toBe(2);
      await s.leave('p2');
      expect(await s.heartbeat('p1', MEMBER_TTL)).toBe(1);
      await s.heartbeat('p3', MEMBER_TTL);
      // p3 stays silent: gone after its TTL while p1 keeps beating.
      await waitFor(async () => (await s.heartbeat('p1', MEMBER_TTL)) === 1, {
        timeoutMs: 10_000,
        intervalMs: 200,
      });
    });

    it('a store that is down fails fast (the coordinator counts that as an outage)', {
      timeout: 30_000,
    }, async () => {
      const b = await kind.start();
      cleanups.push(() => b.close());
      const s = kind.store(b);
      cleanups.push(() => s.close());
      expect((await s.acquire('x', 'p1', TTL)).ok).toBe(true);
      await b.kill();
      const started = Date.now();
      await expect(s.renew('x', 'p1', TTL)).rejects.toBeTruthy();
      expect(Date.now() - started).toBeLessThan(TTL * 5);
    });
  });
}
