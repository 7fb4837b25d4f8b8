/**
 * Starts the project's Kamailio registrar/proxy (kamailio.cfg next to this
 * file) on a free loopback port for interop tests, and inspects it.
 *
 *   const kam = await startKamailio({ maxExpires: 10 });
 *   // device registers to sip:127.0.0.1:${kam.port};transport=tcp, realm/domain kam.domain
 *   await waitFor(() => kam.registerCount('16506668888') >= 2);
 *   const [binding] = await kam.ulDump();
 *   await kam.stop();
 *
 * Everything per-run goes on kamailio's command line (-l, -A defines) and
 * into a temp dir under os.tmpdir(); nothing is written into the repository.
 * Users are loaded with `kamcmd htable.sets` before startKamailio resolves.
 *
 * Process hygiene: kamailio runs in its own process group (it forks ~10
 * workers, and they survive a SIGKILL of the main process), so every kill here
 * targets the whole group. A crashed or SIGKILLed test runner can't leave it
 * behind either: a tiny detached watchdog shell holds a pipe from this process
 * and kills the group when that pipe reaches EOF.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '../../helpers/ports.js';
import { localhostCertificate } from '../../helpers/tls-cert.js';
import { checkTools, toolPath } from '../../helpers/tools.js';

export const KAMAILIO_CFG = fileURLToPath(new URL('./kamailio.cfg', import.meta.url));

/** The test user RingCentral-style: digest username (authorizationId) differs from the AOR user. */
export const DEFAULT_USER = Object.freeze({
  username: '16506668888',
  authorizationId: '802398',
  password: 'interop-secret',
});
export const DEFAULT_DOMAIN = 'rc-softphone.test';

export interface KamailioUser {
  /** AOR user part (RingCentral `username`, a phone number). */
  username: string;
  /** Digest username (RingCentral `authorizationId`); defaults to `username`. */
  authorizationId?: string;
  password: string;
}

export interface KamailioOptions {
  /** registrar max_expires: longer requested expiries are cut to this. Default 3600. */
  maxExpires?: number;
  /** registrar min_expires: shorter requested expiries are raised to this. Default 5 (must be ≤ maxExpires). */
  minExpires?: number;
  /** Default: [DEFAULT_USER]. */
  users?: KamailioUser[];
  /** SIP domain, also the digest realm and a local alias. Default DEFAULT_DOMAIN. */
  domain?: string;
  /** Challenge with qop="auth" (RingCentral doesn't). Default false. */
  qop?: boolean;
  /**
   * Challenge every INVITE whose From is a user of this domain with 407
   * (Proxy-Authenticate, realm = domain), as RingCentral does, and relay it
   * once its digest checks out against the same users as REGISTER (the
   * authorization id must own the From user, else 403); the credentials are
   * removed before the INVITE goes on. INVITEs from elsewhere (SIPp's From is
   * `sipp@127.0.0.1:PORT`) are never challenged. Default true.
   */
  challengeInvites?: boolean;
  /** Listen on this port (UDP and TCP) instead of a free one, e.g. to restart on the same port. */
  port?: number;
  /**
   * Also listen for TLS (needs the Debian package kamailio-tls-modules, tool
   * 'kamailio-tls'), with the self-signed localhost certificate of
   * test/helpers/tls-cert.ts: trust `kam.tlsCa` to verify it. Default false.
   */
  tls?: boolean;
  /** The TLS port instead of a free one (with tls). */
  tlsPort?: number;
  /** Kamailio core log level (debug=): 2 info (default), 3 debug. The harness's own lines are NOTICE (1). */
  logLevel?: number;
  /** Safety net for the whole start-up. Default 30 000 ms. */
  startTimeoutMs?: number;
}

