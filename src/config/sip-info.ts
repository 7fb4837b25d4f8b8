/**
 * SIP credentials ("sipInfo"): the one internal shape, and every way to get
 * it — a file, the SIP_INFO_* variables, or RingCentral provisioning — in the
 * order `listen` resolves them.
 *
 * Everything from outside is validated here, before any network I/O, and a
 * problem names the variable, flag or file field with an example value. The
 * SIP password never appears in a problem, an error message or a summary.
 */
import { createHash, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ErrorCodes, SoftphoneError } from '../errors.js';

export type SipTransport = 'tcp' | 'tls';

export interface HostPort {
  /** A hostname, an IPv4 address, or an IPv6 address without brackets. */
  readonly host: string;
  readonly port: number;
}

export interface SipInfo {
  readonly username: string;
  readonly password: string;
  /** Digest username (RingCentral's authorizationId). */
  readonly authorizationId: string;
  /** SIP domain, also the digest realm. */
  readonly domain: string;
  readonly outboundProxy: HostPort;
  readonly outboundProxyBackup?: HostPort;
  readonly transport: SipTransport;
  /** `urn:uuid:…` for `+sip.instance` (RFC 5626 §4.1); stable per device. */
  readonly instanceId?: string;
  /** RingCentral device id from sip-provision. */
  readonly deviceId?: string;
  /**
   * For TLS: the certificate sip-provision gives with a TLS entry (base64, as
   * RingCentral sends it), trusted besides the system CAs when connecting
   * (see tlsCertificatePem). Public: not a secret.
   */
  readonly certificate?: string;
}

/** An environment: `process.env` or a plain record. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The file `listen` looks for in the working directory and `provision` writes. */
export const DEFAULT_SIP_INFO_FILE = 'sip-info.json';

export const DEFAULT_RINGCENTRAL_SERVER_URL = 'https://platform.ringcentral.com';

/** Larger than any real sipInfo file by far; a bound on what we read and parse. */
const MAX_FILE_BYTES = 1024 * 1024;

const REDACTED = '<redacted>';

// ---------------------------------------------------------------------------
// host:port

export type HostPortResult = { ok: true; value: HostPort } | { ok: false; reason: string };

const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Why `host` is not a hostname or IPv4 address, or null when it is one. */
function hostProblem(host: string): string | null {
  if (host === '') return 'the host is empty';
  if (isIPv4(host)) return null;
  if (isIPv6(host)) return 'an IPv6 address must be in brackets, e.g. [2001:db8::1]:5090';
  if (host.length > 253) return 'the host name is longer than 253 characters';
  const labels = host.split('.');
  if (!labels.every((label) => HOST_LABEL.test(label))) {
    return `"${host}" is not a valid host name (letters, digits, '-' and '.' only)`;
  }
  // RFC 1123 §2.1: a name whose last label is all digits would be an address.
  if (/^\d+$/.test(labels[labels.length - 1] ?? '')) return `"${host}" is not a valid IPv4 address`;
  return null;
}

function portFrom(text: string, input: string): HostPortResult | number {
  if (!/^\d{1,5}$/.test(text))
    return { ok: false, reason: `"${input}": the port must be a number from 1 to 65535` };
  const port = Number(text);
  if (port < 1 || port > 65535) return { ok: false, reason: `"${input}": the port must be from 1 to 65535` };
  return port;
}

/**
 * Parses `host:port`, `[v6addr]:port` or (with `defaultPort`) a bare host.
 * RingCentral always gives host:port, and its proxies listen on 5090 (TCP)
 * and 5096 (TLS), not on the RFC 3261 §19.1.2 defaults 5060/5061 — so callers
 * reading RingCentral data pass no default and a missing port is an error.
 */
