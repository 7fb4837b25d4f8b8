import { describe, expect, it } from 'vitest';
import {
  ALAW_SILENCE,
  ALAW_TO_LINEAR,
  decodeAlaw,
  decodeUlaw,
  encodeAlaw,
  encodeAlawFrame,
  encodeUlaw,
  encodeUlawFrame,
  ULAW_SILENCE,
  ULAW_TO_LINEAR,
} from '../../src/media/g711.js';

/**
 * Expectations derived independently from the segment definitions of
 * G.711 Tables 1a (A-law) and 2a (µ-law), not from G.191's code:
 * each code names a quantization interval [lower, lower + step) and decodes
 * to its midpoint; 16-bit left justification is ×8 for A-law (12-bit
 * magnitude, full scale 4096) and ×4 for µ-law (13-bit magnitude, 8159).
 */
interface Interval {
  /** inclusive lower and upper decision values in 16-bit units */
  lo: number;
  hi: number;
  value: number;
}

// A-law Table 1a: segment s covers [ALAW_EDGES[s], ALAW_EDGES[s + 1]) in 16 equal steps.
const ALAW_EDGES = [0, 32, 64, 128, 256, 512, 1024, 2048, 4096];
function alawInterval(code: number): Interval & { positive: boolean } {
  const t = code ^ 0x55; // even-bit inversion
  const positive = (t & 0x80) !== 0; // polarity bit 1 = positive
  const segment = (t >> 4) & 7;
  const q = t & 15;
  const step = (ALAW_EDGES[segment + 1]! - ALAW_EDGES[segment]!) / 16;
  const lower = ALAW_EDGES[segment]! + q * step;
  return { positive, lo: lower * 8, hi: (lower + step) * 8, value: (lower + step / 2) * 8 };
}

// µ-law Table 2a: segment k (1..8) ends at 2^(k+5) - 33; the first interval of
// segment 1 is half-width (0..1) and decodes to 0, the rest decode to their midpoints.
const ULAW_EDGES = [0, 31, 95, 223, 479, 991, 2015, 4063, 8159];
function ulawInterval(code: number): Interval & { positive: boolean } {
  const t = ~code & 0xff; // all-bit inversion
  const positive = (t & 0x80) === 0;
  const segment = (t >> 4) & 7; // 0-based
  const q = t & 15;
  const step = 2 << segment;
  if (segment === 0) {
    if (q === 0) return { positive, lo: 0, hi: 1 * 4, value: 0 };
    const lower = 2 * q - 1;
    return { positive, lo: lower * 4, hi: (lower + 2) * 4, value: (lower + 1) * 4 };
  }
  const lower = ULAW_EDGES[segment]! + q * step;
  return { positive, lo: lower * 4, hi: (lower + step) * 4, value: (lower + step / 2) * 4 };
}

const codes = Array.from({ length: 256 }, (_, i) => i);
const hexCodes = codes.map((c) => [c.toString(16).padStart(2, '0'), c] as const);

describe('G.711 decode tables', () => {
  it('has 256 entries per law', () => {
    expect(ULAW_TO_LINEAR).toHaveLength(256);
    expect(ALAW_TO_LINEAR).toHaveLength(256);
  });

  it.each(hexCodes)('µ-law code 0x%s matches Table 2a', (_, code) => {
    const { positive, value } = ulawInterval(code);
    // `+ 0` folds the table's negative zero (0x7F) into 0 for toBe.
    expect(ULAW_TO_LINEAR[code]).toBe((positive ? value : -value) + 0);
  });

  it.each(hexCodes)('A-law code 0x%s matches Table 1a', (_, code) => {
    const { positive, value } = alawInterval(code);
    expect(ALAW_TO_LINEAR[code]).toBe(positive ? value : -value);
  });

  it.each([
    ['µ-law', 0x00, -32124],
    ['µ-law', 0x80, 32124],
    ['µ-law', 0xff, 0],
    ['µ-law', 0x7f, 0],
    ['µ-law', 0xfe, 8],
    ['µ-law', 0x7e, -8],
    ['µ-law', 0xef, 132],
    ['A-law', 0xd5, 8],
    ['A-law', 0x55, -8],
    ['A-law', 0x2a, -32256],
    ['A-law', 0xaa, 32256],
    ['A-law', 0xd4, 24],
    ['A-law', 0xc5, 264],
  ] as const)('%s anchor code %i → %i', (law, code, linear) => {
    const table = law === 'µ-law' ? ULAW_TO_LINEAR : ALAW_TO_LINEAR;
    expect(table[code]).toBe(linear);
  });

  it('silence codes decode to (near) zero', () => {
    expect(ULAW_TO_LINEAR[ULAW_SILENCE]).toBe(0);
    expect(ALAW_TO_LINEAR[ALAW_SILENCE]).toBe(8);
  });
});

