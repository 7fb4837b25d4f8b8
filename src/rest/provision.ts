/**
 * RingCentral device provisioning over REST (@rc-ex/core): JWT grant, then
 * `POST /restapi/v1.0/client-info/sip-provision`, then the token is revoked —
 * whatever happened in between.
 *
 * Failures become SoftphoneErrors with stable codes and messages that say
 * what to fix. @rc-ex/core's RestException (and axios's errors) carry the
 * whole request — the JWT assertion, the Basic client credentials, the bearer
 * token — in their message and config, so they are never passed on as a
 * `cause`, and every message we build is scrubbed of known secrets as a last
 * line of defence.
 */
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import RingCentral from '@rc-ex/core';
import type CreateSipRegistrationRequest from '@rc-ex/core/definitions/CreateSipRegistrationRequest';
import type CreateSipRegistrationResponse from '@rc-ex/core/definitions/CreateSipRegistrationResponse';
import {
  type Env,
  ringCentralCredentialsFromEnv,
  type SipInfo,
  type SipTransport,
  serverUrlProblem,
  sipInfoFromRingCentral,
} from '../config/sip-info.js';
import { ErrorCodes, SoftphoneError } from '../errors.js';

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface ProvisionOptions {
  /** E.g. https://platform.ringcentral.com or https://platform.devtest.ringcentral.com. */
  serverUrl: string;
  clientId: string;
  clientSecret: string;
  jwt: string;
  transport: SipTransport;
  /** `device.computerName`, normally the host name. */
  computerName: string;
  /** Re-provision this existing device (`device.id`) instead of creating one. */
  deviceId?: string;
  /** Send the HTTP requests through this fetch (axios's fetch adapter) instead of node:http. */
  fetch?: FetchLike;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
}

export interface ProvisionResult {
  /** The entry matching the requested transport, with `deviceId` set. No instanceId (that's the file's job). */
  sipInfo: SipInfo;
  deviceId: string;
  /** The whole sip-provision answer. Holds the SIP password: never log it. */
  raw: CreateSipRegistrationResponse;
  /** Non-fatal problems (e.g. the token could not be revoked); no secrets. */
  warnings: string[];
}

export const DEFAULT_REST_TIMEOUT_MS = 30_000;

const ENDPOINTS: Readonly<Record<Stage, string>> = {
  token: '/restapi/oauth/token',
  provision: 'sip-provision',
  revoke: '/restapi/oauth/revoke',
};
const CREDENTIAL_VARS = 'RINGCENTRAL_JWT_TOKEN / RINGCENTRAL_CLIENT_ID / RINGCENTRAL_CLIENT_SECRET';

/** RingCentral's permission ids as the developer console names them. */
const PERMISSION_NAMES: Readonly<Record<string, string>> = {
  VoipCalling: 'VoIP Calling',
  ReadAccounts: 'Read Accounts',
};

