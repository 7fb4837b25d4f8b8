/**
 * Stream framer for SIP over TCP/TLS (RFC 3261 section 18.3): bytes in, whole
 * messages out. Pure and synchronous; the connection layer owns the socket.
 *
 * - A message is the header section up to the first CRLFCRLF plus exactly
 *   Content-Length bytes (counted in bytes, never characters). On a stream
 *   Content-Length is mandatory (RFC 3261 20.14), long or compact (`l`) form.
 * - Between messages, CRLFCRLF is an RFC 5626 4.4.1 keep-alive ping and a lone
 *   CRLF its pong. When the bytes at hand end with exactly CRLF, it is reported
 *   as a pong at once (we are the client and servers answer our pings with
 *   CRLF), so a ping split as CRLF|CRLF across two reads reads as two pongs;
 *   the connection layer, which knows whether it sent a ping, tells them apart.
 * - A missing, negative, non-numeric or conflicting Content-Length is
 *   unrecoverable: the position of the next message cannot be known, so the
 *   framer reports one `error` and is dead afterwards; the connection layer
 *   closes the flow.
 * - A message over maxHeaderBytes or maxBodyBytes is not delivered, but the
 *   stream stays in step when the message is at most maxSkipBytes long: the
 *   framer reads on to the blank line (holding at most maxSkipBytes), takes
 *   Content-Length from there, reports `oversized` with the complete header
 *   lines that fit within maxHeaderBytes (for a 513 answer, RFC 3261 21.5.14)
 *   and discards the rest of the message as it arrives, body bytes unheld.
 *   One INVITE that is too large must not cost the flow, its registration
 *   and every call on it. Beyond maxSkipBytes it is an `error`, as above.
 *   Two identical Content-Length fields
 *   frame unambiguously and are accepted here; the parser then answers the
 *   request with 400 (a single-valued header repeated, RFC 4475 3.3.8).
 * - A message whose Content-Length exceeds the bytes that ever arrive
 *   (RFC 4475 3.1.2.2) simply stays incomplete: `buffered` stays above zero so
 *   that the connection's read timeout can close the flow; `end()` reports it.
 */
import { ErrorCodes, SoftphoneError } from '../../errors.js';
import { parseBoundedInt, trimWs } from '../message/uri.js';

export type FramerEvent =
  | { type: 'message'; bytes: Uint8Array }
  /**
   * A message over the limits, discarded: `head` is its start line and the
   * header lines that fit within maxHeaderBytes, ending in CRLFCRLF (empty if
   * even the start line does not fit); `error` says what was too large.
   */
  | { type: 'oversized'; head: Uint8Array; error: SoftphoneError }
  | { type: 'ping' }
  | { type: 'pong' }
  | { type: 'error'; error: SoftphoneError };

export interface FramerLimits {
  /** Largest header section (start line and header fields, without the blank line). Default 16 KiB. */
  maxHeaderBytes?: number;
  /** Largest Content-Length accepted. Default 64 KiB. */
  maxBodyBytes?: number;
  /**
   * Largest message (header section, blank line, body) read past and
   * discarded when it is over the other limits, keeping the stream in step.
   * Up to this many bytes are held while looking for its blank line. Default 256 KiB.
   */
  maxSkipBytes?: number;
}

export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;
export const DEFAULT_MAX_SKIP_BYTES = 256 * 1024;

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n', 'latin1');
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

export class StreamFramer {
  readonly #maxHeader: number;
  readonly #maxBody: number;
  readonly #maxSkip: number;
  /** Received bytes live in #buf[#start, #end). */
  #buf: Buffer = Buffer.alloc(0);
  #start = 0;
  #end = 0;
  /** Offset (from #start) up to which the blank-line search has already looked. */
  #scanned = 0;
  /** Total length of the current message once its header section is known, else -1. */
  #messageLength = -1;
  /** Bytes of an oversized message's body still to discard as they arrive. */
  #skip = 0;
  #dead = false;

  constructor(limits: FramerLimits = {}) {
    this.#maxHeader = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.#maxBody = limits.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.#maxSkip = Math.max(limits.maxSkipBytes ?? DEFAULT_MAX_SKIP_BYTES, this.#maxHeader);
  }

  /** Bytes held for a message that has not completed yet (0 when idle). */
  get buffered(): number {
    return this.#dead ? 0 : this.#end - this.#start;
  }

