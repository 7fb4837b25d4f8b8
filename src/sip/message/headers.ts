/**
 * Ordered, multi-valued SIP header fields (RFC 3261 section 7.3).
 *
 * Field order is kept exactly (Via, Route and Record-Route order is
 * significant, RFC 3261 7.3.1), names match case-insensitively, compact forms
 * expand, and known names get their canonical spelling (`Www-Authenticate` →
 * `WWW-Authenticate`, `Call-Id` → `Call-ID`, as RingCentral's edge varies them).
 *
 * Typed accessors (`vias()`, `topVia()`, `cseq()`, `from()`, `to()`,
 * `nameAddrs()`) parse on first use and memoize until the next mutation (the
 * parser hands over the top Via, CSeq, From and To it built while validating).
 * The objects they return are shared with that cache: read them, and clone
 * before changing them.
 */
import type { CSeq, NameAddr, Via } from './types.js';
import { isToken, parseCSeq, parseNameAddr, parseVia, trimWs } from './uri.js';

/** Compact forms (RFC 3261 7.3.3 and the extensions registered with IANA). */
const COMPACT: Readonly<Record<string, string>> = {
  a: 'Accept-Contact',
  b: 'Referred-By',
  c: 'Content-Type',
  d: 'Request-Disposition',
  e: 'Content-Encoding',
  f: 'From',
  i: 'Call-ID',
  j: 'Reject-Contact',
  k: 'Supported',
  l: 'Content-Length',
  m: 'Contact',
  n: 'Identity-Info',
  o: 'Event',
  r: 'Refer-To',
  s: 'Subject',
  t: 'To',
  u: 'Allow-Events',
  v: 'Via',
  x: 'Session-Expires',
  y: 'Identity',
};

const KNOWN_NAMES = [
  'Accept',
  'Accept-Contact',
  'Accept-Encoding',
  'Accept-Language',
  'Alert-Info',
  'Allow',
  'Allow-Events',
  'Authentication-Info',
  'Authorization',
  'Call-ID',
  'Call-Info',
  'Contact',
  'Content-Disposition',
  'Content-Encoding',
  'Content-Language',
  'Content-Length',
  'Content-Type',
  'CSeq',
  'Date',
  'Error-Info',
  'Event',
  'Expires',
  'From',
  'Identity',
  'Identity-Info',
  'In-Reply-To',
  'Max-Forwards',
  'MIME-Version',
  'Min-Expires',
  'Min-SE',
  'Organization',
  'P-Asserted-Identity',
  'P-Preferred-Identity',
  'Path',
  'Priority',
  'Privacy',
  'Proxy-Authenticate',
  'Proxy-Authorization',
  'Proxy-Require',
  'RAck',
  'Reason',
  'Record-Route',
  'Refer-To',
  'Referred-By',
  'Reject-Contact',
  'Replaces',
  'Reply-To',
  'Request-Disposition',
  'Require',
  'Retry-After',
  'Route',
  'RSeq',
  'Security-Client',
  'Security-Server',
  'Security-Verify',
  'Server',
  'Service-Route',
  'Session-Expires',
  'SIP-ETag',
  'SIP-If-Match',
  'Subject',
  'Subscription-State',
  'Supported',
  'Timestamp',
  'To',
  'Unsupported',
  'User-Agent',
  'Via',
  'Warning',
  'WWW-Authenticate',
];

/**
 * Headers whose values are comma-separated lists (`#element` in the RFC 3261
 * grammar), keyed by lowercased canonical name. WWW-Authenticate,
 * Authorization and Proxy-* are deliberately absent (digest parameters contain
 * commas), and so is Date (`Sat, 13 Nov 2010 …`).
 */
const LIST_HEADERS = new Set(
  [
    'Via',
    'Route',
    'Record-Route',
    'Contact',
    'Allow',
    'Supported',
    'Require',
    'Proxy-Require',
    'Unsupported',
    'Accept',
    'Accept-Encoding',
    'Accept-Language',
    'Allow-Events',
    'Content-Encoding',
    'Content-Language',
    'Path',
    'Service-Route',
    'Warning',
    'In-Reply-To',
    'Alert-Info',
    'Call-Info',
    'Error-Info',
    'P-Asserted-Identity',
    'Reason',
  ].map((n) => n.toLowerCase()),
);

/** @internal */
export interface Spelling {
  /** Canonical name (or the spelling itself for an unknown header). */
  readonly name: string;
  /** Lowercased canonical name: the matching key. */
  readonly key: string;
  /** Index in KNOWN_NAMES, or UNKNOWN_HEADER. */
  readonly id: number;
  /** `name: `, what a serialized field starts with. */
  readonly prefix: string;
}

