/**
 * Outbound capacity of one bot process: the bot (bench/outbound-bot.ts, the
 * library in its own process) places N concurrent calls (default 100)
 * through Kamailio, which challenges each INVITE with 407 as RingCentral
 * does, to SIPp as the callee (test/interop/kamailio/sipp/uas-speech.xml).
 * In every call both sides talk for `seconds` (default 20): SIPp streams
 * real speech, the bot plays the same speech reversed, and records. The bot
 * hangs up each call `seconds` after its answer.
 *
 *   node --import tsx bench/outbound.ts [--calls 100] [--seconds 20] [--rate 20] [--no-wire-rtp] [--keep]
 *
 * What is measured, and how:
 *  - Setup time as the bot's SIP stack sees it (its trace: a message is
 *    traced as it is written to or read from the socket): the call's first
 *    INVITE sent → the 200 received, which includes Kamailio's 407 round
 *    (INVITE → 407 → ACK → INVITE with credentials → 100/180 → 200); beside
 *    it INVITE → 407, and softphone.call() → the call's 'answered' event
 *    (what user code sees, event-loop queueing included).
 *  - Frames lost: each call's `stats.lost` and `late` summed, and every WAV
 *    checked against the ITU decoding of the u-law SIPp sent: bit-exact, or
 *    every packet present with silence inserted between some (a late
 *    sender, see capacity.ts), or broken; its length against the call's
 *    duration. What the bot sent: its packets against the 20 ms frames the
 *    calls lasted (sample-exact checks of what SIPp receives are in
 *    test/interop/kamailio/outbound.test.ts).
 *  - Who is to blame for a WAV that is not bit-exact: SIPp's RTP captured on
 *    lo (tshark, pcap), each stream's lateness against its earliest packet.
 *  - The bot's CPU (utime + stime, all threads) and RSS from /proc, sampled
 *    every second; its event-loop delay from monitorEventLoopDelay (5 ms
 *    resolution, less those 5 ms) from "go" until the last call ended.
 *
 * Prints nothing; returns the figures (standalone, prints them as JSON).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FRAME_MS, RECORDING_DELAY_MS } from '../src/media/frame.js';
import { freePort, freeUdpPortRange } from '../test/helpers/ports.js';
import { checkTools } from '../test/helpers/tools.js';
import { readWav } from '../test/helpers/wav.js';
import { DEFAULT_USER, type Kamailio, startKamailio } from '../test/interop/kamailio/harness.js';
import { startSippUas } from '../test/interop/kamailio/sipp-uas.js';
import { PACKET_BYTES, prepareSpeech, RATE, waitForStderr } from '../test/interop/kamailio/speech.js';
import {
  CLK_TCK,
  classify,
  type EventLoopFigures,
  type LatencyFigures,
  LiveCapture,
  latencyFigures,
  percentile,
  readProc,
  round1,
  stopChild,
} from './capacity.js';
import type { BotConfig } from './outbound-bot.js';
import { Waiter } from './waiter.js';

export interface OutboundOptions {
  /** Concurrent calls. Default 100. */
  calls?: number;
  /** Length of each call, from its answer to the bot's BYE. Default 20. */
  seconds?: number;
  /** New calls per second. Default 20. */
  rate?: number;
  /** Capture SIPp's RTP on the wire to tell sender stalls from bot faults. Default true. */
  wireRtp?: boolean;
  /** Keep the work directory (recordings, logs) and report its path. Default false. */
  keepFiles?: boolean;
}

