/**
 * The report: the spectrogram's DSP and PNG, and the HTML page, which holds
 * every check and both recordings and is self-contained (nothing fetched).
 */
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { dtmfCheck, lossCheck, registerCheck, summarize, tonesCheck } from '../../src/smoke/checks.js';
import { type ReportRecording, renderReport } from '../../src/smoke/report.js';
import { crc32, encodePng, fft, spectrogram, spectrogramPng } from '../../src/smoke/spectrogram.js';
import {
  CALLEE_PATTERN,
  CALLER_PATTERN,
  detectTones,
  matchPattern,
  synthesizePattern,
  type TonePattern,
} from '../../src/smoke/tones.js';

function sine(freq: number, n: number, rate: number, amp = 0.5): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * freq * i) / rate));
}

/** Reads a PNG's chunks, checking signature and every CRC; returns IHDR fields and the inflated image data. */
function readPng(png: Buffer) {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const chunks: { type: string; data: Buffer }[] = [];
  for (let at = 8; at < png.length; ) {
    const len = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + len);
    expect(png.readUInt32BE(at + 8 + len)).toBe(zlib.crc32(png.subarray(at + 4, at + 8 + len)));
    chunks.push({ type, data });
    at += 12 + len;
  }
  expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
  const ihdr = chunks[0]!.data;
  return {
    width: ihdr.readUInt32BE(0),
    height: ihdr.readUInt32BE(4),
    depth: ihdr[8],
    colour: ihdr[9],
    pixels: zlib.inflateSync(chunks[1]!.data),
  };
}

describe('spectrogram DSP', () => {
  it('fft matches a direct DFT', () => {
    const n = 64;
    const x = Float64Array.from(
      { length: n },
      (_, i) => Math.sin(i * 0.7) + 0.3 * Math.cos(i * 2.1) + (i % 5) / 7,
    );
    const re = Float64Array.from(x);
    const im = new Float64Array(n);
    fft(re, im);
    for (const k of [0, 1, 7, 31, 63]) {
      let r = 0;
      let i = 0;
      for (let t = 0; t < n; t++) {
        r += x[t]! * Math.cos((-2 * Math.PI * k * t) / n);
        i += x[t]! * Math.sin((-2 * Math.PI * k * t) / n);
      }
      expect(re[k]).toBeCloseTo(r, 9);
      expect(im[k]).toBeCloseTo(i, 9);
    }
    expect(() => fft(new Float64Array(12), new Float64Array(12))).toThrow(/power of two/);
  });

  it('puts a tone in its bin at its level (dBFS: a full-scale sine reads 0)', () => {
    const spec = spectrogram(sine(1000, 8000, 8000, 0.5), 8000);
    expect(spec.fftSize).toBe(256);
    expect(spec.bins).toBe(128);
    const col = Math.floor(spec.columns / 2);
    const row = spec.db.subarray(col * spec.bins, (col + 1) * spec.bins);
    const peak = row.indexOf(Math.max(...row));
    expect(peak).toBe(32); // 1000 Hz / (8000 / 256)
    expect(row[peak]).toBeCloseTo(-6, 0);
    expect(row[100]).toBeLessThan(-60);
    expect(spectrogram(new Float32Array(100), 8000).columns).toBe(0);
    // 16 kHz: ~32 ms windows; long recordings stay within the column budget.
    const wide = spectrogram(new Float32Array(16000 * 60), 16000);
    expect(wide.fftSize).toBe(512);
    expect(wide.columns).toBeLessThanOrEqual(1200);
  });

  it('crc32 is the PNG/zlib CRC', () => {
    const bytes = Buffer.from('IEND123456789');
    expect(crc32(bytes)).toBe(zlib.crc32(bytes));
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });

  it('encodes a valid truecolour PNG, low frequencies at the bottom', () => {
    const tiny = readPng(encodePng(2, 1, new Uint8Array([255, 0, 0, 0, 0, 255])));
    expect(tiny).toMatchObject({ width: 2, height: 1, depth: 8, colour: 2 });
    expect([...tiny.pixels]).toEqual([0, 255, 0, 0, 0, 0, 255]);
    expect(() => encodePng(2, 2, new Uint8Array(3))).toThrow();
    const spec = spectrogram(sine(500, 4000, 8000), 8000);
    const png = readPng(spectrogramPng(spec));
    expect(png.width).toBe(spec.columns);
    expect(png.height).toBe(spec.bins);
    expect(png.pixels.length).toBe(spec.bins * (1 + 3 * spec.columns));
    // The tone (bin 16) is the brightest row: it is drawn `bins - 1 - 16` rows from the top.
    const brightness = (y: number) => {
      const at = y * (1 + 3 * png.width) + 1;
      return png.pixels[at]! + png.pixels[at + 1]! + png.pixels[at + 2]!;
    };
    const rows = Array.from({ length: png.height }, (_, y) => brightness(y));
    expect(rows.indexOf(Math.max(...rows))).toBe(spec.bins - 1 - 16);
  });
});

