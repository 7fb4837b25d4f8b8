/**
 * SIP URIs, name-addr / addr-spec values, Via, CSeq and generic parameters
 * (RFC 3261 sections 19.1, 20.10, 20.42, 25.1).
 *
 * Everything here is a hand-written scanner (no regexes) that reads the
 * string's character codes from a byte array once, straight into its result,
 * and returns `undefined` on malformed input instead of throwing. Each has a
 * check mode that builds nothing, and the parser's variants (…In) read a value
 * where it stands in the header section (see "Scanners" below).
 *
 * Parameter values — a decision that callers must know about:
 * - Header parameters (NameAddr.params, Via.params) keep their value RAW: a
 *   quoted value keeps its quotes and escapes (`+sip.instance` →
 *   `"<urn:uuid:…>"`), so formatNameAddr/formatVia reproduce it byte for byte.
 *   Use `unquoteString()` to get the content. Whitespace around `=` and `;`
 *   is dropped. If a name repeats, the first occurrence wins.
 * - URI parameters and URI headers (SipUri.params / SipUri.headers) are
 *   %-decoded, because RFC 3261 19.1.4 compares them after unescaping
 *   (`;%6C%72` is `;lr`); formatUri re-escapes what the grammar requires.
 * - Parameter names are lowercased everywhere (they are case-insensitive).
 */
import type { CSeq, NameAddr, OtherUri, SipUri, Uri, Via } from './types.js';

// ---------------------------------------------------------------------------
// Character classes (RFC 3261 section 25.1) as 128-entry lookup tables.

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function charTable(chars: string): Uint8Array {
  const table = new Uint8Array(128);
  for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1;
  return table;
}

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
const TOKEN = charTable(ALNUM + "-.!%*_+`'~");
/** unreserved = alphanum / mark */
const UNRESERVED = ALNUM + "-_.!~*'()";
/** user = 1*( unreserved / escaped / user-unreserved ) */
const USER_CHARS = charTable(UNRESERVED + '&=+$,;?/');
/** password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," ) */
const PASSWORD_CHARS = charTable(UNRESERVED + '&=+$,');
/** paramchar = param-unreserved / unreserved / escaped */
const PARAM_CHARS = charTable(UNRESERVED + '[]/:&+$');
/** hname / hvalue = *( hnv-unreserved / unreserved / escaped ) */
const HEADER_CHARS = charTable(UNRESERVED + '[]/?:+$');
/** hostname characters; `_` is not in the grammar but is seen in real deployments. */
const HOST_CHARS = charTable(ALNUM + '-._');
const IPV6_CHARS = charTable('0123456789abcdefABCDEF:.');
/** scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
const SCHEME_CHARS = charTable(ALNUM + '+-.');

const SP = 0x20;
const HT = 0x09;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;
const SEMI = 0x3b;
const COMMA = 0x2c;
const LT = 0x3c;
const GT = 0x3e;
const COLON = 0x3a;
const SLASH = 0x2f;
const EQUALS = 0x3d;
const LBRACKET = 0x5b;
const QUESTION = 0x3f;
const PERCENT = 0x25;
const AMPERSAND = 0x26;

export function isTokenChar(c: number): boolean {
  return c < 128 && TOKEN[c] === 1;
}

/** True for a non-empty RFC 3261 token (methods, header names, parameter names). */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTokenChar(s.charCodeAt(i))) return false;
  return true;
}

function isWs(c: number): boolean {
  return c === SP || c === HT;
}

function skipWs(b: Uint8Array, i: number, end: number): number {
  while (i < end && isWs(b[i] as number)) i++;
  return i;
}

function scanToken(b: Uint8Array, i: number, end: number): number {
  while (i < end && isTokenChar(b[i] as number)) i++;
  return i;
}

