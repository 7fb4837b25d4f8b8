import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { devicesOfWorker, planProcesses, WORKER_ENV, workerPartFromEnv } from '../../src/fleet/processes.js';
import { startRedis } from '../helpers/brokers.js';
import { sdpOffer } from '../helpers/call-rig.js';
import { runCli } from '../helpers/cli.js';
import { devicesFolder } from '../helpers/fleet.js';
import { freePort, freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { describeInterop } from '../helpers/tools.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('planProcesses', () => {
  it('deals the devices round robin and cuts the port range into contiguous parts', () => {
    const r = planProcesses({
      deviceIds: ['a', 'b', 'c', 'd', 'e'],
      processes: 2,
      coordinated: false,
      rtpPorts: { min: 20000, max: 20999 },
    });
    expect(r).toEqual({
      ok: true,
      plans: [
        { index: 0, devices: ['a', 'c', 'e'], rtpPorts: { min: 20000, max: 20499 } },
        { index: 1, devices: ['b', 'd'], rtpPorts: { min: 20500, max: 20999 } },
      ],
    });
    // An odd range: the last part takes the rest.
    const odd = planProcesses({
      deviceIds: ['a', 'b', 'c'],
      processes: 3,
      coordinated: false,
      rtpPorts: { min: 100, max: 110 },
    });
    expect(odd.ok && odd.plans.map((p) => p.rtpPorts)).toEqual([
      { min: 100, max: 102 },
      { min: 103, max: 105 },
      { min: 106, max: 110 },
    ]);
  });

  it('gives every process every device when leases share them (--coordinate)', () => {
    const r = planProcesses({
      deviceIds: ['a'],
      processes: 3,
      coordinated: true,
      rtpPorts: { min: 20000, max: 20099 },
    });
    expect(r.ok && r.plans.map((p) => p.devices)).toEqual([['a'], ['a'], ['a']]);
  });

  it('refuses fewer devices than processes, too few ports, or a count out of range', () => {
    const base = { coordinated: false, rtpPorts: { min: 20000, max: 20099 } };
    expect(planProcesses({ ...base, deviceIds: ['a'], processes: 2 })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/--processes 2 needs at least 2 devices/),
    });
    expect(
      planProcesses({ ...base, deviceIds: ['a', 'b', 'c'], processes: 3, rtpPorts: { min: 1, max: 5 } }),
    ).toMatchObject({ ok: false, reason: expect.stringMatching(/--rtp-ports 1-5 is too small for 3/) });
    expect(planProcesses({ ...base, deviceIds: ['a'], processes: 0 })).toMatchObject({ ok: false });
    expect(planProcesses({ ...base, deviceIds: ['a'], processes: 65 })).toMatchObject({ ok: false });
  });

  it('a worker reads its part from the environment, and takes the same devices as the plan', () => {
    expect(workerPartFromEnv({})).toEqual({ ok: true, part: undefined });
    const env = {
      [WORKER_ENV.worker]: '1/3',
      [WORKER_ENV.rtpPorts]: '20100-20199',
      [WORKER_ENV.metrics]: '1',
    };
    const r = workerPartFromEnv(env);
    expect(r).toEqual({
      ok: true,
      part: { index: 1, count: 3, rtpPorts: { min: 20100, max: 20199 }, metrics: true },
    });
    const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    const plan = planProcesses({
      deviceIds: ids,
      processes: 3,
      coordinated: false,
      rtpPorts: { min: 1, max: 99 },
    });
    if (!r.ok || !r.part || !plan.ok) throw new Error('unexpected');
    expect(devicesOfWorker(ids, r.part, false)).toEqual(plan.plans[1]!.devices);
    for (const bad of [
      { [WORKER_ENV.worker]: '3/3', [WORKER_ENV.rtpPorts]: '1-2' },
      { [WORKER_ENV.worker]: 'x', [WORKER_ENV.rtpPorts]: '1-2' },
      { [WORKER_ENV.worker]: '0/2' },
      { [WORKER_ENV.worker]: '0/2', [WORKER_ENV.rtpPorts]: '9-1' },
    ]) {
      expect(workerPartFromEnv(bad).ok).toBe(false);
    }
  });
});

