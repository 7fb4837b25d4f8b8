/**
 * SRTP and SRTCP (RFC 3711) for one call, with SDES keys (RFC 4568):
 * AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32.
 *
 * werift-rtp derives the session keys (RFC 3711 4.3) and does SRTCP through
 * its cipher objects. SRTP's per-packet AES-CM and HMAC-SHA1 run on
 * node:crypto ({@link SrtpCipher}): werift's cost ~7× the whole plain receive
 * path per packet (see srtp-cipher.ts). What werift leaves out, or gets wrong
 * for a long phone call, is done here:
 *
 * - Replay protection (RFC 3711 3.3.2): werift has none. A sliding window of
 *   {@link REPLAY_WINDOW} packet indices per SSRC, for SRTP and SRTCP alike.
 * - The packet index (RFC 3711 3.3.1): werift's rollover counter only moves
 *   when the sequence number passes within 100 of the wrap, so a burst of
 *   loss across the wrap (a couple of seconds of audio) leaves it one cycle
 *   behind and every later packet fails authentication. Here the index is the
 *   RFC's estimate ({@link srtpIndexEstimate}) and the state moves only after
 *   a packet authenticated.
 * - The 32-bit tag: werift knows only 80-bit tags. An _32 tag is the leftmost
 *   32 bits of the same HMAC (RFC 3711 4.2); SRTCP keeps 80 bits under both
 *   suites (RFC 5764 4.1.2 spells it out for this profile; libsrtp does the same).
 * - Header parsing: werift's own parser stops at an RFC 8285 ID 15 element and
 *   then decrypts from the wrong offset; the payload offset here comes from
 *   the extension's length field (RFC 3550 5.3.1).
 *
 * Nothing a remote sends makes these functions throw: every packet comes
 * back as plaintext or as a reason the media path counts ({@link SrtpFailure}).
 * Keys are never logged; close() zeroes the session keys werift derived.
 */
import { ProtectionProfileAes128CmHmacSha1_80, SrtpSession } from 'werift-rtp';
import { ErrorCodes, SoftphoneError } from '../errors.js';
import { srtpIndexEstimate } from './seq.js';
import { SrtpCipher } from './srtp-cipher.js';
import {
  SRTP_KEY_SALT_LENGTH,
  SRTP_MASTER_KEY_LENGTH,
  SRTP_SUITES,
  type SrtpSuite,
  srtpTagLength,
} from './srtp-suites.js';

export {
  generateKeySalt,
  isSrtpSuite,
  SRTP_KEY_SALT_LENGTH,
  SRTP_MASTER_KEY_LENGTH,
  SRTP_MASTER_SALT_LENGTH,
  SRTP_SUITES,
  type SrtpSuite,
  srtpTagLength,
} from './srtp-suites.js';

/** SRTCP's tag is 80 bits under both suites (RFC 5764 4.1.2 for the _32 profile; libsrtp does the same). */
export const SRTCP_TAG_LENGTH = 10;
/** E flag plus the 31-bit SRTCP index (RFC 3711 3.4). */
const SRTCP_INDEX_LENGTH = 4;
const RTP_HEADER_LENGTH = 12;
const RTCP_HEADER_LENGTH = 8;

/**
 * Replay window in packets. RFC 3711 3.3.2 asks for at least 64; 128 is
 * libsrtp's default and covers 2.5 s of 20 ms audio out of order.
 */
export const REPLAY_WINDOW = 128;
/**
 * Sources tracked per direction. Only a packet that authenticated creates
 * one, so only a holder of the key can add them; the cap bounds memory anyway.
 */
const MAX_SOURCES = 16;
/** RFC 3711 3.4: the SRTCP index is 31 bits. */
const SRTCP_INDEX_MOD = 0x8000_0000;

/** Overwrites key material we hold once it is no longer needed. */
export function wipe(buffer: Uint8Array | undefined): void {
  buffer?.fill(0);
}

/**
 * Why a packet was not accepted:
 * - `auth-failed`: the tag did not verify (tampered, wrong key, or a rollover
 *   counter we cannot guess after a very long gap).
 * - `replayed`: an index already received, or older than the replay window.
 * - `malformed`: too short, not version 2, or a header that overruns it.
 * - `closed`: the context was closed (its keys are gone).
 */