/** Trims SP and HTAB only (String#trim would also eat NBSP, U+FEFF, …). */
export function trimWs(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isWs(s.charCodeAt(a))) a++;
  while (b > a && isWs(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/**
 * Parses 1*DIGIT into a number no larger than `max`, or undefined. Over-long
 * digit strings are rejected before Number() so that values such as
 * 36893488147419103232 (RFC 4475 3.1.2.4) never turn into imprecise floats.
 */
export function parseBoundedInt(s: string, max: number): number | undefined {
  const n = s.length;
  if (n === 0) return undefined;
  let i = 0;
  for (let k = 0; k < n; k++) {
    const c = s.charCodeAt(k);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  while (i < n - 1 && s.charCodeAt(i) === 0x30) i++; // leading zeros are legal ("0068")
  if (n - i > 15) return undefined; // 15 digits stay below 2^53, so Number() is exact
  const value = Number(s.slice(i));
  return value <= max ? value : undefined;
}

/**
 * Scans a quoted-string starting at the opening DQUOTE; returns the index just
 * after the closing DQUOTE, or -1 when it is unterminated before `end`.
 */
function scanQuoted(b: Uint8Array, i: number, end: number): number {
  let j = i + 1;
  while (j < end) {
    const c = b[j] as number;
    if (c === BACKSLASH)
      j += 2; // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
    else if (c === DQUOTE) return j + 1;
    else j++;
  }
  return -1;
}

// ---------------------------------------------------------------------------
// Quoted strings

/**
 * Wraps a string in a quoted-string, escaping `"` and `\`. CR and LF cannot
 * appear in a quoted-string at all (RFC 3261 25.1), so they become SP: this
 * keeps a hostile display name from injecting header lines.
 */
export function quoteString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === DQUOTE || c === BACKSLASH) out += '\\' + s[i];
    else if (c === 0x0d || c === 0x0a) out += ' ';
    else out += s[i];
  }
  return out + '"';
}

/**
 * Removes the surrounding quotes of a quoted-string and resolves quoted-pairs
 * (`\"` → `"`, `\\` → `\`). A value that is not quoted is returned unchanged,
 * so it can be applied to any raw parameter value.
 */
export function unquoteString(s: string): string {
  if (s.length < 2 || s.charCodeAt(0) !== DQUOTE || s.charCodeAt(s.length - 1) !== DQUOTE) return s;
  return unescapeQuotedContent(s.slice(1, -1));
}

function unescapeQuotedContent(inner: string): string {
  if (inner.indexOf('\\') === -1) return inner;
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    const c = inner.charCodeAt(i);
    if (c === BACKSLASH && i + 1 < inner.length) {
      out += inner[i + 1];
      i++;
    } else out += inner[i];
  }
  return out;
}

// ---------------------------------------------------------------------------
// %-escaping (RFC 3261 19.1.2, 25.1 "escaped")

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

function decodeOctets(octets: number[]): string {
  let ascii = true;
  for (const o of octets) if (o >= 0x80) ascii = false;
  if (ascii) return String.fromCharCode(...octets);
  try {
    return utf8Strict.decode(Uint8Array.from(octets));
  } catch {
    // Not UTF-8: keep one character per octet rather than losing data.
    return String.fromCharCode(...octets);
  }
}

/**
 * Decodes %HH escapes once (never recursively: `value%2541` → `value%41`,
 * RFC 4475 3.1.1.3). Runs of escapes are decoded as UTF-8 when they form valid
 * UTF-8, else octet by octet. `%00` yields U+0000 and does not truncate
 * (RFC 4475 3.1.1.4). A `%` not followed by two hex digits stays literal.
 */
export function unescapeUriComponent(s: string): string {
  if (s.indexOf('%') === -1) return s;
  let out = '';
  let i = 0;
  const n = s.length;
  while (i < n) {
    if (s.charCodeAt(i) === PERCENT && i + 2 < n) {
      const octets: number[] = [];
      while (i + 2 < n && s.charCodeAt(i) === PERCENT) {
        const hi = hexValue(s.charCodeAt(i + 1));
        const lo = hexValue(s.charCodeAt(i + 2));
        if (hi < 0 || lo < 0) break;
        octets.push(hi * 16 + lo);
        i += 3;
      }
      if (octets.length > 0) {
        out += decodeOctets(octets);
        continue;
      }
    }
    out += s[i];
    i++;
  }
  return out;
}

const HEX = '0123456789ABCDEF';

/** %-escapes every character that `allowed` does not list (UTF-8 octets for non-ASCII). */
function escapeWith(s: string, allowed: Uint8Array): string {
  let clean = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || allowed[c] !== 1) {
      clean = false;
      break;
    }
  }
  if (clean) return s;
  let out = '';
  for (const o of Buffer.from(s, 'utf8')) {
    if (o < 128 && allowed[o] === 1) out += String.fromCharCode(o);
    else out += '%' + HEX[o >> 4] + HEX[o & 15];
  }
  return out;
}

function collapseWs(s: string): string {
  return s.indexOf(' ') === -1 && s.indexOf('\t') === -1 ? s : s.split(/[ \t]+/).join(' ');
}

