/**
 * Which priming packet do real user agents report as a key press?
 *
 * After answering, the media session sends one packet at once so that a
 * latching media server learns where to send RTP (src/media/session.ts,
 * `#sendPrime`). Today that packet is a complete RFC 4733 event "0" (end bit,
 * duration 160, volume 10, marker bit), and the far end's IVR sees a "0".
 * Here each candidate packet goes into an established call with baresip and
 * with linphonec, followed by ordinary PCMU audio and then a real key press
 * "5" (start packet, four updates, three end packets, as phones send it).
 *
 * How "not reported" is decided without a fixed wait: an agent handles one
 * call's RTP in arrival order, so once it has reported the "5" it has
 * handled the candidate before it; whatever it said about the candidate is
 * in its output above that line. The "5" also proves, in every case, that
 * the harness does see DTMF.
 *
 * What the agents do, from their source (see test/helpers/baresip.ts and
 * linphone.ts) and confirmed here:
 *  - baresip 1.0.0 / libre: a start packet reports the key (an application
 *    sees CALL_DTMF_START), an end packet the release; codes above 15 are
 *    dropped; and its own format list decides what is telephone-event, so
 *    PT 101 is taken as DTMF even when the call did not negotiate it.
 *  - linphonec 5.1 / oRTP: only a packet with the end bit reports a key;
 *    codes above 15 are logged as "Bad dtmf value"; a payload type the call
 *    did not negotiate is dropped ("unknown payload type").
 * So: the current packet is a key press "0" for both; an event start without
 * an end is one for baresip (and, from their source, for Asterisk, which ends
 * it after 150 ms of timestamps: res_rtp_asterisk.c process_dtmf_rfc2833);
 * event 16 is hook flash for Asterisk ('X') and FreeSWITCH ('F',
 * switch_rfc2833_to_char); only a frame of the negotiated audio codec is a
 * key press for nobody.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { encodeTelephoneEvent } from '../../src/media/dtmf.js';
import { encodeUlaw, ULAW_SILENCE, ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { MediaSession } from '../../src/media/session.js';
import type { NegotiatedMedia } from '../../src/sdp/negotiate.js';
import { type Baresip, startBaresip } from '../helpers/baresip.js';
import { type Linphone, startLinphone } from '../helpers/linphone.js';
import { waitFor } from '../helpers/ports.js';
import {
  DEFAULT_FORMATS,
  digitPackets,
  placeCall,
  type RawCall,
  type RtpSendInit,
  type SdpFormat,
} from '../helpers/raw-uac.js';
import { describeInterop } from '../helpers/tools.js';
import { readWav } from '../helpers/wav.js';

const PCMU = 0;
const TELEPHONE_EVENT = 101;
/** The key press that follows every candidate: not "0", which baresip would swallow after a "0" that never ended. */
const SENTINEL = 5;
const AUDIO_FRAMES = 10;
const TAIL_FRAMES = 5;
const PCMU_ONLY: readonly SdpFormat[] = [{ payloadType: PCMU, rtpmap: 'PCMU/8000' }];

interface Candidate {
  name: string;
  /** The packet, given the negotiated telephone-event payload type (undefined: none negotiated). */
  packet(telephoneEventPt: number | undefined): { payloadType: number; payload: Uint8Array };
}

const event = (code: number, end: boolean, duration: number) =>
  encodeTelephoneEvent({ event: code, end, volume: 10, duration });

