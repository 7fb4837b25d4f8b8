/**
 * DTMF: RFC 4733 telephone-event payloads, a per-key-press deduper, and SIP
 * INFO `application/dtmf-relay` bodies.
 */

import { tsDiff } from '../rtp/seq.js';

/** One RFC 4733 2.3 event block. */
export interface TelephoneEvent {
  /** event code, 0-255 (RFC 4733 3.2: 0-9, 10 = *, 11 = #, 12-15 = A-D, 16 = flash) */
  event: number;
  /** E bit: this packet ends the event */
  end: boolean;
  /** power level in -dBm0, 0-63 (RFC 4733 2.3.4) */
  volume: number;
  /** duration so far in RTP timestamp units, 0-65535 (RFC 4733 2.3.5) */
  duration: number;
}

export type DtmfDigit =
  | '0'
  | '1'
  | '2'
  | '3'
  | '4'
  | '5'
  | '6'
  | '7'
  | '8'
  | '9'
  | '*'
  | '#'
  | 'A'
  | 'B'
  | 'C'
  | 'D';

/** RFC 4733 3.2: hook flash. Not a key press, so {@link eventToDigit} does not map it. */
export const TELEPHONE_EVENT_FLASH = 16;

const DIGITS: readonly DtmfDigit[] = [
  '0',
  '1',
  '2',
  '3',
  '4',
  '5',
  '6',
  '7',
  '8',
  '9',
  '*',
  '#',
  'A',
  'B',
  'C',
  'D',
];

/**
 * Parses the first event block of a telephone-event payload (RFC 4733 2.3).
 * Further blocks (2.5.1.5, multiple events in one packet) are not used for
 * DTMF by senders we know and are ignored. Returns undefined when short.
 */
export function parseTelephoneEvent(payload: Uint8Array): TelephoneEvent | undefined {
  if (payload.length < 4) return undefined;
  const flags = payload[1]!;
  return {
    event: payload[0]!,
    end: (flags & 0x80) !== 0,
    // bit 0x40 is R (reserved): ignored on receipt (RFC 4733 2.3.3)
    volume: flags & 0x3f,
    duration: (payload[2]! << 8) | payload[3]!,
  };
}

/** Serializes one event block; out-of-range fields are masked or clamped, R is 0. */
export function encodeTelephoneEvent(ev: TelephoneEvent): Uint8Array {
  const duration = ev.duration > 0xffff ? 0xffff : ev.duration > 0 ? ev.duration | 0 : 0;
  const out = new Uint8Array(4);
  out[0] = ev.event & 0xff;
  out[1] = (ev.end ? 0x80 : 0) | (ev.volume & 0x3f);
  out[2] = duration >> 8;
  out[3] = duration & 0xff;
  return out;
}

/** Event code → key (RFC 4733 3.2 table 7); undefined for flash and non-DTMF events. */
export function eventToDigit(event: number): DtmfDigit | undefined {
  return DIGITS[event];
}

/** Key → event code; accepts a-d in lower case. */
export function digitToEvent(digit: string): number | undefined {
  if (digit.length !== 1) return undefined;
  const c = digit.charCodeAt(0);
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c === 0x2a) return 10; // *
  if (c === 0x23) return 11; // #
  if (c >= 0x41 && c <= 0x44) return c - 0x41 + 12; // A-D
  if (c >= 0x61 && c <= 0x64) return c - 0x61 + 12; // a-d
  return undefined;
}

/**
 * Turns the packets of RFC 4733 events into one digit per key press.
 *
 * All packets of one event carry the event's start as RTP timestamp (RFC 4733
 * 2.5.1.2) and the end packet is sent three times (2.5.1.4), so a key press is identified
 * by (SSRC, timestamp). The first packet seen of a press reports it, even an
 * end packet when the earlier ones were lost; everything after (updates,
 * end retransmissions, late reordered packets) is swallowed. A bounded ring of
 * recent presses is remembered.
 */
export class DtmfDeduper {
  readonly #ssrc: Uint32Array;
  readonly #timestamp: Uint32Array;
  readonly #event: Uint8Array;
  /** bit 0: slot used, bit 1: end seen, bit 2: duration saturated at 0xFFFF */
  readonly #flags: Uint8Array;
  #next = 0;

