/**
 * What SRTP and Opus cost one bot process, against plain PCMU, in one run:
 * N concurrent recorded calls (default 200, `seconds` each, all streaming at
 * once for most of it) per scenario — pcmu, pcmu-srtp, opus, opus-srtp (see
 * bench/codec-scenarios.ts) — with the scenarios run in a mirrored order
 * (A B C D D C B A for two rounds) so that drifting machine load hits them
 * alike; per scenario the median over its rounds.
 *
 *   npm run bench -- codec-capacity [--calls 200] [--seconds 20] [--rate 50]
 *                    [--scenarios pcmu,opus] [--rounds 2] [--no-media-path] [--keep] [--json FILE]
 *   (or, after npm run build: node --import tsx bench/codec-capacity.ts [the same flags])
 *
 * Each phase (one scenario, one round) runs two fresh processes:
 *  - the bot: the CLI as users run it (`rc-softphone listen` from dist/,
 *    its defaults: codecs opus,PCMU,PCMA; plus `--srtp optional`, so the
 *    caller's offer decides between SRTP and plain RTP), recording every call
 *    to WAV, registered over TCP at
 *  - the load generator (bench/codec-load.ts): a LocalPbx that places the
 *    calls to the bot with the scenario's offer and streams real speech
 *    into each (goforward.raw from pocketsphinx-testdata, encoded once per
 *    codec here), 20 ms packets on the monotonic clock, SRTP-protected per
 *    packet. Its CPU is not the bot's; its lateness is measured and reported.
 *
 * Measured, for the bot only:
 *  - CPU: utime + stime (all threads) from /proc/<pid>/stat, read when every
 *    call is streaming (the generator says so) and when the first stream
 *    ends, so the window holds no call setup or teardown; % of one core,
 *    and per call (÷ N). Peak over 1 s samples, RSS (VmRSS/VmHWM).
 *  - Event-loop delay over the same window: perf_hooks.monitorEventLoopDelay
 *    (5 ms resolution, less those 5 ms) in a preloaded module that SIGUSR2
 *    starts and, the second time, writes out (no change to the bot).
 *  - Frames lost: the bot's own per-call stats from its `call.ended` log
 *    lines (lost, late, Opus plcMs and fecMs, srtpAuthFailed), received
 *    against what the generator sent, and every WAV: its length against the
 *    call's duration, and its samples against the expected recording (PCMU:
 *    the ITU decoding of the µ-law sent; Opus: a fresh decoder's output for
 *    the packets sent, which libopus reproduces bit for bit when no packet
 *    is lost), 'exact', 'gaps' (silence inserted where a late stream was
 *    re-placed) or 'broken'.
 *  - The generator's lateness (each packet's send time against its slot).
 *    A packet later than the recording's bound (1 s less a frame) is the
 *    generator's fault: the phase's loss figure is then marked invalid.
 *
 * Also, in the same run and before the load (in this process, nothing else
 * of ours running): bench/media-path.ts's per-packet cost of the receive
 * path, plain and behind SRTP unprotect, which explains the CPU figures.
 *
 * The bot from dist/ must be as new as src/: `npm run bench` builds first;
 * run standalone, it refuses a dist/ older than src/ (so the figures are
 * always those of the src/rtp/srtp.ts in the tree).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FRAME_MS } from '../src/media/frame.js';
import { loadOpus } from '../src/media/opus.js';
import { align, segmentCorrelation } from '../test/helpers/correlate.js';
import { freeUdpPortRange } from '../test/helpers/ports.js';
import { readWav } from '../test/helpers/wav.js';
import { type EventLoopFigures, percentile, readProc, round1, round3, stopChild } from './capacity.js';
import type { LatenessFigures, LoadCallLine, LoadConfig } from './codec-load.js';
import {
  type BenchCodec,
  type CodecStream,
  codecOfScenario,
  encodeStream,
  isScenario,
  loopSpeech,
  packPayloads,
  readSpeech,
  SCENARIOS,
  type Scenario,
  verifyRecording,
  WIRE,
} from './codec-scenarios.js';
import { benchMediaPath, type SrtpFigures } from './media-path.js';
import { Waiter } from './waiter.js';

export interface CodecCapacityOptions {
  /** Concurrent calls per phase. Default 200. */
  calls?: number;
  /** Length of each call, answer to BYE. Default 20. */
  seconds?: number;
  /** New calls per second. Default 50 (200 calls all streaming after ~4 s). */
  rate?: number;
  /** Default all four, in this order. */
  scenarios?: Scenario[];
  /** Times each scenario runs; odd rounds run the scenarios in reverse. Default 2. */
  rounds?: number;
  /** Measure bench/media-path's per-packet figures first. Default true. */
  mediaPath?: boolean;
  /** Keep the work directory (recordings, logs) and report its path. Default false. */
  keepFiles?: boolean;
  /** Where to write the JSON result. Default: a file in the OS temp directory. */
  jsonFile?: string;
}

