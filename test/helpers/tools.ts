/**
 * External programs the interop tests drive (Debian packages; CI installs them).
 *
 * In CI (env CI set to anything but "", "0" or "false") a missing tool is a
 * test failure, so a broken CI image can't turn the interop suite green by
 * skipping it. Locally the suite is skipped with the reason printed.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';

export type Tool =
  | 'kamailio'
  | 'kamcmd'
  /** Not a program: Kamailio's tls.so module, looked up in Kamailio's module path. */
  | 'kamailio-tls'
  | 'sipp'
  | 'sox'
  | 'tshark'
  | 'baresip'
  | 'linphonec'
  | 'pocketsphinx_continuous'
  /** Not a program: libsrtp's Python binding; its path is a python3 that imports it. */
  | 'pylibsrtp'
  | 'redis-server'
  | 'nats-server'
  /** Not a program: PyYAML for the system python3 (reads the deployment examples' YAML). */
  | 'pyyaml'
  | 'systemd-analyze';

/** Env var that may point at a tool's binary, e.g. KAMAILIO_BIN=/opt/kamailio/sbin/kamailio. */
const ENV_OVERRIDE: Record<Tool, string> = {
  kamailio: 'KAMAILIO_BIN',
  kamcmd: 'KAMCMD_BIN',
  'kamailio-tls': 'KAMAILIO_TLS_MODULE',
  sipp: 'SIPP_BIN',
  sox: 'SOX_BIN',
  tshark: 'TSHARK_BIN',
  baresip: 'BARESIP_BIN',
  linphonec: 'LINPHONEC_BIN',
  pocketsphinx_continuous: 'POCKETSPHINX_BIN',
  pylibsrtp: 'PYLIBSRTP_PYTHON',
  'redis-server': 'REDIS_SERVER_BIN',
  'nats-server': 'NATS_SERVER_BIN',
  pyyaml: 'PYYAML_PYTHON',
  'systemd-analyze': 'SYSTEMD_ANALYZE_BIN',
};

/** Which Debian package provides a tool, for the skip/fail message. */
const PACKAGE: Record<Tool, string> = {
  kamailio: 'kamailio',
  kamcmd: 'kamailio',
  'kamailio-tls': 'kamailio-tls-modules',
  sipp: 'sip-tester',
  sox: 'sox',
  tshark: 'tshark',
  baresip: 'baresip',
  linphonec: 'linphone-cli',
  pocketsphinx_continuous: 'pocketsphinx',
  pylibsrtp: 'python3-pylibsrtp',
  'redis-server': 'redis-server',
  'nats-server': 'nats-server',
  pyyaml: 'python3-yaml',
  'systemd-analyze': 'systemd',
};

// Kamailio lives in /usr/sbin, which a non-root PATH often lacks.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export function isCI(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

export type ToolCheck = { ok: true; path: string } | { ok: false; reason: string };

const cache = new Map<Tool, ToolCheck>();

/** Finds a tool's binary (env override, then PATH, then the sbin directories). */
export function checkTool(tool: Tool): ToolCheck {
  const cached = cache.get(tool);
  if (cached !== undefined) return cached;
  let result: ToolCheck;
  const override = process.env[ENV_OVERRIDE[tool]];
  if (tool === 'kamailio-tls') {
    result = checkKamailioModule('tls.so', override);
  } else if (tool === 'pylibsrtp') {
    result = checkPythonModule('pylibsrtp', override);
  } else if (tool === 'pyyaml') {
    result = checkPythonModule('yaml', override, 'pyyaml');
  } else if (override !== undefined && override !== '') {
    result = isExecutableFile(override)
      ? { ok: true, path: override }
      : { ok: false, reason: `${ENV_OVERRIDE[tool]}=${override} is not an executable file` };
  } else {
    const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
    const found = dirs.map((dir) => path.join(dir, tool)).find(isExecutableFile);
    result =
      found !== undefined
        ? { ok: true, path: found }
        : {
            ok: false,
            reason: `${tool} not found in PATH or ${EXTRA_DIRS.join(', ')} (install the Debian package "${PACKAGE[tool]}" or set ${ENV_OVERRIDE[tool]})`,
          };
  }
  cache.set(tool, result);
  return result;
}

