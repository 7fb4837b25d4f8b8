/**
 * RFC 4475 (SIP torture test messages) against the parser and the stream
 * framer. Every file of the manifest must have an expectation here.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { createResponse } from '../../src/sip/message/build.js';
import { type ParseResult, parseMessage } from '../../src/sip/message/parse.js';
import { serialize } from '../../src/sip/message/serialize.js';
import type { SipMessage, SipRequest, SipResponse, SipUri } from '../../src/sip/message/types.js';
import { parseBoundedInt, parseUri, unquoteString } from '../../src/sip/message/uri.js';
import { StreamFramer } from '../../src/sip/transport/framer.js';
import { corpusDir, loadCase, manifest, sha256 } from './message/corpus.js';

type Stream = 'message' | 'no-content-length' | 'bad-content-length' | 'incomplete' | 'datagram-only';

type Expectation =
  | { parse: 'ok'; stream?: Stream; check?: (m: SipMessage) => void }
  | { parse: 'reject'; status: number; reason: RegExp; stream?: Stream }
  | { parse: 'drop'; reason: RegExp; stream?: Stream };

function req(m: SipMessage): SipRequest {
  if (m.type !== 'request') throw new Error('expected a request');
  return m;
}
function res(m: SipMessage): SipResponse {
  if (m.type !== 'response') throw new Error('expected a response');
  return m;
}
function sip(u: unknown): SipUri {
  const uri = u as SipUri;
  if (uri.scheme !== 'sip' && uri.scheme !== 'sips') throw new Error('expected a SIP URI');
  return uri;
}
const utf8 = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');

const SDP150 =
  'v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\n' +
  'm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n';

const EXPECTED: Record<string, Expectation> = {
  'wsinv.dat': {
    parse: 'ok',
    check: (m) => {
      const r = req(m);
      const h = r.headers;
      expect(r.method).toBe('INVITE');
      expect(r.uri).toBe('sip:vivekg@chair-dnrc.example.com;unknownparam');
      expect(h.cseq()).toEqual({ seq: 9, method: 'INVITE' });
      expect(parseBoundedInt(h.get('Max-Forwards') ?? '', 255)).toBe(68);
      expect(h.to()?.params.get('tag')).toBe('1918181833n');
      expect(sip(h.to()?.uri).user).toBe('vivekg');
      expect(h.from()?.displayName).toBe('J Rosenberg \\"');
      expect(h.from()?.params.get('tag')).toBe('98asjd8');
      expect(h.callId()).toBe('wsinv.ndaksdj@192.0.2.1');
      expect(h.get('Subject')).toBe('');
      expect(h.get('NewFangledHeader')).toBe('newfangled value continued newfangled value');
      expect(h.get('UnknownHeaderWithUnusualValue')).toBe(';;,,;;,;');
      const vias = h.vias() ?? [];
      expect(vias.map((v) => [v.protocol, v.transport, v.host, v.params.get('branch')])).toEqual([
        ['SIP/2.0', 'UDP', '192.0.2.2', '390skdjuw'],
        ['SIP/2.0', 'TCP', 'spindle.example.com', 'z9hG4bK9ikj8'],
        ['SIP/2.0', 'UDP', '192.168.255.111', 'z9hG4bK30239'],
      ]);
      const [contact] = h.nameAddrs('Contact') ?? [];
      expect(contact?.displayName).toBe('Quoted string ""');
      expect([...(contact?.params ?? [])]).toEqual([
        ['newparam', 'newvalue'],
        ['secondparam', null],
        ['q', '0.33'],
      ]);
      const [route] = h.nameAddrs('Route') ?? [];
      expect([...sip(route?.uri).params]).toEqual([
        ['lr', null],
        ['unknownwith', 'value'],
        ['unknown-no-value', null],
      ]);
      expect(utf8(r.body)).toBe(SDP150);
    },
  },
  'intmeth.dat': {
    parse: 'ok',
    check: (m) => {
      const r = req(m);
      const h = r.headers;
      expect(r.method).toBe("!interesting-Method0123456789_*+`.%indeed'~");
      const uri = sip(parseUri(r.uri));
      expect(uri.user).toBe("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
      expect(uri.password).toBe("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
      expect(uri.host).toBe('example.com');
      expect(h.to()?.displayName).toBe('BEL:\x07 NUL:\x00 DEL:\x7f');
      expect(sip(h.to()?.uri).user).toBe("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
      expect(h.from()?.displayName).toBe("token1~` token2'+_ token3*%!.-");
      expect(unquoteString(h.from()?.params.get("fromparam''~+*_!.-%") ?? '')).toBe('работающий');
      expect(h.from()?.params.get('tag')).toBe("_token~1'+`*%!-.");
      expect(h.callId()).toBe('intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{');
      expect(h.cseq()).toEqual({ seq: 139122385, method: r.method });
      expect(h.get("extensionHeader-!.%*+_`'~")).toBe('\ufeff大停電');
    },
  },
  'esc01.dat': {
    parse: 'ok',
    check: (m) => {
      const r = req(m);
      const uri = sip(parseUri(r.uri));
      expect(uri.user).toBe('sips:user@example.com');
      expect(uri.host).toBe('example.net');
      expect(sip(r.headers.to()?.uri).user).toBe('user');
      expect(sip(r.headers.from()?.uri).user).toBe('I have spaces');
      const [contact] = r.headers.nameAddrs('Contact') ?? [];
      const c = sip(contact?.uri);
      expect(c.user).toBe('caller');
      // Never unescaped twice: %25%34%31 is "%41", not "A" (RFC 4475 3.1.1.3).
      expect([...c.params]).toEqual([
        ['lr', null],
        ['name', 'value%41'],
      ]);
      expect(r.headers.get('Content-Type')).toBe('application/sdp');
    },
  },
  'escnull.dat': {
    parse: 'ok',
    check: (m) => {
      const h = m.headers;
      const user = sip(h.to()?.uri).user;
      expect(user).toBe('null-\u0000-null');
      expect(user).toHaveLength(11);
      expect((h.nameAddrs('Contact') ?? []).map((c) => sip(c.uri).user)).toEqual(['\u0000', '\u0000\u0000']);
    },
  },
  'esc02.dat': {
    parse: 'ok',
    check: (m) => {
      const r = req(m);
      expect(r.method).toBe('RE%47IST%45R');
      expect(r.headers.getAll('Contact')).toHaveLength(2);
      expect(r.headers.get('C%6Fntact')).toBe('<sip:alias2@host2.example.com>');
      expect(r.headers.from()?.displayName).toBe('%Z%45');
      expect(r.headers.topVia()?.params.get('branch')).toBe('z9hG4bK209%fzsnel234');
    },
  },
  'lwsdisp.dat': {
    parse: 'ok',
    check: (m) => expect(m.headers.from()?.displayName).toBe('caller'),
  },
  'longreq.dat': {
    parse: 'ok',
    check: (m) => {
      const h = m.headers;
      const vias = h.vias() ?? [];
      expect(vias).toHaveLength(34);
      expect(vias[0]?.host).toBe('sip33.example.com');
      expect(vias[33]?.params.get('received')).toBe('192.0.2.5');
      expect(h.to()?.displayName).toMatch(/^I have a user name of (extreme){10} proportion$/);
      expect(sip(h.to()?.uri).port).toBe(6000);
      expect(h.from()?.params.get('tag')).toMatch(/^1(298){50}2424$/);
      expect(m.body).toHaveLength(150);
    },
  },
  'dblreq.dat': {
    parse: 'ok',
    stream: 'datagram-only',
    check: (m) => {
      // RFC 3261 18.3: octets after Content-Length in a datagram are ignored.
      expect(req(m).method).toBe('REGISTER');
      expect(m.body).toHaveLength(0);
    },
  },
  'semiuri.dat': {
    parse: 'ok',
    check: (m) => {
      const uri = sip(parseUri(req(m).uri));
      expect(uri.user).toBe('user;par=u@example.net');
      expect(uri.host).toBe('example.com');
      expect(uri.params.size).toBe(0);
      expect(m.headers.getAll('Accept')).toEqual([
        'application/sdp',
        'application/pkcs7-mime',
        'multipart/mixed',
        'multipart/signed',
        'message/sip',
        'message/sipfrag',
      ]);
    },
  },
  'transports.dat': {
    parse: 'ok',
    check: (m) =>
      expect((m.headers.vias() ?? []).map((v) => v.transport)).toEqual([
        'UDP',
        'SCTP',
        'TLS',
        'UNKNOWN',
        'TCP',
      ]),
  },
  'mpart01.dat': {
    parse: 'ok',
    check: (m) => {
      expect(m.body).toHaveLength(553);
      expect(m.body.includes(0)).toBe(true);
      expect(m.headers.get('Content-Type')).toBe('multipart/mixed;boundary=7a9cbec02ceef655');
      expect(m.headers.topVia()?.params.get('rport')).toBeNull();
    },
  },
  'unreason.dat': {
    parse: 'ok',
    check: (m) => {
      expect(res(m).status).toBe(200);
      expect(res(m).reason).toBe('= 2**3 * 5**2 но сто девяносто девять - простое');
      expect(m.body).toHaveLength(154);
    },
  },
  'noreason.dat': {
    parse: 'ok',
    check: (m) => {
      expect(res(m).status).toBe(100);
      expect(res(m).reason).toBe('');
    },
  },
  'badinv01.dat': { parse: 'reject', status: 400, reason: /Via header field has an empty value/ },
  'clerr.dat': { parse: 'reject', status: 400, reason: /Content-Length 9999 exceeds/, stream: 'incomplete' },
  'ncl.dat': {
    parse: 'reject',
    status: 400,
    reason: /Negative Content-Length/,
    stream: 'bad-content-length',
  },
  'scalar02.dat': { parse: 'reject', status: 400, reason: /CSeq sequence number exceeds 2\^32-1/ },
  'scalarlg.dat': { parse: 'drop', reason: /CSeq sequence number exceeds 2\^32-1/ },
  'quotbal.dat': {
    parse: 'reject',
    status: 400,
    reason: /To header field has an unterminated quoted string/,
  },
  'ltgtruri.dat': { parse: 'reject', status: 400, reason: /Request-URI must not be enclosed in <>/ },
  'lwsruri.dat': { parse: 'reject', status: 400, reason: /Request-URI contains whitespace/ },
  'lwsstart.dat': { parse: 'reject', status: 400, reason: /separated by a single SP/ },
  'trws.dat': { parse: 'reject', status: 400, reason: /trailing whitespace/ },
  'escruri.dat': { parse: 'reject', status: 400, reason: /Request-URI must not contain escaped headers/ },
  // Accepted: Date is ignored by a UA (RFC 4475 3.1.2.12 allows that).
  'baddate.dat': {
    parse: 'ok',
    check: (m) => expect(m.headers.get('Date')).toBe('Fri, 01 Jan 2010 16:00:00 EST'),
  },
  'regbadct.dat': {
    parse: 'reject',
    status: 400,
    reason: /Contact header field URI with headers must be enclosed/,
  },
  'badaspec.dat': { parse: 'reject', status: 400, reason: /To header field has whitespace inside <>/ },
  'baddn.dat': { parse: 'reject', status: 400, reason: /From header field has a display name/ },
  'badvers.dat': { parse: 'reject', status: 505, reason: /SIP version SIP\/7\.0 not supported/ },
  'mismatch01.dat': {
    parse: 'reject',
    status: 400,
    reason: /^CSeq method INVITE does not match request method OPTIONS$/,
  },
  'mismatch02.dat': {
    parse: 'reject',
    status: 400,
    reason: /^CSeq method INVITE does not match request method NEWMETHOD$/,
  },
  'bigcode.dat': { parse: 'drop', reason: /Malformed Status-Code/ },
  'badbranch.dat': {
    parse: 'ok',
    check: (m) => expect(m.headers.topVia()?.params.get('branch')).toBe('z9hG4bK'),
  },
  'insuf.dat': {
    parse: 'reject',
    status: 400,
    reason: /^Missing required header fields: From, To, Call-ID$/,
  },
  'unkscm.dat': {
    parse: 'ok',
    check: (m) =>
      expect(parseUri(req(m).uri)).toEqual({
        scheme: 'nobodyknowsthisscheme',
        opaque: 'totallyopaquecontent',
      }),
  },
  'novelsc.dat': {
    parse: 'ok',
    check: (m) => expect(parseUri(req(m).uri)).toEqual({ scheme: 'soap.beep', opaque: '//192.0.2.103:3002' }),
  },
  'unksm2.dat': {
    parse: 'ok',
    check: (m) => {
      expect(m.headers.to()?.uri).toEqual({ scheme: 'isbn', opaque: '2983792873' });
      expect(m.headers.from()?.uri).toEqual({ scheme: 'http', opaque: '//www.example.com' });
      expect(m.headers.nameAddrs('Contact')?.[0]?.uri).toEqual({ scheme: 'name', opaque: 'John_Smith' });
    },
  },
  'bext01.dat': {
    parse: 'ok',
    check: (m) => {
      expect(m.headers.getAll('Require')).toEqual(['nothingSupportsThis', 'nothingSupportsThisEither']);
      expect(m.headers.getAll('Proxy-Require')).toEqual([
        'noProxiesSupportThis',
        'norDoAnyProxiesSupportThis',
      ]);
    },
  },
  'invut.dat': {
    parse: 'ok',
    check: (m) => {
      expect(m.headers.get('Content-Type')).toBe('application/unknownformat');
      expect(utf8(m.body)).toBe('<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n');
    },
  },
  'regaut01.dat': {
    parse: 'ok',
    check: (m) => expect(m.headers.get('Authorization')).toBe('NoOneKnowsThisScheme opaque-data=here'),
  },
  'multi01.dat': { parse: 'reject', status: 400, reason: /^Header field Call-ID appears more than once$/ },
  'mcl01.dat': {
    parse: 'reject',
    status: 400,
    reason: /Conflicting Content-Length/,
    stream: 'bad-content-length',
  },
  'bcast.dat': {
    parse: 'ok',
    check: (m) =>
      expect((m.headers.vias() ?? []).map((v) => v.host)).toEqual(['192.0.2.198', '255.255.255.255']),
  },
  'zeromf.dat': { parse: 'ok', check: (m) => expect(m.headers.get('Max-Forwards')).toBe('0') },
  'cparam01.dat': {
    parse: 'ok',
    check: (m) => {
      // Bare addr-spec: ;unknownparam is a contact-param, not a url-param (RFC 3261 20.10).
      const [c] = m.headers.nameAddrs('Contact') ?? [];
      expect(sip(c?.uri).params.size).toBe(0);
      expect([...(c?.params ?? [])]).toEqual([['unknownparam', null]]);
    },
  },
  'cparam02.dat': {
    parse: 'ok',
    check: (m) => {
      const [c] = m.headers.nameAddrs('Contact') ?? [];
      expect([...sip(c?.uri).params]).toEqual([['unknownparam', null]]);
      expect(c?.params.size).toBe(0);
    },
  },
  'regescrt.dat': {
    parse: 'ok',
    check: (m) => {
      const [c] = m.headers.nameAddrs('Contact') ?? [];
      expect([...sip(c?.uri).headers]).toEqual([['Route', '<sip:sip.example.com>']]);
      // Never turned into a real header field.
      expect(m.headers.has('Route')).toBe(false);
    },
  },
  'sdp01.dat': {
    parse: 'ok',
    check: (m) => expect(m.headers.getAll('Accept')).toEqual(['text/nobodyKnowsThis']),
  },
  'inv2543.dat': {
    parse: 'ok',
    stream: 'no-content-length',
    check: (m) => {
      // No Content-Length in a datagram: the body is the rest of the datagram.
      expect(utf8(m.body)).toMatch(/^v=0\r\n[\s\S]*m=audio 49217 RTP\/AVP 0\r\n$/);
      expect(m.headers.topVia()?.params.has('branch')).toBe(false);
      expect(m.headers.from()?.params.has('tag')).toBe(false);
      expect(m.headers.has('Max-Forwards')).toBe(false);
    },
  },
};

const cases = manifest.cases;

describe('RFC 4475 corpus', () => {
  it('is complete and unmodified, and every file has an expectation', () => {
    expect(cases.length).toBe(49);
    const sums = readFileSync(path.join(corpusDir, 'SHA256SUMS'), 'utf8');
    for (const c of cases) {
      const bytes = loadCase(c.file);
      expect(bytes.length, c.file).toBe(c.bytes);
      expect(sha256(bytes), c.file).toBe(c.sha256);
      expect(sums).toContain(`${c.sha256}  ${c.file}`);
    }
    expect(Object.keys(EXPECTED).sort()).toEqual(cases.map((c) => c.file).sort());
  });

  describe('as datagrams (parseMessage)', () => {
    for (const c of cases) {
      const expectation = EXPECTED[c.file];
      it(`${c.rfc4475_section} ${c.file} (${c.parser_class}): ${expectation?.parse}`, () => {
        if (expectation === undefined) throw new Error(`no expectation for ${c.file}`);
        const result = parseMessage(loadCase(c.file));
        if (expectation.parse === 'ok') {
          if (!result.ok) throw new Error(`${c.file} rejected: ${result.error.message}`);
          expectation.check?.(result.message);
          // valid and valid-syntax messages survive a serialize/parse round trip
          const again = parseMessage(serialize(result.message));
          expect(again.ok).toBe(true);
          return;
        }
        if (result.ok) throw new Error(`${c.file} accepted but should fail`);
        expect(c.parser_class).not.toBe('valid');
        expect(result.error.message).toMatch(expectation.reason);
        if (expectation.parse === 'drop') {
          // Responses are dropped: nothing to answer.
          expect(result.status).toBeUndefined();
          expect(result.error.code).toBe(ErrorCodes.SIP_PARSE_ERROR);
          return;
        }
        expect(result.status).toBe(expectation.status);
        expect([ErrorCodes.SIP_BAD_REQUEST, ErrorCodes.SIP_PARSE_ERROR]).toContain(result.error.code);
        // The UA can answer from the partial message.
        const request = result.message;
        if (request?.type !== 'request') throw new Error('expected the partial request');
        const response = createResponse(request, expectation.status, result.error.message);
        const wire = serialize(response).toString('utf8');
        expect(wire.startsWith(`SIP/2.0 ${expectation.status} ${result.error.message}\r\n`)).toBe(true);
        expect(response.headers.getAll('Via')).toEqual(request.headers.getAll('Via'));
        expect(response.headers.get('Call-ID')).toBe(request.headers.get('Call-ID'));
      });
    }
  });

  describe('over a stream (StreamFramer, then parseMessage)', () => {
    for (const c of cases) {
      const expectation = EXPECTED[c.file];
      const stream = expectation?.stream ?? 'message';
      it(`${c.file}: ${stream}`, () => {
        const bytes = loadCase(c.file);
        const framer = new StreamFramer();
        const events = framer.push(bytes);
        switch (stream) {
          case 'message': {
            expect(events.map((e) => e.type)).toEqual(['message']);
            const [event] = events;
            if (event?.type !== 'message') throw new Error('expected a message');
            expect(Buffer.from(event.bytes).equals(bytes)).toBe(true);
            expect(framer.buffered).toBe(0);
            // Same verdict as the datagram parse.
            const viaStream: ParseResult = parseMessage(event.bytes);
            expect(viaStream.ok).toBe(expectation?.parse === 'ok');
            break;
          }
          case 'no-content-length':
          case 'bad-content-length': {
            expect(events).toHaveLength(1);
            const [event] = events;
            if (event?.type !== 'error') throw new Error('expected a framing error');
            expect(event.error.code).toBe(
              stream === 'no-content-length'
                ? ErrorCodes.SIP_FRAME_NO_CONTENT_LENGTH
                : ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH,
            );
            expect(framer.push(Buffer.from('\r\n'))).toEqual([]);
            break;
          }
          case 'incomplete': {
            // Content-Length larger than what arrives: wait; the read timeout closes the flow.
            expect(events).toEqual([]);
            expect(framer.buffered).toBe(bytes.length);
            const [end] = framer.end();
            expect(end?.type === 'error' && end.error.code).toBe(ErrorCodes.SIP_FRAME_INCOMPLETE);
            break;
          }
          case 'datagram-only': {
            // dblreq over a stream: the REGISTER, a CRLF pong, then the INVITE framed by its
            // Content-Length of 150 (its body really has 155 bytes), whose leftover
            // "C\r\n\r\n" cannot be framed.
            expect(events.map((e) => (e.type === 'error' ? e.error.code : e.type))).toEqual([
              'message',
              'pong',
              'message',
              ErrorCodes.SIP_FRAME_NO_CONTENT_LENGTH,
            ]);
            break;
          }
        }
      });
    }
  });
});
