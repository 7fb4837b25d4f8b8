import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  deriveInstanceId,
  ensureInstanceId,
  formatHostPort,
  hasSipInfoEnv,
  loadSipInfoFile,
  parseHostPort,
  redactSipInfo,
  resolveSipInfo,
  ringCentralCredentialsFromEnv,
  type SipInfo,
  saveSipInfoFile,
  sipInfoFromEnv,
} from '../../src/config/sip-info.js';
import { ErrorCodes } from '../../src/errors.js';
import { failure } from '../helpers/errors.js';

const PASSWORD = 'Very-Secret-Sip-Pass';
const UUID_URN = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const isPosix = process.platform !== 'win32';

const SIP_INFO: SipInfo = {
  username: '16505550100',
  password: PASSWORD,
  authorizationId: '802512345678',
  domain: 'sip.ringcentral.com',
  outboundProxy: { host: 'sip10.ringcentral.com', port: 5090 },
  outboundProxyBackup: { host: 'sip20.ringcentral.com', port: 5090 },
  transport: 'tcp',
  deviceId: '802512345004',
};

/** RingCentral's own sipInfo entry shape, as sip-provision returns it. */
const RAW_ENTRY = {
  username: '16505550100',
  password: PASSWORD,
  authorizationTypes: ['SipDigest'],
  authorizationId: '802512345678',
  domain: 'sip.ringcentral.com',
  outboundProxy: 'sip10.ringcentral.com:5090',
  outboundProxyBackup: 'sip20.ringcentral.com:5090',
  transport: 'TCP',
  stunServers: ['stun1.ringcentral.com:19302'],
};

const FULL_ENV = {
  SIP_INFO_USERNAME: '16505550100',
  SIP_INFO_PASSWORD: PASSWORD,
  SIP_INFO_AUTHORIZATION_ID: '802512345678',
  SIP_INFO_DOMAIN: 'sip.ringcentral.com',
  SIP_INFO_OUTBOUND_PROXY: 'sip10.ringcentral.com:5090',
  SIP_INFO_TRANSPORT: 'TCP',
};

const RC_ENV = {
  RINGCENTRAL_CLIENT_ID: 'client-id',
  RINGCENTRAL_CLIENT_SECRET: 'client-secret-value',
  RINGCENTRAL_JWT_TOKEN: 'eyJ.jwt.value',
};

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-sipinfo-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, content: unknown, mode = 0o600): string {
  const p = path.join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content, null, 2), { mode });
  chmodSync(p, mode);
  return p;
}

function modeOf(p: string): number {
  return statSync(p).mode & 0o777;
}

