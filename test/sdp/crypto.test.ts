import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { generateKeySalt } from '../../src/rtp/srtp-suites.js';
import {
  chooseCrypto,
  defaultSrtpPolicy,
  formatCrypto,
  isSrtpPolicy,
  localKeySalt,
  parseCrypto,
  type SdesCrypto,
  SrtpKeys,
} from '../../src/sdp/crypto.js';

/** RFC 4568's own example key (section 4). */
const KEY = 'PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR';
const KEY_BYTES = Buffer.from(KEY, 'base64');

function parsed(value: string): SdesCrypto {
  const r = parseCrypto(value);
  if (!r.ok) throw new Error(r.reason);
  return r.crypto;
}

describe('parseCrypto (RFC 4568 9.1)', () => {
  it.each<[string, string, Partial<SdesCrypto>]>([
    ['the RFC example shape', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`, { tag: 1 }],
    ['_32', `2 AES_CM_128_HMAC_SHA1_32 inline:${KEY}`, { tag: 2, suite: 'AES_CM_128_HMAC_SHA1_32' }],
    ['lifetime 2^20', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^20`, { lifetime: 2 ** 20 }],
    ['lifetime as a number', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|1048576`, { lifetime: 1048576 }],
    [
      'lifetime and MKI (RFC 4568 section 4)',
      `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^20|1:4`,
      { lifetime: 2 ** 20, mki: Buffer.from([0, 0, 0, 1]) },
    ],
    ['MKI without lifetime', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|258:2`, { mki: Buffer.from([1, 2]) }],
    ['a 9-digit tag', `123456789 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`, { tag: 123456789 }],
    ['lowercase suite and key method', `1 aes_cm_128_hmac_sha1_80 INLINE:${KEY}`, {}],
    [
      'WSH, FEC_ORDER and an optional extension are ignored',
      `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} WSH=256 FEC_ORDER=FEC_SRTP -x-vendor=1`,
      {},
    ],
    ['KDR=0 (no re-derivation)', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} KDR=0`, {}],
    ['tabs between fields', `1\tAES_CM_128_HMAC_SHA1_80\tinline:${KEY}`, {}],
  ])('%s', (_, value, expected) => {
    expect(parsed(value)).toEqual({
      tag: 1,
      suite: 'AES_CM_128_HMAC_SHA1_80',
      keySalt: KEY_BYTES,
      ...expected,
    });
  });

  it.each<[string, string, string]>([
    [
      'unknown suite',
      `1 AES_256_CM_HMAC_SHA1_80 inline:${KEY}`,
      'unsupported crypto-suite AES_256_CM_HMAC_SHA1_80',
    ],
    ['F8', `1 F8_128_HMAC_SHA1_80 inline:${KEY}`, 'unsupported crypto-suite'],
    ['no tag', `AES_CM_128_HMAC_SHA1_80 inline:${KEY}`, 'malformed tag'],
    ['10-digit tag', `1234567890 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`, 'malformed tag'],
    ['no key', '1 AES_CM_128_HMAC_SHA1_80', 'malformed'],
    ['key method other than inline', `1 AES_CM_128_HMAC_SHA1_80 uri:${KEY}`, 'no inline: key'],
    ['key too short', '1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtx', '30 octets'],
    [
      'key not base64',
      '1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0m*XtxaVBR',
      '30 octets',
    ],
    ['two keys', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^20|1:4;inline:${KEY}|2^20|2:4`, 'several keys'],
    ['lifetime beyond 2^48', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^49`, 'lifetime we cannot honour'],
    ['lifetime zero', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|0`, 'lifetime'],
    ['MKI length 0', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|1:0`, 'malformed MKI'],
    ['MKI length 129', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|1:129`, 'malformed MKI'],
    [
      'MKI value that does not fit its length',
      `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|256:1`,
      'malformed MKI',
    ],
    ['MKI before lifetime', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|1:4|2^20`, 'malformed key parameter'],
    ['key re-derivation', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} KDR=24`, 'KDR=24 is not supported'],
    ['UNENCRYPTED_SRTP', `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} UNENCRYPTED_SRTP`, 'UNENCRYPTED_SRTP'],
    [
      'UNAUTHENTICATED_SRTP second',
      `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} WSH=64 UNAUTHENTICATED_SRTP`,
      'UNAUTHENTICATED_SRTP',
    ],
    [
      'unknown mandatory parameter',
      `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} FOO=1`,
      'unknown session parameter FOO',
    ],
    ['empty', '', 'malformed'],
  ])('refuses %s', (_, value, mention) => {
    const r = parseCrypto(value);
    if (r.ok) throw new Error('expected a refusal');
    expect(r.reason).toContain(mention);
    // a reason never quotes the key
    expect(r.reason).not.toContain(KEY.slice(0, 12));
  });
});

