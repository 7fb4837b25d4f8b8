/**
 * A far end in a process of its own, so its packets keep their schedule
 * while the bot's process is busy (and vice versa): two UDP sockets on
 * loopback, the caller's (the address in the SDP offer) and a stranger's,
 * and a plan of datagrams, each sent from one of them at its offset on the
 * child's monotonic clock (sleeping, then spinning the last 2 ms).
 *
 * Start it, put `callerPort` in the SDP offer, then `go(target)`; `done`
 * resolves with how late the child itself was against its plan (ms).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

export interface PlannedDatagram {
  /** ms after `go`. */
  at: number;
  from: 'caller' | 'stranger';
  bytes: Uint8Array;
}

const SCRIPT = `
const dgram = require('node:dgram');
const { readFileSync } = require('node:fs');
const plan = JSON.parse(readFileSync(process.argv[1], 'utf8')).map((p) => ({ ...p, bytes: Buffer.from(p.hex, 'hex') }));
const sockets = { caller: dgram.createSocket('udp4'), stranger: dgram.createSocket('udp4') };
for (const s of Object.values(sockets)) s.on('message', () => {});
let bound = 0;
for (const s of Object.values(sockets)) s.bind(0, '127.0.0.1', () => {
  if (++bound === 2) process.stdout.write('ports ' + sockets.caller.address().port + ' ' + sockets.stranger.address().port + '\\n');
});
process.stdin.once('data', (data) => {
  const target = Number(String(data).trim().split(' ')[1]);
  const t0 = performance.now();
  let i = 0;
  let late = 0;
  const step = () => {
    while (i < plan.length) {
      const due = t0 + plan[i].at;
      const ahead = due - performance.now();
      if (ahead > 2) { setTimeout(step, Math.floor(ahead - 2)); return; }
      while (performance.now() < due);
      late = Math.max(late, performance.now() - due);
      const p = plan[i++];
      sockets[p.from].send(p.bytes, target, '127.0.0.1');
    }
    setTimeout(() => {
      process.stdout.write('late ' + late + '\\n');
      for (const s of Object.values(sockets)) s.close();
    }, 50);
  };
  step();
});
`;

export interface RtpChild {
  callerPort: number;
  strangerPort: number;
  go(target: number): void;
  /** Resolves when everything was sent, with the child's worst lateness (ms). */
  done: Promise<number>;
  kill(): void;
}

export async function startRtpChild(plan: PlannedDatagram[]): Promise<RtpChild> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-rtp-child-'));
  const file = path.join(dir, 'plan.json');
  writeFileSync(
    file,
    JSON.stringify(
      [...plan]
        .sort((a, b) => a.at - b.at)
        .map((p) => ({ at: p.at, from: p.from, hex: Buffer.from(p.bytes).toString('hex') })),
    ),
  );
  const child: ChildProcess = spawn(process.execPath, ['-e', SCRIPT, file], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  let onPorts: (ports: [number, number]) => void = () => {};
  let onLate: (late: number) => void = () => {};
  const ports = new Promise<[number, number]>((resolve) => {
    onPorts = resolve;
  });
  const done = new Promise<number>((resolve) => {
    onLate = resolve;
  });
  lines.on('line', (line) => {
    const [word, a, b] = line.split(' ');
    if (word === 'ports') onPorts([Number(a), Number(b)]);
    if (word === 'late') onLate(Number(a));
  });
  child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const [callerPort, strangerPort] = await ports;
  return {
    callerPort,
    strangerPort,
    go: (target) => child.stdin!.write(`go ${target}\n`),
    done,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