/** A Kamailio module file: the override path, else in the module path `kamailio -I` reports. */
function checkKamailioModule(file: string, override: string | undefined): ToolCheck {
  const tool = 'kamailio-tls';
  if (override !== undefined && override !== '') {
    return existsSync(override)
      ? { ok: true, path: override }
      : { ok: false, reason: `${ENV_OVERRIDE[tool]}=${override} does not exist` };
  }
  const kamailio = checkTool('kamailio');
  if (!kamailio.ok) return kamailio;
  let dirs: string[] = [];
  try {
    const info = execFileSync(kamailio.path, ['-I'], { encoding: 'utf8', timeout: 10_000 });
    const line = /Default paths to modules:\s*(.+)/.exec(info)?.[1] ?? '';
    dirs = line.split(/[:\s]+/).filter(Boolean);
  } catch {
    // fall through: reported as not found
  }
  const found = dirs.map((dir) => path.join(dir, file)).find((candidate) => existsSync(candidate));
  return found !== undefined
    ? { ok: true, path: found }
    : {
        ok: false,
        reason: `Kamailio module ${file} not found in ${dirs.join(', ') || "kamailio's module path"} (install the Debian package "${PACKAGE[tool]}" or set ${ENV_OVERRIDE[tool]})`,
      };
}

/**
 * A Python module Debian packages for /usr/bin/python3 (the system Python,
 * where apt installs python3-* modules; a virtualenv's python3 on PATH may
 * lack them), or for the interpreter the override names.
 */
function checkPythonModule(
  module: string,
  override: string | undefined,
  tool: 'pylibsrtp' | 'pyyaml' = 'pylibsrtp',
): ToolCheck {
  const python = override !== undefined && override !== '' ? override : '/usr/bin/python3';
  if (!isExecutableFile(python)) {
    return {
      ok: false,
      reason: `${python} is not an executable file (install the Debian package "${PACKAGE[tool]}" or set ${ENV_OVERRIDE[tool]})`,
    };
  }
  try {
    execFileSync(python, ['-c', `import ${module}`], { stdio: 'ignore', timeout: 10_000 });
    return { ok: true, path: python };
  } catch {
    return {
      ok: false,
      reason: `${python} cannot import ${module} (install the Debian package "${PACKAGE[tool]}" or set ${ENV_OVERRIDE[tool]} to a python3 that has it)`,
    };
  }
}

/** The tool's path; throws (naming the package) if it is missing. */
export function toolPath(tool: Tool): string {
  const check = checkTool(tool);
  if (!check.ok) throw new Error(check.reason);
  return check.path;
}

/** ok, or the reasons the first missing tools are missing. */
export function checkTools(tools: readonly Tool[]): { ok: true } | { ok: false; reason: string } {
  const missing = tools.map(checkTool).filter((check): check is { ok: false; reason: string } => !check.ok);
  if (missing.length === 0) return { ok: true };
  return { ok: false, reason: missing.map((check) => check.reason).join('; ') };
}

/**
 * `describe` for tests that need external tools: runs `fn` when all `tools`
 * exist; otherwise fails in CI and skips (printing why) locally.
 */
export function describeInterop(title: string, tools: readonly Tool[], fn: () => void): void {
  const check = checkTools(tools);
  if (check.ok) {
    describe(title, fn);
    return;
  }
  if (isCI()) {
    describe(title, () => {
      it(`has the tools it needs (${tools.join(', ')})`, () => {
        throw new Error(`interop test cannot run in CI: ${check.reason}`);
      });
    });
    return;
  }
  console.warn(`[interop] skipping "${title}": ${check.reason}`);
  describe.skip(title, fn);
}