export function parseHostPort(input: string, options: { defaultPort?: number } = {}): HostPortResult {
  const text = input.trim();
  if (text === '')
    return { ok: false, reason: 'is empty (expected host:port, e.g. sip10.ringcentral.com:5090)' };
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { ok: false, reason: `"${input}": missing "]" after the IPv6 address` };
    host = text.slice(1, close);
    if (!isIPv6(host)) return { ok: false, reason: `"${input}": "${host}" is not an IPv6 address` };
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return { ok: false, reason: `"${input}": expected ":port" after "]"` };
      portText = rest.slice(1);
    }
  } else {
    const colons = text.split(':').length - 1;
    if (colons > 1) {
      return {
        ok: false,
        reason: `"${input}": an IPv6 address must be in brackets, e.g. [2001:db8::1]:5090`,
      };
    }
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
    const problem = hostProblem(host);
    if (problem !== null) return { ok: false, reason: `"${input}": ${problem}` };
  }
  if (portText === undefined) {
    if (options.defaultPort === undefined) {
      return {
        ok: false,
        reason: `"${input}" has no port (expected host:port, e.g. sip10.ringcentral.com:5090)`,
      };
    }
    return { ok: true, value: Object.freeze({ host, port: options.defaultPort }) };
  }
  const port = portFrom(portText, input);
  if (typeof port !== 'number') return port;
  return { ok: true, value: Object.freeze({ host, port }) };
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatHostPort(hp: HostPort): string {
  return isIPv6(hp.host) ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

// ---------------------------------------------------------------------------
// Field validation shared by the environment, files and provisioning answers

type Field =
  | 'username'
  | 'password'
  | 'authorizationId'
  | 'domain'
  | 'outboundProxy'
  | 'outboundProxyBackup'
  | 'transport'
  | 'instanceId'
  | 'deviceId'
  | 'certificate';

/** Raw values as found; validated by `validateSipInfoFields`. */
export type SipInfoFieldValues = Partial<Record<Field, unknown>>;

interface FieldNaming {
  /** How a problem names the field: a variable, or a field path in a file. */
  label(field: Field): string;
  /** An example assignment, e.g. `SIP_INFO_TRANSPORT=TCP`. */
  example(field: Field): string;
}

export type FieldsResult =
  | { ok: true; sipInfo: SipInfo }
  | { ok: false; problems: string[]; missing: string[] };

const REQUIRED: readonly Field[] = [
  'username',
  'password',
  'authorizationId',
  'domain',
  'outboundProxy',
  'transport',
];

const EXAMPLE_VALUES: Record<Field, string> = {
  username: '16505550100',
  password: '<the SIP password from rc-softphone provision>',
  authorizationId: '802512345678',
  domain: 'sip.ringcentral.com',
  outboundProxy: 'sip10.ringcentral.com:5090',
  outboundProxyBackup: 'sip20.ringcentral.com:5090',
  transport: 'TCP',
  instanceId: 'urn:uuid:6f1c2a47-3b8e-4d2a-9c71-0e5b8f4a2d13',
  deviceId: '802512345004',
  certificate: '<the base64 certificate from sip-provision>',
};

const INSTANCE_ID = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TOKEN_CHARS = /^[^\s\u0000-\u001f\u007f]+$/;
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** A string, or an integer written as a JSON number (ids typed by hand). */
function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value);
  return undefined;
}

function isAbsent(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.trim() === '');
}

function hostPortOf(value: unknown): HostPortResult {
  if (typeof value === 'string') return parseHostPort(value);
  if (typeof value === 'object' && value !== null) {
    const { host, port } = value as { host?: unknown; port?: unknown };
    if (typeof host === 'string' && (typeof port === 'number' || typeof port === 'string')) {
      const bracketed = isIPv6(host) ? `[${host}]` : host;
      return parseHostPort(`${bracketed}:${port}`);
    }
  }
  return { ok: false, reason: 'must be a "host:port" string' };
}

/**
 * Validates raw values into a frozen SipInfo, or lists every problem (each
 * naming the field via `naming`, with an example). Never echoes the password.
 */
function validateSipInfoFields(values: SipInfoFieldValues, naming: FieldNaming): FieldsResult {
  const problems: string[] = [];
  const missing: string[] = [];
  const eg = (field: Field) => `(e.g. ${naming.example(field)})`;

  for (const field of REQUIRED) {
    if (isAbsent(values[field])) {
      missing.push(naming.label(field));
      problems.push(`${naming.label(field)} is missing ${eg(field)}`);
    }
  }

  const token = (field: 'username' | 'authorizationId' | 'domain' | 'deviceId'): string | undefined => {
    const raw = values[field];
    if (isAbsent(raw)) return undefined;
    const text = textOf(raw)?.trim();
    if (text === undefined || !TOKEN_CHARS.test(text)) {
      problems.push(`${naming.label(field)} must be a single word without spaces ${eg(field)}`);
      return undefined;
    }
    return text;
  };

  const username = token('username');
  const authorizationId = token('authorizationId');
  const deviceId = token('deviceId');
  let domain = token('domain');
  if (domain !== undefined) {
    const problem = hostProblem(domain);
    if (problem !== null) {
      problems.push(`${naming.label('domain')}: ${problem} ${eg('domain')}`);
      domain = undefined;
    }
  }

  let password: string | undefined;
  if (!isAbsent(values.password)) {
    if (typeof values.password !== 'string' || CONTROL_CHARS.test(values.password)) {
      // Say what is wrong without showing any of the value.
      problems.push(`${naming.label('password')} must be a string without line breaks or control characters`);
    } else {
      password = values.password;
    }
  }

  const proxy = (field: 'outboundProxy' | 'outboundProxyBackup'): HostPort | undefined => {
    if (isAbsent(values[field])) return undefined;
    const parsed = hostPortOf(values[field]);
    if (!parsed.ok) {
      const reason = parsed.reason.startsWith('"') ? `: ${parsed.reason}` : ` ${parsed.reason}`;
      const example = parsed.reason.includes('e.g.') ? '' : ` ${eg(field)}`;
      problems.push(`${naming.label(field)}${reason}${example}`);
      return undefined;
    }
    return parsed.value;
  };
  const outboundProxy = proxy('outboundProxy');
  const outboundProxyBackup = proxy('outboundProxyBackup');

  let transport: SipTransport | undefined;
  if (!isAbsent(values.transport)) {
    const text = typeof values.transport === 'string' ? values.transport.trim().toUpperCase() : '';
    if (text === 'TCP') transport = 'tcp';
    else if (text === 'TLS') transport = 'tls';
    else if (text === 'UDP' || text === 'WSS' || text === 'WS') {
      problems.push(
        `${naming.label('transport')} is ${text}, which rc-softphone does not support; use TCP or TLS`,
      );
    } else {
      problems.push(`${naming.label('transport')} must be TCP or TLS ${eg('transport')}`);
    }
  }

  let instanceId: string | undefined;
  if (!isAbsent(values.instanceId)) {
    const text = typeof values.instanceId === 'string' ? values.instanceId.trim() : '';
    if (!INSTANCE_ID.test(text)) {
      problems.push(`${naming.label('instanceId')} must be a urn:uuid: URN ${eg('instanceId')}`);
    } else {
      instanceId = text.toLowerCase();
    }
  }

  let certificate: string | undefined;
  if (!isAbsent(values.certificate)) {
    const text = typeof values.certificate === 'string' ? values.certificate.replace(/\s+/g, '') : '';
    if (certificatePemOf(text) === undefined) {
      problems.push(`${naming.label('certificate')} must be a base64 X.509 certificate ${eg('certificate')}`);
    } else {
      certificate = text;
    }
  }

  if (problems.length > 0) return { ok: false, problems, missing };
  // Every required field is present and valid once no problem was recorded.
  const sipInfo: SipInfo = {
    username: username!,
    password: password!,
    authorizationId: authorizationId!,
    domain: domain!,
    outboundProxy: outboundProxy!,
    ...(outboundProxyBackup ? { outboundProxyBackup } : {}),
    transport: transport!,
    ...(instanceId ? { instanceId } : {}),
    ...(deviceId ? { deviceId } : {}),
    ...(certificate ? { certificate } : {}),
  };
  return { ok: true, sipInfo: Object.freeze(sipInfo) };
}

