/**
 * What a flood costs the bot. A real MediaSession on a UDP socket records a
 * caller (50 packets/s from a separate process) while that process floods
 * the port at 20 000 packets/s for 3 s each: valid RTP from a foreign
 * address, datagrams that are not RTP, and forged RTP from the caller's own
 * address with random SSRCs and sequence numbers (the probation path).
 * Reported per phase: this process's CPU (% of one core, process.cpuUsage),
 * what the flood sender achieved, and whether every caller packet reached
 * the recording. Plus, in-process and without sockets, ReceivePath's cost per
 * flood packet.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { RtpPortPool } from '../src/media/port-pool.js';
import { ReceivePath } from '../src/media/receive-path.js';
import { MediaSession } from '../src/media/session.js';
import { serializeRtp } from '../src/rtp/packet.js';
import { WavWriter } from '../src/sinks/wav.js';
import { WavSink } from '../src/sinks/wav-sink.js';

export interface FloodPhase {
  name: string;
  /** Flood packets the sender put on the wire per second. */
  floodPps: number;
  /** This process's CPU during the phase, % of one core. */
  cpuPercent: number;
}

export interface FloodFigures {
  phases: FloodPhase[];
  callerSent: number;
  callerReceived: number;
  lost: number;
  late: number;
  foreignSource: number;
  invalid: number;
  probationDropped: number;
  /** ReceivePath.receive per flood packet, ns (median of rounds), by kind. */
  nsPerPacket: { foreign: number; malformed: number; forged: number };
}

const PHASE_MS = 3000;
const RATE = 20_000;

/** The far end: a caller at 50 packets/s for 4 phases, and from phase 1 on a flood of the phase's kind. */
const CHILD = `
const dgram = require('node:dgram');
const PHASE_MS = ${PHASE_MS}, RATE = ${RATE};
const caller = dgram.createSocket('udp4'), stranger = dgram.createSocket('udp4');
for (const s of [caller, stranger]) s.on('message', () => {});
let bound = 0;
for (const s of [caller, stranger]) s.bind(0, '127.0.0.1', () => { if (++bound === 2) process.stdout.write('ports ' + caller.address().port + '\\n'); });
function rtp(seq, ts, ssrc, payloadByte) {
  const b = Buffer.alloc(12 + 160, payloadByte);
  b[0] = 0x80; b[1] = 0; b.writeUInt16BE(seq & 0xffff, 2); b.writeUInt32BE(ts >>> 0, 4); b.writeUInt32BE(ssrc >>> 0, 8);
  return b;
}
process.stdin.once('data', (data) => {
  const target = Number(String(data).trim().split(' ')[1]);
  const t0 = performance.now();
  let k = 0;
  const flood = [0, 0, 0, 0];
  let seed = 1;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  const junk = Buffer.from([0, 1, 2, 3, 4]);
  const step = () => {
    const now = performance.now() - t0;
    while (k * 20 <= now && k * 20 < 4 * PHASE_MS) {
      caller.send(rtp(1000 + k, k * 160, 0x1234, 0x20 + (k % 64)), target, '127.0.0.1');
      k++;
    }
    const phase = Math.floor(now / PHASE_MS);
    if (phase >= 1 && phase <= 3) {
      const due = Math.floor((now - phase * PHASE_MS) * RATE / 1000);
      for (let n = 0; flood[phase] < due && n < 200; n++, flood[phase]++) {
        if (phase === 1) stranger.send(rtp(flood[phase], flood[phase] * 160, 0x5a1e, 0x30), target, '127.0.0.1');
        else if (phase === 2) caller.send(junk, target, '127.0.0.1');
        else caller.send(rtp(rnd(), rnd(), rnd(), 0x40), target, '127.0.0.1');
      }
    }
    if (now >= 4 * PHASE_MS + 200) {
      process.stdout.write('done ' + k + ' ' + flood.join(' ') + '\\n');
      return;
    }
    setImmediate(step);
  };
  step();
});
`;

