/**
 * serve's pure configuration pieces: bots.json (every problem named by its
 * place), choosing the bot for an INVITE, DIDs; intents; the certificate
 * (files, the state directory, renewal).
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type BotDefaults,
  BotsConfigError,
  chooseBot,
  normalizeDid,
  parseBots,
  singleBot,
} from '../../src/serve/bots.js';
import { loadCertificateFiles, STATE_CERT_FILE, stateCertificate } from '../../src/serve/certificate.js';
import {
  intentBody,
  intentFromEngineLine,
  intentFromStreamMessage,
  isFinalIntent,
  MAX_INTENT_BYTES,
} from '../../src/serve/intents.js';
import { localhostCertificate } from '../helpers/tls-cert.js';

const DEFAULTS: BotDefaults = {
  recordDir: './recordings',
  pipe: undefined,
  pipeGraceMs: 5000,
  streamUrl: undefined,
  codecs: undefined,
  play: undefined,
  maxCalls: 10,
  mediaTimeoutMs: 60_000,
  maxCallDurationMs: 14_400_000,
};

const cleanups: (() => unknown)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function problem(text: string): string {
  try {
    parseBots(text, DEFAULTS);
  } catch (err) {
    if (err instanceof BotsConfigError) return err.message;
    throw err;
  }
  return 'no problem';
}

describe('bots.json', () => {
  it('takes listen’s settings per bot, the command line’s for the rest, seconds as on the command line', () => {
    const bots = parseBots(
      JSON.stringify({
        bots: [
          {
            name: 'support',
            did: ['+1 (650) 555-0100', '16505550101'],
            pipe: './engine.sh',
            pipeGrace: 2,
            codecs: 'pcma, PCMU',
            maxCalls: 3,
            mediaTimeout: 20,
            maxDuration: 600,
            recordDir: '/srv/support',
          },
          { did: '*', streamUrl: 'wss://bots.example/media', record: false },
          { header: { name: 'X-Bot', value: 'vip' } },
        ],
      }),
      DEFAULTS,
    );
    expect(bots[0]).toMatchObject({
      name: 'support',
      dids: ['16505550100', '16505550101'],
      pipe: './engine.sh',
      pipeGraceMs: 2000,
      codecs: ['PCMA', 'PCMU'],
      maxCalls: 3,
      mediaTimeoutMs: 20_000,
      maxCallDurationMs: 600_000,
      recordDir: '/srv/support',
      header: undefined,
    });
    expect(bots[1]).toMatchObject({
      name: '*',
      dids: ['*'],
      recordDir: undefined,
      pipeGraceMs: 5000,
      maxCalls: 10,
    });
    expect(bots[2]).toMatchObject({
      name: 'vip',
      dids: [],
      header: { name: 'X-Bot', value: 'vip' },
      recordDir: './recordings',
    });
  });

  it('names each problem by its place', () => {
    expect(problem('{')).toMatch(/^bots\.json: is not JSON/);
    expect(problem('[]')).toBe('bots.json: must be an object with a "bots" array');
    expect(problem('{"bots": []}')).toBe('bots: needs at least one bot');
    expect(problem('{"bots": [], "extra": 1}')).toBe('bots: needs at least one bot');
    expect(problem('{"bots": [{"did": "1"}], "extra": 1}')).toBe('extra: is not a known key (only "bots")');
    expect(problem('{"bots": [{"did": "1", "recordDirectory": "x"}]}')).toMatch(
      /^bots\[0\]\.recordDirectory: is not a bot setting/,
    );
    expect(problem('{"bots": [{"name": "x"}]}')).toBe(
      'bots[0]: needs a "did" (a number, a list, or "*" for any) or a "header"',
    );
    expect(problem('{"bots": [{"did": "1", "streamUrl": "http://x/y"}]}')).toBe(
      'bots[0].streamUrl: must start with ws:// or wss:// (example: ws://127.0.0.1:8080/media)',
    );
    expect(problem('{"bots": [{"did": "1", "codecs": ["PCMU", "G729"]}]}')).toMatch(
      /^bots\[0\]\.codecs: unknown codec "G729"/,
    );
    expect(problem('{"bots": [{"did": "1", "maxDuration": -1}]}')).toMatch(
      /^bots\[0\]\.maxDuration: must be a whole number/,
    );
    expect(problem('{"bots": [{"did": "1", "maxCalls": 0}]}')).toBe(
      'bots[0].maxCalls: must be a whole number from 1',
    );
    expect(problem('{"bots": [{"did": "1", "record": false, "recordDir": "x"}]}')).toMatch(/contradict/);
    expect(problem('{"bots": [{"did": "1", "pipe": " "}]}')).toBe('bots[0].pipe: needs a command');
    expect(problem('{"bots": [{"did": ["1", {}]}]}')).toBe('bots[0].did[1]: must be a string (or a number)');
    expect(problem('{"bots": [{"header": {"name": "X Bot", "value": "v"}}]}')).toBe(
      'bots[0].header.name: is not a header name',
    );
    expect(problem('{"bots": [{"did": "1"}, {"did": "+1"}]}')).toBe("bots[1].did: 1 is also bots[0]'s");
    expect(problem('{"bots": [{"did": "1", "name": "a"}, {"did": "2", "name": "a"}]}')).toBe(
      `bots[1].name: "a" is also bots[0]'s name`,
    );
    expect(problem('{"bots": [{"did": "*"}, {"did": "*"}]}')).toBe(`bots[1].did: "*" is also bots[0]'s`);
  });

  it('chooses by header first, then by DID, then the catch-all; none: undefined (404)', () => {
    const bots = parseBots(
      JSON.stringify({
        bots: [
          { name: 'a', did: '16505550100' },
          { name: 'vip', header: { name: 'X-Bot', value: 'vip' } },
          { name: 'any', did: '*' },
        ],
      }),
      DEFAULTS,
    );
    const headers = (h: Record<string, string[]>) => (name: string) => h[name.toLowerCase()] ?? [];
    expect(chooseBot(bots, { did: '+1-650-555-0100', header: headers({}) })?.name).toBe('a');
    expect(chooseBot(bots, { did: '16505550100', header: headers({ 'x-bot': [' vip '] }) })?.name).toBe(
      'vip',
    );
    expect(chooseBot(bots, { did: 'unknown', header: headers({}) })?.name).toBe('any');
    expect(
      chooseBot(bots.slice(0, 2), { did: 'unknown', header: headers({ 'x-bot': ['other'] }) }),
    ).toBeUndefined();
  });

  it('normalizes DIDs: a number loses + and separators and its parameters; a name is matched without case', () => {
    expect(normalizeDid('+1 (650) 555-0100')).toBe('16505550100');
    expect(normalizeDid('16505550100;phone-context=+1')).toBe('16505550100');
    expect(normalizeDid('Support')).toBe('support');
    expect(singleBot([], DEFAULTS)).toMatchObject({ name: 'default', dids: ['*'] });
  });
});

describe('intents', () => {
  it('finds them in engine lines and stream messages, and only objects', () => {
    expect(intentFromEngineLine({ rcInfo: { intent: 'x' } })).toEqual({ intent: 'x' });
    expect(intentFromEngineLine({ rcInfo: 'x' })).toBeUndefined();
    expect(intentFromEngineLine({ rcInfo: [1] })).toBeUndefined();
    expect(intentFromEngineLine([{ rcInfo: {} }])).toBeUndefined();
    expect(intentFromEngineLine(undefined)).toBeUndefined();
    expect(intentFromStreamMessage({ event: 'info', info: { a: 1 } })).toEqual({ a: 1 });
    expect(intentFromStreamMessage({ event: 'mark', info: { a: 1 } })).toBeUndefined();
    expect(intentFromStreamMessage({ event: 'info', info: null })).toBeUndefined();
    expect(isFinalIntent({ final: true })).toBe(true);
    expect(isFinalIntent({ final: 'true' })).toBe(false);
  });

  it('bounds the INFO body', () => {
    expect(intentBody({ a: 1 })).toEqual({ ok: true, body: '{"a":1}' });
    expect(intentBody({ text: 'x'.repeat(MAX_INTENT_BYTES) })).toMatchObject({ ok: false });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(intentBody(cyclic)).toMatchObject({ ok: false });
  });
});

describe('the TLS certificate', () => {
  function dir(): string {
    const d = mkdtempSync(path.join(os.tmpdir(), 'rcsp-cert-'));
    cleanups.push(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }

  it('self-signed: made once (key 0600, dir 0700), the same after that, made again when it runs out or breaks', () => {
    const state = path.join(dir(), 'state');
    const made = stateCertificate(state, { names: ['192.0.2.7'] });
    expect(made.source).toBe('created');
    expect(statSync(state).mode & 0o777).toBe(0o700);
    expect(statSync(made.keyPath).mode & 0o777).toBe(0o600);
    const x509 = new X509Certificate(made.cert);
    expect(x509.subjectAltName).toContain('IP Address:192.0.2.7');
    expect(x509.fingerprint256).toBe(made.fingerprint);
    expect(x509.validTo).toBe(
      made.validTo
        .toUTCString()
        .replace(/^\w+, (\d+) (\w+) (\d+) (.*) GMT$/, '$2 $1 $4 $3 GMT')
        .replace(/ 0(\d) /, '  $1 '),
    );

    const again = stateCertificate(state);
    expect(again).toMatchObject({ source: 'stored', fingerprint: made.fingerprint });

    // Ten years later (less 20 days): renewed.
    const later = stateCertificate(state, { now: made.validTo.getTime() - 20 * 24 * 3600 * 1000 });
    expect(later.source).toBe('created');
    expect(later.replaced).toMatch(/ends/);
    expect(later.fingerprint).not.toBe(made.fingerprint);

    writeFileSync(path.join(state, STATE_CERT_FILE), 'not a certificate');
    const broken = stateCertificate(state);
    expect(broken).toMatchObject({
      source: 'created',
      replaced: 'the certificate is not a PEM X.509 certificate',
    });
  });

  it('from files: checked as a pair, problems name the option', () => {
    const d = dir();
    const { cert, key } = localhostCertificate();
    writeFileSync(path.join(d, 'cert.pem'), cert);
    writeFileSync(path.join(d, 'key.pem'), key);
    const other = stateCertificate(path.join(d, 'other'));
    writeFileSync(path.join(d, 'other-key.pem'), readFileSync(other.keyPath));
    expect(loadCertificateFiles(path.join(d, 'cert.pem'), path.join(d, 'key.pem'))).toMatchObject({
      source: 'files',
    });
    expect(() => loadCertificateFiles(path.join(d, 'cert.pem'), path.join(d, 'other-key.pem'))).toThrow(
      /the key does not belong to the certificate/,
    );
    try {
      loadCertificateFiles(path.join(d, 'missing.pem'), path.join(d, 'key.pem'));
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'CONFIG_INVALID', details: { option: 'tlsCert' } });
    }
  });
});
