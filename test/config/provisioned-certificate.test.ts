/**
 * The certificate sip-provision gives with a TLS entry: kept in the SIP info
 * file, checked when read, and trusted (besides the system CAs) when the
 * device connects over TLS.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import {
  loadSipInfoFile,
  type SipInfo,
  saveSipInfoFile,
  sipInfoFromEnv,
  tlsCertificatePem,
} from '../../src/config/sip-info.js';
import { isSoftphoneError } from '../../src/errors.js';
import { Softphone } from '../../src/softphone.js';
import { FAKE_TLS_CERTIFICATE } from '../helpers/fake-rc-rest.js';
import { localhostCertificate } from '../helpers/tls-cert.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const BASE: SipInfo = {
  username: '16505550100',
  password: 'secret',
  authorizationId: '802512345678',
  domain: 'sip.ringcentral.com',
  outboundProxy: { host: '127.0.0.1', port: 5096 },
  transport: 'tls',
};

/** A TLS server presenting the localhost certificate; resolves each connection's first bytes. */
async function tlsServer(): Promise<{ port: number; firstBytes: Promise<string> }> {
  let resolve!: (text: string) => void;
  const firstBytes = new Promise<string>((r) => {
    resolve = r;
  });
  const server = tls.createServer(localhostCertificate(), (socket) => {
    socket.once('data', (d) => resolve(String(d)));
    socket.on('error', () => {});
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as { port: number }).port, firstBytes };
}

describe('the TLS certificate from sip-provision', () => {
  it('is saved in the SIP info file as RingCentral sent it and read back', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-cert-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'sip-info.json');
    await saveSipInfoFile(file, { ...BASE, certificate: FAKE_TLS_CERTIFICATE });
    expect(JSON.parse(readFileSync(file, 'utf8')).sipInfo.certificate).toBe(FAKE_TLS_CERTIFICATE);
    const loaded = await loadSipInfoFile(file);
    expect(loaded.certificate).toBe(FAKE_TLS_CERTIFICATE);
    expect(tlsCertificatePem(loaded)).toBe(
      new (await import('node:crypto')).X509Certificate(localhostCertificate().cert).toString(),
    );
  });

  it('something that is not a base64 X.509 certificate is a problem naming where it was set', () => {
    const env = {
      SIP_INFO_USERNAME: '16505550100',
      SIP_INFO_PASSWORD: 'secret',
      SIP_INFO_AUTHORIZATION_ID: '802512345678',
      SIP_INFO_DOMAIN: 'sip.ringcentral.com',
      SIP_INFO_OUTBOUND_PROXY: 'sip10.ringcentral.com:5096',
      SIP_INFO_TRANSPORT: 'TLS',
    };
    expect(sipInfoFromEnv({ ...env, SIP_INFO_CERTIFICATE: FAKE_TLS_CERTIFICATE })).toMatchObject({
      ok: true,
      sipInfo: { certificate: FAKE_TLS_CERTIFICATE },
    });
    for (const bad of ['not base64!', Buffer.from('hello').toString('base64')]) {
      const r = sipInfoFromEnv({ ...env, SIP_INFO_CERTIFICATE: bad });
      expect(r.ok).toBe(false);
      expect(!r.ok && r.problems).toEqual([
        expect.stringMatching(/^SIP_INFO_CERTIFICATE must be a base64 X\.509 certificate/),
      ]);
    }
  });

  it('is trusted when the device connects over TLS; without it the same server is refused', async () => {
    const server = await tlsServer();
    const sipInfo: SipInfo = {
      ...BASE,
      outboundProxy: { host: '127.0.0.1', port: server.port },
      certificate: FAKE_TLS_CERTIFICATE,
    };
    const phone = new Softphone({ sipInfo, keepAliveIntervalMs: 0 });
    cleanups.push(() => phone.stop());
    void phone.start().catch(() => {});
    // The handshake verified the server against the provisioned certificate: the REGISTER came through.
    expect(await server.firstBytes).toMatch(/^REGISTER sip:sip\.ringcentral\.com SIP\/2\.0\r\n/);

    const untrusted = new Softphone({
      sipInfo: { ...sipInfo, certificate: undefined } as SipInfo,
      keepAliveIntervalMs: 0,
    });
    cleanups.push(() => untrusted.stop());
    const err = await untrusted.start().catch((e: unknown) => e);
    expect(isSoftphoneError(err, 'SIP_TLS_CERTIFICATE')).toBe(true);
  });
});