function datagrams(kind: 'foreign' | 'malformed' | 'forged', count: number): Buffer[] {
  let seed = 5;
  const rnd = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed;
  };
  return Array.from({ length: count }, (_, i) =>
    kind === 'malformed'
      ? Buffer.from([0, 1, 2, 3, i & 0xff])
      : serializeRtp({
          payloadType: 0,
          sequenceNumber: kind === 'foreign' ? i & 0xffff : rnd() & 0xffff,
          timestamp: kind === 'foreign' ? i * 160 : rnd(),
          ssrc: kind === 'foreign' ? 0x5a1e : rnd(),
          payload: new Uint8Array(160).fill(0x30),
        }),
  );
}

/** ns per flood datagram through ReceivePath while latched to a caller (median of 5 rounds). */
function inProcess(kind: 'foreign' | 'malformed' | 'forged'): number {
  const caller = { address: '192.0.2.10', port: 40000 };
  const stranger = { address: '198.51.100.7', port: 5004 };
  const from = kind === 'foreign' ? stranger : caller;
  const packets = datagrams(kind, 100_000);
  const costs: number[] = [];
  for (let round = 0; round < 6; round++) {
    const path = new ReceivePath({ media: { codec: 'PCMU', payloadType: 0 }, expected: caller });
    path.receive(
      serializeRtp({
        payloadType: 0,
        sequenceNumber: 1,
        timestamp: 0,
        ssrc: 0x1234,
        payload: new Uint8Array(160),
      }),
      caller.address,
      caller.port,
      0,
    );
    const start = performance.now();
    for (let i = 0; i < packets.length; i++)
      path.receive(packets[i]!, from.address, from.port, 160 + (i >> 6));
    const ns = ((performance.now() - start) * 1e6) / packets.length;
    if (round > 0) costs.push(ns);
  }
  costs.sort((a, b) => a - b);
  return Math.round(costs[Math.floor(costs.length / 2)]!);
}

export async function benchFlood(): Promise<FloodFigures> {
  const nsPerPacket = {
    foreign: inProcess('foreign'),
    malformed: inProcess('malformed'),
    forged: inProcess('forged'),
  };
  const dir = mkdtempSync(path.join(tmpdir(), 'rc-bench-flood-'));
  let child: ChildProcess | undefined;
  let session: MediaSession | undefined;
  try {
    child = spawn(process.execPath, ['-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! });
    const next = () => new Promise<string>((resolve) => lines.once('line', resolve));
    const callerPort = Number((await next()).split(' ')[1]);
    // A socket as calls get them (RtpPortPool: its receive buffer too).
    const socket = await new RtpPortPool({ min: 40000, max: 60000 }, { address: '127.0.0.1' }).allocate();
    const t0 = performance.now();
    session = new MediaSession({
      socket,
      t0,
      negotiated: {
        codec: 'PCMU',
        payloadType: 0,
        clockRate: 8000,
        remoteAddress: '127.0.0.1',
        remotePort: callerPort,
        ptime: 20,
        direction: 'sendrecv',
        onHold: false,
      },
    });
    const recording = new WavSink(WavWriter.open(path.join(dir, 'flood.wav')));
    session.on('frame', (f, info) => recording.write(f, info));
    await session.prime();
    const done = next();
    child.stdin!.write(`go ${socket.address().port}\n`);
    const goAt = performance.now();
    const cpu: number[] = [];
    for (let phase = 0; phase <= 4; phase++) {
      const due = goAt + phase * PHASE_MS;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
      const u = process.cpuUsage();
      cpu.push(u.user + u.system);
    }
    const [, sent, ...flood] = (await done).split(' ').map(Number);
    // Let the last second of the recording come out, then stop.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const stats = session.stop();
    recording.close();
    const names = ['caller only', 'foreign RTP flood', 'malformed flood', 'forged SSRC flood'];
    return {
      phases: names.map((name, i) => ({
        name,
        floodPps: Math.round(((flood[i] ?? 0) * 1000) / PHASE_MS),
        cpuPercent: Math.round(((cpu[i + 1]! - cpu[i]!) / 1000 / PHASE_MS) * 1000) / 10,
      })),
      callerSent: sent!,
      callerReceived: stats.received,
      lost: stats.lost,
      late: stats.late,
      foreignSource: stats.foreignSource,
      invalid: stats.invalid,
      probationDropped: stats.probationDropped,
      nsPerPacket,
    };
  } finally {
    session?.stop();
    child?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchFlood(), null, 2));
}
