import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildAuthorization,
  computeDigestResponse,
  DigestSession,
  parseAuthParams,
  parseChallenge,
} from '../../../src/sip/auth/digest.js';
import { fixturesDir } from '../../helpers/paths.js';

interface Vector {
  source: string;
  algorithm: 'MD5' | 'SHA-256';
  qop: 'auth';
  method: string;
  username: string;
  realm: string;
  password: string;
  uri: string;
  nonce: string;
  nc: string;
  cnonce: string;
  response: string;
}
const { vectors } = JSON.parse(readFileSync(path.join(fixturesDir, 'digest-vectors.json'), 'utf8')) as {
  vectors: Vector[];
};

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('digest known answers', () => {
  it.each(vectors.map((v) => [`${v.source} ${v.algorithm}`, v] as const))('%s', (_name, v) => {
    expect(computeDigestResponse(v)).toBe(v.response);
  });

  it('builds an Authorization header whose response matches the vector', () => {
    const v = vectors[0]!;
    const parsed = parseChallenge(
      `Digest realm="${v.realm}", qop="auth,auth-int", nonce="${v.nonce}", opaque="5ccc"`,
    );
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const header = buildAuthorization(parsed.challenge, {
      username: v.username,
      password: v.password,
      method: v.method,
      uri: v.uri,
      nonceCount: 1,
      cnonce: v.cnonce,
    });
    const params = parseAuthParams(header.replace(/^Digest /, ''));
    expect(params.get('response')).toBe(v.response);
    expect(params.get('nc')).toBe('00000001');
    expect(params.get('qop')).toBe('auth');
    expect(params.get('opaque')).toBe('5ccc');
    expect(params.get('username')).toBe('Mufasa');
  });
});

describe('digest without qop (RingCentral, RFC 2069 form)', () => {
  it('computes H(HA1:nonce:HA2) and sends no nc/cnonce', () => {
    const parsed = parseChallenge('Digest realm="sip.ringcentral.com", nonce="abc123"');
    if (!parsed.ok) throw new Error('parse');
    const header = buildAuthorization(parsed.challenge, {
      username: '802398',
      password: 's3cret',
      method: 'REGISTER',
      uri: 'sip:sip.ringcentral.com',
      nonceCount: 1,
    });
    const params = parseAuthParams(header.slice('Digest '.length));
    const expected = md5(
      `${md5('802398:sip.ringcentral.com:s3cret')}:abc123:${md5('REGISTER:sip:sip.ringcentral.com')}`,
    );
    expect(params.get('response')).toBe(expected);
    expect(params.has('nc')).toBe(false);
    expect(params.has('cnonce')).toBe(false);
    expect(params.has('qop')).toBe(false);
    expect(header).not.toContain('s3cret');
  });
});

describe('session algorithms', () => {
  it('MD5-sess and SHA-256-sess hash HA1 with nonce and cnonce (RFC 7616 3.4.2)', () => {
    const base = {
      username: 'u',
      realm: 'r',
      password: 'p',
      method: 'REGISTER',
      uri: 'sip:r',
      nonce: 'n',
      nc: '00000001',
      cnonce: 'c',
      qop: 'auth' as const,
    };
    const ha2 = (h: (s: string) => string) => h('REGISTER:sip:r');
    const md5Sess = md5(`${md5(`${md5('u:r:p')}:n:c`)}:n:00000001:c:auth:${ha2(md5)}`);
    expect(computeDigestResponse({ ...base, algorithm: 'MD5-sess' })).toBe(md5Sess);
    const shaSess = sha256(`${sha256(`${sha256('u:r:p')}:n:c`)}:n:00000001:c:auth:${ha2(sha256)}`);
    expect(computeDigestResponse({ ...base, algorithm: 'SHA-256-sess' })).toBe(shaSess);
  });

  it('auth-int hashes the body into A2', () => {
    const body = new TextEncoder().encode('v=0\r\n');
    const got = computeDigestResponse({
      algorithm: 'MD5',
      username: 'u',
      realm: 'r',
      password: 'p',
      method: 'INVITE',
      uri: 'sip:x@r',
      nonce: 'n',
      nc: '00000001',
      cnonce: 'c',
      qop: 'auth-int',
      body,
    });
    expect(got).toBe(md5(`${md5('u:r:p')}:n:00000001:c:auth-int:${md5(`INVITE:sip:x@r:${md5('v=0\r\n')}`)}`));
  });
});

