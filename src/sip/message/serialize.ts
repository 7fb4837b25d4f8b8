/**
 * SIP message serializer (RFC 3261 section 7): start line, header fields in
 * order, a Content-Length equal to the body's byte length, blank line, body.
 */
import { headerFields } from './headers.js';
import { encodeHeaderText, hasEscapedBytes } from './text.js';
import type { SipMessage } from './types.js';
import { isToken } from './uri.js';

const NON_ASCII = /[^\x00-\x7f]/;

function hasLineBreak(s: string): boolean {
  return s.indexOf('\r') !== -1 || s.indexOf('\n') !== -1;
}

/**
 * Serializes a message to bytes. Content-Length is always written and always
 * equals `body.byteLength` (RFC 3261 18.3 makes it mandatory on streams): an
 * existing field is replaced in place (later duplicates dropped), a missing
 * one is appended. Header values are written as UTF-8, bytes the parser
 * escaped as the bytes they were. Throws a TypeError for
 * a message that could not be sent safely (a method that is not a token, a
 * CR/LF in the start line, a status outside 100..699): these are programming
 * errors, since Headers already refuses CR/LF in fields.
 */
export function serialize(message: SipMessage): Buffer {
  let head: string;
  if (message.type === 'request') {
    if (!isToken(message.method)) throw new TypeError('SIP request method must be a token');
    if (message.uri.length === 0 || /[\s]/.test(message.uri)) {
      throw new TypeError('SIP Request-URI must be non-empty and contain no whitespace');
    }
    head = message.method + ' ' + message.uri + ' SIP/2.0\r\n';
  } else {
    const { status, reason } = message;
    if (!Number.isInteger(status) || status < 100 || status > 699) {
      throw new TypeError(`SIP status ${status} is outside 100..699`);
    }
    if (hasLineBreak(reason)) throw new TypeError('SIP reason phrase contains CR or LF');
    head = 'SIP/2.0 ' + status + ' ' + reason + '\r\n';
  }

  const body = message.body;
  const contentLength = 'Content-Length: ' + body.byteLength + '\r\n';
  let wroteLength = false;
  const { spellings, values, ascii } = headerFields(message.headers);
  for (let i = 0; i < spellings.length; i++) {
    const spelling = spellings[i] as (typeof spellings)[number];
    if (spelling.key === 'content-length') {
      if (!wroteLength) head += contentLength;
      wroteLength = true;
    } else head += spelling.prefix + (values[i] as string) + '\r\n';
  }
  if (!wroteLength) head += contentLength;
  head += '\r\n';

  // All ASCII (the parser and Headers know it of the fields): one byte per
  // character, no count needed, nothing escaped.
  if (ascii && !NON_ASCII.test(message.type === 'request' ? message.uri : message.reason)) {
    const out = Buffer.allocUnsafe(head.length + body.byteLength);
    out.write(head, 0, 'latin1');
    out.set(body, head.length);
    return out;
  }
  let headLength = Buffer.byteLength(head, 'utf8');
  // Bytes the parser escaped (malformed UTF-8 in a field we copied) go back as
  // they came (text.ts). Pure ASCII, one byte per character, cannot hold any.
  const raw = headLength !== head.length && hasEscapedBytes(head) ? encodeHeaderText(head) : undefined;
  if (raw) headLength = raw.length;
  const out = Buffer.allocUnsafe(headLength + body.byteLength);
  if (raw) out.set(raw, 0);
  else out.write(head, 0, 'utf8');
  out.set(body, headLength);
  return out;
}
