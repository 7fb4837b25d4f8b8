/**
 * The smoke test's tone patterns and finding them again in a recording. Pure:
 * samples in, tones out; no clock, no I/O.
 *
 * Each side of the call plays its own pattern (three tones after a lead-in of
 * silence) and looks for the other side's in its recording:
 *
 * 1. Segment: 20 ms windows every 10 ms; a window loud enough whose strongest
 *    frequency explains most of its power (Goertzel, `dominantFrequency`) is
 *    tonal; runs of tonal windows at one frequency are tones. Short holes
 *    (a lost packet plays as 20 ms of silence) do not split a tone.
 * 2. Refine: the frequency from the tone's whole interior (sub-hertz on a
 *    300 ms tone, so ±2 % is decided by the signal, not by the analysis),
 *    onset and end to about a millisecond from a short RMS envelope.
 * 3. Match: each expected tone takes the heard tone within ±2 % of its
 *    frequency whose duration fits best; order and spacing are judged on
 *    the matches (see checks.ts), so a swapped pair reads as "out of order",
 *    not as "missing".
 *
 * Frequencies stay clear of the DTMF grid (697-941 and 1209-1633 Hz, by more
 * than 5 %): a gateway that renders the RFC 4733 digits in-band must not
 * produce a tone the checks mistake for ours, nor ours a digit. The two
 * patterns differ by at least 9 % tone for tone, so an echo of one's own
 * pattern can never pass for the other side's.
 */
import { dominantFrequency, meanSquare } from '../media/goertzel.js';

export interface Tone {
  frequency: number;
  durationMs: number;
}

export interface TonePattern {
  /**
   * Silence before the first tone: the first packets of a call may meet a
   * media path that is still being connected (a media server latching).
   */
  leadInMs: number;
  tones: readonly Tone[];
  /** Silence between tones. */
  gapMs: number;
}

/**
 * What the caller plays. Every duration is a multiple of 20 ms, so each tone
 * starts on a frame boundary and the sender knows exactly which packet
 * carries its first sample.
 */
export const CALLER_PATTERN: TonePattern = Object.freeze({
  leadInMs: 500,
  tones: Object.freeze([
    { frequency: 500, durationMs: 300 },
    { frequency: 1000, durationMs: 300 },
    { frequency: 2000, durationMs: 300 },
  ]),
  gapMs: 200,
});

/** What the callee plays: 600 / 1100 / 2400 Hz, 9-20 % from the caller's. */
export const CALLEE_PATTERN: TonePattern = Object.freeze({
  leadInMs: 500,
  tones: Object.freeze([
    { frequency: 600, durationMs: 300 },
    { frequency: 1100, durationMs: 300 },
    { frequency: 2400, durationMs: 300 },
  ]),
  gapMs: 200,
});

/** Peak amplitude of the tones: -12 dBFS, loud and far from clipping in G.711 and Opus. */
export const TONE_AMPLITUDE = 0.25;

/** Where each tone starts, ms from the start of the pattern. */
export function toneOffsetsMs(pattern: TonePattern): number[] {
  const out: number[] = [];
  let at = pattern.leadInMs;
  for (const tone of pattern.tones) {
    out.push(at);
    at += tone.durationMs + pattern.gapMs;
  }
  return out;
}

/** Length of the pattern, ms (the last tone ends it; no trailing gap). */
export function patternLengthMs(pattern: TonePattern): number {
  const offsets = toneOffsetsMs(pattern);
  const last = pattern.tones.length - 1;
  return last < 0 ? pattern.leadInMs : offsets[last]! + pattern.tones[last]!.durationMs;
}

/**
 * The pattern as 16-bit PCM at `rate`. Tones start at phase zero with no ramp:
 * a sharp onset is what lets the receiver time it to the millisecond.
 */
export function synthesizePattern(
  pattern: TonePattern,
  rate: number,
  amplitude = TONE_AMPLITUDE,
): Int16Array {
  const samples = (ms: number) => Math.round((ms * rate) / 1000);
  const out = new Int16Array(samples(patternLengthMs(pattern)));
  const offsets = toneOffsetsMs(pattern);
  pattern.tones.forEach((tone, k) => {
    const start = samples(offsets[k]!);
    const n = samples(tone.durationMs);
    const w = (2 * Math.PI * tone.frequency) / rate;
    for (let i = 0; i < n && start + i < out.length; i++) {
      out[start + i] = Math.round(amplitude * 32767 * Math.sin(w * i));
    }
  });
  return out;
}

// ---------------------------------------------------------------------------
// Detection

