import { describe, expect, it } from 'vitest';
import { type AudioPacket, JitterBuffer } from '../../src/media/jitter-buffer.js';

/** Every byte decodes to a distinct, recognisable sample. */
const DECODE = Int16Array.from({ length: 256 }, (_, i) => (i - 128) * 100 + 1);
const F = 160;

/** Payload for packet k: bytes that encode k, so the output tells which packet played where. */
function payloadFor(k: number, n = F): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (k * 7 + i) % 256);
}
function decoded(k: number, n = F): number[] {
  return Array.from(payloadFor(k, n), (b) => DECODE[b]!);
}

interface Arrival {
  /** Arrival time on the timeline, in samples. */
  at: number;
  packet: AudioPacket;
  event?: boolean;
}

/** Feeds arrivals in time order with a 20 ms playout ticker, then flushes at `end`. */
function play(jb: JitterBuffer, arrivals: Arrival[], end: number): { out: number[]; audioFrames: number } {
  const out: number[] = [];
  let audioFrames = 0;
  const sink = (frame: Int16Array, info: { audio: boolean }) => {
    out.push(...frame);
    if (info.audio) audioFrames++;
  };
  const sorted = [...arrivals].sort((a, b) => a.at - b.at);
  let tick = 0;
  for (const a of sorted) {
    while (tick <= a.at) {
      jb.pull(tick, sink);
      tick += F;
    }
    jb.push(a.packet, a.at, a.event ? undefined : DECODE);
  }
  while (tick <= end) {
    jb.pull(tick, sink);
    tick += F;
  }
  jb.flush(end, sink);
  return { out, audioFrames };
}

/**
 * Like `play`, on a clock that ticks every sample (packets first, then the
 * pull), so emission times are exact; also returns when each audio frame came out.
 */
function playEverySample(
  jb: JitterBuffer,
  arrivals: Arrival[],
  end: number,
): { out: number[]; emitted: { position: number; at: number }[] } {
  const out: number[] = [];
  const emitted: { position: number; at: number }[] = [];
  let now = 0;
  const sink = (frame: Int16Array, info: { position: number; audio: boolean }) => {
    out.push(...frame);
    if (info.audio) emitted.push({ position: info.position, at: now });
  };
  for (; now <= end; now++) {
    for (const a of arrivals) if (a.at === now) jb.push(a.packet, now, a.event ? undefined : DECODE);
    jb.pull(now, sink);
  }
  jb.flush(end, sink);
  return { out, emitted };
}

function stream(
  count: number,
  opts: { ssrc?: number; seq0?: number; ts0?: number; start?: number; k0?: number } = {},
): Arrival[] {
  const { ssrc = 0x1234, seq0 = 1000, ts0 = 50_000, start = 800, k0 = 0 } = opts;
  return Array.from({ length: count }, (_, i) => ({
    at: start + i * F,
    packet: {
      ssrc,
      sequenceNumber: (seq0 + i) & 0xffff,
      timestamp: (ts0 + i * F) >>> 0,
      payload: payloadFor(k0 + i),
    },
  }));
}

function expectAudioAt(out: number[], position: number, ks: number[]): void {
  const expected = ks.flatMap((k) => decoded(k));
  expect(out.slice(position, position + expected.length)).toEqual(expected);
}

