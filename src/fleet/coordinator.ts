/**
 * One owner per device across hosts: this process registers a device only
 * while it holds the device's lease in a shared store (Redis or NATS KV).
 * The rules are in lease.ts (pure); this is the loop around them:
 *
 *  - every `renewEveryMs`: a membership heartbeat (how many processes list
 *    this fleet), a compare-and-set renewal of every held lease (only our
 *    token extends it: fencing), then the share: held leases beyond it are
 *    given back (device stopped first, then the lease deleted), free devices
 *    are tried up to it, in this process's order of preference;
 *  - a lease another process holds is tried again when the store says it
 *    expires, so a dead holder's devices are taken within the TTL;
 *  - independently of the store, a timer stops every device whose lease
 *    could not be renewed before its local deadline (see LeaseState): a
 *    process cut off from the store unregisters before anyone else can take
 *    the lease.
 */
import { performance } from 'node:perf_hooks';
import { describeError } from '../errors.js';
import { SafeEmitter } from '../safe-emitter.js';
import { fairShare, LeaseState, type LeaseTiming, preferenceOrder, rebalance } from './lease.js';

export type AcquireResult = { ok: true } | { ok: false; remainingMs: number | undefined };

/** A store adapter (Redis, NATS KV). Every call may throw while the store is away. */
export interface LeaseStore {
  /** Where leases live, credentials redacted. */
  readonly description: string;
  /** Refreshes this member's heartbeat; resolves with how many members are live (this one included). */
  heartbeat(member: string, ttlMs: number): Promise<number>;
  leave(member: string): Promise<void>;
  /** Takes the lease if nobody holds it; else says how long the holder's lease has left, when known. */
  acquire(device: string, token: string, ttlMs: number): Promise<AcquireResult>;
  /** Extends the lease only if `token` holds it (compare-and-set); false when it does not. */
  renew(device: string, token: string, ttlMs: number): Promise<boolean>;
  /** Deletes the lease only if `token` holds it. */
  release(device: string, token: string): Promise<void>;
  close(): Promise<void>;
}

export interface CoordinatorEvents {
  /** The lease is ours: register the device. */
  acquired: [device: string];
  /** The lease is gone (taken over, or not renewed in time): the device was told to stop. */
  lost: [device: string, reason: string];
  /** We gave the lease back (share, shutdown), after the device stopped. */
  released: [device: string, reason: string];
  /** Live members or the share changed. */
  share: [info: { members: number; share: number; held: number }];
  /** The store stopped answering (once per outage). */
  storeDown: [info: { reason: string }];
  storeResumed: [];
}

export interface CoordinatorOptions {
  store: LeaseStore;
  devices: readonly string[];
  /** This process's id (also its lease token). */
  member: string;
  timing: LeaseTiming;
  /** Starts the device (called when the lease is acquired; not awaited). */
  start: (device: string) => void;
  /** Stops the device; the lease is released (or let go) once this resolves. */
  stop: (device: string, reason: string) => Promise<void>;
  now?: () => number;
}

export class LeaseCoordinator extends SafeEmitter<CoordinatorEvents> {
  readonly member: string;
  readonly #o: CoordinatorOptions;
  readonly #now: () => number;
  readonly #leases = new Map<string, LeaseState>();
  readonly #order: string[];
  #members = 0;
  #share = -1;
  #timer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #storeDown = false;
  #stopped = false;

  constructor(options: CoordinatorOptions) {
    super();
    this.#o = options;
    this.member = options.member;
    this.#now = options.now ?? (() => performance.now());
    for (const id of options.devices) this.#leases.set(id, new LeaseState(options.timing));
    this.#order = preferenceOrder(options.devices, options.member);
  }

