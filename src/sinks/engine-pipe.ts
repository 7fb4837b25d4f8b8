/**
 * `--pipe CMD`: one speech-engine child process per answered call.
 *
 * The engine is `sh -c CMD` in its own process group (spawn `detached: true`
 * makes it a session and group leader), so stopping it reaches every member
 * of a pipeline such as `sox … | pocketsphinx …`, not only the shell.
 *
 * Audio goes to its stdin as raw s16le, 8 kHz mono, 20 ms at a time, exactly
 * the frames that go into the WAV. The engine never blocks the bot: `write()`
 * is synchronous and only hands a copy to the pipe while the bytes buffered
 * in user space stay under `maxBufferMs` of audio; beyond that, frames are
 * dropped and counted (the kernel pipe buffer, ~64 KiB on Linux, comes on
 * top and is the OS's). A dead engine is reported once and writes keep being
 * safe no-ops.
 *
 * stdout lines become `line` events (with the parsed value when the line is
 * a JSON object or array), stderr lines `stderr` events; both are split with
 * a length limit so a chatty or binary-spewing engine cannot grow memory.
 *
 * `close()` ends stdin (EOF tells the engine the call is over), gives it
 * `graceMs` to print final results and exit, then SIGTERMs the group, then
 * SIGKILLs it `killAfterMs` later.
 */
import { type ChildProcess, spawn as nodeSpawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { endianness } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { ErrorCodes, SoftphoneError } from '../errors.js';

/** What the engine is told about its call. */
export interface EngineCallInfo {
  callId: string;
  from: string;
  to: string;
  /** The recording's path, when the call is being recorded. */
  wavPath?: string | undefined;
  /** The rate of the audio written (the call's: 8000, or 16000 for wideband). Default 8000. */
  sampleRate?: number | undefined;
}

export interface EnginePipeOptions {
  /** Passed to `sh -c` as is. */
  command: string;
  call: EngineCallInfo;
  /** Base environment; default `process.env`. The RC_* call variables are added (see {@link engineEnv}). */
  env?: NodeJS.ProcessEnv;
  /** Audio buffered in user space for a slow reader before frames are dropped; default 3000 ms. */
  maxBufferMs?: number;
  /** Time after stdin EOF for final results before SIGTERM; default 5000 ms. */
  graceMs?: number;
  /** Time after SIGTERM before SIGKILL; default 2000 ms. */
  killAfterMs?: number;
  /** Longest stdout/stderr line kept; longer lines are split at this many characters. Default 64 Ki. */
  maxLineLength?: number;
  /** Working directory of the engine; default the bot's. */
  cwd?: string;
  /** For tests: a stand-in for `child_process.spawn`. */
  spawn?: typeof nodeSpawn;
}

export interface EngineExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the engine ended on its own before `close()` was called (the call went on without it). */
  duringCall: boolean;
}

export interface EnginePipeStats {
  /** Frames whose bytes reached the pipe (written to the OS). */
  framesWritten: number;
  /** Frames not delivered: buffer full, engine gone, write failed, or still buffered when it was stopped. */
  framesDropped: number;
  /** Bytes waiting in user space for the engine to read. */
  bufferedBytes: number;
  pid: number | undefined;
  running: boolean;
}

