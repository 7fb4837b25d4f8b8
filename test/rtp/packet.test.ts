import { describe, expect, it } from 'vitest';
import { isRtpInvalid, parseRtp, type RtpPacket, serializeRtp } from '../../src/rtp/packet.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/**
 * A PCMU packet shaped like the ones RingCentral's media servers send:
 * V=2, PT 0, 20 ms of 1 kHz tone (160 bytes), no CSRC/extension/padding.
 */
const PCMU_TONE_PAYLOAD = 'ffa9a0a9ff292029'.repeat(20);
const PCMU_PACKET = hex(`80 00 1a 2b 00 03 e8 00 5a 3c 9e 01 ${PCMU_TONE_PAYLOAD}`);

/** RFC 4733 start of event '5' (marker set, PT 101), as sent after a key press. */
const DTMF_PACKET = hex('80 e5 1a 2c 00 03 e9 40 5a 3c 9e 01 05 0a 00 a0');

/** A mixer's packet: 2 CSRCs, a one-word header extension (RFC 8285 0xBEDE), 3 octets of padding. */
const MIXED_PACKET = hex(
  'b2 08 ff ff ff ff ff f0 00 00 00 2a' + // V=2 P=1 X=1 CC=2, PT 8, seq 65535, ts 0xfffffff0
    ' 11 11 11 11 22 22 22 22' + // CSRCs
    ' be de 00 01 10 ff 00 00' + // extension header + 1 word
    ' d5 d5 d5 d5' + // payload
    ' 00 00 03', // padding, last octet = count
);

describe('parseRtp: valid packets', () => {
  it.each<[string, Uint8Array, Omit<RtpPacket, 'payload'>, string]>([
    [
      'PCMU 20 ms',
      PCMU_PACKET,
      {
        marker: false,
        payloadType: 0,
        sequenceNumber: 0x1a2b,
        timestamp: 256000,
        ssrc: 0x5a3c9e01,
        csrcCount: 0,
      },
      PCMU_TONE_PAYLOAD,
    ],
    [
      'telephone-event with marker',
      DTMF_PACKET,
      {
        marker: true,
        payloadType: 101,
        sequenceNumber: 0x1a2c,
        timestamp: 256320,
        ssrc: 0x5a3c9e01,
        csrcCount: 0,
      },
      '050a00a0',
    ],
    [
      'CSRCs, extension and padding',
      MIXED_PACKET,
      { marker: false, payloadType: 8, sequenceNumber: 65535, timestamp: 0xfffffff0, ssrc: 42, csrcCount: 2 },
      'd5d5d5d5',
    ],
    [
      'header only, empty payload',
      hex('80 00 00 01 00 00 00 00 00 00 00 01'),
      { marker: false, payloadType: 0, sequenceNumber: 1, timestamp: 0, ssrc: 1, csrcCount: 0 },
      '',
    ],
    [
      'padding that is the whole payload',
      hex('a0 00 00 01 00 00 00 00 00 00 00 01 00 00 00 04'),
      { marker: false, payloadType: 0, sequenceNumber: 1, timestamp: 0, ssrc: 1, csrcCount: 0 },
      '',
    ],
    [
      'one octet of padding',
      hex('a0 00 00 01 00 00 00 00 00 00 00 01 ff 01'),
      { marker: false, payloadType: 0, sequenceNumber: 1, timestamp: 0, ssrc: 1, csrcCount: 0 },
      'ff',
    ],
    [
      'extension with zero length',
      hex('90 00 00 01 00 00 00 00 00 00 00 01 be de 00 00 7f'),
      { marker: false, payloadType: 0, sequenceNumber: 1, timestamp: 0, ssrc: 1, csrcCount: 0 },
      '7f',
    ],
    [
      'all-ones SSRC and timestamp stay unsigned',
      hex('80 7f ff ff ff ff ff ff ff ff ff ff 00'),
      {
        marker: false,
        payloadType: 127,
        sequenceNumber: 65535,
        timestamp: 0xffffffff,
        ssrc: 0xffffffff,
        csrcCount: 0,
      },
      '00',
    ],
    [
      'PT 71 and 77 are RTP',
      hex('80 47 00 01 00 00 00 00 00 00 00 01'),
      { marker: false, payloadType: 71, sequenceNumber: 1, timestamp: 0, ssrc: 1, csrcCount: 0 },
      '',
    ],
  ])('%s', (_, buf, header, payloadHex) => {
    const p = parseRtp(buf);
    if (isRtpInvalid(p)) throw new Error(`rejected: ${p}`);
    const { payload, ...rest } = p;
    expect(rest).toEqual(header);
    expect(Buffer.from(payload).toString('hex')).toBe(payloadHex);
  });

  it('returns a view into the input, not a copy', () => {
    const p = parseRtp(PCMU_PACKET) as RtpPacket;
    expect(p.payload.buffer).toBe(PCMU_PACKET.buffer);
    expect(p.payload.byteOffset).toBe(PCMU_PACKET.byteOffset + 12);
    expect(p.payload.length).toBe(160);
  });

  it('parses from a Buffer slice with a non-zero offset', () => {
    const pool = Buffer.alloc(64 + DTMF_PACKET.length);
    pool.set(DTMF_PACKET, 64);
    const p = parseRtp(pool.subarray(64)) as RtpPacket;
    expect(p.sequenceNumber).toBe(0x1a2c);
    expect(Array.from(p.payload)).toEqual([5, 10, 0, 160]);
  });
});

