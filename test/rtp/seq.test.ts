import { describe, expect, it } from 'vitest';
import {
  isSeqNewer,
  type SeqUpdateKind,
  SequenceTracker,
  seqDiff,
  srtpIndexEstimate,
  tsDiff,
} from '../../src/rtp/seq.js';

describe('seqDiff / isSeqNewer', () => {
  it.each([
    [5, 3, 2],
    [3, 5, -2],
    [0, 65535, 1],
    [65535, 0, -1],
    [2, 65530, 8],
    [65530, 2, -8],
    [100, 100, 0],
    [32767, 0, 32767],
    [32768, 0, -32768],
    [0, 32768, -32768],
    [40000, 0, 40000 - 65536],
  ])('seqDiff(%i, %i) = %i', (a, b, d) => {
    expect(seqDiff(a, b)).toBe(d);
    expect(isSeqNewer(a, b)).toBe(d > 0);
  });
});

describe('tsDiff', () => {
  it.each([
    [160, 0, 160],
    [0, 160, -160],
    [80, 0xffffffb0, 160],
    [0xffffffb0, 80, -160],
    [0x7fffffff, 0, 0x7fffffff],
    [0x80000000, 0, -0x80000000],
    [0xffffffff, 0xffffffff, 0],
  ])('tsDiff(%i, %i) = %i', (a, b, d) => {
    expect(tsDiff(a, b)).toBe(d);
  });
});

type Step = [seq: number, kind: SeqUpdateKind, extended: number];

function run(steps: Step[], tracker = new SequenceTracker()): SequenceTracker {
  for (const [seq, kind, extended] of steps) {
    const got = tracker.update(seq);
    expect({ seq, kind: got, extended: tracker.extended }).toEqual({ seq, kind, extended });
  }
  return tracker;
}

describe('SequenceTracker (RFC 3550 A.1, A.3)', () => {
  it('counts cycles across 65535 → 0 with reordering on both sides of the wrap', () => {
    const t = run([
      [65532, 'first', 65532],
      [65533, 'inorder', 65533],
      [65535, 'inorder', 65535], // 65534 late
      [1, 'inorder', 65537], // wrapped; 0 late
      [65534, 'duplicate-or-reordered', 65534], // from before the wrap
      [0, 'duplicate-or-reordered', 65536],
      [2, 'inorder', 65538],
      [2, 'duplicate-or-reordered', 65538], // duplicate
    ]);
    expect(t.maxExtended).toBe(65538);
    expect(t.expected).toBe(65538 - 65532 + 1);
    expect(t.received).toBe(8);
    expect(t.lost).toBe(-1); // the duplicate, as A.3 says
  });

  it('counts loss as expected − received', () => {
    const t = run([
      [100, 'first', 100],
      [101, 'inorder', 101],
      [105, 'inorder', 105],
      [106, 'inorder', 106],
    ]);
    expect(t.expected).toBe(7);
    expect(t.received).toBe(4);
    expect(t.lost).toBe(3);
    // a straggler arrives: one fewer lost
    run([[103, 'duplicate-or-reordered', 103]], t);
    expect(t.lost).toBe(2);
  });

  it('keeps counting over several wraps', () => {
    const t = new SequenceTracker();
    let seq = 60000;
    t.update(seq);
    for (let i = 1; i <= 200_000; i++) {
      seq = (seq + 1) & 0xffff;
      if (t.update(seq) !== 'inorder') throw new Error(`not in order at ${i}`);
    }
    expect(t.maxExtended).toBe(60000 + 200_000);
    expect(t.extended).toBe(260_000);
    expect(t.lost).toBe(0);
  });

  it('gives a negative extended number for a packet from before the first one across a wrap', () => {
    run([
      [1, 'first', 1],
      [65535, 'duplicate-or-reordered', -1],
      [2, 'inorder', 2],
    ]);
  });

  it('takes a forward gap below MAX_DROPOUT as loss, across the wrap too', () => {
    run([
      [64000, 'first', 64000],
      [(64000 + 2999) & 0xffff, 'inorder', 64000 + 2999],
    ]);
  });

  it('flags a big jump, then restarts on the second sequential packet', () => {
    const t = run([
      [1000, 'first', 1000],
      [1001, 'inorder', 1001],
      [30000, 'jump', Number.NaN],
      [1002, 'inorder', 1002], // the stream continues: the jump was a stray
      [40000, 'jump', Number.NaN],
      [40001, 'restart', 40001],
      [40002, 'inorder', 40002],
    ]);
    expect(t.expected).toBe(2);
    expect(t.received).toBe(2);
  });

  it('treats a packet far behind (more than MAX_MISORDER) as a jump', () => {
    run([
      [5000, 'first', 5000],
      [4901, 'duplicate-or-reordered', 4901], // 99 behind
      [4900, 'jump', Number.NaN], // 100 behind: A.1 takes udelta <= 65536 - MAX_MISORDER as a jump
    ]);
  });

  it('restart across the wrap', () => {
    run([
      [30000, 'first', 30000],
      [65535, 'jump', Number.NaN],
      [0, 'restart', 0],
      [1, 'inorder', 1],
    ]);
  });

  it('honours custom limits', () => {
    run(
      [
        [0, 'first', 0],
        [10, 'inorder', 10],
        [21, 'jump', Number.NaN],
        [6, 'duplicate-or-reordered', 6],
        [5, 'jump', Number.NaN],
      ],
      new SequenceTracker({ maxDropout: 11, maxMisorder: 5 }),
    );
  });

  it('extend() maps nearby numbers without recording them', () => {
    const t = new SequenceTracker();
    expect(t.extend(5)).toBeNaN();
    expect(t.expected).toBe(0);
    run(
      [
        [65535, 'first', 65535],
        [3, 'inorder', 65539],
      ],
      t,
    );
    expect(t.extend(65534)).toBe(65534);
    expect(t.extend(4)).toBe(65540);
    expect(t.extend(0)).toBe(65536);
    expect(t.received).toBe(2);
  });

  it('masks inputs to 16 bits', () => {
    run([
      [65536 + 7, 'first', 7],
      [8, 'inorder', 8],
    ]);
  });
});

describe('srtpIndexEstimate (RFC 3711 3.3.1, Appendix A)', () => {
  const M = 65536;
  it.each([
    // [seq, s_l, roc, index]
    ['in order', 101, 100, 0, 101],
    ['a little late', 99, 100, 0, 99],
    ['same cycle, far ahead', 30000, 100, 3, 3 * M + 30000],
    ['across the wrap, ahead', 5, 65530, 0, M + 5],
    ['across the wrap after a long loss', 200, 65300, 0, M + 200],
    ['late from before the wrap', 65530, 5, 1, 65530],
    ['late from before the wrap, later cycle', 65000, 300, 7, 6 * M + 65000],
    ['before the first cycle: negative', 65535, 3, 0, -1],
    ['exactly half a cycle ahead while s_l < 2^15: ahead (the RFC tie)', 32868, 100, 2, 2 * M + 32868],
    ['one past half ahead while s_l < 2^15: previous cycle', 32869, 100, 2, M + 32869],
    ['exactly half behind while s_l >= 2^15: same cycle', 0, 32768, 1, M],
    ['one more behind while s_l >= 2^15: next cycle', 1, 32770, 1, 2 * M + 1],
  ])('%s', (_, seq, sl, roc, index) => {
    expect(srtpIndexEstimate(seq, sl, roc)).toBe(index);
  });
});
