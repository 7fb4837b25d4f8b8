import { describe, expect, it, vi } from 'vitest';
import { ErrorCodes } from '../../../src/errors.js';
import { parseMessage } from '../../../src/sip/message/parse.js';
import { type FramerEvent, StreamFramer } from '../../../src/sip/transport/framer.js';
import { loadCase } from '../message/corpus.js';

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');

/** An INVITE as RingCentral sends it, with a UTF-8 SDP body (bytes ≠ characters). */
const SDP =
  'v=0\r\no=- 4218563417 4218563417 IN IP4 104.245.57.182\r\ns=Звонок ☎ café\r\n' +
  'c=IN IP4 104.245.57.182\r\nt=0 0\r\nm=audio 35678 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n' +
  'a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n';
const INVITE = enc(
  [
    'INVITE sip:18885550123*101@10.0.0.5:53412;transport=tcp SIP/2.0',
    'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK3c1e9f2a7b.1',
    'Via: SIP/2.0/UDP 10.13.22.241:5070;rport=5070;branch=z9hG4bK5d8e2f1a',
    'Record-Route: <sip:104.245.57.165:5091;transport=tcp;lr>',
    'From: "Абонент" <sip:+16505550199@104.245.57.165>;tag=3b7c1f9e',
    'To: <sip:18885550123*101@sip.ringcentral.com>',
    'Call-ID: 8a7f6e5d@10.13.21.112',
    'CSeq: 314159 INVITE',
    'Max-Forwards: 67',
    'Content-Type: application/sdp',
    `Content-Length: ${enc(SDP).length}`,
    '',
    SDP,
  ].join('\r\n'),
);
const BYE = enc(
  [
    'BYE sip:bot@10.0.0.5 SIP/2.0',
    'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK9',
    'From: <sip:+16505550199@104.245.57.165>;tag=3b7c1f9e',
    'To: <sip:bot@sip.ringcentral.com>;tag=z1',
    'Call-ID: 8a7f6e5d@10.13.21.112',
    'CSeq: 314160 BYE',
    'l: 0',
    '',
    '',
  ].join('\r\n'),
);

/** Event types, with message bytes decoded and errors as their codes, for compact assertions. */
function summary(events: FramerEvent[]): string[] {
  return events.map((e) => {
    if (e.type === 'message') return `message:${Buffer.from(e.bytes).toString('utf8').split(' ')[0]}`;
    if (e.type === 'error') return `error:${e.error.code}`;
    return e.type;
  });
}

function messages(events: FramerEvent[]): Buffer[] {
  return events.flatMap((e) => (e.type === 'message' ? [Buffer.from(e.bytes)] : []));
}

function feed(framer: StreamFramer, chunks: Uint8Array[]): FramerEvent[] {
  return chunks.flatMap((c) => framer.push(c));
}

