import libsamplerate from '@alexanderolsen/libsamplerate-js';
import { describe, expect, it } from 'vitest';
import { dominantFrequency, goertzelPower } from '../../src/media/goertzel.js';
import { type ResampleQuality, StreamResampler } from '../../src/media/resample.js';

function tones(rate: number, seconds: number, parts: [freq: number, amp: number][]): Int16Array {
  return Int16Array.from({ length: Math.round(rate * seconds) }, (_, i) =>
    Math.round(parts.reduce((v, [f, a]) => v + a * Math.sin((2 * Math.PI * f * i) / rate), 0)),
  );
}

/** Streams `pcm` through the resampler 20 ms at a time, checking every frame's length. */
function stream(r: StreamResampler, pcm: Int16Array): Int16Array {
  const inFrame = r.from / 50;
  const outFrame = r.to / 50;
  const out = new Int16Array((pcm.length / inFrame) * outFrame);
  for (let k = 0; k * inFrame < pcm.length; k++) {
    const frame = r.process(pcm.subarray(k * inFrame, (k + 1) * inFrame));
    expect(frame).toHaveLength(outFrame);
    out.set(frame, k * outFrame);
  }
  return out;
}

/** libsamplerate over the whole signal at once (what its streamed output must match, late by the delay). */
async function oneShot(pcm: Int16Array, from: number, to: number): Promise<Float32Array> {
  const src = await libsamplerate.create(1, from, to, {
    converterType: libsamplerate.ConverterType.SRC_SINC_MEDIUM_QUALITY,
  });
  try {
    return src.simple(Float32Array.from(pcm, (s) => s / 32768));
  } finally {
    src.destroy();
  }
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
  return ab / Math.sqrt(aa * bb);
}

/** Largest difference between a and b × scale. */
function maxError(a: ArrayLike<number>, b: ArrayLike<number>, scale = 1): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]! * scale));
  return max;
}

/** Largest step between neighbouring samples: a click shows as a jump far above the signal's slope. */
function maxStep(pcm: ArrayLike<number>, from: number, to: number): number {
  let max = 0;
  for (let i = from + 1; i < to; i++) max = Math.max(max, Math.abs(pcm[i]! - pcm[i - 1]!));
  return max;
}

const QUALITIES: ResampleQuality[] = ['halfband', 'medium'];
const DIRECTIONS = [
  [16000, 8000],
  [8000, 16000],
] as const;

