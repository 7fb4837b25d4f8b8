/**
 * SrtpCipher, SRTP's per-packet AES-CM and HMAC-SHA1 on node:crypto, against
 * RFC 3711 Appendix B.2 and against werift-rtp's cipher (which it replaced on
 * the packet path for speed): the same bytes for the same keys.
 */
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ProtectionProfileAes128CmHmacSha1_80, RtpHeader, SrtpSession } from 'werift-rtp';
import { serializeRtp } from '../../src/rtp/packet.js';
import { SrtpCipher } from '../../src/rtp/srtp-cipher.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

describe('SrtpCipher', () => {
  it('RFC 3711 B.2: the AES-CM keystream, first and last blocks of the 1044512-octet segment', () => {
    const cipher = new SrtpCipher({
      encryptionKey: hex('2B7E151628AED2A6ABF7158809CF4F3C'),
      salt: hex('F0F1F2F3F4F5F6F7F8F9FAFBFCFD'), // "already shifted": SSRC and index zero
      authKey: Buffer.alloc(20),
    });
    const length = 1_044_512;
    const keystream = Buffer.alloc(length);
    cipher.crypt(keystream, 0, length, 0, 0);
    expect(keystream.subarray(0, 48).toString('hex').toUpperCase()).toBe(
      'E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB41E95B3BB0A2E8DD477901E4FCA894C0',
    );
    expect(
      keystream
        .subarray(length - 48)
        .toString('hex')
        .toUpperCase(),
    ).toBe(
      'EC8CDF7398607CB0F2D21675EA9EA1E4362B7C3C6773516318A077D7FC5073AE6A2CC3787889374FBEB4C81B17BA6C44',
    );
  });

  it('the tag is HMAC-SHA1(k_a, packet || ROC) (RFC 3711 4.2.1)', () => {
    const authKey = randomBytes(20);
    const cipher = new SrtpCipher({ encryptionKey: randomBytes(16), salt: randomBytes(14), authKey });
    const packet = randomBytes(172);
    const roc = Buffer.from([0, 0, 0x01, 0x02]);
    expect(cipher.tag(packet, 0x102)).toEqual(
      createHmac('sha1', authKey).update(packet).update(roc).digest(),
    );
  });

  it('gives werift-rtp’s bytes: the same ciphertext and tag for every SSRC, sequence number and ROC', () => {
    const master = randomBytes(16);
    const masterSalt = randomBytes(14);
    const session = new SrtpSession({
      keys: {
        localMasterKey: master,
        localMasterSalt: masterSalt,
        remoteMasterKey: master,
        remoteMasterSalt: masterSalt,
      },
      profile: ProtectionProfileAes128CmHmacSha1_80,
    });
    const ctx = session.localContext;
    const ours = new SrtpCipher({
      encryptionKey: ctx.srtpSessionKey,
      salt: ctx.srtpSessionSalt,
      authKey: ctx.srtpSessionAuthTag,
    });
    const werift = ctx.cipher as unknown as { encryptRtp(h: RtpHeader, p: Buffer, roc: number): Buffer };
    for (const [ssrc, seq, roc, length] of [
      [0x12345678, 1, 0, 160],
      [0xffffffff, 65535, 7, 33],
      [0x00000001, 40000, 65535, 1],
      [0xdeadbeef, 0, 2 ** 32 - 1, 320],
    ] as const) {
      const payload = randomBytes(length);
      const packet = serializeRtp({
        payloadType: 111,
        sequenceNumber: seq,
        timestamp: 960 * seq,
        ssrc,
        payload,
      });
      const expected = werift.encryptRtp(
        new RtpHeader({ payloadType: 111, sequenceNumber: seq, timestamp: 960 * seq, ssrc }),
        payload,
        roc,
      );
      const out = Buffer.from(packet);
      ours.crypt(out, 12, out.length, ssrc, roc * 0x10000 + seq);
      expect(Buffer.concat([out, ours.tag(out, roc).subarray(0, 10)]).equals(expected)).toBe(true);
    }
  });

  it('makes the next packets’ keystream ahead and gives every packet the bytes of AES-CM alone (in sequence, late, wider, across a ROC, many SSRCs)', () => {
    const encryptionKey = randomBytes(16);
    const salt = randomBytes(14);
    const cipher = new SrtpCipher({ encryptionKey, salt, authKey: randomBytes(20) });
    // RFC 3711 4.1.1 straight from node's AES-CTR: IV = (k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16).
    const expected = (ssrc: number, index: number, data: Buffer): Buffer => {
      const iv = Buffer.alloc(16);
      salt.copy(iv, 0);
      iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
      iv.writeUInt32BE((iv.readUInt32BE(8) ^ Math.floor(index / 0x10000)) >>> 0, 8);
      iv.writeUInt16BE(iv.readUInt16BE(12) ^ (index & 0xffff), 12);
      return createCipheriv('aes-128-ctr', encryptionKey, iv).update(data);
    };
    const packets: [ssrc: number, index: number, length: number][] = [];
    // G.711 in sequence across a rollover (index 0xffff → 0x10000), three batches and more.
    for (let i = 0xfff0; i < 0xfff0 + 40; i++) packets.push([0x11111111, i, 160]);
    // Opus-like sizes that vary, one wider than its batch, then one late (an earlier index).
    for (let i = 100; i < 140; i++) packets.push([0x22222222, i, i === 105 ? 1200 : 40 + ((i * 37) % 90)]);
    packets.push([0x22222222, 101, 70]);
    // Six SSRCs taking turns (more than are kept ahead), a jump ahead, a packet too wide to batch.
    for (let i = 0; i < 30; i++) packets.push([0x30000000 + (i % 6), 5000 + Math.floor(i / 6), 160]);
    packets.push([0x11111111, 0x30000, 160], [0x11111111, 0x30001, 1600]);
    for (const [ssrc, index, length] of packets) {
      const payload = randomBytes(length);
      const packet = Buffer.concat([randomBytes(12), payload]);
      const plain = Buffer.from(packet);
      const out = Buffer.alloc(packet.length);
      cipher.crypt(packet, 12, packet.length, ssrc, index, out);
      expect(packet.equals(plain)).toBe(true);
      expect(out.subarray(12).equals(expected(ssrc, index, payload)), `ssrc ${ssrc} index ${index}`).toBe(
        true,
      );
    }
  });

  it('refuses keys of the wrong length, and stops working when closed', () => {
    expect(
      () =>
        new SrtpCipher({ encryptionKey: randomBytes(15), salt: randomBytes(14), authKey: randomBytes(20) }),
    ).toThrow(RangeError);
    const cipher = new SrtpCipher({
      encryptionKey: randomBytes(16),
      salt: randomBytes(14),
      authKey: randomBytes(20),
    });
    cipher.close();
    expect(cipher.closed).toBe(true);
    expect(() => cipher.crypt(Buffer.alloc(4), 0, 4, 0, 0)).toThrow(/closed/);
    expect(() => cipher.tag(Buffer.alloc(4), 0)).toThrow(/closed/);
  });
});
