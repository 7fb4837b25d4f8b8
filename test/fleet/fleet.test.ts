/**
 * The fleet's device list and its runner, with the local PBX as registrar:
 * folders and list files load with ids, limits and stable instance ids; a
 * device whose password is refused is retried alone and registers once the
 * password works; per-device limits and one shared port pool hold.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deriveInstanceId, saveSipInfoFile } from '../../src/config/sip-info.js';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { loadFleetDevices } from '../../src/fleet/devices.js';
import { Fleet } from '../../src/fleet/fleet.js';
import { Logger } from '../../src/log/logger.js';
import { tempDir } from '../helpers/dirs.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ENTRY = {
  username: '16505551001',
  password: 'List-Secret-1',
  authorizationId: '1001',
  domain: 'sip.example.com',
  outboundProxy: 'sip10.example.com:5090',
  transport: 'TCP',
};

describe('loadFleetDevices', () => {
  it('a folder: every *.json, sorted; id from deviceId; instance id kept', async () => {
    const dir = tempDir(cleanups, 'rcsp-devs-');
    await saveSipInfoFile(path.join(dir, 'b.json'), {
      username: '2',
      password: 'Pw-two-2222',
      authorizationId: '2',
      domain: 'd.example',
      outboundProxy: { host: 'p.example', port: 5090 },
      transport: 'tcp',
      deviceId: 'dev-b',
    });
    writeFileSync(path.join(dir, 'a.json'), JSON.stringify({ ...ENTRY, maxCalls: 3 }));
    writeFileSync(path.join(dir, 'notes.txt'), 'ignored');
    const devices = await loadFleetDevices(dir);
    expect(devices.map((d) => d.id)).toEqual(['16505551001', 'dev-b']);
    expect(devices[0]!.maxCalls).toBe(3);
    // No instance id in the file: derived from the identity (the same on every host), file untouched.
    expect(devices[0]!.instanceId).toBe(deriveInstanceId({ ...ENTRY, username: ENTRY.username }));
    expect(devices[1]!.instanceId).toMatch(/^urn:uuid:/);
  });

  it('a list: files relative to it, inline entries, ids', async () => {
    const dir = tempDir(cleanups, 'rcsp-list-');
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(
      path.join(dir, 'sub', 'x.json'),
      JSON.stringify({ ...ENTRY, username: '3', deviceId: 'x' }),
    );
    const list = path.join(dir, 'fleet.json');
    writeFileSync(
      list,
      JSON.stringify({
        devices: [
          { file: 'sub/x.json', maxCalls: 2 },
          { id: 'queue', sipInfo: ENTRY },
        ],
      }),
    );
    const devices = await loadFleetDevices(list);
    expect(devices.map((d) => [d.id, d.maxCalls])).toEqual([
      ['x', 2],
      ['queue', undefined],
    ]);
    expect(devices[0]!.source).toBe(path.join(dir, 'sub', 'x.json'));
  });

  it('finds every problem at once: duplicates, bad JSON, bad fields; never quotes a password', async () => {
    const dir = tempDir(cleanups, 'rcsp-bad-');
    writeFileSync(path.join(dir, 'a.json'), JSON.stringify(ENTRY));
    writeFileSync(path.join(dir, 'b.json'), JSON.stringify(ENTRY));
    writeFileSync(path.join(dir, 'c.json'), '{"password": "Leaky-Secret-9", oops');
    writeFileSync(path.join(dir, 'd.json'), JSON.stringify({ ...ENTRY, username: '4', domain: '' }));
    const err = (await loadFleetDevices(dir).then(
      () => {
        throw new Error('loaded');
      },
      (e: unknown) => e,
    )) as { code: string; message: string; details: { problems: string[] } };
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.details.problems).toHaveLength(3);
    expect(err.message).toContain('used twice');
    expect(err.message).toContain('c.json');
    expect(err.message).toContain('d.json');
    expect(err.message).not.toContain('Leaky-Secret-9');
    expect(err.message).not.toContain('List-Secret-1');
  });

  it.each([
    ['[]', 'lists no devices'],
    ['{"devices": 3}', 'must be a JSON array'],
    ['[{"file": 5}]', '"file" must be a path'],
  ])('a list %s: %s', async (text, message) => {
    const dir = tempDir(cleanups, 'rcsp-bad-list-');
    writeFileSync(path.join(dir, 'l.json'), text);
    await expect(loadFleetDevices(path.join(dir, 'l.json'))).rejects.toThrow(message);
  });
});

describe('Fleet', () => {
  it('retries a refused device on its own until it registers; one port pool; per-device limits', {
    timeout: 30_000,
  }, async () => {
    const users = [1, 2].map((i) => ({
      username: `165055520${i}`,
      authorizationId: `20${i}`,
      password: `Fleet-Pw-${i}-abc`,
    }));
    const pbx = await LocalPbx.listen({ users });
    cleanups.push(() => pbx.close());
    pbx.rejectUsers.add(users[1]!.username);
    const rtp = await freeUdpPortRange(8);
    const devices = users.map((u, i) => ({
      id: `d${i + 1}`,
      sipInfo: { ...u, domain: pbx.domain, outboundProxy: pbx.address, transport: 'tcp' as const },
      instanceId: deriveInstanceId({ ...u, domain: pbx.domain }),
      maxCalls: i === 0 ? 1 : undefined,
      source: `test d${i + 1}`,
    }));
    const fleet = new Fleet({
      devices,
      phone: { rtpPorts: { min: rtp, max: rtp + 7 }, mediaIp: '127.0.0.1' },
      maxCalls: 5,
      retry: { baseMs: 100, maxMs: 200, jitter: 0 },
    });
    cleanups.push(() => fleet.stop());
    const failures: string[] = [];
    fleet.on('deviceFailed', (f) => failures.push(`${f.device}:${f.code}`));
    const phones: string[] = [];
    fleet.on('phone', (id) => phones.push(id));
    fleet.start();
    await waitFor(() => fleet.devices.find((d) => d.id === 'd1')?.registered);
    await waitFor(() => failures.length >= 2, { message: 'd2 failed and was retried' });
    expect(failures.every((f) => f === 'd2:SIP_AUTH_REJECTED')).toBe(true);
    expect(fleet.devices.find((d) => d.id === 'd1')?.state).toBe('registered');
    // The password works again: the next retry registers it, with a new Softphone.
    pbx.rejectUsers.delete(users[1]!.username);
    await waitFor(() => fleet.devices.find((d) => d.id === 'd2')?.registered, { message: 'd2 registered' });
    expect(phones.filter((p) => p === 'd2').length).toBeGreaterThanOrEqual(2);
    expect(fleet.devices.find((d) => d.id === 'd2')?.failures).toBe(0);
    // Both devices draw RTP ports from the one pool; d1 takes one call at a time.
    expect(fleet.phone('d1')?.calls).toBeDefined();
    expect(fleet.ports.range).toEqual({ min: rtp, max: rtp + 7 });
    await fleet.stop();
    expect(fleet.devices.map((d) => d.state)).toEqual(['stopped', 'stopped']);
    expect(pbx.binding(users[0]!.username)).toBeUndefined();
  });
});

describe('Fleet device restarts', () => {
  it('a start that comes while the device is stopping (a lease back at once) runs it again after the stop', {
    timeout: 20_000,
  }, async () => {
    const user = { username: '16505552301', authorizationId: '2301', password: 'Restart-Pw-1' };
    const pbx = await LocalPbx.listen({ users: [user] });
    cleanups.push(() => pbx.close());
    const rtp = await freeUdpPortRange(4);
    const fleet = new Fleet({
      devices: [
        {
          id: 'r1',
          sipInfo: { ...user, domain: pbx.domain, outboundProxy: pbx.address, transport: 'tcp' },
          instanceId: deriveInstanceId({ ...user, domain: pbx.domain }),
          maxCalls: undefined,
          source: 'test',
        },
      ],
      phone: { rtpPorts: { min: rtp, max: rtp + 3 }, mediaIp: '127.0.0.1' },
      maxCalls: 1,
    });
    cleanups.push(() => fleet.stop());
    fleet.startDevice('r1');
    await waitFor(() => fleet.devices[0]?.registered);
    const first = fleet.phone('r1');
    const stopped = fleet.stopDevice('r1', 'lease lost');
    fleet.startDevice('r1');
    await stopped;
    await waitFor(() => fleet.devices[0]?.registered && fleet.phone('r1') !== first, {
      message: 'registered again with a new Softphone',
    });
    expect(fleet.devices[0]?.state).toBe('registered');
  });
});

describe('Logger children and tap', () => {
  it('children tag every event, write through the root, and the tap sees every event scrubbed, even when quiet', () => {
    let out = '';
    const sink = { write: (s: string) => (out += s), on: () => sink } as unknown as NodeJS.WritableStream;
    const log = new Logger({ format: 'text', quiet: true, out: sink as never });
    log.scrubber.add('Tap-Secret-1');
    const tapped: string[] = [];
    log.tap = (line) => tapped.push(line);
    const child = log.child({ device: 'sales-1' });
    child.info('registered', { expires: 60 }, 'registered with Tap-Secret-1');
    child.warn('disconnected', { reason: 'x' }, 'lost it');
    child.export('call.sidecar', { callId: 'c1', sidecar: { a: 1 } });
    expect(out).toMatch(/WARN \[sales-1\] lost it\n$/);
    expect(out).not.toContain('registered'); // quiet: info not printed…
    expect(tapped.map((l) => JSON.parse(l).event)).toEqual(['registered', 'disconnected', 'call.sidecar']); // …but exported
    expect(tapped.every((l) => JSON.parse(l).device === 'sales-1')).toBe(true);
    expect(tapped.join('')).not.toContain('Tap-Secret-1');
    log.tap = () => {
      throw new Error('broken tap');
    };
    expect(() => child.info('x', {}, 'y')).not.toThrow();
  });
});
