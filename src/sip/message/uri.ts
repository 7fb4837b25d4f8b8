/**
 * SIP URIs, name-addr / addr-spec values, Via, CSeq and generic parameters
 * (RFC 3261 sections 19.1, 20.10, 20.42, 25.1).
 *
 * Everything here is a hand-written scanner over a string (no backtracking
 * regexes) that returns `undefined` on malformed input instead of throwing.
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

function skipWs(s: string, i: number): number {
  while (i < s.length && isWs(s.charCodeAt(i))) i++;
  return i;
}

function scanToken(s: string, i: number): number {
  while (i < s.length && isTokenChar(s.charCodeAt(i))) i++;
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
 * after the closing DQUOTE, or -1 when it is unterminated.
 */
function scanQuoted(s: string, i: number): number {
  let j = i + 1;
  while (j < s.length) {
    const c = s.charCodeAt(j);
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

// ---------------------------------------------------------------------------
// Fast paths. The common shapes (what RingCentral and Kamailio send) are
// matched by one linear regex each; the patterns are deliberately narrower
// than the grammar (no whitespace, no quoted-pair surprises, no `;`/`?` in
// the user part, no URI headers) so that whatever they accept, the exact
// scanners below accept with the same result. Anything else falls through to
// the scanners. The differential fuzz test checks this equivalence.

const TOKEN_CLASS = "A-Za-z0-9\\-.!%*_+`'~";
/** isValueChar as a class: anything above SP except DEL ; , " < > */
const VALUE_CLASS = '^\\x00-\\x20\\x7f;,"<>';
const PARAM_CLASS = "A-Za-z0-9\\-_.!~*'()\\[\\]/:&+$%";
const QUOTED = '"(?:[^"\\\\]|\\\\.)*"';
const GENERIC_PARAMS = `((?:;[${TOKEN_CLASS}]+(?:=(?:[${VALUE_CLASS}]+|${QUOTED}))?)*)`;

/** sip:/sips: with optional user[:password]@, host or [IPv6], port, uri-parameters. */
const SIP_URI_FAST = new RegExp(
  "^(sips?):(?:([A-Za-z0-9\\-_.!~*'()&=+$,/%]+)(?::([A-Za-z0-9\\-_.!~*'()&=+$,%]*))?@)?" +
    '([A-Za-z0-9._-]+|\\[[0-9A-Fa-f:.]+\\])(?::([0-9]{1,5}))?' +
    `((?:;[${PARAM_CLASS}]+(?:=[${PARAM_CLASS}]*)?)*)$`,
);

function sipUriFromMatch(m: RegExpExecArray): SipUri | undefined {
  const [, scheme, user, password, host, portText, paramText] = m;
  const params = new Map<string, string | null>();
  if (paramText !== undefined && paramText.length > 0) {
    const parts = paramText.split(';');
    for (let i = 1; i < parts.length; i++) {
      const part = parts[i] as string;
      const eq = part.indexOf('=');
      const name = unescapeUriComponent(eq === -1 ? part : part.slice(0, eq)).toLowerCase();
      if (!params.has(name)) params.set(name, eq === -1 ? null : unescapeUriComponent(part.slice(eq + 1)));
    }
  }
  const uri: SipUri = { scheme: scheme as 'sip' | 'sips', host: host as string, params, headers: new Map() };
  if (user !== undefined) uri.user = unescapeUriComponent(user);
  if (password !== undefined) uri.password = unescapeUriComponent(password);
  if (portText !== undefined) {
    const port = Number(portText);
    if (port > 65535) return undefined;
    uri.port = port;
  }
  return uri;
}

/** "Quoted" or token display name, <URI>, header parameters. */
const NAME_ADDR_FAST = new RegExp(
  `^(?:"((?:[^"\\\\]|\\\\.)*)"|([${TOKEN_CLASS}]+(?:[ \\t]+[${TOKEN_CLASS}]+)*))?[ \\t]*` +
    `<([^\\x00-\\x20\\x7f<>"]+)>${GENERIC_PARAMS}$`,
);

function nameAddrFromMatch(s: string, m: RegExpExecArray): NameAddr | undefined {
  const [, quoted, tokens, uriText, paramText] = m;
  const uri = parseUri(uriText as string);
  if (uri === undefined) return undefined;
  const params = new Map<string, string | null>();
  if (paramText !== undefined && paramText.length > 0) {
    if (scanParams(s, s.length - paramText.length, params) !== s.length) return undefined;
  }
  const result: NameAddr = { uri, params };
  if (quoted !== undefined) result.displayName = unescapeQuotedContent(quoted);
  else if (tokens !== undefined) result.displayName = collapseWs(tokens);
  return result;
}

/** SIP/2.0/TRANSPORT host[:port] params, with no optional whitespace anywhere. */
const VIA_FAST = new RegExp(
  `^SIP/2\\.0/([A-Z]+) ([A-Za-z0-9._-]+|\\[[0-9A-Fa-f:.]+\\])(?::([0-9]{1,5}))?${GENERIC_PARAMS}$`,
);

function viaFromMatch(s: string, m: RegExpExecArray): Via | undefined {
  const [, transport, host, portText, paramText] = m;
  const params = new Map<string, string | null>();
  if (paramText !== undefined && paramText.length > 0) {
    if (paramText.indexOf('"') === -1) {
      const parts = paramText.split(';');
      for (let i = 1; i < parts.length; i++) {
        const part = parts[i] as string;
        const eq = part.indexOf('=');
        const name = (eq === -1 ? part : part.slice(0, eq)).toLowerCase();
        if (!params.has(name)) params.set(name, eq === -1 ? null : part.slice(eq + 1));
      }
    } else if (scanParams(s, s.length - paramText.length, params) !== s.length) return undefined;
  }
  const via: Via = { protocol: 'SIP/2.0', transport: transport as string, host: host as string, params };
  if (portText !== undefined) {
    const port = Number(portText);
    if (port > 65535) return undefined;
    via.port = port;
  }
  return via;
}

function collapseWs(s: string): string {
  return s.indexOf(' ') === -1 && s.indexOf('\t') === -1 ? s : s.split(/[ \t]+/).join(' ');
}

// ---------------------------------------------------------------------------
// URIs (RFC 3261 19.1)

function hasForbiddenUriChar(s: string): boolean {
  // Whitespace, controls and the delimiters that end a URI inside a header
  // field can never be part of one (RFC 4475 3.1.2.7, 3.1.2.8, 3.1.2.14).
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= SP || c === 0x7f || c === LT || c === GT || c === DQUOTE) return true;
  }
  return false;
}