describe('StreamFramer', () => {
  it('frames by Content-Length in bytes, even with a multi-byte UTF-8 body', () => {
    expect(enc(SDP).length).toBeGreaterThan(SDP.length);
    const framer = new StreamFramer();
    const events = framer.push(INVITE);
    expect(summary(events)).toEqual(['message:INVITE']);
    expect(messages(events)[0]?.equals(INVITE)).toBe(true);
    expect(framer.buffered).toBe(0);
    const parsed = parseMessage(messages(events)[0] as Buffer);
    expect(parsed.ok && Buffer.from(parsed.message.body).toString('utf8')).toBe(SDP);
  });

  it('frames the message at every split point into two reads', () => {
    for (let split = 0; split < INVITE.length; split++) {
      const framer = new StreamFramer();
      const first = framer.push(INVITE.subarray(0, split));
      expect(first, `split ${split}`).toEqual([]);
      expect(framer.buffered).toBe(split);
      const second = framer.push(INVITE.subarray(split));
      expect(messages(second), `split ${split}`).toHaveLength(1);
      expect(messages(second)[0]?.equals(INVITE), `split ${split}`).toBe(true);
      expect(framer.buffered).toBe(0);
    }
  });

  it('frames two messages at every split point of their concatenation', () => {
    const both = Buffer.concat([INVITE, BYE]);
    for (let split = 0; split <= both.length; split++) {
      const events = feed(new StreamFramer(), [both.subarray(0, split), both.subarray(split)]);
      const got = messages(events);
      expect(got.length, `split ${split}`).toBe(2);
      expect(got[0]?.equals(INVITE) && got[1]?.equals(BYE), `split ${split}`).toBe(true);
    }
  });

  it('frames a byte-at-a-time feed', () => {
    const stream = Buffer.concat([enc('\r\n\r\n'), INVITE, BYE, INVITE]);
    const framer = new StreamFramer();
    const events: FramerEvent[] = [];
    for (let i = 0; i < stream.length; i++) events.push(...framer.push(stream.subarray(i, i + 1)));
    // A CRLFCRLF split across reads reads as two pongs (see the framer's doc comment).
    expect(summary(events)).toEqual(['pong', 'pong', 'message:INVITE', 'message:BYE', 'message:INVITE']);
    expect(messages(events).map((m) => m.length)).toEqual([INVITE.length, BYE.length, INVITE.length]);
    expect(framer.buffered).toBe(0);
  });

  it('handles several messages and keep-alives in one read (RFC 5626 4.4.1)', () => {
    const stream = Buffer.concat([
      enc('\r\n\r\n'),
      INVITE,
      enc('\r\n'),
      BYE,
      enc('\r\n\r\n\r\n'),
      INVITE,
      enc('\r\n\r\n\r\n\r\n'),
    ]);
    const framer = new StreamFramer();
    expect(summary(framer.push(stream))).toEqual([
      'ping',
      'message:INVITE',
      'pong',
      'message:BYE',
      'ping',
      'pong',
      'message:INVITE',
      'ping',
      'ping',
    ]);
    expect(framer.buffered).toBe(0);
  });

  it('reports a read that ends with exactly CRLF as a pong, and waits on a partial CR', () => {
    const framer = new StreamFramer();
    expect(summary(framer.push(enc('\r\n')))).toEqual(['pong']);
    expect(framer.buffered).toBe(0);
    expect(framer.push(enc('\r'))).toEqual([]);
    expect(framer.buffered).toBe(1);
    expect(summary(framer.push(enc('\n\r\n')))).toEqual(['ping']);
    expect(framer.push(enc('\r\n\r'))).toEqual([]);
    expect(summary(framer.push(enc('\nBYE')))).toEqual(['ping']);
    expect(framer.buffered).toBe(3);
    expect(summary(framer.push(BYE.subarray(3)))).toEqual(['message:BYE']);
  });

  it('does not treat CRLFs inside a message as keep-alives', () => {
    const framer = new StreamFramer();
    const body = '\r\n\r\n\r\n';
    const m = enc(`MESSAGE sip:a@b SIP/2.0\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(summary(framer.push(Buffer.concat([m, enc('\r\n')])))).toEqual(['message:MESSAGE', 'pong']);
  });

  it('accepts the compact form, any case, LWS before the colon and a folded value', () => {
    for (const header of [
      'l: 5',
      'L:5',
      'content-length   : 5',
      'CONTENT-LENGTH:\r\n  5',
      'Content-Length: 0005',
    ]) {
      const m = enc(`MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n${header}\r\n\r\nhello`);
      const events = new StreamFramer().push(Buffer.concat([m, BYE]));
      expect(summary(events), header).toEqual(['message:MESSAGE', 'message:BYE']);
      expect(messages(events)[0]?.equals(m), header).toBe(true);
    }
  });

  it('accepts two identical Content-Length fields (the parser then answers 400)', () => {
    const m = enc('MESSAGE sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nhi');
    expect(summary(new StreamFramer().push(m))).toEqual(['message:MESSAGE']);
  });

  it.each([
    [
      'missing',
      'OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n',
      ErrorCodes.SIP_FRAME_NO_CONTENT_LENGTH,
    ],
    ['start line only', 'OPTIONS sip:a@b SIP/2.0\r\n\r\n', ErrorCodes.SIP_FRAME_NO_CONTENT_LENGTH],
    [
      'negative',
      'OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n',
      ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH,
    ],
    ['non-numeric', 'OPTIONS sip:a@b SIP/2.0\r\nl: five\r\n\r\n', ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH],
    ['empty', 'OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n\r\n', ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH],
    [
      'fractional',
      'OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1.5\r\n\r\n',
      ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH,
    ],
    [
      'hex',
      'OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0x10\r\n\r\n',
      ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH,
    ],
    [
      'huge',
      `OPTIONS sip:a@b SIP/2.0\r\nContent-Length: ${'9'.repeat(40)}\r\n\r\n`,
      ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH,
    ],
    [
      'conflicting',
      'OPTIONS sip:a@b SIP/2.0\r\nl: 13\r\nContent-Length: 5\r\n\r\n',
      ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH,
    ],
  ])('fails on a %s Content-Length, then stays dead', (_label, text, code) => {
    const framer = new StreamFramer();
    const events = framer.push(Buffer.concat([BYE, enc(text), BYE]));
    expect(summary(events)).toEqual(['message:BYE', `error:${code}`]);
    expect(framer.dead).toBe(true);
    expect(framer.buffered).toBe(0);
    expect(framer.push(BYE)).toEqual([]);
    expect(framer.end()).toEqual([]);
  });

  it('fails on a header section over maxSkipBytes, with or without a blank line yet', () => {
    const big = enc(`OPTIONS sip:a@b SIP/2.0\r\nX-Pad: ${'p'.repeat(200)}\r\nl: 0\r\n\r\n`);
    const limits = { maxHeaderBytes: 100, maxSkipBytes: 100 };
    expect(summary(new StreamFramer(limits).push(big))).toEqual([`error:${ErrorCodes.SIP_FRAME_TOO_LARGE}`]);
    // Without the blank line: fail as soon as the limit is certainly exceeded, not before.
    const framer = new StreamFramer(limits);
    expect(framer.push(big.subarray(0, 103))).toEqual([]);
    expect(summary(framer.push(big.subarray(103, 104)))).toEqual([`error:${ErrorCodes.SIP_FRAME_TOO_LARGE}`]);
    // Exactly at the limit is fine.
    const exact = enc(`OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\nX: ${'p'.repeat(100 - 34)}\r\n\r\n`);
    expect(exact.indexOf('\r\n\r\n')).toBe(100);
    expect(summary(new StreamFramer(limits).push(exact))).toEqual(['message:OPTIONS']);
  });

  it('fails on a body over maxSkipBytes before its bytes arrive', () => {
    const [event] = new StreamFramer().push(enc('MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 300000\r\n\r\n'));
    expect(event?.type === 'error' && event.error.code).toBe(ErrorCodes.SIP_FRAME_TOO_LARGE);
    const small = new StreamFramer({ maxHeaderBytes: 40, maxBodyBytes: 4, maxSkipBytes: 40 });
    expect(summary(small.push(enc('MESSAGE sip:a@b SIP/2.0\r\nl: 4\r\n\r\nabcd')))).toEqual([
      'message:MESSAGE',
    ]);
    expect(summary(small.push(enc('MESSAGE sip:a@b SIP/2.0\r\nl: 10\r\n\r\n')))).toEqual([
      `error:${ErrorCodes.SIP_FRAME_TOO_LARGE}`,
    ]);
  });

  describe('a message over maxHeaderBytes or maxBodyBytes but within maxSkipBytes (PROTOS c07-sip)', () => {
    // A header section of 33 000 bytes, as PROTOS's overflow cases send them.
    const huge = enc(
      [
        'INVITE sip:bot@10.0.0.5 SIP/2.0',
        'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK-huge',
        'From: <sip:a@b>;tag=1',
        `To: ${'x'.repeat(33_000)} <sip:bot@b>`,
        'Call-ID: huge@b',
        'CSeq: 1 INVITE',
        'Content-Length: 5',
        '',
        'hello',
      ].join('\r\n'),
    );
    const head = (e: FramerEvent | undefined) =>
      e?.type === 'oversized' ? Buffer.from(e.head).toString() : '';

    it('reports the header lines that fit, discards the rest and frames the next message', () => {
      const framer = new StreamFramer();
      const events = framer.push(Buffer.concat([BYE, huge, INVITE]));
      expect(summary(events)).toEqual(['message:BYE', 'oversized', 'message:INVITE']);
      expect(head(events[1])).toBe(
        'INVITE sip:bot@10.0.0.5 SIP/2.0\r\nVia: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK-huge\r\n' +
          'From: <sip:a@b>;tag=1\r\n\r\n',
      );
      const error = events[1]?.type === 'oversized' ? events[1].error : undefined;
      expect(error?.code).toBe(ErrorCodes.SIP_FRAME_TOO_LARGE);
      expect(error?.message).toBe(
        `SIP header section of ${huge.indexOf('\r\n\r\n')} bytes exceeds 16384 bytes`,
      );
      expect(messages(events)[1]?.equals(INVITE)).toBe(true);
      expect(framer.buffered).toBe(0);
      expect(framer.inMessage).toBe(false);
    });

    it('does the same byte by byte', () => {
      const framer = new StreamFramer();
      const all = Buffer.concat([huge, BYE]);
      const events: FramerEvent[] = [];
      for (let i = 0; i < all.length; i++) events.push(...framer.push(all.subarray(i, i + 1)));
      expect(summary(events)).toEqual(['oversized', 'message:BYE']);
    });

    it('discards a body over maxBodyBytes as it arrives, holding none of it', () => {
      const framer = new StreamFramer({ maxBodyBytes: 10 });
      const [event] = framer.push(enc('MESSAGE sip:a@b SIP/2.0\r\nCall-ID: m\r\nl: 1000\r\n\r\n'));
      expect(event?.type).toBe('oversized');
      expect(head(event)).toBe('MESSAGE sip:a@b SIP/2.0\r\nCall-ID: m\r\nl: 1000\r\n\r\n');
      expect(event?.type === 'oversized' && event.error.message).toBe(
        'SIP body of 1000 bytes exceeds the limit of 10 bytes',
      );
      expect(framer.push(Buffer.alloc(999, 0x78))).toEqual([]);
      expect(framer.buffered).toBe(0);
      expect(framer.inMessage).toBe(true);
      expect(summary(framer.push(Buffer.concat([Buffer.of(0x78), BYE])))).toEqual(['message:BYE']);
      expect(framer.inMessage).toBe(false);
    });

    it('gives an empty head when not even the start line fits, and end() reports the unfinished discard', () => {
      const framer = new StreamFramer({ maxHeaderBytes: 100 });
      const [event] = framer.push(enc(`INVITE sip:${'u'.repeat(200)}@b SIP/2.0\r\nl: 8\r\n\r\nabc`));
      expect(event?.type === 'oversized' && event.head.length).toBe(0);
      expect(summary(framer.end())).toEqual([`error:${ErrorCodes.SIP_FRAME_INCOMPLETE}`]);
    });

    it('still fails on a bad Content-Length (the next message cannot be found)', () => {
      const bad = enc(`INVITE sip:a@b SIP/2.0\r\nX: ${'x'.repeat(200)}\r\nContent-Length: -1\r\n\r\n`);
      expect(summary(new StreamFramer({ maxHeaderBytes: 100 }).push(bad))).toEqual([
        `error:${ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH}`,
      ]);
    });
  });

  it('exposes an incomplete message through buffered and end()', () => {
    const framer = new StreamFramer();
    expect(framer.buffered).toBe(0);
    expect(framer.end()).toEqual([]);
    const again = new StreamFramer();
    again.push(INVITE.subarray(0, INVITE.length - 1));
    expect(again.buffered).toBe(INVITE.length - 1);
    const [event] = again.end();
    expect(event?.type === 'error' && event.error.code).toBe(ErrorCodes.SIP_FRAME_INCOMPLETE);
    expect(again.push(INVITE)).toEqual([]);
  });

  it('hands out copies that later reads cannot change', () => {
    const framer = new StreamFramer();
    const chunk = Buffer.from(BYE);
    const [event] = framer.push(chunk);
    chunk.fill(0x41);
    framer.push(INVITE);
    expect(event?.type === 'message' && Buffer.from(event.bytes).equals(BYE)).toBe(true);
  });

  it('ignores empty reads', () => {
    const framer = new StreamFramer();
    expect(framer.push(new Uint8Array(0))).toEqual([]);
    expect(framer.buffered).toBe(0);
  });

  it('keeps a byte-at-a-time header section linear (resumes the blank-line search)', () => {
    const pad = Array.from({ length: 400 }, (_, i) => `X-Pad-${i}: ${'v'.repeat(28)}`).join('\r\n');
    const big = enc(`OPTIONS sip:a@b SIP/2.0\r\n${pad}\r\nl: 0\r\n\r\n`);
    expect(big.length).toBeGreaterThan(15_000);
    // Count the bytes the framer's searches cover: rescanning from the start on
    // every read would be ~n²/2 (≈ 120 M here), resuming keeps it a few times n.
    let searched = 0;
    const original = Buffer.prototype.indexOf;
    const spy = vi.spyOn(Buffer.prototype, 'indexOf').mockImplementation(function (
      this: Buffer,
      ...args: unknown[]
    ) {
      const byteOffset = args[1];
      searched += this.length - (typeof byteOffset === 'number' ? byteOffset : 0);
      return Reflect.apply(original, this, args) as number;
    });
    try {
      const framer = new StreamFramer();
      let count = 0;
      for (let i = 0; i < big.length; i++) count += framer.push(big.subarray(i, i + 1)).length;
      expect(count).toBe(1);
    } finally {
      spy.mockRestore();
    }
    expect(searched).toBeGreaterThan(0);
    expect(searched).toBeLessThan(big.length * 8);
  });

  describe('RFC 4475 framing cases', () => {
    it('ncl.dat (negative Content-Length) is a framing error', () => {
      const [event] = new StreamFramer().push(loadCase('ncl.dat'));
      expect(event?.type === 'error' && event.error.code).toBe(ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH);
    });

    it('mcl01.dat (conflicting Content-Length values) is a framing error', () => {
      const [event] = new StreamFramer().push(loadCase('mcl01.dat'));
      expect(event?.type === 'error' && event.error.code).toBe(ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH);
    });

    it('inv2543.dat (no Content-Length) is a framing error', () => {
      const [event] = new StreamFramer().push(loadCase('inv2543.dat'));
      expect(event?.type === 'error' && event.error.code).toBe(ErrorCodes.SIP_FRAME_NO_CONTENT_LENGTH);
    });

    it('clerr.dat (Content-Length larger than the body) keeps waiting', () => {
      const bytes = loadCase('clerr.dat');
      const framer = new StreamFramer();
      expect(framer.push(bytes)).toEqual([]);
      expect(framer.push(enc('more bytes, still not 9999'))).toEqual([]);
      expect(framer.buffered).toBe(bytes.length + 26);
      const [event] = framer.end();
      expect(event?.type === 'error' && event.error.code).toBe(ErrorCodes.SIP_FRAME_INCOMPLETE);
    });
  });
});
