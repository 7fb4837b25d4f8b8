import { spawn as nodeSpawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSoftphoneError, type SoftphoneError } from '../../src/errors.js';
import { EnginePipe, type EnginePipeOptions, engineEnv } from '../../src/sinks/engine-pipe.js';

const CALL = { callId: 'call-42', from: '+15550001111', to: '+15550002222' };
const NODE = process.execPath;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'engine-pipe-'));
  // Hashes everything read from stdin; one JSON line per chunk, a text line and a final JSON line at EOF.
  writeFileSync(
    path.join(dir, 'hash.cjs'),
    `const h = require('node:crypto').createHash('sha256');
let total = 0;
process.stdin.on('data', (d) => {
  h.update(d);
  total += d.length;
  process.stdout.write(JSON.stringify({ type: 'chunk', bytes: d.length, total }) + '\\n');
});
process.stdin.on('end', () => {
  process.stdout.write('plain text, not json\\n');
  process.stdout.write(JSON.stringify({ type: 'final', bytes: total, sha256: h.digest('hex') }) + '\\r\\n');
});
`,
  );
  // Prints its final result a while after stdin EOF, like a recognizer finishing the last utterance.
  writeFileSync(
    path.join(dir, 'late-final.cjs'),
    `let total = 0;
process.stdin.on('data', (d) => { total += d.length; });
process.stdin.on('end', () => {
  setTimeout(() => { process.stdout.write(JSON.stringify({ final: 'hello world', bytes: total }) + '\\n'); }, 300);
});
`,
  );
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function nodeScript(name: string): string {
  return `${q(NODE)} ${q(path.join(dir, name))}`;
}

interface Collected {
  pipe: EnginePipe;
  lines: Array<{ text: string; json: object | undefined }>;
  stderr: string[];
  errors: SoftphoneError[];
}

function start(options: Partial<EnginePipeOptions> & { command: string }): Collected {
  const pipe = EnginePipe.start({ call: CALL, ...options });
  const c: Collected = { pipe, lines: [], stderr: [], errors: [] };
  pipe.on('line', (text, json) => c.lines.push({ text, json }));
  pipe.on('stderr', (line) => c.stderr.push(line));
  pipe.on('error', (err) => c.errors.push(err));
  return c;
}

/** Resolves when a stdout line satisfies `match`. */
function lineMatching(pipe: EnginePipe, match: (text: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    const onLine = (text: string) => {
      if (!match(text)) return;
      pipe.off('line', onLine);
      resolve(text);
    };
    pipe.on('line', onLine);
  });
}

function frameOf(seed: number): Int16Array {
  const frame = new Int16Array(160);
  for (let i = 0; i < frame.length; i++) frame[i] = ((seed * 7919 + i * 104729) % 65536) - 32768;
  return frame;
}

function leBytes(frame: Int16Array): Buffer {
  const b = Buffer.alloc(frame.length * 2);
  for (let i = 0; i < frame.length; i++) b.writeInt16LE(frame[i]!, i * 2);
  return b;
}

const haveProc = existsSync('/proc/self/stat');

/** Live (not zombie) processes in process group `pgid`, read from /proc. */
function liveGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    if (Number(fields[2]) === pgid && state !== 'Z' && state !== 'X') members.push(Number(name));
  }
  return members;
}

