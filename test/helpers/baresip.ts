/**
 * baresip (Debian package `baresip`, 1.0.0 in bookworm) as a headless SIP
 * user agent for interop tests: a callee on a free loopback UDP port that
 * answers every call at once, reports the RFC 4733 events it receives, and
 * can dump the audio it decodes to a WAV file.
 *
 *   const ua = await startBaresip({ record: true });
 *   const call = await placeCall({ port: ua.port, user: ua.user });   // test/helpers/raw-uac.ts
 *   // … RTP into the call …
 *   const press = await ua.waitForDtmf((d) => d.key === '5' && d.end);
 *   await call.hangup();
 *   await ua.stop();                          // recordings() stay readable until then
 *
 * How it runs (all per run, in a temp dir that stop() removes):
 *  - `config`: SIP on 127.0.0.1 port 0 (the port the kernel picked is read
 *    from /proc, see udpPortsOf), modules g711 (+ sndfile when recording) and
 *    aubridge as both player and source: no sound card, and what baresip
 *    sends back is what it received (an echo).
 *  - `accounts`: one account `sip:<user>@127.0.0.1` with regint=0 (never
 *    registers) and answermode=auto; or, with `registrar`, the account
 *    `sip:<username>@<domain>` registered (over UDP, digest with its
 *    authorization id) through the registrar as outbound proxy, still
 *    answering every call at once. Its INVITEs then go through the
 *    registrar too (and answer its 407).
 *  - `commands`: the stdio UI and the menu module read commands from stdin
 *    (`/dial …`, `/hangup`, a key during a call is a DTMF key: baresip logs
 *    `send DTMF digit: 'K'` and, at the key's release, `send DTMF digit end:
 *    'K'`, and sends it as RFC 4733 events).
 *  - DTMF: baresip logs every RFC 4733 event its telev decoder reports as
 *    `received event: 'K' (end=0|1)` (src/call.c, audio_event_handler). An
 *    application on baresip sees end=0 as a key press (UA event
 *    CALL_DTMF_START with the key) and end=1 as a key release (CALL_DTMF_END).
 *    Its decoder (libre src/telev/telev.c) ignores durations and timestamps:
 *    a start packet reports the key, an end packet reports the release, codes
 *    above 15 are dropped (telev_code2digit), and a payload type counts as
 *    telephone-event when baresip's own format list names it so, negotiated
 *    or not (audio.c stream_recv_handler uses sdp_media_lformat).
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { toolPath } from './tools.js';
import { UaProcess, udpPortsOf } from './ua-process.js';

export interface BaresipOptions {
  /** The account's user part: the Request-URI user a call must use. Default 'bot'. */
  user?: string;
  /**
   * Audio codecs, in preference order (baresip names: PCMU, PCMA, opus).
   * Default ['PCMU', 'PCMA']. With 'opus' the opus module is loaded (libopus:
   * opus/48000/2, 20 ms, in-band FEC as the far end asks).
   */
  codecs?: string[];
  /**
   * Media encryption (the account's mediaenc, srtp module): 'srtp-mand'
   * offers RTP/SAVP with SDES keys and takes only SRTP; 'srtp' offers SDES on
   * RTP/AVP. Default none.
   */
  mediaenc?: 'srtp' | 'srtp-mand';
  /**
   * Dump decoded (received) and encoded (sent) audio to WAV files with the
   * sndfile module: true puts them in the run dir (gone after stop()), a path
   * puts them there (kept). sndfile finalizes a file when its call ends, so
   * read it after waitForCallEnd(). Default false.
   */
  record?: boolean | string;
  /** Print the SIP trace (-s) into the output. Default false. */
  sipTrace?: boolean;
  /** Debug logging (-v). Default false. */
  verbose?: boolean;
  /**
   * Register at this registrar instead of listening unregistered: the
   * account is `sip:<username>@<domain>`, digest username `authorizationId`
   * (default `username`), the registrar is also the outbound proxy (UDP).
   * startBaresip() resolves once the registration got its 200.
   */
  registrar?: {
    host: string;
    port: number;
    domain: string;
    username: string;
    authorizationId?: string;
    password: string;
  };
  /** Take commands on stdin (dial(), hangup(), sendDtmf()): loads the stdio and menu modules. Default false. */
  commands?: boolean;
  /** Extra config lines (`name value`), appended after the generated ones. */
  config?: string[];
  /** Safety net for the start-up. Default 15 000 ms. */
  startTimeoutMs?: number;
}

