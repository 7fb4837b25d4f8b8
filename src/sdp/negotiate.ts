/**
 * SDP offer/answer (RFC 3264) for one audio stream (Opus per RFC 7587, or
 * G.711) with RFC 4733 telephone-events, SRTP keyed with SDES (RFC 4568,
 * sdp/crypto.ts) as the SRTP policy allows, and RTCP's destination (RFC 3605
 * a=rtcp, RFC 5761 a=rtcp-mux). Pure and synchronous: SDP text in, answer text and the
 * negotiated media parameters out. Parsing is done by sdp-transform; every
 * field it returns is re-checked here because its typings are optimistic
 * (numbers may be strings, required fields may be missing). a=crypto lines
 * are read from the text itself: sdp-transform keeps only the first session
 * parameter of each, and a dropped UNENCRYPTED_SRTP must not go unnoticed.
 */

import { isIP } from 'node:net';
import { type MediaDescription, parse, type SessionDescription } from 'sdp-transform';
import type { ErrorCodes } from '../errors.js';
import {
  CODECS,
  type CodecName,
  codecByName,
  DEFAULT_CODECS,
  type SampleRate,
  TELEPHONE_EVENT_PT,
} from '../media/codec.js';
import {
  chooseCrypto,
  formatCrypto,
  localKeySalt,
  parseCrypto,
  type SdesCrypto,
  SrtpKeys,
  type SrtpPolicy,
} from './crypto.js';

/** A codec by name (the codec table is media/codec.ts). */
export type Codec = CodecName;
export type MediaDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface LocalMedia {
  /** our RTP address for c= and o= (IPv4, or IPv6 when it contains ':') */
  address: string;
  port: number;
  /** preference, e.g. ['opus', 'PCMU', 'PCMA'] (`--codecs`); default DEFAULT_CODECS */
  codecs?: Codec[];
  /**
   * Force the working rate (`--sample-rate`): 8000 decodes an Opus call
   * straight to narrowband and tells the far end so (maxplaybackrate). It
   * never changes a G.711 call, which is 8000 by definition (the sinks
   * resample if they want 16000).
   */
  sampleRate?: SampleRate;
  /** telephone-event payload type for our own offer, default 101 (use 96-127) */
  telephoneEventPt?: number;
  /** o= sess-id: a numeric string (RFC 4566 5.2) */
  sessionId: string;
  sessionVersion: number;
  /** o= username, default 'rc-softphone' (no spaces) */
  username?: string;
  /**
   * What we want to do (RFC 3264 6.1, 8.4): sendrecv by default; sendonly
   * while we hold the call; inactive to stop both ways. Offers carry it;
   * answers never exceed it.
   */
  direction?: MediaDirection;
  /** When to use SRTP (--srtp; see SrtpPolicy). Default 'off'. */
  srtp?: SrtpPolicy;
  /**
   * Our SRTP master key||salt (30 octets) for the a=crypto we send. Default: a
   * fresh crypto.randomBytes(30) per offer or answer. Pass the call's key again
   * for a re-INVITE so our sending context and the far end's keep going.
   */
  srtpKeySalt?: Uint8Array;
  /** Offer a=rtcp-mux, and accept it when offered (RFC 5761). Default true. */
  rtcpMux?: boolean;
  /** Our RTCP port when it is not port + 1: announced with a=rtcp (RFC 3605). */
  rtcpPort?: number;
}

/** Where to send RTCP (RFC 3550 11, RFC 3605, RFC 5761). */
export interface RtcpTarget {
  /** IP or hostname: a=rtcp's address, else the stream's c= */
  address: string;
  /** a=rtcp's port, else the RTP port + 1; the RTP port itself when muxed; 0 when none */
  port: number;
  /** RTCP shares the RTP port (both sides agreed to a=rtcp-mux) */
  mux: boolean;
}

export interface NegotiatedMedia {
  codec: Codec;
  /** payload type to send the codec with (the remote side's number for it) */
  payloadType: number;
  /**
   * RTP clock rate of the chosen format: timestamps advance by this many per
   * second (8000 for G.711; 48000 for opus/48000/2, RFC 7587 4.1; 16000 for
   * the OPUS/16000 that RingCentral's edge also offers).
   */
  clockRate: number;
  /**
   * Working rate: the rate the decoder produces and the sinks receive (8000
   * for G.711; 16000 for Opus unless forced or the sender captures at 8 kHz).
   * Always set by negotiation; absent only in hand-made placeholders (= 8000).
   */
  sampleRate?: SampleRate;
  /**
   * The far end decodes Opus in-band FEC (its useinbandfec=1, RFC 7587 6.1),
   * so our encoder should add it. We always decode FEC (we say useinbandfec=1).
   * Always set by negotiation; absent only in placeholders (= false).
   */
  fec?: boolean;
  /** The far end's Opus parameters (fmtp), for our encoder; set when the codec is Opus. */
  opus?: OpusParams;
  /** telephone-event payload type, when both sides have it */
  telephoneEventPt?: number;
  /** its RTP clock rate when not 8000 (RFC 4733 2.1: should match the codec's; RingCentral uses 8000 with Opus) */
  telephoneEventRate?: number;
  /** IP or hostname as the remote SDP gave it (not resolved) */
  remoteAddress: string;
  remotePort: number;
  /** packetization the remote side asked for (a=ptime), default 20 ms */
  ptime: number;
  /** OUR direction */
  direction: MediaDirection;
  /** the remote side holds the call (sendonly/inactive, c=0.0.0.0, or port 0) */
  onHold: boolean;
  /** where the far end takes RTCP (set by negotiateAnswer and acceptAnswer) */
  rtcp?: RtcpTarget;
  /**
   * SRTP keys when the stream is SRTP (RTP/SAVP, or a=crypto accepted on
   * RTP/AVP): a secret. SrtpKeys hides the keys from JSON, inspect and
   * string conversion; event and log code should still leave this field out.
   */
  srtp?: SrtpKeys;
}

