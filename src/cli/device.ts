/**
 * What `listen` and `call` share: the device's credentials, registration and
 * media flags (defaults from the one DEFAULTS table), the checks that run
 * before any network I/O, and turning it all into SoftphoneOptions.
 */
import os from 'node:os';
import type { Command } from 'commander';
import { DEFAULTS } from '../config/options.js';
import { type ResolvedSipInfo, resolveSipInfo } from '../config/sip-info.js';
import { isSoftphoneError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { CODECS, type CodecName, SAMPLE_RATES, type SampleRate } from '../media/codec.js';
import { provisionFromEnv } from '../rest/provision.js';
import { isSrtpPolicy, type SrtpPolicy } from '../sdp/crypto.js';
import { localAddressProblem } from '../sdp/negotiate.js';
import { streamUrlProblem } from '../sinks/media-stream.js';
import type { SoftphoneOptions } from '../softphone.js';
import {
  addDotenvOption,
  addOutputOptions,
  checkRecordDirFlag,
  createLogger,
  intOption,
  loadEnv,
  type OutputOptions,
  recordDirUsage,
  UsageError,
} from './common.js';

export interface DeviceFlags extends OutputOptions {
  sipInfo?: string;
  dotenv?: string;
  recordDir: string;
  record: boolean;
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
  codecs?: string;
  sampleRate?: number;
  followRefer?: boolean;
  srtp?: string;
}

/** setTimeout takes at most 2^31-1 ms: a longer limit would fire at once. */
const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
/** A default in ms as the whole seconds a flag takes. */
export const seconds = (ms: number) => Math.round(ms / 1000);

/**
 * The media flags of every command that answers or places calls (a device's
 * `listen` and `call`, and `serve`); `say` words the defaults that differ.
 */
export function addMediaOptions(command: Command, say: { mediaIp: string; srtpDefault: string }): Command {
  const ports = `${DEFAULTS.rtpPorts.min}-${DEFAULTS.rtpPorts.max}`;
  return command
    .option('--rtp-ports <range>', 'UDP port range for RTP, one port per call', ports)
    .option('--media-ip <ip>', `IPv4 or IPv6 address to put in the SDP (default: ${say.mediaIp})`)
    .option('--no-silence', 'do not send RTP silence when there is nothing else to send')
    .option(
      '--media-timeout <seconds>',
      'hang up when no RTP arrives for this long (0: never)',
      intOption('--media-timeout', 0, MAX_TIMER_SECONDS),
      seconds(DEFAULTS.mediaTimeoutMs),
    )
    .option(
      '--max-duration <seconds>',
      'hang up calls longer than this (0: never)',
      intOption('--max-duration', 0, MAX_TIMER_SECONDS),
      seconds(DEFAULTS.maxCallDurationMs),
    )
    .option(
      '--codecs <list>',
      `codec preference, most preferred first (from ${Object.keys(CODECS).join(', ')}; default ${DEFAULTS.codecs.join(',')}: Opus whenever the far end offers it)`,
    )
    .option(
      '--sample-rate <hz>',
      "force every call's audio rate (WAV, --pipe, frames): 8000 or 16000 (default: 16000 for wideband Opus calls, 8000 for G.711)",
      sampleRateOption,
    )
    .option('--srtp <policy>', `SRTP (SDES): required, optional or off (default: ${say.srtpDefault})`);
}

/** Adds the flags every command that runs the device shares. */
export function addDeviceOptions(command: Command): Command {
  command
    .option('--sip-info <file>', 'SIP credentials file (from `rc-softphone provision` or the portal)')
    .option('--record-dir <dir>', 'where WAV recordings and their JSON sidecars go', DEFAULTS.recordDir)
    .option('--no-record', 'do not record calls');
  addMediaOptions(command, {
    mediaIp: 'the local address of the SIP connection',
    srtpDefault: 'required on TLS, off on TCP',
  })
    .option(
      '--expires <seconds>',
      'registration expiry to ask for',
      intOption('--expires', 30, 86_400),
      DEFAULTS.registrationExpires,
    )
    .option(
      '--keepalive <seconds>',
      'CRLF keep-alive interval on an idle connection (0: off)',
      intOption('--keepalive', 0, 3600),
      seconds(DEFAULTS.keepAliveIntervalMs),
    )
    .option('--tls-insecure', 'TLS: do not verify the server certificate (not recommended)')
    .option(
      '--follow-refer',
      "follow the far end's REFER (blind transfer): call the target it names, then end this call (default: decline with 603)",
    )
    .option(
      '--pipe <command>',
      "per call, run COMMAND with sh -c and write the audio (s16le, mono, the call's rate in RC_SAMPLE_RATE) to its stdin",
    )
    .option(
      '--pipe-grace <seconds>',
      'after a call, time the --pipe engine gets to print final results',
      intOption('--pipe-grace', 0, 600),
      seconds(DEFAULTS.pipeGraceMs),
    )
    .option(
      '--stream-url <url>',
      'per call, stream the audio both ways over a WebSocket (Twilio Media Streams format)',
    );
  addDotenvOption(command);
  addOutputOptions(command);
  return command;
}

export interface PreparedDevice {
  options: SoftphoneOptions;
  resolved: ResolvedSipInfo;
  log: Logger;
}

/**
 * Checks every flag (exit 2 naming it), finds the credentials (provisioning
 * on the fly when only RINGCENTRAL_* are set) and the record dir, all before
 * any SIP traffic, and returns the Softphone's options.
 */
export async function prepareDevice(flags: DeviceFlags): Promise<PreparedDevice> {
  const { env, shared, checkRecordDir } = checkDeviceFlags(flags);
  const provisioningLog = createLogger(flags, [env.RINGCENTRAL_CLIENT_SECRET, env.RINGCENTRAL_JWT_TOKEN]);
  let resolved: ResolvedSipInfo;
  try {
    resolved = await resolveSipInfo({
      sipInfoPath: flags.sipInfo,
      env,
      cwd: process.cwd(),
      provision: async () => {
        checkRecordDir();
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
  checkRecordDir();
  const { sipInfo } = resolved;
  const log = createLogger(flags, [
    sipInfo.password,
    env.RINGCENTRAL_CLIENT_SECRET,
    env.RINGCENTRAL_JWT_TOKEN,
  ]);
  for (const warning of resolved.warnings) log.warn('config.warning', { message: warning }, warning);
  const options: SoftphoneOptions = {
    ...shared,
    sipInfo,
    instanceId: sipInfo.instanceId as string,
    proxySettingNames: resolved.proxySettingNames,
  };
  return { options, resolved, log };
}

/** The Softphone options every device of a command shares (everything but the credentials). */
export type SharedDeviceOptions = Omit<SoftphoneOptions, 'sipInfo' | 'instanceId' | 'proxySettingNames'>;

/**
 * Checks every device flag (exit 2 naming it) and turns them into the
 * options each device's Softphone gets. `checkRecordDir` creates and proves
 * the record dir (call it when nothing else can fail first).
 */
export function checkDeviceFlags(flags: DeviceFlags): {
  env: NodeJS.ProcessEnv;
  shared: SharedDeviceOptions;
  checkRecordDir: () => void;
} {
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
  const codecs = flags.codecs === undefined ? undefined : parseCodecs(flags.codecs);
  if (flags.srtp !== undefined) parseSrtpPolicy(flags.srtp);
  const checkRecordDir = () => {
    // A bot that answers calls it cannot record is worse than one that does not start.
    if (flags.record) checkRecordDirFlag(flags.recordDir, true);
  };
  const shared: SharedDeviceOptions = {
    registrationExpires: flags.expires,
    keepAliveIntervalMs: flags.keepalive * 1000,
    tlsInsecure: flags.tlsInsecure ?? false,
    rtpPorts,
    sendSilence: flags.silence,
    mediaTimeoutMs: flags.mediaTimeout * 1000,
    maxCallDurationMs: flags.maxDuration * 1000,
    ...(codecs && { codecs }),
    ...(flags.sampleRate !== undefined && { sampleRate: flags.sampleRate as SampleRate }),
    ...(flags.followRefer && { followRefer: true }),
    ...(flags.srtp !== undefined && { srtp: flags.srtp as SrtpPolicy }),
    ...(flags.record && { recordDir: flags.recordDir }),
    ...(flags.mediaIp !== undefined && { mediaIp: flags.mediaIp }),
    ...(flags.pipe !== undefined && { pipe: { command: flags.pipe, graceMs: flags.pipeGrace * 1000 } }),
    ...(flags.streamUrl !== undefined && { stream: { url: flags.streamUrl } }),
  };
  return { env, shared, checkRecordDir };
}

/** A start() refusal that is the user's to fix (CONFIG_INVALID), as a usage error naming the flag. */
export function configUsageError(err: unknown, flags: DeviceFlags): UsageError | undefined {
  if (!isSoftphoneError(err, 'CONFIG_INVALID')) return undefined;
  return err.details.option === 'recordDir'
    ? recordDirUsage(flags.recordDir, String(err.details.reason), true)
    : new UsageError(err.message);
}

export function parsePortRange(value: string): { min: number; max: number } {
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

export function sampleRateOption(value: string): number {
  const rate = Number(value.trim());
  if (!SAMPLE_RATES.includes(rate as SampleRate)) {
    throw new UsageError(
      `--sample-rate must be 8000 or 16000, got "${value}" (example: --sample-rate 16000)`,
    );
  }
  return rate;
}

/** `--srtp`: required, optional or off. */
export function parseSrtpPolicy(value: string): SrtpPolicy {
  if (!isSrtpPolicy(value))
    throw new UsageError(
      `--srtp must be required, optional or off, got "${value}" (example: --srtp required)`,
    );
  return value;
}

/** `--codecs opus,pcmu`: known names, case-insensitive, duplicates dropped. */
export function parseCodecs(value: string): CodecName[] {
  const names = Object.keys(CODECS) as CodecName[];
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const out: CodecName[] = [];
  for (const item of list) {
    const found = names.find((n) => n.toLowerCase() === item.toLowerCase());
    if (!found) {
      throw new UsageError(
        `--codecs: unknown codec "${item}"; known: ${names.join(', ')} (example: --codecs ${names.join(',')})`,
      );
    }
    if (!out.includes(found)) out.push(found);
  }
  if (out.length === 0)
    throw new UsageError(`--codecs needs at least one codec (example: --codecs ${names.join(',')})`);
  return out;
}
