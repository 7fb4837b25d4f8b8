/**
 * Inbound calls end to end on loopback: LocalPbx (RingCentral-shaped
 * registrar) calls the Softphone over its registration flow, the project's
 * RtpSender plays audio, and the WAV + sidecar are checked sample by sample.
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Call, CallEndInfo } from '../../src/call/call.js';
import { FRAME_MS, RECORDING_DELAY_MS } from '../../src/media/frame.js';
import { encodeUlawFrame, ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { RtpSender } from '../../src/media/rtp-sender.js';
import { parseRtp, serializeRtp } from '../../src/rtp/packet.js';
import type { SoftphoneOptions } from '../../src/softphone.js';
import {
  answerPort,
  callerSocket as callerSocketOf,
  RIG_USER,
  sdpOffer,
  startRig,
} from '../helpers/call-rig.js';
import { waitFor } from '../helpers/ports.js';
import { readWav } from '../helpers/wav.js';

const USER = RIG_USER;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(options: Partial<SoftphoneOptions> = {}) {
  const rig = await startRig(cleanups, options);
  const ended = new Map<string, CallEndInfo>();
  rig.phone.on('callEnded', (call, info) => ended.set(call.id, info));
  return { ...rig, ended };
}

const callerSocket = () => callerSocketOf(cleanups);
const offer = sdpOffer;

/** A deterministic, non-silent, non-periodic test signal (a chirp plus noise), 8 kHz. */
function signal(samples: number): Int16Array {
  const out = new Int16Array(samples);
  let seed = 12345;
  for (let i = 0; i < samples; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const noise = ((seed >>> 16) & 0x7ff) - 1024;
    out[i] = Math.round(8000 * Math.sin((2 * Math.PI * (300 + i / 20) * i) / 8000)) + noise;
  }
  return out;
}