/** One tone heard in a recording. Positions are sample indices; times ms from the recording's start. */
export interface HeardTone {
  frequency: number;
  /** First sample of the tone. */
  onset: number;
  /** One past its last sample. */
  end: number;
  onsetMs: number;
  durationMs: number;
  /** RMS level of its interior, dBFS. */
  levelDbfs: number;
  /** Share of the interior's power at `frequency` (1: a pure tone). */
  purity: number;
}

export interface DetectOptions {
  /** Windows quieter than this (RMS, dBFS) are silence. Default -50. */
  floorDbfs?: number;
  /** A window is tonal when one frequency explains this share of its power. Default 0.6. */
  minPurity?: number;
  /** Holes shorter than this inside a tone (a lost packet) do not split it. Default 60 ms. */
  maxHoleMs?: number;
  /** Shorter tonal runs are ignored (clicks, a packet of something). Default 40 ms. */
  minToneMs?: number;
  /** Search range, Hz. Default 150 to 3900 (the telephone band and a little). */
  minFrequency?: number;
  maxFrequency?: number;
}

const WINDOW_MS = 20;
const HOP_MS = 10;
/** Windows of one tone agree within this (the coarse 20 ms estimate is good to ~1 %). */
const SAME_TONE = 0.04;

/**
 * Every tone in `samples` (mono, any scale: the level is judged relative to
 * full scale `fullScale`, 1 for the [-1, 1] floats decodeWav returns).
 */
export function detectTones(
  samples: ArrayLike<number>,
  rate: number,
  options: DetectOptions = {},
  fullScale = 1,
): HeardTone[] {
  const floor = options.floorDbfs ?? -50;
  const minPurity = options.minPurity ?? 0.6;
  const minF = options.minFrequency ?? 150;
  const maxF = Math.min(options.maxFrequency ?? 3900, rate / 2 - 100);
  const win = Math.round((rate * WINDOW_MS) / 1000);
  const hop = Math.round((rate * HOP_MS) / 1000);
  const maxHoleWindows = Math.ceil((options.maxHoleMs ?? 60) / HOP_MS);
  const minWindows = Math.max(1, Math.ceil(((options.minToneMs ?? 40) - WINDOW_MS) / HOP_MS) + 1);
  const floorPower = (fullScale * 10 ** (floor / 20)) ** 2;

  // 1. Every window: silent, or tonal at some frequency, or neither (noise, speech).
  const view = toArray(samples);
  const frequencies: number[] = [];
  for (let start = 0; start + win <= view.length; start += hop) {
    const block = view.subarray(start, start + win);
    if (meanSquare(block) < floorPower) {
      frequencies.push(Number.NaN);
      continue;
    }
    const { frequency, purity } = dominantFrequency(block, rate, minF, maxF, 10);
    frequencies.push(purity >= minPurity ? frequency : Number.NaN);
  }

  // 2. Runs of windows at one frequency, bridging short holes.
  const runs: { first: number; last: number; frequency: number }[] = [];
  let run: { first: number; last: number; sum: number; count: number } | undefined;
  const close = () => {
    if (run && run.last - run.first + 1 >= minWindows) {
      runs.push({ first: run.first, last: run.last, frequency: run.sum / run.count });
    }
    run = undefined;
  };
  for (let i = 0; i < frequencies.length; i++) {
    const f = frequencies[i]!;
    if (run && i - run.last > maxHoleWindows) close();
    if (Number.isNaN(f)) continue;
    if (run && Math.abs(f - run.sum / run.count) <= SAME_TONE * f) {
      run.last = i;
      run.sum += f;
      run.count++;
      continue;
    }
    close();
    run = { first: i, last: i, sum: f, count: 1 };
  }
  close();

  // 3. Each run refined: frequency from its interior, onset and end from the envelope.
  const energy = prefixEnergy(view);
  return runs.map((r) =>
    refine(view, energy, rate, r.first * hop, r.last * hop + win, r.frequency, fullScale),
  );
}

