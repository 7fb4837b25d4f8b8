/**
 * Capacity of one bot process: SIPp places N concurrent calls (default 200)
 * through Kamailio to the CLI bot (`rc-softphone listen`, built, in its own
 * process), each streaming real speech for `seconds` (default 30), and the
 * bot records every one of them.
 *
 *   npm run build && node --import tsx bench/capacity.ts [--calls 200] [--seconds 30] [--rate 20]
 *                                                        [--no-wire-rtp] [--cpu-profile] [--keep]
 *
 * What is measured, and how:
 *  - CPU and memory of the bot alone: /proc/<pid>/stat (utime + stime, all
 *    threads) and /proc/<pid>/status (VmRSS, VmHWM), sampled every second.
 *    100 % = one core. Its event-loop delay comes from a preloaded
 *    perf_hooks.monitorEventLoopDelay (no change to the bot's code).
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
import { FRAME_MS, RECORDING_DELAY_MS } from '../src/media/frame.js';
import { StreamFramer } from '../src/sip/transport/framer.js';
import { freePort, freeUdpPortRange } from '../test/helpers/ports.js';
import { checkTools, toolPath } from '../test/helpers/tools.js';
import { readWav } from '../test/helpers/wav.js';
import { DEFAULT_USER, type Kamailio, startKamailio } from '../test/interop/kamailio/harness.js';
import {
  classifyRecording as classify,
  exited,
  PACKET_BYTES,
  prepareSpeech,
  RATE,
  waitForStderr,
} from '../test/interop/kamailio/speech.js';

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
  /** Times the 2.8 s speech file plays in each call. */
  speechLoops: number;
  sipp: { exitCode: number | null; successful: number; failed: number };
  bot: {
    answered: number;
    ended: number;
    endedByRemoteBye: number;
    rejected: number;
    warnings: number;
    /** Most calls the bot had up at once (call.answered − call.ended). */
    peakConcurrent: number;
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
  cpu: {
    /** From the first INVITE to the last call's end. */
    avgPercent: number;
    /** While every call was up. */
    allUpAvgPercent: number;
    /** Busiest one-second sample. */
    peakPercent: number;
    /** Registered and idle, before the first call. */
    idlePercent: number;
  };
  rss: { idleMb: number; peakMb: number };
  /** The bot's event-loop delay during the load (monitorEventLoopDelay at 5 ms, less those 5 ms). */
  eventLoopDelayMs?: {
    p50: number;
    p99: number;
    max: number;
    mean: number;
    /** Garbage-collection pauses during the load: count, longest, total. */
    gcPauses: number;
    gcMaxMs: number;
    gcTotalMs: number;
  };
  inviteTo200: LatencyFigures;
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
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gc.push(e.duration);
}).observe({ entryTypes: ['gc'] });
process.on('SIGUSR2', () => {
  histogram.reset();
  gc = [];
});
process.on('exit', () => {
  histogram.disable();
  // The histogram holds whole timer periods: the delay is what exceeds the 5 ms resolution.
  const ms = (ns) => Math.max(0, Math.round(ns / 1e3 - 5000) / 1e3);
  gc.sort((a, b) => a - b);
  const round = (x) => Math.round(x * 1000) / 1000;
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
 * Reframes both directions of the Kamailio ↔ bot TCP connection from the
 * captured segments (tab-separated: udp.dstport (empty), time, source port,
 * raw sequence number, payload hex) and stamps each message with the time
 * of the segment that completed it.
 */
function sipOnTheWire(lines: readonly string[], kamPort: number): WireTimes {
  const directions = new Map<string, { framer: StreamFramer; next: number | undefined }>();
  const times: WireTimes = { invite: new Map(), trying: new Map(), ok: new Map(), messages: 0 };
  for (const line of lines) {
    const [, epoch, srcPort, seqRaw, hex] = line.split('\t');
    if (hex === undefined || hex === '' || srcPort === undefined) continue;
    const toBot = Number(srcPort) === kamPort;
    let direction = directions.get(srcPort);
    if (!direction) {
      direction = { framer: new StreamFramer({ maxBodyBytes: 1 << 20 }), next: undefined };
      directions.set(srcPort, direction);
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

interface ProcSample {
  at: number;
  ticks: number;
  rssKb: number;
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
  const wireRtp = options.wireRtp ?? true;
  if (!Number.isInteger(calls) || calls < 1) throw new RangeError(`bad calls ${calls}`);
  if (!(seconds >= 4)) throw new RangeError(`seconds must be ≥ 4, got ${seconds}`);
  if (!(rate > 0)) throw new RangeError(`bad rate ${rate}`);
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
  try {
    const speech = await prepareSpeech(work);
    const loops = Math.max(1, Math.floor((seconds * 1000 - BYE_MARGIN_MS) / speech.ms));
    const kam: Kamailio = await startKamailio();
    cleanup.push(() => kam.stop());

    const probePort = await freePort('udp');
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    cleanup.push(async () => {
      probe.close();
    });

    // The bot's SIP connection, captured before the bot connects so the stream is whole.
    const sipCapture = new LiveCapture(
      [
        ...['-i', 'lo', '-l', '-f', `(tcp port ${kam.port}) or (udp dst port ${probePort})`],
        ...['-T', 'fields', '-E', 'separator=/t', '-e', 'udp.dstport', '-e', 'frame.time_epoch'],
        ...['-e', 'tcp.srcport', '-e', 'tcp.seq_raw', '-e', 'tcp.payload'],
      ],
      probePort,
      'fields',
    );
    cleanup.push(() => sipCapture.stop());
    await waitForStderr(sipCapture.child, /Capturing on/, 30_000);
    await sipCapture.probe(probe);

    // The bot: ports for every call (evens first, as the pool prefers), outside SIPp's media port.
    const portCount = Math.min(1000, 2 * (calls + 10) + 20);
    if (portCount < calls + 10) throw new RangeError(`at most ${1000 - 10} calls (one RTP port range)`);
    const rtpMin = await freeUdpPortRange(portCount);
    const rtpMax = rtpMin + portCount - 1;
    const botLog: LogLine[] = [];
    let botErr = '';
    let active = 0;
    let peakActive = 0;
    let answered = 0;
    let ended = 0;
    let firstAllUp: number | undefined;
    let firstEnd: number | undefined;
    const waiters: { check: () => boolean; resolve: () => void }[] = [];
    const notify = () => {
      for (const w of [...waiters]) {
        if (w.check()) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    };
    const until = (check: () => boolean, timeoutMs: number, what: string) =>
      new Promise<void>((resolve, reject) => {
        if (check()) return resolve();
        const timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          check,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });

    const preload = path.join(work, 'event-loop-delay.mjs');
    writeFileSync(preload, ELD_PRELOAD);
    const eldFile = path.join(work, 'event-loop-delay.json');
    const profileDir = path.join(work, 'profile');
    const bot = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(preload).href,
        ...(options.cpuProfile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
        BIN,
        'listen',
        ...['--log-format', 'json', '--max-calls', String(calls + 10)],
        ...['--rtp-ports', `${rtpMin}-${rtpMax}`, '--record-dir', recordDir, '--media-ip', '127.0.0.1'],
      ],
      {
        cwd: work, // no stray .env
        env: {
          ...process.env,
          RCSP_BENCH_ELD_FILE: eldFile,
          SIP_INFO_USERNAME: DEFAULT_USER.username,
          SIP_INFO_PASSWORD: DEFAULT_USER.password,
          SIP_INFO_AUTHORIZATION_ID: DEFAULT_USER.authorizationId,
          SIP_INFO_DOMAIN: kam.domain,
          SIP_INFO_OUTBOUND_PROXY: `${kam.host}:${kam.port}`,
          SIP_INFO_TRANSPORT: 'TCP',
          SIP_INFO_INSTANCE_ID: INSTANCE_ID,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    cleanup.push(() => stopChild(bot, 'SIGKILL', 5000));
    const pid = bot.pid;
    if (pid === undefined) throw new Error('could not start the bot');
    let partial = '';
    bot.stdout!.setEncoding('utf8');
    bot.stdout!.on('data', (chunk: string) => {
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
        if (line.event === 'call.answered') {
          answered++;
          active++;
          if (active > peakActive) peakActive = active;
          if (active === calls && firstAllUp === undefined) firstAllUp = performance.now();
        } else if (line.event === 'call.ended') {
          ended++;
          active--;
          firstEnd ??= performance.now();
        }
      }
      notify();
    });
    bot.stderr!.on('data', (chunk: Buffer) => {
      botErr = (botErr + chunk.toString('utf8')).slice(-16_384);
    });
    bot.once('exit', () => notify());
    await until(
      () => botLog.some((l) => l.event === 'registered') || bot.exitCode !== null,
      30_000,
      'bot registered',
    );
    if (bot.exitCode !== null) throw new Error(`bot exited (${bot.exitCode}) before registering: ${botErr}`);

    // Sample the bot once a second from now on.
    const samples: ProcSample[] = [];
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

    // SIPp's media port (it binds it and port + 2), outside the bot's range; its RTP captured.
    let mediaPort: number;
    do mediaPort = await freeUdpPortRange(4);
    while (mediaPort + 3 >= rtpMin && mediaPort <= rtpMax);
    const streams = new Map<number, WireStream>();
    let wirePackets = 0;
    let rtpCapture: LiveCapture | undefined;
    if (wireRtp) {
      rtpCapture = new LiveCapture(
        [
          ...['-i', 'lo', '-f', `(udp and src port ${mediaPort}) or (udp dst port ${probePort})`],
          ...['-s', '96', '-B', '16', '-F', 'pcap', '-w', '-'],
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

    // SIPp: all calls, `rate` per second, each talking `loops` × the speech, BYE at `seconds`.
    const sippDir = path.join(work, 'sipp');
    mkdirSync(sippDir);
    const sippArgs = [
      `${kam.host}:${kam.port}`,
      ...['-sf', SCENARIO, '-s', DEFAULT_USER.username],
      ...['-key', 'domain', kam.domain, '-key', 'speech', `${speech.file},${loops},0`],
      ...['-d', String(seconds * 1000)],
      ...['-i', '127.0.0.1', '-p', String(await freePort('udp')), '-mp', String(mediaPort), '-t', 'u1'],
      ...['-m', String(calls), '-l', String(calls), '-r', String(rate), '-rp', '1000'],
      ...['-nostdin', '-timeout', `${Math.ceil(calls / rate + seconds + 120)}s`, '-timeout_error'],
      ...['-trace_err', '-error_file', path.join(sippDir, 'errors.log')],
      ...['-trace_stat', '-stf', path.join(sippDir, 'stat.csv')],
    ];
    bot.kill('SIGUSR2'); // event-loop delay from here on
    const loadStart = performance.now();
    const sipp = spawn(toolPath('sipp'), sippArgs, { cwd: sippDir, stdio: ['ignore', 'ignore', 'pipe'] });
    cleanup.push(() => stopChild(sipp, 'SIGKILL', 5000));
    let sippErr = '';
    sipp.stderr!.on('data', (chunk: Buffer) => {
      sippErr = (sippErr + chunk.toString('utf8')).slice(-8192);
    });
    await exited(sipp);
    const sippExit = sipp.exitCode;
    // The bot logs call.ended as it answers each BYE; wait for the last one.
    await until(() => ended >= answered || bot.exitCode !== null, 60_000, 'every call ended at the bot');
    const loadEnd = performance.now();
    sample();
    clearInterval(sampler);

    // Everything SIPp sent is captured once a probe sent now is.
    if (rtpCapture) {
      await rtpCapture.probe(probe);
      await rtpCapture.stop();
    }
    // Graceful stop (unregister, close), then the same proof for the SIP capture.
    await stopChild(bot, 'SIGTERM', 20_000);
    const botExit = bot.signalCode !== null ? `signal ${bot.signalCode}` : `exit ${bot.exitCode}`;
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

    const cpuBetween = (from: number, to: number) => {
      const inside = samples.filter((s) => s.at >= from && s.at <= to);
      const a = inside[0];
      const b = inside[inside.length - 1];
      if (!a || !b || b.at <= a.at) return Number.NaN;
      return round1((((b.ticks - a.ticks) / CLK_TCK) * 1000 * 100) / (b.at - a.at));
    };
    let peakPercent = 0;
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1]!;
      const b = samples[i]!;
      if (b.at - a.at < 500) continue; // too short an interval for 10 ms ticks
      peakPercent = Math.max(peakPercent, (((b.ticks - a.ticks) / CLK_TCK) * 1000 * 100) / (b.at - a.at));
    }

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
    const lateness = [...streams.values()].map((s) => s.maxLateMs).sort((a, b) => a - b);
    const exactSorted = exactFirstPacket.filter((n) => !Number.isNaN(n)).sort((a, b) => a - b);
    const eld = existsSync(eldFile)
      ? (JSON.parse(readFileSync(eldFile, 'utf8')) as CapacityFigures['eventLoopDelayMs'])
      : undefined;
    const profiles = existsSync(profileDir)
      ? readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))
      : [];

    const figures: CapacityFigures = {
      calls,
      seconds,
      rate,
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
        avgPercent: cpuBetween(loadStart, loadEnd + 1000),
        allUpAvgPercent: cpuBetween(firstAllUp ?? Number.NaN, firstEnd ?? Number.NaN),
        peakPercent: round1(peakPercent),
        idlePercent: cpuBetween(
          idleSamples[0]?.at ?? Number.NaN,
          idleSamples[idleSamples.length - 1]?.at ?? 0,
        ),
      },
      rss: {
        idleMb: round1((idleSamples[idleSamples.length - 1]?.rssKb ?? Number.NaN) / 1024),
        peakMb: round1(Math.max(hwmKb, ...samples.map((s) => s.rssKb)) / 1024),
      },
      ...(eld && { eventLoopDelayMs: eld }),
      inviteTo200,
      inviteTo100: latencyFigures(toTrying),
      trying100To200: latencyFigures(tryingToOk),
      capture: { sipMessages: wire.messages },
      ...(profiles[0] !== undefined && { profile: summarizeProfile(path.join(profileDir, profiles[0])) }),
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
    for (const step of cleanup.reverse()) await step().catch(() => {});
    clearInterval(keepAlive);
    if (!options.keepFiles) rmSync(work, { recursive: true, force: true });
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
  const figures = await benchCapacity({
    ...(calls !== undefined && { calls }),
    ...(seconds !== undefined && { seconds }),
    ...(rate !== undefined && { rate }),
    wireRtp: !args.includes('--no-wire-rtp'),
    cpuProfile: args.includes('--cpu-profile'),
    keepFiles: args.includes('--keep'),
  });
  console.log(JSON.stringify(figures, null, 2));
}
