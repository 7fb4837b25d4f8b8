import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, type SoftphoneError } from '../../src/errors.js';
import {
  type ProvisionOptions,
  parseRetryAfter,
  provisionDevice,
  provisionFromEnv,
} from '../../src/rest/provision.js';
import { failure } from '../helpers/errors.js';
import {
  DEFAULT_CREDENTIALS,
  FAKE_SIP,
  FAKE_TLS_CERTIFICATE,
  FakeRcRest,
  JWT_GRANT,
} from '../helpers/fake-rc-rest.js';

const TOKEN = '/restapi/oauth/token';
const PROVISION = '/restapi/v1.0/client-info/sip-provision';
const REVOKE = '/restapi/oauth/revoke';

let fake: FakeRcRest | undefined;

afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function start(options: Parameters<typeof FakeRcRest.start>[0] = {}): Promise<FakeRcRest> {
  fake = await FakeRcRest.start(options);
  return fake;
}

function optionsFor(server: FakeRcRest, overrides: Partial<ProvisionOptions> = {}): ProvisionOptions {
  return {
    serverUrl: server.url,
    clientId: DEFAULT_CREDENTIALS.clientId,
    clientSecret: DEFAULT_CREDENTIALS.clientSecret,
    jwt: DEFAULT_CREDENTIALS.jwt,
    transport: 'tcp',
    computerName: 'bot-host-1',
    timeoutMs: 5000,
    ...overrides,
  };
}

/** Nothing secret anywhere in what an error exposes. */
function expectNoSecrets(err: SoftphoneError, extra: string[] = []): void {
  const exposed = [err.message, String(err.stack), JSON.stringify(err.details), String(err.cause ?? '')].join(
    '\n',
  );
  for (const secret of [
    DEFAULT_CREDENTIALS.clientSecret,
    DEFAULT_CREDENTIALS.jwt,
    FAKE_SIP.password,
    'access-1',
    'refresh-1',
    ...extra,
  ]) {
    expect(exposed).not.toContain(secret);
  }
}

