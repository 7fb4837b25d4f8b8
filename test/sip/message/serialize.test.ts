import { describe, expect, it } from 'vitest';
import { Headers } from '../../../src/sip/message/headers.js';
import { parseMessage } from '../../../src/sip/message/parse.js';
import { serialize } from '../../../src/sip/message/serialize.js';
import type { SipMessage, SipRequest, SipResponse } from '../../../src/sip/message/types.js';
import { loadCase, manifest } from './corpus.js';

const request = (headers: Array<[string, string]>, body = ''): SipRequest => ({
  type: 'request',
  method: 'INVITE',
  uri: 'sip:bob@example.com',
  headers: new Headers(headers),
  body: Buffer.from(body, 'utf8'),
});

describe('serialize', () => {
  it('writes start line, fields in order, Content-Length, blank line, body', () => {
    const wire = serialize(
      request(
        [
          ['Via', 'SIP/2.0/TCP h;branch=z9hG4bK1'],
          ['v', 'SIP/2.0/UDP g;branch=z9hG4bK2'],
          ['Call-ID', 'c'],
          ['Content-Type', 'application/sdp'],
        ],
        'v=0\r\n',
      ),
    );
    expect(wire.toString('utf8')).toBe(
      'INVITE sip:bob@example.com SIP/2.0\r\n' +
        'Via: SIP/2.0/TCP h;branch=z9hG4bK1\r\n' +
        'Via: SIP/2.0/UDP g;branch=z9hG4bK2\r\n' +
        'Call-ID: c\r\n' +
        'Content-Type: application/sdp\r\n' +
        'Content-Length: 5\r\n' +
        '\r\n' +
        'v=0\r\n',
    );
  });

  it('writes responses, including an empty reason phrase', () => {
    const res: SipResponse = {
      type: 'response',
      status: 100,
      reason: '',
      headers: new Headers(),
      body: new Uint8Array(),
    };
    expect(serialize(res).toString()).toBe('SIP/2.0 100 \r\nContent-Length: 0\r\n\r\n');
  });

  it('counts Content-Length in bytes and replaces a wrong value in place, once', () => {
    const body = 's=Café ☎\r\n';
    const wire = serialize(
      request(
        [
          ['Call-ID', 'c'],
          ['l', '3'],
          ['CSeq', '1 INVITE'],
          ['Content-Length', '99'],
        ],
        body,
      ),
    ).toString('utf8');
    const length = Buffer.byteLength(body);
    expect(length).toBeGreaterThan(body.length);
    expect(wire).toBe(
      `INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: c\r\nContent-Length: ${length}\r\nCSeq: 1 INVITE\r\n\r\n${body}`,
    );
  });

  it('writes binary bodies untouched', () => {
    const body = Uint8Array.from([0, 255, 13, 10, 13, 10, 128]);
    const m: SipMessage = { ...request([['Content-Type', 'application/octet-stream']]), body };
    const wire = serialize(m);
    expect(wire.subarray(wire.length - body.length).equals(Buffer.from(body))).toBe(true);
    expect(wire.toString('latin1')).toContain('Content-Length: 7\r\n\r\n');
  });

  it('writes header bytes that were not UTF-8 back exactly as they came (PROTOS c07-sip)', () => {
    const wire = Buffer.concat([
      Buffer.from('INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: '),
      Buffer.from('e5e4f6', 'hex'), // latin1 "åäö" in a display name
      Buffer.from(' <sip:a@b>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: '),
      Buffer.from('fc', 'hex'),
      Buffer.from('@h\r\nCSeq: 1 INVITE\r\nSubject: caf\u00e9 \u260e\r\nContent-Length: 0\r\n\r\n', 'utf8'),
    ]);
    const parsed = parseMessage(wire);
    const message = parsed.ok ? parsed.message : parsed.message;
    if (!message) throw new Error('expected a message');
    // Same bytes, not U+FFFD three bytes each.
    expect(serialize(message).equals(wire)).toBe(true);
  });

  it('refuses messages that cannot be sent safely', () => {
    expect(() => serialize({ ...request([]), method: 'IN VITE' })).toThrow(TypeError);
    expect(() => serialize({ ...request([]), uri: 'sip:a@b SIP/2.0\r\nVia: x' })).toThrow(TypeError);
    expect(() => serialize({ ...request([]), uri: '' })).toThrow(TypeError);
    const res: SipResponse = {
      type: 'response',
      status: 200,
      reason: 'OK\r\nX: y',
      headers: new Headers(),
      body: new Uint8Array(),
    };
    expect(() => serialize(res)).toThrow(TypeError);
    expect(() => serialize({ ...res, reason: 'OK', status: 99 })).toThrow(TypeError);
    expect(() => serialize({ ...res, reason: 'OK', status: 200.5 })).toThrow(TypeError);
  });

  describe('round-trips every RFC 4475 message that parses', () => {
    for (const c of manifest.cases) {
      const first = parseMessage(loadCase(c.file));
      if (!first.ok) continue;
      it(c.file, () => {
        const again = parseMessage(serialize(first.message));
        if (!again.ok) throw new Error(again.error.message);
        const a = first.message;
        const b = again.message;
        expect(b.type).toBe(a.type);
        if (a.type === 'request' && b.type === 'request')
          expect([b.method, b.uri]).toEqual([a.method, a.uri]);
        if (a.type === 'response' && b.type === 'response')
          expect([b.status, b.reason]).toEqual([a.status, a.reason]);
        const withoutLength = (m: SipMessage) => [...m.headers].filter(([name]) => name !== 'Content-Length');
        expect(withoutLength(b)).toEqual(withoutLength(a));
        expect(Buffer.from(b.body).equals(Buffer.from(a.body))).toBe(true);
        expect(b.headers.get('Content-Length')).toBe(String(a.body.length));
        // and serializing again is byte-identical
        expect(serialize(b).equals(serialize(a))).toBe(true);
      });
    }
  });
});
