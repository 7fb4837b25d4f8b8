import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { serializeRtp } from '../../src/rtp/packet.js';
import {
  buildCompound,
  isRtcp,
  JitterEstimator,
  nextAvgRtcpSize,
  ntpMiddle,
  ntpTimestamp,
  parseRtcp,
  ReceptionStatistics,
  type ReportBlock,
  ReportBlockBuilder,
  RTCP_MIN_INTERVAL_MS,
  type RtcpPacket,
  roundTripMs,
  rtcpIntervalMs,
  toNtpShort,
} from '../../src/rtp/rtcp.js';
import { generateKeySalt, SrtpContext } from '../../src/rtp/srtp.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function packets(buf: Uint8Array): RtcpPacket[] {
  const r = parseRtcp(buf);
  if (!r.ok) throw new Error(`invalid RTCP: ${r.reason}`);
  return r.packets;
}

const BLOCK: ReportBlock = {
  ssrc: 0x0bad_cafe,
  fractionLost: 25,
  cumulativeLost: 1234,
  extendedHighestSeq: 0x0001_0203,
  jitter: 77,
  lsr: 0xb705_2000,
  dlsr: 0x0005_4000,
};

describe('buildCompound / parseRtcp round trips', () => {
  it('RR + SDES(CNAME), byte for byte', () => {
    const buf = buildCompound({ ssrc: 0x1122_3344, reports: [BLOCK], cname: 'rc' });
    expect(buf.toString('hex')).toBe(
      // RR: V=2 RC=1 PT=201 length 7, SSRC, one block
      '81c90007' +
        '11223344' +
        '0badcafe' +
        '190004d2' +
        '00010203' +
        '0000004d' +
        'b7052000' +
        '00054000' +
        // SDES: V=2 SC=1 PT=202 length 3, SSRC, CNAME "rc", END and padding to 32 bits
        '81ca0003' +
        '11223344' +
        '01027263' +
        '00000000',
    );
    expect(packets(buf)).toEqual([
      { type: 'rr', ssrc: 0x1122_3344, reports: [BLOCK] },
      { type: 'sdes', chunks: [{ ssrc: 0x1122_3344, cname: 'rc' }] },
    ]);
  });

  it('SR + SDES + BYE with a reason', () => {
    const sender = {
      ntpSeconds: 0xe000_0001,
      ntpFraction: 0x8000_0000,
      rtpTimestamp: 0xffff_ff00,
      packetCount: 500,
      octetCount: 80_000,
    };
    const buf = buildCompound({
      ssrc: 7,
      sender,
      reports: [BLOCK, { ...BLOCK, ssrc: 9, cumulativeLost: -3, fractionLost: 0 }],
      cname: 'bot@rc-softphone',
      bye: { reason: 'call ended' },
    });
    expect(buf.length % 4).toBe(0);
    expect(packets(buf)).toEqual([
      {
        type: 'sr',
        ssrc: 7,
        sender,
        reports: [BLOCK, { ...BLOCK, ssrc: 9, cumulativeLost: -3, fractionLost: 0 }],
      },
      { type: 'sdes', chunks: [{ ssrc: 7, cname: 'bot@rc-softphone' }] },
      { type: 'bye', ssrcs: [7], reason: 'call ended' },
    ]);
  });

  it('an RR without blocks, a BYE without reason, CNAMEs of every length modulo 4', () => {
    for (let n = 0; n < 9; n++) {
      const cname = 'x'.repeat(n);
      const buf = buildCompound({ ssrc: 1, cname, bye: {} });
      expect(packets(buf)).toEqual([
        { type: 'rr', ssrc: 1, reports: [] },
        { type: 'sdes', chunks: [{ ssrc: 1, cname }] },
        { type: 'bye', ssrcs: [1] },
      ]);
    }
  });

  it('clamps cumulative loss to 24 bits signed, as A.3 says', () => {
    const buf = buildCompound({ ssrc: 1, cname: 'c', reports: [{ ...BLOCK, cumulativeLost: 10_000_000 }] });
    const [rr] = packets(buf);
    expect(rr).toMatchObject({ reports: [{ cumulativeLost: 0x7fffff }] });
    const neg = buildCompound({ ssrc: 1, cname: 'c', reports: [{ ...BLOCK, cumulativeLost: -10_000_000 }] });
    expect(packets(neg)[0]).toMatchObject({ reports: [{ cumulativeLost: -0x800000 }] });
  });

  it('refuses more than 31 report blocks', () => {
    expect(() => buildCompound({ ssrc: 1, cname: 'c', reports: Array(32).fill(BLOCK) })).toThrow(RangeError);
  });
});

