/**
 * What bench/codec-capacity.ts and its load generator (bench/codec-load.ts)
 * share, pure: the four scenarios, the caller's SDP offer for each, reading
 * the bot's answer, the audio every call streams (real speech, encoded once
 * per codec), and the file format that carries it to the generator.
 *
 * The caller's offer decides what the call becomes: the bot prefers opus,
 * PCMU, PCMA (its default) and, with `--srtp optional`, takes RTP/SAVP with
 * a=crypto as SRTP and RTP/AVP without it as plain RTP. So each scenario
 * offers exactly one codec, on the transport it wants:
 *
 *   pcmu        RTP/AVP  0 101     PCMU/8000
 *   pcmu-srtp   RTP/SAVP 0 101     PCMU/8000, a=crypto AES_CM_128_HMAC_SHA1_80
 *   opus        RTP/AVP  111 101   opus/48000/2, useinbandfec=1
 *   opus-srtp   RTP/SAVP 111 101   the same, a=crypto AES_CM_128_HMAC_SHA1_80
 *
 * with telephone-event/8000 (as RingCentral offers it beside Opus), a=rtcp-mux
 * and a=ptime:20. Our a=fmtp for Opus says nothing of the capture rate, so
 * the bot decodes at 16 kHz (its working rate for wideband Opus).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'sdp-transform';
import { decodeUlaw, encodeUlawFrame } from '../src/media/g711.js';
import { OpusDecoder, OpusEncoder } from '../src/media/opus.js';
import { StreamResampler } from '../src/media/resample.js';
import { formatCrypto, parseCrypto } from '../src/sdp/crypto.js';

export const SCENARIOS = ['pcmu', 'pcmu-srtp', 'opus', 'opus-srtp'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export function isScenario(value: string): value is Scenario {
  return (SCENARIOS as readonly string[]).includes(value);
}

export type BenchCodec = 'PCMU' | 'opus';

export const SRTP_SUITE = 'AES_CM_128_HMAC_SHA1_80' as const;

export function codecOfScenario(s: Scenario): BenchCodec {
  return s.startsWith('opus') ? 'opus' : 'PCMU';
}

export function srtpOfScenario(s: Scenario): boolean {
  return s.endsWith('-srtp');
}

/** RTP of each codec as the caller sends it: payload type, clock ticks per 20 ms frame, samples per frame decoded. */
export const WIRE: Readonly<
  Record<BenchCodec, { payloadType: number; ticksPerFrame: number; sampleRate: number; frameSamples: number }>
> = {
  PCMU: { payloadType: 0, ticksPerFrame: 160, sampleRate: 8000, frameSamples: 160 },
  // opus/48000/2 (RFC 7587 4.1): the RTP clock is 48 kHz whatever the audio's rate.
  opus: { payloadType: 111, ticksPerFrame: 960, sampleRate: 16000, frameSamples: 320 },
};

export const TELEPHONE_EVENT_PT = 101;

export interface OfferOptions {
  scenario: Scenario;
  address: string;
  port: number;
  /** o= session id (digits). */
  sessionId: string;
  /** Our SRTP master key||salt (30 octets), for the SRTP scenarios. */
  keySalt?: Uint8Array;
}

/** The caller's SDP offer for a scenario (CRLF line ends, RFC 4566 5). */
export function buildOffer(o: OfferOptions): string {
  const codec = codecOfScenario(o.scenario);
  const srtp = srtpOfScenario(o.scenario);
  if (srtp && o.keySalt === undefined) throw new TypeError(`${o.scenario} needs an SRTP key`);
  const pt = WIRE[codec].payloadType;
  const lines = [
    'v=0',
    `o=loadgen ${o.sessionId} ${o.sessionId} IN IP4 ${o.address}`,
    's=rc-softphone codec-capacity',
    `c=IN IP4 ${o.address}`,
    't=0 0',
    `m=audio ${o.port} ${srtp ? 'RTP/SAVP' : 'RTP/AVP'} ${pt} ${TELEPHONE_EVENT_PT}`,
    codec === 'opus' ? `a=rtpmap:${pt} opus/48000/2` : `a=rtpmap:${pt} PCMU/8000`,
    ...(codec === 'opus' ? [`a=fmtp:${pt} useinbandfec=1`] : []),
    `a=rtpmap:${TELEPHONE_EVENT_PT} telephone-event/8000`,
    `a=fmtp:${TELEPHONE_EVENT_PT} 0-15`,
    ...(srtp ? [`a=crypto:${formatCrypto(1, SRTP_SUITE, o.keySalt!)}`] : []),
    'a=rtcp-mux',
    'a=ptime:20',
    'a=sendrecv',
  ];
  return `${lines.join('\r\n')}\r\n`;
}

