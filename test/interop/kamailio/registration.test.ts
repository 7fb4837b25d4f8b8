/**
 * The device's registration against a real registrar (Debian kamailio with the
 * project's kamailio.cfg): binding with our instance id, refresh under a short
 * max_expires, a registrar restart survived, a wrong password without a
 * REGISTER storm, failover to Kamailio as the backup when the primary answers
 * 503, and OPTIONS answered over the registration flow.
 */
import { afterEach, expect, it } from 'vitest';
import { isSoftphoneError } from '../../../src/errors.js';
import { type SipCredentials, UserAgent, type UserAgentOptions } from '../../../src/sip/ua/user-agent.js';
import { waitFor } from '../../helpers/ports.js';
import { startRawRegistrar } from '../../helpers/raw-registrar.js';
import { describeInterop } from '../../helpers/tools.js';
import { DEFAULT_USER, type Kamailio, startKamailio } from './harness.js';

const INSTANCE = 'urn:uuid:0b7f6c1e-6a4e-4c8a-9a57-3f0d1c2b4e5f';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function device(
  kam: Kamailio,
  overrides: Partial<SipCredentials> = {},
  options: Partial<UserAgentOptions> = {},
): UserAgent {
  const ua = new UserAgent({
    credentials: {
      ...DEFAULT_USER,
      domain: kam.domain,
      outboundProxy: { host: kam.host, port: kam.port },
      transport: 'tcp',
      ...overrides,
    },
    instanceId: INSTANCE,
    expires: 600,
    backoff: { baseMs: 200, maxMs: 2000 },
    ...options,
  });
  cleanups.push(() => ua.stop());
  return ua;
}

async function kamailio(options: Parameters<typeof startKamailio>[0] = {}): Promise<Kamailio> {
  const kam = await startKamailio(options);
  cleanups.push(() => kam.stop());
  return kam;
}

describeInterop('registration against Kamailio', ['kamailio', 'kamcmd'], () => {
  it('creates a binding with our instance id and refreshes it under a short max_expires', async () => {
    const kam = await kamailio({ maxExpires: 4, minExpires: 2 });
    const ua = device(kam);
    const granted: number[] = [];
    ua.on('registered', (e) => granted.push(e.expires));
    await ua.start();
    expect(granted[0]).toBe(4);
    const [binding] = await kam.ulDump();
    expect(binding?.aor).toBe(DEFAULT_USER.username);
    expect(binding?.instance).toBe(`<${INSTANCE}>`);
    expect(binding?.regId).toBe(1);
    expect(binding?.contact).toMatch(/;transport=tcp;ob/);
    // Granted 4 s: the device refreshes at 2 s, well before expiry.
    await waitFor(() => granted.length >= 3, { timeoutMs: 20_000 });
    const bindings = await kam.ulDump();
    expect(bindings).toHaveLength(1);
    expect(bindings[0]?.expires).toBeGreaterThan(0);
    // Shutdown unregisters.
    await ua.stop();
    await waitFor(async () => (await kam.ulDump()).length === 0, { timeoutMs: 10_000 });
  });

  it('re-registers by itself after the registrar restarts', async () => {
    const kam = await kamailio();
    const ua = device(kam);
    let registrations = 0;
    ua.on('registered', () => registrations++);
    const reconnects: number[] = [];
    ua.on('reconnecting', (e) => reconnects.push(e.attempt));
    await ua.start();
    const restarted = await kam.restart();
    cleanups.push(() => restarted.stop());
    await waitFor(() => registrations >= 2, { timeoutMs: 30_000 });
    expect(reconnects.length).toBeGreaterThan(0);
    const [binding] = await restarted.ulDump();
    expect(binding?.instance).toBe(`<${INSTANCE}>`);
  });

  it('a wrong password gives registrationFailed without a REGISTER storm', async () => {
    const kam = await kamailio();
    const ua = device(kam, { password: 'not-the-password' });
    const failures: { status: number | undefined; willRetry: boolean }[] = [];
    ua.on('registrationFailed', (e) => failures.push(e));
    const err = await ua.start().catch((e: unknown) => e);
    expect(isSoftphoneError(err, 'SIP_AUTH_REJECTED')).toBe(true);
    expect(failures).toEqual([expect.objectContaining({ status: 401, willRetry: false })]);
    // One unauthenticated REGISTER, one answer to the challenge: nothing more.
    // Kamailio counts a request before it answers it, so by the time the 401
    // that failed start() arrived, its counter already holds every REGISTER
    // we sent. (Its log lines come through a pipe from several workers and
    // may still be on their way, so they are waited for, not read at once.)
    const stats = await kam.statistics();
    expect(stats['core:rcv_requests_register']).toBe(2);
    await waitFor(() => kam.registerCount(DEFAULT_USER.username) >= 2, { message: 'both REGISTERs logged' });
    expect(kam.registerCount(DEFAULT_USER.username)).toBe(2);
    expect(ua.registered).toBe(false);
    expect(await kam.ulDump()).toHaveLength(0);
  });

  it('a primary that answers 503 with Retry-After is left for Kamailio, the backup, where the device binds', async () => {
    const kam = await kamailio();
    const primary = await startRawRegistrar({
      register: () => ({ status: 503, reason: 'Service Unavailable', headers: ['Retry-After: 30'] }),
    });
    cleanups.push(() => primary.close());
    const ua = device(kam, {
      outboundProxy: { host: '127.0.0.1', port: primary.port },
      outboundProxyBackup: { host: kam.host, port: kam.port },
    });
    const failures: { status: number | undefined; willRetry: boolean }[] = [];
    ua.on('registrationFailed', (e) => failures.push(e));
    const registered = new Promise<string>((r) => ua.once('registered', (e) => r(e.target)));
    await ua.start();
    expect(await registered).toBe(`TCP ${kam.host}:${kam.port}`);
    expect(failures).toEqual([expect.objectContaining({ status: 503, willRetry: true })]);
    expect(primary.requests.filter((m) => m.method === 'REGISTER')).toHaveLength(1);
    const [binding] = await kam.ulDump();
    expect(binding?.instance).toBe(`<${INSTANCE}>`);
  });

  it('a restarted device (same instance id) replaces its binding instead of adding one', async () => {
    const kam = await kamailio();
    const first = device(kam);
    await first.start();
    // Simulate a crash: the first process never unregisters, a new one starts.
    first.flow?.close();
    await first.stop();
    const second = device(kam);
    await second.start();
    const bindings = await kam.ulDump();
    expect(bindings.filter((b) => b.instance === `<${INSTANCE}>`)).toHaveLength(1);
  });
});

