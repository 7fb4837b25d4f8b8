/**
 * The timing probes: the pattern source notes when each tone's first frame is
 * taken (the packet that carries it goes out then), the playout clock maps a
 * recording position to when it was heard, DTMF transits pair presses.
 */
import { describe, expect, it } from 'vitest';
import { dtmfTransits, PatternSource, PlayoutClock, transitJitter } from '../../src/smoke/probe.js';

describe('PatternSource', () => {
  it('is silent until started, then hands out the PCM frame by frame and times the marked frames', async () => {
    let now = 1000;
    const source = new PatternSource(() => now);
    expect(source.nextFrame()).toBeUndefined();
    const pcm = Int16Array.from({ length: 800 }, (_, i) => i); // five 160-sample frames
    const done = source.start(pcm, 160, [1, 3]);
    expect(source.playing).toBe(true);
    const frames: number[] = [];
    for (let k = 0; k < 5; k++) {
      now = 2000 + 20 * k;
      frames.push(source.nextFrame()![0]!);
    }
    expect(frames).toEqual([0, 160, 320, 480, 640]);
    // The last frame went out; the next ask ends the pattern.
    now = 2100;
    expect(source.nextFrame()).toBeUndefined();
    expect(await done).toEqual({ toneSentAt: [2020, 2060], endedAt: 2080 });
    expect(source.playing).toBe(false);
    expect(source.nextFrame()).toBeUndefined();
  });

  it('stop() ends a pattern early with what went out; start() while playing throws', async () => {
    const source = new PatternSource(() => 5);
    const done = source.start(new Int16Array(1600), 160, [0, 5]);
    expect(() => source.start(new Int16Array(1), 160, [])).toThrow(/already playing/);
    source.nextFrame();
    source.stop();
    expect(await done).toEqual({ toneSentAt: [5, undefined], endedAt: 5 });
  });
});

describe('PlayoutClock', () => {
  it('maps a position to its frame’s playout time plus its offset in the frame', () => {
    const clock = new PlayoutClock(8000);
    expect(clock.timeAt(0)).toBeUndefined();
    expect(clock.lastAt).toBeUndefined();
    clock.note(new Int16Array(160), 100);
    clock.note(new Int16Array(160), 121.5);
    clock.note(new Int16Array(80), 140); // a short last frame
    expect(clock.samples).toBe(400);
    expect(clock.lastAt).toBe(140);
    expect(clock.timeAt(0)).toBe(100);
    expect(clock.timeAt(80)).toBe(110);
    expect(clock.timeAt(159)).toBeCloseTo(119.875);
    expect(clock.timeAt(160)).toBe(121.5);
    expect(clock.timeAt(399)).toBeCloseTo(149.875);
    expect(clock.timeAt(400)).toBeUndefined();
    expect(clock.timeAt(-1)).toBeUndefined();
  });

  it('finds the frame by binary search over a long call', () => {
    const clock = new PlayoutClock(16000);
    const frame = new Int16Array(320);
    for (let k = 0; k < 10_000; k++) clock.note(frame, k * 20 + (k % 3));
    expect(clock.timeAt(320 * 7777 + 160)).toBe(7777 * 20 + (7777 % 3) + 10);
  });
});

describe('DTMF transit and jitter', () => {
  it('pairs the n-th received press of a digit with the n-th sent one', () => {
    const sent = [
      { digit: '1', at: 0 },
      { digit: '5', at: 200 },
      { digit: '5', at: 400 },
      { digit: '#', at: 600 },
    ];
    const received = [
      { digit: '1', at: 10 },
      { digit: '5', at: 212 },
      { digit: '5', at: 409 },
      { digit: '7', at: 500 }, // never sent: no transit
    ];
    expect(dtmfTransits(sent, received)).toEqual([10, 12, 9]);
  });

  it('jitter is the mean change of transit between consecutive presses', () => {
    expect(transitJitter([10, 12, 9])).toBe(2.5);
    expect(transitJitter([5, 5, 5, 5])).toBe(0);
    expect(transitJitter([5])).toBeUndefined();
    expect(transitJitter([])).toBeUndefined();
  });
});