function newSpelling(name: string, key: string, id: number): Spelling {
  return { name, key, id, prefix: name + ': ' };
}

/** headerId() of a name that is not in KNOWN_NAMES. @internal */
export const UNKNOWN_HEADER = -1;
/** appendParsedField() of a name that is not a token. @internal */
export const INVALID_HEADER_NAME = -2;

/** Any spelling we may meet (canonical, lowercased, compact) → its canonical name and key. */
const SPELLINGS = new Map<string, Spelling>();
for (const [id, name] of KNOWN_NAMES.entries()) {
  const entry = newSpelling(name, name.toLowerCase(), id);
  SPELLINGS.set(name, entry);
  SPELLINGS.set(entry.key, entry);
}
for (const [compact, name] of Object.entries(COMPACT)) {
  const entry = SPELLINGS.get(name) ?? newSpelling(name, name.toLowerCase(), UNKNOWN_HEADER);
  SPELLINGS.set(compact, entry);
  SPELLINGS.set(compact.toUpperCase(), entry);
}

/** Number of known header names: every headerId() is below it. @internal */
export const KNOWN_HEADER_COUNT = KNOWN_NAMES.length;

/**
 * Unknown spellings seen on the wire, memoized by exact spelling only (so that
 * `x-foo` learned first never changes how `X-Foo` is spelled), and only this
 * many of them, since peers choose them.
 */
const LEARNED = new Map<string, Spelling>();
const MAX_LEARNED_SPELLINGS = 1024;

/**
 * Resolves a spelling. Only the parser asks to `learn`, after checking that
 * the name is a token, so every learned spelling is a valid header name.
 */
function spelling(name: string, learn = false): Spelling {
  const exact = SPELLINGS.get(name) ?? LEARNED.get(name);
  if (exact !== undefined) return exact;
  const lower = name.toLowerCase();
  const known = SPELLINGS.get(lower);
  if (known !== undefined) return known;
  const entry = newSpelling(name, lower, UNKNOWN_HEADER);
  if (learn && LEARNED.size < MAX_LEARNED_SPELLINGS) LEARNED.set(name, entry);
  return entry;
}

/**
 * The parser's lookup: spellings by length and first letter, compared byte by
 * byte with the header section's codes (uri.ts), so a field name is neither
 * sliced out nor hashed. Holds every spelling above, plus (bounded, as peers
 * choose them) each new spelling the parser resolved: `Call-Id` → Call-ID, an
 * unknown `p-rc-api-ids` → itself.
 */
const WIRE_MAX_LENGTH = 48;
const WIRE: Array<Array<Uint8Array | Spelling> | undefined> = Array.from(
  { length: (WIRE_MAX_LENGTH + 1) * 128 },
  () => undefined,
);
let wireLearned = 0;

function wireSlot(length: number, first: number): number {
  return length > WIRE_MAX_LENGTH || first >= 128
    ? -1
    : length * 128 + (first >= 0x41 && first <= 0x5a ? first | 0x20 : first);
}

function addWireSpelling(name: string, entry: Spelling): void {
  const slot = wireSlot(name.length, name.charCodeAt(0));
  if (slot < 0) return;
  let bucket = WIRE[slot];
  if (bucket === undefined) WIRE[slot] = bucket = [];
  // Header names are tokens: ASCII, one byte per character.
  bucket.push(Buffer.from(name, 'latin1'), entry);
}
for (const [name, entry] of SPELLINGS) addWireSpelling(name, entry);

/** The entry whose exact spelling the codes b[start, end) hold, if the parser has met it. */
function findWireSpelling(b: Uint8Array, start: number, end: number): Spelling | undefined {
  const length = end - start;
  const slot = length === 0 ? -1 : wireSlot(length, b[start] as number);
  const bucket = slot < 0 ? undefined : WIRE[slot];
  if (bucket === undefined) return undefined;
  next: for (let i = 0; i < bucket.length; i += 2) {
    const spelling = bucket[i] as Uint8Array;
    for (let k = 0; k < length; k++) if (b[start + k] !== spelling[k]) continue next;
    return bucket[i + 1] as Spelling;
  }
  return undefined;
}

function keyOf(name: string): string {
  return spelling(name).key;
}

/** A small integer per known header name, whatever the spelling (the parser's tables), else UNKNOWN_HEADER. @internal */
export function headerId(name: string): number {
  return spelling(name).id;
}

