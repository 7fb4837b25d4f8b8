/**
 * Header text, byte for byte (RFC 3261 7.3.1: header values are UTF-8).
 *
 * The parser decodes the header section as UTF-8. A byte that is not part of
 * a well-formed UTF-8 sequence does not become U+FFFD (which would lose it and
 * re-encode as three bytes) but the lone surrogate U+DC00 + byte, U+DC80 to
 * U+DCFF (the "surrogateescape" of Python's PEP 383): no valid UTF-8 decodes
 * to a lone surrogate, so the serializer can turn each one back into its byte.
 * A field copied into a response (RFC 3261 8.2.6.2) then goes back exactly as
 * received, however malformed, and never grows. Valid UTF-8, i.e. every
 * message a sane peer sends, takes the fast path both ways.
 */
import { isUtf8 } from 'node:buffer';

const REPLACEMENT = '\ufffd';
/** A lone low surrogate in the escape range (not the second half of a pair). */
const ESCAPED = /(?<![\ud800-\udbff])[\udc80-\udcff]/;
const ESCAPED_ALL = new RegExp(ESCAPED.source, 'g');

/** Decodes buf[start, end) as UTF-8, escaping the bytes of malformed sequences. */
export function decodeHeaderText(buf: Buffer, start: number, end: number): string {
  const text = buf.toString('utf8', start, end);
  // Only a decode that produced U+FFFD can have met malformed bytes.
  if (!text.includes(REPLACEMENT) || isUtf8(buf.subarray(start, end))) return text;
  let out = '';
  let run = start; // start of the pending run of well-formed bytes
  let i = start;
  while (i < end) {
    const n = sequenceLength(buf, i, end);
    if (n > 0) {
      i += n;
      continue;
    }
    if (run < i) out += buf.toString('utf8', run, i);
    out += String.fromCharCode(0xdc00 + (buf[i] as number));
    i++;
    run = i;
  }
  if (run < end) out += buf.toString('utf8', run, end);
  return out;
}

/** True when `text` holds escaped bytes (only text the parser decoded can). */
export function hasEscapedBytes(text: string): boolean {
  return ESCAPED.test(text);
}

/** UTF-8 bytes of `text`, each escaped byte written back as itself. */
export function encodeHeaderText(text: string): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  for (const match of text.matchAll(ESCAPED_ALL)) {
    const at = match.index as number;
    parts.push(Buffer.from(text.slice(from, at), 'utf8'), Buffer.of(text.charCodeAt(at) - 0xdc00));
    from = at + 1;
  }
  parts.push(Buffer.from(text.slice(from), 'utf8'));
  return Buffer.concat(parts);
}

/** Any lone surrogate (an escaped byte among them) as U+FFFD: for text that must be valid UTF-8. */
export function toWellFormed(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, REPLACEMENT);
}

/** Length of the well-formed UTF-8 sequence at buf[i] (Unicode 15, table 3-7), 0 if there is none. */
function sequenceLength(buf: Buffer, i: number, end: number): number {
  const c = buf[i] as number;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => {
    const b = buf[i + k] as number;
    return i + k < end && b >= lo && b <= hi;
  };
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    // E0: no overlong forms; ED: no UTF-16 surrogates.
    const ok = cont(1, c === 0xe0 ? 0xa0 : 0x80, c === 0xed ? 0x9f : 0xbf) && cont(2);
    return ok ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    // F0: no overlong forms; F4: nothing above U+10FFFF.
    const ok = cont(1, c === 0xf0 ? 0x90 : 0x80, c === 0xf4 ? 0x8f : 0xbf) && cont(2) && cont(3);
    return ok ? 4 : 0;
  }
  return 0;
}
