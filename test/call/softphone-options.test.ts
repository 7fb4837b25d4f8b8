/**
 * The library refuses options it cannot work with, before any network I/O,
 * with CONFIG_INVALID naming the option (details.option).
 */
import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { Softphone, type SoftphoneOptions } from '../../src/softphone.js';
import { RIG_USER } from '../helpers/call-rig.js';
import { tempDir, UNWRITABLE_REASON, unwritableDir } from '../helpers/dirs.js';
import { failure } from '../helpers/errors.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function phoneAt(options: Partial<SoftphoneOptions>) {
  const pbx = await LocalPbx.listen({ users: [RIG_USER] });
  cleanups.push(() => pbx.close());
  const phone = new Softphone({
    sipInfo: { ...RIG_USER, domain: pbx.domain, outboundProxy: pbx.address, transport: 'tcp' },
    ...options,
  });
  cleanups.push(() => phone.stop());
  return { pbx, phone };
}

describe('Softphone.start() checks recordDir before connecting', () => {
  it('rejects a file with CONFIG_INVALID naming recordDir, and never registers', async () => {
    const file = path.join(tempDir(cleanups), 'recordings');
    writeFileSync(file, '');
    const { pbx, phone } = await phoneAt({ recordDir: file });
    const err = await failure(phone.start());
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.details).toMatchObject({ option: 'recordDir', path: file, reason: 'is a file' });
    expect(err.message).toContain(file);
    expect(pbx.registerCount(RIG_USER.username)).toBe(0);
  });

  it('rejects a directory it cannot write to', async () => {
    const dir = unwritableDir(cleanups);
    const { pbx, phone } = await phoneAt({ recordDir: dir });
    const err = await failure(phone.start());
    expect(err.details).toMatchObject({ option: 'recordDir', path: dir });
    expect(String(err.details.reason)).toMatch(UNWRITABLE_REASON);
    expect(pbx.registerCount(RIG_USER.username)).toBe(0);
  });

  it('creates a missing one and starts', async () => {
    const dir = path.join(tempDir(cleanups), 'new', 'recordings');
    const { phone } = await phoneAt({ recordDir: dir });
    await phone.start();
    expect(statSync(dir).isDirectory()).toBe(true);
  });
});

describe('new Softphone() refuses option values it cannot work with', () => {
  const sipInfo = {
    ...RIG_USER,
    domain: 'sip.test',
    outboundProxy: { host: '127.0.0.1', port: 5090 },
    transport: 'tcp' as const,
  };

  it.each([
    ['mediaIp', { mediaIp: 'not-an-ip' }, 'must be an IPv4 or IPv6 address'],
    ['mediaIp', { mediaIp: 'fe80::1%eth0' }, 'zone'],
    ['mediaIp', { mediaIp: '::' }, 'unspecified'],
    ['stream.url', { stream: { url: 'ws://a b' } }, 'whitespace'],
    ['stream.url', { stream: { url: 'ws://localhost:99999/media' } }, 'port'],
    ['recordDir', { recordDir: '' }, 'empty'],
  ])('%s: %j', (option, options: Partial<SoftphoneOptions>, reason) => {
    let thrown: unknown;
    try {
      new Softphone({ sipInfo, ...options });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: 'CONFIG_INVALID', details: { option } });
    expect((thrown as Error).message).toContain(option);
    expect((thrown as Error).message).toContain(reason);
  });

  it('takes IPv4 and IPv6 media addresses', () => {
    expect(() => new Softphone({ sipInfo, mediaIp: '203.0.113.7' })).not.toThrow();
    expect(() => new Softphone({ sipInfo, mediaIp: '2001:db8::7' })).not.toThrow();
  });
});
