/**
 * SIP message parser (RFC 3261 section 7): bytes in, a typed message or a
 * typed error out. It never throws, whatever the input.
 *
 * Design:
 * - The blank line is found on the bytes; only the header section is decoded
 *   (as UTF-8, RFC 3261 7.3.1 TEXT-UTF8; malformed bytes escaped, see text.ts;
 *   ASCII, the usual case, byte for byte) and split into lines with indexOf,
 *   so the body stays bytes and Content-Length is counted in bytes. The typed
 *   values are scanned where they stand in the section, through its bytes
 *   (uri.ts, "Scanners"), not in sliced copies.
 * - Header values are stored unfolded and trimmed; typed values (Via, From,
 *   To, CSeq, …) are parsed on demand by Headers and memoized. Validation
 *   builds the ones every layer reads on every message (top Via, CSeq, From,
 *   To), so they are cached when the caller reads them, and only checks the
 *   others it must reject when malformed (lower Vias, Contact): those are
 *   built on first access, if ever.
 * - A request that fails validation still yields `message` (start line and
 *   the header fields that parsed) plus the `status` to answer, so the UA can
 *   send `400 Bad Request` / `505` with the error text as reason phrase. That
 *   includes an unreadable Request-Line (a method that is not a token, no
 *   SIP-Version) when the fields carry a Via: a proxy's transaction waits for
 *   the answer. Without a Via such bytes are not taken for SIP at all.
 *   Responses that fail are reported too, for the UA to drop.
 *
 * Datagram semantics (RFC 3261 18.3): with a Content-Length, exactly that many
 * body bytes are taken and extra trailing bytes are ignored; without one the
 * body is the rest of the buffer. Stream framing is the framer's job.
 */

import { isAscii } from 'node:buffer';
import { type ErrorCode, ErrorCodes, SoftphoneError } from '../../errors.js';
import {
  appendParsedField,
  type Headers,
  headerId,
  INVALID_HEADER_NAME,
  KNOWN_HEADER_COUNT,
  parsedHeaders,
  primeParsedValues,
  splitHeaderList,
} from './headers.js';
import { decodeHeaderText } from './text.js';
import type { NameAddr, SipMessage, SipRequest, SipResponse, Via } from './types.js';
import {
  checkUriIn,
  codesOf,
  isNameAddr,
  isNameAddrIn,
  isToken,
  isTokenChar,
  isVia,
  isViaIn,
  MAX_CSEQ,
  parseBoundedInt,
  parseCSeq,
  parseCSeqIn,
  parseNameAddr,
  parseNameAddrIn,
  parseVia,
  parseViaIn,
  trimWs,
} from './uri.js';

export interface ParseLimits {
  /** Largest header section (start line and header fields, without the blank line). Default 16 KiB. */
  maxHeaderBytes?: number;
  /** Largest body. Default 64 KiB. */
  maxBodyBytes?: number;
}

export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

export type ParseResult =
  | { ok: true; message: SipMessage }
  | {
      ok: false;
      /** SIP_PARSE_ERROR, or SIP_BAD_REQUEST for a request that parsed structurally but fails validation. */
      error: SoftphoneError;
      /**
       * Present when start line and header fields parsed well enough to build a
       * response. Its fields are as received: method and Request-URI may be
       * anything but CR/LF when the Request-Line was the problem.
       */
      message?: SipMessage;
      /** For requests: the status to answer (400, 505, 513). */
      status?: number;
    };

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const EMPTY_BODY: Uint8Array = Buffer.alloc(0);
const SIP_VERSION = /^SIP\/[0-9]+\.[0-9]+$/i;
const SIP_VERSION_ANYWHERE = / SIP\//i;

/** Header fields a request and a response must carry (RFC 3261 8.1.1, 8.2.6.2). */
const REQUIRED = ['Via', 'From', 'To', 'Call-ID', 'CSeq'] as const;

/**
 * Headers whose grammar allows exactly one value (RFC 3261 section 20 and the
 * extension RFCs); a second field makes the message ambiguous (RFC 4475 3.3.8).
 */
