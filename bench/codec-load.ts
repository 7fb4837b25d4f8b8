/**
 * The load generator of bench/codec-capacity.ts, in a process of its own so
 * that its CPU is not the bot's: a LocalPbx (the loopback registrar the bot
 * registers at over TCP) whose own calls are the load. On "go" (a line on
 * stdin) it places `calls` calls to the bot at `rate` per second, each with
 * the scenario's SDP offer (bench/codec-scenarios.ts), and streams into each
 * answered call the pre-encoded payloads (one per 20 ms, paced on the
 * monotonic clock: packet k is due at the stream's start + k × 20 ms, never
 * after accumulated delays), SRTP-protected per packet by a SrtpContext of
 * the call for the SRTP scenarios. After the last packet it waits `tailMs`
 * and hangs up (BYE). Not meant to be run by hand.
 *
 *   node --import tsx bench/codec-load.ts '<JSON LoadConfig>'
 *
 * stdout, one JSON object per line (times `at` are epoch ms,
 * performance.timeOrigin + performance.now(), comparable across processes):
 *   { event: 'listening', host, port, domain }
 *   { event: 'registered', username }                 the bot's REGISTER got 200
 *   { event: 'allStreaming', at, streaming, failed }  every call placed is streaming
 *   { event: 'firstStreamEnded', at }                 a stream sent its last packet
 *   { event: 'call', … }                              one per call, after its BYE
 *   { event: 'done', lateness, eventLoopDelayMs, … }  every call has ended
 *   { event: 'error', message }
 * Its own lateness is part of the result: a packet sent late reaches the bot
 * late, and one later than the recording's bound is the generator's fault,
 * not the bot's.
 *
 * The calls' sockets are connected to the bot's RTP address (so the kernel
 * does the addressing once); what the bot sends back (its silence, its RTCP)
 * is counted and dropped.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { LocalPbx, type PbxUser } from '../src/demo/local-pbx.js';
import { FRAME_MS, RECORDING_DELAY_MS } from '../src/media/frame.js';
import { serializeRtp } from '../src/rtp/packet.js';
import { generateKeySalt, SrtpContext } from '../src/rtp/srtp.js';
import {
  buildOffer,
  codecOfScenario,
  readAnswer,
  type Scenario,
  SRTP_SUITE,
  srtpOfScenario,
  unpackPayloads,
  WIRE,
} from './codec-scenarios.js';

export interface LoadConfig {
  scenario: Scenario;
  calls: number;
  /** New calls per second. */
  rate: number;
  /** 20 ms frames each call streams (from the answer on). */
  frames: number;
  /** Quiet time between a stream's last packet and the BYE. */
  tailMs: number;
  /** The payloads of the scenario's codec (codec-scenarios packPayloads format). */
  payloadFile: string;
  user: PbxUser;
  domain: string;
}

export interface LoadCallLine {
  event: 'call';
  index: number;
  callId: string | null;
  ok: boolean;
  error?: string;
  /** INVITE sent → 200 received (ms). */
  setupMs?: number;
  /** Epoch ms of the first and the last packet sent. */
  streamStart?: number;
  streamEnd?: number;
  sent: number;
  sendErrors: number;
  /** Datagrams the bot sent to this call (its RTP and RTCP). */
  botPackets: number;
  /** Latest packet of the call against its schedule (ms). */
  maxLateMs: number;
}

export interface LatenessFigures {
  packets: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** Packets sent more than one frame (20 ms) after their slot. */
  overFrame: number;
  /** Packets sent later than `boundMs` after their slot: the bot may count them late (or re-place the stream). */
  overBound: number;
  boundMs: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as LoadConfig;
const out = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);
const epoch = () => performance.timeOrigin + performance.now();

/** The recording waits this long for a late packet, less a frame: a packet later than this may count as late. */
const BOUND_MS = RECORDING_DELAY_MS - FRAME_MS;

const codec = codecOfScenario(config.scenario);
const srtp = srtpOfScenario(config.scenario);
const wire = WIRE[codec];
const payloads = unpackPayloads(readFileSync(config.payloadFile));
if (payloads.length < config.frames)
  throw new Error(`${config.payloadFile} holds ${payloads.length} frames, need ${config.frames}`);

/** Every packet's lateness (ms), in send order, all calls. */
const lateness = new Float32Array(config.calls * config.frames);
let latenessCount = 0;

