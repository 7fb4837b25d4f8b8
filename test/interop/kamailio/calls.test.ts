/**
 * Inbound calls end to end through a real proxy: SIPp (UDP) calls the
 * Softphone through Kamailio, which delivers the INVITE over the device's
 * registration flow (TCP); SIPp's rtp_stream plays real speech
 * (pocketsphinx's goforward.raw, converted by sox to 8 kHz u-law) and hangs
 * up. The recordings are checked sample by sample against the ITU decoding of
 * exactly the bytes SIPp sent; tshark shows what the device sent back.
 *
 * What SIPp 3.6's rtp_stream does (src/rtpstream.cpp), and so what the checks
 * may rely on:
 *  - PT 0, 160 bytes = 20 ms per packet, timestamps +160 per packet, paced
 *    on its own clock, from the one -mp media socket for all calls;
 *  - a last packet that the file cannot fill is completed from the file's
 *    start, so the file is padded here to whole packets with u-law silence
 *    (0xFF, which decodes to 0);
 *  - no marker bit, one SSRC per call, no talk spurts: the stream is one
 *    contiguous run of audio.
 * On loopback nothing is lost or reordered, so the recording must hold every
 * sent sample, bit-exact. The only freedom is *where* the speech starts: the
 * jitter buffer anchors the stream at the arrival of its first packet, any
 * sample position after the answer. Before it and after its end the
 * recording is silence fill (exact zeros).
 *
 * One thing the receiver cannot be held to: a sender that stalls for longer
 * than the recording's bound. SIPp's playback threads are ordinary threads;
 * on a loaded machine one can be descheduled and then send a burst of
 * packets late. The recording places packets up to 1 s late
 * (RECORDING_DELAY_MS) where their timestamps put them; beyond that it
 * re-places the stream by arrival, inserting silence. So the RTP is captured
 * on the wire (tshark on lo), and each stream's lateness is measured there,
 * independently of the bot:
 *  - a stream that was never later than ON_TIME_MS on the wire must be
 *    recorded bit-exact, zero tolerance;
 *  - a stream the sender delivered later than that must still hold every
 *    sent packet bit-exact and in order, with nothing but silence inserted
 *    between packets, no single gap longer than the wire lateness plus a frame.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Call, CallEndInfo } from '../../../src/call/call.js';
import { RECORDING_DELAY_MS } from '../../../src/media/frame.js';
import type { CallSidecar } from '../../../src/sinks/sidecar.js';
import { Softphone } from '../../../src/softphone.js';
import { freePort, freeUdpPortRange } from '../../helpers/ports.js';
import { describeInterop, type Tool, toolPath } from '../../helpers/tools.js';
import { readWav } from '../../helpers/wav.js';
import { DEFAULT_USER, type Kamailio, startKamailio } from './harness.js';
import { parseStatCsv } from './sipp-uas.js';
import { exited, PACKET_BYTES, prepareSpeech, RATE, type Speech, waitForStderr } from './speech.js';

const SCENARIO = fileURLToPath(new URL('./sipp/uac-speech.xml', import.meta.url));
const FRAME_MS = 20;
const CONCURRENT_CALLS = 50;
/** Room for the concurrent calls, with odd ports left over (the pool prefers even ones). */
const RTP_PORTS = 2 * CONCURRENT_CALLS + 20;
/**
 * Between starting the stream and the BYE, beyond the stream's own length:
 * rtp_stream's playback thread picks a new stream up on its next wake-up
 * (it sleeps up to 100 ms), and a busy machine may delay it further.
 */
const BYE_MARGIN_MS = 1000;
/**
 * Wire lateness (against the earliest packet before it) below which a stream
 * must be recorded bit-exact: the recording's bound (a packet that late still
 * lands where its timestamp puts it) less a frame of margin for the playout
 * timer's own lateness.
 */
const ON_TIME_MS = RECORDING_DELAY_MS - FRAME_MS;

interface TrackedCall {
  call: Call;
  /** performance.now() when callAnswered fired (right after the 200 OK went out). */
  answeredAt: number;
  rtpPort: number;
  ended: Promise<{ info: CallEndInfo; at: number }>;
}

interface SippResult {
  code: number | null;
  /** The last line of the -trace_stat CSV, by column name (cumulative counters end in "(C)"). */
  stats: Record<string, number>;
  output: string;
}