describe('parseRtcp: what peers send', () => {
  it('reads past APP, RTPFB, PSFB and XR, and several SDES chunks and items', () => {
    const app = hex('80cc0003 00000007 6e616d65 01020304'); // APP "name"
    const nack = hex('81cd0003 00000007 0badcafe 00010000'); // RTPFB generic NACK
    const pli = hex('81ce0002 00000007 0badcafe'); // PSFB picture loss indication
    const xr = hex('80cf0001 00000007');
    const sdes = hex(
      // two chunks; the first has NAME then CNAME; each ends with END and padding to 32 bits
      '82ca0006 00000007 02036a6f65 0103616263 00 00 00000009 010178 00',
    );
    const rr = buildCompound({ ssrc: 7, cname: 'c' }).subarray(0, 8);
    const all = Buffer.concat([rr, app, nack, pli, xr, sdes]);
    expect(packets(all)).toEqual([
      { type: 'rr', ssrc: 7, reports: [] },
      { type: 'other', packetType: 204 },
      { type: 'other', packetType: 205 },
      { type: 'other', packetType: 206 },
      { type: 'other', packetType: 207 },
      {
        type: 'sdes',
        chunks: [
          { ssrc: 7, cname: 'abc' },
          { ssrc: 9, cname: 'x' },
        ],
      },
    ]);
  });

  it('takes padding on the last packet (RFC 3550 6.4.1)', () => {
    const bye = hex('a1cb0002 00000007 00000004'); // P=1, SC=1, 4 octets of padding
    const all = Buffer.concat([buildCompound({ ssrc: 7, cname: 'c' }), bye]);
    expect(packets(all).at(-1)).toEqual({ type: 'bye', ssrcs: [7] });
  });

  it('keeps control characters out of text from the wire', () => {
    const bye = hex('81cb0003 00000007 05610a620d00 0000');
    const all = Buffer.concat([buildCompound({ ssrc: 7, cname: 'c' }).subarray(0, 8), bye]);
    expect(packets(all).at(-1)).toEqual({ type: 'bye', ssrcs: [7], reason: 'a?b??' });
  });

  const RR = buildCompound({ ssrc: 7, cname: 'c', reports: [BLOCK] });
  const rrOnly = RR.subarray(0, 32);
  it.each<[string, Buffer, string]>([
    ['empty', Buffer.alloc(0), 'short'],
    ['7 octets', rrOnly.subarray(0, 7), 'short'],
    ['version 1', Buffer.concat([Buffer.from([0x41]), rrOnly.subarray(1)]), 'version'],
    ['first packet SDES (A.2)', RR.subarray(32), 'first-packet'],
    ['first packet BYE', hex('81cb0001 00000007'), 'first-packet'],
    ['first packet padded', Buffer.concat([Buffer.from([0xa1]), rrOnly.subarray(1)]), 'first-packet'],
    ['length beyond the datagram', rrOnly.subarray(0, 28), 'length'],
    ['trailing octets', Buffer.concat([RR, Buffer.from([0x81])]), 'short'],
    ['a second packet of version 0', Buffer.concat([rrOnly, hex('01ca0000')]), 'version'],
    [
      'padding on a packet that is not last',
      Buffer.concat([hex('a0c90001 00000007'), RR.subarray(32)]),
      'first-packet',
    ],
    [
      'padding in the middle',
      Buffer.concat([rrOnly, hex('a0cc0002 00000007 00000004'), RR.subarray(32)]),
      'padding',
    ],
    ['padding count 0', Buffer.concat([rrOnly, hex('a0cc0001 00000000')]), 'padding'],
    ['padding count past the header', Buffer.concat([rrOnly, hex('a0cc0001 00000009')]), 'padding'],
    ['RR count overruns', Buffer.concat([Buffer.from([0x82]), rrOnly.subarray(1)]), 'malformed'],
    ['SR too short for its sender info', hex('80c80001 00000007'), 'malformed'],
    ['SDES item overruns', Buffer.concat([rrOnly, hex('81ca0002 00000007 01096162')]), 'malformed'],
    ['SDES without END', Buffer.concat([rrOnly, hex('81ca0002 00000007 01026162')]), 'malformed'],
    ['BYE count overruns', Buffer.concat([rrOnly, hex('82cb0001 00000007')]), 'malformed'],
    ['BYE reason overruns', Buffer.concat([rrOnly, hex('81cb0002 00000007 09616263')]), 'malformed'],
  ])('refuses %s → %s', (_, buf, reason) => {
    expect(parseRtcp(buf)).toEqual({ ok: false, reason });
  });

  it('never throws on random datagrams', () => {
    for (let i = 0; i < 5000; i++) {
      const d = randomBytes(i % 120);
      if (d.length > 1 && i % 2 === 0) {
        d[0] = 0x80 | (d[0]! & 0x1f);
        d[1] = 200 + (i % 2);
      }
      const r = parseRtcp(d);
      expect(typeof r.ok).toBe('boolean');
    }
  });
});