/** Polls a condition (a dying process has no event to wait on) with a generous deadline. */
async function until(condition: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

describe('engineEnv', () => {
  it('adds the RC_* call variables and drops our own secrets and a stale RC_WAV', () => {
    const env = engineEnv(
      { ...CALL, from: 'evil\u0000\nname' },
      {
        PATH: '/bin',
        RC_CLIENT_SECRET: 's',
        RC_JWT_TOKEN: 'j',
        SIP_PASSWORD: 'p',
        RC_WAV: '/old.wav',
        OPENAI_API_KEY: 'k',
      },
    );
    expect(env).toEqual({
      PATH: '/bin',
      OPENAI_API_KEY: 'k',
      RC_CALL_ID: 'call-42',
      RC_FROM: 'evilname',
      RC_TO: '+15550002222',
      RC_SAMPLE_RATE: '8000',
      RC_ENCODING: 's16le',
      RC_CHANNELS: '1',
    });
    expect(engineEnv({ ...CALL, wavPath: '/rec/a.wav' }, {}).RC_WAV).toBe('/rec/a.wav');
  });
});

describe('EnginePipe', () => {
  it('gives the engine its call environment', async () => {
    const fmt = '%s|%s|%s|%s|%s|%s|%s|%s\\n';
    const vars = '"$RC_CALL_ID" "$RC_FROM" "$RC_TO" "$RC_SAMPLE_RATE" "$RC_ENCODING" "$RC_CHANNELS"';
    const command = `printf '${fmt}' ${vars} "\${RC_WAV-unset}" "\${RC_CLIENT_SECRET-unset}"`;
    const env = { ...process.env, RC_CLIENT_SECRET: 'do-not-leak' };

    const recording = start({ command, env, call: { ...CALL, wavPath: '/tmp/rec 1.wav' } });
    await once(recording.pipe, 'exit');
    const plain = start({ command, env });
    await once(plain.pipe, 'exit');

    expect(recording.lines.map((l) => l.text)).toEqual([
      'call-42|+15550001111|+15550002222|8000|s16le|1|/tmp/rec 1.wav|unset',
    ]);
    expect(plain.lines.map((l) => l.text)).toEqual([
      'call-42|+15550001111|+15550002222|8000|s16le|1|unset|unset',
    ]);
    expect((await recording.pipe.close()).exitCode).toBe(0);
    expect((await plain.pipe.close()).exitCode).toBe(0);
  });

  it('delivers exactly the frames written, in order, as s16le, and parses JSON lines', async () => {
    const c = start({ command: nodeScript('hash.cjs'), maxBufferMs: 60_000 });
    const expected = createHash('sha256');
    // One buffer reused for every frame, as MediaSession does: write() must copy.
    const frame = new Int16Array(160);
    for (let n = 0; n < 250; n++) {
      frame.set(frameOf(n));
      expected.update(leBytes(frame));
      c.pipe.write(frame);
      frame.fill(0x5555);
    }
    const result = await c.pipe.close();

    expect(result).toEqual({ framesWritten: 250, framesDropped: 0, exitCode: 0, signal: null });
    expect(c.errors).toEqual([]);
    const chunks = c.lines.filter((l) => (l.json as { type?: string } | undefined)?.type === 'chunk');
    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.at(-1)?.json).toMatchObject({ total: 250 * 320 });
    const text = c.lines.find((l) => l.text === 'plain text, not json');
    expect(text?.json).toBeUndefined();
    const final = c.lines.at(-1);
    expect(final?.text.endsWith('\r')).toBe(false);
    expect(final?.json).toEqual({ type: 'final', bytes: 250 * 320, sha256: expected.digest('hex') });
  });

  it('bounds the buffer for an engine that never reads, drops and counts, and never blocks', async () => {
    const c = start({ command: 'sleep 30', maxBufferMs: 200, graceMs: 100 });
    const frame = frameOf(1);
    let maxBuffered = 0;
    const t0 = performance.now();
    for (let n = 0; n < 3000; n++) {
      c.pipe.write(frame);
      maxBuffered = Math.max(maxBuffered, c.pipe.stats.bufferedBytes);
    }
    const elapsed = performance.now() - t0;

    // 3000 frames is 60 s of audio; far more than a kernel pipe (64 KiB = 2 s) plus our 200 ms.
    expect(elapsed).toBeLessThan(2000);
    expect(maxBuffered).toBeLessThanOrEqual(3200);
    expect(c.pipe.stats.framesDropped).toBeGreaterThan(0);

    const result = await c.pipe.close();
    expect(result.signal).toBe('SIGTERM');
    expect(result.framesWritten + result.framesDropped).toBe(3000);
    expect(result.framesDropped).toBeGreaterThan(2000);
    expect(c.errors).toEqual([]); // a broken pipe while stopping it is not news
  });

  it('reports an engine that crashes mid-call; later writes are safe and counted as dropped', async () => {
    const c = start({ command: 'head -c 3200 >/dev/null; echo "engine: giving up" >&2; exit 3' });
    const exited = once(c.pipe, 'exit');
    for (let n = 0; n < 10; n++) c.pipe.write(frameOf(n)); // 3200 bytes: head exits after reading them
    const [info] = await exited;

    expect(info).toEqual({ code: 3, signal: null, duringCall: true });
    expect(c.stderr).toEqual(['engine: giving up']);
    expect(c.pipe.stats.running).toBe(false);
    const droppedBefore = c.pipe.stats.framesDropped;
    expect(() => {
      for (let n = 0; n < 100; n++) c.pipe.write(frameOf(n));
    }).not.toThrow();
    expect(c.pipe.stats.framesDropped).toBe(droppedBefore + 100);

    const result = await c.pipe.close();
    expect(result.exitCode).toBe(3);
    expect(result.framesWritten + result.framesDropped).toBe(110);
    for (const err of c.errors) expect(isSoftphoneError(err, 'ENGINE_FAILED')).toBe(true);
  });

  it('lets the engine print its final result within the grace period after stdin EOF', async () => {
    const c = start({ command: nodeScript('late-final.cjs'), graceMs: 10_000 });
    for (let n = 0; n < 5; n++) c.pipe.write(frameOf(n));
    const t0 = performance.now();
    const result = await c.pipe.close();

    expect(c.lines.map((l) => l.json)).toEqual([{ final: 'hello world', bytes: 1600 }]);
    expect(result).toEqual({ framesWritten: 5, framesDropped: 0, exitCode: 0, signal: null });
    expect(performance.now() - t0).toBeLessThan(9000); // it ended on its own, not at the deadline
  });

  it('SIGKILLs an engine (and its group) that ignores SIGTERM', async () => {
    const c = start({
      command: "trap '' TERM; echo ready; while :; do sleep 0.05; done",
      graceMs: 100,
      killAfterMs: 300,
    });
    await lineMatching(c.pipe, (t) => t === 'ready');
    const pgid = c.pipe.pid!;
    const exited = once(c.pipe, 'exit');
    const result = await c.pipe.close();

    expect(result.signal).toBe('SIGKILL');
    expect(await exited).toEqual([{ code: null, signal: 'SIGKILL', duringCall: false }]);
    if (haveProc) expect(await until(() => liveGroupMembers(pgid).length === 0)).toBe(true);
  });

  it('ends a pipeline that exits on EOF normally', async () => {
    const c = start({ command: 'cat | cat | wc -c' });
    for (let n = 0; n < 50; n++) c.pipe.write(frameOf(n));
    const pgid = c.pipe.pid!;
    const result = await c.pipe.close();

    expect(result).toMatchObject({ framesWritten: 50, exitCode: 0, signal: null });
    expect(c.lines.map((l) => l.text.trim())).toEqual(['16000']);
    if (haveProc) expect(await until(() => liveGroupMembers(pgid).length === 0)).toBe(true);
  });

  it('stops every member of a pipeline that ignores EOF, not only the shell', async () => {
    const c = start({ command: 'sleep 300 | sleep 300 & echo ready; wait', graceMs: 100 });
    await lineMatching(c.pipe, (t) => t === 'ready');
    const pgid = c.pipe.pid!;
    if (haveProc) expect(liveGroupMembers(pgid).length).toBeGreaterThanOrEqual(3);
    const result = await c.pipe.close();

    expect(result.signal).toBe('SIGTERM');
    if (haveProc) expect(await until(() => liveGroupMembers(pgid).length === 0)).toBe(true);
  });

  it('reports a spawn failure as ENGINE_FAILED; writes and close stay safe', async () => {
    const c = start({
      command: 'true',
      spawn: ((_cmd: string, args: string[], opts: object) =>
        nodeSpawn('/nonexistent/sh', args, opts)) as unknown as typeof nodeSpawn,
    });
    expect(() => c.pipe.write(frameOf(0))).not.toThrow();
    const [err] = (await once(c.pipe, 'error')) as [SoftphoneError];
    expect(err.code).toBe('ENGINE_FAILED');
    c.pipe.write(frameOf(1));
    const result = await c.pipe.close();
    expect(result).toEqual({ framesWritten: 0, framesDropped: 2, exitCode: null, signal: null });
  });

  it('survives a spawn that throws, with no error listener at all', async () => {
    const pipe = EnginePipe.start({
      call: CALL,
      command: 'true',
      spawn: (() => {
        throw new Error('EAGAIN');
      }) as unknown as typeof nodeSpawn,
    });
    pipe.write(frameOf(0));
    await new Promise((resolve) => setImmediate(resolve)); // let the deferred report run
    expect(await pipe.close()).toEqual({ framesWritten: 0, framesDropped: 1, exitCode: null, signal: null });
  });

  it('splits overlong output lines instead of buffering them', async () => {
    const c = start({ command: "head -c 10000 /dev/zero | tr '\\0' x; echo", maxLineLength: 4096 });
    await once(c.pipe, 'exit');
    expect(c.lines.map((l) => l.text.length)).toEqual([4096, 4096, 1808]);
    await c.pipe.close();
  });
});
