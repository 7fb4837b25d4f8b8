/**
 * Calls both ways on loopback: two Softphones registered at one LocalPbx
 * (which challenges INVITEs with 407 and relays them, as RingCentral's edge
 * does), and a scripted raw peer for the realm check and transfer.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Call, CallEndInfo } from '../../src/call/call.js';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { dominantFrequency } from '../../src/media/goertzel.js';
import { Softphone, type SoftphoneOptions } from '../../src/softphone.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { type RawRegistrarOptions, rawResponse, startRawRegistrar } from '../helpers/raw-registrar.js';
import { readWav } from '../helpers/wav.js';

const ALICE = { username: '16505550101', authorizationId: '8001', password: 'alice-secret' };
const BOB = { username: '16505550102', authorizationId: '8002', password: 'bob-secret' };
const CAROL = { username: '16505550103', authorizationId: '8003', password: 'carol-secret' };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function phoneAt(pbx: LocalPbx, user: typeof ALICE, options: Partial<SoftphoneOptions> = {}) {
  const recordDir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-out-'));
  cleanups.push(() => rmSync(recordDir, { recursive: true, force: true }));
  const min = await freeUdpPortRange(6);
  const phone = new Softphone({
    sipInfo: { ...user, domain: pbx.domain, outboundProxy: pbx.address, transport: 'tcp' },
    recordDir,
    rtpPorts: { min, max: min + 5 },
    mediaIp: '127.0.0.1',
    ...options,
  });
  cleanups.push(() => phone.stop());
  const ended = new Map<string, CallEndInfo>();
  phone.on('callEnded', (call, info) => ended.set(call.id, info));
  await phone.start();
  return { phone, ended, recordDir };
}

async function pair(
  bobOptions: Partial<SoftphoneOptions> = {},
  aliceOptions: Partial<SoftphoneOptions> = {},
) {
  const pbx = await LocalPbx.listen({ users: [ALICE, BOB, CAROL] });
  cleanups.push(() => pbx.close());
  const alice = await phoneAt(pbx, ALICE, aliceOptions);
  const bob = await phoneAt(pbx, BOB, bobOptions);
  return { pbx, alice, bob };
}

/** 16-bit PCM of a tone, 8 kHz. */
function tone(freq: number, ms: number, amp = 8000): Int16Array {
  return Int16Array.from({ length: (ms * 8000) / 1000 }, (_, i) =>
    Math.round(amp * Math.sin((2 * Math.PI * freq * i) / 8000)),
  );
}

