/**
 * Capped exponential backoff with jitter (RFC 5626 4.5 suggests the same
 * shape for flow recovery): attempt n waits base·2^(n-1), capped, then
 * scaled by a random factor in [1 − jitter, 1] so that many devices that
 * lost the same server do not come back in lockstep.
 */
export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
  /** Fraction of the delay that is randomised (0 = none, 0.5 = up to half shorter). */
  jitter?: number;
}

export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseMs ?? 1000;
  const max = options.maxMs ?? 60_000;
  const jitter = options.jitter ?? 0.5;
  const exp = Math.min(max, base * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(exp * (1 - jitter * random()));
}
