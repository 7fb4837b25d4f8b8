/**
 * Capacity of the bot-partner listener: SIPp as RingCX places N concurrent
 * calls (default 200) straight to `rc-softphone serve` (built, in its own
 * process), each streaming real speech for `seconds` (default 30), over UDP
 * and over TCP (SIPp's one connection for every call, as RingCX uses one),
 * and the bot records every one of them.
 *
 *   npm run build && node --import tsx bench/serve-capacity.ts [--calls 200] [--seconds 30] [--rate 20]
 *                                                              [--transport udp|tcp] [--keep]
 *
 * What is measured (as bench/capacity.ts does for `listen`, whose helpers it uses):
 *  - the bot's CPU and memory from /proc/<pid> (100 % = one core), sampled
 *    every second: idle, over the load, while every call is up, the busiest
 *    second; its event-loop delay (preloaded monitorEventLoopDelay);
 *  - frames lost: `stats.lost` and `late` over the bot's call.ended lines,
 *    and every WAV against the ITU decoding of the u-law SIPp sent: bit-exact,
 *    every packet present with silence inserted (a sender that stalled past
 *    the recording's 1 s bound: the bot says so with `resync`), or broken;
 *  - INVITE → 200 as SIPp measures it (response time 1, -trace_rtt: SIPp's
 *    send to its receive, on loopback).
 * Calls start at `rate` per second, so with the defaults every call is up at
 * once for ~20 s. Returns the figures (standalone: prints them as JSON).
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FRAME_MS } from '../src/media/frame.js';
import { freePort, freeUdpPortRange } from '../test/helpers/ports.js';
import { checkTools, toolPath } from '../test/helpers/tools.js';
import { readWav } from '../test/helpers/wav.js';
import { exited, PACKET_BYTES, prepareSpeech, RATE } from '../test/interop/kamailio/speech.js';
import {
  CLK_TCK,
  classify,
  ELD_PRELOAD,
  type LatencyFigures,
  latencyFigures,
  readProc,
  round1,
  stopChild,
} from './capacity.js';

export interface ServeCapacityOptions {
  calls?: number;
  seconds?: number;
  rate?: number;
  transport?: 'udp' | 'tcp';
  keepFiles?: boolean;
}

export interface ServeCapacityFigures {
  transport: 'udp' | 'tcp';
  calls: number;
  seconds: number;
  rate: number;
  speechLoops: number;
  sipp: { exitCode: number | null; successful: number; failed: number };
  bot: {
    answered: number;
    ended: number;
    endedByRemoteBye: number;
    rejected: number;
    warnings: number;
    peakConcurrent: number;
    exit: string;
  };
  recordings: { valid: number; bitExact: number; withGaps: number; broken: number; lengthMismatches: number };
  frames: { received: number; expected: number; lost: number; late: number; resyncs: number };
  cpu: { avgPercent: number; allUpAvgPercent: number; peakPercent: number; idlePercent: number };
  rss: { idleMb: number; peakMb: number };
  eventLoopDelayMs?: { p50: number; p99: number; max: number; mean: number };
  /** SIPp's INVITE → 200, ms. */
  inviteTo200: LatencyFigures;
  loadAverage: [number, number];
  wallSeconds: number;
  workDir?: string;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'rc-softphone.js');
const SCENARIO = path.join(ROOT, 'test', 'interop', 'serve', 'sipp', 'ringcx-load.xml');
const DID = '16505550100';
/** Quiet time left at the end of each call (rtp_stream starts up to ~100 ms late). */
const BYE_MARGIN_MS = 1000;

interface LogLine {
  event?: string;
  reason?: string;
  durationMs?: number;
  wav?: string | null;
  stats?: { received: number; lost: number; late: number; resync?: number } | null;
  addresses?: string[];
}

