/**
 * The lease loop with an in-memory store (the Redis and NATS stores are
 * tried against real servers in stores.test.ts): devices are split by
 * share, a holder cut off from the store stops its devices before their
 * leases can be taken, a taken-over lease stops the device at once
 * (fencing), and a stop releases everything.
 */
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { type AcquireResult, LeaseCoordinator, type LeaseStore } from '../../src/fleet/coordinator.js';
import { leaseTiming } from '../../src/fleet/lease.js';
import { waitFor } from '../helpers/ports.js';

class MemoryStore {
  readonly leases = new Map<string, { token: string; until: number }>();
  readonly members = new Map<string, number>();
  now = () => performance.now();
  live(id: string): string | undefined {
    const l = this.leases.get(id);
    return l && l.until > this.now() ? l.token : undefined;
  }
  /** A view for one process; `down` makes every call of that process fail (cut off). */
  client(): LeaseStore & { down: boolean } {
    const store = this;
    const check = () => {
      if (client.down) throw new Error('store unreachable');
    };
    const client = {
      down: false,
      description: 'memory',
      async heartbeat(member: string, ttlMs: number) {
        check();
        store.members.set(member, store.now() + ttlMs);
        for (const [m, until] of store.members) if (until <= store.now()) store.members.delete(m);
        return store.members.size;
      },
      async leave(member: string) {
        check();
        store.members.delete(member);
      },
      async acquire(id: string, token: string, ttlMs: number): Promise<AcquireResult> {
        check();
        const holder = store.live(id);
        if (holder === undefined || holder === token) {
          store.leases.set(id, { token, until: store.now() + ttlMs });
          return { ok: true };
        }
        return { ok: false, remainingMs: (store.leases.get(id)?.until ?? 0) - store.now() };
      },
      async renew(id: string, token: string, ttlMs: number) {
        check();
        if (store.live(id) !== token) return false;
        store.leases.set(id, { token, until: store.now() + ttlMs });
        return true;
      },
      async release(id: string, token: string) {
        check();
        if (store.live(id) === token) store.leases.delete(id);
      },
      async close() {},
    };
    return client;
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DEVICES = ['a', 'b', 'c', 'd'];

/** A coordinator whose devices are a set of "registered" ids, with every start/stop logged. */
function process(store: MemoryStore, member: string, log: string[], ttlMs = 900) {
  const running = new Set<string>();
  const client = store.client();
  const c = new LeaseCoordinator({
    store: client,
    devices: DEVICES,
    member,
    timing: leaseTiming(ttlMs),
    start: (id) => {
      // Never two registrations of one device: nobody else may be running it now.
      log.push(`${member} start ${id}`);
      running.add(id);
    },
    stop: async (id) => {
      log.push(`${member} stop ${id}`);
      running.delete(id);
    },
  });
  cleanups.push(() => c.stop());
  return { c, running, client };
}

describe('LeaseCoordinator', () => {
  it('spreads the devices over the processes, and never runs one device in two', {
    timeout: 20_000,
  }, async () => {
    const store = new MemoryStore();
    const log: string[] = [];
    const p1 = process(store, 'p1', log);
    p1.c.start();
    await waitFor(() => p1.running.size === 4, { message: 'p1 takes all four alone' });
    const p2 = process(store, 'p2', log);
    p2.c.start();
    // p1 sees two members, gives back two; p2 takes them.
    await waitFor(() => p1.running.size === 2 && p2.running.size === 2, { timeoutMs: 10_000 });
    expect([...p1.running, ...p2.running].sort()).toEqual(DEVICES);
    assertNeverTwice(log);
    expect(p1.c.share).toEqual({ members: 2, share: 2 });
  });

  it('a process cut off from the store stops its devices before anyone else can take them', {
    timeout: 20_000,
  }, async () => {
    const store = new MemoryStore();
    const log: string[] = [];
    const p1 = process(store, 'p1', log);
    const p2 = process(store, 'p2', log);
    p1.c.start();
    p2.c.start();
    await waitFor(() => p1.running.size === 2 && p2.running.size === 2, { timeoutMs: 10_000 });
    const lost: string[] = [];
    p1.c.on('lost', (id) => lost.push(id));
    const theirs = [...p1.running];
    p1.client.down = true;
    await waitFor(() => p2.running.size === 4, { timeoutMs: 10_000, message: 'p2 takes over' });
    expect(lost.sort()).toEqual(theirs.sort());
    expect(p1.running.size).toBe(0);
    assertNeverTwice(log);
  });

  it('fencing: a lease found under another token stops the device at the next renewal', {
    timeout: 10_000,
  }, async () => {
    const store = new MemoryStore();
    const log: string[] = [];
    const p1 = process(store, 'p1', log);
    p1.c.start();
    await waitFor(() => p1.running.size === 4);
    const reasons: string[] = [];
    p1.c.on('lost', (_id, reason) => reasons.push(reason));
    store.leases.set('a', { token: 'intruder', until: performance.now() + 60_000 });
    await waitFor(() => !p1.running.has('a'));
    expect(reasons[0]).toMatch(/held by another process/);
  });

  it('stop() stops every device first, then releases its lease', { timeout: 10_000 }, async () => {
    const store = new MemoryStore();
    const log: string[] = [];
    const p1 = process(store, 'p1', log);
    p1.c.start();
    await waitFor(() => p1.running.size === 4);
    await p1.c.stop();
    expect(p1.running.size).toBe(0);
    for (const id of DEVICES) expect(store.live(id)).toBeUndefined();
    expect(store.members.size).toBe(0);
  });
});

/** Replays the start/stop log: a device is never started while another process runs it. */
function assertNeverTwice(log: string[]): void {
  const runner = new Map<string, string>();
  for (const line of log) {
    const [member, what, id] = line.split(' ') as [string, string, string];
    if (what === 'start') {
      expect(runner.get(id), `${line} while ${runner.get(id)} runs it`).toBeUndefined();
      runner.set(id, member);
    } else if (runner.get(id) === member) {
      runner.delete(id);
    }
  }
}
