/**
 * Proves the Kamailio harness and kamailio.cfg behave like the RingCentral
 * edge the softphone talks to — without the softphone: a raw TCP socket
 * plays the device, SIPp (over UDP) plays the caller.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, freeUdpPortRange, waitFor } from '../../helpers/ports.js';
import { describeInterop, toolPath } from '../../helpers/tools.js';
import {
  DEFAULT_DOMAIN,
  DEFAULT_USER,
  type Kamailio,
  type KamailioUser,
  kamailioAvailable,
  parseUlDump,
  processGroupMembers,
  startKamailio,
} from './harness.js';
import {
  branch,
  buildRegister,
  buildResponse,
  digestAuthorization,
  parseChallenge,
  parseSipMessage,
  RawSipTcpClient,
  type SipMessage,
  tag,
} from './raw-sip.js';

const SCENARIOS = fileURLToPath(new URL('./sipp/', import.meta.url));

const OTHER_USER: Required<KamailioUser> = {
  username: '16505550100',
  authorizationId: '700100',
  password: 'other-secret',
};

const THIRD_USER: Required<KamailioUser> = {
  username: '16505550111',
  authorizationId: '700111',
  password: 'third-secret',
};

/** A device identity on one TCP connection. */
interface Device {
  client: RawSipTcpClient;
  user: string;
  authorizationId: string;
  password: string;
  contactHost: string;
  instance: string;
  callId: string;
  fromTag: string;
  cseq: number;
}

async function connectDevice(kam: Kamailio, user: Required<KamailioUser> = DEFAULT_USER): Promise<Device> {
  return {
    client: await RawSipTcpClient.connect(kam.port, kam.host),
    user: user.username,
    authorizationId: user.authorizationId,
    password: user.password,
    contactHost: `${randomUUID()}.invalid`,
    instance: randomUUID(),
    callId: randomUUID(),
    fromTag: tag(),
    cseq: 0,
  };
}

function sendRegister(
  kam: Kamailio,
  device: Device,
  expires: number,
  authorization?: string,
): Promise<SipMessage> {
  device.cseq += 1;
  const cseq = `${device.cseq} REGISTER`;
  device.client.send(
    buildRegister({
      domain: kam.domain,
      user: device.user,
      callId: device.callId,
      cseq: device.cseq,
      fromTag: device.fromTag,
      contactHost: device.contactHost,
      instance: device.instance,
      regId: 1,
      expires,
      authorization,
    }),
  );
  return device.client.next((m) => m.status !== undefined && m.header('CSeq') === cseq);
}

/** REGISTER, answer the 401 with a digest; resolves with the challenge and the final response. */
async function register(
  kam: Kamailio,
  device: Device,
  expires: number,
  password = device.password,
): Promise<{ challenge: SipMessage; final: SipMessage }> {
  const challenge = await sendRegister(kam, device, expires);
  expect(challenge.status).toBe(401);
  const params = parseChallenge(challenge.header('WWW-Authenticate') ?? '');
  const authorization = digestAuthorization({
    username: device.authorizationId,
    password,
    realm: params.realm ?? '',
    nonce: params.nonce ?? '',
    method: 'REGISTER',
    uri: `sip:${kam.domain}`,
    qop: params.qop,
  });
  return { challenge, final: await sendRegister(kam, device, expires, authorization) };
}

/** Runs one SIPp scenario as a UDP UAC through Kamailio; resolves with its exit code and logs. */
async function runSipp(
  kam: Kamailio,
  scenario: string,
  service: string,
): Promise<{ code: number | null; output: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-sipp-'));
  const [localPort, mediaPort] = await Promise.all([freePort('udp'), freeUdpPortRange(4)]);
  const args = [
    `${kam.host}:${kam.port}`,
    '-sf',
    path.join(SCENARIOS, scenario),
    '-s',
    service,
    '-key',
    'domain',
    kam.domain,
    '-i',
    '127.0.0.1',
    '-p',
    String(localPort),
    '-mp',
    String(mediaPort),
    '-t',
    'u1',
    '-m',
    '1',
    '-nostdin',
    '-timeout',
    '20s',
    '-timeout_error',
    '-trace_err',
    '-error_file',
    path.join(dir, 'errors.log'),
    '-trace_msg',
    '-message_file',
    path.join(dir, 'messages.log'),
  ];
  const child = spawn(toolPath('sipp'), args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let screen = '';
  child.stdout.on('data', (chunk: Buffer) => {
    screen = (screen + chunk.toString('utf8')).slice(-20_000);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    screen = (screen + chunk.toString('utf8')).slice(-20_000);
  });
  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', (exitCode) => resolve(exitCode));
    child.once('error', () => resolve(-1));
  });
  const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');
  const output = [
    `sipp exit ${code}`,
    read(path.join(dir, 'errors.log')),
    read(path.join(dir, 'messages.log')),
    screen.slice(-4000),
  ].join('\n');
  rmSync(dir, { recursive: true, force: true });
  return { code, output };
}

