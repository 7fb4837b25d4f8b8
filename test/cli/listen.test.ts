/**
 * The real binary, spawned as a user would: exit codes, JSON events, secrets
 * never printed, signals, --exit-after with a real call from LocalPbx.
 */
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { type CliRun, runCli } from '../helpers/cli.js';
import { tempDir, UNWRITABLE_REASON, unwritableDir } from '../helpers/dirs.js';
import { freePort, freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { startRawRegistrar } from '../helpers/raw-registrar.js';
import { readWav } from '../helpers/wav.js';

const USER = { username: '16506668888', authorizationId: '802398', password: 'Secret-Pa55word' };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function run(args: string[], env: Record<string, string> = {}, cwd?: string) {
  return runCli(args, { env, ...(cwd !== undefined && { cwd }), cleanups });
}

async function pbx() {
  const p = await LocalPbx.listen({ users: [USER] });
  cleanups.push(() => p.close());
  return p;
}

/** The exit code, or 'registered' if the CLI reached the registrar first. */
function exitOrRegister(r: CliRun, p: LocalPbx): Promise<number | null | 'registered'> {
  return Promise.race([
    r.exit,
    new Promise<'registered'>((res) => p.once('register', () => res('registered'))),
  ]);
}

function sipEnv(p: LocalPbx, password = USER.password): Record<string, string> {
  return {
    SIP_INFO_USERNAME: USER.username,
    SIP_INFO_PASSWORD: password,
    SIP_INFO_AUTHORIZATION_ID: USER.authorizationId,
    SIP_INFO_DOMAIN: p.domain,
    SIP_INFO_OUTBOUND_PROXY: `${p.address.host}:${p.address.port}`,
    SIP_INFO_TRANSPORT: 'TCP',
  };
}

describe('rc-softphone listen', () => {
  it('exits 2 naming every missing variable, before any network I/O', async () => {
    const r = run(['listen'], { SIP_INFO_USERNAME: '16505550100' });
    expect(await r.exit).toBe(2);
    for (const name of [
      'SIP_INFO_PASSWORD',
      'SIP_INFO_AUTHORIZATION_ID',
      'SIP_INFO_DOMAIN',
      'SIP_INFO_OUTBOUND_PROXY',
    ]) {
      expect(r.stderr()).toContain(name);
    }
  });

  it('--dotenv FILE: reads variables from FILE; a missing FILE exits 2 naming the flag', async () => {
    const dir = tempDir(cleanups);
    const file = path.join(dir, 'prod.env');
    writeFileSync(file, 'SIP_INFO_USERNAME=16505550100\nSIP_INFO_DOMAIN=sip.ringcentral.com\n');
    const r = run(['listen', '--dotenv', file]);
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toContain('SIP_INFO_PASSWORD');
    expect(r.stderr()).not.toContain('SIP_INFO_DOMAIN');
    const missing = run(['listen', '--dotenv', path.join(dir, 'nope.env')]);
    expect(await missing.exit).toBe(2);
    expect(missing.stderr()).toContain(`--dotenv ${path.join(dir, 'nope.env')}: no such file`);
  });

  // Node.js 20 takes --env-file for itself anywhere on its command line (a missing
  // file stops node with exit 9 before the CLI runs); where the CLI sees it, it points to --dotenv.
  it('--env-file: exits 2 pointing to --dotenv', async () => {
    const file = path.join(tempDir(cleanups), '.env');
    writeFileSync(file, 'SIP_INFO_USERNAME=16505550100\n');
    const r = run(['listen', '--env-file', file]);
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toContain('--env-file');
    expect(r.stderr()).toContain('--dotenv');
  });

  it('exits 2 for a bad flag value, naming the flag', async () => {
    const r = run(['listen', '--rtp-ports', '9-3']);
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toContain('--rtp-ports');
    const r2 = run(['listen', '--log-format', 'xml']);
    expect(await r2.exit).toBe(2);
  });

  it('exits 1 with the status when the first registration is rejected', async () => {
    const p = await pbx();
    const r = run(['listen', '--log-format', 'json'], sipEnv(p, 'wrong-password'));
    expect(await r.exit).toBe(1);
    const failed = r.events().find((e) => e.event === 'registration.failed');
    expect(failed).toMatchObject({ status: 401, willRetry: false });
    expect(p.registerCount(USER.username)).toBe(2);
  });

  it('a 503 with Retry-After on the first REGISTER is not fatal: it says so and registers on the backup', async () => {
    const p = await pbx();
    const primary = await startRawRegistrar({
      register: () => ({ status: 503, reason: 'Service Unavailable', headers: ['Retry-After: 30'] }),
    });
    cleanups.push(() => primary.close());
    const r = run(['listen', '--log-format', 'json'], {
      ...sipEnv(p),
      SIP_INFO_OUTBOUND_PROXY: `127.0.0.1:${primary.port}`,
      SIP_INFO_OUTBOUND_PROXY_BACKUP: `${p.address.host}:${p.address.port}`,
    });
    const registered = waitFor(() => r.events().some((e) => e.event === 'registered'), { timeoutMs: 15_000 });
    // Before the fix the process exited 1 here; say so instead of waiting out the timeout.
    const early = await Promise.race([
      r.exit.then((code) => `exited ${code}`),
      registered.then(() => 'registered'),
    ]);
    expect(early, r.stdout()).toBe('registered');
    const backup = `TCP ${p.address.host}:${p.address.port}`;
    const events = r.events();
    expect(events.find((e) => e.event === 'registration.failed')).toMatchObject({
      status: 503,
      willRetry: true,
      retryAfter: 30,
      retryInMs: expect.any(Number),
    });
    expect(events.find((e) => e.event === 'reconnecting')).toMatchObject({ target: backup });
    expect(events.find((e) => e.event === 'registered')).toMatchObject({ target: backup, first: true });
    expect(events.some((e) => e.event === 'fatal')).toBe(false);
    expect(primary.requests.filter((m) => m.method === 'REGISTER')).toHaveLength(1);
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
  });

  /** The exit code, or 'still retrying' once the process has reconnected three times instead of exiting. */
  function exitOrRetrying(r: ReturnType<typeof run>) {
    return Promise.race([
      r.exit,
      waitFor(() => r.events().filter((e) => e.event === 'reconnecting').length >= 3, {
        timeoutMs: 20_000,
      }).then(() => 'still retrying'),
    ]);
  }

  it('exits 1 at once when no proxy name resolves, naming the variables they came from', async () => {
    const p = await pbx();
    const r = run(['listen', '--log-format', 'json'], {
      ...sipEnv(p),
      SIP_INFO_OUTBOUND_PROXY: 'primary.invalid:5090',
      SIP_INFO_OUTBOUND_PROXY_BACKUP: 'backup.invalid:5090',
    });
    expect(await exitOrRetrying(r)).toBe(1);
    const fatal = r.events().find((e) => e.event === 'fatal');
    expect(fatal?.message).toContain('SIP_INFO_OUTBOUND_PROXY names primary.invalid');
    expect(fatal?.message).toContain('SIP_INFO_OUTBOUND_PROXY_BACKUP names backup.invalid');
    expect(fatal?.message).toContain('SIP_PROXY_NOT_FOUND');
    expect(r.stdout() + r.stderr()).not.toContain(USER.password);
  });

  it('names the file field when the credentials came from ./sip-info.json', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-cli-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const sipInfo = {
      username: USER.username,
      password: USER.password,
      authorizationId: USER.authorizationId,
      domain: 'sip.example.com',
      outboundProxy: 'sip10.example.invalid:5090',
      transport: 'TCP',
    };
    writeFileSync(path.join(dir, 'sip-info.json'), JSON.stringify({ version: 1, sipInfo }), { mode: 0o600 });
    const r = run(['listen', '--log-format', 'json'], {}, dir);
    expect(await exitOrRetrying(r)).toBe(1);
    expect(r.events().find((e) => e.event === 'fatal')?.message).toContain(
      `sipInfo.outboundProxy in .${path.sep}sip-info.json names sip10.example.invalid`,
    );
  });

  it('registers, prints the SIP trace with secrets redacted, and unregisters on SIGTERM with exit 0', async () => {
    const p = await pbx();
    const r = run(['listen', '--log-format', 'json', '--debug'], sipEnv(p));
    await waitFor(() => r.events().some((e) => e.event === 'registered'), { timeoutMs: 15_000 });
    // A request whose Proxy-Authorization is folded over three lines (RFC 3261 7.3.1).
    p.binding(USER.username)?.socket.write(
      [
        'OPTIONS sip:16506668888@device.invalid;transport=tcp SIP/2.0',
        'Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-folded-1',
        'Max-Forwards: 70',
        'From: <sip:15550100@test.invalid>;tag=folded',
        'To: <sip:16506668888@test.invalid>',
        'Call-ID: folded-authorization-1',
        'CSeq: 1 OPTIONS',
        'Proxy-Authorization: Digest username="802398",',
        '  realm="local.rc-softphone.test", nonce="abc", uri="sip:16506668888@device.invalid",',
        '\tresponse="0123456789abcdef0123456789abcdef", cnonce="folded-secret"',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    await waitFor(() =>
      r.events().some((e) => e.event === 'sip.trace' && String(e.text).includes('folded-authorization-1')),
    );
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    const events = r.events();
    expect(events.map((e) => e.event)).toEqual(
      expect.arrayContaining(['registered', 'shutdown', 'unregistered']),
    );
    const traces = events.filter((e) => e.event === 'sip.trace');
    expect(traces.some((t) => String(t.text).includes('Authorization: <redacted>'))).toBe(true);
    const all = r.stdout() + r.stderr();
    expect(all).not.toContain(USER.password);
    // JSON lines escape the quotes.
    expect(all).not.toMatch(/response=\\?"[0-9a-f]{32}/);
    expect(all).not.toContain('folded-secret');
    const folded = traces.find((t) => String(t.text).includes('folded-authorization-1'));
    expect(String(folded?.text)).toContain('Proxy-Authorization: <redacted>\r\nContent-Length: 0');
    expect(p.binding(USER.username)).toBeUndefined();
  });

  it('records a call and exits 0 after --exit-after 1; a media stream that fails is reported and the recording goes on', async () => {
    const p = await pbx();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-cli-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const min = await freeUdpPortRange(4);
    const nobodyListens = await freePort('tcp');
    const r = run(
      [
        'listen',
        '--log-format',
        'json',
        '--exit-after',
        '1',
        '--rtp-ports',
        `${min}-${min + 3}`,
        '--media-ip',
        '127.0.0.1',
        '--stream-url',
        `ws://127.0.0.1:${nobodyListens}/media`,
      ],
      sipEnv(p),
      dir,
    );
    await waitFor(() => r.events().some((e) => e.event === 'registered'), { timeoutMs: 15_000 });
    const rtp = dgram.createSocket('udp4');
    await new Promise<void>((res) => rtp.bind(0, '127.0.0.1', res));
    cleanups.push(() => rtp.close());
    const offer = `v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${rtp.address().port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n`;
    const call = await p.invite(USER.username, offer);
    await waitFor(() => r.events().some((e) => e.event === 'call.answered'));
    await waitFor(() => r.events().some((e) => e.event === 'call.sink.error'));
    await call.bye();
    expect(await r.exit).toBe(0);
    const events = r.events();
    const names = events.map((e) => e.event);
    expect(names.indexOf('call.incoming')).toBeLessThan(names.indexOf('call.answered'));
    const ended = events.find((e) => e.event === 'call.ended') as {
      wav: string;
      reason: string;
      callId: string;
    };
    expect(ended).toMatchObject({ reason: 'remote-bye', callId: call.callId });
    // The address in our SDP, not the socket's bind address (0.0.0.0).
    const port = /m=audio (\d+)/.exec(call.answer)?.[1];
    expect(events.find((e) => e.event === 'call.answered')).toMatchObject({
      localMedia: `127.0.0.1:${port}`,
    });
    expect(events.find((e) => e.event === 'call.media')).toMatchObject({
      callId: call.callId,
      codec: 'PCMU',
      localMedia: `127.0.0.1:${port}`,
      remoteMedia: `127.0.0.1:${rtp.address().port}`,
      direction: 'sendrecv',
    });
    expect(events.find((e) => e.event === 'call.sink.error')).toMatchObject({
      callId: call.callId,
      code: 'STREAM_FAILED',
    });
    expect(readWav(path.resolve(dir, ended.wav)).sampleRate).toBe(8000);
    expect(names.at(-1)).toBe('unregistered');
  });
});

/** Runs listen with working credentials and expects exit 2 before it ever reaches the registrar. */
async function refused(args: string[]): Promise<string> {
  const p = await pbx();
  const r = run(['listen', ...args], sipEnv(p));
  expect(await exitOrRegister(r, p)).toBe(2);
  expect(p.registerCount(USER.username)).toBe(0);
  return r.stderr();
}

describe('rc-softphone listen: a place recordings cannot go is refused at start, before any network I/O', () => {
  async function refusedDir(recordDir: string) {
    const stderr = await refused(['--record-dir', recordDir]);
    expect(stderr).toContain(`--record-dir ${recordDir}: `);
    return stderr;
  }

  it('a file', async () => {
    const file = path.join(tempDir(cleanups), 'recordings');
    writeFileSync(file, '');
    expect(await refusedDir(file)).toContain('is a file');
  });

  it('a directory it cannot write to', async () => {
    expect(await refusedDir(unwritableDir(cleanups))).toMatch(UNWRITABLE_REASON);
  });

  it('a missing directory it cannot create', async () => {
    expect(await refusedDir(path.join(unwritableDir(cleanups), 'calls'))).toMatch(
      /cannot be created \((EACCES|EPERM)\)|read-only filesystem/,
    );
  });

  it('an empty --record-dir (which used to turn recording off silently)', async () => {
    const stderr = await refused(['--record-dir', '']);
    expect(stderr).toContain('--record-dir needs a directory');
    expect(stderr).toContain('--no-record');
  });
});

describe('rc-softphone listen: flag values that cannot work exit 2 naming the flag, before any network I/O', () => {
  it.each([
    ['--stream-url', 'ws://a b', 'must not contain whitespace'],
    ['--stream-url', 'ws://localhost:99999/media', 'port must be 1-65535'],
    ['--stream-url', 'http://localhost:8080/media', 'must start with ws:// or wss://'],
    ['--media-ip', 'not-an-ip', 'must be an IPv4 or IPv6 address'],
    ['--media-ip', '0.0.0.0', 'must not be the unspecified address'],
  ])('%s %j', async (flag, value, reason) => {
    const stderr = await refused([flag, value]);
    expect(stderr).toContain(`${flag} ${reason}`);
    expect(stderr).toContain(`got "${value}"`);
    expect(stderr).toContain(`(example: ${flag} `);
  });
});
