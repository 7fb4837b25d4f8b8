/**
 * The per-packet transforms of SRTP (RFC 3711) for one direction of one
 * session: AES in counter mode (4.1.1) on node:crypto (OpenSSL) and the
 * HMAC-SHA1 tag (4.2.1), from the session keys the key derivation gave.
 *
 * Why not werift-rtp's cipher, which SrtpContext used first: it builds a new
 * AES-CTR cipher and copies the packet several times for every packet: about
 * 7 µs per unprotect on the (loaded) project machine against 1.1 µs for the
 * whole plain receive path (bench/media-path.ts), where issue 12 wants SRTP
 * to add under 25 % to a call's media cost. Nearly all of a call into
 * OpenSSL from Node.js is the call itself (~1.5 µs for one packet's AES or
 * one SHA-1, hardly more for sixteen packets'), so here:
 * - AES-CM's keystream is AES_k(IV + j) (RFC 3711 4.1.1), which depends on
 *   the SSRC and packet index only: one AES-ECB object per session makes the
 *   counter blocks of the next 16 packets of a stream in one call, and each
 *   packet XORs its part;
 * - the tag is HMAC-SHA1 in JavaScript with the key's states computed once
 *   (hmac-sha1.ts): 0.8 µs for a 20 ms packet against 2.4 µs for the two
 *   one-shot digests through node:crypto it replaced.
 * Unprotect: see bench/media-path.ts.
 * Still byte for byte libsrtp's and werift's (test/rtp/srtp-cipher.test.ts,
 * test/interop/libsrtp/).
 * werift-rtp still derives the session keys (4.3) and does SRTCP, a few
 * packets a call.
 */
import { type Cipher, createCipheriv } from 'node:crypto';
import { HmacSha1, SHA1_DIGEST_LENGTH } from './hmac-sha1.js';

/** AES block size: the keystream comes in 16-octet blocks. */
const BLOCK = 16;
/** RFC 3711 4.3.3: the session salt is 112 bits. */
const SALT_LENGTH = 14;

/**
 * Packets whose keystream is made in one call into OpenSSL. The keystream
 * depends only on the SSRC and the packet index (4.1.1), and indices come in
 * sequence, so the next packets' is made ahead: one call costs about as much
 * for 16 packets' blocks as for one packet's (~1.5 µs, nearly all of it the
 * call itself).
 */
const BATCH_PACKETS = 16;
/** Widest packet (in AES blocks) made ahead: an MTU's worth; longer ones get their own keystream. */
const BATCH_MAX_BLOCKS = 94;
/** SSRCs per direction with a batch (a stream that changed SSRC, a conference's few). */
const BATCH_SSRCS = 4;