function refine(
  x: Float64Array,
  energy: Float64Array,
  rate: number,
  coarseStart: number,
  coarseEnd: number,
  coarseFrequency: number,
  fullScale: number,
): HeardTone {
  const win = Math.round((rate * WINDOW_MS) / 1000);
  // The interior: clear of the onset and end, where the windows saw the tone whole.
  let a = coarseStart + win;
  let b = coarseEnd - win;
  if (b - a < win) {
    a = coarseStart;
    b = coarseEnd;
  }
  const interior = x.subarray(a, b);
  const { frequency, purity } = dominantFrequency(
    interior,
    rate,
    coarseFrequency * 0.94,
    coarseFrequency * 1.06,
    1,
  );
  const steady = Math.sqrt(meanSquare(interior));
  // Envelope: RMS over one period of the tone (at least 2 ms), so a sine's own ripple does not show.
  const len = Math.max(Math.round(rate * 0.002), Math.ceil(rate / frequency));
  const rms = (i: number) => Math.sqrt((energy[i + len]! - energy[i]!) / len);
  const threshold = steady / 2;
  // A window [i, i + len) that half covers the tone's edge reads sqrt(1/2)·steady; one that
  // covers a quarter reads steady/2: the edge is a quarter of the window past i.
  let onset = coarseStart;
  const lo = Math.max(0, coarseStart - win);
  const hi = Math.min(x.length - len, coarseStart + win);
  for (let i = lo; i <= hi; i++) {
    if (rms(i) >= threshold) {
      onset = Math.min(x.length, i + Math.round(0.75 * len));
      break;
    }
  }
  let end = coarseEnd;
  const from = Math.min(x.length - len, coarseEnd + win);
  const to = Math.max(0, coarseEnd - 2 * win);
  for (let i = from; i >= to; i--) {
    if (rms(i) >= threshold) {
      end = Math.min(x.length, i + Math.round(0.25 * len));
      break;
    }
  }
  if (end <= onset) end = coarseEnd;
  return {
    frequency,
    onset,
    end,
    onsetMs: (onset / rate) * 1000,
    durationMs: ((end - onset) / rate) * 1000,
    levelDbfs: steady > 0 ? 20 * Math.log10(steady / fullScale) : -100,
    purity,
  };
}

/** Running sum of squares: energy[i] is the energy of x[0..i). */
function prefixEnergy(x: Float64Array): Float64Array {
  const out = new Float64Array(x.length + 1);
  for (let i = 0; i < x.length; i++) out[i + 1] = out[i]! + x[i]! * x[i]!;
  return out;
}

function toArray(samples: ArrayLike<number>): Float64Array {
  return samples instanceof Float64Array ? samples : Float64Array.from(samples);
}

// ---------------------------------------------------------------------------
// Matching

/** The ±2 % of the issue: a tone heard further off is not the tone we sent. */
export const FREQUENCY_TOLERANCE = 0.02;
/** How far from an expected tone a heard one may be to be named as what came instead of it. */
const NEAREST_RANGE = 0.1;

export interface ToneMatch {
  expected: Tone;
  index: number;
  /** The heard tone taken for it (within the tolerance), if any. */
  heard: HeardTone | undefined;
  /** (heard − expected) / expected, when heard. */
  error: number | undefined;
  /** Without a match: the heard tone nearest in frequency, to say what came instead. */
  nearest: HeardTone | undefined;
}

/**
 * For each expected tone, the heard tone within ±`tolerance` of its frequency
 * whose duration is closest to the expected one (the earliest on a tie). An
 * expected tone without one gets, as `nearest`, the closest heard tone that
 * no other expected tone took, within ±10 %: what came instead (a tone 3 %
 * off); further away it is some other tone, not this one gone wrong.
 */
export function matchPattern(
  heard: readonly HeardTone[],
  pattern: TonePattern,
  tolerance = FREQUENCY_TOLERANCE,
): ToneMatch[] {
  const closer = (a: HeardTone | undefined, b: HeardTone, key: (h: HeardTone) => number) =>
    !a || key(b) < key(a) ? b : a;
  const best = pattern.tones.map((expected) => {
    let pick: HeardTone | undefined;
    for (const h of heard) {
      if (Math.abs(h.frequency - expected.frequency) > tolerance * expected.frequency) continue;
      pick = closer(pick, h, (x) => Math.abs(x.durationMs - expected.durationMs));
    }
    return pick;
  });
  const taken = new Set(best.filter((h) => h !== undefined));
  return pattern.tones.map((expected, index) => {
    const match = best[index];
    let nearest: HeardTone | undefined;
    if (!match) {
      for (const h of heard) {
        if (taken.has(h) || Math.abs(h.frequency - expected.frequency) > NEAREST_RANGE * expected.frequency)
          continue;
        nearest = closer(nearest, h, (x) => Math.abs(x.frequency - expected.frequency));
      }
    }
    return {
      expected,
      index,
      heard: match,
      error: match ? (match.frequency - expected.frequency) / expected.frequency : undefined,
      nearest,
    };
  });
}