/** One `received event: 'K' (end=N)` line. */
export interface BaresipDtmf {
  /** '0'-'9', '*', '#', 'A'-'D'. */
  key: string;
  /** false: key press (CALL_DTMF_START), true: release (CALL_DTMF_END). */
  end: boolean;
  /** Milliseconds since baresip was started. */
  atMs: number;
  /** Index of the line in baresip's output. */
  seq: number;
  line: string;
}

export interface Baresip {
  readonly host: '127.0.0.1';
  /** SIP over UDP. */
  readonly port: number;
  readonly user: string;
  /** sip:user@127.0.0.1:port */
  readonly uri: string;
  /** With `registrar`: the address of record, sip:username@domain (calls to it go through the registrar). */
  readonly aor: string | undefined;
  readonly pid: number;
  /** The temp config dir (also where recordings go); removed by stop(). */
  readonly dir: string;
  /** Everything baresip printed (stdout and stderr), with times. */
  output(lastLines?: number): string;
  /** Index the next output line will get: pass as `from` to wait only for what comes after now. */
  readonly nextSeq: number;
  /** The DTMF events reported so far (from index `from`). */
  dtmf(from?: number): BaresipDtmf[];
  /** Resolves with the first reported event (from index `from`) that satisfies `predicate`. */
  waitForDtmf(
    predicate?: (event: BaresipDtmf) => boolean,
    options?: { timeoutMs?: number; from?: number },
  ): Promise<BaresipDtmf>;
  /** Resolves with the first output line (from index `from`) matching `pattern`. */
  waitForLine(pattern: RegExp, options?: { timeoutMs?: number; from?: number }): Promise<RegExpExecArray>;
  /** Resolves once a call is established (`Call established:` line), from index `from`. */
  waitForCall(options?: { timeoutMs?: number; from?: number }): Promise<void>;
  /**
   * Resolves once a call has ended (`session closed:` or `Call with … terminated`
   * line), from index `from`. sndfile closes the call's WAVs right after baresip
   * prints it, so poll a WAV's header (waitFor) rather than read it at once.
   */
  waitForCallEnd(options?: { timeoutMs?: number; from?: number }): Promise<void>;
  /** Where sndfile writes (with `record`). */
  readonly recordDir: string | undefined;
  /** WAV files sndfile wrote (with `record`): 'dec' is what baresip received, 'enc' what it sent. */
  recordings(): { decoded: string[]; encoded: string[] };
  /**
   * With `commands`: calls `target` (a SIP URI, or a user at the registrar's
   * domain); resolves once baresip has taken the command (`call: connecting`).
   */
  dial(target: string, options?: { timeoutMs?: number }): Promise<void>;
  /** With `commands`: hangs up the current call. */
  hangup(): void;
  /**
   * With `commands`: presses `keys` (0-9 * # A-D) one at a time in the
   * current call, each once baresip has released the one before (its
   * `send DTMF digit end:` line); resolves when the last is released.
   */
  sendDtmf(keys: string, options?: { timeoutMs?: number }): Promise<void>;
  /** SIGTERM (baresip hangs up its calls, unregisters), SIGKILL after 5 s; removes the dir. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const USER = /^[A-Za-z0-9._~+-]+$/;
const DTMF_LINE = /received event: '(.)' \(end=([01])\)/;

export async function startBaresip(options: BaresipOptions = {}): Promise<Baresip> {
  const user = options.user ?? 'bot';
  if (!USER.test(user)) throw new RangeError(`bad user ${JSON.stringify(user)}`);
  const codecs = options.codecs ?? ['PCMU', 'PCMA'];
  if (codecs.length === 0 || codecs.some((c) => !/^[A-Za-z0-9-]+$/.test(c))) {
    throw new RangeError(`bad codecs ${JSON.stringify(codecs)}`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-baresip-'));
  const recordDir =
    typeof options.record === 'string' ? path.resolve(options.record) : options.record ? dir : undefined;
  if (recordDir !== undefined && /\s/.test(recordDir))
    throw new RangeError(`record dir with spaces: ${recordDir}`);
  const registrar = options.registrar;
  if (registrar !== undefined) {
    for (const [name, value] of Object.entries(registrar)) {
      if (typeof value === 'string' && !/^[A-Za-z0-9._~+-]+$/.test(value))
        throw new RangeError(`bad registrar ${name} ${JSON.stringify(value)}`);
    }
  }
  const commands = options.commands ?? false;
  const modules = [
    'g711.so',
    ...(codecs.some((c) => c.toLowerCase() === 'opus') ? ['opus.so'] : []),
    ...(options.mediaenc === undefined ? [] : ['srtp.so']),
    'aubridge.so',
    ...(recordDir === undefined ? [] : ['sndfile.so']),
    ...(commands ? ['stdio.so'] : []),
  ];
  writeFileSync(
    path.join(dir, 'config'),
    [
      'poll_method\t\tepoll',
      `sip_listen\t\t${HOST}:0`,
      `net_interface\t\t${HOST}`,
      'module_path\t\t/usr/lib/baresip/modules',
      ...modules.map((m) => `module\t\t\t${m}`),
      'module_app\t\taccount.so',
      ...(commands ? ['module_app\t\tmenu.so'] : []),
      // aubridge pairs a player and a source of the same device name: no sound
      // card, and baresip sends back what it plays (an echo).
      'audio_player\t\taubridge,rcsp',
      'audio_source\t\taubridge,rcsp',
      'audio_alert\t\taubridge,rcsp',
      ...(recordDir === undefined ? [] : [`snd_path\t\t${recordDir}`]),
      // An even RTP port well away from the ephemeral range others ask port 0 for.
      'rtp_ports\t\t10000-30000',
      ...(options.config ?? []),
      '',
    ].join('\n'),
  );
  const account =
    registrar === undefined
      ? `<sip:${user}@${HOST}>;regint=0`
      : [
          `<sip:${registrar.username}@${registrar.domain}>`,
          `auth_user=${registrar.authorizationId ?? registrar.username}`,
          `auth_pass=${registrar.password}`,
          `outbound="sip:${registrar.host}:${registrar.port}"`,
          'regint=600',
        ].join(';');
  const mediaenc = options.mediaenc === undefined ? '' : `;mediaenc=${options.mediaenc}`;
  writeFileSync(
    path.join(dir, 'accounts'),
    `${account};answermode=auto;audio_codecs=${codecs.join(',')}${mediaenc}\n`,
    { mode: 0o600 },
  );
  const args = ['-f', dir, '-4', ...(options.sipTrace ? ['-s'] : []), ...(options.verbose ? ['-v'] : [])];
  const proc = new UaProcess({
    name: 'baresip',
    file: toolPath('baresip'),
    args,
    runDir: dir,
    stopWith: 'SIGTERM',
    stdin: commands,
  });
  try {
    const timeoutMs = options.startTimeoutMs ?? 15_000;
    await proc.waitForLine(/baresip is ready\./, { timeoutMs });
    if (registrar !== undefined) {
      // "<aor>: {0/UDP/v4} 200 OK (<server>) [1 binding]", or the status that refused it.
      const { match } = await proc.waitForLine(/: \{\d+\/UDP\/v4\} (\d{3}) /, { timeoutMs });
      if (match[1] !== '200')
        throw new Error(`baresip: registration answered ${match[1]}\n${proc.output(40)}`);
    }
    // "ready" is printed after the SIP transports are bound; the UDP socket on
    // 127.0.0.1 is SIP (RTP sockets only exist during calls).
    const ports = udpPortsOf(proc.pid, HOST);
    if (ports.length !== 1)
      throw new Error(`expected one UDP socket on ${HOST}, found ports [${ports.join(', ')}]`);
    const aor = registrar && `sip:${registrar.username}@${registrar.domain}`;
    return new BaresipInstance(proc, dir, registrar?.username ?? user, ports[0]!, recordDir, aor, commands);
  } catch (error) {
    await proc.stop();
    throw error instanceof Error && error.message.startsWith('baresip')
      ? error
      : new Error(`baresip start-up failed: ${String(error)}\n${proc.output(40)}`);
  }
}

class BaresipInstance implements Baresip {
  readonly host = HOST;
  readonly port: number;
  readonly user: string;
  readonly uri: string;
  readonly pid: number;
  readonly dir: string;
  readonly recordDir: string | undefined;
  readonly aor: string | undefined;
  readonly #proc: UaProcess;
  readonly #commands: boolean;

  constructor(
    proc: UaProcess,
    dir: string,
    user: string,
    port: number,
    recordDir: string | undefined,
    aor: string | undefined,
    commands: boolean,
  ) {
    this.#proc = proc;
    this.aor = aor;
    this.#commands = commands;
    this.dir = dir;
    this.recordDir = recordDir;
    this.user = user;
    this.port = port;
    this.pid = proc.pid;
    this.uri = `sip:${user}@${HOST}:${port}`;
  }

  get nextSeq(): number {
    return this.#proc.nextSeq;
  }

  output(lastLines?: number): string {
    return this.#proc.output(lastLines);
  }

  dtmf(from = 0): BaresipDtmf[] {
    const events: BaresipDtmf[] = [];
    for (const line of this.#proc.lines()) {
      if (line.seq < from) continue;
      const event = toDtmf(line.text, line.atMs, line.seq);
      if (event) events.push(event);
    }
    return events;
  }

  async waitForDtmf(
    predicate: (event: BaresipDtmf) => boolean = () => true,
    options: { timeoutMs?: number; from?: number } = {},
  ): Promise<BaresipDtmf> {
    let from = options.from ?? 0;
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    for (;;) {
      const { line } = await this.#proc.waitForLine(DTMF_LINE, {
        from,
        timeoutMs: Math.max(1, deadline - Date.now()),
      });
      const event = toDtmf(line.text, line.atMs, line.seq)!;
      if (predicate(event)) return event;
      from = line.seq + 1;
    }
  }

  async waitForLine(pattern: RegExp, options: { timeoutMs?: number; from?: number } = {}) {
    return (await this.#proc.waitForLine(pattern, options)).match;
  }

  async waitForCall(options: { timeoutMs?: number; from?: number } = {}): Promise<void> {
    await this.#proc.waitForLine(/Call established:/, options);
  }

  async waitForCallEnd(options: { timeoutMs?: number; from?: number } = {}): Promise<void> {
    // Hung up by the peer: "<peer>: session closed: <reason>"; by baresip: "Call with <peer> terminated".
    await this.#proc.waitForLine(/: session closed: |: Call with .* terminated/, options);
  }

  recordings(): { decoded: string[]; encoded: string[] } {
    const dir = this.recordDir;
    if (dir === undefined) return { decoded: [], encoded: [] };
    let files: string[];
    try {
      files = readdirSync(dir).sort();
    } catch {
      files = []; // stopped: the run dir is gone
    }
    const pick = (kind: string) =>
      files.filter((f) => f.startsWith('dump-') && f.endsWith(`-${kind}.wav`)).map((f) => path.join(dir, f));
    return { decoded: pick('dec'), encoded: pick('enc') };
  }

  async dial(target: string, options: { timeoutMs?: number } = {}): Promise<void> {
    this.#requireCommands('dial');
    if (!/^[A-Za-z0-9:@._~+;=-]+$/.test(target)) throw new RangeError(`bad target ${JSON.stringify(target)}`);
    const from = this.#proc.nextSeq;
    this.#proc.write(`/dial ${target}\n`);
    await this.#proc.waitForLine(/call: connecting to /, { from, timeoutMs: options.timeoutMs ?? 10_000 });
  }

  hangup(): void {
    this.#requireCommands('hangup');
    this.#proc.write('/hangup\n');
  }

  async sendDtmf(keys: string, options: { timeoutMs?: number } = {}): Promise<void> {
    this.#requireCommands('sendDtmf');
    if (!/^[0-9*#A-D]*$/.test(keys)) throw new RangeError(`bad DTMF keys ${JSON.stringify(keys)}`);
    for (const key of keys) {
      const from = this.#proc.nextSeq;
      this.#proc.write(key);
      const end = new RegExp(`send DTMF digit end: '${key === '*' ? '\\*' : key}'`);
      await this.#proc.waitForLine(end, { from, timeoutMs: options.timeoutMs ?? 10_000 });
    }
  }

  stop(): Promise<void> {
    return this.#proc.stop();
  }

  #requireCommands(what: string): void {
    if (!this.#commands) throw new Error(`baresip: ${what}() needs startBaresip({ commands: true })`);
  }
}

function toDtmf(text: string, atMs: number, seq: number): BaresipDtmf | undefined {
  const match = DTMF_LINE.exec(text);
  if (!match) return undefined;
  return { key: match[1]!, end: match[2] === '1', atMs, seq, line: text };
}
