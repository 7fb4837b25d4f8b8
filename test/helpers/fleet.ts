/** A `--devices` folder for the fleet tests: one sip-info.json per device, registering at a LocalPbx. */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { saveSipInfoFile } from '../../src/config/sip-info.js';
import type { LocalPbx } from '../../src/demo/local-pbx.js';
import { tempDir } from './dirs.js';

export interface FleetDeviceFile {
  /** The file's name in the folder (`one.json`). */
  file: string;
  deviceId: string;
  username: string;
  authorizationId: string;
  password: string;
}

/** `cwd/devices/<file>` for each device (TCP to `pbx`), in a fresh temporary `cwd` removed by `cleanups`. */
export async function devicesFolder(
  cleanups: (() => unknown)[],
  prefix: string,
  pbx: LocalPbx,
  devices: FleetDeviceFile[],
): Promise<{ cwd: string; dir: string }> {
  const cwd = tempDir(cleanups, prefix);
  const dir = path.join(cwd, 'devices');
  mkdirSync(dir);
  for (const { file, ...device } of devices) {
    await saveSipInfoFile(path.join(dir, file), {
      ...device,
      domain: pbx.domain,
      outboundProxy: pbx.address,
      transport: 'tcp',
    });
  }
  return { cwd, dir };
}
