import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ProtectionProfileAes128CmHmacSha1_80, RtpHeader, SrtpSession } from 'werift-rtp';
import { isSoftphoneError } from '../../src/errors.js';
import { parseRtp, serializeRtp } from '../../src/rtp/packet.js';
import {
  generateKeySalt,
  REPLAY_WINDOW,
  ReplayWindow,
  SRTCP_TAG_LENGTH,
  SRTP_KEY_SALT_LENGTH,
  SRTP_SUITES,
  SrtpContext,
  type SrtpResult,
  type SrtpSuite,
  srtpTagLength,
} from '../../src/rtp/srtp.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A werift session with one master key for both directions (what the KATs need). */
function weriftSession(key: Buffer, salt: Buffer): SrtpSession {
  return new SrtpSession({
    keys: { localMasterKey: key, localMasterSalt: salt, remoteMasterKey: key, remoteMasterSalt: salt },
    profile: ProtectionProfileAes128CmHmacSha1_80,
  });
}

describe('werift-rtp against RFC 3711 Appendix B', () => {
  it('B.3 key derivation: session key, salt and authentication key', () => {
    const session = weriftSession(
      hex('E1F97A0D3E018BE0D64FA32C06DE4139'),
      hex('0EC675AD498AFEEBB6960B3AABE6'),
    );
    const ctx = session.localContext;
    expect(ctx.srtpSessionKey.toString('hex').toUpperCase()).toBe('C61E7A93744F39EE10734AFE3FF7A087');
    expect(ctx.srtpSessionSalt.toString('hex').toUpperCase()).toBe('30CBBC08863D8C85D49DB34A9AE1');
    // HMAC-SHA1 takes the first 160 bits of the label-0x01 keystream B.3 prints.
    expect(ctx.srtpSessionAuthTag.toString('hex').toUpperCase()).toBe(
      'CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4',
    );
  });

  it('B.2 AES-CM keystream: first and last blocks of the 1044512-octet segment', () => {
    // werift's cipher class, built with B.2's session key and salt directly.
    const any = weriftSession(randomBytes(16), randomBytes(14)).localContext.cipher;
    type CipherCtor = new (...keys: Buffer[]) => { encryptRtp(h: RtpHeader, p: Buffer, roc: number): Buffer };
    const Cipher = any.constructor as CipherCtor;
    const key = hex('2B7E151628AED2A6ABF7158809CF4F3C');
    const salt = hex('F0F1F2F3F4F5F6F7F8F9FAFBFCFD'); // "already shifted": SSRC, ROC, SEQ all zero
    const cipher = new Cipher(key, salt, key, salt, Buffer.alloc(20), Buffer.alloc(20));
    const length = 1_044_512;
    const out = cipher.encryptRtp(new RtpHeader({ sequenceNumber: 0, ssrc: 0 }), Buffer.alloc(length), 0);
    const keystream = out.subarray(12, 12 + length);
    expect(keystream.subarray(0, 48).toString('hex').toUpperCase()).toBe(
      'E03EAD0935C95E80E166B16DD92B4EB4' +
        'D23513162B02D0F72A43A2FE4A5F97AB' +
        '41E95B3BB0A2E8DD477901E4FCA894C0',
    );
    expect(
      keystream
        .subarray(length - 48)
        .toString('hex')
        .toUpperCase(),
    ).toBe(
      'EC8CDF7398607CB0F2D21675EA9EA1E4' +
        '362B7C3C6773516318A077D7FC5073AE' +
        '6A2CC3787889374FBEB4C81B17BA6C44',
    );
  });
});

// ---------------------------------------------------------------------------

const A = generateKeySalt();
const B = generateKeySalt();

/** Our side (protects with A) and the far end (protects with B), as one call sees it. */
function pair(suite: SrtpSuite = 'AES_CM_128_HMAC_SHA1_80', replayWindow?: number) {
  const extra = replayWindow === undefined ? {} : { replayWindow };
  return {
    us: new SrtpContext({ suite, localKeySalt: A, remoteKeySalt: B, ...extra }),
    them: new SrtpContext({ suite, localKeySalt: B, remoteKeySalt: A, ...extra }),
  };
}

