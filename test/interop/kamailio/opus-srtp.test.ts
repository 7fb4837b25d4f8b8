/**
 * RingCentral's own media path with a real peer: Opus over SRTP. The device
 * registers over TLS at Kamailio (its default SRTP policy there: required)
 * and prefers Opus (the default); baresip is registered at the same Kamailio
 * with only opus and mediaenc=srtp-mand (RTP/SAVP, SDES keys, nothing else
 * taken). Calls go both ways through Kamailio; RTP flows directly.
 *
 * baresip plays back what it hears (aubridge) and records what it decodes
 * (sndfile), so each call proves both directions of both layers: our SRTP
 * and Opus as baresip decodes them (its recording holds our tone at its
 * frequency), theirs as we decode them (our 16 kHz WAV holds real speech we
 * played, after two Opus generations, correlated with the original), and no
 * packet failed authentication on either side. DTMF is checked both ways.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Call } from '../../../src/call/call.js';
import { dominantFrequency } from '../../../src/media/goertzel.js';
import type { CallSidecar } from '../../../src/sinks/sidecar.js';
import { Softphone } from '../../../src/softphone.js';
import { type Baresip, startBaresip } from '../../helpers/baresip.js';
import { align, segmentCorrelation } from '../../helpers/correlate.js';
import { freeUdpPortRange, waitFor } from '../../helpers/ports.js';
import { describeInterop } from '../../helpers/tools.js';
import { readWav } from '../../helpers/wav.js';
import { DEFAULT_USER, type Kamailio, type KamailioUser, startKamailio } from './harness.js';
import { SPEECH_SOURCE } from './speech.js';

const BARESIP_USER: Required<KamailioUser> = {
  username: '16506669999',
  authorizationId: '802400',
  password: 'baresip-opus-secret',
};
const INSTANCE_ID = 'urn:uuid:6b0e2f7a-1d3c-4e5f-8a9b-0c1d2e3f4a5b';
const KEYS = '159#';

/** A 16-bit tone at `rate`. */
function tone(freq: number, ms: number, rate: number, amp = 8000): Int16Array {
  return Int16Array.from({ length: (ms * rate) / 1000 }, (_, i) =>
    Math.round(amp * Math.sin((2 * Math.PI * freq * i) / rate)),
  );
}

/** 200 ms windows of `samples` (at `rate`) whose dominant frequency is `freq` (±20 Hz), purely. */
function toneWindows(samples: Int16Array, rate: number, freq: number): number {
  const window = rate / 5;
  let n = 0;
  for (let at = 0; at + window <= samples.length; at += window / 2) {
    const { frequency, purity } = dominantFrequency(samples.subarray(at, at + window), rate, 300, 3400);
    if (purity > 0.9 && Math.abs(frequency - freq) < 20) n++;
  }
  return n;
}

function answered(call: Call): Promise<void> {
  return new Promise((resolve, reject) => {
    call.once('answered', () => resolve());
    void call.done.then((info) =>
      reject(
        new Error(`the call ended before the answer: ${info.reason} ${info.status} ${info.statusReason}`),
      ),
    );
  });
}

