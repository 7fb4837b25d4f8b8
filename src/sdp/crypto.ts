/**
 * SDP Security Descriptions for SRTP (SDES, RFC 4568): the a=crypto
 * attribute, parsed, checked and formatted; choosing our suite from an
 * offer; the keys a negotiation agreed on; and the SRTP policy (--srtp).
 * Pure: no I/O. Key material never appears in a reason, a warning, JSON or
 * util.inspect output.
 *
 *   a=crypto:<tag> <crypto-suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>] [<session-param> ...]
 */
import { timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';
import {
  generateKeySalt,
  isSrtpSuite,
  SRTP_KEY_SALT_LENGTH,
  SRTP_SUITES,
  type SrtpSuite,
} from '../rtp/srtp-suites.js';

/**
 * When we use SRTP (`--srtp`):
 * - `required`: only SRTP calls (RTP/SAVP with a=crypto, or a=crypto on
 *   RTP/AVP); anything else gets 488. What RingCentral's edge expects over TLS.
 * - `optional`: SRTP when the far end offers usable SDES, plain RTP otherwise.
 * - `off`: plain RTP only; a=crypto is ignored and RTP/SAVP-only offers get 488.
 */
export type SrtpPolicy = 'required' | 'optional' | 'off';

export const SRTP_POLICIES: readonly SrtpPolicy[] = ['required', 'optional', 'off'];

export function isSrtpPolicy(value: unknown): value is SrtpPolicy {
  return value === 'required' || value === 'optional' || value === 'off';
}

/**
 * The default for a SIP transport: required on TLS (RingCentral's edge on
 * 5096 expects SRTP, and keys in SDP are only secret over TLS), off elsewhere
 * (RFC 4568 8.3: SDES keys must not cross an unprotected signalling path).
 */
export function defaultSrtpPolicy(transport: string): SrtpPolicy {
  return transport.toLowerCase() === 'tls' ? 'required' : 'off';
}

/** RFC 3711 3.2.1: a master key may protect at most 2^48 SRTP packets. */
const MAX_LIFETIME = 2 ** 48;
/** RFC 4568 9.1: tag = 1*9DIGIT. */
const TAG = /^\d{1,9}$/;
/** RFC 4568 9.1: crypto-suite = 1*(ALPHA / DIGIT / "_"). */
const SUITE = /^[A-Za-z0-9_]+$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_VALUE_LENGTH = 1024;

/** One a=crypto attribute, checked. Holds a key: keep it inside negotiation. */
export interface SdesCrypto {
  tag: number;
  suite: SrtpSuite;
  /** master key || master salt (30 octets) */
  keySalt: Buffer;
  /** RFC 4568 6.1: packets the key may protect; the offerer re-keys with a new offer before then */
  lifetime?: number;
  /** RFC 4568 6.1: MKI value encoded big-endian in `length` octets, in every packet before the tag */
  mki?: Buffer;
}

export type CryptoParse = { ok: true; crypto: SdesCrypto } | { ok: false; reason: string };

/**
 * Parses the value of one a=crypto attribute (after "a=crypto:"). Refuses what
 * we cannot honour rather than half-honouring it: several keys in one line
 * (RFC 4568 6.1: they need MKI-based key switching), key re-derivation
 * (KDR, RFC 4568 6.3.1), and the session parameters that turn encryption or
 * authentication off (6.3.2-6.3.4). WSH, FEC_ORDER and FEC_KEY only concern
 * things we do not use (our window is larger, we do no FEC) and are ignored,
 * as are unknown parameters marked optional with a leading "-" (6.3.7).
 */
export function parseCrypto(value: string): CryptoParse {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_VALUE_LENGTH) {
    return { ok: false, reason: 'malformed a=crypto' };
  }
  const fields = value.trim().split(/[ \t]+/);
  const [tagText, suiteText, keyParams, ...sessionParams] = fields;
  if (tagText === undefined || !TAG.test(tagText))
    return { ok: false, reason: 'a=crypto with a malformed tag' };
  const tag = Number(tagText);
  if (suiteText === undefined || !SUITE.test(suiteText) || keyParams === undefined) {
    return { ok: false, reason: `a=crypto:${tag} is malformed` };
  }
  // Suite names compare case-sensitively in RFC 4568's registry; accept any case on input.
  const suite = suiteText.toUpperCase();
  if (!isSrtpSuite(suite)) return { ok: false, reason: `unsupported crypto-suite ${suiteText}` };
  if (keyParams.includes(';')) {
    return {
      ok: false,
      reason: `a=crypto:${tag} carries several keys (we use one master key per direction)`,
    };
  }
  const key = parseKeyParam(keyParams, tag);
  if (!key.ok) return key;
  for (const param of sessionParams) {
    const problem = sessionParamProblem(param);
    if (problem !== undefined) return { ok: false, reason: `a=crypto:${tag}: ${problem}` };
  }
  return { ok: true, crypto: { tag, suite, ...key.value } };
}

