/**
 * Building responses and fresh identifiers (RFC 3261 sections 8.1.1, 8.2.6).
 */
import { randomBytes } from 'node:crypto';
import { Headers } from './headers.js';
import { toWellFormed } from './text.js';
import type { SipRequest, SipResponse } from './types.js';
import { isToken, parseNameAddr } from './uri.js';

/** Reason phrases of RFC 3261 section 21 and the common extension codes. */
const REASONS: ReadonlyMap<number, string> = new Map([
  [100, 'Trying'],
  [180, 'Ringing'],
  [181, 'Call Is Being Forwarded'],
  [182, 'Queued'],
  [183, 'Session Progress'],
  [199, 'Early Dialog Terminated'],
  [200, 'OK'],
  [202, 'Accepted'],
  [204, 'No Notification'],
  [300, 'Multiple Choices'],
  [301, 'Moved Permanently'],
  [302, 'Moved Temporarily'],
  [305, 'Use Proxy'],
  [380, 'Alternative Service'],
  [400, 'Bad Request'],
  [401, 'Unauthorized'],
  [402, 'Payment Required'],
  [403, 'Forbidden'],
  [404, 'Not Found'],
  [405, 'Method Not Allowed'],
  [406, 'Not Acceptable'],
  [407, 'Proxy Authentication Required'],
  [408, 'Request Timeout'],
  [410, 'Gone'],
  [412, 'Conditional Request Failed'],
  [413, 'Request Entity Too Large'],
  [414, 'Request-URI Too Long'],
  [415, 'Unsupported Media Type'],
  [416, 'Unsupported URI Scheme'],
  [417, 'Unknown Resource-Priority'],
  [420, 'Bad Extension'],
  [421, 'Extension Required'],
  [422, 'Session Interval Too Small'],
  [423, 'Interval Too Brief'],
  [428, 'Use Identity Header'],
  [429, 'Provide Referrer Identity'],
  [430, 'Flow Failed'],
  [433, 'Anonymity Disallowed'],
  [436, 'Bad Identity-Info'],
  [437, 'Unsupported Certificate'],
  [438, 'Invalid Identity Header'],
  [439, 'First Hop Lacks Outbound Support'],
  [440, 'Max-Breadth Exceeded'],
  [469, 'Bad Info Package'],
  [470, 'Consent Needed'],
  [480, 'Temporarily Unavailable'],
  [481, 'Call/Transaction Does Not Exist'],
  [482, 'Loop Detected'],
  [483, 'Too Many Hops'],
  [484, 'Address Incomplete'],
  [485, 'Ambiguous'],
  [486, 'Busy Here'],
  [487, 'Request Terminated'],
  [488, 'Not Acceptable Here'],
  [489, 'Bad Event'],
  [491, 'Request Pending'],
  [493, 'Undecipherable'],
  [494, 'Security Agreement Required'],
  [500, 'Server Internal Error'],
  [501, 'Not Implemented'],
  [502, 'Bad Gateway'],
  [503, 'Service Unavailable'],
  [504, 'Server Time-out'],
  [505, 'Version Not Supported'],
  [513, 'Message Too Large'],
  [555, 'Push Notification Service Not Supported'],
  [580, 'Precondition Failure'],
  [600, 'Busy Everywhere'],
  [603, 'Decline'],
  [604, 'Does Not Exist Anywhere'],
  [606, 'Not Acceptable'],
  [607, 'Unwanted'],
  [608, 'Rejected'],
]);

/** The standard reason phrase for a status code, or 'Unknown'. */
export function reasonPhrase(status: number): string {
  return REASONS.get(status) ?? 'Unknown';
}

/** A Via branch with the RFC 3261 magic cookie (section 8.1.1.7), 96 random bits. */
export function generateBranch(): string {
  return 'z9hG4bK' + randomBytes(12).toString('base64url');
}

/** A From/To tag: at least 32 bits of randomness required (RFC 3261 19.3); we use 64. */
export function generateTag(): string {
  return randomBytes(8).toString('base64url');
}

/** A globally unique Call-ID (RFC 3261 8.1.1.4): 128 random bits. */
export function generateCallId(): string {
  return randomBytes(16).toString('hex');
}

/** Our warn-agent (RFC 3261 20.43 allows a pseudonym): stable, and no internal address leaks. */
export const WARN_AGENT = 'rc-softphone';

/**
 * A Warning header value, `warn-code SP warn-agent SP warn-text` (RFC 3261
 * 20.43): the text becomes a quoted-string, so commas in it cannot split the
 * header into list elements; quotes and backslashes are escaped.
 */
