/**
 * The recording's timeline: where packets land in the WAV. Driven on a
 * per-sample clock (test/helpers/timeline.ts); the live stream has its own
 * file (live-playout.test.ts), SSRC probation too (ssrc-probation.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { JitterBuffer } from '../../src/media/jitter-buffer.js';
import {
  type Arrival,
  audioAt,
  DECODE,
  decoded,
  F,
  indexOf,
  payloadFor,
  run,
  silent,
  stream,
} from '../helpers/timeline.js';

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

describe('JitterBuffer: the recording', () => {
  it('plays an in-order stream bit-exact at its arrival time, as long as the wall clock', () => {
    const jb = new JitterBuffer();
    const { recording } = run(jb, stream(50, { start: 800 }), 800 + 50 * F + 400);
    expect(recording.length).toBe(800 + 50 * F + 400);
    expect(silent(recording, 0, 800)).toBe(true);
    expect(audioAt(recording, 800, range(50))).toBe(true);
    expect(jb.stats).toMatchObject({ received: 50, lost: 0, late: 0, duplicate: 0, reordered: 0, resync: 0 });
  });

  it('aligns the first packet to a frame boundary at or before its arrival', () => {
    const jb = new JitterBuffer();
    const { recording } = run(jb, stream(5, { start: 1000 }), 2000);
    expect(audioAt(recording, 960, [0, 1, 2, 3, 4])).toBe(true);
  });

  it('is written `recordingDelay` (1 s) behind: a frame comes out once its place is that old', () => {
    const jb = new JitterBuffer();
    const positions: number[] = [];
    jb.push(stream(1)[0]!.packet, 800, DECODE); // placed at [800, 960)
    for (let now = 0; now < 960 + 8000; now++) jb.pullRecording(now, (_f, i) => positions.push(i.position));
    expect(positions.at(-1)).toBe(640);
    expect(jb.nextRecordingDue).toBe(960 + 8000);
    jb.pullRecording(960 + 8000, (_f, i) => positions.push(i.position));
    expect(positions.at(-1)).toBe(800);
  });

  it('repairs reordering and a packet that arrives after the next three, whatever the stream’s phase', () => {
    for (const phase of [0, 1, 80, 159]) {
      const jb = new JitterBuffer();
      const arrivals = stream(12, { start: 800 + phase });
      arrivals[5]!.at = arrivals[8]!.at + 3;
      arrivals[2]!.at = arrivals[3]!.at + 1;
      const { recording } = run(jb, arrivals, 800 + 13 * F + 1000);
      expect(jb.stats, `phase ${phase}`).toMatchObject({ late: 0, lost: 0, reordered: 2, resync: 0 });
      expect(audioAt(recording, 800, range(12)), `phase ${phase}`).toBe(true);
    }
  });

  it('drops duplicates and counts them', () => {
    const arrivals = stream(10);
    arrivals.push(
      { ...arrivals[3]!, at: arrivals[3]!.at + 5 },
      { ...arrivals[3]!, at: arrivals[3]!.at + 50 },
    );
    const jb = new JitterBuffer();
    const { recording } = run(jb, arrivals, 800 + 10 * F);
    expect(audioAt(recording, 800, range(10))).toBe(true);
    expect(jb.stats.duplicate).toBe(2);
    expect(jb.stats.received).toBe(12);
  });

  it('turns a lost packet into 20 ms of silence and counts it', () => {
    const arrivals = stream(10).filter((_, i) => i !== 4);
    const jb = new JitterBuffer();
    const { recording } = run(jb, arrivals, 800 + 10 * F);
    expect(audioAt(recording, 800, [0, 1, 2, 3])).toBe(true);
    expect(silent(recording, 800 + 4 * F, 800 + 5 * F)).toBe(true);
    expect(audioAt(recording, 800 + 5 * F, [5, 6, 7, 8, 9])).toBe(true);
    expect(jb.stats.lost).toBe(1);
    expect(recording.length).toBe(800 + 10 * F);
  });

  it('handles the sequence number wrap, with reordering across it', () => {
    const arrivals = stream(12, { seq0: 65530 });
    arrivals[5]!.at += 2 * F + 3; // seq 65535 arrives after seq 0 and 1
    const jb = new JitterBuffer();
    const { recording } = run(jb, arrivals, 800 + 12 * F);
    expect(audioAt(recording, 800, range(12))).toBe(true);
    expect(jb.stats).toMatchObject({ lost: 0, late: 0, reordered: 1 });
  });

  it('handles the RTP timestamp wrap', () => {
    const jb = new JitterBuffer();
    const { recording } = run(jb, stream(10, { ts0: 0xffffffff - 3 * F }), 800 + 10 * F);
    expect(audioAt(recording, 800, range(10))).toBe(true);
    expect(jb.stats.resync).toBe(0);
  });

  it('turns a 2 s DTX gap into 2 s of silence, placed by its timestamp', () => {
    const gap = 16000;
    const before = stream(5);
    const after = stream(5, { seq0: 1005, ts0: 50_000 + 5 * F + gap, start: 800 + 5 * F + gap, k0: 5 });
    // The packet after the gap is 30 ms late: its timestamp still says where it goes.
    after[0]!.at += 240;
    const jb = new JitterBuffer();
    const { recording } = run(jb, [...before, ...after], 800 + 10 * F + gap + 400);
    expect(audioAt(recording, 800, [0, 1, 2, 3, 4])).toBe(true);
    expect(silent(recording, 800 + 5 * F, 800 + 5 * F + gap)).toBe(true);
    expect(audioAt(recording, 800 + 5 * F + gap, [5, 6, 7, 8, 9])).toBe(true);
    expect(jb.stats).toMatchObject({ lost: 0, resync: 0 });
  });

  it('places a hostile timestamp jump ahead by arrival: it cannot add silence', () => {
    const arrivals = stream(10);
    for (let i = 5; i < 10; i++)
      arrivals[i]!.packet.timestamp = (arrivals[i]!.packet.timestamp + 3_600 * 8000) >>> 0;
    const jb = new JitterBuffer();
    const end = 800 + 10 * F;
    const { recording } = run(jb, arrivals, end);
    expect(recording.length).toBe(end);
    expect(audioAt(recording, 800, range(10))).toBe(true);
    expect(jb.stats.resync).toBe(1);
  });

  it('re-anchors a backwards timestamp jump instead of overwriting audio', () => {
    const arrivals = stream(10);
    for (let i = 5; i < 10; i++)
      arrivals[i]!.packet.timestamp = (arrivals[i]!.packet.timestamp - 40_000) >>> 0;
    const jb = new JitterBuffer();
    const { recording } = run(jb, arrivals, 800 + 10 * F);
    expect(audioAt(recording, 800, range(10))).toBe(true);
    expect(jb.stats.resync).toBe(1);
  });

  it('places a reordered packet 120 ms late (more than the live delay) at its place, and counts it late for live', () => {
    const arrivals = stream(10);
    arrivals[3]!.at += 6 * F;
    const jb = new JitterBuffer();
    const { recording } = run(jb, arrivals, 800 + 10 * F + 2000);
    expect(audioAt(recording, 800, range(10))).toBe(true);
    expect(jb.stats).toMatchObject({ late: 0, resync: 0 });
    expect(jb.liveStats.liveLate).toBe(1);
  });

  it('counts a reordered packet later than the bound as late and keeps the timeline', () => {
    const arrivals = stream(12);
    arrivals[3]!.at += 8000 + 2 * F; // 1.04 s late: its place is already written
    const jb = new JitterBuffer();
    const { recording } = run(jb, arrivals, 800 + 12 * F + 9000);
    expect(jb.stats.late).toBe(1);
    expect(silent(recording, 800 + 3 * F, 800 + 4 * F)).toBe(true);
    expect(audioAt(recording, 800 + 4 * F, range(8, 4))).toBe(true);
    expect(jb.stats.resync).toBe(0);
  });

  it('follows the media clock of a sender whose packets drift later, up to the bound; past it, arrival decides', () => {
    // Each packet 25 samples later than the one before (a slow sender clock, a
    // queue filling up): after 40 packets they are 125 ms behind their timestamps.
    const slow = stream(40).map((a, i) => ({ ...a, at: a.at + i * 25 }));
    let jb = new JitterBuffer();
    let out = run(jb, slow, 800 + 40 * F + 40 * 25 + 9000).recording;
    expect(audioAt(out, 800, range(40))).toBe(true);
    expect(jb.stats).toMatchObject({ late: 0, resync: 0 });
    // 250 samples per packet: past 1 s behind after 32 packets. Nothing is lost, order is kept.
    const slower = stream(40).map((a, i) => ({ ...a, at: a.at + i * 250 }));
    jb = new JitterBuffer();
    out = run(jb, slower, 800 + 40 * F + 40 * 250 + 9000).recording;
    expect(jb.stats.late).toBe(0);
    expect(jb.stats.resync).toBeGreaterThan(0);
    let from = 0;
    for (let k = 0; k < 40; k++) {
      const at = indexOf(out, decoded(k), from);
      expect(at, `packet ${k}`).toBeGreaterThanOrEqual(from);
      from = at;
    }
  });

  it('counts telephone-event packets in the sequence space without playing them', () => {
    const arrivals: Arrival[] = stream(10);
    for (const i of [4, 5]) arrivals[i]!.event = true;
    const jb = new JitterBuffer();
    const { recording } = run(jb, arrivals, 800 + 10 * F);
    expect(jb.stats.lost).toBe(0);
    expect(silent(recording, 800 + 4 * F, 800 + 6 * F)).toBe(true);
    expect(audioAt(recording, 800 + 6 * F, [6, 7, 8, 9])).toBe(true);
  });

  it('treats a sequence restart as a new segment (once the next packet confirms it), not thousands lost', () => {
    const a = stream(5, { seq0: 100 });
    const b = stream(5, { seq0: 30000, ts0: 50_000 + 5 * F, start: 800 + 5 * F, k0: 5 });
    const jb = new JitterBuffer();
    const { recording } = run(jb, [...a, ...b], 800 + 10 * F);
    expect(audioAt(recording, 800, range(10))).toBe(true);
    expect(jb.stats).toMatchObject({ lost: 0, probationDropped: 0 });
  });

  it('ignores one packet that jumps the sequence (RFC 3550 A.1: a restart needs the next packet to follow)', () => {
    const arrivals = stream(20);
    const forged = {
      at: arrivals[8]!.at + 40,
      packet: { ssrc: 0x1234, sequenceNumber: 40_000, timestamp: 12345, payload: payloadFor(99) },
    };
    const jb = new JitterBuffer();
    const { recording } = run(jb, [...arrivals, forged], 800 + 20 * F);
    expect(audioAt(recording, 800, range(20))).toBe(true);
    expect(indexOf(recording, decoded(99))).toBe(-1);
    expect(jb.stats).toMatchObject({ lost: 0, resync: 0, probationDropped: 1 });
  });

  it('flushes the tail so nothing received is lost', () => {
    const jb = new JitterBuffer();
    const arrivals = stream(10);
    const out: number[] = [];
    const sink = (frame: Int16Array) => out.push(...frame);
    for (const a of arrivals) {
      jb.pullRecording(a.at, sink);
      jb.push(a.packet, a.at, DECODE);
    }
    // BYE arrives right after the last packet: a second's worth of audio is still queued.
    jb.flush(arrivals.at(-1)!.at + 1, sink);
    expect(audioAt(out, 800, range(10))).toBe(true);
  });

  it('never lets audio run more than the bound ahead of the wall clock: a fast sender cannot grow the file', () => {
    const jb = new JitterBuffer();
    // A sender that runs four times as fast as real time for 6 s of audio (1.5 s of wall clock).
    const fast = stream(300).map((a, i) => ({ ...a, at: 800 + i * (F / 4) }));
    const { recording } = run(jb, fast, 800 + 75 * F);
    expect(jb.stats.late).toBeGreaterThan(100);
    expect(recording.length).toBeLessThanOrEqual(800 + 75 * F + 8000 + F);
    // In order, back to back, from wherever the first packet went (it is taken as held up).
    expect(audioAt(recording, indexOf(recording, decoded(0)), range(50))).toBe(true);
  });

  it('moves a stream earlier when its first packet was held up: the rest keep their place relative to it', () => {
    // Packet 0 held up 300 ms (arrives with packets 15..), everything else on time.
    const arrivals = stream(60, { start: 800 + 37 });
    arrivals[0]!.at += 2400;
    const jb = new JitterBuffer();
    const { recording, live } = run(jb, arrivals, 800 + 61 * F + 9000);
    // Packet 1 arrived first and was anchored at its arrival; packet 0 sits right before it.
    expect(audioAt(recording, 800, range(60))).toBe(true);
    expect(jb.stats).toMatchObject({ late: 0, resync: 0 });
    // The live stream had moved on: packet 0 came too late for it (it is only in the WAV).
    expect(live.some((f) => indexOf(f.samples, decoded(0)) === 0)).toBe(false);
    expect(jb.liveStats.liveLate).toBe(1);
  });

  it('moves a stream earlier when a spike held up its first packets and the rest came in a burst', () => {
    // Frames 0..19 held 400 ms (released together with frame 20), the rest on time.
    const arrivals = stream(80, { start: 800 + 37 });
    for (let i = 0; i < 20; i++) arrivals[i]!.at = arrivals[20]!.at;
    const jb = new JitterBuffer();
    const { recording } = run(jb, arrivals, 800 + 81 * F + 9000);
    expect(audioAt(recording, 800, range(80))).toBe(true);
    expect(jb.stats).toMatchObject({ late: 0, resync: 0 });
  });
});

describe('JitterBuffer: delay spikes follow the media clock', () => {
  /**
   * 150 frames from `start` on; from frame `from` the sender holds its packets
   * for `ms` and then releases them in one burst (RTP timestamps contiguous),
   * with a packet lost and two reordered around it.
   */
  function spiky(ms: number, phase: number, from: number): { arrivals: Arrival[]; lost: number[] } {
    const arrivals = stream(150, { start: 800 + phase });
    const hold = arrivals[from]!.at;
    const release = hold + ms * 8;
    for (const a of arrivals) if (a.at >= hold && a.at < release) a.at = release;
    // Reordered: the burst's third packet comes last in the burst; the packet before the spike after its successor.
    arrivals[from + 2]!.at = release + 1;
    arrivals[from - 2]!.at = arrivals[from - 1]!.at + 5;
    const lost = [from - 4, from + 1];
    return { arrivals: arrivals.filter((_, i) => !lost.includes(i)), lost };
  }

  for (const ms of [100, 300, 1000]) {
    for (const phase of [0, 37, 159]) {
      for (const from of [20, 57]) {
        it(`a ${ms} ms spike at frame ${from}, phase ${phase}: every frame at its place`, () => {
          const { arrivals, lost } = spiky(ms, phase, from);
          const jb = new JitterBuffer();
          const { recording, live } = run(jb, arrivals, 800 + phase + 151 * F + ms * 8 + 9000);
          for (let k = 0; k < 150; k++) {
            const at = 800 + k * F;
            if (lost.includes(k)) expect(silent(recording, at, at + F), `frame ${k}`).toBe(true);
            else expect(audioAt(recording, at, [k]), `frame ${k}`).toBe(true);
          }
          expect(jb.stats).toMatchObject({ resync: 0, late: 0, lost: 2, reordered: 2 });
          // Live: every frame that arrived is played, in order (late audio is still played).
          let from2 = -1;
          for (let k = 0; k < 150; k++) {
            if (lost.includes(k)) continue;
            const i = live.findIndex((f, j) => j > from2 && indexOf(f.samples, decoded(k)) === 0);
            expect(i, `live frame ${k}`).toBeGreaterThan(from2);
            from2 = i;
          }
          if (ms >= 300) expect(jb.liveStats.liveConcealed).toBeGreaterThan(0);
        });
      }
    }
  }

  it('a spike beyond the bound (1.5 s) is placed by arrival: nothing is lost, order is kept', () => {
    const arrivals = stream(150, { start: 837 });
    const hold = arrivals[50]!.at;
    for (const a of arrivals) if (a.at >= hold && a.at < hold + 12000) a.at = hold + 12000;
    const jb = new JitterBuffer();
    const { recording } = run(jb, arrivals, 800 + 151 * F + 20000);
    expect(audioAt(recording, 800, range(50))).toBe(true);
    expect(jb.stats.resync).toBe(1);
    expect(jb.stats.late).toBe(0);
    let from = 0;
    for (let k = 0; k < 150; k++) {
      const at = indexOf(recording, decoded(k), from);
      expect(at, `frame ${k}`).toBeGreaterThanOrEqual(from);
      from = at;
    }
  });
});