describeInterop(
  'Opus over SRTP through Kamailio (device on TLS) with baresip (opus, mediaenc=srtp-mand)',
  ['kamailio', 'kamcmd', 'kamailio-tls', 'baresip'],
  () => {
    let kam: Kamailio;
    let ua: Baresip;
    let phone: Softphone;
    let work: string;
    const warnings: string[] = [];
    /** goforward.raw: real speech at 16 kHz, what a wideband call carries. */
    let speech: Int16Array;

    beforeAll(async () => {
      work = mkdtempSync(path.join(os.tmpdir(), 'rcsp-opus-srtp-'));
      const raw = readFileSync(SPEECH_SOURCE);
      speech = new Int16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + (raw.byteLength & ~1)));
      kam = await startKamailio({ users: [DEFAULT_USER, BARESIP_USER], tls: true });
      ua = await startBaresip({
        record: true,
        commands: true,
        codecs: ['opus'],
        mediaenc: 'srtp-mand',
        registrar: { host: kam.host, port: kam.port, domain: kam.domain, ...BARESIP_USER },
      });
      const min = await freeUdpPortRange(8);
      phone = new Softphone({
        sipInfo: {
          ...DEFAULT_USER,
          domain: kam.domain,
          outboundProxy: { host: kam.host, port: kam.tlsPort! },
          transport: 'tls',
        },
        tlsCa: kam.tlsCa!,
        instanceId: INSTANCE_ID,
        recordDir: path.join(work, 'recordings'),
        rtpPorts: { min, max: min + 7 },
        mediaIp: '127.0.0.1',
      });
      phone.on('warning', (w) => warnings.push(`${w.code}: ${w.message}`));
      await phone.start();
    }, 60_000);

    afterAll(async () => {
      await phone?.stop();
      await ua?.stop();
      await kam?.stop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    /** What both directions must show: Opus over SRTP, nothing dropped by SRTP, a 16 kHz recording. */
    function expectOpusOverSrtp(call: Call, sidecarPath: string | undefined): CallSidecar {
      expect(call.negotiated).toMatchObject({ codec: 'opus', clockRate: 48000, sampleRate: 16000 });
      expect(call.negotiated?.srtp?.suite).toBe('AES_CM_128_HMAC_SHA1_80');
      const sidecar = JSON.parse(readFileSync(sidecarPath ?? '', 'utf8')) as CallSidecar;
      expect(sidecar).toMatchObject({ codec: 'opus', sampleRate: 16000 });
      expect(sidecar.stats).toMatchObject({
        srtpAuthFailed: 0,
        srtpReplayed: 0,
        srtpMalformed: 0,
        invalid: 0,
      });
      expect(sidecar.stats.received).toBeGreaterThan(50);
      return sidecar;
    }

    it('dials baresip: it decodes our Opus/SRTP (our tone at its frequency), hears every key once; its echo of our speech is in our 16 kHz WAV', async () => {
      warnings.length = 0;
      const from = ua.nextSeq;
      const before = new Set(ua.recordings().decoded);
      const call = await phone.call(BARESIP_USER.username);
      await answered(call);
      await ua.waitForCall({ from });

      await call.play({ pcm: tone(1000, 1000, 16000), sampleRate: 16000 });
      await call.play({ pcm: speech, sampleRate: 16000 });
      await call.sendDtmf(KEYS);
      await ua.waitForDtmf((d) => d.key === KEYS.at(-1) && d.end, { from, timeoutMs: 20_000 });
      await call.hangup();
      const info = await call.done;
      await ua.waitForCallEnd({ from });

      expect(info.reason).toBe('local-hangup');
      expectOpusOverSrtp(call, info.sidecar);
      expect(
        ua
          .dtmf(from)
          .map((d) => `${d.key}${d.end ? '↑' : '↓'}`)
          .join(' '),
      ).toBe([...KEYS].map((k) => `${k}↓ ${k}↑`).join(' '));
      // baresip decoded our Opus: the tone at 1 kHz for most of its second.
      const file = await waitFor(() => ua.recordings().decoded.find((f) => !before.has(f)), {
        message: 'baresip’s recording of the call',
      });
      const theirs = await waitFor(() => readWav(file), { message: `complete WAV ${file}` });
      // sndfile writes what baresip's Opus decoder gives: 48 kHz, stereo (opus/48000/2).
      expect([theirs.sampleRate, theirs.channels]).toEqual([48000, 2]);
      const left = theirs.samples.filter((_, i) => i % 2 === 0);
      expect(toneWindows(left, 48000, 1000)).toBeGreaterThanOrEqual(6);
      // baresip played it all back: our WAV (16 kHz, as the call) holds our speech after
      // two Opus generations (ours, then baresip's), close to the original.
      const ours = readWav(info.wav ?? '');
      expect(ours.sampleRate).toBe(16000);
      const found = align(speech, ours.samples, 16000);
      expect(found, 'our speech in the echo').toBeDefined();
      const match = segmentCorrelation(speech, ours.samples, 16000, found!);
      expect(match.segments).toBeGreaterThan(5);
      // Two lossy generations keep the waveform only roughly (0.86 seen); other speech scores near 0.
      expect(match.median, 'median correlation of 200 ms segments of speech').toBeGreaterThan(0.7);
      const other = segmentCorrelation(speech.slice().reverse(), ours.samples, 16000, found!);
      expect(other.median, 'the same measure on speech that was not played').toBeLessThan(0.3);
      expect(toneWindows(ours.samples, 16000, 1000)).toBeGreaterThanOrEqual(6);
      expect(warnings).toEqual([]);
    }, 60_000);

    it('is dialled by baresip: answers Opus over SRTP, hears each key once, and hears its own tone echoed back', async () => {
      warnings.length = 0;
      const incoming = new Promise<Call>((resolve) => phone.once('callAnswered', resolve));
      const from = ua.nextSeq;
      await ua.dial(DEFAULT_USER.username);
      const call = await incoming;
      await ua.waitForCall({ from });
      const heard: string[] = [];
      const allHeard = new Promise<void>((resolve) =>
        call.on('dtmf', (d) => {
          heard.push(d.digit);
          if (heard.length === KEYS.length) resolve();
        }),
      );
      await call.play({ pcm: tone(700, 1000, 16000), sampleRate: 16000 });
      await ua.sendDtmf(KEYS);
      await allHeard;
      ua.hangup();
      const info = await call.done;

      expect(call.direction).toBe('inbound');
      expect(info.reason).toBe('remote-bye');
      expectOpusOverSrtp(call, info.sidecar);
      expect(heard.join('')).toBe(KEYS);
      expect(info.dtmf.map((d) => `${d.digit}:${d.source}`)).toEqual([...KEYS].map((k) => `${k}:rfc4733`));
      const ours = readWav(info.wav ?? '');
      expect(ours.sampleRate).toBe(16000);
      expect(
        toneWindows(ours.samples, 16000, 700),
        'windows of 200 ms with the echoed tone',
      ).toBeGreaterThanOrEqual(6);
      expect(warnings).toEqual([]);
    }, 60_000);
  },
);
