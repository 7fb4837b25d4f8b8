/**
 * A SIP user agent program (baresip, linphonec) run for an interop test: its
 * output as timestamped lines, waiters for a line to appear, and a stop() that
 * leaves nothing behind.
 *
 * Process hygiene as in the Kamailio harness: the program runs in its own
 * process group (signals go to the whole group), a process 'exit' hook kills
 * whatever is still running, and a tiny detached watchdog shell kills the
 * group and removes the run directory once this Node process is gone by any
 * means (its stdin pipe reaches EOF).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';

export interface UaLine {
  /** Milliseconds since the program was started (performance.now based). */
  atMs: number;
  /** 'out' or 'err': which stream the line came on. */
  stream: 'out' | 'err';
  /** The line without its newline and without ANSI colour codes. */
  text: string;
  /** Index in this program's output, from 0. */
  seq: number;
}

export interface UaProcessOptions {
  /** Name used in messages ("baresip"). */
  name: string;
  file: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep stdin open as a pipe (programs that read commands, or exit at EOF). Default false. */
  stdin?: boolean;
  /** Removed by stop() (and by the watchdog if this process dies). */
  runDir: string;
  /** How the program is asked to stop: a signal, or text written to its stdin. Default SIGTERM. */
  stopWith?: NodeJS.Signals | { stdin: string };
  /** How long stop() waits before SIGKILL. Default 5000 ms. */
  stopTimeoutMs?: number;
}

/** Lines kept; older ones are dropped (a chatty program must not grow the test's heap without bound). */
const MAX_LINES = 100_000;
const ANSI = /\x1b\[[0-9;]*m/g;

const live = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of live) killGroup(pgid, 'SIGKILL');
  });
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is gone
  }
}

