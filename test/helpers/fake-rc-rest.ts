/**
 * A small fake of the RingCentral REST endpoints that provisioning uses, on
 * a real HTTP server (127.0.0.1, port 0):
 *
 *   POST /restapi/oauth/token                    JWT grant, Basic client auth, form body
 *   POST /restapi/v1.0/client-info/sip-provision Bearer token, JSON body
 *   POST /restapi/oauth/revoke                   Basic client auth, form body `token=…`
 *
 * Bodies follow the RingCentral API reference: OAuth errors as
 * `{error, error_description, errors:[{errorCode, message}]}`, API errors as
 * `{errorCode, message, errors:[…]}`, 429 with Retry-After. Credentials are
 * really checked (a wrong secret gets invalid_client, a wrong JWT
 * invalid_grant); other failures are chosen per endpoint with `behaviour`.
 * Every request is recorded so tests can assert on what was sent.
 */

import { X509Certificate } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { localhostCertificate } from './tls-cert.js';

export const JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export type TokenBehaviour =
  | 'ok'
  | 'bad-jwt'
  | 'bad-client'
  | 'unauthorized-grant'
  | 'rate-limited'
  | 'server-error';
export type ProvisionBehaviour =
  | 'ok'
  | 'no-permission'
  | 'user-permission'
  | 'rate-limited'
  | 'server-error'
  | 'bad-gateway-html'
  | 'token-rejected'
  | 'hang';
export type RevokeBehaviour = 'ok' | 'server-error';

export interface FakeRcRestBehaviour {
  token: TokenBehaviour;
  provision: ProvisionBehaviour;
  revoke: RevokeBehaviour;
  /** Retry-After value sent with 429 answers; null sends none. */
  retryAfter: string | null;
  /** Extra sipInfo entries placed before the requested ones (e.g. a UDP entry). */
  extraSipInfo: Record<string, unknown>[];
  /** Answer only for these transports even if others are requested (default: as requested). */
  onlyTransports: string[] | null;
  /** Drop these fields from the requested sipInfo entries (e.g. 'password'). */
  omitSipInfoFields: string[];
  /** Answer this many sip-provision requests with 429 (and Retry-After) before serving them (rate limit). */
  rateLimitProvision: number;
  /** Each new device gets its own id, username and authorization id (as RingCentral does), not FAKE_SIP's. */
  distinctDevices: boolean;
}

export interface FakeCredentials {
  clientId: string;
  clientSecret: string;
  jwt: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Parsed form body (token, revoke). */
  form?: Record<string, string>;
  /** Parsed JSON body (API calls). */
  json?: unknown;
  /** Decoded Basic credentials, if any. */
  basic?: { username: string; password: string };
  /** Bearer token, if any. */
  bearer?: string;
}

export const FAKE_SIP = {
  username: '16505550100',
  password: 'Sip-Passw0rd-Secret',
  authorizationId: '802512345678',
  domain: 'sip.ringcentral.com',
  deviceId: '802512345004',
} as const;

/** What sip-provision's TLS entries carry: a base64 (DER) X.509 certificate; here the tests' localhost one. */
export const FAKE_TLS_CERTIFICATE = new X509Certificate(localhostCertificate().cert).raw.toString('base64');

const PROXIES: Record<string, { primary: string; backup: string }> = {
  TCP: { primary: 'sip10.ringcentral.com:5090', backup: 'sip20.ringcentral.com:5090' },
  TLS: { primary: 'sip10.ringcentral.com:5096', backup: 'sip20.ringcentral.com:5096' },
  UDP: { primary: 'sip10.ringcentral.com:5090', backup: 'sip20.ringcentral.com:5090' },
};

export const DEFAULT_CREDENTIALS: FakeCredentials = {
  clientId: 'fakeClientId123',
  clientSecret: 'fakeClientSecret-XYZ-987',
  jwt: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI4MDI1MTIzNDU2NzgifQ.fake-signature-abc',
};

