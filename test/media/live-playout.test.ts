/**
 * The live stream out of the JitterBuffer (engine pipe, media stream,
 * listeners): a frame every 20 ms, concealment while audio is overdue, the
 * late audio still played, the delay given back by skipping only quiet
 * frames, and a target delay that follows the jitter actually seen.
 */
import { describe, expect, it } from 'vitest';
import { JitterBuffer } from '../../src/media/jitter-buffer.js';
import {
  type Arrival,
  DECODE,
  decoded,
  decodedQuiet,
  F,
  indexOf,
  type LiveFrame,
  payloadFor,
  quietPayloadFor,
  run,
  stream,
} from '../helpers/timeline.js';

const MS = 8;
/** Speech in blocks of 25 frames (500 ms), each followed by 25 quiet frames (a pause). */
const talk = (k: number) => (Math.floor(k / 25) % 2 === 0 ? payloadFor(k) : quietPayloadFor(k));
const isSpeech = (k: number) => Math.floor(k / 25) % 2 === 0;

function rms(frame: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < frame.length; i++) e += frame[i]! * frame[i]!;
  return Math.sqrt(e / frame.length);
}

/** Index in `live` of the frame holding packet k's audio (as `talk` made it), searching after `from`; -1 if none. */
function liveIndexOf(live: LiveFrame[], k: number, from = -1, quietPauses = false): number {
  const want = quietPauses && !isSpeech(k) ? decodedQuiet(k) : decoded(k);
  for (let i = from + 1; i < live.length; i++) if (indexOf(live[i]!.samples, want) === 0) return i;
  return -1;
}

/** Deterministic pseudo-random numbers in [0, 1). */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) / 0x1000000;
  };
}