/** One contact binding as `kamcmd ul.dump` shows it. */
export interface Binding {
  /** AOR user part (usrloc runs without use_domain), e.g. "16506668888". */
  aor: string;
  /** Contact URI as the device sent it, e.g. "sip:16506668888@abc.invalid;transport=tcp". */
  contact: string;
  /** Seconds left; 0 if expired/deleted, Infinity if permanent. */
  expires: number;
  /** The `+sip.instance` value without quotes, e.g. "<urn:uuid:…>". */
  instance?: string;
  /** The `reg-id` contact parameter (stored even without "Supported: outbound"). */
  regId?: number;
  /** Source of the REGISTER as a URI, e.g. "sip:127.0.0.1:53508;transport=tcp". */
  received?: string;
  /** Local socket the REGISTER came in on, e.g. "tcp:127.0.0.1:5060". */
  socket?: string;
  callId: string;
  cseq: number;
  userAgent?: string;
  /** Kamailio's id of the TCP connection the binding came over (same id = same connection). */
  tcpConnId?: number;
  /** Unix time (s) of the last update. */
  lastModified?: number;
  q: number;
  path?: string;
  ruid: string;
  /** Every field as printed, for anything not mapped above. */
  raw: Readonly<Record<string, string>>;
}

/** One "KH|INVITE-AUTH" line: what Kamailio decided about an INVITE from a local user (challengeInvites). */
export interface InviteAuthEvent {
  /** From-URI user. */
  fromUser: string;
  /** Digest username from the Proxy-Authorization header, if any. */
  authUser?: string;
  /** The Request-URI as received. */
  requestUri: string;
  callId: string;
  cseq: number;
  /** 'challenge' (407, no usable credentials), 'auth-failed' (407 again), 'forbidden' (403), 'authorized' (relayed). */
  result: 'challenge' | 'auth-failed' | 'forbidden' | 'authorized';
  /** The response Kamailio sent itself (absent for 'authorized': the callee answers). */
  code?: number;
  /** 'auth-failed' only: pv_proxy_authenticate() result (-2 wrong password, -4 stale nonce, …). */
  authRc?: number;
  /** Monotonic index in this instance's log (shared with RegisterEvent.seq). */
  seq: number;
}

/** One "KH|REGISTER-…" line kamailio logged (see kamailio.cfg). */
export interface RegisterEvent {
  /** 'in': a REGISTER arrived (logged before any check); 'out': what was decided. */
  phase: 'in' | 'out';
  /** To-URI user. */
  toUser: string;
  /** Digest username from the Authorization header, if any. */
  authUser?: string;
  callId: string;
  cseq: number;
  /** 'in' only: transport and source ip:port. */
  proto?: string;
  source?: string;
  /** 'in' only: the Expires header, if any. */
  expiresHeader?: string;
  /** 'out' only: 'challenge' | 'auth-failed' | 'forbidden' | 'saved' | 'save-failed'. */
  result?: string;
  /** 'out' only: response code sent (absent for save-failed). */
  code?: number;
  /** 'out' only: save() result — 1 inserted, 2 updated, 3 deleted, 4 only listed; negative on failure. */
  saveRc?: number;
  /** 'out' only, result 'auth-failed': pv_www_authenticate() result — -2 wrong password, -4 stale nonce, … */
  authRc?: number;
  /** Monotonic index in this instance's log. */
  seq: number;
}

export interface Kamailio {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The TLS listener's port (started with `tls: true`), else undefined. */
  readonly tlsPort: number | undefined;
  /** The PEM certificate the TLS listener presents (self-signed): the CA to trust. */
  readonly tlsCa: string | undefined;
  readonly domain: string;
  /** Users as loaded (authorizationId filled in). */
  readonly users: readonly Required<KamailioUser>[];
  /** Main process id; also the process group id of all kamailio processes. */
  readonly pid: number;
  /** Temp dir of this run (ctl socket, pid file); removed by stop(). Appears in every kamailio process's argv. */
  readonly runDir: string;
  /** Everything kamailio wrote to stderr so far (tail kept if it grows past a few MB). */
  stderr(): string;
  /** REGISTERs received, for an AOR user or digest username (or all). Counted from stderr as it arrives. */
  registerCount(user?: string): number;
  /** The REGISTER log events, optionally filtered by AOR user or digest username. */
  registerEvents(user?: string): RegisterEvent[];
  /** What was decided about each INVITE from a local user (challengeInvites), optionally by From user or digest username. */
  inviteAuthEvents(user?: string): InviteAuthEvent[];
  ulDump(): Promise<Binding[]>;
  /** `kamcmd stats.get_statistics all` as { "group:name": value }. */
  statistics(): Promise<Record<string, number>>;
  /** Runs kamcmd against this instance and returns its stdout. */
  kamcmd(...args: string[]): Promise<string>;
  /** Whether the main process is still running. */
  running(): boolean;
  /** SIGTERM, then SIGKILL to the group after a timeout; resolves once no kamailio process of this run is left. Idempotent. */
  stop(): Promise<void>;
  /** stop(), then start again with the same options on the same port. Returns the new instance. */
  restart(): Promise<Kamailio>;
}