  /** Devices whose lease this process holds now. */
  get held(): string[] {
    return [...this.#leases].filter(([, l]) => l.held).map(([id]) => id);
  }

  /** Live members at the last heartbeat, and this process's share. */
  get share(): { members: number; share: number } {
    return { members: this.#members, share: Math.max(0, this.#share) };
  }

  get storeConnected(): boolean {
    return !this.#storeDown;
  }

  start(): void {
    this.#schedule(0);
  }

  /** Stops every held device, releases its lease, leaves the membership, closes the store. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#expiryTimer);
    await this.#ticking;
    await Promise.all(this.held.map((id) => this.#giveBack(id, 'shutdown')));
    try {
      await this.#o.store.leave(this.member);
    } catch {
      // Its heartbeat expires on its own.
    }
    await this.#o.store.close().catch(() => {});
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#ticking = this.#tick().finally(() => {
        this.#ticking = undefined;
      });
    }, ms);
  }

  async #tick(): Promise<void> {
    const { store, timing } = this.#o;
    this.#checkExpiry();
    let next = timing.renewEveryMs;
    try {
      const members = await store.heartbeat(this.member, timing.memberTtlMs);
      await Promise.all(this.held.map((id) => this.#renew(id)));
      if (this.#stopped) return;
      const share = fairShare(this.#leases.size, members);
      const heldSet = new Set(this.held);
      const plan = rebalance(this.#order, heldSet, share);
      for (const id of plan.release) await this.#giveBack(id, 'share');
      let room = plan.room;
      for (const id of plan.candidates) {
        if (room <= 0 || this.#stopped) break;
        const lease = this.#leases.get(id) as LeaseState;
        const sentAt = this.#now();
        const result = await store.acquire(id, this.member, timing.ttlMs);
        if (this.#stopped) {
          if (result.ok) await store.release(id, this.member).catch(() => {});
          return;
        }
        if (result.ok) {
          lease.granted(sentAt);
          room--;
          this.emit('acquired', id);
          this.#o.start(id);
        } else if (result.remainingMs !== undefined) {
          // Try again the moment the holder's lease runs out (a dead holder never renews it).
          next = Math.min(next, Math.max(10, result.remainingMs + 10));
        }
      }
      const held = this.held.length;
      if (members !== this.#members || share !== this.#share) {
        this.#members = members;
        this.#share = share;
        this.emit('share', { members, share, held });
      }
      if (this.#storeDown) {
        this.#storeDown = false;
        this.emit('storeResumed');
      }
    } catch (err) {
      if (!this.#storeDown) {
        this.#storeDown = true;
        this.emit('storeDown', { reason: describeError(err) });
      }
      next = Math.min(next, 1000);
    }
    this.#armExpiry();
    this.#schedule(next);
  }

  async #renew(id: string): Promise<void> {
    const lease = this.#leases.get(id) as LeaseState;
    const sentAt = this.#now();
    const ok = await this.#o.store.renew(id, this.member, this.#o.timing.ttlMs);
    if (!lease.held) return; // stopped meanwhile (deadline passed)
    if (ok) lease.granted(sentAt);
    else if (lease.refused()) this.#lose(id, 'the lease is held by another process or expired in the store');
  }

  async #giveBack(id: string, reason: string): Promise<void> {
    const lease = this.#leases.get(id) as LeaseState;
    if (!lease.held) return;
    // The device goes first: its registration must be gone before anyone can take the lease.
    await this.#o.stop(id, reason).catch(() => {});
    lease.released();
    try {
      await this.#o.store.release(id, this.member);
    } catch {
      // It expires on its own.
    }
    this.emit('released', id, reason);
  }

  #lose(id: string, reason: string): void {
    void this.#o.stop(id, reason).catch(() => {});
    this.emit('lost', id, reason);
  }

  #checkExpiry(): void {
    const now = this.#now();
    for (const [id, lease] of this.#leases) {
      if (lease.expired(now)) this.#lose(id, 'the lease could not be renewed in time');
    }
  }

  /** A timer at the earliest local deadline, independent of the store's answers. */
  #armExpiry(): void {
    clearTimeout(this.#expiryTimer);
    let earliest = Number.POSITIVE_INFINITY;
    for (const lease of this.#leases.values())
      if (lease.held) earliest = Math.min(earliest, lease.validUntil);
    if (!Number.isFinite(earliest) || this.#stopped) return;
    this.#expiryTimer = setTimeout(
      () => {
        this.#checkExpiry();
        this.#armExpiry();
      },
      Math.max(0, earliest - this.#now()),
    );
  }
}