describe('G.711 encode', () => {
  it.each(hexCodes)('µ-law encode(decode(0x%s)) round-trips', (_, code) => {
    // 0x7F is negative zero: it decodes to 0, which encodes as positive zero 0xFF.
    expect(encodeUlaw(ULAW_TO_LINEAR[code]!)).toBe(code === 0x7f ? 0xff : code);
  });

  it.each(hexCodes)('A-law encode(decode(0x%s)) round-trips', (_, code) => {
    expect(encodeAlaw(ALAW_TO_LINEAR[code]!)).toBe(code);
  });

  for (const [law, encode, table, interval] of [
    ['µ-law', encodeUlaw, ULAW_TO_LINEAR, ulawInterval],
    ['A-law', encodeAlaw, ALAW_TO_LINEAR, alawInterval],
  ] as const) {
    it(`${law}: decoded value is monotonic in the input over the whole int16 range`, () => {
      let previous = Number.NEGATIVE_INFINITY;
      for (let s = -32768; s <= 32767; s++) {
        const decoded = table[encode(s)]!;
        if (decoded < previous) throw new Error(`${law} not monotonic at ${s}: ${decoded} < ${previous}`);
        previous = decoded;
      }
    });

    it(`${law}: every input lands in the Table interval of its code`, () => {
      const maxMagnitude = law === 'µ-law' ? 8159 * 4 : 4096 * 8;
      for (let s = -32768; s <= 32767; s++) {
        const code = encode(s);
        const iv = interval(code);
        const magnitude = Math.abs(s);
        // Decision values themselves may go to either neighbour (closed interval).
        const inside = magnitude >= iv.lo && magnitude <= iv.hi;
        const clipped = magnitude > maxMagnitude && iv.hi === maxMagnitude;
        const signOk = s > 0 ? iv.positive : s < 0 ? !iv.positive || magnitude <= 8 : true;
        if (!(inside || clipped) || !signOk) {
          throw new Error(`${law} ${s} → 0x${code.toString(16)} interval ${iv.lo}..${iv.hi}`);
        }
      }
    });
  }

  it.each([
    [40000, 0x80, 0xaa],
    [-40000, 0x00, 0x2a],
    [Number.NaN, 0xff, 0xd5],
    [12.7, encodeUlaw(12), encodeAlaw(12)],
    [Number.POSITIVE_INFINITY, 0x80, 0xaa],
  ])('out-of-range input %s clamps (µ code %i, A code %i)', (input, ulaw, alaw) => {
    expect(encodeUlaw(input)).toBe(ulaw);
    expect(encodeAlaw(input)).toBe(alaw);
  });

  it('encodes small negatives to µ-law negative zero and A-law -8', () => {
    expect(encodeUlaw(-1)).toBe(0x7f);
    expect(encodeUlaw(0)).toBe(0xff);
    expect(encodeAlaw(-1)).toBe(0x55);
    expect(encodeAlaw(0)).toBe(0xd5);
  });
});

