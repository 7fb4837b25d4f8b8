/**
 * Outbound calls end to end through a real proxy, as a RingCentral device
 * places them: the Softphone registers at Kamailio over TCP and dials; Kamailio
 * challenges the INVITE with 407 (realm = the SIP domain, checked against the
 * same users as REGISTER), then relays it.
 *
 * To SIPp (a UAS scenario, addressed by a foreign URI Kamailio relays over
 * UDP; nothing registered for it): SIPp plays real speech (pocketsphinx's
 * goforward.raw as 8 kHz u-law), the device plays the same speech reversed
 * and then every DTMF key. SIPp cannot report what it received, so tshark
 * captures both directions on SIPp's media port and is the far side's ears:
 * the device's audio must be there sample by sample and its keys must be
 * what tshark's own RFC 4733 dissector decodes; the device's WAV must hold
 * SIPp's stream bit-exact (the same rule as the inbound calls.test.ts: a
 * stream the sender kept on time has no gap at all).
 *
 * A callee that challenges for another realm (SIPp answering 407
 * realm="evil.example" after Kamailio's own 407 was answered): the device
 * must fail the call with SIP_AUTH_REALM and never send a digest for it.
 *
 * To and from baresip, registered at Kamailio as a second user (its INVITEs
 * challenged and answered too): baresip auto-answers and records what it
 * decodes (sndfile), and logs every key it receives; dialling the device,
 * it sends keys from its UI and echoes what it hears (aubridge).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Call, CallEndInfo } from '../../../src/call/call.js';
import { eventToDigit } from '../../../src/media/dtmf.js';
import { RECORDING_DELAY_MS } from '../../../src/media/frame.js';
import { encodeUlaw, ULAW_TO_LINEAR } from '../../../src/media/g711.js';
import { dominantFrequency } from '../../../src/media/goertzel.js';
import type { CallSidecar } from '../../../src/sinks/sidecar.js';
import { Softphone } from '../../../src/softphone.js';
import { type Baresip, startBaresip } from '../../helpers/baresip.js';
import { freeUdpPortRange, waitFor } from '../../helpers/ports.js';
import { describeInterop } from '../../helpers/tools.js';
import { readWav } from '../../helpers/wav.js';
import { alignPackets, firstNonZero, indexOfRun, wireLatenessMs } from './align.js';
import { DEFAULT_USER, type Kamailio, type KamailioUser, startKamailio } from './harness.js';
import { type CapturedRtp, RtpCapture } from './rtp-capture.js';
import { startSippUas } from './sipp-uas.js';
import { PACKET_BYTES, prepareSpeech, RATE, type Speech } from './speech.js';

const FRAME_MS = 20;
/** A stream never later than this on the wire must be recorded without a gap (see calls.test.ts). */
const ON_TIME_MS = RECORDING_DELAY_MS - FRAME_MS;
/** Every key RFC 4733 has for DTMF, in the order they are sent. */
const ALL_KEYS = '0123456789*#ABCD';
const BARESIP_USER: Required<KamailioUser> = {
  username: '16506667777',
  authorizationId: '802399',
  password: 'baresip-secret',
};
const INSTANCE_ID = 'urn:uuid:0f6f3a52-9c1e-4d8b-a7e4-3b2d1c0e9f80';

/**
 * How baresip 1.0 (libre's g711_u2l) decodes u-law: as ITU G.711 except the
 * two zero codes, 0xFF → +2 and 0x7F → −2. Measured: all 256 codes sent
 * into a call, its sndfile recording read back (see also priming.test.ts).
 */
const BARESIP_ULAW_TO_LINEAR = Int16Array.from(ULAW_TO_LINEAR, (v, code) =>
  code === 0xff ? 2 : code === 0x7f ? -2 : v,
);

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Device {
  phone: Softphone;
  warnings: string[];
  /** Every SIP message the device sent, as text (sipTrace, not redacted). */
  sent: string[];
  rtpRange: { min: number; max: number };
}

