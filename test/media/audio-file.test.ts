import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeWav, loadAudioFile, resampleToInt16 } from '../../src/media/audio-file.js';
import { goertzelPower } from '../../src/media/goertzel.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface WavSpec {
  tag: number;
  rate: number;
  channels: number;
  bits: number;
  extensible?: boolean;
  extraChunk?: boolean;
  /** Writes sample value v (in [-1, 1]) at `at`. */
  write: (b: Buffer, at: number, v: number) => void;
}

function wav(spec: WavSpec, frames: number, signal: (i: number, c: number) => number): Buffer {
  const bytes = spec.bits / 8;
  const data = Buffer.alloc(frames * spec.channels * bytes);
  for (let i = 0; i < frames; i++)
    for (let c = 0; c < spec.channels; c++) spec.write(data, (i * spec.channels + c) * bytes, signal(i, c));
  const fmtSize = spec.extensible ? 40 : 16;
  const fmt = Buffer.alloc(8 + fmtSize);
  fmt.write('fmt ', 0, 'latin1');
  fmt.writeUInt32LE(fmtSize, 4);
  fmt.writeUInt16LE(spec.extensible ? 0xfffe : spec.tag, 8);
  fmt.writeUInt16LE(spec.channels, 10);
  fmt.writeUInt32LE(spec.rate, 12);
  fmt.writeUInt32LE(spec.rate * spec.channels * bytes, 16);
  fmt.writeUInt16LE(spec.channels * bytes, 20);
  fmt.writeUInt16LE(spec.bits, 22);
  if (spec.extensible) {
    fmt.writeUInt16LE(22, 24);
    fmt.writeUInt16LE(spec.bits, 26);
    fmt.writeUInt16LE(spec.tag, 32); // SubFormat GUID starts with the format tag
  }
  const list = spec.extraChunk ? Buffer.from('LIST\x03\x00\x00\x00abc\x00', 'latin1') : Buffer.alloc(0);
  const head = Buffer.alloc(8);
  head.write('data', 0, 'latin1');
  head.writeUInt32LE(data.length, 4);
  const body = Buffer.concat([Buffer.from('WAVE', 'latin1'), fmt, list, head, data]);
  const riff = Buffer.alloc(8);
  riff.write('RIFF', 0, 'latin1');
  riff.writeUInt32LE(body.length, 4);
  return Buffer.concat([riff, body]);
}

const sine =
  (freq: number, rate: number, amp = 0.5) =>
  (i: number) =>
    amp * Math.sin((2 * Math.PI * freq * i) / rate);

describe('decodeWav', () => {
  it.each([
    [
      'PCM 16-bit stereo 44.1 kHz',
      {
        tag: 1,
        rate: 44100,
        channels: 2,
        bits: 16,
        write: (b: Buffer, at: number, v: number) => b.writeInt16LE(Math.round(v * 32767), at),
      },
    ],
    [
      'PCM 8-bit mono 22.05 kHz',
      {
        tag: 1,
        rate: 22050,
        channels: 1,
        bits: 8,
        write: (b: Buffer, at: number, v: number) => b.writeUInt8(Math.round(v * 127) + 128, at),
      },
    ],
    [
      'PCM 24-bit mono 48 kHz, extensible',
      {
        tag: 1,
        rate: 48000,
        channels: 1,
        bits: 24,
        extensible: true,
        write: (b: Buffer, at: number, v: number) => b.writeIntLE(Math.round(v * 8388607), at, 3),
      },
    ],
    [
      'float 32-bit mono 16 kHz, with a LIST chunk (odd size, padded)',
      {
        tag: 3,
        rate: 16000,
        channels: 1,
        bits: 32,
        extraChunk: true,
        write: (b: Buffer, at: number, v: number) => b.writeFloatLE(v, at),
      },
    ],
  ])('%s', (_name, spec) => {
    const decoded = decodeWav(wav(spec, 1000, sine(1000, spec.rate)), 'x.wav');
    expect(decoded.sampleRate).toBe(spec.rate);
    expect(decoded.channels).toBe(spec.channels);
    expect(decoded.samples).toHaveLength(1000);
    for (let i = 0; i < 1000; i += 37) expect(decoded.samples[i]).toBeCloseTo(sine(1000, spec.rate)(i), 1);
  });

  it('mixes channels down to mono', () => {
    const spec = {
      tag: 3,
      rate: 8000,
      channels: 2,
      bits: 32,
      write: (b: Buffer, at: number, v: number) => b.writeFloatLE(v, at),
    };
    const decoded = decodeWav(wav(spec, 10, (_i, c) => (c === 0 ? 0.5 : -0.1)));
    expect(decoded.samples[3]).toBeCloseTo(0.2, 5);
  });

  it.each([
    ['not a WAV', Buffer.from('hello world, not a wav'), /not a WAV file/],
    [
      'no data chunk',
      wav({ tag: 1, rate: 8000, channels: 1, bits: 16, write: () => {} }, 0, () => 0).subarray(0, 36),
      /no data chunk/,
    ],
    [
      'an unsupported format',
      wav({ tag: 2, rate: 8000, channels: 1, bits: 4, write: () => {} }, 0, () => 0),
      /format tag 2, 4 bits/,
    ],
  ])('rejects %s with AUDIO_FILE_INVALID naming the file', (_name, bytes, message) => {
    expect(() => decodeWav(bytes, 'greeting.wav')).toThrow(message);
    try {
      decodeWav(bytes, 'greeting.wav');
    } catch (err) {
      expect(err).toMatchObject({ code: 'AUDIO_FILE_INVALID' });
      expect((err as Error).message).toMatch(/^greeting\.wav: /);
    }
  });
});

describe('resampling to the call rate', () => {
  it('keeps a 1 kHz tone and does not alias a 6 kHz one into the 8 kHz band (a sinc low-pass, not sample dropping)', async () => {
    const rate = 44100;
    const input = new Float32Array(rate);
    for (let i = 0; i < input.length; i++) input[i] = sine(1000, rate, 0.4)(i) + sine(6000, rate, 0.4)(i);
    const out = await resampleToInt16(input, rate, 8000);
    expect(Math.abs(out.length - 8000)).toBeLessThanOrEqual(1);
    const body = out.subarray(400, 7600);
    const tone = goertzelPower(body, 8000, 1000);
    // 6 kHz sampled at 8 kHz would fold to 2 kHz.
    const alias = goertzelPower(body, 8000, 2000);
    expect(10 * Math.log10(alias / tone)).toBeLessThan(-60);
    // Amplitude kept: 0.4 full scale.
    expect(Math.sqrt(4 * tone) / 32768).toBeCloseTo(0.4, 1);
  });

  it('loads a file into 8 kHz 16-bit mono', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-audio-'));
    dirs.push(dir);
    const file = path.join(dir, 'g.wav');
    const spec = {
      tag: 1,
      rate: 16000,
      channels: 1,
      bits: 16,
      write: (b: Buffer, at: number, v: number) => b.writeInt16LE(Math.round(v * 32767), at),
    };
    writeFileSync(file, wav(spec, 16000, sine(440, 16000)));
    const pcm = await loadAudioFile(file, 8000);
    expect(Math.abs(pcm.length - 8000)).toBeLessThanOrEqual(1);
    await expect(loadAudioFile(path.join(dir, 'missing.wav'), 8000)).rejects.toMatchObject({
      code: 'AUDIO_FILE_INVALID',
      message: expect.stringMatching(/missing\.wav: cannot read it \(ENOENT\)/),
    });
  });
});