function parseKeyParam(
  param: string,
  tag: number,
): { ok: true; value: Pick<SdesCrypto, 'keySalt' | 'lifetime' | 'mki'> } | { ok: false; reason: string } {
  const colon = param.indexOf(':');
  if (colon < 0 || param.slice(0, colon).toLowerCase() !== 'inline') {
    return { ok: false, reason: `a=crypto:${tag} has no inline: key (the only key method for SRTP)` };
  }
  const [keyText, ...rest] = param.slice(colon + 1).split('|');
  const malformedKey = `a=crypto:${tag} has a malformed key (${SRTP_KEY_SALT_LENGTH} octets of base64 expected)`;
  if (keyText === undefined || !BASE64.test(keyText)) return { ok: false, reason: malformedKey };
  const keySalt = Buffer.from(keyText, 'base64');
  if (keySalt.length !== SRTP_KEY_SALT_LENGTH) return { ok: false, reason: malformedKey };
  const value: Pick<SdesCrypto, 'keySalt' | 'lifetime' | 'mki'> = { keySalt };
  if (rest.length > 2) return { ok: false, reason: `a=crypto:${tag} has a malformed key parameter` };
  for (const part of rest) {
    // RFC 4568 6.1: lifetime ["2^"]1*DIGIT, then MKI "value:length"; either may be left out.
    if (part.includes(':')) {
      if (value.mki !== undefined) return { ok: false, reason: `a=crypto:${tag} has two MKIs` };
      const mki = parseMki(part);
      if (mki === undefined) return { ok: false, reason: `a=crypto:${tag} has a malformed MKI` };
      value.mki = mki;
    } else {
      if (value.lifetime !== undefined || value.mki !== undefined) {
        return { ok: false, reason: `a=crypto:${tag} has a malformed key parameter` };
      }
      const lifetime = parseLifetime(part);
      if (lifetime === undefined) {
        return {
          ok: false,
          reason: `a=crypto:${tag} has a key lifetime we cannot honour (1 to 2^48 packets)`,
        };
      }
      value.lifetime = lifetime;
    }
  }
  return { ok: true, value };
}

function parseLifetime(text: string): number | undefined {
  const power = /^2\^(\d{1,2})$/.exec(text);
  const n = power ? 2 ** Number(power[1]) : /^\d{1,15}$/.test(text) ? Number(text) : Number.NaN;
  return Number.isInteger(n) && n >= 1 && n <= MAX_LIFETIME ? n : undefined;
}

