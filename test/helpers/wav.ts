/**
 * A strict reader for the canonical 44-byte-header PCM WAV files our writer
 * produces. Structural problems throw; size disagreements between the header
 * and the file are listed in `sizeProblems` and, unless `allowSizeMismatch`,
 * throw too — so a test that forgets to look still fails loudly.
 */
import { readFileSync } from 'node:fs';

export interface WavContents {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** Interleaved samples covered by the header's data size (and present in the file). */
  samples: Int16Array;
  riffSize: number;
  dataSize: number;
  fileSize: number;
  /** Empty when riffSize == 36 + dataSize and dataSize == fileSize - 44. */
  sizeProblems: string[];
}

export interface ReadWavOptions {
  /** Return instead of throwing when the header sizes disagree with the file. */
  allowSizeMismatch?: boolean;
}

export function readWav(path: string, options: ReadWavOptions = {}): WavContents {
  return parseWav(readFileSync(path), options, path);
}

export function parseWav(buf: Buffer, options: ReadWavOptions = {}, label = '<buffer>'): WavContents {
  const fail = (msg: string): never => {
    throw new Error(`${label}: not a valid PCM WAV: ${msg}`);
  };
  if (buf.length < 44) fail(`only ${buf.length} bytes, need a 44-byte header`);
  const tag = (at: number) => buf.toString('latin1', at, at + 4);
  if (tag(0) !== 'RIFF') fail(`bytes 0..3 are ${JSON.stringify(tag(0))}, want "RIFF"`);
  if (tag(8) !== 'WAVE') fail(`bytes 8..11 are ${JSON.stringify(tag(8))}, want "WAVE"`);
  if (tag(12) !== 'fmt ') fail(`bytes 12..15 are ${JSON.stringify(tag(12))}, want "fmt "`);
  const fmtSize = buf.readUInt32LE(16);
  if (fmtSize !== 16) fail(`fmt chunk size ${fmtSize}, want 16`);
  const audioFormat = buf.readUInt16LE(20);
  if (audioFormat !== 1) fail(`audio format ${audioFormat}, want 1 (PCM)`);
  const channels = buf.readUInt16LE(22);
  const sampleRate = buf.readUInt32LE(24);
  const byteRate = buf.readUInt32LE(28);
  const blockAlign = buf.readUInt16LE(32);
  const bitsPerSample = buf.readUInt16LE(34);
  if (channels < 1) fail('0 channels');
  if (sampleRate < 1) fail('sample rate 0');
  if (bitsPerSample !== 16) fail(`${bitsPerSample} bits per sample, want 16`);
  if (blockAlign !== channels * 2) fail(`block align ${blockAlign}, want ${channels * 2}`);
  if (byteRate !== sampleRate * blockAlign) fail(`byte rate ${byteRate}, want ${sampleRate * blockAlign}`);
  if (tag(36) !== 'data') fail(`bytes 36..39 are ${JSON.stringify(tag(36))}, want "data"`);
  const riffSize = buf.readUInt32LE(4);
  const dataSize = buf.readUInt32LE(40);
  const fileSize = buf.length;

  const sizeProblems: string[] = [];
  if (riffSize !== 36 + dataSize) sizeProblems.push(`RIFF size ${riffSize} != 36 + data size ${dataSize}`);
  if (dataSize > fileSize - 44) {
    sizeProblems.push(`data size ${dataSize} exceeds the ${fileSize - 44} bytes after the header`);
  } else if (dataSize < fileSize - 44) {
    sizeProblems.push(`data size ${dataSize} is less than the ${fileSize - 44} bytes after the header`);
  }
  if (dataSize % blockAlign !== 0)
    sizeProblems.push(`data size ${dataSize} is not a multiple of ${blockAlign}`);
  if (sizeProblems.length > 0 && !options.allowSizeMismatch) {
    throw new Error(`${label}: WAV sizes disagree with the file: ${sizeProblems.join('; ')}`);
  }

  const usable = Math.min(dataSize, fileSize - 44);
  const count = Math.floor(usable / 2);
  const samples = new Int16Array(count);
  // Explicit little-endian reads: the check must not share the writer's host-endianness shortcut.
  for (let i = 0; i < count; i++) samples[i] = buf.readInt16LE(44 + i * 2);
  return { sampleRate, channels, bitsPerSample, samples, riffSize, dataSize, fileSize, sizeProblems };
}