/** A loopback port with nothing listening. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('provisionDevice: success', () => {
  it('authorizes with the JWT grant, provisions over TCP and revokes the token', async () => {
    const server = await start();
    const result = await provisionDevice(optionsFor(server));

    expect(result.deviceId).toBe(FAKE_SIP.deviceId);
    expect(result.sipInfo).toEqual({
      username: FAKE_SIP.username,
      password: FAKE_SIP.password,
      authorizationId: FAKE_SIP.authorizationId,
      domain: FAKE_SIP.domain,
      outboundProxy: { host: 'sip10.ringcentral.com', port: 5090 },
      outboundProxyBackup: { host: 'sip20.ringcentral.com', port: 5090 },
      transport: 'tcp',
      deviceId: FAKE_SIP.deviceId,
    });
    expect(result.sipInfo.instanceId).toBeUndefined();
    expect(result.warnings).toEqual([]);
    expect(result.raw.pollingInterval).toBe(86400);

    expect(server.paths).toEqual([TOKEN, PROVISION, REVOKE]);
    const [token, provision, revoke] = server.requests;

    // Token: form-encoded JWT grant with Basic client authentication.
    expect(token?.headers['content-type']).toContain('application/x-www-form-urlencoded');
    expect(token?.basic).toEqual({
      username: DEFAULT_CREDENTIALS.clientId,
      password: DEFAULT_CREDENTIALS.clientSecret,
    });
    expect(token?.form?.grant_type).toBe(JWT_GRANT);
    expect(token?.form?.assertion).toBe(DEFAULT_CREDENTIALS.jwt);
    expect(token?.headers['x-user-agent']).toMatch(/^rc-softphone\/\d+\.\d+\.\d+ /);

    // Provision: bearer token, JSON body with the transport and computer name.
    expect(provision?.bearer).toBe('U0pDMTFQMDFQQVMwMHxBQUJf-access-1');
    expect(provision?.json).toEqual({
      sipInfo: [{ transport: 'TCP' }],
      device: { computerName: 'bot-host-1' },
    });

    // Revoke: the access token, Basic client auth.
    expect(revoke?.form?.token).toBe('U0pDMTFQMDFQQVMwMHxBQUJf-access-1');
    expect(revoke?.basic?.username).toBe(DEFAULT_CREDENTIALS.clientId);
    expect(server.liveTokens.size).toBe(0);
  });

  it('asks for TLS with --transport tls and picks the TLS entry among others', async () => {
    const server = await start({
      extraSipInfo: [
        {
          username: 'u',
          password: 'p',
          authorizationId: 'a',
          domain: 'sip.ringcentral.com',
          outboundProxy: 'udp.example.com:5090',
          transport: 'UDP',
        },
        {
          username: 'u',
          password: 'p',
          authorizationId: 'a',
          domain: 'sip.ringcentral.com',
          outboundProxy: 'tcp.example.com:5090',
          transport: 'TCP',
        },
      ],
    });
    const result = await provisionDevice(optionsFor(server, { transport: 'tls' }));
    expect(server.requestsTo(PROVISION)[0]?.json).toMatchObject({ sipInfo: [{ transport: 'TLS' }] });
    expect(result.sipInfo.transport).toBe('tls');
    expect(result.sipInfo.outboundProxy).toEqual({ host: 'sip10.ringcentral.com', port: 5096 });
    expect(result.sipInfo.outboundProxyBackup).toEqual({ host: 'sip20.ringcentral.com', port: 5096 });
    // The TLS entry's certificate is kept: the device trusts it when it connects.
    expect(result.sipInfo.certificate).toBe(FAKE_TLS_CERTIFICATE);
  });

  it('re-provisions an existing device when given its id', async () => {
    const server = await start();
    const result = await provisionDevice(optionsFor(server, { deviceId: '802599990000' }));
    expect(server.requestsTo(PROVISION)[0]?.json).toEqual({
      sipInfo: [{ transport: 'TCP' }],
      device: { computerName: 'bot-host-1', id: '802599990000' },
    });
    expect(result.deviceId).toBe('802599990000');
  });

  it('sends the requests through an injected fetch', async () => {
    const server = await start();
    const seen: string[] = [];
    const result = await provisionDevice(
      optionsFor(server, {
        fetch: async (input, init) => {
          seen.push(String(input instanceof Request ? input.url : input));
          return fetch(input, init);
        },
      }),
    );
    expect(result.deviceId).toBe(FAKE_SIP.deviceId);
    expect(seen.map((u) => new URL(u).pathname)).toEqual([TOKEN, PROVISION, REVOKE]);
    expect(server.requestsTo(TOKEN)[0]?.form?.grant_type).toBe(JWT_GRANT);
  });

  it('turns a failed revoke after success into a warning', async () => {
    const server = await start({ revoke: 'server-error' });
    const result = await provisionDevice(optionsFor(server));
    expect(result.deviceId).toBe(FAKE_SIP.deviceId);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(/could not revoke/);
    expect(result.warnings[0]).toContain('/restapi/oauth/revoke failed: HTTP 500');
    expect(result.warnings.join()).not.toContain(DEFAULT_CREDENTIALS.clientSecret);
  });
});

describe('provisionDevice: credential failures', () => {
  it('maps a rejected JWT (400 invalid_grant) to REST_AUTH_FAILED and never provisions', async () => {
    const server = await start();
    const err = await failure(provisionDevice(optionsFor(server, { jwt: 'eyJ.wrong.jwt-value' })));
    expect(err.code).toBe(ErrorCodes.REST_AUTH_FAILED);
    expect(err.message).toContain('RingCentral rejected the JWT or client credentials');
    expect(err.message).toContain('Invalid JWT: token is expired or malformed');
    expect(err.message).toContain('invalid_grant');
    expect(err.message).toContain(
      'RINGCENTRAL_JWT_TOKEN / RINGCENTRAL_CLIENT_ID / RINGCENTRAL_CLIENT_SECRET',
    );
    expect(err.details).toMatchObject({
      status: 400,
      error: 'invalid_grant',
      errorCode: 'OAU-213',
      stage: 'token',
    });
    expect(server.paths).toEqual([TOKEN]); // no token → nothing to revoke
    expectNoSecrets(err, ['eyJ.wrong.jwt-value']);
  });

  it('maps a wrong client secret (401 invalid_client) to REST_AUTH_FAILED', async () => {
    const server = await start();
    const err = await failure(provisionDevice(optionsFor(server, { clientSecret: 'totally-wrong-secret' })));
    expect(err.code).toBe(ErrorCodes.REST_AUTH_FAILED);
    expect(err.message).toContain(`Invalid client: ${DEFAULT_CREDENTIALS.clientId}`);
    expect(err.message).toContain('invalid_client');
    expect(err.message).toMatch(/client id\/secret/);
    expect(err.details).toMatchObject({ status: 401, error: 'invalid_client' });
    expect(server.paths).toEqual([TOKEN]);
    expectNoSecrets(err, ['totally-wrong-secret']);
  });

  it('maps a forced bad-client answer the same way', async () => {
    const server = await start({ token: 'bad-client' });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_AUTH_FAILED);
    expectNoSecrets(err);
  });

  it('explains an app without the JWT grant (unauthorized_client)', async () => {
    const server = await start({ token: 'unauthorized-grant' });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_AUTH_FAILED);
    expect(err.message).toContain('Unauthorized for this grant type');
    expect(err.message).toMatch(/JWT auth flow/);
  });

  it('maps a 401 on sip-provision (token rejected) to REST_AUTH_FAILED and still revokes', async () => {
    const server = await start({ provision: 'token-rejected' });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_AUTH_FAILED);
    expect(err.details).toMatchObject({ status: 401, stage: 'provision', errorCode: 'OAU-149' });
    expect(server.paths).toEqual([TOKEN, PROVISION, REVOKE]);
  });
});

describe('provisionDevice: API failures (revoke always follows)', () => {
  it('maps 403 CMN-401 to REST_PERMISSION naming the VoIP Calling app permission', async () => {
    const server = await start({ provision: 'no-permission' });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_PERMISSION);
    expect(err.message).toContain('"VoIP Calling" permission');
    expect(err.message).toContain('CMN-401');
    expect(err.message).toMatch(/developer console/);
    expect(err.details).toMatchObject({ status: 403, errorCode: 'CMN-401', permission: 'VoipCalling' });
    expect(server.paths).toEqual([TOKEN, PROVISION, REVOKE]);
    expect(server.liveTokens.size).toBe(0);
    expectNoSecrets(err);
  });

  it('maps 403 CMN-408 to REST_PERMISSION naming the user permission', async () => {
    const server = await start({ provision: 'user-permission' });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_PERMISSION);
    expect(err.message).toMatch(/user needs the "VoIP Calling" permission/);
  });

  it('maps 429 to REST_RATE_LIMITED with the Retry-After seconds', async () => {
    const server = await start({ provision: 'rate-limited', retryAfter: '37' });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_RATE_LIMITED);
    expect(err.details.retryAfterSeconds).toBe(37);
    expect(err.message).toContain('retry after 37 s');
    expect(err.message).toContain('Request rate exceeded');
    expect(server.paths).toEqual([TOKEN, PROVISION, REVOKE]);
  });

  it('maps 429 on the token endpoint with an HTTP-date Retry-After', async () => {
    const when = new Date(Date.now() + 120_000).toUTCString();
    const server = await start({ token: 'rate-limited', retryAfter: when });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_RATE_LIMITED);
    const seconds = err.details.retryAfterSeconds as number;
    expect(seconds).toBeGreaterThanOrEqual(115);
    expect(seconds).toBeLessThanOrEqual(121);
    expect(server.paths).toEqual([TOKEN]);
  });

  it('maps 429 without Retry-After to REST_RATE_LIMITED with the default advice', async () => {
    const server = await start({ provision: 'rate-limited', retryAfter: null });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_RATE_LIMITED);
    expect(err.details.retryAfterSeconds).toBeUndefined();
    expect(err.message).toMatch(/about a minute/);
  });

  it('maps 500 to REST_ERROR with the status and message', async () => {
    const server = await start({ provision: 'server-error' });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_ERROR);
    expect(err.message).toContain('HTTP 500');
    expect(err.message).toContain('Service Temporary Unavailable');
    expect(err.details).toMatchObject({ status: 500, errorCode: 'CMN-201' });
    expect(server.paths).toEqual([TOKEN, PROVISION, REVOKE]);
  });

  it('maps 500 on the token endpoint to REST_ERROR (not an auth failure)', async () => {
    const server = await start({ token: 'server-error' });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_ERROR);
    expect(err.details).toMatchObject({ status: 500, stage: 'token' });
  });

  it('does not quote an HTML error page', async () => {
    const server = await start({ provision: 'bad-gateway-html' });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_ERROR);
    expect(err.message).toContain('HTTP 502');
    expect(err.message).not.toContain('<html>');
  });

  it('fails clearly when no entry matches the transport, and still revokes', async () => {
    const server = await start({ onlyTransports: ['TCP'] });
    const err = await failure(provisionDevice(optionsFor(server, { transport: 'tls' })));
    expect(err.code).toBe(ErrorCodes.REST_ERROR);
    expect(err.message).toContain('no SIP info for transport TLS (offered: TCP)');
    expect(server.paths).toEqual([TOKEN, PROVISION, REVOKE]);
  });

  it('fails clearly when the answer has no SIP password', async () => {
    const server = await start({ omitSipInfoFields: ['password'] });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_ERROR);
    expect(err.message).toContain('sipInfo[0].password is missing');
    expect(err.message).toMatch(/digest/);
    expect(server.paths).toEqual([TOKEN, PROVISION, REVOKE]);
  });

  it('keeps the original error when the revoke after a failure also fails', async () => {
    const server = await start({ provision: 'no-permission', revoke: 'server-error' });
    const err = await failure(provisionDevice(optionsFor(server)));
    expect(err.code).toBe(ErrorCodes.REST_PERMISSION);
    expect(server.paths).toEqual([TOKEN, PROVISION, REVOKE]);
  });
});

describe('provisionDevice: network failures', () => {
  it('maps a refused connection to REST_NETWORK naming the server URL', async () => {
    const port = await closedPort();
    const serverUrl = `http://127.0.0.1:${port}`;
    const err = await failure(
      provisionDevice({ ...optionsFor({ url: serverUrl } as FakeRcRest), serverUrl }),
    );
    expect(err.code).toBe(ErrorCodes.REST_NETWORK);
    expect(err.message).toContain(serverUrl);
    expect(err.message).toContain('connection refused');
    expect(err.message).toContain('RINGCENTRAL_SERVER_URL');
    expect(err.details.errno).toBe('ECONNREFUSED');
    expect(err.cause).toBeUndefined();
    expectNoSecrets(err);
  });

  it('maps a DNS failure surfaced through fetch to REST_NETWORK', async () => {
    const err = await failure(
      provisionDevice({
        ...optionsFor({ url: 'https://platform.example.invalid' } as FakeRcRest),
        fetch: async () => {
          const cause = Object.assign(new Error('getaddrinfo ENOTFOUND platform.example.invalid'), {
            code: 'ENOTFOUND',
          });
          throw new TypeError('fetch failed', { cause });
        },
      }),
    );
    expect(err.code).toBe(ErrorCodes.REST_NETWORK);
    expect(err.message).toContain('https://platform.example.invalid');
    expect(err.message).toContain('host name not found');
    expect(err.details.errno).toBe('ENOTFOUND');
  });

  it('maps a timeout to REST_NETWORK and still revokes the token', async () => {
    const server = await start({ provision: 'hang' });
    const err = await failure(provisionDevice(optionsFor(server, { timeoutMs: 300 })));
    expect(err.code).toBe(ErrorCodes.REST_NETWORK);
    expect(err.message).toMatch(/did not answer within 0\.3 s/);
    expect(err.message).toContain(server.url);
    expect(server.paths).toEqual([TOKEN, PROVISION, REVOKE]);
  });

  it('rejects an unusable server URL before any request', async () => {
    const err = await failure(provisionDevice({ ...optionsFor({ url: 'ftp://x' } as FakeRcRest) }));
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toContain('RINGCENTRAL_SERVER_URL');
  });
});

describe('provisionFromEnv', () => {
  it('lists every missing RINGCENTRAL_* variable with an example before any network I/O', async () => {
    const server = await start();
    const err = await failure(provisionFromEnv({ RINGCENTRAL_SERVER_URL: server.url }, { transport: 'tcp' }));
    expect(err.code).toBe(ErrorCodes.CONFIG_MISSING);
    for (const name of ['RINGCENTRAL_CLIENT_ID', 'RINGCENTRAL_CLIENT_SECRET', 'RINGCENTRAL_JWT_TOKEN']) {
      expect(err.message).toContain(`${name} is not set (e.g. ${name}=`);
    }
    expect(err.details.missing).toEqual([
      'RINGCENTRAL_CLIENT_ID',
      'RINGCENTRAL_CLIENT_SECRET',
      'RINGCENTRAL_JWT_TOKEN',
    ]);
    expect(server.requests).toHaveLength(0);
  });

  it('names only the missing one when the others are set', async () => {
    const err = await failure(
      provisionFromEnv(
        { RINGCENTRAL_CLIENT_ID: 'id', RINGCENTRAL_JWT_TOKEN: 'jwt-value-here' },
        { transport: 'tcp' },
      ),
    );
    expect(err.code).toBe(ErrorCodes.CONFIG_MISSING);
    expect(err.details.missing).toEqual(['RINGCENTRAL_CLIENT_SECRET']);
    expect(err.message).not.toContain('jwt-value-here');
  });

  it('reports a bad RINGCENTRAL_SERVER_URL as CONFIG_INVALID', async () => {
    const err = await failure(
      provisionFromEnv(
        {
          RINGCENTRAL_CLIENT_ID: 'id',
          RINGCENTRAL_CLIENT_SECRET: 'secret-value',
          RINGCENTRAL_JWT_TOKEN: 'jwt-value',
          RINGCENTRAL_SERVER_URL: 'platform.ringcentral.com',
        },
        { transport: 'tcp' },
      ),
    );
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toContain('RINGCENTRAL_SERVER_URL is not a URL');
  });

  it('provisions with the environment credentials and the host name by default', async () => {
    const server = await start();
    const result = await provisionFromEnv(
      {
        RINGCENTRAL_SERVER_URL: server.url,
        RINGCENTRAL_CLIENT_ID: DEFAULT_CREDENTIALS.clientId,
        RINGCENTRAL_CLIENT_SECRET: DEFAULT_CREDENTIALS.clientSecret,
        RINGCENTRAL_JWT_TOKEN: DEFAULT_CREDENTIALS.jwt,
      },
      { transport: 'tcp' },
    );
    expect(result.sipInfo.username).toBe(FAKE_SIP.username);
    const { hostname } = await import('node:os');
    expect(server.requestsTo(PROVISION)[0]?.json).toMatchObject({ device: { computerName: hostname() } });
    expect(server.paths).toEqual([TOKEN, PROVISION, REVOKE]);
  });
});

describe('parseRetryAfter', () => {
  it.each([
    ['60', 60],
    [' 0 ', 0],
    ['soon', undefined],
    [undefined, undefined],
  ])('%s → %s', (value, expected) => {
    expect(parseRetryAfter(value)).toBe(expected);
  });

  it('turns an HTTP-date into seconds from now, never negative', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:01:30 GMT', now)).toBe(90);
    expect(parseRetryAfter('Sun, 31 Dec 2023 23:00:00 GMT', now)).toBe(0);
  });
});