const SINGLE_VALUED = [
  'Call-ID',
  'From',
  'To',
  'CSeq',
  'Max-Forwards',
  'Content-Length',
  'Content-Type',
  'Content-Disposition',
  'Expires',
  'Min-Expires',
  'MIME-Version',
  'Reply-To',
  'Refer-To',
  'Replaces',
  'RSeq',
  'RAck',
  'Event',
  'Subscription-State',
  'Session-Expires',
  'Min-SE',
] as const;

/** Names validate() counts: the single-valued ones (same indexes), then Via and Contact. */
const TRACKED: readonly string[] = [...SINGLE_VALUED, 'Via', 'Contact'];
/** headerId() → index in TRACKED, or -1. */
const SLOT = new Int8Array(KNOWN_HEADER_COUNT).fill(-1);
for (const [i, name] of TRACKED.entries()) {
  const id = headerId(name);
  if (id < 0) throw new Error(`${name} must be a known header name`);
  SLOT[id] = i;
}
const VIA_SLOT = TRACKED.indexOf('Via');
const CONTACT_SLOT = TRACKED.indexOf('Contact');
const CONTENT_LENGTH_SLOT = TRACKED.indexOf('Content-Length');
const MAX_FORWARDS_SLOT = TRACKED.indexOf('Max-Forwards');
const FROM_SLOT = TRACKED.indexOf('From');
const TO_SLOT = TRACKED.indexOf('To');
const CSEQ_SLOT = TRACKED.indexOf('CSeq');
const REQUIRED_SLOTS = REQUIRED.map((name) => TRACKED.indexOf(name));

/**
 * A field's value, and where it stands in the header text so that the
 * scanners read it there (a flat string: faster than the value, a slice of
 * it). start is -1 for a value unfolded from several lines: only `value` has it.
 */
interface FieldRef {
  value: string;
  start: number;
  end: number;
}

/**
 * What validation and body extraction need from the header fields, collected
 * while the fields are split, so that neither searches Headers again.
 */
interface Seen {
  /** Fields per TRACKED name, saturating at 255. */
  counts: Uint8Array;
  /** Every Via, Contact and Content-Length field, in order. */
  via: FieldRef[];
  contact: FieldRef[];
  contentLength: string[];
  /** The first From, To and CSeq field. */
  from: FieldRef | undefined;
  to: FieldRef | undefined;
  cseq: FieldRef | undefined;
  /** FieldRefs reused from parse to parse (the first `used` are this parse's). */
  pool: FieldRef[];
  used: number;
}

/** One for every parse: parsing is synchronous and never re-entered. */
const SEEN: Seen = {
  counts: new Uint8Array(TRACKED.length),
  via: [],
  contact: [],
  contentLength: [],
  from: undefined,
  to: undefined,
  cseq: undefined,
  pool: [],
  used: 0,
};
/** More fields than this in one message (an attack) get FieldRefs of their own. */
const MAX_POOLED_REFS = 64;

function resetSeen(seen: Seen): Seen {
  seen.counts.fill(0);
  // Fresh arrays cost less than emptying the old ones (a runtime call each).
  seen.via = [];
  seen.contact = [];
  seen.contentLength = [];
  seen.from = seen.to = seen.cseq = undefined;
  seen.used = 0;
  return seen;
}

function fieldRef(seen: Seen, value: string, start: number, end: number): FieldRef {
  if (seen.used >= MAX_POOLED_REFS) return { value, start, end };
  let ref = seen.pool[seen.used];
  if (ref === undefined) {
    ref = { value, start, end };
    seen.pool.push(ref);
  } else {
    ref.value = value;
    ref.start = start;
    ref.end = end;
  }
  seen.used++;
  return ref;
}

export function parseMessage(bytes: Uint8Array, limits: ParseLimits = {}): ParseResult {
  try {
    return parse(bytes, limits);
  } catch (cause) {
    // Unreachable by design (the fuzz tests assert this text never shows up);
    // a last line of defence so that no input can take the process down.
    return failure(ErrorCodes.SIP_PARSE_ERROR, INTERNAL_ERROR, undefined, undefined, cause);
  }
}