export function kamailioAvailable(tls = false): { ok: true } | { ok: false; reason: string } {
  return checkTools(tls ? ['kamailio', 'kamcmd', 'kamailio-tls'] : ['kamailio', 'kamcmd']);
}

const HOST = '127.0.0.1';
const STOP_TIMEOUT_MS = 10_000;
const STDERR_LIMIT = 4 * 1024 * 1024;
const MAX_PORT_ATTEMPTS = 5;
const TOKEN = /^[A-Za-z0-9._~+-]+$/;
const DOMAIN_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

interface ResolvedOptions {
  maxExpires: number;
  minExpires: number;
  users: Required<KamailioUser>[];
  domain: string;
  qop: boolean;
  challengeInvites: boolean;
  port: number | undefined;
  tls: boolean;
  tlsPort: number | undefined;
  logLevel: number;
  startTimeoutMs: number;
}

function resolveOptions(options: KamailioOptions): ResolvedOptions {
  const maxExpires = options.maxExpires ?? 3600;
  const minExpires = options.minExpires ?? Math.min(5, maxExpires);
  if (!Number.isInteger(maxExpires) || maxExpires < 1) throw new RangeError(`bad maxExpires ${maxExpires}`);
  if (!Number.isInteger(minExpires) || minExpires < 0 || minExpires > maxExpires) {
    throw new RangeError(`bad minExpires ${minExpires} (must be 0..maxExpires)`);
  }
  const domain = options.domain ?? DEFAULT_DOMAIN;
  // Goes into a cfg define: keep it a plain host name.
  if (!DOMAIN_RE.test(domain)) throw new RangeError(`bad domain ${JSON.stringify(domain)}`);
  const users = (options.users ?? [DEFAULT_USER]).map((user) => ({
    username: user.username,
    authorizationId: user.authorizationId ?? user.username,
    password: user.password,
  }));
  for (const user of users) {
    if (!TOKEN.test(user.username)) throw new RangeError(`bad username ${JSON.stringify(user.username)}`);
    if (!TOKEN.test(user.authorizationId)) {
      throw new RangeError(`bad authorizationId ${JSON.stringify(user.authorizationId)}`);
    }
    if (user.password.length === 0) throw new RangeError(`empty password for ${user.authorizationId}`);
  }
  const logLevel = options.logLevel ?? 2;
  if (!Number.isInteger(logLevel) || logLevel < -5 || logLevel > 4)
    throw new RangeError(`bad logLevel ${logLevel}`);
  return {
    maxExpires,
    minExpires,
    users,
    domain,
    qop: options.qop ?? false,
    challengeInvites: options.challengeInvites ?? true,
    port: options.port,
    tls: options.tls ?? false,
    tlsPort: options.tlsPort,
    logLevel,
    startTimeoutMs: options.startTimeoutMs ?? 30_000,
  };
}

// ---------------------------------------------------------------------------
// Process-group bookkeeping: kill everything on exit, whatever the test did.

const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
  });
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: nothing left in the group
  }
}

/** Pids of live (non-zombie) processes in a process group. Linux /proc; elsewhere, kill(-pgid, 0). */
export function processGroupMembers(pgid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const members: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp ..." — comm may contain spaces/parens: parse after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] !== 'Z' && Number(fields[2]) === pgid) members.push(Number(entry));
  }
  return members;
}

/**
 * Detached shell that kills the group (and removes the run dir) once our end
 * of its stdin pipe closes, i.e. when this Node process dies by any means.
 * stop() kills it first.
 * (dash's kill has no "--": the negative pid goes right after the signal.)
 */