/**
 * Opus format parameters (RFC 7587 6.1), as the far end gave them in its
 * fmtp. Each describes what the far end receives (or, `sprop-`, sends).
 */
export interface OpusParams {
  /** Highest rate the far end can usefully play, 8000..48000 (RFC 7587 6.1; default 48000). */
  maxPlaybackRate: number;
  /** Highest rate the far end captures at, when it said. */
  spropMaxCaptureRate?: number;
  /** Cap on the average bitrate it wants to receive, 6000..510000. */
  maxAverageBitrate?: number;
  /** It prefers to receive stereo (we send mono anyway: allowed, a preference). */
  stereo: boolean;
  /** It decodes in-band FEC. */
  useInbandFec: boolean;
  /** It wants DTX (discontinuous transmission). */
  useDtx: boolean;
  /** It wants constant bitrate. */
  cbr: boolean;
  /** ptime / minptime / maxptime given in the fmtp, ms. */
  ptime?: number;
  minPtime?: number;
  maxPtime?: number;
}

/** RTP clock rates we accept for Opus: RFC 7587's 48000, and the OPUS/16000 of RingCentral's edge. */
const OPUS_CLOCK_RATES: readonly number[] = [48000, 16000];

/**
 * Reads an Opus fmtp value list (`maxplaybackrate=16000; useinbandfec=1`).
 * Parameter names are case-insensitive (RFC 6838 4.3) and whitespace around
 * ';' and '=' is tolerated; a value out of its RFC 7587 range, or not a
 * whole number, is ignored (the default applies) rather than failing the call.
 */
export function parseOpusFmtp(config: string | undefined): OpusParams {
  const p: OpusParams = {
    maxPlaybackRate: 48000,
    stereo: false,
    useInbandFec: false,
    useDtx: false,
    cbr: false,
  };
  if (config === undefined) return p;
  for (const item of config.split(';')) {
    const eq = item.indexOf('=');
    if (eq < 0) continue;
    const name = item.slice(0, eq).trim().toLowerCase();
    const text = item.slice(eq + 1).trim();
    if (!/^\d{1,7}$/.test(text)) continue;
    const v = Number(text);
    const flag = v === 0 || v === 1 ? v === 1 : undefined;
    switch (name) {
      case 'maxplaybackrate':
        if (v >= 8000 && v <= 48000) p.maxPlaybackRate = v;
        break;
      case 'sprop-maxcapturerate':
        if (v >= 8000 && v <= 48000) p.spropMaxCaptureRate = v;
        break;
      case 'maxaveragebitrate':
        if (v >= 6000 && v <= 510000) p.maxAverageBitrate = v;
        break;
      case 'stereo':
        if (flag !== undefined) p.stereo = flag;
        break;
      case 'useinbandfec':
        if (flag !== undefined) p.useInbandFec = flag;
        break;
      case 'usedtx':
        if (flag !== undefined) p.useDtx = flag;
        break;
      case 'cbr':
        if (flag !== undefined) p.cbr = flag;
        break;
      case 'ptime':
        if (v >= 3 && v <= 120) p.ptime = v;
        break;
      case 'minptime':
        if (v >= 3 && v <= 120) p.minPtime = v;
        break;
      case 'maxptime':
        if (v >= 3 && v <= 120) p.maxPtime = v;
        break;
    }
  }
  return p;
}

/**
 * Our Opus fmtp at working rate `rate`: we play and capture at most `rate`
 * (no point in the far end coding a wider band than we keep, RFC 7587 6.1:
 * maxplaybackrate lets its encoder spend the bits on the band we use), and we
 * decode its in-band FEC, which rebuilds a lost packet from the next one.
 * Mono is the default (stereo=0), so it is not written.
 */
export function opusFmtp(rate: SampleRate): string {
  return `maxplaybackrate=${rate};sprop-maxcapturerate=${rate};useinbandfec=1`;
}

/** The working rate of an Opus call: the forced one, else 16 kHz unless the sender only captures narrowband. */
function opusWorkingRate(params: OpusParams, forced: SampleRate | undefined): SampleRate {
  if (forced !== undefined) return forced;
  return params.spropMaxCaptureRate !== undefined && params.spropMaxCaptureRate <= 8000 ? 8000 : 16000;
}

export interface SdpFailure {
  ok: false;
  code: typeof ErrorCodes.SDP_NOT_ACCEPTABLE | typeof ErrorCodes.SDP_PARSE_ERROR;
  reason: string;
  /** text for a `Warning: <warnCode> <agent> "<text>"` header: no quotes, no control characters */
  warning: string;
  /**
   * RFC 3261 20.43 warn-code: 302 incompatible transport protocol, 304 media
   * type not available, 305 incompatible media format, 399 anything else.
   */
  warnCode: WarnCode;
}

export type WarnCode = 302 | 304 | 305 | 399;

export type NegotiationResult =
  | { ok: true; answer: string; media: NegotiatedMedia }
  | (SdpFailure & { status: 488 | 400 });

export type AnswerAcceptance = { ok: true; media: NegotiatedMedia } | SdpFailure;

const DEFAULT_PTIME = 20;
/** SIP messages carrying SDP are bounded by the transport; this is a second fence. */
const MAX_SDP_LENGTH = 65_536;
const MAX_NAMED_FORMATS = 8;

/** RFC 3551 Table 4 static audio payload types, for naming formats in warnings. */
const STATIC_AUDIO_NAMES: Readonly<Record<number, string>> = {
  0: 'PCMU/8000',
  3: 'GSM/8000',
  4: 'G723/8000',
  5: 'DVI4/8000',
  6: 'DVI4/16000',
  7: 'LPC/8000',
  8: 'PCMA/8000',
  9: 'G722/8000',
  10: 'L16/44100/2',
  11: 'L16/44100',
  12: 'QCELP/8000',
  13: 'CN/8000',
  14: 'MPA/90000',
  15: 'G728/8000',
  16: 'DVI4/11025',
  17: 'DVI4/22050',
  18: 'G729/8000',
};