/**
 * Parses a URI. sip:/sips: URIs are parsed into their parts, any other
 * well-formed `scheme:rest` is returned as an OtherUri (the UA, not the parser,
 * answers 416 for schemes it does not support; RFC 4475 3.3.2).
 */
export function parseUri(s: string): Uri | undefined {
  const fast = SIP_URI_FAST.exec(s);
  if (fast !== null) {
    const uri = sipUriFromMatch(fast);
    if (uri !== undefined) return uri;
  }
  return parseUriSlow(s);
}

/** The exact scanner behind parseUri (exported for the differential tests). @internal */
export function parseUriSlow(s: string): Uri | undefined {
  const colon = s.indexOf(':');
  if (colon <= 0 || hasForbiddenUriChar(s)) return undefined;
  const c0 = s.charCodeAt(0);
  if (!((c0 >= 0x41 && c0 <= 0x5a) || (c0 >= 0x61 && c0 <= 0x7a))) return undefined;
  for (let i = 1; i < colon; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || SCHEME_CHARS[c] !== 1) return undefined;
  }
  const scheme = s.slice(0, colon).toLowerCase();
  if (scheme === 'sip' || scheme === 'sips') return parseSipUri(s, colon + 1, scheme);
  if (colon + 1 >= s.length) return undefined;
  const other: OtherUri = { scheme, opaque: s.slice(colon + 1) };
  return other;
}

