/**
 * File names for call recordings:
 *   <dir>/<UTC yyyymmdd-hhmmss>_<caller user>_<call-id>[-N].wav  (+ the same name with .json)
 *
 * The caller user and Call-ID come from the remote party's SIP messages, so they
 * are untrusted: they are reduced to a safe character set and bounded in length,
 * and the final path is checked to sit directly inside `dir`.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { ErrorCodes, SoftphoneError } from '../errors.js';

export const MAX_CALLER_USER_CHARS = 64;
export const MAX_CALL_ID_CHARS = 80;
/** Same-second, same-ids collisions are rare; a hard cap keeps a broken dir from spinning forever. */
export const MAX_COLLISION_SUFFIX = 999;

const UNSAFE = /[^A-Za-z0-9._+-]/gu;

export interface RecordingInfo {
  startedAt: Date;
  callerUser: string | undefined;
  callId: string;
}

/**
 * Picks the first unused name (checking both the .wav and the .json). The check is
 * advisory: WavWriter.open creates exclusively, so a racing creator makes it throw
 * FILE_EXISTS rather than overwrite, and the caller may simply ask again.
 */
export function recordingPaths(dir: string, info: RecordingInfo): { wav: string; json: string } {
  const root = resolve(dir);
  const base = `${utcStamp(info.startedAt)}_${sanitizeNamePart(info.callerUser, MAX_CALLER_USER_CHARS)}_${sanitizeNamePart(info.callId, MAX_CALL_ID_CHARS)}`;
  for (let n = 1; n <= MAX_COLLISION_SUFFIX; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    const wav = insideDir(root, `${name}.wav`);
    const json = insideDir(root, `${name}.json`);
    if (!existsSync(wav) && !existsSync(json)) return { wav, json };
  }
  throw new SoftphoneError(ErrorCodes.FILE_EXISTS, `No free recording name for ${base} in ${root}`, {
    details: { dir: root, base },
  });
}

/**
 * Maps every code point outside [A-Za-z0-9._+-] to '_', truncates to `maxChars`,
 * and replaces empty or dot-only results (".", "..", "...") with "unknown".
 */
export function sanitizeNamePart(value: string | undefined, maxChars: number): string {
  if (value === undefined) return 'unknown';
  // Truncate first (by code point) so a huge header value costs nothing to process.
  const clipped = Array.from(value.slice(0, maxChars * 2))
    .slice(0, maxChars)
    .join('');
  const safe = clipped.replace(UNSAFE, '_');
  return /^\.*$/u.test(safe) ? 'unknown' : safe;
}

/** `yyyymmdd-hhmmss` in UTC. */
export function utcStamp(date: Date): string {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('recording start time is an invalid Date');
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError(`recording start year ${year} is outside 0000..9999`);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${p(year, 4)}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}-` +
    `${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}`
  );
}

function insideDir(root: string, name: string): string {
  const full = resolve(root, name);
  const rel = relative(root, full);
  // Sanitising already guarantees this; assert it anyway, it is the whole point of the module.
  if (rel !== name || rel.includes(sep) || isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) {
    throw new Error(`internal: recording name ${JSON.stringify(name)} escapes ${root}`);
  }
  return full;
}