export async function benchServeCapacity(options: ServeCapacityOptions = {}): Promise<ServeCapacityFigures> {
  const calls = options.calls ?? 200;
  const seconds = options.seconds ?? 30;
  const rate = options.rate ?? 20;
  const transport = options.transport ?? 'udp';
  if (!Number.isInteger(calls) || calls < 1 || calls > 490)
    throw new RangeError(`calls must be 1-490, got ${calls}`);
  if (!(seconds >= 4)) throw new RangeError(`seconds must be ≥ 4, got ${seconds}`);
  const tools = checkTools(['sipp', 'sox']);
  if (!tools.ok) throw new Error(`serve capacity bench needs: ${tools.reason}`);
  if (!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('the bot runs from dist/: run `npm run build` first');
  }
  const started = performance.now();
  const loadAtStart = os.loadavg()[0] as number;
  const work = mkdtempSync(path.join(os.tmpdir(), 'rcsp-serve-capacity-'));
  const recordDir = path.join(work, 'recordings');
  mkdirSync(recordDir);
  const cleanup: (() => Promise<void>)[] = [];
  try {
    const speech = await prepareSpeech(work);
    const loops = Math.max(1, Math.floor((seconds * 1000 - BYE_MARGIN_MS) / speech.ms));
    const portCount = 2 * (calls + 10) + 20;
    const rtpMin = await freeUdpPortRange(portCount);
    const rtpMax = rtpMin + portCount - 1;
    const preload = path.join(work, 'event-loop-delay.mjs');
    writeFileSync(preload, ELD_PRELOAD);
    const eldFile = path.join(work, 'event-loop-delay.json');

    const log: LogLine[] = [];
    let active = 0;
    let peak = 0;
    let answered = 0;
    let ended = 0;
    let firstAllUp: number | undefined;
    let firstEnd: number | undefined;
    const waiters: (() => void)[] = [];
    const bot = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(preload).href,
        BIN,
        'serve',
        ...['--listen', `${transport}://127.0.0.1:0`, '--allow', '127.0.0.1', '--did', DID],
        ...['--record-dir', recordDir, '--rtp-ports', `${rtpMin}-${rtpMax}`, '--media-ip', '127.0.0.1'],
        ...['--max-calls', String(calls + 10), '--log-format', 'json'],
      ],
      { cwd: work, env: { ...process.env, RCSP_BENCH_ELD_FILE: eldFile }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    cleanup.push(() => stopChild(bot, 'SIGKILL', 5000));
    let partial = '';
    let botErr = '';
    bot.stdout?.setEncoding('utf8');
    bot.stdout?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const text of lines) {
        if (!text.startsWith('{')) continue;
        const line = JSON.parse(text) as LogLine;
        log.push(line);
        if (line.event === 'call.answered') {
          answered++;
          active++;
          peak = Math.max(peak, active);
          if (active === calls) firstAllUp ??= performance.now();
        } else if (line.event === 'call.ended') {
          ended++;
          active--;
          firstEnd ??= performance.now();
        }
      }
      for (const w of waiters.splice(0)) w();
    });
    bot.stderr?.on('data', (c: Buffer) => {
      botErr = (botErr + c.toString('utf8')).slice(-8192);
    });
    bot.once('exit', () => {
      for (const w of waiters.splice(0)) w();
    });
    const until = async (check: () => boolean, timeoutMs: number, what: string) => {
      const deadline = performance.now() + timeoutMs;
      while (!check()) {
        if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; ${botErr}`);
        if (bot.exitCode !== null) throw new Error(`the bot exited (${bot.exitCode}): ${botErr}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 1000);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    };
    await until(() => log.some((l) => l.event === 'serve.listening'), 30_000, 'serve listening');
    const url = log.find((l) => l.event === 'serve.listening')?.addresses?.[0] ?? '';
    const botPort = Number(url.split(':').pop());
    const pid = bot.pid as number;

    const samples: { at: number; ticks: number; rssKb: number }[] = [];
    let hwmKb = 0;
    const sample = () => {
      const p = readProc(pid);
      if (!p) return;
      samples.push({ at: performance.now(), ticks: p.ticks, rssKb: p.rssKb });
      hwmKb = Math.max(hwmKb, p.hwmKb);
    };
    sample();
    const sampler = setInterval(sample, 1000);
    cleanup.push(async () => clearInterval(sampler));
    await new Promise((resolve) => setTimeout(resolve, 3000));
    sample();
    const idle = samples.slice();

    let mediaPort: number;
    do mediaPort = await freeUdpPortRange(4);
    while (mediaPort + 3 >= rtpMin && mediaPort <= rtpMax);
    const sippDir = path.join(work, 'sipp');
    mkdirSync(sippDir);
    const sippArgs = [
      `127.0.0.1:${botPort}`,
      ...['-sf', SCENARIO, '-s', DID, '-key', 'speech', `${speech.file},${loops},0`],
      ...['-d', String(seconds * 1000)],
      ...['-i', '127.0.0.1', '-p', String(await freePort(transport)), '-mp', String(mediaPort)],
      ...['-t', transport === 'tcp' ? 't1' : 'u1', '-max_socket', '100'],
      ...['-m', String(calls), '-l', String(calls), '-r', String(rate), '-rp', '1000'],
      ...['-nostdin', '-timeout', `${Math.ceil(calls / rate + seconds + 120)}s`, '-timeout_error'],
      ...['-trace_err', '-error_file', path.join(sippDir, 'errors.log')],
      ...['-trace_stat', '-stf', path.join(sippDir, 'stat.csv')],
      ...['-trace_rtt', '-rtt_freq', '1'],
    ];
    bot.kill('SIGUSR2'); // event-loop delay from here on
    const loadStart = performance.now();
    const sipp = spawn(toolPath('sipp'), sippArgs, { cwd: sippDir, stdio: ['ignore', 'ignore', 'pipe'] });
    cleanup.push(() => stopChild(sipp, 'SIGKILL', 5000));
    await exited(sipp);
    await until(() => ended >= answered, 60_000, 'every call ended at the bot');
    const loadEnd = performance.now();
    sample();
    clearInterval(sampler);
    await stopChild(bot, 'SIGTERM', 20_000);
    const botExit = bot.signalCode !== null ? `signal ${bot.signalCode}` : `exit ${bot.exitCode}`;
    const loadAtEnd = os.loadavg()[0] as number;

    // ---- figures ------------------------------------------------------------
    const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
    const statLines = read(path.join(sippDir, 'stat.csv'))
      .split('\n')
      .filter((l) => l.trim() !== '');
    const header = (statLines[0] ?? '').split(';');
    const last = (statLines[statLines.length - 1] ?? '').split(';');
    const stat = (name: string) => Number(last[header.indexOf(name)] ?? Number.NaN);
    // -trace_rtt: a header, then one line per measure: "Date_ms;response_time_ms;rtd_no".
    const rttFile = readdirSync(sippDir).find((f) => f.endsWith('_rtt.csv'));
    const rtts = read(rttFile ? path.join(sippDir, rttFile) : '')
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split(';')[1]))
      .filter((n) => Number.isFinite(n));

    let valid = 0;
    let exact = 0;
    let withGaps = 0;
    let broken = 0;
    let lengthMismatches = 0;
    let received = 0;
    let lost = 0;
    let late = 0;
    let resyncs = 0;
    const endedLines = log.filter((l) => l.event === 'call.ended');
    for (const line of endedLines) {
      received += line.stats?.received ?? 0;
      lost += line.stats?.lost ?? 0;
      late += line.stats?.late ?? 0;
      resyncs += line.stats?.resync ?? 0;
      if (!line.wav) continue;
      let wav: ReturnType<typeof readWav>;
      try {
        wav = readWav(line.wav);
      } catch {
        continue;
      }
      valid++;
      const errorMs = Math.abs((wav.samples.length / RATE) * 1000 - (line.durationMs ?? Number.NaN));
      if (!(errorMs <= FRAME_MS + 1)) lengthMismatches++;
      const verdict = classify(wav.samples, speech.pcm, loops);
      if (verdict === 'exact') exact++;
      else if (verdict === 'gaps') withGaps++;
      else broken++;
    }
    const cpuBetween = (from: number, to: number) => {
      const inside = samples.filter((s) => s.at >= from && s.at <= to);
      const a = inside[0];
      const b = inside[inside.length - 1];
      if (!a || !b || b.at <= a.at) return Number.NaN;
      return round1((((b.ticks - a.ticks) / CLK_TCK) * 1000 * 100) / (b.at - a.at));
    };
    let peakPercent = 0;
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1] as (typeof samples)[number];
      const b = samples[i] as (typeof samples)[number];
      if (b.at - a.at < 500) continue;
      peakPercent = Math.max(peakPercent, (((b.ticks - a.ticks) / CLK_TCK) * 1000 * 100) / (b.at - a.at));
    }
    const eld = existsSync(eldFile)
      ? (JSON.parse(readFileSync(eldFile, 'utf8')) as ServeCapacityFigures['eventLoopDelayMs'])
      : undefined;
    const figures: ServeCapacityFigures = {
      transport,
      calls,
      seconds,
      rate,
      speechLoops: loops,
      sipp: {
        exitCode: sipp.exitCode,
        successful: stat('SuccessfulCall(C)'),
        failed: stat('FailedCall(C)'),
      },
      bot: {
        answered,
        ended,
        endedByRemoteBye: endedLines.filter((l) => l.reason === 'remote-bye').length,
        rejected: log.filter((l) => l.event === 'call.rejected').length,
        warnings: log.filter((l) => l.event === 'warning').length,
        peakConcurrent: peak,
        exit: botExit,
      },
      recordings: { valid, bitExact: exact, withGaps, broken, lengthMismatches },
      frames: { received, expected: calls * loops * (speech.pcm.length / PACKET_BYTES), lost, late, resyncs },
      cpu: {
        avgPercent: cpuBetween(loadStart, loadEnd),
        allUpAvgPercent:
          firstAllUp !== undefined && firstEnd !== undefined ? cpuBetween(firstAllUp, firstEnd) : Number.NaN,
        peakPercent: round1(peakPercent),
        idlePercent: cpuBetween(idle[0]?.at ?? 0, idle[idle.length - 1]?.at ?? 0),
      },
      rss: {
        idleMb: round1((idle[idle.length - 1]?.rssKb ?? Number.NaN) / 1024),
        peakMb: round1(hwmKb / 1024),
      },
      ...(eld && { eventLoopDelayMs: eld }),
      inviteTo200: latencyFigures(rtts),
      loadAverage: [round1(loadAtStart), round1(loadAtEnd)],
      wallSeconds: round1((performance.now() - started) / 1000),
      ...(options.keepFiles && { workDir: work }),
    };
    return figures;
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    if (!options.keepFiles) rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    options: {
      calls: { type: 'string' },
      seconds: { type: 'string' },
      rate: { type: 'string' },
      transport: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
  });
  const figures = await benchServeCapacity({
    ...(values.calls !== undefined && { calls: Number(values.calls) }),
    ...(values.seconds !== undefined && { seconds: Number(values.seconds) }),
    ...(values.rate !== undefined && { rate: Number(values.rate) }),
    ...(values.transport !== undefined && { transport: values.transport as 'udp' | 'tcp' }),
    keepFiles: values.keep,
  });
  console.log(JSON.stringify(figures, null, 2));
}
