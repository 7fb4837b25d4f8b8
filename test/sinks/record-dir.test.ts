import { readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { describeDirErrno, prepareRecordDir } from '../../src/sinks/record-dir.js';
import { tempDir, UNWRITABLE_REASON, unwritableDir } from '../helpers/dirs.js';

const cleanups: (() => unknown)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

describe('prepareRecordDir', () => {
  it('creates a missing directory (and its parents) and leaves nothing behind in it', () => {
    const dir = path.join(tempDir(cleanups), 'a', 'b');
    expect(prepareRecordDir(dir)).toBeUndefined();
    expect(statSync(dir).isDirectory()).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('takes an existing writable directory as it is', () => {
    const dir = tempDir(cleanups);
    writeFileSync(path.join(dir, 'old.wav'), '');
    expect(prepareRecordDir(dir)).toBeUndefined();
    expect(readdirSync(dir)).toEqual(['old.wav']);
  });

  it('a file: "is a file"; a file on the way: ENOTDIR', () => {
    const file = path.join(tempDir(cleanups), 'recordings');
    writeFileSync(file, 'not a directory');
    expect(prepareRecordDir(file)).toMatchObject({ reason: 'is a file' });
    expect(prepareRecordDir(path.join(file, 'sub'))).toMatchObject({
      reason: 'a parent is not a directory (ENOTDIR)',
      errno: 'ENOTDIR',
    });
  });

  it('a directory it cannot write to, or create a directory in', () => {
    const dir = unwritableDir(cleanups);
    expect(prepareRecordDir(dir)?.reason).toMatch(UNWRITABLE_REASON);
    expect(prepareRecordDir(path.join(dir, 'calls'))?.reason).toMatch(
      /cannot be created \((EACCES|EPERM)\)|read-only filesystem/,
    );
  });

  it('an empty path', () => {
    expect(prepareRecordDir('')).toMatchObject({ reason: 'is empty' });
  });
});

describe('describeDirErrno', () => {
  it.each([
    ['EACCES', 'write', 'not writable (EACCES)'],
    ['EPERM', 'write', 'not writable (EPERM)'],
    ['EACCES', 'create', 'cannot be created (EACCES)'],
    ['EROFS', 'write', 'read-only filesystem'],
    ['EROFS', 'create', 'read-only filesystem'],
    ['ENOSPC', 'write', 'no space left on the device (ENOSPC)'],
    ['EDQUOT', 'write', 'disk quota exceeded (EDQUOT)'],
    ['EIO', 'write', 'not writable (EIO)'],
    [undefined, 'create', 'cannot be created'],
  ] as const)('%s while trying to %s: %s', (errno, action, reason) => {
    expect(describeDirErrno(errno, action)).toBe(reason);
  });
});
