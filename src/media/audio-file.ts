/**
 * Reading audio to play into a call (`--play FILE`, `call.play(path)`): a
 * WAV file of any rate, channel count and common sample format, mixed down
 * to mono and resampled to the call's rate with libsamplerate (via its
 * WebAssembly port: a proper band-limited sinc converter, not sample
 * dropping or linear interpolation, which alias badly on 44.1 kHz music).
 *
 * The RIFF parser is ours (a small, strict, bounded format whose errors we
 * want to word ourselves); every problem is an AUDIO_FILE_INVALID that names
 * the file and what is wrong with it.
 */
import { readFile, stat } from 'node:fs/promises';
import libsamplerate from '@alexanderolsen/libsamplerate-js';
import { describeError, ErrorCodes, SoftphoneError } from '../errors.js';
import { ALAW_TO_LINEAR, ULAW_TO_LINEAR } from './g711.js';

export interface DecodedAudio {
  sampleRate: number;
  /** Channels in the file (the samples are already mixed down to mono). */
  channels: number;
  /** Mono samples in [-1, 1]. */
  samples: Float32Array;
}

/**
 * The rate a file is loaded at before any call is known (`--play`): wideband,
 * so an Opus call gets the file's full band; a G.711 call gets it low-passed
 * to 8 kHz as it plays (the send path's half-band filter).
 */
export const PLAY_SAMPLE_RATE = 16000;

/** A generous bound: about 50 minutes of 44.1 kHz stereo 16-bit. */
export const MAX_AUDIO_FILE_BYTES = 512 * 1024 * 1024;

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_ALAW = 6;
const WAVE_FORMAT_MULAW = 7;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

/** Reads and decodes a WAV file (see decodeWav). */
export async function readWavFile(path: string): Promise<DecodedAudio> {
  let bytes: Buffer;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw invalid(path, 'it is not a regular file');
    if (info.size > MAX_AUDIO_FILE_BYTES) {
      throw invalid(path, `it is larger than ${MAX_AUDIO_FILE_BYTES / 1024 / 1024} MiB`);
    }
    bytes = await readFile(path);
  } catch (err) {
    if (err instanceof SoftphoneError) throw err;
    throw invalid(path, `cannot read it (${(err as NodeJS.ErrnoException).code ?? describeError(err)})`);
  }
  return decodeWav(bytes, path);
}

/**
 * Decodes a RIFF/WAVE file: PCM 8/16/24/32-bit, IEEE float 32/64-bit,
 * G.711 A-law/µ-law, plain or WAVE_FORMAT_EXTENSIBLE; unknown chunks are
 * skipped; a data size larger than the file (a recording that was never
 * finalised) is cut to what is there.
 */
export function decodeWav(bytes: Uint8Array, name = 'audio'): DecodedAudio {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 12 || b.toString('latin1', 0, 4) !== 'RIFF' || b.toString('latin1', 8, 12) !== 'WAVE') {
    throw invalid(name, 'it is not a WAV file (no RIFF/WAVE header)');
  }
  let format: { tag: number; channels: number; rate: number; bits: number; blockAlign: number } | undefined;
  let offset = 12;
  while (offset + 8 <= b.length) {
    const id = b.toString('latin1', offset, offset + 4);
    const size = b.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > b.length) throw invalid(name, 'its fmt chunk is truncated');
      let tag = b.readUInt16LE(body);
      if (tag === WAVE_FORMAT_EXTENSIBLE) {
        if (size < 40 || body + 40 > b.length) throw invalid(name, 'its extensible fmt chunk is truncated');
        tag = b.readUInt16LE(body + 24); // the first two bytes of the SubFormat GUID are the format tag
      }
      format = {
        tag,
        channels: b.readUInt16LE(body + 2),
        rate: b.readUInt32LE(body + 4),
        blockAlign: b.readUInt16LE(body + 12),
        bits: b.readUInt16LE(body + 14),
      };
    } else if (id === 'data') {
      if (!format) throw invalid(name, 'its data chunk comes before the fmt chunk');
      const end = Math.min(b.length, body + size);
      return {
        sampleRate: format.rate,
        channels: format.channels,
        samples: decodeData(b, body, end, format, name),
      };
    }
    offset = body + size + (size & 1); // chunks are padded to an even size
  }
  throw invalid(name, format ? 'it has no data chunk' : 'it has no fmt chunk');
}

