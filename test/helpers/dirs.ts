/** Temporary directories for tests, removed by `cleanups`. */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDir(cleanups: (() => unknown)[], prefix = 'rcsp-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A directory this process cannot create files in: mode 0555, or, for root
 * (whom modes do not stop), sysfs, where nobody can (EACCES, or EROFS where
 * /sys is mounted read-only as in containers).
 */
export function unwritableDir(cleanups: (() => unknown)[]): string {
  if (process.getuid?.() === 0) return '/sys/kernel';
  const dir = tempDir(cleanups, 'rcsp-ro-');
  chmodSync(dir, 0o555);
  cleanups.push(() => chmodSync(dir, 0o755));
  return dir;
}

/** The reason an unwritable directory from `unwritableDir` gets. */
export const UNWRITABLE_REASON = /not writable \((EACCES|EPERM)\)|read-only filesystem/;
