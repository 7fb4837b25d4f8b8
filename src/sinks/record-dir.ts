/**
 * The recording directory is checked once, at start and before any network
 * I/O: a bot that registers and answers calls it cannot record is worse than
 * one that refuses to start. The CLI (`--record-dir`) and the library
 * (`Softphone.start()`) both call `prepareRecordDir`.
 *
 * Checking means doing what a recording will do: create the directory if it
 * is missing, then create, write and remove a file in it. Permission bits
 * alone would miss a read-only mount, ACLs and a full disk.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { WAV_HEADER_BYTES } from './wav.js';

export interface RecordDirProblem {
  /** Why the directory cannot take recordings, e.g. "is a file", "not writable (EACCES)". */
  reason: string;
  /** The errno code behind it, when there is one. */
  errno?: string;
  cause?: unknown;
}

/**
 * Creates `dir` (and its parents) if missing and proves a recording can be
 * written there. Returns undefined when it can, else what is wrong.
 */
export function prepareRecordDir(dir: string): RecordDirProblem | undefined {
  if (dir.trim() === '') return { reason: 'is empty' };
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const errno = codeOf(err);
    // mkdir -p on an existing non-directory fails with EEXIST.
    if (errno === 'EEXIST') return notADirectory(dir) ?? problem(err, 'create');
    return problem(err, 'create');
  }
  const notDir = notADirectory(dir);
  if (notDir) return notDir;
  // A unique name: two bots (or two tests) may check the same directory at once.
  const probe = path.join(dir, `.rc-softphone-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd: number | undefined;
  try {
    fd = openSync(probe, 'wx', 0o600);
    // Written, not just created: a full disk still lets a file be created.
    writeSync(fd, Buffer.alloc(WAV_HEADER_BYTES));
  } catch (err) {
    return problem(err, 'write');
  } finally {
    if (fd !== undefined) {
      closeSync(fd);
      try {
        unlinkSync(probe);
      } catch {
        // Created but not removable (sticky dir owned by someone else): harmless, recordings only add files.
      }
    }
  }
  return undefined;
}

/** What an errno means for a recording directory, in words a user acts on. Pure. */
export function describeDirErrno(errno: string | undefined, action: 'create' | 'write'): string {
  switch (errno) {
    case 'EACCES':
    case 'EPERM':
      return action === 'create' ? `cannot be created (${errno})` : `not writable (${errno})`;
    case 'EROFS':
      return 'read-only filesystem';
    case 'ENOSPC':
      return 'no space left on the device (ENOSPC)';
    case 'EDQUOT':
      return 'disk quota exceeded (EDQUOT)';
    case 'ENOTDIR':
      return 'a parent is not a directory (ENOTDIR)';
    case 'ENAMETOOLONG':
      return 'path too long (ENAMETOOLONG)';
    case 'ELOOP':
      return 'too many symbolic links (ELOOP)';
    case undefined:
      return action === 'create' ? 'cannot be created' : 'not writable';
    default:
      return action === 'create' ? `cannot be created (${errno})` : `not writable (${errno})`;
  }
}

function notADirectory(dir: string): RecordDirProblem | undefined {
  try {
    const stat = statSync(dir);
    if (stat.isDirectory()) return undefined;
    return { reason: stat.isFile() ? 'is a file' : 'is not a directory', errno: 'ENOTDIR' };
  } catch (err) {
    return problem(err, 'create');
  }
}

function problem(err: unknown, action: 'create' | 'write'): RecordDirProblem {
  const errno = codeOf(err);
  return { reason: describeDirErrno(errno, action), ...(errno !== undefined && { errno }), cause: err };
}

function codeOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
