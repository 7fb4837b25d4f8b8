/**
 * What `listen` adds for fleets: the flags (--devices, --http, --ready-share,
 * --events, --coordinate, …), their checks (exit 2 naming the flag), the
 * services around the devices (metrics endpoint, event export, sidecar
 * export), and running many devices (--devices) with optional leases.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { describeError, isSoftphoneError } from '../errors.js';
import { type BrokerUrl, parseBrokerUrl } from '../events/broker-url.js';
import { DEFAULT_EVENT_BUFFER, defaultSource, EventExporter } from '../events/exporter.js';
import { NatsEventTransport } from '../events/nats.js';
import { DEFAULT_STREAM_MAXLEN, RedisEventTransport } from '../events/redis.js';
import { LeaseCoordinator, type LeaseStore } from '../fleet/coordinator.js';
import { type FleetDevice, loadFleetDevices } from '../fleet/devices.js';
import type { Fleet } from '../fleet/fleet.js';
import { DEFAULT_LEASE_TTL_MS, leaseTiming } from '../fleet/lease.js';
import { NatsLeaseStore } from '../fleet/nats-store.js';
import { MAX_PROCESSES } from '../fleet/processes.js';
import { RedisLeaseStore } from '../fleet/redis-store.js';
import type { Logger } from '../log/logger.js';
import { readiness } from '../observability/health.js';
import {
  type HttpListen,
  type ObservabilityServer,
  parseHttpListen,
  startObservabilityServer,
} from '../observability/http.js';
import { type DeviceView, SoftphoneMetrics } from '../observability/metrics.js';
import type { Softphone } from '../softphone.js';
import { intOption, UsageError } from './common.js';

export interface FleetFlags {
  devices?: string;
  http?: string;
  readyShare: string;
  events?: string;
  eventsBuffer: number;
  eventsMaxLen: number;
  fleet: string;
  coordinate?: string;
  leaseTtl: number;
  processes: number;
}

export interface FleetSettings {
  devices: string | undefined;
  http: HttpListen | undefined;
  readyShare: number;
  events: BrokerUrl | undefined;
  eventsBuffer: number;
  eventsMaxLen: number;
  fleet: string;
  coordinate: BrokerUrl | undefined;
  leaseTtlMs: number;
  /** Processes the devices are divided among on this host (--processes). */
  processes: number;
}

const FLEET_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function addFleetOptions(command: Command): Command {
  return command
    .option(
      '--devices <path>',
      'run many devices: a folder of SIP info files (*.json), or one JSON file listing them',
    )
    .option(
      '--http <host:port>',
      'serve Prometheus /metrics, /healthz and /readyz here (e.g. 127.0.0.1:9464)',
    )
    .option(
      '--ready-share <fraction>',
      '/readyz is ready when this share of the devices is registered (0-1)',
      '1',
    )
    .option(
      '--events <url>',
      'also send every event to a broker: redis://host:6379 (a stream) or nats://host:4222 (JetStream)',
    )
    .option(
      '--events-buffer <n>',
      'events held while the broker is away; the oldest are dropped (and counted) beyond it',
      intOption('--events-buffer', 1, 10_000_000),
      DEFAULT_EVENT_BUFFER,
    )
    .option(
      '--events-max-len <n>',
      'keep about this many events in the Redis stream / JetStream stream',
      intOption('--events-max-len', 1, 1_000_000_000),
      DEFAULT_STREAM_MAXLEN,
    )
    .option('--fleet <name>', 'the fleet name: names the event stream and the lease keys', 'default')
    .option(
      '--coordinate <url>',
      'register each device only while holding its lease in redis://… or nats://… (KV), sharing devices across processes',
    )
    .option(
      '--lease-ttl <seconds>',
      'lease time-to-live: a dead holder’s devices are taken over within it',
      intOption('--lease-ttl', 3, 3600),
      DEFAULT_LEASE_TTL_MS / 1000,
    )
    .option(
      '--processes <n>',
      'divide the devices (and --rtp-ports) among N processes on this host, to use N cores',
      intOption('--processes', 1, MAX_PROCESSES),
      1,
    );
}

