/**
 * `listen --devices … --processes N`: one host's fleet in N processes, so a
 * fleet uses N cores (a Node.js process is one thread: its signalling and its
 * calls' media share it). Each worker is this same CLI running `listen` over
 * its part of the devices and of --rtp-ports (fleet/processes.ts); nothing in
 * the media path changes.
 *
 * The supervisor (this process, a thin adapter: no SIP, no media):
 * - checks everything first, as `listen` does (exit 2 before any worker runs);
 * - forks the workers with the same command line, each told its part through
 *   the environment, and passes their output on line by line (lines of
 *   different workers never mix);
 * - restarts a worker that dies (1 s doubling to 60 s; its devices register
 *   again, its calls in progress are lost with it), and stops everything with
 *   exit 2 if one finds a configuration error;
 * - owns the signals: the first SIGINT/SIGTERM asks every worker to stop
 *   (BYE, recordings finished, unregister), a second one to stop now. Workers
 *   ignore signals (a terminal's Ctrl-C or systemd reaches every process of
 *   the group: one signal must not count twice) and stop by themselves when
 *   the supervisor goes away (its IPC channel closes);
 * - serves --http for all: /metrics aggregated over the workers
 *   (prom-client's AggregatorRegistry, per-device series side by side),
 *   /readyz over every worker's devices; counts --exit-after over all calls.
 *
 * The IPC protocol between the two sides lives here too (attachToSupervisor).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, Registry } from 'prom-client';
import { describeError } from '../errors.js';
import { type ProcessPlan, planProcesses, WORKER_ENV } from '../fleet/processes.js';
import type { Logger } from '../log/logger.js';
import { type Readiness, readiness } from '../observability/health.js';
import { type ObservabilityServer, startObservabilityServer } from '../observability/http.js';
import type { DeviceView } from '../observability/metrics.js';
import { createLogger, ExitCode, onStopSignals, UsageError } from './common.js';
import { checkDeviceFlags } from './device.js';
import { type FleetSettings, fleetSecrets, loadDevicesFlag } from './fleet.js';

// ── the IPC protocol ─────────────────────────────────────────────────────────

/** Supervisor → worker. */
export type ToWorker =
  | { type: 'stop' }
  | { type: 'stopNow' }
  | { type: 'metrics'; id: number }
  | { type: 'state'; id: number };

/** Worker → supervisor. */
export type FromWorker =
  | { type: 'callEnded' }
  | { type: 'metrics'; id: number; metrics: MetricObjectWithValues<MetricValue<string>>[] }
  | { type: 'state'; id: number; devices: DeviceView[]; stopping: boolean };

/** What a worker gives the supervisor. */
export interface WorkerHooks {
  stop: () => void;
  stopNow: () => void;
  devices: () => DeviceView[];
  stopping: () => boolean;
  metrics?: () => Promise<MetricObjectWithValues<MetricValue<string>>[]>;
}

/**
 * The worker's side: answers the supervisor, stops when told (or when the
 * supervisor is gone), and ignores signals. Returns `callEnded`, to call for
 * every call that ends (--exit-after is counted by the supervisor).
 */
export function attachToSupervisor(hooks: WorkerHooks): { callEnded: () => void } {
  const send = (message: FromWorker) => {
    if (process.connected) process.send?.(message, undefined, undefined, () => {});
  };
  process.on('message', (raw: unknown) => {
    const m = raw as ToWorker;
    if (m?.type === 'stop') hooks.stop();
    else if (m?.type === 'stopNow') hooks.stopNow();
    else if (m?.type === 'state') {
      send({ type: 'state', id: m.id, devices: hooks.devices(), stopping: hooks.stopping() });
    } else if (m?.type === 'metrics' && hooks.metrics) {
      const id = m.id;
      hooks.metrics().then(
        (metrics) => send({ type: 'metrics', id, metrics }),
        () => send({ type: 'metrics', id, metrics: [] }),
      );
    }
  });
  // The supervisor went away (killed): finish the calls and unregister, as on SIGTERM.
  process.on('disconnect', () => hooks.stop());
  // The channel alone must not keep a worker that has stopped alive.
  process.channel?.unref();
  // The supervisor owns the signals (see the header).
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  return { callEnded: () => send({ type: 'callEnded' }) };
}

// ── the supervisor ───────────────────────────────────────────────────────────

interface SupervisorFlags {
  exitAfter?: number;
  processes?: number;
  play?: string;
  rtpPorts: string;
  logFormat: string;
  quiet?: boolean;
  debug?: boolean;
}

/** Restart backoff for a worker that died: 1 s doubling to 60 s; back to 1 s after it ran 60 s. */
const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 60_000;
/** How long a worker gets to answer a metrics or state request. */
const ASK_TIMEOUT_MS = 2000;

