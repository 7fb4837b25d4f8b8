/**
 * Tone patterns and their detection on synthetic recordings: noise, shifted
 * onsets, a telephone line (G.711), a lost packet, a missing tone, a tone 3 %
 * off (must fail) and 1.5 % off (must pass), a swapped pair.
 */
import { describe, expect, it } from 'vitest';
import { encodeUlaw, ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { durationsCheck, orderCheck, tonesCheck } from '../../src/smoke/checks.js';
import {
  CALLEE_PATTERN,
  CALLER_PATTERN,
  detectTones,
  matchPattern,
  patternLengthMs,
  synthesizePattern,
  type TonePattern,
  toneOffsetsMs,
} from '../../src/smoke/tones.js';

const RATE = 8000;
const DTMF_FREQUENCIES = [697, 770, 852, 941, 1209, 1336, 1477, 1633];

/** A deterministic uniform noise source (xorshift), so failures reproduce. */
function noise(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) / 0xffffffff) * 2 - 1;
  };
}

/**
 * A "recording": `pattern` placed `offsetMs` into `totalMs` of audio, as floats
 * in [-1, 1] like decodeWav gives, with white noise at `noiseDbfs` RMS.
 */
function recording(
  pattern: TonePattern,
  { offsetMs = 0, totalMs = 3000, noiseDbfs, rate = RATE, g711 = false } = {} as {
    offsetMs?: number;
    totalMs?: number;
    noiseDbfs?: number;
    rate?: number;
    g711?: boolean;
  },
): Float32Array {
  const pcm = synthesizePattern(pattern, rate);
  const out = new Float32Array(Math.round((totalMs * rate) / 1000));
  const at = Math.round((offsetMs * rate) / 1000);
  for (let i = 0; i < pcm.length && at + i < out.length; i++) out[at + i] = pcm[i]! / 32768;
  if (noiseDbfs !== undefined) {
    // Uniform noise in [-a, a] has RMS a/√3.
    const a = 10 ** (noiseDbfs / 20) * Math.sqrt(3);
    const next = noise(42);
    for (let i = 0; i < out.length; i++) out[i]! += a * next();
  }
  if (g711) {
    for (let i = 0; i < out.length; i++) {
      const s = Math.max(-32768, Math.min(32767, Math.round(out[i]! * 32768)));
      out[i] = ULAW_TO_LINEAR[encodeUlaw(s)]! / 32768;
    }
  }
  return out;
}

function withTone(pattern: TonePattern, index: number, frequency: number): TonePattern {
  return { ...pattern, tones: pattern.tones.map((t, k) => (k === index ? { ...t, frequency } : t)) };
}

describe('tone patterns', () => {
  it('are three 300 ms tones 200 ms apart after a 500 ms lead-in, on 20 ms frame boundaries', () => {
    for (const p of [CALLER_PATTERN, CALLEE_PATTERN]) {
      expect(p.tones.map((t) => t.durationMs)).toEqual([300, 300, 300]);
      expect(toneOffsetsMs(p)).toEqual([500, 1000, 1500]);
      expect(patternLengthMs(p)).toBe(1800);
      for (const ms of [p.leadInMs, p.gapMs, ...p.tones.map((t) => t.durationMs)]) expect(ms % 20).toBe(0);
    }
    expect(synthesizePattern(CALLER_PATTERN, 8000)).toHaveLength(14_400);
    expect(synthesizePattern(CALLER_PATTERN, 16000)).toHaveLength(28_800);
  });

  it('keep clear of the DTMF frequencies (> 5 %) and of each other (> 8 %)', () => {
    const all = [...CALLER_PATTERN.tones, ...CALLEE_PATTERN.tones].map((t) => t.frequency);
    for (const f of all) {
      for (const d of DTMF_FREQUENCIES) expect(Math.abs(f - d) / d).toBeGreaterThan(0.05);
    }
    for (const a of CALLER_PATTERN.tones) {
      for (const b of CALLEE_PATTERN.tones)
        expect(Math.abs(a.frequency - b.frequency) / a.frequency).toBeGreaterThan(0.08);
    }
  });

  it('synthesizes each tone from phase zero at its offset, silence elsewhere', () => {
    const pcm = synthesizePattern(CALLER_PATTERN, RATE);
    expect(pcm.subarray(0, 4000).every((s) => s === 0)).toBe(true); // the lead-in
    expect(pcm[4000]).toBe(0); // sin(0)
    expect(Math.abs(pcm[4001]!)).toBeGreaterThan(0);
    expect(pcm.subarray(6400, 8000).every((s) => s === 0)).toBe(true); // the gap after tone 1
    expect(Math.max(...pcm)).toBeLessThanOrEqual(Math.round(0.25 * 32767));
  });
});

