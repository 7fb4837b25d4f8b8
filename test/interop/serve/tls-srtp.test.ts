/**
 * serve over TLS as RingCX uses it: SRTP (RTP/SAVP, SDES) negotiated in the
 * TLS-protected INVITE, the caller's SRTP made by libsrtp (the reference
 * implementation, python3-pylibsrtp), ours unprotected by libsrtp too; the
 * recording sample-exact. The self-signed certificate is made once in the
 * state directory and presented again, unchanged, after a restart: a peer
 * that pinned its fingerprint still connects.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CallEndInfo } from '../../../src/call/call.js';
import { parseRtp } from '../../../src/rtp/packet.js';
import { AllowList, parseCidr } from '../../../src/serve/allow-list.js';
import { BotServer } from '../../../src/serve/bot-server.js';
import { type Bot, singleBot } from '../../../src/serve/bots.js';
import { type ServeCertificate, stateCertificate } from '../../../src/serve/certificate.js';
import { freeUdpPortRange } from '../../helpers/ports.js';
import { offer, RingCx, sendPaced, tonePackets } from '../../helpers/ringcx.js';
import { describeInterop, toolPath } from '../../helpers/tools.js';
import { readWav } from '../../helpers/wav.js';
import { classifyRecording } from '../kamailio/speech.js';

const run = promisify(execFile);
const PEER = path.join(import.meta.dirname, '..', 'libsrtp', 'peer.py');
const SUITE = 'AES_CM_128_HMAC_SHA1_80';
const PACKETS = 100;

type PeerResult = { ok: string } | { error: string };

/** One libsrtp session over the packets, in order. */
async function libsrtp(
  keySalt: Buffer,
  op: 'protect' | 'unprotect',
  packets: Buffer[],
): Promise<PeerResult[]> {
  const child = run(toolPath('pylibsrtp'), [PEER], { timeout: 20_000, maxBuffer: 16 * 1024 * 1024 });
  child.child.stdin?.end(
    JSON.stringify({
      suite: SUITE,
      key: keySalt.toString('hex'),
      op,
      packets: packets.map((p) => p.toString('hex')),
    }),
  );
  const { stdout } = await child;
  return (JSON.parse(stdout) as { results: PeerResult[] }).results;
}

describeInterop('serve over TLS with SRTP (libsrtp caller)', ['pylibsrtp'], () => {
  let work: string;
  const allow = (() => {
    const c = parseCidr('127.0.0.1');
    if (!c.ok) throw new Error(c.reason);
    const list = new AllowList([c.cidr]);
    return (a: string) => list.allows(a);
  })();

  beforeAll(() => {
    work = mkdtempSync(path.join(os.tmpdir(), 'rcsp-serve-tls-'));
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function server(certificate: ServeCertificate, bot: Bot) {
    const min = await freeUdpPortRange(20);
    const s = new BotServer({
      listen: [{ transport: 'tls', host: '127.0.0.1', port: 0 }],
      admit: allow,
      tls: { cert: certificate.cert, key: certificate.key },
      bots: [bot],
      rtpPorts: { min, max: min + 19 },
      mediaIp: '127.0.0.1',
    });
    await s.start();
    return s;
  }

  it('SRTP both ways with libsrtp, recorded sample-exact; the self-signed certificate is kept and presented again after a restart', async () => {
    const stateDir = path.join(work, 'state');
    const recordDir = mkdtempSync(path.join(work, 'rec-'));
    const first = stateCertificate(stateDir, { names: ['127.0.0.1'] });
    expect(first.source).toBe('created');
    expect(statSync(first.keyPath).mode & 0o777).toBe(0o600);
    expect(first.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const bot = singleBot(['16505550100'], {
      recordDir,
      pipe: undefined,
      pipeGraceMs: 0,
      streamUrl: undefined,
      codecs: undefined,
      play: undefined,
      maxCalls: 2,
      mediaTimeoutMs: 30_000,
      maxCallDurationMs: 120_000,
    });
    const s1 = await server(first, bot);
    const ended = new Promise<CallEndInfo>((resolve) => s1.once('callEnded', (_c, info) => resolve(info)));
    const rtp = dgram.createSocket('udp4');
    try {
      await new Promise<void>((r) => rtp.bind(0, '127.0.0.1', r));
      const received: Buffer[] = [];
      rtp.on('message', (m) => received.push(m));
      const rx = await RingCx.connect({
        transport: 'tls',
        port: s1.addresses[0]?.port as number,
        pin: first.fingerprint,
      });
      const ourKey = randomBytes(30);
      const call = await rx.invite({
        did: '16505550100',
        sdp: offer(rtp.address().port, { srtpKey: ourKey.toString('base64') }),
      });
      expect(call.final.status).toBe(200);
      const answer = Buffer.from(call.final.body).toString('utf8');
      expect(answer).toMatch(/^m=audio \d+ RTP\/SAVP /m);
      const crypto = /^a=crypto:\d+ (\S+) inline:([A-Za-z0-9+/=]+)/m.exec(answer);
      expect(crypto?.[1]).toBe(SUITE);
      const theirKey = Buffer.from(crypto?.[2] as string, 'base64');
      const botPort = Number(/^m=audio (\d+)/m.exec(answer)?.[1]);

      const { packets, pcm } = tonePackets(PACKETS);
      const protectedPackets = (await libsrtp(ourKey, 'protect', packets)).map((r) => {
        if (!('ok' in r)) throw new Error(`libsrtp protect: ${r.error}`);
        return Buffer.from(r.ok, 'hex');
      });
      await sendPaced(rtp, protectedPackets, botPort);
      // The tone has gone out; let the last packets land before hanging up.
      await new Promise((r) => setTimeout(r, 200));
      expect((await call.bye()).status).toBe(200);
      const info = await ended;

      const wav = readWav(info.wav as string);
      expect(classifyRecording(wav.samples, pcm, 1)).toBe('exact');
      expect(info.stats).toMatchObject({ received: PACKETS, lost: 0, srtpAuthFailed: 0, srtpReplayed: 0 });

      // What the bot sent (priming, then silence) is SRTP libsrtp authenticates and decrypts.
      const rtpFromBot = received.filter((m) => m.length >= 12 && (m[1] as number) < 0xc8);
      expect(rtpFromBot.length).toBeGreaterThan(10);
      const opened = await libsrtp(theirKey, 'unprotect', rtpFromBot);
      expect(opened.filter((r) => 'error' in r)).toEqual([]);
      const plain = parseRtp(Buffer.from((opened[0] as { ok: string }).ok, 'hex'));
      expect(typeof plain === 'string' ? plain : plain.payloadType).toBe(0);
    } finally {
      rtp.close();
      await s1.stop();
    }

    // A restart: the same certificate, so the pinned fingerprint still matches.
    const again = stateCertificate(stateDir, { names: ['127.0.0.1'] });
    expect(again.source).toBe('stored');
    expect(again.fingerprint).toBe(first.fingerprint);
    const s2 = await server(again, bot);
    try {
      const rx = await RingCx.connect({
        transport: 'tls',
        port: s2.addresses[0]?.port as number,
        pin: first.fingerprint,
      });
      expect((await rx.options()).status).toBe(200);
      rx.close();
    } finally {
      await s2.stop();
    }
  }, 60_000);
});