class Worker {
  child: ChildProcess | undefined;
  startedAt = 0;
  restartMs = RESTART_MIN_MS;
  restartTimer: NodeJS.Timeout | undefined;
  exited: Promise<void> = Promise.resolve();
  constructor(readonly plan: ProcessPlan) {}
}

export async function superviseProcesses(
  flags: Parameters<typeof checkDeviceFlags>[0] & SupervisorFlags,
  settings: FleetSettings,
  loadGreeting: (path: string) => Promise<unknown>,
): Promise<number> {
  // Everything a worker would refuse is refused here first, once.
  const { env, shared, checkRecordDir } = checkDeviceFlags(flags);
  const devices = await loadDevicesFlag(settings.devices as string);
  if (flags.play !== undefined) await loadGreeting(flags.play);
  checkRecordDir();
  const planned = planProcesses({
    deviceIds: devices.map((d) => d.id),
    processes: flags.processes ?? 1,
    coordinated: settings.coordinate !== undefined,
    rtpPorts: shared.rtpPorts ?? { min: 0, max: -1 },
  });
  if (!planned.ok) throw new UsageError(`${planned.reason} (example: --processes 2)`);
  const log = createLogger(flags, [
    ...devices.map((d) => d.sipInfo.password),
    ...fleetSecrets(settings),
    env.RINGCENTRAL_CLIENT_SECRET,
    env.RINGCENTRAL_JWT_TOKEN,
  ]);
  return new Supervisor(planned.plans, flags, settings, log).run();
}

class Supervisor {
  readonly #workers: Worker[];
  readonly #flags: SupervisorFlags;
  readonly #settings: FleetSettings;
  readonly #log: Logger;
  #server: ObservabilityServer | undefined;
  #stopping = false;
  #exitCode: number = ExitCode.OK;
  #endedCalls = 0;
  #askId = 0;
  readonly #pending = new Map<number, (message: FromWorker | undefined) => void>();
  #resolveDone: (code: number) => void = () => {};

  constructor(plans: ProcessPlan[], flags: SupervisorFlags, settings: FleetSettings, log: Logger) {
    this.#workers = plans.map((p) => new Worker(p));
    this.#flags = flags;
    this.#settings = settings;
    this.#log = log;
  }

