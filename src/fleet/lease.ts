/**
 * The lease rules, pure: whether a device may be registered from this
 * process, and how many devices this process takes. No I/O, no timers: the
 * coordinator feeds in what the store answered and when the request was
 * sent (local monotonic milliseconds) and acts on what comes back.
 *
 * Clock assumptions (the whole safety argument):
 *  - The store (Redis, NATS) starts a lease's TTL when it executes the
 *    command, which is after we sent it. So "sent at + TTL", on our clock, is
 *    never later than the store's expiry, provided the two clocks run at the
 *    same rate within `safetyMs` over one TTL. Wall-clock offsets between
 *    hosts do not matter: nothing compares absolute times across machines.
 *  - We stop the device (unregister) at "sent at + TTL − safetyMs". The
 *    margin must cover the unregistration itself and rate drift; the default
 *    keeps a third of the TTL.
 *  - A process that is frozen (SIGSTOP, a swap storm) past its deadline
 *    cannot act during the freeze; on waking it checks the deadline before
 *    anything else, but a registration refresh timer that fires in the same
 *    instant can still go out once. SIP registrars take no fencing token, so
 *    the last line of defence is the device's instance id: every process
 *    registers a device with the same `+sip.instance` and `reg-id`, so the
 *    registrar replaces the binding instead of adding a second (RFC 5626).
 */

export interface LeaseTiming {
  /** How long the store keeps a lease that is not renewed. */
  ttlMs: number;
  /** How often a held lease is renewed (and the membership heartbeat sent). */
  renewEveryMs: number;
  /** Stop the device this long before the lease could expire in the store. */
  safetyMs: number;
  /** A process's membership lasts this long without a heartbeat (shorter than ttlMs: the dead leave first). */
  memberTtlMs: number;
}

export const DEFAULT_LEASE_TTL_MS = 15_000;

/** The timing for a TTL: renew at a sixth of it, stop a third of it early, membership at two thirds. */
export function leaseTiming(ttlMs = DEFAULT_LEASE_TTL_MS): LeaseTiming {
  return {
    ttlMs,
    renewEveryMs: Math.max(100, Math.round(ttlMs / 6)),
    safetyMs: Math.round(ttlMs / 3),
    memberTtlMs: Math.round((ttlMs * 2) / 3),
  };
}

/** One device's lease as this process sees it. */
export class LeaseState {
  readonly #timing: LeaseTiming;
  #held = false;
  #validUntil = 0;

  constructor(timing: LeaseTiming) {
    this.#timing = timing;
  }

  get held(): boolean {
    return this.#held;
  }

  /** Local time after which the device must not be registered from here (when held). */
  get validUntil(): number {
    return this.#validUntil;
  }

  /** The store granted (or renewed) the lease for a request sent at `sentAt`. */
  granted(sentAt: number): void {
    this.#held = true;
    this.#validUntil = Math.max(this.#validUntil, sentAt + this.#timing.ttlMs - this.#timing.safetyMs);
  }

  /**
   * The store says another token holds it (or nobody: it expired there):
   * we lost it. Returns true when it was held (the device must stop now).
   */
  refused(): boolean {
    const was = this.#held;
    this.#held = false;
    this.#validUntil = 0;
    return was;
  }

  /** We gave it up (released, or stopping). */
  released(): void {
    this.#held = false;
    this.#validUntil = 0;
  }

  /** True when it is held but its local deadline has passed: stop the device now. */
  expired(now: number): boolean {
    if (!this.#held || now < this.#validUntil) return false;
    this.#held = false;
    this.#validUntil = 0;
    return true;
  }
}

/** How many of `devices` one of `members` live processes takes: its fair share, rounded up. */
export function fairShare(devices: number, members: number): number {
  if (devices <= 0) return 0;
  return Math.ceil(devices / Math.max(1, members));
}

/**
 * Devices in this member's order of preference: rendezvous (highest random
 * weight) hashing, so every process prefers a different subset and the
 * spread is stable as processes come and go. Pure and deterministic.
 */
export function preferenceOrder(deviceIds: readonly string[], member: string): string[] {
  return [...deviceIds]
    .map((id) => ({ id, weight: fnv1a(`${member}\u0000${id}`) }))
    .sort((a, b) => b.weight - a.weight || (a.id < b.id ? -1 : 1))
    .map((d) => d.id);
}

/**
 * What to change now so that this process holds at most `share`: held
 * devices to give back (least preferred first), or how many more to take
 * (`room`) and the devices to try for them, in preference order (some are
 * held elsewhere: the caller tries them in turn until `room` are taken).
 */
export function rebalance(
  preferred: readonly string[],
  held: ReadonlySet<string>,
  share: number,
): { candidates: string[]; room: number; release: string[] } {
  if (held.size > share) {
    const release = preferred.filter((id) => held.has(id)).slice(share);
    return { candidates: [], room: 0, release };
  }
  return { candidates: preferred.filter((id) => !held.has(id)), room: share - held.size, release: [] };
}

/** 32-bit FNV-1a with a final avalanche, as a non-negative number. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}