describe('JitterBuffer', () => {
  it('plays an in-order stream bit-exact at its arrival time, as long as the wall clock', () => {
    const jb = new JitterBuffer();
    const { out } = play(jb, stream(50, { start: 800 }), 800 + 50 * F + 400);
    expect(out.length).toBe(800 + 50 * F + 400);
    expect(out.slice(0, 800).every((s) => s === 0)).toBe(true);
    expectAudioAt(
      out,
      800,
      Array.from({ length: 50 }, (_, i) => i),
    );
    expect(jb.stats).toMatchObject({ received: 50, lost: 0, late: 0, duplicate: 0, reordered: 0, resync: 0 });
  });

  it('aligns the first packet to a frame boundary at or before its arrival', () => {
    const jb = new JitterBuffer();
    const { out } = play(jb, stream(5, { start: 1000 }), 2000);
    expectAudioAt(out, 960, [0, 1, 2, 3, 4]);
  });

  it('repairs reordering of 3 packets within the delay', () => {
    const arrivals = stream(20);
    // Packets 5,6,7 arrive in the order 7,5,6, each up to 40 ms late.
    arrivals[5]!.at += 2 * F + 1;
    arrivals[6]!.at += 2 * F + 2;
    arrivals[7]!.at -= 0;
    const jb = new JitterBuffer();
    const { out } = play(jb, arrivals, 800 + 20 * F);
    expectAudioAt(
      out,
      800,
      Array.from({ length: 20 }, (_, i) => i),
    );
    expect(jb.stats.reordered).toBe(2);
    expect(jb.stats.lost).toBe(0);
    expect(jb.stats.late).toBe(0);
  });

  it('repairs a packet that arrives after the next three, whatever the stream’s phase (default delay)', () => {
    for (const phase of [0, 1, 80, 159]) {
      const jb = new JitterBuffer();
      // Packet 5 arrives just after packet 8: 60 ms late, plus a few samples.
      const arrivals = stream(12, { start: 800 + phase });
      arrivals[5]!.at = arrivals[8]!.at + 3;
      const { out } = playEverySample(jb, arrivals, 800 + 13 * F + 1000);
      expect(jb.stats, `phase ${phase}`).toMatchObject({ late: 0, lost: 0, reordered: 1, resync: 0 });
      expectAudioAt(
        out,
        800,
        Array.from({ length: 12 }, (_, i) => i),
      );
    }
  });

  it('drops duplicates and counts them', () => {
    const arrivals = stream(10);
    arrivals.push(
      { ...arrivals[3]!, at: arrivals[3]!.at + 5 },
      { ...arrivals[3]!, at: arrivals[3]!.at + 50 },
    );
    const jb = new JitterBuffer();
    const { out } = play(jb, arrivals, 800 + 10 * F);
    expectAudioAt(
      out,
      800,
      Array.from({ length: 10 }, (_, i) => i),
    );
    expect(jb.stats.duplicate).toBe(2);
    expect(jb.stats.received).toBe(12);
  });

  it('turns a lost packet into 20 ms of silence and counts it', () => {
    const arrivals = stream(10).filter((_, i) => i !== 4);
    const jb = new JitterBuffer();
    const { out } = play(jb, arrivals, 800 + 10 * F);
    expectAudioAt(out, 800, [0, 1, 2, 3]);
    expect(out.slice(800 + 4 * F, 800 + 5 * F).every((s) => s === 0)).toBe(true);
    expectAudioAt(out, 800 + 5 * F, [5, 6, 7, 8, 9]);
    expect(jb.stats.lost).toBe(1);
    expect(out.length).toBe(800 + 10 * F);
  });

  it('handles the sequence number wrap, with reordering across it', () => {
    const arrivals = stream(12, { seq0: 65530 });
    // seq 65535 (index 5) arrives after seq 0 and 1.
    arrivals[5]!.at += 2 * F + 3;
    const jb = new JitterBuffer();
    const { out } = play(jb, arrivals, 800 + 12 * F);
    expectAudioAt(
      out,
      800,
      Array.from({ length: 12 }, (_, i) => i),
    );
    expect(jb.stats).toMatchObject({ lost: 0, late: 0, reordered: 1 });
  });

  it('handles the RTP timestamp wrap', () => {
    const jb = new JitterBuffer();
    const { out } = play(jb, stream(10, { ts0: 0xffffffff - 3 * F }), 800 + 10 * F);
    expectAudioAt(
      out,
      800,
      Array.from({ length: 10 }, (_, i) => i),
    );
    expect(jb.stats.resync).toBe(0);
  });

  it('continues at arrival time without gap or shift when the SSRC changes', () => {
    const first = stream(10, { ssrc: 1, seq0: 100, ts0: 1000 });
    const second = stream(10, { ssrc: 2, seq0: 40000, ts0: 987654321, start: 800 + 10 * F + 7, k0: 10 });
    const jb = new JitterBuffer();
    const { out } = play(jb, [...first, ...second], 800 + 20 * F);
    expectAudioAt(
      out,
      800,
      Array.from({ length: 20 }, (_, i) => i),
    );
    expect(jb.stats).toMatchObject({ ssrcChange: 1, lost: 0, late: 0 });
  });

  it('places a new SSRC after a real pause at its arrival time', () => {
    const first = stream(5, { ssrc: 1 });
    const pause = 8000; // 1 s of nothing between the two sources
    const second = stream(5, { ssrc: 2, ts0: 9, start: 800 + 5 * F + pause, k0: 5 });
    const jb = new JitterBuffer();
    const { out } = play(jb, [...first, ...second], 800 + 10 * F + pause);
    expectAudioAt(out, 800, [0, 1, 2, 3, 4]);
    expect(out.slice(800 + 5 * F, 800 + 5 * F + pause).every((s) => s === 0)).toBe(true);
    expectAudioAt(out, 800 + 5 * F + pause, [5, 6, 7, 8, 9]);
  });

  it('turns a 2 s DTX gap into 2 s of silence', () => {
    const gap = 16000;
    const before = stream(5);
    const after = stream(5, { seq0: 1005, ts0: 50_000 + 5 * F + gap, start: 800 + 5 * F + gap, k0: 5 });
    const jb = new JitterBuffer();
    const { out } = play(jb, [...before, ...after], 800 + 10 * F + gap);
    expectAudioAt(out, 800, [0, 1, 2, 3, 4]);
    expect(out.slice(800 + 5 * F, 800 + 5 * F + gap).every((s) => s === 0)).toBe(true);
    expectAudioAt(out, 800 + 5 * F + gap, [5, 6, 7, 8, 9]);
    expect(jb.stats).toMatchObject({ lost: 0, resync: 0 });
  });

  it('caps a hostile timestamp jump at the wall clock', () => {
    const arrivals = stream(10);
    for (let i = 5; i < 10; i++)
      arrivals[i]!.packet.timestamp = (arrivals[i]!.packet.timestamp + 3_600 * 8000) >>> 0;
    const jb = new JitterBuffer();
    const end = 800 + 10 * F;
    const { out } = play(jb, arrivals, end);
    expect(out.length).toBe(end);
    expectAudioAt(
      out,
      800,
      Array.from({ length: 10 }, (_, i) => i),
    );
    expect(jb.stats.resync).toBe(1);
  });

  it('re-anchors a backwards timestamp jump instead of overwriting audio', () => {
    const arrivals = stream(10);
    for (let i = 5; i < 10; i++)
      arrivals[i]!.packet.timestamp = (arrivals[i]!.packet.timestamp - 40_000) >>> 0;
    const jb = new JitterBuffer();
    const { out } = play(jb, arrivals, 800 + 10 * F);
    expectAudioAt(
      out,
      800,
      Array.from({ length: 10 }, (_, i) => i),
    );
    expect(jb.stats.resync).toBe(1);
  });

  it('counts a packet later than the playout delay as late and keeps the timeline', () => {
    const arrivals = stream(10);
    arrivals[3]!.at += 6 * F; // 120 ms late with a 70 ms buffer
    const jb = new JitterBuffer();
    const { out } = play(jb, arrivals, 800 + 10 * F);
    expect(jb.stats.late).toBe(1);
    expect(out.length).toBe(800 + 10 * F);
    expect(out.slice(800 + 3 * F, 800 + 4 * F).every((s) => s === 0)).toBe(true);
    expectAudioAt(out, 800 + 4 * F, [4, 5, 6, 7, 8, 9]);
  });

  it('keeps the audio of a stream that fell behind the playout point (clock slip)', () => {
    // The sender's clock is slow: timestamps advance 150 per 160 samples of wall time... modelled as
    // packets arriving 10 samples later each time, so they eventually miss their slot.
    const arrivals = stream(40).map((a, i) => ({ ...a, at: a.at + i * 20 }));
    const jb = new JitterBuffer();
    const { out, audioFrames } = play(jb, arrivals, 800 + 40 * F + 40 * 20 + 800);
    expect(jb.stats.late).toBe(0);
    expect(audioFrames).toBeGreaterThanOrEqual(40);
    // Every packet's audio is somewhere in the output, in order.
    const joined = out.join(',');
    let from = 0;
    for (let k = 0; k < 40; k++) {
      const at = joined.indexOf(decoded(k).join(','), from);
      expect(at, `packet ${k}`).toBeGreaterThanOrEqual(from);
      from = at;
    }
    expect(jb.stats.resync).toBeGreaterThan(0);
  });

  it('counts telephone-event packets in the sequence space without playing them', () => {
    const arrivals: Arrival[] = stream(10);
    for (const i of [4, 5]) arrivals[i]!.event = true;
    const jb = new JitterBuffer();
    const { out } = play(jb, arrivals, 800 + 10 * F);
    expect(jb.stats.lost).toBe(0);
    expect(out.slice(800 + 4 * F, 800 + 6 * F).every((s) => s === 0)).toBe(true);
    expectAudioAt(out, 800 + 6 * F, [6, 7, 8, 9]);
  });

  it('treats a sequence restart as a new segment, not thousands lost', () => {
    const a = stream(5, { seq0: 100 });
    const b = stream(5, { seq0: 30000, ts0: 50_000 + 5 * F, start: 800 + 5 * F, k0: 5 });
    const jb = new JitterBuffer();
    const { out } = play(jb, [...a, ...b], 800 + 10 * F);
    expectAudioAt(
      out,
      800,
      Array.from({ length: 10 }, (_, i) => i),
    );
    expect(jb.stats.lost).toBe(0);
  });

  it('flushes the tail so nothing received is lost', () => {
    const jb = new JitterBuffer();
    const arrivals = stream(10);
    const out: number[] = [];
    const sink = (frame: Int16Array) => out.push(...frame);
    for (const a of arrivals) {
      jb.pull(a.at, sink);
      jb.push(a.packet, a.at, DECODE);
    }
    // BYE arrives right after the last packet: the delay's worth of audio is still queued.
    jb.flush(arrivals.at(-1)!.at + 1, sink);
    expectAudioAt(
      out,
      800,
      Array.from({ length: 10 }, (_, i) => i),
    );
  });

  it('emits a frame exactly `delay` after its packet arrived, not before', () => {
    const jb = new JitterBuffer({ delaySamples: 480 });
    const audio: number[] = [];
    const sink = (_f: Int16Array, info: { position: number; audio: boolean }) => {
      if (info.audio) audio.push(info.position);
    };
    jb.push(stream(1)[0]!.packet, 800, DECODE); // placed at [800, 960)
    jb.pull(800 + 480 - 1, sink);
    expect(jb.played).toBe(800);
    expect(jb.nextFrameDue).toBe(800 + 480);
    expect(audio).toEqual([]);
    jb.pull(800 + 480, sink);
    expect(audio).toEqual([800]);
    expect(jb.played).toBe(960);
  });

  it('follows the stream’s phase: a packet arriving mid-frame waits `delay`, not `delay` plus the rest of the frame', () => {
    const jb = new JitterBuffer({ delaySamples: 480 });
    // Every packet arrives 130 samples into its frame, steadily.
    const { emitted } = playEverySample(jb, stream(5, { start: 800 + 130 }), 800 + 130 + 5 * 160 + 480);
    expect(emitted).toEqual(
      [0, 1, 2, 3, 4].map((k) => ({ position: 800 + k * 160, at: 800 + 130 + k * 160 + 480 })),
    );
    expect(jb.stats.late).toBe(0);
  });

  it('takes the earliest arrival as the baseline: a late first packet does not delay the rest', () => {
    const jb = new JitterBuffer({ delaySamples: 480 });
    // The first packet is held up 100 samples; the rest come 30 samples into their frames.
    const arrivals = stream(4, { start: 800 + 30 });
    arrivals[0]!.at += 100;
    const { emitted } = playEverySample(jb, arrivals, 800 + 4 * 160 + 480);
    // From packet 1 on the baseline is 30 samples into the frame, for frame 0 too (its packet is long in).
    expect(emitted).toEqual(
      [0, 1, 2, 3].map((k) => ({ position: 800 + k * 160, at: 800 + k * 160 + 30 + 480 })),
    );
    expect(jb.stats.late).toBe(0);
  });

  it('never places more than the buffer limit ahead of the wall clock', () => {
    const jb = new JitterBuffer({ maxBufferedSamples: 1600 });
    const burst = stream(30).map((a) => ({ ...a, at: 800 }));
    for (const a of burst) jb.push(a.packet, a.at, DECODE);
    expect(jb.stats.late).toBeGreaterThan(0);
    expect(jb.stats.late).toBeLessThan(30);
  });
});

