/**
 * The deployment examples, tried as far as this machine can without a
 * container runtime or a cluster: the command each one runs (Dockerfile CMD,
 * the compose service's command, the Kubernetes container's args, the
 * systemd unit's ExecStart) is run here with the real CLI, its paths mapped
 * to temp dirs and its Redis to a redis-server started by the suite, against
 * the local PBX: it registers the device, serves /readyz, and stops cleanly
 * on SIGTERM. The Dockerfile's structure (Node 20 slim, non-root user, files
 * it copies exist), the YAML (parsed by PyYAML) and the unit (systemd-analyze
 * verify) are checked too. Building the image and applying the manifests need
 * the network and a cluster: the README gives those commands.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { saveSipInfoFile } from '../../src/config/sip-info.js';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { type Broker, startRedis } from '../helpers/brokers.js';
import { BIN, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/dirs.js';
import { projectRoot } from '../helpers/paths.js';
import { freePort, freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { describeInterop, toolPath } from '../helpers/tools.js';

const DOCKERFILE = path.join(projectRoot, 'Dockerfile');
const COMPOSE = path.join(projectRoot, 'deploy', 'compose.yaml');
const K8S = path.join(projectRoot, 'deploy', 'kubernetes', 'rc-softphone.yaml');
const UNIT = path.join(projectRoot, 'deploy', 'systemd', 'rc-softphone@.service');
const UNIT_ENV = path.join(projectRoot, 'deploy', 'systemd', 'rc-softphone.env');

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const USER = { username: '16505550901', authorizationId: '9901', password: 'Deploy-Secret-901' };

function yamlDocuments(file: string): unknown[] {
  const json = execFileSync(
    toolPath('pyyaml'),
    ['-c', 'import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))', file],
    { encoding: 'utf8' },
  );
  return JSON.parse(json) as unknown[];
}

/** Dockerfile instructions (continuations joined, comments dropped). */
function dockerInstructions(): { op: string; args: string }[] {
  const text = readFileSync(DOCKERFILE, 'utf8').replace(/\\\n/g, ' ');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: (op as string).toUpperCase(), args: rest.join(' ') };
    });
}

interface Setup {
  pbx: LocalPbx;
  redis: Broker;
  dir: string;
  devices: string;
  recordings: string;
}

async function setup(): Promise<Setup> {
  const pbx = await LocalPbx.listen({ users: [USER] });
  cleanups.push(() => pbx.close());
  const redis = await startRedis();
  cleanups.push(() => redis.close());
  const dir = tempDir(cleanups, 'rcsp-deploy-');
  const devices = path.join(dir, 'devices');
  const recordings = path.join(dir, 'recordings');
  mkdirSync(devices);
  mkdirSync(recordings);
  await saveSipInfoFile(path.join(devices, 'one.json'), {
    ...USER,
    domain: pbx.domain,
    outboundProxy: pbx.address,
    transport: 'tcp',
    deviceId: 'deploy-1',
  });
  return { pbx, redis, dir, devices, recordings };
}

/**
 * Runs a deployment's `listen` arguments here: container paths to temp dirs,
 * redis://redis:6379 (and 127.0.0.1:6379) to the suite's Redis, the metrics
 * port and RTP range to free ones. Checks it registers, is ready, and exits
 * 0 on SIGTERM.
 */
async function runDeploymentArgs(s: Setup, args: string[], paths: Record<string, string>): Promise<void> {
  const httpPort = await freePort('tcp');
  const rtp = await freeUdpPortRange(8);
  let sawHttp = false;
  const mapped = args.map((a, i) => {
    for (const [from, to] of Object.entries(paths)) if (a === from) return to;
    if (/^redis:\/\/(redis|127\.0\.0\.1):6379$/.test(a)) return s.redis.url;
    if (args[i - 1] === '--http') {
      sawHttp = true;
      return `127.0.0.1:${httpPort}`;
    }
    if (args[i - 1] === '--rtp-ports') return `${rtp}-${rtp + 7}`;
    return a;
  });
  expect(mapped[0]).toBe('listen');
  if (!mapped.includes('--rtp-ports')) mapped.push('--rtp-ports', `${rtp}-${rtp + 7}`);
  if (!mapped.includes('--log-format')) mapped.push('--log-format', 'json');
  const r = runCli([...mapped, '--media-ip', '127.0.0.1'], { cwd: s.dir, cleanups });
  await waitFor(() => r.events().some((e) => e.event === 'registered' && e.device === 'deploy-1'), {
    timeoutMs: 20_000,
    message: `registered with: ${mapped.join(' ')}\n${r.stderr()}`,
  });
  if (sawHttp) {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200, {
      timeoutMs: 10_000,
    });
    expect(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).toContain(
      'rc_softphone_device_registered{device="deploy-1"} 1',
    );
  }
  r.child.kill('SIGTERM');
  expect(await r.exit).toBe(0);
  expect(r.events().some((e) => e.event === 'unregistered')).toBe(true);
  expect(r.stdout() + r.stderr()).not.toContain(USER.password);
}