// ---------------------------------------------------------------------------
// Parsing into a checked model

interface Format {
  pt: number;
  codec?: Codec;
  /** RTP clock rate from the rtpmap (8000 for a static type without one) */
  clockRate: number;
  /** channels from the rtpmap, when it gave them */
  channels?: number;
  telephoneEvent: boolean;
  /** e.g. 'G729/8000', for warnings */
  name: string;
  fmtp?: string;
}

interface MediaLine {
  type: string;
  port: number;
  proto: string;
  /** fmt tokens exactly as offered (RFC 4566 5.14) */
  fmts: string[];
  /** the fmts that are RTP payload types, resolved */
  formats: Format[];
  /** media-level c=, else session-level; '/ttl' suffix removed */
  address?: string;
  direction: MediaDirection;
  ptime?: number;
  /** raw a=crypto values of this m-section (after "a=crypto:") */
  crypto: string[];
  rtcpMux: boolean;
  /** a=rtcp (RFC 3605) */
  rtcpPort?: number;
  rtcpAddress?: string;
}

type Parsed = { ok: true; media: MediaLine[] } | { ok: false; reason: string };

function parseSdpText(text: unknown): Parsed {
  if (typeof text !== 'string' || text.length === 0) return { ok: false, reason: 'empty SDP body' };
  if (text.length > MAX_SDP_LENGTH) return { ok: false, reason: 'SDP body too large' };
  let session: SessionDescription;
  try {
    session = parse(text);
  } catch {
    return { ok: false, reason: 'unparseable SDP' };
  }
  // RFC 4566 5.1: v=0 is the only version. sdp-transform skips lines it does
  // not understand, so this is what tells SDP from arbitrary text.
  if ((session.version as unknown) !== 0) return { ok: false, reason: 'SDP without v=0' };
  const raw = Array.isArray(session.media) ? session.media : [];
  const sessionAddress = connectionAddress(session.connection);
  const sessionDirection = asDirection(session.direction) ?? 'sendrecv';
  const sessionPtime = asPtime((session as { ptime?: unknown }).ptime);
  const crypto = cryptoLinesByMedia(text);
  const media: MediaLine[] = [];
  for (let i = 0; i < raw.length; i++) {
    const line = parseMediaLine(raw[i]!, sessionAddress, sessionDirection, sessionPtime);
    if (line === undefined) return { ok: false, reason: `malformed m= line ${i + 1}` };
    line.crypto = crypto[i] ?? [];
    media.push(line);
  }
  return { ok: true, media };
}

/** At most this many a=crypto lines per m-line are looked at (a bound, not a limit anyone meets). */
const MAX_CRYPTO_LINES = 16;

/** The a=crypto values of each m-section, in order (RFC 4568 5: media level only). */
function cryptoLinesByMedia(text: string): string[][] {
  const sections: string[][] = [];
  for (const line of text.split(/\r\n|\n|\r/)) {
    // sdp-transform opens a media section at every "m=" line too, so indexes match.
    if (line.startsWith('m=')) sections.push([]);
    else if (line.startsWith('a=crypto:')) {
      const current = sections[sections.length - 1];
      if (current !== undefined && current.length < MAX_CRYPTO_LINES) current.push(line.slice(9));
    }
  }
  return sections;
}

function parseMediaLine(
  m: MediaDescription,
  sessionAddress: string | undefined,
  sessionDirection: MediaDirection,
  sessionPtime: number | undefined,
): MediaLine | undefined {
  const type: unknown = m.type;
  const port: unknown = m.port;
  const proto: unknown = m.protocol;
  if (typeof type !== 'string' || type.length === 0) return undefined;
  if (typeof proto !== 'string' || proto.length === 0) return undefined;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  // A single numeric fmt comes back from sdp-transform as a number.
  const payloads: unknown = m.payloads;
  const fmts =
    typeof payloads === 'number' || typeof payloads === 'string'
      ? String(payloads)
          .split(' ')
          .filter((t) => t.length > 0)
      : [];
  if (fmts.length === 0) return undefined; // RFC 4566 5.14: at least one fmt
  const isRtp = proto.toUpperCase().startsWith('RTP/') || proto.toUpperCase().includes('/RTP/');
  const formats: Format[] = [];
  if (isRtp) {
    for (const token of fmts) {
      const pt = asPayloadType(token);
      if (pt !== undefined) formats.push(resolveFormat(m, pt));
    }
  }
  const line: MediaLine = {
    type,
    port,
    proto,
    fmts,
    formats,
    direction: asDirection(m.direction) ?? sessionDirection,
    crypto: [],
    rtcpMux: m.rtcpMux === 'rtcp-mux',
  };
  // RFC 3605: a=rtcp:port [nettype addrtype address]
  const rtcp: unknown = m.rtcp;
  if (typeof rtcp === 'object' && rtcp !== null) {
    const rtcpPort: unknown = (rtcp as { port?: unknown }).port;
    const rtcpAddress: unknown = (rtcp as { address?: unknown }).address;
    if (typeof rtcpPort === 'number' && Number.isInteger(rtcpPort) && rtcpPort > 0 && rtcpPort <= 65535) {
      line.rtcpPort = rtcpPort;
      if (typeof rtcpAddress === 'string' && rtcpAddress.length > 0) line.rtcpAddress = rtcpAddress;
    }
  }
  const address = connectionAddress(m.connection) ?? sessionAddress;
  if (address !== undefined) line.address = address;
  const ptime = asPtime(m.ptime) ?? sessionPtime;
  if (ptime !== undefined) line.ptime = ptime;
  return line;
}