describe('telephone-event packets and the timeline', () => {
  it('a key press (event packets repeating the start timestamp) does not shift the audio after it', async () => {
    const { JitterBuffer } = await import('../../src/media/jitter-buffer.js');
    const { ULAW_TO_LINEAR } = await import('../../src/media/g711.js');
    const jb = new JitterBuffer();
    const out: number[] = [];
    const sink = (frame: Int16Array) => {
      for (const s of frame) out.push(s);
    };
    let seq = 100;
    const ts0 = 5000;
    const audio = (k: number) => ({
      ssrc: 1,
      sequenceNumber: seq++,
      timestamp: ts0 + k * 160,
      payload: new Uint8Array(160).fill(k + 1),
    });
    // frames 0..9 audio, 10..14 a key press (7 packets: 4 updates + 3 end), 15..19 audio
    for (let k = 0; k < 10; k++) {
      jb.push(audio(k), k * 160, ULAW_TO_LINEAR);
      jb.pull(k * 160, sink);
    }
    for (let i = 0; i < 7; i++) {
      const at = (10 + Math.min(i, 4)) * 160 + i;
      jb.push(
        { ssrc: 1, sequenceNumber: seq++, timestamp: ts0 + 10 * 160, payload: new Uint8Array(4) },
        at,
        undefined,
      );
      jb.pull(at, sink);
    }
    for (let k = 15; k < 20; k++) {
      jb.push(audio(k), k * 160, ULAW_TO_LINEAR);
      jb.pull(k * 160, sink);
    }
    jb.flush(20 * 160, sink);
    expect(jb.stats.resync).toBe(0);
    expect(out[15 * 160]).toBe(ULAW_TO_LINEAR[16]);
    expect(out[10 * 160]).toBe(0);
  });
});

