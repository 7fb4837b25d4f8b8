import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes, isSoftphoneError } from '../../src/errors.js';
import {
  MAX_CALL_ID_CHARS,
  MAX_CALLER_USER_CHARS,
  MAX_COLLISION_SUFFIX,
  recordingPaths,
  sanitizeNamePart,
  utcStamp,
} from '../../src/sinks/recording-path.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rc-path-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const startedAt = new Date(Date.UTC(2024, 1, 29, 3, 4, 5, 678));
const SAFE_NAME = /^\d{8}-\d{6}_[A-Za-z0-9._+-]+_[A-Za-z0-9._+-]+(-\d+)?\.(wav|json)$/;

function expectInside(root: string, p: string): void {
  expect(isAbsolute(p)).toBe(true);
  expect(dirname(p)).toBe(resolve(root));
  const rel = relative(resolve(root), p);
  expect(rel).toBe(basename(p));
  expect(rel.startsWith('..')).toBe(false);
  expect(SAFE_NAME.test(basename(p))).toBe(true);
}

describe('recordingPaths', () => {
  it('builds <UTC stamp>_<user>_<call-id>.wav and the matching .json', () => {
    const p = recordingPaths(dir, { startedAt, callerUser: '+16505550100', callId: 'a84b4c76e66710@pc33' });
    expect(p.wav).toBe(join(dir, '20240229-030405_+16505550100_a84b4c76e66710_pc33.wav'));
    expect(p.json).toBe(join(dir, '20240229-030405_+16505550100_a84b4c76e66710_pc33.json'));
  });

  it('formats the time in UTC whatever the local zone', () => {
    // 23:59:59 UTC on Dec 31: any non-UTC formatting would show a different day or year.
    expect(utcStamp(new Date('1999-12-31T23:59:59.999Z'))).toBe('19991231-235959');
    expect(utcStamp(new Date('2000-01-01T00:00:00+05:00'))).toBe('19991231-190000');
    expect(() => utcStamp(new Date(Number.NaN))).toThrow(RangeError);
    expect(() => utcStamp(new Date(Date.UTC(10000, 0, 1)))).toThrow(RangeError);
  });

  it('resolves a relative dir and stays inside it', () => {
    const p = recordingPaths(relative(process.cwd(), dir), { startedAt, callerUser: 'u', callId: 'c' });
    expectInside(dir, p.wav);
    expectInside(dir, p.json);
  });

  const hostile: Array<[string, string | undefined, string, string]> = [
    // [case, callerUser, callId, expected "<user>_<id>"]
    ['parent traversal', '../../etc', '../../etc/passwd', '.._.._etc_.._.._etc_passwd'],
    ['absolute path', '/root', '/etc/shadow', '_root__etc_shadow'],
    ['backslashes', 'a\\b', '..\\..\\x', 'a_b_.._.._x'],
    ['NUL and control bytes', 'al\u0000ice', 'id\u0000\n\r\t', 'al_ice_id____'],
    ['single dot', '.', '.', 'unknown_unknown'],
    ['double dot', '..', '..', 'unknown_unknown'],
    ['dots only', '...', '....', 'unknown_unknown'],
    ['empty', '', '', 'unknown_unknown'],
    ['undefined user', undefined, 'abc', 'unknown_abc'],
    ['unicode, one _ per code point', 'jos\u00e9', '\u{1F4DE}call\u00b7\u4e2d', 'jos___call__'],
    ['spaces and shell characters', 'a b', '$(rm -rf ~);`x`|&', 'a_b___rm_-rf_____x___'],
    ['kept punctuation', 'A.z_0+9-', 'x.y_z+w-1', 'A.z_0+9-_x.y_z+w-1'],
  ];
  it.each(hostile)('sanitises %s', (_case, callerUser, callId, expected) => {
    const p = recordingPaths(dir, { startedAt, callerUser, callId });
    expect(basename(p.wav)).toBe(`20240229-030405_${expected}.wav`);
    expectInside(dir, p.wav);
    expectInside(dir, p.json);
  });

  it('bounds very long values (64 chars user, 80 chars call id)', () => {
    const p = recordingPaths(dir, { startedAt, callerUser: 'u'.repeat(10_000), callId: 'c'.repeat(100_000) });
    expect(basename(p.wav)).toBe(`20240229-030405_${'u'.repeat(64)}_${'c'.repeat(80)}.wav`);
    expect(Buffer.byteLength(basename(p.json))).toBeLessThan(255);
    // Truncation counts code points, so an astral character is never split into a lone surrogate.
    expect(sanitizeNamePart('\u{1F4DE}'.repeat(100), MAX_CALLER_USER_CHARS)).toBe('_'.repeat(64));
    expect(sanitizeNamePart('x'.repeat(MAX_CALL_ID_CHARS + 1), MAX_CALL_ID_CHARS)).toHaveLength(80);
  });

  it('picks -2, -3, … when the name is taken (by a .wav or a .json)', () => {
    const info = { startedAt, callerUser: 'bob', callId: 'same' };
    const first = recordingPaths(dir, info);
    expect(recordingPaths(dir, info)).toEqual(first); // nothing created yet
    writeFileSync(first.wav, '');
    const second = recordingPaths(dir, info);
    expect(basename(second.wav)).toBe('20240229-030405_bob_same-2.wav');
    expect(basename(second.json)).toBe('20240229-030405_bob_same-2.json');
    writeFileSync(second.json, ''); // a leftover sidecar alone also blocks the name
    const third = recordingPaths(dir, info);
    expect(basename(third.wav)).toBe('20240229-030405_bob_same-3.wav');
    expectInside(dir, third.wav);
  });

  it('treats a directory or a dangling symlink at the name as taken', () => {
    const info = { startedAt, callerUser: 'bob', callId: 'x' };
    mkdirSync(recordingPaths(dir, info).wav);
    expect(basename(recordingPaths(dir, info).wav)).toBe('20240229-030405_bob_x-2.wav');
  });

  it('gives up with FILE_EXISTS after the last suffix', () => {
    const info = { startedAt, callerUser: 'u', callId: 'full' };
    writeFileSync(join(dir, '20240229-030405_u_full.wav'), '');
    for (let n = 2; n <= MAX_COLLISION_SUFFIX; n++)
      writeFileSync(join(dir, `20240229-030405_u_full-${n}.json`), '');
    let thrown: unknown;
    try {
      recordingPaths(dir, info);
    } catch (err) {
      thrown = err;
    }
    expect(isSoftphoneError(thrown, ErrorCodes.FILE_EXISTS)).toBe(true);
  });
});
