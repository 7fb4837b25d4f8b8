/**
 * Leases in Redis (ioredis). A lease is a key holding the holder's token
 * with a TTL in milliseconds:
 *
 *   acquire  SET key token NX PX ttl; when taken, PTTL says how long the holder has left
 *   renew    Lua: PEXPIRE only when GET key == token (compare-and-set: fencing)
 *   release  Lua: DEL only when GET key == token
 *
 * Membership is a sorted set scored by expiry on the Redis server's clock
 * (TIME inside the script, so hosts' clocks never meet): a heartbeat adds
 * this member, removes the expired ones and counts the rest.
 *
 * Keys: `rc-softphone:{fleet}:lease:{device}` and `rc-softphone:{fleet}:members`.
 */
import type { Redis } from 'ioredis';
import type { BrokerUrl } from '../events/broker-url.js';
import { createRedisClient, whenReady } from '../events/redis.js';
import type { AcquireResult, LeaseStore } from './coordinator.js';

const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return -1 end
return redis.call('PTTL', KEYS[1])`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])`;

export class RedisLeaseStore implements LeaseStore {
  readonly description: string;
  readonly #client: Redis;
  readonly #prefix: string;

  constructor(broker: BrokerUrl, fleet: string) {
    this.description = `Redis at ${broker.shown} (fleet ${fleet})`;
    this.#prefix = `rc-softphone:${fleet}`;
    this.#client = createRedisClient(broker, 'rc-softphone-leases');
  }

  leaseKey(device: string): string {
    return `${this.#prefix}:lease:${device}`;
  }

  async heartbeat(member: string, ttlMs: number): Promise<number> {
    await whenReady(this.#client);
    return Number(await this.#client.eval(HEARTBEAT, 1, `${this.#prefix}:members`, member, String(ttlMs)));
  }

  async leave(member: string): Promise<void> {
    await whenReady(this.#client);
    await this.#client.zrem(`${this.#prefix}:members`, member);
  }

  async acquire(device: string, token: string, ttlMs: number): Promise<AcquireResult> {
    await whenReady(this.#client);
    const r = Number(await this.#client.eval(ACQUIRE, 1, this.leaseKey(device), token, String(ttlMs)));
    if (r === -1) return { ok: true };
    // -2: it expired between the SET and the PTTL: try again soon.
    return { ok: false, remainingMs: Math.max(r, 0) };
  }

  async renew(device: string, token: string, ttlMs: number): Promise<boolean> {
    await whenReady(this.#client);
    return Number(await this.#client.eval(RENEW, 1, this.leaseKey(device), token, String(ttlMs))) === 1;
  }

  async release(device: string, token: string): Promise<void> {
    await whenReady(this.#client);
    await this.#client.eval(RELEASE, 1, this.leaseKey(device), token);
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }
}