/**
 * The PEM of a base64 certificate as sip-provision gives it (DER, or PEM
 * text, base64-encoded: both are taken), undefined when it is not one.
 */
function certificatePemOf(base64: string): string | undefined {
  if (base64 === '' || !/^[A-Za-z0-9+/]+=*$/.test(base64)) return undefined;
  const bytes = Buffer.from(base64, 'base64');
  const text = bytes.toString('latin1');
  try {
    return new X509Certificate(text.includes('-----BEGIN CERTIFICATE-----') ? text : bytes).toString();
  } catch {
    return undefined;
  }
}

/** The device's TLS certificate from sip-provision as PEM, to trust besides the system CAs. */
export function tlsCertificatePem(info: SipInfo): string | undefined {
  return info.certificate === undefined ? undefined : certificatePemOf(info.certificate);
}

/** A field's path in a file whose credentials sit at `path` ('' for the top level). */
function fieldPath(path: string, field: Field): string {
  return path === '' ? field : `${path}.${field}`;
}

/**
 * Validates one entry of RingCentral's `sipInfo[]` (strings `host:port`,
 * transport `TCP`/`TLS`). `path` prefixes field names in problems, e.g.
 * `sipInfo[0]`.
 */
export function sipInfoFromRingCentral(
  entry: unknown,
  extras: { deviceId?: unknown; instanceId?: unknown } = {},
  path = 'sipInfo',
): FieldsResult {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    return { ok: false, problems: [`${path} must be an object`], missing: [] };
  }
  const raw = entry as Record<string, unknown>;
  return validateSipInfoFields(
    {
      username: raw.username,
      password: raw.password,
      authorizationId: raw.authorizationId,
      domain: raw.domain,
      outboundProxy: raw.outboundProxy,
      outboundProxyBackup: raw.outboundProxyBackup,
      transport: raw.transport,
      deviceId: extras.deviceId,
      instanceId: extras.instanceId,
      // RingCentral sends one with TLS entries; it is the device's to trust.
      certificate: raw.certificate,
    },
    {
      label: (field) => (field === 'deviceId' || field === 'instanceId' ? field : fieldPath(path, field)),
      example: (field) => `"${field}": "${EXAMPLE_VALUES[field]}"`,
    },
  );
}

// ---------------------------------------------------------------------------
// Environment

export const SIP_INFO_ENV: Readonly<Record<Field, string>> = Object.freeze({
  username: 'SIP_INFO_USERNAME',
  password: 'SIP_INFO_PASSWORD',
  authorizationId: 'SIP_INFO_AUTHORIZATION_ID',
  domain: 'SIP_INFO_DOMAIN',
  outboundProxy: 'SIP_INFO_OUTBOUND_PROXY',
  outboundProxyBackup: 'SIP_INFO_OUTBOUND_PROXY_BACKUP',
  transport: 'SIP_INFO_TRANSPORT',
  instanceId: 'SIP_INFO_INSTANCE_ID',
  deviceId: 'SIP_INFO_DEVICE_ID',
  certificate: 'SIP_INFO_CERTIFICATE',
});

