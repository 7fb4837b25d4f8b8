/**
 * Fleets against the real Kamailio registrar:
 *
 *  - Two and three `listen --devices … --coordinate redis://…` processes over
 *    one redis-server, all listing the same devices: the devices are spread
 *    over them; a process that joins takes its share (the holder unregisters
 *    before the newcomer registers); SIGKILL of a holder mid-idle, and
 *    another process registers its devices within the lease TTL plus one
 *    registration round trip. Kamailio's location table (kamcmd ul.dump,
 *    polled throughout) never shows two contacts for a device.
 *  - One process with 50 devices (--devices), calls spread over them by a
 *    caller registered at the same Kamailio: every device answers its own.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { saveSipInfoFile } from '../../../src/config/sip-info.js';
import { Softphone } from '../../../src/softphone.js';
import { startRedis } from '../../helpers/brokers.js';
import { type CliRun, runCli } from '../../helpers/cli.js';
import { tempDir } from '../../helpers/dirs.js';
import { freeUdpPortRange, waitFor } from '../../helpers/ports.js';
import { describeInterop } from '../../helpers/tools.js';
import { type Kamailio, type KamailioUser, startKamailio } from './harness.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const LEASE_TTL_S = 4;

function users(n: number, prefix: string): KamailioUser[] {
  return Array.from({ length: n }, (_, i) => ({
    username: `${prefix}${String(i + 1).padStart(3, '0')}`,
    authorizationId: `a${prefix}${i + 1}`,
    password: `Fleet-Kam-Secret-${i + 1}`,
  }));
}

async function writeDevices(kam: Kamailio, list: KamailioUser[], dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const u of list) {
    await saveSipInfoFile(path.join(dir, `${u.username}.json`), {
      username: u.username,
      authorizationId: u.authorizationId ?? u.username,
      password: u.password,
      domain: kam.domain,
      outboundProxy: { host: kam.host, port: kam.port },
      transport: 'tcp',
      deviceId: `dev-${u.username}`,
    });
  }
}

/** Polls the location table until stopped; remembers the most contacts any AOR ever had. */
function watchLocation(kam: Kamailio): { maxContacts: () => Map<string, number>; stop: () => Promise<void> } {
  const max = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const counts = new Map<string, number>();
        for (const b of await kam.ulDump()) {
          if (b.expires > 0) counts.set(b.aor, (counts.get(b.aor) ?? 0) + 1);
        }
        for (const [aor, n] of counts) max.set(aor, Math.max(max.get(aor) ?? 0, n));
      } catch {
        // kamailio is stopping
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    maxContacts: () => max,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

interface Member {
  run: CliRun;
  name: string;
}

async function startMember(dir: string, redisUrl: string, name: string, cwd: string): Promise<Member> {
  const rtp = await freeUdpPortRange(8);
  const run = runCli(
    [
      'listen',
      '--devices',
      dir,
      '--coordinate',
      redisUrl,
      '--fleet',
      'kam',
      '--lease-ttl',
      String(LEASE_TTL_S),
      '--no-record',
      '--media-ip',
      '127.0.0.1',
      '--rtp-ports',
      `${rtp}-${rtp + 7}`,
      '--log-format',
      'json',
    ],
    { cwd, cleanups },
  );
  return { run, name };
}

/** Devices a member runs now: acquired minus lost/released, as its events say. */
function held(m: Member): Set<string> {
  const set = new Set<string>();
  for (const e of m.run.events()) {
    if (e.event === 'lease.acquired') set.add(e.device as string);
    if (e.event === 'lease.lost' || e.event === 'lease.released') set.delete(e.device as string);
  }
  return set;
}

function registeredAt(m: Member, device: string, after = 0): number | undefined {
  const e = m.run
    .events()
    .find((x) => x.event === 'registered' && x.device === device && Date.parse(x.time as string) >= after);
  return e ? Date.parse(e.time as string) : undefined;
}

function eventAt(m: Member, event: string, device: string, after = 0): number | undefined {
  const e = m.run
    .events()
    .find((x) => x.event === event && x.device === device && Date.parse(x.time as string) >= after);
  return e ? Date.parse(e.time as string) : undefined;
}

async function takeoverScenario(processes: number, devices: number): Promise<void> {
  const redis = await startRedis();
  cleanups.push(() => redis.close());
  const list = users(devices, `1650777${processes}`);
  const kam = await startKamailio({ users: list, maxExpires: 120 });
  cleanups.push(() => kam.stop());
  const cwd = tempDir(cleanups, 'rcsp-kam-fleet-');
  const dir = path.join(cwd, 'devices');
  await writeDevices(kam, list, dir);
  const ids = list.map((u) => `dev-${u.username}`);
  const location = watchLocation(kam);
  cleanups.push(() => location.stop());

  // The first process takes everything while it is alone.
  const members: Member[] = [await startMember(dir, redis.url, 'p1', cwd)];
  await waitFor(() => ids.every((id) => registeredAt(members[0]!, id) !== undefined), {
    timeoutMs: 30_000,
    message: 'p1 registers every device',
  });
  // The others join: each ends up with its share, every device registered once.
  for (let i = 2; i <= processes; i++) members.push(await startMember(dir, redis.url, `p${i}`, cwd));
  const share = Math.ceil(devices / processes);
  await waitFor(
    () => {
      const sets = members.map(held);
      const all = sets.flatMap((s) => [...s]);
      return (
        sets.every((s) => s.size >= 1 && s.size <= share) &&
        new Set(all).size === devices &&
        all.length === devices
      );
    },
    { timeoutMs: 40_000, message: 'the devices are spread over every process' },
  );
  for (const m of members) {
    for (const id of held(m)) {
      await waitFor(() => registeredAt(m, id) !== undefined, {
        timeoutMs: 20_000,
        message: `${m.name} registers ${id}`,
      });
    }
  }
  // A handed-over device was unregistered by its first holder before the next one registered it.
  for (const m of members.slice(1)) {
    for (const id of held(m)) {
      const unregistered = eventAt(members[0]!, 'unregistered', id);
      const registered = registeredAt(m, id);
      expect(unregistered, `${id} unregistered by p1 before ${m.name} took it`).toBeDefined();
      expect(unregistered!).toBeLessThanOrEqual(registered!);
    }
  }

  // SIGKILL a holder mid-idle: its devices come back, registered by the others, within the TTL plus a round trip.
  const victim = members[0]!;
  const orphans = [...held(victim)];
  expect(orphans.length).toBeGreaterThan(0);
  const killedAt = Date.now();
  victim.run.child.kill('SIGKILL');
  await victim.run.exit;
  const survivors = members.slice(1);
  for (const id of orphans) {
    await waitFor(() => survivors.some((m) => registeredAt(m, id, killedAt) !== undefined), {
      timeoutMs: LEASE_TTL_S * 1000 + 20_000,
      message: `${id} registered again by a survivor`,
    });
    const m = survivors.find((s) => registeredAt(s, id, killedAt) !== undefined)!;
    const acquired = eventAt(m, 'lease.acquired', id, killedAt)!;
    const registered = registeredAt(m, id, killedAt)!;
    // The lease is free at most a TTL after the kill (the last renewal came before it); the
    // survivor takes it then. Slack for a loaded machine's timers and log stamps.
    expect(acquired - killedAt).toBeLessThanOrEqual(LEASE_TTL_S * 1000 + 1500);
    // …and registers in one round trip (a REGISTER and its challenge on loopback).
    expect(registered - acquired).toBeLessThan(3000);
    console.log(
      `[fleet] ${processes} processes: ${id} taken over ${acquired - killedAt} ms after SIGKILL, registered ${registered - killedAt} ms after (TTL ${LEASE_TTL_S * 1000} ms)`,
    );
  }
  await location.stop();
  for (const aor of list.map((u) => u.username)) {
    expect(location.maxContacts().get(aor) ?? 0, `contacts of ${aor}`).toBeLessThanOrEqual(1);
  }
  expect(location.maxContacts().size).toBe(devices);
  for (const m of survivors) {
    m.run.child.kill('SIGTERM');
    expect(await m.run.exit).toBe(0);
    for (const u of list) expect(m.run.stdout() + m.run.stderr()).not.toContain(u.password);
  }
}

describeInterop('fleet leases over Redis against Kamailio', ['kamailio', 'kamcmd', 'redis-server'], () => {
  it('two processes: shares, handover without overlap, SIGKILL of the holder taken over within the TTL', {
    timeout: 120_000,
  }, async () => {
    await takeoverScenario(2, 2);
  });

  it('three processes: the same with three devices', { timeout: 120_000 }, async () => {
    await takeoverScenario(3, 3);
  });
});

describeInterop('a fleet of 50 devices in one process against Kamailio', ['kamailio', 'kamcmd'], () => {
  it('registers all 50 and answers calls spread over them, each on its own device', {
    timeout: 120_000,
  }, async () => {
    const fleetUsers = users(50, '1650888');
    const caller = { username: '16508889999', authorizationId: 'caller', password: 'Caller-Kam-Secret' };
    const kam = await startKamailio({ users: [...fleetUsers, caller], maxExpires: 300 });
    cleanups.push(() => kam.stop());
    const cwd = tempDir(cleanups, 'rcsp-kam-fleet50-');
    const dir = path.join(cwd, 'devices');
    await writeDevices(kam, fleetUsers, dir);
    const rtp = await freeUdpPortRange(64);
    const run = runCli(
      [
        'listen',
        '--devices',
        dir,
        '--record-dir',
        path.join(cwd, 'rec'),
        '--media-ip',
        '127.0.0.1',
        '--rtp-ports',
        `${rtp}-${rtp + 63}`,
        '--max-calls',
        '2',
        '--log-format',
        'json',
      ],
      { cwd, cleanups },
    );
    const ids = fleetUsers.map((u) => `dev-${u.username}`);
    await waitFor(
      () =>
        new Set(
          run
            .events()
            .filter((e) => e.event === 'registered')
            .map((e) => e.device),
        ).size === 50,
      {
        timeoutMs: 60_000,
        message: 'all 50 registered',
      },
    );
    const bindings = await kam.ulDump();
    expect(new Set(bindings.map((b) => b.aor)).size).toBe(50);
    // One flow per device: 50 distinct TCP connections.
    expect(new Set(bindings.map((b) => b.tcpConnId)).size).toBe(50);

    const callerRtp = await freeUdpPortRange(24);
    const phone = new Softphone({
      sipInfo: {
        ...caller,
        domain: kam.domain,
        outboundProxy: { host: kam.host, port: kam.port },
        transport: 'tcp',
      },
      mediaIp: '127.0.0.1',
      rtpPorts: { min: callerRtp, max: callerRtp + 23 },
      maxCalls: 20,
    });
    cleanups.push(() => phone.stop());
    await phone.start();
    // 20 calls, to every other... device spread: 0, 5, 10, … and a second round offset.
    const targets = Array.from({ length: 20 }, (_, i) => fleetUsers[(i * 5 + Math.floor(i / 10)) % 50]!);
    const calls = await Promise.all(targets.map((u) => phone.call(u.username)));
    await Promise.all(
      calls.map(
        (c) =>
          new Promise<void>((resolve) =>
            c.state === 'answered' ? resolve() : c.once('answered', () => resolve()),
          ),
      ),
    );
    await Promise.all(calls.map((c) => c.hangup()));
    await waitFor(() => run.events().filter((e) => e.event === 'call.ended').length === 20, {
      timeoutMs: 30_000,
      message: 'the fleet saw 20 calls end',
    });
    const answeredBy = run
      .events()
      .filter((e) => e.event === 'call.answered')
      .map((e) => e.device as string);
    expect(answeredBy.sort()).toEqual(targets.map((u) => `dev-${u.username}`).sort());
    expect(new Set(answeredBy).size).toBe(20);
    for (const id of answeredBy) expect(ids).toContain(id);
    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
    expect(run.events().filter((e) => e.event === 'unregistered').length).toBe(50);
  });
});