describe('the first stream of a call', () => {
  it.each([10, 70, 200])(
    'is anchored at its arrival (%i ms after the answer) and tolerates 50 ms of jitter',
    async (firstAtMs) => {
      const { JitterBuffer } = await import('../../src/media/jitter-buffer.js');
      const { ULAW_TO_LINEAR } = await import('../../src/media/g711.js');
      const jb = new JitterBuffer({ frameSamples: 160, delaySamples: 480 });
      const played: number[] = [];
      const sink = (_f: Int16Array, info: { position: number; audio: boolean }) => {
        if (info.audio) played.push(info.position);
      };
      const packet = (seq: number) => ({
        ssrc: 1,
        sequenceNumber: seq,
        timestamp: 1000 + seq * 160,
        payload: new Uint8Array(160).fill(0x10),
      });
      const first = firstAtMs * 8;
      jb.pull(first, sink);
      jb.push(packet(0), first, ULAW_TO_LINEAR);
      const second = first + 160 + 50 * 8; // 50 ms late
      jb.pull(second, sink);
      expect(jb.push(packet(1), second, ULAW_TO_LINEAR)).toBe('placed');
      jb.flush(second + 2000, sink);
      expect(jb.stats.resync).toBe(0);
      const anchor = Math.floor(first / 160) * 160;
      expect(played).toEqual([anchor, anchor + 160]);
    },
  );
});