function startWatchdog(pgid: number, runDir: string): ChildProcess {
  const watchdog = spawn(
    '/bin/sh',
    [
      '-c',
      'trap "" INT TERM HUP; read -r _; kill -KILL "-$1" 2>/dev/null; rm -rf "$2"',
      'kamailio-watchdog',
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

// ---------------------------------------------------------------------------
// kamcmd output

type RpcValue = string | RpcNode;
interface RpcNode {
  entries: Array<[string | null, RpcValue]>;
}

/** Parses kamcmd's default pretty output ("key: value", "key: {", "{", "}"). */
export function parseKamcmdOutput(text: string): RpcNode {
  const root: RpcNode = { entries: [] };
  const stack: RpcNode[] = [root];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '') continue;
    const top = stack[stack.length - 1]!;
    if (line === '}') {
      if (stack.length > 1) stack.pop();
      continue;
    }
    if (line === '{') {
      const node: RpcNode = { entries: [] };
      top.entries.push([null, node]);
      stack.push(node);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      top.entries.push([null, line]);
      continue;
    }
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (value === '{') {
      const node: RpcNode = { entries: [] };
      top.entries.push([key, node]);
      stack.push(node);
    } else {
      top.entries.push([key, value]);
    }
  }
  return root;
}

function childNodes(node: RpcNode, key: string): RpcNode[] {
  return node.entries.filter(([k, v]) => k === key && typeof v !== 'string').map(([, v]) => v as RpcNode);
}

function findAll(node: RpcNode, key: string, out: RpcNode[] = []): RpcNode[] {
  for (const [k, v] of node.entries) {
    if (typeof v === 'string') continue;
    if (k === key) out.push(v);
    else findAll(v, key, out);
  }
  return out;
}

function scalars(node: RpcNode): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of node.entries) if (k !== null && typeof v === 'string') out[k] = v;
  return out;
}

const NOT_SET = '[not set]';

function optional(value: string | undefined): string | undefined {
  return value === undefined || value === NOT_SET || value === '' ? undefined : value;
}

function optionalInt(value: string | undefined): number | undefined {
  const text = optional(value);
  if (text === undefined) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

function nonNegative(value: number | undefined): number | undefined {
  return value !== undefined && value >= 0 ? value : undefined;
}

/** `kamcmd ul.dump` text → bindings. */
export function parseUlDump(text: string): Binding[] {
  const bindings: Binding[] = [];
  for (const info of findAll(parseKamcmdOutput(text), 'Info')) {
    const aor = scalars(info).AoR ?? '';
    for (const contacts of childNodes(info, 'Contacts')) {
      for (const contact of childNodes(contacts, 'Contact')) {
        const raw = scalars(contact);
        const expiresText = raw.Expires ?? '';
        const expires =
          expiresText === 'permanent'
            ? Number.POSITIVE_INFINITY
            : /^-?\d+$/.test(expiresText)
              ? Number(expiresText)
              : 0;
        const userAgent = optional(raw['User-Agent']);
        bindings.push({
          aor,
          contact: raw.Address ?? '',
          expires,
          instance: optional(raw.Instance),
          // 0 = no reg-id
          regId: optionalInt(raw['Reg-Id']) || undefined,
          received: optional(raw.Received),
          socket: optional(raw.Socket),
          callId: raw['Call-ID'] ?? '',
          cseq: Number(raw.CSeq ?? 0),
          userAgent: userAgent === 'n/a' ? undefined : userAgent,
          tcpConnId: nonNegative(optionalInt(raw['Tcpconn-Id'])),
          lastModified: optionalInt(raw['Last-Modified']),
          q: Number(raw.Q ?? -1),
          path: optional(raw.Path),
          ruid: raw.Ruid ?? '',
          raw: Object.freeze(raw),
        });
      }
    }
  }
  return bindings;
}

// ---------------------------------------------------------------------------
// stderr: "KH|REGISTER-IN|tu=…|au=…|…|" lines

const KH_LINE = /KH\|(REGISTER-IN|REGISTER-OUT|INVITE-AUTH)\|(.*)$/;

/** The `key=value|…` fields of a KH line; '<null>' and empty values are absent. */
function khFields(
  line: string,
):
  | { kind: string; value: (key: string) => string | undefined; number: (key: string) => number | undefined }
  | undefined {
  const match = KH_LINE.exec(line);
  if (match === null) return undefined;
  const fields: Record<string, string> = {};
  for (const part of match[2]!.split('|')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields[part.slice(0, eq)] = part.slice(eq + 1);
  }
  const value = (key: string) => {
    const v = fields[key];
    return v === undefined || v === '<null>' || v === '' ? undefined : v;
  };
  const number = (key: string) => {
    const v = value(key);
    return v === undefined ? undefined : Number(v);
  };
  return { kind: match[1]!, value, number };
}

const INVITE_RESULTS = new Set(['challenge', 'auth-failed', 'forbidden', 'authorized']);

function parseInviteAuthLine(line: string, seq: number): InviteAuthEvent | undefined {
  const kh = khFields(line);
  const result = kh?.value('result');
  if (kh?.kind !== 'INVITE-AUTH' || result === undefined || !INVITE_RESULTS.has(result)) return undefined;
  const { value, number } = kh;
  return {
    fromUser: value('fu') ?? '',
    authUser: value('au'),
    requestUri: value('ru') ?? '',
    callId: value('callid') ?? '',
    cseq: Number(value('cseq') ?? 0),
    result: result as InviteAuthEvent['result'],
    code: number('code'),
    authRc: number('authrc'),
    seq,
  };
}

function parseRegisterLine(line: string, seq: number): RegisterEvent | undefined {
  const kh = khFields(line);
  if (kh === undefined || kh.kind === 'INVITE-AUTH') return undefined;
  const { value, number } = kh;
  return {
    phase: kh.kind === 'REGISTER-IN' ? 'in' : 'out',
    toUser: value('tu') ?? '',
    authUser: value('au'),
    callId: value('callid') ?? '',
    cseq: Number(value('cseq') ?? 0),
    proto: value('proto'),
    source: value('src'),
    expiresHeader: value('expires'),
    result: value('result'),
    code: number('code'),
    saveRc: number('saverc'),
    authRc: number('authrc'),
    seq,
  };
}

// ---------------------------------------------------------------------------

class StartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
    this.name = 'KamailioStartError';
  }
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

