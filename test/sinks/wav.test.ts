import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes, isSoftphoneError } from '../../src/errors.js';
import { ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { WavWriter } from '../../src/sinks/wav.js';
import { parseWav, readWav } from '../helpers/wav.js';
import {
  crashPayload,
  FRAME_SAMPLES,
  firstPatternMismatch,
  patternFrame,
  patternSample,
} from './fixtures/pattern.js';

const ONE_SECOND = 8000;
const CHILD = fileURLToPath(new URL('./fixtures/wav-child.ts', import.meta.url));
const SESSION_CHILD = fileURLToPath(new URL('./fixtures/session-child.ts', import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

let dir: string;
const open: WavWriter[] = [];
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rc-wav-'));
});

afterEach(() => {
  for (const w of open.splice(0)) w.close();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function openWriter(...args: Parameters<typeof WavWriter.open>): WavWriter {
  const w = WavWriter.open(...args);
  open.push(w);
  return w;
}

/** The permission bits a file created with `mode` gets under this process's umask. */
function effectiveMode(mode: number): number {
  const probe = join(dir, `probe-${mode.toString(8)}`);
  writeFileSync(probe, '', { mode });
  const bits = statSync(probe).mode & 0o777;
  rmSync(probe);
  return bits;
}

function expectCode(fn: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(isSoftphoneError(thrown), `expected SoftphoneError ${code}, got ${String(thrown)}`).toBe(true);
  expect((thrown as { code: string }).code).toBe(code);
}

describe('WavWriter format', () => {
  it('writes the canonical 44-byte header byte for byte', () => {
    const path = join(dir, 'tiny.wav');
    const w = openWriter(path);
    w.write(Int16Array.from([1, -1, 0x1234, -32768]));
    w.close();
    const expected = Buffer.concat([
      Buffer.from('RIFF', 'latin1'),
      Buffer.from([44, 0, 0, 0]), // 36 + 8 data bytes
      Buffer.from('WAVEfmt ', 'latin1'),
      Buffer.from([16, 0, 0, 0]), // fmt chunk size
      Buffer.from([1, 0]), // PCM
      Buffer.from([1, 0]), // mono
      Buffer.from([0x40, 0x1f, 0, 0]), // 8000 Hz
      Buffer.from([0x80, 0x3e, 0, 0]), // 16000 bytes/s
      Buffer.from([2, 0]), // block align
      Buffer.from([16, 0]), // bits per sample
      Buffer.from('data', 'latin1'),
      Buffer.from([8, 0, 0, 0]),
      Buffer.from([0x01, 0x00, 0xff, 0xff, 0x34, 0x12, 0x00, 0x80]), // little-endian samples
    ]);
    expect(readFileSync(path).toString('hex')).toBe(expected.toString('hex'));
  });

  it('writes a header with sizes 0 as soon as it is opened', () => {
    const path = join(dir, 'empty.wav');
    openWriter(path);
    const wav = readWav(path);
    expect(wav).toMatchObject({
      sampleRate: 8000,
      channels: 1,
      bitsPerSample: 16,
      riffSize: 36,
      dataSize: 0,
    });
    expect(wav.fileSize).toBe(44);
    expect(wav.samples.length).toBe(0);
  });

  it('round-trips 3 s of known samples', () => {
    const path = join(dir, 'rt.wav');
    const w = openWriter(path);
    for (let f = 0; f < 150; f++) w.write(patternFrame(f));
    expect(w.samplesWritten).toBe(3 * ONE_SECOND);
    expect(w.durationMs).toBe(3000);
    w.close();
    const wav = readWav(path);
    expect(wav.samples.length).toBe(3 * ONE_SECOND);
    expect(firstPatternMismatch(wav.samples)).toBe(-1);
    expect(wav.sizeProblems).toEqual([]);
  });

  it('handles a sub-array view of a larger buffer (byteOffset honoured)', () => {
    const path = join(dir, 'view.wav');
    const backing = Int16Array.from({ length: 20 }, (_, i) => patternSample(i));
    const w = openWriter(path);
    w.write(backing.subarray(5, 15));
    w.close();
    expect(Array.from(readWav(path).samples)).toEqual(Array.from(backing.subarray(5, 15)));
  });

  it('supports other rates and channel counts (stereo 16 kHz)', () => {
    const path = join(dir, 'st.wav');
    const w = openWriter(path, { sampleRate: 16000, channels: 2 });
    w.write(Int16Array.from([1, 2, 3, 4, 5, 6]));
    expect(w.samplesWritten).toBe(6);
    expect(w.durationMs).toBeCloseTo((3 / 16000) * 1000, 9);
    expect(() => w.write(Int16Array.from([7]))).toThrow(RangeError);
    w.close();
    const wav = readWav(path);
    expect(wav).toMatchObject({ sampleRate: 16000, channels: 2, dataSize: 12 });
    const raw = readFileSync(path);
    expect(raw.readUInt32LE(28)).toBe(64000);
    expect(raw.readUInt16LE(32)).toBe(4);
    expect(Array.from(wav.samples)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('rejects nonsense formats and options', () => {
    expect(() => WavWriter.open(join(dir, 'a.wav'), { sampleRate: 0 })).toThrow(RangeError);
    expect(() => WavWriter.open(join(dir, 'b.wav'), { channels: 0 })).toThrow(RangeError);
    expect(() => WavWriter.open(join(dir, 'c.wav'), { sampleRate: 8000.5 })).toThrow(RangeError);
    expect(() => WavWriter.open(join(dir, 'd.wav'), {}, { flushSamples: 0 })).toThrow(RangeError);
    // Validation happens before anything is created.
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('WavWriter progressive flushing', () => {
  it('patches sizes once per second of audio, always consistent with the data on disk', () => {
    const path = join(dir, 'prog.wav');
    const w = openWriter(path);
    const seen = new Set<number>();
    for (let f = 0; f < 175; f++) {
      w.write(patternFrame(f));
      const written = (f + 1) * FRAME_SAMPLES;
      // Strict read: header sizes must match the file exactly after every frame.
      const wav = readWav(path);
      const onDisk = wav.samples.length;
      expect(onDisk).toBe(Math.floor(written / ONE_SECOND) * ONE_SECOND);
      expect(written - onDisk).toBeLessThan(ONE_SECOND);
      expect(firstPatternMismatch(wav.samples)).toBe(-1);
      seen.add(onDisk);
    }
    expect([...seen]).toEqual([0, ONE_SECOND, 2 * ONE_SECOND, 3 * ONE_SECOND]);
    w.close();
    expect(readWav(path).samples.length).toBe(175 * FRAME_SAMPLES);
  });

  it('never buffers more than flushSamples, even for one huge write', () => {
    const path = join(dir, 'big.wav');
    const w = openWriter(path);
    const big = new Int16Array(2.5 * ONE_SECOND);
    for (let i = 0; i < big.length; i++) big[i] = patternSample(i);
    w.write(big);
    // Two full batches went out during the call; only the last half second is in memory.
    expect(readWav(path).samples.length).toBe(2 * ONE_SECOND);
    w.flush();
    const wav = readWav(path);
    expect(wav.samples.length).toBe(2.5 * ONE_SECOND);
    expect(firstPatternMismatch(wav.samples)).toBe(-1);
  });

  it('flush() writes the buffered samples now; flushing nothing is harmless', () => {
    const path = join(dir, 'flush.wav');
    const w = openWriter(path);
    w.flush();
    w.write(patternFrame(0));
    expect(readWav(path).dataSize).toBe(0);
    w.flush();
    w.flush();
    expect(readWav(path).dataSize).toBe(FRAME_SAMPLES * 2);
    w.write(patternFrame(1));
    w.close();
    const wav = readWav(path);
    expect(wav.samples.length).toBe(2 * FRAME_SAMPLES);
    expect(firstPatternMismatch(wav.samples)).toBe(-1);
  });

  it('honours a custom flushSamples (rounded down to whole frames)', () => {
    const path = join(dir, 'custom.wav');
    const w = openWriter(path, {}, { flushSamples: 320 });
    w.write(patternFrame(0));
    expect(readWav(path).dataSize).toBe(0);
    w.write(patternFrame(1));
    expect(readWav(path).dataSize).toBe(640);

    const stereo = join(dir, 'stereo.wav');
    const s = openWriter(stereo, { channels: 2 }, { flushSamples: 5 });
    s.write(Int16Array.from([1, 2, 3, 4]));
    expect(readWav(stereo).dataSize).toBe(8); // 5 rounds down to 4 samples = 2 stereo frames
  });
});

describe('WavWriter lifecycle', () => {
  it('never overwrites an existing file: FILE_EXISTS, content untouched', () => {
    const path = join(dir, 'exists.wav');
    writeFileSync(path, 'precious');
    expectCode(() => WavWriter.open(path), ErrorCodes.FILE_EXISTS);
    expect(readFileSync(path, 'utf8')).toBe('precious');
  });

  it('never follows a symlink at the path, even a dangling one', () => {
    const target = join(dir, 'target.wav');
    const link = join(dir, 'link.wav');
    symlinkSync(target, link);
    expectCode(() => WavWriter.open(link), ErrorCodes.FILE_EXISTS);
    expect(existsSync(target)).toBe(false);
  });

  it('reports SINK_WRITE_FAILED when the file cannot be created', () => {
    expectCode(() => WavWriter.open(join(dir, 'no', 'such', 'dir.wav')), ErrorCodes.SINK_WRITE_FAILED);
  });

  it('close() is idempotent; write() after close throws CLOSED; flush() after close is a no-op', () => {
    const path = join(dir, 'closed.wav');
    const w = openWriter(path);
    w.write(patternFrame(0));
    w.close();
    w.close();
    w.flush();
    expect(w.closed).toBe(true);
    expectCode(() => w.write(patternFrame(1)), ErrorCodes.CLOSED);
    expect(w.error).toBeUndefined();
    expect(readWav(path).samples.length).toBe(FRAME_SAMPLES);
  });

  it('creates the file with the requested mode (umask applies)', () => {
    const a = join(dir, 'default.wav');
    const b = join(dir, 'private.wav');
    openWriter(a);
    openWriter(b, {}, { mode: 0o600 });
    expect(statSync(a).mode & 0o777).toBe(effectiveMode(0o644));
    expect(statSync(b).mode & 0o777).toBe(effectiveMode(0o600));
  });
});

describe.skipIf(process.platform !== 'linux')('WavWriter write errors', () => {
  it('records an error instead of throwing when the fd goes bad (EBADF)', () => {
    const path = join(dir, 'ebadf.wav');
    const w = openWriter(path);
    w.write(patternFrame(0));
    w.flush();
    // Find the writer's fd and pull it out from under it.
    const fd = readdirSync('/proc/self/fd')
      .map(Number)
      .find((n) => {
        try {
          return readlinkSync(`/proc/self/fd/${n}`) === path;
        } catch {
          return false;
        }
      });
    expect(fd).toBeTypeOf('number');
    closeSync(fd!);
    // Occupy the lowest free fd (at most the writer's old number) read-only, so nothing else can
    // reuse the number meanwhile and a write through it must fail.
    const placeholder = openSync('/dev/null', 'r');
    try {
      for (let f = 1; f <= 60; f++) expect(() => w.write(patternFrame(f))).not.toThrow();
      expect(w.error?.code).toBe(ErrorCodes.SINK_WRITE_FAILED);
      expect(w.error?.details.errno).toBe('EBADF');
      // What counts as written is what reached the disk.
      expect(w.samplesWritten).toBe(FRAME_SAMPLES);
      expect(() => w.write(patternFrame(61))).not.toThrow();
      expect(() => w.flush()).not.toThrow();
      expect(() => w.close()).not.toThrow();
    } finally {
      // If the writer's close() closed our placeholder (same number), do not close it twice.
      if (placeholder !== fd) closeSync(placeholder);
    }
    const wav = readWav(path);
    expect(wav.samples.length).toBe(FRAME_SAMPLES);
    expect(firstPatternMismatch(wav.samples)).toBe(-1);
  });

  it('survives a full disk (EFBIG under ulimit -f): no throw, error recorded, header matches the file', async () => {
    const path = join(dir, 'efbig.wav');
    // 64 blocks is 32 or 64 KiB depending on the shell; either way far below 500 frames (160 KB).
    const child = spawn(
      '/bin/sh',
      ['-c', 'ulimit -f 64 && exec "$0" --import tsx "$1" "$2" fill 500', process.execPath, CHILD, path],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    const { code, stdout, stderr } = await collect(child);
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout.trim()) as Record<string, unknown>;
    expect(report.threw).toBeUndefined();
    expect(report.errorCode).toBe(ErrorCodes.SINK_WRITE_FAILED);
    expect(report.errno).toBe('EFBIG');
    expect(report.closed).toBe(true);
    const wav = readWav(path); // strict: the header was patched to the torn batch
    expect(wav.fileSize).toBeLessThan(44 + 500 * FRAME_SAMPLES * 2);
    expect(wav.samples.length).toBe(report.samplesWritten);
    expect(firstPatternMismatch(wav.samples)).toBe(-1);
  });
});

describe('WavWriter crash safety (SIGKILL a real writer process)', () => {
  it.each(['paced', 'burst'] as const)(
    '%s: the file is valid and holds all but the last second',
    async (mode) => {
      const path = join(dir, `crash-${mode}.wav`);
      const child = spawn(process.execPath, ['--import', 'tsx', CHILD, path, mode], {
        cwd: PROJECT_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      // Past 3 s and off a batch boundary, so the kill strands some buffered audio.
      const minFrames = 172;
      let reported = 0;
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => {
        stderr += s;
      });
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.on('exit', (_c, sig) => resolve(sig)),
      );
      await new Promise<void>((resolve, reject) => {
        let carry = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          const lines = (carry + chunk).split('\n');
          carry = lines.pop() ?? '';
          for (const line of lines) {
            const m = /^frames (\d+)$/.exec(line);
            if (m) reported = Number(m[1]);
          }
          if (reported >= minFrames && child.signalCode === null) {
            child.kill('SIGKILL');
            resolve();
          }
        });
        child.on('exit', () => reject(new Error(`child exited before the kill: ${stderr}`)));
      });
      expect(await exited).toBe('SIGKILL');

      const raw = readFileSync(path);
      const wav = parseWav(raw, { allowSizeMismatch: true }, path);
      // The two sizes always travel together.
      expect(wav.riffSize).toBe(36 + wav.dataSize);
      // Never claims more than is on disk; at most one unpatched batch (data landed, header not yet).
      expect(wav.dataSize).toBeLessThanOrEqual(wav.fileSize - 44);
      expect(wav.fileSize - 44 - wav.dataSize).toBeLessThanOrEqual(ONE_SECOND * 2);
      expect(wav.dataSize % (ONE_SECOND * 2)).toBe(0);
      // Everything covered by the header is the pattern's exact prefix...
      expect(firstPatternMismatch(wav.samples)).toBe(-1);
      // ...and so is any batch past it that landed just before the kill.
      const tail = parseWav(Buffer.concat([raw.subarray(0, 40), u32(raw.length - 44), raw.subarray(44)]), {
        allowSizeMismatch: true,
      });
      expect(firstPatternMismatch(tail.samples)).toBe(-1);
      // At most ~1 s (plus one frame) of what the child had reported is missing.
      expect(wav.samples.length).toBeGreaterThanOrEqual(
        reported * FRAME_SAMPLES - ONE_SECOND - FRAME_SAMPLES,
      );
      expect(wav.samples.length).toBeGreaterThanOrEqual(3 * ONE_SECOND);
    },
  );
});

describe('a recording call after SIGKILL', () => {
  it('holds every frame up to 2.5 s before the kill (1 s recording bound + 1 s WAV batches)', async () => {
    const path = join(dir, 'call.wav');
    const child = spawn(process.execPath, ['--import', 'tsx', SESSION_CHILD, path], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_c, sig) => resolve(sig)),
    );
    // Kill just before the recording completes its 4th one-second batch (the worst moment: ~2 s
    // not yet on disk, 1 s bound + 1 s batch); the last frame reported sent is the moment of the kill.
    let sent = -1;
    await new Promise<void>((resolve, reject) => {
      let carry = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        const lines = (carry + chunk).split('\n');
        carry = lines.pop() ?? '';
        for (const line of lines) {
          const m = /^sent (\d+)$/.exec(line);
          if (m) sent = Number(m[1]);
        }
        if (sent >= 248 && child.signalCode === null) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => reject(new Error(`child exited before the kill: ${stderr}`)));
    });
    expect(await exited).toBe('SIGKILL');
    const wav = parseWav(readFileSync(path), { allowSizeMismatch: true }, path);
    expect(wav.riffSize).toBe(36 + wav.dataSize);
    const samples = wav.samples;
    const decoded = (k: number) => Array.from(crashPayload(k), (b) => ULAW_TO_LINEAR[b]!);
    const find = (needle: number[]) => {
      outer: for (let i = 0; i + needle.length <= samples.length; i++) {
        for (let j = 0; j < needle.length; j++) if (samples[i + j] !== needle[j]) continue outer;
        return i;
      }
      return -1;
    };
    const origin = find(decoded(0));
    expect(origin).toBeGreaterThanOrEqual(0);
    // Every frame sent up to 2.5 s (125 frames) before the kill is on disk, at its place.
    const mustHave = sent - 125;
    for (let k = 0; k <= mustHave; k++) {
      const at = origin + k * FRAME_SAMPLES;
      expect(Array.from(samples.subarray(at, at + FRAME_SAMPLES)), `frame ${k} of ${sent}`).toEqual(
        decoded(k),
      );
    }
  });
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function collect(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