describe('detectTones + matchPattern', () => {
  it('finds every tone with its frequency, onset and duration in a noisy recording', () => {
    const samples = recording(CALLER_PATTERN, { offsetMs: 237.5, noiseDbfs: -40 });
    const heard = detectTones(samples, RATE);
    expect(heard).toHaveLength(3);
    const matches = matchPattern(heard, CALLER_PATTERN);
    toneOffsetsMs(CALLER_PATTERN).forEach((offset, k) => {
      const m = matches[k]!;
      expect(m.heard, `tone ${k}`).toBeDefined();
      expect(Math.abs(m.error!)).toBeLessThan(0.001);
      expect(Math.abs(m.heard!.onsetMs - (237.5 + offset))).toBeLessThan(2);
      expect(Math.abs(m.heard!.durationMs - 300)).toBeLessThan(3);
      expect(m.heard!.levelDbfs).toBeGreaterThan(-20);
    });
    expect(tonesCheck('callee', matches).status).toBe('pass');
    expect(durationsCheck('callee', matches, 50).status).toBe('pass');
    expect(orderCheck('callee', matches, CALLER_PATTERN, 50).status).toBe('pass');
  });

  it('works through a G.711 line and at 16 kHz', () => {
    const line = recording(CALLEE_PATTERN, { offsetMs: 100, g711: true, noiseDbfs: -55 });
    const m8 = matchPattern(detectTones(line, RATE), CALLEE_PATTERN);
    expect(m8.every((m) => m.heard && Math.abs(m.error!) < 0.001)).toBe(true);
    const wide = recording(CALLEE_PATTERN, { offsetMs: 333, rate: 16000 });
    const m16 = matchPattern(detectTones(wide, 16000), CALLEE_PATTERN);
    expect(m16.map((m) => Math.round(m.heard!.onsetMs))).toEqual([833, 1333, 1833]);
  });

  it('finds nothing in noise or silence', () => {
    expect(detectTones(recording({ leadInMs: 0, tones: [], gapMs: 0 }, { noiseDbfs: -20 }), RATE)).toEqual(
      [],
    );
    expect(detectTones(new Float32Array(8000), RATE)).toEqual([]);
  });

  it('does not split a tone at a lost packet (20 ms of silence inside it)', () => {
    const samples = recording(CALLER_PATTERN);
    // 20 ms gone in the middle of the second tone (1000..1300 ms).
    samples.fill(0, 9200, 9360);
    const matches = matchPattern(detectTones(samples, RATE), CALLER_PATTERN);
    expect(matches[1]!.heard?.durationMs).toBeCloseTo(300, -1);
    expect(detectTones(samples, RATE)).toHaveLength(3);
  });

  it('reports a missing tone by its frequency', () => {
    const samples = recording(CALLER_PATTERN);
    samples.fill(0, 8000, 10_400); // the 1000 Hz tone
    const matches = matchPattern(detectTones(samples, RATE), CALLER_PATTERN);
    expect(matches.map((m) => m.heard !== undefined)).toEqual([true, false, true]);
    // Nothing came instead: the tones the others took are not offered as "nearest".
    expect(matches[1]!.nearest).toBeUndefined();
    const check = tonesCheck('callee', matches);
    expect(check.status).toBe('fail');
    expect(check.message).toContain('1 of 3 tones not heard');
    expect(check.message).toContain('1000 Hz missing');
    // The others are still judged.
    expect(durationsCheck('callee', matches, 50).status).toBe('pass');
    expect(orderCheck('callee', matches, CALLER_PATTERN, 50).status).toBe('pass');
  });

  it('fails a tone 3 % off (heard, but not within ±2 %), and passes one 1.5 % off', () => {
    const off = matchPattern(detectTones(recording(withTone(CALLER_PATTERN, 1, 1030)), RATE), CALLER_PATTERN);
    expect(off[1]!.heard).toBeUndefined();
    expect(off[1]!.nearest?.frequency).toBeCloseTo(1030, 0);
    const check = tonesCheck('callee', off);
    expect(check.status).toBe('fail');
    expect(check.message).toMatch(/1000 Hz missing: heard 1030\.\d Hz instead \(\+3\.00 %\)/);
    // Another tone missing too: the 1030 Hz one is not what came instead of 2000 Hz.
    const samples = recording(withTone(CALLER_PATTERN, 1, 1030));
    samples.fill(0, 12_000, 14_400);
    const two = matchPattern(detectTones(samples, RATE), CALLER_PATTERN);
    expect(two[2]!.heard).toBeUndefined();
    expect(two[2]!.nearest).toBeUndefined();
    expect(tonesCheck('callee', two).message).toContain('2000 Hz missing');

    const near = matchPattern(detectTones(recording(withTone(CALLER_PATTERN, 1, 985)), RATE), CALLER_PATTERN);
    expect(near[1]!.error).toBeCloseTo(-0.015, 3);
    const ok = tonesCheck('callee', near);
    expect(ok.status).toBe('pass');
    expect(ok.value).toBe(1.5);
  });

  it('judges order and spacing on the matches: a swapped pair is out of order, a late tone is mis-spaced', () => {
    const swapped: TonePattern = {
      ...CALLER_PATTERN,
      tones: [CALLER_PATTERN.tones[1]!, CALLER_PATTERN.tones[0]!, CALLER_PATTERN.tones[2]!],
    };
    const matches = matchPattern(detectTones(recording(swapped), RATE), CALLER_PATTERN);
    expect(matches.every((m) => m.heard)).toBe(true);
    const order = orderCheck('callee', matches, CALLER_PATTERN, 50);
    expect(order.status).toBe('fail');
    expect(order.message).toContain('out of order: 1000 Hz (sent after 500 Hz)');

    const late: TonePattern = { ...CALLER_PATTERN, gapMs: 300 };
    const spaced = orderCheck(
      'callee',
      matchPattern(detectTones(recording(late), RATE), CALLER_PATTERN),
      CALLER_PATTERN,
      50,
    );
    expect(spaced.status).toBe('fail');
    expect(spaced.value).toBeCloseTo(200, -1);
  });

  it('fails a tone cut short', () => {
    const samples = recording(CALLER_PATTERN);
    samples.fill(0, 13_600, 14_400); // the last 100 ms of the 2000 Hz tone
    const check = durationsCheck('callee', matchPattern(detectTones(samples, RATE), CALLER_PATTERN), 50);
    expect(check.status).toBe('fail');
    expect(check.value).toBeCloseTo(100, -1);
    expect(check.message).toContain('short');
  });

  it('matches each tone to the heard tone of the best duration, not a blip at the same frequency', () => {
    const samples = recording(CALLER_PATTERN, { totalMs: 3000 });
    // A 60 ms blip of 500 Hz at 2.5 s.
    for (let i = 0; i < 480; i++) samples[20_000 + i] = 0.25 * Math.sin((2 * Math.PI * 500 * i) / RATE);
    const heard = detectTones(samples, RATE);
    expect(heard).toHaveLength(4);
    expect(matchPattern(heard, CALLER_PATTERN)[0]!.heard!.onsetMs).toBeCloseTo(500, -1);
  });
});