export interface AnswerInfo {
  address: string;
  port: number;
  /** The bot's master key||salt from its a=crypto (SRTP scenarios). */
  keySalt?: Buffer;
}

/**
 * Reads the bot's answer and checks it took the scenario: the codec and
 * payload type offered, the same transport, and for SRTP an a=crypto with
 * our tag and suite. Throws with what differs.
 */
export function readAnswer(scenario: Scenario, sdp: string): AnswerInfo {
  const codec = codecOfScenario(scenario);
  const srtp = srtpOfScenario(scenario);
  const session = parse(sdp);
  const audio = session.media.find((m) => m.type === 'audio');
  if (audio === undefined || audio.port === 0) throw new Error(`${scenario}: the answer has no audio stream`);
  const proto = srtp ? 'RTP/SAVP' : 'RTP/AVP';
  if (audio.protocol !== proto) throw new Error(`${scenario}: answered ${audio.protocol}, offered ${proto}`);
  const pt = WIRE[codec].payloadType;
  const rtp = audio.rtp.find((r) => r.payload === pt);
  if (rtp === undefined || rtp.codec.toLowerCase() !== codec.toLowerCase())
    throw new Error(`${scenario}: the answer does not take ${codec}/${pt} (${audio.payloads ?? ''})`);
  const address = audio.connection?.ip ?? session.connection?.ip;
  if (address === undefined) throw new Error(`${scenario}: the answer has no c= line`);
  const info: AnswerInfo = { address, port: audio.port };
  const cryptos = audio.crypto ?? [];
  if (srtp) {
    const line = cryptos[0];
    if (line === undefined) throw new Error(`${scenario}: the answer has no a=crypto`);
    const parsed = parseCrypto(`${line.id} ${line.suite} ${line.config}`);
    if (!parsed.ok) throw new Error(`${scenario}: the answer's a=crypto: ${parsed.reason}`);
    if (parsed.crypto.tag !== 1 || parsed.crypto.suite !== SRTP_SUITE)
      throw new Error(
        `${scenario}: the answer's a=crypto is ${parsed.crypto.suite} tag ${parsed.crypto.tag}`,
      );
    info.keySalt = parsed.crypto.keySalt;
  } else if (cryptos.length > 0) {
    throw new Error(`${scenario}: the answer has a=crypto for a plain RTP offer`);
  }
  return info;
}

// ---------------------------------------------------------------------------
// the audio

/** Real speech, pocketsphinx-testdata's (16 kHz s16le mono). */
export const SPEECH_FILE = '/usr/share/pocketsphinx/test/data/goforward.raw';

export function readSpeech(file = SPEECH_FILE): Int16Array {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    throw new Error(
      `codec-capacity needs real speech at ${file} (Debian/Ubuntu: apt-get install pocketsphinx-testdata): ${(err as Error).message}`,
    );
  }
  const even = raw.byteLength & ~1;
  return new Int16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + even));
}

/** `frames` 20 ms frames of `speech` (16 kHz) played over and over, at 16 kHz. */
export function loopSpeech(speech: Int16Array, frames: number): Int16Array {
  const out = new Int16Array(frames * 320);
  for (let at = 0; at < out.length; at += speech.length) out.set(speech.subarray(0, out.length - at), at);
  return out;
}

/**
 * What every call of a codec streams: one RTP payload per 20 ms frame, made
 * once (every call sends the same sequence, so every recording can be
 * checked against one expected decode), and that decode: the PCM a faithful
 * receiver records, at the codec's working rate.
 *
 * PCMU: the 16 kHz speech half-band decimated to 8 kHz (our own filter),
 * µ-law encoded; expected = its ITU decoding. Opus: encoded at 16 kHz by
 * one encoder over the whole stream (complexity 5, 24 kb/s, in-band FEC as
 * the bot's useinbandfec=1 asks, like RingCentral's wideband Opus);
 * expected = a fresh decoder's output at 16 kHz for the packets in order,
 * which a receiver that loses nothing reproduces bit for bit (libopus
 * decoding is deterministic).
 */
export interface CodecStream {
  codec: BenchCodec;
  payloads: Uint8Array[];
  expected: Int16Array;
}

