/**
 * SIPp as a callee (a UAS scenario from sipp/) on a free loopback UDP port,
 * for outbound calls through Kamailio: the device dials
 * `sipp.uri('echo')` = sip:echo@127.0.0.1:PORT, a foreign URI that
 * Kamailio relays (after its 407) to SIPp over UDP. Nothing is registered
 * for SIPp.
 *
 *   const sipp = await startSippUas({ scenario: 'uas-speech.xml', mediaPort, keys: { speech: `${file},1,0` } });
 *   const call = await phone.call(sipp.uri('echo'));
 *   …
 *   const result = await sipp.done;   // exit code, -trace_stat counters, error log
 *
 * SIPp exits by itself after `calls` calls (-m); stop() kills it (idempotent).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '../../helpers/ports.js';
import { toolPath } from '../../helpers/tools.js';
import { udpPortsOf } from '../../helpers/ua-process.js';
import { exited } from './speech.js';

export const SIPP_SCENARIOS = fileURLToPath(new URL('./sipp/', import.meta.url));

export interface SippUasOptions {
  /** A file in sipp/ (or an absolute path). */
  scenario: string;
  /** SIPp's media port (-mp): its SDP names it, rtp_stream sends from it; SIPp binds it and port + 2. */
  mediaPort: number;
  /** -key NAME VALUE pairs for the scenario. */
  keys?: Record<string, string>;
  /** Calls to take before SIPp exits (-m). Default 1. */
  calls?: number;
  /** SIPp's own overall timeout, seconds (it fails with exit 1 after it). Default 60. */
  timeoutS?: number;
  /** Where SIPp writes its logs; default a fresh temp dir, removed by stop() once the result is read. */
  dir?: string;
  /** Also log every SIP message (-trace_msg) into `messages.log`. Default false. */
  traceMessages?: boolean;
}

export interface SippResult {
  code: number | null;
  /** The last line of the -trace_stat CSV, by column name (cumulative counters end in "(C)"). */
  stats: Record<string, number>;
  /** Exit code, error log, messages (with traceMessages) and the screen's tail, for failure messages. */
  output: string;
  /** The -trace_msg log (with traceMessages). */
  messages: string;
}

export interface SippUas {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  /** sip:USER@127.0.0.1:PORT */
  uri(user: string): string;
  /** Resolves when SIPp has exited. */
  readonly done: Promise<SippResult>;
  /** SIGKILL if still running; resolves once it has exited (and its own temp dir is gone). Idempotent. */
  stop(): Promise<void>;
}

export function parseStatCsv(text: string): Record<string, number> {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const header = (lines[0] ?? '').split(';');
  const last = (lines[lines.length - 1] ?? '').split(';');
  const stats: Record<string, number> = {};
  header.forEach((name, i) => {
    if (name !== '') stats[name] = Number(last[i]);
  });
  return stats;
}

/** Starts SIPp as a UAS; resolves once it has bound its SIP port. */
export async function startSippUas(options: SippUasOptions): Promise<SippUas> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'rcsp-sipp-uas-'));
  const port = await freePort('udp');
  const scenario = path.isAbsolute(options.scenario)
    ? options.scenario
    : path.join(SIPP_SCENARIOS, options.scenario);
  const calls = options.calls ?? 1;
  const args = [
    ...['-sf', scenario],
    ...Object.entries(options.keys ?? {}).flatMap(([name, value]) => ['-key', name, value]),
    ...['-i', '127.0.0.1', '-p', String(port), '-mp', String(options.mediaPort), '-t', 'u1'],
    ...['-m', String(calls), '-nostdin', '-timeout', `${options.timeoutS ?? 60}s`, '-timeout_error'],
    ...['-trace_err', '-error_file', path.join(dir, 'errors.log')],
    ...['-trace_stat', '-stf', path.join(dir, 'stat.csv')],
    ...(options.traceMessages ? ['-trace_msg', '-message_file', path.join(dir, 'messages.log')] : []),
  ];
  const child: ChildProcess = spawn(toolPath('sipp'), args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let screen = '';
  const collect = (chunk: Buffer) => {
    screen = (screen + chunk.toString('utf8')).slice(-6000);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');
  const done: Promise<SippResult> = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  }).then((code) => {
    const statText = read(path.join(dir, 'stat.csv'));
    const messages = read(path.join(dir, 'messages.log'));
    return {
      code,
      stats: statText === '' ? {} : parseStatCsv(statText),
      output: [
        `sipp exit ${code}`,
        read(path.join(dir, 'errors.log')).slice(-4000),
        messages.slice(-6000),
        screen,
      ].join('\n'),
      messages,
    };
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    if (ownDir) {
      await done; // its logs are read first
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const pid = child.pid;
  try {
    if (pid === undefined) throw new Error('could not start sipp');
    // No event says SIPp is listening: its socket shows in /proc once it is.
    const state = await waitFor(
      () =>
        child.exitCode !== null || child.signalCode !== null
          ? 'exited'
          : udpPortsOf(pid, '127.0.0.1').includes(port) && 'listening',
      { timeoutMs: 20_000, intervalMs: 20, message: `sipp listening on 127.0.0.1:${port}` },
    );
    if (state === 'exited') throw new Error('sipp exited before it listened');
  } catch (error) {
    await stop();
    throw new Error(`${String(error)}\n${(await done).output}`);
  }
  return {
    host: '127.0.0.1',
    port,
    pid,
    dir,
    uri: (user) => `sip:${user}@127.0.0.1:${port}`,
    done,
    stop,
  };
}