/** Reason text of the safety net in parseMessage; exported for the fuzz tests. */
export const INTERNAL_ERROR = 'Unparseable SIP message (internal parser error)';

type StartLine =
  | {
      kind: 'request';
      method: string;
      uri: string;
      error?: string;
      status?: number;
      /** Not recognisably SIP: taken for a request only if a Via says it came through SIP. */
      unrecognised?: boolean;
    }
  | { kind: 'response'; status: number; reason: string }
  | { kind: 'invalid'; error: string };

function parse(bytes: Uint8Array, limits: ParseLimits): ParseResult {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const maxHeader = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  const maxBody = limits.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const len = buf.length;

  // RFC 3261 7.5: CRLFs before the start line are ignored.
  let start = 0;
  while (start + 1 < len && buf[start] === 0x0d && buf[start + 1] === 0x0a) start += 2;
  if (start >= len) return failure(ErrorCodes.SIP_PARSE_ERROR, 'Empty SIP message');

  const blank = buf.indexOf(CRLFCRLF, start);
  let headEnd = blank;
  let bodyStart = blank + 4;
  let structural: string | undefined;
  if (blank === -1) {
    headEnd = len >= 2 && buf[len - 2] === 0x0d && buf[len - 1] === 0x0a ? len - 2 : len;
    bodyStart = len;
    structural = 'Message ends before the blank line that terminates the header fields';
  }
  if (headEnd - start > maxHeader) {
    return failure(ErrorCodes.SIP_PARSE_ERROR, `Header section exceeds ${maxHeader} bytes`);
  }

  // ASCII (what sane peers send) decodes byte for byte, and the bytes are then
  // the scanners' codes (uri.ts); anything else is decoded as UTF-8, malformed
  // UTF-8 surviving as escaped bytes so that copies of it go back as received
  // (text.ts), and gets codes of its own. (Asking about the whole buffer first
  // spares a view of the header section: bodies are mostly ASCII too.)
  const ascii = isAscii(buf) || isAscii(buf.subarray(start, headEnd));
  const text = ascii ? buf.toString('latin1', start, headEnd) : decodeHeaderText(buf, start, headEnd);
  const codes = !ascii ? codesOf(text) : start === 0 ? buf : buf.subarray(start, headEnd);
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd === -1) lineEnd = text.length;
  // Lines end with CRLF only (see parseFields).
  const firstLf = text.indexOf('\n');
  const firstCr = text.indexOf('\r');
  if ((firstLf !== -1 && firstLf !== lineEnd + 1) || (firstCr !== -1 && firstCr !== lineEnd)) {
    return failure(ErrorCodes.SIP_PARSE_ERROR, 'Start line contains a bare CR or LF');
  }
  const startLine = parseStartLine(text.slice(0, lineEnd), codes);
  if (startLine.kind === 'invalid') return failure(ErrorCodes.SIP_PARSE_ERROR, startLine.error);

  const headers = parsedHeaders(ascii);
  const seen = resetSeen(SEEN);
  const fieldsError = parseFields(codes, text, lineEnd + 2, headers, seen);
  structural ??= fieldsError;
  let body = EMPTY_BODY;
  let bodyError: { reason: string; status: number } | undefined;
  if (structural === undefined) {
    const r = extractBody(buf, bodyStart, seen.contentLength, maxBody);
    if ('reason' in r) bodyError = r;
    else body = r.body;
  }

  if (startLine.kind === 'response') {
    const message: SipResponse = {
      type: 'response',
      status: startLine.status,
      reason: startLine.reason,
      headers,
      body,
    };
    const problem = structural ?? bodyError?.reason ?? validate(message, text, codes, seen);
    if (problem !== undefined) return failure(ErrorCodes.SIP_PARSE_ERROR, problem, message);
    return { ok: true, message };
  }

  const message: SipRequest = {
    type: 'request',
    method: startLine.method,
    uri: startLine.uri,
    headers,
    body,
  };
  if (startLine.error !== undefined) {
    // Binary noise or an HTTP request has nothing a response could be matched
    // by; a request with a Via has a transaction waiting for our answer.
    if (startLine.unrecognised && seen.counts[VIA_SLOT] === 0) {
      return failure(ErrorCodes.SIP_PARSE_ERROR, 'Malformed start line');
    }
    return failure(ErrorCodes.SIP_BAD_REQUEST, startLine.error, message, startLine.status ?? 400);
  }
  if (structural !== undefined) return failure(ErrorCodes.SIP_PARSE_ERROR, structural, message, 400);
  if (bodyError !== undefined) {
    return failure(ErrorCodes.SIP_PARSE_ERROR, bodyError.reason, message, bodyError.status);
  }
  const problem = validate(message, text, codes, seen);
  if (problem !== undefined) return failure(ErrorCodes.SIP_BAD_REQUEST, problem, message, 400);
  return { ok: true, message };
}