function rtp(seq: number, ssrc = 0x1234_5678, fill = seq & 0xff, length = 160): Buffer {
  return serializeRtp({
    payloadType: 0,
    sequenceNumber: seq & 0xffff,
    timestamp: (seq * 160) >>> 0,
    ssrc,
    payload: Buffer.alloc(length, fill),
  });
}

function plain(result: SrtpResult): Buffer {
  if (!result.ok) throw new Error(`unprotect failed: ${result.reason}`);
  return result.packet;
}

function reason(result: SrtpResult): string {
  return result.ok ? 'ok' : result.reason;
}

/** A minimal RTCP RR: V=2, RC=0, PT=201, length 1, SSRC. */
function rr(ssrc: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = 0x80;
  b[1] = 201;
  b.writeUInt16BE(1, 2);
  b.writeUInt32BE(ssrc, 4);
  return b;
}

describe('SrtpContext: protect / unprotect', () => {
  it.each(SRTP_SUITES)('%s: round trip, payload encrypted, header in the clear, tag appended', (suite) => {
    const { us, them } = pair(suite);
    const packet = rtp(1000);
    const sent = us.protectRtp(packet);
    expect(sent.length).toBe(packet.length + srtpTagLength(suite));
    expect(sent.subarray(0, 12)).toEqual(packet.subarray(0, 12));
    expect(sent.subarray(12, packet.length).equals(packet.subarray(12))).toBe(false);
    expect(plain(them.unprotectRtp(sent))).toEqual(packet);
    // and the other way
    const back = rtp(7, 0xcafe_f00d);
    expect(plain(us.unprotectRtp(them.protectRtp(back)))).toEqual(back);
    expect(us.stats).toMatchObject({ rtpProtected: 1, rtpUnprotected: 1, rtpAuthFailed: 0 });
  });

  it('the 32-bit tag is the first 4 octets of the 80-bit one (RFC 3711 4.2)', () => {
    const long = new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_80', localKeySalt: A, remoteKeySalt: B });
    const short = new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_32', localKeySalt: A, remoteKeySalt: B });
    const p80 = long.protectRtp(rtp(5));
    const p32 = short.protectRtp(rtp(5));
    expect(p32).toEqual(p80.subarray(0, p80.length - 6));
  });

  it('keeps CSRCs and padding as they were (the RTP parser checks padding after decryption)', () => {
    const { us, them } = pair();
    const base = rtp(9, 0x11, 0x42, 20);
    // one CSRC and 4 octets of padding
    const packet = Buffer.concat([
      Buffer.from([0xa1, base[1]!]),
      base.subarray(2, 12),
      Buffer.from([0xde, 0xad, 0xbe, 0xef]),
      base.subarray(12),
      Buffer.from([0, 0, 0, 4]),
    ]);
    const out = plain(them.unprotectRtp(us.protectRtp(packet)));
    expect(out).toEqual(packet);
    const parsed = parseRtp(out);
    if (typeof parsed === 'string') throw new Error(parsed);
    expect(parsed.csrcCount).toBe(1);
    expect(parsed.payload.length).toBe(20);
  });

  it('unprotects a header extension by its length field (werift alone decrypts from the wrong offset)', () => {
    // RFC 8285 one-byte header block: element ID 1 (one octet), then ID 15, which stops parsing.
    const extension = hex('BEDE0002 10AA F0 00 00000000');
    const body = Buffer.alloc(20, 0x55);
    const packet = Buffer.concat([hex('90000007 00000001 0000002A'), extension, body]);
    // Protected as the RFC says: header and extension authenticated, payload after it encrypted.
    const sender = weriftSession(A.subarray(0, 16), A.subarray(16)).localContext.cipher as unknown as {
      encryptRtp(h: RtpHeader, p: Buffer, roc: number): Buffer;
      generateSrtpAuthTag(roc: number, ...b: Buffer[]): Buffer;
    };
    const encrypted = sender.encryptRtp(new RtpHeader({ sequenceNumber: 7, ssrc: 42 }), body, 0);
    const wire = Buffer.concat([packet.subarray(0, 24), encrypted.subarray(12, 12 + body.length)]);
    const srtp = Buffer.concat([
      wire,
      sender.generateSrtpAuthTag(0, wire.subarray(0, 24), wire.subarray(24)),
    ]);

    const ours = new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_80', localKeySalt: B, remoteKeySalt: A });
    expect(plain(ours.unprotectRtp(srtp))).toEqual(packet);
    // werift's own decrypt starts the payload at ID 15 (offset 19, not 24): garbage.
    const werift = weriftSession(A.subarray(0, 16), A.subarray(16)).decrypt(srtp);
    expect(werift.subarray(24).equals(body)).toBe(false);
  });

  it('refuses to protect what is not an RTP packet of ours (a programming error, not remote input)', () => {
    const { us } = pair();
    for (const bad of [
      Buffer.alloc(4),
      Buffer.from([0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
      hex('90000001000000010000000100000000'),
    ]) {
      expect(() => us.protectRtp(bad)).toThrowError(expect.objectContaining({ code: 'RTP_INVALID_PACKET' }));
    }
  });
});

describe('SrtpContext: what must be dropped, counted, and never decrypted', () => {
  it.each(SRTP_SUITES)('%s: a flipped bit anywhere (header, payload, tag) fails authentication', (suite) => {
    const { us, them } = pair(suite);
    const sent = us.protectRtp(rtp(200));
    const positions = [1, 3, 7, 11, 12, 100, sent.length - srtpTagLength(suite), sent.length - 1];
    for (const at of positions) {
      const tampered = Buffer.from(sent);
      tampered[at]! ^= 0x01;
      expect(reason(them.unprotectRtp(tampered))).toBe('auth-failed');
    }
    expect(them.stats.rtpAuthFailed).toBe(positions.length);
    // none of them moved the state: the genuine packet still goes through, once
    expect(plain(them.unprotectRtp(sent))).toEqual(rtp(200));
  });

  it('a wrong key fails authentication for every packet', () => {
    const { us } = pair();
    const stranger = new SrtpContext({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      localKeySalt: B,
      remoteKeySalt: generateKeySalt(),
    });
    for (let seq = 0; seq < 20; seq++)
      expect(reason(stranger.unprotectRtp(us.protectRtp(rtp(seq))))).toBe('auth-failed');
    expect(stranger.stats).toMatchObject({ rtpAuthFailed: 20, rtpUnprotected: 0 });
  });

  it('the suite must match: an _80 packet does not pass an _32 receiver', () => {
    const long = new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_80', localKeySalt: A, remoteKeySalt: B });
    const short = new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_32', localKeySalt: B, remoteKeySalt: A });
    expect(reason(short.unprotectRtp(long.protectRtp(rtp(3))))).toBe('auth-failed');
  });

  it('replays: the same packet twice, and one older than the window (RFC 3711 3.3.2)', () => {
    const { us, them } = pair();
    const packets = Array.from({ length: REPLAY_WINDOW + 10 }, (_, i) => us.protectRtp(rtp(5000 + i)));
    expect(reason(them.unprotectRtp(packets[0]!))).toBe('ok');
    expect(reason(them.unprotectRtp(packets[0]!))).toBe('replayed');
    for (let i = 2; i < packets.length; i++) expect(reason(them.unprotectRtp(packets[i]!))).toBe('ok');
    // #1 never came: still inside the window?  No: 137 behind the highest, older than 128.
    expect(reason(them.unprotectRtp(packets[1]!))).toBe('replayed');
    // a late one still inside the window is fine, once
    const late = us.protectRtp(rtp(5000 + packets.length));
    const later = us.protectRtp(rtp(5000 + packets.length + 1));
    expect(reason(them.unprotectRtp(later))).toBe('ok');
    expect(reason(them.unprotectRtp(late))).toBe('ok');
    expect(reason(them.unprotectRtp(late))).toBe('replayed');
    expect(them.stats.rtpReplayed).toBe(3);
  });

  it('a replay with a forged tag is still only counted once, as replayed (checked before authentication)', () => {
    const { us, them } = pair();
    const p = us.protectRtp(rtp(1));
    them.unprotectRtp(p);
    const forged = Buffer.from(p);
    forged[forged.length - 1]! ^= 0xff;
    expect(reason(them.unprotectRtp(forged))).toBe('replayed');
  });

  it.each<[string, Buffer]>([
    ['empty', Buffer.alloc(0)],
    ['shorter than header + tag', Buffer.alloc(21, 0x80)],
    ['version 1', Buffer.concat([Buffer.from([0x40]), Buffer.alloc(40)])],
    ['CSRC count overruns', Buffer.concat([Buffer.from([0x8f]), Buffer.alloc(40)])],
    ['extension overruns', Buffer.concat([hex('90000001 00000001 00000001 BEDE0040'), Buffer.alloc(20)])],
  ])('malformed: %s', (_, datagram) => {
    const { them } = pair();
    expect(reason(them.unprotectRtp(datagram))).toBe('malformed');
    expect(them.stats.rtpMalformed).toBe(1);
  });

  it('never throws on random datagrams (RTP and RTCP)', () => {
    const { them } = pair();
    for (let i = 0; i < 3000; i++) {
      const d = randomBytes(i % 220);
      if (i % 2 === 0 && d.length > 0) d[0] = 0x80 | (d[0]! & 0x3f); // mostly version 2
      expect(them.unprotectRtp(d).ok).toBe(false);
      expect(them.unprotectRtcp(d).ok).toBe(false);
    }
  });
});

describe('SrtpContext: the rollover counter', () => {
  const seqs = (from: number, count: number) => Array.from({ length: count }, (_, i) => (from + i) & 0xffff);

  it('follows the sequence number across several wraps, in order', () => {
    const { us, them } = pair();
    let ok = 0;
    for (let i = 0; i < 3 * 65536 + 100; i += 97) {
      // every 97th packet: the sender still numbers every one
      const s = i & 0xffff;
      // the sender's ROC must see each cycle: protect a packet near each wrap
      const packet = rtp(s);
      const result = them.unprotectRtp(us.protectRtp(packet));
      if (result.ok && result.packet.equals(packet)) ok++;
    }
    expect(ok).toBe(Math.ceil((3 * 65536 + 100) / 97));
  });

  it('reordering on both sides of the wrap', () => {
    const { us, them } = pair();
    const sent = new Map<number, Buffer>();
    for (const s of seqs(65530, 12)) sent.set(s, us.protectRtp(rtp(s)));
    const order = [65530, 65531, 65533, 0, 65532, 65535, 1, 65534, 3, 2, 4, 5];
    for (const s of order) expect({ s, r: reason(them.unprotectRtp(sent.get(s)!)) }).toEqual({ s, r: 'ok' });
    // after the wrap, a replay of a pre-wrap packet is a replay, not a new cycle
    expect(reason(them.unprotectRtp(sent.get(65534)!))).toBe('replayed');
  });

  it('a long loss across the wrap (werift alone loses the rest of the call here)', () => {
    // Sender: 65300 … 65535, 0 … 499. The network drops 65401 … 49 (about 3 s of audio).
    const key = A;
    const session = weriftSession(key.subarray(0, 16), key.subarray(16));
    const sent: Array<[number, Buffer]> = [];
    for (const s of seqs(65300, 736)) {
      const p = rtp(s);
      sent.push([
        s,
        session.encrypt(
          p.subarray(12),
          new RtpHeader({ sequenceNumber: s, ssrc: 0x1234_5678, timestamp: (s * 160) >>> 0 }),
        ),
      ]);
    }
    const arriving = sent.filter(([s]) => s <= 65400 && s >= 50);

    const werift = weriftSession(key.subarray(0, 16), key.subarray(16));
    let weriftOk = 0;
    for (const [, p] of arriving) {
      try {
        werift.decrypt(p);
        weriftOk++;
      } catch {
        // SrtpAuthenticationError: its ROC stayed at 0 after the wrap
      }
    }
    expect(weriftOk).toBe(101); // only the packets before the gap

    const ours = new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_80', localKeySalt: B, remoteKeySalt: key });
    const results = arriving.map(([, p]) => reason(ours.unprotectRtp(p)));
    expect(results.every((r) => r === 'ok')).toBe(true);
    expect(results).toHaveLength(551);
  });

  it('keeps separate state per SSRC', () => {
    const { us, them } = pair();
    const a = us.protectRtp(rtp(65535, 1));
    const b = us.protectRtp(rtp(10, 2));
    const a2 = us.protectRtp(rtp(0, 1)); // SSRC 1 wrapped
    expect([a, b, a2].map((p) => reason(them.unprotectRtp(p)))).toEqual(['ok', 'ok', 'ok']);
    expect(reason(them.unprotectRtp(b))).toBe('replayed');
  });
});

describe('SrtpContext: SRTCP (RFC 3711 3.4)', () => {
  it.each(SRTP_SUITES)('%s: round trip with the E flag, index and an 80-bit tag', (suite) => {
    const { us, them } = pair(suite);
    const packet = Buffer.concat([rr(0xabc), hex('81CA0003 00000ABC 01046E616D65 0000')]);
    const first = us.protectRtcp(packet);
    expect(first.length).toBe(packet.length + 4 + SRTCP_TAG_LENGTH);
    expect(first.subarray(0, 8)).toEqual(packet.subarray(0, 8));
    expect(first.readUInt32BE(packet.length)).toBe(0x8000_0000); // E=1, index 0
    expect(us.protectRtcp(packet).readUInt32BE(packet.length)).toBe(0x8000_0001);
    expect(plain(them.unprotectRtcp(first))).toEqual(packet);
  });

  it('tampered, replayed, wrong key, malformed: dropped and counted', () => {
    const { us, them } = pair();
    const p = us.protectRtcp(rr(5));
    const tampered = Buffer.from(p);
    tampered[9]! ^= 1;
    expect(reason(them.unprotectRtcp(tampered))).toBe('auth-failed');
    expect(reason(them.unprotectRtcp(p))).toBe('ok');
    expect(reason(them.unprotectRtcp(p))).toBe('replayed');
    const stranger = new SrtpContext({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      localKeySalt: B,
      remoteKeySalt: generateKeySalt(),
    });
    expect(reason(stranger.unprotectRtcp(us.protectRtcp(rr(5))))).toBe('auth-failed');
    expect(reason(them.unprotectRtcp(Buffer.alloc(21, 0x80)))).toBe('malformed');
    expect(them.stats).toMatchObject({
      rtcpAuthFailed: 1,
      rtcpReplayed: 1,
      rtcpMalformed: 1,
      rtcpUnprotected: 1,
    });
  });

  it('out-of-order SRTCP inside the window is accepted', () => {
    const { us, them } = pair();
    const packets = Array.from({ length: 5 }, () => us.protectRtcp(rr(9)));
    for (const i of [0, 2, 1, 4, 3]) expect(reason(them.unprotectRtcp(packets[i]!))).toBe('ok');
  });
});

describe('SrtpContext: an MKI on the far end’s key (RFC 3711 3.1, RFC 4568 6.1)', () => {
  const MKI = Buffer.from([0, 1]);
  /** The far end's packet with its MKI inserted before the tag (the MKI is not authenticated). */
  const withMki = (packet: Buffer, tag: number) =>
    Buffer.concat([packet.subarray(0, packet.length - tag), MKI, packet.subarray(packet.length - tag)]);

  it.each(SRTP_SUITES)('%s: strips the declared MKI from SRTP and SRTCP', (suite) => {
    const { them } = pair(suite);
    const us = new SrtpContext({ suite, localKeySalt: A, remoteKeySalt: B, remoteMki: MKI });
    const packet = rtp(77);
    expect(plain(us.unprotectRtp(withMki(them.protectRtp(packet), srtpTagLength(suite))))).toEqual(packet);
    expect(plain(us.unprotectRtcp(withMki(them.protectRtcp(rr(3)), SRTCP_TAG_LENGTH)))).toEqual(rr(3));
  });

  it('another MKI value is another key: not ours', () => {
    const { them } = pair();
    const us = new SrtpContext({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      localKeySalt: A,
      remoteKeySalt: B,
      remoteMki: Buffer.from([0, 2]),
    });
    expect(reason(us.unprotectRtp(withMki(them.protectRtp(rtp(1)), 10)))).toBe('auth-failed');
    expect(reason(us.unprotectRtp(Buffer.alloc(23, 0x80)))).toBe('malformed');
    expect(
      () =>
        new SrtpContext({
          suite: 'AES_CM_128_HMAC_SHA1_80',
          localKeySalt: A,
          remoteKeySalt: B,
          remoteMki: Buffer.alloc(0),
        }),
    ).toThrowError(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

describe('SrtpContext: keys and lifecycle', () => {
  it('generateKeySalt gives 30 fresh random octets per call', () => {
    const a = generateKeySalt();
    const b = generateKeySalt();
    expect(a.length).toBe(SRTP_KEY_SALT_LENGTH);
    expect(a.equals(b)).toBe(false);
  });

  it('rejects key material of the wrong length without quoting it', () => {
    const key = Buffer.alloc(29, 0x61);
    try {
      new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_80', localKeySalt: key, remoteKeySalt: A });
      throw new Error('expected a throw');
    } catch (err) {
      expect(isSoftphoneError(err, 'CONFIG_INVALID')).toBe(true);
      expect(String((err as Error).message)).not.toContain('aaaa');
    }
    expect(
      () =>
        new SrtpContext({
          suite: 'AES_CM_128_NULL_AUTH' as SrtpSuite,
          localKeySalt: A,
          remoteKeySalt: B,
        }),
    ).toThrowError(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('does not touch the caller’s key buffers; close() is idempotent and ends everything', () => {
    const local = Buffer.from(A);
    const { them } = pair();
    const us = new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_80', localKeySalt: local, remoteKeySalt: B });
    expect(local).toEqual(A);
    const sent = us.protectRtp(rtp(1));
    us.close();
    us.close();
    expect(us.closed).toBe(true);
    expect(reason(us.unprotectRtp(them.protectRtp(rtp(2))))).toBe('closed');
    expect(reason(us.unprotectRtcp(them.protectRtcp(rr(1))))).toBe('closed');
    expect(() => us.protectRtp(rtp(3))).toThrowError(expect.objectContaining({ code: 'CLOSED' }));
    expect(() => us.protectRtcp(rr(1))).toThrowError(expect.objectContaining({ code: 'CLOSED' }));
    // what was sent before close is still valid for the far end
    expect(reason(them.unprotectRtp(sent))).toBe('ok');
  });

  it('keeps no key material where a log or JSON.stringify would find it', () => {
    const { us } = pair();
    const text = JSON.stringify(us) + String(us) + JSON.stringify(us.stats);
    for (const secret of [A, B]) {
      expect(text).not.toContain(secret.toString('base64'));
      expect(text).not.toContain(secret.toString('hex'));
    }
  });
});

describe('ReplayWindow', () => {
  it('accepts new indices, rejects seen ones and ones older than the window', () => {
    const w = new ReplayWindow(64);
    expect(w.check(1000)).toBe(true);
    w.accept(1000);
    expect(w.check(1000)).toBe(false);
    expect(w.check(999)).toBe(true);
    expect(w.check(937)).toBe(true); // 63 behind
    expect(w.check(936)).toBe(false); // 64 behind
    w.accept(1200); // a jump: everything before 1137 is now too old
    expect(w.check(1136)).toBe(false);
    expect(w.check(1137)).toBe(true);
    expect(w.check(1000 + 3 * 64)).toBe(true); // the slot 1000 used holds 1000, not 1192
  });

  it('wants at least 64 packets (RFC 3711 3.3.2)', () => {
    expect(() => new ReplayWindow(32)).toThrow(RangeError);
    expect(new ReplayWindow().size).toBe(REPLAY_WINDOW);
  });
});