describe('isRtcp (RFC 5761 4)', () => {
  const rtp = serializeRtp({
    payloadType: 0,
    sequenceNumber: 1,
    timestamp: 2,
    ssrc: 3,
    payload: new Uint8Array(160),
  });
  const marked = serializeRtp({
    marker: true,
    payloadType: 101,
    sequenceNumber: 1,
    timestamp: 2,
    ssrc: 3,
    payload: new Uint8Array(4),
  });
  const rr = buildCompound({ ssrc: 3, cname: 'c' });
  it('tells RTCP from RTP on one port, SRTCP included', () => {
    const srtp = new SrtpContext({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      localKeySalt: generateKeySalt(),
      remoteKeySalt: generateKeySalt(),
    });
    expect(isRtcp(rr)).toBe(true);
    expect(
      isRtcp(
        buildCompound({
          ssrc: 3,
          cname: 'c',
          sender: { ntpSeconds: 1, ntpFraction: 0, rtpTimestamp: 0, packetCount: 0, octetCount: 0 },
        }),
      ),
    ).toBe(true);
    expect(isRtcp(srtp.protectRtcp(rr))).toBe(true);
    expect(isRtcp(rtp)).toBe(false);
    expect(isRtcp(marked)).toBe(false);
    expect(isRtcp(srtp.protectRtp(rtp))).toBe(false);
    expect(isRtcp(Buffer.alloc(0))).toBe(false);
    expect(isRtcp(Buffer.from([0x40, 200, 0, 1]))).toBe(false);
  });
});

describe('NTP time and round-trip time (RFC 3550 4, 6.4.1)', () => {
  it('converts Unix time to NTP', () => {
    expect(ntpTimestamp(0)).toEqual({ ntpSeconds: 2_208_988_800, ntpFraction: 0 });
    expect(ntpTimestamp(1500)).toEqual({ ntpSeconds: 2_208_988_801, ntpFraction: 0x8000_0000 });
    // after 2036-02-07 the seconds wrap, as NTP era 1 does
    expect(ntpTimestamp((2 ** 32 - 2_208_988_800) * 1000 + 250).ntpSeconds).toBe(0);
    expect(ntpMiddle(0x1234_b710, 0x8000_1111)).toBe(0xb710_8000);
    expect(toNtpShort(5250)).toBe(0x0005_4000);
  });

  it('the example of RFC 3550 6.4.1: A 0xb710:8000, LSR 0xb705:2000, DLSR 0x0005:4000 → 6.125 s', () => {
    expect(roundTripMs({ lsr: 0xb705_2000, dlsr: 0x0005_4000 }, 0xb710_8000)).toBe(6125);
  });

  it('works across the 32-bit wrap, and has no answer without an LSR or for a negative result', () => {
    expect(roundTripMs({ lsr: 0xffff_8000, dlsr: 0x0000_4000 }, 0x0000_4000)).toBe(500);
    expect(roundTripMs({ lsr: 0, dlsr: 0 }, 0xb710_8000)).toBeUndefined();
    expect(roundTripMs({ lsr: 0xb710_8000, dlsr: 0x0001_0000 }, 0xb710_8000)).toBeUndefined();
  });
});

describe('JitterEstimator (RFC 3550 A.8)', () => {
  it('is 0 for a stream that arrives exactly on its clock', () => {
    const j = new JitterEstimator();
    for (let k = 0; k < 100; k++) j.update(5000 + k * 160, 1000 + k * 160);
    expect(j.jitter).toBe(0);
  });

  it('converges to |D| for transit alternating by 80 samples, across the timestamp wrap', () => {
    const j = new JitterEstimator();
    for (let k = 0; k < 400; k++) j.update(k * 160 + (k % 2 === 1 ? 80 : 0), (0xffff_f000 + k * 160) >>> 0);
    expect(j.jitter).toBeGreaterThan(79.9);
    expect(j.jitter).toBeLessThanOrEqual(80);
  });

  it('moves by 1/16 of the difference per packet', () => {
    const j = new JitterEstimator();
    j.update(0, 0);
    j.update(160 + 32, 160); // D = 32
    expect(j.jitter).toBe(2);
    j.reset();
    expect(j.jitter).toBe(0);
  });
});