/** Sent as X-User-Agent (RingCentral rejects some clients without a parseable app version, SPR-122). */
const APP_VERSION = ((): string => {
  try {
    const pkg = createRequire(import.meta.url)('../../package.json') as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

type Stage = 'token' | 'provision' | 'revoke';

class Scrubber {
  readonly #secrets: string[] = [];
  add(secret: string | undefined): void {
    if (secret && secret.length >= 4 && !this.#secrets.includes(secret)) this.#secrets.push(secret);
  }
  scrub(text: string): string {
    let out = text;
    for (const secret of this.#secrets) out = out.split(secret).join('***');
    return out;
  }
}

function transportName(transport: SipTransport): 'TCP' | 'TLS' {
  return transport === 'tls' ? 'TLS' : 'TCP';
}

/** The server URL without path noise, for messages. */
function shownServer(serverUrl: string): string {
  try {
    return new URL(serverUrl).origin;
  } catch {
    return serverUrl;
  }
}

/**
 * The REST client for one provisioning run, after checking the server URL:
 * @rc-ex/core with our timeout (and fetch, for tests), and a scrubber that
 * knows the run's secrets.
 */
function restClient(options: {
  serverUrl: string;
  clientId: string;
  clientSecret: string;
  jwt: string;
  fetch?: FetchLike | undefined;
  timeoutMs?: number | undefined;
}): { rc: RingCentral; context: { serverUrl: string; timeoutMs: number; scrubber: Scrubber } } {
  const urlProblem = serverUrlProblem(options.serverUrl);
  if (urlProblem !== null) {
    throw new SoftphoneError(
      ErrorCodes.CONFIG_INVALID,
      `RINGCENTRAL_SERVER_URL ${urlProblem} (e.g. RINGCENTRAL_SERVER_URL=https://platform.ringcentral.com)`,
      { details: { variable: 'RINGCENTRAL_SERVER_URL' } },
    );
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_REST_TIMEOUT_MS;
  const scrubber = new Scrubber();
  scrubber.add(options.clientSecret);
  scrubber.add(options.jwt);
  const rc = new RingCentral({
    server: options.serverUrl,
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    appName: 'rc-softphone',
    appVersion: APP_VERSION,
  });
  const http = rc.rest.httpClient;
  http.defaults.timeout = timeoutMs;
  if (options.fetch) {
    http.defaults.adapter = 'fetch';
    http.defaults.env = { ...http.defaults.env, fetch: options.fetch };
  }
  return { rc, context: { serverUrl: options.serverUrl, timeoutMs, scrubber } };
}

/**
 * Provisions a SIP device for the JWT's user and returns the SIP credentials
 * for `transport`. Calls, in order: `rc.authorize({ jwt })` (POST
 * /restapi/oauth/token, grant urn:ietf:params:oauth:grant-type:jwt-bearer,
 * Basic client auth), `rc.restapi().clientInfo().sipProvision().post(...)`,
 * and — in `finally`, whenever a token was issued — `rc.revoke()` (POST
 * /restapi/oauth/revoke). A revoke failure after a success is a warning, not
 * an error; after a failure, the original error wins.
 *
 * Throws REST_AUTH_FAILED, REST_PERMISSION, REST_RATE_LIMITED (details.retryAfterSeconds),
 * REST_NETWORK, REST_ERROR, or CONFIG_INVALID for an unusable server URL.
 */
export async function provisionDevice(options: ProvisionOptions): Promise<ProvisionResult> {
  const { rc, context } = restClient(options);
  const { scrubber } = context;
  const warnings: string[] = [];
  let stage: Stage = 'token';
  let outcome: { sipInfo: SipInfo; deviceId: string; raw: CreateSipRegistrationResponse } | undefined;
  let failure: unknown;
  try {
    await rc.authorize({ jwt: options.jwt });
    scrubber.add(rc.token?.access_token);
    scrubber.add(rc.token?.refresh_token);
    stage = 'provision';
    const request: CreateSipRegistrationRequest = {
      sipInfo: [{ transport: transportName(options.transport) }],
      device: {
        computerName: options.computerName,
        ...(options.deviceId !== undefined ? { id: options.deviceId } : {}),
      },
    };
    const raw = await rc.restapi().clientInfo().sipProvision().post(request);
    outcome = pickSipInfo(raw, options.transport, scrubber);
  } catch (err) {
    failure = err instanceof SoftphoneError ? err : mapRestError(err, stage, context);
  }

  await revokeToken(rc, context, warnings);

  if (failure !== undefined || outcome === undefined) throw failure;
  return { ...outcome, warnings };
}

export interface ProvisionManyOptions extends Omit<ProvisionOptions, 'deviceId' | 'computerName'> {
  count: number;
  /** `device.computerName` of the i-th device (1-based). */
  computerName: (index: number) => string;
  /**
   * Called with each device as soon as it is provisioned, before the next
   * request (save it here: a later failure must not lose it). A throw stops
   * the run with that error.
   */
  onDevice: (result: ProvisionResult, index: number) => Promise<void>;
  /** Told before each wait on a 429 (Retry-After, or a minute without one). */
  onRateLimited?: (info: {
    stage: 'token' | 'provision';
    index: number;
    waitMs: number;
    attempt: number;
  }) => void;
  /** Waits on one 429 at most this long (default 5 min) and this many times in a row (default 5). */
  maxWaitMs?: number;
  maxRetries?: number;
  /** The wait (tests pass a fast one). */
  sleep?: (ms: number) => Promise<void>;
}

/** Without Retry-After, RingCentral's penalty interval for an exceeded rate. */
const DEFAULT_RATE_LIMIT_WAIT_MS = 60_000;

/**
 * Provisions `count` devices with one access token: JWT grant once, then
 * one `sip-provision` per device, one after the other, then the token is
 * revoked. Rate-limit aware: a 429 (on the token or on sip-provision) is
 * waited out as its Retry-After says (a minute when it says nothing), at
 * most `maxRetries` times in a row and `maxWaitMs` each; beyond that the
 * REST_RATE_LIMITED error ends the run. Devices provisioned before a failure
 * were already handed to `onDevice`. Resolves with the warnings.
 */
export async function provisionDevices(options: ProvisionManyOptions): Promise<{ warnings: string[] }> {
  const { rc, context } = restClient(options);
  const { scrubber } = context;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const maxWaitMs = options.maxWaitMs ?? 300_000;
  const maxRetries = options.maxRetries ?? 5;
  const warnings: string[] = [];

  /** Runs one REST step, waiting out 429s within the limits. */
  const withRateLimit = async <T>(
    stage: 'token' | 'provision',
    index: number,
    step: () => Promise<T>,
  ): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (err) {
        const mapped = err instanceof SoftphoneError ? err : mapRestError(err, stage, context);
        if (mapped.code !== ErrorCodes.REST_RATE_LIMITED || attempt > maxRetries) throw mapped;
        const after = mapped.details.retryAfterSeconds;
        const waitMs = typeof after === 'number' ? after * 1000 : DEFAULT_RATE_LIMIT_WAIT_MS;
        if (waitMs > maxWaitMs) throw mapped;
        options.onRateLimited?.({ stage, index, waitMs, attempt });
        await sleep(waitMs);
      }
    }
  };

  let failure: unknown;
  try {
    await withRateLimit('token', 0, () => rc.authorize({ jwt: options.jwt }));
    scrubber.add(rc.token?.access_token);
    scrubber.add(rc.token?.refresh_token);
    for (let index = 1; index <= options.count; index++) {
      const request: CreateSipRegistrationRequest = {
        sipInfo: [{ transport: transportName(options.transport) }],
        device: { computerName: options.computerName(index) },
      };
      const raw = await withRateLimit('provision', index, () =>
        rc.restapi().clientInfo().sipProvision().post(request),
      );
      const outcome = pickSipInfo(raw, options.transport, scrubber);
      await options.onDevice({ ...outcome, warnings: [] }, index);
    }
  } catch (err) {
    failure = err instanceof SoftphoneError ? err : mapRestError(err, 'provision', context);
  }
  await revokeToken(rc, context, warnings);
  if (failure !== undefined) throw failure;
  return { warnings };
}

/** The sipInfo entry for `transport`, validated, plus device.id. */
/** Revokes the access token we got, if we got one; a failure is a warning (it expires on its own). */
async function revokeToken(rc: RingCentral, context: ErrorContext, warnings: string[]): Promise<void> {
  if (rc.token === undefined) return;
  try {
    await rc.revoke();
  } catch (err) {
    const why = mapRestError(err, 'revoke', context);
    warnings.push(`could not revoke the RingCentral access token (it expires on its own): ${why.message}`);
  }
}

function pickSipInfo(
  raw: CreateSipRegistrationResponse,
  transport: SipTransport,
  scrubber: Scrubber,
): { sipInfo: SipInfo; deviceId: string; raw: CreateSipRegistrationResponse } {
  const wanted = transportName(transport);
  const entries: unknown[] = Array.isArray(raw?.sipInfo) ? raw.sipInfo : [];
  for (const entry of entries) scrubber.add((entry as { password?: string } | null)?.password);
  const index = entries.findIndex((entry) => {
    const t = (entry as { transport?: unknown } | null)?.transport;
    return typeof t === 'string' && t.toUpperCase() === wanted;
  });
  if (index < 0) {
    const offered = entries
      .map((entry) => (entry as { transport?: unknown } | null)?.transport)
      .filter((t): t is string => typeof t === 'string');
    throw new SoftphoneError(
      ErrorCodes.REST_ERROR,
      `RingCentral's sip-provision answer has no SIP info for transport ${wanted} (offered: ${offered.length > 0 ? offered.join(', ') : 'none'})`,
      { details: { transport: wanted, offered } },
    );
  }
  const deviceId = raw.device?.id;
  if (typeof deviceId !== 'string' || deviceId.trim() === '') {
    throw new SoftphoneError(ErrorCodes.REST_ERROR, "RingCentral's sip-provision answer has no device.id");
  }
  const result = sipInfoFromRingCentral(entries[index], { deviceId }, `sipInfo[${index}]`);
  if (!result.ok) {
    const hint = !(entries[index] as { password?: unknown }).password
      ? ' (no password: SIP digest authentication may not be enabled for this app or device)'
      : '';
    throw new SoftphoneError(
      ErrorCodes.REST_ERROR,
      scrubber.scrub(`RingCentral's sip-provision answer is unusable: ${result.problems.join('; ')}${hint}`),
      { details: { problems: result.problems.map((p) => scrubber.scrub(p)) } },
    );
  }
  return { sipInfo: result.sipInfo, deviceId: deviceId.trim(), raw };
}

// ---------------------------------------------------------------------------
// Error mapping

interface ErrorContext {
  serverUrl: string;
  timeoutMs: number;
  scrubber: Scrubber;
}

interface HttpFailure {
  status: number;
  statusText: string;
  headers: unknown;
  data: unknown;
}

/** A RestException (or anything shaped like one): an HTTP answer outside 2xx. */
function httpFailureOf(err: unknown): HttpFailure | undefined {
  const response = (err as { response?: unknown } | null)?.response;
  if (typeof response !== 'object' || response === null) return undefined;
  const { status, statusText, headers, data } = response as Record<string, unknown>;
  if (typeof status !== 'number') return undefined;
  return { status, statusText: typeof statusText === 'string' ? statusText : '', headers, data };
}

function header(headers: unknown, name: string): string | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined;
  const get = (headers as { get?: unknown }).get;
  if (typeof get === 'function') {
    const value: unknown = get.call(headers, name);
    if (typeof value === 'string') return value;
  }
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) {
      if (typeof value === 'string') return value;
      if (Array.isArray(value) && typeof value[0] === 'string') return value[0];
    }
  }
  return undefined;
}

/** Retry-After as seconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

interface RcErrorBody {
  /** OAuth `error`, e.g. invalid_grant. */
  error?: string;
  /** OAuth `error_description` or the API `message`. */
  description?: string;
  /** The API `errorCode` (first one), e.g. CMN-401. */
  errorCode?: string;
  permissionName?: string;
}