function failure(
  code: ErrorCode,
  reason: string,
  message?: SipMessage,
  status?: number,
  cause?: unknown,
): ParseResult {
  const details: Record<string, unknown> = {};
  if (status !== undefined) details.status = status;
  const error = new SoftphoneError(code, reason, { cause, details });
  const result: { ok: false; error: SoftphoneError; message?: SipMessage; status?: number } = {
    ok: false,
    error,
  };
  if (message !== undefined) result.message = message;
  if (status !== undefined) result.status = status;
  return result;
}

// ---------------------------------------------------------------------------
// Start line (RFC 3261 7.1, 7.2)

/** The start line text[0, lineEnd) is `line`; `codes` are the text's codes (uri.ts). */
function parseStartLine(line: string, codes: Uint8Array): StartLine {
  if (line.startsWith('SIP/') || (line.length >= 4 && line.slice(0, 4).toUpperCase() === 'SIP/')) {
    return parseStatusLine(line);
  }

  // Request-Line = Method SP Request-URI SP SIP-Version CRLF
  const sp1 = line.indexOf(' ');
  const method = sp1 === -1 ? line : line.slice(0, sp1);
  // Anything else is a request, answered 400/505 with what is wrong. When it
  // is not recognisably SIP either (binary noise, an HTTP request…), parse()
  // answers it only if it carries a Via; method and URI stay as received.
  if (!isToken(method)) {
    const uri = sp1 === -1 ? '' : line.slice(sp1 + 1, Math.max(sp1 + 1, line.lastIndexOf(' ')));
    return { kind: 'request', method, uri, error: 'Malformed Method in Request-Line', unrecognised: true };
  }
  const spLast = line.lastIndexOf(' ');
  if (sp1 === -1 || spLast === sp1) {
    return {
      kind: 'request',
      method,
      uri: sp1 === -1 ? '' : line.slice(sp1 + 1),
      error: 'Request-Line must be Method SP Request-URI SP SIP-Version',
      unrecognised: !SIP_VERSION_ANYWHERE.test(line),
    };
  }
  const uri = line.slice(sp1 + 1, spLast);
  const problem = requestLineProblem(line, codes, uri, sp1 + 1, spLast);
  const r: StartLine = { kind: 'request', method, uri };
  if (problem !== undefined) {
    r.error = problem.error;
    if (problem.status !== undefined) r.status = problem.status;
    if (!SIP_VERSION_ANYWHERE.test(line)) r.unrecognised = true;
  }
  return r;
}