// ---------------------------------------------------------------------------
// Scanners. Each grammar is scanned in one pass, straight into its result
// (no regexes, no intermediate arrays). With `build` false a scanner only
// checks the grammar and returns VALID: that is what the parser's validation
// runs on the values nobody reads yet (lower Vias, Contact), so the typed value
// is built only on first access, by the same code, with the same verdict.
//
// A scanner reads s[start, end) through `b`, its codes: b[i] is s's UTF-16
// unit i when that is ASCII, else some value from 0x80 to 0xff (every grammar
// decision here is about ASCII; all other characters fall in the same classes). Reading a byte
// array is several times faster than charCodeAt on a string, and the parser
// hands over the received bytes themselves when the header section is ASCII
// (codes and text then coincide). Results are sliced from s.

/**
 * Names met on every message, kept as constants: a parameter name or
 * transport found in the codes needs neither a slice nor a case conversion
 * (the common case; any other is sliced and lowercased as before).
 */
const PARAM_NAMES = [
  'branch',
  'rport',
  'received',
  'maddr',
  'ttl',
  'alias',
  'tag',
  'expires',
  'q',
  'transport',
  'lr',
  'ob',
  'user',
  'method',
  'reg-id',
  '+sip.instance',
  'r2',
  'gr',
  'refresher',
  'cause',
  'text',
];
const TRANSPORTS = ['UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS'];
const INTERN_MAX_LENGTH = 15;

function internTable(names: readonly string[]): Array<string[] | undefined> {
  const table: Array<string[] | undefined> = Array.from(
    { length: (INTERN_MAX_LENGTH + 1) * 128 },
    () => undefined,
  );
  for (const name of names) {
    const slot = name.length * 128 + lowerAscii(name.charCodeAt(0));
    const bucket = table[slot] ?? [];
    bucket.push(name);
    table[slot] = bucket;
  }
  return table;
}
const PARAM_TABLE = internTable(PARAM_NAMES);
const TRANSPORT_TABLE = internTable(TRANSPORTS);

/** The constant in `table` that the codes b[start, end) spell, ignoring ASCII case. */
function interned(
  table: Array<string[] | undefined>,
  b: Uint8Array,
  start: number,
  end: number,
): string | undefined {
  const length = end - start;
  const first = b[start] as number;
  if (length > INTERN_MAX_LENGTH || first >= 128) return undefined;
  const bucket = table[length * 128 + lowerAscii(first)];
  if (bucket === undefined) return undefined;
  next: for (const name of bucket) {
    for (let k = 0; k < length; k++) {
      if (lowerAscii(b[start + k] as number) !== lowerAscii(name.charCodeAt(k))) continue next;
    }
    return name;
  }
  return undefined;
}

const BEYOND_LATIN1 = /[^\x00-\xff]/;

/**
 * A string's codes, for the scanners (see above), in `into` when it is large
 * enough. Latin-1 text is written natively, byte for byte (its units 0x80 to
 * 0xff are non-ASCII codes as good as 0x80); beyond it, unit by unit.
 */
export function codesOf(s: string, into?: Buffer): Buffer {
  const n = s.length;
  const b = into !== undefined && into.length >= n ? into : Buffer.allocUnsafeSlow(n);
  if (!BEYOND_LATIN1.test(s)) b.write(s, 0, 'latin1');
  else for (let i = 0; i < n; i++) b[i] = Math.min(s.charCodeAt(i), 0x80);
  return b;
}

/**
 * Codes of the string a public entry point was given, in a buffer reused from
 * call to call (entry points never nest; the parser has codes of its own).
 */
let scratch = Buffer.allocUnsafeSlow(1024);
function scratchCodes(s: string): Uint8Array {
  if (s.length > scratch.length) {
    if (s.length > 65536) return codesOf(s); // rare and huge: not worth keeping
    scratch = Buffer.allocUnsafeSlow(Math.max(s.length, scratch.length * 2));
  }
  return codesOf(s, scratch);
}

/** What a scanner returns in check mode when the value is well formed. */
const VALID = 0;
/** scanUri's check mode: a well-formed SIP URI with escaped headers (`?subject=…`). */
const VALID_WITH_HEADERS = 1;
type Checked = typeof VALID | typeof VALID_WITH_HEADERS;

/** Whitespace, controls and the delimiters that end a URI inside a header field (RFC 4475 3.1.2.7, 3.1.2.8, 3.1.2.14). */
function isForbiddenInUri(c: number): boolean {
  return c <= SP || c === 0x7f || c === LT || c === GT || c === DQUOTE;
}

