import { describe, expect, it } from 'vitest';
import {
  createErrorResponse,
  createResponse,
  generateBranch,
  generateCallId,
  generateTag,
  MAX_REASON_LENGTH,
  reasonPhrase,
  warningHeader,
} from '../../../src/sip/message/build.js';
import { parseMessage } from '../../../src/sip/message/parse.js';
import { serialize } from '../../../src/sip/message/serialize.js';
import type { SipRequest } from '../../../src/sip/message/types.js';
import { isToken } from '../../../src/sip/message/uri.js';
import { loadCase } from './corpus.js';

function parseRequest(text: string): SipRequest {
  const result = parseMessage(Buffer.from(text.replace(/\n/g, '\r\n'), 'utf8'));
  if (!result.ok || result.message.type !== 'request') throw new Error('fixture must be a valid request');
  return result.message;
}

const INVITE = parseRequest(`INVITE sip:bot@10.0.0.5:53412;transport=tcp SIP/2.0
Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK3c1e9f2a7b.1
Via: SIP/2.0/UDP 10.13.22.241:5070;rport=5070;branch=z9hG4bK5d8e2f1a, SIP/2.0/UDP 10.13.21.112;branch=z9hG4bKc0a8
Record-Route: <sip:104.245.57.165:5091;transport=tcp;lr>
Max-Forwards: 67
From: "WIRELESS CALLER" <sip:+16505550199@104.245.57.165>;tag=3b7c1f9e
To: "Bot" <sip:bot@sip.ringcentral.com>
Call-ID: 8a7f6e5d@10.13.21.112
CSeq: 314159 INVITE
Timestamp: 54.2 0.1
Contact: <sip:+16505550199@10.13.22.241:5070>
Content-Type: application/sdp
Content-Length: 4

v=0
`);

