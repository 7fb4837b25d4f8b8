/**
 * `rc-softphone smoke --caller A.json --callee B.json`: the CI smoke test as
 * one command (runSmoke does the work; this is flags, output and files).
 * Everything that can be wrong with the configuration is found before any
 * network I/O and exits 2 naming the flag; a run that fails a check exits 1
 * naming it; a run that passes exits 0.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { targetUri } from '../../call/call-manager.js';
import { DEFAULTS } from '../../config/options.js';
import { loadSipInfoFile, type SipInfo } from '../../config/sip-info.js';
import { describeError, isSoftphoneError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { CodecName } from '../../media/codec.js';
import type { SrtpPolicy } from '../../sdp/crypto.js';
import { localAddressProblem } from '../../sdp/negotiate.js';
import { prepareRecordDir } from '../../sinks/record-dir.js';
import {
  type Check,
  DEFAULT_LIMITS,
  formatLimit,
  formatTable,
  type SmokeLimits,
} from '../../smoke/checks.js';
import { toJUnit } from '../../smoke/junit.js';
import { type ReportRecording, renderReport } from '../../smoke/report.js';
import { runSmoke, type SmokeResult, type SmokeStep } from '../../smoke/run.js';
import {
  addOutputOptions,
  createLogger,
  ExitCode,
  intOption,
  type OutputOptions,
  onStopSignals,
  UsageError,
} from '../common.js';
import { parseCodecs, parsePortRange, parseSrtpPolicy } from '../device.js';
import { wireEvents } from '../events.js';

interface SmokeFlags extends OutputOptions {
  caller: string;
  callee: string;
  target?: string;
  junit?: string;
  keepRecordings?: string;
  report?: string;
  maxLatencyMs: number;
  maxLossPercent: number;
  maxJitterMs: number;
  toneToleranceMs: number;
  timeout: number;
  rtpPorts: string;
  mediaIp?: string;
  tlsInsecure?: boolean;
  codecs?: string;
  srtp?: string;
}

const EXAMPLES = `
Examples:
  $ rc-softphone provision --out A.json && rc-softphone provision --out B.json   # two extensions' devices
  $ rc-softphone smoke --caller A.json --callee B.json
  $ rc-softphone smoke --caller A.json --callee B.json --junit smoke.xml --report smoke-report
  $ rc-softphone smoke --caller A.json --callee B.json --target 102 --log-format json
  $ rc-softphone smoke --caller A.json --callee B.json --keep-recordings ./smoke-wavs --max-latency-ms 300

What it checks (each side of the call, A = caller, B = callee):
  B registers and answers; A calls B; each side plays three tones (A: 500/1000/2000 Hz,
  B: 600/1100/2400 Hz, 300 ms each), then sends DTMF (A: 159#, B: *260); each side checks it
  heard the other's tones (frequency within ±2 %, duration, order), got every digit exactly
  once, and measures one-way latency, loss and jitter; A hangs up and B must see the BYE.
Exit codes: 0 every check passed, 1 a check failed (named in the output), 2 configuration.`;

const SUITE = 'rc-softphone smoke';

export function smokeCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('smoke')
    .description(
      'CI smoke test: device B answers, device A calls it, tones and DTMF both ways, checks, JUnit and an HTML report.',
    )
    .requiredOption('--caller <file>', 'credentials of device A, who calls (a `provision` file)')
    .requiredOption('--callee <file>', 'credentials of device B, who answers (a `provision` file)')
    .option('--target <number-or-uri>', "what A dials (default: B's user name at B's domain)")
    .option('--junit <file>', 'write the checks as JUnit XML here')
    .option(
      '--keep-recordings <dir>',
      'keep both WAVs here: caller.wav (what A heard) and callee.wav (what B heard)',
    )
    .option('--report <dir>', 'write an HTML report (index.html, with both recordings) into this directory')
    .option(
      '--max-latency-ms <ms>',
      "one-way audio latency allowed (p50 over the tones, the receiver's live playout delay included)",
      intOption('--max-latency-ms', 1, 60_000),
      DEFAULT_LIMITS.maxLatencyMs,
    )
    .option(
      '--max-loss-percent <percent>',
      'packets lost or too late allowed, per direction',
      percentOption('--max-loss-percent'),
      DEFAULT_LIMITS.maxLossPercent,
    )
    .option(
      '--max-jitter-ms <ms>',
      'transit jitter allowed, per direction',
      intOption('--max-jitter-ms', 0, 60_000),
      DEFAULT_LIMITS.maxJitterMs,
    )
    .option(
      '--tone-tolerance-ms <ms>',
      "how far a tone's duration and spacing may differ from what was sent",
      intOption('--tone-tolerance-ms', 1, 1000),
      DEFAULT_LIMITS.toneToleranceMs,
    )
    .option(
      '--timeout <seconds>',
      'give up registering, calling and exchanging after this long (the hang-up gets 5 s more)',
      intOption('--timeout', 5, 3600),
      60,
    )
    .option(
      '--rtp-ports <range>',
      'UDP port range for RTP (both devices)',
      `${DEFAULTS.rtpPorts.min}-${DEFAULTS.rtpPorts.max}`,
    )
    .option('--media-ip <ip>', 'IPv4 or IPv6 address to put in the SDP (default: the SIP connection’s)')
    .option(
      '--codecs <list>',
      `codec preference of both devices, most preferred first (default ${DEFAULTS.codecs.join(',')})`,
    )
    .option(
      '--srtp <policy>',
      'SRTP (SDES): required, optional or off (default: required on TLS, off on TCP)',
    )
    .option('--tls-insecure', 'TLS: do not verify the server certificate (not recommended)');
  addOutputOptions(command).addHelpText('after', EXAMPLES).exitOverride();
  command.action(async (flags: SmokeFlags) => {
    setExitCode(await smoke(flags));
  });
  return command;
}

function percentOption(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value.trim()) || !Number.isFinite(n) || n > 100) {
      throw new UsageError(`${flag} must be a number from 0 to 100, got "${value}" (example: ${flag} 0.5)`);
    }
    return n;
  };
}

interface Prepared {
  caller: SipInfo;
  callee: SipInfo;
  target: string;
  rtpPorts: { min: number; max: number };
  codecs: CodecName[] | undefined;
  srtp: SrtpPolicy | undefined;
  log: Logger;
  results: Logger;
}

/** Every check that needs no network: exit 2 naming the flag. */
async function prepare(flags: SmokeFlags): Promise<Prepared> {
  createLogger(flags); // validates --log-format first
  const caller = await loadDevice('--caller', flags.caller);
  const callee = await loadDevice('--callee', flags.callee);
  const same =
    caller.domain.toLowerCase() === callee.domain.toLowerCase() &&
    (caller.username === callee.username || caller.authorizationId === callee.authorizationId);
  if (same) {
    throw new UsageError(
      `--caller ${flags.caller} and --callee ${flags.callee} are the same device (${caller.username}@${caller.domain}); the smoke test needs two extensions (provision each: rc-softphone provision --out B.json)`,
    );
  }
  const target = flags.target ?? `sip:${callee.username}@${callee.domain}`;
  try {
    targetUri(target, caller.domain);
  } catch (err) {
    throw new UsageError(
      `--target ${isSoftphoneError(err) ? err.message : describeError(err)} (examples: --target 102, --target 16505550123, --target sip:bob@example.com)`,
    );
  }
  const rtpPorts = parsePortRange(flags.rtpPorts);
  const codecs = flags.codecs === undefined ? undefined : parseCodecs(flags.codecs);
  const srtp = flags.srtp === undefined ? undefined : parseSrtpPolicy(flags.srtp);
  const mediaIpIssue = flags.mediaIp === undefined ? undefined : localAddressProblem(flags.mediaIp);
  if (mediaIpIssue) {
    throw new UsageError(
      `--media-ip ${mediaIpIssue}, got "${flags.mediaIp}" (example: --media-ip 203.0.113.7)`,
    );
  }
  // Last, as they create directories: nothing is made for a run that cannot start.
  if (flags.junit !== undefined) checkFileFlag('--junit', flags.junit, 'smoke.xml');
  if (flags.keepRecordings !== undefined)
    checkDirFlag('--keep-recordings', flags.keepRecordings, './smoke-wavs');
  if (flags.report !== undefined) checkDirFlag('--report', flags.report, './smoke-report');
  const secrets = [caller.password, callee.password];
  return {
    caller,
    callee,
    target,
    rtpPorts,
    codecs,
    srtp,
    log: createLogger(flags, secrets),
    // The checks and the verdict are the command's output, not its chatter: --quiet keeps them.
    results: createLogger({ ...flags, quiet: false }, secrets),
  };
}