/**
 * Canonical spelling of a header name: compact forms expand and known names
 * are spelled as in their RFC; unknown names keep the spelling given.
 */
export function canonicalHeaderName(name: string): string {
  return spelling(name).name;
}

/** True when `name` is a list header whose values getAll() splits at commas. */
export function isListHeader(name: string): boolean {
  return LIST_HEADERS.has(keyOf(name));
}

/**
 * Splits a header value at top-level commas: not inside "quoted strings"
 * (which may contain escaped quotes) and not inside <angle brackets> (a URI
 * may contain commas, RFC 4475 3.1.1.2). Elements are trimmed; empty elements
 * are kept so that a validator can reject `Via: a,,b` (RFC 4475 3.1.2.1).
 */
export function splitHeaderList(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let inQuote = false;
  let inAngle = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (inQuote) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inQuote = false;
    } else if (c === 0x22) inQuote = true;
    else if (c === 0x3c) inAngle = true;
    else if (c === 0x3e) inAngle = false;
    else if (c === 0x2c && !inAngle) {
      out.push(trimWs(value.slice(start, i)));
      start = i + 1;
    }
  }
  out.push(trimWs(value.slice(start)));
  return out;
}

function assertField(name: string, value: string): void {
  // Header names are tokens and values never contain CR/LF: anything else would
  // let a value smuggle extra header lines into a serialized message.
  if (!isToken(name)) throw new TypeError(`Invalid SIP header name: ${JSON.stringify(name)}`);
  if (value.indexOf('\r') !== -1 || value.indexOf('\n') !== -1) {
    throw new TypeError(`SIP header ${name} value contains CR or LF`);
  }
}

/** Marks a typed value that has not been computed since the last mutation. */
const UNSET: unique symbol = Symbol('unset');
type Memo<T> = T | typeof UNSET;

// The parser and the serializer reach Headers' private fields through these
// functions, assigned in its static block: they are not part of its API.

type TrustedAppend = (
  h: Headers,
  codes: Uint8Array,
  text: string,
  nameStart: number,
  nameEnd: number,
  value: string,
) => number;
type PrimeParsed = (h: Headers, topVia: Via, cseq: CSeq, from: NameAddr, to: NameAddr) => void;
let trustedAppend: TrustedAppend | undefined;
let prime: PrimeParsed | undefined;
let fields: ((h: Headers) => HeaderFields) | undefined;
let markNotAscii: ((h: Headers) => void) | undefined;

/**
 * A Headers for the parser: `ascii` says whether every value it will append
 * is ASCII (the parser knows it of the whole header section).
 * @internal
 */
export function parsedHeaders(ascii: boolean): Headers {
  const h = new Headers();
  if (!ascii) (markNotAscii as (h: Headers) => void)(h);
  return h;
}

/**
 * Parser fast path: appends the field named text[nameStart, nameEnd) (whose
 * codes are in `codes`, uri.ts) with a value the parser split at CRLF (so it
 * holds no CR/LF) to Headers the parser just made (nothing memoized yet).
 * Returns the name's headerId(), or INVALID_HEADER_NAME, appending nothing,
 * when the name is not a token. Spellings met before skip the token check.
 * @internal
 */
export function appendParsedField(
  headers: Headers,
  codes: Uint8Array,
  text: string,
  nameStart: number,
  nameEnd: number,
  value: string,
): number {
  return (trustedAppend as TrustedAppend)(headers, codes, text, nameStart, nameEnd, value);
}

/**
 * The parser's typed values of the Headers it just made (built while
 * validating, from these very fields), memoized as if they had been read.
 * @internal
 */
export function primeParsedValues(h: Headers, topVia: Via, cseq: CSeq, from: NameAddr, to: NameAddr): void {
  (prime as PrimeParsed)(h, topVia, cseq, from, to);
}

/** A Headers' fields as stored, for the serializer. @internal */
export interface HeaderFields {
  readonly spellings: readonly Spelling[];
  readonly values: readonly string[];
  /** Every value is ASCII (the serializer may then take one character for one byte). */
  readonly ascii: boolean;
}

/** The fields of `h`, not copied: read them, never keep them. @internal */
export function headerFields(h: Headers): HeaderFields {
  return (fields as (h: Headers) => HeaderFields)(h);
}

const NON_ASCII = /[^\x00-\x7f]/;