describe('parseRtp: invalid packets (RFC 3550 A.1)', () => {
  it.each<[string, string, string]>([
    ['empty', '', 'short'],
    ['3 bytes', '80 00 00', 'short'],
    ['11 bytes', '80 00 00 01 00 00 00 00 00 00 00', 'short'],
    ['version 0', '00 00 00 01 00 00 00 00 00 00 00 01', 'version'],
    ['version 1', '40 00 00 01 00 00 00 00 00 00 00 01', 'version'],
    ['version 3', 'c0 00 00 01 00 00 00 00 00 00 00 01', 'version'],
    ['STUN binding request', '00 01 00 00 21 12 a4 42 00 00 00 00 00 00 00 00 00 00 00 00', 'version'],
    ['CSRC list past the end', '81 00 00 01 00 00 00 00 00 00 00 01 11 11 11', 'csrc'],
    ['15 CSRCs in a short packet', '8f 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00', 'csrc'],
    ['extension header cut off', '90 00 00 01 00 00 00 00 00 00 00 01 be de 00', 'extension'],
    [
      'extension length past the end',
      '90 00 00 01 00 00 00 00 00 00 00 01 be de 00 02 00 00 00 00',
      'extension',
    ],
    ['extension length 0xffff', '90 00 00 01 00 00 00 00 00 00 00 01 be de ff ff', 'extension'],
    ['padding count 0', 'a0 00 00 01 00 00 00 00 00 00 00 01 ff ff 00', 'padding'],
    ['padding count larger than the payload', 'a0 00 00 01 00 00 00 00 00 00 00 01 ff 05', 'padding'],
    ['padding bit with no payload at all', 'a0 00 00 01 00 00 00 00 00 00 00 01', 'padding'],
    ['padding eating into the extension', 'b0 00 00 01 00 00 00 00 00 00 00 01 be de 00 00 00 03', 'padding'],
    [
      'RTCP SR (200)',
      '80 c8 00 06 5a 3c 9e 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
      'rtcp',
    ],
    ['RTCP RR (201), 8 bytes', '80 c9 00 01 5a 3c 9e 01', 'rtcp'],
    ['RTCP SDES (202)', '81 ca 00 02 5a 3c 9e 01 01 00 00 00', 'rtcp'],
    ['RTCP BYE (203), 4 bytes', '80 cb 00 00', 'rtcp'],
    ['RTCP APP (204)', '80 cc 00 02 5a 3c 9e 01 6e 61 6d 65', 'rtcp'],
    ['PT 72 without marker', '80 48 00 01 00 00 00 00 00 00 00 01', 'rtcp'],
  ])('%s → %s', (_, bytes, reason) => {
    expect(parseRtp(hex(bytes))).toBe(reason);
  });

  it('never throws on random bytes and always honours the bounds', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let n = 0; n < 20_000; n++) {
      const buf = new Uint8Array(rand() % 64);
      for (let i = 0; i < buf.length; i++) buf[i] = rand() & 0xff;
      if (buf.length > 0 && n % 2 === 0) buf[0] = (buf[0]! & 0x3f) | 0x80; // make half of them version 2
      const p = parseRtp(buf);
      if (typeof p === 'string') continue;
      expect(p.payload.byteOffset).toBeGreaterThanOrEqual(12 + 4 * p.csrcCount);
      expect(p.payload.byteOffset + p.payload.length).toBeLessThanOrEqual(buf.length);
    }
  });
});