/** Checks the fleet flags, before any network I/O; every problem names its flag. */
export function checkFleetFlags(flags: FleetFlags): FleetSettings {
  const broker = (flag: string, value: string | undefined, example: string): BrokerUrl | undefined => {
    if (value === undefined) return undefined;
    const parsed = parseBrokerUrl(value);
    // The URL is not echoed: it may carry a password.
    if (!parsed.ok) throw new UsageError(`${flag} ${parsed.reason} (example: ${flag} ${example})`);
    return parsed.value;
  };
  let http: HttpListen | undefined;
  if (flags.http !== undefined) {
    const parsed = parseHttpListen(flags.http);
    if (!parsed.ok) throw new UsageError(`--http ${parsed.reason}`);
    http = parsed.value;
  }
  const share = Number(flags.readyShare);
  if (!/^\s*(0|1|0?\.\d+|1\.0*)\s*$/.test(flags.readyShare) || !(share >= 0 && share <= 1)) {
    throw new UsageError(
      `--ready-share must be a fraction from 0 to 1, got "${flags.readyShare}" (example: --ready-share 0.9)`,
    );
  }
  if (!FLEET_NAME.test(flags.fleet)) {
    throw new UsageError(
      `--fleet must be 1-64 letters, digits, - or _, got "${flags.fleet}" (example: --fleet sales)`,
    );
  }
  const coordinate = broker('--coordinate', flags.coordinate, 'redis://127.0.0.1:6379');
  if (coordinate && flags.devices === undefined) {
    throw new UsageError(
      '--coordinate needs --devices (a folder or a list of SIP info files, even of one device) (example: --devices ./devices --coordinate redis://127.0.0.1:6379)',
    );
  }
  if (flags.processes > 1 && flags.devices === undefined) {
    throw new UsageError(
      '--processes needs --devices: a device registers from one process at a time, so each process takes some of the devices (example: --devices ./devices --processes 2)',
    );
  }
  return {
    devices: flags.devices,
    http,
    readyShare: share,
    events: broker('--events', flags.events, 'redis://127.0.0.1:6379'),
    eventsBuffer: flags.eventsBuffer,
    eventsMaxLen: flags.eventsMaxLen,
    fleet: flags.fleet,
    coordinate,
    leaseTtlMs: flags.leaseTtl * 1000,
    processes: flags.processes,
  };
}

/**
 * Secrets in the fleet flags, for the log scrubber: broker passwords, and a
 * NATS token (a user name without a password). A Redis ACL user name is not
 * secret (and "default" would blank out every "default" in the logs).
 */
export function fleetSecrets(settings: FleetSettings): string[] {
  const out: string[] = [];
  for (const b of [settings.events, settings.coordinate]) {
    if (!b) continue;
    if (b.password !== undefined) out.push(b.password);
    else if (b.username !== undefined) out.push(b.username);
  }
  return out.filter((s) => s.length >= 4);
}

/** Loads --devices; a problem is a usage error naming the flag and every bad file. */
export async function loadDevicesFlag(path: string): Promise<FleetDevice[]> {
  try {
    return await loadFleetDevices(path);
  } catch (err) {
    if (isSoftphoneError(err)) {
      const message = err.message.startsWith('--devices') ? err.message : `--devices ${err.message}`;
      throw new UsageError(
        `${message} (example: --devices ./devices, a folder of files written by provision)`,
      );
    }
    throw err;
  }
}

/** The metrics endpoint and the event export, for one device or a fleet. */
export class FleetServices {
  readonly exporter: EventExporter | undefined;
  readonly metrics: SoftphoneMetrics | undefined;
  readonly #server: ObservabilityServer | undefined;
  readonly #log: Logger;
  #stopping = false;

