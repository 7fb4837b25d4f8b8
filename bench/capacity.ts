/**
 * Capacity of the bot: SIPp places N concurrent calls (default 200) through
 * Kamailio to the CLI bot (`rc-softphone listen`, built, in its own
 * process), each streaming real speech for `seconds` (default 30), and the
 * bot records every one of them. With `--processes N`, N bot processes, each
 * registering a device of its own, and SIPp calls the devices in turn.
 *
 *   npm run build && node --import tsx bench/capacity.ts [--calls 200] [--seconds 30] [--rate 20]
 *                              [--processes 1] [--no-wire-rtp] [--cpu-profile] [--keep]
 *
 * What is measured, and how:
 *  - CPU and memory of the bot alone: /proc/<pid>/stat (utime + stime, all
 *    threads) and /proc/<pid>/status (VmRSS, VmHWM), sampled every second.
 *    100 % = one core. Its event-loop delay comes from a preloaded
 *    perf_hooks.monitorEventLoopDelay (no change to the bot's code).
 *  - What shares the machine: SIPp, Kamailio (its process group), the
 *    bench's own captures (tshark, dumpcap) and the whole machine's busy
 *    time (/proc/stat: everyone's processes), over the same seconds.
 *  - INVITE → 200 latency on the wire: tshark captures the Kamailio ↔ bot
 *    TCP connection on lo (segment time, port, sequence number, payload);
 *    both byte streams are reframed afterwards (Content-Length framing) and
 *    each INVITE's arrival (the segment that completed it, Kamailio → bot)
 *    is paired with the bot's 100 and 200 for it (bot → Kamailio). That is
 *    the bot's own time: event-loop queueing, RTP port bind, WAV create, SDP
 *    answer; nothing of SIPp's or Kamailio's.
 *  - Loss: the sum of `stats.lost` (and `late`) over the bot's `call.ended`
 *    log lines, and every WAV checked: header sizes final, length equal to
 *    the call's duration within one 20 ms frame, and its samples against the
 *    ITU decoding of the u-law SIPp sent: bit-exact, or every packet present
 *    with silence inserted between packets, or broken.
 *  - Who is to blame for a WAV that is not bit-exact: SIPp's RTP, captured
 *    on the wire too (pcap stream, parsed here), gives each stream's
 *    lateness (arrival minus the timestamp distance, against the smallest
 *    such value before it). A stream the sender kept within ON_TIME_MS must be
 *    recorded bit-exact by the bot; a later one may have gaps (beyond the
 *    recording's 1 s bound the stream is re-placed by arrival).
 *
 * SIPp 3.6's rtp_stream plays the speech file (goforward.raw → 8 kHz u-law
 * with sox, padded to whole 160-byte packets) `loops` times, as many as fit
 * in the call with a second to spare, then the call stays quiet until SIPp's
 * BYE at `seconds`. Calls start at `rate` per second, so with the defaults
 * every call is up at once for ~20 s.
 *
 * Captures are proven live before the load (a probe datagram to a port
 * nobody listens on passes each capture filter and must show up) and proven
 * complete after it (another probe, captured after everything sent before it).
 *
 * Prints nothing; returns the figures (standalone, prints them as JSON).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
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
import { saveSipInfoFile } from '../src/config/sip-info.js';
import { FRAME_MS, RECORDING_DELAY_MS } from '../src/media/frame.js';
import { StreamFramer } from '../src/sip/transport/framer.js';
import { freePort, freeUdpPortRange } from '../test/helpers/ports.js';
import { checkTools, toolPath } from '../test/helpers/tools.js';
import { readWav } from '../test/helpers/wav.js';
import {
  DEFAULT_USER,
  type Kamailio,
  processGroupMembers,
  startKamailio,
} from '../test/interop/kamailio/harness.js';
import {
  classifyRecording as classify,
  exited,
  PACKET_BYTES,
  prepareSpeech,
  RATE,
  waitForStderr,
} from '../test/interop/kamailio/speech.js';
import { Waiter } from './waiter.js';

/** The recording check the benches share (speech.ts has it for the tests too). */
export { classify };

export interface CapacityOptions {
  /** Concurrent calls. Default 200. */
  calls?: number;
  /** Length of each call, from its ACK to SIPp's BYE. Default 30. */
  seconds?: number;
  /** New calls per second. Default 20 (so 200 calls are all up after 10 s). */
  rate?: number;
  /** Capture SIPp's RTP on the wire to tell sender stalls from bot faults. Default true. */
  wireRtp?: boolean;
  /** Run the bot with --cpu-prof and report its top functions by self time. Default false. */
  cpuProfile?: boolean;
  /** Keep the work directory (recordings, captures, logs, profile) and report its path. Default false. */
  keepFiles?: boolean;
  /**
   * Bot processes, each registering a device of its own (one Kamailio user
   * each); SIPp calls the devices in turn. Default 1.
   */
  processes?: number;
}

/** A bot's event-loop delay (ms) and its garbage-collection pauses, from a preloaded monitor. */
export interface EventLoopFigures {
  p50: number;
  p99: number;
  max: number;
  mean: number;
  /** Garbage-collection pauses during the load: count, longest, total. */
  gcPauses: number;
  gcMaxMs: number;
  gcTotalMs: number;
}

export interface EventLoopDelay extends EventLoopFigures {
  /** Of which full (mark-sweep-compact) collections. */
  gcMajorPauses: number;
  gcMajorMaxMs: number;
}

export interface Neighbours {
  sippPercent: number;
  kamailioPercent: number;
  capturePercent: number;
  /** Busy time of every CPU together (100 % = one core). */
  machinePercent: number;
}

