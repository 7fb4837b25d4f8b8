import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../../src/errors.js';
import { type ParseResult, parseMessage } from '../../../src/sip/message/parse.js';
import type { SipMessage, SipRequest, SipResponse } from '../../../src/sip/message/types.js';

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');
/** Joins lines with CRLF and ends the header section. */
const msg = (lines: string[], body = ''): Buffer => enc(`${lines.join('\r\n')}\r\n\r\n${body}`);

const REQUIRED = [
  'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK3c1e9f2a7b.1',
  'From: "Caller" <sip:+16505550199@sip.ringcentral.com>;tag=from1',
  'To: <sip:18885550123*101@sip.ringcentral.com>',
  'Call-ID: call-1@10.13.21.112',
];
const invite = (extra: string[] = [], body = ''): Buffer =>
  msg(
    [
      'INVITE sip:18885550123*101@10.0.0.5:53412;transport=tcp SIP/2.0',
      ...REQUIRED,
      'CSeq: 314159 INVITE',
      'Max-Forwards: 70',
      ...extra,
      `Content-Length: ${enc(body).length}`,
    ],
    body,
  );

function ok(result: ParseResult): SipMessage {
  if (!result.ok) throw new Error(`unexpected failure: ${result.error.message}`);
  return result.message;
}
function request(result: ParseResult): SipRequest {
  const m = ok(result);
  if (m.type !== 'request') throw new Error('expected a request');
  return m;
}
function response(result: ParseResult): SipResponse {
  const m = ok(result);
  if (m.type !== 'response') throw new Error('expected a response');
  return m;
}
function failed(result: ParseResult): Extract<ParseResult, { ok: false }> {
  if (result.ok) throw new Error('expected a failure');
  return result;
}