export interface OutboundFigures {
  calls: number;
  seconds: number;
  rate: number;
  /** Times the 2.8 s speech plays in each call, each way. */
  speechLoops: number;
  sipp: { exitCode: number | null; successful: number; failed: number };
  bot: {
    answered: number;
    ended: number;
    endedByLocalHangup: number;
    /** Calls that never got answered (refused, timed out, dial errors). */
    failed: number;
    warnings: number;
    peakConcurrent: number;
    /** How the bot process ended after SIGTERM ("exit 0" = graceful). */
    exit: string;
  };
  setup: {
    /** First INVITE sent → 200 received (the 407 round included). */
    inviteTo200: LatencyFigures;
    /** First INVITE sent → Kamailio's 407 received. */
    inviteTo407: LatencyFigures;
    /** softphone.call() → the call's 'answered' event. */
    dialToAnswered: LatencyFigures;
    /** INVITEs per call (2: the challenged one and the one with credentials). */
    invitesPerCall: { min: number; max: number };
  };
  recordings: {
    valid: number;
    bitExact: number;
    withGaps: number;
    broken: number;
    /** WAVs whose length differs from the call's duration by more than one frame. */
    lengthMismatches: number;
    maxLengthErrorMs: number;
  };
  frames: {
    /** Received from SIPp, summed over the calls' stats, against what SIPp streamed. */
    received: number;
    expected: number;
    lost: number;
    late: number;
    resyncs: number;
    /** Sent by the bot, against the 20 ms frames the calls lasted (priming to hang-up). */
    sent: number;
    sentExpected: number;
    /** Largest shortfall of one call (frames the bot did not send), and send errors. */
    maxSentShortfall: number;
    sendErrors: number;
  };
  wire?: {
    streams: number;
    packets: number;
    latenessMs: { p50: number; p99: number; max: number };
    /** Streams later than the playout delay less a frame somewhere. */
    lateStreams: number;
    /** Not bit-exact although SIPp kept the stream on time: the bot's doing. */
    notExactOnTime: number;
    /** Not bit-exact, and SIPp was late: a sender stall the playout delay did not absorb. */
    notExactLate: number;
  };
  cpu: { avgPercent: number; allUpAvgPercent: number; peakPercent: number; idlePercent: number };
  rss: { idleMb: number; peakMb: number };
  eventLoopDelayMs?: EventLoopFigures;
  loadAverage: [number, number];
  wallSeconds: number;
  workDir?: string;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BOT = path.join(ROOT, 'bench', 'outbound-bot.ts');
const INSTANCE_ID = 'urn:uuid:3f2e1d0c-4b5a-4968-8776-a5b4c3d2e1f0';
/** Quiet time at the end of each call: rtp_stream starts up to ~100 ms after the ACK, later under load. */
const MARGIN_MS = 2000;
/** The recording's bound (MediaSession default) less a frame of margin: a stream never later than this is recorded bit-exact. */
const ON_TIME_MS = RECORDING_DELAY_MS - FRAME_MS;

interface BotLine {
  event: string;
  callId?: string;
  localPort?: number;
  dialed?: number;
  inviteSent?: number;
  challenged?: number;
  ok?: number;
  answered?: number;
  invites?: number;
  reason?: string;
  durationMs?: number;
  wav?: string | null;
  stats?: {
    received: number;
    lost: number;
    late: number;
    resync?: number;
    packetsSent: number;
    sendErrors: number;
  } | null;
  eventLoopDelayMs?: OutboundFigures['eventLoopDelayMs'];
  [key: string]: unknown;
}

interface WireStream {
  packets: number;
  baselineMs: number;
  firstTimestamp: number;
  maxLateMs: number;
}

export async function benchOutbound(options: OutboundOptions = {}): Promise<OutboundFigures> {
  const calls = options.calls ?? 100;
  const seconds = options.seconds ?? 20;
  const rate = options.rate ?? 20;
  const wireRtp = options.wireRtp ?? true;
  if (!Number.isInteger(calls) || calls < 1) throw new RangeError(`bad calls ${calls}`);
  if (!(seconds >= 5)) throw new RangeError(`seconds must be ≥ 5, got ${seconds}`);
  if (!(rate > 0)) throw new RangeError(`bad rate ${rate}`);
  const tools = checkTools(['kamailio', 'kamcmd', 'sipp', 'sox', ...(wireRtp ? (['tshark'] as const) : [])]);
  if (!tools.ok) throw new Error(`outbound bench needs: ${tools.reason}`);

  const started = performance.now();
  const loadAtStart = os.loadavg()[0]!;
  const work = mkdtempSync(path.join(os.tmpdir(), 'rcsp-outbound-bench-'));
  const recordDir = path.join(work, 'recordings');
  mkdirSync(recordDir);
  const cleanup: (() => Promise<void>)[] = [];
  // Kamailio's harness awaits its (unref'd) watchdog's exit in stop(): keep the loop alive.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    const speech = await prepareSpeech(work);
    const loops = Math.max(1, Math.floor((seconds * 1000 - MARGIN_MS) / speech.ms));
    // The bot plays the speech reversed (so neither side's audio is the other's), as often as SIPp plays it.
    const played = new Int16Array(speech.pcm.length * loops);
    const backwards = Int16Array.from(speech.pcm).reverse();
    for (let i = 0; i < loops; i++) played.set(backwards, i * backwards.length);
    const playFile = path.join(work, 'played.s16le');
    writeFileSync(playFile, Buffer.from(played.buffer, played.byteOffset, played.byteLength));

    const kam: Kamailio = await startKamailio();
    cleanup.push(() => kam.stop());

    // The bot's RTP ports (evens first, as the pool prefers) and SIPp's media port outside them.
    const portCount = Math.min(1000, 2 * (calls + 10) + 20);
    if (portCount < calls + 10) throw new RangeError(`at most ${1000 - 10} calls (one RTP port range)`);
    const rtpMin = await freeUdpPortRange(portCount);
    const rtpMax = rtpMin + portCount - 1;
    let mediaPort: number;
    do mediaPort = await freeUdpPortRange(4);
    while (mediaPort + 3 >= rtpMin && mediaPort <= rtpMax);

    const sippDir = path.join(work, 'sipp');
    mkdirSync(sippDir);
    const sipp = await startSippUas({
      scenario: 'uas-speech.xml',
      mediaPort,
      keys: { speech: `${speech.file},${loops},0` },
      calls,
      timeoutS: Math.ceil(calls / rate + seconds + 180),
      dir: sippDir,
    });
    cleanup.push(() => sipp.stop());

    // SIPp's RTP on the wire, proven live before the load and complete after it.
    const streams = new Map<number, WireStream>();
    let wirePackets = 0;
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    cleanup.push(async () => {
      probe.close();
    });
    let rtpCapture: LiveCapture | undefined;
    if (wireRtp) {
      const probePort = await freePort('udp');
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
            streams.set(dstPort, { packets: 1, baselineMs: ms, firstTimestamp: timestamp, maxLateMs: 0 });
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

    // The bot.
    const config: BotConfig = {
      sipInfo: {
        ...DEFAULT_USER,
        domain: kam.domain,
        outboundProxy: { host: kam.host, port: kam.port },
        transport: 'tcp',
      },
      instanceId: INSTANCE_ID,
      recordDir,
      rtpPorts: { min: rtpMin, max: rtpMax },
      target: sipp.uri('bench'),
      calls,
      rate,
      seconds,
      playFile,
    };
    const botLog: BotLine[] = [];
    let botErr = '';
    let active = 0;
    let peakActive = 0;
    let answeredCount = 0;
    let endedCount = 0;
    let firstAllUp: number | undefined;
    let firstEnd: number | undefined;
    const waiter = new Waiter();
    const notify = () => waiter.poke();
    const until = (check: () => boolean, timeoutMs: number, what: string) =>
      waiter.until(check, timeoutMs, what);
    const bot: ChildProcess = spawn(process.execPath, ['--import', 'tsx', BOT, JSON.stringify(config)], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
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
        let line: BotLine;
        try {
          line = JSON.parse(text) as BotLine;
        } catch {
          botErr += `${text}\n`;
          continue;
        }
        botLog.push(line);
        if (line.event === 'answered') {
          answeredCount++;
          active++;
          peakActive = Math.max(peakActive, active);
          if (active === calls && firstAllUp === undefined) firstAllUp = performance.now();
        } else if (line.event === 'ended') {
          endedCount++;
          if (line.answered !== undefined) active--;
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
      60_000,
      'bot registered',
    );
    if (bot.exitCode !== null) throw new Error(`bot exited (${bot.exitCode}) before registering: ${botErr}`);

    // Sample the bot once a second from now on; a few idle seconds first for the baseline.
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
    const idleSamples = samples.slice();

    const loadStart = performance.now();
    bot.stdin!.write('go\n');
    const loadTimeoutMs = (calls / rate + seconds + 120) * 1000;
    await until(
      () => botLog.some((l) => l.event === 'done') || bot.exitCode !== null,
      loadTimeoutMs,
      'every call ended at the bot',
    );
    const loadEnd = performance.now();
    sample();
    clearInterval(sampler);
    const sippResult = await Promise.race([
      sipp.done,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 30_000)),
    ]);
    if (rtpCapture) {
      await rtpCapture.probe(probe);
      await rtpCapture.stop();
    }
    await stopChild(bot, 'SIGTERM', 20_000);
    const botExit = bot.signalCode !== null ? `signal ${bot.signalCode}` : `exit ${bot.exitCode}`;
    const loadAtEnd = os.loadavg()[0]!;

    // ---- figures ------------------------------------------------------------
    const endedLines = botLog.filter((l) => l.event === 'ended');
    const portOf = new Map<string, number>();
    for (const l of botLog)
      if (l.event === 'answered' && l.callId && l.localPort) portOf.set(l.callId, l.localPort);
    const inviteTo200: number[] = [];
    const inviteTo407: number[] = [];
    const dialToAnswered: number[] = [];
    const invites: number[] = [];
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
    let sent = 0;
    let sentExpected = 0;
    let maxSentShortfall = 0;
    let sendErrors = 0;
    let notExactOnTime = 0;
    let notExactLate = 0;
    for (const l of endedLines) {
      if (l.inviteSent !== undefined && l.ok !== undefined) inviteTo200.push(l.ok - l.inviteSent);
      if (l.inviteSent !== undefined && l.challenged !== undefined)
        inviteTo407.push(l.challenged - l.inviteSent);
      if (l.dialed !== undefined && l.answered !== undefined) dialToAnswered.push(l.answered - l.dialed);
      if (l.invites !== undefined) invites.push(l.invites);
      const s = l.stats;
      if (s) {
        received += s.received;
        lost += s.lost;
        late += s.late;
        resyncs += s.resync ?? 0;
        sent += s.packetsSent;
        sendErrors += s.sendErrors;
        const frames = Math.floor((l.durationMs ?? 0) / FRAME_MS);
        sentExpected += frames;
        maxSentShortfall = Math.max(maxSentShortfall, frames - s.packetsSent);
      }
      if (!l.wav) continue;
      let wav: ReturnType<typeof readWav>;
      try {
        wav = readWav(l.wav); // throws unless the header sizes are final
      } catch {
        continue;
      }
      valid++;
      const errorMs = Math.abs((wav.samples.length / RATE) * 1000 - (l.durationMs ?? Number.NaN));
      maxLengthErrorMs = Math.max(
        maxLengthErrorMs,
        Number.isNaN(errorMs) ? Number.POSITIVE_INFINITY : errorMs,
      );
      if (!(errorMs <= FRAME_MS + 1)) lengthMismatches++;
      const verdict = classify(wav.samples, speech.pcm, loops);
      if (verdict === 'exact') exact++;
      else if (verdict === 'gaps') withGaps++;
      else broken++;
      const stream = streams.get(portOf.get(l.callId ?? '') ?? -1);
      if (verdict !== 'exact' && stream) {
        if (stream.maxLateMs < ON_TIME_MS) notExactOnTime++;
        else notExactLate++;
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
    const lateness = [...streams.values()].map((s) => s.maxLateMs).sort((a, b) => a - b);
    const stats = sippResult?.stats ?? {};
    const figures: OutboundFigures = {
      calls,
      seconds,
      rate,
      speechLoops: loops,
      sipp: {
        exitCode: sippResult?.code ?? null,
        successful: stats['SuccessfulCall(C)'] ?? Number.NaN,
        failed: stats['FailedCall(C)'] ?? Number.NaN,
      },
      bot: {
        answered: answeredCount,
        ended: endedCount,
        endedByLocalHangup: endedLines.filter((l) => l.reason === 'local-hangup').length,
        failed: calls - answeredCount,
        warnings: botLog.filter((l) => l.event === 'warning').length,
        peakConcurrent: peakActive,
        exit: botExit,
      },
      setup: {
        inviteTo200: latencyFigures(inviteTo200),
        inviteTo407: latencyFigures(inviteTo407),
        dialToAnswered: latencyFigures(dialToAnswered),
        invitesPerCall: { min: Math.min(...invites), max: Math.max(...invites) },
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
        expected: answeredCount * loops * (speech.pcm.length / PACKET_BYTES),
        lost,
        late,
        resyncs,
        sent,
        sentExpected,
        maxSentShortfall,
        sendErrors,
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
      ...(botLog.find((l) => l.event === 'done')?.eventLoopDelayMs && {
        eventLoopDelayMs: botLog.find((l) => l.event === 'done')?.eventLoopDelayMs,
      }),
      loadAverage: [loadAtStart, loadAtEnd],
      wallSeconds: round1((performance.now() - started) / 1000),
      ...(options.keepFiles && { workDir: work }),
    };
    writeFileSync(path.join(work, 'bot-stderr.log'), botErr);
    if (options.keepFiles) {
      writeFileSync(path.join(work, 'bot.log.jsonl'), botLog.map((l) => JSON.stringify(l)).join('\n'));
      writeFileSync(path.join(work, 'sipp.log'), sippResult?.output ?? 'sipp did not exit');
    }
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
  const figures = await benchOutbound({
    ...(calls !== undefined && { calls }),
    ...(seconds !== undefined && { seconds }),
    ...(rate !== undefined && { rate }),
    wireRtp: !args.includes('--no-wire-rtp'),
    keepFiles: args.includes('--keep'),
  });
  console.log(JSON.stringify(figures, null, 2));
}