async function loadDevice(flag: string, file: string): Promise<SipInfo> {
  try {
    return await loadSipInfoFile(file);
  } catch (err) {
    if (isSoftphoneError(err, 'CONFIG_MISSING')) {
      throw new UsageError(
        `${flag} ${file}: no such file (make one with: rc-softphone provision --out ${path.basename(file)})`,
      );
    }
    if (isSoftphoneError(err)) throw new UsageError(`${flag}: ${err.message}`);
    throw err;
  }
}

function checkDirFlag(flag: string, dir: string, example: string): void {
  const problem = prepareRecordDir(dir);
  if (problem) {
    throw new UsageError(
      dir.trim() === ''
        ? `${flag} needs a directory (example: ${flag} ${example})`
        : `${flag} ${dir}: ${problem.reason} (example: ${flag} ${example})`,
    );
  }
}

function checkFileFlag(flag: string, file: string, example: string): void {
  if (file.trim() === '') throw new UsageError(`${flag} needs a file name (example: ${flag} ${example})`);
  if (existsSync(file) && statSync(file).isDirectory()) {
    throw new UsageError(`${flag} ${file}: is a directory (example: ${flag} ${example})`);
  }
  const problem = prepareRecordDir(path.dirname(path.resolve(file)));
  if (problem)
    throw new UsageError(`${flag} ${file}: its directory ${problem.reason} (example: ${flag} ${example})`);
}

