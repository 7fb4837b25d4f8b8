/** `rc-softphone listen`: register, answer every call, record it, until a signal or --exit-after. */
import os from 'node:os';
import { Command } from 'commander';
import { resolveSipInfo } from '../../config/sip-info.js';
import { describeError, isSoftphoneError } from '../../errors.js';
import { provisionFromEnv } from '../../rest/provision.js';
import { localAddressProblem } from '../../sdp/negotiate.js';
import { streamUrlProblem } from '../../sinks/media-stream.js';
import { Softphone, type SoftphoneOptions } from '../../softphone.js';
import {
  addDotenvOption,
  addOutputOptions,
  checkRecordDirFlag,
  createLogger,
  ExitCode,
  intOption,
  loadEnv,
  type OutputOptions,
  recordDirUsage,
  UsageError,
} from '../common.js';
import { wireEvents } from '../events.js';
import { startStatusLine } from '../status-line.js';

interface ListenFlags extends OutputOptions {
  sipInfo?: string;
  dotenv?: string;
  recordDir: string;
  record: boolean;
  maxCalls: number;
  exitAfter?: number;
  rtpPorts: string;
  mediaIp?: string;
  silence: boolean;
  mediaTimeout: number;
  maxDuration: number;
  expires: number;
  keepalive: number;
  tlsInsecure?: boolean;
  pipe?: string;
  pipeGrace: number;
  streamUrl?: string;
}

const EXAMPLES = `
Examples:
  $ rc-softphone listen                                  # credentials from .env / SIP_INFO_* / ./sip-info.json
  $ rc-softphone listen --sip-info ./sip-info.json --record-dir ./calls
  $ rc-softphone listen --exit-after 1 --log-format json # CI smoke test: one call, then exit 0
  $ rc-softphone listen --media-ip 203.0.113.7 --rtp-ports 40000-40999
  $ rc-softphone listen --pipe 'sox -t raw -r 8000 -e signed -b 16 -c 1 - -r 16000 -t raw - | my-asr'
  $ rc-softphone listen --stream-url ws://localhost:8080/media`;

export function listenCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('listen')
    .description('Register the device, answer every inbound call and record it to WAV until SIGINT/SIGTERM.')
    .option('--sip-info <file>', 'SIP credentials file (from `rc-softphone provision` or the portal)')
    .option('--record-dir <dir>', 'where WAV recordings and their JSON sidecars go', './recordings')
    .option('--no-record', 'answer calls without recording them')
    .option(
      '--max-calls <n>',
      'concurrent calls; more get 486 Busy Here',
      intOption('--max-calls', 1, 10_000),
      10,
    )
    .option('--exit-after <n>', 'exit 0 after this many calls have ended', intOption('--exit-after', 1))
    .option('--rtp-ports <range>', 'UDP port range for RTP, one port per call', '20000-29999')
    .option(
      '--media-ip <ip>',
      'IPv4 or IPv6 address to put in the SDP (default: the local address of the SIP connection)',
    )
    .option('--no-silence', 'do not send RTP silence after the priming packet')
    .option(
      '--media-timeout <seconds>',
      'hang up when no RTP arrives for this long (0: never)',
      intOption('--media-timeout', 0),
      60,
    )
    .option(
      '--max-duration <seconds>',
      'hang up calls longer than this (0: never)',
      intOption('--max-duration', 0),
      14_400,
    )
    .option('--expires <seconds>', 'registration expiry to ask for', intOption('--expires', 30, 86_400), 600)
    .option(
      '--keepalive <seconds>',
      'CRLF keep-alive interval on an idle connection (0: off)',
      intOption('--keepalive', 0, 3600),
      30,
    )
    .option('--tls-insecure', 'TLS: do not verify the server certificate (not recommended)')
    .option(
      '--pipe <command>',
      'per call, run COMMAND with sh -c and write the audio (s16le, 8 kHz, mono) to its stdin',
    )
    .option(
      '--pipe-grace <seconds>',
      'after a call, time the --pipe engine gets to print final results',
      intOption('--pipe-grace', 0, 600),
      5,
    )
    .option(
      '--stream-url <url>',
      'per call, stream the audio both ways over a WebSocket (Twilio Media Streams format)',
    )
    .addHelpText('after', EXAMPLES)
    .exitOverride();
  addDotenvOption(command);
  addOutputOptions(command);
  command.action(async (flags: ListenFlags) => {
    setExitCode(await listen(flags));
  });
  return command;
}

function parsePortRange(value: string): { min: number; max: number } {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(value.trim());
  const min = Number(m?.[1]);
  const max = Number(m?.[2]);
  if (!m || min < 1024 || max > 65535 || min > max) {
    throw new UsageError(
      `--rtp-ports must be MIN-MAX within 1024-65535, got "${value}" (example: --rtp-ports 20000-29999)`,
    );
  }
  return { min, max };
}

/**
 * Runs before provisioning or registering: a bot that answers calls it cannot
 * record is worse than one that does not start.
 */
function checkRecordDir(flags: ListenFlags): void {
  if (flags.record) checkRecordDirFlag(flags.recordDir, true);
}

