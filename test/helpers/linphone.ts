/**
 * linphonec (Debian package `linphone-cli`, liblinphone 5.1 / mediastreamer2
 * / oRTP) as a headless SIP user agent for interop tests: a callee on a free
 * loopback UDP port that answers every call (-a) and reports the RFC 4733
 * events it receives.
 *
 *   const ua = await startLinphone();
 *   const call = await placeCall({ port: ua.port, user: 'bot' });   // test/helpers/raw-uac.ts
 *   // … RTP into the call …
 *   await ua.waitForDtmf((d) => d.key === '5');
 *   await call.hangup();
 *   await ua.stop();
 *
 * How it runs (all per run, in a temp dir that stop() removes):
 *  - HOME is the run dir (linphonec keeps its database and certificates under
 *    it) and `linphonerc` there is generated fresh: SIP over UDP only, port -1
 *    (random) bound to 127.0.0.1, RTP on 127.0.0.1 random ports, no IPv6.
 *    linphonec rewrites the file as it runs; nothing is read back from it.
 *  - Logging at level 4 (-d 4) goes to stdout with linphonec's own lines; the
 *    SIP port is read from belle-sip's "Random port for listening point …
 *    is N" line.
 *  - No sound card: the command `soundcard use files` (stdin) makes
 *    mediastreamer2 play and record files instead of a device. linphonec reads
 *    commands from stdin and spins at EOF, so stdin stays open until stop()
 *    writes `quit`.
 *  - DTMF: linphonec prints `Receiving tone K from <uri>` for every key the
 *    core reports. The chain behind it: oRTP (src/telephonyevents.c)
 *    notifies an event only when a packet with the E bit arrives, for a
 *    payload type its profile knows as telephone-event; liblinphone
 *    (MS2AudioStream::telephoneEventReceived) maps codes 0-15 to keys and
 *    logs `Bad dtmf value N` for any other code. Packets of a payload type the
 *    call did not negotiate are logged by oRTP as `Receiving packet with
 *    unknown payload type N` and dropped.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { toolPath } from './tools.js';
import { UaProcess } from './ua-process.js';

export interface LinphoneOptions {
  /** Extra linphonerc text appended to the generated file (sections and keys). */
  config?: string;
  /** linphonec's -d level (4 = messages, needed to learn the port; 6 = everything). Default 4. */
  logLevel?: 4 | 5 | 6;
  /** Safety net for the start-up. Default 20 000 ms. */
  startTimeoutMs?: number;
}

/** One `Receiving tone K from …` line. */
export interface LinphoneDtmf {
  key: string;
  atMs: number;
  seq: number;
  line: string;
}

export interface Linphone {
  readonly host: '127.0.0.1';
  /** SIP over UDP. */
  readonly port: number;
  readonly pid: number;
  /** The run dir (HOME, linphonerc); removed by stop(). */
  readonly dir: string;
  output(lastLines?: number): string;
  /** Index the next output line will get: pass as `from` to wait only for what comes after now. */
  readonly nextSeq: number;
  dtmf(from?: number): LinphoneDtmf[];
  waitForDtmf(
    predicate?: (event: LinphoneDtmf) => boolean,
    options?: { timeoutMs?: number; from?: number },
  ): Promise<LinphoneDtmf>;
  waitForLine(pattern: RegExp, options?: { timeoutMs?: number; from?: number }): Promise<RegExpExecArray>;
  /** Resolves once a call's media is up (`Media streams established` line), from index `from`. */
  waitForCall(options?: { timeoutMs?: number; from?: number }): Promise<void>;
  /** Lines (from index `from`) whose text matches `pattern`, e.g. /Bad dtmf value/. */
  linesMatching(pattern: RegExp, from?: number): string[];
  /** Writes `quit` (linphonec hangs up and exits), SIGKILL after 5 s; removes the dir. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const DTMF_LINE = /^Receiving tone (.) from /;

export async function startLinphone(options: LinphoneOptions = {}): Promise<Linphone> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-linphone-'));
  mkdirSync(path.join(dir, '.local', 'share', 'linphone'), { recursive: true });
  const rc = path.join(dir, 'linphonerc');
  writeFileSync(
    rc,
    [
      '[sip]',
      'sip_port=-1',
      'sip_tcp_port=0',
      'sip_tls_port=0',
      `bind_address=${HOST}`,
      'use_ipv6=0',
      'default_proxy=-1',
      '',
      '[rtp]',
      'audio_rtp_port=-1',
      `bind_address=${HOST}`,
      '',
      '[sound]',
      'echocancellation=0',
      '',
      '[video]',
      'capture=0',
      'display=0',
      '',
      options.config ?? '',
    ].join('\n'),
  );
  const proc = new UaProcess({
    name: 'linphonec',
    file: toolPath('linphonec'),
    args: ['-c', rc, '-a', '-d', String(options.logLevel ?? 4)],
    env: { ...process.env, HOME: dir },
    stdin: true,
    runDir: dir,
    stopWith: { stdin: 'quit\n' },
  });
  try {
    const timeoutMs = options.startTimeoutMs ?? 20_000;
    const { match } = await proc.waitForLine(/Random port for listening point \[[^\]]*\] is (\d+)/, {
      timeoutMs,
    });
    const from = proc.nextSeq;
    proc.write('soundcard use files\n');
    await proc.waitForLine(/^Using wav files instead of soundcard\./, { timeoutMs, from });
    return new LinphoneInstance(proc, dir, Number(match[1]));
  } catch (error) {
    await proc.stop();
    throw error;
  }
}

class LinphoneInstance implements Linphone {
  readonly host = HOST;
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  readonly #proc: UaProcess;

  constructor(proc: UaProcess, dir: string, port: number) {
    this.#proc = proc;
    this.dir = dir;
    this.port = port;
    this.pid = proc.pid;
  }

  get nextSeq(): number {
    return this.#proc.nextSeq;
  }

  output(lastLines?: number): string {
    return this.#proc.output(lastLines);
  }

  dtmf(from = 0): LinphoneDtmf[] {
    const events: LinphoneDtmf[] = [];
    for (const line of this.#proc.lines()) {
      if (line.seq < from) continue;
      const match = DTMF_LINE.exec(line.text);
      if (match) events.push({ key: match[1]!, atMs: line.atMs, seq: line.seq, line: line.text });
    }
    return events;
  }

  async waitForDtmf(
    predicate: (event: LinphoneDtmf) => boolean = () => true,
    options: { timeoutMs?: number; from?: number } = {},
  ): Promise<LinphoneDtmf> {
    let from = options.from ?? 0;
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    for (;;) {
      const { line, match } = await this.#proc.waitForLine(DTMF_LINE, {
        from,
        timeoutMs: Math.max(1, deadline - Date.now()),
      });
      const event = { key: match[1]!, atMs: line.atMs, seq: line.seq, line: line.text };
      if (predicate(event)) return event;
      from = line.seq + 1;
    }
  }

  async waitForLine(pattern: RegExp, options: { timeoutMs?: number; from?: number } = {}) {
    return (await this.#proc.waitForLine(pattern, options)).match;
  }

  async waitForCall(options: { timeoutMs?: number; from?: number } = {}): Promise<void> {
    await this.#proc.waitForLine(/^Media streams established with /, options);
  }

  linesMatching(pattern: RegExp, from = 0): string[] {
    return this.#proc
      .lines()
      .filter((l) => l.seq >= from && pattern.test(l.text))
      .map((l) => l.text);
  }

  stop(): Promise<void> {
    return this.#proc.stop();
  }
}