/** Needs loadOpus() for Opus. */
export function encodeStream(codec: BenchCodec, speech16k: Int16Array): CodecStream {
  const frames = Math.floor(speech16k.length / 320);
  const payloads: Uint8Array[] = [];
  if (codec === 'PCMU') {
    const down = StreamResampler.halfband(16000, 8000);
    const expected = new Int16Array(frames * 160);
    for (let k = 0; k < frames; k++) {
      const pcm8 = down.process(speech16k.subarray(k * 320, (k + 1) * 320));
      const payload = new Uint8Array(160);
      encodeUlawFrame(pcm8, payload);
      payloads.push(payload);
      decodeUlaw(payload, expected, k * 160);
    }
    down.close();
    return { codec, payloads, expected };
  }
  const encoder = new OpusEncoder(16000, { fec: true });
  const decoder = new OpusDecoder(16000);
  const expected = new Int16Array(frames * 320);
  try {
    for (let k = 0; k < frames; k++) {
      const payload = encoder.encode(speech16k.subarray(k * 320, (k + 1) * 320));
      payloads.push(payload);
      const r = decoder.decode(payload);
      if (!r.ok || r.pcm.length !== 320) throw new Error(`Opus frame ${k} does not decode to 20 ms`);
      expected.set(r.pcm, k * 320);
    }
  } finally {
    encoder.close();
    decoder.close();
  }
  return { codec, payloads, expected };
}

/** Payloads as one file: per payload a 16-bit big-endian length, then the bytes. */
export function packPayloads(payloads: readonly Uint8Array[]): Buffer {
  const total = payloads.reduce((n, p) => n + 2 + p.length, 0);
  const out = Buffer.alloc(total);
  let at = 0;
  for (const p of payloads) {
    out.writeUInt16BE(p.length, at);
    out.set(p, at + 2);
    at += 2 + p.length;
  }
  return out;
}

export function unpackPayloads(buf: Buffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at + 2 <= buf.length) {
    const n = buf.readUInt16BE(at);
    if (at + 2 + n > buf.length) throw new Error('truncated payload file');
    out.push(buf.subarray(at + 2, at + 2 + n));
    at += 2 + n;
  }
  return out;
}

// ---------------------------------------------------------------------------
// checking a recording

export type RecordingVerdict = 'exact' | 'gaps' | 'broken';

/**
 * Compares a recording with the expected stream (both at the codec's rate):
 * 'exact' when it is zeros, then exactly `expected`, then zeros; 'gaps' when
 * every frame of `expected` is there, bit-exact and in order, with runs of
 * zeros inserted between some (the recording re-placed a late stream, see
 * the jitter buffer's bound); 'broken' otherwise (a frame missing, altered,
 * or concealed). The stream starts where the first non-zero sample of the
 * recording matches the first non-zero sample of `expected`.
 */
export function verifyRecording(
  wav: Int16Array,
  expected: Int16Array,
  frameSamples: number,
): { verdict: RecordingVerdict; gaps: number; framesMatched: number } {
  const firstNonZero = (a: Int16Array) => a.findIndex((s) => s !== 0);
  const lead = firstNonZero(expected);
  const offset = firstNonZero(wav) - lead;
  if (lead < 0 || offset < 0) return { verdict: 'broken', gaps: 0, framesMatched: 0 };
  for (let i = 0; i < offset; i++) if (wav[i] !== 0) return { verdict: 'broken', gaps: 0, framesMatched: 0 };
  const frames = Math.floor(expected.length / frameSamples);
  const matchesAt = (at: number, k: number) => {
    if (at + frameSamples > wav.length) return false;
    const base = k * frameSamples;
    for (let i = 0; i < frameSamples; i++) if (wav[at + i] !== expected[base + i]) return false;
    return true;
  };
  let at = offset;
  let gaps = 0;
  for (let k = 0; k < frames; k++) {
    if (matchesAt(at, k)) {
      at += frameSamples;
      continue;
    }
    // Silence inserted before frame k: skip zeros until the frame shows up.
    let next = at;
    while (next < wav.length && wav[next] === 0 && !matchesAt(next, k)) next++;
    if (next >= wav.length || !matchesAt(next, k)) return { verdict: 'broken', gaps, framesMatched: k };
    gaps++;
    at = next + frameSamples;
  }
  for (let i = at; i < wav.length; i++)
    if (wav[i] !== 0) return { verdict: 'broken', gaps, framesMatched: frames };
  return { verdict: gaps === 0 ? 'exact' : 'gaps', gaps, framesMatched: frames };
}