/** The packet rc-softphone primed with before issue 9: a complete RFC 4733 "0" (heard as a key press). */
const CURRENT: Candidate = {
  name: 'current: event 0, end bit, duration 160',
  packet: (te) => ({ payloadType: te ?? TELEPHONE_EVENT, payload: event(0, true, 160) }),
};
const SILENCE_FRAME: Candidate = {
  name: 'one PCMU silence frame (0xFF × 160)',
  packet: () => ({ payloadType: PCMU, payload: new Uint8Array(160).fill(ULAW_SILENCE) }),
};
const CANDIDATES: readonly Candidate[] = [
  CURRENT,
  {
    name: 'event 0 started, never ended (duration 0)',
    packet: (te) => ({ payloadType: te ?? TELEPHONE_EVENT, payload: event(0, false, 0) }),
  },
  {
    name: 'event 16 (hook flash in RFC 2833), end bit',
    packet: (te) => ({ payloadType: te ?? TELEPHONE_EVENT, payload: event(16, true, 160) }),
  },
  {
    name: 'event 17 (IANA: unassigned), end bit',
    packet: (te) => ({ payloadType: te ?? TELEPHONE_EVENT, payload: event(17, true, 160) }),
  },
  SILENCE_FRAME,
];

/** What each agent reports for each candidate (keys; baresip's with the end flag). */
const BARESIP_REPORTS: Record<string, string[]> = {
  [CANDIDATES[0]!.name]: ['0 release'],
  [CANDIDATES[1]!.name]: ['0 press'],
  [CANDIDATES[2]!.name]: [],
  [CANDIDATES[3]!.name]: [],
  [CANDIDATES[4]!.name]: [],
};
/** linphonec: "tone K" for a reported key, and its warnings about codes it does not map. */
const LINPHONE_REPORTS: Record<string, string[]> = {
  [CANDIDATES[0]!.name]: ['tone 0'],
  [CANDIDATES[1]!.name]: [],
  [CANDIDATES[2]!.name]: ['Bad dtmf value 16'],
  [CANDIDATES[3]!.name]: ['Bad dtmf value 17'],
  [CANDIDATES[4]!.name]: [],
};

/**
 * 20 ms frames of a 440 Hz tone peaking at about -12 dBFS, u-law. Frames
 * differ from each other (440 Hz does not divide a frame), and the phase keeps
 * every sample away from zero, so no byte is 0xFF or 0x7F: baresip decodes
 * u-law 0xFF to 2 where ITU G.711 (and src/media/g711.ts) give 0.
 */
function toneFrames(count: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let f = 0; f < count; f++) {
    const frame = new Uint8Array(160);
    for (let i = 0; i < 160; i++) {
      const n = f * 160 + i;
      frame[i] = encodeUlaw(Math.round(8000 * Math.sin((2 * Math.PI * 440 * n) / 8000 + 0.3)));
    }
    frames.push(frame);
  }
  return frames;
}

const TONE = toneFrames(AUDIO_FRAMES + TAIL_FRAMES);

/**
 * After the priming packet (frame 0, sent by the caller of this): the tone,
 * the sentinel key press, more tone; one packet per 20 ms tick, timestamps
 * on the same timeline as the priming packet.
 */
async function playAfterPrime(call: RawCall, telephoneEventPt: number): Promise<void> {
  const ticks: RtpSendInit[][] = [];
  let frame = 1;
  for (let i = 0; i < AUDIO_FRAMES; i++, frame++)
    ticks.push([{ payloadType: PCMU, frame, payload: TONE[i]! }]);
  const digit = digitPackets(SENTINEL, telephoneEventPt, frame);
  for (const packet of digit) ticks.push([packet]);
  frame += digit.length;
  for (let i = 0; i < TAIL_FRAMES; i++, frame++) {
    ticks.push([{ payloadType: PCMU, frame, marker: i === 0, payload: TONE[AUDIO_FRAMES + i]! }]);
  }
  await call.rtp.paced(ticks.length, (i) => {
    for (const packet of ticks[i]!) call.rtp.send(packet);
  });
}