function repeat(pcm: Int16Array, times: number): Int16Array {
  const out = new Int16Array(pcm.length * times);
  for (let i = 0; i < times; i++) out.set(pcm, i * pcm.length);
  return out;
}

interface RecordingCheck {
  /** Sample index in the WAV where the sent audio starts. */
  offset: number;
  /** Sent packets found in the WAV, bit-exact and in order. */
  packets: number;
  /** Index of the first packet not found (null: all were). */
  missingPacket: number | null;
  /** Silence runs inserted between packets, and the longest, in ms. */
  gaps: number;
  maxGapMs: number;
  /** Non-zero samples before the speech / after it: silence fill must be exact zeros. */
  nonZeroBefore: number;
  nonZeroAfter: number;
}

/**
 * Locates `sent` in `wav` and walks it packet by packet (160 samples): each
 * packet must be next in the WAV, bit-exact; where one is not, only zeros
 * may come before it (a gap the jitter buffer inserted). The WAV is zeros up
 * to the first packet's arrival, so the first non-zero sample of the WAV is
 * the first non-zero sample of what was sent: that fixes the offset.
 */
function alignPackets(wav: Int16Array, sent: Int16Array): RecordingCheck {
  const firstNonZero = (a: Int16Array) => a.findIndex((s) => s !== 0);
  const offset = firstNonZero(wav) - firstNonZero(sent);
  const matchesAt = (at: number, packet: number) => {
    if (at < 0 || at + PACKET_BYTES > wav.length) return false;
    for (let i = 0; i < PACKET_BYTES; i++) if (wav[at + i] !== sent[packet * PACKET_BYTES + i]) return false;
    return true;
  };
  let at = offset;
  let packets = 0;
  let missingPacket: number | null = null;
  let gaps = 0;
  let maxGap = 0;
  const total = sent.length / PACKET_BYTES;
  for (let k = 0; k < total; k++) {
    if (matchesAt(at, k)) {
      at += PACKET_BYTES;
      packets++;
      continue;
    }
    // Skip a run of zeros (inserted silence) and look for the packet after it.
    let next = at;
    while (next < wav.length && wav[next] === 0 && !matchesAt(next + 1, k)) next++;
    if (next < wav.length && wav[next] === 0 && matchesAt(next + 1, k)) {
      gaps++;
      maxGap = Math.max(maxGap, next + 1 - at);
      at = next + 1 + PACKET_BYTES;
      packets++;
      continue;
    }
    missingPacket = k;
    break;
  }
  let nonZeroBefore = 0;
  for (let i = 0; i < Math.max(0, offset); i++) if (wav[i] !== 0) nonZeroBefore++;
  let nonZeroAfter = 0;
  if (missingPacket === null) for (let i = at; i < wav.length; i++) if (wav[i] !== 0) nonZeroAfter++;
  return {
    offset,
    packets,
    missingPacket,
    gaps,
    maxGapMs: (maxGap / RATE) * 1000,
    nonZeroBefore,
    nonZeroAfter,
  };
}

/**
 * One RTP stream as seen on the wire: how late its packets came against the
 * earliest before them, as the jitter buffer's baseline counts lateness.
 */
interface WireStream {
  packets: number;
  /** Largest (arrival − timestamp distance from the first packet) above the smallest before it, ms. */
  maxLateMs: number;
  /** The smallest arrival − timestamp distance so far, ms. */
  baselineMs: number;
  firstTimestamp: number;
}

/**
 * Captures, with tshark on lo, the RTP that SIPp sends (everything leaving
 * its media port) as a pcap stream, and keeps per-destination timing. The
 * capture is proven live before use and proven complete before it stops:
 * probe datagrams to a port nobody listens on pass the same filter, and
 * packets on one interface are captured in order.
 */
class RtpWire {
  readonly streams = new Map<number, WireStream>();
  readonly #child: ChildProcess;
  readonly #probePort: number;
  readonly #probe: dgram.Socket;
  #probesSeen = 0;
  #stopped = false;
  #buffer: Buffer = Buffer.alloc(0);
  #headerDone = false;
  #nanos = false;
  #wake: (() => void)[] = [];