interface Stream {
  socket: dgram.Socket;
  srtp: SrtpContext | undefined;
  ssrc: number;
  seq0: number;
  ts0: number;
  startAt: number;
  next: number;
  sent: number;
  sendErrors: number;
  maxLateMs: number;
  startEpoch: number;
  endEpoch: number;
  done: () => void;
}

const active: Stream[] = [];
let timer: NodeJS.Timeout | undefined;
let timerDue = Number.POSITIVE_INFINITY;
let streamsStarted = 0;
let callsFailed = 0;
let allStreamingSent = false;
let firstEndedSent = false;

function random32(): number {
  return (Math.random() * 0x1_0000_0000) >>> 0;
}

/** Sends every packet whose slot has come, in every stream; then sleeps until the next slot. */
function pump(): void {
  timer = undefined;
  timerDue = Number.POSITIVE_INFINITY;
  let now = performance.now();
  for (let i = 0; i < active.length; i++) {
    const s = active[i]!;
    while (s.next < config.frames && s.startAt + s.next * FRAME_MS <= now) {
      send(s);
      now = performance.now();
    }
    if (s.next >= config.frames) {
      s.endEpoch = epoch();
      active.splice(i--, 1);
      if (!firstEndedSent) {
        firstEndedSent = true;
        out({ event: 'firstStreamEnded', at: s.endEpoch });
      }
      s.done();
    }
  }
  arm();
}

function arm(): void {
  let due = Number.POSITIVE_INFINITY;
  for (const s of active) due = Math.min(due, s.startAt + s.next * FRAME_MS);
  if (due === Number.POSITIVE_INFINITY || due >= timerDue) return;
  if (timer !== undefined) clearTimeout(timer);
  timerDue = due;
  timer = setTimeout(pump, Math.max(0, due - performance.now()));
}

function send(s: Stream): void {
  const k = s.next++;
  const plain = serializeRtp({
    marker: k === 0,
    payloadType: wire.payloadType,
    sequenceNumber: (s.seq0 + k) & 0xffff,
    timestamp: (s.ts0 + k * wire.ticksPerFrame) >>> 0,
    ssrc: s.ssrc,
    payload: payloads[k]!,
  });
  // Per packet, as a real sender: the SRTP index (ROC and sequence number) changes every packet.
  const datagram = s.srtp === undefined ? plain : s.srtp.protectRtp(plain);
  const late = performance.now() - (s.startAt + k * FRAME_MS);
  if (latenessCount < lateness.length) lateness[latenessCount++] = late;
  if (late > s.maxLateMs) s.maxLateMs = late;
  s.socket.send(datagram);
  s.sent++;
  if (k === 0) s.startEpoch = epoch();
}

function startStream(socket: dgram.Socket, context: SrtpContext | undefined): Promise<Stream> {
  return new Promise((resolve) => {
    const s: Stream = {
      socket,
      srtp: context,
      ssrc: random32(),
      // Random, as RFC 3550 5.1 asks: some streams wrap their sequence (and SRTP's ROC moves).
      seq0: random32() & 0xffff,
      ts0: random32(),
      startAt: performance.now(),
      next: 0,
      sent: 0,
      sendErrors: 0,
      maxLateMs: 0,
      startEpoch: 0,
      endEpoch: 0,
      done: () => resolve(s),
    };
    socket.on('error', () => {
      s.sendErrors++;
    });
    send(s);
    active.push(s);
    streamsStarted++;
    checkAllStreaming();
    arm();
  });
}

