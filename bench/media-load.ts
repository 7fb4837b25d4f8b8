/**
 * The media path of N calls in one process, without SIP: N real
 * MediaSessions on loopback UDP sockets (each behind an RtpTransport, its
 * frames through a FrameFanOut into a WavSink and a WAV file, as a call
 * wires them), fed by a separate process that sends each a 20 ms PCMU
 * packet every 20 ms (the calls' phases spread over the 20 ms) and takes
 * their silence. What is measured in this process while every call runs:
 * CPU (process.cpuUsage: receive and send syscalls, the media scheduler,
 * jitter buffers, WAV writes), per call per 20 ms; event-loop delay; GC
 * pauses; and that nothing was lost or late.
 *
 *   node --import tsx bench/media-load.ts [--calls 500] [--seconds 20]
 *
 * It is the capacity bench's media share alone, quick to run: the A/B
 * bench for changes to the per-packet and per-frame path.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { FrameFanOut } from '../src/call/frame-fanout.js';
import { RtpPortPool } from '../src/media/port-pool.js';
import { RtpTransport } from '../src/media/rtp-transport.js';
import { MediaSession } from '../src/media/session.js';
import { WavWriter } from '../src/sinks/wav.js';
import { WavSink } from '../src/sinks/wav-sink.js';
import { freeUdpPortRange } from '../test/helpers/ports.js';

export interface MediaLoadFigures {
  calls: number;
  seconds: number;
  /** This process while every call runs, % of one core. */
  cpuPercent: number;
  /** CPU per call per 20 ms frame, µs. */
  perCallUsPer20Ms: number;
  /** The sender process, % of one core. */
  senderCpuPercent: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  gc: { pauses: number; maxMs: number; totalMs: number };
  received: number;
  lost: number;
  late: number;
  /** Packets the sessions sent that reached the sender. */
  sentReceived: number;
}

/** The far end of every call: one socket, a packet per call every 20 ms, phases spread. */
const SENDER = `
const dgram = require('node:dgram');
const s = dgram.createSocket('udp4');
let got = 0;
s.on('message', () => { got++; });
s.bind(0, '127.0.0.1', () => process.stdout.write('port ' + s.address().port + '\\n'));
process.stdin.once('data', (data) => {
  const ports = String(data).trim().split(' ').slice(1).map(Number);
  const n = ports.length;
  const payloads = Array.from({ length: 50 }, (_, p) => {
    const b = Buffer.alloc(160);
    for (let i = 0; i < 160; i++) b[i] = 0x10 + ((p * 7 + i * 3) % 0x60);
    return b;
  });
  const t0 = performance.now();
  const next = new Array(n).fill(0);
  const end = Number(String(data).trim().split(' ')[0]);
  const step = () => {
    const now = performance.now() - t0;
    for (let c = 0; c < n; c++) {
      const phase = (c * 20) / n;
      while (phase + next[c] * 20 <= now && next[c] * 20 < end) {
        const k = next[c]++;
        const b = Buffer.allocUnsafe(172);
        b[0] = 0x80; b[1] = 0; b.writeUInt16BE((1000 + k) & 0xffff, 2); b.writeUInt32BE((k * 160) >>> 0, 4);
        b.writeUInt32BE((0x1000 + c) >>> 0, 8);
        payloads[k % 50].copy(b, 12);
        s.send(b, ports[c], '127.0.0.1');
      }
    }
    if (now > end + 300) {
      const u = process.cpuUsage();
      process.stdout.write('done ' + got + ' ' + (u.user + u.system) + ' ' + Math.round(now) + '\\n');
      return;
    }
    setTimeout(step, 1);
  };
  step();
});
`;

export async function benchMediaLoad(
  options: { calls?: number; seconds?: number } = {},
): Promise<MediaLoadFigures> {
  const calls = options.calls ?? 500;
  const seconds = options.seconds ?? 20;
  const dir = mkdtempSync(path.join(tmpdir(), 'rcsp-media-load-'));
  const base = await freeUdpPortRange(calls + 20);
  const pool = new RtpPortPool({ min: base, max: base + calls + 19 }, { address: '127.0.0.1' });
  const sessions: { media: MediaSession; fanOut: FrameFanOut }[] = [];
  let sender: ChildProcess | undefined;
  try {
    sender = spawn(process.execPath, ['-e', SENDER], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: sender.stdout! });
    const line = () => new Promise<string>((resolve) => lines.once('line', resolve));
    const senderPort = Number((await line()).split(' ')[1]);
    for (let i = 0; i < calls; i++) {
      const socket = await pool.allocate();
      const transport = new RtpTransport(socket);
      const wav = WavWriter.open(path.join(dir, `${i}.wav`), { sampleRate: 8000 });
      const fanOut = new FrameFanOut(
        () => {},
        () => {},
      );
      fanOut.setRecording(new WavSink(wav));
      const media = new MediaSession({
        socket: transport,
        negotiated: {
          codec: 'PCMU',
          payloadType: 0,
          clockRate: 8000,
          sampleRate: 8000,
          ptime: 20,
          remoteAddress: '127.0.0.1',
          remotePort: senderPort,
          direction: 'sendrecv',
          onHold: false,
        },
        sampleRate: 8000,
        t0: performance.now(),
      });
      media.on('frame', (frame, info) => fanOut.writeRecording(frame, info));
      media.on('liveFrame', (frame, info) => fanOut.writeLive(frame, info));
      await media.prime();
      sessions.push({ media, fanOut });
    }
    const ports = sessions.map((s) => s.media.localAddress.port);
    const runMs = (seconds + 4) * 1000;
    sender.stdin!.write(`${runMs} ${ports.join(' ')}\n`);
    // Two seconds for every stream to start and the live delays to settle.
    await new Promise((r) => setTimeout(r, 2000));
    const eld = monitorEventLoopDelay({ resolution: 5 });
    eld.enable();
    const gc: number[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) gc.push(e.duration);
    });
    observer.observe({ entryTypes: ['gc'] });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu = process.cpuUsage(cpu0);
    const wallMs = performance.now() - t0;
    eld.disable();
    observer.disconnect();
    const done = (await line()).split(' ');
    let received = 0;
    let lost = 0;
    let late = 0;
    for (const s of sessions) {
      const st = s.media.stop();
      s.fanOut.closeRecording();
      received += st.received;
      lost += st.lost;
      late += st.late;
    }
    const cpuPercent = ((cpu.user + cpu.system) / 1000 / wallMs) * 100;
    const ms = (ns: number) => Math.max(0, Math.round(ns / 1e3 - 5000) / 1e3);
    const round1 = (x: number) => Math.round(x * 10) / 10;
    gc.sort((a, b) => a - b);
    return {
      calls,
      seconds,
      cpuPercent: round1(cpuPercent),
      perCallUsPer20Ms: round1(((cpuPercent / 100) * 20_000) / calls),
      senderCpuPercent: round1((Number(done[2]) / 1000 / Number(done[3])) * 100),
      eventLoopDelayMs: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max) },
      gc: {
        pauses: gc.length,
        maxMs: round1(gc.at(-1) ?? 0),
        totalMs: round1(gc.reduce((a, b) => a + b, 0)),
      },
      received,
      lost,
      late,
      sentReceived: Number(done[1]),
    };
  } finally {
    for (const s of sessions) {
      s.media.stop();
      s.fanOut.closeRecording();
    }
    sender?.kill();
    rmSync(dir, { recursive: true, force: true });
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
  console.log(
    JSON.stringify(
      await benchMediaLoad({
        ...(calls !== undefined && { calls }),
        ...(seconds !== undefined && { seconds }),
      }),
    ),
  );
}
