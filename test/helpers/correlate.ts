/**
 * Where a reference signal sits in a longer recording, and how alike the two
 * are there: for lossy paths (Opus) where sample-exact comparison is
 * meaningless. A coarse search on 10 ms energy envelopes finds the lag
 * cheaply; the normalized cross-correlation of the samples is then
 * maximised within ±20 ms of it (a codec's delay is a few ms, not a frame).
 */

export interface Alignment {
  /** Sample index in `recording` where `reference` starts. */
  offset: number;
  /** Normalized cross-correlation of the samples at that offset, -1..1. */
  correlation: number;
}

function envelope(x: ArrayLike<number>, hop: number): Float64Array {
  const out = new Float64Array(Math.floor(x.length / hop));
  for (let k = 0; k < out.length; k++) {
    let e = 0;
    for (let i = k * hop; i < (k + 1) * hop; i++) e += x[i]! * x[i]!;
    out[k] = Math.sqrt(e / hop);
  }
  return out;
}

function normalized(a: ArrayLike<number>, b: ArrayLike<number>, offset: number, n: number): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[offset + i]!;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}

/** Finds `reference` in `recording` (both at `rate`); undefined when the recording is shorter. */
export function align(
  reference: ArrayLike<number>,
  recording: ArrayLike<number>,
  rate: number,
): Alignment | undefined {
  const n = reference.length;
  if (recording.length < n) return undefined;
  const hop = rate / 100;
  const ref = envelope(reference, hop);
  const rec = envelope(recording, hop);
  let coarse = 0;
  let best = Number.NEGATIVE_INFINITY;
  for (let lag = 0; lag + ref.length <= rec.length; lag++) {
    const c = normalized(ref, rec, lag, ref.length);
    if (c > best) {
      best = c;
      coarse = lag;
    }
  }
  const span = Math.round(rate / 50);
  let offset = 0;
  let correlation = Number.NEGATIVE_INFINITY;
  for (
    let at = Math.max(0, coarse * hop - span);
    at <= Math.min(recording.length - n, coarse * hop + span);
    at++
  ) {
    const c = normalized(reference, recording, at, n);
    if (c > correlation) {
      correlation = c;
      offset = at;
    }
  }
  return { offset, correlation };
}

/**
 * Per 200 ms segment of `reference` that holds sound (RMS above `floor`), the
 * best normalized correlation with `recording` within ±20 ms of where
 * `alignment` puts it; the median over those segments. A path that drifts by
 * a few samples or drops a frame (a peer's audio loop) still scores its
 * segments: one number that says "the same speech, lossy-coded".
 */
export function segmentCorrelation(
  reference: ArrayLike<number>,
  recording: ArrayLike<number>,
  rate: number,
  alignment: Alignment,
  floor = 300,
): { median: number; segments: number } {
  const seg = rate / 5;
  const span = Math.round(rate / 50);
  const scores: number[] = [];
  for (let start = 0; start + seg <= reference.length; start += seg) {
    const piece = Array.prototype.slice.call(reference, start, start + seg) as number[];
    const rms = Math.sqrt(piece.reduce((a, v) => a + v * v, 0) / seg);
    if (rms < floor) continue;
    let best = Number.NEGATIVE_INFINITY;
    const at = alignment.offset + start;
    for (let d = -span; d <= span; d++) {
      if (at + d < 0 || at + d + seg > recording.length) continue;
      best = Math.max(best, normalized(piece, recording, at + d, seg));
    }
    if (best > Number.NEGATIVE_INFINITY) scores.push(best);
  }
  scores.sort((a, b) => a - b);
  return {
    median: scores.length === 0 ? 0 : scores[Math.floor(scores.length / 2)]!,
    segments: scores.length,
  };
}