/** Sends one request over UDP to USER@domain via Kamailio; resolves with the status lines of final responses seen until the first one. */
async function udpRequestFinals(kam: Kamailio, method: string, user: string): Promise<string[]> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  try {
    const finals: string[] = [];
    const done = new Promise<void>((resolve) => {
      socket.on('message', (data) => {
        const statusLine = data.toString('utf8').split('\r\n')[0] ?? '';
        if (/^SIP\/2\.0 [2-6]\d\d /.test(statusLine)) {
          finals.push(statusLine);
          resolve();
        }
      });
    });
    const request = [
      `${method} sip:${user}@${kam.domain} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${randomUUID()};rport`,
      'Max-Forwards: 70',
      `From: <sip:probe@127.0.0.1:${port}>;tag=${tag()}`,
      `To: <sip:${user}@${kam.domain}>`,
      `Call-ID: ${randomUUID()}`,
      `CSeq: 1 ${method}`,
      `Contact: <sip:probe@127.0.0.1:${port}>`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    socket.send(request, kam.port, kam.host);
    await done;
    return finals;
  } finally {
    socket.close();
  }
}

/**
 * An INVITE from a device over its TCP connection (one Call-ID, the CSeq
 * counted up per send, as RFC 3261 8.1.3.5 wants for a retry with credentials).
 */
class Invite {
  readonly callId = randomUUID();
  readonly #fromTag = tag();
  #cseq = 0;

  constructor(
    readonly device: Device,
    readonly domain: string,
    readonly target: string,
  ) {}

  /** Sends it (with a Proxy-Authorization value, if given); resolves with its final response. */
  send(proxyAuthorization?: string): Promise<SipMessage> {
    this.#cseq += 1;
    const cseq = `${this.#cseq} INVITE`;
    const d = this.device;
    this.device.client.send(
      [
        `INVITE ${this.target} SIP/2.0`,
        `Via: SIP/2.0/TCP ${d.contactHost};branch=${branch()}`,
        'Max-Forwards: 70',
        `From: <sip:${d.user}@${this.domain}>;tag=${this.#fromTag}`,
        `To: <${this.target}>`,
        `Call-ID: ${this.callId}`,
        `CSeq: ${cseq}`,
        `Contact: <sip:${d.user}@${d.contactHost};transport=tcp>`,
        ...(proxyAuthorization === undefined ? [] : [`Proxy-Authorization: ${proxyAuthorization}`]),
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    return this.device.client.next(
      (m) => m.status !== undefined && m.status >= 200 && m.header('CSeq') === cseq,
    );
  }

  /** The Proxy-Authorization value answering a 407. */
  answer(challenge: SipMessage, username: string, password: string): string {
    const params = parseChallenge(challenge.header('Proxy-Authenticate') ?? '');
    return digestAuthorization({
      username,
      password,
      realm: params.realm ?? '',
      nonce: params.nonce ?? '',
      method: 'INVITE',
      uri: this.target,
    });
  }
}

/** A callee on a loopback UDP port, addressed by a foreign URI (Kamailio relays it): sees what arrives, answers by hand. */
class UdpCallee {
  readonly received: SipMessage[] = [];
  readonly #socket: dgram.Socket;
  readonly #waiters: { predicate: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void }[] = [];
  readonly #from = new Map<SipMessage, { address: string; port: number }>();

  private constructor(socket: dgram.Socket) {
    this.#socket = socket;
    socket.on('message', (data, rinfo) => {
      const message = parseSipMessage(data.toString('utf8'));
      if (message.method === undefined) return;
      this.received.push(message);
      this.#from.set(message, { address: rinfo.address, port: rinfo.port });
      const waiter = this.#waiters.find((w) => w.predicate(message));
      if (waiter) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve(message);
      }
    });
  }

  static async start(): Promise<UdpCallee> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new UdpCallee(socket);
  }

