import { describe, expect, it } from 'vitest';
import { fairShare, LeaseState, leaseTiming, preferenceOrder, rebalance } from '../../src/fleet/lease.js';
import { readiness } from '../../src/observability/health.js';

describe('LeaseState', () => {
  const timing = { ttlMs: 15_000, renewEveryMs: 2500, safetyMs: 5000, memberTtlMs: 10_000 };

  it('is valid until sent-at + TTL − safety, measured from when the request was sent', () => {
    const l = new LeaseState(timing);
    expect(l.held).toBe(false);
    l.granted(1000);
    expect(l.held).toBe(true);
    expect(l.validUntil).toBe(11_000);
    expect(l.expired(10_999)).toBe(false);
    expect(l.expired(11_000)).toBe(true);
    expect(l.held).toBe(false);
    expect(l.expired(50_000)).toBe(false); // reported once
  });

  it('a renewal extends it; a late answer to an older request never shortens it', () => {
    const l = new LeaseState(timing);
    l.granted(0);
    l.granted(5000);
    expect(l.validUntil).toBe(15_000);
    l.granted(2000); // slow answer to an earlier renewal
    expect(l.validUntil).toBe(15_000);
  });

  it('a refusal (another token holds it) ends it and says whether it was held', () => {
    const l = new LeaseState(timing);
    expect(l.refused()).toBe(false);
    l.granted(0);
    expect(l.refused()).toBe(true);
    expect(l.held).toBe(false);
  });

  it('default timing: renew six times per TTL, stop a third early, members expire before leases', () => {
    const t = leaseTiming(15_000);
    expect(t).toEqual({ ttlMs: 15_000, renewEveryMs: 2500, safetyMs: 5000, memberTtlMs: 10_000 });
    // A live holder renews several times before its deadline; the dead leave the membership first.
    expect(t.renewEveryMs * 3).toBeLessThan(t.ttlMs - t.safetyMs);
    expect(t.memberTtlMs).toBeLessThan(t.ttlMs);
  });
});

describe('shares', () => {
  it.each([
    [10, 1, 10],
    [10, 3, 4],
    [2, 3, 1],
    [0, 2, 0],
    [5, 0, 5],
  ])('%i devices over %i members: %i each', (devices, members, share) => {
    expect(fairShare(devices, members)).toBe(share);
  });

  it('preference order is deterministic per member and differs between members', () => {
    const ids = Array.from({ length: 20 }, (_, i) => `dev-${i}`);
    const a = preferenceOrder(ids, 'host-a:1');
    expect(preferenceOrder(ids, 'host-a:1')).toEqual(a);
    expect([...a].sort()).toEqual([...ids].sort());
    expect(preferenceOrder(ids, 'host-b:2')).not.toEqual(a);
  });

  it('spreads devices: each member’s top share overlaps little with another’s', () => {
    const ids = Array.from({ length: 60 }, (_, i) => `d${i}`);
    const a = new Set(preferenceOrder(ids, 'm1').slice(0, 30));
    const b = preferenceOrder(ids, 'm2').slice(0, 30);
    const overlap = b.filter((id) => a.has(id)).length;
    expect(overlap).toBeGreaterThan(5);
    expect(overlap).toBeLessThan(25);
  });

  it('rebalance: gives back the least preferred beyond the share, or offers free ones up to it', () => {
    const order = ['a', 'b', 'c', 'd'];
    expect(rebalance(order, new Set(['a', 'c', 'd']), 2)).toEqual({
      candidates: [],
      room: 0,
      release: ['d'],
    });
    expect(rebalance(order, new Set(['c']), 2)).toEqual({
      candidates: ['a', 'b', 'd'],
      room: 1,
      release: [],
    });
    expect(rebalance(order, new Set(['a', 'b']), 2)).toEqual({
      candidates: ['c', 'd'],
      room: 0,
      release: [],
    });
  });
});

describe('readiness', () => {
  it.each([
    [{ responsible: 10, registered: 10, share: 1, stopping: false }, true, 10],
    [{ responsible: 10, registered: 9, share: 1, stopping: false }, false, 10],
    [{ responsible: 10, registered: 9, share: 0.9, stopping: false }, true, 9],
    [{ responsible: 3, registered: 2, share: 0.6, stopping: false }, true, 2],
    [{ responsible: 0, registered: 0, share: 1, stopping: false }, true, 0],
    [{ responsible: 5, registered: 5, share: 1, stopping: true }, false, 5],
  ])('%o → ready %s (needs %i)', (input, ready, required) => {
    expect(readiness(input)).toMatchObject({ ready, required });
  });
});
