import dgram from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, isSoftphoneError } from '../../src/errors.js';
import { RtpPortPool } from '../../src/media/port-pool.js';
import { freeUdpPortRange } from '../helpers/ports.js';

const LOOPBACK = '127.0.0.1';
const open: dgram.Socket[] = [];

afterEach(async () => {
  await Promise.all(
    open.splice(0).map(async (s) => {
      try {
        s.close();
        await once(s, 'close');
      } catch {
        // already closed by the test
      }
    }),
  );
});

function track(s: dgram.Socket): dgram.Socket {
  open.push(s);
  return s;
}

async function bindExternally(port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind({ address: LOOPBACK, port, exclusive: true }, () => resolve());
  });
  return track(s);
}

async function pool(count: number): Promise<{ pool: RtpPortPool; base: number }> {
  const base = await freeUdpPortRange(count);
  return { pool: new RtpPortPool({ min: base, max: base + count - 1 }, { address: LOOPBACK }), base };
}

describe('RtpPortPool', () => {
  it('binds a socket on an even port of the range, on the given address', async () => {
    const { pool: p, base } = await pool(6);
    const s = track(await p.allocate());
    const a = s.address();
    expect(a.address).toBe(LOOPBACK);
    expect(a.port % 2).toBe(0);
    expect(a.port).toBeGreaterThanOrEqual(base);
    expect(a.port).toBeLessThanOrEqual(base + 5);
    expect(p.inUse).toBe(1);
  });

  it('hands out every even port before any odd one, and each port once', async () => {
    const { pool: p, base } = await pool(6);
    const ports: number[] = [];
    for (let i = 0; i < 6; i++) ports.push(track(await p.allocate()).address().port);
    expect(ports.slice(0, 3).sort()).toEqual([base, base + 2, base + 4]);
    expect(ports.slice(3).sort()).toEqual([base + 1, base + 3, base + 5]);
    expect(p.inUse).toBe(6);
  });

  it('gives distinct ports to concurrent allocations', async () => {
    const { pool: p } = await pool(8);
    const sockets = await Promise.all(Array.from({ length: 4 }, () => p.allocate()));
    sockets.forEach(track);
    const ports = new Set(sockets.map((s) => s.address().port));
    expect(ports.size).toBe(4);
    for (const port of ports) expect(port % 2).toBe(0);
  });

  it('skips ports another program holds', async () => {
    const { pool: p, base } = await pool(4);
    await bindExternally(base);
    const s = track(await p.allocate());
    expect(s.address().port).toBe(base + 2);
  });

  it('throws RTP_NO_PORT naming --rtp-ports when the range is exhausted', async () => {
    const { pool: p, base } = await pool(2);
    track(await p.allocate());
    await bindExternally(base + 1);
    const err = await p.allocate().catch((e: unknown) => e);
    expect(isSoftphoneError(err, ErrorCodes.RTP_NO_PORT)).toBe(true);
    expect((err as Error).message).toContain('--rtp-ports');
  });

  it('takes a port back when its socket closes', async () => {
    const { pool: p, base } = await pool(1 + 1);
    const first = await p.allocate();
    expect(first.address().port).toBe(base);
    const second = track(await p.allocate()); // the odd one
    expect(second.address().port).toBe(base + 1);
    await expect(p.allocate()).rejects.toMatchObject({ code: ErrorCodes.RTP_NO_PORT });
    first.close();
    await once(first, 'close');
    expect(p.inUse).toBe(1);
    const again = track(await p.allocate());
    expect(again.address().port).toBe(base);
  });

  it('rotates through the range instead of reusing the port just released', async () => {
    const { pool: p, base } = await pool(6);
    const a = await p.allocate();
    expect(a.address().port).toBe(base);
    a.close();
    await once(a, 'close');
    const b = track(await p.allocate());
    expect(b.address().port).toBe(base + 2);
  });

  it('prefers any port not released in the last seconds, odd ones included, and reuses them only when nothing else is free', async () => {
    const base = await freeUdpPortRange(4);
    let now = 0;
    const p = new RtpPortPool({ min: base, max: base + 3 }, { address: LOOPBACK, now: () => now });
    for (const expected of [base, base + 2]) {
      const s = await p.allocate();
      expect(s.address().port).toBe(expected);
      s.close();
      await once(s, 'close');
      now += 1000;
    }
    // Both even ports were released within 10 s: a far end may still be sending to them.
    const fresh = track(await p.allocate());
    expect(fresh.address().port % 2).toBe(1);
    const fresh2 = track(await p.allocate());
    expect(fresh2.address().port % 2).toBe(1);
    // Only recently released ports are left: the one released longest ago first.
    const reused = track(await p.allocate());
    expect(reused.address().port).toBe(base);
    // Once the quarantine is over, even ports come first again.
    now += 20_000;
    fresh.close();
    await once(fresh, 'close');
    now += 20_000;
    const after = track(await p.allocate());
    expect(after.address().port).toBe(base + 2);
  });

  it('asks for a 1 MiB receive buffer, so a stalled event loop under a flood does not make the kernel drop the caller', async () => {
    const { pool: p } = await pool(2);
    const s = track(await p.allocate());
    let max = Number.POSITIVE_INFINITY;
    try {
      max = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
    } catch {
      // Not Linux: the kernel's cap is unknown.
    }
    // Linux reports twice what was asked (its bookkeeping), capped at rmem_max.
    expect(s.getRecvBufferSize()).toBeGreaterThanOrEqual(Math.min(1 << 20, max));
  });

  it('rejects a malformed range as CONFIG_INVALID naming the flag', () => {
    for (const range of [
      { min: 0, max: 10 },
      { min: 30000, max: 20000 },
      { min: 1.5, max: 2 },
      { min: 1000, max: 70000 },
    ]) {
      try {
        new RtpPortPool(range);
        expect.unreachable();
      } catch (err) {
        expect(isSoftphoneError(err, ErrorCodes.CONFIG_INVALID)).toBe(true);
        expect((err as Error).message).toContain('--rtp-ports');
      }
    }
  });

  it('fails at once with RTP_NO_PORT for an address this host does not have', async () => {
    const base = await freeUdpPortRange(4);
    const p = new RtpPortPool({ min: base, max: base + 3 });
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a local address.
    const err = await p.allocate({ address: '192.0.2.1' }).catch((e: unknown) => e);
    expect(isSoftphoneError(err, ErrorCodes.RTP_NO_PORT)).toBe(true);
    expect((err as { details: { errno?: string } }).details.errno).toBe('EADDRNOTAVAIL');
    expect(p.inUse).toBe(0);
  });
});