describe('ReceptionStatistics + ReportBlockBuilder (RFC 3550 A.3, 6.4.1)', () => {
  it('cumulative and interval loss, jitter, LSR and DLSR', () => {
    const stats = new ReceptionStatistics();
    const builder = new ReportBlockBuilder();
    expect(stats.snapshot()).toBeUndefined();
    // 100 packets from 65500 across the wrap, 10 of them lost
    for (let k = 0; k < 100; k++) {
      if (k % 10 === 5) continue;
      stats.update(42, (65500 + k) & 0xffff, k * 160, 1000 + k * 160);
    }
    const lastSr = { ssrc: 42, lsr: 0xb705_2000, receivedAtMs: 10_000 };
    const first = builder.build(stats.snapshot()!, lastSr, 11_500);
    expect(first).toEqual({
      ssrc: 42,
      fractionLost: Math.floor((10 * 256) / 100), // 100 expected, 90 received
      cumulativeLost: 10,
      extendedHighestSeq: 65500 + 99,
      jitter: 0,
      lsr: 0xb705_2000,
      dlsr: 0x0001_8000, // 1.5 s
    });
    // the next interval: 50 more, none lost, one duplicate
    for (let k = 100; k < 150; k++) stats.update(42, (65500 + k) & 0xffff, k * 160, 1000 + k * 160);
    stats.update(42, (65500 + 149) & 0xffff, 149 * 160, 1000 + 150 * 160);
    const second = builder.build(stats.snapshot()!, undefined, 12_000);
    expect(second).toMatchObject({
      fractionLost: 0,
      cumulativeLost: 9, // 150 expected, 141 received (the duplicate counts, A.3)
      extendedHighestSeq: 65500 + 149,
      lsr: 0,
      dlsr: 0,
    });
    expect(second.jitter).toBeGreaterThan(0); // the duplicate arrived 160 samples late
  });

  it('a new SSRC starts over (statistics and the interval baseline)', () => {
    const stats = new ReceptionStatistics();
    const builder = new ReportBlockBuilder();
    for (let k = 0; k < 10; k++) stats.update(1, k, k * 160, k * 160);
    builder.build(stats.snapshot()!, undefined, 0);
    for (let k = 0; k < 10; k += 2) stats.update(2, 500 + k, k * 160, k * 160);
    const block = builder.build(stats.snapshot()!, { ssrc: 1, lsr: 5, receivedAtMs: 0 }, 0);
    expect(block).toMatchObject({
      ssrc: 2,
      cumulativeLost: 4,
      fractionLost: Math.floor((4 * 256) / 9),
      lsr: 0,
    });
  });
});

describe('rtcpIntervalMs (RFC 3550 6.3.1, A.7)', () => {
  // G.711 at 20 ms: 200 octets with headers every 20 ms = 10 000 octets/s; RTCP gets 5 %.
  const call = { members: 2, senders: 2, weSent: true, rtcpBandwidth: 500, avgRtcpSize: 100, initial: false };

  it('is the 5 s minimum, randomized over [0.5, 1.5) and divided by e − 3/2', () => {
    const low = rtcpIntervalMs(call, () => 0);
    const mid = rtcpIntervalMs(call, () => 0.5);
    const high = rtcpIntervalMs(call, () => 0.999_999);
    expect(low).toBeCloseTo((RTCP_MIN_INTERVAL_MS * 0.5) / (Math.E - 1.5), 6);
    expect(mid).toBeCloseTo(RTCP_MIN_INTERVAL_MS / (Math.E - 1.5), 6);
    expect(low).toBeGreaterThan(2050);
    expect(high).toBeLessThan(6160);
  });

  it('halves the minimum before the first report', () => {
    expect(rtcpIntervalMs({ ...call, initial: true }, () => 0.5)).toBeCloseTo(2500 / (Math.E - 1.5), 6);
  });

  it('grows past the minimum with many members sharing the bandwidth', () => {
    // 100 members, 1 sender (not us): receivers share 75 % → 99 · 100 / 375 s = 26.4 s
    const t = rtcpIntervalMs(
      { members: 100, senders: 1, weSent: false, rtcpBandwidth: 500, avgRtcpSize: 100, initial: false },
      () => 0.5,
    );
    expect(t).toBeCloseTo((1000 * 99 * 100) / 375 / (Math.E - 1.5), 6);
    // the one sender, when that is us: 25 % for 1 sender → 0.8 s, so the minimum
    expect(
      rtcpIntervalMs(
        { members: 100, senders: 1, weSent: true, rtcpBandwidth: 500, avgRtcpSize: 100, initial: false },
        () => 0.5,
      ),
    ).toBeCloseTo(RTCP_MIN_INTERVAL_MS / (Math.E - 1.5), 6);
  });

  it('survives nonsense input', () => {
    const t = rtcpIntervalMs(
      { members: 0, senders: -1, weSent: false, rtcpBandwidth: 0, avgRtcpSize: 0, initial: false },
      () => Number.NaN,
    );
    expect(Number.isFinite(t)).toBe(true);
    expect(t).toBeGreaterThanOrEqual(2050);
  });

  it('averages the compound size over 16 packets (6.3.3)', () => {
    expect(nextAvgRtcpSize(100, 260)).toBe(110);
  });
});
