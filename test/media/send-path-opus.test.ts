import { beforeAll, describe, expect, it } from 'vitest';
import { dominantFrequency } from '../../src/media/goertzel.js';
import { inspectOpusPacket, loadOpus, OpusDecoder, opusSilence } from '../../src/media/opus.js';
import { type SendMedia, SendPath } from '../../src/media/send-path.js';
import { parseRtp, type RtpPacket } from '../../src/rtp/packet.js';

/** opus/48000/2 as negotiated: 48 kHz RTP clock, 16 kHz working rate. */
const OPUS: SendMedia = {
  codec: 'opus',
  payloadType: 111,
  telephoneEventPt: 101,
  ptime: 20,
  sampleRate: 16000,
};

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

/** `frames` 20 ms frames of a tone at 16 kHz, then nothing. */
function toneSource(freq: number, frames: number) {
  let k = 0;
  return {
    sampleRate: 16000 as const,
    nextFrame: () => {
      if (k >= frames) return undefined;
      const f = Int16Array.from({ length: 320 }, (_, i) =>
        Math.round(8000 * Math.sin((2 * Math.PI * freq * (k * 320 + i)) / 16000)),
      );
      k++;
      return f;
    },
  };
}

function decodeAll(packets: RtpPacket[], rate = 16000): Int16Array {
  const dec = new OpusDecoder(rate);
  const parts = packets.map((p) => {
    const r = dec.decode(p.payload);
    if (!r.ok) throw new Error(r.error);
    return r.pcm;
  });
  dec.close();
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const peak = (pcm: Int16Array) => pcm.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('SendPath with Opus', () => {
  beforeAll(() => loadOpus());

  it('stamps packets on the 48 kHz clock (RFC 7587 4.1) and sends a fixed silence packet when there is no audio', () => {
    const path = new SendPath({ media: OPUS });
    const prime = parseRtp(path.prime(0)) as RtpPacket;
    // The prime is a silence packet in the codec, never an event (issue 9: heard as a key press).
    expect(prime.payloadType).toBe(111);
    const packets = run(path, 0, 200);
    expect(packets).toHaveLength(10);
    const silence = opusSilence(16000, 320);
    packets.forEach((p, i) => {
      expect(p.payloadType).toBe(111);
      expect((p.timestamp - prime.timestamp) >>> 0).toBe(960 * (i + 1));
      expect([...p.payload]).toEqual([...silence]);
    });
    expect(peak(decodeAll(packets))).toBeLessThan(50);
    path.close();
  });

  it("runs RingCentral's OPUS/16000 on a 16 kHz clock", () => {
    const path = new SendPath({ media: { ...OPUS, payloadType: 109, clockRate: 16000 } });
    const packets = run(path, 0, 60);
    expect((packets[1]!.timestamp - packets[0]!.timestamp) >>> 0).toBe(320);
    path.close();
  });

  it('encodes talk-back at 16 kHz; the far end decodes the tone, with silence before and after', () => {
    const path = new SendPath({ media: OPUS });
    const before = run(path, 0, 100); // silence
    path.addSource(toneSource(700, 25)); // 0.5 s
    const packets = [...before, ...run(path, 101, 1000)];
    const pcm = decodeAll(packets);
    const start = before.length * 320;
    expect(peak(pcm.subarray(0, start))).toBeLessThan(50);
    const body = pcm.subarray(start + 1600, start + 7200);
    const { frequency, purity } = dominantFrequency(body, 16000, 300, 2000);
    expect(Math.abs(frequency - 700) / 700).toBeLessThan(0.02);
    expect(purity).toBeGreaterThan(0.9);
    // The tone starts within a frame of its first packet and never exceeds full scale by glitching.
    expect(peak(pcm.subarray(start, start + 640))).toBeGreaterThan(2000);
    expect(peak(pcm)).toBeLessThan(12000);
    // After the source ran dry, silence again (fixed packets).
    expect(peak(pcm.subarray(start + 25 * 320 + 960))).toBeLessThan(200);
    path.close();
  });

  it('adds in-band FEC when the far end decodes it', () => {
    const path = new SendPath({ media: { ...OPUS, encoder: { fec: true } } });
    path.addSource(toneSource(300, 30));
    const packets = run(path, 0, 600).map((p) => inspectOpusPacket(p.payload)!);
    expect(packets.filter((i) => i.hasFec).length).toBeGreaterThan(10);
    path.close();
  });

  it.each([
    [40, 40],
    [60, 60],
    [30, 20],
    [120, 60],
  ])('a=ptime:%i sends %i ms Opus packets', (ptime, ms) => {
    const path = new SendPath({ media: { ...OPUS, ptime } });
    path.addSource(toneSource(500, 50));
    const packets = run(path, 0, 400);
    expect(path.ptime).toBe(ms);
    expect((packets[2]!.timestamp - packets[1]!.timestamp) >>> 0).toBe(48 * ms);
    expect(inspectOpusPacket(packets[2]!.payload)?.samples48k).toBe(48 * ms);
    path.close();
  });

  it('primes with an Opus silence packet when no telephone-event was negotiated', () => {
    const path = new SendPath({ media: { ...OPUS, telephoneEventPt: undefined } });
    const prime = parseRtp(path.prime(0)) as RtpPacket;
    expect(prime.payloadType).toBe(111);
    expect([...prime.payload]).toEqual([...opusSilence(16000, 320)]);
    path.close();
  });

  it('a re-INVITE from PCMU to Opus switches the encoder, clock and frame size', () => {
    const path = new SendPath({ media: { codec: 'PCMU', payloadType: 0, ptime: 20 } });
    const g711 = run(path, 0, 40);
    expect(g711[0]!.payload).toHaveLength(160);
    path.update(OPUS, 41);
    path.addSource(toneSource(500, 10));
    const opus = run(path, 41, 120);
    expect(opus.every((p) => p.payloadType === 111)).toBe(true);
    expect((opus[2]!.timestamp - opus[1]!.timestamp) >>> 0).toBe(960);
    expect(inspectOpusPacket(opus[1]!.payload)?.samples48k).toBe(960);
    path.close();
    path.close();
  });

  it('the silence packet is one per rate and frame size, and decodes to silence on its own', () => {
    expect(opusSilence(16000, 320)).toBe(opusSilence(16000, 320));
    expect(opusSilence(8000, 160)).not.toBe(opusSilence(16000, 320));
    const dec = new OpusDecoder(8000);
    for (let i = 0; i < 20; i++) {
      const r = dec.decode(opusSilence(8000, 160));
      expect(r.ok && peak(r.pcm)).toBeLessThan(50);
    }
  });
});