describe('parseMessage: requests', () => {
  it('parses the start line, header fields in order and the body as bytes', () => {
    const sdp = 'v=0\r\ns=Café ☎\r\n';
    const r = request(parseMessage(invite(['Content-Type: application/sdp'], sdp)));
    expect(r.type).toBe('request');
    expect(r.method).toBe('INVITE');
    expect(r.uri).toBe('sip:18885550123*101@10.0.0.5:53412;transport=tcp');
    expect([...r.headers].map(([name]) => name)).toEqual([
      'Via',
      'From',
      'To',
      'Call-ID',
      'CSeq',
      'Max-Forwards',
      'Content-Type',
      'Content-Length',
    ]);
    expect(r.body).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(r.body).toString('utf8')).toBe(sdp);
    expect(r.body.length).toBe(enc(sdp).length);
    expect(r.body.length).toBeGreaterThan(sdp.length);
    expect(r.headers.get('Content-Length')).toBe(String(enc(sdp).length));
  });

  it('unfolds continuation lines and accepts LWS around the colon', () => {
    const r = request(
      parseMessage(
        msg([
          'OPTIONS sip:a@b SIP/2.0',
          'Via  :\tSIP/2.0/UDP h;branch=z9hG4bK1',
          'From: <sip:x@y>;tag=1',
          'TO :',
          ' sip:a@b ;',
          '\t tag = 2',
          'Call-ID: c',
          'cseq: 0009',
          '   OPTIONS',
          'Subject:   ',
          'X-Long: one',
          '  two  ',
          '\tthree',
          'l: 0',
        ]),
      ),
    );
    expect(r.headers.get('Via')).toBe('SIP/2.0/UDP h;branch=z9hG4bK1');
    expect(r.headers.get('To')).toBe('sip:a@b ; tag = 2');
    expect(r.headers.to()?.params.get('tag')).toBe('2');
    expect(r.headers.cseq()).toEqual({ seq: 9, method: 'OPTIONS' });
    expect(r.headers.get('Subject')).toBe('');
    expect(r.headers.get('X-Long')).toBe('one two three');
  });

  it('expands compact forms', () => {
    const r = request(
      parseMessage(
        msg([
          'BYE sip:a@b SIP/2.0',
          'v: SIP/2.0/TCP h;branch=z9hG4bK1',
          'f: <sip:x@y>;tag=1',
          't: <sip:a@b>;tag=2',
          'i: c@h',
          'CSeq: 2 BYE',
          'l: 0',
        ]),
      ),
    );
    expect([...r.headers].map(([n]) => n)).toEqual([
      'Via',
      'From',
      'To',
      'Call-ID',
      'CSeq',
      'Content-Length',
    ]);
    expect(r.headers.callId()).toBe('c@h');
  });

  it('keeps the spelling of unknown header names from message to message', () => {
    const first = request(parseMessage(invite(['x-rc-learned: 1'])));
    const second = request(parseMessage(invite(['X-RC-Learned: 2', 'X-RC-LEARNED: 3'])));
    expect([...first.headers].map(([n]) => n)).toContain('x-rc-learned');
    expect([...second.headers].map(([n]) => n)).toEqual(
      expect.arrayContaining(['X-RC-Learned', 'X-RC-LEARNED']),
    );
    expect(second.headers.getAll('x-rc-learned')).toEqual(['2', '3']);
    // Spellings that differ only in their first letter are told apart too.
    request(parseMessage(invite(['x-first-only: 1'])));
    const third = request(parseMessage(invite(['X-first-only: 2'])));
    expect([...third.headers].map(([n]) => n)).toContain('X-first-only');
  });

  it('keeps UTF-8 header values and NUL or DEL inside quoted strings', () => {
    const r = request(parseMessage(invite(['Subject: Звонок ☎', 'X-Ctl: "a\\\u0000b\\\u007fc"'], '')));
    expect(r.headers.get('Subject')).toBe('Звонок ☎');
    expect(r.headers.get('X-Ctl')).toBe('"a\\\u0000b\\\u007fc"');
  });

  it('ignores CRLFs before the start line (RFC 3261 7.5)', () => {
    const bytes = Buffer.concat([enc('\r\n\r\n'), invite()]);
    expect(request(parseMessage(bytes)).method).toBe('INVITE');
  });

  it('takes exactly Content-Length body bytes and ignores the rest of a datagram (RFC 3261 18.3)', () => {
    const bytes = Buffer.concat([invite(['Content-Type: text/plain'], 'hello'), enc('garbage after')]);
    expect(Buffer.from(request(parseMessage(bytes)).body).toString()).toBe('hello');
  });

  it('takes the rest of the datagram as the body when Content-Length is absent', () => {
    const bytes = msg(
      ['MESSAGE sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 MESSAGE', 'Content-Type: text/plain'],
      'hi ✓',
    );
    expect(Buffer.from(request(parseMessage(bytes)).body).toString()).toBe('hi ✓');
  });

  it('copies the body out of the input buffer', () => {
    const bytes = invite(['Content-Type: text/plain'], 'hello');
    const body = request(parseMessage(bytes)).body;
    bytes.fill(0);
    expect(Buffer.from(body).toString()).toBe('hello');
  });

  it('accepts a Uint8Array view into a larger buffer', () => {
    const inner = invite();
    const outer = new Uint8Array(inner.length + 20);
    outer.set(inner, 10);
    expect(request(parseMessage(outer.subarray(10, 10 + inner.length))).method).toBe('INVITE');
  });

  it('accepts unknown methods and URI schemes (the UA answers 501 / 416)', () => {
    const r = request(
      parseMessage(msg(['NEWMETHOD tel:+16505550199 SIP/2.0', ...REQUIRED, 'CSeq: 1 NEWMETHOD', 'l: 0'])),
    );
    expect(r.method).toBe('NEWMETHOD');
    expect(r.uri).toBe('tel:+16505550199');
  });

  it('accepts Max-Forwards 0 and 255 and Contact: *', () => {
    for (const mf of ['0', '255', '0070']) {
      const bytes = msg([
        'OPTIONS sip:a@b SIP/2.0',
        ...REQUIRED,
        'CSeq: 1 OPTIONS',
        `Max-Forwards: ${mf}`,
        'l: 0',
      ]);
      expect(parseMessage(bytes).ok, mf).toBe(true);
    }
    const reg = msg([
      'REGISTER sip:b SIP/2.0',
      ...REQUIRED,
      'CSeq: 1 REGISTER',
      'Contact: *',
      'Expires: 0',
      'l: 0',
    ]);
    expect(parseMessage(reg).ok).toBe(true);
  });

  describe('rejections, with the status to answer and a partial message', () => {
    const cases: Array<[string, Buffer, number, string, string]> = [
      [
        'missing headers',
        msg(['INVITE sip:a@b SIP/2.0', REQUIRED[0] as string, 'CSeq: 1 INVITE', 'l: 0']),
        400,
        'Missing required header fields: From, To, Call-ID',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'CSeq method mismatch',
        msg(['OPTIONS sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 8 INVITE', 'l: 0']),
        400,
        'CSeq method INVITE does not match request method OPTIONS',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'CSeq over 2^32-1',
        msg(['INVITE sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 4294967296 INVITE', 'l: 0']),
        400,
        'CSeq sequence number exceeds 2^32-1',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'malformed CSeq',
        msg(['BYE sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: BYE', 'l: 0']),
        400,
        'Malformed CSeq header field',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'Max-Forwards 256',
        msg(['BYE sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 BYE', 'Max-Forwards: 256', 'l: 0']),
        400,
        'Max-Forwards must be an integer from 0 to 255',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'two Call-IDs',
        msg(['BYE sip:a@b SIP/2.0', ...REQUIRED, 'i: other', 'CSeq: 1 BYE', 'l: 0']),
        400,
        'Header field Call-ID appears more than once',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'two identical Content-Lengths',
        msg(['BYE sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 BYE', 'l: 0', 'Content-Length: 0']),
        400,
        'Header field Content-Length appears more than once',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'bad Via',
        msg(['BYE sip:a@b SIP/2.0', ...REQUIRED, 'Via: SIP/2.0/UDP', 'CSeq: 1 BYE', 'l: 0']),
        400,
        'Malformed Via header field',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'bad Contact',
        msg(['INVITE sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 INVITE', 'Contact: <sip:a@b', 'l: 0']),
        400,
        'Contact header field has an unterminated <',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'Contact * with others',
        msg(['REGISTER sip:b SIP/2.0', ...REQUIRED, 'CSeq: 1 REGISTER', 'Contact: *, <sip:a@b>', 'l: 0']),
        400,
        'Malformed Contact header field',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'whitespace in Call-ID',
        msg(['BYE sip:a@b SIP/2.0', ...REQUIRED.slice(0, 3), 'Call-ID: a b', 'CSeq: 1 BYE', 'l: 0']),
        400,
        'Malformed Call-ID header field',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'SIP/3.0',
        msg(['OPTIONS sip:a@b SIP/3.0', ...REQUIRED, 'CSeq: 1 OPTIONS', 'l: 0']),
        505,
        'SIP version SIP/3.0 not supported',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'malformed version',
        msg(['OPTIONS sip:a@b SIP/two', ...REQUIRED, 'CSeq: 1 OPTIONS', 'l: 0']),
        400,
        'Malformed SIP-Version in Request-Line',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      // A start line we cannot read, on a request whose Via says it came
      // through SIP: there is a transaction waiting for an answer.
      [
        'method that is not a token',
        msg(['IN\u00e4VITE sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 INVITE', 'l: 0']),
        400,
        'Malformed Method in Request-Line',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'no method (leading SP)',
        msg([' sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 INVITE', 'l: 0']),
        400,
        'Malformed Method in Request-Line',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'control characters for a method',
        msg(['\u001b[3;5;7maa sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 INVITE', 'l: 0']),
        400,
        'Malformed Method in Request-Line',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'a start line of one word',
        msg(['\u00e5\u00e4\u00f6\u00e5\u00e4\u00f6', ...REQUIRED, 'CSeq: 1 INVITE', 'l: 0']),
        400,
        'Malformed Method in Request-Line',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'no SIP-Version at all',
        msg(['INVITE sip:a@b aaaaaaaa', ...REQUIRED, 'CSeq: 1 INVITE', 'l: 0']),
        400,
        'Malformed SIP-Version in Request-Line',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'an HTTP version',
        msg(['INVITE sip:a@b HTTP/1.1', ...REQUIRED, 'CSeq: 1 INVITE', 'l: 0']),
        400,
        'Malformed SIP-Version in Request-Line',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'two-element request line',
        msg(['OPTIONS SIP/2.0', ...REQUIRED, 'CSeq: 1 OPTIONS', 'l: 0']),
        400,
        'Request-Line must be Method SP Request-URI SP SIP-Version',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'malformed Request-URI',
        msg(['OPTIONS sip: SIP/2.0', ...REQUIRED, 'CSeq: 1 OPTIONS', 'l: 0']),
        400,
        'Malformed Request-URI',
        ErrorCodes.SIP_BAD_REQUEST,
      ],
      [
        'header line without colon',
        msg(['OPTIONS sip:a@b SIP/2.0', ...REQUIRED, 'this is not a header', 'CSeq: 1 OPTIONS', 'l: 0']),
        400,
        'Header field line without a colon',
        ErrorCodes.SIP_PARSE_ERROR,
      ],
      [
        'invalid header name',
        msg(['OPTIONS sip:a@b SIP/2.0', ...REQUIRED, 'Bad Name: x', 'CSeq: 1 OPTIONS', 'l: 0']),
        400,
        'Invalid header field name',
        ErrorCodes.SIP_PARSE_ERROR,
      ],
      [
        'continuation before any header',
        msg(['OPTIONS sip:a@b SIP/2.0', ' folded', ...REQUIRED, 'CSeq: 1 OPTIONS', 'l: 0']),
        400,
        'Header field continuation line without a header field',
        ErrorCodes.SIP_PARSE_ERROR,
      ],
      [
        'bare LF in a header field',
        msg([
          'OPTIONS sip:a@b SIP/2.0',
          ...REQUIRED,
          'CSeq: 1 OPTIONS',
          'X-A: a\nVia: SIP/2.0/UDP evil',
          'l: 0',
        ]),
        400,
        'Header fields contain a bare CR or LF',
        ErrorCodes.SIP_PARSE_ERROR,
      ],
      [
        'bare CR in a header field',
        msg(['OPTIONS sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 OPTIONS', 'X-A: a\rb', 'l: 0']),
        400,
        'Header fields contain a bare CR or LF',
        ErrorCodes.SIP_PARSE_ERROR,
      ],
      [
        'no blank line',
        enc(['OPTIONS sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 OPTIONS', 'l: 0'].join('\r\n') + '\r\n'),
        400,
        'Message ends before the blank line that terminates the header fields',
        ErrorCodes.SIP_PARSE_ERROR,
      ],
      [
        'non-numeric Content-Length',
        msg(['OPTIONS sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 OPTIONS', 'Content-Length: five']),
        400,
        'Content-Length is not a number',
        ErrorCodes.SIP_PARSE_ERROR,
      ],
      [
        'Content-Length beyond the datagram',
        msg(['OPTIONS sip:a@b SIP/2.0', ...REQUIRED, 'CSeq: 1 OPTIONS', 'Content-Length: 10'], 'short'),
        400,
        'Content-Length 10 exceeds the 5 body bytes received',
        ErrorCodes.SIP_PARSE_ERROR,
      ],
    ];
    it.each(cases)('%s', (_label, bytes, status, reason, code) => {
      const result = failed(parseMessage(bytes));
      expect(result.status).toBe(status);
      expect(result.error.message).toBe(reason);
      expect(result.error.code).toBe(code);
      expect(result.error.details.status).toBe(status);
      expect(result.message?.type).toBe('request');
      // The fields before the problem are there to answer with.
      expect(result.message?.headers.get('Via')).toBe(
        'SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK3c1e9f2a7b.1',
      );
    });

    it('still reads the top Via of a request whose lower Via is malformed (to answer it)', () => {
      const bytes = msg([
        'OPTIONS sip:a@b SIP/2.0',
        ...REQUIRED,
        'Via: SIP/2.0/UDP 10.0.0.1:5060;;branch=z9hG4bKlower',
        'CSeq: 1 OPTIONS',
        'l: 0',
      ]);
      const result = failed(parseMessage(bytes));
      expect(result.error.message).toBe('Malformed Via header field');
      expect(result.message?.headers.topVia()?.params.get('branch')).toBe('z9hG4bK3c1e9f2a7b.1');
      expect(result.message?.headers.vias()).toBeUndefined();
    });

    it('keeps only the fields before a bare LF', () => {
      const bytes = msg([
        'OPTIONS sip:a@b SIP/2.0',
        ...REQUIRED,
        'X-A: a\nVia: SIP/2.0/UDP evil',
        'CSeq: 1 OPTIONS',
      ]);
      const result = failed(parseMessage(bytes));
      expect(result.message?.headers.getAll('Via')).toHaveLength(1);
      expect(result.message?.headers.has('X-A')).toBe(false);
      expect(result.message?.headers.has('CSeq')).toBe(false);
    });
  });

  it('answers 513 to a body over the limit', () => {
    const result = failed(
      parseMessage(invite(['Content-Type: text/plain'], 'x'.repeat(100)), { maxBodyBytes: 99 }),
    );
    expect(result.status).toBe(513);
    expect(result.error.message).toBe('Message body exceeds 99 bytes');
    expect(parseMessage(invite(['Content-Type: text/plain'], 'x'.repeat(99)), { maxBodyBytes: 99 }).ok).toBe(
      true,
    );
  });

  it('refuses a header section over the limit without parsing it', () => {
    const bytes = invite(['X-Pad: ' + 'p'.repeat(2000)]);
    const result = failed(parseMessage(bytes, { maxHeaderBytes: 1024 }));
    expect(result.error.message).toBe('Header section exceeds 1024 bytes');
    expect(result.message).toBeUndefined();
    expect(parseMessage(bytes, { maxHeaderBytes: 4096 }).ok).toBe(true);
  });

  it('gives no message and no status for bytes that are not SIP', () => {
    for (const text of [
      '',
      '\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
      // An unreadable start line and no Via: nothing says a SIP transaction waits.
      '\u00e5\u00e4\u00f6 sip:a@b SIP/2.0\r\nFrom: <sip:a@b>\r\nCSeq: 1 INVITE\r\n\r\n',
      'INVITE sip:a@b HTTP/1.1\r\nTo: <sip:a@b>\r\n\r\n',
      '\u0000\u0001\u0002\r\n\r\n',
      'hello',
    ]) {
      const result = failed(parseMessage(enc(text)));
      expect(result.message, JSON.stringify(text)).toBeUndefined();
      expect(result.status).toBeUndefined();
      expect(result.error.code).toBe(ErrorCodes.SIP_PARSE_ERROR);
    }
  });

  it('does not put header values into error texts (they become reason phrases)', () => {
    const secret = 'Digest username="u", response="0123456789abcdef"';
    const bytes = msg([
      'REGISTER sip:b SIP/2.0',
      ...REQUIRED,
      `Authorization: ${secret}`,
      'CSeq: 1 INVITE',
      'l: 0',
    ]);
    const result = failed(parseMessage(bytes));
    expect(result.error.message).not.toContain('0123456789abcdef');
    expect(result.error.message).toBe('CSeq method INVITE does not match request method REGISTER');
  });
});