describe('createResponse', () => {
  it('copies Via (all, in order), From, To, Call-ID and CSeq (RFC 3261 8.2.6.2)', () => {
    const res = createResponse(INVITE, 486);
    expect(res).toMatchObject({ type: 'response', status: 486, reason: 'Busy Here' });
    expect([...res.headers]).toEqual([
      ['Via', 'SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK3c1e9f2a7b.1'],
      [
        'Via',
        'SIP/2.0/UDP 10.13.22.241:5070;rport=5070;branch=z9hG4bK5d8e2f1a, SIP/2.0/UDP 10.13.21.112;branch=z9hG4bKc0a8',
      ],
      ['From', '"WIRELESS CALLER" <sip:+16505550199@104.245.57.165>;tag=3b7c1f9e'],
      ['To', '"Bot" <sip:bot@sip.ringcentral.com>'],
      ['Call-ID', '8a7f6e5d@10.13.21.112'],
      ['CSeq', '314159 INVITE'],
    ]);
    expect(res.body.length).toBe(0);
    expect(res.headers.getAll('Via')).toEqual(INVITE.headers.getAll('Via'));
  });

  it('adds the To tag when there is none and never replaces one', () => {
    expect(createResponse(INVITE, 200, undefined, { toTag: 'abc123' }).headers.get('To')).toBe(
      '"Bot" <sip:bot@sip.ringcentral.com>;tag=abc123',
    );
    const tagged = parseRequest(`BYE sip:bot@10.0.0.5 SIP/2.0
Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK9
From: <sip:+16505550199@104.245.57.165>;tag=3b7c1f9e
To: sip:bot@sip.ringcentral.com;TAG=mine
Call-ID: 8a7f6e5d@10.13.21.112
CSeq: 314160 BYE
Content-Length: 0

`);
    expect(createResponse(tagged, 200, undefined, { toTag: 'other' }).headers.get('To')).toBe(
      'sip:bot@sip.ringcentral.com;TAG=mine',
    );
    // A bare addr-spec gets the tag as a header parameter, which is what RFC 3261 20.10 means.
    const bare = parseRequest(
      `OPTIONS sip:bot@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: sip:a@b;tag=1\nTo: sip:bot@h;user=phone\nCall-ID: c\nCSeq: 1 OPTIONS\nl: 0\n\n`,
    );
    const to = createResponse(bare, 200, undefined, { toTag: 't' }).headers.to();
    expect(to?.params.get('tag')).toBe('t');
    expect(to?.params.get('user')).toBe('phone');
  });

  it('copies Timestamp into 100 Trying only (RFC 3261 8.2.6.1)', () => {
    expect(createResponse(INVITE, 100).headers.get('Timestamp')).toBe('54.2 0.1');
    expect(createResponse(INVITE, 180).headers.has('Timestamp')).toBe(false);
  });

  it('adds extra headers, a body and its Content-Type; serializes and parses back', () => {
    const sdp = Buffer.from('v=0\r\ns=rc-softphone ☎\r\n', 'utf8');
    const res = createResponse(INVITE, 200, 'OK', {
      toTag: 'z1',
      headers: [
        ['Record-Route', '<sip:104.245.57.165:5091;transport=tcp;lr>'],
        ['Contact', '<sip:bot@10.0.0.5:53412;transport=tcp>'],
        ['Supported', 'outbound'],
      ],
      body: sdp,
      contentType: 'application/sdp',
    });
    expect(res.headers.get('Content-Type')).toBe('application/sdp');
    const parsed = parseMessage(serialize(res));
    if (!parsed.ok || parsed.message.type !== 'response') throw new Error('response must parse');
    expect(parsed.message.status).toBe(200);
    expect(parsed.message.headers.get('Content-Length')).toBe(String(sdp.length));
    expect(Buffer.from(parsed.message.body).equals(sdp)).toBe(true);
    expect(parsed.message.headers.to()?.params.get('tag')).toBe('z1');
    expect(parsed.message.headers.getAll('Record-Route')).toEqual([
      '<sip:104.245.57.165:5091;transport=tcp;lr>',
    ]);
  });

  it('answers the partial message of a failed parse (RFC 4475 3.3.1)', () => {
    const failed = parseMessage(loadCase('insuf.dat'));
    if (failed.ok || failed.message?.type !== 'request')
      throw new Error('insuf.dat must fail with a request');
    const res = createResponse(failed.message, failed.status ?? 400, failed.error.message);
    expect([...res.headers].map(([name]) => name)).toEqual(['Via', 'CSeq']);
    expect(serialize(res).toString()).toMatch(
      /^SIP\/2\.0 400 Missing required header fields: From, To, Call-ID\r\nVia: SIP\/2\.0\/UDP 192\.0\.2\.95;branch=z9hG4bKkdj\.insuf\r\nCSeq: 193942 INVITE\r\nContent-Length: 0\r\n\r\n$/,
    );
    // A malformed To is copied untouched: where would a tag go inside an unterminated quote?
    const quotbal = parseMessage(loadCase('quotbal.dat'));
    if (quotbal.ok || quotbal.message?.type !== 'request')
      throw new Error('quotbal.dat must fail with a request');
    expect(createResponse(quotbal.message, 400, undefined, { toTag: 'x' }).headers.get('To')).toBe(
      '"Mr. J. User <sip:j.user@example.com>',
    );
  });

  it('keeps reason phrases short, whatever the text quotes', () => {
    // PROTOS c07-sip: an SDP codec name of 22 000 bytes came back in a 488's
    // reason phrase, making a response no proxy takes.
    const res = createResponse(INVITE, 488, `incompatible media format: offered ${'a'.repeat(22_000)}`);
    expect(res.reason).toHaveLength(MAX_REASON_LENGTH);
    expect(res.reason).toMatch(/^incompatible media format: offered a+\.\.\.$/);
    expect(createResponse(INVITE, 488, `${'x'.repeat(196)}\u{1F600}tail`).reason).toBe(
      `${'x'.repeat(196)}...`,
    );
    expect(createResponse(INVITE, 488, 'y'.repeat(200)).reason).toBe('y'.repeat(200));
  });

  it('keeps reason phrases on one line', () => {
    expect(createResponse(INVITE, 400, 'bad\r\nVia: evil\u0000').reason).toBe('bad  Via: evil ');
    expect(createResponse(INVITE, 400, 'tab\tkept').reason).toBe('tab\tkept');
  });

  it('refuses impossible arguments', () => {
    expect(() => createResponse(INVITE, 99)).toThrow(RangeError);
    expect(() => createResponse(INVITE, 700)).toThrow(RangeError);
    expect(() => createResponse(INVITE, 200.5)).toThrow(RangeError);
    expect(() => createResponse(INVITE, 200, 'OK', { toTag: 'a b' })).toThrow(TypeError);
    expect(() => createResponse(INVITE, 200, 'OK', { body: Buffer.from('x') })).toThrow(TypeError);
    expect(() => createResponse(INVITE, 200, 'OK', { headers: [['Bad Name', 'x']] })).toThrow(TypeError);
  });
});

