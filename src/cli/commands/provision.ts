/** `rc-softphone provision`: JWT → sip-provision → sip-info.json (0600), token revoked. */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { redactSipInfo, ringCentralCredentialsFromEnv, saveSipInfoFile } from '../../config/sip-info.js';
import { describeError, isSoftphoneError } from '../../errors.js';
import { provisionDevices, provisionFromEnv } from '../../rest/provision.js';
import {
  addDotenvOption,
  addOutputOptions,
  createLogger,
  ExitCode,
  intOption,
  loadEnv,
  type OutputOptions,
  UsageError,
} from '../common.js';

interface ProvisionFlags extends OutputOptions {
  transport: string;
  out: string;
  force?: boolean;
  computerName?: string;
  dotenv?: string;
  count?: number;
  outDir: string;
}

const EXAMPLES = `
Needs RINGCENTRAL_CLIENT_ID, RINGCENTRAL_CLIENT_SECRET and RINGCENTRAL_JWT_TOKEN
(environment or .env); RINGCENTRAL_SERVER_URL defaults to https://platform.ringcentral.com.

Examples:
  $ rc-softphone provision                      # writes ./sip-info.json
  $ rc-softphone provision --transport tls --out ~/.config/rc-softphone/sip-info.json
  $ rc-softphone provision --force              # replace an existing file (keeps the instance id)
  $ rc-softphone provision --count 20 --out-dir ./devices   # 20 devices for listen --devices ./devices`;

export function provisionCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('provision')
    .description(
      'Create SIP credentials for a RingCentral device via the REST API and save them to sip-info.json.',
    )
    .option('--transport <tcp|tls>', 'SIP transport to provision', 'tcp')
    .option('--out <path>', 'where to save the credentials (mode 0600)', 'sip-info.json')
    .option('--force', 'overwrite an existing file')
    .option('--computer-name <name>', 'device name shown in RingCentral (default: this host name)')
    .option(
      '--count <n>',
      'provision this many devices (one token; 429 rate limits are waited out), one file each in --out-dir',
      intOption('--count', 1, 1000),
    )
    .option(
      '--out-dir <dir>',
      'with --count: the folder for the files (<device id>.json, mode 0600)',
      'devices',
    )
    .addHelpText('after', EXAMPLES)
    .exitOverride();
  addDotenvOption(command);
  addOutputOptions(command);
  command.action(async (flags: ProvisionFlags) => {
    setExitCode(await provision(flags));
  });
  return command;
}

async function provision(flags: ProvisionFlags): Promise<number> {
  const transport = flags.transport.toLowerCase();
  if (transport !== 'tcp' && transport !== 'tls') {
    throw new UsageError(
      `--transport must be tcp or tls, got "${flags.transport}" (example: --transport tls)`,
    );
  }
  const env = loadEnv(flags.dotenv);
  const log = createLogger(flags, [env.RINGCENTRAL_CLIENT_SECRET, env.RINGCENTRAL_JWT_TOKEN]);
  if (flags.count !== undefined) return provisionMany(flags, transport, env, log);
  const out = path.resolve(flags.out);
  // Everything checkable is checked before the network is touched.
  if (existsSync(out) && !flags.force) {
    throw new UsageError(`${flags.out} already exists; not overwriting it (pass --force to replace it)`);
  }
  const creds = ringCentralCredentialsFromEnv(env);
  if (!creds.ok) {
    throw new UsageError(
      `RingCentral provisioning needs these variables:\n${creds.problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  try {
    const result = await provisionFromEnv(env, {
      transport,
      computerName: flags.computerName ?? os.hostname(),
    });
    for (const w of result.warnings) log.warn('provisioning.warning', { message: w }, w);
    const saved = await saveSipInfoFile(out, result.sipInfo, { force: flags.force ?? false });
    const shown = redactSipInfo(saved);
    log.info(
      'provisioned',
      { path: out, ...shown },
      [
        `saved SIP credentials to ${out} (mode 0600)`,
        `  username ${shown.username}, authorization id ${shown.authorizationId}, domain ${shown.domain}`,
        `  outbound proxy ${shown.outboundProxy}${shown.outboundProxyBackup ? ` (backup ${shown.outboundProxyBackup})` : ''} over ${shown.transport}`,
        `  device ${shown.deviceId ?? '?'}, instance ${shown.instanceId ?? '?'}`,
        `next: rc-softphone listen --sip-info ${flags.out}`,
      ].join('\n'),
    );
    return ExitCode.OK;
  } catch (err) {
    if (isSoftphoneError(err) && err.code === 'FILE_EXISTS') throw new UsageError(err.message);
    log.error(
      'provision.failed',
      { code: isSoftphoneError(err) ? err.code : 'ERROR', message: describeError(err) },
      `provisioning failed: ${describeError(err)}`,
    );
    return ExitCode.FAILURE;
  }
}

/** `provision --count N`: N devices with one token, each saved as soon as it exists. */
async function provisionMany(
  flags: ProvisionFlags,
  transport: 'tcp' | 'tls',
  env: NodeJS.ProcessEnv,
  log: ReturnType<typeof createLogger>,
): Promise<number> {
  const count = flags.count as number;
  if (flags.out !== 'sip-info.json') {
    throw new UsageError(
      '--out names one file; with --count give a folder with --out-dir (example: --count 5 --out-dir ./devices)',
    );
  }
  const dir = path.resolve(flags.outDir);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new UsageError(
      `--out-dir ${flags.outDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (example: --out-dir ./devices)`,
    );
  }
  const creds = ringCentralCredentialsFromEnv(env);
  if (!creds.ok) {
    throw new UsageError(
      `RingCentral provisioning needs these variables:\n${creds.problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  const base = flags.computerName ?? os.hostname();
  const saved: string[] = [];
  try {
    const { warnings } = await provisionDevices({
      ...creds.credentials,
      transport,
      count,
      computerName: (i) => (count === 1 ? base : `${base}-${i}`),
      onRateLimited: (r) =>
        log.warn(
          'provision.rate_limited',
          { stage: r.stage, index: r.index, waitMs: r.waitMs, attempt: r.attempt },
          `RingCentral rate limit reached; waiting ${Math.ceil(r.waitMs / 1000)} s before retrying (attempt ${r.attempt})`,
        ),
      onDevice: async (result, index) => {
        const file = path.join(dir, `${result.deviceId}.json`);
        const written = await saveSipInfoFile(file, result.sipInfo, { force: flags.force ?? false });
        saved.push(file);
        const shown = redactSipInfo(written);
        log.info(
          'provisioned',
          { path: file, index, count, ...shown },
          `[${index}/${count}] saved device ${shown.deviceId ?? '?'} (${shown.username}) to ${file}`,
        );
      },
    });
    for (const w of warnings) log.warn('provisioning.warning', { message: w }, w);
    log.info(
      'provision.summary',
      { count, saved: saved.length, dir },
      `provisioned ${saved.length} devices into ${dir}\nnext: rc-softphone listen --devices ${flags.outDir}`,
    );
    return ExitCode.OK;
  } catch (err) {
    log.error(
      'provision.failed',
      { code: isSoftphoneError(err) ? err.code : 'ERROR', message: describeError(err), saved: saved.length },
      `provisioning failed after ${saved.length} of ${count} devices: ${describeError(err)}`,
    );
    return ExitCode.FAILURE;
  }
}
