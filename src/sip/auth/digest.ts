/**
 * Digest authentication, client side (RFC 2617, RFC 7616, as profiled for SIP
 * by RFC 3261 section 22 and RFC 8760). Pure functions: no I/O, no clock.
 */
import { createHash, randomBytes } from 'node:crypto';

export type DigestAlgorithm = 'MD5' | 'MD5-sess' | 'SHA-256' | 'SHA-256-sess';

const ALGORITHMS: Record<string, DigestAlgorithm> = {
  md5: 'MD5',
  'md5-sess': 'MD5-sess',
  'sha-256': 'SHA-256',
  'sha-256-sess': 'SHA-256-sess',
};

export interface DigestChallenge {
  realm: string;
  nonce: string;
  opaque?: string;
  /** As the server spelled it, so the response can echo it (RFC 7616 3.4). */
  algorithmToken?: string;
  algorithm: DigestAlgorithm;
  /** qop options offered, lowercased; empty when the server sent none (RingCentral). */
  qop: string[];
  stale: boolean;
}

export type ChallengeParseResult =
  | { ok: true; challenge: DigestChallenge }
  | { ok: false; reason: string; unsupported?: boolean };

/**
 * Splits `a=b, c="d, e"` into a lowercased-name map. Values keep no quotes;
 * quoted-pair escapes are resolved. Order and case of names do not matter.
 */
export function parseAuthParams(input: string): Map<string, string> {
  const params = new Map<string, string>();
  let i = 0;
  const n = input.length;
  while (i < n) {
    while (i < n && (input[i] === ',' || input[i] === ' ' || input[i] === '\t')) i++;
    const nameStart = i;
    while (i < n && input[i] !== '=' && input[i] !== ',') i++;
    const name = input.slice(nameStart, i).trim().toLowerCase();
    if (i >= n || input[i] === ',') {
      if (name) params.set(name, '');
      continue;
    }
    i++; // '='
    while (i < n && (input[i] === ' ' || input[i] === '\t')) i++;
    let value = '';
    if (input[i] === '"') {
      i++;
      while (i < n && input[i] !== '"') {
        if (input[i] === '\\' && i + 1 < n) i++;
        value += input[i];
        i++;
      }
      i++; // closing quote (or end of input for an unterminated one)
    } else {
      const valueStart = i;
      while (i < n && input[i] !== ',') i++;
      value = input.slice(valueStart, i).trim();
    }
    if (name) params.set(name, value);
  }
  return params;
}

/** Parses one WWW-Authenticate / Proxy-Authenticate value. */
export function parseChallenge(headerValue: string): ChallengeParseResult {
  const trimmed = headerValue.trim();
  const space = trimmed.search(/\s/);
  const scheme = space < 0 ? trimmed : trimmed.slice(0, space);
  if (scheme.toLowerCase() !== 'digest') {
    return { ok: false, reason: `authentication scheme "${scheme}" is not supported`, unsupported: true };
  }
  const params = parseAuthParams(space < 0 ? '' : trimmed.slice(space + 1));
  const realm = params.get('realm');
  const nonce = params.get('nonce');
  if (realm === undefined || nonce === undefined || nonce === '') {
    return { ok: false, reason: 'Digest challenge without realm or nonce' };
  }
  const algorithmToken = params.get('algorithm');
  const algorithm = ALGORITHMS[(algorithmToken ?? 'MD5').toLowerCase()];
  if (!algorithm) {
    return { ok: false, reason: `Digest algorithm "${algorithmToken}" is not supported`, unsupported: true };
  }
  const qop = (params.get('qop') ?? '')
    .split(',')
    .map((q) => q.trim().toLowerCase())
    .filter(Boolean);
  const challenge: DigestChallenge = {
    realm,
    nonce,
    algorithm,
    qop,
    stale: (params.get('stale') ?? '').toLowerCase() === 'true',
  };
  if (algorithmToken !== undefined) challenge.algorithmToken = algorithmToken;
  const opaque = params.get('opaque');
  if (opaque !== undefined) challenge.opaque = opaque;
  return { ok: true, challenge };
}

function hasher(algorithm: DigestAlgorithm): (s: string | Uint8Array) => string {
  const name = algorithm.startsWith('SHA-256') ? 'sha256' : 'md5';
  return (s) => createHash(name).update(s).digest('hex');
}

export interface DigestInput {
  algorithm: DigestAlgorithm;
  username: string;
  realm: string;
  password: string;
  method: string;
  uri: string;
  nonce: string;
  /** 'auth', 'auth-int', or undefined for the RFC 2069 form (no qop). */
  qop?: 'auth' | 'auth-int';
  nc?: string;
  cnonce?: string;
  /** Message body, needed for auth-int. */
  body?: Uint8Array;
}

