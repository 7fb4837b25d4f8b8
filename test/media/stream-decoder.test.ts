import { beforeAll, describe, expect, it } from 'vitest';
import { CODECS } from '../../src/media/codec.js';
import { ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { inspectOpusPacket, loadOpus, OpusEncoder } from '../../src/media/opus.js';
import { StreamDecoder } from '../../src/media/stream-decoder.js';

const F = 320;

/** Voiced-speech-like: a 150 Hz fundamental with vibrato and twelve harmonics. */
function voice(rate: number, seconds: number): Int16Array {
  const out = new Int16Array(Math.round(rate * seconds));
  let phase = 0;
  for (let i = 0; i < out.length; i++) {
    phase += (2 * Math.PI * (150 + 20 * Math.sin((2 * Math.PI * 3 * i) / rate))) / rate;
    let v = 0;
    for (let h = 1; h <= 12; h++) v += Math.sin(h * phase) / h;
    out[i] = Math.round(6000 * v);
  }
  return out;
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}

const peak = (pcm: Int16Array) => pcm.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('StreamDecoder', () => {
  let packets: Uint8Array[] = [];
  /** Every packet decoded: what a lossless call plays. */
  let reference: Int16Array[] = [];

  beforeAll(async () => {
    await loadOpus();
    const enc = new OpusEncoder(16000, { fec: true });
    const pcm = voice(16000, 2);
    packets = [];
    for (let at = 0; at + F <= pcm.length; at += F) packets.push(enc.encode(pcm.subarray(at, at + F)));
    const dec = new StreamDecoder(CODECS.opus, 16000);
    reference = packets.map((p) => dec.decode(p)!);
  });

  /** The first packet from `from` on whose successor carries FEC. */
  const fecAfter = (from: number) => {
    let k = from;
    while (!inspectOpusPacket(packets[k + 1]!)?.hasFec) k++;
    return k;
  };

  it('a single loss before a packet with FEC is rebuilt from it, close to the original', () => {
    const lost = fecAfter(20);
    const d = new StreamDecoder(CODECS.opus, 16000);
    for (let k = 0; k < lost; k++) d.decode(packets[k]!);
    const hole = d.fill(F, packets[lost + 1]);
    expect(hole).toHaveLength(F);
    expect(d.stats).toMatchObject({ fecSamples: F, concealedSamples: 0, silentSamples: 0 });
    expect(correlation(hole, reference[lost]!)).toBeGreaterThan(0.9);
    // The packet after the hole then decodes as usual.
    expect(correlation(d.decode(packets[lost + 1]!)!, reference[lost + 1]!)).toBeGreaterThan(0.9);
  });

  it('three losses: PLC for the first two, FEC for the one just before the next packet', () => {
    const next = fecAfter(30) + 1;
    const d = new StreamDecoder(CODECS.opus, 16000);
    for (let k = 0; k < next - 3; k++) d.decode(packets[k]!);
    const hole = d.fill(3 * F, packets[next]);
    expect(d.stats).toMatchObject({ concealedSamples: 2 * F, fecSamples: F, silentSamples: 0 });
    expect(peak(hole.subarray(0, F))).toBeGreaterThan(1000); // PLC continues the voice
    // The FEC frame beats a third frame of PLC (which has drifted from the voice by then).
    const plcOnly = new StreamDecoder(CODECS.opus, 16000, { maxConcealMs: 100 });
    for (let k = 0; k < next - 3; k++) plcOnly.decode(packets[k]!);
    const plcHole = plcOnly.fill(3 * F);
    const fecCorr = correlation(hole.subarray(2 * F), reference[next - 1]!);
    expect(fecCorr).toBeGreaterThan(correlation(plcHole.subarray(2 * F), reference[next - 1]!));
    expect(fecCorr).toBeGreaterThan(0.5);
  });

  it('a long hole: at most maxConcealMs of PLC, then silence', () => {
    const d = new StreamDecoder(CODECS.opus, 16000, { maxConcealMs: 40 });
    for (let k = 0; k < 20; k++) d.decode(packets[k]!);
    const hole = d.fill(16000); // a second with nothing after it yet
    expect(d.stats).toMatchObject({ concealedSamples: 640, silentSamples: 16000 - 640, fecSamples: 0 });
    expect(peak(hole.subarray(0, 320))).toBeGreaterThan(500);
    expect(peak(hole.subarray(640))).toBe(0);
    // The hole's PLC budget is spent across calls to fill() until a packet decodes again.
    d.fill(F);
    expect(d.stats.concealedSamples).toBe(640);
    d.decode(packets[20]!);
    d.fill(F);
    expect(d.stats.concealedSamples).toBe(640 + F);
  });

  it('before any packet a hole is silence (nothing to continue, no FEC to trust)', () => {
    const d = new StreamDecoder(CODECS.opus, 16000);
    expect(peak(d.fill(960, packets[5]))).toBe(0);
    expect(d.stats).toMatchObject({ silentSamples: 960, concealedSamples: 0, fecSamples: 0 });
  });

  it('after reset() (a new SSRC) the old signal is not continued', () => {
    const d = new StreamDecoder(CODECS.opus, 16000);
    for (let k = 0; k < 10; k++) d.decode(packets[k]!);
    d.reset();
    expect(peak(d.fill(F))).toBe(0);
  });

  it('a malformed payload is undefined and counted invalid; decoding goes on', () => {
    const d = new StreamDecoder(CODECS.opus, 16000);
    expect(d.decode(new Uint8Array(0))).toBeUndefined();
    expect(d.decode(Uint8Array.of(0x4b, 0x00))).toBeUndefined();
    expect(d.decode(packets[0]!)).toHaveLength(F);
    expect(d.stats).toMatchObject({ invalid: 2, decoded: 1 });
    d.close();
  });

  it('decodes at 8 kHz straight from a 16 kHz stream', () => {
    const d = new StreamDecoder(CODECS.opus, 8000);
    expect(d.decode(packets[0]!)).toHaveLength(160);
    d.decode(packets[1]!);
    expect(d.fill(160, packets[3])).toHaveLength(160);
  });

  it('G.711: table decode, and holes are silence', () => {
    const d = new StreamDecoder(CODECS.PCMU, 8000);
    const payload = Uint8Array.from({ length: 160 }, (_, i) => (i * 7) & 0xff);
    expect(d.decode(payload)).toEqual(Int16Array.from(payload, (b) => ULAW_TO_LINEAR[b]!));
    expect(peak(d.fill(320, payload))).toBe(0);
    expect(d.stats).toMatchObject({ decoded: 1, silentSamples: 320, concealedSamples: 0, fecSamples: 0 });
  });
});
