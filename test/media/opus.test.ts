import { Encoder as EvanEncoder } from '@evan/opus';
import { beforeAll, describe, expect, it } from 'vitest';
import { dominantFrequency } from '../../src/media/goertzel.js';
import {
  inspectOpusPacket,
  loadOpus,
  OpusDecoder,
  OpusEncoder,
  opusEncoderOptions,
  opusLoaded,
} from '../../src/media/opus.js';

/**
 * Voiced speech, roughly: a 150 Hz fundamental with a vibrato and its first
 * twelve harmonics falling off as 1/h (so concealment cannot just repeat one
 * period, and the encoder's voice activity detector calls it speech).
 */
function voice(rate: number, seconds: number, amp = 6000): Int16Array {
  const out = new Int16Array(Math.round(rate * seconds));
  let phase = 0;
  for (let i = 0; i < out.length; i++) {
    phase += (2 * Math.PI * (150 + 20 * Math.sin((2 * Math.PI * 3 * i) / rate))) / rate;
    let v = 0;
    for (let h = 1; h <= 12; h++) v += Math.sin(h * phase) / h;
    out[i] = Math.round(amp * v);
  }
  return out;
}

function tone(rate: number, seconds: number, freq: number, amp = 8000): Int16Array {
  return Int16Array.from({ length: Math.round(rate * seconds) }, (_, i) =>
    Math.round(amp * Math.sin((2 * Math.PI * freq * i) / rate)),
  );
}

function frames(pcm: Int16Array, size: number): Int16Array[] {
  const out: Int16Array[] = [];
  for (let at = 0; at + size <= pcm.length; at += size) out.push(pcm.subarray(at, at + size));
  return out;
}

function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Normalised correlation of a and b (same length), 1 for identical shapes. */
function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}

/** The lag (decoded behind original) with the best correlation over `length` samples from `from`. */
function align(original: Int16Array, decoded: Int16Array, from: number, length: number, maxLag: number) {
  let best = { lag: 0, corr: -1 };
  for (let lag = 0; lag <= maxLag; lag++) {
    const c = correlation(
      original.subarray(from, from + length),
      decoded.subarray(from + lag, from + lag + length),
    );
    if (c > best.corr) best = { lag, corr: c };
  }
  return best;
}

function energy(a: ArrayLike<number>, b?: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - (b ? b[i]! : 0);
    sum += d * d;
  }
  return sum;
}

describe('before loadOpus()', () => {
  it('creating a decoder is a CODEC_FAILED error naming the missing await', () => {
    expect(opusLoaded()).toBe(false);
    expect(() => new OpusDecoder(16000)).toThrow(expect.objectContaining({ code: 'CODEC_FAILED' }));
    expect(() => new OpusEncoder(16000)).toThrow(/await loadOpus\(\)/);
  });
});