export type SrtpFailure = 'auth-failed' | 'replayed' | 'malformed' | 'closed';

export type SrtpResult = { ok: true; packet: Buffer } | { ok: false; reason: SrtpFailure };

export interface SrtpStats {
  rtpProtected: number;
  rtpUnprotected: number;
  rtpAuthFailed: number;
  rtpReplayed: number;
  rtpMalformed: number;
  rtcpProtected: number;
  rtcpUnprotected: number;
  rtcpAuthFailed: number;
  rtcpReplayed: number;
  rtcpMalformed: number;
}

export interface SrtpContextOptions {
  suite: SrtpSuite;
  /** Our master key||salt (30 bytes): what we protect with, as sent in our a=crypto. */
  localKeySalt: Uint8Array;
  /** The far end's master key||salt (30 bytes): what we unprotect with. */
  remoteKeySalt: Uint8Array;
  /**
   * The MKI the far end's a=crypto declared for its key (RFC 4568 6.1: value
   * in `mki-length` octets), which it then puts in every SRTP and SRTCP packet
   * before the tag (RFC 3711 3.1, 3.4). We never declare one for our key.
   */
  remoteMki?: Uint8Array;
  /** Replay window size in packets (at least 64); default {@link REPLAY_WINDOW}. */
  replayWindow?: number;
}

/**
 * RFC 3711 3.3.2 replay list: which of the last `size` indices below the
 * highest one were received. One slot per index modulo size, holding the
 * index it last saw, so no shifting and exact answers inside the window.
 */
export class ReplayWindow {
  readonly size: number;
  readonly #seen: Float64Array;
  #highest = -1;

  constructor(size = REPLAY_WINDOW) {
    if (!Number.isInteger(size) || size < 64 || size > 65536) {
      throw new RangeError(`replay window must be 64..65536 packets, got ${size}`);
    }
    this.size = size;
    this.#seen = new Float64Array(size).fill(-1);
  }

  /** Highest index accepted so far (-1 before any). */
  get highest(): number {
    return this.#highest;
  }

