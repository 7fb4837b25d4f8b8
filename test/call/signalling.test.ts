/**
 * INVITE-server edge cases over a raw flow: CANCEL before the answer, a
 * missing ACK, requests for unknown dialogs, unknown methods, and in-dialog
 * requests the device must simply accept.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CallEndInfo } from '../../src/call/call.js';
import { CallManager } from '../../src/call/call-manager.js';
import { RtpPortPool } from '../../src/media/port-pool.js';
import { UserAgent } from '../../src/sip/ua/user-agent.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { type RawRegistrar, rawRequest, startRawRegistrar } from '../helpers/raw-registrar.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const OFFER =
  'v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';

async function setup(options: { ackTimeoutMs?: number } = {}) {
  const peer: RawRegistrar = await startRawRegistrar();
  cleanups.push(() => peer.close());
  const ua = new UserAgent({
    credentials: {
      username: '16506668888',
      password: 'x',
      authorizationId: '1',
      domain: 'test.invalid',
      outboundProxy: { host: '127.0.0.1', port: peer.port },
      transport: 'tcp',
    },
    instanceId: 'urn:uuid:11111111-2222-4333-8444-555555555557',
  });
  cleanups.push(() => ua.stop());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-sig-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const min = await freeUdpPortRange(4);
  const calls = new CallManager(ua, {
    ports: new RtpPortPool({ min, max: min + 3 }),
    mediaIp: '127.0.0.1',
    recordDir: dir,
    maxCalls: 4,
    mediaTimeoutMs: 0,
    maxCallDurationMs: 0,
    sendSilence: false,
    ...(options.ackTimeoutMs !== undefined && { ackTimeoutMs: options.ackTimeoutMs }),
  });
  cleanups.push(() => calls.closeAll());
  await ua.start();
  const ended: CallEndInfo[] = [];
  calls.on('ended', (_c, info) => ended.push(info));
  const statuses = (callId: string) =>
    peer.responses
      .filter((r) => r.headers.callId() === callId)
      .map((r) => `${r.status} ${r.headers.cseq()?.method}`);
  return { peer, calls, ended, statuses };
}

describe('INVITE server edge cases', () => {
  it('CANCEL before the answer: 200 for the CANCEL and 487 for the INVITE, no call', async () => {
    const { peer, statuses, calls } = await setup();
    // Same branch for INVITE and CANCEL (RFC 3261 9.1), in one write: the CANCEL lands before the answer.
    peer.write(
      rawRequest('INVITE', { callId: 'cancel-1', body: OFFER, branch: 'z9hG4bK-cancel-1' }) +
        rawRequest('CANCEL', { callId: 'cancel-1', branch: 'z9hG4bK-cancel-1' }),
    );
    await waitFor(() => statuses('cancel-1').includes('487 INVITE'));
    expect(statuses('cancel-1')).toEqual(expect.arrayContaining(['100 INVITE', '200 CANCEL', '487 INVITE']));
    expect(statuses('cancel-1')).not.toContain('200 INVITE');
    expect(calls.active).toHaveLength(0);
  });

  it('retransmits the 200 (T1 doubling) until the ACK, and ends the call with BYE when none comes', async () => {
    const { peer, ended, statuses } = await setup({ ackTimeoutMs: 1200 });
    peer.write(rawRequest('INVITE', { callId: 'noack-1', body: OFFER }));
    await waitFor(() => ended.length === 1, { timeoutMs: 10_000 });
    expect(ended[0]?.reason).toBe('no-ack');
    // 200 at once, then again after 500 ms (T1).
    expect(statuses('noack-1').filter((s) => s === '200 INVITE').length).toBeGreaterThanOrEqual(2);
    await waitFor(() => peer.requests.some((r) => r.method === 'BYE' && r.headers.callId() === 'noack-1'));
  });

  it('stops retransmitting the 200 once the ACK arrives', async () => {
    const { peer, statuses, calls } = await setup();
    peer.write(rawRequest('INVITE', { callId: 'ack-1', body: OFFER }));
    await waitFor(() => statuses('ack-1').includes('200 INVITE'));
    const toTag = String(
      peer.responses
        .find((r) => r.headers.callId() === 'ack-1' && r.status === 200)
        ?.headers.to()
        ?.params.get('tag'),
    );
    peer.write(rawRequest('ACK', { callId: 'ack-1', toTag, cseq: 1 }));
    await new Promise<void>((r) => setTimeout(r, 700)); // the retransmission would be due at 500 ms
    expect(statuses('ack-1').filter((s) => s === '200 INVITE')).toHaveLength(1);
    expect(calls.active).toHaveLength(1);
  });

  it('481 for a request in an unknown dialog, 501 for an unknown method, 200 for NOTIFY/MESSAGE/INFO', async () => {
    const { peer, statuses } = await setup();
    peer.write(rawRequest('BYE', { callId: 'nobody', toTag: 'not-ours' }));
    await waitFor(() => statuses('nobody').length === 1);
    expect(statuses('nobody')).toEqual(['481 BYE']);
    // RFC 3261 15.1.2: a BYE outside any dialog (no To tag) is 481 too; 501 is for unknown methods only.
    for (const method of ['BYE', 'UPDATE', 'PRACK']) {
      peer.write(rawRequest(method, { callId: `no-tag-${method}` }));
      await waitFor(() => statuses(`no-tag-${method}`).length === 1);
      expect(statuses(`no-tag-${method}`)).toEqual([`481 ${method}`]);
    }

    peer.write(rawRequest('INVITE', { callId: 'dlg-1', body: OFFER }));
    await waitFor(() => statuses('dlg-1').includes('200 INVITE'));
    const ok = peer.responses.find((r) => r.headers.callId() === 'dlg-1' && r.status === 200);
    const toTag = String(ok?.headers.to()?.params.get('tag'));
    expect(ok?.headers.get('Contact')).toMatch(/;ob>/);
    peer.write(rawRequest('ACK', { callId: 'dlg-1', toTag, cseq: 1 }));
    peer.write(rawRequest('FROB', { callId: 'dlg-1', toTag, cseq: 2 }));
    peer.write(rawRequest('NOTIFY', { callId: 'dlg-1', toTag, cseq: 3 }));
    peer.write(
      rawRequest('MESSAGE', { callId: 'dlg-1', toTag, cseq: 4, body: 'hi', contentType: 'text/plain' }),
    );
    peer.write(
      rawRequest('INFO', {
        callId: 'dlg-1',
        toTag,
        cseq: 5,
        body: 'Signal=#\r\nDuration=100\r\n',
        contentType: 'application/dtmf-relay',
      }),
    );
    peer.write(rawRequest('BYE', { callId: 'dlg-1', toTag, cseq: 6 }));
    await waitFor(() => statuses('dlg-1').includes('200 BYE'));
    expect(statuses('dlg-1')).toEqual([
      '100 INVITE',
      '200 INVITE',
      '501 FROB',
      '200 NOTIFY',
      '200 MESSAGE',
      '200 INFO',
      '200 BYE',
    ]);
  });

  it('488 carries an RFC 3261 20.43 Warning (code, agent, quoted text) that list parsing cannot split', async () => {
    const { peer } = await setup();
    const g729 = OFFER.replace('RTP/AVP 0', 'RTP/AVP 18') + 'a=rtpmap:18 G729/8000\r\n';
    peer.write(rawRequest('INVITE', { callId: 'warn-1', body: g729 }));
    await waitFor(() => peer.responses.some((r) => r.headers.callId() === 'warn-1' && r.status === 488));
    const response = peer.responses.find((r) => r.headers.callId() === 'warn-1' && r.status === 488);
    const warning = response?.headers.get('Warning') ?? '';
    // 305 Incompatible media format; the text names what was offered and what we support.
    expect(warning).toMatch(/^305 rc-softphone "[^"]*G729\/8000[^"]*PCMU\/8000, PCMA\/8000[^"]*"$/);
    expect(response?.headers.getAll('Warning')).toHaveLength(1);
  });

  it('a request with a lower CSeq than the last one in the dialog gets 500', async () => {
    const { peer, statuses } = await setup();
    peer.write(rawRequest('INVITE', { callId: 'cseq-1', body: OFFER, cseq: 10 }));
    await waitFor(() => statuses('cseq-1').includes('200 INVITE'));
    const toTag = String(
      peer.responses
        .find((r) => r.status === 200)
        ?.headers.to()
        ?.params.get('tag'),
    );
    peer.write(rawRequest('INFO', { callId: 'cseq-1', toTag, cseq: 5 }));
    await waitFor(() => statuses('cseq-1').length === 3);
    expect(statuses('cseq-1')[2]).toBe('500 INFO');
  });
});
