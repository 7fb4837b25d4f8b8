/** Spawns the built CLI (bin/rc-softphone.js) as a user would, with a clean SIP_INFO_/RINGCENTRAL_ environment. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from './paths.js';

export const BIN = path.join(projectRoot, 'bin', 'rc-softphone.js');

export interface CliRun {
  child: ChildProcess;
  cwd: string;
  stdout: () => string;
  stderr: () => string;
  /** stdout lines that are JSON objects (--log-format json). */
  events: () => Record<string, unknown>[];
  exit: Promise<number | null>;
}

/** Runs the CLI; `cleanups` gets a kill (and the temp cwd's removal when none was given). */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; cleanups: (() => unknown)[] },
): CliRun {
  const cwd = options.cwd ?? mkdtempSync(path.join(os.tmpdir(), 'rcsp-cli-'));
  if (!options.cwd) options.cleanups.push(() => rmSync(cwd, { recursive: true, force: true }));
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(SIP_INFO_|RINGCENTRAL_)/.test(k)) clean[k] = v;
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...clean, ...options.env } });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const exit = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  options.cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    cwd,
    stdout: () => out,
    stderr: () => err,
    events: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exit,
  };
}