describe('createErrorResponse', () => {
  /** The partial request of a failed parse (the parser's contract: fields as received). */
  function partial(lines: string[]): SipRequest {
    const result = parseMessage(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8'));
    if (result.ok || result.message?.type !== 'request' || result.status === undefined) {
      throw new Error('fixture must be an answerable malformed request');
    }
    return result.message;
  }
  const fields = (over: Record<string, string | null>) =>
    Object.entries({
      Via: 'SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1',
      From: '<sip:a@b>;tag=1',
      To: '<sip:c@d>',
      'Call-ID': 'x1',
      CSeq: '7 INVITE',
      'Content-Length': '0',
      ...over,
    }).flatMap(([k, v]) => (v === null ? [] : [`${k}: ${v}`]));

  it.each([
    ['a malformed Via', { Via: 'SIP/2.0/TCP' }],
    ['a From display name neither tokens nor quoted', { From: 'Bell, Alexander <sip:a@b>;tag=1' }],
    ['a malformed CSeq', { CSeq: 'seven INVITE' }],
    ['no To', { To: null }],
  ])('copies the fields of a request with %s as received', (_label, over) => {
    const request = partial(['INVITE sip:c@d SIP/2.0', ...fields(over)]);
    const response = createErrorResponse(request, 400, 'what is wrong');
    expect(response?.status).toBe(400);
    expect(response?.reason).toBe('Bad Request (what is wrong)');
    const copied = [...(response?.headers ?? [])].filter(([n]) => n !== 'Content-Length');
    const received = [...request.headers].filter(([n]) =>
      ['Via', 'From', 'To', 'Call-ID', 'CSeq'].includes(n),
    );
    expect(copied).toEqual(received);
  });

  it('says 505 and 513 reasons as they are, and keeps a long reason short', () => {
    const request = partial(['INVITE sip:c@d SIP/3.0', ...fields({})]);
    expect(createErrorResponse(request, 505, 'SIP version SIP/3.0 not supported')?.reason).toBe(
      'SIP version SIP/3.0 not supported',
    );
    expect(createErrorResponse(request, 400, 'x'.repeat(500))?.reason).toHaveLength(MAX_REASON_LENGTH);
  });

  it('answers nothing to an ACK (by Request-Line or CSeq) or to a request without a Via', () => {
    expect(
      createErrorResponse(
        partial(['ACK sip:c@d SIP/2.0', ...fields({ Via: 'bad', CSeq: '7 ACK' })]),
        400,
        'x',
      ),
    ).toBe(undefined);
    expect(
      createErrorResponse(partial(['\u00e4\u00e4 sip:c@d SIP/2.0', ...fields({ CSeq: '7 ACK' })]), 400, 'x'),
    ).toBe(undefined);
    expect(createErrorResponse(partial(['INVITE sip:c@d SIP/2.0', ...fields({ Via: null })]), 400, 'x')).toBe(
      undefined,
    );
  });
});

describe('reasonPhrase', () => {
  it.each([
    [100, 'Trying'],
    [180, 'Ringing'],
    [200, 'OK'],
    [400, 'Bad Request'],
    [401, 'Unauthorized'],
    [407, 'Proxy Authentication Required'],
    [415, 'Unsupported Media Type'],
    [416, 'Unsupported URI Scheme'],
    [420, 'Bad Extension'],
    [481, 'Call/Transaction Does Not Exist'],
    [487, 'Request Terminated'],
    [488, 'Not Acceptable Here'],
    [501, 'Not Implemented'],
    [505, 'Version Not Supported'],
    [513, 'Message Too Large'],
    [603, 'Decline'],
    [299, 'Unknown'],
  ])('%i → %s', (status, phrase) => {
    expect(reasonPhrase(status)).toBe(phrase);
  });
});

describe('identifiers', () => {
  it('generates branches with the magic cookie, unique tags and Call-IDs', () => {
    const branches = new Set(Array.from({ length: 1000 }, generateBranch));
    const tags = new Set(Array.from({ length: 1000 }, generateTag));
    const callIds = new Set(Array.from({ length: 1000 }, generateCallId));
    expect(branches.size).toBe(1000);
    expect(tags.size).toBe(1000);
    expect(callIds.size).toBe(1000);
    for (const b of branches) {
      expect(b.startsWith('z9hG4bK')).toBe(true);
      expect(b.length).toBeGreaterThan(7 + 15);
      expect(isToken(b)).toBe(true);
    }
    for (const t of tags) expect(isToken(t) && t.length >= 8).toBe(true);
    for (const c of callIds) expect(c).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('warningHeader', () => {
  it('is warn-code SP warn-agent SP quoted warn-text, with quotes, backslashes and controls made safe', () => {
    expect(warningHeader(305, 'offered G729/8000, GSM/8000')).toBe(
      '305 rc-softphone "offered G729/8000, GSM/8000"',
    );
    expect(warningHeader(399, 'say "hi"\\\r\n')).toBe('399 rc-softphone "say \\"hi\\"\\\\  "');
  });
});
