/**
 * Real brokers for tests: redis-server and nats-server (with JetStream), each
 * on a free loopback port with its data in a temp dir, so that a restart
 * keeps what was stored (Redis with an fsync'd append-only file, JetStream
 * with file storage), as a production broker would.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { toolPath } from './tools.js';

export interface Broker {
  readonly kind: 'redis' | 'nats';
  readonly port: number;
  readonly url: string;
  /** SIGTERM and wait (the broker flushes what it holds). */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  running(): boolean;
  /** Stops it and removes its data. */
  close(): Promise<void>;
}

export async function startRedis(): Promise<Broker> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-redis-'));
  return startBroker('redis', dir, (port) => ({
    cmd: toolPath('redis-server'),
    args: [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--protected-mode',
      'no',
      '--daemonize',
      'no',
      '--loglevel',
      'notice',
    ],
    ready: /Ready to accept connections/,
    url: `redis://127.0.0.1:${port}`,
  }));
}

export async function startNats(): Promise<Broker> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-nats-'));
  return startBroker('nats', dir, (port) => ({
    cmd: toolPath('nats-server'),
    args: ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir],
    ready: /Server is ready/,
    url: `nats://127.0.0.1:${port}`,
  }));
}

type Launch = (port: number) => { cmd: string; args: string[]; ready: RegExp; url: string };

async function startBroker(kind: 'redis' | 'nats', dir: string, launch: Launch): Promise<Broker> {
  let child: ChildProcess | undefined;
  let port = 0;
  const run = async (): Promise<void> => {
    const { cmd, args, ready } = launch(port);
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${kind} did not start within 20 s:\n${out}`)), 20_000);
      const onData = (d: Buffer) => {
        out += d;
        if (ready.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${kind} exited (${code}) while starting:\n${out}`));
      });
    });
  };
  for (let attempt = 0; ; attempt++) {
    port = await freePort('tcp');
    try {
      await run();
      break;
    } catch (err) {
      // The port was taken between freePort() and the bind: try another.
      if (attempt >= 4 || !/address already in use|bind/i.test(String(err))) throw err;
    }
  }
  const waitExit = (signal: NodeJS.Signals) => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill(signal);
    });
  };
  process.on('exit', () => child?.kill('SIGKILL'));
  return {
    kind,
    get port() {
      return port;
    },
    url: launch(port).url,
    stop: () => waitExit('SIGTERM'),
    kill: () => waitExit('SIGKILL'),
    start: run,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    close: async () => {
      await waitExit('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
