/**
 * SSRC changes and latching that a forger cannot exploit: RFC 3550 A.1
 * probation for new SSRCs in the jitter buffer, and the source latch of the
 * receive path (the SDP's address always wins; any other needs several
 * valid packets in sequence).
 */
import { describe, expect, it } from 'vitest';
import { ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { JitterBuffer } from '../../src/media/jitter-buffer.js';
import { ReceivePath } from '../../src/media/receive-path.js';
import { serializeRtp } from '../../src/rtp/packet.js';
import {
  type Arrival,
  audioAt,
  decoded,
  F,
  indexOf,
  payloadFor,
  run,
  silent,
  stream,
} from '../helpers/timeline.js';

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) / 0x1000000;
  };
}

/** A packet from another SSRC, carrying payloadFor(k) (k ≥ 1000 so it is never the caller's). */
function forged(at: number, k: number, seq: number, ssrc = 0xbad, ts = 777_000 + k * F): Arrival {
  return { at, packet: { ssrc, sequenceNumber: seq & 0xffff, timestamp: ts >>> 0, payload: payloadFor(k) } };
}

describe('JitterBuffer: SSRC probation (RFC 3550 A.1)', () => {
  const END = 800 + 101 * F + 9000;

  it('ignores one forged packet with a new SSRC: no frame moves', () => {
    const arrivals = [...stream(100, { start: 837 }), forged(837 + 40 * F + 50, 1000, 5)];
    const jb = new JitterBuffer();
    const { recording } = run(jb, arrivals, END);
    expect(audioAt(recording, 800, range(100))).toBe(true);
    expect(indexOf(recording, decoded(1000))).toBe(-1);
    expect(jb.stats).toMatchObject({ ssrcChange: 0, resync: 0, lost: 0, probationDropped: 1 });
  });

  it('ignores ten forged packets in sequence interleaved with the caller', () => {
    const fake = range(10).map((i) => forged(837 + (40 + i) * F + 80, 1000 + i, 7000 + i));
    const jb = new JitterBuffer();
    const { recording } = run(jb, [...stream(100, { start: 837 }), ...fake], END);
    expect(audioAt(recording, 800, range(100))).toBe(true);
    expect(jb.stats).toMatchObject({ ssrcChange: 0, resync: 0, probationDropped: 10 });
  });

  it('ignores a burst of forged packets in sequence (no time span) and a garbage flood', () => {
    const random = rng(11);
    const burst = range(12).map((i) => forged(837 + 30 * F + 7, 1000 + i, 9000 + i));
    const flood: Arrival[] = [];
    for (let t = 900; t < 837 + 100 * F; t += 23) {
      const r = random();
      flood.push(
        forged(
          t,
          2000 + (flood.length % 200),
          Math.floor(r * 65536),
          Math.floor(random() * 2 ** 32),
          Math.floor(random() * 2 ** 32),
        ),
      );
    }
    const jb = new JitterBuffer();
    const { recording } = run(jb, [...stream(100, { start: 837 }), ...burst, ...flood], END);
    expect(audioAt(recording, 800, range(100))).toBe(true);
    expect(jb.stats).toMatchObject({ ssrcChange: 0, resync: 0, lost: 0 });
    // All of them, but for the last few still waiting when the call ended.
    expect(jb.stats.probationDropped).toBeGreaterThan(burst.length + flood.length - 3);
  });

  it('keeps the established stream when a second one is interleaved with it for the rest of the call', () => {
    const other = stream(60, { ssrc: 0x999, seq0: 500, ts0: 1234, start: 837 + 40 * F + 90, k0: 1000 });
    const jb = new JitterBuffer();
    const { recording } = run(jb, [...stream(100, { start: 837 }), ...other], END);
    expect(audioAt(recording, 800, range(100))).toBe(true);
    expect(jb.stats.ssrcChange).toBe(0);
    // All of the other stream but the packet or two still on probation when the call ended.
    expect(jb.stats.probationDropped).toBeGreaterThanOrEqual(58);
  });

  it('takes a real SSRC change, placed at its arrival in its slot (even when its first packet is a little late)', () => {
    const before = stream(50, { start: 837 });
    const after = stream(50, { ssrc: 0x777, seq0: 30, ts0: 4_000_000, start: 837 + 50 * F, k0: 50 });
    after[0]!.at += 60; // 7.5 ms late: past the frame boundary relative to the old stream's phase
    const jb = new JitterBuffer();
    const { recording } = run(jb, [...before, ...after], END);
    expect(audioAt(recording, 800, range(100))).toBe(true);
    expect(jb.stats).toMatchObject({ ssrcChange: 1, lost: 0, late: 0, probationDropped: 0 });
  });

  it('places a new SSRC at its slot when the old stream’s last packet was lost (not 20 ms early)', () => {
    const before = stream(50, { start: 837 }).filter((_, i) => i !== 49);
    const after = stream(50, { ssrc: 0x777, seq0: 30, ts0: 4_000_000, start: 837 + 50 * F, k0: 50 });
    const jb = new JitterBuffer();
    const { recording } = run(jb, [...before, ...after], END);
    expect(audioAt(recording, 800, range(49))).toBe(true);
    expect(silent(recording, 800 + 49 * F, 800 + 50 * F)).toBe(true);
    expect(audioAt(recording, 800 + 50 * F, range(50, 50))).toBe(true);
  });

  it('takes a new SSRC that was interleaved with the old one as soon as the old one stops, losing nothing of it', () => {
    const before = stream(60, { start: 837 });
    // The new stream starts 10 frames before the old one ends (a media server handing over).
    const after = stream(50, { ssrc: 0x777, seq0: 30, ts0: 4_000_000, start: 837 + 60 * F, k0: 60 });
    const early = stream(10, {
      ssrc: 0x777,
      seq0: 20,
      ts0: 4_000_000 - 10 * F,
      start: 837 + 50 * F + 40,
      k0: 1000,
    });
    const jb = new JitterBuffer();
    const { recording } = run(jb, [...before, ...early, ...after], END + 2000);
    expect(audioAt(recording, 800, range(60))).toBe(true);
    expect(audioAt(recording, 800 + 60 * F, range(50, 60))).toBe(true);
    expect(jb.stats.ssrcChange).toBe(1);
  });

  it('gives the timeline back to the established stream when it returns after another took over in its pause', () => {
    // The caller pauses (silence suppression) for 1 s after frame 40; a stranger paced at 20 ms fills the pause.
    const caller = stream(40, { start: 837 });
    const resumed = stream(40, { seq0: 1040, ts0: 50_000 + 90 * F, start: 837 + 90 * F, k0: 40 });
    const stranger = stream(30, { ssrc: 0x999, seq0: 500, ts0: 1234, start: 837 + 50 * F, k0: 1000 });
    const jb = new JitterBuffer();
    const { recording } = run(jb, [...caller, ...stranger, ...resumed], 800 + 131 * F + 9000);
    expect(audioAt(recording, 800, range(40))).toBe(true);
    // After the pause, at its media-clock place, whatever the stranger did.
    expect(audioAt(recording, 800 + 90 * F, range(40, 40))).toBe(true);
    expect(jb.stats.ssrcChange).toBe(2);
  });
});