  /** True when `index` may be new: ahead of the highest, or inside the window and not seen. */
  check(index: number): boolean {
    if (index > this.#highest) return true;
    if (this.#highest - index >= this.size) return false; // too old to tell: drop (3.3.2)
    return this.#seen[index % this.size] !== index;
  }

  /** Records an index that authenticated. */
  accept(index: number): void {
    this.#seen[index % this.size] = index;
    if (index > this.#highest) this.#highest = index;
  }
}

/** The structural view of werift's AES-CM cipher object this module uses (SRTCP). */
interface WeriftCipher {
  encryptRTCP(rawRtcp: Buffer, srtcpIndex: number): Buffer;
  decryptRTCP(encrypted: Buffer): [Buffer, unknown];
}

/** The session keys werift derives and keeps (RFC 3711 4.3), zeroed on close. */
interface WeriftContextKeys {
  srtpSessionKey?: Buffer;
  srtpSessionSalt?: Buffer;
  srtpSessionAuthTag?: Buffer;
  srtcpSessionKey?: Buffer;
  srtcpSessionSalt?: Buffer;
  srtcpSessionAuthTag?: Buffer;
  masterKey?: Buffer;
  masterSalt?: Buffer;
  cipher?: unknown;
}

interface ReceiveState {
  /** rollover counter of the highest authenticated packet (ROC) */
  roc: number;
  /** highest authenticated sequence number (s_l) */
  highestSeq: number;
  window: ReplayWindow;
}

interface SendState {
  roc: number;
  highestSeq: number;
}

/**
 * One call's SRTP: protects what we send with our key and unprotects what the
 * far end sends with theirs, for RTP and RTCP alike. Pure: no sockets, no clock.
 */
export class SrtpContext {
  readonly suite: SrtpSuite;
  readonly #tagLength: number;
  readonly #windowSize: number;
  readonly #mki: Buffer | undefined;
  #session: SrtpSession | undefined;
  /** werift's ciphers: SRTCP. */
  #tx: WeriftCipher | undefined;
  #rx: WeriftCipher | undefined;
  /** SRTP's per-packet transforms, from the session keys werift derived. */
  #rtpTx: SrtpCipher | undefined;
  #rtpRx: SrtpCipher | undefined;
  readonly #rtpIn = new Map<number, ReceiveState>();
  readonly #rtpOut = new Map<number, SendState>();
  readonly #rtcpIn = new Map<number, ReplayWindow>();
  readonly #rtcpOut = new Map<number, number>();
  readonly #stats: SrtpStats = {
    rtpProtected: 0,
    rtpUnprotected: 0,
    rtpAuthFailed: 0,
    rtpReplayed: 0,
    rtpMalformed: 0,
    rtcpProtected: 0,
    rtcpUnprotected: 0,
    rtcpAuthFailed: 0,
    rtcpReplayed: 0,
    rtcpMalformed: 0,
  };

  constructor(options: SrtpContextOptions) {
    if (!SRTP_SUITES.includes(options.suite)) {
      throw new SoftphoneError(ErrorCodes.CONFIG_INVALID, `unsupported SRTP suite ${String(options.suite)}`);
    }
    for (const [name, keySalt] of [
      ['local', options.localKeySalt],
      ['remote', options.remoteKeySalt],
    ] as const) {
      if (!(keySalt instanceof Uint8Array) || keySalt.length !== SRTP_KEY_SALT_LENGTH) {
        // Never put the key itself in the message.
        throw new SoftphoneError(
          ErrorCodes.CONFIG_INVALID,
          `the ${name} SRTP master key||salt must be ${SRTP_KEY_SALT_LENGTH} bytes`,
        );
      }
    }
    this.suite = options.suite;
    this.#tagLength = srtpTagLength(options.suite);
    this.#windowSize = options.replayWindow ?? REPLAY_WINDOW;
    const mki = options.remoteMki;
    if (mki !== undefined && (!(mki instanceof Uint8Array) || mki.length < 1 || mki.length > 128)) {
      throw new SoftphoneError(ErrorCodes.CONFIG_INVALID, 'an SRTP MKI is 1 to 128 octets (RFC 4568 6.1)');
    }
    this.#mki = mki === undefined ? undefined : Buffer.from(mki);
    new ReplayWindow(this.#windowSize); // validates the size now rather than on the first packet

    // Copies for werift, wiped once it has derived the session keys (it only
    // reads the master key and salt while deriving, RFC 3711 4.3).
    const localKey = Buffer.from(options.localKeySalt.subarray(0, SRTP_MASTER_KEY_LENGTH));
    const localSalt = Buffer.from(options.localKeySalt.subarray(SRTP_MASTER_KEY_LENGTH));
    const remoteKey = Buffer.from(options.remoteKeySalt.subarray(0, SRTP_MASTER_KEY_LENGTH));
    const remoteSalt = Buffer.from(options.remoteKeySalt.subarray(SRTP_MASTER_KEY_LENGTH));
    try {
      // Both suites share AES-CM and HMAC-SHA1 key derivation; only the tag length differs.
      this.#session = new SrtpSession({
        keys: {
          localMasterKey: localKey,
          localMasterSalt: localSalt,
          remoteMasterKey: remoteKey,
          remoteMasterSalt: remoteSalt,
        },
        profile: ProtectionProfileAes128CmHmacSha1_80,
      });
    } finally {
      for (const b of [localKey, localSalt, remoteKey, remoteSalt]) wipe(b);
    }
    this.#tx = cipherOf(this.#session.localContext);
    this.#rx = cipherOf(this.#session.remoteContext);
    this.#rtpTx = rtpCipherOf(this.#session.localContext);
    this.#rtpRx = rtpCipherOf(this.#session.remoteContext);
  }

  get closed(): boolean {
    return this.#session === undefined;
  }

  /** Counters for the media path's statistics. */
  get stats(): SrtpStats {
    return { ...this.#stats };
  }

  /**
   * Protects one RTP packet of ours (RFC 3711 3.3). The caller never sends
   * two different packets with one SSRC and sequence number in one cycle (a
   * reused index reuses keystream); SendPath numbers packets consecutively.
   * Throws only for our own mistakes: a buffer that is not an RTP packet, a
   * header extension (we send none), or a closed context.
   */
  protectRtp(packet: Uint8Array): Buffer {
    const tx = this.#rtpTx;
    if (tx === undefined) throw new SoftphoneError(ErrorCodes.CLOSED, 'the SRTP context is closed');
    const buf = asBuffer(packet);
    const layout = rtpLayout(buf, buf.length);
    if (layout === undefined || (buf[0]! & 0x10) !== 0) {
      throw new SoftphoneError(ErrorCodes.RTP_INVALID_PACKET, 'cannot protect: not an RTP packet we build');
    }
    const seq = (buf[2]! << 8) | buf[3]!;
    const ssrc = buf.readUInt32BE(8);
    let state = this.#rtpOut.get(ssrc);
    let index: number;
    if (state === undefined) {
      // RFC 3711 3.3.1: the sender's ROC starts at zero.
      index = seq;
      state = { roc: 0, highestSeq: seq };
      this.#remember(this.#rtpOut, ssrc, state);
    } else {
      index = Math.max(0, srtpIndexEstimate(seq, state.highestSeq, state.roc));
    }
    const roc = Math.floor(index / 0x10000);
    // RFC 3711 3.3: encrypt the payload, then the tag over header, ciphertext and ROC.
    const out = Buffer.allocUnsafe(buf.length + this.#tagLength);
    buf.copy(out, 0);
    tx.crypt(out, layout, buf.length, ssrc, index);
    tx.tag(out.subarray(0, buf.length), roc).copy(out, buf.length, 0, this.#tagLength);
    if (roc > state.roc || (roc === state.roc && seq > state.highestSeq)) {
      state.roc = roc;
      state.highestSeq = seq;
    }
    this.#stats.rtpProtected++;
    return out;
  }

  /**
   * Unprotects one SRTP datagram from the far end (RFC 3711 3.3): index
   * estimate, replay check, authentication, decryption, and only then the
   * rollover counter and replay list move. The plaintext RTP packet is a new
   * buffer (padding, when flagged, still in place for the RTP parser to check).
   */
  unprotectRtp(datagram: Uint8Array): SrtpResult {
    const rx = this.#rtpRx;
    if (rx === undefined) return this.#fail('rtp', 'closed');
    let buf = asBuffer(datagram);
    const tagLength = this.#tagLength;
    const mki = this.#mki;
    if (mki !== undefined) {
      // RFC 3711 3.1: the MKI sits between the encrypted portion and the tag,
      // outside what the tag authenticates; one key, so it must be that key's.
      const at = buf.length - tagLength - mki.length;
      if (at < RTP_HEADER_LENGTH) return this.#fail('rtp', 'malformed');
      if (!buf.subarray(at, at + mki.length).equals(mki)) return this.#fail('rtp', 'auth-failed');
      buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + mki.length)]);
    }
    const end = buf.length - tagLength;
    if (end < RTP_HEADER_LENGTH) return this.#fail('rtp', 'malformed');
    const offset = rtpLayout(buf, end);
    if (offset === undefined) return this.#fail('rtp', 'malformed');
    const seq = (buf[2]! << 8) | buf[3]!;
    const ssrc = buf.readUInt32BE(8);
    const state = this.#rtpIn.get(ssrc);
    // RFC 3711 3.3.1: with no state yet, s_l is this packet's SEQ and ROC 0.
    const index = state === undefined ? seq : srtpIndexEstimate(seq, state.highestSeq, state.roc);
    // Before the first cycle, or already received / older than the window (3.3.2).
    if (index < 0 || (state !== undefined && !state.window.check(index)))
      return this.#fail('rtp', 'replayed');
    const roc = Math.floor(index / 0x10000);
    // RFC 3711 3.3: authenticate first (header, ciphertext and the ROC we estimated), then decrypt.
    const tag = rx.tag(buf.subarray(0, end), roc);
    if (!sameTag(tag, buf, end, tagLength)) return this.#fail('rtp', 'auth-failed');
    const plain = Buffer.allocUnsafe(end);
    buf.copy(plain, 0, 0, offset);
    rx.crypt(buf, offset, end, ssrc, index, plain);
    if (state === undefined) {
      const window = new ReplayWindow(this.#windowSize);
      window.accept(index);
      this.#remember(this.#rtpIn, ssrc, { roc, highestSeq: seq, window });
    } else {
      // RFC 3711 3.3.1: s_l and ROC follow the highest authenticated index.
      if (index > state.window.highest) {
        state.roc = roc;
        state.highestSeq = seq;
      }
      state.window.accept(index);
    }
    this.#stats.rtpUnprotected++;
    return { ok: true, packet: plain };
  }

  /**
   * Protects one RTCP compound packet of ours (RFC 3711 3.4): encrypted after
   * the first 8 octets, E flag and 31-bit SRTCP index appended, 80-bit tag.
   */
  protectRtcp(packet: Uint8Array): Buffer {
    const tx = this.#tx;
    if (tx === undefined) throw new SoftphoneError(ErrorCodes.CLOSED, 'the SRTP context is closed');
    const buf = asBuffer(packet);
    if (buf.length < RTCP_HEADER_LENGTH || buf[0]! >> 6 !== 2) {
      throw new SoftphoneError(ErrorCodes.RTP_INVALID_PACKET, 'cannot protect: not an RTCP packet');
    }
    const ssrc = buf.readUInt32BE(4);
    const index = this.#rtcpOut.get(ssrc) ?? 0;
    // RFC 3711 3.4: the index starts at 0 and counts every SRTCP packet sent.
    this.#remember(this.#rtcpOut, ssrc, (index + 1) % SRTCP_INDEX_MOD);
    this.#stats.rtcpProtected++;
    return tx.encryptRTCP(buf, index);
  }

  /** Unprotects one SRTCP datagram (RFC 3711 3.4), with its replay check on the explicit index. */
  unprotectRtcp(datagram: Uint8Array): SrtpResult {
    const rx = this.#rx;
    if (rx === undefined) return this.#fail('rtcp', 'closed');
    let buf = asBuffer(datagram);
    const mki = this.#mki;
    if (mki !== undefined) {
      // RFC 3711 3.4: E, index, MKI, tag.
      const at = buf.length - SRTCP_TAG_LENGTH - mki.length;
      if (at < RTCP_HEADER_LENGTH + SRTCP_INDEX_LENGTH) return this.#fail('rtcp', 'malformed');
      if (!buf.subarray(at, at + mki.length).equals(mki)) return this.#fail('rtcp', 'auth-failed');
      buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + mki.length)]);
    }
    const trailer = buf.length - SRTCP_TAG_LENGTH - SRTCP_INDEX_LENGTH;
    if (trailer < RTCP_HEADER_LENGTH || buf[0]! >> 6 !== 2) return this.#fail('rtcp', 'malformed');
    const ssrc = buf.readUInt32BE(4);
    const index = buf.readUInt32BE(trailer) & 0x7fff_ffff;
    const window = this.#rtcpIn.get(ssrc);
    if (window !== undefined && !window.check(index)) return this.#fail('rtcp', 'replayed');
    let plain: Buffer;
    try {
      [plain] = rx.decryptRTCP(buf);
    } catch (err) {
      return this.#fail('rtcp', isAuthError(err) ? 'auth-failed' : 'malformed');
    }
    if (window === undefined) {
      const fresh = new ReplayWindow(this.#windowSize);
      fresh.accept(index);
      this.#remember(this.#rtcpIn, ssrc, fresh);
    } else {
      window.accept(index);
    }
    this.#stats.rtcpUnprotected++;
    return { ok: true, packet: plain };
  }

