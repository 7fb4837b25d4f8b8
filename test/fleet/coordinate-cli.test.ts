import { afterEach, expect, it } from 'vitest';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { startRedis } from '../helpers/brokers.js';
import { runCli } from '../helpers/cli.js';
import { devicesFolder } from '../helpers/fleet.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { describeInterop } from '../helpers/tools.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const USER = { username: '16505552501', authorizationId: '2501', password: 'Cut-Off-Secret-1' };
const TTL_S = 3;

describeInterop('listen --coordinate when the lease store is lost', ['redis-server'], () => {
  it('unregisters before the lease could expire, and registers again when the store is back', {
    timeout: 60_000,
  }, async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.close());
    const pbx = await LocalPbx.listen({ users: [USER] });
    cleanups.push(() => pbx.close());
    const { cwd, dir } = await devicesFolder(cleanups, 'rcsp-coord-cut-', pbx, [
      { file: 'one.json', deviceId: 'c1', ...USER },
    ]);
    const rtp = await freeUdpPortRange(4);
    const r = runCli(
      [
        'listen',
        '--devices',
        dir,
        '--coordinate',
        redis.url,
        '--lease-ttl',
        String(TTL_S),
        '--no-record',
        '--media-ip',
        '127.0.0.1',
        '--rtp-ports',
        `${rtp}-${rtp + 3}`,
        '--log-format',
        'json',
      ],
      { cwd, cleanups },
    );
    await waitFor(() => r.events().some((e) => e.event === 'registered'), { timeoutMs: 20_000 });
    const killedAt = Date.now();
    await redis.kill();
    await waitFor(() => r.events().some((e) => e.event === 'unregistered'), {
      timeoutMs: TTL_S * 1000 + 10_000,
      message: 'unregistered after losing the store',
    });
    const lost = r.events().find((e) => e.event === 'lease.lost')!;
    expect(lost.reason).toMatch(/not be renewed in time/);
    const unregisteredAt = Date.parse(r.events().find((e) => e.event === 'unregistered')!.time as string);
    // The last renewal was sent before the kill, so the lease lives in Redis at least until
    // killedAt + TTL: the device was gone before then.
    expect(unregisteredAt - killedAt).toBeLessThan(TTL_S * 1000);
    expect(pbx.binding(USER.username)).toBeUndefined();
    expect(r.events().some((e) => e.event === 'coordination.down')).toBe(true);

    await redis.start();
    const back = Date.now();
    await waitFor(
      () => r.events().some((e) => e.event === 'registered' && Date.parse(e.time as string) >= back),
      {
        timeoutMs: 20_000,
        message: 'registered again',
      },
    );
    expect(r.events().some((e) => e.event === 'coordination.resumed')).toBe(true);
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
  });
});
