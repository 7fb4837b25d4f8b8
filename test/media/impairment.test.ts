/**
 * One call through a hostile network, end to end over loopback UDP: the
 * project's RTP sender plays real speech with reordering, duplicates, loss,
 * an SSRC change, a sequence wrap, a 2 s DTX gap (with comfort noise), a
 * key press, a malformed datagram and packets from a foreign port; a
 * MediaSession records it. The WAV must hold every packet that arrived,
 * bit-exact, at its place on the call's wall clock.
 */
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { type Impairment, RtpSender, type SendReport } from '../../src/media/rtp-sender.js';
import { type DtmfEvent, MediaSession, type MediaStats } from '../../src/media/session.js';
import type { NegotiatedMedia } from '../../src/sdp/negotiate.js';
import { WavWriter } from '../../src/sinks/wav.js';
import { WavSink } from '../../src/sinks/wav-sink.js';
import { waitFor } from '../helpers/ports.js';
import { readWav } from '../helpers/wav.js';

const LOOPBACK = '127.0.0.1';
const F = 160;
const DELAY_SAMPLES = 60 * 8;
const SPEECH = '/usr/share/pocketsphinx/test/data/goforward.raw';

/**
 * 8 kHz speech: goforward.raw (16 kHz s16le) decimated by 2, or a synthetic
 * voice-like signal when the file is absent. A small deterministic dither
 * makes every 20 ms frame unique, so a frame found in the WAV is that frame.
 */
function speech(): Int16Array {
  let pcm: Int16Array;
  if (existsSync(SPEECH)) {
    const raw = readFileSync(SPEECH);
    pcm = new Int16Array(Math.floor(raw.length / 4));
    for (let i = 0; i < pcm.length; i++) pcm[i] = raw.readInt16LE(i * 4);
  } else {
    pcm = Int16Array.from({ length: 140 * F }, (_, i) =>
      Math.round(6000 * Math.sin(i / 9) * Math.sin(i / 1300) + 2000 * Math.sin(i / 3.1)),
    );
  }
  let seed = 12345;
  for (let i = 0; i < pcm.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const dither = ((seed >>> 16) % 65) - 32;
    // Clamp below the µ-law code 0x00 level used for foreign packets.
    pcm[i] = Math.max(-30000, Math.min(30000, pcm[i]! + dither));
  }
  return pcm;
}

const IMPAIRMENTS: Impairment[] = [
  { kind: 'reorder', frames: [10, 20, 85, 120] }, // 20 is seq 65535, sent after seq 0
  { kind: 'duplicate', frames: [15, 30, 105] },
  { kind: 'drop', frames: [25, 26, 60, 110] },
  { kind: 'foreign', frames: [35, 70] },
  { kind: 'invalid', frames: [40] },
  { kind: 'dtmf', frame: 45, digit: '7', frames: 5 },
  { kind: 'ssrcChange', frame: 80 },
  { kind: 'dtxGap', frame: 100, ms: 2000, comfortNoise: true },
];

