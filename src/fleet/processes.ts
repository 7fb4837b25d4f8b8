/**
 * How `listen --devices … --processes N` divides one host's fleet among N
 * processes (pure): a process is one Node.js thread, so N processes use N
 * cores, and nothing in the media path changes.
 *
 * - Devices: a device registers from one process at a time, so each process
 *   takes every Nth device of the list (round robin in list order); with
 *   --coordinate every process lists all of them and the leases share them
 *   out (coordinator.ts).
 * - RTP ports: the --rtp-ports range is cut into N contiguous parts, one per
 *   process (port pools are per process).
 *
 * The supervisor (cli/processes.ts) hands each worker its part through the
 * environment (WORKER_ENV), as `index/count` and `min-max`.
 */

export interface PortRange {
  min: number;
  max: number;
}

export interface ProcessPlan {
  index: number;
  /** The ids of the devices this process runs (every device when coordinated). */
  devices: string[];
  rtpPorts: PortRange;
}

export type PlanResult = { ok: true; plans: ProcessPlan[] } | { ok: false; reason: string };

/** Most processes one supervisor starts. */
export const MAX_PROCESSES = 64;
/** Fewest RTP ports a process may get: one call needs two (RTP and RTCP). */
const MIN_PORTS_PER_PROCESS = 2;

/** The environment variables a worker reads its part from. */
export const WORKER_ENV = {
  /** `index/count`, 0-based. */
  worker: 'RC_SOFTPHONE_WORKER',
  /** `min-max`. */
  rtpPorts: 'RC_SOFTPHONE_WORKER_RTP_PORTS',
  /** `1` when the supervisor serves --http and asks the workers for their metrics. */
  metrics: 'RC_SOFTPHONE_WORKER_METRICS',
} as const;

export function planProcesses(input: {
  deviceIds: readonly string[];
  processes: number;
  coordinated: boolean;
  rtpPorts: PortRange;
}): PlanResult {
  const n = input.processes;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PROCESSES) {
    return { ok: false, reason: `--processes must be an integer from 1 to ${MAX_PROCESSES}, got ${n}` };
  }
  if (!input.coordinated && input.deviceIds.length < n) {
    return {
      ok: false,
      reason: `--processes ${n} needs at least ${n} devices (a device registers from one process at a time), got ${input.deviceIds.length}`,
    };
  }
  const total = input.rtpPorts.max - input.rtpPorts.min + 1;
  const size = Math.floor(total / n);
  if (size < MIN_PORTS_PER_PROCESS) {
    return {
      ok: false,
      reason: `--rtp-ports ${input.rtpPorts.min}-${input.rtpPorts.max} is too small for ${n} processes (each needs at least ${MIN_PORTS_PER_PROCESS} ports; a call takes two)`,
    };
  }
  const plans: ProcessPlan[] = [];
  for (let index = 0; index < n; index++) {
    const min = input.rtpPorts.min + index * size;
    // The last part takes what division left over.
    const max = index === n - 1 ? input.rtpPorts.max : min + size - 1;
    const part = { index, count: n };
    plans.push({
      index,
      devices: devicesOfWorker(input.deviceIds, part, input.coordinated),
      rtpPorts: { min, max },
    });
  }
  return { ok: true, plans };
}

export interface WorkerPart {
  index: number;
  count: number;
  rtpPorts: PortRange;
  /** The supervisor serves --http: answer its metrics requests. */
  metrics: boolean;
}

/**
 * The part a supervisor gave this process, from its environment; undefined
 * when it runs on its own. Never throws: a malformed value is a reason.
 */
export function workerPartFromEnv(
  env: NodeJS.ProcessEnv,
): { ok: true; part: WorkerPart | undefined } | { ok: false; reason: string } {
  const worker = env[WORKER_ENV.worker];
  if (worker === undefined) return { ok: true, part: undefined };
  const w = /^(\d{1,3})\/(\d{1,3})$/.exec(worker);
  const p = /^(\d{1,5})-(\d{1,5})$/.exec(env[WORKER_ENV.rtpPorts] ?? '');
  const index = Number(w?.[1]);
  const count = Number(w?.[2]);
  const min = Number(p?.[1]);
  const max = Number(p?.[2]);
  if (!w || !p || index >= count || count > MAX_PROCESSES || min < 1 || max > 65535 || min > max) {
    return {
      ok: false,
      reason: `${WORKER_ENV.worker}=${worker} / ${WORKER_ENV.rtpPorts}=${env[WORKER_ENV.rtpPorts]} are not a worker's part (set by listen --processes)`,
    };
  }
  return {
    ok: true,
    part: { index, count, rtpPorts: { min, max }, metrics: env[WORKER_ENV.metrics] === '1' },
  };
}

/** Which devices of the list a worker runs (the same rule as planProcesses). */
export function devicesOfWorker<T>(
  devices: readonly T[],
  part: Pick<WorkerPart, 'index' | 'count'>,
  coordinated: boolean,
): T[] {
  return coordinated ? [...devices] : devices.filter((_, k) => k % part.count === part.index);
}