export interface LatencyFigures {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface CapacityFigures {
  calls: number;
  seconds: number;
  rate: number;
  processes: number;
  /** Times the 2.8 s speech file plays in each call. */
  speechLoops: number;
  sipp: { exitCode: number | null; successful: number; failed: number };
  bot: {
    answered: number;
    ended: number;
    endedByRemoteBye: number;
    rejected: number;
    warnings: number;
    /** Most calls the bot had up at once (call.answered − call.ended), all processes together. */
    peakConcurrent: number;
    peakConcurrentPerProcess: number[];
    /** Workers the supervisor had to start again (--processes). */
    restarts: number;
    /** How the bot process ended after SIGTERM ("exit 0" = graceful). */
    exit: string;
  };
  recordings: {
    /** WAVs that exist with final header sizes. */
    valid: number;
    /** Every sent sample, contiguous, silence elsewhere. */
    bitExact: number;
    /** Every sent packet bit-exact and in order, with silence inserted between some. */
    withGaps: number;
    /** A sent packet missing or altered. */
    broken: number;
    /** WAVs whose length differs from the call's duration by more than one frame. */
    lengthMismatches: number;
    maxLengthErrorMs: number;
  };
  frames: { received: number; expected: number; lost: number; late: number; resyncs: number };
  /** SIPp's RTP as captured on lo (absent with wireRtp: false). */
  wire?: {
    streams: number;
    packets: number;
    /** Per-stream worst lateness against the first packet, over all streams. */
    latenessMs: { p50: number; p99: number; max: number };
    /** Streams later than ON_TIME_MS somewhere. */
    lateStreams: number;
    /** Not bit-exact although the sender kept the stream on time: the bot's doing. */
    notExactOnTime: number;
    /** Not bit-exact, and the sender was late: a sender stall beyond the recording's bound. */
    notExactLate: number;
    /** First RTP packet after the 200 OK (both on the wire), for the calls not bit-exact, ms. */
    notExactFirstPacketAfter200Ms: number[];
    /** The same for the bit-exact ones: p50 / max. */
    exactFirstPacketAfter200Ms: { p50: number; max: number };
  };
  /** The bot processes together, % of one core (utime + stime of every thread, from /proc). */
  cpu: {
    /** From the first INVITE to the last call's end. */
    avgPercent: number;
    /** While every call was up. */
    allUpAvgPercent: number;
    allUpPerProcessPercent: number[];
    /** Busiest one-second sample. */
    peakPercent: number;
    /** Registered and idle, before the first call. */
    idlePercent: number;
    /** CPU time per call per 20 ms frame while every call was up, µs (allUpAvgPercent / calls). */
    perCallUsPer20Ms: number;
    /** The supervisor of --processes alone (it passes the workers' output on). */
    supervisorAllUpPercent?: number;
    /**
     * Per process, while every call was up: how long its event loop was
     * ready to run but had no CPU, % of the time (the machine's contention:
     * event-loop delay and INVITE→200 include it).
     */
    allUpRunQueueWaitPercent: number[];
  };
  /** What shares the machine, while every call was up, % of one core: SIPp, Kamailio, the bench's tshark captures, and the whole machine (/proc/stat, every process of everyone). */
  neighbours: {
    /** While every call was up (media only). */
    allUp: Neighbours;
    /** From the first INVITE to the last call's end (call set-up and tear-down too). */
    load: Neighbours;
    machineCores: number;
  };
  rss: { idleMb: number; peakMb: number };
  /**
   * The bot's event-loop delay during the load (monitorEventLoopDelay at 5 ms,
   * less those 5 ms); with several processes, the worst process's figure of each.
   */
  eventLoopDelayMs?: EventLoopDelay;
  eventLoopDelayPerProcessMs?: (EventLoopDelay | undefined)[];
  inviteTo200: LatencyFigures;
  /** The five slowest INVITE→200, with the call's place in arrival order (1 = the first INVITE). */
  inviteTo200Slowest: { call: number; ms: number }[];
  inviteTo100: LatencyFigures;
  trying100To200: LatencyFigures;
  capture: { sipMessages: number };
  /** With cpuProfile: the bot's top functions by self time over the whole run. */
  profile?: { function: string; selfPercent: number }[];
  /** The machine's 1-minute load average at the start and the end. */
  loadAverage: [number, number];
  targets: { concurrentRecorded: boolean; zeroFramesLost: boolean; inviteTo200P99Under10Ms: boolean };
  wallSeconds: number;
  workDir?: string;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'rc-softphone.js');
const SCENARIO = path.join(ROOT, 'test', 'interop', 'kamailio', 'sipp', 'uac-speech.xml');
const INSTANCE_ID = 'urn:uuid:8c1d7f3e-2b4a-4e6c-9f0d-1a2b3c4d5e6f';
/** Quiet time left at the end of each call (rtp_stream starts up to ~100 ms late). */
const BYE_MARGIN_MS = 1000;
/** The recording's bound (MediaSession default) less a frame of margin: see calls.test.ts. */
const ON_TIME_MS = RECORDING_DELAY_MS - FRAME_MS;
export const CLK_TCK = 100; // USER_HZ: the unit of /proc/<pid>/stat times on every Linux ABI Node runs on

/** Preloaded into the bot: event-loop delay, reset on SIGUSR2 (load starts), written at exit. */
export const ELD_PRELOAD = `
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
const histogram = monitorEventLoopDelay({ resolution: 5 });
histogram.enable();
let gc = [];
let major = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gc.push(e.duration);
    // Mark-sweep-compact (NODE_PERFORMANCE_GC_MAJOR); the rest are scavenges and incremental steps.
    if (e.detail?.kind === 4) major.push(e.duration);
  }
}).observe({ entryTypes: ['gc'] });
process.on('SIGUSR2', () => {
  histogram.reset();
  gc = [];
  major = [];
});
process.on('exit', () => {
  histogram.disable();
  // The histogram holds whole timer periods: the delay is what exceeds the 5 ms resolution.
  const ms = (ns) => Math.max(0, Math.round(ns / 1e3 - 5000) / 1e3);
  gc.sort((a, b) => a - b);
  const round = (x) => Math.round(x * 1000) / 1000;
  // One file (RCSP_BENCH_ELD_FILE), or one per process in RCSP_BENCH_ELD_DIR (listen --processes).
  const file = process.env.RCSP_BENCH_ELD_FILE ?? \`\${process.env.RCSP_BENCH_ELD_DIR}/\${process.pid}.json\`;
  writeFileSync(file, JSON.stringify({
    p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)),
    max: ms(histogram.max), mean: ms(histogram.mean),
    gcPauses: gc.length, gcMaxMs: round(gc[gc.length - 1] ?? 0),
    gcTotalMs: round(gc.reduce((a, b) => a + b, 0)),
    gcMajorPauses: major.length, gcMajorMaxMs: round(Math.max(0, ...major)),
  }));
});
`;

// ---------------------------------------------------------------------------
// small helpers

/** Signals a child and waits for it; SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    exited(child),
    new Promise<number | null>((resolve) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(exited(child));
      }, graceMs);
    }),
  ]);
  clearTimeout(timer);
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

export function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

export function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

export function latencyFigures(values: number[]): LatencyFigures {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50Ms: round3(percentile(sorted, 50)),
    p99Ms: round3(percentile(sorted, 99)),
    maxMs: round3(sorted[sorted.length - 1] ?? Number.NaN),
    meanMs: round3(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
  };
}

// ---------------------------------------------------------------------------
// speech and recordings

// ---------------------------------------------------------------------------
// live captures

/**
 * tshark on lo, live. 'fields': one tab-separated line per packet (first
 * field must be udp.dstport, to recognise probes). 'pcap': a pcap stream,
 * parsed here (Ethernet/IPv4/UDP; `onPacket` gets time, ports and UDP payload).
 */
export class LiveCapture {
  readonly lines: string[] = [];
  readonly #child: ChildProcess;
  readonly #probePort: number;
  readonly #mode: 'fields' | 'pcap';
  readonly #onPacket: ((ms: number, srcPort: number, dstPort: number, payload: Buffer) => void) | undefined;
  #probesSeen = 0;
  #partial = '';
  #buffer: Buffer = Buffer.alloc(0);
  #headerDone = false;
  #nanos = false;
  #wake: (() => void)[] = [];
  log = '';