function clip(text: string, max = 300): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max)}…` : oneLine;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? clip(value) : undefined;
}

/**
 * Reads the two error shapes RingCentral uses: OAuth
 * `{error, error_description, errors:[{errorCode, message}]}` and API
 * `{errorCode, message, errors:[{errorCode, message, ...}]}`. A non-JSON body
 * (an HTML page from a proxy) yields nothing: it is not worth quoting.
 */
function readErrorBody(data: unknown): RcErrorBody {
  let body = data;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      return {};
    }
  }
  if (typeof body !== 'object' || body === null) return {};
  const b = body as Record<string, unknown>;
  const first = Array.isArray(b.errors) ? (b.errors[0] as Record<string, unknown> | undefined) : undefined;
  const result: RcErrorBody = {};
  const error = str(b.error);
  const description = str(b.error_description) ?? str(b.message) ?? str(first?.message);
  const errorCode = str(b.errorCode) ?? str(first?.errorCode);
  const permissionName = str(b.permissionName) ?? str(first?.permissionName);
  if (error) result.error = error;
  if (description) result.description = description;
  if (errorCode) result.errorCode = errorCode;
  if (permissionName) result.permissionName = permissionName;
  return result;
}

function authHint(error: string | undefined): string {
  switch (error) {
    case 'invalid_client':
      return ' (the client id/secret pair is wrong, or belongs to another environment than RINGCENTRAL_SERVER_URL)';
    case 'invalid_grant':
      return ' (the JWT is malformed, expired or revoked, or was issued for another app or environment)';
    case 'unauthorized_client':
      return " (the app is not allowed to use the JWT grant: enable 'JWT auth flow' in the app's settings)";
    default:
      return '';
  }
}

function mapHttpFailure(failure: HttpFailure, stage: Stage, context: ErrorContext): SoftphoneError {
  const body = readErrorBody(failure.data);
  const status = `HTTP ${failure.status}${failure.statusText ? ` ${failure.statusText}` : ''}`;
  const codes = [body.error, body.errorCode].filter((c): c is string => c !== undefined);
  const what = `${body.description ?? status}${codes.length > 0 ? ` (${codes.join(', ')})` : ''}`;
  const details: Record<string, unknown> = {
    status: failure.status,
    stage,
    serverUrl: shownServer(context.serverUrl),
  };
  if (body.error) details.error = body.error;
  if (body.errorCode) details.errorCode = body.errorCode;
  const endpoint = ENDPOINTS[stage];

  if (failure.status === 429) {
    const retryAfterSeconds = parseRetryAfter(header(failure.headers, 'retry-after'));
    details.retryAfterSeconds = retryAfterSeconds;
    const wait =
      retryAfterSeconds === undefined
        ? 'wait about a minute (RingCentral penalty interval) before retrying'
        : `retry after ${retryAfterSeconds} s (Retry-After)`;
    return new SoftphoneError(
      ErrorCodes.REST_RATE_LIMITED,
      `RingCentral rate limit reached on ${endpoint}: ${what}; ${wait}`,
      { details },
    );
  }

  // A failed revoke is only a warning; "check your JWT" would mislead there.
  const oauthRejection =
    stage !== 'revoke' &&
    body.error !== undefined &&
    ['invalid_grant', 'invalid_client', 'unauthorized_client'].includes(body.error);
  if ((stage === 'token' && failure.status >= 400 && failure.status < 500) || oauthRejection) {
    return new SoftphoneError(
      ErrorCodes.REST_AUTH_FAILED,
      `RingCentral rejected the JWT or client credentials: ${what}; check ${CREDENTIAL_VARS}${authHint(body.error)}`,
      { details },
    );
  }
  if (failure.status === 401) {
    return new SoftphoneError(
      ErrorCodes.REST_AUTH_FAILED,
      `RingCentral rejected the access token on ${endpoint}: ${what}; check ${CREDENTIAL_VARS}`,
      { details },
    );
  }
  if (failure.status === 403) {
    const permission = body.permissionName ?? /\[([A-Za-z]+)\]/.exec(body.description ?? '')?.[1];
    const permissionError =
      body.errorCode === 'CMN-401' ||
      body.errorCode === 'InsufficientPermissions' ||
      body.errorCode === 'CMN-408';
    if (permissionError || permission !== undefined) {
      const id = permission ?? 'VoipCalling';
      const name = PERMISSION_NAMES[id] ?? id;
      details.permission = id;
      const fix =
        body.errorCode === 'CMN-408'
          ? `the user needs the "${name}" permission (ask an account administrator to grant it)`
          : `the RingCentral app needs the "${name}" permission (add ${name} to the app's permissions in the developer console, then create a new JWT session)`;
      return new SoftphoneError(
        ErrorCodes.REST_PERMISSION,
        `RingCentral refused ${endpoint}: ${what}; ${fix}`,
        {
          details,
        },
      );
    }
    return new SoftphoneError(ErrorCodes.REST_PERMISSION, `RingCentral refused ${endpoint}: ${what}`, {
      details,
    });
  }
  return new SoftphoneError(
    ErrorCodes.REST_ERROR,
    `RingCentral ${endpoint} failed: ${status}${body.description || codes.length > 0 ? ` — ${what}` : ''}`,
    { details },
  );
}

