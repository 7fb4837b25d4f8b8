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
  /**
   * Gets every event as its JSON line (secrets scrubbed), whatever the format
   * and --quiet say: the broker export (--events). Set on the root logger;
   * its children use it too.
   */
  tap: ((line: string) => void) | undefined;
  /** Fields every event carries (a fleet device's `device`); empty on the root. */
  #fields: LogFields = {};
  /** The logger a child writes through (itself for the root). */
  #root: Logger = this;

  constructor(options: LoggerOptions = {}) {
    this.format = options.format ?? 'text';
    this.debugEnabled = options.debug ?? false;
    this.#quiet = options.quiet ?? false;
    this.#out = options.out ?? process.stdout;
    this.scrubber = options.scrubber ?? new SecretScrubber();
    this.#now = options.now ?? (() => new Date());
    // A closed stdout (`listen | head`) must not crash a bot that is recording calls:
    // output stops, the work goes on. (Children write through their root: one listener.)
    if (!Logger.#makingChild) {
      this.#out.on('error', () => {
        this.#broken = true;
      });
    }
  }

  #broken = false;
  static #makingChild = false;

  /**
   * A logger whose events all carry `fields` (e.g. `{ device: 'sales-1' }`),
   * written through the root (same output, status-line hooks and tap). Text
   * lines start with the first field's value in brackets.
   */
  child(fields: LogFields): Logger {
    const root = this.#root;
    Logger.#makingChild = true;
    let child: Logger;
    try {
      child = new Logger({
        format: root.format,
        debug: root.debugEnabled,
        quiet: root.#quiet,
        out: root.#out,
        scrubber: root.scrubber,
        now: root.#now,
      });
    } finally {
      Logger.#makingChild = false;
    }
    child.#root = root;
    child.#fields = { ...this.#fields, ...fields };
    return child;
  }

  /** Sends an event to the tap only, never to the output: bulky records such as a call's sidecar. */
  export(event: string, fields: LogFields): void {
    const root = this.#root;
    if (!root.tap) return;
    const record: LogFields = {
      time: this.#now().toISOString(),
      level: 'info',
      event,
      ...this.#fields,
      ...fields,
    };
    root.#toTap(JSON.stringify(record, jsonReplacer));
  }

  #toTap(line: string): void {
    try {
      this.tap?.(this.scrubber.scrub(line));
    } catch {
      // The export never takes the logging down.
    }
  }

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
    const root = this.#root;
    if (root !== this) {
      const tag = Object.values(this.#fields)[0];
      root.#log(
        level,
        event,
        { ...this.#fields, ...fields },
        tag === undefined ? text : `[${String(tag)}] ${text}`,
      );
      return;
    }
    const time = this.#now();
    let json: string | undefined;
    if (this.tap) {
      json = JSON.stringify({ time: time.toISOString(), level, event, ...fields }, jsonReplacer);
      this.#toTap(json);
    }
    if (this.#broken || (this.#quiet && (level === 'info' || level === 'debug'))) return;
    let line: string;
    if (this.format === 'json') {
      line = json ?? JSON.stringify({ time: time.toISOString(), level, event, ...fields }, jsonReplacer);
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