function execFileText(file: string, args: string[], timeoutMs: number): Promise<string> {
  // Never echo the args of htable.sets: they carry passwords. (So error.message,
  // which quotes the whole command line, is not used either.)
  const command = args.includes('htable.sets') ? 'htable.sets' : args.slice(2).join(' ');
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const out = String(stdout);
      if (error) {
        const status = error.killed ? `killed after ${timeoutMs} ms` : `exit ${String(error.code)}`;
        reject(new Error(`kamcmd ${command} failed (${status}): ${`${String(stderr)} ${out}`.trim()}`));
        return;
      }
      // kamcmd exits 0 on RPC faults and prints "error: 500 - reason" instead.
      const fault = /^error: (\d+) - (.*)$/m.exec(out);
      if (fault) reject(new Error(`kamcmd ${command}: RPC fault ${fault[1]} ${fault[2]}`));
      else resolve(out);
    });
  });
}

/** Sends OPTIONS sip:HOST:port over UDP until a response arrives: proves the SIP workers are processing. */
function optionsPing(port: number, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (error: Error | null, value?: string) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      signal.removeEventListener('abort', onAbort);
      socket.close();
      if (error) reject(error);
      else resolve(value!);
    };
    const onAbort = () => finish(new Error('aborted'));
    signal.addEventListener('abort', onAbort);
    socket.on('error', (error) => finish(error));
    socket.on('message', (data) => finish(null, data.toString('utf8').split('\r\n')[0] ?? ''));
    socket.bind(0, HOST, () => {
      const local = socket.address().port;
      const branch = `z9hG4bK-harness-${randomBytes(6).toString('hex')}`;
      const message = [
        `OPTIONS sip:${HOST}:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${HOST}:${local};branch=${branch};rport`,
        'Max-Forwards: 70',
        `From: <sip:harness@${HOST}:${local}>;tag=${randomBytes(4).toString('hex')}`,
        `To: <sip:${HOST}:${port}>`,
        `Call-ID: harness-${randomBytes(8).toString('hex')}`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      const send = () => socket.send(message, port, HOST);
      send();
      // UDP can drop under load; retransmit like RFC 3261 timer E would.
      timer = setInterval(send, 200);
    });
  });
}