describeInterop('registration over TLS against Kamailio', ['kamailio', 'kamcmd', 'kamailio-tls'], () => {
  async function tlsKamailio(options: { maxExpires?: number; minExpires?: number } = {}): Promise<Kamailio> {
    const kam = await kamailio({ ...options, tls: true });
    if (kam.tlsPort === undefined || kam.tlsCa === undefined) throw new Error('kamailio started without TLS');
    return kam;
  }

  /** A device registering over TLS at the TLS listener. */
  function tlsDevice(kam: Kamailio, options: Partial<UserAgentOptions> = {}): UserAgent {
    return device(kam, { outboundProxy: { host: kam.host, port: kam.tlsPort! }, transport: 'tls' }, options);
  }

  it('verifies the certificate against the given CA, binds over TLS, keeps alive and refreshes on the same connection', async () => {
    const kam = await tlsKamailio({ maxExpires: 4, minExpires: 2 });
    const ua = tlsDevice(kam, { tlsCa: kam.tlsCa! });
    const granted: number[] = [];
    ua.on('registered', (e) => granted.push(e.expires));
    await ua.start();
    const [binding] = await kam.ulDump();
    expect(binding?.socket).toBe(`tls:${kam.host}:${kam.tlsPort}`);
    expect(binding?.contact).toMatch(/;transport=tls;ob/);
    expect(binding?.instance).toBe(`<${INSTANCE}>`);
    expect(granted).toEqual([4]);
    expect(binding?.tcpConnId).toBeGreaterThanOrEqual(0);
    // RFC 5626 keep-alive inside TLS: Kamailio answers our CRLFCRLF with a CRLF.
    const flow = ua.flow!;
    const pong = new Promise<void>((resolve) => flow.once('pong', resolve));
    flow.ping();
    await pong;
    // Granted 4 s: refreshed at 2 s over the same TLS connection.
    await waitFor(() => granted.length >= 2, { timeoutMs: 20_000 });
    const [refreshed] = await kam.ulDump();
    expect(refreshed?.tcpConnId).toBe(binding?.tcpConnId);
    expect(ua.flow).toBe(flow);
    await ua.stop();
    await waitFor(async () => (await kam.ulDump()).length === 0, { timeoutMs: 10_000 });
  });

  it('refuses a certificate it cannot verify: SIP_TLS_CERTIFICATE naming --tls-insecure, no REGISTER sent', async () => {
    const kam = await tlsKamailio();
    const ua = tlsDevice(kam);
    const err = await ua.start().catch((e: unknown) => e);
    expect(isSoftphoneError(err, 'SIP_TLS_CERTIFICATE')).toBe(true);
    expect(String((err as Error).message)).toMatch(/self[- ]signed.*--tls-insecure/);
    expect((await kam.statistics())['core:rcv_requests_register'] ?? 0).toBe(0);
  });

  it('with verification turned off (--tls-insecure) it registers anyway', async () => {
    const kam = await tlsKamailio();
    const ua = tlsDevice(kam, { tlsVerify: false });
    await ua.start();
    const [binding] = await kam.ulDump();
    expect(binding?.socket).toBe(`tls:${kam.host}:${kam.tlsPort}`);
  });
});
