import { describe, expect, it } from 'vitest';
import { redactSdesKeys, redactSipText, SecretScrubber } from '../../src/log/redact.js';

const RESPONSE = 'response="6629fae49393a05397450978507c4ef1"';

function message(lines: string[], eol = '\r\n'): string {
  return [
    'INVITE sip:16506668888@device.invalid SIP/2.0',
    'Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-1',
    ...lines,
    'Call-ID: fold-1',
    'Content-Length: 0',
    '',
    '',
  ].join(eol);
}

describe('redactSipText', () => {
  it('replaces an Authorization value on one line', () => {
    const text = message([`Authorization: Digest username="802398", realm="sip.test", ${RESPONSE}`]);
    expect(redactSipText(text)).toBe(message(['Authorization: <redacted>']));
  });

  // RFC 3261 7.3.1: a header value may continue on lines that start with SP or HTAB.
  it.each([
    [
      'SP continuation lines',
      ['Authorization: Digest username="802398",', `   realm="sip.test", ${RESPONSE}`],
    ],
    [
      'HTAB continuation lines',
      ['Authorization: Digest username="802398",', `\trealm="sip.test",`, `\t${RESPONSE}`],
    ],
    ['the value only on the continuation line', ['Authorization:', ` Digest username="802398", ${RESPONSE}`]],
    [
      'Proxy-Authorization, other case, space before the colon',
      ['proxy-AUTHORIZATION  : Digest username="802398",', ` ${RESPONSE}`],
    ],
  ])('redacts a folded header as a whole: %s', (_name, lines) => {
    const out = redactSipText(message(lines));
    expect(out).not.toContain('6629fae4');
    expect(out).not.toContain('802398');
    const name = (lines[0] as string).split(':')[0] as string;
    expect(out).toBe(message([`${name}: <redacted>`]));
  });

  it('works with bare LF line ends and leaves other folded headers alone', () => {
    const lines = [
      'Subject: lunch',
      '  at noon',
      'Authorization: Digest username="802398",',
      `  ${RESPONSE}`,
    ];
    const out = redactSipText(message(lines, '\n'));
    expect(out).toBe(message(['Subject: lunch', '  at noon', 'Authorization: <redacted>'], '\n'));
  });

  it('redacts every credential header and keeps headers that only look alike', () => {
    const lines = [
      `Authorization: Digest ${RESPONSE}`,
      `Proxy-Authorization: Digest ${RESPONSE}`,
      'Authentication-Info: nextnonce="abc"',
      'X-Authorization-Hint: none',
    ];
    expect(redactSipText(message(lines))).toBe(
      message([
        'Authorization: <redacted>',
        'Proxy-Authorization: <redacted>',
        'Authentication-Info: nextnonce="abc"',
        'X-Authorization-Hint: none',
      ]),
    );
  });

  it('redacts a folded header at the very end of the text', () => {
    expect(redactSipText(`Authorization: Digest\r\n ${RESPONSE}`)).toBe('Authorization: <redacted>');
  });
});

describe('SecretScrubber', () => {
  it('scrubs registered secrets and ignores very short ones', () => {
    const s = new SecretScrubber();
    s.add('Secret-Pa55word');
    s.add('abc');
    expect(s.scrub('pw=Secret-Pa55word abc')).toBe('pw=*** abc');
  });
});

describe('SDES keys (a=crypto inline:)', () => {
  const KEY = 'PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR';
  const KEY2 = 'd0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj';
  const sdpBody = [
    'v=0',
    'o=- 1 1 IN IP4 203.0.113.5',
    's=-',
    'c=IN IP4 203.0.113.5',
    't=0 0',
    'm=audio 20000 RTP/SAVP 0',
    `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^20|1:4`,
    `a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:${KEY2} FEC_KEY=inline:${KEY}`,
    '',
  ].join('\r\n');
  const invite = message([`Authorization: Digest ${RESPONSE}`, 'Content-Type: application/sdp']) + sdpBody;

  it('redacts every inline key of a SIP message, keeping lifetime, MKI and the rest', () => {
    const out = redactSipText(invite);
    expect(out).not.toContain(KEY);
    expect(out).not.toContain(KEY2);
    expect(out).not.toContain('6629fae4');
    expect(out).toContain('a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>|2^20|1:4\r\n');
    expect(out).toContain(
      'a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:<redacted> FEC_KEY=inline:<redacted>\r\n',
    );
    expect(out).toContain('m=audio 20000 RTP/SAVP 0\r\n');
    // idempotent
    expect(redactSipText(out)).toBe(out);
  });

  it('redacts keys inside JSON-escaped text (a trace inside a JSON log line)', () => {
    const json = JSON.stringify({ event: 'sip.trace', text: sdpBody });
    const out = redactSdesKeys(json);
    expect(out).not.toContain(KEY);
    expect(out).not.toContain(KEY2);
    expect(out).toContain('inline:<redacted>|2^20|1:4\\r\\n');
    expect(JSON.parse(out).text).toContain(
      'a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:<redacted> FEC_KEY=inline:<redacted>\r\n',
    );
    // an encoder that escapes "/" as "\/" does not split the key
    const slashed = `"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:ab\\/cd+ef==\\r\\n"`;
    expect(redactSdesKeys(slashed)).toBe('"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>\\r\\n"');
  });

  it('is part of the SecretScrubber every log line goes through', () => {
    expect(new SecretScrubber().scrub(`{"text":"a=crypto:1 X inline:${KEY}\\r\\n"}`)).toBe(
      '{"text":"a=crypto:1 X inline:<redacted>\\r\\n"}',
    );
  });

  it('leaves text without keys alone', () => {
    expect(redactSdesKeys('inline: nothing here; a=crypto:1 SUITE')).toBe(
      'inline: nothing here; a=crypto:1 SUITE',
    );
  });
});