export class FakeRcRest {
  readonly requests: RecordedRequest[] = [];
  readonly behaviour: FakeRcRestBehaviour = {
    token: 'ok',
    provision: 'ok',
    revoke: 'ok',
    retryAfter: '60',
    extraSipInfo: [],
    onlyTransports: null,
    omitSipInfoFields: [],
    rateLimitProvision: 0,
    distinctDevices: false,
  };
  #provisioned = 0;
  readonly credentials: FakeCredentials;
  /** Access tokens issued and not revoked. */
  readonly liveTokens = new Set<string>();
  readonly #server = createServer((req, res) => this.#handle(req, res));
  #tokenCounter = 0;
  #url = '';

  private constructor(credentials: FakeCredentials) {
    this.credentials = credentials;
  }

  static async start(
    options: Partial<FakeRcRestBehaviour> & { credentials?: Partial<FakeCredentials> } = {},
  ): Promise<FakeRcRest> {
    const { credentials, ...behaviour } = options;
    const fake = new FakeRcRest({ ...DEFAULT_CREDENTIALS, ...credentials });
    Object.assign(fake.behaviour, behaviour);
    await new Promise<void>((resolve, reject) => {
      fake.#server.once('error', reject);
      fake.#server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
    });
    const { port } = fake.#server.address() as AddressInfo;
    fake.#url = `http://127.0.0.1:${port}`;
    return fake;
  }

  /** Base URL, e.g. http://127.0.0.1:41234 (use as RINGCENTRAL_SERVER_URL). */
  get url(): string {
    return this.#url;
  }

  requestsTo(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Paths of all requests, in order. */
  get paths(): string[] {
    return this.requests.map((r) => r.path);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://fake');
    const record: RecordedRequest = {
      method: req.method ?? '',
      path: url.pathname,
      headers: req.headers,
      body,
    };
    const auth = req.headers.authorization ?? '';
    if (auth.startsWith('Basic ')) {
      const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      record.basic = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    } else if (auth.startsWith('Bearer ')) {
      record.bearer = auth.slice(7);
    }
    const type = req.headers['content-type'] ?? '';
    if (type.includes('application/x-www-form-urlencoded')) {
      record.form = Object.fromEntries(new URLSearchParams(body));
    } else if (type.includes('application/json') && body !== '') {
      try {
        record.json = JSON.parse(body);
      } catch {
        // Recorded as text only.
      }
    }
    this.requests.push(record);

    const reply = this.#route(req.method ?? '', url.pathname, record);
    if (reply === 'no-reply') return; // the socket stays open until close()
    res.writeHead(reply.status, {
      ...(reply.body !== undefined ? { 'Content-Type': 'application/json;charset=UTF-8' } : {}),
      ...reply.headers,
    });
    res.end(reply.body !== undefined ? JSON.stringify(reply.body) : reply.text);
  }

  #route(method: string, path: string, record: RecordedRequest): Reply {
    if (method !== 'POST') return json(405, apiError('CMN-405', 'Method not allowed'));
    switch (path) {
      case '/restapi/oauth/token':
        return this.#token(record);
      case '/restapi/v1.0/client-info/sip-provision':
        return this.#provision(record);
      case '/restapi/oauth/revoke':
        return this.#revoke(record);
      default:
        return json(404, apiError('CMN-102', `Resource for parameter [${path}] is not found`));
    }
  }