function resolveFormat(m: MediaDescription, pt: number): Format {
  const rtpmap = Array.isArray(m.rtp) ? m.rtp.find((r) => r.payload === pt) : undefined;
  const fmtp = Array.isArray(m.fmtp) ? m.fmtp.find((f) => f.payload === pt) : undefined;
  const format: Format = {
    pt,
    clockRate: 8000,
    telephoneEvent: false,
    name: STATIC_AUDIO_NAMES[pt] ?? `PT ${pt}`,
  };
  if (fmtp !== undefined && typeof fmtp.config === 'string' && fmtp.config.length > 0)
    format.fmtp = fmtp.config;
  if (rtpmap !== undefined && typeof rtpmap.codec === 'string' && rtpmap.codec.length > 0) {
    // Encoding names are case-insensitive (RFC 4855 3); RingCentral has sent 'pcmu/8000'.
    const name = rtpmap.codec.toUpperCase();
    const rate: unknown = rtpmap.rate;
    const channels: unknown = rtpmap.encoding;
    format.name = rate === undefined ? rtpmap.codec : `${rtpmap.codec}/${String(rate)}`;
    const clockRate = rate === undefined ? 8000 : Number(rate);
    const nChannels = channels === undefined ? 1 : Number(channels);
    format.clockRate = clockRate;
    if (channels !== undefined) format.channels = nChannels;
    const known = codecByName(name);
    if (known === 'opus') {
      // RFC 7587 7: always opus/48000/2, stereo or not; RingCentral also offers OPUS/16000 (mono).
      if (OPUS_CLOCK_RATES.includes(clockRate) && (nChannels === 1 || nChannels === 2)) format.codec = known;
    } else if (known !== undefined) {
      if (clockRate === 8000 && nChannels === 1) format.codec = known;
    } else if (name === 'TELEPHONE-EVENT' && [8000, 16000, 48000].includes(clockRate)) {
      format.telephoneEvent = true;
    }
  } else {
    // RFC 3551 6: static payload types need no rtpmap.
    format.codec = (Object.keys(CODECS) as Codec[]).find(
      (c) => !CODECS[c].dynamic && CODECS[c].payloadType === pt,
    );
  }
  return format;
}

function connectionAddress(c: unknown): string | undefined {
  if (typeof c !== 'object' || c === null) return undefined;
  const ip: unknown = (c as { ip?: unknown }).ip;
  if (typeof ip !== 'string' || ip.length === 0) return undefined;
  const slash = ip.indexOf('/'); // multicast TTL / address count (RFC 4566 5.7)
  return slash < 0 ? ip : slash > 0 ? ip.slice(0, slash) : undefined;
}

function asDirection(value: unknown): MediaDirection | undefined {
  return value === 'sendrecv' || value === 'sendonly' || value === 'recvonly' || value === 'inactive'
    ? value
    : undefined;
}

function asPtime(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  // a=ptime is a hint (RFC 4566 6); ignore nonsense rather than fail.
  return Number.isFinite(n) && n >= 1 && n <= 1000 ? Math.round(n) : undefined;
}