function lowerAscii(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

// ---------------------------------------------------------------------------
// URIs (RFC 3261 19.1)

/**
 * Parses a URI. sip:/sips: URIs are parsed into their parts, any other
 * well-formed `scheme:rest` is returned as an OtherUri (the UA, not the parser,
 * answers 416 for schemes it does not support; RFC 4475 3.3.2).
 */
export function parseUri(s: string): Uri | undefined {
  return scanUri(scratchCodes(s), s, 0, s.length, true);
}

/**
 * Checks a URI without building it: 'malformed' where parseUri would return
 * undefined, 'escaped-headers' for a SIP URI with `?headers` (not allowed in
 * a Request-URI, RFC 3261 19.1.1), else 'ok'. @internal
 */
export function checkUri(s: string): 'ok' | 'malformed' | 'escaped-headers' {
  return checkUriIn(scratchCodes(s), s, 0, s.length);
}

/** checkUri(s.slice(start, end)), without the slice; `b` holds s's codes. @internal */
export function checkUriIn(
  b: Uint8Array,
  s: string,
  start: number,
  end: number,
): 'ok' | 'malformed' | 'escaped-headers' {
  const checked = scanUri(b, s, start, end, false);
  return checked === undefined ? 'malformed' : checked === VALID ? 'ok' : 'escaped-headers';
}

/** Scans the URI s[start, end). */
function scanUri(b: Uint8Array, s: string, start: number, end: number, build: true): Uri | undefined;
function scanUri(b: Uint8Array, s: string, start: number, end: number, build: false): Checked | undefined;
function scanUri(
  b: Uint8Array,
  s: string,
  start: number,
  end: number,
  build: boolean,
): Uri | Checked | undefined;
function scanUri(
  b: Uint8Array,
  s: string,
  start: number,
  end: number,
  build: boolean,
): Uri | Checked | undefined {
  const colon = s.indexOf(':', start);
  if (colon <= start || colon >= end) return undefined;
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  const c0 = b[start] as number;
  if (!((c0 >= 0x41 && c0 <= 0x5a) || (c0 >= 0x61 && c0 <= 0x7a))) return undefined;
  for (let i = start + 1; i < colon; i++) {
    const c = b[i] as number;
    if (c >= 128 || SCHEME_CHARS[c] !== 1) return undefined;
  }
  const schemeLength = colon - start;
  if (
    (schemeLength === 3 || schemeLength === 4) &&
    lowerAscii(c0) === 0x73 &&
    lowerAscii(b[start + 1] as number) === 0x69 &&
    lowerAscii(b[start + 2] as number) === 0x70 &&
    (schemeLength === 3 || lowerAscii(b[start + 3] as number) === 0x73)
  ) {
    return scanSipUri(b, s, colon + 1, end, schemeLength === 3 ? 'sip' : 'sips', build);
  }
  if (colon + 1 >= end) return undefined;
  for (let i = colon + 1; i < end; i++) if (isForbiddenInUri(b[i] as number)) return undefined;
  if (!build) return VALID;
  const other: OtherUri = { scheme: s.slice(start, colon).toLowerCase(), opaque: s.slice(colon + 1, end) };
  return other;
}

function scanSipUri(
  b: Uint8Array,
  s: string,
  start: number,
  end: number,
  scheme: 'sip' | 'sips',
  build: boolean,
): SipUri | Checked | undefined {
  let user: string | undefined;
  let password: string | undefined;
  let i = start;
  // `@` cannot appear unescaped after the userinfo (not in hostport, params or
  // headers), so the first one ends the userinfo; the user part itself may
  // contain `;`, `?` and `/` (RFC 4475 3.1.1.2, 3.1.1.9).
  const at = s.indexOf('@', start);
  if (at !== -1 && at < end) {
    let userEnd = at;
    for (let k = start; k < at; k++) {
      const c = b[k] as number;
      if (c === COLON && userEnd === at) userEnd = k;
      else if (isForbiddenInUri(c)) return undefined;
    }
    if (userEnd === start) return undefined;
    if (build) {
      user = unescapeUriComponent(s.slice(start, userEnd));
      if (userEnd < at) password = unescapeUriComponent(s.slice(userEnd + 1, at));
    }
    i = at + 1;
  }

  const hostStart = i;
  if (i < end && (b[i] as number) === LBRACKET) {
    const close = s.indexOf(']', i);
    if (close === -1 || close >= end || close === i + 1) return undefined;
    for (let k = i + 1; k < close; k++) {
      const c = b[k] as number;
      if (c >= 128 || IPV6_CHARS[c] !== 1) return undefined;
    }
    i = close + 1;
  } else {
    while (i < end) {
      const c = b[i] as number;
      if (c === COLON || c === SEMI || c === QUESTION) break;
      if (c >= 128 || HOST_CHARS[c] !== 1) return undefined;
      i++;
    }
    if (i === hostStart) return undefined;
  }
  const hostEnd = i;

  let port = -1;
  if (i < end && (b[i] as number) === COLON) {
    const p = ++i;
    port = 0;
    while (i < end) {
      const c = b[i] as number;
      if (c === SEMI || c === QUESTION) break;
      if (c < 0x30 || c > 0x39) return undefined;
      port = port * 10 + (c - 0x30);
      if (port > 65535) return undefined;
      i++;
    }
    if (i === p) return undefined;
  }

  // uri-parameters, %-decoded (RFC 3261 19.1.4 compares them unescaped); the first of a name wins.
  const params = build ? new Map<string, string | null>() : undefined;
  while (i < end && (b[i] as number) === SEMI) {
    const p = ++i;
    let eq = -1;
    while (i < end) {
      const c = b[i] as number;
      if (c === SEMI || c === QUESTION) break;
      if (c === EQUALS) {
        if (eq === -1) eq = i;
      } else if (isForbiddenInUri(c)) return undefined;
      i++;
    }
    const nameEnd = eq === -1 ? i : eq;
    if (nameEnd === p) return undefined; // `;;` or `;=x`
    if (params !== undefined) {
      const name =
        interned(PARAM_TABLE, b, p, nameEnd) ?? unescapeUriComponent(s.slice(p, nameEnd)).toLowerCase();
      if (!params.has(name)) params.set(name, eq === -1 ? null : unescapeUriComponent(s.slice(eq + 1, i)));
    }
  }

  // headers = "?" header *( "&" header ); header = hname "=" hvalue
  const headers = build ? new Map<string, string>() : undefined;
  const hasHeaders = i < end && (b[i] as number) === QUESTION;
  if (hasHeaders) {
    let p = i + 1;
    for (;;) {
      let eq = -1;
      let k = p;
      while (k < end) {
        const c = b[k] as number;
        if (c === AMPERSAND) break;
        if (c === EQUALS) {
          if (eq === -1) eq = k;
        } else if (isForbiddenInUri(c)) return undefined;
        k++;
      }
      if (eq <= p) return undefined;
      headers?.set(unescapeUriComponent(s.slice(p, eq)), unescapeUriComponent(s.slice(eq + 1, k)));
      if (k >= end) break;
      p = k + 1;
    }
    i = end;
  }
  if (i !== end) return undefined;
  if (params === undefined || headers === undefined) return hasHeaders ? VALID_WITH_HEADERS : VALID;

  const uri: SipUri = { scheme, host: s.slice(hostStart, hostEnd), params, headers };
  if (user !== undefined) uri.user = user;
  if (password !== undefined) uri.password = password;
  if (port !== -1) uri.port = port;
  return uri;
}

export function isSipUri(uri: Uri): uri is SipUri {
  return uri.scheme === 'sip' || uri.scheme === 'sips';
}

/** Formats a URI, %-escaping user, password, parameters and headers as RFC 3261 19.1.2 requires. */
export function formatUri(u: Uri): string {
  if (!isSipUri(u)) return `${u.scheme}:${(u as OtherUri).opaque}`;
  let out = u.scheme + ':';
  if (u.user !== undefined) {
    out += escapeWith(u.user, USER_CHARS);
    if (u.password !== undefined) out += ':' + escapeWith(u.password, PASSWORD_CHARS);
    out += '@';
  }
  out += u.host;
  if (u.port !== undefined) out += ':' + u.port;
  for (const [name, value] of u.params) {
    out += ';' + escapeWith(name, PARAM_CHARS);
    if (value !== null) out += '=' + escapeWith(value, PARAM_CHARS);
  }
  let sep = '?';
  for (const [name, value] of u.headers) {
    out += sep + escapeWith(name, HEADER_CHARS) + '=' + escapeWith(value, HEADER_CHARS);
    sep = '&';
  }
  return out;
}

// ---------------------------------------------------------------------------
// Header parameters: *( SEMI generic-param ), SEMI = SWS ";" SWS (RFC 3261 25.1)

function isValueChar(c: number): boolean {
  // gen-value = token / host / quoted-string; accept any visible character
  // except the delimiters, so IPv6 `received=` values and the like pass.
  return c > SP && c !== 0x7f && c !== SEMI && c !== COMMA && c !== DQUOTE && c !== LT && c !== GT;
}

/**
 * Strictly scans `*( SEMI param )` in s[i, end), into `out` when given (raw
 * values, see the file comment). Returns the index after the last parameter,
 * or -1 on a malformed parameter (empty name as in `;;`, `name=` without a
 * value, unterminated quoted value).
 */
function scanParams(
  b: Uint8Array,
  s: string,
  i: number,
  end: number,
  out: Map<string, string | null> | undefined,
): number {
  for (;;) {
    const k = skipWs(b, i, end);
    if (k >= end || (b[k] as number) !== SEMI) return i;
    const nameStart = skipWs(b, k + 1, end);
    const nameEnd = scanToken(b, nameStart, end);
    if (nameEnd === nameStart) return -1;
    i = nameEnd;
    let valueStart = -1;
    const e = skipWs(b, nameEnd, end);
    if (e < end && (b[e] as number) === EQUALS) {
      const v = skipWs(b, e + 1, end);
      let valueEnd: number;
      if (v < end && (b[v] as number) === DQUOTE) {
        valueEnd = scanQuoted(b, v, end);
        if (valueEnd < 0) return -1;
      } else {
        valueEnd = v;
        while (valueEnd < end && isValueChar(b[valueEnd] as number)) valueEnd++;
        if (valueEnd === v) return -1;
      }
      valueStart = v;
      i = valueEnd;
    }
    if (out !== undefined) {
      const name = interned(PARAM_TABLE, b, nameStart, nameEnd) ?? s.slice(nameStart, nameEnd).toLowerCase();
      if (!out.has(name)) out.set(name, valueStart === -1 ? null : s.slice(valueStart, i));
    }
  }
}

/**
 * Lenient parse of a `;a=b;c` sequence (a leading `;` is optional): split at
 * `;` outside quoted strings, names lowercased, values raw, empty pieces
 * skipped, first occurrence wins. For strict parsing use parseNameAddr/parseVia.
 */
export function parseParams(s: string): Map<string, string | null> {
  const out = new Map<string, string | null>();
  let start = 0;
  let inQuote = false;
  const add = (piece: string): void => {
    const eq = piece.indexOf('=');
    const name = trimWs(eq === -1 ? piece : piece.slice(0, eq)).toLowerCase();
    if (name.length === 0 || out.has(name)) return;
    out.set(name, eq === -1 ? null : trimWs(piece.slice(eq + 1)));
  };
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inQuote) {
      if (c === BACKSLASH) i++;
      else if (c === DQUOTE) inQuote = false;
    } else if (c === DQUOTE) inQuote = true;
    else if (c === SEMI) {
      add(s.slice(start, i));
      start = i + 1;
    }
  }
  add(s.slice(start));
  return out;
}