  /**
   * Zeroes the session keys werift derived and drops the ciphers; later
   * packets come back as `closed`. Idempotent. (node:crypto's HMAC objects
   * werift created keep their own copy until collected; nothing else does.)
   */
  close(): void {
    const session = this.#session;
    if (session === undefined) return;
    this.#session = undefined;
    this.#tx = undefined;
    this.#rx = undefined;
    this.#rtpTx?.close();
    this.#rtpRx?.close();
    this.#rtpTx = undefined;
    this.#rtpRx = undefined;
    for (const ctx of [session.localContext, session.remoteContext] as WeriftContextKeys[]) {
      for (const key of [
        ctx.srtpSessionKey,
        ctx.srtpSessionSalt,
        ctx.srtpSessionAuthTag,
        ctx.srtcpSessionKey,
        ctx.srtcpSessionSalt,
        ctx.srtcpSessionAuthTag,
        ctx.masterKey,
        ctx.masterSalt,
      ]) {
        wipe(key);
      }
      ctx.cipher = undefined;
    }
    this.#rtpIn.clear();
    this.#rtpOut.clear();
    this.#rtcpIn.clear();
    this.#rtcpOut.clear();
  }

  #fail(kind: 'rtp' | 'rtcp', reason: SrtpFailure): SrtpResult {
    const s = this.#stats;
    if (reason === 'auth-failed') kind === 'rtp' ? s.rtpAuthFailed++ : s.rtcpAuthFailed++;
    else if (reason === 'replayed') kind === 'rtp' ? s.rtpReplayed++ : s.rtcpReplayed++;
    else if (reason === 'malformed') kind === 'rtp' ? s.rtpMalformed++ : s.rtcpMalformed++;
    return { ok: false, reason };
  }

  /** Map insert with a cap: the oldest source goes first. */
  #remember<V>(map: Map<number, V>, ssrc: number, value: V): void {
    if (!map.has(ssrc) && map.size >= MAX_SOURCES) {
      const oldest = map.keys().next();
      if (oldest.done !== true) map.delete(oldest.value);
    }
    map.set(ssrc, value);
  }
}