describe('JitterBuffer: the live stream', () => {
  it('gives a frame every 20 ms of wall clock, from the start to the end, whatever arrives', () => {
    const arrivals = stream(100, { start: 837, payload: talk });
    const hold = arrivals[30]!.at;
    for (const a of arrivals) if (a.at >= hold && a.at < hold + 2400) a.at = hold + 2400; // a 300 ms spike
    const jb = new JitterBuffer();
    const end = 837 + 101 * F + 400;
    const { live } = run(jb, arrivals, end);
    const pulled = live.filter((f) => f.at < end);
    for (let i = 1; i < pulled.length; i++) expect(pulled[i]!.at - pulled[i - 1]!.at).toBe(F);
    expect(pulled[0]!.at).toBe(F + 40 * MS);
    expect(jb.liveStats.liveFrames).toBe(live.length);
  });

  it('settles at the smallest target (40 ms) on a clean path and reports its delay', () => {
    const jb = new JitterBuffer();
    run(jb, stream(600, { start: 837 }), 837 + 601 * F);
    const s = jb.liveStats;
    expect(s.liveTargetMs).toBe(40);
    // Each frame plays 40 ms after the best-placed packets arrived, give or take half a frame (the 20 ms cadence).
    expect(s.liveDelayP50Ms).toBeGreaterThanOrEqual(30);
    expect(s.liveDelayP99Ms).toBeLessThanOrEqual(61);
    expect(s).toMatchObject({ liveConcealed: 0, liveLate: 0, liveOverrun: 0 });
  });

  it('raises the target to cover the jitter of a jittery path (98th percentile), within the bounds', () => {
    const random = rng(3);
    // Every packet 0–80 ms late (uniform): reordering by up to four packets.
    const arrivals = stream(1000, { start: 837 }).map((a) => ({
      ...a,
      at: a.at + Math.floor(random() * 80 * MS),
    }));
    const jb = new JitterBuffer();
    run(jb, arrivals, 837 + 1000 * F + 800);
    const s = jb.liveStats;
    expect(s.liveTargetMs).toBeGreaterThanOrEqual(80);
    expect(s.liveTargetMs).toBeLessThanOrEqual(95);
    // Few packets miss their live slot once the target has adapted (the first ones may).
    expect(s.liveLate).toBeLessThan(1000 * 0.05);
    expect(jb.stats.late).toBe(0);

    const wild = rng(4);
    const worse = stream(600, { start: 837 }).map((a) => ({
      ...a,
      at: a.at + Math.floor(wild() * 900 * MS),
    }));
    const capped = new JitterBuffer();
    run(capped, worse, 837 + 600 * F + 8000);
    expect(capped.liveStats.liveTargetMs).toBe(300);
  });

  it('conceals a spike, then plays the late audio in order, and gives the delay back only in a pause', () => {
    for (const phase of [0, 37, 159]) {
      // 300 ms spike in the middle of the first stretch of speech (frame 10).
      const arrivals = stream(150, { start: 800 + phase, payload: talk });
      const hold = arrivals[10]!.at;
      for (const a of arrivals) if (a.at >= hold && a.at < hold + 300 * MS) a.at = hold + 300 * MS;
      // Starting at the target a clean path settles at, so only the spike's delay is given back.
      const jb = new JitterBuffer({ liveTargetInitialSamples: 40 * MS });
      const { live } = run(jb, arrivals, 800 + 151 * F + 400);
      const s = jb.liveStats;
      // The live delay grew by the silence played while waiting...
      expect(s.liveConcealed, `phase ${phase}`).toBeGreaterThanOrEqual(11);
      expect(s.liveConcealed).toBeLessThanOrEqual(14);
      // ... every packet was played, in order, the late ones too (speech and pause alike, except what was skipped) ...
      let at = -1;
      const played = new Set<number>();
      for (let k = 0; k < 150; k++) {
        const i = liveIndexOf(live, k, at, true);
        if (i >= 0) {
          played.add(k);
          at = i;
        } else expect(isSpeech(k), `speech frame ${k} missing from live (phase ${phase})`).toBe(false);
      }
      // ... and the delay was given back by skipping pause frames only, all of it, in the first pause.
      const skipped = [...Array(150).keys()].filter((k) => !played.has(k));
      expect(skipped.length).toBe(s.liveSkipped);
      expect(s.liveSkipped).toBe(s.liveConcealed);
      expect(skipped.every((k) => k >= 25 && k < 50)).toBe(true);
      // The second stretch of speech plays at the normal delay again.
      const second = liveIndexOf(live, 50, -1, true);
      const delay = live[second]!.at - live[second]!.position;
      expect(delay).toBeLessThanOrEqual(jb.liveTarget + F / 2 + phase + 1);
      expect(jb.stats).toMatchObject({ late: 0, resync: 0 });
    }
  });

  it('never skips speech: after a spike in continuous speech the live delay stays until a pause', () => {
    const arrivals = stream(120, { start: 837 });
    const hold = arrivals[20]!.at;
    for (const a of arrivals) if (a.at >= hold && a.at < hold + 200 * MS) a.at = hold + 200 * MS;
    const jb = new JitterBuffer();
    const { live } = run(jb, arrivals, 837 + 121 * F + 4000);
    expect(jb.liveStats.liveSkipped).toBe(0);
    let at = -1;
    for (let k = 0; k < 120; k++) {
      at = liveIndexOf(live, k, at);
      expect(at, `frame ${k}`).toBeGreaterThanOrEqual(0);
    }
    // Still behind by the concealment at the end: the last frame came out that much later.
    const last = live[liveIndexOf(live, 119)]!;
    expect(last.at - last.position).toBeGreaterThanOrEqual(jb.liveStats.liveConcealed * F);
  });

  it('plays a DTX gap as silence without counting it as concealment or skipping', () => {
    const gap = 16000;
    const before = stream(30, { start: 837 });
    const after = stream(30, { seq0: 1030, ts0: 50_000 + 30 * F + gap, start: 837 + 30 * F + gap, k0: 30 });
    // Starting at the target a clean path settles at, so no delay is given back.
    const jb = new JitterBuffer({ liveTargetInitialSamples: 40 * MS });
    const { live } = run(jb, [...before, ...after], 837 + 61 * F + gap);
    expect(jb.liveStats).toMatchObject({ liveConcealed: 0, liveSkipped: 0, liveStretched: 0, liveLate: 0 });
    // The audio after the gap plays at the same delay as before it.
    const a = live[liveIndexOf(live, 29)]!;
    const b = live[liveIndexOf(live, 30)]!;
    expect(b.at - b.position).toBe(a.at - a.position);
  });

  it('counts a packet that missed its live slot while the next ones were in time as late (silence live, audio in the WAV)', () => {
    const arrivals = stream(40, { start: 837 });
    arrivals[20]!.at += 100 * MS; // 100 ms late, the rest on time
    const jb = new JitterBuffer();
    const { live, recording } = run(jb, arrivals, 837 + 41 * F + 9000);
    expect(jb.liveStats.liveLate).toBe(1);
    expect(liveIndexOf(live, 20)).toBe(-1);
    expect(indexOf(recording, decoded(20))).toBe(800 + 20 * F);
  });

  it('stretches a pause to raise the delay when the target grows, never in speech', () => {
    const random = rng(9);
    // Clean for 10 s (target 40 ms), then 0–120 ms of jitter.
    const arrivals: Arrival[] = stream(1000, { start: 837, payload: talk }).map((a, i) =>
      i < 500 ? a : { ...a, at: a.at + Math.floor(random() * 120 * MS) },
    );
    const jb = new JitterBuffer();
    const { live } = run(jb, arrivals, 837 + 1000 * F + 1200);
    expect(jb.liveStats.liveStretched).toBeGreaterThan(0);
    expect(jb.liveTarget).toBeGreaterThan(100 * MS);
    // Every stretch sits in a pause: quiet audio on both sides.
    const fillers = live.filter((f) => f.filler === 'stretch');
    expect(fillers.length).toBe(jb.liveStats.liveStretched);
    for (const f of fillers) {
      const k = (f.position - 800) / F;
      expect(isSpeech(k) || isSpeech(k - 1), `stretched before frame ${k}`).toBe(false);
    }
  });

  it('drops audio past the hard live delay limit rather than fall behind without end', () => {
    const arrivals = stream(100, { start: 837 });
    const hold = arrivals[20]!.at;
    for (const a of arrivals) if (a.at >= hold && a.at < hold + 400 * MS) a.at = hold + 400 * MS;
    const jb = new JitterBuffer({ maxLiveDelaySamples: 200 * MS });
    run(jb, arrivals, 837 + 101 * F + 400);
    expect(jb.liveStats.liveOverrun).toBeGreaterThan(5);
    expect(jb.liveStats.liveSkipped).toBe(0);
  });

  it('gives the live stream everything at the end (flush), without repeating what it stood in for', () => {
    const jb = new JitterBuffer();
    const live: Int16Array[] = [];
    const arrivals = stream(10, { start: 837 });
    for (const a of arrivals) {
      jb.pullLive(a.at, (f) => live.push(f.slice()));
      jb.push(a.packet, a.at, DECODE);
    }
    jb.flush(
      arrivals.at(-1)!.at + 1,
      () => {},
      (f) => live.push(f.slice()),
    );
    let at = -1;
    for (let k = 0; k < 10; k++) {
      const i = live.findIndex((f, j) => j > at && indexOf(f, decoded(k)) === 0);
      expect(i, `frame ${k}`).toBeGreaterThan(at);
      at = i;
    }
  });

  it('reports p50/p99 of the live delay of audio frames', () => {
    const jb = new JitterBuffer({ liveTargetMinSamples: 480, liveTargetMaxSamples: 480 });
    run(jb, stream(200, { start: 800 }), 800 + 201 * F);
    // A fixed 60 ms target on a clean path: every frame 60 ms after it arrived (± half a frame).
    expect(jb.liveStats.liveDelayP50Ms).toBeGreaterThanOrEqual(50);
    expect(jb.liveStats.liveDelayP50Ms).toBeLessThanOrEqual(70);
    expect(jb.liveStats.liveDelayP99Ms).toBeLessThanOrEqual(70);
  });
});

describe('JitterBuffer: quiet frames', () => {
  it('the quiet payload of these tests is far below −48 dBFS and speech far above', () => {
    expect(rms(Array.from(quietPayloadFor(3), (b) => DECODE[b]!))).toBeLessThan(130);
    expect(rms(decoded(3))).toBeGreaterThan(1000);
  });
});