function formatParams(params: ReadonlyMap<string, string | null>): string {
  let out = '';
  for (const [name, value] of params) out += value === null ? ';' + name : ';' + name + '=' + value;
  return out;
}

// ---------------------------------------------------------------------------
// name-addr / addr-spec (RFC 3261 20.10, 25.1)

/**
 * Parses `( name-addr / addr-spec ) *( SEMI generic-param )` as used by From,
 * To, Contact, Route, Record-Route. For a bare addr-spec, `;params` after it
 * are header parameters and the URI may not contain `,`, `?` or `;`
 * (RFC 3261 20.10, RFC 4475 3.3.12, 3.1.2.13). A token display name may be
 * directly followed by `<` (RFC 4475 3.1.1.6). Whitespace inside `<…>` is
 * rejected (RFC 4475 3.1.2.14).
 */
export function parseNameAddr(s: string): NameAddr | undefined {
  return scanNameAddr(scratchCodes(s), s, 0, s.length, true);
}

/** True when parseNameAddr(s) would return a value; builds nothing. @internal */
export function isNameAddr(s: string): boolean {
  return scanNameAddr(scratchCodes(s), s, 0, s.length, false) === VALID;
}

/** parseNameAddr(s.slice(start, end)), without the slice; `b` holds s's codes. @internal */
export function parseNameAddrIn(b: Uint8Array, s: string, start: number, end: number): NameAddr | undefined {
  return scanNameAddr(b, s, start, end, true);
}