  uri(user: string): string {
    return `sip:${user}@127.0.0.1:${this.#socket.address().port}`;
  }

  /** The first request received (or to come) that matches. */
  next(predicate: (m: SipMessage) => boolean): Promise<SipMessage> {
    const found = this.received.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ predicate, resolve }));
  }

  respond(request: SipMessage, status: number, reason: string): void {
    const to = this.#from.get(request);
    if (!to) throw new Error('not a request this callee received');
    this.#socket.send(buildResponse(request, status, reason, { toTag: tag() }), to.port, to.address);
  }

  close(): void {
    this.#socket.close();
  }
}

/** Pids of processes whose argv mentions `needle` (every kamailio process of a run has its runDir there). */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (state.slice(state.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

describe('kamailioAvailable', () => {
  it('reports ok or a reason naming the package', () => {
    const result = kamailioAvailable();
    if (!result.ok) expect(result.reason).toMatch(/kamailio/i);
    else expect(result.ok).toBe(true);
  });
});

describe('parseUlDump', () => {
  it('maps kamcmd fields and the special Expires values', () => {
    const text = [
      '{',
      '\tDomains: {',
      '\t\tDomain: {',
      '\t\t\tDomain: location',
      '\t\t\tAoRs: {',
      '\t\t\t\tInfo: {',
      '\t\t\t\t\tAoR: 100',
      '\t\t\t\t\tContacts: {',
      '\t\t\t\t\t\tContact: {',
      '\t\t\t\t\t\t\tAddress: sip:100@a.invalid;transport=tcp',
      '\t\t\t\t\t\t\tExpires: permanent',
      '\t\t\t\t\t\t\tQ: -1',
      '\t\t\t\t\t\t\tCall-ID: c1',
      '\t\t\t\t\t\t\tCSeq: 2',
      '\t\t\t\t\t\t\tUser-Agent: n/a',
      '\t\t\t\t\t\t\tReceived: [not set]',
      '\t\t\t\t\t\t\tPath: [not set]',
      '\t\t\t\t\t\t\tSocket: udp:127.0.0.1:5060',
      '\t\t\t\t\t\t\tRuid: uloc-1',
      '\t\t\t\t\t\t\tInstance: [not set]',
      '\t\t\t\t\t\t\tReg-Id: 0',
      '\t\t\t\t\t\t\tTcpconn-Id: -1',
      '\t\t\t\t\t\t}',
      '\t\t\t\t\t\tContact: {',
      '\t\t\t\t\t\t\tAddress: sip:100@b.invalid',
      '\t\t\t\t\t\t\tExpires: expired',
      '\t\t\t\t\t\t\tCall-ID: c2',
      '\t\t\t\t\t\t\tCSeq: 7',
      '\t\t\t\t\t\t}',
      '\t\t\t\t\t}',
      '\t\t\t\t}',
      '\t\t\t}',
      '\t\t}',
      '\t}',
      '}',
    ].join('\n');
    const [first, second] = parseUlDump(text);
    expect(first).toMatchObject({
      aor: '100',
      contact: 'sip:100@a.invalid;transport=tcp',
      callId: 'c1',
      cseq: 2,
    });
    expect(first!.expires).toBe(Number.POSITIVE_INFINITY);
    expect(first!.received).toBeUndefined();
    expect(first!.instance).toBeUndefined();
    expect(first!.regId).toBeUndefined();
    expect(first!.tcpConnId).toBeUndefined();
    expect(first!.userAgent).toBeUndefined();
    expect(second).toMatchObject({ contact: 'sip:100@b.invalid', expires: 0, cseq: 7 });
  });
});

describeInterop('Kamailio harness (real kamailio + sipp)', ['kamailio', 'kamcmd', 'sipp'], () => {
  describe('registrar and proxy, maxExpires 10', () => {
    let kam: Kamailio;
    let device: Device;

    beforeAll(async () => {
      kam = await startKamailio({ maxExpires: 10, users: [DEFAULT_USER, OTHER_USER, THIRD_USER] });
      device = await connectDevice(kam);
    });

    afterAll(async () => {
      await device?.client.close();
      await kam?.stop();
    });

    it('listens on a loopback port for UDP and TCP under the default domain', () => {
      expect(kam.host).toBe('127.0.0.1');
      expect(kam.port).toBeGreaterThan(0);
      expect(kam.domain).toBe(DEFAULT_DOMAIN);
      expect(kam.running()).toBe(true);
    });

    it('challenges a REGISTER over TCP with 401, realm = domain, a nonce and no qop', async () => {
      const challenge = await sendRegister(kam, device, 3600);
      expect(challenge.status).toBe(401);
      const header = challenge.header('WWW-Authenticate');
      expect(header).toMatch(
        new RegExp(`^Digest realm="${kam.domain.replace(/\./g, '\\.')}", nonce="[^"]+"$`),
      );
      expect(header).not.toMatch(/qop/);
      await waitFor(() => kam.registerCount(DEFAULT_USER.username) === 1, { message: 'REGISTER counted' });
    });

    it('accepts the right MD5 digest with 200, granting at most maxExpires', async () => {
      const { final } = await register(kam, device, 3600);
      expect(final.status).toBe(200);
      expect(final.header('Expires')).toBeUndefined(); // the grant is only in the Contact's expires param
      const contact = final.headerAll('Contact').join(', ');
      expect(contact).toContain(`<sip:${DEFAULT_USER.username}@${device.contactHost};transport=tcp>`);
      expect(contact).toMatch(/;expires=10(;|$)/);
      expect(contact).toContain(`received="sip:127.0.0.1:${device.client.localPort};transport=tcp"`);
      expect(contact).toContain(`+sip.instance="<urn:uuid:${device.instance}>"`);
      expect(contact).toMatch(/;reg-id=1(;|,|$)/);
    });

    it('answers a REGISTER that asks for outbound (Supported: outbound, reg-id) with Require: outbound, one that does not without', async () => {
      const plain = await register(kam, device, 3600);
      expect(plain.final.status).toBe(200);
      expect(plain.final.header('Require')).toBeUndefined();
      const asking = await connectDevice(kam, THIRD_USER);
      try {
        const challenge = await sendRegister(kam, asking, 3600);
        const params = parseChallenge(challenge.header('WWW-Authenticate') ?? '');
        asking.cseq += 1;
        const authorization = digestAuthorization({
          username: asking.authorizationId,
          password: asking.password,
          realm: params.realm ?? '',
          nonce: params.nonce ?? '',
          method: 'REGISTER',
          uri: `sip:${kam.domain}`,
        });
        const request = buildRegister({
          domain: kam.domain,
          user: asking.user,
          callId: asking.callId,
          cseq: asking.cseq,
          fromTag: asking.fromTag,
          contactHost: asking.contactHost,
          instance: asking.instance,
          regId: 1,
          expires: 3600,
          authorization,
        }).replace('\r\nExpires:', '\r\nSupported: outbound, path\r\nExpires:');
        asking.client.send(request);
        const final = await asking.client.next(
          (m) => m.status !== undefined && m.header('CSeq') === `${asking.cseq} REGISTER`,
        );
        expect(final.status).toBe(200);
        expect(final.header('Require')).toBe('outbound');
        await register(kam, asking, 0);
      } finally {
        await asking.client.close();
      }
    });

    it('shows the binding in ulDump with instance, reg-id, received address and socket', async () => {
      const bindings = await kam.ulDump();
      expect(bindings).toHaveLength(1);
      const binding = bindings[0]!;
      expect(binding).toMatchObject({
        aor: DEFAULT_USER.username,
        contact: `sip:${DEFAULT_USER.username}@${device.contactHost};transport=tcp`,
        instance: `<urn:uuid:${device.instance}>`,
        regId: 1,
        received: `sip:127.0.0.1:${device.client.localPort};transport=tcp`,
        socket: `tcp:127.0.0.1:${kam.port}`,
        callId: device.callId,
        cseq: device.cseq,
        userAgent: 'rc-softphone-harness-test',
      });
      expect(binding.expires).toBeGreaterThan(0);
      expect(binding.expires).toBeLessThanOrEqual(10);
      expect(binding.tcpConnId).toBeGreaterThanOrEqual(0);
    });

    it('raises a too-short expiry to minExpires (default 5) instead of answering 423', async () => {
      const { final } = await register(kam, device, 1);
      expect(final.status).toBe(200);
      expect(final.headerAll('Contact').join(', ')).toMatch(/;expires=5(;|$)/);
      await register(kam, device, 3600); // back to 10 for the calls below
    });

    it('answers a CRLFCRLF keep-alive with a CRLF pong (RFC 5626 §4.4.1)', async () => {
      const before = device.client.pongs;
      device.client.send('\r\n\r\n');
      await device.client.waitForPongs(before + 1);
      expect(device.client.pongs).toBe(before + 1);
    });

    it('delivers an OPTIONS from SIPp (UDP) over the device TCP connection, not to its .invalid Contact', async () => {
      const sipp = runSipp(kam, 'uac-options.xml', DEFAULT_USER.username);
      const options = await device.client.next((m) => m.method === 'OPTIONS', 15_000);
      expect(options.requestUri).toBe(`sip:${DEFAULT_USER.username}@${device.contactHost};transport=tcp`);
      expect(options.headerAll('Via')[0]).toMatch(new RegExp(`^SIP/2\\.0/TCP 127\\.0\\.0\\.1:${kam.port};`));
      device.client.send(buildResponse(options, 200, 'OK', { toTag: tag() }));
      const result = await sipp;
      expect(result.code, result.output).toBe(0);
    });

    it('routes a whole call from SIPp to the device: INVITE, ACK and BYE all on the device flow', async () => {
      const sipp = runSipp(kam, 'uac-invite-bye.xml', DEFAULT_USER.username);
      const invite = await device.client.next((m) => m.method === 'INVITE', 15_000);
      expect(invite.requestUri).toBe(`sip:${DEFAULT_USER.username}@${device.contactHost};transport=tcp`);
      expect(invite.headerAll('Record-Route').length).toBeGreaterThan(0);
      expect(invite.body).toContain('m=audio');

      const toTag = tag();
      const contact = `<sip:${DEFAULT_USER.username}@${device.contactHost};transport=tcp>`;
      device.client.send(buildResponse(invite, 180, 'Ringing', { toTag, contact }));
      const sdp = [
        'v=0',
        'o=- 1 1 IN IP4 127.0.0.1',
        's=-',
        'c=IN IP4 127.0.0.1',
        't=0 0',
        'm=audio 40000 RTP/AVP 0',
        'a=rtpmap:0 PCMU/8000',
        '',
      ].join('\r\n');
      device.client.send(buildResponse(invite, 200, 'OK', { toTag, contact, body: sdp }));

      const ack = await device.client.next((m) => m.method === 'ACK', 15_000);
      // Kamailio aliased our Contact in the 200 and strips the alias again on the way in.
      expect(ack.requestUri).toBe(`sip:${DEFAULT_USER.username}@${device.contactHost};transport=tcp`);
      const bye = await device.client.next((m) => m.method === 'BYE', 15_000);
      expect(bye.header('Call-ID')).toBe(invite.header('Call-ID'));
      device.client.send(buildResponse(bye, 200, 'OK'));

      const result = await sipp;
      expect(result.code, result.output).toBe(0);
    });

    it('re-challenges a wrong password with 401 and counts every REGISTER', async () => {
      const wrong = await connectDevice(kam, OTHER_USER);
      try {
        const { final } = await register(kam, wrong, 3600, 'not-the-password');
        expect(final.status).toBe(401);
        // Counted by AOR user (both REGISTERs) or by digest username (only the one that carried it).
        await waitFor(() => kam.registerCount(OTHER_USER.username) === 2, {
          message: 'both REGISTERs counted',
        });
        expect(kam.registerCount(OTHER_USER.authorizationId)).toBe(1);
        await waitFor(
          () => kam.registerEvents(OTHER_USER.username).filter((e) => e.phase === 'out').length === 2,
        );
        const outcomes = kam.registerEvents(OTHER_USER.username).filter((e) => e.phase === 'out');
        expect(outcomes.map((e) => [e.result, e.code, e.authRc])).toEqual([
          ['challenge', 401, undefined],
          ['auth-failed', 401, -2], // -2: wrong password
        ]);
        expect(kam.registerEvents(OTHER_USER.username)[0]).toMatchObject({
          phase: 'in',
          proto: 'tcp',
          source: `127.0.0.1:${wrong.client.localPort}`,
          callId: wrong.callId,
        });
      } finally {
        await wrong.client.close();
      }
    });

    it('answers 403 when an authorization id registers an AOR it does not own', async () => {
      const impostor = await connectDevice(kam, { ...OTHER_USER, username: DEFAULT_USER.username });
      try {
        const { final } = await register(kam, impostor, 3600);
        expect(final.status).toBe(403);
      } finally {
        await impostor.client.close();
      }
    });

    it('replaces the binding when the same +sip.instance/reg-id registers from a new connection', async () => {
      const again = await connectDevice(kam);
      again.instance = device.instance;
      try {
        const { final } = await register(kam, again, 3600);
        expect(final.status).toBe(200);
        const bindings = (await kam.ulDump()).filter((b) => b.aor === DEFAULT_USER.username);
        expect(bindings).toHaveLength(1);
        expect(bindings[0]!.received).toBe(`sip:127.0.0.1:${again.client.localPort};transport=tcp`);
      } finally {
        await again.client.close();
      }
    });

    it('keeps a binding whose connection closed, and answers requests to it with one 477', async () => {
      const gone = await connectDevice(kam, OTHER_USER);
      expect((await register(kam, gone, 3600)).final.status).toBe(200);
      await gone.client.close();
      // The binding outlives the connection (no keep-alive/outbound tracking)...
      const bindings = await kam.ulDump();
      expect(bindings.some((b) => b.aor === OTHER_USER.username)).toBe(true);
      // ...but Kamailio never opens a new connection to the device: tm answers 477.
      const finals = await udpRequestFinals(kam, 'OPTIONS', OTHER_USER.username);
      expect(finals[0]).toMatch(/^SIP\/2\.0 477 /);
    });

    it('delivers to the newest of two bindings of an AOR (RingCentral: the latest registration wins)', async () => {
      const older = await connectDevice(kam, THIRD_USER);
      const newer = await connectDevice(kam, THIRD_USER);
      try {
        expect((await register(kam, older, 3600)).final.status).toBe(200);
        const { final } = await register(kam, newer, 3600);
        expect(final.headerAll('Contact').join(',').match(/<sip:/g)).toHaveLength(2); // 200 lists all bindings
        const finals = udpRequestFinals(kam, 'OPTIONS', THIRD_USER.username);
        const options = await newer.client.next((m) => m.method === 'OPTIONS');
        newer.client.send(buildResponse(options, 200, 'OK', { toTag: tag() }));
        expect((await finals)[0]).toMatch(/^SIP\/2\.0 200 /);
        expect(older.client.received.some((m) => m.method === 'OPTIONS')).toBe(false);
      } finally {
        await Promise.all([older.client.close(), newer.client.close()]);
      }
    });

    it('removes the binding on REGISTER with Expires: 0', async () => {
      const leaving = await connectDevice(kam, THIRD_USER);
      try {
        expect((await register(kam, leaving, 3600)).final.status).toBe(200);
        const before = (await kam.ulDump()).filter((b) => b.aor === THIRD_USER.username).length;
        const { final } = await register(kam, leaving, 0);
        expect(final.status).toBe(200);
        expect(final.headerAll('Contact').join(',')).not.toContain(leaving.contactHost);
        const after = (await kam.ulDump()).filter((b) => b.aor === THIRD_USER.username).length;
        expect(after).toBe(before - 1);
        // save() returns 3 when it deleted contacts (the log line follows the reply: wait for it).
        const last = await waitFor(() => kam.registerEvents(THIRD_USER.username).find((e) => e.saveRc === 3));
        expect(last).toMatchObject({ phase: 'out', result: 'saved', code: 200 });
      } finally {
        await leaving.client.close();
      }
    });

    it('rejects kamcmd calls that the RPC layer faults (kamcmd itself exits 0)', async () => {
      await expect(kam.kamcmd('no.such.command')).rejects.toThrow(/RPC fault 500/);
    });

    it('exposes kamcmd statistics', async () => {
      const stats = await kam.statistics();
      expect(stats['registrar:max_expires']).toBe(10);
      expect(stats['registrar:accepted_regs']).toBeGreaterThanOrEqual(3);
      expect(stats['tcp:passive_open']).toBeGreaterThanOrEqual(1);
    });
  });

  describe('INVITE challenge (challengeInvites, on by default)', () => {
    let kam: Kamailio;
    let callee: UdpCallee;

    beforeAll(async () => {
      kam = await startKamailio({ users: [DEFAULT_USER, OTHER_USER] });
      callee = await UdpCallee.start();
    });

    afterAll(async () => {
      callee?.close();
      await kam?.stop();
    });

    it('challenges a local user’s INVITE with 407 (realm = domain, no qop), relays it with the right digest, credentials removed', async () => {
      const device = await connectDevice(kam);
      try {
        const invite = new Invite(device, kam.domain, callee.uri('alice'));
        const challenge = await invite.send();
        expect(challenge.status).toBe(407);
        const header = challenge.header('Proxy-Authenticate') ?? '';
        expect(header).toMatch(
          new RegExp(`^Digest realm="${kam.domain.replace(/\./g, '\\.')}", nonce="[^"]+"$`),
        );
        expect(callee.received).toHaveLength(0);

        const relayed = callee.next((m) => m.method === 'INVITE');
        const final = invite.send(invite.answer(challenge, device.authorizationId, device.password));
        const atCallee = await relayed;
        // The callee never sees the device's credentials.
        expect(atCallee.header('Proxy-Authorization')).toBeUndefined();
        expect(atCallee.header('Call-ID')).toBe(invite.callId);
        callee.respond(atCallee, 486, 'Busy Here');
        expect((await final).status).toBe(486);
        await waitFor(() => kam.inviteAuthEvents(DEFAULT_USER.username).length === 2);
        expect(
          kam.inviteAuthEvents(DEFAULT_USER.username).map((e) => [e.result, e.code, e.authUser, e.cseq]),
        ).toEqual([
          ['challenge', 407, undefined, 1],
          ['authorized', undefined, DEFAULT_USER.authorizationId, 2],
        ]);
        expect(kam.inviteAuthEvents()[0]).toMatchObject({
          fromUser: DEFAULT_USER.username,
          requestUri: callee.uri('alice'),
          callId: invite.callId,
        });
      } finally {
        await device.client.close();
      }
    });

    it('challenges a wrong password again (407) and refuses another user’s authorization id (403): nothing relayed', async () => {
      const device = await connectDevice(kam);
      try {
        const before = callee.received.length;
        const wrong = new Invite(device, kam.domain, callee.uri('bob'));
        const challenge = await wrong.send();
        const again = await wrong.send(wrong.answer(challenge, device.authorizationId, 'not-the-password'));
        expect(again.status).toBe(407);

        const impostor = new Invite(device, kam.domain, callee.uri('bob'));
        const first = await impostor.send();
        const refused = await impostor.send(
          impostor.answer(first, OTHER_USER.authorizationId, OTHER_USER.password),
        );
        expect(refused.status).toBe(403);
        await waitFor(
          () => kam.inviteAuthEvents().filter((e) => e.requestUri === callee.uri('bob')).length === 4,
        );
        expect(
          kam
            .inviteAuthEvents()
            .filter((e) => e.requestUri === callee.uri('bob'))
            .map((e) => [e.result, e.code, e.authRc]),
        ).toEqual([
          ['challenge', 407, undefined],
          ['auth-failed', 407, -2], // -2: wrong password
          ['challenge', 407, undefined],
          ['forbidden', 403, undefined],
        ]);
        expect(callee.received.length).toBe(before);
      } finally {
        await device.client.close();
      }
    });

    it('does not challenge an INVITE from outside the domain', async () => {
      const socket = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      try {
        const relayed = callee.next(
          (m) => m.method === 'INVITE' && m.header('From')?.includes('stranger') === true,
        );
        const port = socket.address().port;
        socket.send(
          [
            `INVITE ${callee.uri('carol')} SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=${branch()};rport`,
            'Max-Forwards: 70',
            `From: <sip:stranger@127.0.0.1:${port}>;tag=${tag()}`,
            `To: <${callee.uri('carol')}>`,
            `Call-ID: ${randomUUID()}`,
            'CSeq: 1 INVITE',
            `Contact: <sip:stranger@127.0.0.1:${port}>`,
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n'),
          kam.port,
          kam.host,
        );
        callee.respond(await relayed, 486, 'Busy Here');
        expect(kam.inviteAuthEvents('stranger')).toEqual([]);
      } finally {
        socket.close();
      }
    });
  });

  describe('challengeInvites: false', () => {
    let kam: Kamailio;
    afterAll(async () => {
      await kam?.stop();
    });

    it('relays a local user’s INVITE without a challenge', async () => {
      kam = await startKamailio({ challengeInvites: false, domain: 'open.rc-softphone.test' });
      const callee = await UdpCallee.start();
      const device = await connectDevice(kam);
      try {
        const relayed = callee.next((m) => m.method === 'INVITE');
        const final = new Invite(device, kam.domain, callee.uri('alice')).send();
        callee.respond(await relayed, 486, 'Busy Here');
        expect((await final).status).toBe(486);
        expect(kam.inviteAuthEvents()).toEqual([]);
      } finally {
        callee.close();
        await device.client.close();
      }
    });
  });

  describe('qop option', () => {
    let kam: Kamailio;
    afterAll(async () => {
      await kam?.stop();
    });

    it('challenges with qop="auth" and accepts a qop digest', async () => {
      kam = await startKamailio({ qop: true, domain: 'qop.rc-softphone.test' });
      const device = await connectDevice(kam);
      try {
        const { challenge, final } = await register(kam, device, 600);
        const params = parseChallenge(challenge.header('WWW-Authenticate') ?? '');
        expect(params.realm).toBe('qop.rc-softphone.test');
        expect(params.qop).toBe('auth');
        expect(final.status).toBe(200);
        expect(final.headerAll('Contact').join(', ')).toMatch(/;expires=600(;|$)/);
      } finally {
        await device.client.close();
      }
    });
  });

  describe('lifecycle', () => {
    it('starts instances side by side on different free ports', async () => {
      const [a, b] = await Promise.all([startKamailio(), startKamailio()]);
      try {
        expect(a.port).not.toBe(b.port);
        expect(a.pid).not.toBe(b.pid);
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    });

    it('restarts on the same port with an empty location table, dropping old connections', async () => {
      const first = await startKamailio({ maxExpires: 10 });
      let second: Kamailio | undefined;
      try {
        const device = await connectDevice(first);
        expect((await register(first, device, 3600)).final.status).toBe(200);
        expect(await first.ulDump()).toHaveLength(1);

        second = await first.restart();
        await device.client.closed; // the server end went away with the old process
        expect(second.port).toBe(first.port);
        expect(second.pid).not.toBe(first.pid);
        expect(first.running()).toBe(false);
        expect(await second.ulDump()).toEqual([]);
        expect(second.registerCount()).toBe(0);

        const again = await connectDevice(second);
        try {
          expect((await register(second, again, 3600)).final.status).toBe(200);
          await waitFor(() => second!.registerCount(DEFAULT_USER.username) === 2);
        } finally {
          await again.client.close();
        }
      } finally {
        await first.stop();
        await second?.stop();
      }
    });

    it('stop() leaves no process, no temp dir, a free port, and can be called again', async () => {
      const kam = await startKamailio();
      const { pid, runDir, port } = kam;
      expect(processGroupMembers(pid).length).toBeGreaterThan(2); // main + workers
      expect(processesMentioning(runDir).length).toBeGreaterThan(2);

      await Promise.all([kam.stop(), kam.stop()]);
      await kam.stop();

      expect(kam.running()).toBe(false);
      expect(processGroupMembers(pid)).toEqual([]);
      expect(processesMentioning(runDir)).toEqual([]);
      expect(existsSync(runDir)).toBe(false);
      expect(await canBind(port)).toBe(true);
    });

    it('rejects with the stderr tail when kamailio cannot start (port taken)', async () => {
      const port = await freePort('both');
      const blocker = net.createServer();
      await new Promise<void>((resolve) =>
        blocker.listen({ host: '127.0.0.1', port, exclusive: true }, resolve),
      );
      try {
        const error = await startKamailio({ port }).then(
          () => new Error('started on a taken port'),
          (e: unknown) => e as Error,
        );
        expect(error.message).toMatch(/kamailio exited during start-up/);
        expect(error.message).toMatch(/kamailio stderr/);
        expect(error.message).toMatch(/Address already in use|bind/i);
      } finally {
        await new Promise((resolve) => blocker.close(resolve));
      }
    });
  });
});
