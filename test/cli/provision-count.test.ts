/**
 * `provision --count N` against the fake RingCentral REST server (a real
 * HTTP server on port 0): one token for every device, one file per device,
 * 429 answers waited out as Retry-After says, devices saved before a
 * failure kept, no secret printed; and `listen --devices` takes the folder.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadFleetDevices } from '../../src/fleet/devices.js';
import { provisionDevices } from '../../src/rest/provision.js';
import { runCli } from '../helpers/cli.js';
import { DEFAULT_CREDENTIALS, FAKE_SIP, FakeRcRest } from '../helpers/fake-rc-rest.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fake(options: Parameters<typeof FakeRcRest.start>[0] = {}) {
  const f = await FakeRcRest.start({ distinctDevices: true, ...options });
  cleanups.push(() => f.close());
  return f;
}

const creds = (f: FakeRcRest) => ({
  serverUrl: f.url,
  clientId: DEFAULT_CREDENTIALS.clientId,
  clientSecret: DEFAULT_CREDENTIALS.clientSecret,
  jwt: DEFAULT_CREDENTIALS.jwt,
  transport: 'tcp' as const,
});

describe('provision --count', () => {
  it('provisions N devices with one token into --out-dir, waiting out a 429 as Retry-After says', {
    timeout: 30_000,
  }, async () => {
    const f = await fake({ rateLimitProvision: 1, retryAfter: '1' });
    const r = runCli(
      ['provision', '--count', '3', '--out-dir', 'fleet', '--computer-name', 'rec', '--log-format', 'json'],
      {
        env: {
          RINGCENTRAL_SERVER_URL: f.url,
          RINGCENTRAL_CLIENT_ID: DEFAULT_CREDENTIALS.clientId,
          RINGCENTRAL_CLIENT_SECRET: DEFAULT_CREDENTIALS.clientSecret,
          RINGCENTRAL_JWT_TOKEN: DEFAULT_CREDENTIALS.jwt,
        },
        cleanups,
      },
    );
    expect(await r.exit).toBe(0);
    expect(f.requestsTo('/restapi/oauth/token')).toHaveLength(1);
    expect(f.requestsTo('/restapi/oauth/revoke')).toHaveLength(1);
    const provisions = f.requestsTo('/restapi/v1.0/client-info/sip-provision');
    expect(provisions).toHaveLength(4); // one 429, then three devices
    expect(
      provisions.map((p) => (p.json as { device: { computerName: string } }).device.computerName),
    ).toEqual(['rec-1', 'rec-1', 'rec-2', 'rec-3']);
    const limited = r.events().find((e) => e.event === 'provision.rate_limited');
    expect(limited).toMatchObject({ waitMs: 1000, attempt: 1 });
    const dir = path.join(r.cwd, 'fleet');
    const files = readdirSync(dir).sort();
    expect(files).toHaveLength(3);
    for (const file of files) expect(statSync(path.join(dir, file)).mode & 0o777).toBe(0o600);
    const devices = await loadFleetDevices(dir);
    expect(new Set(devices.map((d) => d.id)).size).toBe(3);
    const out = r.stdout() + r.stderr();
    for (const s of [DEFAULT_CREDENTIALS.clientSecret, DEFAULT_CREDENTIALS.jwt, FAKE_SIP.password])
      expect(out).not.toContain(s);
  });

  it('--out with --count is a usage error naming --out-dir (exit 2)', async () => {
    const r = runCli(['provision', '--count', '2', '--out', 'x.json'], { cleanups });
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toContain('--out-dir');
  });

  it('gives up after too many 429s in a row, keeping the devices already saved, and revokes the token', async () => {
    const f = await fake({ retryAfter: '7' });
    const saved: string[] = [];
    const waits: number[] = [];
    let served = 0;
    const run = provisionDevices({
      ...creds(f),
      count: 3,
      computerName: (i) => `h-${i}`,
      maxRetries: 2,
      sleep: async (ms) => {
        waits.push(ms);
      },
      onDevice: async (result) => {
        saved.push(result.deviceId);
        served++;
        // After the first device, the account hits its limit for good.
        if (served === 1) f.behaviour.rateLimitProvision = 100;
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'REST_RATE_LIMITED' });
    expect(saved).toHaveLength(1);
    expect(waits).toEqual([7000, 7000]);
    expect(f.requestsTo('/restapi/oauth/revoke')).toHaveLength(1);
  });

  it('a Retry-After longer than the bound is not waited out', async () => {
    const f = await fake({ rateLimitProvision: 1, retryAfter: '3600' });
    const waits: number[] = [];
    await expect(
      provisionDevices({
        ...creds(f),
        count: 1,
        computerName: () => 'h',
        maxWaitMs: 60_000,
        sleep: async (ms) => {
          waits.push(ms);
        },
        onDevice: async () => {},
      }),
    ).rejects.toMatchObject({ code: 'REST_RATE_LIMITED', details: { retryAfterSeconds: 3600 } });
    expect(waits).toEqual([]);
  });
});