/** isNameAddr(s.slice(start, end)), without the slice; `b` holds s's codes. @internal */
export function isNameAddrIn(b: Uint8Array, s: string, start: number, end: number): boolean {
  return scanNameAddr(b, s, start, end, false) === VALID;
}

function scanNameAddr(
  b: Uint8Array,
  s: string,
  start: number,
  end: number,
  build: true,
): NameAddr | undefined;
function scanNameAddr(
  b: Uint8Array,
  s: string,
  start: number,
  end: number,
  build: false,
): Checked | undefined;
function scanNameAddr(
  b: Uint8Array,
  s: string,
  start: number,
  end: number,
  build: boolean,
): NameAddr | Checked | undefined {
  let i = skipWs(b, start, end);
  if (i >= end) return undefined;
  let displayName: string | undefined;

  let lt = -1;
  const c0 = b[i] as number;
  if (c0 === DQUOTE) {
    const close = scanQuoted(b, i, end);
    if (close < 0) return undefined; // RFC 4475 3.1.2.6
    if (build) displayName = unescapeQuotedContent(s.slice(i + 1, close - 1));
    lt = skipWs(b, close, end);
    if (lt >= end || (b[lt] as number) !== LT) return undefined;
  } else if (c0 === LT) {
    lt = i;
  } else {
    // display-name = *(token LWS): only tokens and whitespace before `<`.
    let j = i;
    let sawSpace = false;
    let lastTokenEnd = i;
    while (j < end) {
      const c = b[j] as number;
      if (isTokenChar(c)) {
        j++;
        lastTokenEnd = j;
      } else if (isWs(c)) {
        sawSpace = true;
        j++;
      } else break;
    }
    if (j < end && (b[j] as number) === LT) {
      lt = j;
      if (build) {
        const raw = s.slice(i, lastTokenEnd);
        displayName = sawSpace ? collapseWs(raw) : raw;
      }
    }
  }

  let uriStart: number;
  let uriEnd: number;
  if (lt >= 0) {
    const gt = s.indexOf('>', lt + 1);
    if (gt === -1 || gt >= end) return undefined;
    uriStart = lt + 1;
    uriEnd = gt;
    i = gt + 1;
  } else {
    let j = i;
    while (j < end) {
      const c = b[j] as number;
      if (c === SEMI || isWs(c)) break;
      if (c === COMMA || c === QUESTION) return undefined; // must be in <> (RFC 3261 20.10)
      j++;
    }
    uriStart = i;
    uriEnd = j;
    i = j;
  }

  const uri = scanUri(b, s, uriStart, uriEnd, build);
  if (uri === undefined) return undefined;
  const params = typeof uri === 'number' ? undefined : new Map<string, string | null>();
  i = scanParams(b, s, i, end, params);
  if (i < 0 || skipWs(b, i, end) !== end) return undefined;
  if (typeof uri === 'number' || params === undefined) return VALID;
  const result: NameAddr = { uri, params };
  if (displayName !== undefined) result.displayName = displayName;
  return result;
}

