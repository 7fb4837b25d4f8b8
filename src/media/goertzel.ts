/**
 * Goertzel: the power of one frequency in a block of samples, the classic
 * single-bin DFT used by DTMF and tone detectors (and by `smoke` to check
 * which tones were heard). Pure.
 */

/** Power of `frequency` in `samples` (any scale), normalised by the block length squared. */
export function goertzelPower(samples: ArrayLike<number>, sampleRate: number, frequency: number): number {
  const n = samples.length;
  if (n === 0) return 0;
  const coeff = 2 * Math.cos((2 * Math.PI * frequency) / sampleRate);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const s0 = samples[i]! + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n);
}

/** Power of a block (mean square), on the same scale as goertzelPower×2 for a pure tone. */
export function meanSquare(samples: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i]! * samples[i]!;
  return samples.length === 0 ? 0 : sum / samples.length;
}

/**
 * The strongest frequency between `min` and `max` Hz in `samples`, searched
 * on a grid of at most `maxStep` Hz and refined by a parabola through the peak's
 * neighbours. Returns the frequency and the share of the block's power it
 * explains (1 for a pure tone).
 */
export function dominantFrequency(
  samples: ArrayLike<number>,
  sampleRate: number,
  min: number,
  max: number,
  maxStep = 5,
): { frequency: number; purity: number } {
  // At least two grid points per main lobe (sampleRate / n wide), or the peak can fall between them.
  const step = Math.min(maxStep, sampleRate / Math.max(1, samples.length) / 2);
  let best = min;
  let bestPower = -1;
  const powers: number[] = [];
  for (let f = min; f <= max; f += step) {
    const p = goertzelPower(samples, sampleRate, f);
    powers.push(p);
    if (p > bestPower) {
      bestPower = p;
      best = f;
    }
  }
  const i = Math.round((best - min) / step);
  const left = powers[i - 1];
  const right = powers[i + 1];
  let frequency = best;
  if (left !== undefined && right !== undefined) {
    const denom = left - 2 * bestPower + right;
    if (denom !== 0) frequency = best + (step * 0.5 * (left - right)) / denom;
  }
  // Judge purity at the refined frequency: between grid points the tone's power is under-read.
  const power = Math.max(bestPower, goertzelPower(samples, sampleRate, frequency));
  const total = meanSquare(samples);
  return { frequency, purity: total === 0 ? 0 : Math.min(1, (2 * power) / total) };
}
