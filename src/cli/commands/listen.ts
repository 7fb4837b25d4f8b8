/** `rc-softphone listen`: register, answer every call, record it, until a signal or --exit-after. */
import { Command } from 'commander';
import type { PlayPcm } from '../../call/call.js';
import { DEFAULTS } from '../../config/options.js';
import { describeError } from '../../errors.js';
import { WORKER_ENV } from '../../fleet/processes.js';
import { loadAudioFile, PLAY_SAMPLE_RATE } from '../../media/audio-file.js';
import { Softphone } from '../../softphone.js';
import { ExitCode, intOption, onStopSignals, UsageError } from '../common.js';
import { addDeviceOptions, configUsageError, type DeviceFlags, prepareDevice } from '../device.js';
import { wireEvents } from '../events.js';
import { addFleetOptions, checkFleetFlags, type FleetFlags, FleetServices, fleetSecrets } from '../fleet.js';
import { superviseProcesses } from '../processes.js';
import { startStatusLine } from '../status-line.js';
import { listenFleet } from './listen-fleet.js';

export interface ListenFlags extends DeviceFlags, FleetFlags {
  maxCalls: number;
  exitAfter?: number;
  play?: string;
}

const EXAMPLES = `
Examples:
  $ rc-softphone listen                                  # credentials from .env / SIP_INFO_* / ./sip-info.json
  $ rc-softphone listen --sip-info ./sip-info.json --record-dir ./calls
  $ rc-softphone listen --exit-after 1 --log-format json # CI smoke test: one call, then exit 0
  $ rc-softphone listen --play greeting.wav              # play a greeting to every caller
  $ rc-softphone listen --media-ip 203.0.113.7 --rtp-ports 40000-40999
  $ rc-softphone listen --pipe 'sox -t raw -r 8000 -e signed -b 16 -c 1 - -r 16000 -t raw - | my-asr'
  $ rc-softphone listen --stream-url ws://localhost:8080/media
  $ rc-softphone listen --devices ./devices --http :9464     # a fleet: every *.json in ./devices, metrics
  $ rc-softphone listen --devices ./devices --processes 2    # the same fleet on two cores
  $ rc-softphone listen --devices ./devices --events redis://127.0.0.1:6379 --coordinate redis://127.0.0.1:6379`;

export function listenCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('listen')
    .description('Register the device, answer every inbound call and record it to WAV until SIGINT/SIGTERM.')
    .option(
      '--max-calls <n>',
      'concurrent calls; more get 486 Busy Here',
      intOption('--max-calls', 1, 10_000),
      DEFAULTS.maxCalls,
    )
    .option('--exit-after <n>', 'exit 0 after this many calls have ended', intOption('--exit-after', 1))
    .option(
      '--play <file>',
      'a greeting: play this WAV (any rate, mono or stereo) to every caller on answer',
    );
  addDeviceOptions(command);
  addFleetOptions(command).addHelpText('after', EXAMPLES).exitOverride();
  command.action(async (flags: ListenFlags) => {
    setExitCode(await listen(flags));
  });
  return command;
}

async function listen(flags: ListenFlags): Promise<number> {
  const settings = checkFleetFlags(flags);
  if (settings.devices !== undefined) {
    // The supervisor of --processes N; its workers (told so in their environment) run the fleet.
    if (settings.processes > 1 && process.env[WORKER_ENV.worker] === undefined)
      return superviseProcesses(flags, settings, loadGreeting);
    return listenFleet(flags, settings, loadGreeting);
  }
  // Everything that can be wrong with the configuration is found before any network I/O.
  const { options, resolved, log } = await prepareDevice(flags);
  for (const secret of fleetSecrets(settings)) log.scrubber.add(secret);
  const greeting = flags.play === undefined ? undefined : await loadGreeting(flags.play);
  const phone = new Softphone({ ...options, maxCalls: flags.maxCalls });
  const deviceId = options.sipInfo.deviceId ?? options.sipInfo.username;
  const services =
    settings.http || settings.events
      ? await FleetServices.start(settings, log, {
          devices: () => [
            {
              id: deviceId,
              state: phone.registered ? 'registered' : 'starting',
              registered: phone.registered,
              activeCalls: phone.activeCalls.length,
            },
          ],
        })
      : undefined;
  services?.watch(deviceId, phone, log);
  log.info(
    'starting',
    { credentials: resolved.description, recordDir: flags.record ? flags.recordDir : null },
    `using credentials from ${resolved.description}; recording to ${flags.record ? flags.recordDir : '(off)'}`,
  );
  wireEvents(phone, log, options.sipInfo.username, options.sipInfo.domain);
  if (greeting) {
    phone.on('callAnswered', (call) => {
      call
        .play(greeting)
        .catch((err) =>
          log.warn(
            'warning',
            { code: 'PLAY_FAILED', message: describeError(err), callId: call.id },
            describeError(err),
          ),
        );
    });
  }
  const stopStatus =
    log.format === 'text' && !flags.quiet && process.stdout.isTTY ? startStatusLine(phone, log) : () => {};

  let endedCalls = 0;
  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.info('shutdown', { reason: why, activeCalls: phone.activeCalls.length }, `shutting down (${why})…`);
      services?.stopping();
      await phone.stop();
      await services?.close();
      stopStatus();
    })();
    return stopping;
  };
  const done = new Promise<number>((resolve) => {
    phone.on('callEnded', () => {
      endedCalls++;
      if (flags.exitAfter !== undefined && endedCalls >= flags.exitAfter) {
        void stop(`--exit-after ${flags.exitAfter} reached`).then(() => resolve(ExitCode.OK));
      }
    });
    onStopSignals(log, {
      first: (signal) => void stop(signal).then(() => resolve(ExitCode.OK)),
      // Every recording finished synchronously first, so WAVs stay valid.
      now: () => phone.stopNow(),
      forced: 'exiting without unregistering',
    });
  });

  try {
    await phone.start();
  } catch (err) {
    // A signal while still connecting is a normal stop, not a failure.
    if (stopping) return done;
    const usage = configUsageError(err, flags);
    await phone.stop();
    await services?.close();
    stopStatus();
    // The record dir checked above can change before start() checks it again.
    if (usage) throw usage;
    log.error('fatal', { message: describeError(err) }, `cannot register: ${describeError(err)}`);
    return ExitCode.FAILURE;
  }
  return done;
}

/** The greeting is read and converted once, before registering: a bad file is a usage error. */
export async function loadGreeting(path: string): Promise<PlayPcm> {
  try {
    return { pcm: await loadAudioFile(path, PLAY_SAMPLE_RATE), sampleRate: PLAY_SAMPLE_RATE };
  } catch (err) {
    throw new UsageError(`--play ${describeError(err)}`);
  }
}