function find(hay: Int16Array, needle: Int16Array, from: number, to: number): number {
  const start = Math.max(0, from);
  const end = Math.min(hay.length - needle.length, to);
  outer: for (let i = start; i <= end; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

describe('impaired call end to end', () => {
  let dir: string;
  const sockets: dgram.Socket[] = [];
  let report: SendReport;
  let stats: MediaStats;
  let wav: Int16Array;
  let t0: number;
  let stopAt: number;
  const digits: DtmfEvent[] = [];
  /** performance.now() when the session's socket received each packet (first copy), by SSRC:seq. */
  const arrivals = new Map<string, number>();
  const key = (ssrc: number, seq: number) => `${ssrc >>> 0}:${seq}`;

  async function udp(): Promise<dgram.Socket> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, LOOPBACK, () => resolve()));
    sockets.push(s);
    return s;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rc-impair-'));
    const main = await udp();
    const foreign = await udp();
    // Not in `sockets`: the session owns it and closes it in stop().
    const local = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => local.bind(0, LOOPBACK, () => resolve()));
    const path = join(dir, 'call.wav');
    const negotiated: NegotiatedMedia = {
      codec: 'PCMU',
      payloadType: 0,
      clockRate: 8000,
      telephoneEventPt: 101,
      remoteAddress: LOOPBACK,
      remotePort: main.address().port,
      ptime: 20,
      direction: 'sendrecv',
      onHold: false,
    };
    t0 = performance.now();
    const session = new MediaSession({ socket: local, negotiated, t0 });
    const recording = new WavSink(WavWriter.open(path));
    session.on('frame', (f, info) => recording.write(f, info));
    // Listeners run in order: this one sees each datagram right after the session did.
    local.on('message', (msg) => {
      if (msg.length < 12 || msg[0]! >> 6 !== 2) return;
      const k = key(msg.readUInt32BE(8), msg.readUInt16BE(2));
      if (!arrivals.has(k)) arrivals.set(k, performance.now());
    });
    session.on('dtmf', (d) => digits.push(d));
    await session.prime();
    const sender = new RtpSender({
      socket: main,
      foreignSocket: foreign,
      target: { address: LOOPBACK, port: local.address().port },
      pcm: speech(),
      sequenceNumber: 65515,
      impairments: IMPAIRMENTS,
    });
    report = await sender.start();
    const mainPackets = report.packets.filter((p) => p.from === 'main' && p.kind !== 'invalid').length;
    await waitFor(() => session.stats.received === mainPackets, {
      timeoutMs: 15_000,
      message: 'every packet from the sender received',
    });
    stopAt = performance.now();
    stats = session.stop();
    recording.close();
    wav = readWav(path).samples;
  }, 60_000);

  afterAll(() => {
    for (const s of sockets) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Audio frames that were sent (not dropped, not replaced by a key press). */
  const delivered = () => report.frames.filter((f) => f.fate === 'sent');
  const slotOf = (k: number) => Math.round(report.frames[k]!.slotMs * 8);

  /** Where each delivered frame sits in the WAV (-1: not found). */
  function positions(): Map<number, number> {
    const found = new Map<number, number>();
    for (const f of delivered()) {
      const at = Math.round((arrivals.get(key(f.ssrc, f.sequenceNumber))! - t0) * 8);
      const expected = Int16Array.from(f.payload, (b) => ULAW_TO_LINEAR[b]!);
      // Robust alignment: an exact match within 1.5 s of arrival (every frame is unique).
      found.set(f.frame, find(wav, expected, at - 12_000, at + 12_000));
    }
    return found;
  }

  it('sent the whole plan', () => {
    expect(report.stoppedEarly).toBe(false);
    expect(report.sendErrors).toBe(0);
    const kinds = (k: string) => report.packets.filter((p) => p.kind === k).length;
    expect(kinds('foreign')).toBe(2);
    expect(kinds('invalid')).toBe(1);
    expect(kinds('comfortNoise')).toBe(1);
    expect(kinds('dtmf')).toBe(5 + 2);
    // The sequence wrapped and the SSRC changed.
    expect(report.frames.some((f) => f.sequenceNumber === 65535)).toBe(true);
    expect(new Set(report.frames.map((f) => f.ssrc)).size).toBe(2);
  });

  it('counts every impairment', () => {
    expect(stats).toMatchObject({
      lost: 4,
      duplicate: 3,
      reordered: 4,
      foreignSource: 2,
      invalid: 1,
      ssrcChange: 1,
      otherPayload: 1,
      dtmf: 1,
    });
    expect(digits.map((d) => d.digit)).toEqual(['7']);
  });

  it('holds every frame that arrived in time, bit-exact, on the timeline of its arrival', () => {
    const found = positions();
    const missing = [...found].filter(([, p]) => p < 0).map(([k]) => k);
    // Only a packet the jitter buffer had to call late (a stalled machine) may be absent.
    expect(missing.length).toBe(stats.late);
    expect(stats.late).toBeLessThan(10);
    // The first packet anchors the timeline at its arrival (RTP has no absolute time):
    // frame-aligned, or pulled back to where the silence not yet played out starts ...
    const first = found.get(0)!;
    const arrived = (arrivals.get(key(report.frames[0]!.ssrc, report.frames[0]!.sequenceNumber))! - t0) * 8;
    expect(first).toBeGreaterThan(arrived - DELAY_SAMPLES - 2 * F - 16);
    expect(first).toBeLessThanOrEqual(arrived + 16);
    // ... and every later frame sits exactly where its timestamp says: one offset for
    // the whole call, across reordering, the wrap, the SSRC change, the key press and
    // the DTX gap, unless the buffer had to re-anchor (only under heavy load).
    const offsets = new Set([...found].filter(([, p]) => p >= 0).map(([k, p]) => p - slotOf(k)));
    expect(offsets.size - 1).toBeLessThanOrEqual(stats.resync + stats.ssrcChange);
    if (stats.resync === 0) expect(offsets.size).toBe(1);
  });

  it('plays silence for lost packets and key presses; nothing foreign reaches the WAV', () => {
    const found = positions();
    const silent = report.frames.filter((f) => f.fate !== 'sent');
    expect(silent.map((f) => f.frame)).toEqual([25, 26, 45, 46, 47, 48, 49, 60, 110]);
    let checked = 0;
    for (const f of silent) {
      // The nearest frames found before and after, on the same offset: the hole between is this frame's place.
      let a = f.frame - 1;
      while (a >= 0 && !((found.get(a) ?? -1) >= 0)) a--;
      let b = f.frame + 1;
      while (b < report.frames.length && !((found.get(b) ?? -1) >= 0)) b++;
      const offset = found.get(a)! - slotOf(a);
      if (found.get(b)! - slotOf(b) !== offset) continue; // re-anchored in between (loaded machine)
      const at = slotOf(f.frame) + offset;
      expect(wav.slice(at, at + F).every((x) => x === 0)).toBe(true);
      checked++;
    }
    if (stats.resync === 0) expect(checked).toBe(silent.length);
    const loud = ULAW_TO_LINEAR[0x00]!;
    expect(wav.includes(loud)).toBe(false);
  });

  it('keeps the wall-clock length, the DTX gap included', () => {
    const wall = (stopAt - t0) * 8;
    const found = positions();
    // stop() writes up to the wall clock, or to the end of the newest audio if that
    // is later (audio anchored by a first packet that arrived late runs ahead).
    const lastAudioEnd = Math.max(...[...found.values()]) + F;
    expect(wav.length).toBeGreaterThanOrEqual(wall - 2 * F);
    expect(wav.length).toBeLessThanOrEqual(Math.max(wall, lastAudioEnd) + 2 * F);
    if (stats.resync === 0) expect(Math.abs(wav.length - wall)).toBeLessThanOrEqual(2 * F + DELAY_SAMPLES);
    expect(stats.durationMs).toBeCloseTo(wav.length / 8, 6);
    // The 2 s gap is in there as silence.
    const before = found.get(99)!;
    const after = found.get(100)!;
    if (before >= 0 && after >= 0 && stats.resync === 0) {
      expect(after - before).toBe(F + 2000 * 8);
      expect(wav.slice(before + F, after).every((x) => x === 0)).toBe(true);
    }
  });
});
