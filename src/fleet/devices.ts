/**
 * The devices of a fleet (`listen --devices PATH`): a folder of SIP info
 * files (every `*.json` in it, as `provision` writes them or any shape a
 * single `--sip-info` takes), or one JSON file listing them:
 *
 *   { "devices": [
 *       { "file": "sales-1.json", "maxCalls": 4 },          // a path, relative to the list
 *       { "id": "queue", "sipInfo": { …RingCentral sipInfo… }, "instanceId": "urn:uuid:…" }
 *   ] }
 *
 * (a bare array works too). Every problem is found at once, before any
 * network I/O, each naming the file or entry, and the whole list is refused:
 * a fleet that silently runs without a device is worse than one that does
 * not start.
 *
 * A device's id (the `device` of its events, metrics and lease) is the
 * entry's `id`, else the SIP info's deviceId, else its username; ids are
 * unique. A device without an instance id gets one derived from its SIP
 * identity (never written back: the files may be read-only secrets, and
 * every host must derive the same one).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { deriveInstanceId, loadSipInfoFile, type SipInfo, sipInfoFromObject } from '../config/sip-info.js';
import { ErrorCodes, SoftphoneError } from '../errors.js';

export interface FleetDevice {
  readonly id: string;
  readonly sipInfo: SipInfo;
  readonly instanceId: string;
  /** Concurrent calls for this device; undefined: the fleet's --max-calls. */
  readonly maxCalls: number | undefined;
  /** Where it was defined, for messages: a file, or `list.json devices[3]`. */
  readonly source: string;
}

/** Ids go into Redis keys, NATS subjects and metric labels: a safe alphabet. */
export const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$/;
const MAX_LIST_BYTES = 16 * 1024 * 1024;
const MAX_CALLS_LIMIT = 10_000;

/**
 * Loads the devices at `target` (a folder or a list file). Throws
 * CONFIG_INVALID (or CONFIG_MISSING for a path that does not exist) with
 * `details.problems` listing every problem found.
 */
export async function loadFleetDevices(target: string): Promise<FleetDevice[]> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(target);
  } catch {
    throw new SoftphoneError(ErrorCodes.CONFIG_MISSING, `${target} does not exist`, {
      details: { path: target },
    });
  }
  const problems: string[] = [];
  const devices: FleetDevice[] = [];
  if (info.isDirectory()) {
    const names = (await readdir(target)).filter((n) => n.toLowerCase().endsWith('.json')).sort();
    if (names.length === 0) problems.push(`${target} holds no *.json SIP info files`);
    for (const name of names) {
      const file = path.join(target, name);
      await collect(devices, problems, file, async () => {
        const sipInfo = await loadSipInfoFile(file);
        return { sipInfo, extras: await readJson(file) };
      });
    }
  } else {
    const list = await readJson(target);
    const entries = Array.isArray(list) ? list : (list as { devices?: unknown } | null)?.devices;
    if (!Array.isArray(entries)) {
      problems.push(`${target} must be a JSON array of devices or an object with a "devices" array`);
    } else if (entries.length === 0) {
      problems.push(`${target} lists no devices`);
    } else {
      for (const [i, entry] of entries.entries()) {
        const where = `${target} devices[${i}]`;
        await collect(devices, problems, where, async () => {
          const file = (entry as { file?: unknown } | null)?.file;
          if (file !== undefined) {
            if (typeof file !== 'string' || file.trim() === '') throw new Error('"file" must be a path');
            const resolved = path.resolve(path.dirname(target), file);
            return { sipInfo: await loadSipInfoFile(resolved), extras: entry, source: resolved };
          }
          return { sipInfo: sipInfoFromObject(entry, where), extras: entry };
        });
      }
    }
  }
  const seen = new Map<string, string>();
  for (const d of devices) {
    const other = seen.get(d.id);
    if (other !== undefined)
      problems.push(`device id "${d.id}" is used twice (${other} and ${d.source}); give one an "id"`);
    else seen.set(d.id, d.source);
  }
  if (problems.length > 0) {
    throw new SoftphoneError(ErrorCodes.CONFIG_INVALID, `--devices ${target}: ${problems.join('; ')}`, {
      details: { option: 'devices', problems },
    });
  }
  return devices;
}

async function collect(
  devices: FleetDevice[],
  problems: string[],
  where: string,
  load: () => Promise<{ sipInfo: SipInfo; extras: unknown; source?: string }>,
): Promise<void> {
  try {
    const { sipInfo, extras, source } = await load();
    const e = (typeof extras === 'object' && extras !== null ? extras : {}) as Record<string, unknown>;
    const id = e.id ?? sipInfo.deviceId ?? sipInfo.username;
    if (typeof id !== 'string' || !DEVICE_ID.test(id)) {
      problems.push(
        `${where}: "id" must be 1-128 characters of A-Z a-z 0-9 . _ : @ + - (got ${JSON.stringify(id)})`,
      );
      return;
    }
    let maxCalls: number | undefined;
    if (e.maxCalls !== undefined) {
      if (
        !Number.isInteger(e.maxCalls) ||
        (e.maxCalls as number) < 1 ||
        (e.maxCalls as number) > MAX_CALLS_LIMIT
      ) {
        problems.push(`${where}: "maxCalls" must be an integer from 1 to ${MAX_CALLS_LIMIT}`);
        return;
      }
      maxCalls = e.maxCalls as number;
    }
    devices.push(
      Object.freeze({
        id,
        sipInfo,
        instanceId: sipInfo.instanceId ?? deriveInstanceId(sipInfo),
        maxCalls,
        source: source ?? where,
      }),
    );
  } catch (err) {
    // SoftphoneError messages from the SIP info loader name the file and field, never the password.
    problems.push(err instanceof SoftphoneError ? err.message : `${where}: ${(err as Error).message}`);
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    const info = await stat(file);
    if (info.size > MAX_LIST_BYTES) throw new Error(`it is larger than ${MAX_LIST_BYTES} bytes`);
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SoftphoneError(
      ErrorCodes.CONFIG_INVALID,
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch {
    // The parser's message can quote the text around the error: a password.
    throw new SoftphoneError(ErrorCodes.CONFIG_INVALID, `${file} is not valid JSON`);
  }
}
