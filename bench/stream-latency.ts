/**
 * Live-stream latency: from a frame being handed to `EnginePipe.write()` /
 * `MediaStreamClient.sendFrame()` to its bytes arriving in a real child
 * process (the engine's stdin; a `ws` server in its own process).
 *
 * Both sides stamp with `process.hrtime.bigint()`, which is CLOCK_MONOTONIC
 * on Linux (mach_absolute_time on macOS): one clock for every process on the
 * machine, so send and arrival stamps from different processes compare
 * directly, without wall-clock skew.
 *
 * Frames are paced faster than real time (default one per 5 ms, 1000 frames:
 * 20 s of audio in ~5 s per transport); the first frames are a warm-up and
 * are not counted. Prints nothing; returns the figures.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { EnginePipe } from '../src/sinks/engine-pipe.js';
import { MediaStreamClient } from '../src/sinks/media-stream.js';

export interface LatencyFigures {
  p50Ms: number;
  p99Ms: number;
}

export interface StreamLatencyOptions {
  /** Frames per transport, warm-up included; default 1000. */
  frames?: number;
  /** Pause between frames; default 5 ms. */
  intervalMs?: number;
  /** Leading frames left out of the figures; default 50. */
  warmupFrames?: number;
}

const FRAME_SAMPLES = 160;
const FRAME_BYTES = FRAME_SAMPLES * 2;

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

/** A Twilio-style media stream server: stamps each media message on arrival, reports at stop. */
const WS_PROBE = `
const { WebSocketServer } = require(process.env.WS_MODULE);
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false }, () => {
  process.stdout.write('port ' + wss.address().port + '\\n');
});
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

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function figures(sent: bigint[], arrivals: Array<[number, string]>, warmup: number): LatencyFigures {
  const latencies: number[] = [];
  for (const [index, at] of arrivals) {
    const t0 = sent[index];
    if (index < warmup || t0 === undefined) continue;
    latencies.push(Number(BigInt(at) - t0) / 1e6);
  }
  if (latencies.length === 0) throw new Error('no frame arrived');
  latencies.sort((a, b) => a - b);
  const rank = (p: number) => latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)]!;
  const round = (ms: number) => Math.round(ms * 1000) / 1000;
  return { p50Ms: round(rank(0.5)), p99Ms: round(rank(0.99)) };
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
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  }
}

export async function benchStreamLatency(
  options: StreamLatencyOptions = {},
): Promise<{ pipe: LatencyFigures; ws: LatencyFigures }> {
  const frames = options.frames ?? 1000;
  const intervalMs = options.intervalMs ?? 5;
  const warmup = Math.min(options.warmupFrames ?? 50, Math.max(0, frames - 1));
  const dir = mkdtempSync(path.join(tmpdir(), 'stream-latency-'));
  try {
    const pipe = await benchPipe(dir, frames, intervalMs, warmup);
    const ws = await benchWs(dir, frames, intervalMs, warmup);
    return { pipe, ws };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