function parseSipUri(s: string, start: number, scheme: 'sip' | 'sips'): SipUri | undefined {
  const n = s.length;
  let user: string | undefined;
  let password: string | undefined;
  let i = start;
  // `@` cannot appear unescaped after the userinfo (not in hostport, params or
  // headers), so the first one ends the userinfo; the user part itself may
  // contain `;`, `?` and `/` (RFC 4475 3.1.1.2, 3.1.1.9).
  const at = s.indexOf('@', start);
  if (at !== -1) {
    const pc = s.indexOf(':', start);
    const userEnd = pc !== -1 && pc < at ? pc : at;
    if (userEnd === start) return undefined;
    user = unescapeUriComponent(s.slice(start, userEnd));
    if (userEnd < at) password = unescapeUriComponent(s.slice(userEnd + 1, at));
    i = at + 1;
  }

  let host: string;
  if (s.charCodeAt(i) === LBRACKET) {
    const close = s.indexOf(']', i);
    if (close === -1 || close === i + 1) return undefined;
    for (let k = i + 1; k < close; k++) {
      const c = s.charCodeAt(k);
      if (c >= 128 || IPV6_CHARS[c] !== 1) return undefined;
    }
    host = s.slice(i, close + 1);
    i = close + 1;
  } else {
    const h = i;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === COLON || c === SEMI || c === QUESTION) break;
      if (c >= 128 || HOST_CHARS[c] !== 1) return undefined;
      i++;
    }
    if (i === h) return undefined;
    host = s.slice(h, i);
  }

  let port: number | undefined;
  if (i < n && s.charCodeAt(i) === COLON) {
    const p = i + 1;
    i = p;
    while (i < n && s.charCodeAt(i) !== SEMI && s.charCodeAt(i) !== QUESTION) i++;
    port = parseBoundedInt(s.slice(p, i), 65535);
    if (port === undefined) return undefined;
  }

  const params = new Map<string, string | null>();
  while (i < n && s.charCodeAt(i) === SEMI) {
    const p = i + 1;
    i = p;
    while (i < n && s.charCodeAt(i) !== SEMI && s.charCodeAt(i) !== QUESTION) i++;
    const seg = s.slice(p, i);
    const eq = seg.indexOf('=');
    const rawName = eq === -1 ? seg : seg.slice(0, eq);
    if (rawName.length === 0) return undefined; // `;;` or `;=x`
    const name = unescapeUriComponent(rawName).toLowerCase();
    if (!params.has(name)) params.set(name, eq === -1 ? null : unescapeUriComponent(seg.slice(eq + 1)));
  }

  const headers = new Map<string, string>();
  if (i < n && s.charCodeAt(i) === QUESTION) {
    // headers = "?" header *( "&" header ); header = hname "=" hvalue
    for (const h of s.slice(i + 1).split('&')) {
      const eq = h.indexOf('=');
      if (eq <= 0) return undefined;
      headers.set(unescapeUriComponent(h.slice(0, eq)), unescapeUriComponent(h.slice(eq + 1)));
    }
    i = n;
  }
  if (i !== n) return undefined;

  const uri: SipUri = { scheme, host, params, headers };
  if (user !== undefined) uri.user = user;
  if (password !== undefined) uri.password = password;
  if (port !== undefined) uri.port = port;
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
 * Strictly parses `*( SEMI param )` from index i into `out` (raw values, see
 * the file comment). Returns the index after the last parameter, or -1 on a
 * malformed parameter (empty name as in `;;`, `name=` without a value,
 * unterminated quoted value).
 */
