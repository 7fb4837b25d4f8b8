/**
 * `rc-softphone listen --devices PATH`: many devices in one process (Fleet),
 * each with its own registration and events tagged `device`, one RTP port
 * pool, optionally coordinated with other processes through leases. A device
 * that fails is reported and retried on its own; the process runs until a
 * signal or --exit-after. As a worker of `--processes N` it runs its part of
 * the devices and ports, and its supervisor decides when it stops
 * (cli/processes.ts).
 */
import type { PlayPcm } from '../../call/call.js';
import { describeError } from '../../errors.js';
import { defaultSource } from '../../events/exporter.js';
import { Fleet } from '../../fleet/fleet.js';
import { devicesOfWorker, workerPartFromEnv } from '../../fleet/processes.js';
import { createLogger, ExitCode, onStopSignals, UsageError } from '../common.js';
import { checkDeviceFlags } from '../device.js';
import { wireEvents } from '../events.js';
import {
  createCoordinator,
  FleetServices,
  type FleetSettings,
  fleetSecrets,
  fleetView,
  loadDevicesFlag,
} from '../fleet.js';
import { attachToSupervisor } from '../processes.js';
import { startFleetStatusLine } from '../status-line.js';
import type { ListenFlags } from './listen.js';

export async function listenFleet(
  flags: ListenFlags,
  settings: FleetSettings,
  loadGreeting: (path: string) => Promise<PlayPcm>,
): Promise<number> {
  // Everything that can be wrong with the configuration is found before any network I/O.
  const { env, shared, checkRecordDir } = checkDeviceFlags(flags);
  const worker = workerPartFromEnv(process.env);
  if (!worker.ok) throw new UsageError(worker.reason);
  const part = worker.part;
  const coordinated = settings.coordinate !== undefined;
  const listed = await loadDevicesFlag(settings.devices as string);
  const devices = part ? devicesOfWorker(listed, part, coordinated) : listed;
  if (part) {
    shared.rtpPorts = part.rtpPorts;
    // The supervisor serves --http for every process and counts --exit-after over them.
    settings = { ...settings, http: undefined };
  }
  const greeting = flags.play === undefined ? undefined : await loadGreeting(flags.play);
  checkRecordDir();
  const log = createLogger(flags, [
    ...devices.map((d) => d.sipInfo.password),
    ...fleetSecrets(settings),
    env.RINGCENTRAL_CLIENT_SECRET,
    env.RINGCENTRAL_JWT_TOKEN,
  ]);
  const fleet = new Fleet({ devices, phone: shared, maxCalls: flags.maxCalls });
  const member = defaultSource();
  const coordinator = createCoordinator(settings, fleet, member, log);
  const services = await FleetServices.start(settings, log, {
    ...(part?.metrics && { metricsWithoutHttp: true }),
    devices: () => fleetView(fleet, coordinator),
    ...(coordinator && {
      coordination: () => ({ ...coordinator.share, storeConnected: coordinator.storeConnected }),
    }),
  });

  const deviceLogs = new Map(devices.map((d) => [d.id, log.child({ device: d.id })]));
  fleet.on('phone', (id, phone) => {
    const dlog = deviceLogs.get(id) ?? log;
    wireEvents(phone, dlog, phone.ua.identity.username, phone.ua.identity.domain);
    services.watch(id, phone, dlog);
    if (greeting) {
      phone.on('callAnswered', (call) => {
        call
          .play(greeting)
          .catch((err) =>
            dlog.warn(
              'warning',
              { code: 'PLAY_FAILED', message: describeError(err), callId: call.id },
              describeError(err),
            ),
          );
      });
    }
    phone.on('callEnded', () => onCallEnded());
  });
  fleet.on('deviceFailed', (f) =>
    (deviceLogs.get(f.device) ?? log).error(
      'device.failed',
      { code: f.code, message: f.message, attempt: f.attempt, retryInMs: f.retryInMs },
      `cannot start: ${f.message}; the other devices go on, trying again in ${(f.retryInMs / 1000).toFixed(0)} s`,
    ),
  );

  log.info(
    'fleet.starting',
    {
      fleet: settings.fleet,
      devices: devices.map((d) => d.id),
      recordDir: flags.record ? flags.recordDir : null,
      coordinated: coordinator !== undefined,
    },
    `starting ${devices.length} device${devices.length === 1 ? '' : 's'} from ${settings.devices}${coordinator ? ' (as leases allow)' : ''}; recording to ${flags.record ? flags.recordDir : '(off)'}`,
  );
  const stopStatus =
    log.format === 'text' && !flags.quiet && process.stdout.isTTY
      ? startFleetStatusLine(() => {
          const all = fleet.devices;
          return {
            devices: all.length,
            registered: all.filter((d) => d.registered).length,
            retrying: all.filter((d) => d.state === 'retrying').length,
            standby: all.filter((d) => d.state === 'standby').length,
            calls: fleet.activeCalls,
            ...(coordinator && {
              share: `share ${coordinator.share.share} of ${coordinator.share.members} processes`,
            }),
          };
        }, log)
      : () => {};

  let endedCalls = 0;
  let stopping: Promise<void> | undefined;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.info('shutdown', { reason: why, activeCalls: fleet.activeCalls }, `shutting down (${why})…`);
      services.stopping();
      await fleet.stop();
      await services.close();
      stopStatus();
    })();
    return stopping;
  };
  const onCallEnded = () => {
    endedCalls++;
    if (supervisor) {
      supervisor.callEnded();
      return;
    }
    if (flags.exitAfter !== undefined && endedCalls >= flags.exitAfter) {
      void stop(`--exit-after ${flags.exitAfter} reached`).then(() => resolveDone(ExitCode.OK));
    }
  };
  const supervisor = part
    ? attachToSupervisor({
        stop: () => void stop('asked by the supervisor').then(() => resolveDone(ExitCode.OK)),
        stopNow: () => {
          fleet.stopNow();
          process.exit(ExitCode.FAILURE);
        },
        devices: () => fleetView(fleet, coordinator),
        stopping: () => services.isStopping,
        ...(services.metrics && {
          metrics: () =>
            (services.metrics as NonNullable<typeof services.metrics>).registry.getMetricsAsJSON(),
        }),
      })
    : undefined;
  if (!supervisor) {
    onStopSignals(log, {
      first: (signal) => void stop(signal).then(() => resolveDone(ExitCode.OK)),
      // Every recording finished synchronously first, so WAVs stay valid.
      now: () => fleet.stopNow(),
      forced: 'exiting without unregistering',
    });
  }

  fleet.start(coordinator);
  return done;
}
