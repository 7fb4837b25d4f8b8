/**
 * The device's RFC 5626 instance id must survive restarts: a fresh
 * `+sip.instance` per run makes the registrar add a binding each time, and
 * RingCentral answers 603 Too Many Contacts. Credentials from a file keep it
 * in that file; credentials from the environment keep it in a small state
 * file per user@domain.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const UUID_URN = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isInstanceId(value: unknown): value is string {
  return typeof value === 'string' && UUID_URN.test(value);
}

export function newInstanceId(): string {
  return `urn:uuid:${randomUUID()}`;
}

/** `$RC_SOFTPHONE_STATE_DIR`, else `$XDG_STATE_HOME/rc-softphone`, else `~/.local/state/rc-softphone`. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RC_SOFTPHONE_STATE_DIR) return env.RC_SOFTPHONE_STATE_DIR;
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'rc-softphone');
}

/** Reads (or creates and saves) the instance id for `username@domain` in `stateDir`. */
export function stateInstanceId(stateDir: string, username: string, domain: string): string {
  const safe = `${username}@${domain}`.replace(/[^A-Za-z0-9@._-]/g, '_');
  const file = path.join(stateDir, `instance-${safe}.json`);
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { instanceId?: unknown };
    if (isInstanceId(saved.instanceId)) return saved.instanceId;
  } catch {
    // absent or unreadable: make a new one below
  }
  const instanceId = newInstanceId();
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ username, domain, instanceId }, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return instanceId;
}