function cipherOf(context: unknown): WeriftCipher {
  const cipher = (context as { cipher?: Partial<WeriftCipher> } | undefined)?.cipher;
  const methods = ['encryptRTCP', 'decryptRTCP'] as const;
  if (cipher === undefined || methods.some((m) => typeof cipher[m] !== 'function')) {
    // A werift-rtp release that reshaped its cipher: fail at call setup, not per packet.
    throw new SoftphoneError(
      ErrorCodes.CONFIG_INVALID,
      'werift-rtp has no AES-CM cipher of the expected shape',
    );
  }
  return cipher as WeriftCipher;
}

/** Our AES-CM/HMAC-SHA1 transform over the SRTP session keys werift derived for one direction. */
function rtpCipherOf(context: unknown): SrtpCipher {
  const keys = context as WeriftContextKeys;
  const { srtpSessionKey, srtpSessionSalt, srtpSessionAuthTag } = keys;
  if (srtpSessionKey === undefined || srtpSessionSalt === undefined || srtpSessionAuthTag === undefined) {
    throw new SoftphoneError(
      ErrorCodes.CONFIG_INVALID,
      'werift-rtp derived no SRTP session keys of the expected shape',
    );
  }
  return new SrtpCipher({
    encryptionKey: srtpSessionKey,
    salt: srtpSessionSalt,
    authKey: srtpSessionAuthTag,
  });
}

/** The first `length` octets of `tag` against `buf[at, at + length)`, in constant time (no early exit). */
function sameTag(tag: Buffer, buf: Buffer, at: number, length: number): boolean {
  let diff = 0;
  for (let i = 0; i < length; i++) diff |= tag[i]! ^ buf[at + i]!;
  return diff === 0;
}

function isAuthError(err: unknown): boolean {
  return err instanceof Error && err.name === 'SrtpAuthenticationError';
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Offset of the payload of an RTP packet whose header must end by `end`
 * (RFC 3550 5.1, 5.3.1: 12 octets, CSRCs, then the extension by its length
 * field), or undefined when it is not version 2 or overruns.
 */
function rtpLayout(buf: Buffer, end: number): number | undefined {
  if (end < RTP_HEADER_LENGTH || buf[0]! >> 6 !== 2) return undefined;
  let offset = RTP_HEADER_LENGTH + 4 * (buf[0]! & 0x0f);
  if (offset > end) return undefined;
  if ((buf[0]! & 0x10) !== 0) {
    if (offset + 4 > end) return undefined;
    offset += 4 + 4 * ((buf[offset + 2]! << 8) | buf[offset + 3]!);
    if (offset > end) return undefined;
  }
  return offset;
}