export interface EnginePipeResult {
  framesWritten: number;
  framesDropped: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

export interface EnginePipeEvents {
  /** One stdout line (without the newline); `json` is the parsed value when the line is a JSON object or array. */
  line: [text: string, json: object | undefined];
  /** One stderr line. */
  stderr: [line: string];
  /** The engine process ended (emitted once, after its last output line). */
  exit: [info: EngineExitInfo];
  /** ENGINE_FAILED: spawn failure, or its stdin broke mid-call. Emitted at most once, only if listened to. */
  error: [error: SoftphoneError];
}

/** The audio's rate when the call does not say (a G.711 call's). */
export const ENGINE_SAMPLE_RATE = 8000;
export const ENGINE_ENCODING = 's16le';
export const ENGINE_CHANNELS = 1;
export const DEFAULT_MAX_BUFFER_MS = 3000;
export const DEFAULT_GRACE_MS = 5000;
export const DEFAULT_KILL_AFTER_MS = 2000;
const DEFAULT_MAX_LINE_LENGTH = 64 * 1024;
const BYTES_PER_SAMPLE = 2;
/** After SIGKILL the pipes close almost at once; this only guards against a member that escaped the group. */
const STDIO_CLOSE_TIMEOUT_MS = 2000;
const HOST_IS_LE = endianness() === 'LE';
/** Our own secrets (RingCentral / SIP credentials) are not the engine's business. */
const SECRET_ENV = /^(RC|RINGCENTRAL|SIP)_.*(SECRET|PASSWORD|JWT|TOKEN)/i;
const ENV_VALUE_MAX = 1024;

/** Engine groups still alive, killed if the bot exits without closing them (they are detached). */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
  });
}

/** Signals the whole process group; false when nothing is left in it. */
function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is already empty
  }
}

/** Environment values come from SIP headers: no NUL (spawn rejects it), no control characters, bounded. */
function envValue(value: string): string {
  return value.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, ENV_VALUE_MAX);
}

/**
 * The engine's environment: `base` without our own credentials, plus
 * RC_CALL_ID, RC_FROM, RC_TO, RC_SAMPLE_RATE (the call's: 8000 or 16000), RC_ENCODING (s16le),
 * RC_CHANNELS (1) and RC_WAV (only when recording; an inherited RC_WAV is removed).
 */
export function engineEnv(call: EngineCallInfo, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined || SECRET_ENV.test(name) || name === 'RC_WAV') continue;
    env[name] = value;
  }
  env.RC_CALL_ID = envValue(call.callId);
  env.RC_FROM = envValue(call.from);
  env.RC_TO = envValue(call.to);
  env.RC_SAMPLE_RATE = String(call.sampleRate ?? ENGINE_SAMPLE_RATE);
  env.RC_ENCODING = ENGINE_ENCODING;
  env.RC_CHANNELS = String(ENGINE_CHANNELS);
  if (call.wavPath !== undefined && call.wavPath !== '') env.RC_WAV = envValue(call.wavPath);
  return env;
}

/** Splits a byte stream into lines (LF or CRLF), bounded: longer lines are cut into pieces. */
class LineSplitter {
  readonly #decoder = new StringDecoder('utf8');
  readonly #max: number;
  readonly #emit: (line: string) => void;
  #pending = '';

  constructor(max: number, emit: (line: string) => void) {
    this.#max = max;
    this.#emit = emit;
  }

  push(chunk: Buffer): void {
    this.#take(this.#decoder.write(chunk));
  }

  end(): void {
    this.#take(this.#decoder.end());
    if (this.#pending !== '') this.#line(this.#pending);
    this.#pending = '';
  }

  #take(text: string): void {
    const data = this.#pending + text;
    let start = 0;
    let nl = data.indexOf('\n');
    while (nl !== -1) {
      this.#line(data.slice(start, nl));
      start = nl + 1;
      nl = data.indexOf('\n', start);
    }
    while (data.length - start > this.#max) {
      this.#emit(data.slice(start, start + this.#max));
      start += this.#max;
    }
    this.#pending = data.slice(start);
  }

  #line(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    for (let i = 0; i < line.length; i += this.#max) this.#emit(line.slice(i, i + this.#max));
    if (line.length === 0) this.#emit('');
  }
}