describe('parseHostPort', () => {
  it.each([
    ['sip10.ringcentral.com:5090', 'sip10.ringcentral.com', 5090],
    ['  sip10.ringcentral.com:5096  ', 'sip10.ringcentral.com', 5096],
    ['192.0.2.10:5060', '192.0.2.10', 5060],
    ['[2001:db8::1]:5090', '2001:db8::1', 5090],
    ['localhost:1', 'localhost', 1],
    ['a-b.example:65535', 'a-b.example', 65535],
  ])('%s', (input, host, port) => {
    expect(parseHostPort(input)).toEqual({ ok: true, value: { host, port } });
  });

  it('uses the default port only when asked to', () => {
    expect(parseHostPort('sip.example.com', { defaultPort: 5061 })).toEqual({
      ok: true,
      value: { host: 'sip.example.com', port: 5061 },
    });
    expect(parseHostPort('[2001:db8::1]', { defaultPort: 5060 })).toEqual({
      ok: true,
      value: { host: '2001:db8::1', port: 5060 },
    });
    const missing = parseHostPort('sip.example.com');
    expect(missing.ok).toBe(false);
    expect(!missing.ok && missing.reason).toMatch(/has no port/);
  });

  it.each([
    ['', /is empty/],
    ['host:', /port must be a number/],
    ['host:abc', /port must be a number/],
    ['host:0', /from 1 to 65535/],
    ['host:65536', /from 1 to 65535/],
    ['host:123456', /port must be a number/],
    ['2001:db8::1:5090', /IPv6 address must be in brackets/],
    ['[2001:db8::1:5090', /missing "\]"/],
    ['[not-v6]:5090', /is not an IPv6 address/],
    ['[2001:db8::1]5090', /expected ":port"/],
    ['bad_host:5090', /not a valid host name/],
    ['-bad.example:5090', /not a valid host name/],
    ['999.1.1.1:5090', /not a valid IPv4 address/],
    [':5090', /host is empty/],
  ])('rejects %j', (input, reason) => {
    const result = parseHostPort(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  it('formats back with brackets for IPv6', () => {
    expect(formatHostPort({ host: '2001:db8::1', port: 5090 })).toBe('[2001:db8::1]:5090');
    expect(formatHostPort({ host: 'sip10.ringcentral.com', port: 5090 })).toBe('sip10.ringcentral.com:5090');
  });
});

describe('sipInfoFromEnv', () => {
  it('builds a SipInfo from the SIP_INFO_* variables', () => {
    const result = sipInfoFromEnv({
      ...FULL_ENV,
      SIP_INFO_TRANSPORT: 'tls',
      SIP_INFO_OUTBOUND_PROXY: 'sip10.ringcentral.com:5096',
      SIP_INFO_OUTBOUND_PROXY_BACKUP: 'sip20.ringcentral.com:5096',
    });
    expect(result).toEqual({
      ok: true,
      sipInfo: {
        username: '16505550100',
        password: PASSWORD,
        authorizationId: '802512345678',
        domain: 'sip.ringcentral.com',
        outboundProxy: { host: 'sip10.ringcentral.com', port: 5096 },
        outboundProxyBackup: { host: 'sip20.ringcentral.com', port: 5096 },
        transport: 'tls',
      },
    });
    if (result.ok) expect(Object.isFrozen(result.sipInfo)).toBe(true);
  });

  it('lists every missing variable with an example', () => {
    const result = sipInfoFromEnv({});
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.missing).toEqual([
      'SIP_INFO_USERNAME',
      'SIP_INFO_PASSWORD',
      'SIP_INFO_AUTHORIZATION_ID',
      'SIP_INFO_DOMAIN',
      'SIP_INFO_OUTBOUND_PROXY',
      'SIP_INFO_TRANSPORT',
    ]);
    expect(result.problems).toHaveLength(6);
    for (const [i, name] of result.missing.entries()) {
      expect(result.problems[i]).toMatch(new RegExp(`^${name} is missing \\(e\\.g\\. ${name}=.+\\)$`));
    }
    expect(result.problems.join('\n')).toContain('SIP_INFO_OUTBOUND_PROXY=sip10.ringcentral.com:5090');
    expect(result.problems.join('\n')).toContain('SIP_INFO_TRANSPORT=TCP');
  });

  it('treats empty and blank values as missing', () => {
    const result = sipInfoFromEnv({ ...FULL_ENV, SIP_INFO_DOMAIN: '', SIP_INFO_USERNAME: '   ' });
    expect(!result.ok && result.missing).toEqual(['SIP_INFO_USERNAME', 'SIP_INFO_DOMAIN']);
  });

  it('names each invalid variable, and never shows the password', () => {
    const result = sipInfoFromEnv({
      ...FULL_ENV,
      SIP_INFO_PASSWORD: `${PASSWORD}\n`,
      SIP_INFO_TRANSPORT: 'UDP',
      SIP_INFO_OUTBOUND_PROXY: 'sip10.ringcentral.com',
      SIP_INFO_OUTBOUND_PROXY_BACKUP: 'sip20.ringcentral.com:99999',
      SIP_INFO_DOMAIN: 'sip ringcentral com',
      SIP_INFO_INSTANCE_ID: 'not-a-urn',
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const text = result.problems.join('\n');
    expect(result.missing).toEqual([]);
    expect(text).toMatch(/SIP_INFO_TRANSPORT is UDP, which rc-softphone does not support; use TCP or TLS/);
    expect(text).toMatch(/SIP_INFO_OUTBOUND_PROXY: "sip10.ringcentral.com" has no port/);
    expect(text).toMatch(
      /SIP_INFO_OUTBOUND_PROXY_BACKUP: .*from 1 to 65535.*SIP_INFO_OUTBOUND_PROXY_BACKUP=/,
    );
    expect(text).toMatch(/SIP_INFO_DOMAIN must be a single word/);
    expect(text).toMatch(/SIP_INFO_PASSWORD must be a string without line breaks/);
    expect(text).toMatch(/SIP_INFO_INSTANCE_ID must be a urn:uuid: URN/);
    expect(text).not.toContain(PASSWORD);
  });

  it('accepts an optional instance id and device id', () => {
    const result = sipInfoFromEnv({
      ...FULL_ENV,
      SIP_INFO_INSTANCE_ID: 'urn:uuid:6F1C2A47-3B8E-4D2A-9C71-0E5B8F4A2D13',
      SIP_INFO_DEVICE_ID: '802512345004',
    });
    expect(result.ok && result.sipInfo.instanceId).toBe('urn:uuid:6f1c2a47-3b8e-4d2a-9c71-0e5b8f4a2d13');
    expect(result.ok && result.sipInfo.deviceId).toBe('802512345004');
  });

  it('hasSipInfoEnv looks at the credential variables only', () => {
    expect(hasSipInfoEnv({})).toBe(false);
    expect(hasSipInfoEnv({ SIP_INFO_USERNAME: '' })).toBe(false);
    expect(hasSipInfoEnv({ SIP_INFO_INSTANCE_ID: 'urn:uuid:x' })).toBe(false);
    expect(hasSipInfoEnv({ SIP_INFO_TRANSPORT: 'TCP' })).toBe(true);
  });
});

describe('ringCentralCredentialsFromEnv', () => {
  it('defaults the server URL to production', () => {
    const result = ringCentralCredentialsFromEnv(RC_ENV);
    expect(result).toEqual({
      ok: true,
      credentials: {
        serverUrl: 'https://platform.ringcentral.com',
        clientId: 'client-id',
        clientSecret: 'client-secret-value',
        jwt: 'eyJ.jwt.value',
      },
    });
  });

  it('reports what is missing and whether any was set', () => {
    const none = ringCentralCredentialsFromEnv({
      RINGCENTRAL_SERVER_URL: 'https://platform.devtest.ringcentral.com',
    });
    expect(!none.ok && none.anySet).toBe(false);
    const some = ringCentralCredentialsFromEnv({ RINGCENTRAL_CLIENT_ID: 'x' });
    expect(!some.ok && some.anySet).toBe(true);
    expect(!some.ok && some.missing).toEqual(['RINGCENTRAL_CLIENT_SECRET', 'RINGCENTRAL_JWT_TOKEN']);
  });
});

describe('loadSipInfoFile', () => {
  it('reads our saved format', async () => {
    const p = path.join(dir, 'saved.json');
    const saved = await saveSipInfoFile(p, SIP_INFO);
    const loaded = await loadSipInfoFile(p);
    expect(loaded).toEqual(saved);
    expect(loaded.instanceId).toMatch(UUID_URN);
    expect(loaded.deviceId).toBe('802512345004');
  });

  it("reads RingCentral's raw sipInfo object", async () => {
    const loaded = await loadSipInfoFile(file('raw.json', RAW_ENTRY));
    expect(loaded).toEqual({ ...SIP_INFO, deviceId: undefined });
    expect(loaded.deviceId).toBeUndefined();
    expect(loaded.instanceId).toBeUndefined();
  });

  it('reads a whole sip-provision answer, taking the first TCP/TLS entry and device.id', async () => {
    const loaded = await loadSipInfoFile(
      file('answer.json', {
        device: { id: '802512345004', type: 'SoftPhone' },
        sipInfo: [
          { ...RAW_ENTRY, transport: 'UDP', outboundProxy: 'udp.example.com:5090' },
          { ...RAW_ENTRY, transport: 'TLS', outboundProxy: 'sip10.ringcentral.com:5096' },
        ],
        pollingInterval: 86400,
      }),
    );
    expect(loaded.transport).toBe('tls');
    expect(loaded.outboundProxy).toEqual({ host: 'sip10.ringcentral.com', port: 5096 });
    expect(loaded.deviceId).toBe('802512345004');
  });

  it('reads the internal shape with host/port objects', async () => {
    const loaded = await loadSipInfoFile(file('internal.json', { ...SIP_INFO, transport: 'tcp' }));
    expect(loaded).toEqual(SIP_INFO);
  });

  it('names the file and every bad field', async () => {
    const p = file('bad.json', {
      sipInfo: {
        ...RAW_ENTRY,
        password: undefined,
        outboundProxy: 'sip10.ringcentral.com',
        transport: 'WSS',
      },
    });
    const err = await failure(loadSipInfoFile(p));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toContain(p);
    expect(err.message).toContain('sipInfo.password is missing (e.g. "password": ');
    expect(err.message).toMatch(/sipInfo\.outboundProxy: "sip10\.ringcentral\.com" has no port/);
    expect(err.message).toContain('sipInfo.transport is WSS');
    expect(err.details.problems).toHaveLength(3);
  });

  it('names bare fields without a prefix in the raw shape', async () => {
    const err = await failure(
      loadSipInfoFile(file('raw-bad.json', { ...RAW_ENTRY, authorizationId: undefined })),
    );
    expect(err.message).toContain('authorizationId is missing');
    expect(err.message).not.toContain('.authorizationId');
  });

  it('reports invalid JSON with a position but without quoting the content', async () => {
    const p = file('broken.json', `{\n  "username": "16505550100",\n  "password": "${PASSWORD}",\n}`);
    const err = await failure(loadSipInfoFile(p));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toMatch(/not valid JSON/);
    expect(err.message).not.toContain(PASSWORD);
  });

  it('rejects a non-object top level, an answer with no usable entry, and a directory', async () => {
    expect((await failure(loadSipInfoFile(file('arr.json', [RAW_ENTRY])))).message).toMatch(/JSON object/);
    const udpOnly = file('udp.json', { sipInfo: [{ ...RAW_ENTRY, transport: 'UDP' }] });
    expect((await failure(loadSipInfoFile(udpOnly))).message).toMatch(/no entry with transport TCP or TLS/);
    expect((await failure(loadSipInfoFile(dir))).message).toMatch(/directory/);
  });

  it('throws CONFIG_MISSING for a file that does not exist', async () => {
    const err = await failure(loadSipInfoFile(path.join(dir, 'nope.json')));
    expect(err.code).toBe(ErrorCodes.CONFIG_MISSING);
  });
});

describe('saveSipInfoFile', () => {
  it('writes mode 0600 in our format with RingCentral-shaped sipInfo', async () => {
    const p = path.join(dir, 'sip-info.json');
    const saved = await saveSipInfoFile(p, SIP_INFO);
    if (isPosix) expect(modeOf(p)).toBe(0o600);
    const json = JSON.parse(readFileSync(p, 'utf8'));
    expect(json).toMatchObject({
      version: 1,
      deviceId: '802512345004',
      instanceId: saved.instanceId,
      sipInfo: {
        username: '16505550100',
        password: PASSWORD,
        authorizationId: '802512345678',
        domain: 'sip.ringcentral.com',
        outboundProxy: 'sip10.ringcentral.com:5090',
        outboundProxyBackup: 'sip20.ringcentral.com:5090',
        transport: 'TCP',
      },
    });
    expect(Number.isNaN(Date.parse(json.savedAt))).toBe(false);
    expect(saved.instanceId).toMatch(UUID_URN);
  });

  it('keeps mode 0600 under a permissive umask', async () => {
    if (!isPosix) return;
    const previous = process.umask(0);
    try {
      const p = path.join(dir, 'umask.json');
      await saveSipInfoFile(p, SIP_INFO);
      expect(modeOf(p)).toBe(0o600);
      await saveSipInfoFile(p, SIP_INFO, { force: true });
      expect(modeOf(p)).toBe(0o600);
    } catch (err) {
      // process.umask() is unavailable in worker threads; nothing to check there.
      if ((err as NodeJS.ErrnoException).code !== 'ERR_WORKER_UNSUPPORTED_OPERATION') throw err;
    } finally {
      try {
        process.umask(previous);
      } catch {
        // see above
      }
    }
  });

  it('never overwrites without force, naming --force', async () => {
    const p = file('sip-info.json', { keep: 'me' }, 0o644);
    const err = await failure(saveSipInfoFile(p, SIP_INFO));
    expect(err.code).toBe(ErrorCodes.FILE_EXISTS);
    expect(err.message).toContain('--force');
    expect(err.message).toContain(p);
    expect(JSON.parse(readFileSync(p, 'utf8'))).toEqual({ keep: 'me' });
    if (isPosix) expect(modeOf(p)).toBe(0o644);
  });

  it('replaces atomically with force, at mode 0600, leaving no temp file', async () => {
    const p = file('sip-info.json', { old: true }, 0o644);
    await saveSipInfoFile(p, SIP_INFO, { force: true });
    expect(await loadSipInfoFile(p)).toMatchObject({ username: '16505550100', deviceId: '802512345004' });
    if (isPosix) expect(modeOf(p)).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['sip-info.json']);
  });

  it("keeps the device's instance id when re-provisioning the same device with force", async () => {
    const p = path.join(dir, 'sip-info.json');
    const first = await saveSipInfoFile(p, SIP_INFO);
    const again = await saveSipInfoFile(p, { ...SIP_INFO, password: 'rotated-password' }, { force: true });
    expect(again.instanceId).toBe(first.instanceId);
    const other = await saveSipInfoFile(p, { ...SIP_INFO, deviceId: '999' }, { force: true });
    expect(other.instanceId).not.toBe(first.instanceId);
  });

  it('uses the given instance id', async () => {
    const p = path.join(dir, 'sip-info.json');
    const instanceId = 'urn:uuid:6f1c2a47-3b8e-4d2a-9c71-0e5b8f4a2d13';
    expect((await saveSipInfoFile(p, { ...SIP_INFO, instanceId })).instanceId).toBe(instanceId);
    expect((await loadSipInfoFile(p)).instanceId).toBe(instanceId);
  });

  it('writes IPv6 proxies in brackets and round-trips them', async () => {
    const p = path.join(dir, 'v6.json');
    await saveSipInfoFile(p, { ...SIP_INFO, outboundProxy: { host: '2001:db8::1', port: 5090 } });
    expect(JSON.parse(readFileSync(p, 'utf8')).sipInfo.outboundProxy).toBe('[2001:db8::1]:5090');
    expect((await loadSipInfoFile(p)).outboundProxy).toEqual({ host: '2001:db8::1', port: 5090 });
  });

  it('reports an unwritable location as CONFIG_INVALID and leaves nothing behind', async () => {
    const err = await failure(saveSipInfoFile(path.join(dir, 'missing-dir', 'x.json'), SIP_INFO));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toContain('ENOENT');
    const forced = await failure(
      saveSipInfoFile(path.join(dir, 'missing-dir', 'x.json'), SIP_INFO, { force: true }),
    );
    expect(forced.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('ensureInstanceId', () => {
  it('adds a urn:uuid: once and returns the same one afterwards', async () => {
    const p = file('raw.json', RAW_ENTRY, 0o600);
    const id = await ensureInstanceId(p);
    expect(id).toMatch(UUID_URN);
    expect(await ensureInstanceId(p)).toBe(id);
    const json = JSON.parse(readFileSync(p, 'utf8'));
    expect(json).toEqual({ ...RAW_ENTRY, instanceId: id });
    expect((await loadSipInfoFile(p)).instanceId).toBe(id);
    if (isPosix) expect(modeOf(p)).toBe(0o600);
  });

  it('returns an existing id without rewriting the file', async () => {
    const instanceId = 'urn:uuid:6f1c2a47-3b8e-4d2a-9c71-0e5b8f4a2d13';
    const p = file('with-id.json', { ...RAW_ENTRY, instanceId });
    const before = statSync(p).mtimeMs;
    expect(await ensureInstanceId(p)).toBe(instanceId);
    expect(statSync(p).mtimeMs).toBe(before);
  });

  it('rejects a malformed existing id', async () => {
    const err = await failure(ensureInstanceId(file('bad-id.json', { ...RAW_ENTRY, instanceId: 'abc' })));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toContain('instanceId');
  });
});

describe('deriveInstanceId', () => {
  it('is a stable version-5 urn:uuid per SIP identity', () => {
    const a = deriveInstanceId(SIP_INFO);
    expect(a).toMatch(UUID_URN);
    expect(a.charAt(23)).toBe('5');
    expect(deriveInstanceId({ ...SIP_INFO })).toBe(a);
    expect(deriveInstanceId({ ...SIP_INFO, authorizationId: '1' })).not.toBe(a);
  });
});

describe('redactSipInfo', () => {
  it('hides the password and formats the proxies', () => {
    const redacted = redactSipInfo({
      ...SIP_INFO,
      instanceId: 'urn:uuid:6f1c2a47-3b8e-4d2a-9c71-0e5b8f4a2d13',
    });
    expect(redacted).toEqual({
      username: '16505550100',
      password: '<redacted>',
      authorizationId: '802512345678',
      domain: 'sip.ringcentral.com',
      outboundProxy: 'sip10.ringcentral.com:5090',
      outboundProxyBackup: 'sip20.ringcentral.com:5090',
      transport: 'TCP',
      deviceId: '802512345004',
      instanceId: 'urn:uuid:6f1c2a47-3b8e-4d2a-9c71-0e5b8f4a2d13',
    });
    expect(JSON.stringify(redacted)).not.toContain(PASSWORD);
  });
});

describe('resolveSipInfo', () => {
  const never = vi.fn(async (): Promise<SipInfo> => {
    throw new Error('provision must not be called');
  });

  beforeEach(() => {
    never.mockClear();
  });

  it('1. --sip-info FILE wins over everything else', async () => {
    file('sip-info.json', { ...RAW_ENTRY, username: 'from-default-file' });
    file('chosen.json', { ...RAW_ENTRY, username: 'from-flag' });
    const resolved = await resolveSipInfo({
      sipInfoPath: 'chosen.json',
      env: { ...FULL_ENV, SIP_INFO_USERNAME: 'from-env', ...RC_ENV },
      cwd: dir,
      provision: never,
    });
    expect(resolved.sipInfo.username).toBe('from-flag');
    expect(resolved.source).toBe('flag');
    expect(resolved.description).toBe(`file .${path.sep}chosen.json (--sip-info)`);
    expect(resolved.path).toBe(path.join(dir, 'chosen.json'));
    expect(never).not.toHaveBeenCalled();
  });

  it('names where each proxy was set (variable, or field and file), for errors that ask to fix it', async () => {
    const names = async (options: Parameters<typeof resolveSipInfo>[0]) =>
      (await resolveSipInfo(options)).proxySettingNames;
    const dot = `.${path.sep}`;
    expect(await names({ env: FULL_ENV, cwd: dir })).toEqual({
      outboundProxy: 'SIP_INFO_OUTBOUND_PROXY',
      outboundProxyBackup: 'SIP_INFO_OUTBOUND_PROXY_BACKUP',
    });
    file('bare.json', RAW_ENTRY);
    expect(await names({ sipInfoPath: 'bare.json', env: {}, cwd: dir })).toEqual({
      outboundProxy: `outboundProxy in ${dot}bare.json`,
      outboundProxyBackup: `outboundProxyBackup in ${dot}bare.json`,
    });
    file('answer.json', { sipInfo: [{ ...RAW_ENTRY, transport: 'UDP' }, RAW_ENTRY], device: { id: '1' } });
    expect((await names({ sipInfoPath: 'answer.json', env: {}, cwd: dir })).outboundProxy).toBe(
      `sipInfo[1].outboundProxy in ${dot}answer.json`,
    );
    file('sip-info.json', { version: 1, sipInfo: RAW_ENTRY });
    expect((await names({ env: {}, cwd: dir })).outboundProxyBackup).toBe(
      `sipInfo.outboundProxyBackup in ${dot}sip-info.json`,
    );
  });

  it('1. a missing --sip-info file is CONFIG_MISSING naming the flag', async () => {
    const err = await failure(resolveSipInfo({ sipInfoPath: 'nope.json', env: FULL_ENV, cwd: dir }));
    expect(err.code).toBe(ErrorCodes.CONFIG_MISSING);
    expect(err.message).toMatch(/^--sip-info nope\.json: .*nope\.json does not exist \(e\.g\. --sip-info/);
  });

  it('1. an invalid --sip-info file is CONFIG_INVALID naming the flag and the field', async () => {
    file('bad.json', { ...RAW_ENTRY, transport: 'UDP' });
    const err = await failure(resolveSipInfo({ sipInfoPath: 'bad.json', env: {}, cwd: dir }));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toMatch(/^--sip-info: Invalid SIP info file .*bad\.json: transport is UDP/);
  });

  it('2. SIP_INFO_* win over ./sip-info.json and provisioning', async () => {
    file('sip-info.json', { ...RAW_ENTRY, username: 'from-default-file' });
    const resolved = await resolveSipInfo({
      env: { ...FULL_ENV, SIP_INFO_USERNAME: 'from-env', ...RC_ENV },
      cwd: dir,
      provision: never,
    });
    expect(resolved.sipInfo.username).toBe('from-env');
    expect(resolved.source).toBe('environment');
    expect(resolved.description).toBe('environment (SIP_INFO_*)');
    // A stable derived instance id: same identity, same id, run after run.
    expect(resolved.sipInfo.instanceId).toBe(deriveInstanceId(resolved.sipInfo));
    expect(never).not.toHaveBeenCalled();
  });

  it('2. SIP_INFO_INSTANCE_ID overrides the derived id', async () => {
    const instanceId = 'urn:uuid:6f1c2a47-3b8e-4d2a-9c71-0e5b8f4a2d13';
    const resolved = await resolveSipInfo({
      env: { ...FULL_ENV, SIP_INFO_INSTANCE_ID: instanceId },
      cwd: dir,
    });
    expect(resolved.sipInfo.instanceId).toBe(instanceId);
  });

  it('2. incomplete SIP_INFO_* fail with one message listing each missing variable, without falling through', async () => {
    file('sip-info.json', RAW_ENTRY);
    const err = await failure(
      resolveSipInfo({
        env: { SIP_INFO_USERNAME: '16505550100', SIP_INFO_TRANSPORT: 'TCP', ...RC_ENV },
        cwd: dir,
        provision: never,
      }),
    );
    expect(err.code).toBe(ErrorCodes.CONFIG_MISSING);
    for (const name of [
      'SIP_INFO_PASSWORD',
      'SIP_INFO_AUTHORIZATION_ID',
      'SIP_INFO_DOMAIN',
      'SIP_INFO_OUTBOUND_PROXY',
    ]) {
      expect(err.message).toContain(`${name} is missing (e.g. ${name}=`);
    }
    expect(err.message).not.toContain('SIP_INFO_USERNAME is missing');
    expect(err.details.missing).toHaveLength(4);
    expect(never).not.toHaveBeenCalled();
  });

  it('2. invalid (not missing) SIP_INFO_* are CONFIG_INVALID', async () => {
    const err = await failure(resolveSipInfo({ env: { ...FULL_ENV, SIP_INFO_TRANSPORT: 'SCTP' }, cwd: dir }));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toContain('SIP_INFO_TRANSPORT must be TCP or TLS (e.g. SIP_INFO_TRANSPORT=TCP)');
    expect(err.message).not.toContain(PASSWORD);
  });

  it('3. ./sip-info.json is used next, and gets a persistent instance id', async () => {
    const p = file('sip-info.json', RAW_ENTRY);
    const resolved = await resolveSipInfo({ env: { ...RC_ENV }, cwd: dir, provision: never });
    expect(resolved.source).toBe('file');
    expect(resolved.description).toBe(`file .${path.sep}sip-info.json`);
    expect(resolved.sipInfo.instanceId).toMatch(UUID_URN);
    expect(JSON.parse(readFileSync(p, 'utf8')).instanceId).toBe(resolved.sipInfo.instanceId);
    const again = await resolveSipInfo({ env: {}, cwd: dir });
    expect(again.sipInfo.instanceId).toBe(resolved.sipInfo.instanceId);
    expect(resolved.warnings).toEqual([]);
    expect(never).not.toHaveBeenCalled();
  });

  it('3. warns when the file is readable by others', async () => {
    if (!isPosix) return;
    file(
      'sip-info.json',
      { ...RAW_ENTRY, instanceId: 'urn:uuid:6f1c2a47-3b8e-4d2a-9c71-0e5b8f4a2d13' },
      0o644,
    );
    const resolved = await resolveSipInfo({ env: {}, cwd: dir });
    expect(resolved.warnings).toHaveLength(1);
    expect(resolved.warnings[0]).toMatch(/readable by other users \(mode 0644\); run: chmod 600/);
  });

  it('3. falls back to a derived id (with a warning) when the file cannot be updated', async () => {
    if (!isPosix || process.getuid?.() === 0) return; // root ignores directory permissions
    file('sip-info.json', RAW_ENTRY);
    chmodSync(dir, 0o500);
    try {
      const resolved = await resolveSipInfo({ env: {}, cwd: dir });
      expect(resolved.sipInfo.instanceId).toBe(deriveInstanceId(resolved.sipInfo));
      expect(resolved.warnings.join()).toMatch(/could not save an instance id/);
    } finally {
      chmodSync(dir, 0o700);
    }
  });

  it('4. provisions when RINGCENTRAL_* are set, caches to ./sip-info.json (0600), then reuses the file', async () => {
    const provision = vi.fn(async (): Promise<SipInfo> => SIP_INFO);
    const resolved = await resolveSipInfo({ env: RC_ENV, cwd: dir, provision });
    expect(provision).toHaveBeenCalledTimes(1);
    expect(resolved.source).toBe('provisioned');
    expect(resolved.description).toBe(`RingCentral provisioning (cached to .${path.sep}sip-info.json)`);
    expect(resolved.proxySettingNames.outboundProxy).toBe(
      `sipInfo.outboundProxy in .${path.sep}sip-info.json`,
    );
    expect(resolved.sipInfo.instanceId).toMatch(UUID_URN);
    const p = path.join(dir, 'sip-info.json');
    expect(resolved.path).toBe(p);
    if (isPosix) expect(modeOf(p)).toBe(0o600);
    expect(await loadSipInfoFile(p)).toEqual(resolved.sipInfo);

    const next = await resolveSipInfo({ env: RC_ENV, cwd: dir, provision });
    expect(provision).toHaveBeenCalledTimes(1);
    expect(next.source).toBe('file');
    expect(next.sipInfo.instanceId).toBe(resolved.sipInfo.instanceId);
  });

  it('4. passes provisioning errors through', async () => {
    const boom = Object.assign(new Error('x'), { code: 'REST_AUTH_FAILED' });
    await expect(
      resolveSipInfo({ env: RC_ENV, cwd: dir, provision: async () => Promise.reject(boom) }),
    ).rejects.toBe(boom);
  });

  it('4. partial RINGCENTRAL_* name the missing ones before any provisioning', async () => {
    const err = await failure(
      resolveSipInfo({ env: { RINGCENTRAL_CLIENT_ID: 'id' }, cwd: dir, provision: never }),
    );
    expect(err.code).toBe(ErrorCodes.CONFIG_MISSING);
    expect(err.message).toContain('RINGCENTRAL_CLIENT_SECRET is not set (e.g. RINGCENTRAL_CLIENT_SECRET=');
    expect(err.message).toContain('RINGCENTRAL_JWT_TOKEN is not set (e.g. RINGCENTRAL_JWT_TOKEN=');
    expect(err.message).not.toContain('RINGCENTRAL_CLIENT_ID is not set');
    expect(never).not.toHaveBeenCalled();
  });

  it('nothing found: one CONFIG_MISSING message naming every option with examples', async () => {
    const err = await failure(resolveSipInfo({ env: {}, cwd: dir, provision: never }));
    expect(err.code).toBe(ErrorCodes.CONFIG_MISSING);
    for (const needle of [
      '--sip-info FILE (e.g. --sip-info ./sip-info.json)',
      'SIP_INFO_USERNAME=16505550100',
      'SIP_INFO_PASSWORD=',
      'SIP_INFO_AUTHORIZATION_ID=802512345678',
      'SIP_INFO_DOMAIN=sip.ringcentral.com',
      'SIP_INFO_OUTBOUND_PROXY=sip10.ringcentral.com:5090',
      'SIP_INFO_TRANSPORT=TCP',
      'SIP_INFO_OUTBOUND_PROXY_BACKUP=',
      './sip-info.json (create it with: rc-softphone provision)',
      'RINGCENTRAL_CLIENT_ID=',
      'RINGCENTRAL_CLIENT_SECRET=',
      'RINGCENTRAL_JWT_TOKEN=',
    ]) {
      expect(err.message).toContain(needle);
    }
    expect(never).not.toHaveBeenCalled();
  });

  it('RINGCENTRAL_* set but no provisioner: reports nothing found rather than provisioning', async () => {
    const err = await failure(resolveSipInfo({ env: RC_ENV, cwd: dir }));
    expect(err.code).toBe(ErrorCodes.CONFIG_MISSING);
    expect(err.message).toMatch(/^No SIP credentials found/);
  });
});