/** Formats a NameAddr, always in the name-addr form `"Display" <uri>;params`. */
export function formatNameAddr(na: NameAddr): string {
  const dn = na.displayName !== undefined ? quoteString(na.displayName) + ' ' : '';
  return dn + '<' + formatUri(na.uri) + '>' + formatParams(na.params);
}

// ---------------------------------------------------------------------------
// Via (RFC 3261 20.42): sent-protocol LWS sent-by *( SEMI via-params )

export function parseVia(s: string): Via | undefined {
  return scanVia(scratchCodes(s), s, 0, s.length, true);
}

/** True when parseVia(s) would return a value; builds nothing. @internal */
export function isVia(s: string): boolean {
  return scanVia(scratchCodes(s), s, 0, s.length, false) === VALID;
}

/** parseVia(s.slice(start, end)), without the slice; `b` holds s's codes. @internal */
export function parseViaIn(b: Uint8Array, s: string, start: number, end: number): Via | undefined {
  return scanVia(b, s, start, end, true);
}

/** isVia(s.slice(start, end)), without the slice; `b` holds s's codes. @internal */
export function isViaIn(b: Uint8Array, s: string, start: number, end: number): boolean {
  return scanVia(b, s, start, end, false) === VALID;
}

function scanVia(b: Uint8Array, s: string, start: number, end: number, build: true): Via | undefined;
function scanVia(b: Uint8Array, s: string, start: number, end: number, build: false): Checked | undefined;
function scanVia(
  b: Uint8Array,
  s: string,
  start: number,
  end: number,
  build: boolean,
): Via | Checked | undefined {
  let i = skipWs(b, start, end);
  // sent-protocol = protocol-name SLASH protocol-version SLASH transport, SLASH = SWS "/" SWS
  let protocol = 'SIP/2.0';
  if (i + 8 <= end && s.startsWith('SIP/2.0/', i)) i = skipWs(b, i + 8, end);
  else {
    const nameStart = i;
    i = scanToken(b, i, end);
    if (i === nameStart) return undefined;
    const nameEnd = i;
    i = skipWs(b, i, end);
    if (i >= end || (b[i] as number) !== SLASH) return undefined;
    const versionStart = skipWs(b, i + 1, end);
    i = scanToken(b, versionStart, end);
    if (i === versionStart) return undefined;
    if (build) protocol = s.slice(nameStart, nameEnd) + '/' + s.slice(versionStart, i);
    i = skipWs(b, i, end);
    if (i >= end || (b[i] as number) !== SLASH) return undefined;
    i = skipWs(b, i + 1, end);
  }
  const transportStart = i;
  i = scanToken(b, i, end);
  if (i === transportStart) return undefined;
  const transportEnd = i;
  const hostStart = skipWs(b, i, end);
  if (hostStart === i) return undefined; // LWS is required before sent-by
  i = hostStart;

  if (i < end && (b[i] as number) === LBRACKET) {
    const close = s.indexOf(']', i);
    if (close === -1 || close >= end || close === i + 1) return undefined;
    for (let k = i + 1; k < close; k++) {
      const c = b[k] as number;
      if (c >= 128 || IPV6_CHARS[c] !== 1) return undefined;
    }
    i = close + 1;
  } else {
    while (i < end) {
      const c = b[i] as number;
      if (c >= 128 || HOST_CHARS[c] !== 1) break;
      i++;
    }
    if (i === hostStart) return undefined;
  }
  const hostEnd = i;

  let port = -1;
  const k = skipWs(b, i, end);
  if (k < end && (b[k] as number) === COLON) {
    const p = skipWs(b, k + 1, end);
    let e = p;
    port = 0;
    for (; e < end; e++) {
      const c = b[e] as number;
      if (c < 0x30 || c > 0x39) break;
      port = port * 10 + (c - 0x30);
      if (port > 65535) return undefined;
    }
    if (e === p) return undefined;
    i = e;
  }

  const params = build ? new Map<string, string | null>() : undefined;
  i = scanParams(b, s, i, end, params);
  if (i < 0 || skipWs(b, i, end) !== end) return undefined;
  if (params === undefined) return VALID;
  const via: Via = {
    protocol,
    transport:
      interned(TRANSPORT_TABLE, b, transportStart, transportEnd) ??
      s.slice(transportStart, transportEnd).toUpperCase(),
    host: s.slice(hostStart, hostEnd),
    params,
  };
  if (port !== -1) via.port = port;
  return via;
}