export interface PhaseFigures {
  scenario: Scenario;
  round: number;
  calls: number;
  /** Calls the bot answered, and ended. */
  answered: number;
  ended: number;
  /** Calls the generator could not place or finish (error text of the first). */
  failed: number;
  firstError?: string;
  /** The window with every call streaming: from the last stream's first packet to the first stream's last. */
  windowSeconds: number;
  cpu: {
    /** Bot CPU over the window, % of one core. */
    allUpPercent: number;
    /** allUpPercent / calls. */
    perCallPercent: number;
    /** (allUpPercent − idlePercent) / calls: without what the registered bot costs with no call. */
    perCallNetPercent: number;
    /** Busiest 1 s sample of the phase. */
    peakPercent: number;
    /** Registered, no calls. */
    idlePercent: number;
  };
  rss: { idleMb: number; peakMb: number };
  eventLoopDelayMs?: EventLoopFigures;
  frames: {
    sent: number;
    received: number;
    lost: number;
    late: number;
    resync: number;
    /** Opus: ms concealed (PLC) and rebuilt from FEC, summed over the calls. */
    plcMs: number;
    fecMs: number;
    srtpAuthFailed: number;
    srtpReplayed: number;
    /** The bot's own RTP reaching the generator (its silence, and RTCP on the same port). */
    botPackets: number;
    /**
     * RTP the bot sent (its stats' packetsSent) against one per 20 ms of each
     * call: its send path skips ahead after an event-loop stall (sendCatchUpMs),
     * so a shortfall is audio the far end never got. (About 2 % short on an
     * idle machine: sending starts a little after the answer and ends at the BYE.)
     */
    botSent: number;
    botSentExpected: number;
  };
  recordings: {
    /** WAVs with final header sizes at the codec's rate. */
    valid: number;
    exact: number;
    withGaps: number;
    broken: number;
    /** Length off the call's duration by more than a frame. */
    lengthMismatches: number;
    maxLengthErrorMs: number;
  };
  generator: {
    cpuPercent: number;
    lateness: LatenessFigures;
    eventLoopDelayMs?: { p99: number; max: number };
    setupMs: { p50: number; p99: number; max: number };
  };
  /** False when the generator was late beyond the recording's bound: then frames lost may be its fault. */
  lossFigureValid: boolean;
  /**
   * False when the bot sent under 95 % of its frames: it fell behind (event-loop
   * stalls, typically a CPU-starved process on a busy machine) and skipped work,
   * so its CPU figure is a lower bound of what the load needs.
   */
  botKeptUp: boolean;
  /** 1-minute load average at the phase's start and end. */
  loadAverage: [number, number];
  /**
   * Share of the window in which some runnable task waited for a CPU (Linux
   * PSI "some"): how contended the machine was while the bot was measured.
   */
  cpuPressurePercent?: number;
  wallSeconds: number;
}

export interface ScenarioSummary {
  scenario: Scenario;
  phases: number;
  /** Medians over the scenario's phases. */
  cpuPercent: number;
  perCallPercent: number;
  /** (cpu / PCMU's cpu − 1) × 100, medians; absent without a pcmu phase. */
  addedVsPcmuPercent?: number;
  eventLoopP99Ms: number;
  peakRssMb: number;
  /**
   * Over all its phases, frames missing from the recordings: sent but never
   * received (RFC 3550 loss, and a stream's tail still unread when the BYE
   * was handled) plus received too late to be placed.
   */
  framesLost: number;
  framesSent: number;
  framesReceived: number;
  plcMs: number;
  srtpAuthFailed: number;
  wavsOk: number;
  wavs: number;
  /** RTP the bot sent against one per 20 ms of its calls, % (its send path skips ahead after stalls). */
  botSentPercent: number;
  /** Median of the phases' CPU pressure (PSI "some", % of the window). */
  cpuPressurePercent?: number;
  /** The load generator's CPU (median) and its worst lateness over the phases. */
  generatorCpuPercent: number;
  generatorLateP99Ms: number;
  generatorLateMaxMs: number;
  lossFigureValid: boolean;
  /** The bot kept up in every phase (see PhaseFigures.botKeptUp). */
  botKeptUp: boolean;
}

export interface CodecCapacityFigures {
  calls: number;
  seconds: number;
  rate: number;
  framesPerCall: number;
  order: Scenario[];
  phases: PhaseFigures[];
  scenarios: ScenarioSummary[];
  verdicts: {
    /** What SRTP adds to the bot's CPU per call, per codec, against the same codec in plain RTP (target < 25 %). */
    srtpAddedPercent: {
      PCMU?: number;
      opus?: number;
      targetPercent: number;
      pass?: boolean;
      /** The bot kept up in every phase compared; when not, an SRTP phase may show less than SRTP costs. */
      botKeptUp?: boolean;
    };
    /** Opus at N calls: frames lost (target 0) and CPU; `atTarget` when N ≥ 200. */
    opus?: {
      calls: number;
      framesLost: number;
      plcMs: number;
      cpuPercent: number;
      pass: boolean;
      atTarget: boolean;
      /** False when the generator was late beyond the recording bound in an Opus phase: loss not the bot's to judge. */
      lossFigureValid: boolean;
    };
  };
  /** bench/media-path.ts, the same run: receive path per packet, plain and behind SRTP. */
  mediaPath?: { plainNsPerPacket: number; srtp: SrtpFigures[] };
  /**
   * The Opus stream every call sends, decoded (what each of its WAVs must
   * hold bit for bit) against the speech it encodes: median normalized
   * correlation of 200 ms segments over the first 5 s. That the recordings
   * are speech, not merely what some decoder made of the packets.
   */
  opusSpeechCorrelation?: number;
  machine: { cpus: number; model: string };
  loadAverage: { start: number[]; end: number[] };
  wallSeconds: number;
  jsonFile: string;
  workDir?: string;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'rc-softphone.js');
const LOAD = path.join(ROOT, 'bench', 'codec-load.ts');
const INSTANCE_ID = 'urn:uuid:5c3a9e1f-7d2b-4a6c-8e0f-1b2c3d4e5f60';
const USER = { username: '16505550177', authorizationId: '802177', password: 'codec-capacity-secret' };
const DOMAIN = 'codec-capacity.rc-softphone.test';
/** Quiet time after each stream before the BYE. */
const TAIL_MS = 1000;
const CLK_TCK = 100; // USER_HZ, the unit of /proc/<pid>/stat times
/** The share of its frames a bot that keeps up sends (about 98 % on an idle machine: see botSent). */
const KEPT_UP = 0.95;