function checkAllStreaming(): void {
  if (allStreamingSent || streamsStarted + callsFailed < config.calls || streamsStarted === 0) return;
  allStreamingSent = true;
  out({ event: 'allStreaming', at: epoch(), streaming: streamsStarted, failed: callsFailed });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function place(pbx: LocalPbx, index: number): Promise<LoadCallLine> {
  const line: LoadCallLine = {
    event: 'call',
    index,
    callId: null,
    ok: false,
    sent: 0,
    sendErrors: 0,
    botPackets: 0,
    maxLateMs: 0,
  };
  const socket = dgram.createSocket('udp4');
  let context: SrtpContext | undefined;
  let streaming = false;
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('message', () => {
      line.botPackets++;
    });
    const key = srtp ? generateKeySalt() : undefined;
    const offer = buildOffer({
      scenario: config.scenario,
      address: '127.0.0.1',
      port: socket.address().port,
      sessionId: String(1_000_000 + index),
      ...(key && { keySalt: key }),
    });
    const invited = performance.now();
    const call = await pbx.invite(config.user.username, offer, {
      from: `1555${String(index).padStart(6, '0')}`,
      timeoutMs: 30_000,
    });
    line.callId = call.callId;
    line.setupMs = Math.round((performance.now() - invited) * 1000) / 1000;
    const answer = readAnswer(config.scenario, call.answer);
    if (key && answer.keySalt) {
      context = new SrtpContext({ suite: SRTP_SUITE, localKeySalt: key, remoteKeySalt: answer.keySalt });
      key.fill(0);
    }
    await new Promise<void>((resolve) => socket.connect(answer.port, answer.address, resolve));
    streaming = true;
    const s = await startStream(socket, context);
    Object.assign(line, {
      streamStart: s.startEpoch,
      streamEnd: s.endEpoch,
      sent: s.sent,
      sendErrors: s.sendErrors,
      maxLateMs: Math.round(s.maxLateMs * 1000) / 1000,
    });
    await sleep(config.tailMs);
    const bye = await call.bye();
    if (bye.status !== 200) throw new Error(`BYE answered ${bye.status}`);
    line.ok = true;
  } catch (err) {
    line.error = err instanceof Error ? err.message : String(err);
    if (!streaming) {
      callsFailed++;
      checkAllStreaming();
    }
  } finally {
    context?.close();
    socket.close();
  }
  return line;
}

function latenessFigures(): LatenessFigures {
  const sorted = lateness.slice(0, latenessCount).sort();
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
  const r = (v: number | undefined) => (v === undefined ? Number.NaN : Math.round(v * 1000) / 1000);
  let overFrame = 0;
  let overBound = 0;
  for (const v of sorted) {
    if (v > FRAME_MS) overFrame++;
    if (v > BOUND_MS) overBound++;
  }
  return {
    packets: sorted.length,
    p50Ms: r(at(0.5)),
    p99Ms: r(at(0.99)),
    p999Ms: r(at(0.999)),
    maxMs: r(sorted[sorted.length - 1]),
    overFrame,
    overBound,
    boundMs: BOUND_MS,
  };
}

const pbx = await LocalPbx.listen({
  host: '127.0.0.1',
  port: 0,
  domain: config.domain,
  users: [config.user],
});
let registered = false;
pbx.on('register', (r) => {
  if (!registered && r.status === 200 && r.expires > 0 && r.username === config.user.username) {
    registered = true;
    out({ event: 'registered', username: r.username });
  }
});
out({ event: 'listening', ...pbx.address, domain: pbx.domain });

let closing = false;
const close = () => {
  if (closing) return;
  closing = true;
  if (timer !== undefined) clearTimeout(timer);
  void pbx.close().finally(() => process.exit(0));
};
process.on('SIGTERM', close);

const lines = createInterface({ input: process.stdin });
lines.on('close', close);
lines.once('line', () => {
  // Its own event-loop delay: a stall here is lateness on the wire.
  const histogram = monitorEventLoopDelay({ resolution: 5 });
  histogram.enable();
  const spacingMs = 1000 / config.rate;
  const start = performance.now();
  let next = 0;
  let ended = 0;
  const results: LoadCallLine[] = [];
  const onEnded = (line: LoadCallLine) => {
    results.push(line);
    out(line);
    if (++ended < config.calls) return;
    histogram.disable();
    // The histogram holds whole timer periods: the delay is what exceeds the 5 ms resolution.
    const ms = (ns: number) => Math.max(0, Math.round(ns / 1e3 - 5000) / 1e3);
    out({
      event: 'done',
      placed: config.calls,
      ok: results.filter((r) => r.ok).length,
      lateness: latenessFigures(),
      eventLoopDelayMs: { p99: ms(histogram.percentile(99)), max: ms(histogram.max) },
    });
  };
  const tick = () => {
    // Every call whose start time has come (a late timer does not slow the rate down).
    while (next < config.calls && performance.now() - start >= next * spacingMs) {
      void place(pbx, next++).then(onEnded);
    }
    if (next < config.calls) setTimeout(tick, Math.max(0, start + next * spacingMs - performance.now()));
  };
  tick();
});
