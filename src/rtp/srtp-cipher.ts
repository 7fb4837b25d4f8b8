/**
 * The per-packet transforms of SRTP (RFC 3711) for one direction of one
 * session: AES in counter mode (4.1.1) and the HMAC-SHA1 tag (4.2.1), on
 * node:crypto (OpenSSL), from the session keys the key derivation gave.
 *
 * Why not werift-rtp's cipher, which SrtpContext used first: it builds a new
 * AES-CTR cipher and copies the packet several times for every packet: about
 * 7 µs per unprotect on the (loaded) project machine against 1.1 µs for the
 * whole plain receive path (bench/media-path.ts), where issue 12 wants SRTP
 * to add under 25 % to a call's media cost. Here one AES-ECB object per
 * session encrypts all of a packet's counter blocks in one call (that is what
 * AES-CM is: the keystream is AES_k(IV + j), RFC 3711 4.1.1), and the tag is
 * the HMAC is RFC 2104 by hand over node:crypto's one-shot digest (no Hash
 * object per packet: creating one was most of the HMAC's cost), with one
 * copy of the packet. Unprotect 3.8-4.5 µs against 5.9-7.7 µs for the first
 * node:crypto version and 7.0-7.6 µs for werift's, on the same loaded
 * machine. What is left is node:crypto's cost per call into OpenSSL, not the
 * cryptography.
 * werift-rtp still derives the session keys (4.3) and does SRTCP, a few
 * packets a call.
 */
import crypto, { type Cipher, createCipheriv, createHmac } from 'node:crypto';

/** AES block size: the keystream comes in 16-octet blocks. */
const BLOCK = 16;
/** RFC 3711 4.3.3: the session salt is 112 bits. */
const SALT_LENGTH = 14;
/** RFC 3711 4.2.1: HMAC-SHA1's output, of which the tag keeps the leftmost 80 or 32 bits. */
export const HMAC_SHA1_LENGTH = 20;
/** SHA-1's block: HMAC pads its key to it (RFC 2104). */
const SHA1_BLOCK = 64;

/**
 * node:crypto's one-shot digest (Node 20.12+): no Hash object per call, which
 * is most of an HMAC's cost on 200-byte packets. Older Nodes use createHmac.
 */
const oneShotHash = (crypto as unknown as { hash?: (alg: string, data: Uint8Array, out: 'buffer') => Buffer })
  .hash;

export interface SrtpSessionKeys {
  /** k_e: the 128-bit AES key. */
  encryptionKey: Uint8Array;
  /** k_s: the 112-bit salt. */
  salt: Uint8Array;
  /** k_a: the 160-bit authentication key. */
  authKey: Uint8Array;
}

export class SrtpCipher {
  #aes: Cipher | undefined;
  /** HMAC (RFC 2104) by hand over the one-shot digest: (k_a XOR ipad) then the message, ... */
  #inner = Buffer.alloc(SHA1_BLOCK + 1500);
  /** ... and (k_a XOR opad) then the inner digest. */
  readonly #outer = Buffer.alloc(SHA1_BLOCK + HMAC_SHA1_LENGTH);
  /** k_a itself, for createHmac where there is no one-shot digest. */
  #authKey: Buffer | undefined;
  /** k_s in the top 112 bits of a block (4.1.1: k_s · 2^16). */
  readonly #saltBlock = Buffer.alloc(BLOCK);
  /** The counter blocks of one packet, encrypted in one call; viewed as words to lay them out. */
  #counters = Buffer.alloc(BLOCK * 12);
  #words = new Uint32Array(this.#counters.buffer, this.#counters.byteOffset, this.#counters.length / 4);
  readonly #roc = Buffer.alloc(4);

