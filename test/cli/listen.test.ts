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
import { runCli } from '../helpers/cli.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';
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
    expect(all).not.toMatch(/response="[0-9a-f]{32}"/);
    expect(p.binding(USER.username)).toBeUndefined();
  });

  it('records a call and exits 0 after --exit-after 1', async () => {
    const p = await pbx();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-cli-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const min = await freeUdpPortRange(4);
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
    expect(readWav(path.resolve(dir, ended.wav)).sampleRate).toBe(8000);
    expect(names.at(-1)).toBe('unregistered');
  });
});
