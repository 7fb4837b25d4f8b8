/**
 * Live-stream latency, measured two ways.
 *
 * Isolated sinks: from a frame being handed to `EnginePipe.write()` /
 * `MediaStreamClient.sendFrame()` to its bytes arriving in a real child
 * process (the engine's stdin; a `ws` server in its own process).
 *
 * End to end: RTP from a separate sender process at 20 ms pacing to a real
 * MediaSession on a UDP socket (PCMU negotiated from the sender's SDP offer,
 * recording to a WAV, sending silence back), whose 'liveFrame' listeners feed a
 * real EnginePipe and a real MediaStreamClient, as a live call does. Each
 * packet's µ-law payload carries its index, so the consumers can tell whose
 * audio arrived when. Per packet: arrival of the datagram in the bot (a
 * 'message' listener ahead of the session's) → frame emitted by the session
 * (the jitter buffer's hold) → bytes at the engine's stdin / the ws server.
 *
 * Both sides stamp with `process.hrtime.bigint()`, which is CLOCK_MONOTONIC
 * on Linux (mach_absolute_time on macOS): one clock for every process on the
 * machine, so send and arrival stamps from different processes compare
 * directly, without wall-clock skew.
 *
 * Isolated frames are paced faster than real time (default one per 5 ms,
 * 1000 frames: 20 s of audio in ~5 s per transport); end-to-end packets in
 * real time (500 packets, 10 s). The first frames / packets are a warm-up
 * and are not counted. Prints nothing; returns the figures.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { LIVE_TARGET_MAX_MS } from '../src/media/frame.js';
import { encodeUlaw, ULAW_TO_LINEAR } from '../src/media/g711.js';
import { MediaSession } from '../src/media/session.js';
import { serializeRtp } from '../src/rtp/packet.js';
import { createOffer, negotiateAnswer } from '../src/sdp/negotiate.js';
import { EnginePipe } from '../src/sinks/engine-pipe.js';
import { MediaStreamClient } from '../src/sinks/media-stream.js';
import { WavWriter } from '../src/sinks/wav.js';
import { WavSink } from '../src/sinks/wav-sink.js';

export interface LatencyFigures {
  p50Ms: number;
  p99Ms: number;
}

/** A latency spread: the percentiles plus the extremes. */
export interface Spread extends LatencyFigures {
  minMs: number;
  maxMs: number;
}

/** One consumer of the end-to-end run (engine stdin, or the WebSocket server). */
export interface EndToEndSink {
  /** Counted packets whose audio reached this consumer. */
  received: number;
  /** Frames the sink dropped or could not deliver (whole run, silence included). */
  dropped: number;
  /** RTP datagram arrival in the bot → its audio's bytes at the consumer. */
  total: Spread;
  /** Frame emitted by MediaSession → bytes at the consumer: the cost beyond the jitter buffer's hold. */
  beyondHold: Spread;
  /** `total` minus the live target the session ended with: cadence, timer lateness, arrival jitter and the sink. */
  totalMinusDelay: Spread;
}

export interface EndToEndFigures {
  /** RTP packets sent, warm-up included. */
  packetsSent: number;
  /** Leading packets left out of the figures. */
  warmupPackets: number;
  /** When in the call's 20 ms playout slots the far end sent (ms after the slot boundary). */
  slotPhaseMs: number;
  /** Packets after the warm-up that arrived and were emitted by the session: what the figures cover. */
  packetsCounted: number;
  /** The live target delay MediaSession ended with (adaptive). */
  jitterDelayMs: number;
  /** Sender's stamp just before `socket.send` → the datagram's 'message' in the bot (loopback + event loop). */
  sendToArrival: Spread;
  /** Datagram arrival → the session emitting the frame with its audio. */
  jitterHold: Spread;
  /**
   * Arrival minus the start of the packet's 20 ms slot on the call's
   * timeline. In [0, 20) when the stream is anchored at the slot boundary at
   * or before arrival. The playout follows the stream's phase (its earliest
   * arrival into a slot): frames are due that far into their slot plus the jitter delay.
   */
  slotOffset: Spread;
  /** Counted packets whose arrival fell in [0, 20) ms of their own slot. */
  onGrid: number;
  /** Frame emitted minus its scheduled playout time (slot start + earliest arrival phase so far + jitter delay): timer and event-loop lateness. */
  playoutLateness: Spread;
  pipe: EndToEndSink;
  ws: EndToEndSink;
  /** The session's own packet statistics at stop(). */
  session: {
    received: number;
    lost: number;
    late: number;
    resync: number;
    reordered: number;
    duplicate: number;
  };
}

