import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { DEFAULT_CREDENTIALS, FAKE_SIP, FakeRcRest, JWT_GRANT } from '../helpers/fake-rc-rest.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fake(options: Parameters<typeof FakeRcRest.start>[0] = {}) {
  const f = await FakeRcRest.start(options);
  cleanups.push(() => f.close());
  return f;
}

function rcEnv(f: FakeRcRest, overrides: Record<string, string> = {}) {
  return {
    RINGCENTRAL_SERVER_URL: f.url,
    RINGCENTRAL_CLIENT_ID: DEFAULT_CREDENTIALS.clientId,
    RINGCENTRAL_CLIENT_SECRET: DEFAULT_CREDENTIALS.clientSecret,
    RINGCENTRAL_JWT_TOKEN: DEFAULT_CREDENTIALS.jwt,
    ...overrides,
  };
}

function secretsAbsent(text: string) {
  for (const secret of [DEFAULT_CREDENTIALS.clientSecret, DEFAULT_CREDENTIALS.jwt, FAKE_SIP.password]) {
    expect(text).not.toContain(secret);
  }
}

describe('rc-softphone provision', () => {
  it('provisions over the JWT flow, saves sip-info.json with mode 0600, revokes, prints no secret', async () => {
    const f = await fake();
    const r = runCli(['provision', '--debug'], { env: rcEnv(f), cleanups });
    expect(await r.exit).toBe(0);
    const token = f.requestsTo('/restapi/oauth/token')[0];
    expect(token?.form?.grant_type).toBe(JWT_GRANT);
    expect(token?.basic?.username).toBe(DEFAULT_CREDENTIALS.clientId);
    const provision = f.requestsTo('/restapi/v1.0/client-info/sip-provision')[0];
    expect(provision?.json).toMatchObject({
      sipInfo: [{ transport: 'TCP' }],
      device: { computerName: expect.any(String) },
    });
    expect(f.requestsTo('/restapi/oauth/revoke')).toHaveLength(1);
    const file = path.join(r.cwd, 'sip-info.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    expect(JSON.stringify(saved)).toContain(FAKE_SIP.username);
    expect(JSON.stringify(saved)).toMatch(/urn:uuid:/);
    secretsAbsent(r.stdout() + r.stderr());
    expect(r.stdout()).toContain('sip-info.json');
  });

  it('never overwrites without --force (exit 2, no network)', async () => {
    const f = await fake();
    const first = runCli(['provision'], { env: rcEnv(f), cleanups });
    expect(await first.exit).toBe(0);
    const before = readFileSync(path.join(first.cwd, 'sip-info.json'), 'utf8');
    const requests = f.requests.length;
    const again = runCli(['provision'], { env: rcEnv(f), cwd: first.cwd, cleanups });
    expect(await again.exit).toBe(2);
    expect(again.stderr()).toContain('--force');
    expect(f.requests.length).toBe(requests);
    const forced = runCli(['provision', '--force', '--transport', 'tls'], {
      env: rcEnv(f),
      cwd: first.cwd,
      cleanups,
    });
    expect(await forced.exit).toBe(0);
    expect(readFileSync(path.join(first.cwd, 'sip-info.json'), 'utf8')).not.toBe(before);
  });

  it('exits 2 naming each missing RINGCENTRAL_* variable', async () => {
    const r = runCli(['provision'], { env: { RINGCENTRAL_CLIENT_ID: 'x' }, cleanups });
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toContain('RINGCENTRAL_CLIENT_SECRET');
    expect(r.stderr()).toContain('RINGCENTRAL_JWT_TOKEN');
  });

  it.each([
    ['bad-jwt', /JWT/],
    ['rate-limited', /60 s|Retry-After|rate/i],
  ] as const)('maps a REST failure (%s) to a clear message and exit 1', async (behaviour, message) => {
    const f = await fake(behaviour === 'bad-jwt' ? { token: 'bad-jwt' } : { provision: 'rate-limited' });
    const r = runCli(['provision', '--log-format', 'json'], { env: rcEnv(f), cleanups });
    expect(await r.exit).toBe(1);
    const failed = r.events().find((e) => e.event === 'provision.failed');
    expect(String(failed?.message)).toMatch(message);
    secretsAbsent(r.stdout() + r.stderr());
  });

  it('a missing app permission names it', async () => {
    const f = await fake({ provision: 'no-permission' });
    const r = runCli(['provision'], { env: rcEnv(f), cleanups });
    expect(await r.exit).toBe(1);
    expect(r.stdout() + r.stderr()).toMatch(/VoIP Calling/);
    expect(f.requestsTo('/restapi/oauth/revoke')).toHaveLength(1);
  });

  it('listen --sip-info uses the saved file (missing file: exit 2 naming the flag)', async () => {
    const r = runCli(['listen', '--sip-info', 'nope.json'], { cleanups });
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toContain('--sip-info');
    writeFileSync(path.join(r.cwd, 'bad.json'), '{"username": 5}');
    const bad = runCli(['listen', '--sip-info', 'bad.json'], { cwd: r.cwd, cleanups });
    expect(await bad.exit).toBe(2);
  });
});

describe('rc-softphone listen with RINGCENTRAL_* only', () => {
  it('provisions on the fly, caches sip-info.json (0600), and a signal while connecting exits 0', async () => {
    const f = await fake();
    // The fake's proxies are RingCentral host names this sandbox cannot reach: the bot keeps reconnecting.
    const r = runCli(['listen', '--log-format', 'json'], { env: rcEnv(f), cleanups });
    const { waitFor } = await import('../helpers/ports.js');
    await waitFor(() => r.events().some((e) => e.event === 'reconnecting'), { timeoutMs: 20_000 });
    const events = r.events().map((e) => e.event);
    expect(events).toContain('provisioning');
    const file = path.join(r.cwd, 'sip-info.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(f.requestsTo('/restapi/oauth/revoke')).toHaveLength(1);
    r.child.kill('SIGINT');
    expect(await r.exit).toBe(0);
    secretsAbsent(r.stdout() + r.stderr());
  });
});
