/** What every command shares: exit codes, output options, .env loading, usage errors. */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Command, Option } from 'commander';
import dotenv from 'dotenv';
import { type LogFormat, Logger } from '../log/logger.js';
import { SecretScrubber } from '../log/redact.js';
import { prepareRecordDir } from '../sinks/record-dir.js';

export const ExitCode = {
  OK: 0,
  /** Runtime failure: registration rejected, REST error, … */
  FAILURE: 1,
  /** Usage or configuration error, found before any network I/O. */
  USAGE: 2,
} as const;

/** A usage or configuration problem: printed as is, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OutputOptions {
  logFormat: string;
  debug?: boolean;
  quiet?: boolean;
}

export function addOutputOptions(command: Command): Command {
  return command
    .option('--log-format <format>', 'text (readable lines) or json (one object per line)', 'text')
    .option('--quiet', 'print only warnings and errors')
    .option('--debug', 'also print the SIP trace (secrets redacted)');
}

export function addDotenvOption(command: Command): Command {
  return command.option('--dotenv <path>', 'read variables from this file instead of ./.env').addOption(
    // Node.js 20 reads --env-file anywhere on its command line, even after the
    // script, and exits 9 on a missing file before we run; we see it only when
    // the file exists (or on a Node.js that leaves it alone), so it gets no meaning here.
    new Option('--env-file <path>').hideHelp().argParser((): never => {
      throw new UsageError(
        '--env-file is taken by Node.js itself (a missing file stops node with exit 9 before rc-softphone runs); use --dotenv (example: --dotenv ./prod.env)',
      );
    }),
  );
}

export function createLogger(options: OutputOptions, secrets: (string | undefined)[] = []): Logger {
  if (options.logFormat !== 'text' && options.logFormat !== 'json') {
    throw new UsageError(
      `--log-format must be "text" or "json", got "${options.logFormat}" (example: --log-format json)`,
    );
  }
  const scrubber = new SecretScrubber();
  for (const s of secrets) scrubber.add(s);
  return new Logger({
    format: options.logFormat as LogFormat,
    debug: options.debug ?? false,
    quiet: options.quiet ?? false,
    scrubber,
  });
}

/**
 * Loads `.env` from the working directory (or --dotenv) into a copy of the
 * environment; real environment variables win over the file, as dotenv does.
 */
export function loadEnv(dotenvFile: string | undefined, cwd = process.cwd()): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  const file = dotenvFile ? path.resolve(cwd, dotenvFile) : path.join(cwd, '.env');
  if (dotenvFile && !existsSync(file)) {
    throw new UsageError(`--dotenv ${dotenvFile}: no such file (example: --dotenv ./prod.env)`);
  }
  if (existsSync(file)) dotenv.config({ path: file, processEnv: env as Record<string, string>, quiet: true });
  return env;
}

/** Parses an integer flag value, naming the flag in the error. */
export function intOption(
  flag: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got "${value}"`);
    }
    return n;
  };
}

/**
 * Creates the --record-dir directory if missing and proves it takes files;
 * exit 2 naming the flag if not. `noRecord`: the command has --no-record.
 */
export function checkRecordDirFlag(dir: string, noRecord: boolean): void {
  const problem = prepareRecordDir(dir);
  if (problem) throw recordDirUsage(dir, problem.reason, noRecord);
}

export function recordDirUsage(dir: string, reason: string, noRecord: boolean): UsageError {
  const example = `(example: --record-dir ./recordings${noRecord ? ', or --no-record to answer without recording' : ''})`;
  return new UsageError(
    dir.trim() === ''
      ? `--record-dir needs a directory ${example}`
      : `--record-dir ${dir}: ${reason} ${example}`,
  );
}

/**
 * The CLI's two-signal rule for SIGINT and SIGTERM: the first asks for a
 * graceful stop (`first`: hang up, finish the recordings, unregister); a
 * second says `forced` is happening, runs `now` (recordings finished
 * synchronously, …) and exits with 128 + the signal's number, once `now`'s
 * promise settles when it returns one. Returns the function that removes
 * the handlers.
 */
export function onStopSignals(
  log: Logger,
  handlers: {
    first: (signal: NodeJS.Signals) => void;
    now: () => unknown;
    forced: string;
  },
): () => void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      handlers.first(signal);
      return;
    }
    log.warn('shutdown.forced', { signal }, `${signal} again: ${handlers.forced}`);
    const code = 128 + (os.constants.signals[signal] ?? 2);
    const pending = handlers.now();
    if (pending instanceof Promise) void pending.finally(() => process.exit(code));
    else process.exit(code);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
