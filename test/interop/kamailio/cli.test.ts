/**
 * `rc-softphone listen --sip-info FILE` (the file `provision` writes) against
 * the real Kamailio: registers with the file's instance id, unregisters on
 * SIGTERM; over TLS, refuses a certificate it cannot verify and trusts one
 * given the way the README says (NODE_EXTRA_CA_CERTS).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { saveSipInfoFile } from '../../../src/config/sip-info.js';
import { runCli } from '../../helpers/cli.js';
import { waitFor } from '../../helpers/ports.js';
import { describeInterop } from '../../helpers/tools.js';
import { DEFAULT_USER, type Kamailio, startKamailio } from './harness.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A started Kamailio and a sip-info.json (as `provision` writes it) for it, in a fresh temp dir. */
async function setup(transport: 'tcp' | 'tls'): Promise<{ kam: Kamailio; dir: string; file: string }> {
  const kam = await startKamailio({ tls: transport === 'tls' });
  cleanups.push(() => kam.stop());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-kam-cli-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sip-info.json');
  await saveSipInfoFile(file, {
    ...DEFAULT_USER,
    domain: kam.domain,
    outboundProxy: { host: kam.host, port: transport === 'tls' ? kam.tlsPort! : kam.port },
    transport,
    deviceId: '802512345004',
  });
  return { kam, dir, file };
}

describeInterop('listen --sip-info against Kamailio', ['kamailio', 'kamcmd'], () => {
  it('registers with the saved file, keeps its instance id, and unregisters on SIGTERM', {
    timeout: 60_000,
  }, async () => {
    const { kam, dir, file } = await setup('tcp');
    const instanceId = (JSON.parse(readFileSync(file, 'utf8')) as { instanceId: string }).instanceId;
    const r = runCli(['listen', '--sip-info', file, '--log-format', 'json'], { cwd: dir, cleanups });
    await waitFor(() => r.events().some((e) => e.event === 'registered'), { timeoutMs: 20_000 });
    const [binding] = await kam.ulDump();
    expect(binding?.instance).toBe(`<${instanceId}>`);
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    expect(r.events().map((e) => e.event)).toContain('unregistered');
    await waitFor(async () => (await kam.ulDump()).length === 0, { timeoutMs: 10_000 });
    expect(r.stdout() + r.stderr()).not.toContain(DEFAULT_USER.password);
  });
});

describeInterop('listen over TLS against Kamailio', ['kamailio', 'kamcmd', 'kamailio-tls'], () => {
  it('exits 1 naming --tls-insecure for an unverifiable certificate, and registers once the CA is trusted', {
    timeout: 60_000,
  }, async () => {
    const { kam, dir, file } = await setup('tls');
    const refused = runCli(['listen', '--sip-info', file], { cwd: dir, cleanups });
    expect(await refused.exit).toBe(1);
    expect(refused.stdout() + refused.stderr()).toMatch(/certificate.*--tls-insecure/);

    const ca = path.join(dir, 'ca.pem');
    writeFileSync(ca, kam.tlsCa!);
    const r = runCli(['listen', '--sip-info', file, '--log-format', 'json'], {
      cwd: dir,
      cleanups,
      env: { NODE_EXTRA_CA_CERTS: ca },
    });
    await waitFor(() => r.events().some((e) => e.event === 'registered'), { timeoutMs: 20_000 });
    const [binding] = await kam.ulDump();
    expect(binding?.socket).toBe(`tls:${kam.host}:${kam.tlsPort}`);
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
  });
});