describe('challenge parsing', () => {
  it.each([
    ['Digest realm="a",nonce="b"', { realm: 'a', nonce: 'b', algorithm: 'MD5', qop: [] }],
    ['digest NONCE="b", REALM="a", ALGORITHM=md5', { realm: 'a', nonce: 'b', algorithm: 'MD5' }],
    ['Digest algorithm=SHA-256, qop="auth", nonce="b", realm="a"', { algorithm: 'SHA-256', qop: ['auth'] }],
    ['Digest realm="a", nonce="b", algorithm=MD5-sess, stale=TRUE', { algorithm: 'MD5-sess', stale: true }],
    ['Digest realm="a\\"q", nonce="b,c", opaque="x"', { realm: 'a"q', nonce: 'b,c', opaque: 'x' }],
    ['Digest  realm = "a" , nonce = "b" , qop="auth-int, auth"', { qop: ['auth-int', 'auth'] }],
  ])('%s', (value, expected) => {
    const parsed = parseChallenge(value);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(parsed.challenge).toMatchObject(expected);
  });

  it.each([
    ['Basic realm="a"', true],
    ['Digest realm="a", nonce="b", algorithm=SHA-512-256', true],
    ['Digest realm="a"', false],
    ['Digest', false],
    ['', true],
  ])('rejects %j', (value, unsupported) => {
    const parsed = parseChallenge(value);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(Boolean(parsed.unsupported)).toBe(unsupported);
  });

  it('echoes the algorithm token as the server spelled it', () => {
    const parsed = parseChallenge('Digest realm="a", nonce="b", algorithm=md5');
    if (!parsed.ok) throw new Error('parse');
    const header = buildAuthorization(parsed.challenge, {
      username: 'u',
      password: 'p',
      method: 'REGISTER',
      uri: 'sip:a',
      nonceCount: 1,
    });
    expect(header).toContain('algorithm=md5');
  });
});

describe('DigestSession retry policy', () => {
  const req = { username: 'u', password: 'p', method: 'REGISTER', uri: 'sip:a' };

  it('answers the first challenge, fails on a second non-stale one', () => {
    const s = new DigestSession();
    expect(s.respond('Digest realm="a", nonce="n1"', req).ok).toBe(true);
    const second = s.respond('Digest realm="a", nonce="n2"', req);
    expect(second.ok).toBe(false);
  });

  it('re-challenges exactly once on stale=true', () => {
    const s = new DigestSession();
    expect(s.respond('Digest realm="a", nonce="n1"', req).ok).toBe(true);
    expect(s.respond('Digest realm="a", nonce="n2", stale=true', req).ok).toBe(true);
    expect(s.respond('Digest realm="a", nonce="n3", stale=true', req).ok).toBe(false);
  });

  it('starts over after a success and counts nonce uses', () => {
    const s = new DigestSession();
    const first = s.respond('Digest realm="a", nonce="n1", qop="auth"', req);
    expect(first.ok && first.header).toContain('nc=00000001');
    s.succeeded();
    const reused = s.reuse(req);
    expect(reused).toContain('nc=00000002');
    expect(s.respond('Digest realm="a", nonce="n4"', req).ok).toBe(true);
  });

  it('does not reuse a nonce without qop (it would be a replay)', () => {
    const s = new DigestSession();
    s.respond('Digest realm="a", nonce="n1"', req);
    s.succeeded();
    expect(s.reuse(req)).toBeUndefined();
  });
});