export function formatVia(v: Via): string {
  const port = v.port !== undefined ? ':' + v.port : '';
  return `${v.protocol}/${v.transport} ${v.host}${port}${formatParams(v.params)}`;
}

// ---------------------------------------------------------------------------
// CSeq (RFC 3261 20.16): 1*DIGIT LWS Method, the number below 2^31 for new
// requests but any value up to 2^32-1 is legal on receipt (RFC 3261 8.1.1.5).

export const MAX_CSEQ = 0xffffffff;

export function parseCSeq(s: string): CSeq | undefined {
  return parseCSeqIn(scratchCodes(s), s, 0, s.length);
}

/** parseCSeq(s.slice(start, end)), without the slice; `b` holds s's codes. @internal */
export function parseCSeqIn(b: Uint8Array, s: string, start: number, end: number): CSeq | undefined {
  const first = skipWs(b, start, end);
  let i = first;
  let seq = 0;
  for (; i < end; i++) {
    const c = b[i] as number;
    if (c < 0x30 || c > 0x39) break;
    seq = seq * 10 + (c - 0x30);
    if (seq > MAX_CSEQ) return undefined; // before it can grow imprecise (RFC 4475 3.1.2.4)
  }
  if (i === first) return undefined;
  const m = skipWs(b, i, end);
  if (m === i) return undefined;
  const e = scanToken(b, m, end);
  if (e === m || skipWs(b, e, end) !== end) return undefined;
  return { seq, method: s.slice(m, e) };
}
