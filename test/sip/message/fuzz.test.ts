/**
 * Robustness: no input makes the parser, the builders or the framer throw,
 * and what parses round-trips. Seeded, so failures reproduce.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../../src/errors.js';
import { createResponse } from '../../../src/sip/message/build.js';
import { INTERNAL_ERROR, type ParseResult, parseMessage } from '../../../src/sip/message/parse.js';
import { serialize } from '../../../src/sip/message/serialize.js';
import type { SipMessage } from '../../../src/sip/message/types.js';
import {
  checkUri,
  codesOf,
  isNameAddr,
  isNameAddrIn,
  isVia,
  isViaIn,
  parseNameAddr,
  parseNameAddrIn,
  parseUri,
  parseVia,
  parseViaIn,
} from '../../../src/sip/message/uri.js';
import { type FramerEvent, StreamFramer } from '../../../src/sip/transport/framer.js';
import { loadCase, manifest } from './corpus.js';
import { parseNameAddrSlow, parseUriSlow, parseViaSlow } from './reference-scanners.js';

/** mulberry32: a tiny seeded PRNG. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = Buffer.from('\r\n \t:;,"<>\\%@=?/[]*\u0000\u007f', 'latin1');

function mutate(input: Buffer, random: () => number): Buffer {
  let bytes = Buffer.from(input);
  const ops = 1 + Math.floor(random() * 4);
  for (let k = 0; k < ops && bytes.length > 0; k++) {
    const at = Math.floor(random() * bytes.length);
    const pick = random();
    if (pick < 0.3) {
      bytes[at] =
        random() < 0.5
          ? Math.floor(random() * 256)
          : (INTERESTING[Math.floor(random() * INTERESTING.length)] as number);
    } else if (pick < 0.55) {
      const b = INTERESTING[Math.floor(random() * INTERESTING.length)] as number;
      bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([b]), bytes.subarray(at)]);
    } else if (pick < 0.8) {
      bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + Math.floor(random() * 8))]);
    } else {
      const len = Math.floor(random() * 40);
      bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at, at + len), bytes.subarray(at)]);
    }
  }
  return bytes;
}

const corpus = manifest.cases.map((c) => loadCase(c.file));

const EXTRA = [
  'REGISTER sip:sip.ringcentral.com SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.5:53412;rport;branch=z9hG4bK7f3a\r\n' +
    'Max-Forwards: 70\r\nFrom: <sip:1888*101@sip.ringcentral.com>;tag=a1b2\r\nTo: <sip:1888*101@sip.ringcentral.com>\r\n' +
    'Call-ID: 3f2a9c8e\r\nCSeq: 2 REGISTER\r\n' +
    'Contact: <sip:1888*101@a7f3.invalid;transport=tcp;ob>;+sip.instance="<urn:uuid:5c2a8f3e-1b7d>";reg-id=1;expires=600\r\n' +
    'Authorization: Digest algorithm=MD5, username="8023", realm="sip.ringcentral.com", nonce="Y2Fm", uri="sip:sip.ringcentral.com", response="5f1c"\r\n' +
    'Content-Length: 0\r\n\r\n',
  'SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/TCP 10.0.0.5:53412;rport=53412;branch=z9hG4bK7f3a;received=203.0.113.7\r\n' +
    'From: <sip:1888*101@sip.ringcentral.com>;tag=a1b2\r\nTo: <sip:1888*101@sip.ringcentral.com>;tag=6f4c\r\n' +
    'Call-Id: 3f2a9c8e\r\nCSeq: 1 REGISTER\r\nWww-Authenticate: Digest realm="sip.ringcentral.com", nonce="Y2Fm", algorithm=MD5\r\n' +
    'Content-Length: 0\r\n\r\n',
].map((s) => Buffer.from(s, 'latin1'));

const seeds = [...corpus, ...EXTRA];

function sameMessage(a: SipMessage, b: SipMessage): void {
  expect(b.type).toBe(a.type);
  if (a.type === 'request' && b.type === 'request') expect([b.method, b.uri]).toEqual([a.method, a.uri]);
  if (a.type === 'response' && b.type === 'response')
    expect([b.status, b.reason]).toEqual([a.status, a.reason]);
  const fields = (m: SipMessage) => [...m.headers].filter(([name]) => name !== 'Content-Length');
  expect(fields(b)).toEqual(fields(a));
  expect(Buffer.from(b.body).equals(Buffer.from(a.body))).toBe(true);
}

/** Everything a UA does with a parse result must work, whatever the input. */
function exercise(bytes: Uint8Array): ParseResult {
  const result = parseMessage(bytes);
  if (result.ok) {
    const m = result.message;
    // Typed reads never throw.
    m.headers.vias();
    m.headers.topVia();
    m.headers.cseq();
    m.headers.from();
    m.headers.to();
    m.headers.nameAddrs('Contact');
    m.headers.nameAddrs('Record-Route');
    const again = parseMessage(serialize(m));
    if (!again.ok) throw new Error(`round trip failed: ${again.error.message}`);
    sameMessage(m, again.message);
    if (m.type === 'request') serialize(createResponse(m, 200, undefined, { toTag: 'fuzz' }));
  } else {
    expect(result.error.message).not.toBe(INTERNAL_ERROR);
    expect([ErrorCodes.SIP_PARSE_ERROR, ErrorCodes.SIP_BAD_REQUEST]).toContain(result.error.code);
    if (result.status !== undefined) {
      expect([400, 505, 513]).toContain(result.status);
      if (result.message?.type !== 'request') throw new Error('a status comes with the partial request');
      // The UA answers with the error text as reason phrase.
      serialize(createResponse(result.message, result.status, result.error.message, { toTag: 'fuzz' }));
    }
  }
  return result;
}

