/**
 * /readyz's rule, pure: ready when at least `share` (0..1) of the devices
 * this process is responsible for are registered. Without coordination it is
 * responsible for every device it lists; with coordination for those whose
 * lease it holds (a process on standby holding none is ready: it is there
 * to take over). Never ready while shutting down.
 */

export interface ReadinessInput {
  /** Devices this process runs (holds the lease of, when coordinated). */
  responsible: number;
  registered: number;
  share: number;
  stopping: boolean;
}

export interface Readiness {
  ready: boolean;
  /** Registered devices needed. */
  required: number;
  reason: string;
}

export function readiness(input: ReadinessInput): Readiness {
  const required = Math.max(0, Math.ceil(input.share * input.responsible - 1e-9));
  if (input.stopping) return { ready: false, required, reason: 'shutting down' };
  const ready = input.registered >= required;
  return {
    ready,
    required,
    reason: `${input.registered} of ${input.responsible} devices registered (${required} needed)`,
  };
}