async function registerDevice(kam: Kamailio, recordDir: string): Promise<Device> {
  const min = await freeUdpPortRange(8);
  const rtpRange = { min, max: min + 7 };
  const phone = new Softphone({
    sipInfo: {
      ...DEFAULT_USER,
      domain: kam.domain,
      outboundProxy: { host: kam.host, port: kam.port },
      transport: 'tcp',
    },
    instanceId: INSTANCE_ID,
    recordDir,
    rtpPorts: rtpRange,
    mediaIp: '127.0.0.1',
  });
  const device: Device = { phone, warnings: [], sent: [], rtpRange };
  phone.on('warning', (w) => device.warnings.push(`${w.code}: ${w.message}`));
  phone.on('sipTrace', (t) => {
    if (t.direction === 'send') device.sent.push(t.text);
  });
  await phone.start();
  return device;
}

/** The INVITEs (requests, not responses) among what the device sent for `callId`. */
function invitesSent(device: Device, callId: string): string[] {
  return device.sent.filter((m) => m.startsWith('INVITE ') && m.includes(`Call-ID: ${callId}`));
}

function answered(call: Call): Promise<void> {
  return new Promise((resolve, reject) => {
    call.once('answered', () => resolve());
    call.once('ended', (info) => reject(new Error(`ended before the answer: ${JSON.stringify(info)}`)));
  });
}

function reversed(pcm: Int16Array): Int16Array {
  return Int16Array.from(pcm).reverse();
}

/** 16-bit PCM of a tone at 8 kHz. */
function tone(frequency: number, ms: number, amplitude = 8000): Int16Array {
  return Int16Array.from({ length: (ms * RATE) / 1000 }, (_, i) =>
    Math.round(amplitude * Math.sin((2 * Math.PI * frequency * i) / RATE)),
  );
}

/** RFC 4733 events among captured packets, one per RTP timestamp, as tshark decoded them. */
function eventsOnTheWire(packets: readonly CapturedRtp[], telephoneEventPt: number) {
  const events: { digit: string; packets: CapturedRtp[] }[] = [];
  for (const p of packets) {
    if (p.payloadType !== telephoneEventPt) continue;
    const last = events[events.length - 1];
    if (last && last.packets[0]!.timestamp === p.timestamp) last.packets.push(p);
    else events.push({ digit: eventToDigit(p.event ?? -1) ?? `?${p.event}`, packets: [p] });
  }
  return events;
}

/**
 * The device's stream as SIPp received it: the audio packets' payloads
 * decoded (ITU G.711) and concatenated in sending order, and where the RTP
 * timeline does not advance by one frame from one audio packet to the next
 * (with the marker bit: the sender skipped ahead after a stall, by design).
 */
function audioOnTheWire(packets: readonly CapturedRtp[]) {
  const audio = packets.filter((p) => p.payloadType === 0);
  const pcm = new Int16Array(audio.reduce((n, p) => n + p.payload.length, 0));
  let at = 0;
  for (const p of audio) for (const byte of p.payload) pcm[at++] = ULAW_TO_LINEAR[byte]!;
  return { audio, pcm };
}