describe('Dockerfile', () => {
  it('builds on Node 20 slim, runs as the non-root node user, copies only what exists', () => {
    const ins = dockerInstructions();
    const froms = ins.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0]);
    expect(froms.length).toBeGreaterThanOrEqual(1);
    for (const f of froms) expect(f).toBe('node:20-slim');
    const lastFrom = ins.map((i) => i.op).lastIndexOf('FROM');
    const final = ins.slice(lastFrom);
    const user = final.filter((i) => i.op === 'USER').map((i) => i.args);
    expect(user).toEqual(['node']);
    expect(final.findIndex((i) => i.op === 'USER')).toBeLessThan(
      final.findIndex((i) => i.op === 'ENTRYPOINT'),
    );
    for (const copy of ins.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const src of sources) expect(existsSync(path.join(projectRoot, src)), src).toBe(true);
    }
    const entry = JSON.parse(ins.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
    expect(entry).toContain('/app/bin/rc-softphone.js');
    expect(existsSync(BIN)).toBe(true);
    // The Debian tools it installs are named, with no recommends and the lists removed.
    const apt = ins.find((i) => i.op === 'RUN' && i.args.includes('apt-get install'))!.args;
    expect(apt).toContain('--no-install-recommends');
    expect(apt).toMatch(/tini/);
    expect(apt).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
  });
});

describeInterop('deployment commands run the real CLI', ['redis-server', 'pyyaml'], () => {
  it("the Dockerfile's CMD", { timeout: 60_000 }, async () => {
    const s = await setup();
    const cmd = JSON.parse(dockerInstructions().find((i) => i.op === 'CMD')!.args) as string[];
    await runDeploymentArgs(s, cmd, { '/devices': s.devices, '/recordings': s.recordings });
  });

  it("the compose file's rc-softphone service (with Redis for events and leases)", {
    timeout: 60_000,
  }, async () => {
    const s = await setup();
    const [compose] = yamlDocuments(COMPOSE) as {
      services: Record<string, { command: string[]; build?: { context: string; dockerfile: string } }>;
    }[];
    expect(Object.keys(compose!.services).sort()).toEqual(['rc-softphone', 'redis']);
    const svc = compose!.services['rc-softphone']!;
    expect(existsSync(path.join(path.dirname(COMPOSE), svc.build!.context, svc.build!.dockerfile))).toBe(
      true,
    );
    expect(svc.command).toContain('--coordinate');
    await runDeploymentArgs(s, svc.command, { '/devices': s.devices, '/recordings': s.recordings });
  });

  it('the Kubernetes container args, probes on /healthz and /readyz', { timeout: 60_000 }, async () => {
    const s = await setup();
    const docs = yamlDocuments(K8S) as { kind: string; spec: Record<string, unknown> }[];
    const deployment = docs.find((d) => d.kind === 'Deployment') as unknown as {
      spec: {
        replicas: number;
        template: {
          spec: {
            securityContext: { runAsNonRoot: boolean };
            containers: {
              args: string[];
              livenessProbe: { httpGet: { path: string } };
              readinessProbe: { httpGet: { path: string } };
            }[];
          };
        };
      };
    };
    expect(docs.map((d) => d.kind).sort()).toEqual(['Deployment', 'Service']);
    const pod = deployment.spec.template.spec;
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    const [container] = pod.containers;
    expect(container!.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container!.readinessProbe.httpGet.path).toBe('/readyz');
    expect(deployment.spec.replicas).toBeGreaterThan(1);
    await runDeploymentArgs(s, container!.args, { '/devices': s.devices, '/recordings': s.recordings });
  });
});

describeInterop('the systemd template unit', ['redis-server', 'systemd-analyze'], () => {
  it('passes systemd-analyze verify, and its ExecStart (with the sample env file) runs the real CLI', {
    timeout: 60_000,
  }, async () => {
    const s = await setup();
    const unit = readFileSync(UNIT, 'utf8');
    // verify wants the binary to exist: point it at the built CLI, nothing else changes.
    const verifyDir = tempDir(cleanups, 'rcsp-unit-');
    const local = unit.replace('/usr/bin/env rc-softphone', `${process.execPath} ${BIN}`);
    writeFileSync(path.join(verifyDir, 'rc-softphone@.service'), local);
    writeFileSync(path.join(verifyDir, 'rc-softphone@sales.service'), local);
    for (const name of ['rc-softphone@.service', 'rc-softphone@sales.service']) {
      execFileSync(toolPath('systemd-analyze'), ['verify', path.join(verifyDir, name)], { stdio: 'pipe' });
    }
    // ExecStart as systemd would expand it for rc-softphone@sales with the sample env file.
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.replaceAll('%i', 'sales');
    const env = /^RC_SOFTPHONE_ARGS=(.*)$/m.exec(readFileSync(UNIT_ENV, 'utf8'))![1]!;
    const words = exec.replace('$RC_SOFTPHONE_ARGS', env).split(/\s+/);
    expect(words.slice(0, 2)).toEqual(['/usr/bin/env', 'rc-softphone']);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(unit).toMatch(/^RestartPreventExitStatus=2$/m);
    await runDeploymentArgs(s, words.slice(2), {
      '/etc/rc-softphone/sales/devices': s.devices,
      '/var/lib/rc-softphone/sales': s.recordings,
    });
  });
});