describe.each(QUALITIES)('StreamResampler, %s', (quality) => {
  it.each(DIRECTIONS)(
    '%i → %i Hz: exact frames, no clicks at their boundaries, the ideal tone after the delay',
    async (from, to) => {
      const input = tones(from, 2, [[1000, 12000]]);
      const r = await StreamResampler.create(from, to, { quality });
      const streamed = stream(r, input);
      const delay = r.delaySamples;
      expect(delay).toBeGreaterThan(0);
      expect(delay).toBeLessThan(to / 100); // under 10 ms
      // What a perfect converter gives: the same tone sampled at the output rate.
      const ideal = tones(to, 2, [[1000, 12000]]);
      const a = streamed.subarray(to / 2 + delay, to / 2 + delay + to);
      const b = ideal.subarray(to / 2, to / 2 + to);
      expect(correlation(a, b)).toBeGreaterThan(0.9999);
      expect(maxError(a, b)).toBeLessThan(40); // of 12 000
      // No clicks: no step larger than a 1 kHz sine of this amplitude can take (2π·f·A/fs).
      const slope = (2 * Math.PI * 1000 * 12000) / to;
      expect(maxStep(streamed, delay + 64, streamed.length)).toBeLessThan(slope * 1.01);
      expect(r.underruns).toBe(0);
      r.close();
    },
  );

  it('16 → 8 kHz suppresses what would alias (a low-pass first, not sample dropping)', async () => {
    // 6 kHz sampled at 8 kHz would fold to 2 kHz, 4.8 kHz to 3.2 kHz.
    const input = tones(16000, 1, [
      [1000, 8000],
      [6000, 8000],
      [4800, 8000],
    ]);
    const r = await StreamResampler.create(16000, 8000, { quality });
    const out = stream(r, input).subarray(800, 7600);
    const tone = goertzelPower(out, 8000, 1000);
    expect(10 * Math.log10(goertzelPower(out, 8000, 2000) / tone)).toBeLessThan(-60);
    expect(10 * Math.log10(goertzelPower(out, 8000, 3200) / tone)).toBeLessThan(-60);
    expect(Math.sqrt(4 * tone)).toBeCloseTo(8000, -2); // amplitude kept
    r.close();
  });

  it('8 → 16 kHz leaves no image above 4 kHz', async () => {
    const r = await StreamResampler.create(8000, 16000, { quality });
    const out = stream(r, tones(8000, 1, [[1000, 10000]])).subarray(1600, 15200);
    const tone = goertzelPower(out, 16000, 1000);
    // Zero-stuffing alone would mirror 1 kHz to 7 kHz at full level.
    expect(10 * Math.log10(goertzelPower(out, 16000, 7000) / tone)).toBeLessThan(-60);
    r.close();
  });

  it('keeps the telephone band: a 3.4 kHz tone passes within 0.5 dB', async () => {
    const r = await StreamResampler.create(16000, 8000, { quality });
    const out = stream(r, tones(16000, 1, [[3400, 10000]])).subarray(800, 7600);
    const { frequency } = dominantFrequency(out, 8000, 3000, 3800);
    expect(Math.abs(frequency - 3400)).toBeLessThan(10);
    const gainDb = 20 * Math.log10(Math.sqrt(4 * goertzelPower(out, 8000, 3400)) / 10000);
    expect(Math.abs(gainDb)).toBeLessThan(0.5);
    r.close();
  });

  it('flush() returns the held-back tail, so nothing of the input is lost', async () => {
    const input = tones(16000, 0.1, [[500, 10000]]);
    const r = await StreamResampler.create(16000, 8000, { quality });
    const body = stream(r, input);
    const tail = r.flush();
    expect(tail).toHaveLength(r.delaySamples);
    const all = new Int16Array(body.length + tail.length);
    all.set(body);
    all.set(tail, body.length);
    const aligned = all.subarray(r.delaySamples);
    expect(aligned).toHaveLength(800);
    const ideal = tones(8000, 0.1, [[500, 10000]]);
    // Away from the start and the end (where the filter saw silence around the signal).
    expect(correlation(aligned.subarray(40, 760), ideal.subarray(40, 760))).toBeGreaterThan(0.999);
    r.close();
    r.close();
    expect(() => r.process(new Int16Array(320))).toThrow(/closed/);
  });
});

describe('StreamResampler', () => {
  it('with libsamplerate, streaming equals a one-shot resample after the delay', async () => {
    const input = tones(16000, 2, [[1000, 12000]]);
    const r = await StreamResampler.create(16000, 8000, { quality: 'medium' });
    const streamed = stream(r, input);
    const reference = await oneShot(input, 16000, 8000);
    const a = streamed.subarray(4000 + r.delaySamples, 12000 + r.delaySamples);
    expect(correlation(a, reference.subarray(4000, 12000))).toBeGreaterThan(0.999);
    expect(maxError(a, reference.subarray(4000, 12000), 32768)).toBeLessThan(30);
    r.close();
  });

  it('is what makes the boundaries smooth: resampling each frame on its own clicks', async () => {
    const input = tones(16000, 0.2, [[1000, 12000]]);
    const parts: Float32Array[] = [];
    for (let k = 0; k < 10; k++)
      parts.push(await oneShot(input.subarray(k * 320, (k + 1) * 320), 16000, 8000));
    const naive = Float32Array.from(
      parts.flatMap((p) => [...p]),
      (v) => v * 32768,
    );
    const ideal = tones(8000, 0.2, [[1000, 12000]]);
    // Each frame's filter starts and ends on silence: the signal dips at every boundary.
    expect(maxError(naive.subarray(160, 1440), ideal.subarray(160, 1440))).toBeGreaterThan(300);
  });

  it('the same rate in and out is a pass-through with no delay', async () => {
    const r = await StreamResampler.create(16000, 16000);
    const frame = tones(16000, 0.02, [[440, 1000]]);
    expect(r.process(frame)).toEqual(frame);
    expect(r.delaySamples).toBe(0);
    expect(r.flush()).toHaveLength(0);
    r.close();
  });

  it('the half-band filter is the default, with its delay known from the start', async () => {
    const down = await StreamResampler.create(16000, 8000);
    const up = await StreamResampler.create(8000, 16000);
    expect(down.delaySamples).toBe(15); // 1.875 ms
    expect(up.delaySamples).toBe(31); // 1.94 ms
  });
});