  private constructor(child: ChildProcess, probePort: number, probe: dgram.Socket) {
    this.#child = child;
    this.#probePort = probePort;
    this.#probe = probe;
    child.stdout!.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  get process(): ChildProcess {
    return this.#child;
  }

  static async start(mediaPort: number): Promise<RtpWire> {
    const probePort = await freePort('udp');
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    const filter = `(udp and src port ${mediaPort}) or (udp and dst port ${probePort})`;
    const child = spawn(toolPath('tshark'), ['-i', 'lo', '-f', filter, '-s', '96', '-F', 'pcap', '-w', '-'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const wire = new RtpWire(child, probePort, probe);
    try {
      await waitForStderr(child, /Capturing on/, 20_000);
      // "Capturing on" comes a few tens of ms before packets really are: probe until one shows.
      await wire.#probeUntilSeen();
    } catch (error) {
      await wire.stop();
      throw error;
    }
    return wire;
  }

  /** Proves everything sent so far is captured, then ends the capture. */
  async finish(): Promise<void> {
    await this.#probeUntilSeen();
    await this.stop();
  }

  /** Idempotent. */
  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#probe.close();
    }
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGINT');
      await exited(this.#child);
    }
  }

  async #probeUntilSeen(): Promise<void> {
    const before = this.#probesSeen;
    const deadline = performance.now() + 20_000;
    while (this.#probesSeen === before) {
      if (performance.now() > deadline) throw new Error('tshark never showed a probe packet');
      this.#probe.send('rcsp-probe', this.#probePort, '127.0.0.1');
      // Until the capture shows it, or 100 ms pass and another probe goes out.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** pcap stream: 24-byte global header, then 16-byte record headers + Ethernet/IPv4/UDP/RTP. */
  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    let at = 0;
    if (!this.#headerDone) {
      if (this.#buffer.length < 24) return;
      const magic = this.#buffer.readUInt32LE(0);
      if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error(`unexpected pcap magic ${magic}`);
      this.#nanos = magic === 0xa1b23c4d;
      if (this.#buffer.readUInt32LE(20) !== 1) throw new Error('expected Ethernet framing on lo');
      this.#headerDone = true;
      at = 24;
    }
    while (this.#buffer.length - at >= 16) {
      const length = this.#buffer.readUInt32LE(at + 8);
      if (this.#buffer.length - at < 16 + length) break;
      const ms =
        this.#buffer.readUInt32LE(at) * 1000 + this.#buffer.readUInt32LE(at + 4) / (this.#nanos ? 1e6 : 1e3);
      this.#onPacket(ms, this.#buffer.subarray(at + 16, at + 16 + length));
      at += 16 + length;
    }
    this.#buffer = this.#buffer.subarray(at);
    for (const wake of this.#wake.splice(0)) wake();
  }

  #onPacket(ms: number, frame: Buffer): void {
    if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) return;
    const ip = 14;
    const udp = ip + (frame[ip]! & 0x0f) * 4;
    if (frame[ip + 9] !== 17 || frame.length < udp + 8) return;
    const dstPort = frame.readUInt16BE(udp + 2);
    if (dstPort === this.#probePort) {
      this.#probesSeen++;
      return;
    }
    const rtp = udp + 8;
    if (frame.length < rtp + 12) return;
    const timestamp = frame.readUInt32BE(rtp + 4);
    const stream = this.streams.get(dstPort);
    if (!stream) {
      this.streams.set(dstPort, { packets: 1, maxLateMs: 0, baselineMs: ms, firstTimestamp: timestamp });
      return;
    }
    stream.packets++;
    const offsetMs = ms - (((timestamp - stream.firstTimestamp) | 0) / RATE) * 1000;
    stream.baselineMs = Math.min(stream.baselineMs, offsetMs);
    stream.maxLateMs = Math.max(stream.maxLateMs, offsetMs - stream.baselineMs);
  }
}

/**
 * The suite runs twice: with the device registered over TCP, and over TLS
 * with the certificate verified (Kamailio's tls module, a self-signed
 * certificate trusted as the only extra CA). Kamailio only ever reaches the
 * device over the connection it registered on, so in the TLS run every
 * INVITE, ACK and BYE crossed TLS. The 50-call run is TCP only: the media
 * path under load does not depend on the signalling transport.
 */
for (const transport of ['tcp', 'tls'] as const) {
  const tools: Tool[] = ['kamailio', 'kamcmd', 'sipp', 'sox', 'tshark'];
  if (transport === 'tls') tools.push('kamailio-tls');
  describeInterop(`calls through Kamailio (device on ${transport.toUpperCase()})`, tools, () => {
    let kam: Kamailio;
    let phone: Softphone;
    let work: string;
    let recordDir: string;
    let speech: Speech;
    let rtpRange: { min: number; max: number };
    const warnings: string[] = [];
    /** Every call the phone answered, by Call-ID. */
    const calls = new Map<string, TrackedCall>();
    /** SIPp and tshark processes started here. */
    const children = new Set<ChildProcess>();
    let active = 0;
    let peakActive = 0;

    beforeAll(async () => {
      work = mkdtempSync(path.join(os.tmpdir(), 'rcsp-calls-'));
      recordDir = path.join(work, 'recordings');
      speech = await prepareSpeech(work);
      kam = await startKamailio({ tls: transport === 'tls' });
      const min = await freeUdpPortRange(RTP_PORTS);
      rtpRange = { min, max: min + RTP_PORTS - 1 };
      phone = new Softphone({
        sipInfo: {
          ...DEFAULT_USER,
          domain: kam.domain,
          outboundProxy: { host: kam.host, port: transport === 'tls' ? kam.tlsPort! : kam.port },
          transport,
        },
        ...(kam.tlsCa !== undefined && { tlsCa: kam.tlsCa }),
        instanceId: 'urn:uuid:5e3c1f0a-6f1d-4b7e-9a2c-0c4d2e6f8a10',
        recordDir,
        rtpPorts: rtpRange,
        mediaIp: '127.0.0.1',
        maxCalls: CONCURRENT_CALLS + 10,
        mediaTimeoutMs: 30_000,
        // SIPp speaks plain RTP; on TLS the default would require SRTP (as RingCentral does).
        srtp: 'optional',
      });
      phone.on('warning', (w) => warnings.push(`${w.code}: ${w.message}`));
      phone.on('callRejected', (r) => warnings.push(`rejected ${r.callId}: ${r.status} ${r.reason}`));
      const onEnd = new Map<Call, (ended: { info: CallEndInfo; at: number }) => void>();
      phone.on('callAnswered', (call) => {
        active++;
        peakActive = Math.max(peakActive, active);
        calls.set(call.id, {
          call,
          answeredAt: performance.now(),
          rtpPort: call.localMedia?.port ?? -1,
          ended: new Promise((resolve) => onEnd.set(call, resolve)),
        });
      });
      phone.on('callEnded', (call, info) => {
        const at = performance.now();
        active--;
        onEnd.get(call)?.({ info, at });
        onEnd.delete(call);
      });
      await phone.start();
    }, 60_000);

    afterAll(async () => {
      // Whatever a failed test left running.
      for (const child of children)
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await phone?.stop();
      await kam?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    /** A free even UDP port (SIPp binds it and port+2) outside the phone's RTP range. */
    async function sippMediaPort(): Promise<number> {
      for (;;) {
        const port = await freeUdpPortRange(4);
        if (port + 3 < rtpRange.min || port > rtpRange.max) return port;
      }
    }

    /** Runs the speech scenario: `count` calls at once, each playing the speech `loops` times. */
    async function runSipp(options: {
      count: number;
      loops: number;
      mediaPort: number;
    }): Promise<SippResult> {
      const dir = mkdtempSync(path.join(work, 'sipp-'));
      const localPort = await freePort('udp');
      const { count, loops, mediaPort } = options;
      const pauseMs = Math.round(loops * speech.ms + BYE_MARGIN_MS);
      const args = [
        `${kam.host}:${kam.port}`,
        ...['-sf', SCENARIO, '-s', DEFAULT_USER.username],
        ...['-key', 'domain', kam.domain, '-key', 'speech', `${speech.file},${loops},0`],
        ...['-d', String(pauseMs)],
        ...['-i', '127.0.0.1', '-p', String(localPort), '-mp', String(mediaPort), '-t', 'u1'],
        // All calls at once: the limit, the total and the rate per second are the same number.
        ...['-m', String(count), '-l', String(count), '-r', String(count), '-rp', '1000'],
        ...['-nostdin', '-timeout', '60s', '-timeout_error'],
        ...['-trace_err', '-error_file', path.join(dir, 'errors.log')],
        ...['-trace_stat', '-stf', path.join(dir, 'stat.csv')],
      ];
      const child = spawn(toolPath('sipp'), args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      let screen = '';
      const collect = (chunk: Buffer) => {
        screen = (screen + chunk.toString('utf8')).slice(-6000);
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      const code = await new Promise<number | null>((resolve) => {
        child.once('exit', (exitCode) => resolve(exitCode));
        child.once('error', () => resolve(-1));
      });
      const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');
      const statText = read(path.join(dir, 'stat.csv'));
      return {
        code,
        stats: statText === '' ? {} : parseStatCsv(statText),
        output: [`sipp exit ${code}`, read(path.join(dir, 'errors.log')).slice(-4000), screen].join('\n'),
      };
    }

    /** Calls answered from now on. */
    function answeredSince(): () => TrackedCall[] {
      const before = new Set(calls.keys());
      return () => [...calls.values()].filter((c) => !before.has(c.call.id));
    }

    /**
     * Every check on one finished call, as a summary to compare with
     * `expectedSummary` (so one failure shows everything that differs).
     */
    function examine(
      tracked: TrackedCall,
      info: CallEndInfo,
      endedAt: number,
      sent: Int16Array,
      wire: RtpWire,
    ) {
      // readWav throws unless RIFF size = 36 + data size = file size - 8: the header is final.
      const wav = readWav(info.wav ?? '');
      const sidecarPath = info.sidecar ?? '';
      const sidecar = JSON.parse(readFileSync(sidecarPath, 'utf8')) as CallSidecar;
      const recordedMs = (wav.samples.length / RATE) * 1000;
      const wallMs = endedAt - tracked.answeredAt;
      const stream = wire.streams.get(tracked.rtpPort);
      const lateMs = stream?.maxLateMs ?? Number.NaN;
      const onTime = lateMs < ON_TIME_MS;
      const check = alignPackets(wav.samples, sent);
      return {
        onTime,
        reason: info.reason,
        format: [wav.sampleRate, wav.channels],
        // Every packet SIPp sent crossed the wire to this call's port.
        wirePackets: stream?.packets,
        audio: {
          startsAfterAnswer: check.offset >= 0,
          packets: check.packets,
          missingPacket: check.missingPacket,
          gaps: check.gaps,
          // On time: none at all. Late on the wire: none longer than the lateness and a frame.
          gapsExplained: check.maxGapMs <= (onTime ? 0 : lateMs + FRAME_MS),
          nonZeroBefore: check.nonZeroBefore,
          nonZeroAfter: check.nonZeroAfter,
          // The speech ended before the BYE, leaving silence after it.
          trailingSilence: check.missingPacket === null && wav.samples.length > check.offset + sent.length,
        },
        // The timeline is the wall clock from the answer to the BYE. Whole 20 ms
        // frames are written as their playout time comes, and the tail is flushed
        // up to "now" at the end, so the recording's length equals the call's own
        // duration to within one frame, and the test's clock (callAnswered →
        // callEnded, taken a few event-loop turns apart) to within a few frames.
        lengthVsCall: Math.abs(recordedMs - info.durationMs) <= FRAME_MS + 1,
        lengthVsWallClock: Math.abs(recordedMs - wallMs) <= 3 * FRAME_MS,
        stats: info.stats && {
          received: info.stats.received,
          lost: info.stats.lost,
          late: info.stats.late,
          duplicate: info.stats.duplicate,
          reordered: info.stats.reordered,
          invalid: info.stats.invalid,
          foreignSource: info.stats.foreignSource,
          resync: info.stats.resync,
        },
        sidecar: {
          exists: existsSync(sidecarPath),
          callId: sidecar.callId,
          codec: sidecar.codec,
          endReason: sidecar.endReason,
          lost: sidecar.stats.lost,
          wav: sidecar.wav,
        },
        detail: `wire lateness ${lateMs.toFixed(1)} ms, speech at sample ${check.offset}, gaps ${check.gaps} (longest ${check.maxGapMs} ms), ${wav.samples.length} samples = ${recordedMs} ms, call ${info.durationMs} ms, wall ${wallMs.toFixed(1)} ms`,
      };
    }

    function expectedSummary(
      tracked: TrackedCall,
      info: CallEndInfo,
      summary: ReturnType<typeof examine>,
      sentSamples: number,
    ) {
      const packets = sentSamples / PACKET_BYTES;
      const { onTime } = summary;
      return {
        onTime,
        reason: 'remote-bye',
        format: [RATE, 1],
        wirePackets: packets,
        audio: {
          startsAfterAnswer: true,
          packets,
          missingPacket: null,
          // Bit-exact: the sent samples, contiguous, nothing inserted.
          gaps: onTime ? 0 : expect.any(Number),
          gapsExplained: true,
          nonZeroBefore: 0,
          nonZeroAfter: 0,
          trailingSilence: true,
        },
        lengthVsCall: true,
        lengthVsWallClock: true,
        stats: {
          // Every packet SIPp sent, and nothing else; nothing missing, nothing late.
          received: packets,
          lost: 0,
          late: 0,
          duplicate: 0,
          reordered: 0,
          invalid: 0,
          foreignSource: 0,
          // A re-anchored timeline is what inserts a gap: only for a late sender.
          resync: onTime ? 0 : expect.any(Number),
        },
        sidecar: {
          exists: true,
          callId: tracked.call.id,
          codec: 'PCMU',
          endReason: 'remote-bye',
          lost: 0,
          wav: info.wav,
        },
        detail: expect.any(String),
      };
    }

    it('records the caller’s speech bit-exact, as long as the call, and finishes the WAV on BYE', async () => {
      warnings.length = 0;
      const answered = answeredSince();
      const mediaPort = await sippMediaPort();
      const wire = await RtpWire.start(mediaPort);
      children.add(wire.process);
      try {
        const result = await runSipp({ count: 1, loops: 1, mediaPort });
        expect(result.code, result.output).toBe(0);
        expect(result.stats['SuccessfulCall(C)'], result.output).toBe(1);
        expect(result.stats['FailedCall(C)'], result.output).toBe(0);

        // The device's binding (and so the INVITE's way to it) is on this transport.
        const [binding] = await kam.ulDump();
        expect(binding?.socket).toBe(
          `${transport}:${kam.host}:${transport === 'tls' ? kam.tlsPort : kam.port}`,
        );
        expect(binding?.contact).toMatch(new RegExp(`;transport=${transport};ob`));

        const [tracked, ...others] = answered();
        expect(others).toHaveLength(0);
        const { info, at } = await tracked!.ended;
        await wire.finish();
        // The file really is speech, and sox's whole output is part of what is compared.
        expect(speech.soxBytes).toBeGreaterThan(2 * RATE);
        expect(speech.pcm.some((s) => Math.abs(s) > 4000)).toBe(true);
        const summary = examine(tracked!, info, at, speech.pcm, wire);
        expect(summary, summary.detail).toEqual(expectedSummary(tracked!, info, summary, speech.pcm.length));
        expect(warnings).toEqual([]);
      } finally {
        await wire.stop();
      }
    }, 60_000);

    it('primes the media path: its first packet to SIPp’s media port is a PCMU silence frame with the marker, never an event', async () => {
      warnings.length = 0;
      const mediaPort = await sippMediaPort();
      const probePort = await freePort('udp');
      // Only what goes *to* SIPp's media port (the device's RTP; SIPp's own stream
      // leaves from it), decoded as RTP, one line per packet, flushed at once (-l).
      const tshark = spawn(
        toolPath('tshark'),
        [
          ...['-i', 'lo', '-l', '-f', `udp and (dst port ${mediaPort} or dst port ${probePort})`],
          ...['-d', `udp.port==${mediaPort},rtp`, '-T', 'fields', '-E', 'separator=,'],
          ...['-e', 'udp.dstport', '-e', 'udp.srcport', '-e', 'rtp.p_type', '-e', 'rtp.marker'],
          ...['-e', 'rtpevent.event_id', '-e', 'rtpevent.end_of_event', '-e', 'rtp.timestamp'],
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.add(tshark);
      const probe = dgram.createSocket('udp4');
      try {
        const lines: string[][] = [];
        const wake: (() => void)[] = [];
        let partial = '';
        tshark.stdout.setEncoding('utf8');
        tshark.stdout.on('data', (chunk: string) => {
          const text = partial + chunk;
          const complete = text.split('\n');
          partial = complete.pop() ?? '';
          for (const line of complete) if (line !== '') lines.push(line.split(','));
          for (const w of wake.splice(0)) w();
        });
        /** Resolves when `condition` holds after some output from tshark (or already does). */
        const until = (condition: () => boolean, timeoutMs: number, what: string) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`tshark: no ${what} within ${timeoutMs} ms`)),
              timeoutMs,
            );
            const check = () => {
              if (condition()) {
                clearTimeout(timer);
                resolve();
              } else wake.push(check);
            };
            check();
          });
        // tshark says "Capturing on" a little before packets really are captured:
        // probe (to a port nobody listens on) until one shows, then call.
        await waitForStderr(tshark, /Capturing on/, 20_000);
        await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
        const probeSeen = until(() => lines.some((f) => f[0] === String(probePort)), 20_000, 'probe packet');
        const resend = setInterval(() => probe.send('rcsp-probe', probePort, '127.0.0.1'), 100);
        probe.send('rcsp-probe', probePort, '127.0.0.1');
        await probeSeen.finally(() => clearInterval(resend));

        const answered = answeredSince();
        const result = await runSipp({ count: 1, loops: 1, mediaPort });
        expect(result.code, result.output).toBe(0);
        const [tracked] = answered();
        expect(tracked).toBeDefined();
        await tracked!.ended;
        const fromCall = (f: string[]) => f[0] === String(mediaPort) && f[1] === String(tracked!.rtpPort);
        // The call sent silence every 20 ms until the BYE: its first packets are long captured.
        await until(() => lines.filter(fromCall).length >= 3, 20_000, 'packets from the call');

        const packets = lines.filter(fromCall).map(([, , pt, marker, event, end, timestamp]) => ({
          pt,
          marker,
          event,
          end,
          timestamp: Number(timestamp),
        }));
        expect(packets.length, 'packets from the call’s RTP port').toBeGreaterThanOrEqual(3);
        const [first, second] = packets;
        // A frame of silence in the codec, marker on (first packet of our talkspurt):
        // no receiver reports it as a key press, as it did the old RFC 4733 "0".
        expect(first).toMatchObject({ pt: '0', marker: '1', event: '', end: '' });
        // Then silence, PCMU, on a later timestamp.
        expect(second).toMatchObject({ pt: '0', marker: '0', event: '', end: '' });
        expect(second!.timestamp).toBeGreaterThan(first!.timestamp);
        expect(packets.slice(1).every((p) => p.pt === '0')).toBe(true);
        expect(warnings).toEqual([]);
      } finally {
        probe.close();
        if (tshark.exitCode === null && tshark.signalCode === null) {
          tshark.kill('SIGINT');
          await exited(tshark);
        }
      }
    }, 60_000);

    if (transport === 'tcp')
      it(`records ${CONCURRENT_CALLS} simultaneous calls, every one bit-exact with no frame lost`, async () => {
        warnings.length = 0;
        peakActive = active;
        const loops = 2;
        const answered = answeredSince();
        const mediaPort = await sippMediaPort();
        const wire = await RtpWire.start(mediaPort);
        children.add(wire.process);
        try {
          const result = await runSipp({ count: CONCURRENT_CALLS, loops, mediaPort });
          expect(result.code, result.output).toBe(0);
          expect(result.stats['SuccessfulCall(C)'], result.output).toBe(CONCURRENT_CALLS);
          expect(result.stats['FailedCall(C)'], result.output).toBe(0);

          const tracked = answered();
          expect(tracked).toHaveLength(CONCURRENT_CALLS);
          // They really overlapped: every one was up at the same time.
          expect(peakActive).toBe(CONCURRENT_CALLS);
          const ended = await Promise.all(tracked.map((call) => call.ended));
          await wire.finish();
          const sent = repeat(speech.pcm, loops);
          const wavs = new Set<string>();
          tracked.forEach((call, i) => {
            const { info, at } = ended[i]!;
            const summary = examine(call, info, at, sent, wire);
            expect(summary, `${call.call.id}: ${summary.detail}`).toEqual(
              expectedSummary(call, info, summary, sent.length),
            );
            wavs.add(info.wav!);
          });
          expect(wavs.size).toBe(CONCURRENT_CALLS);
          expect(warnings).toEqual([]);
        } finally {
          await wire.stop();
        }
      }, 90_000);
  });
}