  constructor(keys: SrtpSessionKeys) {
    if (
      keys.encryptionKey.length !== 16 ||
      keys.salt.length !== SALT_LENGTH ||
      keys.authKey.length !== HMAC_SHA1_LENGTH
    )
      throw new RangeError('SRTP session keys: 16-octet key, 14-octet salt, 20-octet authentication key');
    // ECB over counter blocks is CTR with the counter ours to lay out (4.1.1's IV is not a plain 128-bit counter start).
    const aes = createCipheriv('aes-128-ecb', keys.encryptionKey, null);
    aes.setAutoPadding(false);
    this.#aes = aes;
    for (let i = 0; i < SHA1_BLOCK; i++) {
      const k = keys.authKey[i] ?? 0;
      this.#inner[i] = k ^ 0x36;
      this.#outer[i] = k ^ 0x5c;
    }
    this.#authKey = Buffer.from(keys.authKey);
    this.#saltBlock.set(keys.salt, 0);
  }

  get closed(): boolean {
    return this.#aes === undefined;
  }

  /**
   * XORs the AES-CM keystream for packet `index` (48 bits, 3.3.1) of `ssrc`
   * into `buf[from, to)`, in place: encryption and decryption alike. With
   * `into`, the result goes there instead (same offsets) and `buf` is left as it was.
   */
  crypt(buf: Buffer, from: number, to: number, ssrc: number, index: number, into: Buffer = buf): void {
    const aes = this.#aes;
    if (aes === undefined) throw new Error('the SRTP cipher is closed');
    const length = to - from;
    if (length <= 0) return;
    const blocks = Math.ceil(length / BLOCK);
    if (this.#counters.length < blocks * BLOCK) {
      this.#counters = Buffer.alloc(blocks * BLOCK);
      this.#words = new Uint32Array(
        this.#counters.buffer,
        this.#counters.byteOffset,
        this.#counters.length / 4,
      );
    }
    const c = this.#counters;
    // IV = (k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16); block j is AES(IV + j).
    this.#saltBlock.copy(c, 0);
    c.writeUInt32BE((c.readUInt32BE(4) ^ ssrc) >>> 0, 4);
    c.writeUInt32BE((c.readUInt32BE(8) ^ Math.floor(index / 0x10000)) >>> 0, 8);
    c.writeUInt16BE(c.readUInt16BE(12) ^ (index & 0xffff), 12);
    // The other blocks: the same first 14 octets (copied as words: byte order is kept), then j.
    const w = this.#words;
    for (let j = 1; j < blocks; j++) {
      const at = j * 4;
      w[at] = w[0]!;
      w[at + 1] = w[1]!;
      w[at + 2] = w[2]!;
      w[at + 3] = w[3]!;
      c[j * BLOCK + 14] = j >>> 8;
      c[j * BLOCK + 15] = j & 0xff;
    }
    const keystream = aes.update(c.subarray(0, blocks * BLOCK));
    for (let k = 0; k < length; k++) into[from + k] = buf[from + k]! ^ keystream[k]!;
  }

  /** HMAC-SHA1(k_a, M || ROC) over `authenticated` (4.2.1), all 20 octets: the caller keeps the tag's length. */
  tag(authenticated: Uint8Array, roc: number): Buffer {
    const key = this.#authKey;
    if (key === undefined) throw new Error('the SRTP cipher is closed');
    if (oneShotHash === undefined) {
      this.#roc.writeUInt32BE(roc >>> 0, 0);
      return createHmac('sha1', key).update(authenticated).update(this.#roc).digest();
    }
    const n = authenticated.length;
    if (this.#inner.length < SHA1_BLOCK + n + 4) {
      const grown = Buffer.alloc(SHA1_BLOCK + n + 4);
      this.#inner.copy(grown, 0, 0, SHA1_BLOCK);
      this.#inner = grown;
    }
    const inner = this.#inner;
    inner.set(authenticated, SHA1_BLOCK);
    inner.writeUInt32BE(roc >>> 0, SHA1_BLOCK + n);
    oneShotHash('sha1', inner.subarray(0, SHA1_BLOCK + n + 4), 'buffer').copy(this.#outer, SHA1_BLOCK);
    return oneShotHash('sha1', this.#outer, 'buffer');
  }

  /** Zeroes the keys we hold and drops the AES object (OpenSSL's copy goes with it). */
  close(): void {
    this.#aes = undefined;
    this.#authKey?.fill(0);
    this.#authKey = undefined;
    this.#inner.fill(0);
    this.#outer.fill(0);
    this.#saltBlock.fill(0);
    this.#counters.fill(0);
  }
}