interface KeystreamBatch {
  /** The index of the batch's first packet. */
  first: number;
  /** Blocks per packet in the batch. */
  blocks: number;
  /** The widest packet asked for while this batch was current: the next batch's width. */
  widest: number;
  keystream: Buffer;
}

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
  /** HMAC-SHA1 with k_a (RFC 3711 4.2.1), and the buffer its digest goes to. */
  #hmac: HmacSha1 | undefined;
  readonly #digest = Buffer.alloc(SHA1_DIGEST_LENGTH);
  /** k_s in the top 112 bits of a block (4.1.1: k_s · 2^16). */
  readonly #saltBlock = Buffer.alloc(BLOCK);
  /** The counter blocks of one call into OpenSSL (up to 16 packets'); viewed as words to lay them out. */
  #counters = Buffer.alloc(BLOCK * 12);
  #words = new Uint32Array(this.#counters.buffer, this.#counters.byteOffset, this.#counters.length / 4);
  /** The keystream made ahead, per SSRC (in insertion order, to drop the oldest). */
  readonly #batches = new Map<number, KeystreamBatch>();

  constructor(keys: SrtpSessionKeys) {
    if (
      keys.encryptionKey.length !== 16 ||
      keys.salt.length !== SALT_LENGTH ||
      keys.authKey.length !== SHA1_DIGEST_LENGTH
    )
      throw new RangeError('SRTP session keys: 16-octet key, 14-octet salt, 20-octet authentication key');
    // ECB over counter blocks is CTR with the counter ours to lay out (4.1.1's IV is not a plain 128-bit counter start).
    const aes = createCipheriv('aes-128-ecb', keys.encryptionKey, null);
    aes.setAutoPadding(false);
    this.#aes = aes;
    this.#hmac = new HmacSha1(keys.authKey);
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
    if (this.#aes === undefined) throw new Error('the SRTP cipher is closed');
    const length = to - from;
    if (length <= 0) return;
    const blocks = Math.ceil(length / BLOCK);
    let keystream: Buffer;
    let at = 0;
    const batch = this.#batchFor(ssrc, index, blocks);
    if (batch !== undefined) {
      keystream = batch.keystream;
      at = (index - batch.first) * batch.blocks * BLOCK;
    } else {
      keystream = this.#keystream(ssrc, index, 1, blocks);
    }
    for (let k = 0; k < length; k++) into[from + k] = buf[from + k]! ^ keystream[at + k]!;
  }

  /**
   * The batch holding this packet's keystream, made now when the packet is
   * the next one after the last batch (or the first); undefined for a packet
   * out of sequence or wider than its batch, which gets its own.
   */
  #batchFor(ssrc: number, index: number, blocks: number): KeystreamBatch | undefined {
    if (blocks > BATCH_MAX_BLOCKS) return undefined;
    let batch = this.#batches.get(ssrc);
    if (batch !== undefined) {
      const k = index - batch.first;
      if (k >= 0 && k < BATCH_PACKETS) {
        if (blocks <= batch.blocks) return batch;
        batch.widest = Math.max(batch.widest, blocks);
        return undefined;
      }
      // Before the batch: a late packet (reordered, or a retransmission) gets its own.
      if (k < 0) return undefined;
    }
    // As wide as the widest packet of the batch before (Opus varies), within bounds.
    const width = Math.min(BATCH_MAX_BLOCKS, Math.max(blocks, batch?.widest ?? 0));
    const keystream = this.#keystream(ssrc, index, BATCH_PACKETS, width);
    if (batch === undefined) {
      if (this.#batches.size >= BATCH_SSRCS) {
        const [oldest, dropped] = this.#batches.entries().next().value as [number, KeystreamBatch];
        dropped.keystream.fill(0);
        this.#batches.delete(oldest);
      }
      batch = { first: index, blocks: width, widest: width, keystream };
      this.#batches.set(ssrc, batch);
    } else {
      batch.keystream.fill(0);
      batch.first = index;
      batch.blocks = width;
      batch.widest = width;
      batch.keystream = keystream;
    }
    return batch;
  }

  /** The keystream of `count` packets from `first`, `blocks` blocks each, in one call into OpenSSL. */
  #keystream(ssrc: number, first: number, count: number, blocks: number): Buffer {
    const size = count * blocks * BLOCK;
    if (this.#counters.length < size) {
      this.#counters = Buffer.alloc(size);
      this.#words = new Uint32Array(
        this.#counters.buffer,
        this.#counters.byteOffset,
        this.#counters.length / 4,
      );
    }
    const c = this.#counters;
    const w = this.#words;
    for (let p = 0; p < count; p++) {
      const index = first + p;
      const base = p * blocks * BLOCK;
      // IV = (k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16); block j is AES(IV + j).
      this.#saltBlock.copy(c, base);
      c.writeUInt32BE((c.readUInt32BE(base + 4) ^ ssrc) >>> 0, base + 4);
      c.writeUInt32BE((c.readUInt32BE(base + 8) ^ Math.floor(index / 0x10000)) >>> 0, base + 8);
      c.writeUInt16BE(c.readUInt16BE(base + 12) ^ (index & 0xffff), base + 12);
      // The other blocks: the same first 14 octets (copied as words: byte order is kept), then j.
      const w0 = base >> 2;
      for (let j = 1; j < blocks; j++) {
        const at = w0 + j * 4;
        w[at] = w[w0]!;
        w[at + 1] = w[w0 + 1]!;
        w[at + 2] = w[w0 + 2]!;
        w[at + 3] = w[w0 + 3]!;
        c[base + j * BLOCK + 14] = j >>> 8;
        c[base + j * BLOCK + 15] = j & 0xff;
      }
    }
    return (this.#aes as Cipher).update(c.subarray(0, size));
  }

  /**
   * HMAC-SHA1(k_a, M || ROC) over `authenticated` (4.2.1), all 20 octets: the
   * caller keeps the tag's length. The buffer is this cipher's and the next
   * call overwrites it.
   */
  tag(authenticated: Uint8Array, roc: number): Buffer {
    const hmac = this.#hmac;
    if (hmac === undefined) throw new Error('the SRTP cipher is closed');
    hmac.digestWithCounter(authenticated, roc >>> 0, this.#digest);
    return this.#digest;
  }

  /** Zeroes the keys we hold and drops the AES object (OpenSSL's copy goes with it). */
  close(): void {
    this.#aes = undefined;
    this.#hmac?.close();
    this.#hmac = undefined;
    this.#digest.fill(0);
    this.#saltBlock.fill(0);
    this.#counters.fill(0);
    for (const batch of this.#batches.values()) batch.keystream.fill(0);
    this.#batches.clear();
  }
}