const ENV_NAMING: FieldNaming = {
  label: (field) => SIP_INFO_ENV[field],
  example: (field) => `${SIP_INFO_ENV[field]}=${EXAMPLE_VALUES[field]}`,
};

/**
 * True when any SIP_INFO_* credential variable is set (non-empty): the
 * environment is then the source. SIP_INFO_INSTANCE_ID, SIP_INFO_DEVICE_ID and
 * SIP_INFO_CERTIFICATE alone don't count; they only annotate credentials.
 */
export function hasSipInfoEnv(env: Env): boolean {
  return (Object.entries(SIP_INFO_ENV) as [Field, string][]).some(
    ([field, name]) =>
      field !== 'instanceId' && field !== 'deviceId' && field !== 'certificate' && !isAbsent(env[name]),
  );
}

/**
 * SipInfo from SIP_INFO_USERNAME, SIP_INFO_PASSWORD, SIP_INFO_AUTHORIZATION_ID,
 * SIP_INFO_DOMAIN, SIP_INFO_OUTBOUND_PROXY (host:port), SIP_INFO_TRANSPORT
 * (TCP|TLS) and the optional SIP_INFO_OUTBOUND_PROXY_BACKUP,
 * SIP_INFO_INSTANCE_ID, SIP_INFO_DEVICE_ID and SIP_INFO_CERTIFICATE. On failure, one problem per
 * missing or invalid variable, each with an example.
 */
export function sipInfoFromEnv(env: Env): FieldsResult {
  const values: SipInfoFieldValues = {};
  for (const [field, name] of Object.entries(SIP_INFO_ENV) as [Field, string][]) values[field] = env[name];
  return validateSipInfoFields(values, ENV_NAMING);
}

export interface RingCentralCredentials {
  readonly serverUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly jwt: string;
}

export type RingCentralEnvResult =
  | { ok: true; credentials: RingCentralCredentials }
  | { ok: false; problems: string[]; missing: string[]; anySet: boolean };

const RC_ENV_EXAMPLES = {
  RINGCENTRAL_CLIENT_ID: 'RINGCENTRAL_CLIENT_ID=<client id of your RingCentral app>',
  RINGCENTRAL_CLIENT_SECRET: 'RINGCENTRAL_CLIENT_SECRET=<client secret of that app>',
  RINGCENTRAL_JWT_TOKEN: 'RINGCENTRAL_JWT_TOKEN=<a JWT credential created in the developer console>',
} as const;

/** Why `url` is not a usable RingCentral server URL, or null. */
export function serverUrlProblem(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a URL';
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'must be an http(s) URL';
  if (parsed.username !== '' || parsed.password !== '') return 'must not contain a user name or password';
  return null;
}

/**
 * RINGCENTRAL_CLIENT_ID, RINGCENTRAL_CLIENT_SECRET and RINGCENTRAL_JWT_TOKEN
 * (all required) and RINGCENTRAL_SERVER_URL (default production). `anySet`
 * tells whether the user meant to use them at all (the server URL alone
 * doesn't count).
 */
export function ringCentralCredentialsFromEnv(env: Env): RingCentralEnvResult {
  const problems: string[] = [];
  const missing: string[] = [];
  let anySet = false;
  const values: Partial<Record<keyof typeof RC_ENV_EXAMPLES, string>> = {};
  for (const [name, example] of Object.entries(RC_ENV_EXAMPLES) as [keyof typeof RC_ENV_EXAMPLES, string][]) {
    const value = env[name]?.trim();
    if (value === undefined || value === '') {
      missing.push(name);
      problems.push(`${name} is not set (e.g. ${example})`);
    } else {
      anySet = true;
      values[name] = value;
    }
  }
  const serverUrl = env.RINGCENTRAL_SERVER_URL?.trim() || DEFAULT_RINGCENTRAL_SERVER_URL;
  const urlProblem = serverUrlProblem(serverUrl);
  if (urlProblem !== null) {
    problems.push(
      `RINGCENTRAL_SERVER_URL ${urlProblem} (e.g. RINGCENTRAL_SERVER_URL=${DEFAULT_RINGCENTRAL_SERVER_URL}, or https://platform.devtest.ringcentral.com for a sandbox)`,
    );
  }
  if (problems.length > 0) return { ok: false, problems, missing, anySet };
  return {
    ok: true,
    credentials: Object.freeze({
      serverUrl,
      clientId: values.RINGCENTRAL_CLIENT_ID!,
      clientSecret: values.RINGCENTRAL_CLIENT_SECRET!,
      jwt: values.RINGCENTRAL_JWT_TOKEN!,
    }),
  };
}

// ---------------------------------------------------------------------------
// Files