describe('Opus (libopus WASM)', () => {
  beforeAll(async () => {
    // Concurrent callers share one load.
    await Promise.all([loadOpus(), loadOpus()]);
  });

  it('loads once', async () => {
    expect(opusLoaded()).toBe(true);
    await expect(loadOpus()).resolves.toBeUndefined();
  });

  it('refuses rates libopus does not have', () => {
    expect(() => new OpusDecoder(44100)).toThrow(RangeError);
    expect(() => new OpusEncoder(11025)).toThrow(RangeError);
  });

  it.each([16000, 8000])(
    'round-trips a tone at %i Hz: frequency within 2 %%, correlated after alignment',
    (rate) => {
      const original = tone(rate, 1, 700);
      const enc = new OpusEncoder(rate);
      const dec = new OpusDecoder(rate);
      const decoded = concat(
        frames(original, rate / 50).map((f) => {
          const r = dec.decode(enc.encode(f));
          if (!r.ok) throw new Error(r.error);
          expect(r.pcm).toHaveLength(rate / 50);
          return r.pcm;
        }),
      );
      enc.close();
      dec.close();
      const body = decoded.subarray(rate / 5, (rate * 9) / 10);
      const { frequency, purity } = dominantFrequency(body, rate, 300, 2000);
      expect(Math.abs(frequency - 700) / 700).toBeLessThan(0.02);
      expect(purity).toBeGreaterThan(0.9);
      // libopus's algorithmic delay (encoder look-ahead plus decoder) is a few ms.
      const { lag, corr } = align(original, decoded, rate / 5, rate / 2, rate / 50);
      expect(corr).toBeGreaterThan(0.95);
      expect(lag).toBeGreaterThan(0);
    },
  );

  it('decodes a 16 kHz stream straight to 8 kHz (half the samples, the same tone)', () => {
    const enc = new OpusEncoder(16000);
    const dec = new OpusDecoder(8000);
    const decoded = concat(
      frames(tone(16000, 1, 1000), 320).map((f) => {
        const r = dec.decode(enc.encode(f));
        if (!r.ok) throw new Error(r.error);
        return r.pcm;
      }),
    );
    expect(decoded).toHaveLength(8000);
    const { frequency } = dominantFrequency(decoded.subarray(1600, 7200), 8000, 300, 3000);
    expect(Math.abs(frequency - 1000) / 1000).toBeLessThan(0.02);
  });

  it('decodes a stereo opus/48000/2 stream as mono (RFC 7587: the decoder may downmix)', () => {
    // What a browser or baresip sends: 48 kHz stereo, here the same tone in both channels.
    const stereoEncoder = new EvanEncoder({ channels: 2, sample_rate: 48000, application: 'voip' });
    const mono = tone(48000, 1, 500);
    const interleaved = new Int16Array(mono.length * 2);
    for (let i = 0; i < mono.length; i++) interleaved[2 * i] = interleaved[2 * i + 1] = mono[i]!;
    const dec = new OpusDecoder(16000);
    const parts: Int16Array[] = [];
    for (let at = 0; at < interleaved.length; at += 1920) {
      const packet = stereoEncoder.encode(interleaved.subarray(at, at + 1920));
      expect(inspectOpusPacket(packet)?.stereo).toBe(true);
      const r = dec.decode(packet);
      if (!r.ok) throw new Error(r.error);
      parts.push(r.pcm);
    }
    const decoded = concat(parts);
    expect(decoded).toHaveLength(16000);
    const { frequency } = dominantFrequency(decoded.subarray(3200, 14400), 16000, 200, 2000);
    expect(Math.abs(frequency - 500) / 500).toBeLessThan(0.02);
  });

  it('encodes and decodes 40 and 60 ms packets (ptime 40/60: one packet, several 20 ms frames)', () => {
    for (const ms of [40, 60]) {
      const enc = new OpusEncoder(16000);
      const dec = new OpusDecoder(16000);
      const packet = enc.encode(tone(16000, ms / 1000, 600));
      expect(inspectOpusPacket(packet)?.samples48k).toBe(ms * 48);
      const r = dec.decode(packet);
      expect(r.ok && r.pcm.length).toBe(ms * 16);
    }
  });

  it('refuses a frame length Opus has no mode for (a programming error)', () => {
    const enc = new OpusEncoder(16000);
    expect(() => enc.encode(new Int16Array(300))).toThrow(RangeError);
    enc.close();
    enc.close();
    expect(() => enc.encode(new Int16Array(320))).toThrow(expect.objectContaining({ code: 'CODEC_FAILED' }));
  });

  it('keeps working after the WASM memory grows (its buffer is replaced: views are renewed)', () => {
    const dec = new OpusDecoder(16000);
    const enc = new OpusEncoder(16000);
    const before = dec.decode(enc.encode(tone(16000, 0.02, 500)));
    expect(before.ok).toBe(true);
    // ~43 KB of state each: 600 of them outgrow the initial 16 MB.
    const many = Array.from({ length: 600 }, () => new OpusEncoder(16000));
    const r = dec.decode(enc.encode(tone(16000, 0.02, 500)));
    expect(r.ok && r.pcm.length).toBe(320);
    for (const e of many) e.close();
    dec.close();
    enc.close();
  });

  describe('loss', () => {
    const rate = 16000;
    const F = 320;
    const original = voice(rate, 1.2);
    const originalFrames = frames(original, F);
    /** A packet whose successor carries FEC (libopus adds it to most speech frames, not all). */
    let lost = -1;
    beforeAll(() => {
      lost = encodeAll(true).findIndex((p, k) => k >= 10 && inspectOpusPacket(p)!.hasFec) - 1;
    });

    function encodeAll(fec: boolean): Uint8Array[] {
      const enc = new OpusEncoder(rate, { fec });
      const packets = originalFrames.map((f) => enc.encode(f));
      enc.close();
      return packets;
    }

    /** Decodes every packet (the reference), or all but `lost`, filling its slot with `fill`. */
    function decodeWithLoss(
      packets: Uint8Array[],
      fill?: (dec: OpusDecoder, next: Uint8Array) => Int16Array,
    ): Int16Array[] {
      const dec = new OpusDecoder(rate);
      const out: Int16Array[] = [];
      packets.forEach((p, k) => {
        if (k === lost && fill) {
          out.push(fill(dec, packets[k + 1]!));
          return;
        }
        const r = dec.decode(p);
        if (!r.ok) throw new Error(r.error);
        out.push(r.pcm);
      });
      dec.close();
      return out;
    }

    it('the encoder adds FEC (SILK LBRR) only when asked, and the packet says so', () => {
      const withFec = encodeAll(true).map((p) => inspectOpusPacket(p)!);
      const without = encodeAll(false).map((p) => inspectOpusPacket(p)!);
      expect(withFec.every((i) => i.mode === 'silk' && i.bandwidth === 'wb')).toBe(true);
      // LBRR for packet k rides in packet k+1: the first packet has none.
      expect(withFec[0]!.hasFec).toBe(false);
      expect(withFec.filter((i) => i.hasFec).length).toBeGreaterThan(0.6 * withFec.length);
      expect(without.some((i) => i.hasFec)).toBe(false);
      expect(lost).toBeGreaterThan(8);
    });

    it('FEC from the next packet rebuilds the lost frame far better than PLC, and PLC far better than silence', () => {
      const packets = encodeAll(true);
      const reference = decodeWithLoss(packets)[lost]!;
      let recovered: boolean | undefined;
      const fec = decodeWithLoss(packets, (dec, next) => {
        const r = dec.decodeFec(next, F);
        if (!r.ok) throw new Error(r.error);
        recovered = r.recovered;
        return r.pcm;
      })[lost]!;
      const plc = decodeWithLoss(packets, (dec) => dec.conceal(F))[lost]!;
      expect(recovered).toBe(true);
      expect(fec).toHaveLength(F);
      expect(plc).toHaveLength(F);
      const silence = energy(reference); // the error of leaving the frame silent
      const fecError = energy(reference, fec);
      const plcError = energy(reference, plc);
      expect(correlation(reference, fec)).toBeGreaterThan(0.9);
      expect(10 * Math.log10(silence / fecError)).toBeGreaterThan(10); // > 10 dB better than silence
      expect(fecError).toBeLessThan(plcError);
      expect(plcError).toBeLessThan(silence);
    });

    it('without FEC data decodeFec conceals, and says it did', () => {
      const packets = encodeAll(false);
      const out = decodeWithLoss(packets, (dec, next) => {
        const r = dec.decodeFec(next, F);
        if (!r.ok) throw new Error(r.error);
        expect(r.recovered).toBe(false);
        return r.pcm;
      });
      expect(out[lost]).toHaveLength(F);
      expect(energy(out[lost]!)).toBeGreaterThan(0);
    });

    it('conceals any number of samples (rounded to 2.5 ms inside, cut to the request)', () => {
      const dec = new OpusDecoder(rate);
      const enc = new OpusEncoder(rate);
      for (const f of originalFrames.slice(0, 10)) dec.decode(enc.encode(f));
      expect(dec.conceal(100)).toHaveLength(100);
      expect(dec.conceal(2400)).toHaveLength(2400); // 150 ms: more than one libopus call
      expect(dec.conceal(0)).toHaveLength(0);
      expect(dec.decodeFec(enc.encode(originalFrames[10]!), 0)).toMatchObject({ ok: true, recovered: false });
      dec.close();
      expect(dec.conceal(320)).toEqual(new Int16Array(320));
    });
  });

  describe('malformed payloads never throw', () => {
    it.each([
      ['empty', new Uint8Array(0), 'empty'],
      ['larger than any RTP payload', new Uint8Array(5000), 'too-large'],
      ['a code 3 packet with no frames', Uint8Array.of(0x4b, 0x00), 'invalid'],
      ['a code 1 packet of odd length', Uint8Array.of(0x49, 1, 2, 3), 'invalid'],
      ['a code 2 packet whose first frame runs past the end', Uint8Array.of(0x4a, 200, 1, 2), 'invalid'],
    ])('%s', (_name, payload, error) => {
      const dec = new OpusDecoder(16000);
      expect(dec.decode(payload)).toEqual({ ok: false, error });
      expect(dec.decodeFec(payload, 320)).toEqual({ ok: false, error });
      dec.close();
      expect(dec.decode(Uint8Array.of(0x48))).toEqual({ ok: false, error: 'closed' });
    });

    it('random bytes: each is audio or invalid, and the decoder goes on decoding good packets', () => {
      const enc = new OpusEncoder(16000);
      const dec = new OpusDecoder(16000);
      let seed = 12345;
      const rand = () => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed >> 16;
      };
      const outcomes = new Set<string>();
      for (let i = 0; i < 3000; i++) {
        const payload = Uint8Array.from({ length: 1 + (rand() % 200) }, rand);
        const r = dec.decode(payload);
        outcomes.add(r.ok ? 'audio' : r.error);
        if (r.ok) expect(r.pcm.length % 40).toBe(0); // whole 2.5 ms at 16 kHz
        // inspectOpusPacket agrees with libopus about what is well-formed.
        if (!r.ok) expect(['invalid']).toContain(r.error);
        if (inspectOpusPacket(payload) === undefined) expect(r.ok).toBe(false);
      }
      expect(outcomes).toEqual(new Set(['audio', 'invalid']));
      const good = dec.decode(enc.encode(tone(16000, 0.02, 500)));
      expect(good.ok && good.pcm.length).toBe(320);
    });
  });
});

