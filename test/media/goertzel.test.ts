import { describe, expect, it } from 'vitest';
import { dominantFrequency, goertzelPower } from '../../src/media/goertzel.js';

const tone = (f: number, n: number, rate = 8000, amp = 10000) =>
  Float64Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * f * i) / rate));

describe('Goertzel', () => {
  it('measures a pure tone at its frequency and almost nothing elsewhere', () => {
    const x = tone(1000, 800);
    expect(Math.sqrt(4 * goertzelPower(x, 8000, 1000))).toBeCloseTo(10000, -2);
    expect(goertzelPower(x, 8000, 1300) / goertzelPower(x, 8000, 1000)).toBeLessThan(1e-3);
  });

  it.each([440, 697, 1209, 1633, 2750])('finds %i Hz within 0.5%% with a pure result', (f) => {
    const x = tone(f, 1600);
    const found = dominantFrequency(x, 8000, 300, 3400, 10);
    expect(Math.abs(found.frequency - f) / f).toBeLessThan(0.005);
    expect(found.purity).toBeGreaterThan(0.9);
  });

  it('reports low purity for noise', () => {
    let seed = 7;
    const noise = Float64Array.from({ length: 1600 }, () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 16) - 32768;
    });
    expect(dominantFrequency(noise, 8000, 300, 3400, 10).purity).toBeLessThan(0.2);
  });
});