  private constructor(
    log: Logger,
    exporter: EventExporter | undefined,
    metrics: SoftphoneMetrics | undefined,
    server: ObservabilityServer | undefined,
  ) {
    this.#log = log;
    this.exporter = exporter;
    this.metrics = metrics;
    this.#server = server;
  }

  get httpAddress(): string | undefined {
    return this.#server ? `${this.#server.host}:${this.#server.port}` : undefined;
  }

  get isStopping(): boolean {
    return this.#stopping;
  }

  /** Marks the process as stopping (/readyz answers 503 from now on). */
  stopping(): void {
    this.#stopping = true;
  }

  static async start(
    settings: FleetSettings,
    log: Logger,
    sources: {
      devices: () => DeviceView[];
      coordination?: () => { members: number; share: number; storeConnected: boolean } | undefined;
      /** Keep the metrics without serving them (a --processes worker: its supervisor serves them). */
      metricsWithoutHttp?: boolean;
    },
  ): Promise<FleetServices> {
    let exporter: EventExporter | undefined;
    if (settings.events) {
      const b = settings.events;
      const transport =
        b.kind === 'redis'
          ? new RedisEventTransport(b, {
              stream: `rc-softphone:${settings.fleet}:events`,
              maxLen: settings.eventsMaxLen,
            })
          : new NatsEventTransport(b, {
              subject: `rc-softphone.${settings.fleet}.events`,
              stream: `RC_SOFTPHONE_${settings.fleet.toUpperCase().replace(/-/g, '_')}_EVENTS`,
              maxLen: settings.eventsMaxLen,
            });
      exporter = new EventExporter({ transport, capacity: settings.eventsBuffer, source: defaultSource() });
      const ex = exporter;
      ex.on('down', (e) =>
        log.warn(
          'events.down',
          { broker: transport.description, reason: e.reason, buffered: ex.stats.buffered },
          `cannot send events to ${transport.description}: ${e.reason}; buffering up to ${settings.eventsBuffer}`,
        ),
      );
      ex.on('resumed', (e) =>
        log.info(
          'events.resumed',
          { broker: transport.description, dropped: e.dropped, downMs: e.downMs },
          `sending events to ${transport.description} again after ${(e.downMs / 1000).toFixed(1)} s${e.dropped ? ` (${e.dropped} dropped meanwhile)` : ''}`,
        ),
      );
      log.tap = (line) => ex.publish(line);
    }
    let metrics: SoftphoneMetrics | undefined;
    let server: ObservabilityServer | undefined;
    let services: FleetServices | undefined;
    if (settings.http || sources.metricsWithoutHttp) {
      metrics = new SoftphoneMetrics({
        devices: sources.devices,
        ...(exporter && { exporter: () => exporter?.stats }),
        ...(sources.coordination && { coordination: sources.coordination }),
      });
    }
    if (settings.http && metrics) {
      try {
        server = await startObservabilityServer({
          listen: settings.http,
          metrics,
          readiness: () => {
            const devices = sources.devices();
            const coordinated = sources.coordination !== undefined;
            const mine = coordinated ? devices.filter((d) => d.leaseHeld) : devices;
            return readiness({
              responsible: mine.length,
              registered: mine.filter((d) => d.registered).length,
              share: settings.readyShare,
              stopping: services?.isStopping ?? false,
            });
          },
        });
      } catch (err) {
        await exporter?.close();
        throw new UsageError(describeError(err).replace(/ \[CONFIG_INVALID\]$/, ''));
      }
    }
    services = new FleetServices(log, exporter, metrics, server);
    if (server) {
      log.info(
        'http.listening',
        { address: services.httpAddress },
        `metrics on http://${services.httpAddress}/metrics (also /healthz, /readyz)`,
      );
    }
    if (exporter) {
      log.info(
        'events.export',
        { broker: exporter.transport.description, source: exporter.source },
        `sending events to ${exporter.transport.description}`,
      );
    }
    return services;
  }