export class Headers {
  /** Each field's name (canonical name, key), in field order. */
  #spellings: Spelling[] = [];
  #values: string[] = [];
  /** Every value is ASCII (names always are: they are tokens). */
  #ascii = true;
  // Memoized typed values; every mutation resets them.
  #vias: Memo<Via[] | undefined> = UNSET;
  #topVia: Memo<Via | undefined> = UNSET;
  #cseq: Memo<CSeq | undefined> = UNSET;
  #from: Memo<NameAddr | undefined> = UNSET;
  #to: Memo<NameAddr | undefined> = UNSET;
  #nameAddrs: Map<string, NameAddr[] | undefined> | undefined;

  static {
    fields = (h) => ({ spellings: h.#spellings, values: h.#values, ascii: h.#ascii });
    markNotAscii = (h) => {
      h.#ascii = false;
    };
    prime = (h, topVia, cseq, from, to) => {
      h.#topVia = topVia;
      h.#cseq = cseq;
      h.#from = from;
      h.#to = to;
    };
    trustedAppend = (h, codes, text, nameStart, nameEnd, value) => {
      let entry = findWireSpelling(codes, nameStart, nameEnd);
      if (entry === undefined) {
        const name = text.slice(nameStart, nameEnd);
        if (!isToken(name)) return INVALID_HEADER_NAME;
        entry = spelling(name, true);
        if (wireLearned < MAX_LEARNED_SPELLINGS) {
          wireLearned++;
          addWireSpelling(name, entry);
        }
      }
      h.#spellings.push(entry);
      h.#values.push(value);
      return entry.id;
    };
  }

  constructor(fields?: Iterable<readonly [string, string]>) {
    if (fields) for (const [name, value] of fields) this.append(name, value);
  }

  /** Number of header fields (lines). */
  get size(): number {
    return this.#spellings.length;
  }

  /** The first field's whole value. */
  get(name: string): string | undefined {
    return this.#first(keyOf(name));
  }

  #first(key: string): string | undefined {
    const spellings = this.#spellings;
    for (let i = 0; i < spellings.length; i++)
      if ((spellings[i] as Spelling).key === key) return this.#values[i];
    return undefined;
  }

  #indexOf(key: string): number {
    const spellings = this.#spellings;
    for (let i = 0; i < spellings.length; i++) if ((spellings[i] as Spelling).key === key) return i;
    return -1;
  }

  /**
   * For list headers, every non-empty comma-separated value across all fields
   * (split at top-level commas only), trimmed; for other headers each field's value.
   */
  getAll(name: string): string[] {
    const key = keyOf(name);
    const list = LIST_HEADERS.has(key);
    const out: string[] = [];
    const spellings = this.#spellings;
    for (let i = 0; i < spellings.length; i++) {
      if ((spellings[i] as Spelling).key !== key) continue;
      const value = this.#values[i] as string;
      if (!list) out.push(value);
      else if (value.indexOf(',') === -1) {
        if (value.length > 0) out.push(value);
      } else for (const part of splitHeaderList(value)) if (part.length > 0) out.push(part);
    }
    return out;
  }

  has(name: string): boolean {
    return this.#indexOf(keyOf(name)) !== -1;
  }