async function smoke(flags: SmokeFlags): Promise<number> {
  const p = await prepare(flags);
  const { log, results } = p;
  log.info(
    'smoke.start',
    { caller: p.caller.username, callee: p.callee.username, target: p.target },
    `smoke test: ${p.caller.username}@${p.caller.domain} calls ${p.target}, answered by ${p.callee.username}@${p.callee.domain}`,
  );
  // Recordings go to a fresh directory (the writer never overwrites a WAV), then are copied where asked.
  const work = mkdtempSync(path.join(os.tmpdir(), 'rc-softphone-smoke-'));
  const abort = new AbortController();
  const offSignals = onStopSignals(log, {
    first: (signal) => {
      log.info('shutdown', { reason: signal }, `${signal}: hanging up and unregistering…`);
      abort.abort();
    },
    now: () => rmSync(work, { recursive: true, force: true }),
    forced: 'exiting without unregistering',
  });
  try {
    const limits: SmokeLimits = {
      maxLatencyMs: flags.maxLatencyMs,
      maxLossPercent: flags.maxLossPercent,
      maxJitterMs: flags.maxJitterMs,
      toneToleranceMs: flags.toneToleranceMs,
    };
    const result = await runSmoke({
      caller: p.caller,
      callee: p.callee,
      target: p.target,
      recordDir: work,
      limits,
      timeoutMs: flags.timeout * 1000,
      signal: abort.signal,
      phone: {
        rtpPorts: p.rtpPorts,
        ...(flags.mediaIp !== undefined && { mediaIp: flags.mediaIp }),
        ...(flags.tlsInsecure && { tlsInsecure: true }),
        ...(p.codecs && { codecs: p.codecs }),
        ...(p.srtp && { srtp: p.srtp }),
      },
      onPhone: (side, phone) => {
        const info = side === 'caller' ? p.caller : p.callee;
        wireEvents(phone, log, info.username, info.domain);
      },
      onStep: (step) => logStep(log, step),
    });
    const files = writeOutputs(flags, p, result, work);
    printResult(flags, results, result, files);
    return result.summary.ok ? ExitCode.OK : ExitCode.FAILURE;
  } finally {
    offSignals();
    rmSync(work, { recursive: true, force: true });
  }
}

function logStep(log: Logger, s: SmokeStep): void {
  const text: Record<SmokeStep['step'], string> = {
    registering: 'registering both devices…',
    dialing: `dialing ${s.step === 'dialing' ? s.target : ''}…`,
    exchanging: `answered (${s.step === 'exchanging' ? (s.codec ?? '?') : ''}); playing tones and DTMF both ways…`,
    'hanging-up': 'hanging up…',
    analysing: 'analysing the recordings…',
  };
  log.info('smoke.step', { ...s }, text[s.step]);
}

interface Outputs {
  junit: string | undefined;
  report: string | undefined;
  recordings: { caller: string | undefined; callee: string | undefined } | undefined;
}