describe('parseMessage: responses', () => {
  const resp = (statusLine: string, extra: string[] = []): Buffer =>
    msg([statusLine, ...REQUIRED, 'CSeq: 1 INVITE', ...extra, 'Content-Length: 0']);

  it('parses the status line', () => {
    expect(response(parseMessage(resp('SIP/2.0 200 OK')))).toMatchObject({ status: 200, reason: 'OK' });
    expect(response(parseMessage(resp('SIP/2.0 100 ')))).toMatchObject({ status: 100, reason: '' });
    expect(response(parseMessage(resp('SIP/2.0 180')))).toMatchObject({ status: 180, reason: '' });
    expect(response(parseMessage(resp('SIP/2.0 603 Too Many Contacts')))).toMatchObject({
      status: 603,
      reason: 'Too Many Contacts',
    });
    expect(response(parseMessage(resp('SIP/2.0 486 Занято ')))).toMatchObject({ reason: 'Занято ' });
    expect(response(parseMessage(resp('sip/2.0 699 Whatever'))).status).toBe(699);
  });

  it('reads the header spellings RingCentral sends', () => {
    const r = response(
      parseMessage(
        resp('SIP/2.0 401 Unauthorized', [
          'Www-Authenticate: Digest realm="sip.ringcentral.com", nonce="abc,def", algorithm=MD5',
        ]),
      ),
    );
    expect(r.headers.get('WWW-Authenticate')).toBe(
      'Digest realm="sip.ringcentral.com", nonce="abc,def", algorithm=MD5',
    );
    expect([...r.headers].map(([n]) => n)).toContain('WWW-Authenticate');
  });

  it.each([
    ['status 700', 'SIP/2.0 700 Nope', 'Status-Code 700 out of range'],
    ['status 099', 'SIP/2.0 099 Nope', 'Status-Code 099 out of range'],
    ['two digits', 'SIP/2.0 20 OK', 'Malformed Status-Code'],
    ['huge (RFC 4475 3.1.2.19)', 'SIP/2.0 4294967301 better not break the receiver', 'Malformed Status-Code'],
    ['letters', 'SIP/2.0 2OO OK', 'Malformed Status-Code'],
    ['other version', 'SIP/3.0 200 OK', 'Unsupported SIP version in response'],
    ['no status', 'SIP/2.0', 'Malformed Status-Code'],
  ])('drops %s', (_label, statusLine, reason) => {
    const result = failed(parseMessage(resp(statusLine)));
    expect(result.error.message).toBe(reason);
    expect(result.status).toBeUndefined();
    expect(result.message).toBeUndefined();
  });

  it('drops responses that fail validation, keeping the message for diagnostics', () => {
    const result = failed(
      parseMessage(msg(['SIP/2.0 200 OK', ...REQUIRED, 'CSeq: 9292394834772304023312 OPTIONS', 'l: 0'])),
    );
    expect(result.error.code).toBe(ErrorCodes.SIP_PARSE_ERROR);
    expect(result.error.message).toBe('CSeq sequence number exceeds 2^32-1');
    expect(result.status).toBeUndefined();
    expect(result.message?.type).toBe('response');
    const noVia = failed(parseMessage(msg(['SIP/2.0 200 OK', ...REQUIRED.slice(1), 'CSeq: 1 BYE', 'l: 0'])));
    expect(noVia.error.message).toBe('Missing required header field: Via');
  });
});