describe('outbound calls', () => {
  it.each([
    ['G.711', { codecs: ['PCMU', 'PCMA'] } as Partial<SoftphoneOptions>, 'PCMU', 8000],
    ['Opus (the default)', {}, 'opus', 16000],
  ])(
    'calls another device through the PBX (407 answered), %s, audio and DTMF both ways, ends with BYE on both sides',
    async (_name, options, codec, rate) => {
      const { alice, bob } = await pair(options, options);
      const bobCall = new Promise<Call>((r) => bob.phone.once('callAnswered', r));
      const call = await alice.phone.call(BOB.username);
      expect(call.direction).toBe('outbound');
      const answered = new Promise<void>((r) => call.once('answered', () => r()));
      const theirs = await bobCall;
      await answered;
      expect(call.negotiated?.codec).toBe(codec);
      expect([call.sampleRate, theirs.sampleRate]).toEqual([rate, rate]);
      const heardByBob: string[] = [];
      theirs.on('dtmf', (d) => heardByBob.push(d.digit));
      const heardByAlice: string[] = [];
      call.on('dtmf', (d) => heardByAlice.push(d.digit));
      await call.sendDtmf('12#');
      await theirs.sendDtmf('9');
      await call.play(tone(1000, 600));
      await waitFor(() => heardByBob.length === 3 && heardByAlice.length === 1);
      await call.hangup();
      await waitFor(() => bob.ended.has(theirs.id) && alice.ended.has(call.id));
      expect(alice.ended.get(call.id)?.reason).toBe('local-hangup');
      expect(bob.ended.get(theirs.id)?.reason).toBe('remote-bye');
      expect(heardByBob).toEqual(['1', '2', '#']);
      expect(heardByAlice).toEqual(['9']);
      // Bob's recording (at the call's rate) holds Alice's 1 kHz tone (played from 8 kHz PCM).
      const wav = readWav(bob.ended.get(theirs.id)?.wav as string);
      expect(wav.sampleRate).toBe(rate);
      const samples = wav.samples;
      const window = rate / 5;
      let best = 0;
      for (let at = 0; at + window <= samples.length; at += window / 2) {
        const { frequency, purity } = dominantFrequency(samples.subarray(at, at + window), rate, 300, 3400);
        if (purity > 0.9 && Math.abs(frequency - 1000) < 20) best++;
      }
      expect(best).toBeGreaterThanOrEqual(3);
      // The outbound call has a sidecar too, named after the callee.
      const sidecar = JSON.parse(readFileSync(alice.ended.get(call.id)?.sidecar as string, 'utf8'));
      expect(sidecar).toMatchObject({
        direction: 'outbound',
        endReason: 'local-hangup',
        codec,
        sampleRate: rate,
      });
      expect(path.basename(alice.ended.get(call.id)?.wav as string)).toContain(`_${BOB.username}_`);
    },
  );

  it('a refusal (486) fails the call with its status: failed, then ended rejected', async () => {
    const { pbx, alice } = await pair();
    pbx.calleeStatus.set(BOB.username, 486);
    const call = await alice.phone.call(BOB.username);
    const failed = new Promise<{ status: number | undefined }>((r) => call.once('failed', r));
    const info = await call.done;
    expect((await failed).status).toBe(486);
    expect(info).toMatchObject({ reason: 'rejected', status: 486, statusReason: 'Busy Here' });
    expect(info.wav).toBeUndefined();
  });

  it('hanging up while it rings sends CANCEL: the callee sees it cancelled, we end cancelled', async () => {
    const { alice, bob } = await pair({ autoAnswer: false });
    const ringing = new Promise<Call>((r) => bob.phone.once('incomingCall', r));
    const call = await alice.phone.call(BOB.username);
    const progress = new Promise<number>((r) => call.once('progress', (p) => r(p.status)));
    const theirs = await ringing;
    expect(await progress).toBe(180);
    await call.hangup();
    expect(call.endInfo?.reason).toBe('cancelled');
    expect((await theirs.done).reason).toBe('cancelled');
  });

  it('an inbound call that is not auto-answered can be accepted, declined or redirected', async () => {
    const { alice, bob } = await pair({ autoAnswer: false });
    bob.phone.on('incomingCall', (c) => {
      if (c.from.user !== ALICE.username) return;
      void c.accept();
    });
    const call = await alice.phone.call(BOB.username);
    await new Promise<void>((r) => call.once('answered', () => r()));
    await call.hangup();
    bob.phone.removeAllListeners('incomingCall');
    bob.phone.once('incomingCall', (c) => c.decline());
    const declined = await (await alice.phone.call(BOB.username)).done;
    expect(declined).toMatchObject({ reason: 'rejected', status: 603 });
    bob.phone.once('incomingCall', (c) => c.redirect('16505550199'));
    const redirected = await (await alice.phone.call(BOB.username)).done;
    expect(redirected).toMatchObject({ reason: 'rejected', status: 302 });
  });

  it('hold and unhold re-INVITE with sendonly / sendrecv; the far end sees it, both recordings go on', async () => {
    const { alice, bob } = await pair();
    const bobCall = new Promise<Call>((r) => bob.phone.once('callAnswered', r));
    const call = await alice.phone.call(BOB.username);
    await new Promise<void>((r) => call.once('answered', () => r()));
    const theirs = await bobCall;
    const seen: boolean[] = [];
    theirs.on('media', (m) => seen.push(m.onHold));
    await call.hold();
    await waitFor(() => seen.includes(true));
    expect(theirs.negotiated?.direction).toBe('recvonly');
    await call.unhold();
    await waitFor(() => seen.at(-1) === false);
    expect(theirs.negotiated?.direction).toBe('sendrecv');
    expect(theirs.ended).toBe(false);
    await call.hangup();
    const bobInfo = await theirs.done;
    const wav = readWav(bobInfo.wav as string);
    expect(Math.abs((wav.samples.length * 1000) / wav.sampleRate - bobInfo.durationMs)).toBeLessThan(150);
  });

  it('a transfer the far end declines (603, ours by default) reports it and keeps the call', async () => {
    const { alice, bob } = await pair();
    const bobCall = new Promise<Call>((r) => bob.phone.once('callAnswered', r));
    const call = await alice.phone.call(BOB.username);
    await new Promise<void>((r) => call.once('answered', () => r()));
    const theirs = await bobCall;
    const refers: unknown[] = [];
    theirs.on('refer', (r) => refers.push(r));
    expect(await call.transfer('sip:16505550199@example.com')).toEqual({
      ok: false,
      status: 603,
      reason: 'Decline',
    });
    expect(refers).toEqual([
      expect.objectContaining({ referTo: '<sip:16505550199@example.com>', accepted: false }),
    ]);
    expect(call.ended).toBe(false);
    await call.hangup();
  });

  it('with followRefer the transferee calls the target (Referred-By), reports it with NOTIFY sipfrag, and the old call ends', async () => {
    const { pbx, alice, bob } = await pair({ followRefer: true });
    const carol = await phoneAt(pbx, CAROL);
    const bobCall = new Promise<Call>((r) => bob.phone.once('callAnswered', r));
    const call = await alice.phone.call(BOB.username);
    await new Promise<void>((r) => call.once('answered', () => r()));
    const theirs = await bobCall;
    const refers: unknown[] = [];
    theirs.on('refer', (r) => refers.push(r));
    const carolCall = new Promise<Call>((r) => carol.phone.once('callAnswered', r));
    // Alice (the transferor) follows the NOTIFYs to the final 200, then hangs up.
    expect(await call.transfer(`sip:${CAROL.username}@${pbx.domain}`)).toEqual({
      ok: true,
      status: 200,
      reason: 'OK',
    });
    const atCarol = await carolCall;
    expect(refers).toEqual([
      {
        referTo: `<sip:${CAROL.username}@${pbx.domain}>`,
        referredBy: `<sip:${ALICE.username}@${pbx.domain}>`,
        accepted: true,
      },
    ]);
    expect(atCarol.from.user).toBe(BOB.username);
    expect(pbx.lastRequest('INVITE', atCarol.id)?.headers.get('Referred-By')).toBe(
      `<sip:${ALICE.username}@${pbx.domain}>`,
    );
    // Bob's call with Alice is over (Alice's BYE or Bob's own, whichever came first); Bob and Carol talk on.
    expect(['remote-bye', 'transferred']).toContain((await theirs.done).reason);
    expect(call.endInfo?.reason ?? (await call.done).reason).toMatch(/^(local-hangup|remote-bye)$/);
    expect(atCarol.ended).toBe(false);
    await atCarol.hangup();
  });

  it('with followRefer a new call that fails is reported to the transferor with its status; the old call goes on', async () => {
    const { pbx, alice, bob } = await pair({ followRefer: true });
    await phoneAt(pbx, CAROL);
    pbx.calleeStatus.set(CAROL.username, 486);
    const bobCall = new Promise<Call>((r) => bob.phone.once('callAnswered', r));
    const call = await alice.phone.call(BOB.username);
    await new Promise<void>((r) => call.once('answered', () => r()));
    const theirs = await bobCall;
    expect(await call.transfer(CAROL.username)).toEqual({ ok: false, status: 486, reason: 'Busy Here' });
    expect(theirs.ended).toBe(false);
    expect(call.ended).toBe(false);
    await call.hangup();
    expect((await theirs.done).reason).toBe('remote-bye');
  });
});