/** What `saveSipInfoFile` writes (version 1). */
export interface SipInfoFileV1 {
  version: 1;
  savedAt: string;
  deviceId?: string;
  instanceId: string;
  /** RingCentral's own shape: host:port strings, transport TCP/TLS. */
  sipInfo: {
    username: string;
    password: string;
    authorizationId: string;
    domain: string;
    outboundProxy: string;
    outboundProxyBackup?: string;
    transport: 'TCP' | 'TLS';
    /** sip-provision's certificate for TLS, base64 as it came. */
    certificate?: string;
  };
}

function invalidFile(path: string, problems: string[]): SoftphoneError {
  return new SoftphoneError(
    ErrorCodes.CONFIG_INVALID,
    `Invalid SIP info file ${path}: ${problems.join('; ')}`,
    { details: { path, problems } },
  );
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Reads and parses the file as JSON; the SyntaxError text is not passed on (it can quote the password). */
async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw invalidFile(path, ['it is a directory, not a file']);
    if (info.size > MAX_FILE_BYTES) throw invalidFile(path, [`it is larger than ${MAX_FILE_BYTES} bytes`]);
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof SoftphoneError) throw err;
    const errno = errnoOf(err);
    if (errno === 'ENOENT') {
      throw new SoftphoneError(ErrorCodes.CONFIG_MISSING, `SIP info file ${path} does not exist`, {
        details: { path, errno },
      });
    }
    throw new SoftphoneError(
      ErrorCodes.CONFIG_INVALID,
      `Cannot read SIP info file ${path}: ${errno ?? (err as Error).message}`,
      { details: { path, errno } },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    const position = /position (\d+)/.exec((err as Error).message)?.[1];
    let where = '';
    if (position !== undefined) {
      const before = text.slice(0, Number(position)).split('\n');
      where = ` at line ${before.length}, column ${(before[before.length - 1]?.length ?? 0) + 1}`;
    }
    throw invalidFile(path, [`it is not valid JSON${where}`]);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalidFile(path, ['the top level must be a JSON object']);
  }
  return parsed as Record<string, unknown>;
}

function deviceIdIn(root: Record<string, unknown>): unknown {
  if (root.deviceId !== undefined) return root.deviceId;
  const device = root.device;
  if (typeof device === 'object' && device !== null) return (device as { id?: unknown }).id;
  return undefined;
}

/**
 * SipInfo from a parsed file in any accepted shape; problems name the field.
 * `path` is where in the file the credentials were (e.g. `sipInfo[0]`).
 */
function sipInfoFromFileObject(root: Record<string, unknown>): { fields: FieldsResult; path: string } {
  const extras = { deviceId: deviceIdIn(root), instanceId: root.instanceId };
  const entries = root.sipInfo;
  if (Array.isArray(entries)) {
    // A whole sip-provision answer: take the first entry we can use.
    const index = entries.findIndex((entry) => {
      const transport = (entry as { transport?: unknown } | null)?.transport;
      return typeof transport === 'string' && /^(tcp|tls)$/i.test(transport.trim());
    });
    if (index < 0) {
      return {
        fields: { ok: false, problems: ['sipInfo has no entry with transport TCP or TLS'], missing: [] },
        path: 'sipInfo',
      };
    }
    const path = `sipInfo[${index}]`;
    return { fields: sipInfoFromRingCentral(entries[index], extras, path), path };
  }
  if (entries !== undefined)
    return { fields: sipInfoFromRingCentral(entries, extras, 'sipInfo'), path: 'sipInfo' };
  // The bare RingCentral sipInfo object (or our internal shape, host/port objects).
  return { fields: sipInfoFromRingCentral(root, extras, ''), path: '' };
}

/**
 * SipInfo from an already parsed JSON object in any shape loadSipInfoFile
 * accepts (an entry of a fleet's device list); CONFIG_INVALID naming `where`.
 */
export function sipInfoFromObject(root: unknown, where: string): SipInfo {
  if (typeof root !== 'object' || root === null || Array.isArray(root)) {
    throw invalidFile(where, ['it must be a JSON object']);
  }
  const { fields } = sipInfoFromFileObject(root as Record<string, unknown>);
  if (!fields.ok) throw invalidFile(where, fields.problems);
  return fields.sipInfo;
}

/** loadSipInfoFile, plus where in the file the credentials were. */
async function readSipInfoFile(path: string): Promise<{ sipInfo: SipInfo; fieldPath: string }> {
  const root = await readJsonObject(path);
  const { fields, path: inFile } = sipInfoFromFileObject(root);
  if (!fields.ok) throw invalidFile(path, fields.problems);
  return { sipInfo: fields.sipInfo, fieldPath: inFile };
}

/**
 * Loads a SIP info file. Accepts our saved format (`{version, deviceId,
 * instanceId, sipInfo: {...}}`), a bare RingCentral sipInfo object
 * (`{username, password, authorizationId, domain, outboundProxy,
 * outboundProxyBackup?, transport}`, plus optional top-level `deviceId` and
 * `instanceId`), and a whole sip-provision answer (`{sipInfo: [...], device}`).
 * Throws CONFIG_MISSING when the file does not exist, CONFIG_INVALID naming
 * the file and each bad field otherwise.
 */