  #rateLimited(): Reply {
    const headers: Record<string, string> = {};
    if (this.behaviour.retryAfter !== null) headers['Retry-After'] = this.behaviour.retryAfter;
    return json(429, apiError('CMN-301', 'Request rate exceeded'), headers);
  }

  #clientAuthProblem(record: RecordedRequest): Reply | null {
    if (!record.basic) {
      return json(401, oauthError('invalid_client', 'Client authentication is required', 'OAU-123'));
    }
    if (
      record.basic.username !== this.credentials.clientId ||
      record.basic.password !== this.credentials.clientSecret
    ) {
      return json(401, oauthError('invalid_client', `Invalid client: ${record.basic.username}`, 'OAU-153'));
    }
    return null;
  }

  #token(record: RecordedRequest): Reply {
    const behaviour = this.behaviour.token;
    if (behaviour === 'rate-limited') return this.#rateLimited();
    if (behaviour === 'server-error') return json(500, apiError('CMN-201', 'Service Temporary Unavailable'));
    if (behaviour === 'bad-client') {
      return json(
        401,
        oauthError('invalid_client', `Invalid client: ${record.basic?.username ?? ''}`, 'OAU-153'),
      );
    }
    const clientProblem = this.#clientAuthProblem(record);
    if (clientProblem) return clientProblem;
    const form = record.form ?? {};
    if (behaviour === 'unauthorized-grant') {
      return json(400, oauthError('unauthorized_client', 'Unauthorized for this grant type', 'OAU-251'));
    }
    if (form.grant_type !== JWT_GRANT) {
      return json(400, oauthError('unsupported_grant_type', 'Unsupported grant type', 'OAU-250'));
    }
    if (behaviour === 'bad-jwt' || form.assertion !== this.credentials.jwt) {
      return json(400, oauthError('invalid_grant', 'Invalid JWT: token is expired or malformed', 'OAU-213'));
    }
    this.#tokenCounter++;
    const accessToken = `U0pDMTFQMDFQQVMwMHxBQUJf-access-${this.#tokenCounter}`;
    this.liveTokens.add(accessToken);
    return json(200, {
      access_token: accessToken,
      token_type: 'bearer',
      expires_in: 3600,
      refresh_token: `U0pDMTFQMDFQQVMwMHxBQUJf-refresh-${this.#tokenCounter}`,
      refresh_token_expires_in: 604800,
      scope: 'ReadAccounts VoipCalling',
      owner_id: '802512345678',
      endpoint_id: 'Mp3xTCGfQ6aBT1kZ8mZ0Rw',
      session_id: '4217389612',
    });
  }

  #provision(record: RecordedRequest): Reply {
    const behaviour = this.behaviour.provision;
    if (behaviour === 'hang') return 'no-reply'; // close() tears the socket down
    if (behaviour === 'token-rejected' || !record.bearer || !this.liveTokens.has(record.bearer)) {
      return json(401, apiError('OAU-149', 'Invalid token'));
    }
    if (behaviour === 'rate-limited') return this.#rateLimited();
    if (this.behaviour.rateLimitProvision > 0) {
      this.behaviour.rateLimitProvision--;
      return this.#rateLimited();
    }
    if (behaviour === 'no-permission') {
      return json(
        403,
        apiError(
          'CMN-401',
          'In order to call this API endpoint, application needs to have [VoipCalling] permission',
          {
            permissionName: 'VoipCalling',
          },
        ),
      );
    }
    if (behaviour === 'user-permission') {
      return json(
        403,
        apiError(
          'CMN-408',
          'In order to call this API endpoint, user needs to have [VoipCalling] permission',
        ),
      );
    }
    if (behaviour === 'server-error') return json(500, apiError('CMN-201', 'Service Temporary Unavailable'));
    if (behaviour === 'bad-gateway-html') {
      return {
        status: 502,
        headers: { 'Content-Type': 'text/html' },
        text: '<html><body><h1>502 Bad Gateway</h1></body></html>',
      };
    }
    const request = (record.json ?? {}) as {
      sipInfo?: { transport?: string }[];
      device?: Record<string, unknown>;
    };
    const requested = Array.isArray(request.sipInfo) ? request.sipInfo.map((s) => s.transport ?? '') : [];
    const invalid = requested.find((t) => !(t in PROXIES));
    if (requested.length === 0 || invalid !== undefined) {
      return json(400, apiError('CMN-101', 'Parameter [sipInfo.transport] value is invalid'));
    }
    const transports = this.behaviour.onlyTransports ?? requested;
    const n = ++this.#provisioned;
    const distinct = this.behaviour.distinctDevices && typeof request.device?.id !== 'string';
    const deviceId =
      typeof request.device?.id === 'string'
        ? request.device.id
        : distinct
          ? `${FAKE_SIP.deviceId}${n}`
          : FAKE_SIP.deviceId;
    const sipInfo = transports.map((transport) => {
      const entry: Record<string, unknown> = {
        username: distinct
          ? `${FAKE_SIP.username.slice(0, -2)}${String(n).padStart(2, '0')}`
          : FAKE_SIP.username,
        password: FAKE_SIP.password,
        authorizationTypes: ['SipDigest'],
        authorizationId: distinct ? `${FAKE_SIP.authorizationId}${n}` : FAKE_SIP.authorizationId,
        domain: FAKE_SIP.domain,
        outboundProxy: PROXIES[transport]?.primary,
        outboundProxyIPv6: 'sip10-v6.ringcentral.com:5090',
        outboundProxyBackup: PROXIES[transport]?.backup,
        outboundProxyIPv6Backup: 'sip20-v6.ringcentral.com:5090',
        transport,
        switchBackInterval: 3600,
        stunServers: ['stun1.ringcentral.com:19302', 'stun2.ringcentral.com:19302'],
        // TLS entries carry a certificate (base64) for the device to trust.
        ...(transport === 'TLS' && { certificate: FAKE_TLS_CERTIFICATE }),
      };
      for (const field of this.behaviour.omitSipInfoFields) delete entry[field];
      return entry;
    });
    return json(200, {
      device: {
        uri: `https://platform.ringcentral.com/restapi/v1.0/account/802512340000/device/${deviceId}`,
        id: deviceId,
        type: 'SoftPhone',
        sku: 'DV-1',
        name: 'Softphone - Digital Line',
        serial: 'Mp3xTCGfQ6aBT1kZ8mZ0Rw',
        computerName: request.device?.computerName,
        status: 'Online',
        extension: {
          uri: 'https://platform.ringcentral.com/restapi/v1.0/account/~/extension/802512345678',
          id: 802512345678,
          extensionNumber: '101',
        },
        linePooling: 'None',
      },
      sipInfo: [...this.behaviour.extraSipInfo, ...sipInfo],
      sipInfoPstn: [],
      sipFlags: { voipFeatureEnabled: true, voipCountryBlocked: false, outboundCallsEnabled: true },
      sipErrorCodes: ['408', '502', '503', '504'],
      pollingInterval: 86400,
    });
  }

  #revoke(record: RecordedRequest): Reply {
    if (this.behaviour.revoke === 'server-error') {
      return json(500, apiError('CMN-201', 'Service Temporary Unavailable'));
    }
    const clientProblem = this.#clientAuthProblem(record);
    if (clientProblem) return clientProblem;
    const token = record.form?.token;
    if (token) this.liveTokens.delete(token);
    return { status: 200 };
  }
}

/** An HTTP answer, or none at all (to make the client time out). */
type Reply = { status: number; body?: unknown; text?: string; headers?: Record<string, string> } | 'no-reply';

function json(status: number, body: unknown, headers: Record<string, string> = {}): Reply {
  return { status, body, headers };
}

/** RingCentral OAuth error body (RFC 6749 §5.2 plus RingCentral's errors[]). */
export function oauthError(error: string, description: string, errorCode: string): unknown {
  return { error, error_description: description, errors: [{ errorCode, message: description }] };
}

/** RingCentral API error body. */
export function apiError(errorCode: string, message: string, extra: Record<string, unknown> = {}): unknown {
  return { errorCode, message, errors: [{ errorCode, message, ...extra }], ...extra };
}