/** What is wrong with a Request-Line whose method is a token and whose URI is line[uriStart, uriEnd). */
function requestLineProblem(
  line: string,
  codes: Uint8Array,
  uri: string,
  uriStart: number,
  uriEnd: number,
): { error: string; status?: number } | undefined {
  const version = line.slice(uriEnd + 1);
  if (version !== 'SIP/2.0') {
    // RFC 4475 3.1.2.10: trailing SP after the version.
    if (version === '') return { error: 'Request-Line has trailing whitespace' };
    if (!SIP_VERSION.test(version)) return { error: 'Malformed SIP-Version in Request-Line' };
    if (version.toUpperCase() !== 'SIP/2.0') {
      const error =
        version.length <= 16 ? `SIP version ${version} not supported` : 'SIP version not supported';
      return { error, status: 505 };
    }
  }
  // RFC 4475 3.1.2.8 / 3.1.2.9: LWS inside the Request-URI, several SP between elements.
  if (uri.charCodeAt(0) === 0x20 || uri.charCodeAt(uri.length - 1) === 0x20) {
    return { error: 'Request-Line elements must be separated by a single SP' };
  }
  if (uri.indexOf(' ') !== -1 || uri.indexOf('\t') !== -1)
    return { error: 'Request-URI contains whitespace' };
  // RFC 4475 3.1.2.7
  if (uri.charCodeAt(0) === 0x3c) return { error: 'Request-URI must not be enclosed in <>' };
  const shape = checkUriIn(codes, line, uriStart, uriEnd);
  if (shape === 'malformed') return { error: 'Malformed Request-URI' };
  // RFC 3261 19.1.1 (table 1): headers are not allowed in a Request-URI; RFC 4475 3.1.2.11.
  if (shape === 'escaped-headers') return { error: 'Request-URI must not contain escaped headers' };
  return undefined;
}

function parseStatusLine(line: string): StartLine {
  // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
  const sp = line.indexOf(' ');
  const version = sp === -1 ? line : line.slice(0, sp);
  if (version !== 'SIP/2.0') {
    if (!SIP_VERSION.test(version)) return { kind: 'invalid', error: 'Malformed SIP-Version in Status-Line' };
    if (version.toUpperCase() !== 'SIP/2.0')
      return { kind: 'invalid', error: 'Unsupported SIP version in response' };
  }
  const code = sp === -1 ? '' : line.slice(sp + 1, sp + 4);
  const after = line.charCodeAt(sp + 4);
  // Status-Code = 3DIGIT; RFC 4475 3.1.2.19 (4294967301) fails here without any arithmetic.
  if (!/^[0-9]{3}$/.test(code) || !(Number.isNaN(after) || after === 0x20)) {
    return { kind: 'invalid', error: 'Malformed Status-Code' };
  }
  const status = Number(code);
  if (status < 100 || status > 699) return { kind: 'invalid', error: `Status-Code ${code} out of range` };
  // An empty Reason-Phrase is legal (RFC 4475 3.1.1.13); the SP before it is tolerated if missing.
  return { kind: 'response', status, reason: line.length > sp + 5 ? line.slice(sp + 5) : '' };
}

// ---------------------------------------------------------------------------
// Header fields (RFC 3261 7.3)

/**
 * Parses the header field lines of `text` (start line excluded: they begin at
 * `pos`, just after a CRLF; `codes` are its codes, uri.ts) into `headers`, noting in `seen` what validation
 * needs. Returns the first structural problem, after adding every field
 * before it (so that a 400 can be built).
 */