describe('Softphone answering calls', () => {
  it('answers, primes with one silence frame, records bit-exact audio and DTMF, and ends on BYE', async () => {
    const { pbx, phone, ended } = await setup();
    const caller = await callerSocket();
    const answered = new Promise<Call>((r) => phone.once('callAnswered', r));
    const call = await pbx.invite(USER.username, offer(caller.port));
    const rtpPort = answerPort(call.answer);
    expect(call.answer).toMatch(/a=rtpmap:0 PCMU\/8000/);
    expect(call.answer).toMatch(/a=rtpmap:101 telephone-event/);
    const phoneCall = await answered;
    const dtmf: string[] = [];
    phoneCall.on('dtmf', (d) => dtmf.push(d.digit));

    // The first packet from the device primes the path: a PCMU silence frame with the marker, then silence.
    await waitFor(() => caller.packets.length >= 3);
    const first = parseRtp(caller.packets[0] as Buffer);
    if (typeof first === 'string') throw new Error(first);
    expect(first.payloadType).toBe(0);
    expect(first.marker).toBe(true);
    expect(first.payload.every((b) => b === 0xff)).toBe(true);
    const second = parseRtp(caller.packets[1] as Buffer);
    if (typeof second === 'string') throw new Error(second);
    expect(second.payloadType).toBe(0);

    const pcm = signal(8000);
    const sender = new RtpSender({
      socket: caller.socket,
      target: { address: '127.0.0.1', port: rtpPort },
      pcm,
      impairments: [{ kind: 'dtmf', frame: 20, digit: '7', frames: 5 }],
    });
    const report = await sender.start();
    // The statistics so far, while the call lasts (what --http's counters read).
    const audioSent = report.frames.filter((f) => f.fate === 'sent').length;
    await waitFor(() => (phoneCall.stats?.received ?? 0) >= audioSent);
    expect(phoneCall.stats?.lost).toBe(0);
    await call.bye();
    await waitFor(() => ended.has(call.callId));
    const info = ended.get(call.callId) as CallEndInfo;
    expect(info.reason).toBe('remote-bye');
    expect(dtmf).toEqual(['7']);
    expect(info.stats?.lost).toBe(0);
    expect(phoneCall.stats).toEqual(info.stats);

    const wav = readWav(info.wav as string);
    expect(wav.sampleRate).toBe(8000);
    // Every audio frame that was sent appears bit-exactly (as ITU G.711 decodes it), in order.
    const sentAudio = report.frames.filter((f) => f.fate === 'sent');
    const samples = wav.samples;
    const firstFrame = sentAudio[0];
    if (!firstFrame) throw new Error('nothing sent');
    const decoded = (payload: Uint8Array) => Array.from(payload, (b) => ULAW_TO_LINEAR[b] as number);
    const start = indexOf(samples, decoded(firstFrame.payload));
    expect(start).toBeGreaterThanOrEqual(0);
    for (const f of sentAudio) {
      const at = start + (f.frame - firstFrame.frame) * 160;
      expect(Array.from(samples.subarray(at, at + 160))).toEqual(decoded(f.payload));
    }
    // DTMF frames are not audio: where the key press was, the WAV holds silence.
    const dtmfFrame = report.frames.find((f) => f.fate === 'dtmf');
    if (dtmfFrame) {
      const at = start + (dtmfFrame.frame - firstFrame.frame) * 160;
      expect(Array.from(samples.subarray(at, at + 160)).every((s) => s === 0)).toBe(true);
    }
    // The WAV is as long as the call, within a frame or two.
    expect(Math.abs(samples.length / 8 - info.durationMs)).toBeLessThan(80);

    const sidecar = JSON.parse(readFileSync(info.sidecar as string, 'utf8'));
    expect(sidecar).toMatchObject({ callId: call.callId, codec: 'PCMU', endReason: 'remote-bye' });
    expect(sidecar.dtmf).toEqual([expect.objectContaining({ digit: '7', source: 'rfc4733' })]);
    expect(path.basename(info.wav as string)).toMatch(/^\d{8}-\d{6}_15550100_[A-Za-z0-9._+-]+\.wav$/);
  });

  it('an event-loop stall in an I/O callback mid-call leaves no gap: waiting datagrams are read before playout', async () => {
    const { pbx, phone, ended } = await setup();
    const caller = await callerSocket();
    const answered = new Promise<Call>((r) => phone.once('callAnswered', r));
    const call = await pbx.invite(USER.username, offer(caller.port));
    await answered;
    const rtpPort = answerPort(call.answer);
    // The caller is another process (as in reality), so its packets keep arriving
    // on time while this process is stalled.
    const pcm = signal(8000);
    const frames: Uint8Array[] = [];
    const packets: Buffer[] = [];
    for (let k = 0; k < 50; k++) {
      const payload = new Uint8Array(160);
      encodeUlawFrame(pcm.subarray(k * 160, (k + 1) * 160), payload);
      frames.push(payload);
      const rtp = serializeRtp({
        payloadType: 0,
        sequenceNumber: 1000 + k,
        timestamp: 5000 + k * 160,
        ssrc: 0x1234,
        payload,
        marker: k === 0,
      });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(rtp.length);
      packets.push(len, rtp);
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-stall-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'packets.bin'), Buffer.concat(packets));
    const script = `const d=require('dgram').createSocket('udp4');const b=require('fs').readFileSync(process.argv[1]);const p=[];for(let o=0;o<b.length;){const n=b.readUInt16BE(o);p.push(b.subarray(o+2,o+2+n));o+=2+n}const t0=performance.now();let i=0,late=0;const next=()=>{if(i===p.length){d.close();process.stdout.write(String(late));return}late=Math.max(late,performance.now()-(t0+i*20));d.send(p[i],${rtpPort},'127.0.0.1');i++;setTimeout(next,Math.max(0,t0+i*20-performance.now()))};next();`;
    const sender = spawn(process.execPath, ['-e', script, path.join(dir, 'packets.bin')], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let senderLateMs = '';
    sender.stdout.on('data', (d) => {
      senderLateMs += d;
    });
    const sent = new Promise<void>((r) => sender.once('close', () => r()));
    // 400 ms into the audio, block this process for 200 ms from a socket callback
    // (poll phase), as a slow handler would.
    const staller = dgram.createSocket('udp4');
    cleanups.push(() => staller.close());
    staller.on('message', () => {
      const t = performance.now();
      while (performance.now() - t < 200);
    });
    await new Promise<void>((r) => staller.bind(0, '127.0.0.1', r));
    setTimeout(() => staller.send('x', staller.address().port, '127.0.0.1'), 400);
    await sent;
    await call.bye();
    await waitFor(() => ended.has(call.callId));
    const info = ended.get(call.callId) as CallEndInfo;
    const samples = readWav(info.wav as string).samples;
    const decoded = (payload: Uint8Array) => Array.from(payload, (b) => ULAW_TO_LINEAR[b] as number);
    // The caller's own process can be starved on a loaded machine; packets it sent
    // later than the recording's bound (less a frame for the playout timer) really
    // are late, and then only order and content can be demanded. Otherwise: no
    // gap, no shift, bit-exact in place.
    if (Number(senderLateMs) > RECORDING_DELAY_MS - FRAME_MS) {
      expect(info.stats).toMatchObject({ received: 50, lost: 0 });
      let at = -1;
      for (const payload of frames) {
        at = indexOf(samples, decoded(payload), at + 1);
        expect(at).toBeGreaterThanOrEqual(0);
      }
      return;
    }
    expect(info.stats).toMatchObject({ received: 50, lost: 0, late: 0, resync: 0 });
    const start = indexOf(samples, decoded(frames[0] as Uint8Array));
    frames.forEach((payload, k) => {
      const at = start + k * 160;
      expect(Array.from(samples.subarray(at, at + 160))).toEqual(decoded(payload));
    });
  });

  it('a listener that throws is reported as a warning; the call, its recording and the process go on', async () => {
    const { pbx, phone, ended } = await setup();
    const warnings: { code: string; message: string; callId?: string }[] = [];
    phone.on('warning', (w) => warnings.push(w));
    phone.on('callAnswered', (call) => {
      call.on('frame', () => {
        throw new Error('frame boom');
      });
      call.on('dtmf', () => {
        throw new Error('dtmf boom');
      });
      throw new Error('answered boom');
    });
    phone.on('callEnded', () => {
      throw new Error('ended boom');
    });
    const caller = await callerSocket();
    const call = await pbx.invite(USER.username, offer(caller.port));
    const sender = new RtpSender({
      socket: caller.socket,
      target: { address: '127.0.0.1', port: answerPort(call.answer) },
      pcm: signal(4000),
      impairments: [{ kind: 'dtmf', frame: 5, digit: '3', frames: 3 }],
    });
    const report = await sender.start();
    await call.bye();
    await waitFor(() => ended.has(call.callId));
    const info = ended.get(call.callId) as CallEndInfo;
    expect(info.reason).toBe('remote-bye');
    expect(info.dtmf.map((d) => d.digit)).toEqual(['3']);
    // Every frame the caller sent is in the WAV: the throwing frame listener cost nothing.
    const sent = report.frames.filter((f) => f.fate === 'sent').length;
    expect(info.stats?.framesWritten).toBeGreaterThanOrEqual(sent);
    expect(info.stats?.listenerErrors).toBeGreaterThan(sent / 2);
    const codes = warnings.filter((w) => w.code === 'LISTENER_FAILED');
    // Reported once per event name, not once per frame.
    expect(codes.map((w) => /'(\w+)'/.exec(w.message)?.[1]).sort()).toEqual([
      'callAnswered',
      'callEnded',
      'dtmf',
      'frame',
    ]);
    expect(codes.find((w) => w.message.includes("'frame'"))?.callId).toBe(call.callId);
    // The phone still takes calls.
    const next = await pbx.invite(USER.username, offer(caller.port));
    await next.bye();
    await waitFor(() => ended.has(next.callId));
  });

  it('re-creates a record directory deleted while running, and reports a call it cannot record (wav null, the reason)', async () => {
    const { pbx, ended, recordDir } = await setup();
    const caller = await callerSocket();
    rmSync(recordDir, { recursive: true, force: true });
    const a = await pbx.invite(USER.username, offer(caller.port));
    await a.bye();
    await waitFor(() => ended.has(a.callId));
    const recorded = ended.get(a.callId) as CallEndInfo;
    expect(readWav(recorded.wav as string).sampleRate).toBe(8000);
    expect(JSON.parse(readFileSync(recorded.sidecar as string, 'utf8')).wav).toBe(recorded.wav);
    expect(recorded.recordingError).toBeUndefined();

    // Now the directory's place is taken by a file: nothing can be recorded there.
    rmSync(recordDir, { recursive: true, force: true });
    writeFileSync(recordDir, 'not a directory');
    const b = await pbx.invite(USER.username, offer(caller.port));
    await b.bye();
    await waitFor(() => ended.has(b.callId));
    const lost = ended.get(b.callId) as CallEndInfo;
    expect(lost.reason).toBe('remote-bye');
    expect(lost.wav).toBeUndefined();
    expect(lost.sidecar).toBeUndefined();
    expect(lost.recordingError).toMatchObject({ code: 'SINK_WRITE_FAILED' });
    expect(lost.recordingError?.message).toContain(recordDir);
    rmSync(recordDir, { force: true });
  });

  it('without a negotiated telephone-event, primes with a silence frame in the codec, never PT 101', async () => {
    const { pbx } = await setup({ sendSilence: false });
    const caller = await callerSocket();
    // As linphone offers: PT 101 is G726-16 here, not telephone-event.
    const linphoneLike = offer(caller.port, 'RTP/AVP', '8 101').replace(
      'a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15',
      'a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 G726-16/8000',
    );
    const call = await pbx.invite(USER.username, linphoneLike);
    expect(call.answer).not.toMatch(/telephone-event/);
    await waitFor(() => caller.packets.length >= 1);
    const first = parseRtp(caller.packets[0] as Buffer);
    if (typeof first === 'string') throw new Error(first);
    expect(first.payloadType).toBe(8);
    expect(first.marker).toBe(true);
    expect([...first.payload]).toEqual(new Array(160).fill(0xd5));
    await call.bye();
  });

  it('a call survives the loss of its connection: media and recording go on, the dialog is re-homed on the new flow', async () => {
    const { pbx, phone, ended } = await setup({ backoff: { baseMs: 50, maxMs: 200 } });
    const caller = await callerSocket();
    const answered = new Promise<Call>((r) => phone.once('callAnswered', r));
    const call = await pbx.invite(USER.username, offer(caller.port));
    const phoneCall = await answered;
    const rehomed = new Promise<{ outcome: string }>((r) => phoneCall.once('rehomed', r));
    let frames = 0;
    let dropped = false;
    phoneCall.on('frame', () => {
      // 0.4 s into the caller's audio, the registrar drops the device's connection.
      if (++frames === 20 && !dropped) {
        dropped = true;
        pbx.dropConnections();
      }
    });
    const sender = new RtpSender({
      socket: caller.socket,
      target: { address: '127.0.0.1', port: answerPort(call.answer) },
      pcm: signal(16000),
    });
    const report = await sender.start();
    expect(await rehomed).toMatchObject({ outcome: 'ok' });
    const reinvite = pbx.lastRequest('INVITE', call.callId);
    expect(reinvite?.headers.get('Contact')).toContain(';ob>');
    await call.bye();
    await waitFor(() => ended.has(call.callId));
    const info = ended.get(call.callId) as CallEndInfo;
    expect(info.reason).toBe('remote-bye');
    // Not a packet lost while the connection was down.
    const sent = report.frames.filter((f) => f.fate === 'sent').length;
    expect(info.stats).toMatchObject({ received: sent, lost: 0 });
    expect(Math.abs(readWav(info.wav as string).samples.length / 8 - info.durationMs)).toBeLessThan(150);
  });

  it('a call whose re-homing re-INVITE is refused (481) ends flow-lost', async () => {
    const { pbx, phone, ended } = await setup({ backoff: { baseMs: 50, maxMs: 200 } });
    const caller = await callerSocket();
    const answered = new Promise<Call>((r) => phone.once('callAnswered', r));
    const call = await pbx.invite(USER.username, offer(caller.port));
    const phoneCall = await answered;
    pbx.reinviteStatus = 481;
    const rehomed = new Promise<{ outcome: string; status: number }>((r) => phoneCall.once('rehomed', r));
    pbx.dropConnections();
    expect(await rehomed).toMatchObject({ outcome: 'failed', status: 481 });
    await waitFor(() => ended.has(call.callId));
    expect(ended.get(call.callId)?.reason).toBe('flow-lost');
  });

  it('rejects an SRTP-only offer with 488 and a Warning', async () => {
    const { pbx, phone } = await setup();
    const rejected = new Promise<{ status: number }>((r) => phone.once('callRejected', r));
    await expect(pbx.invite(USER.username, offer(40000, 'RTP/SAVP'))).rejects.toThrow(/488/);
    expect((await rejected).status).toBe(488);
  });

  it('answers 486 Busy Here beyond --max-calls', async () => {
    const { pbx } = await setup({ maxCalls: 1 });
    const caller = await callerSocket();
    await pbx.invite(USER.username, offer(caller.port));
    await expect(pbx.invite(USER.username, offer(caller.port))).rejects.toThrow(/486/);
  });

  it('puts its offer in the 200 when the INVITE has none and takes the answer from the ACK', async () => {
    const { pbx, phone } = await setup();
    const caller = await callerSocket();
    const answered = new Promise<Call>((r) => phone.once('callAnswered', r));
    const call = await pbx.invite(USER.username, '', {
      answer: (ours) =>
        offer(caller.port)
          .replace(/o=caller.*\r\n/, 'o=caller 2 2 IN IP4 127.0.0.1\r\n')
          .replace('0 101', `0 101`) + (ours ? '' : ''),
    });
    // Our offer, in our order: Opus first (the default), then G.711.
    expect(call.answer).toMatch(/m=audio \d+ RTP\/AVP 111 0 8 101/);
    const phoneCall = await answered;
    // The codec is only known once the ACK brings the answer: a 'media' event says so.
    expect(phoneCall.negotiated).toBeUndefined();
    const media = await new Promise<{ codec: string }>((r) => phoneCall.once('media', r));
    expect(media).toMatchObject({ codec: 'PCMU', remoteMedia: `127.0.0.1:${caller.port}` });
    await waitFor(() => phoneCall.negotiated !== undefined);
    // Priming follows the ACK's answer.
    await waitFor(() => caller.packets.length >= 1);
    const first = parseRtp(caller.packets[0] as Buffer);
    expect(typeof first === 'string' ? first : first.payloadType).toBe(0);
    // After the ACK the call sends like any other: silence every 20 ms, in the answered codec.
    await waitFor(() => caller.packets.length >= 15, { timeoutMs: 5000 });
    const later = parseRtp(caller.packets[14] as Buffer);
    expect(typeof later === 'string' ? later : later.payloadType).toBe(0);
    await call.bye();
  });

  it('follows a re-INVITE to a new address (hold and resume) without ending the recording', async () => {
    const { pbx, phone, ended } = await setup();
    const caller = await callerSocket();
    const moved = await callerSocket();
    const answered = new Promise<Call>((r) => phone.once('callAnswered', r));
    const call = await pbx.invite(USER.username, offer(caller.port));
    const phoneCall = await answered;
    const hold = await call.request('INVITE', offer(caller.port).replace('t=0 0', 't=0 0\r\na=sendonly'));
    expect(hold.status).toBe(200);
    expect(Buffer.from(hold.body).toString()).toMatch(/a=recvonly/);
    const resume = await call.request('INVITE', offer(moved.port).replace('o=caller 1 1', 'o=caller 1 2'));
    expect(resume.status).toBe(200);
    await waitFor(() => moved.packets.length >= 2);
    expect(phoneCall.ended).toBe(false);
    const info = await call.request('INFO', 'Signal=5\r\nDuration=160\r\n');
    expect(info.status).toBe(200);
    await call.bye();
    await waitFor(() => ended.has(call.callId));
    expect(ended.get(call.callId)?.dtmf.map((d) => d.digit)).toEqual(['5']);
  });

  it('our SDP version grows only when our SDP changes: not for a rejected or an unchanged re-INVITE (RFC 3264 8)', async () => {
    const { pbx } = await setup();
    const caller = await callerSocket();
    const call = await pbx.invite(USER.username, offer(caller.port));
    const version = (sdp: string | Uint8Array) =>
      Number(/^o=\S+ \S+ (\d+) /m.exec(typeof sdp === 'string' ? sdp : Buffer.from(sdp).toString())?.[1]);
    expect(version(call.answer)).toBe(1);
    const rejected = await call.request('INVITE', offer(caller.port, 'RTP/AVP', '18'));
    expect(rejected.status).toBe(488);
    const same = await call.request('INVITE', offer(caller.port).replace('o=caller 1 1', 'o=caller 1 2'));
    expect(same.status).toBe(200);
    expect(version(same.body)).toBe(1);
    expect(Buffer.from(same.body).toString()).toBe(call.answer);
    const hold = await call.request('INVITE', offer(caller.port).replace('t=0 0', 't=0 0\r\na=sendonly'));
    expect(version(hold.body)).toBe(2);
    await call.bye();
  });

  it.each([
    ['no RTP arrives within the media timeout', { mediaTimeoutMs: 300 }, 'media-timeout'],
    ['the maximum call duration is reached', { maxCallDurationMs: 300 }, 'max-duration'],
  ] as const)('hangs up with BYE when %s', async (_when, options, reason) => {
    const { pbx, ended } = await setup(options);
    const caller = await callerSocket();
    const byes: string[] = [];
    pbx.on('request', (r) => {
      if (r.method === 'BYE') byes.push(r.headers.callId() ?? '');
    });
    const call = await pbx.invite(USER.username, offer(caller.port));
    await waitFor(() => ended.has(call.callId), { timeoutMs: 10_000 });
    expect(ended.get(call.callId)?.reason).toBe(reason);
    await waitFor(() => byes.includes(call.callId));
  });

  it('when the bot hangs up, the BYE goes out while the call is still recording; the sidecar comes after', async () => {
    const { pbx, phone, ended } = await setup({ maxCallDurationMs: 300 });
    const caller = await callerSocket();
    const answered = new Promise<Call>((r) => phone.once('callAnswered', r));
    const stillRecordingAtBye: boolean[] = [];
    const call = await pbx.invite(USER.username, offer(caller.port));
    const phoneCall = await answered;
    pbx.on('request', (r) => {
      if (r.method === 'BYE') stillRecordingAtBye.push(!phoneCall.ended);
    });
    await waitFor(() => ended.has(call.callId), { timeoutMs: 10_000 });
    expect(stillRecordingAtBye).toEqual([true]);
    expect(ended.get(call.callId)?.reason).toBe('max-duration');
  });

  it("stop(): every BYE is sent before any call is finished (no BYE waits for another call's sidecar)", async () => {
    const { pbx, phone } = await setup();
    const caller = await callerSocket();
    const answered: Call[] = [];
    phone.on('callAnswered', (c) => answered.push(c));
    await pbx.invite(USER.username, offer(caller.port));
    await pbx.invite(USER.username, offer(caller.port));
    const endedAtBye: number[] = [];
    pbx.on('request', (r) => {
      if (r.method === 'BYE') endedAtBye.push(answered.filter((c) => c.ended).length);
    });
    await phone.stop();
    expect(endedAtBye).toEqual([0, 0]);
  });

  it('stop() sends BYE for every call, finishes the recordings and unregisters', async () => {
    const { pbx, phone, ended } = await setup();
    const caller = await callerSocket();
    const a = await pbx.invite(USER.username, offer(caller.port));
    const b = await pbx.invite(USER.username, offer(caller.port));
    const byes: string[] = [];
    pbx.on('request', (r) => {
      if (r.method === 'BYE') byes.push(r.headers.callId() ?? '');
    });
    await phone.stop();
    expect(ended.get(a.callId)?.reason).toBe('shutdown');
    expect(ended.get(b.callId)?.reason).toBe('shutdown');
    expect(byes.sort()).toEqual([a.callId, b.callId].sort());
    expect(pbx.binding(USER.username)).toBeUndefined();
    expect(readWav(ended.get(a.callId)?.wav as string).sampleRate).toBe(8000);
  });
});

function indexOf(haystack: Int16Array, needle: number[], from = 0): number {
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