function recording(side: 'caller' | 'callee', pattern: TonePattern, drop?: number): ReportRecording {
  const pcm = synthesizePattern(pattern, 8000);
  const samples = new Float32Array(24000);
  for (let i = 0; i < pcm.length; i++) samples[800 + i] = pcm[i]! / 32768;
  if (drop !== undefined) samples.fill(0, 800 + 4000 + drop * 4000, 800 + 4000 + drop * 4000 + 2400);
  const heard = detectTones(samples, 8000);
  return {
    side,
    file: `${side}.wav`,
    samples,
    rate: 8000,
    pattern,
    matches: matchPattern(heard, pattern),
    heard,
    dtmf: [{ digit: '#', atMs: 2500 }],
  };
}

describe('renderReport', () => {
  const callee = recording('callee', CALLER_PATTERN, 1); // the 1000 Hz tone missing
  const caller = recording('caller', CALLEE_PATTERN);
  const checks = [
    registerCheck('caller', { ok: true, ms: 10 }),
    tonesCheck('callee', callee.matches),
    dtmfCheck('callee', '159#', ['1', '5', '9', '#']),
    lossCheck('callee', { received: 100, lost: 0, late: 0 }, 1),
    { ...registerCheck('callee', { ok: false, message: 'refused <script>alert(1)</script> & more' }) },
  ];
  const html = renderReport({
    checks,
    summary: summarize(checks),
    facts: {
      caller: '16505550101',
      callee: '16505550102',
      target: 'sip:16505550102@example.com',
      codec: 'PCMU',
    },
    startedAt: new Date('2026-12-01T10:00:00Z'),
    durationMs: 4200,
    recordings: [callee, caller],
  });

  it('holds every check with its result, and names the failed ones', () => {
    for (const c of checks) expect(html).toContain(`<code>${c.name}</code>`);
    expect(html).toContain('<span class="badge fail">FAIL</span> rc-softphone smoke');
    expect(html).toContain('failed: callee.tones, callee.register');
    expect(html).toContain('<tr class="fail"><td><code>callee.tones</code>');
    expect(html).toContain('sip:16505550102@example.com');
    // Text is escaped, never markup.
    expect(html).not.toContain('<script');
    expect(html).toContain('refused &lt;script&gt;alert(1)&lt;/script&gt; &amp; more');
  });

  it('holds both recordings: a player, a waveform and a spectrogram each, the missing tone drawn where it belonged', () => {
    expect(html).toContain('<audio controls preload="none" src="callee.wav"></audio>');
    expect(html).toContain('<audio controls preload="none" src="caller.wav"></audio>');
    expect(html.match(/<svg class="wave"/g)).toHaveLength(2);
    expect(html.match(/<svg class="spec"/g)).toHaveLength(2);
    const pngs = [...html.matchAll(/href="data:image\/png;base64,([A-Za-z0-9+/=]+)"/g)];
    expect(pngs).toHaveLength(2);
    for (const [, b64] of pngs) expect(readPng(Buffer.from(b64!, 'base64')).width).toBeGreaterThan(10);
    expect(html).toContain('1000 Hz missing');
    expect(html).toMatch(/<rect class="box bad"/);
    expect(html).toContain('<li class="bad">1000 Hz: not heard</li>');
    expect(html).toContain('DTMF #');
  });

  it('is self-contained: no script, stylesheet, font or anything fetched; links only to the WAVs beside it', () => {
    expect(html).not.toMatch(/<script|<link|<iframe|<img|@import|url\(/i);
    const refs = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
    for (const ref of refs)
      expect(ref.startsWith('data:image/png;base64,') || /^(caller|callee)\.wav$/.test(ref)).toBe(true);
    expect(html).toContain('<meta charset="utf-8">');
  });

  it('says why a side has no recording', () => {
    const page = renderReport({
      checks: [],
      summary: summarize([]),
      facts: {},
      startedAt: new Date(),
      durationMs: 1,
      recordings: [],
      missing: [{ side: 'caller', why: 'the call was not answered' }],
    });
    expect(page).toContain('No recording: the call was not answered');
  });
});