export async function loadSipInfoFile(path: string): Promise<SipInfo> {
  return (await readSipInfoFile(path)).sipInfo;
}

function newInstanceId(): string {
  return `urn:uuid:${randomUUID()}`;
}

/**
 * A stable `urn:uuid:` for credentials that have no file to keep one in (the
 * environment): a name-based UUID (RFC 9562 §5.5, SHA-1) of the SIP identity,
 * so every run registers as the same instance. A fresh random instance per run
 * piles up contacts until RingCentral answers 603 Too Many Contacts.
 */
export function deriveInstanceId(info: Pick<SipInfo, 'authorizationId' | 'username' | 'domain'>): string {
  // Our own fixed namespace, so the ids cannot collide with other name-based UUIDs.
  const namespace = Buffer.from('5d0f2f3c9a6e4b7f8e21c4a7b3d9e610', 'hex');
  const hash = createHash('sha1')
    .update(namespace)
    .update(`${info.authorizationId}|${info.username}@${info.domain}`)
    .digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50; // version 5
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC 9562 variant
  const hex = bytes.toString('hex');
  return `urn:uuid:${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function serialize(info: SipInfo, instanceId: string): string {
  const file: SipInfoFileV1 = {
    version: 1,
    savedAt: new Date().toISOString(),
    ...(info.deviceId ? { deviceId: info.deviceId } : {}),
    instanceId,
    sipInfo: {
      username: info.username,
      password: info.password,
      authorizationId: info.authorizationId,
      domain: info.domain,
      outboundProxy: formatHostPort(info.outboundProxy),
      ...(info.outboundProxyBackup ? { outboundProxyBackup: formatHostPort(info.outboundProxyBackup) } : {}),
      transport: info.transport === 'tls' ? 'TLS' : 'TCP',
      ...(info.certificate ? { certificate: info.certificate } : {}),
    },
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

function writeFailed(path: string, err: unknown): SoftphoneError {
  const errno = errnoOf(err);
  return new SoftphoneError(
    ErrorCodes.CONFIG_INVALID,
    `Cannot write ${path}: ${errno ?? (err as Error).message}`,
    { details: { path, errno } },
  );
}

/** Exclusive create with mode 0600 (re-applied with chmod: a umask may not cut it, but we don't rely on one). */
async function writeExclusive(path: string, text: string): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  let ok = false;
  try {
    await handle.chmod(0o600);
    await handle.writeFile(text, 'utf8');
    await handle.sync();
    ok = true;
  } finally {
    await handle.close();
    if (!ok) await unlink(path).catch(() => undefined);
  }
}

/**
 * Replaces `path` atomically: a 0600 temp file in the same directory (rename
 * cannot cross filesystems), fsynced, then renamed over it. A reader sees the
 * old file or the whole new one, never a torn one; the temp never lingers.
 */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeExclusive(tmp, text);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Writes `info` to `path` in our saved format, mode 0600. Without `force`
 * the file is created exclusively and an existing one is left untouched
 * (FILE_EXISTS, naming --force); with `force` it is replaced atomically. The
 * instance id is `info.instanceId`, else the one already in the file for the
 * same device (re-provisioning keeps the device's identity), else a new one.
 * Returns the SipInfo as saved.
 */
export async function saveSipInfoFile(
  path: string,
  info: SipInfo,
  options: { force?: boolean } = {},
): Promise<SipInfo> {
  let instanceId = info.instanceId;
  if (instanceId === undefined && options.force && info.deviceId !== undefined) {
    try {
      const previous = await loadSipInfoFile(path);
      if (previous.deviceId === info.deviceId) instanceId = previous.instanceId;
    } catch {
      // No usable previous file: a new instance id it is.
    }
  }
  instanceId ??= newInstanceId();
  const text = serialize(info, instanceId);
  try {
    if (options.force) await writeAtomic(path, text);
    else await writeExclusive(path, text);
  } catch (err) {
    if (errnoOf(err) === 'EEXIST' && !options.force) {
      throw new SoftphoneError(
        ErrorCodes.FILE_EXISTS,
        `${path} already exists; not overwriting it (pass --force to replace it)`,
        { details: { path } },
      );
    }
    throw writeFailed(path, err);
  }
  return Object.freeze({ ...info, instanceId });
}

/**
 * Returns the `instanceId` saved in the file at `path`, first adding a new
 * `urn:uuid:` (randomUUID) to it when there is none, so the device keeps one
 * identity across runs (RFC 5626 §4.1). Other fields are kept as they are;
 * the file is rewritten atomically with mode 0600.
 */
export async function ensureInstanceId(path: string): Promise<string> {
  const root = await readJsonObject(path);
  const existing = root.instanceId;
  if (existing !== undefined) {
    if (typeof existing === 'string' && INSTANCE_ID.test(existing.trim()))
      return existing.trim().toLowerCase();
    throw invalidFile(path, [
      `instanceId must be a urn:uuid: URN (e.g. "instanceId": "${EXAMPLE_VALUES.instanceId}")`,
    ]);
  }
  const instanceId = newInstanceId();
  try {
    await writeAtomic(path, `${JSON.stringify({ ...root, instanceId }, null, 2)}\n`);
  } catch (err) {
    throw writeFailed(path, err);
  }
  return instanceId;
}

// ---------------------------------------------------------------------------
// Printing

/** What gets printed: the saved file's sipInfo shape with the password replaced, plus the ids. */
export type RedactedSipInfo = SipInfoFileV1['sipInfo'] & { deviceId?: string; instanceId?: string };

/** A printable copy: the password replaced, proxies as host:port. */
export function redactSipInfo(info: SipInfo): RedactedSipInfo {
  return {
    username: info.username,
    password: REDACTED,
    authorizationId: info.authorizationId,
    domain: info.domain,
    outboundProxy: formatHostPort(info.outboundProxy),
    ...(info.outboundProxyBackup ? { outboundProxyBackup: formatHostPort(info.outboundProxyBackup) } : {}),
    transport: info.transport === 'tls' ? 'TLS' : 'TCP',
    ...(info.deviceId ? { deviceId: info.deviceId } : {}),
    ...(info.instanceId ? { instanceId: info.instanceId } : {}),
  };
}

// ---------------------------------------------------------------------------
// Resolution for `listen`

export type SipInfoSource = 'flag' | 'environment' | 'file' | 'provisioned';

export interface ResolveSipInfoOptions {
  /** `--sip-info FILE`, relative to `cwd`. */
  sipInfoPath?: string | undefined;
  env: Env;
  cwd: string;
  /**
   * Provisions on the fly (e.g. `() => provisionFromEnv(env, …)`); used only
   * when RINGCENTRAL_CLIENT_ID/SECRET/JWT_TOKEN are all set and nothing
   * earlier in the order applies. The result is cached to ./sip-info.json.
   */
  provision?: () => Promise<SipInfo>;
}

export interface ResolvedSipInfo {
  /** Always carries an instanceId. */
  sipInfo: SipInfo;
  source: SipInfoSource;
  /** E.g. `file ./sip-info.json`, `environment (SIP_INFO_*)`. */
  description: string;
  /** The file read or written, if any. */
  path?: string;
  /**
   * Where the user set each proxy, for an error that asks them to fix it:
   * `SIP_INFO_OUTBOUND_PROXY`, `sipInfo.outboundProxy in ./sip-info.json`, …
   */
  proxySettingNames: ProxySettingNames;
  /** Non-fatal notes for the log (never containing secrets). */
  warnings: string[];
}

export interface ProxySettingNames {
  readonly outboundProxy: string;
  readonly outboundProxyBackup: string;
}

function fileProxySettingNames(fieldPathInFile: string, shown: string): ProxySettingNames {
  return {
    outboundProxy: `${fieldPath(fieldPathInFile, 'outboundProxy')} in ${shown}`,
    outboundProxyBackup: `${fieldPath(fieldPathInFile, 'outboundProxyBackup')} in ${shown}`,
  };
}

function shownPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return path;
  return `.${sep}${rel}`;
}

function configMissing(message: string, details: Record<string, unknown>): SoftphoneError {
  return new SoftphoneError(ErrorCodes.CONFIG_MISSING, message, { details });
}

function listProblems(header: string, problems: string[]): string {
  return `${header}\n${problems.map((p) => `  - ${p}`).join('\n')}`;
}

async function fileExists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Warns when a credentials file can be read by other users (POSIX only). */
async function modeWarning(path: string, shown: string): Promise<string | undefined> {
  if (process.platform === 'win32') return undefined;
  try {
    const mode = (await stat(path)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      return `${shown} holds a SIP password but is readable by other users (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${shown}`;
    }
  } catch {
    // It was just read; a race here is not worth reporting.
  }
  return undefined;
}

async function fromFile(
  path: string,
  shown: string,
  source: 'flag' | 'file',
  description: string,
): Promise<ResolvedSipInfo> {
  const warnings: string[] = [];
  const read = await readSipInfoFile(path);
  let sipInfo = read.sipInfo;
  const warning = await modeWarning(path, shown);
  if (warning) warnings.push(warning);
  if (sipInfo.instanceId === undefined) {
    try {
      sipInfo = Object.freeze({ ...sipInfo, instanceId: await ensureInstanceId(path) });
    } catch (err) {
      const instanceId = deriveInstanceId(sipInfo);
      warnings.push(
        `could not save an instance id in ${shown} (${(err as Error).message}); using ${instanceId}, derived from the SIP identity`,
      );
      sipInfo = Object.freeze({ ...sipInfo, instanceId });
    }
  }
  return {
    sipInfo,
    source,
    description,
    path,
    proxySettingNames: fileProxySettingNames(read.fieldPath, shown),
    warnings,
  };
}

const NOTHING_FOUND = [
  'No SIP credentials found. Provide one of:',
  '  - --sip-info FILE (e.g. --sip-info ./sip-info.json)',
  `  - the SIP_INFO_* variables: ${(['username', 'password', 'authorizationId', 'domain', 'outboundProxy', 'transport'] as const).map((f) => ENV_NAMING.example(f)).join(', ')}; optional ${ENV_NAMING.example('outboundProxyBackup')}`,
  `  - ./${DEFAULT_SIP_INFO_FILE} (create it with: rc-softphone provision)`,
  `  - ${Object.values(RC_ENV_EXAMPLES).join(', ')} (optional RINGCENTRAL_SERVER_URL=${DEFAULT_RINGCENTRAL_SERVER_URL}) to provision on the fly`,
].join('\n');

/**
 * Resolves SIP credentials in this order: `--sip-info FILE`; the SIP_INFO_*
 * variables (when any is set, all required ones must be); ./sip-info.json;
 * provisioning (when RINGCENTRAL_* are set and `provision` is given), cached
 * to ./sip-info.json. Validation failures throw CONFIG_MISSING /
 * CONFIG_INVALID (exit code 2) with one message naming each missing or
 * invalid variable or flag, before any network I/O.
 */
export async function resolveSipInfo(options: ResolveSipInfoOptions): Promise<ResolvedSipInfo> {
  const { env, cwd } = options;

  if (options.sipInfoPath !== undefined && options.sipInfoPath.trim() !== '') {
    const path = resolve(cwd, options.sipInfoPath);
    const shown = shownPath(path, cwd);
    try {
      return await fromFile(path, shown, 'flag', `file ${shown} (--sip-info)`);
    } catch (err) {
      if (err instanceof SoftphoneError && err.code === ErrorCodes.CONFIG_MISSING) {
        throw configMissing(
          `--sip-info ${options.sipInfoPath}: ${shown} does not exist (e.g. --sip-info ./sip-info.json)`,
          {
            flag: '--sip-info',
            path,
          },
        );
      }
      if (err instanceof SoftphoneError) {
        throw new SoftphoneError(err.code, `--sip-info: ${err.message}`, {
          details: { ...err.details, flag: '--sip-info' },
        });
      }
      throw err;
    }
  }

  if (hasSipInfoEnv(env)) {
    const result = sipInfoFromEnv(env);
    if (!result.ok) {
      const code = result.missing.length > 0 ? ErrorCodes.CONFIG_MISSING : ErrorCodes.CONFIG_INVALID;
      throw new SoftphoneError(
        code,
        listProblems('The SIP_INFO_* variables are incomplete or invalid:', result.problems),
        {
          details: { problems: result.problems, missing: result.missing },
        },
      );
    }
    const sipInfo = result.sipInfo.instanceId
      ? result.sipInfo
      : Object.freeze({ ...result.sipInfo, instanceId: deriveInstanceId(result.sipInfo) });
    return {
      sipInfo,
      source: 'environment',
      description: 'environment (SIP_INFO_*)',
      proxySettingNames: {
        outboundProxy: SIP_INFO_ENV.outboundProxy,
        outboundProxyBackup: SIP_INFO_ENV.outboundProxyBackup,
      },
      warnings: [],
    };
  }

  const defaultPath = join(cwd, DEFAULT_SIP_INFO_FILE);
  const defaultShown = `.${sep}${DEFAULT_SIP_INFO_FILE}`;
  if (await fileExists(defaultPath)) {
    return fromFile(defaultPath, defaultShown, 'file', `file ${defaultShown}`);
  }

  const rc = ringCentralCredentialsFromEnv(env);
  if (!rc.ok && rc.anySet) {
    throw configMissing(listProblems('RingCentral provisioning needs all of these variables:', rc.problems), {
      problems: rc.problems,
      missing: rc.missing,
    });
  }
  if (rc.ok && options.provision) {
    const provisioned = await options.provision();
    const warnings: string[] = [];
    try {
      const saved = await saveSipInfoFile(defaultPath, provisioned);
      return {
        sipInfo: saved,
        source: 'provisioned',
        description: `RingCentral provisioning (cached to ${defaultShown})`,
        path: defaultPath,
        // Saved in our own format: the credentials sit under `sipInfo`.
        proxySettingNames: fileProxySettingNames('sipInfo', defaultShown),
        warnings,
      };
    } catch (err) {
      warnings.push(`could not cache the provisioned SIP info to ${defaultShown}: ${(err as Error).message}`);
      const sipInfo = provisioned.instanceId
        ? provisioned
        : Object.freeze({ ...provisioned, instanceId: deriveInstanceId(provisioned) });
      return {
        sipInfo,
        source: 'provisioned',
        description: 'RingCentral provisioning (not cached)',
        proxySettingNames: {
          outboundProxy: 'outboundProxy from RingCentral provisioning',
          outboundProxyBackup: 'outboundProxyBackup from RingCentral provisioning',
        },
        warnings,
      };
    }
  }

  throw configMissing(NOTHING_FOUND, {
    missing: ['--sip-info', ...REQUIRED.map((f) => SIP_INFO_ENV[f]), `./${DEFAULT_SIP_INFO_FILE}`],
  });
}