  /** `capacity`: presses remembered, 1-1024 (anything else means 16). */
  constructor(capacity = 16) {
    const n = Number.isInteger(capacity) && capacity > 0 && capacity <= 1024 ? capacity : 16;
    this.#ssrc = new Uint32Array(n);
    this.#timestamp = new Uint32Array(n);
    this.#event = new Uint8Array(n);
    this.#flags = new Uint8Array(n);
  }

  /** Returns the digit for the first packet of a new key press, else undefined. */
  accept(ssrc: number, timestamp: number, ev: TelephoneEvent): DtmfDigit | undefined {
    const digit = eventToDigit(ev.event);
    if (digit === undefined) return undefined;
    const s = ssrc >>> 0;
    const ts = timestamp >>> 0;
    const n = this.#flags.length;
    // Newest first, so the continuation check below sees the latest press of this SSRC.
    let latestOfSource = -1;
    for (let k = 1; k <= n; k++) {
      const i = (this.#next - k + n) % n;
      const flags = this.#flags[i]!;
      if ((flags & 1) === 0 || this.#ssrc[i] !== s) continue;
      if (this.#timestamp[i] === ts) {
        this.#note(i, ev);
        return undefined;
      }
      if (latestOfSource < 0) latestOfSource = i;
    }
    // RFC 4733 2.5.1.3: an event longer than 0xFFFF units continues in a new
    // segment with a later timestamp; that is the same key press, not a new one.
    // It still gets its own slot so late packets of either segment are matched.
    let continuation = false;
    if (latestOfSource >= 0) {
      const gap = tsDiff(ts, this.#timestamp[latestOfSource]!);
      continuation =
        (this.#flags[latestOfSource]! & 6) === 4 &&
        this.#event[latestOfSource] === ev.event &&
        gap > 0 &&
        gap <= 0x10000;
    }
    const i = this.#next;
    this.#next = (i + 1) % n;
    this.#ssrc[i] = s;
    this.#timestamp[i] = ts;
    this.#event[i] = ev.event;
    this.#flags[i] = 1;
    this.#note(i, ev);
    return continuation ? undefined : digit;
  }

  /** Forgets every remembered press. */
  reset(): void {
    this.#flags.fill(0);
    this.#next = 0;
  }

  #note(i: number, ev: TelephoneEvent): void {
    let flags = this.#flags[i]!;
    if (ev.end) flags |= 2;
    if (ev.duration >= 0xffff) flags |= 4;
    this.#flags[i] = flags;
  }
}

/**
 * Parses a SIP INFO `application/dtmf-relay` body (`Signal=5\r\nDuration=160`).
 * Keys are case-insensitive and may have spaces around `=`; Signal may be a
 * key (0-9 * # A-D) or its event number (10 = *, 11 = #, 12-15 = A-D).
 * A missing or malformed Duration is left out; a missing Signal gives undefined.
 */
export function parseDtmfRelay(body: string): { digit: DtmfDigit; durationMs?: number } | undefined {
  let digit: DtmfDigit | undefined;
  let durationMs: number | undefined;
  // Bounded: a dtmf-relay body is two short lines; ignore anything past 4 KiB.
  const end = Math.min(body.length, 4096);
  let start = 0;
  while (start < end) {
    let stop = start;
    let eq = -1;
    for (; stop < end; stop++) {
      const c = body.charCodeAt(stop);
      if (c === 0x0a || c === 0x0d) break;
      if (c === 0x3d && eq < 0) eq = stop;
    }
    if (eq > start) {
      const key = body.slice(start, eq).trim().toLowerCase();
      const value = body.slice(eq + 1, stop).trim();
      if (key === 'signal' && digit === undefined) {
        digit = relaySignal(value);
      } else if (key === 'duration' && durationMs === undefined) {
        durationMs = parseDecimal(value);
      }
    }
    start = stop + 1;
  }
  if (digit === undefined) return undefined;
  return durationMs === undefined ? { digit } : { digit, durationMs };
}

function relaySignal(value: string): DtmfDigit | undefined {
  if (value.length === 1) {
    const event = digitToEvent(value);
    return event === undefined ? undefined : DIGITS[event];
  }
  const n = parseDecimal(value);
  return n === undefined ? undefined : DIGITS[n];
}

/** Non-negative decimal integer of at most 9 digits, else undefined. */
function parseDecimal(value: string): number | undefined {
  if (value.length === 0 || value.length > 9) return undefined;
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return undefined;
    n = n * 10 + c;
  }
  return n;
}
