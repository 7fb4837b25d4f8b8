import { describe, expect, it } from 'vitest';
import { parseTelephoneEvent } from '../../src/media/dtmf.js';
import { ULAW_SILENCE, ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { SendPath } from '../../src/media/send-path.js';
import { parseRtp, type RtpPacket } from '../../src/rtp/packet.js';

const PCMU = { codec: 'PCMU' as const, payloadType: 0, telephoneEventPt: 101, ptime: 20 };

function run(path: SendPath, fromMs: number, toMs: number): RtpPacket[] {
  const out: RtpPacket[] = [];
  for (let t = fromMs; t <= toMs; t += 1) {
    path.due(t, (b) => {
      const p = parseRtp(b);
      if (typeof p === 'string') throw new Error(p);
      out.push(p);
    });
  }
  return out;
}

const constant = (value: number, frames: number) => {
  let left = frames;
  return { nextFrame: () => (left-- > 0 ? new Int16Array(160).fill(value) : undefined) };
};

describe('SendPath', () => {
  it('primes with a silence frame (marker set), then sends one packet per ptime with contiguous timestamps', () => {
    const path = new SendPath({ media: PCMU });
    const prime = parseRtp(path.prime(0)) as RtpPacket;
    expect(prime.payloadType).toBe(0);
    expect(prime.payload.every((b) => b === ULAW_SILENCE)).toBe(true);
    expect(prime.marker).toBe(true);
    const packets = run(path, 0, 200);
    expect(packets).toHaveLength(10);
    packets.forEach((p, i) => {
      expect(p.payloadType).toBe(0);
      expect((p.timestamp - prime.timestamp) >>> 0).toBe(160 * (i + 1));
      expect((p.sequenceNumber - prime.sequenceNumber) & 0xffff).toBe(i + 1);
      expect(p.payload.every((b) => b === ULAW_SILENCE)).toBe(true);
    });
  });

  it('mixes its sources (clipped sum) and falls back to silence when they run dry', () => {
    const path = new SendPath({ media: PCMU });
    path.addSource(constant(1000, 2));
    path.addSource(constant(2000, 1));
    const [a, b, c] = run(path, 0, 40);
    const level = (p: RtpPacket | undefined) => ULAW_TO_LINEAR[p?.payload[0] ?? 0];
    expect(Math.abs((level(a) as number) - 3000)).toBeLessThan(100);
    expect(Math.abs((level(b) as number) - 1000)).toBeLessThan(40);
    expect(c?.payload.every((x) => x === ULAW_SILENCE)).toBe(true);
  });

  it('sends DTMF as events stamped with their start, muting the audio, then resumes the audio', async () => {
    const path = new SendPath({ media: PCMU });
    path.addSource(constant(1000, 1000));
    const done = new Promise<void>((resolve) => path.sendDtmf('1', { durationMs: 60, gapMs: 20 }, resolve));
    const packets = run(path, 0, 300);
    await done;
    const events = packets.filter((p) => p.payloadType === 101);
    expect(events).toHaveLength(3 + 2);
    expect(new Set(events.map((p) => p.timestamp)).size).toBe(1);
    expect(events.map((p) => parseTelephoneEvent(p.payload)?.duration)).toEqual([160, 320, 480, 480, 480]);
    expect(events[0]?.marker).toBe(true);
    const after = packets[events.length]; // the gap: muted
    expect(after?.payload.every((x) => x === ULAW_SILENCE)).toBe(true);
    const resumed = packets[events.length + 1];
    expect(resumed?.payload.every((x) => x === ULAW_SILENCE)).toBe(false);
  });

  it('skips ahead after a stall instead of bursting the backlog, with the marker bit', () => {
    const path = new SendPath({ media: PCMU });
    run(path, 0, 40);
    const burst: RtpPacket[] = [];
    path.due(1000, (b) => burst.push(parseRtp(b) as RtpPacket));
    expect(burst).toHaveLength(1);
    expect(burst[0]?.marker).toBe(true);
  });

  it('with a higher catch-up limit, a stall shorter than it sends the backlog with its true timestamps', () => {
    const path = new SendPath({ media: PCMU, maxCatchUpMs: 1000 });
    const before = run(path, 0, 40);
    const backlog: RtpPacket[] = [];
    path.due(500, (b) => backlog.push(parseRtp(b) as RtpPacket));
    // 60 ms … 500 ms: every frame, none skipped, timestamps 160 apart.
    expect(backlog).toHaveLength(23);
    const last = before.at(-1)!;
    backlog.forEach((p, i) => {
      expect((p.timestamp - last.timestamp) >>> 0).toBe(160 * (i + 1));
    });
    expect(backlog[0]?.marker).toBe(false);
    // Beyond the limit it still skips ahead.
    const later: RtpPacket[] = [];
    path.due(2000, (b) => later.push(parseRtp(b) as RtpPacket));
    expect(later).toHaveLength(1);
    expect(later[0]?.marker).toBe(true);
  });

  it('a throwing source is reported once and skipped', () => {
    const errors: unknown[] = [];
    const path = new SendPath({ media: PCMU, onSourceError: (e) => errors.push(e) });
    path.addSource({
      nextFrame: () => {
        throw new Error('boom');
      },
    });
    expect(run(path, 0, 100)).toHaveLength(6);
    expect(errors).toHaveLength(1);
  });
});

describe('SendPath: what an RTCP sender report says about our stream (RFC 3550 6.4.1)', () => {
  it('counts payload octets and maps the timeline to our RTP clock', () => {
    const path = new SendPath({ media: PCMU });
    const prime = parseRtp(path.prime(0)) as RtpPacket;
    const packets = run(path, 0, 100);
    expect(path.octetsSent).toBe(prime.payload.length + packets.length * 160);
    // frame n (due at n · 20 ms) carries exactly the timestamp the mapping gives for its due time
    packets.forEach((p, i) => {
      expect(path.rtpTimestampAt((i + 1) * 20)).toBe(p.timestamp);
    });
    expect((path.rtpTimestampAt(1000) - prime.timestamp) >>> 0).toBe(8000);
  });
});