describe('parser fuzzing', () => {
  it('survives every truncation of every corpus message', () => {
    let parsed = 0;
    for (const bytes of seeds) {
      for (let end = 0; end <= bytes.length; end++) {
        const view = bytes.subarray(0, end);
        // The full UA round (round trip, createResponse) on every 4th point keeps this quick.
        if (end % 4 === 0) exercise(view);
        else {
          const result = parseMessage(view);
          if (!result.ok) {
            expect(result.error.message).not.toBe(INTERNAL_ERROR);
            if (result.status !== undefined) expect(result.message?.type).toBe('request');
          }
        }
        parsed++;
      }
    }
    expect(parsed).toBeGreaterThan(20_000);
  });

  it('survives random mutations, and whatever parses round-trips', () => {
    const random = rng(0x5eed);
    let accepted = 0;
    let rejected = 0;
    for (const bytes of seeds) {
      for (let i = 0; i < 150; i++) {
        if (exercise(mutate(bytes, random)).ok) accepted++;
        else rejected++;
      }
    }
    // Both outcomes occur, so both branches of exercise() ran.
    expect(accepted).toBeGreaterThan(500);
    expect(rejected).toBeGreaterThan(500);
  });

  it('survives random bytes and random SIP-ish text', () => {
    const random = rng(42);
    const alphabet = Buffer.from(
      'INVITE SIP/2.0 sip:a@b Via: From: To: Call-ID: CSeq: l: 0 \r\n;,"<>=\t\\%',
      'latin1',
    );
    for (let i = 0; i < 2000; i++) {
      const length = Math.floor(random() * 400);
      const bytes = Buffer.alloc(length);
      for (let j = 0; j < length; j++) {
        bytes[j] =
          i % 2 === 0
            ? Math.floor(random() * 256)
            : (alphabet[Math.floor(random() * alphabet.length)] as number);
      }
      exercise(bytes);
    }
  });

  it('the scanners agree with the reference scanners on mutated values, and check mode with build mode', () => {
    const random = rng(7);
    const values = { via: [] as string[], nameAddr: [] as string[], uri: [] as string[] };
    for (const bytes of seeds) {
      const result = parseMessage(bytes);
      const m = result.ok ? result.message : result.message;
      if (m === undefined) continue;
      values.via.push(...m.headers.getAll('Via'));
      for (const name of ['From', 'To', 'Contact', 'Route', 'Record-Route'])
        values.nameAddr.push(...m.headers.getAll(name));
      if (m.type === 'request') values.uri.push(m.uri);
    }
    // Every other round also moves some letters up by 0x80 (`t` → U+00F4): codes at or above 0x80
    // must never be taken for the ASCII character they resemble in their low bits.
    const mutateText = (s: string, round: number): string => {
      const mutated = mutate(Buffer.from(s, 'utf8'), random).toString('utf8');
      if (round % 2 === 0) return mutated;
      return mutated.replace(/[a-z]/g, (c) =>
        random() < 0.2 ? String.fromCharCode(c.charCodeAt(0) + 0x80) : c,
      );
    };
    // The parser scans values in place in the header text: what surrounds them must never count.
    const AROUND = ['', ' ', '>', '"', ']', ';x=y', ',', '@h', '\\', 'SIP/2.0/'];
    const around = () => AROUND[Math.floor(random() * AROUND.length)] as string;
    const framing = (s: string): [Uint8Array, string, number, number] => {
      const [before, after] = [around(), around()];
      const framed = before + s + after;
      return [codesOf(framed), framed, before.length, before.length + s.length];
    };
    let checked = 0;
    for (let round = 0; round < 20; round++) {
      for (const v of values.via) {
        const s = round === 0 ? v : mutateText(v, round);
        expect(parseVia(s), s).toEqual(parseViaSlow(s));
        expect(isVia(s), s).toBe(parseVia(s) !== undefined);
        const framed = framing(s);
        expect(parseViaIn(...framed), framed[1]).toEqual(parseVia(s));
        expect(isViaIn(...framed), framed[1]).toBe(isVia(s));
        checked++;
      }
      for (const v of values.nameAddr) {
        const s = round === 0 ? v : mutateText(v, round);
        expect(parseNameAddr(s), s).toEqual(parseNameAddrSlow(s));
        expect(isNameAddr(s), s).toBe(parseNameAddr(s) !== undefined);
        const framed = framing(s);
        expect(parseNameAddrIn(...framed), framed[1]).toEqual(parseNameAddr(s));
        expect(isNameAddrIn(...framed), framed[1]).toBe(isNameAddr(s));
        checked++;
      }
      for (const v of values.uri) {
        const s = round === 0 ? v : mutateText(v, round);
        const uri = parseUri(s);
        expect(uri, s).toEqual(parseUriSlow(s));
        const withHeaders = uri !== undefined && 'headers' in uri && uri.headers.size > 0;
        expect(checkUri(s), s).toBe(uri === undefined ? 'malformed' : withHeaders ? 'escaped-headers' : 'ok');
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(5000);
  });
});

describe('framer fuzzing', () => {
  // Corpus messages that frame cleanly on a stream, back to back with keep-alives.
  const framable = corpus.filter((bytes) => {
    const events = new StreamFramer().push(bytes);
    return events.length === 1 && events[0]?.type === 'message';
  });
  const stream = Buffer.concat(
    framable.flatMap((m, i) => (i % 3 === 0 ? [m, Buffer.from('\r\n\r\n')] : [m])),
  );

  it('frames the same messages however the stream is chopped', () => {
    const random = rng(99);
    for (let round = 0; round < 100; round++) {
      const framer = new StreamFramer();
      const events: FramerEvent[] = [];
      for (let at = 0; at < stream.length; ) {
        const size = 1 + Math.floor(random() * (round % 2 === 0 ? 16 : 2000));
        events.push(...framer.push(stream.subarray(at, at + size)));
        at += size;
      }
      const got = events.flatMap((e) => (e.type === 'message' ? [Buffer.from(e.bytes)] : []));
      expect(got.length).toBe(framable.length);
      got.forEach((m, i) => {
        expect(m.equals(framable[i] as Buffer)).toBe(true);
      });
      expect(events.some((e) => e.type === 'error')).toBe(false);
      expect(framer.buffered).toBe(0);
    }
  });

  it('never throws on a mutated stream, and stops after an error', () => {
    const random = rng(1234);
    for (let round = 0; round < 300; round++) {
      const bytes = mutate(stream, random);
      const framer = new StreamFramer({ maxHeaderBytes: 2048, maxBodyBytes: 4096 });
      const events: FramerEvent[] = [];
      for (let at = 0; at < bytes.length; ) {
        const size = 1 + Math.floor(random() * 700);
        events.push(...framer.push(bytes.subarray(at, at + size)));
        at += size;
      }
      events.push(...framer.end());
      const errorAt = events.findIndex((e) => e.type === 'error');
      if (errorAt !== -1) expect(errorAt).toBe(events.length - 1);
      for (const e of events) if (e.type === 'message') exercise(e.bytes);
    }
  });
});