describe('inspectOpusPacket (RFC 6716 3.1-3.2)', () => {
  it.each([
    [
      'SILK WB 20 ms, code 0',
      [9 << 3, 0x00, 1, 2],
      { mode: 'silk', bandwidth: 'wb', frames: 1, samples48k: 960 },
    ],
    ['SILK NB 60 ms', [3 << 3, 0x00], { mode: 'silk', bandwidth: 'nb', frames: 1, samples48k: 2880 }],
    ['Hybrid FB 20 ms', [15 << 3, 0x00], { mode: 'hybrid', bandwidth: 'fb', samples48k: 960 }],
    ['CELT FB 20 ms stereo', [(31 << 3) | 4, 0x00], { mode: 'celt', bandwidth: 'fb', stereo: true }],
    ['code 1: two equal frames', [(9 << 3) | 1, 1, 2], { frames: 2, samples48k: 1920 }],
    ['code 2: two frames, first 1 byte', [(9 << 3) | 2, 1, 7, 8, 9], { frames: 2, samples48k: 1920 }],
    ['code 3: CBR, 3 frames', [(9 << 3) | 3, 3, 1, 2, 3], { frames: 3, samples48k: 2880 }],
    ['code 3: VBR with padding', [(9 << 3) | 3, 0xc2, 2, 1, 5, 6, 7, 0, 0], { frames: 2 }],
  ])('%s', (_name, bytes, expected) => {
    expect(inspectOpusPacket(Uint8Array.from(bytes))).toMatchObject(expected);
  });

  it.each([
    ['empty', []],
    ['code 3 with more than 120 ms', [(3 << 3) | 3, 3, 1, 2, 3]],
    ['code 3 CBR whose bytes do not split evenly', [(9 << 3) | 3, 2, 1, 2, 3]],
    ['code 3 padding past the end', [(9 << 3) | 3, 0x41, 255]],
    ['code 2 with no length byte', [(9 << 3) | 2]],
  ])('malformed: %s', (_name, bytes) => {
    expect(inspectOpusPacket(Uint8Array.from(bytes))).toBeUndefined();
  });

  it('reads the LBRR flag of the first SILK frame (and of the side channel in stereo)', () => {
    // VAD flag, then LBRR flag: the two top bits of the first frame byte.
    expect(inspectOpusPacket(Uint8Array.of(9 << 3, 0b0100_0000))?.hasFec).toBe(true);
    expect(inspectOpusPacket(Uint8Array.of(9 << 3, 0b1000_0000))?.hasFec).toBe(false);
    // 60 ms: three VAD flags, then LBRR.
    expect(inspectOpusPacket(Uint8Array.of(11 << 3, 0b0001_0000))?.hasFec).toBe(true);
    // Stereo 20 ms: mid VAD, mid LBRR, side VAD, side LBRR.
    expect(inspectOpusPacket(Uint8Array.of((9 << 3) | 4, 0b0001_0000))?.hasFec).toBe(true);
    // CELT has no LBRR.
    expect(inspectOpusPacket(Uint8Array.of(31 << 3, 0xff))?.hasFec).toBe(false);
  });
});

describe('opusEncoderOptions (what the far end said → our encoder)', () => {
  it.each([
    [{}, 16000, { fec: false }],
    [{ fec: true, opus: { maxPlaybackRate: 48000 } }, 16000, { fec: true, maxPlaybackRate: 48000 }],
    [
      { fec: false, opus: { maxPlaybackRate: 8000, maxAverageBitrate: 12000 } },
      16000,
      { fec: false, maxPlaybackRate: 8000, bitrate: 12000 },
    ],
    [
      { opus: { maxPlaybackRate: 16000, maxAverageBitrate: 64000 } },
      8000,
      { fec: false, maxPlaybackRate: 16000, bitrate: 16000 },
    ],
  ])('%j at %i Hz', (receiver, rate, expected) => {
    expect(opusEncoderOptions(receiver, rate)).toEqual(expected);
  });
});