const NETWORK_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'DNS lookup failed (temporary)',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed while sending',
  ERR_NETWORK: 'network error',
};

const TIMEOUT_CODES = new Set([
  'ECONNABORTED',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
]);

/** The most specific errno-like code on an error or its causes. */
function networkCode(err: unknown): string | undefined {
  let fallback: string | undefined;
  let current: unknown = err;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (code !== 'ERR_NETWORK' && code !== 'ERR_BAD_REQUEST') return code;
      fallback ??= code;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return fallback;
}

/**
 * Maps whatever @rc-ex/core (RestException: `.response` = the axios
 * response) or axios (AxiosError, no response) threw to a SoftphoneError.
 */
function mapRestError(err: unknown, stage: Stage, context: ErrorContext): SoftphoneError {
  if (err instanceof SoftphoneError) return err;
  const server = shownServer(context.serverUrl);
  const failure = httpFailureOf(err);
  let mapped: SoftphoneError;
  if (failure !== undefined) {
    mapped = mapHttpFailure(failure, stage, context);
  } else {
    const code = networkCode(err);
    const message = err instanceof Error ? err.message : String(err);
    const isAxios = (err as { isAxiosError?: unknown } | null)?.isAxiosError === true;
    if (code !== undefined && (TIMEOUT_CODES.has(code) || /timeout/i.test(message))) {
      mapped = new SoftphoneError(
        ErrorCodes.REST_NETWORK,
        `RingCentral at ${server} did not answer within ${Math.round(context.timeoutMs / 100) / 10} s (${code}); check RINGCENTRAL_SERVER_URL and your network or proxy`,
        { details: { serverUrl: server, errno: code, stage } },
      );
    } else if (isAxios || code !== undefined) {
      const reason = (code && NETWORK_REASONS[code]) ?? clip(message);
      mapped = new SoftphoneError(
        ErrorCodes.REST_NETWORK,
        `Cannot reach RingCentral at ${server}: ${reason}${code ? ` (${code})` : ''}; check RINGCENTRAL_SERVER_URL and your network or proxy`,
        { details: { serverUrl: server, errno: code, stage } },
      );
    } else {
      mapped = new SoftphoneError(ErrorCodes.REST_ERROR, `RingCentral request failed: ${clip(message)}`, {
        details: { serverUrl: server, stage },
      });
    }
  }
  const scrubbed = context.scrubber.scrub(mapped.message);
  return scrubbed === mapped.message
    ? mapped
    : new SoftphoneError(mapped.code, scrubbed, { details: { ...mapped.details } });
}