function scanParams(s: string, i: number, out: Map<string, string | null>): number {
  const n = s.length;
  for (;;) {
    const k = skipWs(s, i);
    if (k >= n || s.charCodeAt(k) !== SEMI) return i;
    const nameStart = skipWs(s, k + 1);
    const nameEnd = scanToken(s, nameStart);
    if (nameEnd === nameStart) return -1;
    const name = s.slice(nameStart, nameEnd).toLowerCase();
    let value: string | null = null;
    i = nameEnd;
    const e = skipWs(s, nameEnd);
    if (e < n && s.charCodeAt(e) === EQUALS) {
      const v = skipWs(s, e + 1);
      if (v < n && s.charCodeAt(v) === DQUOTE) {
        const end = scanQuoted(s, v);
        if (end < 0) return -1;
        value = s.slice(v, end);
        i = end;
      } else {
        let end = v;
        while (end < n && isValueChar(s.charCodeAt(end))) end++;
        if (end === v) return -1;
        value = s.slice(v, end);
        i = end;
      }
    }
    if (!out.has(name)) out.set(name, value);
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
  const fast = NAME_ADDR_FAST.exec(s);
  if (fast !== null) {
    const na = nameAddrFromMatch(s, fast);
    if (na !== undefined) return na;
  }
  return parseNameAddrSlow(s);
}

/** The exact scanner behind parseNameAddr (exported for the differential tests). @internal */
export function parseNameAddrSlow(s: string): NameAddr | undefined {
  const n = s.length;
  let i = skipWs(s, 0);
  if (i >= n) return undefined;
  let displayName: string | undefined;
  let uriText: string;

  let lt = -1;
  const c0 = s.charCodeAt(i);
  if (c0 === DQUOTE) {
    const end = scanQuoted(s, i);
    if (end < 0) return undefined; // RFC 4475 3.1.2.6
    displayName = unescapeQuotedContent(s.slice(i + 1, end - 1));
    lt = skipWs(s, end);
    if (lt >= n || s.charCodeAt(lt) !== LT) return undefined;
  } else if (c0 === LT) {
    lt = i;
  } else {
    // display-name = *(token LWS): only tokens and whitespace before `<`.
    let j = i;
    let sawSpace = false;
    let lastTokenEnd = i;
    while (j < n) {
      const c = s.charCodeAt(j);
      if (isTokenChar(c)) {
        j++;
        lastTokenEnd = j;
      } else if (isWs(c)) {
        sawSpace = true;
        j++;
      } else break;
    }
    if (j < n && s.charCodeAt(j) === LT) {
      lt = j;
      const raw = s.slice(i, lastTokenEnd);
      displayName = sawSpace ? collapseWs(raw) : raw;
    }
  }

  if (lt >= 0) {
    const gt = s.indexOf('>', lt + 1);
    if (gt === -1) return undefined;
    uriText = s.slice(lt + 1, gt);
    i = gt + 1;
  } else {
    let j = i;
    while (j < n) {
      const c = s.charCodeAt(j);
      if (c === SEMI || isWs(c)) break;
      if (c === COMMA || c === QUESTION) return undefined; // must be in <> (RFC 3261 20.10)
      j++;
    }
    uriText = s.slice(i, j);
    i = j;
  }

  const uri = parseUriSlow(uriText);
  if (uri === undefined) return undefined;
  const params = new Map<string, string | null>();
  i = scanParams(s, i, params);
  if (i < 0 || skipWs(s, i) !== n) return undefined;
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
  const fast = VIA_FAST.exec(s);
  if (fast !== null) {
    const via = viaFromMatch(s, fast);
    if (via !== undefined) return via;
  }
  return parseViaSlow(s);
}

/** The exact scanner behind parseVia (exported for the differential tests). @internal */
export function parseViaSlow(s: string): Via | undefined {
  const n = s.length;
  let i = skipWs(s, 0);
  // sent-protocol = protocol-name SLASH protocol-version SLASH transport, SLASH = SWS "/" SWS
  const nameStart = i;
  i = scanToken(s, i);
  if (i === nameStart) return undefined;
  const protocolName = s.slice(nameStart, i);
  i = skipWs(s, i);
  if (s.charCodeAt(i) !== SLASH) return undefined;
  const versionStart = skipWs(s, i + 1);
  i = scanToken(s, versionStart);
  if (i === versionStart) return undefined;
  const version = s.slice(versionStart, i);
  i = skipWs(s, i);
  if (s.charCodeAt(i) !== SLASH) return undefined;
  const transportStart = skipWs(s, i + 1);
  i = scanToken(s, transportStart);
  if (i === transportStart) return undefined;
  const transport = s.slice(transportStart, i).toUpperCase();
  const hostStart = skipWs(s, i);
  if (hostStart === i) return undefined; // LWS is required before sent-by
  i = hostStart;

  let host: string;
  if (s.charCodeAt(i) === LBRACKET) {
    const close = s.indexOf(']', i);
    if (close === -1 || close === i + 1) return undefined;
    for (let k = i + 1; k < close; k++) {
      const c = s.charCodeAt(k);
      if (c >= 128 || IPV6_CHARS[c] !== 1) return undefined;
    }
    host = s.slice(i, close + 1);
    i = close + 1;
  } else {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c >= 128 || HOST_CHARS[c] !== 1) break;
      i++;
    }
    if (i === hostStart) return undefined;
    host = s.slice(hostStart, i);
  }

  let port: number | undefined;
  const k = skipWs(s, i);
  if (k < n && s.charCodeAt(k) === COLON) {
    const p = skipWs(s, k + 1);
    let e = p;
    while (e < n && s.charCodeAt(e) >= 0x30 && s.charCodeAt(e) <= 0x39) e++;
    port = parseBoundedInt(s.slice(p, e), 65535);
    if (port === undefined) return undefined;
    i = e;
  }

  const params = new Map<string, string | null>();
  i = scanParams(s, i, params);
  if (i < 0 || skipWs(s, i) !== n) return undefined;
  const via: Via = { protocol: `${protocolName}/${version}`, transport, host, params };
  if (port !== undefined) via.port = port;
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
  const n = s.length;
  const start = skipWs(s, 0);
  let i = start;
  while (i < n && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
  const seq = parseBoundedInt(s.slice(start, i), MAX_CSEQ);
  if (seq === undefined) return undefined;
  const m = skipWs(s, i);
  if (m === i) return undefined;
  const e = scanToken(s, m);
  if (e === m || skipWs(s, e) !== n) return undefined;
  return { seq, method: s.slice(m, e) };
}
