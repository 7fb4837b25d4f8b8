import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { startRedis } from '../helpers/brokers.js';
import { sdpOffer } from '../helpers/call-rig.js';
import { runCli } from '../helpers/cli.js';
import { devicesFolder } from '../helpers/fleet.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { describeInterop } from '../helpers/tools.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const USER = { username: '16505550801', authorizationId: '9801', password: 'Events-Secret-801' };

describeInterop('listen --devices --events redis:// (a broker restart mid-call)', ['redis-server'], () => {
  it('every printed event reaches the stream in order, tagged, with the sidecar; the outage is reported', {
    timeout: 60_000,
  }, async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.close());
    const pbx = await LocalPbx.listen({ users: [USER] });
    cleanups.push(() => pbx.close());
    const { cwd, dir } = await devicesFolder(cleanups, 'rcsp-fleet-events-', pbx, [
      { file: 'one.json', deviceId: 'rec-1', ...USER },
    ]);
    const rtp = await freeUdpPortRange(8);
    const r = runCli(
      [
        'listen',
        '--devices',
        dir,
        '--events',
        redis.url,
        '--fleet',
        'ev',
        '--media-ip',
        '127.0.0.1',
        '--rtp-ports',
        `${rtp}-${rtp + 7}`,
        '--record-dir',
        path.join(cwd, 'rec'),
        '--log-format',
        'json',
      ],
      { cwd, cleanups },
    );
    await waitFor(() => r.events().some((e) => e.event === 'registered'), { timeoutMs: 20_000 });
    const call = await pbx.invite(USER.username, sdpOffer(9));
    await waitFor(() => r.events().some((e) => e.event === 'call.answered'));
    // Mid-call: the broker goes away and comes back.
    await redis.stop();
    await call.request('INFO', 'Signal=5\r\nDuration=160\r\n');
    await waitFor(() => r.events().some((e) => e.event === 'events.down'), { timeoutMs: 20_000 });
    await redis.start();
    await call.request('INFO', 'Signal=7\r\nDuration=160\r\n');
    await call.bye();
    await waitFor(() => r.events().some((e) => e.event === 'call.ended'));
    await waitFor(() => r.events().some((e) => e.event === 'events.resumed'), { timeoutMs: 20_000 });
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);

    const client = new Redis(redis.port, '127.0.0.1');
    cleanups.push(() => client.disconnect());
    const entries = await client.xrange('rc-softphone:ev:events', '-', '+');
    const stream = entries.map(
      ([, f]) => JSON.parse(f[f.indexOf('data') + 1] as string) as Record<string, unknown>,
    );
    // At least once: drop repeats by seq; the rest is in order.
    const seen = new Set<number>();
    const unique = stream.filter((e) => !seen.has(e.seq as number) && seen.add(e.seq as number));
    const seqs = unique.map((e) => e.seq as number);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1)); // no gap: nothing dropped
    // Everything printed up to the end is in the stream, in the same order (the stream also has the sidecar).
    const printed = r.events().map((e) => `${e.event}|${e.time}`);
    const exported = unique.filter((e) => e.event !== 'call.sidecar').map((e) => `${e.event}|${e.time}`);
    expect(exported).toEqual(printed.slice(0, exported.length));
    for (const name of [
      'registered',
      'call.incoming',
      'call.answered',
      'call.dtmf',
      'call.ended',
      'events.down',
      'events.resumed',
    ]) {
      expect(
        exported.some((x) => x.startsWith(`${name}|`)),
        name,
      ).toBe(true);
    }
    const callEvents = unique.filter((e) => String(e.event).startsWith('call.'));
    expect(callEvents.every((e) => e.device === 'rec-1')).toBe(true);
    const sidecar = unique.find((e) => e.event === 'call.sidecar') as {
      device: string;
      sidecar: { callId: string };
    };
    expect(sidecar.device).toBe('rec-1');
    expect(sidecar.sidecar.callId).toBe(call.callId);
    expect(JSON.stringify(stream)).not.toContain(USER.password);
  });
});