function decodeData(
  b: Buffer,
  start: number,
  end: number,
  f: { tag: number; channels: number; rate: number; bits: number; blockAlign: number },
  name: string,
): Float32Array {
  if (f.channels < 1 || f.channels > 32) throw invalid(name, `it has ${f.channels} channels`);
  if (f.rate < 1000 || f.rate > 384_000) throw invalid(name, `its sample rate ${f.rate} Hz is out of range`);
  const bytesPer = f.bits / 8;
  const sample = sampleReader(f.tag, f.bits, name);
  if (f.blockAlign !== bytesPer * f.channels) {
    throw invalid(name, `its block align ${f.blockAlign} does not match ${f.channels} × ${f.bits} bits`);
  }
  const frames = Math.floor((end - start) / f.blockAlign);
  const out = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    const at = start + i * f.blockAlign;
    for (let c = 0; c < f.channels; c++) sum += sample(b, at + c * bytesPer);
    out[i] = sum / f.channels;
  }
  return out;
}

type SampleReader = (b: Buffer, at: number) => number;

function sampleReader(tag: number, bits: number, name: string): SampleReader {
  if (tag === WAVE_FORMAT_PCM) {
    // 8-bit WAV is unsigned; wider is signed little-endian.
    if (bits === 8) return (b, at) => (b[at]! - 128) / 128;
    if (bits === 16) return (b, at) => b.readInt16LE(at) / 32768;
    if (bits === 24) return (b, at) => b.readIntLE(at, 3) / 8388608;
    if (bits === 32) return (b, at) => b.readInt32LE(at) / 2147483648;
  } else if (tag === WAVE_FORMAT_IEEE_FLOAT) {
    if (bits === 32) return (b, at) => b.readFloatLE(at);
    if (bits === 64) return (b, at) => b.readDoubleLE(at);
  } else if ((tag === WAVE_FORMAT_ALAW || tag === WAVE_FORMAT_MULAW) && bits === 8) {
    const table = tag === WAVE_FORMAT_ALAW ? ALAW_TO_LINEAR : ULAW_TO_LINEAR;
    return (b, at) => table[b[at]!]! / 32768;
  }
  throw invalid(
    name,
    `its sample format (format tag ${tag}, ${bits} bits) is not supported; use PCM or float`,
  );
}

/**
 * Mono samples in [-1, 1] at `from` Hz → 16-bit samples at `to` Hz, with
 * libsamplerate's best sinc converter. Values beyond full scale are clipped.
 */
export async function resampleToInt16(samples: Float32Array, from: number, to: number): Promise<Int16Array> {
  let resampled = samples;
  if (from !== to && samples.length > 0) {
    const src = await libsamplerate.create(1, from, to, {
      converterType: libsamplerate.ConverterType.SRC_SINC_BEST_QUALITY,
    });
    try {
      resampled = src.simple(samples);
    } finally {
      src.destroy();
    }
  }
  const out = new Int16Array(resampled.length);
  for (let i = 0; i < resampled.length; i++) {
    const v = Math.round(resampled[i]! * 32768);
    out[i] = Math.min(32767, Math.max(-32768, v)); // an Int16Array would wrap, not clip
  }
  return out;
}

/** A WAV file as mono 16-bit PCM at `rate` (8000 for G.711 calls). */
export async function loadAudioFile(path: string, rate: number): Promise<Int16Array> {
  const audio = await readWavFile(path);
  return resampleToInt16(audio.samples, audio.sampleRate, rate);
}

function invalid(name: string, why: string): SoftphoneError {
  return new SoftphoneError(ErrorCodes.AUDIO_FILE_INVALID, `${name}: ${why}`, { details: { path: name } });
}
