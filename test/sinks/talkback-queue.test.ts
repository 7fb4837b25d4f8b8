/**
 * The talk-back playout queue on a simulated clock: a server that sends its
 * audio at real-time pace with a few ms of jitter, and MediaSession's 20 ms
 * ticks taking frames.
 */
import { describe, expect, it } from 'vitest';
import { encodeUlawFrame } from '../../src/media/g711.js';
import { TalkBackQueue } from '../../src/sinks/talkback-queue.js';

const F = 160;

/** µ-law for frame k: a tone whose level encodes k, so the frame played tells which it was. */
function ulawFrame(k: number): Uint8Array {
  const pcm = Int16Array.from({ length: F }, (_, i) => Math.round((1000 + k * 10) * Math.sin(i / 5)));
  const out = new Uint8Array(F);
  encodeUlawFrame(pcm, out);
  return out;
}

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) / 0x1000000;
  };
}

type ServerEvent = { at: number; frame?: number; mark?: string };

/**
 * Replays server events against ticks every 20 ms (at 20, 40, …). Returns, per
 * tick, the frame index played (-1: silence) and the marks echoed during it.
 */
function replay(
  queue: TalkBackQueue,
  events: ServerEvent[],
  ticks: number,
  marks: string[],
): { played: number[]; marksAt: Map<string, number> } {
  const played: number[] = [];
  const marksAt = new Map<string, number>();
  const frames = new Map<string, number>();
  for (let k = 0; k < 2000; k++) frames.set(Array.from(ulawFrame(k)).join(), k);
  let e = 0;
  for (let t = 1; t <= ticks; t++) {
    while (e < events.length && events[e]!.at < t * 20) {
      const ev = events[e++]!;
      if (ev.frame !== undefined) queue.enqueueAudio(ulawFrame(ev.frame));
      if (ev.mark !== undefined) queue.enqueueMark(ev.mark);
    }
    const before = marks.length;
    const frame = queue.nextFrame();
    if (frame === undefined) played.push(-1);
    else {
      const back = new Uint8Array(F);
      encodeUlawFrame(frame, back);
      played.push(frames.get(Array.from(back).join()) ?? -2);
    }
    for (const m of marks.slice(before)) marksAt.set(m, t - 1);
  }
  return { played, marksAt };
}

/**
 * Frames 0..count-1 sent at real-time pace from `start` ms, each but the
 * first up to `jitterMs` late; in order, as over the WebSocket's TCP.
 */
function realTime(count: number, start: number, jitterMs: number, seed = 1): ServerEvent[] {
  const random = rng(seed);
  let at = start;
  return Array.from({ length: count }, (_, k) => {
    at = Math.max(at, start + k * 20 + (k === 0 ? 0 : random() * jitterMs));
    return { at, frame: k };
  });
}

/** Silent ticks between the first frame played and the last. */
function holes(played: number[]): number {
  const first = played.findIndex((k) => k >= 0);
  const last = played.length - 1 - [...played].reverse().findIndex((k) => k >= 0);
  return played.slice(first, last + 1).filter((k) => k < 0).length;
}

describe('TalkBackQueue', () => {
  it('plays a real-time server with a few ms of jitter without a hole, where no lead leaves holes', () => {
    // The first frame lands half a ms before a tick: the worst phase for a queue without a lead.
    const events = realTime(150, 19.5, 4);
    const marks: string[] = [];
    const noLead = replay(
      new TalkBackQueue({ maxFrames: 1000, onMark: () => {}, minLead: 0, maxLead: 0 }),
      events,
      200,
      [],
    );
    expect(holes(noLead.played)).toBeGreaterThan(0);

    const queue = new TalkBackQueue({ maxFrames: 1000, onMark: (m) => marks.push(m) });
    const { played } = replay(queue, events, 200, marks);
    expect(holes(played)).toBe(0);
    expect(played.filter((k) => k >= 0)).toEqual(Array.from({ length: 150 }, (_, k) => k));
    expect(queue.stats).toMatchObject({ underruns: 0, leadMs: 20, played: 150 });
  });

  it('counts underruns and grows the lead until the jitter is absorbed', () => {
    const queue = new TalkBackQueue({ maxFrames: 1000, onMark: () => {} });
    const { played } = replay(queue, realTime(500, 19.5, 45, 7), 560, []);
    expect(queue.stats.underruns).toBeGreaterThan(0);
    expect(queue.stats.leadMs).toBeGreaterThan(20);
    expect(played.filter((k) => k >= 0)).toEqual(Array.from({ length: 500 }, (_, k) => k));
    // Once the lead has grown, the second half plays without a hole.
    const second = played.slice(played.indexOf(250));
    expect(holes(second)).toBe(0);
  });

  it('shrinks the lead again after 10 s without an underrun', () => {
    const queue = new TalkBackQueue({ maxFrames: 1000, onMark: () => {} });
    replay(queue, [...realTime(100, 19.5, 45, 7), ...realTime(600, 2019.5, 0)], 2000 / 20 + 700, []);
    expect(queue.stats.leadMs).toBeLessThan(40);
  });

  it('echoes a mark exactly when the audio before it has been played, after the lead', () => {
    const events: ServerEvent[] = [...realTime(10, 19.5, 3), { at: 19.5 + 9 * 20 + 4, mark: 'm' }];
    events.push(...realTime(10, 19.5 + 10 * 20, 3, 2).map((e) => ({ ...e, frame: e.frame! + 10 })));
    events.sort((a, b) => a.at - b.at);
    const marks: string[] = [];
    const queue = new TalkBackQueue({ maxFrames: 1000, onMark: (m) => marks.push(m) });
    const { played, marksAt } = replay(queue, events, 40, marks);
    expect(marks).toEqual(['m']);
    expect(marksAt.get('m')).toBe(played.indexOf(9));
  });

  it('echoes a mark with no audio before it at once, and a clear echoes pending marks (no underrun)', () => {
    const marks: string[] = [];
    const queue = new TalkBackQueue({ maxFrames: 1000, onMark: (m) => marks.push(m) });
    queue.enqueueMark('alone');
    expect(marks).toEqual(['alone']);
    queue.enqueueAudio(ulawFrame(1));
    queue.enqueueMark('after');
    queue.clear();
    expect(marks).toEqual(['alone', 'after']);
    queue.enqueueAudio(ulawFrame(2));
    expect(queue.stats).toMatchObject({ underruns: 0, cleared: 1 });
  });
});