  async run(): Promise<number> {
    const done = new Promise<number>((resolve) => {
      this.#resolveDone = resolve;
    });
    if (this.#settings.http) {
      const registry = new Registry();
      try {
        this.#server = await startObservabilityServer({
          listen: this.#settings.http,
          metrics: { contentType: registry.contentType, metrics: () => this.#metrics() },
          readiness: () => this.#readiness(),
        });
      } catch (err) {
        throw new UsageError(describeError(err).replace(/ \[CONFIG_INVALID\]$/, ''));
      }
      const address = `${this.#server.host}:${this.#server.port}`;
      this.#log.info(
        'http.listening',
        { address },
        `metrics on http://${address}/metrics (also /healthz, /readyz), for all ${this.#workers.length} processes`,
      );
    }
    onStopSignals(this.#log, {
      first: (signal) => void this.#stop(signal),
      now: () => {
        for (const w of this.#workers) this.#tell(w, { type: 'stopNow' });
        // Give them a moment to write their WAV headers; then go.
        return Promise.race([
          Promise.all(this.#workers.map((w) => w.exited)),
          new Promise((r) => setTimeout(r, 5000).unref()),
        ]);
      },
      forced: 'stopping every process now',
    });
    for (const w of this.#workers) this.#start(w);
    return done;
  }

  #start(w: Worker): void {
    if (this.#stopping) return;
    const part = w.plan;
    const child = fork(process.argv[1] as string, process.argv.slice(2), {
      execArgv: process.execArgv,
      env: {
        ...process.env,
        [WORKER_ENV.worker]: `${part.index}/${this.#workers.length}`,
        [WORKER_ENV.rtpPorts]: `${part.rtpPorts.min}-${part.rtpPorts.max}`,
        ...(this.#settings.http && { [WORKER_ENV.metrics]: '1' }),
      },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    w.child = child;
    w.startedAt = Date.now();
    passLines(child.stdout, process.stdout);
    passLines(child.stderr, process.stderr);
    child.on('message', (raw: unknown) => this.#onMessage(raw as FromWorker));
    // An IPC write to a worker that just died: its exit is handled below.
    child.on('error', () => {});
    w.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('exit', (code, signal) => this.#onExit(w, child, code, signal));
    this.#log.info(
      'process.started',
      {
        process: part.index,
        pid: child.pid ?? null,
        devices: part.devices,
        rtpPorts: `${part.rtpPorts.min}-${part.rtpPorts.max}`,
      },
      `process ${part.index + 1}/${this.#workers.length} (pid ${child.pid}) runs ${part.devices.length} device${part.devices.length === 1 ? '' : 's'}, RTP ports ${part.rtpPorts.min}-${part.rtpPorts.max}`,
    );
  }

  #onExit(w: Worker, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.child === child) w.child = undefined;
    const index = w.plan.index;
    if (this.#stopping) {
      if (code !== 0) this.#exitCode = ExitCode.FAILURE;
      this.#log.info(
        'process.exited',
        { process: index, pid: child.pid ?? null, code, signal, restartInMs: null },
        `process ${index + 1} exited (${signal ?? `code ${code}`})`,
      );
      return;
    }
    if (code === ExitCode.USAGE) {
      // A configuration problem the checks above could not see (the record dir went away, …).
      this.#log.error(
        'process.exited',
        { process: index, pid: child.pid ?? null, code, signal, restartInMs: null },
        `process ${index + 1} found a configuration error (exit 2): stopping every process`,
      );
      this.#exitCode = ExitCode.USAGE;
      void this.#stop('configuration error');
      return;
    }
    if (Date.now() - w.startedAt >= RESTART_MAX_MS) w.restartMs = RESTART_MIN_MS;
    const delay = w.restartMs;
    w.restartMs = Math.min(RESTART_MAX_MS, w.restartMs * 2);
    this.#log.warn(
      'process.exited',
      { process: index, pid: child.pid ?? null, code, signal, restartInMs: delay },
      `process ${index + 1} died (${signal ?? `code ${code}`}); its devices start again in another in ${(delay / 1000).toFixed(0)} s`,
    );
    w.restartTimer = setTimeout(() => {
      w.restartTimer = undefined;
      this.#start(w);
    }, delay);
  }

  #onMessage(m: FromWorker): void {
    if (m?.type === 'callEnded') {
      this.#endedCalls++;
      const limit = this.#flags.exitAfter;
      if (limit !== undefined && this.#endedCalls >= limit) void this.#stop(`--exit-after ${limit} reached`);
      return;
    }
    if (m?.type === 'metrics' || m?.type === 'state') {
      const resolve = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      resolve?.(m);
    }
  }

  #tell(w: Worker, message: ToWorker): void {
    const child = w.child;
    if (child?.connected) child.send(message, undefined, undefined, () => {});
  }

  /** Asks a worker; undefined when it is not running or does not answer in time. */
  #ask(w: Worker, type: 'metrics' | 'state'): Promise<FromWorker | undefined> {
    if (!w.child?.connected) return Promise.resolve(undefined);
    const id = ++this.#askId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve(undefined);
      }, ASK_TIMEOUT_MS);
      this.#pending.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      this.#tell(w, { type, id });
    });
  }

  async #metrics(): Promise<string> {
    const answers = await Promise.all(this.#workers.map((w) => this.#ask(w, 'metrics')));
    const parts = answers.flatMap((m) => (m?.type === 'metrics' && m.metrics.length > 0 ? [m.metrics] : []));
    return parts.length === 0 ? '' : AggregatorRegistry.aggregate(parts).metrics();
  }

  async #readiness(): Promise<Readiness> {
    const coordinated = this.#settings.coordinate !== undefined;
    const answers = await Promise.all(this.#workers.map((w) => this.#ask(w, 'state')));
    let responsible = 0;
    let registered = 0;
    answers.forEach((m, i) => {
      if (m?.type !== 'state') {
        // A worker that is down: its devices are not registered (with leases, others take them).
        if (!coordinated) responsible += this.#workers[i]!.plan.devices.length;
        return;
      }
      const mine = coordinated ? m.devices.filter((d) => d.leaseHeld) : m.devices;
      responsible += mine.length;
      registered += mine.filter((d) => d.registered).length;
    });
    return readiness({ responsible, registered, share: this.#settings.readyShare, stopping: this.#stopping });
  }

  async #stop(why: string): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#log.info('shutdown', { reason: why }, `shutting down (${why}): stopping every process…`);
    for (const w of this.#workers) {
      if (w.restartTimer !== undefined) clearTimeout(w.restartTimer);
      w.restartTimer = undefined;
      this.#tell(w, { type: 'stop' });
    }
    await Promise.all(this.#workers.map((w) => w.exited));
    await this.#server?.close();
    this.#resolveDone(this.#exitCode);
  }
}

/** Passes a worker's output on whole lines at a time, so lines of different workers never mix. */
function passLines(from: NodeJS.ReadableStream | null, to: NodeJS.WritableStream): void {
  if (!from) return;
  let partial = '';
  from.setEncoding('utf8');
  from.on('data', (chunk: string) => {
    const text = partial + chunk;
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      partial = text;
      return;
    }
    partial = text.slice(end + 1);
    to.write(text.slice(0, end + 1));
  });
  from.on('end', () => {
    if (partial !== '') to.write(`${partial}\n`);
    partial = '';
  });
}