export interface StreamLatencyOptions {
  /** Frames per transport, warm-up included; default 1000. */
  frames?: number;
  /** Pause between frames; default 5 ms. */
  intervalMs?: number;
  /** Leading frames left out of the figures; default 50. */
  warmupFrames?: number;
  /** End-to-end RTP packets, 20 ms apart, warm-up included; default 500 (10 s). */
  packets?: number;
  /** Leading end-to-end packets left out of the figures; default 25 (0.5 s). */
  warmupPackets?: number;
  /**
   * When in the call's 20 ms playout slots the far end sends, in ms after the
   * slot boundary (0 ≤ phase < 20). Default: random, as on a real call, whose
   * far end knows nothing of our grid. The playout follows that phase, so the
   * hold is the jitter delay whatever it is.
   */
  slotPhaseMs?: number;
}

const FRAME_SAMPLES = 160;
const FRAME_BYTES = FRAME_SAMPLES * 2;
const PACKET_MS = 20;
const RTP_HEADER_BYTES = 12;
/** MediaSession's default playout delay (not overridden here). */
/**
 * End-to-end payloads: µ-law bytes 0–3 carry the packet index in base 128,
 * digit d as code 0xff − d (codes 0x80–0xff decode to 128 distinct values;
 * 0x7f and 0xff would both decode to 0); bytes 4 and 5 are these two codes,
 * so silence and anything else is never mistaken for a packet.
 */
const MAGIC = [0x25, 0x4a] as const;

/** Reads stdin; stamps each 320-byte frame when its last byte arrives; the frame index is in its first 4 bytes. */
const STDIN_PROBE = `
const arrivals = [];
let pending = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  const now = process.hrtime.bigint().toString();
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  let off = 0;
  while (pending.length - off >= ${FRAME_BYTES}) {
    arrivals.push([pending.readUInt32LE(off), now]);
    off += ${FRAME_BYTES};
  }
  pending = pending.subarray(off);
});
process.stdin.on('end', () => process.stdout.write(JSON.stringify(arrivals) + '\\n'));
`;

/** Child-script start of both media stream servers: a ws server on a free port, which it prints. */
const WS_SERVER = `
const { WebSocketServer } = require(process.env.WS_MODULE);
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false }, () => {
  process.stdout.write('port ' + wss.address().port + '\\n');
});
`;

/** A Twilio-style media stream server: stamps each media message on arrival, reports at stop. */
const WS_PROBE = `${WS_SERVER}
wss.on('connection', (ws) => {
  const arrivals = [];
  ws.on('message', (data) => {
    const now = process.hrtime.bigint().toString();
    const msg = JSON.parse(data.toString());
    if (msg.event === 'media') arrivals.push([Number(msg.media.chunk) - 1, now]);
    else if (msg.event === 'stop') process.stdout.write(JSON.stringify(arrivals) + '\\n');
  });
  ws.on('close', () => wss.close());
});
`;

/** The packet index in a frame's first six samples (decoded µ-law), or -1 for anything else. */
const IDENTIFY = `
const TABLE = ${JSON.stringify(Array.from(ULAW_TO_LINEAR))};
const DIGIT = new Map();
for (let d = 0; d < 128; d++) DIGIT.set(TABLE[0xff - d], d);
const M0 = TABLE[${MAGIC[0]}];
const M1 = TABLE[${MAGIC[1]}];
function identify(sample) {
  if (sample(4) !== M0 || sample(5) !== M1) return -1;
  let index = 0;
  for (let i = 3; i >= 0; i--) {
    const d = DIGIT.get(sample(i));
    if (d === undefined) return -1;
    index = index * 128 + d;
  }
  return index;
}
`;

/** The engine for the end-to-end run: stamps each 320-byte frame when its last byte arrives, keeps the identified ones. */
const E2E_STDIN_PROBE = `${IDENTIFY}
const arrivals = [];
let pending = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  const now = process.hrtime.bigint().toString();
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  let off = 0;
  while (pending.length - off >= ${FRAME_BYTES}) {
    const frame = pending.subarray(off, off + ${FRAME_BYTES});
    const index = identify((i) => frame.readInt16LE(2 * i));
    if (index >= 0) arrivals.push([index, now]);
    off += ${FRAME_BYTES};
  }
  pending = pending.subarray(off);
});
process.stdin.on('end', () => process.stdout.write(JSON.stringify(arrivals) + '\\n'));
process.stdout.write('ready\\n');
`;