const USERS = [1, 2, 3, 4].map((i) => ({
  username: `1650555080${i}`,
  authorizationId: `980${i}`,
  password: `Procs-Secret-${i}-xyz`,
}));

async function setup() {
  const pbx = await LocalPbx.listen({ users: USERS });
  cleanups.push(() => pbx.close());
  const { cwd, dir } = await devicesFolder(
    cleanups,
    'rcsp-procs-cli-',
    pbx,
    USERS.map((user, i) => ({ file: `d${i + 1}.json`, deviceId: `dev-${i + 1}`, ...user })),
  );
  const rtp = await freeUdpPortRange(32);
  return { pbx, cwd, dir, rtp: `${rtp}-${rtp + 31}` };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('listen --devices --processes', () => {
  it('runs the devices in two processes: calls answered by each, metrics of both, a dead worker started again, SIGTERM stops all', {
    timeout: 90_000,
  }, async () => {
    const { pbx, cwd, dir, rtp } = await setup();
    const httpPort = await freePort('tcp');
    const r = runCli(
      [
        'listen',
        '--devices',
        dir,
        '--processes',
        '2',
        '--log-format',
        'json',
        '--media-ip',
        '127.0.0.1',
        '--rtp-ports',
        rtp,
        '--record-dir',
        path.join(cwd, 'rec'),
        '--http',
        `127.0.0.1:${httpPort}`,
      ],
      { cwd, cleanups },
    );
    const registeredSince = (after: number) =>
      new Set(
        r
          .events()
          .filter((e) => e.event === 'registered' && Date.parse(e.time as string) >= after)
          .map((e) => e.device),
      );
    await waitFor(() => registeredSince(0).size === 4, {
      timeoutMs: 30_000,
      message: 'four devices registered',
    });
    const started = r.events().filter((e) => e.event === 'process.started');
    expect(started.map((e) => e.process)).toEqual([0, 1]);
    expect(started.map((e) => e.devices)).toEqual([
      ['dev-1', 'dev-3'],
      ['dev-2', 'dev-4'],
    ]);
    const pids = started.map((e) => e.pid as number);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(r.child.pid);
    // Each worker registered its own devices; the PBX sees four flows.
    const sockets = USERS.map((u) => pbx.binding(u.username)?.socket);
    expect(new Set(sockets).size).toBe(4);

    for (const u of USERS) {
      const call = await pbx.invite(u.username, sdpOffer(9));
      await call.bye();
    }
    await waitFor(() => r.events().filter((e) => e.event === 'call.ended').length === 4, {
      message: 'four calls ended',
    });
    expect(
      r
        .events()
        .filter((e) => e.event === 'call.answered')
        .map((e) => e.device)
        .sort(),
    ).toEqual(['dev-1', 'dev-2', 'dev-3', 'dev-4']);

    // One endpoint for both processes.
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    for (const id of ['dev-1', 'dev-2', 'dev-3', 'dev-4']) {
      expect(metrics).toMatch(new RegExp(`rc_softphone_device_registered\\{device="${id}"\\} 1`));
      expect(metrics).toMatch(
        new RegExp(`rc_softphone_calls_total\\{device="${id}",direction="inbound",outcome="remote-bye"\\} 1`),
      );
    }
    const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ reason: '4 of 4 devices registered (4 needed)' });

    // A worker that dies is started again, and its devices register again.
    const killedAt = Date.now();
    process.kill(pids[1]!, 'SIGKILL');
    await waitFor(() => r.events().some((e) => e.event === 'process.exited' && e.process === 1), {
      message: 'the death reported',
    });
    const exited = r.events().find((e) => e.event === 'process.exited')!;
    expect(exited).toMatchObject({ process: 1, pid: pids[1], signal: 'SIGKILL', restartInMs: 1000 });
    await waitFor(
      () => {
        const again = registeredSince(killedAt);
        return again.has('dev-2') && again.has('dev-4');
      },
      { timeoutMs: 30_000, message: 'dev-2 and dev-4 registered again' },
    );
    const restarted = r.events().filter((e) => e.event === 'process.started' && e.process === 1);
    expect(restarted).toHaveLength(2);

    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    for (const u of USERS) expect(pbx.binding(u.username)).toBeUndefined();
    expect(
      r
        .events()
        .filter((e) => e.event === 'unregistered')
        .map((e) => e.device)
        .sort(),
    ).toEqual(['dev-1', 'dev-2', 'dev-3', 'dev-4']);
    const out = r.stdout() + r.stderr();
    for (const u of USERS) expect(out).not.toContain(u.password);
    // Lines of different processes never mix: every stdout line is one JSON object.
    for (const line of r
      .stdout()
      .split('\n')
      .filter((l) => l !== ''))
      expect(() => JSON.parse(line)).not.toThrow();
  });

  it('workers stop by themselves (unregistering) when the supervisor is killed', {
    timeout: 60_000,
  }, async () => {
    const { pbx, cwd, dir, rtp } = await setup();
    const r = runCli(
      [
        'listen',
        '--devices',
        dir,
        '--processes',
        '2',
        '--log-format',
        'json',
        '--no-record',
        '--rtp-ports',
        rtp,
      ],
      { cwd, cleanups },
    );
    await waitFor(() => r.events().filter((e) => e.event === 'registered').length === 4, {
      timeoutMs: 30_000,
      message: 'four devices registered',
    });
    const pids = r
      .events()
      .filter((e) => e.event === 'process.started')
      .map((e) => e.pid as number);
    cleanups.push(() => {
      for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    });
    r.child.kill('SIGKILL');
    await waitFor(() => USERS.every((u) => pbx.binding(u.username) === undefined), {
      timeoutMs: 20_000,
      message: 'every device unregistered',
    });
    await waitFor(() => pids.every((pid) => !isAlive(pid)), {
      timeoutMs: 20_000,
      message: 'the workers exited',
    });
  });

  it('refuses --processes without --devices, with fewer devices than processes, or too few ports (exit 2)', async () => {
    const { cwd, dir } = await setup();
    const cases: [string[], RegExp][] = [
      [['--processes', '2'], /--processes needs --devices/],
      [['--devices', dir, '--processes', '5'], /--processes 5 needs at least 5 devices/],
      [['--devices', dir, '--processes', '2', '--rtp-ports', '20000-20002'], /is too small for 2 processes/],
      [['--devices', dir, '--processes', '0'], /--processes must be an integer from 1 to 64/],
    ];
    for (const [args, message] of cases) {
      const run = runCli(['listen', '--no-record', ...args], { cwd, cleanups });
      expect(await run.exit, args.join(' ')).toBe(2);
      expect(run.stderr()).toMatch(message);
    }
  });
});

