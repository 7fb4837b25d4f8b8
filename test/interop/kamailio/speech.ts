/**
 * What the SIPp call tests and the capacity bench share: real speech
 * (pocketsphinx-testdata) as 8 kHz u-law for SIPp's rtp_stream, and small
 * child-process helpers.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ULAW_SILENCE, ULAW_TO_LINEAR } from '../../../src/media/g711.js';
import { toolPath } from '../../helpers/tools.js';

export const SPEECH_SOURCE = '/usr/share/pocketsphinx/test/data/goforward.raw';
export const RATE = 8000;
/** rtp_stream, PT 0: 20 ms of u-law per packet. */
export const PACKET_BYTES = 160;

export interface Speech {
  /** The u-law file for rtp_stream. */
  file: string;
  ulaw: Buffer;
  /** Bytes sox produced, before padding. */
  soxBytes: number;
  /** ITU G.711 decoding of every byte of `ulaw`. */
  pcm: Int16Array;
  ms: number;
}

export function execText(file: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${path.basename(file)} failed: ${error.message}\n${String(stderr)}`));
      else resolve(String(stdout));
    });
  });
}

/** goforward.raw (16 kHz s16le) → 8 kHz u-law with sox, padded with u-law silence to whole packets. */
export async function prepareSpeech(dir: string): Promise<Speech> {
  const converted = path.join(dir, 'speech.sox.ulaw');
  await execText(toolPath('sox'), [
    ...['-t', 'raw', '-r', '16000', '-e', 'signed-integer', '-b', '16', '-c', '1', '-L', SPEECH_SOURCE],
    ...['-t', 'raw', '-r', String(RATE), '-e', 'u-law', '-b', '8', '-c', '1', converted],
  ]);
  const sox = readFileSync(converted);
  // rtp_stream fills a short last packet from the file's start: give it whole packets of u-law silence.
  const ulaw = Buffer.alloc(Math.ceil(sox.length / PACKET_BYTES) * PACKET_BYTES, ULAW_SILENCE);
  sox.copy(ulaw);
  const file = path.join(dir, 'speech.ulaw');
  writeFileSync(file, ulaw);
  const pcm = new Int16Array(ulaw.length);
  for (let i = 0; i < ulaw.length; i++) pcm[i] = ULAW_TO_LINEAR[ulaw[i]!]!;
  return { file, ulaw, soxBytes: sox.length, pcm, ms: (ulaw.length / RATE) * 1000 };
}

/** Resolves with the exit code once the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Waits for `pattern` on a child's stderr; rejects if the child exits or the time runs out. */
export function waitForStderr(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen = (seen + chunk.toString('utf8')).slice(-8192);
      if (pattern.test(seen)) finish();
    };
    const onExit = (code: number | null) => finish(new Error(`exited (${code}) before ${pattern}: ${seen}`));
    const timer = setTimeout(
      () => finish(new Error(`no ${pattern} within ${timeoutMs} ms: ${seen}`)),
      timeoutMs,
    );
    const finish = (error?: Error) => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

/**
 * 'exact': zeros, then exactly `sent` × `times`, then zeros. 'gaps': every
 * 160-sample packet present, bit-exact and in order, with runs of zeros
 * inserted between some. 'broken': otherwise.
 */
export function classifyRecording(
  wav: Int16Array,
  sent: Int16Array,
  times: number,
): 'exact' | 'gaps' | 'broken' {
  const firstNonZero = (a: Int16Array) => a.findIndex((s) => s !== 0);
  const offset = firstNonZero(wav) - firstNonZero(sent);
  if (offset < 0) return 'broken';
  for (let i = 0; i < offset; i++) if (wav[i] !== 0) return 'broken';
  const packetsPerLoop = sent.length / PACKET_BYTES;
  const matchesAt = (at: number, packet: number) => {
    if (at + PACKET_BYTES > wav.length) return false;
    const base = (packet % packetsPerLoop) * PACKET_BYTES;
    for (let i = 0; i < PACKET_BYTES; i++) if (wav[at + i] !== sent[base + i]) return false;
    return true;
  };
  let at = offset;
  let gaps = 0;
  for (let k = 0; k < packetsPerLoop * times; k++) {
    if (matchesAt(at, k)) {
      at += PACKET_BYTES;
      continue;
    }
    let next = at;
    while (next < wav.length && wav[next] === 0 && !matchesAt(next + 1, k)) next++;
    if (next >= wav.length || wav[next] !== 0) return 'broken';
    gaps++;
    at = next + 1 + PACKET_BYTES;
  }
  for (let i = at; i < wav.length; i++) if (wav[i] !== 0) return 'broken';
  return gaps === 0 ? 'exact' : 'gaps';
}