describe('outbound calls against a scripted peer', () => {
  async function scripted(respond: NonNullable<RawRegistrarOptions['respond']>) {
    const peer = await startRawRegistrar({ respond });
    cleanups.push(() => peer.close());
    const min = await freeUdpPortRange(4);
    const recordDir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-scripted-'));
    cleanups.push(() => rmSync(recordDir, { recursive: true, force: true }));
    const phone = new Softphone({
      recordDir,
      sipInfo: {
        username: '16506668888',
        password: 'x-secret',
        authorizationId: '1',
        domain: 'test.invalid',
        outboundProxy: { host: '127.0.0.1', port: peer.port },
        transport: 'tcp',
      },
      rtpPorts: { min, max: min + 3 },
      mediaIp: '127.0.0.1',
    });
    cleanups.push(() => phone.stop());
    await phone.start();
    return { peer, phone };
  }

  const SDP =
    'v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n';

  it('never answers a challenge from a realm other than the registrar: the call fails SIP_AUTH_REALM', async () => {
    const { peer, phone } = await scripted((req, reply) => {
      if (req.method !== 'INVITE') return undefined;
      reply(
        rawResponse(req, '407 Proxy Authentication Required', {
          headers: ['Proxy-Authenticate: Digest realm="evil.example", nonce="abc", algorithm=MD5'],
        }),
      );
      return true;
    });
    const info = await (await phone.call('16505550123')).done;
    expect(info).toMatchObject({ reason: 'rejected', status: 407, code: 'SIP_AUTH_REALM' });
    const invites = peer.requests.filter((r) => r.method === 'INVITE');
    expect(invites).toHaveLength(1);
    expect(invites.some((r) => r.headers.has('Proxy-Authorization') || r.headers.has('Authorization'))).toBe(
      false,
    );
    // The non-2xx was ACKed (RFC 3261 17.1.1.3).
    await waitFor(() => peer.requests.some((r) => r.method === 'ACK'));
  });

  it('183 with SDP is early media (recorded from then on), P-Rc-Api-Ids reach the events and the sidecar; a blind transfer follows the NOTIFY sipfrag then BYEs', async () => {
    const ids = 'party-id=p-42;session-id=s-4242';
    const { peer, phone } = await scripted((req, reply) => {
      if (req.method === 'INVITE' && !req.headers.to()?.params.has('tag')) {
        reply(
          rawResponse(req, '183 Session Progress', {
            toTag: 'callee',
            headers: [`P-Rc-Api-Ids: ${ids}`],
            body: SDP,
          }),
        );
        setTimeout(
          () =>
            reply(
              rawResponse(req, '200 OK', {
                toTag: 'callee',
                headers: ['Contact: <sip:callee@127.0.0.1:5999;transport=tcp>', `P-Rc-Api-Ids: ${ids}`],
                body: SDP,
              }),
            ),
          1000,
        );
        return true;
      }
      if (req.method === 'REFER') {
        reply(rawResponse(req, '202 Accepted'));
        const notify = (frag: string, state: string, cseq: number) =>
          [
            'NOTIFY sip:16506668888@127.0.0.1;transport=tcp SIP/2.0',
            `Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-n${cseq}`,
            `From: ${req.headers.get('To')}`,
            `To: ${req.headers.get('From')}`,
            `Call-ID: ${req.headers.get('Call-ID')}`,
            `CSeq: ${cseq} NOTIFY`,
            'Event: refer',
            `Subscription-State: ${state}`,
            'Content-Type: message/sipfrag',
            `Content-Length: ${frag.length}`,
            '',
            frag,
          ].join('\r\n');
        reply(notify('SIP/2.0 100 Trying\r\n', 'active;expires=60', 1));
        reply(notify('SIP/2.0 200 OK\r\n', 'terminated;reason=noresource', 2));
        return true;
      }
      return undefined;
    });
    const call = await phone.call('16505550123');
    const progress: { status: number; earlyMedia: boolean }[] = [];
    call.on('progress', (p) => progress.push(p));
    const seenIds: unknown[] = [];
    call.on('ids', (i) => seenIds.push(i));
    await new Promise<void>((r) => call.once('answered', () => r()));
    expect(progress).toEqual([{ status: 183, reason: 'Session Progress', earlyMedia: true }]);
    expect(call.ringCentralIds).toEqual({ partyId: 'p-42', sessionId: 's-4242' });
    expect(seenIds).toHaveLength(1);
    const result = await call.transfer('sip:16505550199@test.invalid');
    expect(result).toEqual({ ok: true, status: 200, reason: 'OK' });
    const info = await call.done;
    expect(info.reason).toBe('local-hangup');
    // Recorded from the 183 on: the WAV is longer than the answered call by the ~1 s of early media
    // (less whatever a loaded machine took to handle the 183).
    expect(readWav(info.wav as string).samples.length / 8 - info.durationMs).toBeGreaterThan(500);
    const sidecar = JSON.parse(readFileSync(info.sidecar as string, 'utf8'));
    expect(sidecar.ringCentral).toEqual({ partyId: 'p-42', sessionId: 's-4242' });
    const refer = peer.requests.find((r) => r.method === 'REFER');
    expect(refer?.headers.get('Refer-To')).toBe('<sip:16505550199@test.invalid>');
    expect(refer?.headers.get('Referred-By')).toBe('<sip:16506668888@test.invalid>');
    await waitFor(() => peer.requests.some((r) => r.method === 'BYE'));
  });
});