/** The `response` value of RFC 7616 section 3.4.1. */
export function computeDigestResponse(input: DigestInput): string {
  const H = hasher(input.algorithm);
  const sess = input.algorithm.endsWith('-sess');
  let ha1 = H(`${input.username}:${input.realm}:${input.password}`);
  if (sess) ha1 = H(`${ha1}:${input.nonce}:${input.cnonce ?? ''}`);
  const a2 =
    input.qop === 'auth-int'
      ? `${input.method}:${input.uri}:${H(input.body ?? new Uint8Array(0))}`
      : `${input.method}:${input.uri}`;
  const ha2 = H(a2);
  if (input.qop)
    return H(`${ha1}:${input.nonce}:${input.nc ?? ''}:${input.cnonce ?? ''}:${input.qop}:${ha2}`);
  return H(`${ha1}:${input.nonce}:${ha2}`);
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

export interface AuthorizationRequest {
  username: string;
  password: string;
  method: string;
  uri: string;
  body?: Uint8Array;
  /** Nonce count for this nonce (1 for the first use). */
  nonceCount: number;
  /** Injected for known-answer tests; random otherwise. */
  cnonce?: string;
}

/** Builds an Authorization / Proxy-Authorization value answering `challenge`. */
export function buildAuthorization(challenge: DigestChallenge, req: AuthorizationRequest): string {
  // Prefer auth over auth-int (no body hashing needed); no qop offered → RFC 2069 compatibility form.
  const qop = challenge.qop.includes('auth')
    ? 'auth'
    : challenge.qop.includes('auth-int')
      ? 'auth-int'
      : undefined;
  const sess = challenge.algorithm.endsWith('-sess');
  const needsCnonce = qop !== undefined || sess;
  const cnonce = needsCnonce ? (req.cnonce ?? randomBytes(12).toString('hex')) : undefined;
  const nc = qop ? req.nonceCount.toString(16).padStart(8, '0') : undefined;
  const input: DigestInput = {
    algorithm: challenge.algorithm,
    username: req.username,
    realm: challenge.realm,
    password: req.password,
    method: req.method,
    uri: req.uri,
    nonce: challenge.nonce,
  };
  if (qop) input.qop = qop;
  if (nc) input.nc = nc;
  if (cnonce) input.cnonce = cnonce;
  if (req.body) input.body = req.body;
  const response = computeDigestResponse(input);

  const parts = [
    `username=${quote(req.username)}`,
    `realm=${quote(challenge.realm)}`,
    `nonce=${quote(challenge.nonce)}`,
    `uri=${quote(req.uri)}`,
    `response=${quote(response)}`,
  ];
  if (challenge.algorithmToken !== undefined) parts.push(`algorithm=${challenge.algorithmToken}`);
  if (challenge.opaque !== undefined) parts.push(`opaque=${quote(challenge.opaque)}`);
  if (qop) parts.push(`qop=${qop}`, `nc=${nc}`);
  if (cnonce) parts.push(`cnonce=${quote(cnonce)}`);
  return `Digest ${parts.join(', ')}`;
}

/**
 * Decides what to do with a 401/407 for one request, across retries. RFC 3261
 * 22.2 / RFC 7616 3.3: a second rejection after a fresh response means the
 * credentials are wrong; only `stale=true` (the nonce expired, the password was
 * fine) earns one more try. Never loops.
 */
export class DigestSession {
  #nonceCounts = new Map<string, number>();
  #challenges = new Map<string, DigestChallenge>();
  #staleRetries = 0;
  #attempts = 0;

  /** Call on every 401/407; returns the header to add or a reason to give up. */
  respond(
    challengeValue: string,
    req: Omit<AuthorizationRequest, 'nonceCount'>,
    key = 'default',
  ): { ok: true; header: string } | { ok: false; reason: string; unsupported?: boolean } {
    const parsed = parseChallenge(challengeValue);
    if (!parsed.ok) return parsed;
    const { challenge } = parsed;
    this.#attempts++;
    if (this.#attempts > 1) {
      if (!challenge.stale)
        return { ok: false, reason: 'credentials rejected (challenged again after a response)' };
      if (++this.#staleRetries > 1) return { ok: false, reason: 'server kept answering stale=true' };
    }
    this.#challenges.set(key, challenge);
    return { ok: true, header: this.#authorize(challenge, req) };
  }

  /** The request went through; the next request starts a fresh attempt count. */
  succeeded(): void {
    this.#attempts = 0;
    this.#staleRetries = 0;
  }

  /**
   * Pre-emptive credentials for a follow-up request (e.g. a REGISTER refresh)
   * from the last challenge, so the server need not challenge every time.
   */
  reuse(req: Omit<AuthorizationRequest, 'nonceCount'>, key = 'default'): string | undefined {
    const challenge = this.#challenges.get(key);
    if (!challenge || challenge.qop.length === 0) return undefined; // without nc a reused nonce is a replay
    return this.#authorize(challenge, req);
  }

  #authorize(challenge: DigestChallenge, req: Omit<AuthorizationRequest, 'nonceCount'>): string {
    const nonceCount = (this.#nonceCounts.get(challenge.nonce) ?? 0) + 1;
    this.#nonceCounts.clear(); // only the current nonce's count matters
    this.#nonceCounts.set(challenge.nonce, nonceCount);
    return buildAuthorization(challenge, { ...req, nonceCount });
  }
}