/**
 * Preloaded into the bot: the event-loop delay. The first SIGUSR2 starts
 * the measurement, the second writes it to RCSP_BENCH_ELD_FILE.
 */
const ELD_PRELOAD = `
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
const histogram = monitorEventLoopDelay({ resolution: 5 });
let gc = [];
let measuring = false;
new PerformanceObserver((list) => {
  if (measuring) for (const e of list.getEntries()) gc.push(e.duration);
}).observe({ entryTypes: ['gc'] });
process.on('SIGUSR2', () => {
  if (!measuring) {
    measuring = true;
    gc = [];
    histogram.reset();
    histogram.enable();
    return;
  }
  measuring = false;
  histogram.disable();
  // The histogram holds whole timer periods: the delay is what exceeds the 5 ms resolution.
  const ms = (ns) => Math.max(0, Math.round(ns / 1e3 - 5000) / 1e3);
  const round = (x) => Math.round(x * 1000) / 1000;
  gc.sort((a, b) => a - b);
  writeFileSync(process.env.RCSP_BENCH_ELD_FILE, JSON.stringify({
    p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)),
    max: ms(histogram.max), mean: ms(histogram.mean),
    gcPauses: gc.length, gcMaxMs: round(gc[gc.length - 1] ?? 0),
    gcTotalMs: round(gc.reduce((a, b) => a + b, 0)),
  }));
});
`;

// ---------------------------------------------------------------------------
// small helpers

/** Children still running, killed when this process exits whatever the way (and the work directory removed). */
const children = new Set<ChildProcess>();
let workToRemove: string | undefined;
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of children) c.kill('SIGKILL');
    if (workToRemove !== undefined) rmSync(workToRemove, { recursive: true, force: true });
  });
}
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  installExitHook();
  return child;
}

function median(values: readonly number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

const epoch = () => performance.timeOrigin + performance.now();

/** JSON lines from a child's stdout, to `onLine`; other text is kept for the error message. */
function readLines(
  child: ChildProcess,
  onLine: (line: Record<string, unknown>) => void,
): { text: () => string } {
  let partial = '';
  let other = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const text of lines) {
      if (text.trim() === '') continue;
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        other = (other + text + '\n').slice(-8192);
        continue;
      }
      onLine(line);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    other = (other + chunk.toString('utf8')).slice(-8192);
  });
  return { text: () => other };
}

/** The first src/ file newer than its dist/ build, if any (the bot runs from dist/). */
function staleBuild(): string | undefined {
  const walk = (dir: string): string | undefined => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        const found = walk(file);
        if (found) return found;
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const built = path
          .join(ROOT, 'dist', path.relative(path.join(ROOT, 'src'), file))
          .replace(/\.ts$/, '.js');
        if (!existsSync(built) || statSync(built).mtimeMs < statSync(file).mtimeMs)
          return path.relative(ROOT, file);
      }
    }
    return undefined;
  };
  return walk(path.join(ROOT, 'src'));
}

// ---------------------------------------------------------------------------
// one phase

interface BotLine {
  event?: string;
  callId?: string;
  durationMs?: number;
  wav?: string | null;
  stats?: Record<string, number> | null;
  [key: string]: unknown;
}

interface Sample {
  at: number;
  /** CPU ticks of the bot and of the generator. */
  bot: number;
  gen: number;
  rssKb: number;
  /** /proc/pressure/cpu "some" total, µs (NaN where the kernel has no PSI). */
  psiUs: number;
}