  constructor(
    args: string[],
    probePort: number,
    mode: 'fields' | 'pcap',
    onPacket?: (ms: number, srcPort: number, dstPort: number, payload: Buffer) => void,
  ) {
    this.#probePort = probePort;
    this.#mode = mode;
    this.#onPacket = onPacket;
    this.#child = spawn(toolPath('tshark'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child.stdout!.on('data', (chunk: Buffer) => {
      if (this.#mode === 'fields') this.#onText(chunk.toString('utf8'));
      else this.#onPcap(chunk);
      for (const wake of this.#wake.splice(0)) wake();
    });
    this.#child.stderr!.on('data', (chunk: Buffer) => {
      this.log = (this.log + chunk.toString('utf8')).slice(-8192);
    });
  }

  get child(): ChildProcess {
    return this.#child;
  }

  /** Resolves once a probe sent from now on has been captured. */
  async probe(socket: dgram.Socket): Promise<void> {
    const before = this.#probesSeen;
    const deadline = performance.now() + 30_000;
    while (this.#probesSeen === before) {
      if (performance.now() > deadline) throw new Error(`capture never showed a probe: ${this.log}`);
      if (this.#child.exitCode !== null) throw new Error(`tshark exited: ${this.log}`);
      socket.send('rcsp-probe', this.#probePort, '127.0.0.1');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  stop(): Promise<void> {
    return stopChild(this.#child, 'SIGINT', 20_000);
  }

  #onText(text: string): void {
    const lines = (this.#partial + text).split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') continue;
      if (line.split('\t')[0] === String(this.#probePort)) this.#probesSeen++;
      else this.lines.push(line);
    }
  }

  /** pcap stream: 24-byte global header, then 16-byte record headers + frames. */
  #onPcap(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    let at = 0;
    const buf = this.#buffer;
    if (!this.#headerDone) {
      if (buf.length < 24) return;
      const magic = buf.readUInt32LE(0);
      if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error(`unexpected pcap magic ${magic}`);
      this.#nanos = magic === 0xa1b23c4d;
      if (buf.readUInt32LE(20) !== 1) throw new Error('expected Ethernet framing on lo');
      this.#headerDone = true;
      at = 24;
    }
    while (buf.length - at >= 16) {
      const length = buf.readUInt32LE(at + 8);
      if (buf.length - at < 16 + length) break;
      const ms = buf.readUInt32LE(at) * 1000 + buf.readUInt32LE(at + 4) / (this.#nanos ? 1e6 : 1e3);
      const frame = buf.subarray(at + 16, at + 16 + length);
      at += 16 + length;
      if (frame.length < 42 || frame.readUInt16BE(12) !== 0x0800 || frame[23] !== 17) continue;
      const udp = 14 + (frame[14]! & 0x0f) * 4;
      const dstPort = frame.readUInt16BE(udp + 2);
      if (dstPort === this.#probePort) this.#probesSeen++;
      else this.#onPacket?.(ms, frame.readUInt16BE(udp), dstPort, frame.subarray(udp + 8));
    }
    this.#buffer = buf.subarray(at);
  }
}

/** One RTP stream on the wire; lateness is counted against the earliest packet before it (see calls.test.ts). */
interface WireStream {
  packets: number;
  firstArrivalMs: number;
  /** The smallest arrival − timestamp distance from the first packet so far, ms. */
  baselineMs: number;
  firstTimestamp: number;
  maxLateMs: number;
}

// ---------------------------------------------------------------------------
// SIP on the wire

interface WireTimes {
  invite: Map<string, number>;
  trying: Map<string, number>;
  ok: Map<string, number>;
  messages: number;
}

/**
 * Reframes both directions of every Kamailio ↔ bot TCP connection from the
 * captured segments (tab-separated: udp.dstport (empty), time, source port,
 * raw sequence number, payload hex, destination port) and stamps each
 * message with the time of the segment that completed it.
 */
function sipOnTheWire(lines: readonly string[], kamPort: number): WireTimes {
  const directions = new Map<string, { framer: StreamFramer; next: number | undefined }>();
  const times: WireTimes = { invite: new Map(), trying: new Map(), ok: new Map(), messages: 0 };
  for (const line of lines) {
    const [, epoch, srcPort, seqRaw, hex, dstPort] = line.split('\t');
    if (hex === undefined || hex === '' || srcPort === undefined) continue;
    const toBot = Number(srcPort) === kamPort;
    const key = `${srcPort}>${dstPort}`;
    let direction = directions.get(key);
    if (!direction) {
      direction = { framer: new StreamFramer({ maxBodyBytes: 1 << 20 }), next: undefined };
      directions.set(key, direction);
    }
    const payload = Buffer.from(hex.replace(/:/g, ''), 'hex');
    const seq = Number(seqRaw);
    let bytes: Uint8Array = payload;
    if (direction.next !== undefined) {
      // Skip what a retransmission repeats (sequence numbers are mod 2^32).
      const behind = (direction.next - seq) >>> 0;
      if (behind !== 0 && behind < 0x8000_0000) {
        if (behind >= payload.length) continue;
        bytes = payload.subarray(behind);
      }
    }
    direction.next = (seq + payload.length) >>> 0;
    const at = Number(epoch) * 1000;
    for (const event of direction.framer.push(bytes)) {
      if (event.type !== 'message') continue;
      times.messages++;
      const head = Buffer.from(event.bytes).toString('latin1', 0, Math.min(event.bytes.length, 4096));
      const startLine = head.slice(0, head.indexOf('\r\n'));
      const callId = /^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)/im.exec(head)?.[1];
      const cseqMethod = /^CSeq[ \t]*:[ \t]*\d+[ \t]+(\S+)/im.exec(head)?.[1];
      if (callId === undefined) continue;
      if (toBot && startLine.startsWith('INVITE ')) {
        if (!times.invite.has(callId)) times.invite.set(callId, at);
      } else if (!toBot && cseqMethod === 'INVITE') {
        const status = /^SIP\/2\.0 (\d{3}) /.exec(startLine)?.[1];
        if (status === '100' && !times.trying.has(callId)) times.trying.set(callId, at);
        if (status === '200' && !times.ok.has(callId)) times.ok.set(callId, at);
      }
    }
  }
  return times;
}

// ---------------------------------------------------------------------------
// the bot process

interface LogLine {
  event?: string;
  callId?: string;
  reason?: string;
  durationMs?: number;
  localMedia?: string | null;
  wav?: string | null;
  stats?: { received: number; lost: number; late: number; resync?: number } | null;
  [key: string]: unknown;
}

/** A process that runs calls: the one bot, or a worker of `listen --processes`. */
interface Bot {
  /** The latest pid (a worker that died is started again). */
  pid: number | undefined;
  pids: number[];
  active: number;
  peakActive: number;
}

interface CpuSample {
  at: number;
  /** Per bot process. */
  bots: number[];
  /** Per bot process: its main (event-loop) thread's time runnable but waiting for a CPU, ns. */
  botWaitNs: number[];
  /** The supervisor of `--processes` (0 with one process: it is the bot). */
  supervisor: number;
  rssKb: number;
  sipp: number;
  kamailio: number;
  capture: number;
  machine: { busy: number };
}

function sumTicks(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) sum += readProc(pid)?.ticks ?? 0;
  return sum;
}

/** Direct children of a process (tshark runs dumpcap), from /proc. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * Time the main thread of `pid` (the event loop) spent runnable but waiting
 * for a CPU, ns: /proc/<pid>/schedstat's second field. What other processes
 * take from the bot shows here, not in its CPU.
 */
function runQueueWaitNs(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** Busy ticks of the whole machine (every CPU: all but idle and iowait), from /proc/stat. */
function machineTicks(): { busy: number } {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
    return { busy: user + nice + system + irq + softirq + steal };
  } catch {
    return { busy: Number.NaN };
  }
}

/** The worst of several processes' event-loop figures, each on its own. */
function worstOf(elds: readonly EventLoopDelay[]): EventLoopDelay {
  const max = (key: keyof EventLoopDelay) => Math.max(...elds.map((e) => e[key]));
  return {
    p50: max('p50'),
    p99: max('p99'),
    max: max('max'),
    mean: max('mean'),
    gcPauses: max('gcPauses'),
    gcMaxMs: max('gcMaxMs'),
    gcTotalMs: max('gcTotalMs'),
    gcMajorPauses: max('gcMajorPauses'),
    gcMajorMaxMs: max('gcMajorMaxMs'),
  };
}

export function readProc(pid: number): { ticks: number; rssKb: number; hwmKb: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) " the fields start at 3 (state); utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { ticks, rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/** Top functions by self time from a V8 .cpuprofile. */
function summarizeProfile(file: string): { function: string; selfPercent: number }[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: {
      id: number;
      hitCount?: number;
      callFrame: { functionName: string; url: string; lineNumber: number };
    }[];
  };
  const self = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    total += hits;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url === '' ? '' : ` ${url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + hits);
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([name, hits]) => ({ function: name, selfPercent: round1((hits / Math.max(1, total)) * 100) }));
}

// ---------------------------------------------------------------------------

export async function benchCapacity(options: CapacityOptions = {}): Promise<CapacityFigures> {
  const calls = options.calls ?? 200;
  const seconds = options.seconds ?? 30;
  const rate = options.rate ?? 20;
  const processes = options.processes ?? 1;
  const wireRtp = options.wireRtp ?? true;
  if (!Number.isInteger(calls) || calls < 1) throw new RangeError(`bad calls ${calls}`);
  if (!(seconds >= 4)) throw new RangeError(`seconds must be ≥ 4, got ${seconds}`);
  if (!(rate > 0)) throw new RangeError(`bad rate ${rate}`);
  if (!Number.isInteger(processes) || processes < 1 || processes > 16)
    throw new RangeError(`processes must be 1-16, got ${processes}`);
  const tools = checkTools(['kamailio', 'kamcmd', 'sipp', 'sox', 'tshark']);
  if (!tools.ok) throw new Error(`capacity bench needs: ${tools.reason}`);
  if (!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('the bot runs from dist/: run `npm run build` first');
  }

  const started = performance.now();
  const loadAtStart = os.loadavg()[0]!;
  const work = mkdtempSync(path.join(os.tmpdir(), 'rcsp-capacity-'));
  const recordDir = path.join(work, 'recordings');
  mkdirSync(recordDir);
  const cleanup: (() => Promise<void>)[] = [];
  // Kamailio's harness awaits its (unref'd) watchdog's exit in stop(): with
  // nothing else left on the event loop, Node would exit mid-await (code 13).
  const keepAlive = setInterval(() => {}, 1000);
  const runCleanup = async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => {});
    clearInterval(keepAlive);
    if (!options.keepFiles) rmSync(work, { recursive: true, force: true });
  };
  // Interrupted (Ctrl-C, SIGTERM, a wrapper's timeout): the bot, SIPp, the captures
  // and Kamailio go too, as after a finished run; a bot left behind would hold its
  // ports and skew the next run's figures.
  const interrupted = () => void runCleanup().then(() => process.exit(130));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const speech = await prepareSpeech(work);
    const loops = Math.max(1, Math.floor((seconds * 1000 - BYE_MARGIN_MS) / speech.ms));
    // One device per bot process; SIPp calls them in turn.
    const users = Array.from({ length: processes }, (_, i) =>
      i === 0
        ? { ...DEFAULT_USER }
        : {
            username: String(Number(DEFAULT_USER.username) + i),
            authorizationId: String(Number(DEFAULT_USER.authorizationId) + i),
            password: `${DEFAULT_USER.password}-${i}`,
          },
    );
    const kam: Kamailio = await startKamailio({ users });
    cleanup.push(() => kam.stop());

    const probePort = await freePort('udp');
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    cleanup.push(async () => {
      probe.close();
    });

    // The bots' SIP connections, captured before they connect so each stream is whole.
    const sipCapture = new LiveCapture(
      [
        ...['-i', 'lo', '-l', '-f', `(tcp port ${kam.port}) or (udp dst port ${probePort})`],
        ...['-T', 'fields', '-E', 'separator=/t', '-e', 'udp.dstport', '-e', 'frame.time_epoch'],
        ...['-e', 'tcp.srcport', '-e', 'tcp.seq_raw', '-e', 'tcp.payload', '-e', 'tcp.dstport'],
      ],
      probePort,
      'fields',
    );
    cleanup.push(() => sipCapture.stop());
    await waitForStderr(sipCapture.child, /Capturing on/, 30_000);
    await sipCapture.probe(probe);

    // One process: `listen` with the device in the environment. Several:
    // `listen --devices DIR --processes N`, a supervisor and N workers, a device each.
    // Every call needs two ports (RTP, RTCP), plus room for the pools' quarantine.
    const portCount = 2 * (calls + 10 * processes) + 20 * processes;
    const botLog: LogLine[] = [];
    let botErr = '';
    let active = 0;
    let peakActive = 0;
    let answered = 0;
    let ended = 0;
    let firstAllUp: number | undefined;
    let firstEnd: number | undefined;
    const waiter = new Waiter();
    const notify = () => waiter.poke();
    const until = (check: () => boolean, timeoutMs: number, what: string) =>
      waiter.until(check, timeoutMs, what);

    const preload = path.join(work, 'event-loop-delay.mjs');
    writeFileSync(preload, ELD_PRELOAD);
    const eldDir = path.join(work, 'event-loop-delay');
    mkdirSync(eldDir);
    const profileDir = path.join(work, 'profile');
    const rtpMin = await freeUdpPortRange(portCount);
    const rtpMax = rtpMin + portCount - 1;
    const perDevice = Math.ceil(calls / processes) + 10;
    let listen: string[];
    let deviceEnv: Record<string, string> = {};
    if (processes === 1) {
      listen = ['listen', '--max-calls', String(perDevice)];
      deviceEnv = {
        SIP_INFO_USERNAME: DEFAULT_USER.username,
        SIP_INFO_PASSWORD: DEFAULT_USER.password,
        SIP_INFO_AUTHORIZATION_ID: DEFAULT_USER.authorizationId,
        SIP_INFO_DOMAIN: kam.domain,
        SIP_INFO_OUTBOUND_PROXY: `${kam.host}:${kam.port}`,
        SIP_INFO_TRANSPORT: 'TCP',
        SIP_INFO_INSTANCE_ID: INSTANCE_ID,
      };
    } else {
      const devicesDir = path.join(work, 'devices');
      mkdirSync(devicesDir);
      for (const [i, user] of users.entries()) {
        await saveSipInfoFile(path.join(devicesDir, `device-${i}.json`), {
          username: user.username,
          authorizationId: user.authorizationId,
          password: user.password,
          domain: kam.domain,
          outboundProxy: { host: kam.host, port: kam.port },
          transport: 'tcp',
          deviceId: `device-${i}`,
        });
      }
      listen = [
        'listen',
        '--devices',
        devicesDir,
        '--processes',
        String(processes),
        '--max-calls',
        String(perDevice),
      ];
    }
    const child = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(preload).href,
        ...(options.cpuProfile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
        BIN,
        ...listen,
        ...['--log-format', 'json', '--rtp-ports', `${rtpMin}-${rtpMax}`],
        ...['--record-dir', recordDir, '--media-ip', '127.0.0.1'],
      ],
      {
        cwd: work, // no stray .env
        env: { ...process.env, RCSP_BENCH_ELD_DIR: eldDir, ...deviceEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    cleanup.push(() => stopChild(child, 'SIGKILL', 5000));
    if (child.pid === undefined) throw new Error('could not start the bot');
    const mainPid = child.pid;
    // The processes that run calls: the one bot, or the supervisor's workers (by index, the latest pid).
    const bots: Bot[] = Array.from({ length: processes }, () => ({
      pid: processes === 1 ? mainPid : undefined,
      pids: processes === 1 ? [mainPid] : [],
      active: 0,
      peakActive: 0,
    }));
    const botOfDevice = new Map<string, number>();
    const registered = new Set<string>();
    let partial = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const text of lines) {
        if (text.trim() === '') continue;
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          botErr += `${text}\n`;
          continue;
        }
        botLog.push(line);
        if (line.event === 'process.started') {
          const bot = bots[line.process as number]!;
          bot.pid = line.pid as number;
          bot.pids.push(bot.pid);
          for (const d of line.devices as string[]) botOfDevice.set(d, line.process as number);
        }
        const bot = bots[botOfDevice.get(line.device as string) ?? 0]!;
        if (line.event === 'registered') registered.add((line.device as string | undefined) ?? 'bot');
        if (line.event === 'call.answered') {
          answered++;
          active++;
          bot.active++;
          if (bot.active > bot.peakActive) bot.peakActive = bot.active;
          if (active > peakActive) peakActive = active;
          if (active === calls && firstAllUp === undefined) firstAllUp = performance.now();
        } else if (line.event === 'call.ended') {
          ended++;
          active--;
          bot.active--;
          firstEnd ??= performance.now();
        }
      }
      notify();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      botErr = (botErr + chunk.toString('utf8')).slice(-16_384);
    });
    child.once('exit', () => notify());
    await until(
      () => registered.size === processes || child.exitCode !== null,
      60_000,
      'every device registered',
    );
    if (child.exitCode !== null)
      throw new Error(`the bot exited (${child.exitCode}) before registering: ${botErr}`);

    // Sample every process once a second from now on: the bots, and what shares the machine with them.
    const samples: CpuSample[] = [];
    let hwmKb = 0;
    let sippPid: number | undefined;
    const captures = () => [sipCapture.child.pid, rtpCapture?.child.pid].filter((p) => p !== undefined);
    const sample = () => {
      const bot = bots.map((b) => (b.pid === undefined ? undefined : readProc(b.pid)));
      const supervisor = processes === 1 ? undefined : readProc(mainPid);
      for (const p of [...bot, supervisor]) if (p) hwmKb = Math.max(hwmKb, p.hwmKb);
      samples.push({
        at: performance.now(),
        bots: bot.map((p, i) => p?.ticks ?? samples.at(-1)?.bots[i] ?? 0),
        botWaitNs: bots.map((b, i) =>
          b.pid === undefined ? 0 : (runQueueWaitNs(b.pid) ?? samples.at(-1)?.botWaitNs[i] ?? 0),
        ),
        supervisor: supervisor?.ticks ?? 0,
        rssKb: [...bot, supervisor].reduce((sum, p) => sum + (p?.rssKb ?? 0), 0),
        // SIPp starts at 0 ticks; after it exits its last figure stands.
        sipp: sippPid === undefined ? 0 : (readProc(sippPid)?.ticks ?? samples.at(-1)?.sipp ?? 0),
        kamailio: sumTicks(processGroupMembers(kam.pid)),
        capture: sumTicks(captures().flatMap((pid) => [pid, ...childrenOf(pid)])),
        machine: machineTicks(),
      });
    };
    let rtpCapture: LiveCapture | undefined;
    sample();
    const sampler = setInterval(sample, 1000);
    cleanup.push(async () => clearInterval(sampler));

    // SIPp's media port (it binds it and port + 2), outside the bots' ranges; its RTP captured.
    let mediaPort: number;
    do mediaPort = await freeUdpPortRange(4);
    while (mediaPort + 3 >= rtpMin && mediaPort <= rtpMax);
    const streams = new Map<number, WireStream>();
    let wirePackets = 0;
    if (wireRtp) {
      rtpCapture = new LiveCapture(
        [
          ...['-i', 'lo', '-f', `(udp and src port ${mediaPort}) or (udp dst port ${probePort})`],
          ...['-s', '96', '-B', '32', '-F', 'pcap', '-w', '-'],
        ],
        probePort,
        'pcap',
        (ms, srcPort, dstPort, payload) => {
          if (srcPort !== mediaPort || payload.length < 12) return;
          wirePackets++;
          const timestamp = payload.readUInt32BE(4);
          const stream = streams.get(dstPort);
          if (!stream) {
            streams.set(dstPort, {
              packets: 1,
              firstArrivalMs: ms,
              baselineMs: ms,
              firstTimestamp: timestamp,
              maxLateMs: 0,
            });
            return;
          }
          stream.packets++;
          const offsetMs = ms - (((timestamp - stream.firstTimestamp) | 0) / RATE) * 1000;
          stream.baselineMs = Math.min(stream.baselineMs, offsetMs);
          stream.maxLateMs = Math.max(stream.maxLateMs, offsetMs - stream.baselineMs);
        },
      );
      const capture = rtpCapture;
      cleanup.push(() => capture.stop());
      await waitForStderr(capture.child, /Capturing on/, 30_000);
      await capture.probe(probe);
    }

    // A few idle seconds for the baseline.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    sample();
    const idleSamples = samples.slice();

    // SIPp: all calls, `rate` per second, each talking `loops` × the speech, BYE at `seconds`;
    // the callee of each call is the next device in turn (an injection file, one line per device).
    const sippDir = path.join(work, 'sipp');
    mkdirSync(sippDir);
    const scenario = path.join(sippDir, 'uac-speech.xml');
    writeFileSync(scenario, readFileSync(SCENARIO, 'utf8').replaceAll('[service]', '[field0]'));
    const callees = path.join(sippDir, 'callees.csv');
    writeFileSync(callees, `SEQUENTIAL\n${users.map((u) => `${u.username};\n`).join('')}`);
    const sippArgs = [
      `${kam.host}:${kam.port}`,
      ...['-sf', scenario, '-inf', callees],
      ...['-key', 'domain', kam.domain, '-key', 'speech', `${speech.file},${loops},0`],
      ...['-d', String(seconds * 1000)],
      ...['-i', '127.0.0.1', '-p', String(await freePort('udp')), '-mp', String(mediaPort), '-t', 'u1'],
      ...['-m', String(calls), '-l', String(calls), '-r', String(rate), '-rp', '1000'],
      ...['-nostdin', '-timeout', `${Math.ceil(calls / rate + seconds + 120)}s`, '-timeout_error'],
      ...['-trace_err', '-error_file', path.join(sippDir, 'errors.log')],
      ...['-trace_stat', '-stf', path.join(sippDir, 'stat.csv')],
    ];
    // Event-loop delay from here on (the preload in every process resets on SIGUSR2).
    for (const pid of [mainPid, ...bots.flatMap((b) => (b.pid === undefined ? [] : [b.pid]))])
      process.kill(pid, 'SIGUSR2');
    const loadStart = performance.now();
    const sipp = spawn(toolPath('sipp'), sippArgs, { cwd: sippDir, stdio: ['ignore', 'ignore', 'pipe'] });
    sippPid = sipp.pid;
    cleanup.push(() => stopChild(sipp, 'SIGKILL', 5000));
    let sippErr = '';
    sipp.stderr!.on('data', (chunk: Buffer) => {
      sippErr = (sippErr + chunk.toString('utf8')).slice(-8192);
    });
    await exited(sipp);
    const sippExit = sipp.exitCode;
    // The bots log call.ended as they answer each BYE; wait for the last one.
    await until(() => ended >= answered || child.exitCode !== null, 60_000, 'every call ended at the bots');
    const loadEnd = performance.now();
    sample();
    clearInterval(sampler);

    // Everything SIPp sent is captured once a probe sent now is.
    if (rtpCapture) {
      await rtpCapture.probe(probe);
      await rtpCapture.stop();
    }
    // Graceful stop (unregister, close), then the same proof for the SIP capture.
    await stopChild(child, 'SIGTERM', 30_000);
    const botExit = child.signalCode !== null ? `signal ${child.signalCode}` : `exit ${child.exitCode}`;
    await sipCapture.probe(probe);
    await sipCapture.stop();
    const loadAtEnd = os.loadavg()[0]!;

    // ---- figures ------------------------------------------------------------
    const statText = existsSync(path.join(sippDir, 'stat.csv'))
      ? readFileSync(path.join(sippDir, 'stat.csv'), 'utf8')
      : '';
    const statLines = statText.split('\n').filter((l) => l.trim() !== '');
    const header = (statLines[0] ?? '').split(';');
    const last = (statLines[statLines.length - 1] ?? '').split(';');
    const stat = (name: string) => Number(last[header.indexOf(name)] ?? Number.NaN);

    const wire = sipOnTheWire(sipCapture.lines, kam.port);
    const portOf = new Map<string, number>();
    for (const line of botLog) {
      if (line.event === 'call.answered' && line.callId && line.localMedia) {
        portOf.set(line.callId, Number(line.localMedia.split(':').pop()));
      }
    }

    const endedLines = botLog.filter((l) => l.event === 'call.ended');
    let valid = 0;
    let exact = 0;
    let withGaps = 0;
    let broken = 0;
    let lengthMismatches = 0;
    let maxLengthErrorMs = 0;
    let received = 0;
    let lost = 0;
    let late = 0;
    let resyncs = 0;
    let notExactOnTime = 0;
    let notExactLate = 0;
    const notExactFirstPacket: number[] = [];
    const exactFirstPacket: number[] = [];
    for (const line of endedLines) {
      received += line.stats?.received ?? 0;
      lost += line.stats?.lost ?? 0;
      late += line.stats?.late ?? 0;
      resyncs += line.stats?.resync ?? 0;
      if (!line.wav) continue;
      let wav: ReturnType<typeof readWav>;
      try {
        wav = readWav(line.wav); // throws unless the header sizes are final
      } catch {
        continue;
      }
      valid++;
      const errorMs = Math.abs((wav.samples.length / RATE) * 1000 - (line.durationMs ?? Number.NaN));
      maxLengthErrorMs = Math.max(
        maxLengthErrorMs,
        Number.isNaN(errorMs) ? Number.POSITIVE_INFINITY : errorMs,
      );
      if (!(errorMs <= FRAME_MS + 1)) lengthMismatches++;
      const verdict = classify(wav.samples, speech.pcm, loops);
      if (verdict === 'exact') exact++;
      else if (verdict === 'gaps') withGaps++;
      else broken++;
      const stream = streams.get(portOf.get(line.callId ?? '') ?? -1);
      const ok = wire.ok.get(line.callId ?? '');
      const firstAfter200 = stream && ok !== undefined ? round1(stream.firstArrivalMs - ok) : Number.NaN;
      if (verdict === 'exact') {
        exactFirstPacket.push(firstAfter200);
      } else if (stream) {
        if (stream.maxLateMs < ON_TIME_MS) notExactOnTime++;
        else notExactLate++;
        notExactFirstPacket.push(firstAfter200);
      }
    }

    // CPU in % of one core between two moments, from the samples inside them.
    const cpuBetween = (from: number, to: number, ticks: (s: CpuSample) => number) => {
      const inside = samples.filter((s) => s.at >= from && s.at <= to);
      const a = inside[0];
      const b = inside[inside.length - 1];
      if (!a || !b || b.at <= a.at) return Number.NaN;
      return round1((((ticks(b) - ticks(a)) / CLK_TCK) * 1000 * 100) / (b.at - a.at));
    };
    const botTicks = (s: CpuSample) => s.supervisor + s.bots.reduce((x, y) => x + y, 0);
    const allUp = (ticks: (s: CpuSample) => number) =>
      cpuBetween(firstAllUp ?? Number.NaN, firstEnd ?? Number.NaN, ticks);
    let peakPercent = 0;
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1]!;
      const b = samples[i]!;
      if (b.at - a.at < 500) continue; // too short an interval for 10 ms ticks
      peakPercent = Math.max(
        peakPercent,
        (((botTicks(b) - botTicks(a)) / CLK_TCK) * 1000 * 100) / (b.at - a.at),
      );
    }
    const allUpAvgPercent = allUp(botTicks);
    const neighbours = (over: (ticks: (s: CpuSample) => number) => number): Neighbours => ({
      sippPercent: over((s) => s.sipp),
      kamailioPercent: over((s) => s.kamailio),
      capturePercent: over((s) => s.capture),
      machinePercent: over((s) => s.machine.busy),
    });

    const toOk: number[] = [];
    const toTrying: number[] = [];
    const tryingToOk: number[] = [];
    for (const [callId, at] of wire.invite) {
      const ok = wire.ok.get(callId);
      const trying = wire.trying.get(callId);
      if (ok !== undefined) toOk.push(ok - at);
      if (trying !== undefined) toTrying.push(trying - at);
      if (ok !== undefined && trying !== undefined) tryingToOk.push(ok - trying);
    }
    const inviteTo200 = latencyFigures(toOk);
    // Which calls were slowest, by arrival order (the first calls pay for warm-up; later ones for load).
    const slowest = toOk
      .map((ms, index) => ({ call: index + 1, ms: round3(ms) }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 5);
    const lateness = [...streams.values()].map((s) => s.maxLateMs).sort((a, b) => a - b);
    const exactSorted = exactFirstPacket.filter((n) => !Number.isNaN(n)).sort((a, b) => a - b);
    const eldOf = (pid: number | undefined) => {
      const file = path.join(eldDir, `${pid}.json`);
      return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as EventLoopDelay) : undefined;
    };
    const elds = bots.map((b) => eldOf(b.pid));
    const eld = elds.every((e) => e !== undefined) ? worstOf(elds as EventLoopDelay[]) : undefined;
    // The (first) process that ran calls: CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile.
    const profiles = existsSync(profileDir)
      ? readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))
      : [];
    const profile = profiles.find((f) => f.split('.')[3] === String(bots[0]?.pids[0]));

    const figures: CapacityFigures = {
      calls,
      seconds,
      rate,
      processes,
      speechLoops: loops,
      sipp: {
        exitCode: sippExit,
        successful: stat('SuccessfulCall(C)'),
        failed: stat('FailedCall(C)'),
      },
      bot: {
        answered,
        ended,
        endedByRemoteBye: endedLines.filter((l) => l.reason === 'remote-bye').length,
        rejected: botLog.filter((l) => l.event === 'call.rejected').length,
        warnings: botLog.filter((l) => l.event === 'warning').length,
        peakConcurrent: peakActive,
        peakConcurrentPerProcess: bots.map((b) => b.peakActive),
        restarts: bots.reduce((n, b) => n + Math.max(0, b.pids.length - 1), 0),
        exit: botExit,
      },
      recordings: {
        valid,
        bitExact: exact,
        withGaps,
        broken,
        lengthMismatches,
        maxLengthErrorMs: round1(maxLengthErrorMs),
      },
      frames: {
        received,
        expected: calls * loops * (speech.pcm.length / PACKET_BYTES),
        lost,
        late,
        resyncs,
      },
      ...(wireRtp && {
        wire: {
          streams: streams.size,
          packets: wirePackets,
          latenessMs: {
            p50: round1(percentile(lateness, 50)),
            p99: round1(percentile(lateness, 99)),
            max: round1(lateness[lateness.length - 1] ?? Number.NaN),
          },
          lateStreams: lateness.filter((l) => l >= ON_TIME_MS).length,
          notExactOnTime,
          notExactLate,
          notExactFirstPacketAfter200Ms: notExactFirstPacket.sort((a, b) => a - b),
          exactFirstPacketAfter200Ms: {
            p50: percentile(exactSorted, 50),
            max: exactSorted[exactSorted.length - 1] ?? Number.NaN,
          },
        },
      }),
      cpu: {
        avgPercent: cpuBetween(loadStart, loadEnd + 1000, botTicks),
        allUpAvgPercent,
        allUpPerProcessPercent: bots.map((_, i) => allUp((s) => s.bots[i]!)),
        peakPercent: round1(peakPercent),
        idlePercent: cpuBetween(
          idleSamples[0]?.at ?? Number.NaN,
          idleSamples[idleSamples.length - 1]?.at ?? 0,
          botTicks,
        ),
        perCallUsPer20Ms: round1(((allUpAvgPercent / 100) * FRAME_MS * 1000) / calls),
        ...(processes > 1 && { supervisorAllUpPercent: allUp((s) => s.supervisor) }),
        // In ticks of 10 ms (1e7 ns), as cpuBetween counts.
        allUpRunQueueWaitPercent: bots.map((_, i) => allUp((s) => (s.botWaitNs[i] ?? 0) / 1e7)),
      },
      neighbours: {
        allUp: neighbours(allUp),
        load: neighbours((ticks) => cpuBetween(loadStart, loadEnd + 1000, ticks)),
        machineCores: os.cpus().length,
      },
      rss: {
        idleMb: round1((idleSamples[idleSamples.length - 1]?.rssKb ?? Number.NaN) / 1024),
        peakMb: round1(Math.max(hwmKb, ...samples.map((s) => s.rssKb)) / 1024),
      },
      ...(eld && { eventLoopDelayMs: eld }),
      ...(elds.length > 1 && { eventLoopDelayPerProcessMs: elds }),
      inviteTo200,
      inviteTo200Slowest: slowest,
      inviteTo100: latencyFigures(toTrying),
      trying100To200: latencyFigures(tryingToOk),
      capture: { sipMessages: wire.messages },
      ...(profile !== undefined && { profile: summarizeProfile(path.join(profileDir, profile)) }),
      loadAverage: [loadAtStart, loadAtEnd],
      targets: {
        concurrentRecorded: peakActive >= calls && exact === calls && calls >= 200,
        zeroFramesLost: lost === 0 && late === 0 && lengthMismatches === 0,
        inviteTo200P99Under10Ms: inviteTo200.count === calls && inviteTo200.p99Ms < 10,
      },
      wallSeconds: round1((performance.now() - started) / 1000),
      ...(options.keepFiles && { workDir: work }),
    };
    writeFileSync(path.join(work, 'sipp-stderr.log'), sippErr);
    writeFileSync(path.join(work, 'bot-stderr.log'), botErr);
    if (options.keepFiles)
      writeFileSync(path.join(work, 'bot.log.jsonl'), botLog.map((l) => JSON.stringify(l)).join('\n'));
    return figures;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await runCleanup();
  }
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(path.resolve(invokedPath)).href) {
  const args = process.argv.slice(2);
  const value = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : undefined;
  };
  const calls = value('--calls');
  const seconds = value('--seconds');
  const rate = value('--rate');
  const processes = value('--processes');
  const figures = await benchCapacity({
    ...(calls !== undefined && { calls }),
    ...(processes !== undefined && { processes }),
    ...(seconds !== undefined && { seconds }),
    ...(rate !== undefined && { rate }),
    wireRtp: !args.includes('--no-wire-rtp'),
    cpuProfile: args.includes('--cpu-profile'),
    keepFiles: args.includes('--keep'),
  });
  console.log(JSON.stringify(figures, null, 2));
}