describeInterop('listen --devices --processes --coordinate', ['redis-server'], () => {
  it('every worker lists every device and the leases share them out: each device registered once, by one worker', {
    timeout: 60_000,
  }, async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.close());
    const { pbx, cwd, dir, rtp } = await setup();
    const r = runCli(
      [
        'listen',
        '--devices',
        dir,
        '--processes',
        '2',
        '--coordinate',
        redis.url,
        '--lease-ttl',
        '3',
        '--log-format',
        'json',
        '--no-record',
        '--rtp-ports',
        rtp,
      ],
      { cwd, cleanups },
    );
    const holders = () => {
      const held = new Map<string, number>();
      for (const e of r.events()) {
        if (e.event === 'lease.acquired')
          held.set(e.device as string, (held.get(e.device as string) ?? 0) + 1);
        if (e.event === 'lease.lost' || e.event === 'lease.released')
          held.set(e.device as string, (held.get(e.device as string) ?? 0) - 1);
      }
      return held;
    };
    await waitFor(() => USERS.every((u) => pbx.binding(u.username) !== undefined), {
      timeoutMs: 30_000,
      message: 'every device registered',
    });
    const started = r.events().filter((e) => e.event === 'process.started');
    expect(started.map((e) => e.devices)).toEqual([
      ['dev-1', 'dev-2', 'dev-3', 'dev-4'],
      ['dev-1', 'dev-2', 'dev-3', 'dev-4'],
    ]);
    // Each device's lease is held by one process at a time.
    await waitFor(() => [...holders().values()].every((n) => n === 1) && holders().size === 4, {
      timeoutMs: 20_000,
      message: 'one holder per device',
    });
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    for (const u of USERS) expect(pbx.binding(u.username)).toBeUndefined();
  });
});
