/**
 * The one place output is formatted. Events are named (`registered`,
 * `call.ended`, …) and carry fields; `--log-format json` prints one JSON object
 * per line with an `event` field (the contract scripts rely on), the default
 * prints one readable line per event. Every line passes the secret scrubber.
 */
import type { Writable } from 'node:stream';
import { SecretScrubber } from './redact.js';

export type LogFormat = 'text' | 'json';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LoggerOptions {
  format?: LogFormat;
  /** Print debug events and the SIP trace. */
  debug?: boolean;
  /** Only warnings and errors. */
  quiet?: boolean;
  out?: Writable;
  scrubber?: SecretScrubber;
  now?: () => Date;
}

export type LogFields = Record<string, unknown>;

export class Logger {
  readonly format: LogFormat;
  readonly debugEnabled: boolean;
  readonly scrubber: SecretScrubber;
  readonly #quiet: boolean;
  readonly #out: Writable;
  readonly #now: () => Date;
  /** A hook so a live status line can be cleared before a log line and redrawn after. */
  onBeforeWrite: (() => void) | undefined;
  onAfterWrite: (() => void) | undefined;

  constructor(options: LoggerOptions = {}) {
    this.format = options.format ?? 'text';
    this.debugEnabled = options.debug ?? false;
    this.#quiet = options.quiet ?? false;
    this.#out = options.out ?? process.stdout;
    this.scrubber = options.scrubber ?? new SecretScrubber();
    this.#now = options.now ?? (() => new Date());
    // A closed stdout (`listen | head`) must not crash a bot that is recording calls:
    // output stops, the work goes on.
    this.#out.on('error', () => {
      this.#broken = true;
    });
  }

  #broken = false;

  info(event: string, fields: LogFields, text: string): void {
    this.#log('info', event, fields, text);
  }

  warn(event: string, fields: LogFields, text: string): void {
    this.#log('warn', event, fields, text);
  }

  error(event: string, fields: LogFields, text: string): void {
    this.#log('error', event, fields, text);
  }

  debug(event: string, fields: LogFields, text: string): void {
    if (this.debugEnabled) this.#log('debug', event, fields, text);
  }

  #log(level: LogLevel, event: string, fields: LogFields, text: string): void {
    if (this.#broken || (this.#quiet && (level === 'info' || level === 'debug'))) return;
    const time = this.#now();
    let line: string;
    if (this.format === 'json') {
      const record: LogFields = { time: time.toISOString(), level, event, ...fields };
      line = JSON.stringify(record, jsonReplacer);
    } else {
      const prefix = level === 'info' || level === 'debug' ? '' : `${level.toUpperCase()} `;
      line = `${clock(time)} ${prefix}${text}`;
    }
    this.onBeforeWrite?.();
    this.#out.write(`${this.scrubber.scrub(line)}\n`);
    this.onAfterWrite?.();
  }
}

function clock(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { message: value.message, code: (value as { code?: unknown }).code };
  if (typeof value === 'bigint') return value.toString();
  return value;
}
