/**
 * The exact scanners that were src/sip/message/uri.ts's reference grammar
 * until the single-pass scanners replaced them (kept verbatim, frozen): the
 * oracle of the differential tests. Whatever parseUri, parseNameAddr and
 * parseVia return must equal what these return, for any input.
 */
import type { NameAddr, OtherUri, SipUri, Uri, Via } from '../../../src/sip/message/types.js';

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function charTable(chars: string): Uint8Array {
  const table = new Uint8Array(128);
  for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1;
  return table;
}

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
const TOKEN = charTable(ALNUM + "-.!%*_+`'~");

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

function isTokenChar(c: number): boolean {
  return c < 128 && TOKEN[c] === 1;
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

/**
 * Parses 1*DIGIT into a number no larger than `max`, or undefined. Over-long
 * digit strings are rejected before Number() so that values such as
 * 36893488147419103232 (RFC 4475 3.1.2.4) never turn into imprecise floats.
 */
function parseBoundedInt(s: string, max: number): number | undefined {
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
function unescapeUriComponent(s: string): string {
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

function collapseWs(s: string): string {
  return s.indexOf(' ') === -1 && s.indexOf('\t') === -1 ? s : s.split(/[ \t]+/).join(' ');
}

function hasForbiddenUriChar(s: string): boolean {
  // Whitespace, controls and the delimiters that end a URI inside a header
  // field can never be part of one (RFC 4475 3.1.2.7, 3.1.2.8, 3.1.2.14).
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= SP || c === 0x7f || c === LT || c === GT || c === DQUOTE) return true;
  }
  return false;
}

/** Reference for parseUri. */
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

/** Reference for parseNameAddr. */
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

/** Reference for parseVia. */
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
