/** The speech sample shipped in assets/ (espeak-ng, 8 kHz 16-bit mono WAV) that `demo` plays into its call. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DEMO_SPEECH_WAV = fileURLToPath(new URL('../../assets/demo-speech.wav', import.meta.url));

/** Reads the PCM samples of a 16-bit mono 8 kHz WAV; throws on anything else. */
export function readPcmWav(path: string): Int16Array {
  const buf = readFileSync(path);
  if (buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WAVE') {
    throw new Error(`${path}: not a WAV file`);
  }
  let offset = 12;
  let format: { channels: number; rate: number; bits: number } | undefined;
  while (offset + 8 <= buf.length) {
    const id = buf.toString('latin1', offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ') {
      format = {
        channels: buf.readUInt16LE(body + 2),
        rate: buf.readUInt32LE(body + 4),
        bits: buf.readUInt16LE(body + 14),
      };
    } else if (id === 'data') {
      if (format?.channels !== 1 || format.rate !== 8000 || format.bits !== 16) {
        throw new Error(`${path}: need 8 kHz 16-bit mono PCM`);
      }
      const end = Math.min(buf.length, body + size);
      const samples = new Int16Array((end - body) >> 1);
      for (let i = 0; i < samples.length; i++) samples[i] = buf.readInt16LE(body + 2 * i);
      return samples;
    }
    offset = body + size + (size & 1);
  }
  throw new Error(`${path}: no data chunk`);
}
