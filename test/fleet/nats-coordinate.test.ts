import { afterEach, expect, it } from 'vitest';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { startNats } from '../helpers/brokers.js';
import { runCli } from '../helpers/cli.js';
import { devicesFolder } from '../helpers/fleet.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { describeInterop } from '../helpers/tools.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const USER = { username: '16505552401', authorizationId: '2401', password: 'Nats-Lease-Secret' };
const TTL_S = 3;

describeInterop('listen --coordinate nats:// (NATS KV leases)', ['nats-server'], () => {
  it('one process registers the device; after SIGKILL of it, the other takes over within the TTL', {
    timeout: 60_000,
  }, async () => {
    const nats = await startNats();
    cleanups.push(() => nats.close());
    const pbx = await LocalPbx.listen({ users: [USER] });
    cleanups.push(() => pbx.close());
    const { cwd, dir } = await devicesFolder(cleanups, 'rcsp-nats-coord-', pbx, [
      { file: 'one.json', deviceId: 'n1', ...USER },
    ]);
    const start = async () => {
      const rtp = await freeUdpPortRange(4);
      return runCli(
        [
          'listen',
          '--devices',
          dir,
          '--coordinate',
          nats.url,
          '--fleet',
          'nt',
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
    };
    const a = await start();
    await waitFor(() => a.events().some((e) => e.event === 'registered'), { timeoutMs: 20_000 });
    const b = await start();
    await waitFor(() => b.events().some((e) => e.event === 'fleet.share'), { timeoutMs: 20_000 });
    expect(b.events().some((e) => e.event === 'lease.acquired')).toBe(false);
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await a.exit;
    await waitFor(() => b.events().some((e) => e.event === 'registered' && e.device === 'n1'), {
      timeoutMs: TTL_S * 1000 + 20_000,
    });
    const acquired = Date.parse(b.events().find((e) => e.event === 'lease.acquired')!.time as string);
    // NATS KV says when the holder's entry was written; the survivor retries then, at least every renewal.
    expect(acquired - killedAt).toBeLessThanOrEqual(TTL_S * 1000 + 2000);
    b.child.kill('SIGTERM');
    expect(await b.exit).toBe(0);
  });
});