describe('chooseCrypto', () => {
  it('prefers the 80-bit tag, whatever the offer order', () => {
    const c = chooseCrypto([
      `1 AES_CM_128_HMAC_SHA1_32 inline:${KEY}`,
      `2 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`,
    ]);
    expect(c).toMatchObject({ ok: true, crypto: { tag: 2, suite: 'AES_CM_128_HMAC_SHA1_80' } });
  });

  it('takes _32 when it is all there is, and skips what it cannot use', () => {
    const c = chooseCrypto([
      `1 AES_256_CM_HMAC_SHA1_80 inline:${KEY}${KEY}`,
      `2 AES_CM_128_HMAC_SHA1_80 inline:${KEY} UNENCRYPTED_SRTP`,
      `3 AES_CM_128_HMAC_SHA1_32 inline:${KEY}`,
    ]);
    expect(c).toMatchObject({ ok: true, crypto: { tag: 3 } });
  });

  it('ignores a repeated tag (RFC 4568 5.1: unique per m-line)', () => {
    const c = chooseCrypto([
      `1 AES_CM_128_HMAC_SHA1_32 inline:${KEY}`,
      `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`,
    ]);
    expect(c).toMatchObject({ ok: true, crypto: { tag: 1, suite: 'AES_CM_128_HMAC_SHA1_32' } });
  });

  it.each<[string, string[], string]>([
    ['none', [], 'no a=crypto line'],
    [
      'only unknown suites',
      [`1 AES_256_CM_HMAC_SHA1_80 inline:${KEY}`, `2 AEAD_AES_128_GCM inline:${KEY}`],
      'no supported crypto-suite (offered AES_256_CM_HMAC_SHA1_80, AEAD_AES_128_GCM; supported AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32)',
    ],
    [
      'the first problem',
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} KDR=3`],
      'a=crypto:1: key derivation rate KDR=3 is not supported',
    ],
  ])('says why none is usable: %s', (_, values, reason) => {
    expect(chooseCrypto(values)).toEqual({ ok: false, reason });
  });
});

describe('formatCrypto / localKeySalt', () => {
  it('formats tag, suite and inline key, which parses back', () => {
    const key = generateKeySalt();
    const value = formatCrypto(7, 'AES_CM_128_HMAC_SHA1_32', key);
    expect(value).toBe(`7 AES_CM_128_HMAC_SHA1_32 inline:${key.toString('base64')}`);
    expect(parsed(value)).toEqual({ tag: 7, suite: 'AES_CM_128_HMAC_SHA1_32', keySalt: key });
  });

  it('refuses a key of the wrong size', () => {
    expect(() => formatCrypto(1, 'AES_CM_128_HMAC_SHA1_80', Buffer.alloc(16))).toThrow(RangeError);
    expect(() => localKeySalt(Buffer.alloc(29))).toThrow(RangeError);
  });

  it('uses the given key (a copy) or a fresh random one each time', () => {
    const given = generateKeySalt();
    const copy = localKeySalt(given);
    expect(copy).toEqual(given);
    copy.fill(0);
    expect(given.some((b) => b !== 0)).toBe(true);
    expect(localKeySalt(undefined).equals(localKeySalt(undefined))).toBe(false);
  });
});

describe('SrtpKeys', () => {
  const local = generateKeySalt();
  const remote = generateKeySalt();
  const keys = new SrtpKeys({
    suite: 'AES_CM_128_HMAC_SHA1_80',
    tag: 1,
    localKeySalt: local,
    remoteKeySalt: remote,
  });

  it('never shows its keys in JSON, inspect, strings or spreads', () => {
    const media = { codec: 'PCMU', srtp: keys };
    const texts = [
      JSON.stringify(media),
      inspect(media, { depth: 5 }),
      String(keys),
      `${keys}`,
      JSON.stringify({ ...keys }),
      Object.keys(keys).join(','),
    ];
    for (const text of texts) {
      for (const secret of [local, remote]) {
        expect(text).not.toContain(secret.toString('base64'));
        expect(text).not.toContain(secret.toString('hex'));
      }
    }
    expect(JSON.parse(JSON.stringify(media)).srtp).toEqual({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      tag: 1,
      keys: '<redacted>',
    });
    // still usable by the code that needs them
    expect(keys.localKeySalt).toEqual(local);
    expect(keys.remoteKeySalt).toEqual(remote);
  });

  it('tells a re-key from the same key (RFC 4568 7.1.4)', () => {
    const same = new SrtpKeys({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      tag: 2,
      localKeySalt: generateKeySalt(),
      remoteKeySalt: remote,
    });
    const rekeyed = new SrtpKeys({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      tag: 1,
      localKeySalt: local,
      remoteKeySalt: generateKeySalt(),
    });
    const otherSuite = new SrtpKeys({
      suite: 'AES_CM_128_HMAC_SHA1_32',
      tag: 1,
      localKeySalt: local,
      remoteKeySalt: remote,
    });
    expect(keys.sameRemoteKey(same)).toBe(true);
    expect(keys.sameRemoteKey(rekeyed)).toBe(false);
    expect(keys.sameRemoteKey(otherSuite)).toBe(false);
    expect(keys.sameRemoteKey(undefined)).toBe(false);
  });

  it('wipe() zeroes its copies, not the caller’s', () => {
    const k = new SrtpKeys({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      tag: 1,
      localKeySalt: local,
      remoteKeySalt: remote,
    });
    k.wipe();
    expect(k.localKeySalt.every((b) => b === 0)).toBe(true);
    expect(k.remoteKeySalt.every((b) => b === 0)).toBe(true);
    expect(local.some((b) => b !== 0)).toBe(true);
  });
});

describe('SRTP policy', () => {
  it('defaults to required on TLS (as RingCentral) and off on TCP and UDP', () => {
    expect(defaultSrtpPolicy('tls')).toBe('required');
    expect(defaultSrtpPolicy('TLS')).toBe('required');
    expect(defaultSrtpPolicy('tcp')).toBe('off');
    expect(defaultSrtpPolicy('udp')).toBe('off');
  });

  it('knows its values', () => {
    expect(['required', 'optional', 'off'].every(isSrtpPolicy)).toBe(true);
    expect(isSrtpPolicy('on')).toBe(false);
  });
});
