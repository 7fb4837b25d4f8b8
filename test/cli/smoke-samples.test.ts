/**
 * The CI samples of `smoke`: samples/ci-smoke-test.sh runs as the README says
 * (rc-softphone on PATH, the two files, artifacts in $SMOKE_OUT) and exits
 * with smoke's status; the GitHub workflow only uses flags `smoke` has.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { saveSipInfoFile } from '../../src/config/sip-info.js';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { BIN } from '../helpers/cli.js';
import { tempDir } from '../helpers/dirs.js';
import { projectRoot } from '../helpers/paths.js';
import { freeUdpPortRange } from '../helpers/ports.js';
import { findAll, parseXml } from '../helpers/xml.js';

const SCRIPT = path.join(projectRoot, 'samples', 'ci-smoke-test.sh');
const WORKFLOW = path.join(projectRoot, 'samples', 'github-smoke-test.yml');
const A = { username: '16505550601', authorizationId: '9601', password: 'Sample-Caller-Secret' };
const B = { username: '16505550602', authorizationId: '9602', password: 'Sample-Callee-Secret' };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The flags given to `rc-softphone smoke` in a sample's text. */
function smokeFlags(text: string): string[] {
  // The command itself (comments mention it too): the line that goes on with a backslash.
  const at = text.search(/rc-softphone(\.js)? smoke \\$/m);
  expect(at).toBeGreaterThanOrEqual(0);
  // The command runs to the first line that does not end with a backslash.
  const lines = text.slice(at).split('\n');
  const command: string[] = [];
  for (const line of lines) {
    command.push(line);
    if (!line.trimEnd().endsWith('\\')) break;
  }
  return [...new Set(command.join(' ').match(/--[a-z][a-z-]*/g) ?? [])];
}

describe('smoke samples', () => {
  it('ci-smoke-test.sh runs smoke with the two files and leaves JUnit, report and recordings in $SMOKE_OUT', {
    timeout: 60_000,
  }, async () => {
    const pbx = await LocalPbx.listen({ users: [A, B] });
    cleanups.push(() => pbx.close());
    const cwd = tempDir(cleanups, 'rcsp-smoke-sample-');
    for (const [file, user] of [
      ['A.json', A],
      ['B.json', B],
    ] as const) {
      await saveSipInfoFile(path.join(cwd, file), {
        ...user,
        domain: pbx.domain,
        outboundProxy: pbx.address,
        transport: 'tcp',
      });
    }
    // rc-softphone on PATH, as after `npm install -g` / `npm link`.
    const bin = path.join(cwd, 'bin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'rc-softphone'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
    chmodSync(path.join(bin, 'rc-softphone'), 0o755);
    const rtp = await freeUdpPortRange(8);
    const child = spawn('sh', [SCRIPT], {
      cwd,
      env: {
        PATH: `${bin}:${process.env.PATH}`,
        CALLER_SIP_INFO: 'A.json',
        CALLEE_SIP_INFO: 'B.json',
        SMOKE_OUT: 'artifacts',
        // Limits that tolerate a loaded machine (see test/cli/smoke.test.ts).
        SMOKE_ARGS: `--media-ip 127.0.0.1 --rtp-ports ${rtp}-${rtp + 7} --max-loss-percent 5 --tone-tolerance-ms 100 --max-jitter-ms 100`,
      },
    });
    cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, out).toBe(0);
    expect(out).toContain('PASS: 18 checks passed');
    const junit = parseXml(readFileSync(path.join(cwd, 'artifacts', 'junit.xml'), 'utf8'));
    expect(findAll(junit, 'testcase')).toHaveLength(18);
    expect(existsSync(path.join(cwd, 'artifacts', 'report', 'index.html'))).toBe(true);
    expect(existsSync(path.join(cwd, 'artifacts', 'recordings', 'caller.wav'))).toBe(true);
    expect(existsSync(path.join(cwd, 'artifacts', 'recordings', 'callee.wav'))).toBe(true);
  });

  it('the script is valid sh, and both samples use only flags smoke has', () => {
    execFileSync('sh', ['-n', SCRIPT]);
    const help = execFileSync(process.execPath, [BIN, 'smoke', '--help'], { encoding: 'utf8' });
    const known = new Set(help.match(/--[a-z][a-z-]*/g));
    for (const sample of [SCRIPT, WORKFLOW]) {
      const flags = smokeFlags(readFileSync(sample, 'utf8'));
      expect(flags).toEqual(
        expect.arrayContaining([
          '--caller',
          '--callee',
          '--target',
          '--timeout',
          '--junit',
          '--report',
          '--keep-recordings',
        ]),
      );
      for (const flag of flags) expect(known, `${path.basename(sample)} uses ${flag}`).toContain(flag);
    }
  });
});