async function listen(flags: ListenFlags): Promise<number> {
  // Everything that can be wrong with the configuration is found before any network I/O.
  const env = loadEnv(flags.dotenv);
  const rtpPorts = parsePortRange(flags.rtpPorts);
  const streamUrlIssue = flags.streamUrl === undefined ? undefined : streamUrlProblem(flags.streamUrl);
  if (streamUrlIssue) {
    throw new UsageError(
      `--stream-url ${streamUrlIssue}, got "${flags.streamUrl}" (example: --stream-url ws://localhost:8080/media)`,
    );
  }
  const mediaIpIssue = flags.mediaIp === undefined ? undefined : localAddressProblem(flags.mediaIp);
  if (mediaIpIssue) {
    throw new UsageError(
      `--media-ip ${mediaIpIssue}, got "${flags.mediaIp}" (example: --media-ip 203.0.113.7)`,
    );
  }
  // '' used to turn recording off without a word; --no-record says it.
  if (flags.record && flags.recordDir.trim() === '') throw recordDirUsage(flags.recordDir, 'is empty', true);
  if (flags.pipe !== undefined && flags.pipe.trim() === '')
    throw new UsageError('--pipe needs a command (example: --pipe "cat > /dev/null")');
  const provisioningLog = createLogger(flags, [env.RINGCENTRAL_CLIENT_SECRET, env.RINGCENTRAL_JWT_TOKEN]);
  let resolved: Awaited<ReturnType<typeof resolveSipInfo>>;
  try {
    resolved = await resolveSipInfo({
      sipInfoPath: flags.sipInfo,
      env,
      cwd: process.cwd(),
      provision: async () => {
        checkRecordDir(flags);
        provisioningLog.info('provisioning', {}, 'provisioning a SIP device with the RingCentral REST API…');
        const transport = env.SIP_INFO_TRANSPORT?.toLowerCase() === 'tls' ? 'tls' : 'tcp';
        const result = await provisionFromEnv(env, { transport, computerName: os.hostname() });
        for (const w of result.warnings) provisioningLog.warn('provisioning.warning', { message: w }, w);
        return result.sipInfo;
      },
    });
  } catch (err) {
    if (isSoftphoneError(err) && (err.code === 'CONFIG_MISSING' || err.code === 'CONFIG_INVALID')) {
      throw new UsageError(err.message);
    }
    throw err;
  }
  checkRecordDir(flags);
  const { sipInfo } = resolved;
  const log = createLogger(flags, [
    sipInfo.password,
    env.RINGCENTRAL_CLIENT_SECRET,
    env.RINGCENTRAL_JWT_TOKEN,
  ]);
  for (const warning of resolved.warnings) log.warn('config.warning', { message: warning }, warning);

  const options: SoftphoneOptions = {
    sipInfo,
    instanceId: sipInfo.instanceId as string,
    registrationExpires: flags.expires,
    keepAliveIntervalMs: flags.keepalive * 1000,
    tlsInsecure: flags.tlsInsecure ?? false,
    proxySettingNames: resolved.proxySettingNames,
    maxCalls: flags.maxCalls,
    rtpPorts,
    sendSilence: flags.silence,
    mediaTimeoutMs: flags.mediaTimeout * 1000,
    maxCallDurationMs: flags.maxDuration * 1000,
    ...(flags.record && { recordDir: flags.recordDir }),
    ...(flags.mediaIp !== undefined && { mediaIp: flags.mediaIp }),
    ...(flags.pipe !== undefined && { pipe: { command: flags.pipe, graceMs: flags.pipeGrace * 1000 } }),
    ...(flags.streamUrl !== undefined && { stream: { url: flags.streamUrl } }),
  };
  const phone = new Softphone(options);
  log.info(
    'starting',
    { credentials: resolved.description, recordDir: flags.record ? flags.recordDir : null },
    `using credentials from ${resolved.description}; recording to ${flags.record ? flags.recordDir : '(off)'}`,
  );
  wireEvents(phone, log, sipInfo.username, sipInfo.domain);
  const stopStatus =
    log.format === 'text' && !flags.quiet && process.stdout.isTTY ? startStatusLine(phone, log) : () => {};

  let endedCalls = 0;
  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.info('shutdown', { reason: why, activeCalls: phone.activeCalls.length }, `shutting down (${why})…`);
      await phone.stop();
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
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 1) {
        void stop(signal).then(() => resolve(ExitCode.OK));
        return;
      }
      // Second signal: exit now, but finish every recording synchronously first so WAVs stay valid.
      for (const call of phone.activeCalls) call.finish('shutdown');
      log.warn('shutdown.forced', { signal }, `${signal} again: exiting without unregistering`);
      process.exit(128 + (os.constants.signals[signal] ?? 2));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

  try {
    await phone.start();
  } catch (err) {
    // A signal while still connecting is a normal stop, not a failure.
    if (stopping) return done;
    // The record dir checked above can change before start() checks it again.
    if (isSoftphoneError(err, 'CONFIG_INVALID')) {
      await phone.stop();
      stopStatus();
      throw err.details.option === 'recordDir'
        ? recordDirUsage(flags.recordDir, String(err.details.reason), true)
        : new UsageError(err.message);
    }
    log.error('fatal', { message: describeError(err) }, `cannot register: ${describeError(err)}`);
    await phone.stop();
    stopStatus();
    return ExitCode.FAILURE;
  }
  return done;
}
