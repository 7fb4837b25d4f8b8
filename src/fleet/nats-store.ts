/**
 * Leases in NATS KV (@nats-io/kv on JetStream). Two buckets per fleet,
 * each with a bucket-wide TTL (NATS 2.9 has no per-key TTL): leases
 * (`rc-softphone-{fleet}-leases`, TTL = the lease TTL) and members
 * (`rc-softphone-{fleet}-members`, TTL = the membership TTL). Every write
 * restarts an entry's age, so:
 *
 *   acquire  create(key, token): only when no live entry exists
 *   renew    update(key, token, revision) after reading our token at that
 *            revision: the revision is the compare-and-set (fencing)
 *   release  delete(key, previousSeq: revision), again only over our token
 *
 * The store cannot say when another holder's entry expires except from its
 * creation time on the server's clock; that is used only as a hint for when
 * to try again, capped by the renewal interval.
 */
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BrokerUrl } from '../events/broker-url.js';
import { connectNats } from '../events/nats.js';
import type { AcquireResult, LeaseStore } from './coordinator.js';

export class NatsLeaseStore implements LeaseStore {
  readonly description: string;
  readonly #broker: BrokerUrl;
  readonly #fleet: string;
  readonly #leaseTtlMs: number;
  readonly #memberTtlMs: number;
  #open: Promise<{ nc: NatsConnection; leases: KV; members: KV }> | undefined;

  constructor(broker: BrokerUrl, fleet: string, ttl: { leaseMs: number; memberMs: number }) {
    this.description = `NATS KV at ${broker.shown} (fleet ${fleet})`;
    this.#broker = broker;
    this.#fleet = fleet;
    this.#leaseTtlMs = ttl.leaseMs;
    this.#memberTtlMs = ttl.memberMs;
  }

  async heartbeat(member: string): Promise<number> {
    const { members } = await this.#kv();
    await members.put(key(member), '1');
    let n = 0;
    for await (const _ of await members.keys()) n++;
    return Math.max(1, n);
  }

  async leave(member: string): Promise<void> {
    const { members } = await this.#kv();
    await members.delete(key(member));
  }

  async acquire(device: string, token: string): Promise<AcquireResult> {
    const { leases } = await this.#kv();
    try {
      await leases.create(key(device), token);
      return { ok: true };
    } catch {
      const entry = await leases.get(key(device));
      if (entry && entry.operation === 'PUT' && entry.string() === token) {
        await leases.update(key(device), token, entry.revision);
        return { ok: true };
      }
      const remaining = entry ? entry.created.getTime() + this.#leaseTtlMs - Date.now() : 0;
      return { ok: false, remainingMs: Math.max(0, Math.min(this.#leaseTtlMs, remaining)) };
    }
  }

  async renew(device: string, token: string): Promise<boolean> {
    const { leases } = await this.#kv();
    const entry = await leases.get(key(device));
    if (entry?.operation !== 'PUT' || entry.string() !== token) return false;
    try {
      await leases.update(key(device), token, entry.revision);
      return true;
    } catch {
      return false; // written by someone else since we read it
    }
  }

  async release(device: string, token: string): Promise<void> {
    const { leases } = await this.#kv();
    const entry = await leases.get(key(device));
    if (entry?.operation !== 'PUT' || entry.string() !== token) return;
    await leases.delete(key(device), { previousSeq: entry.revision });
  }

  async close(): Promise<void> {
    const open = this.#open;
    this.#open = undefined;
    if (open) await (await open).nc.close().catch(() => {});
  }

  #kv(): Promise<{ nc: NatsConnection; leases: KV; members: KV }> {
    this.#open ??= (async () => {
      const nc = await connectNats(this.#broker, 'rc-softphone-leases');
      try {
        const kvm = new Kvm(nc);
        const base = `rc-softphone-${this.#fleet}`;
        const leases = await kvm.create(`${base}-leases`, { ttl: this.#leaseTtlMs, history: 1 });
        const members = await kvm.create(`${base}-members`, { ttl: this.#memberTtlMs, history: 1 });
        return { nc, leases, members };
      } catch (err) {
        await nc.close().catch(() => {});
        throw err;
      }
    })();
    const pending = this.#open;
    pending.catch(() => {
      if (this.#open === pending) this.#open = undefined;
    });
    return pending;
  }
}

/** KV keys allow [-/_=.a-zA-Z0-9]; anything else in a device id is hex-escaped. */
function key(id: string): string {
  return id.replace(/[^-_=.a-zA-Z0-9]/g, (c) => `_${c.charCodeAt(0).toString(16)}`);
}