class KamailioInstance implements Kamailio {
  readonly host = HOST;
  readonly port: number;
  readonly tlsPort: number | undefined;
  readonly tlsCa: string | undefined;
  readonly domain: string;
  readonly users: readonly Required<KamailioUser>[];
  readonly runDir: string;
  readonly pid: number;
  readonly #options: ResolvedOptions;
  readonly #child: ChildProcess;
  readonly #watchdog: ChildProcess | undefined;
  readonly #ctl: string;
  readonly #kamcmd: string;
  readonly #exited: Promise<void>;
  readonly #closed: Promise<void>;
  #stderr = '';
  #stdout = '';
  #partialLine = '';
  #events: RegisterEvent[] = [];
  #inviteEvents: InviteAuthEvent[] = [];
  #lineSeq = 0;
  #exitStatus: string | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: ResolvedOptions, port: number, tlsPort: number | undefined) {
    this.#options = options;
    this.port = port;
    this.tlsPort = tlsPort;
    this.domain = options.domain;
    this.users = Object.freeze(options.users.map((user) => Object.freeze({ ...user })));
    this.#kamcmd = toolPath('kamcmd');
    // Short path: unix socket paths are limited to ~108 bytes.
    this.runDir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-kam-'));
    this.#ctl = path.join(this.runDir, 'ctl.sock');
    const tlsArgs = tlsPort === undefined ? [] : this.#tlsArgs(tlsPort);
    this.tlsCa = tlsPort === undefined ? undefined : localhostCertificate().cert;
    const args = [
      '-DD', // stay in the foreground (workers are still forked)
      '-E', // log to stderr, not syslog
      '-m',
      '64',
      '-M',
      '8',
      '-f',
      KAMAILIO_CFG,
      '-Y',
      this.runDir,
      '-w',
      this.runDir,
      '-P',
      path.join(this.runDir, 'kamailio.pid'),
      '-l',
      `udp:${HOST}:${port}`,
      '-l',
      `tcp:${HOST}:${port}`,
      '-A',
      `DOMAIN="${options.domain}"`,
      '-A',
      `CTL_SOCKET="unix:${this.#ctl}"`,
      '-A',
      `MAX_EXPIRES=${options.maxExpires}`,
      '-A',
      `MIN_EXPIRES=${options.minExpires}`,
      '-A',
      `LOG_LEVEL=${options.logLevel}`,
      ...(options.qop ? ['-A', 'WITH_QOP'] : []),
      ...(options.challengeInvites ? ['-A', 'WITH_INVITE_AUTH'] : []),
      ...tlsArgs,
    ];
    installExitHook();
    // detached: own process group, so the group can be killed as one, and a
    // Ctrl-C on the test runner reaches us (exit hook), not kamailio directly.
    this.#child = spawn(toolPath('kamailio'), args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = this.#child.pid;
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#exitStatus = signal === null ? `exit code ${code}` : `signal ${signal}`;
        resolve();
      });
      this.#child.once('error', (error) => {
        this.#exitStatus = `spawn error: ${error.message}`;
        resolve();
      });
    });
    // 'close' = exited and its stdio drained (all holders of the pipes, workers included, are gone).
    this.#closed = new Promise((resolve) => {
      this.#child.once('close', () => resolve());
      this.#child.once('error', () => resolve());
    });
    if (pid === undefined) {
      // spawn failed (reported through #exited)
      this.pid = -1;
      this.#watchdog = undefined;
      return;
    }
    this.pid = pid;
    liveGroups.add(pid);
    this.#watchdog = startWatchdog(pid, this.runDir);
    this.#child.stdout!.setEncoding('utf8');
    this.#child.stdout!.on('data', (chunk: string) => {
      if (this.#stdout.length < 64 * 1024) this.#stdout += chunk;
    });
    this.#child.stderr!.setEncoding('utf8');
    this.#child.stderr!.on('data', (chunk: string) => this.#onStderr(chunk));
  }

  /** Writes the TLS key, certificate and tls.cfg into the run dir; returns the command-line arguments. */
  #tlsArgs(tlsPort: number): string[] {
    const { cert, key } = localhostCertificate();
    const certFile = path.join(this.runDir, 'cert.pem');
    const keyFile = path.join(this.runDir, 'key.pem');
    const config = path.join(this.runDir, 'tls.cfg');
    writeFileSync(certFile, cert);
    writeFileSync(keyFile, key, { mode: 0o600 });
    // The device checks the server; the server asks nothing of the device (as RingCentral).
    writeFileSync(
      config,
      [
        '[server:default]',
        'method = TLSv1.2+',
        'verify_certificate = no',
        'require_certificate = no',
        `private_key = ${keyFile}`,
        `certificate = ${certFile}`,
        '',
        '[client:default]',
        'method = TLSv1.2+',
        'verify_certificate = no',
        'require_certificate = no',
        '',
      ].join('\n'),
    );
    return ['-l', `tls:${HOST}:${tlsPort}`, '-A', 'WITH_TLS', '-A', `TLS_CONFIG="${config}"`];
  }

  #onStderr(chunk: string): void {
    this.#stderr += chunk;
    if (this.#stderr.length > STDERR_LIMIT) this.#stderr = this.#stderr.slice(-STDERR_LIMIT / 2);
    const text = this.#partialLine + chunk;
    const lines = text.split('\n');
    this.#partialLine = lines.pop() ?? '';
    for (const line of lines) {
      if (line.includes('KH|INVITE-AUTH|')) {
        const event = parseInviteAuthLine(line, this.#lineSeq++);
        if (event) this.#inviteEvents.push(event);
        continue;
      }
      if (!line.includes('KH|REGISTER-')) continue;
      const event = parseRegisterLine(line, this.#lineSeq++);
      if (event) this.#events.push(event);
    }
  }

  /** Resolves when kamailio answers kamcmd and SIP; rejects (with the stderr tail) if it exits first. */
  async ready(): Promise<void> {
    const controller = new AbortController();
    const { signal } = controller;
    const deadline = setTimeout(() => controller.abort(), this.#options.startTimeoutMs);
    const exited = this.#exited.then(async () => {
      // Workers may still hold stderr: kill them so the whole log can be read.
      if (this.pid > 0) killGroup(this.pid, 'SIGKILL');
      await this.#closed;
      throw this.#startError(`kamailio exited during start-up (${this.#exitStatus})`);
    });
    const timedOut = new Promise<never>((_, reject) =>
      signal.addEventListener('abort', () =>
        reject(this.#startError(`kamailio not ready within ${this.#options.startTimeoutMs} ms`)),
      ),
    );
    const steps = async () => {
      if (this.pid < 0) return; // the exit promise reports the spawn error
      // 1. The main process printed its sockets (before it forks the workers).
      await this.#stdoutIncludes('Listening on', signal);
      // 2. The ctl process answers (no event to wait on: poll the RPC).
      await waitFor(async () => (await this.kamcmd('core.version')).includes('kamailio'), {
        timeoutMs: this.#options.startTimeoutMs,
        intervalMs: 50,
        message: 'kamcmd core.version answers',
        signal,
      });
      // 3. Users.
      for (const user of this.users) {
        await this.kamcmd('htable.sets', 'auth', `s:${user.authorizationId}`, `s:${user.password}`);
        await this.kamcmd('htable.sets', 'owner', `s:${user.authorizationId}`, `s:${user.username}`);
      }
      // 4. A SIP worker answers OPTIONS.
      const status = await optionsPing(this.port, signal);
      if (!status.startsWith('SIP/2.0 200')) throw this.#startError(`OPTIONS ping answered "${status}"`);
    };
    try {
      const stepsDone = steps().catch((error: unknown) => {
        throw error instanceof StartError ? error : this.#startError(`start-up failed: ${String(error)}`);
      });
      await Promise.race([stepsDone, exited, timedOut]);
    } finally {
      clearTimeout(deadline);
      controller.abort();
      exited.catch(() => {});
      timedOut.catch(() => {});
    }
  }

  #stdoutIncludes(text: string, signal: AbortSignal): Promise<void> {
    const stdout = this.#child.stdout!;
    return new Promise((resolve) => {
      const check = () => {
        if (!this.#stdout.includes(text) && !signal.aborted) return;
        stdout.off('data', check);
        signal.removeEventListener('abort', check);
        resolve();
      };
      stdout.on('data', check);
      signal.addEventListener('abort', check);
      check();
    });
  }

  #startError(message: string): StartError {
    const stderr = this.#stderr + this.#partialLine;
    const inUse = /Address already in use|bind\(.*\) on .*failed/i.test(stderr);
    return new StartError(
      `${message} [port ${this.port}]\n--- kamailio stderr (tail) ---\n${tail(stderr)}`,
      inUse,
    );
  }

  stderr(): string {
    return this.#stderr + this.#partialLine;
  }

  registerEvents(user?: string): RegisterEvent[] {
    return this.#events.filter((e) => user === undefined || e.toUser === user || e.authUser === user);
  }

  inviteAuthEvents(user?: string): InviteAuthEvent[] {
    return this.#inviteEvents.filter((e) => user === undefined || e.fromUser === user || e.authUser === user);
  }

  registerCount(user?: string): number {
    return this.registerEvents(user).filter((e) => e.phase === 'in').length;
  }

  kamcmd(...args: string[]): Promise<string> {
    return execFileText(this.#kamcmd, ['-s', `unix:${this.#ctl}`, ...args], 10_000);
  }

  async ulDump(): Promise<Binding[]> {
    return parseUlDump(await this.kamcmd('ul.dump'));
  }

  async statistics(): Promise<Record<string, number>> {
    const text = await this.kamcmd('stats.get_statistics', 'all');
    const stats: Record<string, number> = {};
    for (const line of text.split('\n')) {
      const match = /^\s*([\w.-]+:[\w.-]+)\s*=\s*(-?\d+)\s*$/.exec(line);
      if (match) stats[match[1]!] = Number(match[2]);
    }
    return stats;
  }

  running(): boolean {
    return this.#exitStatus === undefined && this.pid > 0;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (this.pid > 0) {
      // Kamailio's main process shuts its workers down on SIGTERM.
      if (this.#exitStatus === undefined) this.#child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
      });
      const outcome = await Promise.race([this.#exited.then(() => 'exited' as const), timeout]);
      clearTimeout(timer);
      // Stragglers (or everything, after the timeout).
      killGroup(this.pid, 'SIGKILL');
      if (outcome === 'timeout') await this.#exited;
      await waitFor(() => processGroupMembers(this.pid).length === 0, {
        timeoutMs: STOP_TIMEOUT_MS,
        intervalMs: 20,
        message: `kamailio process group ${this.pid} gone`,
      });
      liveGroups.delete(this.pid);
    }
    await this.#killWatchdog();
    this.#child.stdout?.destroy();
    this.#child.stderr?.destroy();
    rmSync(this.runDir, { recursive: true, force: true });
  }

  async #killWatchdog(): Promise<void> {
    const watchdog = this.#watchdog;
    if (watchdog === undefined || watchdog.exitCode !== null || watchdog.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => watchdog.once('exit', () => resolve()));
    // It was unref'd; without a ref a plain script awaiting stop() would end here (exit code 13).
    watchdog.ref();
    watchdog.kill('SIGKILL');
    await exited;
  }

  async restart(): Promise<Kamailio> {
    await this.stop();
    return launch({ ...this.#options, port: this.port, tlsPort: this.tlsPort });
  }
}

async function launch(options: ResolvedOptions): Promise<Kamailio> {
  let lastError: unknown;
  for (let attempt = 0; attempt < MAX_PORT_ATTEMPTS; attempt++) {
    const port = options.port ?? (await freePort('both'));
    const tlsPort = options.tls ? (options.tlsPort ?? (await freePort('tcp'))) : undefined;
    const instance = new KamailioInstance(options, port, tlsPort);
    try {
      await instance.ready();
      return instance;
    } catch (error) {
      await instance.stop().catch(() => {});
      lastError = error;
      // Someone took the port between our probe and kamailio's bind: pick another.
      const portsChosenHere = options.port === undefined && (!options.tls || options.tlsPort === undefined);
      if (portsChosenHere && error instanceof StartError && error.addressInUse) continue;
      throw error;
    }
  }
  throw lastError;
}

/** Starts kamailio with kamailio.cfg; resolves once it answers kamcmd and SIP OPTIONS. */
export async function startKamailio(options: KamailioOptions = {}): Promise<Kamailio> {
  const available = kamailioAvailable(options.tls);
  if (!available.ok) throw new Error(available.reason);
  return launch(resolveOptions(options));
}