export function warningHeader(code: number, text: string): string {
  const escaped = text.replace(/[\u0000-\u001f\u007f]/g, ' ').replace(/["\\]/g, (c) => `\\${c}`);
  return `${code} ${WARN_AGENT} "${escaped}"`;
}

export interface CreateResponseOptions {
  /**
   * Added to To as `;tag=` when the request's To has no tag; an existing tag is
   * never replaced, and an unparseable To is copied untouched.
   */
  toTag?: string;
  /** Extra header fields, appended after the copied ones in this order. */
  headers?: ReadonlyArray<readonly [string, string]>;
  body?: Uint8Array;
  /** Content-Type for `body` (required with a non-empty body unless given in `headers`). */
  contentType?: string;
}

const EMPTY_BODY: Uint8Array = Buffer.alloc(0);

/**
 * Builds a response to `request` as RFC 3261 8.2.6.2 prescribes: every Via in
 * order, From, To (plus our tag), Call-ID and CSeq copied verbatim, and
 * Timestamp for 100 Trying (8.2.6.1). Works on the partial `message` of a
 * failed parse: a header the request lacks is simply omitted. Record-Route
 * copying for dialog-creating responses (12.1.1) is the dialog layer's job
 * (pass them in `options.headers`).
 *
 * Throws a TypeError/RangeError for arguments no caller should pass (status
 * outside 100..699, a tag that is not a token, a body without Content-Type).
 */
export function createResponse(
  request: SipRequest,
  status: number,
  reason?: string,
  options: CreateResponseOptions = {},
): SipResponse {
  if (!Number.isInteger(status) || status < 100 || status > 699) {
    throw new RangeError(`SIP status ${status} is outside 100..699`);
  }
  const { toTag } = options;
  if (toTag !== undefined && !isToken(toTag)) throw new TypeError('To tag must be a token');

  const src = request.headers;
  const headers = new Headers();
  src.forEach((value, name) => {
    if (name === 'Via') headers.append('Via', value);
  });
  const from = src.get('From');
  if (from !== undefined) headers.append('From', from);
  const to = src.get('To');
  if (to !== undefined) headers.append('To', toTag !== undefined && needsTag(to) ? `${to};tag=${toTag}` : to);
  const callId = src.get('Call-ID');
  if (callId !== undefined) headers.append('Call-ID', callId);
  const cseq = src.get('CSeq');
  if (cseq !== undefined) headers.append('CSeq', cseq);
  if (status === 100) {
    const timestamp = src.get('Timestamp');
    if (timestamp !== undefined) headers.append('Timestamp', timestamp);
  }
  for (const [name, value] of options.headers ?? []) headers.append(name, value);

  const body = options.body ?? EMPTY_BODY;
  if (options.contentType !== undefined) headers.set('Content-Type', options.contentType);
  if (body.byteLength > 0 && !headers.has('Content-Type')) {
    throw new TypeError('A response body needs a Content-Type (RFC 3261 20.15)');
  }
  return { type: 'response', status, reason: sanitizeReason(reason ?? reasonPhrase(status)), headers, body };
}

/**
 * True when a tag can be appended: To parses and has no tag yet. An
 * unparseable To (we are answering a malformed request) is copied untouched,
 * since we cannot tell where its parameters would begin.
 */
function needsTag(to: string): boolean {
  const parsed = parseNameAddr(to);
  return parsed !== undefined && !parsed.params.has('tag');
}

/** Longest Reason-Phrase we send, in UTF-16 code units. */
export const MAX_REASON_LENGTH = 200;

/**
 * Reason-Phrase may hold UTF-8 text, SP and HTAB but no other control
 * characters (RFC 3261 25.1); parser error texts and caller strings end up
 * here, and they can quote what a peer sent (an SDP codec name of 22 000
 * bytes in PROTOS), so the phrase is also cut short: a response must not grow
 * with its request past what a proxy takes.
 */
function sanitizeReason(reason: string): string {
  // An error text can quote malformed bytes (text.ts); the phrase itself stays valid UTF-8.
  const clean = toWellFormed(reason).replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, ' ');
  if (clean.length <= MAX_REASON_LENGTH) return clean;
  let cut = MAX_REASON_LENGTH - 3;
  const last = clean.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut--; // never split a surrogate pair
  return `${clean.slice(0, cut)}...`;
}

/**
 * The answer to a request that failed to parse or was too large to parse
 * (RFC 3261 8.2, 21.4.1, 21.5.14): `status` (400, 505, 513) built from the
 * header fields exactly as received, with a reason phrase that says what is
 * wrong. Undefined when nothing may or can be sent: an ACK has no response of
 * its own (RFC 3261 17), whether its Request-Line or its CSeq says ACK; and
 * without a Via no client transaction could match the response (RFC 3261
 * 17.1.3), so there is nothing worth copying.
 */
export function createErrorResponse(
  request: SipRequest,
  status: number,
  detail: string,
): SipResponse | undefined {
  if (request.method === 'ACK' || /(?:^|[ \t])ACK[ \t]*$/.test(request.headers.get('CSeq') ?? ''))
    return undefined;
  if (!request.headers.has('Via')) return undefined;
  // 400 and 513 say which; 505's detail names the version and reads well alone.
  return createResponse(request, status, status === 505 ? detail : `${reasonPhrase(status)} (${detail})`);
}