interface Waiter {
  pattern: RegExp;
  from: number;
  resolve: (match: { line: UaLine; match: RegExpExecArray }) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class UaProcess {
  readonly name: string;
  readonly pid: number;
  readonly runDir: string;
  /** Resolves once the program has exited and its output is drained. */
  readonly closed: Promise<void>;
  readonly #child: ChildProcess;
  readonly #watchdog: ChildProcess | undefined;
  readonly #t0 = performance.now();
  readonly #stopWith: NodeJS.Signals | { stdin: string };
  readonly #stopTimeoutMs: number;
  #lines: UaLine[] = [];
  #dropped = 0;
  #partial: Record<'out' | 'err', string> = { out: '', err: '' };
  #waiters: Waiter[] = [];
  #exitStatus: string | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: UaProcessOptions) {
    this.name = options.name;
    this.runDir = options.runDir;
    this.#stopWith = options.stopWith ?? 'SIGTERM';
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 5000;
    installExitHook();
    this.#child = spawn(options.file, options.args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    this.#child.stdin?.on('error', () => {}); // EPIPE after exit: reported through 'exit'
    let closedResolve!: () => void;
    this.closed = new Promise((resolve) => {
      closedResolve = resolve;
    });
    this.#child.once('close', (code, signal) => {
      this.#exitStatus ??= signal === null ? `exit code ${code}` : `signal ${signal}`;
      this.#flush();
      this.#failWaiters();
      closedResolve();
    });
    this.#child.once('error', (error) => {
      this.#exitStatus = `spawn error: ${error.message}`;
      this.#failWaiters();
      closedResolve();
    });
    const pid = this.#child.pid;
    this.pid = pid ?? -1;
    if (pid === undefined) {
      this.#watchdog = undefined;
      return;
    }
    live.add(pid);
    this.#watchdog = startWatchdog(pid, this.runDir, this.name);
    for (const stream of ['out', 'err'] as const) {
      const source = stream === 'out' ? this.#child.stdout! : this.#child.stderr!;
      source.setEncoding('utf8');
      source.on('data', (chunk: string) => this.#onData(stream, chunk));
    }
  }

  /** Why the program ended ("exit code 0", "signal SIGTERM"), or undefined while it runs. */
  get exitStatus(): string | undefined {
    return this.#exitStatus;
  }

  get running(): boolean {
    return this.#exitStatus === undefined && this.pid > 0;
  }

  /** Every line so far (the oldest are dropped past 100 000). */
  lines(): readonly UaLine[] {
    return this.#lines;
  }

  /** The whole output as text, for error messages. */
  output(lastLines = Number.POSITIVE_INFINITY): string {
    const lines = this.#lines.slice(Number.isFinite(lastLines) ? -lastLines : 0);
    return lines.map((l) => `${l.atMs.toFixed(0).padStart(6)} ${l.stream} ${l.text}`).join('\n');
  }

  /** Sequence number the next line will get: pass it as `from` to wait only for lines after now. */
  get nextSeq(): number {
    return this.#dropped + this.#lines.length;
  }

  /**
   * Resolves with the first line (at index `from` or later) that matches
   * `pattern`; rejects after `timeoutMs` or when the program exits first,
   * quoting the end of its output.
   */
  waitForLine(
    pattern: RegExp,
    options: { timeoutMs?: number; from?: number } = {},
  ): Promise<{ line: UaLine; match: RegExpExecArray }> {
    const from = options.from ?? 0;
    const found = this.#find(pattern, from);
    if (found) return Promise.resolve(found);
    if (!this.running) return Promise.reject(this.#error(`exited (${this.#exitStatus}) before ${pattern}`));
    const timeoutMs = options.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        pattern,
        from,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(this.#error(`no line matching ${pattern} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /** Writes a line to the program's stdin (started with stdin: true). */
  write(text: string): void {
    const stdin = this.#child.stdin;
    if (stdin === null || stdin.destroyed) throw new Error(`${this.name}: stdin is not open`);
    stdin.write(text);
  }

  /** Asks the program to stop, then SIGKILLs the group after the timeout; removes the run dir. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (this.pid > 0) {
      if (this.running) {
        const how = this.#stopWith;
        if (typeof how === 'string') killGroup(this.pid, how);
        else
          try {
            this.write(how.stdin);
          } catch {
            killGroup(this.pid, 'SIGTERM');
          }
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.#stopTimeoutMs);
      });
      const outcome = await Promise.race([this.closed.then(() => 'closed' as const), timeout]);
      clearTimeout(timer);
      killGroup(this.pid, 'SIGKILL'); // stragglers, or everything after the timeout
      if (outcome === 'timeout') await this.closed;
      live.delete(this.pid);
    }
    await this.#killWatchdog();
    this.#child.stdin?.destroy();
    rmSync(this.runDir, { recursive: true, force: true });
  }

  async #killWatchdog(): Promise<void> {
    const watchdog = this.#watchdog;
    if (watchdog === undefined || watchdog.exitCode !== null || watchdog.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => watchdog.once('exit', () => resolve()));
    watchdog.ref(); // unref'd at start: without a ref a script awaiting stop() could end here
    watchdog.kill('SIGKILL');
    await exited;
  }

  #find(pattern: RegExp, from: number): { line: UaLine; match: RegExpExecArray } | undefined {
    const start = Math.max(0, from - this.#dropped);
    for (let i = start; i < this.#lines.length; i++) {
      const line = this.#lines[i]!;
      const match = pattern.exec(line.text);
      if (match) return { line, match };
    }
    return undefined;
  }

  #onData(stream: 'out' | 'err', chunk: string): void {
    const text = this.#partial[stream] + chunk;
    const parts = text.split('\n');
    this.#partial[stream] = parts.pop() ?? '';
    for (const part of parts) this.#push(stream, part);
  }

  #flush(): void {
    for (const stream of ['out', 'err'] as const) {
      if (this.#partial[stream] !== '') this.#push(stream, this.#partial[stream]);
      this.#partial[stream] = '';
    }
  }

  #push(stream: 'out' | 'err', raw: string): void {
    const line: UaLine = {
      atMs: performance.now() - this.#t0,
      stream,
      text: raw.replace(ANSI, '').replace(/\r$/, ''),
      seq: this.nextSeq,
    };
    this.#lines.push(line);
    if (this.#lines.length > MAX_LINES) {
      this.#lines.shift();
      this.#dropped++;
    }
    for (const waiter of [...this.#waiters]) {
      if (line.seq < waiter.from) continue;
      const match = waiter.pattern.exec(line.text);
      if (!match) continue;
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      clearTimeout(waiter.timer);
      waiter.resolve({ line, match });
    }
  }

  #failWaiters(): void {
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(this.#error(`exited (${this.#exitStatus}) before ${waiter.pattern}`));
    }
  }

  #error(message: string): Error {
    return new Error(`${this.name}: ${message}\n--- ${this.name} output (tail) ---\n${this.output(60)}`);
  }
}

/**
 * Detached shell that SIGKILLs the group and removes the run dir once our end
 * of its stdin pipe closes, i.e. when this Node process dies by any means.
 * (dash's kill has no "--": the negative pid goes right after the signal.)
 */
function startWatchdog(pgid: number, runDir: string, name: string): ChildProcess {
  const watchdog = spawn(
    '/bin/sh',
    [
      '-c',
      'trap "" INT TERM HUP; read -r _; kill -KILL "-$1" 2>/dev/null; rm -rf "$2"',
      `${name}-watchdog`,
      String(pgid),
      runDir,
    ],
    { detached: true, stdio: ['pipe', 'ignore', 'ignore'] },
  );
  watchdog.on('error', () => {}); // best effort; the exit hook still covers normal exits
  watchdog.unref();
  (watchdog.stdin as unknown as net.Socket | null)?.unref?.();
  return watchdog;
}

/**
 * Local UDP ports a process has bound on `address` (IPv4 dotted quad, or
 * '0.0.0.0' / '::' for the wildcard), from Linux /proc: the socket inodes of
 * its open file descriptors, looked up in /proc/net/udp and udp6. For
 * programs told to bind port 0 that do not print the port they got.
 */
export function udpPortsOf(pid: number, address: string): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode !== undefined) inodes.add(inode);
  }
  const wanted = procAddress(address);
  const ports: number[] = [];
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6
    }
    for (const row of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
      const fields = row.trim().split(/\s+/);
      if (fields.length < 10 || !inodes.has(fields[9]!)) continue;
      const [hexAddress, hexPort] = fields[1]!.split(':');
      if (hexAddress === wanted) ports.push(Number.parseInt(hexPort!, 16));
    }
  }
  return ports;
}

/** How /proc/net/udp{,6} print an address: IPv4 as little-endian hex; '::' as 32 zeros. */
function procAddress(address: string): string {
  if (address === '::') return '0'.repeat(32);
  const octets = address.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    throw new RangeError(`not an IPv4 address: ${address}`);
  }
  return octets
    .reverse()
    .map((o) => o.toString(16).toUpperCase().padStart(2, '0'))
    .join('');
}
