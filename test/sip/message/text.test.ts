import { describe, expect, it } from 'vitest';
import {
  decodeHeaderText,
  encodeHeaderText,
  hasEscapedBytes,
  toWellFormed,
} from '../../../src/sip/message/text.js';

const hex = (s: string) => Buffer.from(s.replace(/ /g, ''), 'hex');
const decode = (b: Buffer) => decodeHeaderText(b, 0, b.length);

describe('header text: malformed UTF-8 survives byte for byte', () => {
  it('decodes valid UTF-8 as usual, U+FFFD and astral characters included', () => {
    const text = 'Caf\u00e9 \u260e \ufffd \u{1F600} \u0000';
    expect(decode(Buffer.from(text, 'utf8'))).toBe(text);
    expect(hasEscapedBytes(text)).toBe(false);
  });

  it.each([
    ['a lone continuation byte', '41 80 42', 'A\udc80B'],
    ['latin1 text', 'e5 e4 f6', '\udce5\udce4\udcf6'],
    ['an overlong slash', 'c0 af', '\udcc0\udcaf'],
    ['an overlong three-byte form', 'e0 80 af', '\udce0\udc80\udcaf'],
    ['a UTF-16 surrogate encoded', 'ed a0 80', '\udced\udca0\udc80'],
    ['a code point above U+10FFFF', 'f4 90 80 80', '\udcf4\udc90\udc80\udc80'],
    ['a byte that never starts a sequence', 'f5 41', '\udcf5A'],
    ['a sequence cut short by the end', '41 e2 82', 'A\udce2\udc82'],
    ['a sequence cut short by ASCII', 'e2 82 41 e2 82 ac', '\udce2\udc82A\u20ac'],
  ])('escapes %s and encodes it back', (_label, bytes, text) => {
    const input = hex(bytes);
    expect(decode(input)).toBe(text);
    expect(hasEscapedBytes(text)).toBe(true);
    expect(encodeHeaderText(text).equals(input)).toBe(true);
  });

  it('decodes only the range asked for', () => {
    const buf = Buffer.concat([hex('ff'), Buffer.from('Call-ID: '), hex('fc'), Buffer.from('@h'), hex('ff')]);
    expect(decodeHeaderText(buf, 1, buf.length - 1)).toBe('Call-ID: \udcfc@h');
  });

  it('leaves a real surrogate pair alone when encoding', () => {
    // U+10080 is D800 DC80: its low half is in the escape range but not lone.
    const text = '\u{10080}\udc80';
    expect(hasEscapedBytes('\u{10080}')).toBe(false);
    expect(encodeHeaderText(text).equals(Buffer.concat([Buffer.from('\u{10080}', 'utf8'), hex('80')]))).toBe(
      true,
    );
  });

  it('makes text well-formed where it must be valid UTF-8 (reason phrases)', () => {
    expect(toWellFormed('a\udcfcb\ud800c\u{1F600}')).toBe('a\ufffdb\ufffdc\u{1F600}');
  });
});