describe('G.711 frame helpers', () => {
  it('decodes a frame at an offset and reports samples written', () => {
    const out = new Int16Array(6);
    expect(decodeUlaw(Uint8Array.of(0x00, 0x80, 0xff), out, 2)).toBe(3);
    expect(Array.from(out)).toEqual([0, 0, -32124, 32124, 0, 0]);
    expect(decodeAlaw(Uint8Array.of(0xd5, 0x55), out)).toBe(2);
    expect(Array.from(out.subarray(0, 2))).toEqual([8, -8]);
  });

  it.each([
    [4, 4, 0, 4],
    [4, 2, 0, 2],
    [4, 4, 3, 1],
    [4, 4, 4, 0],
    [4, 4, 5, 0],
    [4, 4, -1, 0],
    [4, 4, 1.5, 0],
    [0, 4, 0, 0],
  ])('payload %i into out %i at offset %s writes %i without throwing', (len, outLen, offset, written) => {
    const out = new Int16Array(outLen);
    const payload = new Uint8Array(len).fill(0x80);
    expect(decodeUlaw(payload, out, offset)).toBe(written);
    expect(decodeAlaw(payload, out, offset)).toBe(written);
  });

  it('encodes frames, bounded by the output length', () => {
    const samples = Int16Array.of(0, 32124, -32124, 8);
    const out = new Uint8Array(3);
    expect(encodeUlawFrame(samples, out)).toBe(3);
    expect(Array.from(out)).toEqual([0xff, 0x80, 0x00]);
    const outA = new Uint8Array(8);
    expect(encodeAlawFrame(samples, outA)).toBe(4);
    expect(Array.from(outA.subarray(0, 4))).toEqual(Array.from(samples, (s) => encodeAlaw(s)));
  });

  it('decode → encode → decode of a frame is lossless', () => {
    const all = Uint8Array.from(codes);
    const pcm = new Int16Array(256);
    decodeAlaw(all, pcm);
    const back = new Uint8Array(256);
    encodeAlawFrame(pcm, back);
    expect(back).toEqual(all);
  });
});

describe('G.711 digital milliwatt (1 kHz at 0 dBm0)', () => {
  // The standard digital milliwatt sequences of G.711: 8 codes per 1 kHz period.
  const DMW = {
    'µ-law': {
      codes: [0x1e, 0x0b, 0x0b, 0x1e, 0x9e, 0x8b, 0x8b, 0x9e],
      table: ULAW_TO_LINEAR,
      encode: encodeUlaw,
    },
    'A-law': {
      codes: [0x34, 0x21, 0x21, 0x34, 0xb4, 0xa1, 0xa1, 0xb4],
      table: ALAW_TO_LINEAR,
      encode: encodeAlaw,
    },
  } as const;
  // G.711: 0 dBm0 is a sine whose peak is 3.17 dB (µ-law) / 3.14 dB (A-law)
  // below the decoder's maximum output (8159 × 4, 4096 × 8 left-justified).
  const overload = { 'µ-law': 8159 * 4, 'A-law': 4096 * 8 } as const;
  const belowOverloadDb = { 'µ-law': 3.17, 'A-law': 3.14 } as const;

  for (const law of ['µ-law', 'A-law'] as const) {
    it(`${law}: decodes to a sine whose level is 0 dBm0 within 0.05 dB`, () => {
      const { codes, table } = DMW[law];
      const pcm = codes.map((c) => table[c]!);
      // antisymmetric halves, symmetric quarter waves
      expect(pcm.slice(4)).toEqual(pcm.slice(0, 4).map((v) => -v));
      expect(pcm[0]).toBe(pcm[3]);
      const rms = Math.sqrt(pcm.reduce((s, v) => s + v * v, 0) / pcm.length);
      const peakDb = 20 * Math.log10((rms * Math.SQRT2) / overload[law]);
      expect(Math.abs(peakDb + belowOverloadDb[law])).toBeLessThan(0.05);
    });

    it(`${law}: encoding the ideal 0 dBm0 sine gives the digital milliwatt codes`, () => {
      const { codes, encode } = DMW[law];
      const peak = overload[law] * 10 ** (-belowOverloadDb[law] / 20);
      // Samples at π/8 + kπ/4, starting in the negative half as the sequence does.
      const encoded = codes.map((_, k) =>
        encode(Math.round(-peak * Math.sin(Math.PI / 8 + (k * Math.PI) / 4))),
      );
      expect(encoded).toEqual(codes);
    });
  }
});