/** The media stream server for the end-to-end run: decodes each media payload and stamps the identified ones. */
const E2E_WS_PROBE = `${IDENTIFY}${WS_SERVER}
wss.on('connection', (ws) => {
  const arrivals = [];
  ws.on('message', (data) => {
    const now = process.hrtime.bigint().toString();
    const msg = JSON.parse(data.toString());
    if (msg.event === 'media') {
      const ulaw = Buffer.from(msg.media.payload, 'base64');
      const index = identify((i) => TABLE[ulaw[i]]);
      if (index >= 0) arrivals.push([index, now]);
    } else if (msg.event === 'stop') process.stdout.write(JSON.stringify(arrivals) + '\\n');
  });
  ws.on('close', () => wss.close());
});
`;

/**
 * The far end: sends prepared RTP datagrams to the bot every INTERVAL_MS on
 * its own clock (sleeping, then spinning the last 2 ms: pacing to a few µs,
 * whatever the bot's event loop does), from the hrtime given on stdin
 * ("go <ns>"). Reports the hrtime of each send, then exits at stdin EOF.
 */
const RTP_SENDER = `
const dgram = require('node:dgram');
const { readFileSync } = require('node:fs');
const packets = readFileSync(process.env.PACKETS_FILE);
const size = Number(process.env.PACKET_BYTES);
const count = packets.length / size;
const interval = BigInt(Math.round(Number(process.env.INTERVAL_MS) * 1e6));
const botPort = Number(process.env.BOT_PORT);
const socket = dgram.createSocket('udp4');
socket.on('message', () => {}); // the bot's priming packet and silence
socket.bind(0, '127.0.0.1', () => process.stdout.write('port ' + socket.address().port + '\\n'));
process.stdin.once('data', (data) => {
  const sent = [];
  const start = BigInt(String(data).trim().split(' ')[1]);
  let k = 0;
  const step = () => {
    while (k < count) {
      const due = start + BigInt(k) * interval;
      const aheadMs = Number(due - process.hrtime.bigint()) / 1e6;
      if (aheadMs > 2) {
        setTimeout(step, Math.floor(aheadMs - 2));
        return;
      }
      while (process.hrtime.bigint() < due);
      sent.push(process.hrtime.bigint().toString());
      socket.send(packets.subarray(k * size, (k + 1) * size), botPort, '127.0.0.1');
      k++;
    }
    setTimeout(() => process.stdout.write(JSON.stringify(sent) + '\\n'), ${PACKET_MS});
  };
  step();
});
process.stdin.on('end', () => {
  socket.close();
  process.exit(0);
});
`;

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** p50, p99 (nearest rank), min and max of `values` (ms); throws when empty. */
function spread(values: number[], what: string): Spread {
  if (values.length === 0) throw new Error(`no ${what}`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
  return {
    p50Ms: round(rank(0.5)),
    p99Ms: round(rank(0.99)),
    minMs: round(sorted[0]!),
    maxMs: round(sorted[sorted.length - 1]!),
  };
}

function figures(sent: bigint[], arrivals: Array<[number, string]>, warmup: number): LatencyFigures {
  const latencies: number[] = [];
  for (const [index, at] of arrivals) {
    const t0 = sent[index];
    if (index < warmup || t0 === undefined) continue;
    latencies.push(Number(BigInt(at) - t0) / 1e6);
  }
  const { p50Ms, p99Ms } = spread(latencies, 'frame arrived');
  return { p50Ms, p99Ms };
}

function indexedFrame(index: number): Int16Array {
  const frame = new Int16Array(FRAME_SAMPLES);
  for (let i = 2; i < FRAME_SAMPLES; i++)
    frame[i] = Math.round(8000 * Math.sin((index * FRAME_SAMPLES + i) / 9));
  // The index rides in the first two samples (the engine receives s16le).
  new DataView(frame.buffer).setUint32(0, index, true);
  return frame;
}

async function benchPipe(
  dir: string,
  frames: number,
  intervalMs: number,
  warmup: number,
): Promise<LatencyFigures> {
  const script = path.join(dir, 'stdin-probe.cjs');
  writeFileSync(script, STDIN_PROBE);
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const pipe = EnginePipe.start({
    command: `${quote(process.execPath)} ${quote(script)}`,
    call: { callId: 'bench', from: 'bench', to: 'bench' },
    maxBufferMs: 600_000,
    maxLineLength: 64 * 1024 * 1024,
  });
  let report: Array<[number, string]> | undefined;
  pipe.on('line', (_text, json) => {
    if (Array.isArray(json)) report = json as Array<[number, string]>;
  });
  pipe.on('error', () => {});
  const sent: bigint[] = [];
  for (let i = 0; i < frames; i++) {
    const frame = indexedFrame(i);
    sent[i] = process.hrtime.bigint();
    pipe.write(frame);
    await wait(intervalMs);
  }
  const result = await pipe.close();
  if (report === undefined) throw new Error(`stdin probe reported nothing (exit ${result.exitCode})`);
  return figures(sent, report, warmup);
}

async function benchWs(
  dir: string,
  frames: number,
  intervalMs: number,
  warmup: number,
): Promise<LatencyFigures> {
  const script = path.join(dir, 'ws-probe.cjs');
  writeFileSync(script, WS_PROBE);
  const wsModule = createRequire(import.meta.url).resolve('ws');
  const child: ChildProcess = spawn(process.execPath, [script], {
    env: { ...process.env, WS_MODULE: wsModule },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    const lines = createInterface({ input: child.stdout!, crlfDelay: Number.POSITIVE_INFINITY });
    const iterator = lines[Symbol.asyncIterator]();
    const first = await iterator.next();
    const port = /^port (\d+)$/.exec(first.done ? '' : first.value)?.[1];
    if (port === undefined) throw new Error('ws probe did not start');

    const client = new MediaStreamClient({ maxBufferMs: 600_000 });
    client.on('error', () => {});
    await client.connect(`ws://127.0.0.1:${port}/`, { callId: 'bench', from: 'bench', to: 'bench' });
    const sent: bigint[] = [];
    for (let i = 0; i < frames; i++) {
      const frame = indexedFrame(i);
      sent[i] = process.hrtime.bigint();
      client.sendFrame(frame);
      await wait(intervalMs);
    }
    const reported = iterator.next();
    await client.stop();
    const line = await reported;
    if (line.done) throw new Error('ws probe reported nothing');
    return figures(sent, JSON.parse(line.value) as Array<[number, string]>, warmup);
  } finally {
    await stopChild(child);
  }
}

/** The index carried by a payload's first six samples (see MAGIC), or -1. */
const DIGIT_OF_SAMPLE = new Map<number, number>();
for (let d = 0; d < 128; d++) DIGIT_OF_SAMPLE.set(ULAW_TO_LINEAR[0xff - d]!, d);
function identify(sample: (i: number) => number): number {
  if (sample(4) !== ULAW_TO_LINEAR[MAGIC[0]] || sample(5) !== ULAW_TO_LINEAR[MAGIC[1]]) return -1;
  let index = 0;
  for (let i = 3; i >= 0; i--) {
    const d = DIGIT_OF_SAMPLE.get(sample(i));
    if (d === undefined) return -1;
    index = index * 128 + d;
  }
  return index;
}

/** 160 µ-law bytes: the index and MAGIC up front, then a tone. */
function indexedPayload(index: number): Uint8Array {
  const payload = new Uint8Array(FRAME_SAMPLES);
  let rest = index;
  for (let i = 0; i < 4; i++) {
    payload[i] = 0xff - (rest % 128);
    rest = Math.floor(rest / 128);
  }
  payload[4] = MAGIC[0];
  payload[5] = MAGIC[1];
  for (let i = 6; i < FRAME_SAMPLES; i++)
    payload[i] = encodeUlaw(Math.round(8000 * Math.sin((index * FRAME_SAMPLES + i) / 9)));
  return payload;
}

/** Lines of a child's stdout, one at a time, each within a time limit. */
function lineReader(child: ChildProcess, what: string): (timeoutMs?: number) => Promise<string> {
  const iterator = createInterface({ input: child.stdout!, crlfDelay: Number.POSITIVE_INFINITY })[
    Symbol.asyncIterator
  ]();
  return async (timeoutMs = 10_000) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const line = await Promise.race([iterator.next(), timeout]);
      if (line.done) throw new Error(`${what} ended without answering`);
      return line.value;
    } finally {
      clearTimeout(timer);
    }
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** Offset to add to a performance.now() reading to get ms on the hrtime clock relative to `base`. */
function perfToHrtime(base: bigint): number {
  let best = Number.POSITIVE_INFINITY;
  let offset = 0;
  for (let i = 0; i < 50; i++) {
    const before = process.hrtime.bigint();
    const perf = performance.now();
    const after = process.hrtime.bigint();
    if (after - before < best) {
      best = Number(after - before);
      offset = Number((before + after) / 2n - base) / 1e6 - perf;
    }
  }
  return offset;
}

async function benchEndToEnd(
  dir: string,
  packets: number,
  warmup: number,
  slotPhaseMs: number,
): Promise<EndToEndFigures> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const wsScript = path.join(dir, 'e2e-ws-probe.cjs');
  const stdinScript = path.join(dir, 'e2e-stdin-probe.cjs');
  const senderScript = path.join(dir, 'rtp-sender.cjs');
  const packetsFile = path.join(dir, 'rtp.bin');
  writeFileSync(wsScript, E2E_WS_PROBE);
  writeFileSync(stdinScript, E2E_STDIN_PROBE);
  writeFileSync(senderScript, RTP_SENDER);
  // One stream as a far end sends it: the project's own RTP serializer, PCMU, 20 ms per packet.
  const ssrc = 0x5eed_ca11;
  writeFileSync(
    packetsFile,
    Buffer.concat(
      Array.from({ length: packets }, (_, k) =>
        serializeRtp({
          marker: k === 0,
          payloadType: 0,
          sequenceNumber: (4321 + k) & 0xffff,
          timestamp: (987_654_321 + k * FRAME_SAMPLES) >>> 0,
          ssrc,
          payload: indexedPayload(k),
        }),
      ),
    ),
  );
  const packetBytes = RTP_HEADER_BYTES + FRAME_SAMPLES;

  const children: ChildProcess[] = [];
  let socket: dgram.Socket | undefined;
  let session: MediaSession | undefined;
  let pipe: EnginePipe | undefined;
  let client: MediaStreamClient | undefined;
  try {
    // The media stream server, in its own process.
    const wsModule = createRequire(import.meta.url).resolve('ws');
    const wsChild = spawn(process.execPath, [wsScript], {
      env: { ...process.env, WS_MODULE: wsModule },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(wsChild);
    const wsLine = lineReader(wsChild, 'ws probe');
    const wsPort = /^port (\d+)$/.exec(await wsLine())?.[1];
    if (wsPort === undefined) throw new Error('ws probe did not start');

    // The call's RTP socket, then the far end, which needs its port.
    const rtp = dgram.createSocket('udp4');
    socket = rtp;
    rtp.bind(0, '127.0.0.1');
    await once(rtp, 'listening');
    const sender = spawn(process.execPath, [senderScript], {
      env: {
        ...process.env,
        PACKETS_FILE: packetsFile,
        PACKET_BYTES: String(packetBytes),
        INTERVAL_MS: String(PACKET_MS),
        BOT_PORT: String(rtp.address().port),
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    children.push(sender);
    const senderLine = lineReader(sender, 'RTP sender');
    const senderPort = /^port (\d+)$/.exec(await senderLine())?.[1];
    if (senderPort === undefined) throw new Error('RTP sender did not start');

    // Offer/answer as for an incoming call: the far end offers PCMU only.
    const offer = createOffer({
      address: '127.0.0.1',
      port: Number(senderPort),
      codecs: ['PCMU'],
      sessionId: '1',
      sessionVersion: 1,
    });
    const answer = negotiateAnswer(offer, {
      address: '127.0.0.1',
      port: rtp.address().port,
      sessionId: '2',
      sessionVersion: 1,
    });
    if (!answer.ok) throw new Error(`SDP negotiation failed: ${answer.reason}`);
    if (answer.media.codec !== 'PCMU') throw new Error(`negotiated ${answer.media.codec}, not PCMU`);

    // The engine, started as --pipe starts it (sh -c, own process group); RTP waits until it reads.
    const engine = EnginePipe.start({
      command: `${quote(process.execPath)} ${quote(stdinScript)}`,
      call: { callId: 'bench-e2e', from: 'bench', to: 'bench' },
      maxLineLength: 64 * 1024 * 1024,
    });
    pipe = engine;
    engine.on('error', () => {});
    let pipeReport: Array<[number, string]> | undefined;
    const engineReady = new Promise<void>((resolve) => {
      engine.on('line', (text, json) => {
        if (text === 'ready') resolve();
        else if (Array.isArray(json)) pipeReport = json as Array<[number, string]>;
      });
    });
    let readyTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      engineReady,
      new Promise<never>((_, reject) => {
        readyTimer = setTimeout(() => reject(new Error('engine probe did not start')), 10_000);
      }),
    ]).finally(() => clearTimeout(readyTimer));

    const stream = new MediaStreamClient();
    client = stream;
    stream.on('error', () => {});
    await stream.connect(`ws://127.0.0.1:${wsPort}/`, { callId: 'bench-e2e', from: 'bench', to: 'bench' });

    // Arrival stamps: registered before MediaSession's own 'message' listener, so it runs first.
    const arrivedAt: bigint[] = [];
    const arrivedDatagrams: Buffer[] = [];
    rtp.on('message', (msg) => {
      arrivedAt.push(process.hrtime.bigint());
      arrivedDatagrams.push(msg);
    });

    const t0 = performance.now();
    const call = new MediaSession({
      socket: rtp,
      negotiated: answer.media,
      t0,
      outbound: stream.outbound,
    });
    session = call;
    const recording = new WavSink(WavWriter.open(path.join(dir, 'e2e.wav')));
    call.on('frame', (frame, info) => recording.write(frame, info));
    // Emission stamps first, then the sinks in the order live calls attach them (pipe, then stream).
    const emitted = new Map<number, { at: bigint; position: number }>();
    call.on('liveFrame', (frame, info) => {
      const at = process.hrtime.bigint();
      if (!info.audio) return;
      const index = identify((i) => frame[i] ?? 0);
      if (index >= 0 && !emitted.has(index)) emitted.set(index, { at, position: info.position });
    });
    call.on('liveFrame', (frame) => engine.write(frame));
    call.on('liveFrame', (frame) => stream.sendFrame(frame));
    await call.prime();
    await wait(200);

    // The first packet leaves slotPhaseMs after a slot boundary of the call's playout grid, ≥ 100 ms from now.
    const base = process.hrtime.bigint();
    const perfOffset = perfToHrtime(base);
    const slot = Math.ceil((performance.now() + 100 - t0) / PACKET_MS);
    const startMs = t0 + slot * PACKET_MS + slotPhaseMs + perfOffset;
    sender.stdin!.write(`go ${base + BigInt(Math.round(startMs * 1e6))}\n`);
    const sentLine = await senderLine(packets * PACKET_MS + 10_000);
    // The last packet plays out the live delay after it arrived.
    await wait(LIVE_TARGET_MAX_MS + 2 * PACKET_MS + 200);
    const stats = call.stop();
    const delayMs = stats.liveTargetMs;
    recording.close();
    const wsReported = wsLine();
    const [engineResult] = await Promise.all([engine.close(), stream.stop()]);
    const wsReport = JSON.parse(await wsReported) as Array<[number, string]>;
    if (pipeReport === undefined)
      throw new Error(`engine probe reported nothing (exit ${engineResult.exitCode})`);

    // Per packet: the four stamps, on one clock.
    const sentAt = (JSON.parse(sentLine) as string[]).map((t) => BigInt(t));
    const arrival = new Map<number, bigint>();
    arrivedDatagrams.forEach((msg, i) => {
      if (msg.length !== packetBytes) return;
      const index = identify((j) => ULAW_TO_LINEAR[msg[RTP_HEADER_BYTES + j]!]!);
      if (index >= 0 && !arrival.has(index)) arrival.set(index, arrivedAt[i]!);
    });
    const firstOf = (report: Array<[number, string]>) => {
      const at = new Map<number, bigint>();
      for (const [index, time] of report) if (!at.has(index)) at.set(index, BigInt(time));
      return at;
    };
    const consumers = { pipe: firstOf(pipeReport), ws: firstOf(wsReport) };

    const ms = (t: bigint) => Number(t - base) / 1e6;
    const samplesPerMs = answer.media.clockRate / 1000;
    const sendToArrival: number[] = [];
    const hold: number[] = [];
    const slotOffset: number[] = [];
    const lateness: number[] = [];
    let onGrid = 0;
    const sinks = {
      pipe: { total: [] as number[], beyond: [] as number[], minusDelay: [] as number[] },
      ws: { total: [] as number[], beyond: [] as number[], minusDelay: [] as number[] },
    };
    let counted = 0;
    // The playout's phase is the earliest arrival into its slot seen so far (the
    // stream's baseline); a packet's frame is due that far into its slot plus the delay.
    const phaseOf = (k: number): number | undefined => {
      const arrived = arrival.get(k);
      const emit = emitted.get(k);
      if (arrived === undefined || emit === undefined) return undefined;
      return ms(arrived) - (t0 + emit.position / samplesPerMs + perfOffset);
    };
    let baseline = Number.POSITIVE_INFINITY;
    for (let k = 0; k < warmup; k++) baseline = Math.min(baseline, phaseOf(k) ?? baseline);
    for (let k = warmup; k < packets; k++) {
      const arrived = arrival.get(k);
      const emit = emitted.get(k);
      if (arrived === undefined || emit === undefined) continue;
      counted++;
      const a = ms(arrived);
      const e = ms(emit.at);
      const sent = sentAt[k];
      if (sent !== undefined) sendToArrival.push(a - ms(sent));
      hold.push(e - a);
      const slotStart = t0 + emit.position / samplesPerMs + perfOffset;
      const offset = a - slotStart;
      slotOffset.push(offset);
      if (offset >= 0 && offset < PACKET_MS) onGrid++;
      baseline = Math.min(baseline, offset);
      lateness.push(e - (slotStart + baseline + delayMs));
      for (const name of ['pipe', 'ws'] as const) {
        const at = consumers[name].get(k);
        if (at === undefined) continue;
        const c = ms(at);
        sinks[name].total.push(c - a);
        sinks[name].beyond.push(c - e);
        sinks[name].minusDelay.push(c - a - delayMs);
      }
    }
    const sinkFigures = (name: 'pipe' | 'ws', dropped: number): EndToEndSink => ({
      received: sinks[name].total.length,
      dropped,
      total: spread(sinks[name].total, `${name} arrivals`),
      beyondHold: spread(sinks[name].beyond, `${name} arrivals`),
      totalMinusDelay: spread(sinks[name].minusDelay, `${name} arrivals`),
    });
    return {
      packetsSent: sentAt.length,
      warmupPackets: warmup,
      slotPhaseMs: round(slotPhaseMs),
      packetsCounted: counted,
      jitterDelayMs: delayMs,
      sendToArrival: spread(sendToArrival, 'packet sent'),
      jitterHold: spread(hold, 'packet played out'),
      slotOffset: spread(slotOffset, 'packet played out'),
      onGrid,
      playoutLateness: spread(lateness, 'packet played out'),
      pipe: sinkFigures('pipe', engineResult.framesDropped),
      ws: sinkFigures('ws', stream.stats.dropped),
      session: {
        received: stats.received,
        lost: stats.lost,
        late: stats.late,
        resync: stats.resync,
        reordered: stats.reordered,
        duplicate: stats.duplicate,
      },
    };
  } finally {
    if (session !== undefined) session.stop();
    else socket?.close();
    await Promise.all([pipe?.close(), client?.stop()]);
    for (const child of children) child.stdin?.end();
    await Promise.all(children.map(stopChild));
  }
}

export async function benchStreamLatency(
  options: StreamLatencyOptions = {},
): Promise<{ pipe: LatencyFigures; ws: LatencyFigures; endToEnd: EndToEndFigures }> {
  const frames = options.frames ?? 1000;
  const intervalMs = options.intervalMs ?? 5;
  const warmup = Math.min(options.warmupFrames ?? 50, Math.max(0, frames - 1));
  const packets = options.packets ?? 500;
  const warmupPackets = Math.min(options.warmupPackets ?? 25, Math.max(0, packets - 1));
  const dir = mkdtempSync(path.join(tmpdir(), 'stream-latency-'));
  try {
    const pipe = await benchPipe(dir, frames, intervalMs, warmup);
    const ws = await benchWs(dir, frames, intervalMs, warmup);
    const phase = options.slotPhaseMs ?? Math.random() * PACKET_MS;
    if (!(phase >= 0 && phase < PACKET_MS)) throw new RangeError(`slotPhaseMs must be in [0, ${PACKET_MS})`);
    const endToEnd = await benchEndToEnd(dir, packets, warmupPackets, phase);
    return { pipe, ws, endToEnd };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