function parseJsonLine(line: string): object | undefined {
  const start = line.trimStart()[0];
  if (start !== '{' && start !== '[') return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

function delay(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

export class EnginePipe extends EventEmitter<EnginePipeEvents> {
  readonly command: string;
  readonly #child: ChildProcess | undefined;
  readonly #pid: number | undefined;
  readonly #maxBufferBytes: number;
  readonly #graceMs: number;
  readonly #killAfterMs: number;
  #framesOffered = 0;
  #framesWritten = 0;
  #framesDropped = 0;
  /** False once stdin is unusable (spawn failed, broke, or the engine is gone). */
  #writable: boolean;
  #exited = false;
  #exitCode: number | null = null;
  #exitSignal: NodeJS.Signals | null = null;
  #closing: Promise<EnginePipeResult> | undefined;
  #errorReported = false;
  /** Counters are final (close() resolved). */
  #finalized = false;
  readonly #exitedPromise: Promise<void>;
  #resolveExited!: () => void;

  private constructor(options: EnginePipeOptions) {
    super();
    this.command = options.command;
    const maxBufferMs = options.maxBufferMs ?? DEFAULT_MAX_BUFFER_MS;
    this.#maxBufferBytes = Math.max(
      0,
      Math.floor(
        (maxBufferMs * (options.call.sampleRate ?? ENGINE_SAMPLE_RATE) * ENGINE_CHANNELS * BYTES_PER_SAMPLE) /
          1000,
      ),
    );
    this.#graceMs = Math.max(0, options.graceMs ?? DEFAULT_GRACE_MS);
    this.#killAfterMs = Math.max(0, options.killAfterMs ?? DEFAULT_KILL_AFTER_MS);
    this.#exitedPromise = new Promise((resolve) => {
      this.#resolveExited = resolve;
    });
    const maxLine = Math.max(1, options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH);

    let child: ChildProcess | undefined;
    try {
      child = (options.spawn ?? nodeSpawn)('sh', ['-c', options.command], {
        env: engineEnv(options.call, options.env ?? process.env),
        stdio: ['pipe', 'pipe', 'pipe'],
        // Own process group (and session): the group can be signalled as a whole, and a
        // terminal's Ctrl-C goes to the bot, which then stops its engines in order.
        detached: true,
        windowsHide: true,
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      });
    } catch (err) {
      child = undefined;
      // Reported after start() returns, so listeners attached right after it see it.
      process.nextTick(() => this.#spawnFailed(err));
    }
    this.#child = child;
    this.#pid = child?.pid;
    this.#writable = this.#pid !== undefined && child?.stdin != null;
    if (child === undefined) return;

    if (this.#pid !== undefined) {
      liveGroups.add(this.#pid);
      installExitHook();
    }
    child.on('error', (err) => {
      if (this.#pid === undefined) {
        this.#spawnFailed(err);
        return;
      }
      this.#report(
        new SoftphoneError(ErrorCodes.ENGINE_FAILED, `engine process error: ${err.message}`, {
          cause: err,
          details: { pid: this.#pid },
        }),
      );
    });
    child.stdin?.on('error', (err: NodeJS.ErrnoException) => {
      this.#writable = false;
      if (this.#closing === undefined) {
        this.#report(
          new SoftphoneError(ErrorCodes.ENGINE_FAILED, `engine stdin failed: ${err.code ?? err.message}`, {
            cause: err,
            details: { pid: this.#pid },
          }),
        );
      }
    });
    const out = new LineSplitter(maxLine, (line) => this.emit('line', line, parseJsonLine(line)));
    const errLines = new LineSplitter(maxLine, (line) => this.emit('stderr', line));
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.stdout?.on('end', () => out.end());
    child.stdout?.on('error', () => {});
    child.stderr?.on('data', (chunk: Buffer) => errLines.push(chunk));
    child.stderr?.on('end', () => errLines.end());
    child.stderr?.on('error', () => {});
    // 'close' (not 'exit'): the process is gone and its output fully read, so
    // `exit` comes after the last `line`.
    child.on('close', (code, signal) => this.#onExit(code, signal));
  }

  /** Starts `sh -c command`. Never throws: a spawn failure is an `error` event (ENGINE_FAILED). */
  static start(options: EnginePipeOptions): EnginePipe {
    return new EnginePipe(options);
  }

  get pid(): number | undefined {
    return this.#pid;
  }

  get stats(): EnginePipeStats {
    return {
      framesWritten: this.#framesWritten,
      framesDropped: this.#framesDropped,
      bufferedBytes: this.#child?.stdin?.writableLength ?? 0,
      pid: this.#pid,
      running: this.#child !== undefined && !this.#exited,
    };
  }

  /**
   * Queues a copy of `frame` (s16le) for the engine. Never blocks, never
   * throws: when the engine is gone, or its unread backlog would exceed
   * `maxBufferMs`, the frame is dropped and counted.
   */
  write(frame: Int16Array): void {
    if (this.#closing !== undefined) return; // after the call: not part of it
    this.#framesOffered++;
    const stdin = this.#child?.stdin;
    if (!this.#writable || this.#exited || stdin == null || stdin.destroyed || !stdin.writable) {
      this.#framesDropped++;
      return;
    }
    const bytes = frame.length * BYTES_PER_SAMPLE;
    if (stdin.writableLength + bytes > this.#maxBufferBytes) {
      this.#framesDropped++;
      return;
    }
    // A copy: the caller's buffer is reused for the next frame.
    const copy = Buffer.from(new Uint8Array(frame.buffer, frame.byteOffset, bytes));
    if (!HOST_IS_LE) copy.swap16();
    stdin.write(copy, (err) => {
      if (this.#finalized) return;
      if (err) this.#framesDropped++;
      else this.#framesWritten++;
    });
  }

  /**
   * Ends the engine's stdin, waits up to `graceMs` for it to exit, then
   * SIGTERMs its process group and SIGKILLs it `killAfterMs` later.
   * Idempotent; resolves once the engine is gone, never rejects.
   */
  close(): Promise<EnginePipeResult> {
    this.#closing ??= this.#stop();
    return this.#closing;
  }

  async #stop(): Promise<EnginePipeResult> {
    const child = this.#child;
    if (child !== undefined && this.#pid !== undefined) {
      try {
        child.stdin?.end();
      } catch {
        // already destroyed
      }
      if (!(await this.#waitExit(this.#graceMs))) {
        killGroup(this.#pid, 'SIGTERM');
        if (!(await this.#waitExit(this.#killAfterMs))) {
          killGroup(this.#pid, 'SIGKILL');
          if (!(await this.#waitExit(STDIO_CLOSE_TIMEOUT_MS))) {
            // Something outside the group still holds its pipes; stop waiting for it.
            child.stdin?.destroy();
            child.stdout?.destroy();
            child.stderr?.destroy();
          }
        }
      }
      // Members the shell left behind (background jobs) end with the call too.
      killGroup(this.#pid, 'SIGKILL');
      liveGroups.delete(this.#pid);
    }
    // Whatever never reached the pipe is lost now.
    this.#finalized = true;
    this.#framesDropped = this.#framesOffered - this.#framesWritten;
    return {
      framesWritten: this.#framesWritten,
      framesDropped: this.#framesDropped,
      exitCode: this.#exitCode,
      signal: this.#exitSignal,
    };
  }

  /** True when the engine ended within `ms`. */
  async #waitExit(ms: number): Promise<boolean> {
    if (this.#exited) return true;
    const timer = delay(ms);
    await Promise.race([this.#exitedPromise, timer.promise]);
    timer.cancel();
    return this.#exited;
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#exited) return;
    this.#exited = true;
    this.#writable = false;
    this.#exitCode = code;
    this.#exitSignal = signal;
    this.#resolveExited();
    this.emit('exit', { code, signal, duringCall: this.#closing === undefined });
  }

  #spawnFailed(err: unknown): void {
    this.#writable = false;
    const message = err instanceof Error ? err.message : String(err);
    // Errors never quote the command: it may carry an engine's API key.
    this.#report(
      new SoftphoneError(ErrorCodes.ENGINE_FAILED, `could not start the engine: ${message}`, { cause: err }),
    );
    if (!this.#exited) {
      // Nothing to wait for at close().
      this.#exited = true;
      this.#resolveExited();
    }
  }

  /** The engine never takes the bot down: without a listener, an error is only kept in the stats of close(). */
  #report(error: SoftphoneError): void {
    if (this.#errorReported) return;
    this.#errorReported = true;
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