describe('ReceivePath: payloads and latching', () => {
  const OFFER = { address: '192.0.2.10', port: 40000 };
  const STALE = { address: '198.51.100.9', port: 31000 };
  const NAT = { address: '203.0.113.5', port: 6000 };
  const MEDIA = { codec: 'PCMU' as const, payloadType: 0, telephoneEventPt: 101, ptime: 20 };
  const rtp = (seq: number, k: number, ssrc = 0x1234, payload = payloadFor(k)) =>
    serializeRtp({ payloadType: 0, sequenceNumber: seq, timestamp: 50_000 + k * F, ssrc, payload });

  it('rejects audio payloads that do not fit the codec and ptime (empty, or 8 000 bytes) and counts them', () => {
    const path = new ReceivePath({ media: MEDIA, expected: OFFER });
    expect(path.receive(rtp(1, 0), OFFER.address, OFFER.port, 800)).toBe('audio');
    const huge = serializeRtp({
      payloadType: 0,
      sequenceNumber: 2,
      timestamp: 50_160,
      ssrc: 0x1234,
      payload: new Uint8Array(8000).fill(0x10),
    });
    expect(path.receive(huge, OFFER.address, OFFER.port, 960)).toBe('invalid');
    expect(path.receive(rtp(3, 1, 0x1234, new Uint8Array(0)), OFFER.address, OFFER.port, 1000)).toBe(
      'invalid',
    );
    // 60 ms in one packet is still fine (a=ptime is a hint).
    expect(
      path.receive(rtp(4, 2, 0x1234, new Uint8Array(480).fill(0x20)), OFFER.address, OFFER.port, 1120),
    ).toBe('audio');
    expect(path.stats).toMatchObject({ invalidPayload: 2, received: 2, invalid: 0 });
    const out: number[] = [];
    path.flush(2000, (f) => out.push(...f));
    expect(out.length).toBeLessThan(2000 + 480 + F);
  });

  it('latches the SDP’s source even when another stream was already aimed at the port, and reports both latches', () => {
    const path = new ReceivePath({ media: MEDIA, expected: OFFER });
    // The previous user of this port keeps sending: before priming it is foreign ...
    let t = 0;
    for (let i = 0; i < 5; i++, t += F)
      expect(path.receive(rtp(100 + i, i, 0x5a1e), STALE.address, STALE.port, t)).toBe('foreign');
    path.allowAnySource();
    // ... after priming it proves itself (3 in sequence) and is latched ...
    for (let i = 5; i < 8; i++, t += F) path.receive(rtp(100 + i, i, 0x5a1e), STALE.address, STALE.port, t);
    expect(path.latched).toEqual(STALE);
    expect(path.latchInfo).toMatchObject({ reason: 'symmetric' });
    // ... until the caller, from the SDP's address, sends its first packet: it wins at once.
    expect(path.receive(rtp(1, 50), OFFER.address, OFFER.port, t)).toBe('audio');
    expect(path.latched).toEqual(OFFER);
    expect(path.latchInfo).toEqual({ ...OFFER, reason: 'sdp', previous: STALE });
    for (let i = 1; i < 10; i++) {
      t += F;
      path.receive(rtp(100 + 7 + i, 8 + i, 0x5a1e), STALE.address, STALE.port, t);
      expect(path.receive(rtp(1 + i, 50 + i), OFFER.address, OFFER.port, t + 3)).toBe('audio');
    }
    expect(path.stats).toMatchObject({ latches: 2, received: 3 + 10 });
    expect(path.stats.foreignSource).toBe(5 + 9);
  });

  it('places the SDP source’s stream where it arrived, over what a wrongly latched source left there', () => {
    const path = new ReceivePath({ media: MEDIA, expected: OFFER });
    path.allowAnySource();
    // A stray stream, latched after priming, its packets late in their frames (150 samples in).
    for (let i = 0; i < 10; i++)
      path.receive(rtp(100 + i, 500 + i, 0x5a1e), STALE.address, STALE.port, 950 + i * F);
    expect(path.latched).toEqual(STALE);
    // The caller starts 10 samples into the frame after the stray's last one.
    for (let k = 0; k < 10; k++)
      path.receive(rtp(1 + k, k), OFFER.address, OFFER.port, 800 + (10 + k) * F + 10);
    const out: number[] = [];
    path.flush(800 + 25 * F, (f) => out.push(...f));
    const ulaw = (k: number) => Array.from(payloadFor(k), (b) => ULAW_TO_LINEAR[b]!);
    expect(indexOf(out, ulaw(0))).toBe(800 + 10 * F);
    expect(indexOf(out, ulaw(9))).toBe(800 + 19 * F);
    expect(path.stats).toMatchObject({ latches: 2, ssrcChange: 1, late: 0 });
  });

  it('latches an unknown source (NAT) only after 3 valid packets in sequence, and keeps its first two', () => {
    const path = new ReceivePath({ media: MEDIA, expected: OFFER });
    path.allowAnySource();
    expect(path.receive(rtp(10, 0, 0x42), NAT.address, NAT.port, 800)).toBe('foreign');
    // A stray from elsewhere in between does not matter, nor does a broken sequence restart count.
    expect(path.receive(rtp(7, 90, 0x99), STALE.address, STALE.port, 850)).toBe('foreign');
    expect(path.receive(rtp(11, 1, 0x42), NAT.address, NAT.port, 960)).toBe('foreign');
    expect(path.latched).toBeUndefined();
    expect(path.receive(rtp(12, 2, 0x42), NAT.address, NAT.port, 1120)).toBe('audio');
    expect(path.latched).toEqual(NAT);
    expect(path.latchInfo).toEqual({ ...NAT, reason: 'symmetric' });
    expect(path.stats).toMatchObject({ received: 3, foreignSource: 1, latches: 1 });
    const out: number[] = [];
    path.flush(1500, (f) => out.push(...f));
    const ulaw = (k: number) => Array.from(payloadFor(k), (b) => ULAW_TO_LINEAR[b]!);
    expect(indexOf(out, [...ulaw(0), ...ulaw(1), ...ulaw(2)])).toBe(800);
  });

  it('never latches a source whose packets are not in sequence (a scanner, garbage)', () => {
    const path = new ReceivePath({ media: MEDIA, expected: OFFER });
    path.allowAnySource();
    const random = rng(5);
    for (let i = 0; i < 500; i++) {
      const seq = Math.floor(random() * 65536);
      expect(path.receive(rtp(seq, i % 50, 0x42), NAT.address, NAT.port, i * 10)).toBe('foreign');
    }
    expect(path.latched).toBeUndefined();
  });
});