describeInterop(
  'outbound calls through Kamailio to SIPp',
  ['kamailio', 'kamcmd', 'sipp', 'sox', 'tshark'],
  () => {
    let kam: Kamailio;
    let device: Device;
    let work: string;
    let speech: Speech;

    beforeAll(async () => {
      work = mkdtempSync(path.join(os.tmpdir(), 'rcsp-outbound-'));
      speech = await prepareSpeech(work);
      kam = await startKamailio();
      device = await registerDevice(kam, path.join(work, 'recordings'));
    }, 60_000);

    afterAll(async () => {
      await device?.phone.stop();
      await kam?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    /** SIPp's media port: 4 free UDP ports (it binds port and port + 2) outside the device's RTP range. */
    async function sippMediaPort(): Promise<number> {
      for (;;) {
        const port = await freeUdpPortRange(4);
        if (port + 3 < device.rtpRange.min || port > device.rtpRange.max) return port;
      }
    }

    it('dials SIPp: 407 answered, its speech reaches SIPp sample by sample, every key decoded on the wire, SIPp’s speech recorded bit-exact, BYE through Kamailio', async () => {
      device.warnings.length = 0;
      const mediaPort = await sippMediaPort();
      const wire = await RtpCapture.start(mediaPort);
      cleanups.push(() => wire.stop());
      const sipp = await startSippUas({
        scenario: 'uas-speech.xml',
        mediaPort,
        keys: { speech: `${speech.file},1,0` },
        dir: mkdtempSync(path.join(work, 'sipp-')),
      });
      cleanups.push(() => sipp.stop());

      const call = await device.phone.call(sipp.uri('echo'));
      const progress: number[] = [];
      call.on('progress', (p) => progress.push(p.status));
      const media: string[] = [];
      call.on('media', (m) => media.push(`${m.codec} ${m.remoteMedia} ${m.direction}`));
      await answered(call);
      const mine = call.localMedia!.port;

      const played = reversed(speech.pcm);
      await call.play(played);
      await call.sendDtmf(ALL_KEYS);
      // The whole of SIPp's stream has reached the device's port: now hang up.
      const sippPackets = speech.ulaw.length / PACKET_BYTES;
      await wire.until(
        () => wire.packets.filter((p) => p.srcPort === mediaPort && p.dstPort === mine).length >= sippPackets,
        30_000,
        'all of SIPp’s stream',
      );
      await call.hangup();
      const info = await call.done;
      const result = await sipp.done;
      await wire.finish();

      // Signalling: Kamailio's 407 answered once; SIPp saw one whole call; BYE reached it.
      expect(result.code, result.output).toBe(0);
      expect(result.stats['SuccessfulCall(C)'], result.output).toBe(1);
      expect(result.stats['FailedCall(C)'], result.output).toBe(0);
      expect(kam.inviteAuthEvents(DEFAULT_USER.username).filter((e) => e.callId === call.id)).toEqual([
        expect.objectContaining({ result: 'challenge', code: 407, cseq: 1 }),
        expect.objectContaining({ result: 'authorized', authUser: DEFAULT_USER.authorizationId, cseq: 2 }),
      ]);
      expect(invitesSent(device, call.id)).toHaveLength(2);
      expect(progress).toEqual([180]);
      expect(media).toEqual([`PCMU 127.0.0.1:${mediaPort} sendrecv`]);
      expect(info).toMatchObject({ reason: 'local-hangup' });

      // (a) What SIPp received: the device's stream, captured on the wire.
      const ours = wire.packets.filter((p) => p.srcPort === mine && p.dstPort === mediaPort);
      const seqBreaks = ours.filter((p, i) => i > 0 && p.seq !== ((ours[i - 1]!.seq + 1) & 0xffff)).length;
      const { audio, pcm } = audioOnTheWire(ours);
      const sentAudio = alignPackets(pcm, played);
      const playedFrames = audio.slice(
        Math.floor(sentAudio.offset / PACKET_BYTES),
        Math.ceil((sentAudio.offset + played.length) / PACKET_BYTES),
      );
      const timelineBreaks = playedFrames.filter(
        (p, i) => i > 0 && !p.marker && p.timestamp !== (playedFrames[i - 1]!.timestamp + PACKET_BYTES) >>> 0,
      ).length;
      expect({
        first: { pt: audio[0]?.payloadType, marker: audio[0]?.marker },
        seqBreaks,
        timelineBreaks,
        audio: {
          packets: sentAudio.packets,
          missingPacket: sentAudio.missingPacket,
          gaps: sentAudio.gaps,
          nonZeroBefore: sentAudio.nonZeroBefore,
          nonZeroAfter: sentAudio.nonZeroAfter,
        },
      }).toEqual({
        // Primed with a PCMU frame, marker on; one unbroken sequence from then on.
        first: { pt: 0, marker: true },
        seqBreaks: 0,
        timelineBreaks: 0,
        // Every played sample, in order, bit-exact (it was u-law to begin with); silence around it.
        audio: {
          packets: Math.ceil(played.length / PACKET_BYTES),
          missingPacket: null,
          gaps: 0,
          nonZeroBefore: 0,
          nonZeroAfter: 0,
        },
      });
      // Every key once, as tshark's RFC 4733 dissector reads it: the first packet
      // of each event with the marker, the last three with the E bit.
      const events = eventsOnTheWire(ours, 101);
      expect(events.map((e) => e.digit).join('')).toBe(ALL_KEYS);
      for (const e of events) {
        const ends = e.packets.map((p) => p.end);
        expect(e.packets[0]!.marker, e.digit).toBe(true);
        expect(ends.slice(-3), e.digit).toEqual([true, true, true]);
        expect(
          ends.slice(0, -3).every((end) => end === false),
          e.digit,
        ).toBe(true);
      }
      // The keys came after the speech, on the same stream.
      expect(ours.indexOf(events[0]!.packets[0]!)).toBeGreaterThan(ours.indexOf(playedFrames.at(-1)!));

      // (b) What the device recorded: SIPp's stream, bit-exact.
      const theirs = wire.packets.filter((p) => p.srcPort === mediaPort && p.dstPort === mine);
      const lateMs = wireLatenessMs(theirs);
      const onTime = lateMs < ON_TIME_MS;
      const wav = readWav(info.wav ?? '');
      const recorded = alignPackets(wav.samples, speech.pcm);
      expect(
        {
          format: [wav.sampleRate, wav.channels],
          wirePackets: theirs.length,
          missingPacket: recorded.missingPacket,
          packets: recorded.packets,
          gaps: onTime ? recorded.gaps : 0,
          gapsExplained: recorded.maxGapSamples / 8 <= (onTime ? 0 : lateMs + RECORDING_DELAY_MS + FRAME_MS),
          nonZeroBefore: recorded.nonZeroBefore,
          nonZeroAfter: recorded.nonZeroAfter,
          startsAfterAnswer: recorded.offset >= 0,
          stats: info.stats && {
            received: info.stats.received,
            lost: info.stats.lost,
            late: info.stats.late,
            duplicate: info.stats.duplicate,
            reordered: info.stats.reordered,
            invalid: info.stats.invalid,
            foreignSource: info.stats.foreignSource,
          },
        },
        `wire lateness ${lateMs.toFixed(1)} ms, speech at sample ${recorded.offset}`,
      ).toEqual({
        format: [RATE, 1],
        wirePackets: sippPackets,
        missingPacket: null,
        packets: sippPackets,
        gaps: 0,
        gapsExplained: true,
        nonZeroBefore: 0,
        nonZeroAfter: 0,
        startsAfterAnswer: true,
        stats: {
          received: sippPackets,
          lost: 0,
          late: 0,
          duplicate: 0,
          reordered: 0,
          invalid: 0,
          foreignSource: 0,
        },
      });
      const sidecar = JSON.parse(readFileSync(info.sidecar ?? '', 'utf8')) as CallSidecar;
      expect(sidecar).toMatchObject({ direction: 'outbound', codec: 'PCMU', endReason: 'local-hangup' });
      expect(device.warnings).toEqual([]);
    }, 90_000);

    it('hangs up while it rings: the CANCEL matches the INVITE that carried the credentials, the callee answers 487, the call ends cancelled', async () => {
      device.warnings.length = 0;
      const sipp = await startSippUas({
        scenario: 'uas-ring.xml',
        mediaPort: await sippMediaPort(),
        dir: mkdtempSync(path.join(work, 'sipp-')),
      });
      cleanups.push(() => sipp.stop());
      const call = await device.phone.call(sipp.uri('ring'));
      const failures: unknown[] = [];
      call.on('failed', (f) => failures.push(f));
      await new Promise<void>((resolve) => call.once('progress', () => resolve()));
      await call.hangup();
      const info = await call.done;
      const result = await sipp.done;

      expect(info).toMatchObject({ reason: 'cancelled', status: 487 });
      expect(info.wav).toBeUndefined();
      expect(failures).toEqual([]);
      // RFC 3261 9.1: the CANCEL has the Request-URI, Call-ID, CSeq number and top Via branch
      // of the INVITE it cancels: the second one, with credentials, which Kamailio relayed.
      const [, authorized] = invitesSent(device, call.id);
      const cancels = device.sent.filter((m) => m.startsWith('CANCEL ') && m.includes(`Call-ID: ${call.id}`));
      expect(cancels).toHaveLength(1);
      const via = (m: string | undefined) => /^Via: (.*)$/m.exec(m ?? '')?.[1];
      expect(via(cancels[0])).toBe(via(authorized));
      expect(cancels[0]).toMatch(/^CSeq: 2 CANCEL\r?$/m);
      expect(cancels[0]!.split('\r\n')[0]).toBe(authorized!.split('\r\n')[0]!.replace(/^INVITE/, 'CANCEL'));
      // SIPp saw the CANCEL, answered it and the INVITE (487), and got the ACK.
      expect(result.code, result.output).toBe(0);
      expect(result.stats['SuccessfulCall(C)'], result.output).toBe(1);
      expect(device.warnings).toEqual([]);
    }, 60_000);

    it('never answers a callee’s challenge for another realm: no digest for it, the call fails SIP_AUTH_REALM', async () => {
      device.warnings.length = 0;
      const sipp = await startSippUas({
        scenario: 'uas-realm.xml',
        mediaPort: await sippMediaPort(),
        dir: mkdtempSync(path.join(work, 'sipp-')),
        traceMessages: true,
      });
      cleanups.push(() => sipp.stop());
      const call = await device.phone.call(sipp.uri('evil'));
      const failed = new Promise<{ status: number | undefined; code: string | undefined }>((resolve) =>
        call.once('failed', resolve),
      );
      const info: CallEndInfo = await call.done;
      const result = await sipp.done;

      expect(await failed).toMatchObject({ status: 407, code: 'SIP_AUTH_REALM' });
      expect(info).toMatchObject({ reason: 'rejected', status: 407, code: 'SIP_AUTH_REALM' });
      expect(info.wav).toBeUndefined();
      // Kamailio's own challenge (its realm, the registrar's) was answered: that is how the INVITE reached SIPp.
      expect(kam.inviteAuthEvents(DEFAULT_USER.username).filter((e) => e.callId === call.id)).toEqual([
        expect.objectContaining({ result: 'challenge', code: 407 }),
        expect.objectContaining({ result: 'authorized', authUser: DEFAULT_USER.authorizationId }),
      ]);
      // The device sent two INVITEs and no third: the second with Kamailio's realm only;
      // nothing it sent names evil.example.
      const invites = invitesSent(device, call.id);
      expect(invites).toHaveLength(2);
      expect(invites[0]).not.toMatch(/^Proxy-Authorization:/im);
      expect(invites[1]).toMatch(new RegExp(`^Proxy-Authorization: Digest .*realm="${kam.domain}"`, 'im'));
      expect(device.sent.filter((m) => m.includes('evil.example'))).toEqual([]);
      // SIPp saw one INVITE (without credentials: Kamailio consumed them), sent its 407, got the ACK.
      expect(result.code, result.output).toBe(0);
      expect(result.stats['SuccessfulCall(C)'], result.output).toBe(1);
      const received = result.messages.split(/\n(?=-+ )/).filter((block) => /received/.test(block));
      expect(
        received.filter((block) => /^INVITE /m.test(block)),
        result.output,
      ).toHaveLength(1);
      expect(result.messages).not.toMatch(/^Proxy-Authorization:/im);
      expect(device.warnings).toEqual([]);
    }, 60_000);
  },
);

describeInterop(
  'outbound calls through Kamailio to and from baresip',
  ['kamailio', 'kamcmd', 'baresip', 'sox'],
  () => {
    let kam: Kamailio;
    let device: Device;
    let ua: Baresip;
    let work: string;
    let speech: Speech;

    beforeAll(async () => {
      work = mkdtempSync(path.join(os.tmpdir(), 'rcsp-outbound-baresip-'));
      speech = await prepareSpeech(work);
      kam = await startKamailio({ users: [DEFAULT_USER, BARESIP_USER] });
      ua = await startBaresip({
        record: true,
        commands: true,
        registrar: { host: kam.host, port: kam.port, domain: kam.domain, ...BARESIP_USER },
      });
      device = await registerDevice(kam, path.join(work, 'recordings'));
    }, 60_000);

    afterAll(async () => {
      await device?.phone.stop();
      await ua?.stop();
      await kam?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it('dials baresip: its recording holds the device’s speech sample by sample, its log every key exactly once; its BYE reaches the device through Kamailio', async () => {
      device.warnings.length = 0;
      const from = ua.nextSeq;
      const before = new Set(ua.recordings().decoded);
      const call = await device.phone.call(BARESIP_USER.username);
      await answered(call);
      await ua.waitForCall({ from });

      const played = reversed(speech.pcm);
      await call.play(played);
      await call.sendDtmf(ALL_KEYS);
      // baresip handles a call's RTP in order: once it reported the last key's release, it has the speech.
      await ua.waitForDtmf((d) => d.key === ALL_KEYS.at(-1) && d.end, { from, timeoutMs: 20_000 });
      // The callee hangs up: its BYE follows the route set to the device's flow (Contact aliased by Kamailio).
      ua.hangup();
      const info = await call.done;
      await ua.waitForCallEnd({ from });
      const file = await waitFor(() => ua.recordings().decoded.find((f) => !before.has(f)), {
        message: 'baresip’s recording of the call',
      });
      // sndfile completes the WAV header as the call is torn down, just after the line above.
      const wav = await waitFor(() => readWav(file), { message: `complete WAV ${file}` });

      expect(info.reason).toBe('remote-bye');
      expect(kam.inviteAuthEvents(DEFAULT_USER.username).filter((e) => e.callId === call.id)).toEqual([
        expect.objectContaining({ result: 'challenge', code: 407 }),
        expect.objectContaining({ result: 'authorized', authUser: DEFAULT_USER.authorizationId }),
      ]);
      // Each key once: one press (start packet), one release (end packets), in the order sent.
      expect(
        ua
          .dtmf(from)
          .map((d) => `${d.key}${d.end ? '↑' : '↓'}`)
          .join(' '),
      ).toBe([...ALL_KEYS].map((k) => `${k}↓ ${k}↑`).join(' '));
      // The speech as baresip decodes the u-law the device sent: every sample, contiguous.
      const expected = Int16Array.from(played, (s) => BARESIP_ULAW_TO_LINEAR[encodeUlaw(s)]!);
      expect(wav.sampleRate).toBe(RATE);
      const at = indexOfRun(wav.samples, expected);
      expect(at, `speech not found in ${file} (${wav.samples.length} samples)`).toBeGreaterThanOrEqual(0);
      // Before it, nothing but the device's priming and silence frames (u-law 0xFF: baresip's +2).
      expect(firstNonZero(wav.samples.subarray(0, at), 2)).toBe(-1);
      expect(device.warnings).toEqual([]);
    }, 60_000);

    it('is dialled by baresip through Kamailio: answers, hears each key baresip sends once, and hears its own tone echoed back', async () => {
      device.warnings.length = 0;
      const incoming = new Promise<Call>((resolve) => device.phone.once('callAnswered', resolve));
      const from = ua.nextSeq;
      await ua.dial(DEFAULT_USER.username);
      const call = await incoming;
      await ua.waitForCall({ from });
      const keys = '24*#';
      const heard: string[] = [];
      const allHeard = new Promise<void>((resolve) =>
        call.on('dtmf', (d) => {
          heard.push(d.digit);
          if (heard.length === keys.length) resolve();
        }),
      );
      // baresip plays back what it hears (aubridge): the device's tone comes back into its recording.
      await call.play(tone(1000, 1000));
      await ua.sendDtmf(keys);
      await allHeard;
      ua.hangup();
      const info = await call.done;

      expect(call.direction).toBe('inbound');
      expect(call.from.user).toBe(BARESIP_USER.username);
      expect(info.reason).toBe('remote-bye');
      // baresip answered Kamailio's 407 for its own INVITE.
      expect(kam.inviteAuthEvents(BARESIP_USER.username).filter((e) => e.callId === call.id)).toEqual([
        expect.objectContaining({ result: 'challenge', code: 407 }),
        expect.objectContaining({ result: 'authorized', authUser: BARESIP_USER.authorizationId }),
      ]);
      expect(heard.join('')).toBe(keys);
      expect(info.dtmf.map((d) => `${d.digit}:${d.source}`)).toEqual([...keys].map((k) => `${k}:rfc4733`));
      const samples = readWav(info.wav ?? '').samples;
      let toneWindows = 0;
      for (let at = 0; at + 1600 <= samples.length; at += 800) {
        const { frequency, purity } = dominantFrequency(samples.subarray(at, at + 1600), RATE, 300, 3400);
        if (purity > 0.9 && Math.abs(frequency - 1000) < 20) toneWindows++;
      }
      expect(toneWindows, 'windows of 200 ms with the echoed 1 kHz tone').toBeGreaterThanOrEqual(3);
      expect(device.warnings).toEqual([]);
    }, 60_000);
  },
);