  /** Number of header fields (lines) with that name. */
  count(name: string): number {
    const key = keyOf(name);
    let n = 0;
    for (const entry of this.#spellings) if (entry.key === key) n++;
    return n;
  }

  /** Replaces all fields of that name with one, at the position of the first (or appends). */
  set(name: string, value: string): this {
    const entry = spelling(name);
    assertField(entry.name, value);
    const first = this.#indexOf(entry.key);
    if (first === -1) return this.append(name, value);
    this.#spellings[first] = entry;
    this.#values[first] = value;
    for (let i = this.#spellings.length - 1; i > first; i--) {
      if ((this.#spellings[i] as Spelling).key === entry.key) this.#removeAt(i);
    }
    this.#added(value);
    this.#changed();
    return this;
  }

  append(name: string, value: string): this {
    const entry = spelling(name);
    assertField(entry.name, value);
    this.#spellings.push(entry);
    this.#values.push(value);
    this.#added(value);
    this.#changed();
    return this;
  }

  prepend(name: string, value: string): this {
    const entry = spelling(name);
    assertField(entry.name, value);
    this.#spellings.unshift(entry);
    this.#values.unshift(value);
    this.#added(value);
    this.#changed();
    return this;
  }

  delete(name: string): this {
    const key = keyOf(name);
    for (let i = this.#spellings.length - 1; i >= 0; i--) {
      if ((this.#spellings[i] as Spelling).key === key) this.#removeAt(i);
    }
    this.#changed();
    return this;
  }

  /** [canonical name, value] for every field, in order. */
  *entries(): IterableIterator<[string, string]> {
    for (let i = 0; i < this.#spellings.length; i++) {
      yield [(this.#spellings[i] as Spelling).name, this.#values[i] as string];
    }
  }

  /** Calls `callback(value, name)` for every field in order (cheaper than entries()). */
  forEach(callback: (value: string, name: string) => void): void {
    const spellings = this.#spellings;
    const values = this.#values;
    for (let i = 0; i < spellings.length; i++) callback(values[i] as string, (spellings[i] as Spelling).name);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  clone(): Headers {
    const copy = new Headers();
    copy.#spellings = this.#spellings.slice();
    copy.#values = this.#values.slice();
    copy.#ascii = this.#ascii;
    return copy;
  }

  // -- typed, memoized accessors ---------------------------------------------

  /** Every Via value in order ([] when there is none), or undefined if any is malformed. */
  vias(): Via[] | undefined {
    if (this.#vias !== UNSET) return this.#vias;
    let out: Via[] | undefined = [];
    const values = this.#listValues('via');
    for (let i = 0; i < values.length; i++) {
      // The top one is often known already (the parser builds it).
      const via = i === 0 && this.#topVia !== UNSET ? this.#topVia : parseVia(values[i] as string);
      if (via === undefined) {
        out = undefined;
        break;
      }
      out.push(via);
    }
    this.#vias = out;
    return out;
  }

  /** The topmost Via (the one a response is routed by, RFC 3261 18.2.2); parses only that one. */
  topVia(): Via | undefined {
    if (this.#topVia !== UNSET) return this.#topVia;
    let top: Via | undefined;
    if (this.#vias !== UNSET) top = this.#vias?.[0];
    else {
      const first = this.#first('via');
      const value = first === undefined || first.indexOf(',') === -1 ? first : splitHeaderList(first)[0];
      top = value === undefined ? undefined : parseVia(value);
    }
    this.#topVia = top;
    return top;
  }

  cseq(): CSeq | undefined {
    if (this.#cseq !== UNSET) return this.#cseq;
    const value = this.#first('cseq');
    this.#cseq = value === undefined ? undefined : parseCSeq(value);
    return this.#cseq;
  }

  from(): NameAddr | undefined {
    if (this.#from !== UNSET) return this.#from;
    const value = this.#first('from');
    this.#from = value === undefined ? undefined : parseNameAddr(value);
    return this.#from;
  }

  to(): NameAddr | undefined {
    if (this.#to !== UNSET) return this.#to;
    const value = this.#first('to');
    this.#to = value === undefined ? undefined : parseNameAddr(value);
    return this.#to;
  }

  callId(): string | undefined {
    return this.#first('call-id');
  }

  /**
   * Contact, Route, Record-Route, Path, … values as NameAddrs in order ([] when
   * absent), or undefined if any value is malformed (including `Contact: *`).
   */
  nameAddrs(name: string): NameAddr[] | undefined {
    const key = keyOf(name);
    const cached = this.#nameAddrs?.get(key);
    if (cached !== undefined || this.#nameAddrs?.has(key)) return cached;
    let out: NameAddr[] | undefined = [];
    for (const value of this.#listValues(key)) {
      const na = parseNameAddr(value);
      if (na === undefined) {
        out = undefined;
        break;
      }
      out.push(na);
    }
    this.#nameAddrs ??= new Map();
    this.#nameAddrs.set(key, out);
    return out;
  }

  /** All values of a list header including empty elements (for validation). */
  #listValues(key: string): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.#spellings.length; i++) {
      if ((this.#spellings[i] as Spelling).key !== key) continue;
      const value = this.#values[i] as string;
      if (value.indexOf(',') === -1) out.push(value);
      else out.push(...splitHeaderList(value));
    }
    return out;
  }

  #added(value: string): void {
    if (this.#ascii && NON_ASCII.test(value)) this.#ascii = false;
  }

  #changed(): void {
    if (this.#vias !== UNSET) this.#vias = UNSET;
    if (this.#topVia !== UNSET) this.#topVia = UNSET;
    if (this.#cseq !== UNSET) this.#cseq = UNSET;
    if (this.#from !== UNSET) this.#from = UNSET;
    if (this.#to !== UNSET) this.#to = UNSET;
    if (this.#nameAddrs !== undefined) this.#nameAddrs = undefined;
  }

  #removeAt(i: number): void {
    this.#spellings.splice(i, 1);
    this.#values.splice(i, 1);
  }
}