/** RFC 4568 9.1: mki-value ":" mki-length, the value a decimal that fits 1..128 octets. */
function parseMki(text: string): Buffer | undefined {
  const m = /^(\d{1,39}):(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const length = Number(m[2]);
  if (length < 1 || length > 128) return undefined;
  let value = BigInt(m[1]!);
  const out = Buffer.alloc(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return value === 0n ? out : undefined; // the value must fit its length
}

/** Why a session parameter cannot be honoured, or undefined when it is fine to go on. */
function sessionParamProblem(param: string): string | undefined {
  const eq = param.indexOf('=');
  const name = (eq < 0 ? param : param.slice(0, eq)).toUpperCase();
  const value = eq < 0 ? '' : param.slice(eq + 1);
  switch (name) {
    case 'KDR':
      // RFC 4568 6.3.1: 2^n; werift derives the session keys once, which is what KDR=0 (or none) means.
      return value === '0' ? undefined : `key derivation rate KDR=${value.slice(0, 8)} is not supported`;
    case 'UNENCRYPTED_SRTP':
    case 'UNENCRYPTED_SRTCP':
    case 'UNAUTHENTICATED_SRTP':
      return `${name} is not supported (we always encrypt and authenticate)`;
    case 'WSH':
    case 'FEC_ORDER':
    case 'FEC_KEY':
      return undefined;
    default:
      // 6.3.7: an unknown parameter is fatal unless marked optional with "-".
      return param.startsWith('-') ? undefined : `unknown session parameter ${name.slice(0, 24)}`;
  }
}

export type CryptoChoice = { ok: true; crypto: SdesCrypto } | { ok: false; reason: string };

/**
 * Chooses the a=crypto to answer from one m-line's attributes: the first
 * usable line with our most preferred suite (the 80-bit tag before the 32-bit
 * one; RFC 4568 7.1.1 lets the answerer take any line it supports), else the
 * reason the first line was refused.
 */
export function chooseCrypto(values: readonly string[]): CryptoChoice {
  if (values.length === 0) return { ok: false, reason: 'no a=crypto line' };
  const usable: SdesCrypto[] = [];
  const tags = new Set<number>();
  let firstProblem: string | undefined;
  const unsupported: string[] = [];
  for (const value of values) {
    const parsed = parseCrypto(value);
    if (!parsed.ok) {
      firstProblem ??= parsed.reason;
      if (parsed.reason.startsWith('unsupported crypto-suite ')) {
        unsupported.push(parsed.reason.slice('unsupported crypto-suite '.length));
      }
      continue;
    }
    // RFC 4568 5.1: tags are unique within the m-line; a repeated one is invalid.
    if (tags.has(parsed.crypto.tag)) continue;
    tags.add(parsed.crypto.tag);
    usable.push(parsed.crypto);
  }
  for (const suite of SRTP_SUITES) {
    const found = usable.find((c) => c.suite === suite);
    if (found !== undefined) return { ok: true, crypto: found };
  }
  if (unsupported.length === values.length) {
    return {
      ok: false,
      reason: `no supported crypto-suite (offered ${unsupported.slice(0, 4).join(', ')}; supported ${SRTP_SUITES.join(', ')})`,
    };
  }
  return { ok: false, reason: firstProblem ?? 'no usable a=crypto line' };
}

/** The value of our a=crypto attribute (after "a=crypto:"): no lifetime (the 2^48 default), no MKI. */
export function formatCrypto(tag: number, suite: SrtpSuite, keySalt: Uint8Array): string {
  if (!Number.isInteger(tag) || tag < 0 || tag > 999_999_999)
    throw new RangeError('a=crypto tag out of range');
  if (keySalt.length !== SRTP_KEY_SALT_LENGTH) throw new RangeError('SRTP key||salt must be 30 octets');
  return `${tag} ${suite} inline:${Buffer.from(keySalt.buffer, keySalt.byteOffset, keySalt.length).toString('base64')}`;
}

/** Our key for a call: the caller's (the same one on a re-INVITE of the call), else a fresh random one. */
export function localKeySalt(given: Uint8Array | undefined): Buffer {
  if (given === undefined) return generateKeySalt();
  if (given.length !== SRTP_KEY_SALT_LENGTH) throw new RangeError('SRTP key||salt must be 30 octets');
  return Buffer.from(given);
}

const REDACTED = '<redacted>';

/**
 * The SRTP keys one negotiation agreed on, ready for `new SrtpContext(keys)`.
 * A secret: JSON.stringify, util.inspect, String() and template strings show
 * the suite and tag only, so a NegotiatedMedia that reaches a log or an
 * event carries no key. Call wipe() when the call ends.
 */
export class SrtpKeys {
  readonly suite: SrtpSuite;
  /** The a=crypto tag both sides used (RFC 4568 5.1: the answer echoes the offer's). */
  readonly tag: number;
  /** Our master key||salt: what we protect with (sent in our a=crypto). */
  readonly localKeySalt: Buffer;
  /** The far end's master key||salt: what we unprotect with. */
  readonly remoteKeySalt: Buffer;
  /** The MKI the far end puts in its packets, when its a=crypto declared one. */
  readonly remoteMki?: Buffer;
  /** The far end's key lifetime in packets, when declared (it re-keys with a new offer). */
  readonly remoteLifetime?: number;

  constructor(init: {
    suite: SrtpSuite;
    tag: number;
    localKeySalt: Uint8Array;
    remoteKeySalt: Uint8Array;
    remoteMki?: Uint8Array | undefined;
    remoteLifetime?: number | undefined;
  }) {
    this.suite = init.suite;
    this.tag = init.tag;
    this.localKeySalt = Buffer.from(init.localKeySalt);
    this.remoteKeySalt = Buffer.from(init.remoteKeySalt);
    if (init.remoteMki !== undefined) this.remoteMki = Buffer.from(init.remoteMki);
    if (init.remoteLifetime !== undefined) this.remoteLifetime = init.remoteLifetime;
    // Not enumerable: spreads and Object.keys walks of a NegotiatedMedia never copy the keys out.
    for (const field of ['localKeySalt', 'remoteKeySalt', 'remoteMki'] as const) {
      if (field in this) Object.defineProperty(this, field, { enumerable: false });
    }
  }

  /**
   * True when the far end kept its key and suite (a re-INVITE that does not
   * re-key): the receiving SRTP context, its rollover counter and replay
   * window carry on; otherwise make a new one (RFC 4568 7.1.4).
   */
  sameRemoteKey(other: SrtpKeys | undefined): boolean {
    return (
      other !== undefined &&
      other.suite === this.suite &&
      timingSafeEqual(other.remoteKeySalt, this.remoteKeySalt) &&
      (other.remoteMki ?? Buffer.alloc(0)).equals(this.remoteMki ?? Buffer.alloc(0))
    );
  }

  /** Overwrites both keys; the SrtpContext made from them keeps its own derived keys until its close(). */
  wipe(): void {
    this.localKeySalt.fill(0);
    this.remoteKeySalt.fill(0);
  }

  toJSON(): { suite: SrtpSuite; tag: number; keys: string } {
    return { suite: this.suite, tag: this.tag, keys: REDACTED };
  }

  toString(): string {
    return `SrtpKeys(${this.suite}, tag ${this.tag}, keys ${REDACTED})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