/** Index of `needle` in `haystack` at or after `from`, or -1. */
function indexOf(haystack: Int16Array, needle: Int16Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function negotiatedFrom(call: RawCall): NegotiatedMedia {
  const te = [...call.answerFormats].find(([, name]) => /^telephone-event\/8000$/i.test(name))?.[0];
  return {
    codec: 'PCMU',
    payloadType: PCMU,
    clockRate: 8000,
    ...(te === undefined ? {} : { telephoneEventPt: te }),
    remoteAddress: call.remote.address,
    remotePort: call.remote.port,
    ptime: 20,
    direction: 'sendrecv',
    onHold: false,
  };
}

/** Primes a call; may return what to do once the test's own RTP is sent. */
type Prime = (call: RawCall) => undefined | (() => void) | Promise<undefined | (() => void)>;

/**
 * The media session's own priming, from the call's RTP socket, with no
 * silence after it; the test's stream then continues the session's (same
 * SSRC, next sequence number, same timeline), as the session's silence would.
 * The session is stopped (which closes the socket) once the test has sent its RTP.
 */
const primeWithMediaSession: Prime = async (call) => {
  const sent = vi.spyOn(call.rtp.socket, 'send');
  const session = new MediaSession({
    socket: call.rtp.socket,
    negotiated: negotiatedFrom(call),
    t0: performance.now(),
    sendSilence: false,
  });
  try {
    await session.prime();
    expect(session.stats.packetsSent).toBe(1);
    const prime = sent.mock.calls[0]?.[0];
    if (!(prime instanceof Uint8Array)) throw new Error('the session sent no priming packet');
    call.rtp.continueAfter(prime);
  } catch (error) {
    session.stop();
    throw error;
  } finally {
    sent.mockRestore();
  }
  return () => {
    session.stop();
  };
};

async function withCall<T>(
  ua: { port: number },
  formats: readonly SdpFormat[],
  fn: (call: RawCall) => Promise<T>,
): Promise<T> {
  const call = await placeCall({ port: ua.port, user: 'bot' }, { formats });
  try {
    const result = await fn(call);
    await call.hangup();
    return result;
  } finally {
    await call.close();
  }
}

describeInterop('priming packet vs baresip', ['baresip'], () => {
  let ua: Baresip;

  beforeAll(async () => {
    ua = await startBaresip();
  });

  afterAll(async () => {
    await ua?.stop();
  });

  /** Sends `prime` into a new call, then tone and the sentinel; returns what baresip reported before the sentinel. */
  async function reportsFor(prime: Prime, formats = DEFAULT_FORMATS) {
    const from = ua.nextSeq;
    return withCall(ua, formats, async (call) => {
      await ua.waitForCall({ from });
      const done = await prime(call);
      try {
        await playAfterPrime(call, TELEPHONE_EVENT);
      } finally {
        done?.();
      }
      const sentinel = await ua.waitForDtmf((d) => d.key === String(SENTINEL) && d.end, { from });
      const before = ua.dtmf(from).filter((d) => d.seq < sentinel.seq);
      // The sentinel's own press comes just before its release: not the candidate's.
      return before
        .filter((d) => !(d.key === String(SENTINEL) && !d.end))
        .map((d) => `${d.key} ${d.end ? 'release' : 'press'}`);
    });
  }

  it.each(CANDIDATES.map((c) => [c.name, c] as const))('%s', async (name, candidate) => {
    const reports = await reportsFor((call) => {
      call.rtp.send({ ...candidate.packet(TELEPHONE_EVENT), frame: 0, marker: true });
      return undefined;
    });
    expect(reports, ua.output(40)).toEqual(BARESIP_REPORTS[name]);
  });

  it('the production priming packet (MediaSession.prime) is not reported as a key press', async () => {
    const reports = await reportsFor(primeWithMediaSession);
    expect(reports, ua.output(40)).toEqual([]);
  });

  it('plays the audio after a silence-frame prime unchanged (its sndfile recording)', async () => {
    const recorder = await startBaresip({ record: true });
    try {
      const from = recorder.nextSeq;
      await withCall(recorder, DEFAULT_FORMATS, async (call) => {
        await recorder.waitForCall({ from });
        call.rtp.send({ ...SILENCE_FRAME.packet(TELEPHONE_EVENT), frame: 0, marker: true });
        await playAfterPrime(call, TELEPHONE_EVENT);
        await recorder.waitForDtmf((d) => d.key === String(SENTINEL) && d.end, { from });
      });
      await recorder.waitForCallEnd({ from });
      const [file] = recorder.recordings().decoded;
      expect(file, recorder.output(40)).toBeDefined();
      // sndfile completes the WAV header as the call is torn down, just after the line above.
      const wav = await waitFor(() => readWav(file!), { message: `complete WAV ${file}` });
      expect(wav.sampleRate).toBe(8000);
      expect(TONE.every((f) => !f.includes(0xff) && !f.includes(0x7f))).toBe(true);
      const tone = Int16Array.from(
        TONE.slice(0, AUDIO_FRAMES).flatMap((f) => [...f]),
        (b) => ULAW_TO_LINEAR[b]!,
      );
      // The prime is the first frame baresip decoded (u-law 0xFF: baresip's
      // decoder gives 2, not 0), and the tone follows it bit-exact: nothing
      // shifted, nothing lost. (The tail after the key press may still sit in
      // baresip's jitter buffer when the call ends: not checked.)
      expect(
        [...wav.samples.subarray(0, 160)].every((x) => Math.abs(x) <= 2),
        file,
      ).toBe(true);
      expect(indexOf(wav.samples, tone), `tone not found in ${file}`).toBe(160);
    } finally {
      await recorder.stop();
    }
  });

  it('takes PT 101 as telephone-event even when the call did not negotiate it', async () => {
    const reports = await reportsFor((call) => {
      expect(call.answerPayloadTypes).toEqual([PCMU]);
      call.rtp.send({ ...CURRENT.packet(undefined), frame: 0, marker: true });
      return undefined;
    }, PCMU_ONLY);
    expect(reports, ua.output(40)).toEqual(['0 release']);
  });
});

describeInterop('priming packet vs linphonec', ['linphonec'], () => {
  let ua: Linphone;

  beforeAll(async () => {
    ua = await startLinphone();
  });

  afterAll(async () => {
    await ua?.stop();
  });

  /** Sends `prime` into a new call, then tone and the sentinel; returns what linphonec said before the sentinel. */
  async function reportsFor(prime: Prime) {
    const from = ua.nextSeq;
    return withCall(ua, DEFAULT_FORMATS, async (call) => {
      await ua.waitForCall({ from });
      const done = await prime(call);
      try {
        await playAfterPrime(call, TELEPHONE_EVENT);
      } finally {
        done?.();
      }
      const sentinel = await ua.waitForDtmf((d) => d.key === String(SENTINEL), { from });
      const until = sentinel.seq;
      const tones = ua.dtmf(from).filter((d) => d.seq < until);
      const warnings = ua
        .linesMatching(/Bad dtmf value \d+/, from)
        .map((l) => /Bad dtmf value \d+/.exec(l)![0]);
      return [...tones.map((d) => `tone ${d.key}`), ...warnings];
    });
  }

  it.each(CANDIDATES.map((c) => [c.name, c] as const))('%s', async (name, candidate) => {
    const reports = await reportsFor((call) => {
      call.rtp.send({ ...candidate.packet(TELEPHONE_EVENT), frame: 0, marker: true });
      return undefined;
    });
    expect(reports, ua.output(40)).toEqual(LINPHONE_REPORTS[name]);
  });

  it('the production priming packet (MediaSession.prime) is not reported as a key press', async () => {
    const reports = await reportsFor(primeWithMediaSession);
    expect(reports, ua.output(40)).toEqual([]);
  });

  it('drops PT 101 when the call did not negotiate it', async () => {
    const from = ua.nextSeq;
    await withCall(ua, PCMU_ONLY, async (call) => {
      await ua.waitForCall({ from });
      expect(call.answerPayloadTypes).toEqual([PCMU]);
      call.rtp.send({ ...CURRENT.packet(undefined), frame: 0, marker: true });
      // oRTP logs the packet as it drops it: that is the moment to look.
      await ua.waitForLine(/Receiving packet with unknown payload type 101/, { from });
      expect(ua.dtmf(from), ua.output(40)).toEqual([]);
    });
  });
});
