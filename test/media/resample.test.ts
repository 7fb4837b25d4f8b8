import libsamplerate from '@alexanderolsen/libsamplerate-js';
import { describe, expect, it } from 'vitest';
import { dominantFrequency, goertzelPower } from '../../src/media/goertzel.js';
import { StreamResampler } from '../../src/media/resample.js';

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

/** The same converter over the whole signal at once (what the streamed output must match, late by the delay). */
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

/** Largest difference between a (int16 scale) and b (float scale). */
function maxError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]! * 32768));
  return max;
}

/** Largest step between neighbouring samples: a click shows as a jump far above the signal's slope. */
function maxStep(pcm: ArrayLike<number>, from: number, to: number): number {
  let max = 0;
  for (let i = from + 1; i < to; i++) max = Math.max(max, Math.abs(pcm[i]! - pcm[i - 1]!));
  return max;
}

describe('StreamResampler', () => {
  it.each([
    [16000, 8000],
    [8000, 16000],
  ] as const)(
    '%i → %i Hz: exact frames, continuous across them, equal to a one-shot resample after the delay',
    async (from, to) => {
      const input = tones(from, 2, [[1000, 12000]]);
      const r = await StreamResampler.create(from, to);
      const streamed = stream(r, input);
      const delay = r.delaySamples;
      expect(delay).toBeGreaterThan(0);
      expect(delay).toBeLessThan(to / 100); // under 10 ms
      const reference = await oneShot(input, from, to);
      const n = to; // one second, from 0.5 s on
      const a = streamed.subarray(to / 2 + delay, to / 2 + delay + n);
      const b = reference.subarray(to / 2, to / 2 + n);
      expect(correlation(a, b)).toBeGreaterThan(0.999);
      // No clicks: no step larger than a 1 kHz sine of this amplitude can take (2π·f·A/fs), plus rounding.
      const slope = (2 * Math.PI * 1000 * 12000) / to;
      expect(maxStep(streamed, delay + 8, streamed.length)).toBeLessThan(slope * 1.05);
      expect(maxError(a, b)).toBeLessThan(30); // of 12 000: rounding to int16 and the converter's own noise
      expect(r.underruns).toBe(0);
      r.close();
    },
  );

  it('is what makes the boundaries smooth: resampling each frame on its own clicks', async () => {
    const input = tones(16000, 0.2, [[1000, 12000]]);
    const parts: Float32Array[] = [];
    for (let k = 0; k < 10; k++)
      parts.push(await oneShot(input.subarray(k * 320, (k + 1) * 320), 16000, 8000));
    const naive = Float32Array.from(
      parts.flatMap((p) => [...p]),
      (v) => v * 32768,
    );
    // Each frame's filter starts and ends on silence: the signal dips at every boundary.
    const reference = await oneShot(input, 16000, 8000);
    const naiveError = maxError(naive.subarray(160, 1440), reference.subarray(160, 1440));
    const r = await StreamResampler.create(16000, 8000);
    const streamed = stream(r, input).subarray(r.delaySamples);
    const streamedError = maxError(streamed.subarray(160, 1440), reference.subarray(160, 1440));
    r.close();
    expect(naiveError).toBeGreaterThan(10 * streamedError);
    expect(naiveError).toBeGreaterThan(300); // a 50 Hz buzz at 1/40 of the tone's level and more
  });

  it('16 → 8 kHz suppresses what would alias (a low-pass first, not sample dropping)', async () => {
    // 6 kHz sampled at 8 kHz would fold to 2 kHz.
    const input = tones(16000, 1, [
      [1000, 8000],
      [6000, 8000],
    ]);
    const r = await StreamResampler.create(16000, 8000);
    const out = stream(r, input).subarray(800, 7600);
    const tone = goertzelPower(out, 8000, 1000);
    const alias = goertzelPower(out, 8000, 2000);
    expect(10 * Math.log10(alias / tone)).toBeLessThan(-60);
    expect(Math.sqrt(4 * tone)).toBeCloseTo(8000, -2); // amplitude kept
    r.close();
  });

  it('keeps the telephone band: a 3.4 kHz tone passes within 0.5 dB', async () => {
    const r = await StreamResampler.create(16000, 8000);
    const out = stream(r, tones(16000, 1, [[3400, 10000]])).subarray(800, 7600);
    const { frequency } = dominantFrequency(out, 8000, 3000, 3800);
    expect(Math.abs(frequency - 3400)).toBeLessThan(10);
    const gainDb = 20 * Math.log10(Math.sqrt(4 * goertzelPower(out, 8000, 3400)) / 10000);
    expect(Math.abs(gainDb)).toBeLessThan(0.5);
    r.close();
  });

  it('flush() returns the held-back tail, so nothing of the input is lost', async () => {
    const input = tones(16000, 0.1, [[500, 10000]]);
    const r = await StreamResampler.create(16000, 8000);
    const body = stream(r, input);
    const tail = r.flush();
    expect(tail).toHaveLength(r.delaySamples);
    const all = new Int16Array(body.length + tail.length);
    all.set(body);
    all.set(tail, body.length);
    const reference = await oneShot(input, 16000, 8000);
    const aligned = all.subarray(r.delaySamples);
    expect(aligned).toHaveLength(800);
    expect(correlation(aligned.subarray(40, 800), reference.subarray(40, 800))).toBeGreaterThan(0.999);
    r.close();
    r.close();
    expect(() => r.process(new Int16Array(320))).toThrow(/closed/);
  });

  it('the same rate in and out is a pass-through with no delay', async () => {
    const r = await StreamResampler.create(16000, 16000);
    const frame = tones(16000, 0.02, [[440, 1000]]);
    expect(r.process(frame)).toEqual(frame);
    expect(r.delaySamples).toBe(0);
    expect(r.flush()).toHaveLength(0);
    r.close();
  });
});