function asPayloadType(token: string): number | undefined {
  if (token.length === 0 || token.length > 3) return undefined;
  let n = 0;
  for (let i = 0; i < token.length; i++) {
    const d = token.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return n <= 127 ? n : undefined;
}

function isPlainRtpProfile(proto: string): boolean {
  const p = proto.toUpperCase();
  return p === 'RTP/AVP' || p === 'RTP/AVPF';
}

function isSecureRtpProfile(proto: string): boolean {
  const p = proto.toUpperCase();
  return p.endsWith('RTP/SAVP') || p.endsWith('RTP/SAVPF');
}

/** SRTP profiles keyed in SDP (RFC 4568); UDP/TLS/RTP/SAVP(F) is DTLS-SRTP (RFC 5764), which we do not do. */
function isSdesProfile(proto: string): boolean {
  const p = proto.toUpperCase();
  return p === 'RTP/SAVP' || p === 'RTP/SAVPF';
}

/**
 * How a stream may be carried:
 * - `sdes`: RTP/SAVP(F) with a usable a=crypto (RFC 4568);
 * - `best-effort`: RTP/AVP(F) with a usable a=crypto: SRTP if we answer with
 *   a=crypto, plain RTP if we do not (what Asterisk and linphone call
 *   "best-effort" or "optional" SRTP);
 * - `plain`: RTP/AVP(F), any a=crypto ignored.
 */
type Security = 'sdes' | 'best-effort' | 'plain';

/** Which securities a policy takes, in its order of preference. */
const ACCEPTED: Readonly<Record<SrtpPolicy, readonly Security[]>> = {
  required: ['sdes', 'best-effort'],
  optional: ['sdes', 'best-effort', 'plain'],
  off: ['plain'],
};

/** The a=crypto we would answer on this line, for the securities that need one. */
function cryptoFor(line: MediaLine, security: Security): SdesCrypto | undefined | false {
  if (security === 'plain') return isPlainRtpProfile(line.proto) ? undefined : false;
  const profileOk = security === 'sdes' ? isSdesProfile(line.proto) : isPlainRtpProfile(line.proto);
  if (!profileOk || line.crypto.length === 0) return false;
  const choice = chooseCrypto(line.crypto);
  return choice.ok ? choice.crypto : false;
}

/** RFC 3550 11 / RFC 3605 / RFC 5761: the far end's RTCP destination. */
function rtcpTarget(line: MediaLine, remoteAddress: string, mux: boolean): RtcpTarget {
  if (mux) return { address: remoteAddress, port: line.port, mux: true };
  const port = line.rtcpPort ?? (line.port > 0 && line.port < 65535 ? line.port + 1 : 0);
  return { address: line.rtcpAddress ?? remoteAddress, port, mux: false };
}

function isNullAddress(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/**
 * Why `address` cannot be our c= address (a configured media IP), or
 * undefined. Only IP literals: a hostname would be resolved by every peer on
 * its own (RFC 4566 5.7), and our RTP socket binds to an IP family.
 */
export function localAddressProblem(address: string): string | undefined {
  if (isIP(address) === 0) return 'must be an IPv4 or IPv6 address';
  if (address.includes('%')) return 'must not carry a zone id (%…): SDP has no place for it';
  // RFC 3264 8.4: c=0.0.0.0 tells the peer not to send at all.
  if (isNullAddress(address)) return 'must not be the unspecified address (0.0.0.0 or ::)';
  return undefined;
}

function mirror(direction: MediaDirection): MediaDirection {
  return direction === 'sendonly' ? 'recvonly' : direction === 'recvonly' ? 'sendonly' : direction;
}

/** The most both sides allow: sending needs both to allow it, and so does receiving. */
function intersect(a: MediaDirection, b: MediaDirection): MediaDirection {
  const send = allowsSend(a) && allowsSend(b);
  const recv = allowsRecv(a) && allowsRecv(b);
  return send ? (recv ? 'sendrecv' : 'sendonly') : recv ? 'recvonly' : 'inactive';
}

function allowsSend(d: MediaDirection): boolean {
  return d === 'sendrecv' || d === 'sendonly';
}

function allowsRecv(d: MediaDirection): boolean {
  return d === 'sendrecv' || d === 'recvonly';
}

/** Our direction when we must not send (RFC 3264 8.4: c=0.0.0.0 means send neither RTP nor RTCP). */
function withoutSend(direction: MediaDirection): MediaDirection {
  return direction === 'sendrecv' ? 'recvonly' : direction === 'sendonly' ? 'inactive' : direction;
}

/** Keeps Warning text inside a quoted-string: printable ASCII without '"' and '\'. */
function warningText(text: string): string {
  let out = '';
  for (let i = 0; i < text.length && out.length < 200; i++) {
    const c = text.charCodeAt(i);
    out += c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? text[i] : '?';
  }
  return out;
}

function preferenceOf(local: Pick<LocalMedia, 'codecs'>): readonly Codec[] {
  return local.codecs !== undefined && local.codecs.length > 0 ? [...new Set(local.codecs)] : DEFAULT_CODECS;
}

function pickCodec(line: MediaLine, preference: readonly Codec[]): Format | undefined {
  // Our preference decides, not the offer's order.
  for (const codec of preference) {
    const found = line.formats.find((f) => f.codec === codec);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * telephone-event at the codec's clock rate (RFC 4733 2.1), else at 8000
 * (RingCentral pairs telephone-event/8000 with Opus); one at any other rate
 * is not ours (its durations would be in another clock's units).
 */
function pickTelephoneEvent(line: MediaLine, clockRate = 8000): Format | undefined {
  const events = line.formats.filter((f) => f.telephoneEvent);
  return events.find((f) => f.clockRate === clockRate) ?? events.find((f) => f.clockRate === 8000);
}

/** The rtpmap we write for a chosen format: the offer's name, rate and channels (G.711 names normalised). */
function rtpmapOf(format: Format): string {
  const codec = format.codec!;
  if (codec !== 'opus') return `${codec}/8000`;
  return format.channels === undefined
    ? `opus/${format.clockRate}`
    : `opus/${format.clockRate}/${format.channels}`;
}

/** Codec-dependent parts of NegotiatedMedia: clock, working rate, FEC, the far end's Opus parameters. */
function codecMedia(
  format: Format,
  forcedRate: SampleRate | undefined,
): Pick<NegotiatedMedia, 'codec' | 'payloadType' | 'clockRate' | 'sampleRate' | 'fec' | 'opus'> {
  const codec = format.codec!;
  if (codec !== 'opus') {
    return { codec, payloadType: format.pt, clockRate: 8000, sampleRate: 8000, fec: false };
  }
  const opus = parseOpusFmtp(format.fmtp);
  return {
    codec,
    payloadType: format.pt,
    clockRate: format.clockRate,
    sampleRate: opusWorkingRate(opus, forcedRate),
    fec: opus.useInbandFec,
    opus,
  };
}

// ---------------------------------------------------------------------------
// Offer → answer

/**
 * Answers an SDP offer (RFC 3264 6). Picks the first audio m-line with
 * RTP/AVP or RTP/AVPF and a G.711 format we accept (one with a non-zero port
 * before a disabled one), answers PCMU or PCMA by our preference plus
 * telephone-event with the offerer's payload type, and rejects every other
 * m-line with port 0.
 */
export function negotiateAnswer(offerSdp: string, local: LocalMedia): NegotiationResult {
  const parsed = parseSdpText(offerSdp);
  if (!parsed.ok) return badRequest(parsed.reason);
  const preference = preferenceOf(local);
  const policy = local.srtp ?? 'off';

  let chosen = -1;
  let chosenFormat: Format | undefined;
  let chosenCrypto: SdesCrypto | undefined;
  // First pass skips disabled (port 0) streams so an active one wins; within
  // a pass the policy's preferred security wins, then the offer's order.
  for (let pass = 0; pass < 2 && chosen < 0; pass++) {
    for (const security of ACCEPTED[policy]) {
      for (let i = 0; i < parsed.media.length && chosen < 0; i++) {
        const line = parsed.media[i]!;
        if (line.type.toLowerCase() !== 'audio') continue;
        if (pass === 0 && line.port === 0) continue;
        const crypto = cryptoFor(line, security);
        if (crypto === false) continue;
        const format = pickCodec(line, preference);
        if (format !== undefined) {
          chosen = i;
          chosenFormat = format;
          chosenCrypto = crypto;
        }
      }
      if (chosen >= 0) break;
    }
  }
  if (chosen < 0 || chosenFormat === undefined)
    return notAcceptable(...explainRejection(parsed.media, preference, policy));

  const offer = parsed.media[chosen]!;
  const disabled = offer.port === 0;
  if (!disabled && offer.address === undefined) return badRequest('no c= line for the audio stream');
  const remoteAddress = offer.address ?? '0.0.0.0';
  const nullAddress = isNullAddress(remoteAddress);
  const telephoneEvent = pickTelephoneEvent(offer, chosenFormat.clockRate);
  const codecPart = codecMedia(chosenFormat, local.sampleRate);

  let direction = intersect(mirror(offer.direction), local.direction ?? 'sendrecv');
  if (disabled) direction = 'inactive';
  else if (nullAddress) direction = withoutSend(direction);

  const media: NegotiatedMedia = {
    ...codecPart,
    remoteAddress,
    remotePort: offer.port,
    // RFC 7587 6.1: ptime may also come as an Opus fmtp parameter.
    ptime: offer.ptime ?? codecPart.opus?.ptime ?? DEFAULT_PTIME,
    direction,
    // RFC 3264 8.4 (sendonly/inactive), RFC 2543 hold (c=0.0.0.0), 8.2 (port 0).
    onHold: offer.direction === 'sendonly' || offer.direction === 'inactive' || nullAddress || disabled,
  };
  if (telephoneEvent !== undefined) {
    media.telephoneEventPt = telephoneEvent.pt;
    if (telephoneEvent.clockRate !== 8000) media.telephoneEventRate = telephoneEvent.clockRate;
  }
  // RFC 5761 5.1.1: multiplex only when offered and we take it.
  const mux = offer.rtcpMux && local.rtcpMux !== false;
  media.rtcp = rtcpTarget(offer, remoteAddress, mux);
  let cryptoLine: string | undefined;
  if (chosenCrypto !== undefined) {
    // RFC 4568 5.1.2: the answer echoes the chosen tag and suite with our own key.
    const ours = localKeySalt(local.srtpKeySalt);
    cryptoLine = `a=crypto:${formatCrypto(chosenCrypto.tag, chosenCrypto.suite, ours)}`;
    media.srtp = keysFrom(chosenCrypto, ours);
    ours.fill(0);
  }

  const lines = sessionHeader(local);
  for (let i = 0; i < parsed.media.length; i++) {
    const line = parsed.media[i]!;
    if (i !== chosen) {
      // RFC 3264 6: same number and order of m-lines; a rejected stream has
      // port 0 and keeps its media type, transport and at least one format.
      lines.push(`m=${line.type} 0 ${line.proto} ${line.fmts[0]!}`);
      continue;
    }
    // RFC 3264 8.2: a stream offered with port 0 stays port 0 in the answer.
    const port = disabled ? 0 : local.port;
    const pts =
      telephoneEvent === undefined ? `${chosenFormat.pt}` : `${chosenFormat.pt} ${telephoneEvent.pt}`;
    lines.push(`m=${line.type} ${port} ${line.proto} ${pts}`);
    lines.push(`a=rtpmap:${chosenFormat.pt} ${rtpmapOf(chosenFormat)}`);
    if (media.codec === 'opus')
      lines.push(`a=fmtp:${chosenFormat.pt} ${opusFmtp(media.sampleRate ?? 16000)}`);
    if (telephoneEvent !== undefined) {
      // RFC 3264 6.1: answer with the offerer's payload type number.
      lines.push(`a=rtpmap:${telephoneEvent.pt} telephone-event/${telephoneEvent.clockRate}`);
      if (telephoneEvent.fmtp !== undefined) lines.push(`a=fmtp:${telephoneEvent.pt} ${telephoneEvent.fmtp}`);
    }
    if (cryptoLine !== undefined) lines.push(cryptoLine);
    lines.push(...rtcpLines(local, mux));
    if (offer.ptime !== undefined) lines.push(`a=ptime:${offer.ptime}`);
    lines.push(`a=${direction}`);
  }
  return { ok: true, answer: lines.join('\r\n') + '\r\n', media };
}

/** Our RTCP attributes: a=rtcp-mux when muxing, a=rtcp when our RTCP port is not RTP + 1 (RFC 3605). */
function rtcpLines(local: LocalMedia, mux: boolean): string[] {
  if (mux) return ['a=rtcp-mux'];
  const port = local.rtcpPort;
  if (port !== undefined && Number.isInteger(port) && port > 0 && port <= 65535 && port !== local.port + 1) {
    return [`a=rtcp:${port}`];
  }
  return [];
}

/** The negotiated keys (copies), and the parsed far-end key wiped. */
function keysFrom(remote: SdesCrypto, ours: Uint8Array): SrtpKeys {
  const keys = new SrtpKeys({
    suite: remote.suite,
    tag: remote.tag,
    localKeySalt: ours,
    remoteKeySalt: remote.keySalt,
    remoteMki: remote.mki,
    remoteLifetime: remote.lifetime,
  });
  remote.keySalt.fill(0);
  return keys;
}

const DTLS_SRTP =
  'DTLS-SRTP (UDP/TLS/RTP/SAVPF) is not supported; offer RTP/SAVP with a=crypto (SDES, RFC 4568)';

function explainRejection(
  media: readonly MediaLine[],
  preference: readonly Codec[],
  policy: SrtpPolicy,
): [string, WarnCode] {
  const audio = media.filter((m) => m.type.toLowerCase() === 'audio');
  if (audio.length === 0) return ['no audio stream offered', 304];
  const plain = audio.filter((m) => isPlainRtpProfile(m.proto));
  const sdes = audio.filter((m) => isSdesProfile(m.proto));
  const dtls = audio.some((m) => isSecureRtpProfile(m.proto) && !isSdesProfile(m.proto));
  const withCrypto = [...sdes, ...plain].filter((m) => m.crypto.length > 0);
  const keyed = withCrypto.filter((m) => chooseCrypto(m.crypto).ok);
  const cryptoProblem = (): string => {
    const first = withCrypto.map((m) => chooseCrypto(m.crypto)).find((c) => !c.ok);
    return first !== undefined && !first.ok ? first.reason : 'no a=crypto line';
  };
  const transports = (): [string, WarnCode] => [
    `unsupported audio transport ${audio.map((m) => m.proto).join(', ')}`,
    302,
  ];
  // RFC 3261 20.43: 302 "incompatible transport protocol" covers the profile and its keying.
  let candidates: MediaLine[];
  if (policy === 'off') {
    candidates = plain;
    if (candidates.length === 0) {
      if (sdes.length > 0) return [`SRTP is off (--srtp off) but the offer is ${sdes[0]!.proto} only`, 302];
      return dtls ? [DTLS_SRTP, 302] : transports();
    }
  } else if (policy === 'required') {
    candidates = keyed.filter((m) => sdes.includes(m) || plain.includes(m));
    if (candidates.length === 0) {
      if (withCrypto.length > 0 || sdes.length > 0) {
        return [
          `SRTP is required (--srtp required) but no a=crypto of the offer is usable: ${cryptoProblem()}`,
          302,
        ];
      }
      if (dtls) return [`SRTP is required (--srtp required) but ${DTLS_SRTP}`, 302];
      if (plain.length > 0)
        return [`SRTP is required (--srtp required) but the offer is ${plain[0]!.proto}`, 302];
      return transports();
    }
  } else {
    candidates = [...keyed.filter((m) => sdes.includes(m)), ...plain];
    if (candidates.length === 0) {
      if (sdes.length > 0)
        return [`no a=crypto of the ${sdes[0]!.proto} offer is usable: ${cryptoProblem()}`, 302];
      return dtls ? [DTLS_SRTP, 302] : transports();
    }
  }
  const names: string[] = [];
  for (const line of candidates) {
    for (const f of line.formats) if (!names.includes(f.name)) names.push(f.name);
    // fmts that are not RTP payload type numbers
    for (const t of line.fmts) if (asPayloadType(t) === undefined && !names.includes(t)) names.push(t);
  }
  const offered =
    names.length > MAX_NAMED_FORMATS
      ? `${names.slice(0, MAX_NAMED_FORMATS).join(', ')}, ...`
      : names.join(', ');
  return [
    `incompatible media format: offered ${offered}; supported ${preference.map((c) => (c === 'opus' ? 'opus/48000/2' : `${c}/8000`)).join(', ')}`,
    305,
  ];
}

function badRequest(reason: string): NegotiationResult {
  return {
    ok: false,
    status: 400,
    code: 'SDP_PARSE_ERROR',
    reason,
    warning: warningText(reason),
    warnCode: 399,
  };
}

function notAcceptable(reason: string, warnCode: WarnCode): NegotiationResult {
  return {
    ok: false,
    status: 488,
    code: 'SDP_NOT_ACCEPTABLE',
    reason,
    warning: warningText(reason),
    warnCode,
  };
}

function sessionHeader(local: LocalMedia): string[] {
  const ipVersion = local.address.includes(':') ? 'IP6' : 'IP4';
  return [
    'v=0',
    `o=${local.username ?? 'rc-softphone'} ${local.sessionId} ${local.sessionVersion} IN ${ipVersion} ${local.address}`,
    's=rc-softphone',
    `c=IN ${ipVersion} ${local.address}`,
    't=0 0',
  ];
}

// ---------------------------------------------------------------------------
// Our offer → their answer (INVITE without SDP: offer in our 200, answer in the ACK)

/**
 * Our offer: one sendrecv audio stream with our codecs and telephone-event
 * 0-15, a=rtcp-mux (RFC 5761) unless turned off, and by the SRTP policy:
 * `required` offers RTP/SAVP with one a=crypto (AES_CM_128_HMAC_SHA1_80, what
 * RingCentral expects); `optional` offers RTP/AVP with that a=crypto, so a far
 * end that knows SDES answers with a=crypto and one that does not answers plain
 * RTP instead of refusing the call (best-effort SRTP); `off` offers RTP/AVP.
 * The key is in the offer text, which acceptAnswer reads back.
 */
export function createOffer(local: LocalMedia): string {
  const preference = preferenceOf(local);
  const te = local.telephoneEventPt ?? TELEPHONE_EVENT_PT;
  const pts = preference.map((c) => CODECS[c].payloadType);
  const policy = local.srtp ?? 'off';
  const lines = sessionHeader(local);
  lines.push(
    `m=audio ${local.port} ${policy === 'required' ? 'RTP/SAVP' : 'RTP/AVP'} ${pts.join(' ')} ${te}`,
  );
  preference.forEach((codec, i) => {
    const info = CODECS[codec];
    // RFC 7587 7: opus/48000/2 whatever we send; the fmtp says what we really use.
    lines.push(
      `a=rtpmap:${pts[i]!} ${info.encodingName}/${info.clockRate}${info.channels > 1 ? `/${info.channels}` : ''}`,
    );
    if (codec === 'opus') lines.push(`a=fmtp:${pts[i]!} ${opusFmtp(local.sampleRate ?? 16000)}`);
  });
  lines.push(`a=rtpmap:${te} telephone-event/8000`);
  // 0-15: the sixteen keys; we do not act on flash (16).
  lines.push(`a=fmtp:${te} 0-15`);
  if (policy !== 'off') {
    const key = localKeySalt(local.srtpKeySalt);
    lines.push(`a=crypto:${formatCrypto(1, 'AES_CM_128_HMAC_SHA1_80', key)}`);
    key.fill(0);
  }
  lines.push(...rtcpLines(local, local.rtcpMux !== false));
  lines.push(`a=ptime:${DEFAULT_PTIME}`);
  lines.push(`a=${local.direction ?? 'sendrecv'}`);
  return lines.join('\r\n') + '\r\n';
}

/**
 * Checks the answer to our offer (RFC 3264 7) and says what to send where.
 * The answer's m-lines match ours by position (RFC 3264 6); we use the first
 * G.711 format the answer lists that we offered, with the answer's payload type.
 */
export function acceptAnswer(ourOfferSdp: string, answerSdp: string): AnswerAcceptance {
  const ours = parseSdpText(ourOfferSdp);
  if (!ours.ok) return failure('SDP_PARSE_ERROR', `our offer: ${ours.reason}`);
  const theirs = parseSdpText(answerSdp);
  if (!theirs.ok) return failure('SDP_PARSE_ERROR', theirs.reason);
  if (theirs.media.length !== ours.media.length) {
    return failure('SDP_NOT_ACCEPTABLE', 'answer has a different number of m= lines than the offer');
  }
  const index = ours.media.findIndex(
    (m) =>
      m.type.toLowerCase() === 'audio' &&
      (isPlainRtpProfile(m.proto) || isSdesProfile(m.proto)) &&
      m.port !== 0,
  );
  if (index < 0) return failure('SDP_PARSE_ERROR', 'our offer has no audio stream');
  const offered = ours.media[index]!;
  const answer = theirs.media[index]!;
  // RFC 3264 6: an accepted stream keeps the offered media type and transport.
  if (answer.type.toLowerCase() !== 'audio' || answer.proto.toUpperCase() !== offered.proto.toUpperCase()) {
    return failure('SDP_NOT_ACCEPTABLE', 'answer m= lines do not match the offer');
  }
  // In an answer, port 0 means the stream was rejected (RFC 3264 6), not held.
  if (answer.port === 0) return failure('SDP_NOT_ACCEPTABLE', 'the audio stream was rejected');
  const offeredCodecs = new Set(offered.formats.map((f) => f.codec).filter((c) => c !== undefined));
  const format = answer.formats.find((f) => f.codec !== undefined && offeredCodecs.has(f.codec));
  if (format === undefined) {
    const names = answer.formats.map((f) => f.name).join(', ') || answer.fmts.join(', ');
    return failure('SDP_NOT_ACCEPTABLE', `answer has no codec we offered: ${names}`);
  }
  if (answer.address === undefined) return failure('SDP_PARSE_ERROR', 'no c= line for the audio stream');
  const nullAddress = isNullAddress(answer.address);
  let direction = mirror(answer.direction);
  if (nullAddress) direction = withoutSend(direction);
  const chosen = codecMedia(format, forcedRate(ours.media[index]!));
  const media: NegotiatedMedia = {
    ...chosen,
    remoteAddress: answer.address,
    remotePort: answer.port,
    ptime: answer.ptime ?? chosen.opus?.ptime ?? DEFAULT_PTIME,
    direction,
    onHold: answer.direction === 'sendonly' || answer.direction === 'inactive' || nullAddress,
  };
  const te = pickTelephoneEvent(answer, format.clockRate);
  if (te !== undefined && pickTelephoneEvent(offered) !== undefined) {
    media.telephoneEventPt = te.pt;
    if (te.clockRate !== 8000) media.telephoneEventRate = te.clockRate;
  }
  // RFC 5761 5.1.1: muxed only when we offered it and the answer took it.
  media.rtcp = rtcpTarget(answer, answer.address, offered.rtcpMux && answer.rtcpMux);
  const srtp = answeredKeys(offered, answer);
  if (typeof srtp === 'string') return failure('SDP_NOT_ACCEPTABLE', srtp);
  if (srtp !== undefined) media.srtp = srtp;
  return { ok: true, media };
}

/**
 * The keys from the answer's a=crypto (RFC 4568 5.1.2, 7.1.2: exactly one,
 * echoing the tag and suite of one of ours), undefined for plain RTP, or why
 * the answer cannot be used. A best-effort offer (RTP/AVP with a=crypto)
 * answered without a=crypto is plain RTP; an RTP/SAVP one is not acceptable.
 */
function answeredKeys(offered: MediaLine, answer: MediaLine): SrtpKeys | string | undefined {
  const ours = offered.crypto.map(parseCrypto).flatMap((c) => (c.ok ? [c.crypto] : []));
  if (ours.length === 0) return undefined; // we offered no SRTP: any a=crypto in the answer means nothing
  try {
    if (answer.crypto.length === 0) {
      return isSdesProfile(offered.proto)
        ? `the answer to our ${offered.proto} offer has no a=crypto`
        : undefined;
    }
    if (answer.crypto.length > 1)
      return 'the answer has more than one a=crypto (RFC 4568 7.1.2: exactly one)';
    const theirs = parseCrypto(answer.crypto[0]!);
    if (!theirs.ok) return `the answer's ${theirs.reason}`;
    const mine = ours.find((c) => c.tag === theirs.crypto.tag);
    if (mine === undefined) {
      theirs.crypto.keySalt.fill(0);
      return `the answer's a=crypto tag ${theirs.crypto.tag} is not one we offered`;
    }
    if (mine.suite !== theirs.crypto.suite) {
      theirs.crypto.keySalt.fill(0);
      return `the answer's a=crypto:${mine.tag} has ${theirs.crypto.suite}; we offered ${mine.suite}`;
    }
    return keysFrom(theirs.crypto, mine.keySalt);
  } finally {
    for (const c of ours) c.keySalt.fill(0);
  }
}

/** The working rate our own offer announced for Opus (its maxplaybackrate), so the answer keeps it. */
function forcedRate(offered: MediaLine): SampleRate | undefined {
  const opus = offered.formats.find((f) => f.codec === 'opus');
  if (opus === undefined) return undefined;
  return parseOpusFmtp(opus.fmtp).maxPlaybackRate <= 8000 ? 8000 : 16000;
}

function failure(code: SdpFailure['code'], reason: string): SdpFailure {
  return { ok: false, code, reason, warning: warningText(reason), warnCode: 399 };
}