// ---------------------------------------------------------------------------

export interface ProvisionFromEnvOptions {
  transport: SipTransport;
  /** Default: the host name. */
  computerName?: string;
  deviceId?: string;
  fetch?: FetchLike;
  timeoutMs?: number;
}

/**
 * `provisionDevice` with credentials from RINGCENTRAL_CLIENT_ID,
 * RINGCENTRAL_CLIENT_SECRET, RINGCENTRAL_JWT_TOKEN and RINGCENTRAL_SERVER_URL
 * (default https://platform.ringcentral.com). Missing variables are reported
 * all at once (CONFIG_MISSING, each with an example) before any network I/O;
 * a bad server URL is CONFIG_INVALID.
 */
export async function provisionFromEnv(env: Env, options: ProvisionFromEnvOptions): Promise<ProvisionResult> {
  const result = ringCentralCredentialsFromEnv(env);
  if (!result.ok) {
    const code = result.missing.length > 0 ? ErrorCodes.CONFIG_MISSING : ErrorCodes.CONFIG_INVALID;
    throw new SoftphoneError(
      code,
      `RingCentral provisioning needs these variables:\n${result.problems.map((p) => `  - ${p}`).join('\n')}`,
      { details: { problems: result.problems, missing: result.missing } },
    );
  }
  return provisionDevice({
    ...result.credentials,
    transport: options.transport,
    computerName: options.computerName ?? hostname(),
    ...(options.deviceId !== undefined ? { deviceId: options.deviceId } : {}),
    ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  });
}