describe('serializeRtp', () => {
  it('reproduces the captured packets byte for byte', () => {
    for (const captured of [PCMU_PACKET, DTMF_PACKET]) {
      const p = parseRtp(captured) as RtpPacket;
      expect(serializeRtp(p)).toEqual(Buffer.from(captured));
    }
  });

  it.each([
    { payloadType: 0, sequenceNumber: 0, timestamp: 0, ssrc: 0, payload: new Uint8Array(0) },
    {
      marker: true,
      payloadType: 101,
      sequenceNumber: 65535,
      timestamp: 0xffffffff,
      ssrc: 0xffffffff,
      payload: hex('0b8a0320'),
    },
    {
      marker: false,
      payloadType: 8,
      sequenceNumber: 1234,
      timestamp: 160 * 1000,
      ssrc: 0x80000000,
      payload: new Uint8Array(160).fill(0xd5),
    },
  ])('round-trips %#', (init) => {
    const parsed = parseRtp(serializeRtp(init)) as RtpPacket;
    expect(parsed).toEqual({ marker: init.marker ?? false, csrcCount: 0, ...init, payload: parsed.payload });
    expect(Array.from(parsed.payload)).toEqual(Array.from(init.payload));
  });

  it('reduces fields to their widths', () => {
    const buf = serializeRtp({
      payloadType: 0x80 | 8,
      sequenceNumber: 70000,
      timestamp: -1,
      ssrc: 2 ** 32 + 7,
      payload: hex('aa'),
    });
    expect(buf.toString('hex')).toBe('80081170ffffffff00000007aa');
    const p = parseRtp(buf) as RtpPacket;
    expect(p).toMatchObject({
      payloadType: 8,
      sequenceNumber: 70000 & 0xffff,
      timestamp: 0xffffffff,
      ssrc: 7,
    });
  });

  it('writes into a caller buffer when it fits and returns a view of the used part', () => {
    const out = Buffer.alloc(1500);
    const buf = serializeRtp(
      { payloadType: 0, sequenceNumber: 1, timestamp: 2, ssrc: 3, payload: new Uint8Array(160) },
      out,
    );
    expect(buf.buffer).toBe(out.buffer);
    expect(buf.byteOffset).toBe(out.byteOffset);
    expect(buf.length).toBe(172);
  });

  it('allocates when the caller buffer is too small instead of throwing', () => {
    const out = Buffer.alloc(20);
    const buf = serializeRtp(
      { payloadType: 0, sequenceNumber: 1, timestamp: 2, ssrc: 3, payload: new Uint8Array(160) },
      out,
    );
    expect(buf.buffer).not.toBe(out.buffer);
    expect(buf.length).toBe(172);
  });
});