/** Time some runnable task waited for a CPU, µs since boot (Linux PSI, /proc/pressure/cpu). */
function cpuPressureUs(): number {
  try {
    const m = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

async function runPhase(
  scenario: Scenario,
  round: number,
  stream: CodecStream,
  payloadFile: string,
  dir: string,
  o: { calls: number; seconds: number; rate: number; frames: number },
): Promise<PhaseFigures> {
  const started = performance.now();
  const loadAtStart = os.loadavg()[0]!;
  const codec = codecOfScenario(scenario);
  const recordDir = path.join(dir, 'recordings');
  mkdirSync(recordDir, { recursive: true });
  const eldFile = path.join(dir, 'event-loop-delay.json');
  const preload = path.join(dir, 'event-loop-delay.mjs');
  writeFileSync(preload, ELD_PRELOAD);
  const cleanup: (() => Promise<void>)[] = [];
  const waiter = new Waiter();
  try {
    // The generator (and its PBX) first: the bot needs its address.
    const config: LoadConfig = {
      scenario,
      calls: o.calls,
      rate: o.rate,
      frames: o.frames,
      tailMs: TAIL_MS,
      payloadFile,
      user: USER,
      domain: DOMAIN,
    };
    const gen = track(
      spawn(process.execPath, ['--import', 'tsx', LOAD, JSON.stringify(config)], {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
    cleanup.push(() => stopChild(gen, 'SIGKILL', 5000));
    let pbx: { host: string; port: number } | undefined;
    let pbxRegistered = false;
    let allStreaming: number | undefined;
    let genDone: { lateness: LatenessFigures; eventLoopDelayMs?: { p99: number; max: number } } | undefined;
    const genCalls: LoadCallLine[] = [];
    const samples: Sample[] = [];
    let hwmKb = 0;
    let botPid = 0;
    const sample = () => {
      const b = readProc(botPid);
      const g = gen.pid === undefined ? undefined : readProc(gen.pid);
      if (!b || !g) return;
      samples.push({ at: epoch(), bot: b.ticks, gen: g.ticks, rssKb: b.rssKb, psiUs: cpuPressureUs() });
      hwmKb = Math.max(hwmKb, b.hwmKb);
    };
    const windowSamples: [Sample | undefined, Sample | undefined] = [undefined, undefined];
    let bot: ChildProcess | undefined;
    const genOut = readLines(gen, (line) => {
      switch (line.event) {
        case 'listening':
          pbx = { host: String(line.host), port: Number(line.port) };
          break;
        case 'registered':
          pbxRegistered = true;
          break;
        case 'allStreaming':
          allStreaming = Number(line.at);
          sample();
          windowSamples[0] = samples.at(-1);
          bot?.kill('SIGUSR2'); // event-loop delay: start
          break;
        case 'firstStreamEnded':
          if (allStreaming !== undefined) {
            sample();
            windowSamples[1] = samples.at(-1);
            bot?.kill('SIGUSR2'); // event-loop delay: write
          }
          break;
        case 'call':
          genCalls.push(line as unknown as LoadCallLine);
          break;
        case 'done':
          genDone = line as unknown as typeof genDone;
          break;
      }
      waiter.poke();
    });
    gen.once('exit', (code, signal) =>
      waiter.abort(new Error(`the load generator exited (${signal ?? code}): ${genOut.text()}`)),
    );
    await waiter.until(() => pbx !== undefined, 60_000, 'load generator listening');

    // The bot: the CLI from dist/, in its own process.
    const portCount = Math.min(1000, o.calls + 20);
    const rtpMin = await freeUdpPortRange(portCount);
    const botLog: BotLine[] = [];
    let answered = 0;
    let ended = 0;
    bot = track(
      spawn(
        process.execPath,
        [
          '--import',
          pathToFileURL(preload).href,
          BIN,
          'listen',
          ...['--log-format', 'json', '--max-calls', String(o.calls + 10), '--srtp', 'optional'],
          ...['--rtp-ports', `${rtpMin}-${rtpMin + portCount - 1}`, '--record-dir', recordDir],
          ...['--media-ip', '127.0.0.1'],
        ],
        {
          cwd: dir, // no stray .env
          env: {
            ...process.env,
            RCSP_BENCH_ELD_FILE: eldFile,
            SIP_INFO_USERNAME: USER.username,
            SIP_INFO_PASSWORD: USER.password,
            SIP_INFO_AUTHORIZATION_ID: USER.authorizationId,
            SIP_INFO_DOMAIN: DOMAIN,
            SIP_INFO_OUTBOUND_PROXY: `${pbx!.host}:${pbx!.port}`,
            SIP_INFO_TRANSPORT: 'TCP',
            SIP_INFO_INSTANCE_ID: INSTANCE_ID,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    const theBot = bot;
    cleanup.push(() => stopChild(theBot, 'SIGKILL', 5000));
    if (bot.pid === undefined) throw new Error('could not start the bot');
    botPid = bot.pid;
    const botOut = readLines(bot, (line) => {
      const l = line as BotLine;
      botLog.push(l);
      if (l.event === 'call.answered') answered++;
      else if (l.event === 'call.ended') ended++;
      waiter.poke();
    });
    bot.once('exit', (code, signal) =>
      waiter.abort(new Error(`the bot exited (${signal ?? code}): ${botOut.text()}`)),
    );
    await waiter.until(
      () => pbxRegistered && botLog.some((l) => l.event === 'registered'),
      30_000,
      'bot registered at the PBX',
    );

    // A few idle seconds for the baseline, then the load.
    sample();
    const sampler = setInterval(sample, 1000);
    cleanup.push(async () => clearInterval(sampler));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    sample();
    const idle = samples.slice();
    gen.stdin!.write('go\n');
    const loadTimeoutMs = (o.calls / o.rate + o.seconds + 90) * 1000;
    await waiter.until(() => genDone !== undefined, loadTimeoutMs, 'every call placed and hung up');
    await waiter.until(() => ended >= answered, 30_000, 'every call ended at the bot');
    clearInterval(sampler);
    sample();
    // The bot's graceful stop (unregister at the PBX), then the generator's.
    bot.removeAllListeners('exit');
    gen.removeAllListeners('exit');
    await stopChild(bot, 'SIGTERM', 20_000);
    gen.stdin!.end();
    await stopChild(gen, 'SIGTERM', 5000);
    const loadAtEnd = os.loadavg()[0]!;

    // ---- figures ------------------------------------------------------------
    const [w0, w1] = windowSamples;
    const windowMs = w0 && w1 ? w1.at - w0.at : Number.NaN;
    const pct = (ticks: number, ms: number) => round1(((ticks / CLK_TCK) * 1000 * 100) / ms);
    const allUp = w0 && w1 ? pct(w1.bot - w0.bot, windowMs) : Number.NaN;
    const genCpu = w0 && w1 ? pct(w1.gen - w0.gen, windowMs) : Number.NaN;
    const pressure = w0 && w1 ? round1(((w1.psiUs - w0.psiUs) / 1000 / windowMs) * 100) : Number.NaN;
    let peak = 0;
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1]!;
      const b = samples[i]!;
      if (b.at - a.at >= 500) peak = Math.max(peak, pct(b.bot - a.bot, b.at - a.at));
    }
    const idleFirst = idle[0];
    const idleLast = idle.at(-1);
    const idlePercent =
      idleFirst && idleLast && idleLast.at > idleFirst.at
        ? pct(idleLast.bot - idleFirst.bot, idleLast.at - idleFirst.at)
        : Number.NaN;

    const sentByCall = new Map(genCalls.map((c) => [c.callId, c]));
    const frames = {
      sent: 0,
      received: 0,
      lost: 0,
      late: 0,
      resync: 0,
      plcMs: 0,
      fecMs: 0,
      srtpAuthFailed: 0,
      srtpReplayed: 0,
      botPackets: 0,
      botSent: 0,
      botSentExpected: 0,
    };
    for (const c of genCalls) {
      frames.sent += c.sent;
      frames.botPackets += c.botPackets;
    }
    const recordings = {
      valid: 0,
      exact: 0,
      withGaps: 0,
      broken: 0,
      lengthMismatches: 0,
      maxLengthErrorMs: 0,
    };
    const rate = WIRE[codec].sampleRate;
    for (const line of botLog) {
      if (line.event !== 'call.ended') continue;
      const s = line.stats ?? {};
      frames.received += s.received ?? 0;
      frames.lost += s.lost ?? 0;
      frames.late += s.late ?? 0;
      frames.resync += s.resync ?? 0;
      frames.plcMs += s.plcMs ?? 0;
      frames.fecMs += s.fecMs ?? 0;
      frames.srtpAuthFailed += s.srtpAuthFailed ?? 0;
      frames.srtpReplayed += s.srtpReplayed ?? 0;
      frames.botSent += s.packetsSent ?? 0;
      frames.botSentExpected += Math.floor((line.durationMs ?? 0) / FRAME_MS);
      if (!line.wav || !sentByCall.has(line.callId ?? '')) continue;
      let wav: ReturnType<typeof readWav>;
      try {
        wav = readWav(line.wav); // throws unless the header sizes are final
      } catch {
        continue;
      }
      if (wav.sampleRate !== rate || wav.channels !== 1) continue;
      recordings.valid++;
      const errorMs = Math.abs((wav.samples.length / rate) * 1000 - (line.durationMs ?? Number.NaN));
      recordings.maxLengthErrorMs = Math.max(
        recordings.maxLengthErrorMs,
        Number.isNaN(errorMs) ? Number.POSITIVE_INFINITY : round1(errorMs),
      );
      if (!(errorMs <= FRAME_MS + 1)) recordings.lengthMismatches++;
      const v = verifyRecording(wav.samples, stream.expected, WIRE[codec].frameSamples).verdict;
      if (v === 'exact') recordings.exact++;
      else if (v === 'gaps') recordings.withGaps++;
      else recordings.broken++;
    }
    const eld = existsSync(eldFile)
      ? (JSON.parse(readFileSync(eldFile, 'utf8')) as EventLoopFigures)
      : undefined;
    const setup = genCalls
      .map((c) => c.setupMs)
      .filter((v): v is number => v !== undefined)
      .sort((a, b) => a - b);
    const failedCalls = genCalls.filter((c) => !c.ok);
    const lateness = genDone!.lateness;
    const peakKb = Math.max(hwmKb, ...samples.map((x) => x.rssKb));
    return {
      scenario,
      round,
      calls: o.calls,
      answered,
      ended,
      failed: failedCalls.length,
      ...(failedCalls[0]?.error !== undefined && { firstError: failedCalls[0].error }),
      windowSeconds: round1(windowMs / 1000),
      cpu: {
        allUpPercent: allUp,
        perCallPercent: round3(allUp / o.calls),
        perCallNetPercent: round3((allUp - idlePercent) / o.calls),
        peakPercent: round1(peak),
        idlePercent,
      },
      rss: {
        idleMb: round1((idleLast?.rssKb ?? Number.NaN) / 1024),
        peakMb: round1(peakKb / 1024),
      },
      ...(eld && { eventLoopDelayMs: eld }),
      frames,
      recordings,
      generator: {
        cpuPercent: genCpu,
        lateness,
        ...(genDone!.eventLoopDelayMs && { eventLoopDelayMs: genDone!.eventLoopDelayMs }),
        setupMs: {
          p50: round3(percentile(setup, 50)),
          p99: round3(percentile(setup, 99)),
          max: round3(setup.at(-1) ?? Number.NaN),
        },
      },
      lossFigureValid: lateness.overBound === 0,
      botKeptUp: frames.botSent >= KEPT_UP * frames.botSentExpected,
      loadAverage: [loadAtStart, loadAtEnd],
      ...(!Number.isNaN(pressure) && { cpuPressurePercent: pressure }),
      wallSeconds: round1((performance.now() - started) / 1000),
    };
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// the run

export async function benchCodecCapacity(
  options: CodecCapacityOptions = {},
  log: (line: string) => void = () => {},
): Promise<CodecCapacityFigures> {
  const calls = options.calls ?? 200;
  const seconds = options.seconds ?? 20;
  const rate = options.rate ?? 50;
  const rounds = options.rounds ?? 2;
  const scenarios = options.scenarios ?? [...SCENARIOS];
  if (!Number.isInteger(calls) || calls < 1 || calls > 980)
    throw new RangeError(`--calls must be 1..980, got ${calls}`);
  if (!(seconds >= 5)) throw new RangeError(`--seconds must be ≥ 5, got ${seconds}`);
  if (!(rate > 0)) throw new RangeError(`--rate must be > 0, got ${rate}`);
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`--rounds must be ≥ 1, got ${rounds}`);
  if (scenarios.length === 0) throw new RangeError('no scenario');
  if (calls / rate > seconds - 3)
    throw new RangeError(
      `${calls} calls at ${rate}/s take ${calls / rate} s to place: longer than the ${seconds} s calls allow for a window with all of them up (raise --rate or --seconds)`,
    );
  if (!existsSync(BIN))
    throw new Error(`no ${path.relative(ROOT, BIN)}: run npm run build (npm run bench does)`);
  const stale = staleBuild();
  if (stale !== undefined)
    throw new Error(
      `dist/ is older than ${stale}: run npm run build first (npm run bench does), so the bot is the code in src/`,
    );

  const started = performance.now();
  const loadStart = os.loadavg();
  const work = mkdtempSync(path.join(os.tmpdir(), 'rcsp-codec-capacity-'));
  installExitHook();
  if (!options.keepFiles) workToRemove = work;
  const jsonFile =
    options.jsonFile ??
    path.join(
      os.tmpdir(),
      `rc-softphone-codec-capacity-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
    );
  try {
    // The audio, encoded once per codec: every call of a codec sends the same payloads.
    const framesPerCall = Math.floor((seconds * 1000 - TAIL_MS) / FRAME_MS);
    const speech = loopSpeech(readSpeech(), framesPerCall);
    await loadOpus();
    const streams = new Map<BenchCodec, { stream: CodecStream; file: string }>();
    for (const codec of new Set(scenarios.map(codecOfScenario))) {
      const stream = encodeStream(codec, speech);
      const file = path.join(work, `${codec}.payloads`);
      writeFileSync(file, packPayloads(stream.payloads));
      streams.set(codec, { stream, file });
    }
    let opusSpeechCorrelation: number | undefined;
    const opus = streams.get('opus')?.stream;
    if (opus) {
      const reference = speech.subarray(0, 5 * 16000);
      const found = align(reference, opus.expected.subarray(0, 6 * 16000), 16000);
      if (found)
        opusSpeechCorrelation = round3(segmentCorrelation(reference, opus.expected, 16000, found).median);
    }

    let mediaPath: CodecCapacityFigures['mediaPath'];
    if (options.mediaPath !== false) {
      const r = await benchMediaPath({ packets: 100_000, rounds: 5 });
      mediaPath = { plainNsPerPacket: r.nsPerPacket, srtp: r.srtp };
      log(`media path per packet (this process, before the load): plain PCMU ${r.nsPerPacket} ns`);
      for (const s of r.srtp)
        log(
          `  SRTP ${s.suite}: ${s.nsPerPacket} ns with unprotect (unprotect alone ${s.unprotectNsPerPacket} ns): +${s.addedPercent} %`,
        );
    }

    const order: Scenario[] = [];
    for (let r = 0; r < rounds; r++) order.push(...(r % 2 === 0 ? scenarios : [...scenarios].reverse()));
    const phases: PhaseFigures[] = [];
    for (let i = 0; i < order.length; i++) {
      const scenario = order[i]!;
      const round = Math.floor(i / scenarios.length);
      const { stream, file } = streams.get(codecOfScenario(scenario))!;
      const dir = path.join(work, `${String(i + 1).padStart(2, '0')}-${scenario}`);
      mkdirSync(dir);
      log(
        `phase ${i + 1}/${order.length}: ${scenario}, ${calls} calls × ${seconds} s (load average ${os.loadavg()[0]!.toFixed(2)})`,
      );
      const p = await runPhase(scenario, round, stream, file, dir, {
        calls,
        seconds,
        rate,
        frames: framesPerCall,
      });
      phases.push(p);
      log(`  ${phaseLine(p)}`);
      // The recordings are checked; keep the disk free unless asked.
      if (!options.keepFiles) rmSync(path.join(dir, 'recordings'), { recursive: true, force: true });
    }

    const summaries = summarize(scenarios, phases);
    const byName = new Map(summaries.map((s) => [s.scenario, s]));
    const added = (srtp: Scenario, plain: Scenario) => {
      const a = byName.get(srtp);
      const b = byName.get(plain);
      return a && b ? round1((a.cpuPercent / b.cpuPercent - 1) * 100) : undefined;
    };
    const srtpPcmu = added('pcmu-srtp', 'pcmu');
    const srtpOpus = added('opus-srtp', 'opus');
    const srtpValues = [srtpPcmu, srtpOpus].filter((v): v is number => v !== undefined);
    const opusSummaries = summaries.filter((s) => codecOfScenario(s.scenario) === 'opus');
    const opusPhases = phases.filter((p) => codecOfScenario(p.scenario) === 'opus');
    const opusLost = opusSummaries.reduce((n, s) => n + s.framesLost, 0);
    const opusPlc = opusSummaries.reduce((n, s) => n + s.plcMs, 0);
    const figures: CodecCapacityFigures = {
      calls,
      seconds,
      rate,
      framesPerCall,
      order,
      phases,
      scenarios: summaries,
      verdicts: {
        srtpAddedPercent: {
          ...(srtpPcmu !== undefined && { PCMU: srtpPcmu }),
          ...(srtpOpus !== undefined && { opus: srtpOpus }),
          targetPercent: 25,
          ...(srtpValues.length > 0 && {
            pass: srtpValues.every((v) => v < 25),
            botKeptUp: summaries.every((x) => x.botKeptUp),
          }),
        },
        ...(opusSummaries.length > 0 && {
          opus: {
            calls,
            framesLost: opusLost,
            plcMs: opusPlc,
            cpuPercent: byName.get('opus')?.cpuPercent ?? opusSummaries[0]!.cpuPercent,
            pass:
              opusLost === 0 &&
              opusPlc === 0 &&
              opusPhases.every(
                (p) =>
                  p.lossFigureValid &&
                  p.failed === 0 &&
                  p.recordings.exact === p.calls &&
                  p.answered === p.calls,
              ),
            atTarget: calls >= 200,
            lossFigureValid: opusPhases.every((p) => p.lossFigureValid),
          },
        }),
      },
      ...(mediaPath && { mediaPath }),
      ...(opusSpeechCorrelation !== undefined && { opusSpeechCorrelation }),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown' },
      loadAverage: { start: loadStart.map(round1), end: os.loadavg().map(round1) },
      wallSeconds: round1((performance.now() - started) / 1000),
      jsonFile,
      ...(options.keepFiles && { workDir: work }),
    };
    writeFileSync(jsonFile, `${JSON.stringify(figures, null, 2)}\n`);
    return figures;
  } finally {
    if (!options.keepFiles) rmSync(work, { recursive: true, force: true });
    workToRemove = undefined;
  }
}

function summarize(scenarios: readonly Scenario[], phases: readonly PhaseFigures[]): ScenarioSummary[] {
  const out: ScenarioSummary[] = [];
  for (const scenario of scenarios) {
    const ps = phases.filter((p) => p.scenario === scenario);
    if (ps.length === 0) continue;
    const sum = (f: (p: PhaseFigures) => number) => ps.reduce((n, p) => n + f(p), 0);
    out.push({
      scenario,
      phases: ps.length,
      cpuPercent: round1(median(ps.map((p) => p.cpu.allUpPercent))),
      perCallPercent: round3(median(ps.map((p) => p.cpu.perCallPercent))),
      eventLoopP99Ms: round3(median(ps.map((p) => p.eventLoopDelayMs?.p99 ?? Number.NaN))),
      peakRssMb: round1(median(ps.map((p) => p.rss.peakMb))),
      framesLost: sum((p) => Math.max(p.frames.lost, p.frames.sent - p.frames.received) + p.frames.late),
      framesSent: sum((p) => p.frames.sent),
      framesReceived: sum((p) => p.frames.received),
      plcMs: sum((p) => p.frames.plcMs),
      srtpAuthFailed: sum((p) => p.frames.srtpAuthFailed),
      wavsOk: sum((p) => p.recordings.exact),
      wavs: sum((p) => p.calls),
      botSentPercent: round1((sum((p) => p.frames.botSent) / sum((p) => p.frames.botSentExpected)) * 100),
      ...(ps.some((p) => p.cpuPressurePercent !== undefined) && {
        cpuPressurePercent: round1(median(ps.map((p) => p.cpuPressurePercent ?? Number.NaN))),
      }),
      generatorCpuPercent: round1(median(ps.map((p) => p.generator.cpuPercent))),
      generatorLateP99Ms: round3(Math.max(...ps.map((p) => p.generator.lateness.p99Ms))),
      generatorLateMaxMs: round3(Math.max(...ps.map((p) => p.generator.lateness.maxMs))),
      lossFigureValid: ps.every((p) => p.lossFigureValid),
      botKeptUp: ps.every((p) => p.botKeptUp),
    });
  }
  const pcmu = out.find((s) => s.scenario === 'pcmu');
  if (pcmu) for (const s of out) s.addedVsPcmuPercent = round1((s.cpuPercent / pcmu.cpuPercent - 1) * 100);
  return out;
}

function phaseLine(p: PhaseFigures): string {
  const eld = p.eventLoopDelayMs;
  return [
    `bot ${p.cpu.allUpPercent} % of a core over ${p.windowSeconds} s with all ${p.calls} up (${p.cpu.perCallPercent} % per call, peak ${p.cpu.peakPercent} %), RSS ${p.rss.peakMb} MB`,
    `event loop p99 ${eld?.p99 ?? '?'} ms, max ${eld?.max ?? '?'} ms`,
    `answered ${p.answered}/${p.calls}${p.failed > 0 ? `, ${p.failed} failed (${p.firstError})` : ''}`,
    `frames sent ${p.frames.sent}, received ${p.frames.received}, lost ${p.frames.lost}, late ${p.frames.late}, PLC ${p.frames.plcMs} ms, FEC ${p.frames.fecMs} ms, SRTP auth failed ${p.frames.srtpAuthFailed}`,
    `WAVs exact ${p.recordings.exact}, gaps ${p.recordings.withGaps}, broken ${p.recordings.broken}, length off ${p.recordings.lengthMismatches}`,
    `bot sent ${p.frames.botSent}/${p.frames.botSentExpected} frames${p.botKeptUp ? '' : ' (fell behind)'}`,
    `generator ${p.generator.cpuPercent} % of a core, late p50 ${p.generator.lateness.p50Ms} / p99 ${p.generator.lateness.p99Ms} / max ${p.generator.lateness.maxMs} ms${p.lossFigureValid ? '' : ' (beyond the recording bound: loss figures not the bot’s)'}, its event loop p99 ${p.generator.eventLoopDelayMs?.p99 ?? '?'} / max ${p.generator.eventLoopDelayMs?.max ?? '?'} ms`,
    `load ${p.loadAverage[0].toFixed(2)} → ${p.loadAverage[1].toFixed(2)}, CPU pressure ${p.cpuPressurePercent ?? '?'} %`,
  ].join('; ');
}

/** The report: a table per scenario and the two verdicts. */
export function printCodecCapacity(f: CodecCapacityFigures, log: (line: string) => void = console.log): void {
  log(
    `${f.calls} concurrent calls × ${f.seconds} s per phase (${f.framesPerCall} frames each, ${f.rate} calls/s), phases ${f.order.join(' ')}; medians per scenario:`,
  );
  const header = [
    'scenario',
    'CPU % core',
    'per call %',
    'vs PCMU',
    'frames lost',
    'PLC ms',
    'WAVs exact',
    'ELD p99 ms',
    'RSS MB',
    'bot sent %',
    'CPU wait %',
    'gen CPU %',
    'gen late p99/max ms',
  ];
  const rows = f.scenarios.map((s) => [
    s.scenario,
    `${s.cpuPercent}${s.botKeptUp ? '' : ' *'}`,
    String(s.perCallPercent),
    s.addedVsPcmuPercent === undefined || s.scenario === 'pcmu'
      ? '—'
      : `${s.addedVsPcmuPercent >= 0 ? '+' : ''}${s.addedVsPcmuPercent} %`,
    `${s.framesLost}/${s.framesSent}${s.lossFigureValid ? '' : ' (!)'}`,
    String(s.plcMs),
    `${s.wavsOk}/${s.wavs}`,
    String(s.eventLoopP99Ms),
    String(s.peakRssMb),
    String(s.botSentPercent),
    String(s.cpuPressurePercent ?? '?'),
    String(s.generatorCpuPercent),
    `${s.generatorLateP99Ms}/${s.generatorLateMaxMs}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) =>
    `  ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}`;
  log(fmt(header));
  for (const r of rows) log(fmt(r));
  if (f.scenarios.some((s) => !s.lossFigureValid))
    log(
      '  (!) the load generator sent packets later than the recording bound: those frames lost are not the bot’s',
    );
  const v = f.verdicts;
  const s = v.srtpAddedPercent;
  const pm = (x: number) => `${x >= 0 ? '+' : ''}${x} %`;
  if (s.PCMU !== undefined || s.opus !== undefined)
    log(
      `SRTP (AES_CM_128_HMAC_SHA1_80) adds to the bot's CPU at N=${f.calls}: ${[
        s.PCMU !== undefined ? `PCMU ${pm(s.PCMU)}` : '',
        s.opus !== undefined ? `Opus ${pm(s.opus)}` : '',
      ]
        .filter(Boolean)
        .join(
          ', ',
        )} (target < ${s.targetPercent} %): ${s.pass ? 'met' : 'NOT met'}${s.botKeptUp === false ? ' (the bot fell behind in a phase: see *)' : ''}`,
    );
  if (v.opus)
    log(
      `Opus at N=${v.opus.calls}${v.opus.atTarget ? '' : ' (the target is N=200)'}: frames lost ${v.opus.framesLost} (target 0), concealed ${v.opus.plcMs} ms, bot CPU ${v.opus.cpuPercent} % of a core: ${v.opus.pass ? 'met' : v.opus.lossFigureValid ? 'NOT met' : 'not measured (the load generator was late beyond the recording bound: see (!))'}`,
    );
  if (f.opusSpeechCorrelation !== undefined)
    log(
      `  (the Opus recordings are bit-exact copies of the stream's decoding, which matches the speech sent: median correlation of 200 ms segments ${f.opusSpeechCorrelation})`,
    );
  if (f.mediaPath) {
    log(`media path per packet, in-process (bench/media-path.ts): plain ${f.mediaPath.plainNsPerPacket} ns`);
    for (const m of f.mediaPath.srtp)
      log(
        `  SRTP ${m.suite}: ${m.nsPerPacket} ns (unprotect alone ${m.unprotectNsPerPacket} ns), ${pm(m.addedPercent)}`,
      );
  }
  log(
    `machine: ${f.machine.cpus} × ${f.machine.model}; load average ${f.loadAverage.start.join(' ')} → ${f.loadAverage.end.join(' ')}; ${f.wallSeconds} s; JSON: ${f.jsonFile}`,
  );
}

/** `--calls N --seconds S --rate R --scenarios a,b --rounds R --no-media-path --keep --json FILE`. */
export function parseCodecCapacityArgs(args: readonly string[]): CodecCapacityOptions {
  const value = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    if (i < 0) return undefined;
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) throw new RangeError(`${flag} needs a value`);
    return v;
  };
  const number = (flag: string) => {
    const v = value(flag);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new RangeError(`${flag} must be a number, got ${v}`);
    return n;
  };
  const options: CodecCapacityOptions = {};
  const calls = number('--calls');
  const seconds = number('--seconds');
  const rate = number('--rate');
  const rounds = number('--rounds');
  const list = value('--scenarios');
  const json = value('--json');
  if (calls !== undefined) options.calls = calls;
  if (seconds !== undefined) options.seconds = seconds;
  if (rate !== undefined) options.rate = rate;
  if (rounds !== undefined) options.rounds = rounds;
  if (json !== undefined) options.jsonFile = path.resolve(json);
  if (list !== undefined) {
    const names = list.split(',').map((s) => s.trim().toLowerCase());
    const bad = names.filter((n) => !isScenario(n));
    if (bad.length > 0)
      throw new RangeError(`unknown scenario ${bad.join(', ')} (known: ${SCENARIOS.join(', ')})`);
    options.scenarios = names as Scenario[];
  }
  if (args.includes('--no-media-path')) options.mediaPath = false;
  if (args.includes('--keep')) options.keepFiles = true;
  return options;
}

/** Flags that take a value (for bench/run.ts, to tell them from bench names). */
export const CODEC_CAPACITY_VALUE_FLAGS = [
  '--calls',
  '--seconds',
  '--rate',
  '--scenarios',
  '--rounds',
  '--json',
];

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(path.resolve(invokedPath)).href) {
  const options = parseCodecCapacityArgs(process.argv.slice(2));
  const stop = () => process.exit(130); // the exit hook kills the children
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const figures = await benchCodecCapacity(options, (line) => console.log(line));
  printCodecCapacity(figures);
}