/** JUnit, the kept recordings and the report; a file that cannot be written is a failure, reported. */
function writeOutputs(flags: SmokeFlags, p: Prepared, result: SmokeResult, work: string): Outputs {
  const out: Outputs = { junit: undefined, report: undefined, recordings: undefined };
  const wavs = {
    caller: result.sides.caller.wav,
    callee: result.sides.callee.wav,
  };
  if (flags.junit !== undefined) {
    writeFileSync(
      flags.junit,
      toJUnit({
        suite: SUITE,
        checks: result.checks,
        startedAt: result.startedAt,
        durationMs: result.durationMs,
        properties: {
          caller: `${p.caller.username}@${p.caller.domain}`,
          callee: `${p.callee.username}@${p.callee.domain}`,
          target: result.target,
          codec: result.codec,
        },
      }),
    );
    out.junit = flags.junit;
  }
  if (flags.keepRecordings !== undefined) {
    out.recordings = { caller: undefined, callee: undefined };
    for (const side of ['caller', 'callee'] as const) {
      const wav = wavs[side];
      if (!wav) continue;
      const dest = path.join(flags.keepRecordings, `${side}.wav`);
      copyFileSync(wav, dest);
      const sidecar = path.join(work, `${side}.json`);
      if (existsSync(sidecar)) copyFileSync(sidecar, path.join(flags.keepRecordings, `${side}.json`));
      out.recordings[side] = dest;
    }
  }
  if (flags.report !== undefined) {
    const recordings: ReportRecording[] = [];
    const missing: { side: 'caller' | 'callee'; why: string }[] = [];
    for (const side of ['callee', 'caller'] as const) {
      const s = result.sides[side];
      if (s.wav && s.samples && s.rate) {
        copyFileSync(s.wav, path.join(flags.report, `${side}.wav`));
        recordings.push({
          side,
          file: `${side}.wav`,
          samples: s.samples,
          rate: s.rate,
          pattern: s.pattern,
          matches: s.matches,
          heard: s.heard,
          dtmf: s.dtmf,
        });
      } else {
        missing.push({ side, why: s.end ? `the call ended ${s.end.reason} without a recording` : 'no call' });
      }
    }
    const index = path.join(flags.report, 'index.html');
    writeFileSync(
      index,
      renderReport({
        checks: result.checks,
        summary: result.summary,
        facts: {
          'caller (A)': `${p.caller.username}@${p.caller.domain}`,
          'callee (B)': `${p.callee.username}@${p.callee.domain}`,
          target: result.target,
          codec: result.codec,
        },
        startedAt: result.startedAt,
        durationMs: result.durationMs,
        recordings,
        missing,
      }),
    );
    out.report = index;
  }
  return out;
}

function printResult(flags: SmokeFlags, results: Logger, result: SmokeResult, files: Outputs): void {
  const { summary } = result;
  const failed = summary.failed.map((c) => c.name);
  if (flags.logFormat === 'json') {
    for (const c of result.checks) {
      const fields = {
        name: c.name,
        ok: c.status === 'pass',
        status: c.status,
        value: c.value,
        limit: c.limit,
        unit: c.unit,
        message: c.message,
      };
      if (c.status === 'fail') results.error('smoke.check', fields, c.message);
      else results.info('smoke.check', fields, c.message);
    }
  } else {
    process.stdout.write(`\n${results.scrubber.scrub(formatTable(result.checks))}\n\n`);
  }
  const verdict = summary.ok
    ? `PASS: ${summary.passed} checks passed${summary.skipped ? `, ${summary.skipped} skipped` : ''}`
    : `FAIL: ${failed.length} of ${result.checks.length} checks failed: ${summary.failed.map(describeFailure).join('; ')}`;
  const where = [
    files.junit && `JUnit: ${files.junit}`,
    files.report && `report: ${files.report}`,
    files.recordings &&
      `recordings: ${[files.recordings.caller, files.recordings.callee].filter(Boolean).join(', ')}`,
  ].filter(Boolean);
  const fields = {
    ok: summary.ok,
    passed: summary.passed,
    failed,
    skipped: summary.skipped,
    target: result.target,
    codec: result.codec ?? null,
    durationMs: result.durationMs,
    junit: files.junit ?? null,
    report: files.report ?? null,
    recordings: files.recordings ?? null,
  };
  const text = `${verdict}${where.length ? ` (${where.join('; ')})` : ''}`;
  if (summary.ok) results.info('smoke.result', fields, text);
  else results.error('smoke.result', fields, text);
}

function describeFailure(c: Check): string {
  const limit = formatLimit(c);
  return `${c.name} (${c.message}${limit && c.value !== null ? `; limit ${limit}` : ''})`;
}
