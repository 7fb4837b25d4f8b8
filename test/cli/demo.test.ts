import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { DEMO_SPEECH_WAV, readPcmWav } from '../../src/demo/speech-sample.js';
import { encodeUlawFrame, ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/dirs.js';
import { readWav } from '../helpers/wav.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

it('demo: registers, receives a call with speech, records it and exits 0 within 15 s', async () => {
  const started = performance.now();
  const r = runCli(['demo', '--log-format', 'json', '--record-dir', 'out'], { cleanups });
  expect(await r.exit).toBe(0);
  expect(performance.now() - started).toBeLessThan(15_000);
  const events = r.events();
  const names = events.map((e) => e.event);
  for (const name of [
    'registered',
    'call.incoming',
    'call.answered',
    'call.dtmf',
    'call.ended',
    'demo.done',
    'unregistered',
  ]) {
    expect(names).toContain(name);
  }
  const done = events.find((e) => e.event === 'demo.done') as { wav: string; stats: { lost: number } };
  expect(path.dirname(done.wav)).toBe(path.join(r.cwd, 'out'));
  expect(done.stats.lost).toBe(0);
  // The WAV holds the sample exactly as G.711 u-law carries it (bar the final key press).
  const speech = readPcmWav(DEMO_SPEECH_WAV);
  const ulaw = new Uint8Array(speech.length);
  encodeUlawFrame(speech, ulaw);
  const expected = Int16Array.from(ulaw, (b) => ULAW_TO_LINEAR[b] as number);
  const wav = readWav(done.wav).samples;
  const probe = expected.subarray(1600, 1760);
  let at = -1;
  for (let i = 0; i + 160 <= wav.length && at < 0; i++) {
    if (probe.every((s, j) => wav[i + j] === s)) at = i - 1600;
  }
  expect(at).toBeGreaterThanOrEqual(0);
  const compared = expected.length - 5 * 160; // the last frames carry the DTMF press instead
  expect(Array.from(wav.subarray(at, at + compared))).toEqual(Array.from(expected.subarray(0, compared)));
});

it('demo: a --record-dir that is a file exits 2 naming the flag', async () => {
  const file = path.join(tempDir(cleanups), 'out');
  writeFileSync(file, '');
  const r = runCli(['demo', '--log-format', 'json', '--record-dir', file], { cleanups });
  expect(await r.exit).toBe(2);
  expect(r.stderr()).toContain(`--record-dir ${file}: is a file`);
  expect(r.stderr()).not.toContain('--no-record');
  expect(r.events().map((e) => e.event)).not.toContain('demo.start');
});
