/**
 * A recording's spectrogram for the smoke report, computed here rather than
 * with a package: a radix-2 FFT, a Hann-windowed STFT and a PNG encoder come
 * to a hundred lines with node:zlib, need no network and no native build,
 * and the npm choices are either whole DSP suites or abandoned. Pure.
 *
 * Why a PNG inside the report's inline SVG and not SVG rectangles: a 6 s
 * call at 8 kHz is ~1000 columns × 128 bins; 128 000 <rect>s make a page of
 * megabytes that browsers render slowly, where the same picture as a PNG
 * data URI is a few tens of kilobytes. Axes, labels and the expected tones
 * stay vector (report.ts draws them over the image).
 */
import { deflateSync } from 'node:zlib';

/** In-place iterative radix-2 FFT of (re, im); the length must be a power of two. */
export function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  if (n !== im.length || (n & (n - 1)) !== 0) throw new RangeError(`FFT size ${n} is not a power of two`);
  // Bit-reversal permutation.
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const half = size >> 1;
    const step = (-2 * Math.PI) / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < half; k++) {
        const wr = Math.cos(step * k);
        const wi = Math.sin(step * k);
        const a = start + k;
        const b = a + half;
        const tr = wr * re[b]! - wi * im[b]!;
        const ti = wr * im[b]! + wi * re[b]!;
        re[b] = re[a]! - tr;
        im[b] = im[a]! - ti;
        re[a]! += tr;
        im[a]! += ti;
      }
    }
  }
}

export interface Spectrogram {
  rate: number;
  fftSize: number;
  hop: number;
  columns: number;
  /** fftSize / 2 bins from 0 Hz up to (not including) rate / 2. */
  bins: number;
  /** Level per column and bin, dBFS (a full-scale sine reads 0): db[column * bins + bin]. */
  db: Float32Array;
}

/**
 * Hann-windowed STFT of `samples` (floats, full scale 1): about 32 ms per
 * column (256 points at 8 kHz, 512 at 16 kHz), half-overlapped, with the hop
 * widened so a long call still fits `maxColumns`.
 */
export function spectrogram(samples: ArrayLike<number>, rate: number, maxColumns = 1200): Spectrogram {
  let fftSize = 256;
  while ((fftSize / rate) * 1000 < 30) fftSize *= 2;
  const bins = fftSize / 2;
  const hop = Math.max(fftSize / 2, Math.ceil((samples.length - fftSize) / maxColumns));
  const columns = samples.length < fftSize ? 0 : Math.floor((samples.length - fftSize) / hop) + 1;
  const window = new Float64Array(fftSize);
  for (let i = 0; i < fftSize; i++) window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (fftSize - 1));
  // A sine of amplitude A peaks at A·Σw/2 = A·N/4 (Hann: Σw ≈ N/2).
  const fullScale = fftSize / 4;
  const db = new Float32Array(columns * bins);
  const re = new Float64Array(fftSize);
  const im = new Float64Array(fftSize);
  for (let c = 0; c < columns; c++) {
    const at = c * hop;
    for (let i = 0; i < fftSize; i++) {
      re[i] = samples[at + i]! * window[i]!;
      im[i] = 0;
    }
    fft(re, im);
    for (let b = 0; b < bins; b++) {
      const mag = Math.hypot(re[b]!, im[b]!) / fullScale;
      db[c * bins + b] = mag > 0 ? Math.max(-140, 20 * Math.log10(mag)) : -140;
    }
  }
  return { rate, fftSize, hop, columns, bins, db };
}

/** Dark (quiet) to bright (loud), a perceptually ordered ramp like magma's. */
const STOPS: [number, number, number][] = [
  [0, 0, 4],
  [59, 15, 112],
  [140, 41, 129],
  [222, 73, 104],
  [254, 159, 109],
  [252, 253, 191],
];

function color(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const a = STOPS[i]!;
  const b = STOPS[i + 1]!;
  return [0, 1, 2].map((k) => Math.round(a[k]! + (b[k]! - a[k]!) * f)) as [number, number, number];
}

/** The spectrogram as an RGB PNG, one pixel per column and bin, low frequencies at the bottom. */
export function spectrogramPng(spec: Spectrogram, floorDb = -100, ceilDb = -10): Buffer {
  const width = Math.max(1, spec.columns);
  const height = spec.bins;
  const rgb = new Uint8Array(width * height * 3);
  for (let c = 0; c < spec.columns; c++) {
    for (let b = 0; b < spec.bins; b++) {
      const [r, g, bl] = color((spec.db[c * spec.bins + b]! - floorDb) / (ceilDb - floorDb));
      const at = ((height - 1 - b) * width + c) * 3;
      rgb[at] = r;
      rgb[at + 1] = g;
      rgb[at + 2] = bl;
    }
  }
  return encodePng(width, height, rgb);
}

/** A truecolor 8-bit PNG (RFC 2083) of `rgb` (width × height × 3 bytes, rows top down). */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3) throw new RangeError('rgb must hold width × height × 3 bytes');
  const raw = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    // Filter type 0 (none) per scanline.
    raw[y * (1 + width * 3)] = 0;
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: truecolour
  header[10] = 0; // deflate
  header[11] = 0; // adaptive filtering
  header[12] = 0; // no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (ISO 3309, as PNG chunks use it). */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