function parseFields(
  codes: Uint8Array,
  text: string,
  pos: number,
  headers: Headers,
  seen: Seen,
): string | undefined {
  const n = text.length;
  let error: string | undefined;
  // The pending field: its name is text[nameStart, nameEnd) (-1: none yet).
  let nameStart = -1;
  let nameEnd = -1;
  let value = '';
  let valueStart = -1; // value's place in the text; -1 once unfolded from several lines
  let valueEnd = -1;
  let colon = -1; // next ':' position, cached so that lines without one stay linear
  while (pos < n) {
    const lf = text.indexOf('\n', pos);
    const lineEnd = lf === -1 ? n : lf - 1;
    // Lines end with CRLF only: a bare CR or LF would let framing, parsing and
    // the peers we copy values to disagree about where a line ends (header
    // smuggling). The CR search stops at this line's own CR.
    const cr = text.indexOf('\r', pos);
    if ((lf !== -1 && text.charCodeAt(lineEnd) !== 0x0d) || (cr !== -1 && cr < lineEnd)) {
      error ??= 'Header fields contain a bare CR or LF';
      break;
    }
    const c = text.charCodeAt(pos);
    if (c === 0x20 || c === 0x09) {
      // RFC 3261 7.3.1: a line starting with whitespace continues the field
      // above; the folding is equivalent to a single SP.
      if (nameStart === -1) error ??= 'Header field continuation line without a header field';
      else {
        const more = trimWs(text.slice(pos, lineEnd));
        if (more.length > 0) {
          value = value.length === 0 ? more : value + ' ' + more;
          valueStart = -1;
        }
      }
    } else {
      if (
        nameStart !== -1 &&
        !addField(headers, codes, text, nameStart, nameEnd, value, valueStart, valueEnd, seen)
      ) {
        error ??= 'Invalid header field name';
      }
      nameStart = -1;
      if (colon < pos) colon = text.indexOf(':', pos);
      if (colon === -1) {
        error ??= 'Header field line without a colon';
        break;
      }
      if (colon > lineEnd) error ??= 'Header field line without a colon';
      else {
        // HCOLON = *( SP / HTAB ) ":" SWS (RFC 4475 3.1.1.1: `Via  : …`)
        nameEnd = colon;
        while (nameEnd > pos && isWsCode(text.charCodeAt(nameEnd - 1))) nameEnd--;
        valueStart = colon + 1;
        while (valueStart < lineEnd && isWsCode(text.charCodeAt(valueStart))) valueStart++;
        valueEnd = lineEnd;
        while (valueEnd > valueStart && isWsCode(text.charCodeAt(valueEnd - 1))) valueEnd--;
        nameStart = pos;
        value = text.slice(valueStart, valueEnd);
      }
    }
    pos = lineEnd + 2;
  }
  if (
    nameStart !== -1 &&
    !addField(headers, codes, text, nameStart, nameEnd, value, valueStart, valueEnd, seen)
  ) {
    error ??= 'Invalid header field name';
  }
  return error;
}

/** Appends one unfolded field named text[nameStart, nameEnd); false when its name is not a token. */
function addField(
  headers: Headers,
  codes: Uint8Array,
  text: string,
  nameStart: number,
  nameEnd: number,
  value: string,
  valueStart: number,
  valueEnd: number,
  seen: Seen,
): boolean {
  const id = appendParsedField(headers, codes, text, nameStart, nameEnd, value);
  if (id < 0) return id !== INVALID_HEADER_NAME;
  const slot = SLOT[id] as number;
  if (slot < 0) return true;
  const counts = seen.counts;
  if ((counts[slot] as number) < 255) counts[slot] = (counts[slot] as number) + 1;
  if (slot === CONTENT_LENGTH_SLOT) seen.contentLength.push(value);
  else if (slot === VIA_SLOT) seen.via.push(fieldRef(seen, value, valueStart, valueEnd));
  else if (slot === CONTACT_SLOT) seen.contact.push(fieldRef(seen, value, valueStart, valueEnd));
  else if (slot === FROM_SLOT) seen.from ??= fieldRef(seen, value, valueStart, valueEnd);
  else if (slot === TO_SLOT) seen.to ??= fieldRef(seen, value, valueStart, valueEnd);
  else if (slot === CSEQ_SLOT) seen.cseq ??= fieldRef(seen, value, valueStart, valueEnd);
  return true;
}

