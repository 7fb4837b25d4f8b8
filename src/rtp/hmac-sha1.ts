/**
 * HMAC-SHA1 (RFC 2104 over FIPS 180-4's SHA-1) for SRTP's authentication
 * tag, RFC 3711 4.2.1: HMAC(k_a, M || ROC), in JavaScript.
 *
 * Why not node:crypto, which SrtpCipher used first: at SRTP's sizes (a
 * 20 ms packet is ~180 octets, four SHA-1 blocks with HMAC's two passes)
 * nearly all of a digest's cost is the call into OpenSSL, not the hashing:
 * two one-shot digests took ~2.4 µs a packet, a Hmac object ~2.2 µs, and
 * @noble/hashes' HMAC with its key state cloned ~1.8 µs. This does only what
 * SRTP needs: the key's inner and outer states are computed once per
 * session (the first block of each pass is always the padded key), so a
 * packet costs its own blocks plus one, ~0.8 µs for 172 octets. The rounds
 * use 32-bit integer operations only, with no branch or table lookup on the
 * data. Checked against FIPS 180-4's and RFC 2202's vectors and against
 * node:crypto for every length up to several blocks
 * (test/rtp/hmac-sha1.test.ts), and end to end against libsrtp.
 */

/** SHA-1's block, and HMAC's padded key, in octets. */
const BLOCK = 64;
/** The digest, in octets. */
export const SHA1_DIGEST_LENGTH = 20;
/** FIPS 180-4 5.3.1: SHA-1's initial hash value. */
const INITIAL = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0] as const;
/** Longest message: its length in bits must fit the 32 low bits of SHA-1's length field. */
const MAX_MESSAGE = 2 ** 28;

/** The message schedule of one block (shared: nothing here is reentrant). */
const schedule = new Int32Array(80);

/** FIPS 180-4 6.1.2: folds the block at `offset` of `m` into the hash value `h`. */
function compress(h: Int32Array, m: Uint8Array, offset: number): void {
  const w = schedule;
  for (let i = 0; i < 16; i++) {
    const j = offset + i * 4;
    w[i] = (m[j]! << 24) | (m[j + 1]! << 16) | (m[j + 2]! << 8) | m[j + 3]!;
  }
  for (let i = 16; i < 80; i++) {
    const x = w[i - 3]! ^ w[i - 8]! ^ w[i - 14]! ^ w[i - 16]!;
    w[i] = (x << 1) | (x >>> 31);
  }
  let a = h[0]!;
  let b = h[1]!;
  let c = h[2]!;
  let d = h[3]!;
  let e = h[4]!;
  // The four rounds of 20 steps (Ch, Parity, Maj, Parity); every sum is exact in a double before `| 0`.
  for (let i = 0; i < 20; i++) {
    const t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w[i]! + 0x5a827999) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  for (let i = 20; i < 40; i++) {
    const t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w[i]! + 0x6ed9eba1) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  for (let i = 40; i < 60; i++) {
    const t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w[i]! + 0x8f1bbcdc) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  for (let i = 60; i < 80; i++) {
    const t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w[i]! + 0xca62c1d6) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  h[0] = (h[0]! + a) | 0;
  h[1] = (h[1]! + b) | 0;
  h[2] = (h[2]! + c) | 0;
  h[3] = (h[3]! + d) | 0;
  h[4] = (h[4]! + e) | 0;
}

function writeWords(h: Int32Array, out: Uint8Array, offset: number): void {
  for (let i = 0; i < 5; i++) {
    const v = h[i]!;
    const j = offset + i * 4;
    out[j] = v >>> 24;
    out[j + 1] = v >>> 16;
    out[j + 2] = v >>> 8;
    out[j + 3] = v;
  }
}

/** HMAC-SHA1 with one key: the padded key's two blocks hashed once, here. */
export class HmacSha1 {
  /** The hash value after the inner pass's first block, (K XOR ipad) ... */
  readonly #inner = new Int32Array(5);
  /** ... and after the outer pass's, (K XOR opad). */
  readonly #outer = new Int32Array(5);
  readonly #h = new Int32Array(5);
  /** The message's last, padded block or two. */
  readonly #tail = new Uint8Array(2 * BLOCK);
  /** The outer pass's second block: the inner digest, padded. */
  readonly #second = new Uint8Array(BLOCK);

  /** `key` up to 64 octets (SRTP's k_a is 20); longer keys are hashed first in RFC 2104, which SRTP never needs. */
  constructor(key: Uint8Array) {
    if (key.length > BLOCK) throw new RangeError('HMAC-SHA1 keys longer than 64 octets are not supported');
    const pad = new Uint8Array(BLOCK);
    for (const [state, byte] of [
      [this.#inner, 0x36],
      [this.#outer, 0x5c],
    ] as const) {
      for (let i = 0; i < BLOCK; i++) pad[i] = (key[i] ?? 0) ^ byte;
      state.set(INITIAL);
      compress(state, pad, 0);
    }
    pad.fill(0);
    schedule.fill(0);
    // The outer pass hashes 64 + 20 octets: its second block's padding never changes.
    this.#second[SHA1_DIGEST_LENGTH] = 0x80;
    const bits = (BLOCK + SHA1_DIGEST_LENGTH) * 8;
    this.#second[BLOCK - 2] = bits >>> 8;
    this.#second[BLOCK - 1] = bits & 0xff;
  }

  /**
   * HMAC(key, message || counter), the counter as 4 octets in network order
   * (RFC 3711 4.2.1's M || ROC), into `out` at `offset` (20 octets).
   */
  digestWithCounter(message: Uint8Array, counter: number, out: Uint8Array, offset = 0): void {
    const n = message.length;
    if (n > MAX_MESSAGE) throw new RangeError('HMAC-SHA1: message too long');
    const h = this.#h;
    h.set(this.#inner);
    // Whole blocks straight from the message.
    let from = 0;
    for (; from + BLOCK <= n; from += BLOCK) compress(h, message, from);
    // The rest, the counter, 0x80, zeros and the length in bits (key block included).
    const tail = this.#tail;
    const rest = n - from;
    for (let i = 0; i < rest; i++) tail[i] = message[from + i]!;
    tail[rest] = counter >>> 24;
    tail[rest + 1] = counter >>> 16;
    tail[rest + 2] = counter >>> 8;
    tail[rest + 3] = counter;
    tail[rest + 4] = 0x80;
    const end = rest + 4 + 1 + 8 <= BLOCK ? BLOCK : 2 * BLOCK;
    tail.fill(0, rest + 5, end - 4);
    const bits = (BLOCK + n + 4) * 8;
    tail[end - 4] = bits >>> 24;
    tail[end - 3] = bits >>> 16;
    tail[end - 2] = bits >>> 8;
    tail[end - 1] = bits;
    compress(h, tail, 0);
    if (end > BLOCK) compress(h, tail, BLOCK);
    // The outer pass: (K XOR opad) done, then the inner digest.
    writeWords(h, this.#second, 0);
    h.set(this.#outer);
    compress(h, this.#second, 0);
    writeWords(h, out, offset);
  }

  /** Zeroes what the key left here. */
  close(): void {
    this.#inner.fill(0);
    this.#outer.fill(0);
    this.#h.fill(0);
    this.#tail.fill(0);
    this.#second.fill(0, 0, SHA1_DIGEST_LENGTH);
    schedule.fill(0);
  }
}