  /** Counts a device's Softphone in the metrics and sends its calls' sidecars with the events. */
  watch(device: string, phone: Softphone, log: Logger): void {
    this.metrics?.watch(device, phone);
    if (!this.exporter) return;
    phone.on('callEnded', (call, info) => {
      if (!info.sidecar) return;
      readFile(info.sidecar, 'utf8').then(
        (text) =>
          log.export('call.sidecar', { callId: call.id, path: info.sidecar, sidecar: JSON.parse(text) }),
        () => {},
      );
    });
  }

  /** Sends what is still buffered (up to `flushMs`), then closes the broker and the endpoint. */
  async close(flushMs = 3000): Promise<void> {
    this.#stopping = true;
    if (this.exporter) {
      const ok = await this.exporter.flush(flushMs);
      const s = this.exporter.stats;
      if (!ok) {
        this.#log.warn(
          'events.unsent',
          { buffered: s.buffered, dropped: s.dropped },
          `${s.buffered} events could not be sent before exiting`,
        );
      }
      this.#log.tap = undefined;
      await this.exporter.close();
    }
    await this.#server?.close();
  }
}

/** The coordinator over the store --coordinate names. */
export function createCoordinator(
  settings: FleetSettings,
  fleet: Fleet,
  member: string,
  log: Logger,
): LeaseCoordinator | undefined {
  const b = settings.coordinate;
  if (!b) return undefined;
  const timing = leaseTiming(settings.leaseTtlMs);
  const store: LeaseStore =
    b.kind === 'redis'
      ? new RedisLeaseStore(b, settings.fleet)
      : new NatsLeaseStore(b, settings.fleet, { leaseMs: timing.ttlMs, memberMs: timing.memberTtlMs });
  const coordinator = new LeaseCoordinator({
    store,
    devices: fleet.deviceIds,
    member,
    timing,
    start: (id) => fleet.startDevice(id),
    stop: (id, reason) => fleet.stopDevice(id, reason),
  });
  coordinator.on('acquired', (device) =>
    log.info('lease.acquired', { device }, `[${device}] lease acquired: registering here`),
  );
  coordinator.on('lost', (device, reason) =>
    log.warn('lease.lost', { device, reason }, `[${device}] lease lost (${reason}): unregistering`),
  );
  coordinator.on('released', (device, reason) =>
    log.info('lease.released', { device, reason }, `[${device}] lease released (${reason})`),
  );
  coordinator.on('share', (s) =>
    log.info(
      'fleet.share',
      { members: s.members, share: s.share, held: s.held },
      `${s.members} process${s.members === 1 ? '' : 'es'} share the fleet: taking up to ${s.share} device${s.share === 1 ? '' : 's'}`,
    ),
  );
  coordinator.on('storeDown', (e) =>
    log.warn(
      'coordination.down',
      { store: store.description, reason: e.reason },
      `cannot reach ${store.description}: ${e.reason}; devices stop when their leases run out`,
    ),
  );
  coordinator.on('storeResumed', () =>
    log.info('coordination.resumed', { store: store.description }, `${store.description} answers again`),
  );
  log.info(
    'coordination',
    { store: store.description, member, leaseTtlMs: timing.ttlMs },
    `coordinating devices through ${store.description} as ${member} (lease ${timing.ttlMs / 1000} s)`,
  );
  return coordinator;
}

/** The devices for the metrics and /readyz. */
export function fleetView(fleet: Fleet, coordinator: LeaseCoordinator | undefined): DeviceView[] {
  const held = coordinator ? new Set(coordinator.held) : undefined;
  return fleet.devices.map((d) => ({
    id: d.id,
    state: d.state,
    registered: d.registered,
    activeCalls: d.activeCalls,
    ...(held && { leaseHeld: held.has(d.id) }),
  }));
}