  /** True while a message has begun and not ended: bytes are held, or an oversized body is being discarded. */
  get inMessage(): boolean {
    return !this.#dead && (this.#end > this.#start || this.#skip > 0);
  }

  /** True after an unrecoverable error (or end()); push() then returns []. */
  get dead(): boolean {
    return this.#dead;
  }

  push(chunk: Uint8Array): FramerEvent[] {
    if (this.#dead || chunk.byteLength === 0) return [];
    this.#append(chunk);
    const events: FramerEvent[] = [];
    for (;;) {
      const available = this.#end - this.#start;
      if (available === 0) break;

      if (this.#skip > 0) {
        const n = Math.min(available, this.#skip);
        this.#start += n;
        this.#skip -= n;
        continue;
      }

      if (this.#messageLength < 0) {
        if (this.#scanned === 0 && this.#buf[this.#start] === CR) {
          // Between messages: keep-alives (RFC 5626 4.4.1, RFC 3261 7.5).
          const keepAlive = this.#keepAlive(available);
          if (keepAlive === 'wait') break;
          if (keepAlive !== undefined) {
            events.push({ type: keepAlive });
            this.#start += keepAlive === 'ping' ? 4 : 2;
            continue;
          }
        }
        const headerEnd = this.#findBlankLine(available);
        // The blank line, when it comes, will start at or after available - 3.
        if (headerEnd > this.#maxSkip || (headerEnd < 0 && available - 3 > this.#maxSkip)) {
          return this.#fail(
            events,
            ErrorCodes.SIP_FRAME_TOO_LARGE,
            `SIP header section exceeds ${this.#maxSkip} bytes`,
          );
        }
        if (headerEnd < 0) break;
        const cl = contentLength(this.#buf.toString('latin1', this.#start, this.#start + headerEnd));
        if (typeof cl === 'string') {
          const code =
            cl === MISSING ? ErrorCodes.SIP_FRAME_NO_CONTENT_LENGTH : ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH;
          return this.#fail(events, code, cl);
        }
        if (headerEnd > this.#maxHeader || cl > this.#maxBody) {
          if (headerEnd + 4 + cl > this.#maxSkip) {
            return this.#fail(
              events,
              ErrorCodes.SIP_FRAME_TOO_LARGE,
              `SIP message of ${headerEnd + 4 + cl} bytes exceeds ${this.#maxSkip} bytes`,
            );
          }
          events.push(this.#oversized(headerEnd, cl));
          this.#start += headerEnd + 4;
          this.#skip = cl;
          this.#scanned = 0;
          continue;
        }
        this.#messageLength = headerEnd + 4 + cl;
      }

      if (available < this.#messageLength) break;
      // A copy: the buffer is compacted and reused for the next reads.
      const bytes = Buffer.from(this.#buf.subarray(this.#start, this.#start + this.#messageLength));
      events.push({ type: 'message', bytes });
      this.#start += this.#messageLength;
      this.#messageLength = -1;
      this.#scanned = 0;
    }
    if (this.#start === this.#end) {
      this.#start = 0;
      this.#end = 0;
    }
    return events;
  }

  /**
   * The stream has ended (or the read timeout fired): reports a message that
   * never completed as SIP_FRAME_INCOMPLETE. The framer is dead afterwards.
   */
  end(): FramerEvent[] {
    if (this.#dead) return [];
    const held = this.#end - this.#start + this.#skip;
    this.#dead = true;
    this.#release();
    if (held === 0) return [];
    return [
      {
        type: 'error',
        error: new SoftphoneError(
          ErrorCodes.SIP_FRAME_INCOMPLETE,
          `Stream ended with ${held} bytes of an incomplete SIP message`,
          { details: { buffered: held } },
        ),
      },
    ];
  }

  /** The `oversized` event for the message at #start, its header section `headerEnd` bytes long. */
  #oversized(headerEnd: number, cl: number): FramerEvent {
    const section = this.#buf.subarray(this.#start, this.#start + headerEnd);
    // Complete lines only, so no field is copied cut in the middle.
    const fit = headerEnd <= this.#maxHeader ? headerEnd : section.lastIndexOf(CRLF, this.#maxHeader - 2);
    const head = fit <= 0 ? Buffer.alloc(0) : Buffer.concat([section.subarray(0, fit), CRLFCRLF]);
    const what =
      headerEnd > this.#maxHeader
        ? `SIP header section of ${headerEnd} bytes exceeds ${this.#maxHeader} bytes`
        : `SIP body of ${cl} bytes exceeds the limit of ${this.#maxBody} bytes`;
    return {
      type: 'oversized',
      head,
      error: new SoftphoneError(ErrorCodes.SIP_FRAME_TOO_LARGE, what, { details: { headerEnd, cl } }),
    };
  }

  /** Classifies the CR at #start: a ping, a pong, 'wait' for more bytes, or undefined (a message). */
  #keepAlive(available: number): 'ping' | 'pong' | 'wait' | undefined {
    const b = this.#buf;
    const s = this.#start;
    if (available < 2) return 'wait';
    if (b[s + 1] !== LF) return undefined;
    if (available === 2) return 'pong';
    if (b[s + 2] !== CR) return 'pong';
    if (available === 3) return 'wait';
    return b[s + 3] === LF ? 'ping' : 'pong';
  }

  /** Offset (from #start) of the CRLFCRLF ending the header section, or -1. */
  #findBlankLine(available: number): number {
    // Resume where the last search stopped (minus 3 bytes in case the
    // terminator straddles reads), so byte-at-a-time input stays linear.
    const from = Math.max(0, this.#scanned - 3);
    const idx = this.#buf.subarray(this.#start, this.#end).indexOf(CRLFCRLF, from);
    this.#scanned = idx < 0 ? available : idx;
    return idx;
  }

  #append(chunk: Uint8Array): void {
    const held = this.#end - this.#start;
    const need = held + chunk.byteLength;
    if (this.#end + chunk.byteLength > this.#buf.length) {
      if (need <= this.#buf.length && this.#start > 0) {
        this.#buf.copy(this.#buf, 0, this.#start, this.#end);
      } else {
        // Grow geometrically so that many small reads cost amortized O(1) per byte.
        const next = Buffer.allocUnsafe(Math.max(need, this.#buf.length * 2, 4096));
        this.#buf.copy(next, 0, this.#start, this.#end);
        this.#buf = next;
      }
      this.#start = 0;
      this.#end = held;
    }
    this.#buf.set(chunk, this.#end);
    this.#end += chunk.byteLength;
  }

  #fail(events: FramerEvent[], code: SoftphoneError['code'], message: string): FramerEvent[] {
    const held = this.#end - this.#start;
    events.push({ type: 'error', error: new SoftphoneError(code, message, { details: { buffered: held } }) });
    this.#dead = true;
    this.#release();
    return events;
  }

  #release(): void {
    this.#buf = Buffer.alloc(0);
    this.#start = 0;
    this.#end = 0;
    this.#skip = 0;
  }
}

const MISSING = 'SIP message on a stream transport has no Content-Length (RFC 3261 18.3)';

/**
 * The Content-Length of a header section (decoded as latin1, so one char per
 * byte), or a reason string when it is missing or unusable. Handles the compact
 * form `l`, any case, LWS before the colon and folded values, as the parser does.
 */
function contentLength(head: string): number | string {
  let value: number | undefined;
  let pos = head.indexOf('\r\n');
  if (pos === -1) return MISSING;
  pos += 2;
  const n = head.length;
  while (pos < n) {
    let end = head.indexOf('\r\n', pos);
    if (end === -1) end = n;
    const c = head.charCodeAt(pos) | 0x20;
    if (c === 0x63 /* c */ || c === 0x6c /* l */) {
      const colon = head.indexOf(':', pos);
      if (colon !== -1 && colon < end) {
        const name = head
          .slice(pos, colon)
          .replace(/[ \t]+$/, '')
          .toLowerCase();
        if (name === 'content-length' || name === 'l') {
          // Unfold continuation lines (RFC 3261 7.3.1).
          let raw = head.slice(colon + 1, end);
          while (end + 2 < n && (head.charCodeAt(end + 2) === 0x20 || head.charCodeAt(end + 2) === 0x09)) {
            const next = head.indexOf('\r\n', end + 2);
            const lineEnd = next === -1 ? n : next;
            raw += ' ' + head.slice(end + 2, lineEnd);
            end = lineEnd;
          }
          const v = trimWs(raw);
          const parsed = parseBoundedInt(v, Number.MAX_SAFE_INTEGER);
          if (parsed === undefined) {
            return v.startsWith('-') ? 'Negative Content-Length' : 'Content-Length is not a number';
          }
          if (value !== undefined && parsed !== value) return 'Conflicting Content-Length values';
          value = parsed;
        }
      }
    }
    pos = end + 2;
  }
  return value ?? MISSING;
}
