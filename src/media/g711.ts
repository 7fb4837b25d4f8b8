/**
 * G.711 µ-law and A-law (ITU-T G.711, 1988), bit-exact with the reference
 * implementation in ITU-T G.191 (`ulaw_expand`/`ulaw_compress`,
 * `alaw_expand`/`alaw_compress`).
 *
 * Linear samples are 16-bit and left-justified like G.191: A-law carries 13
 * significant bits (×8), µ-law 14 (×4). Decoding is a table lookup; encoding
 * is a few integer operations (no 64 KiB tables per law).
 */

/** µ-law code of a zero sample (G.711 Table 2a: positive zero, all bits inverted). */
export const ULAW_SILENCE = 0xff;
/** A-law code of the smallest positive sample (G.711 Table 1a, even bits inverted). */
export const ALAW_SILENCE = 0xd5;

function buildUlawTable(): Int16Array {
  const table = new Int16Array(256);
  for (let code = 0; code < 256; code++) {
    // G.711 transmits µ-law with all 8 bits inverted; sign bit 1 = positive.
    const inv = ~code & 0xff;
    const exponent = (inv >> 4) & 0x07;
    const mantissa = inv & 0x0f;
    const step = 4 << (exponent + 1);
    // Segment base + steps + half a step (reconstruction at the interval
    // midpoint), minus the 33 bias (×4 for left justification), as G.191.
    const magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
    table[code] = code < 0x80 ? -magnitude : magnitude;
  }
  return table;
}

function buildAlawTable(): Int16Array {
  const table = new Int16Array(256);
  for (let code = 0; code < 256; code++) {
    // G.711 transmits A-law with the even bits inverted (XOR 0x55).
    const ix = (code ^ 0x55) & 0x7f;
    const exponent = ix >> 4;
    let mantissa = ix & 0x0f;
    if (exponent > 0) mantissa += 16; // implicit leading one above segment 0
    mantissa = (mantissa << 4) + 0x08; // left-justify and add half a step
    if (exponent > 1) mantissa <<= exponent - 1;
    table[code] = code > 0x7f ? mantissa : -mantissa;
  }
  return table;
}

/** µ-law code → 16-bit linear sample (G.191 `ulaw_expand`). */
export const ULAW_TO_LINEAR: Int16Array = buildUlawTable();
/** A-law code → 16-bit linear sample (G.191 `alaw_expand`). */
export const ALAW_TO_LINEAR: Int16Array = buildAlawTable();

/**
 * Decodes µ-law bytes into `out` starting at `outOffset`. Writes as many
 * samples as fit and returns how many were written (0 for a bad offset).
 */
export function decodeUlaw(payload: Uint8Array, out: Int16Array, outOffset = 0): number {
  return decodeWith(ULAW_TO_LINEAR, payload, out, outOffset);
}

/** A-law counterpart of {@link decodeUlaw}. */
export function decodeAlaw(payload: Uint8Array, out: Int16Array, outOffset = 0): number {
  return decodeWith(ALAW_TO_LINEAR, payload, out, outOffset);
}

function decodeWith(table: Int16Array, payload: Uint8Array, out: Int16Array, outOffset: number): number {
  if (!(outOffset >= 0) || outOffset > out.length || !Number.isInteger(outOffset)) return 0;
  const n = Math.min(payload.length, out.length - outOffset);
  for (let i = 0; i < n; i++) out[outOffset + i] = table[payload[i]!]!;
  return n;
}

/** Clamps to the int16 range and truncates; NaN becomes 0 (never throws). */
function toInt16(sample: number): number {
  return sample > 32767 ? 32767 : sample < -32768 ? -32768 : sample | 0;
}

/** 16-bit linear sample → µ-law code (G.191 `ulaw_compress`). */
export function encodeUlaw(sample: number): number {
  const s = toInt16(sample);
  // One's complement for negatives (G.191), so -1..-4 land on negative zero 0x7F.
  // The 33 bias makes the segment boundaries powers of two (G.711 Table 2a).
  let biased = (s < 0 ? ~s >> 2 : s >> 2) + 33;
  if (biased > 0x1fff) biased = 0x1fff;
  // Segment number = bit length of (biased >> 6), plus one.
  const segment = 33 - Math.clz32(biased >> 6);
  const code = ((8 - segment) << 4) | (0x0f - ((biased >> segment) & 0x0f));
  return s >= 0 ? code | 0x80 : code;
}

/** 16-bit linear sample → A-law code (G.191 `alaw_compress`). */
export function encodeAlaw(sample: number): number {
  const s = toInt16(sample);
  let ix = s < 0 ? ~s >> 4 : s >> 4; // 0..2047, one's complement for negatives
  if (ix > 15) {
    // Exponent from the bit length: ix >> (exponent - 1) lies in 16..31.
    const exponent = 28 - Math.clz32(ix);
    ix = (ix >> (exponent - 1)) - 16 + (exponent << 4);
  }
  if (s >= 0) ix |= 0x80;
  return ix ^ 0x55;
}

/** Encodes `samples` into `out`; returns the number of bytes written. */
export function encodeUlawFrame(samples: Int16Array, out: Uint8Array): number {
  const n = Math.min(samples.length, out.length);
  for (let i = 0; i < n; i++) out[i] = encodeUlaw(samples[i]!);
  return n;
}

/** Encodes `samples` into `out`; returns the number of bytes written. */
export function encodeAlawFrame(samples: Int16Array, out: Uint8Array): number {
  const n = Math.min(samples.length, out.length);
  for (let i = 0; i < n; i++) out[i] = encodeAlaw(samples[i]!);
  return n;
}
