/**
 * HmacSha1, SRTP's tag in JavaScript: RFC 2202's known answers, and
 * node:crypto's HMAC for every message length across several blocks
 * (each padding case: the counter and the length in the last block or
 * spilling into another), keys of every length SRTP could hand it.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HmacSha1 } from '../../src/rtp/hmac-sha1.js';

/** HMAC(key, message || counter) through HmacSha1. */
function ours(key: Uint8Array, message: Uint8Array, counter: number): string {
  const out = Buffer.alloc(20);
  new HmacSha1(key).digestWithCounter(message, counter, out);
  return out.toString('hex');
}

/** The counter as the 4 octets HmacSha1 appends. */
const octets = (counter: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(counter >>> 0);
  return b;
};

describe('HmacSha1', () => {
  it('RFC 2202 test cases 1, 2 and 3 (the message split before its last four octets, as M || ROC), and a 64-octet key', () => {
    for (const [key, data, digest] of [
      [Buffer.alloc(20, 0x0b), Buffer.from('Hi There'), 'b617318655057264e28bc0b6fb378c8ef146be00'],
      [
        Buffer.from('Jefe'),
        Buffer.from('what do ya want for nothing?'),
        'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79',
      ],
      [Buffer.alloc(20, 0xaa), Buffer.alloc(50, 0xdd), '125d7342b9ac11cd91a39af48aa17b4f63f175d3'],
      [
        Buffer.alloc(64, 0xaa), // RFC 2202 case 6 has 80 octets (hashed first); 64 is the longest we take
        Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'),
        createHmac('sha1', Buffer.alloc(64, 0xaa))
          .update('Test Using Larger Than Block-Size Key - Hash Key First')
          .digest('hex'),
      ],
    ] as const) {
      const n = data.length - 4;
      expect(ours(key, data.subarray(0, n), data.readUInt32BE(n))).toBe(digest);
    }
  });

  it('equals node:crypto’s HMAC-SHA1 for every length 0…300 and keys of 0, 20 and 64 octets, counters to 2^32 − 1', () => {
    for (const keyLength of [0, 20, 64]) {
      const key = randomBytes(keyLength);
      const hmac = new HmacSha1(key);
      const out = Buffer.alloc(24);
      for (let n = 0; n <= 300; n++) {
        const message = randomBytes(n);
        const counter = [0, 1, 0x12345678, 0xffffffff][n % 4]!;
        hmac.digestWithCounter(message, counter, out, 4);
        const expected = createHmac('sha1', key).update(message).update(octets(counter)).digest();
        expect(out.subarray(4).equals(expected), `key ${keyLength}, length ${n}`).toBe(true);
      }
    }
  });

  it('reads a message that is a view into a larger buffer, and a long one (1500 octets)', () => {
    const key = randomBytes(20);
    const big = randomBytes(1600);
    const view = big.subarray(37, 37 + 1500);
    expect(ours(key, view, 7)).toBe(createHmac('sha1', key).update(view).update(octets(7)).digest('hex'));
  });

  it('refuses a key longer than a block, and forgets its key when closed', () => {
    expect(() => new HmacSha1(Buffer.alloc(65))).toThrow(RangeError);
    const key = randomBytes(20);
    const hmac = new HmacSha1(key);
    const before = Buffer.alloc(20);
    hmac.digestWithCounter(Buffer.from('x'), 0, before);
    hmac.close();
    const after = Buffer.alloc(20);
    hmac.digestWithCounter(Buffer.from('x'), 0, after);
    expect(after.equals(before)).toBe(false);
  });
});