function isWsCode(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

// ---------------------------------------------------------------------------
// Body (RFC 3261 7.4, 18.3, 20.14)

function extractBody(
  buf: Buffer,
  bodyStart: number,
  values: readonly string[],
  maxBody: number,
): { body: Uint8Array } | { reason: string; status: number } {
  const available = buf.length - bodyStart;
  if (values.length === 0) {
    if (available > maxBody) return { reason: `Message body exceeds ${maxBody} bytes`, status: 513 };
    return { body: copyBytes(buf, bodyStart, buf.length) };
  }
  let length: number | undefined;
  for (const v of values) {
    const n = parseBoundedInt(v, Number.MAX_SAFE_INTEGER);
    if (n === undefined) {
      // RFC 4475 3.1.2.3: never let a negative or non-numeric value become a count.
      const reason = v.charCodeAt(0) === 0x2d ? 'Negative Content-Length' : 'Content-Length is not a number';
      return { reason, status: 400 };
    }
    if (length !== undefined && n !== length)
      return { reason: 'Conflicting Content-Length values', status: 400 };
    length = n;
  }
  const cl = length as number;
  if (cl > maxBody) return { reason: `Message body exceeds ${maxBody} bytes`, status: 513 };
  // RFC 4475 3.1.2.2 over a datagram: the body is shorter than announced.
  if (cl > available) {
    return { reason: `Content-Length ${cl} exceeds the ${available} body bytes received`, status: 400 };
  }
  return { body: cl === 0 ? EMPTY_BODY : copyBytes(buf, bodyStart, bodyStart + cl) };
}

function copyBytes(buf: Buffer, from: number, to: number): Uint8Array {
  // A copy, so the message never pins or aliases the caller's (reused) buffer.
  // A Buffer, so that an accidental body.toString() still yields the text.
  if (from === to) return EMPTY_BODY;
  const body = Buffer.allocUnsafe(to - from);
  buf.copy(body, 0, from, to);
  return body;
}

// ---------------------------------------------------------------------------
// Validation (RFC 3261 8.2, RFC 4475)

/**
 * Checks what RFC 3261 8.2 and RFC 4475 require of every message. The values
 * every layer reads at once (top Via, CSeq, From, To) are built here, read in
 * the header text, and handed to Headers as its memoized values; the others
 * that must be well formed (lower Vias, Contact) are only checked, and built
 * if and when someone reads them.
 */
function validate(message: SipMessage, text: string, codes: Uint8Array, seen: Seen): string | undefined {
  const h = message.headers;
  const isRequest = message.type === 'request';
  const counts = seen.counts;

  if (REQUIRED_SLOTS.some((slot) => counts[slot] === 0)) {
    const missing = REQUIRED.filter((_name, i) => counts[REQUIRED_SLOTS[i] as number] === 0);
    return `Missing required header field${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`;
  }
  for (let i = 0; i < SINGLE_VALUED.length; i++) {
    if ((counts[i] as number) > 1) return `Header field ${SINGLE_VALUED[i]} appears more than once`;
  }

  const callId = h.callId() as string;
  if (callId.length === 0 || callId.indexOf(' ') !== -1 || callId.indexOf('\t') !== -1) {
    return 'Malformed Call-ID header field';
  }

  const cseqField = seen.cseq as FieldRef;
  const cseq =
    cseqField.start >= 0
      ? parseCSeqIn(codes, text, cseqField.start, cseqField.end)
      : parseCSeq(cseqField.value);
  if (cseq === undefined) {
    const digits = /^[ \t]*([0-9]+)/.exec(cseqField.value)?.[1];
    if (digits !== undefined && parseBoundedInt(digits, MAX_CSEQ) === undefined) {
      return 'CSeq sequence number exceeds 2^32-1';
    }
    return 'Malformed CSeq header field';
  }
  if (isRequest && cseq.method !== message.method) {
    return `CSeq method ${cseq.method} does not match request method ${message.method}`;
  }

  if (isRequest && counts[MAX_FORWARDS_SLOT] !== 0) {
    if (parseBoundedInt(h.get('Max-Forwards') as string, 255) === undefined) {
      return 'Max-Forwards must be an integer from 0 to 255';
    }
  }

  const fromField = seen.from as FieldRef;
  const from = nameAddrIn(codes, text, fromField);
  if (from === undefined) return nameAddrProblem('From', fromField.value);
  const toField = seen.to as FieldRef;
  const to = nameAddrIn(codes, text, toField);
  if (to === undefined) return nameAddrProblem('To', toField.value);

  const topVia = topViaIn(codes, text, seen.via[0] as FieldRef);
  if (topVia === undefined || !lowerViasValid(codes, text, seen.via)) {
    for (const field of seen.via) {
      // RFC 4475 3.1.2.1: `Via: …;;,;,,`
      if (splitHeaderList(field.value).some((v) => v.length === 0))
        return 'Via header field has an empty value';
    }
    return 'Malformed Via header field';
  }
  primeParsedValues(h, topVia, cseq, from, to);

  if (isRequest && seen.contact.length > 0) {
    const wildcard = seen.contact.length === 1 && isWildcard((seen.contact[0] as FieldRef).value);
    if (!wildcard && !contactsValid(codes, text, seen.contact)) {
      const given = listElements(seen.contact).filter((c) => c.length > 0);
      return nameAddrProblem('Contact', given.find((c) => !isNameAddr(c)) ?? '');
    }
  }
  return undefined;
}

function nameAddrIn(codes: Uint8Array, text: string, field: FieldRef): NameAddr | undefined {
  return field.start >= 0 ? parseNameAddrIn(codes, text, field.start, field.end) : parseNameAddr(field.value);
}

/** What Headers.topVia() makes of the first Via field. */
function topViaIn(codes: Uint8Array, text: string, field: FieldRef): Via | undefined {
  if (field.value.indexOf(',') !== -1) return parseVia(splitHeaderList(field.value)[0] as string);
  return field.start >= 0 ? parseViaIn(codes, text, field.start, field.end) : parseVia(field.value);
}

/** Every Via value after the top one (which topViaIn built) is well formed. */
function lowerViasValid(codes: Uint8Array, text: string, fields: readonly FieldRef[]): boolean {
  for (let f = 0; f < fields.length; f++) {
    const field = fields[f] as FieldRef;
    if (field.value.indexOf(',') === -1) {
      if (f === 0) continue;
      if (!(field.start >= 0 ? isViaIn(codes, text, field.start, field.end) : isVia(field.value)))
        return false;
      continue;
    }
    const values = splitHeaderList(field.value);
    for (let i = f === 0 ? 1 : 0; i < values.length; i++) if (!isVia(values[i] as string)) return false;
  }
  return true;
}

/** `Contact: *` (RFC 3261 10.2.2), which only REGISTER may carry and only alone. */
function isWildcard(value: string): boolean {
  if (value.indexOf(',') === -1) return value === '*';
  const given = splitHeaderList(value).filter((c) => c.length > 0);
  return given.length === 1 && given[0] === '*';
}

function contactsValid(codes: Uint8Array, text: string, fields: readonly FieldRef[]): boolean {
  for (const field of fields) {
    if (field.value.indexOf(',') === -1) {
      if (!(field.start >= 0 ? isNameAddrIn(codes, text, field.start, field.end) : isNameAddr(field.value)))
        return false;
    } else if (!splitHeaderList(field.value).every(isNameAddr)) return false;
  }
  return true;
}

/** The comma-separated elements of list header fields, empty ones included. */
function listElements(fields: readonly FieldRef[]): string[] {
  const out: string[] = [];
  for (const field of fields) {
    if (field.value.indexOf(',') === -1) out.push(field.value);
    else out.push(...splitHeaderList(field.value));
  }
  return out;
}

function isTokenList(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && !isTokenChar(c)) return false;
  }
  return true;
}

/** A specific reason for a From/To/Contact value that did not parse. */
function nameAddrProblem(header: string, value: string): string {
  let inQuote = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (inQuote && c === 0x5c) i++;
    else if (c === 0x22) inQuote = !inQuote;
  }
  if (inQuote) return `${header} header field has an unterminated quoted string`;
  const lt = value.indexOf('<');
  const gt = value.indexOf('>', lt + 1);
  if (lt !== -1 && gt === -1) return `${header} header field has an unterminated <`;
  if (lt !== -1 && /[ \t]/.test(value.slice(lt + 1, gt)))
    return `${header} header field has whitespace inside <>`;
  if (lt !== -1 && value.trimStart().charCodeAt(0) !== 0x22 && !isTokenList(value.slice(0, lt))) {
    // RFC 4475 3.1.2.15: `Bell, Alexander <sip:…>`
    return `${header} header field has a display name that is neither a quoted string nor tokens`;
  }
  if (lt === -1 && value.includes('?'))
    return `${header} header field URI with headers must be enclosed in <>`;
  return `Malformed ${header} header field`;
}
