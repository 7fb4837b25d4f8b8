import { describe, expect, it } from 'vitest';
import {
  DtmfDeduper,
  digitToEvent,
  encodeTelephoneEvent,
  eventToDigit,
  parseDtmfRelay,
  parseTelephoneEvent,
  TELEPHONE_EVENT_FLASH,
  type TelephoneEvent,
} from '../../src/media/dtmf.js';

const ev = (event: number, end = false, duration = 160, volume = 10): TelephoneEvent => ({
  event,
  end,
  volume,
  duration,
});

describe('parseTelephoneEvent (RFC 4733 2.3)', () => {
  it.each([
    ['digit 5, start', [0x05, 0x0a, 0x00, 0xa0], { event: 5, end: false, volume: 10, duration: 160 }],
    ['#, end, volume 63', [0x0b, 0xbf, 0x03, 0x20], { event: 11, end: true, volume: 63, duration: 800 }],
    ['R bit ignored', [0x01, 0x40 | 0x07, 0xff, 0xff], { event: 1, end: false, volume: 7, duration: 65535 }],
    ['E and R set', [0x0c, 0xc0, 0x00, 0x00], { event: 12, end: true, volume: 0, duration: 0 }],
    [
      'extra bytes ignored',
      [0x09, 0x8a, 0x01, 0x40, 0xde, 0xad],
      { event: 9, end: true, volume: 10, duration: 320 },
    ],
  ])('%s', (_, bytes, expected) => {
    expect(parseTelephoneEvent(Uint8Array.from(bytes))).toEqual(expected);
  });

  it.each([[[]], [[0x05]], [[0x05, 0x0a, 0x00]]])('payload %j is too short', (bytes) => {
    expect(parseTelephoneEvent(Uint8Array.from(bytes))).toBeUndefined();
  });

  it('reads from a subarray view', () => {
    const packet = Uint8Array.from([0xaa, 0xbb, 0x03, 0x80, 0x01, 0x00]);
    expect(parseTelephoneEvent(packet.subarray(2))).toEqual({
      event: 3,
      end: true,
      volume: 0,
      duration: 256,
    });
  });
});

describe('encodeTelephoneEvent', () => {
  it.each([
    [ev(5, false, 160, 10), [0x05, 0x0a, 0x00, 0xa0]],
    [ev(11, true, 800, 63), [0x0b, 0xbf, 0x03, 0x20]],
    [ev(0, true, 70000, 10), [0x00, 0x8a, 0xff, 0xff]],
    [ev(0, false, -5, 64 + 3), [0x00, 0x03, 0x00, 0x00]],
  ])('%j → %j', (input, bytes) => {
    expect(Array.from(encodeTelephoneEvent(input))).toEqual(bytes);
  });

  it('round-trips through parse', () => {
    for (let event = 0; event < 17; event++) {
      const e = ev(event, event % 2 === 0, event * 160, event);
      expect(parseTelephoneEvent(encodeTelephoneEvent(e))).toEqual(e);
    }
  });
});

describe('event ↔ digit (RFC 4733 3.2)', () => {
  const table: [number, string][] = [
    [0, '0'],
    [1, '1'],
    [5, '5'],
    [9, '9'],
    [10, '*'],
    [11, '#'],
    [12, 'A'],
    [13, 'B'],
    [14, 'C'],
    [15, 'D'],
  ];
  it.each(table)('event %i ↔ %s', (event, digit) => {
    expect(eventToDigit(event)).toBe(digit);
    expect(digitToEvent(digit)).toBe(event);
  });

  it.each([TELEPHONE_EVENT_FLASH, 17, 32, 255, -1, 1.5, Number.NaN])('event %s is not a key', (event) => {
    expect(eventToDigit(event)).toBeUndefined();
  });

  it.each([
    ['a', 12],
    ['d', 15],
    ['E', undefined],
    ['', undefined],
    ['11', undefined],
    ['flash', undefined],
    [' ', undefined],
  ])('digitToEvent(%j) → %s', (digit, event) => {
    expect(digitToEvent(digit)).toBe(event);
  });
});

describe('DtmfDeduper', () => {
  const SSRC = 0xdeadbeef;

  it('reports a full key press once: start, updates, three ends', () => {
    const d = new DtmfDeduper();
    const seen = [
      d.accept(SSRC, 1000, ev(5, false, 160)),
      d.accept(SSRC, 1000, ev(5, false, 320)),
      d.accept(SSRC, 1000, ev(5, false, 480)),
      d.accept(SSRC, 1000, ev(5, true, 640)),
      d.accept(SSRC, 1000, ev(5, true, 640)),
      d.accept(SSRC, 1000, ev(5, true, 640)),
    ];
    expect(seen).toEqual(['5', undefined, undefined, undefined, undefined, undefined]);
  });

  it('reports a press whose first packet seen is an end packet', () => {
    const d = new DtmfDeduper();
    expect(d.accept(SSRC, 2000, ev(7, true, 800))).toBe('7');
    expect(d.accept(SSRC, 2000, ev(7, true, 800))).toBeUndefined();
    expect(d.accept(SSRC, 2000, ev(7, false, 160))).toBeUndefined(); // late, reordered start
  });

  it('reports the same key pressed twice (new timestamp) twice', () => {
    const d = new DtmfDeduper();
    expect(d.accept(SSRC, 1000, ev(1, false))).toBe('1');
    expect(d.accept(SSRC, 1000, ev(1, true))).toBeUndefined();
    expect(d.accept(SSRC, 2600, ev(1, false))).toBe('1');
    expect(d.accept(SSRC, 2600, ev(1, true))).toBeUndefined();
  });

  it('swallows late packets of a press already reported after other presses', () => {
    const d = new DtmfDeduper();
    const out: (string | undefined)[] = [];
    out.push(d.accept(SSRC, 1000, ev(1, false)));
    out.push(d.accept(SSRC, 3000, ev(2, false)));
    out.push(d.accept(SSRC, 1000, ev(1, true))); // straggler of the first press
    out.push(d.accept(SSRC, 5000, ev(3, true)));
    out.push(d.accept(SSRC, 3000, ev(2, true)));
    expect(out).toEqual(['1', '2', undefined, '3', undefined]);
  });

  it('keys presses by SSRC too', () => {
    const d = new DtmfDeduper();
    expect(d.accept(1, 1000, ev(4))).toBe('4');
    expect(d.accept(2, 1000, ev(4))).toBe('4');
    expect(d.accept(1, 1000, ev(4, true))).toBeUndefined();
  });

  it('handles timestamps and SSRCs as unsigned 32-bit', () => {
    const d = new DtmfDeduper();
    expect(d.accept(-1, -160, ev(8))).toBe('8');
    expect(d.accept(0xffffffff, 0xffffff60, ev(8, true))).toBeUndefined();
  });

  it('forgets presses beyond its capacity (bounded memory)', () => {
    const d = new DtmfDeduper(4);
    for (let i = 0; i < 5; i++) expect(d.accept(SSRC, i * 1000, ev(i))).toBe(String(i));
    // The press at timestamp 0 was evicted by the fifth one; 1..4 are still known.
    expect(d.accept(SSRC, 4000, ev(4, true))).toBeUndefined();
    expect(d.accept(SSRC, 1000, ev(1, true))).toBeUndefined();
    expect(d.accept(SSRC, 0, ev(0, true))).toBe('0');
  });

  it('ignores flash and unknown events without remembering them', () => {
    const d = new DtmfDeduper();
    expect(d.accept(SSRC, 1000, ev(TELEPHONE_EVENT_FLASH))).toBeUndefined();
    expect(d.accept(SSRC, 1000, ev(200))).toBeUndefined();
    expect(d.accept(SSRC, 1000, ev(3))).toBe('3');
  });

  it('treats the next segment of a long event (RFC 4733 2.5.1.3) as the same press', () => {
    const d = new DtmfDeduper();
    expect(d.accept(SSRC, 10_000, ev(9, false, 160))).toBe('9');
    expect(d.accept(SSRC, 10_000, ev(9, false, 0xffff))).toBeUndefined();
    expect(d.accept(SSRC, 10_000 + 0xffff, ev(9, false, 160))).toBeUndefined();
    expect(d.accept(SSRC, 10_000 + 0xffff, ev(9, true, 4000))).toBeUndefined();
    // A late packet of the first segment is still matched.
    expect(d.accept(SSRC, 10_000, ev(9, false, 0xffff))).toBeUndefined();
    // After the end, the same key again is a new press.
    expect(d.accept(SSRC, 10_000 + 0xffff + 8000, ev(9, false, 160))).toBe('9');
  });

  it('does not merge a new press into a long event of another key', () => {
    const d = new DtmfDeduper();
    expect(d.accept(SSRC, 0xffff0000, ev(2, false, 0xffff))).toBe('2');
    expect(d.accept(SSRC, (0xffff0000 + 0xffff) >>> 0, ev(3))).toBe('3');
  });

  it('reset() forgets everything', () => {
    const d = new DtmfDeduper();
    expect(d.accept(SSRC, 1, ev(6))).toBe('6');
    d.reset();
    expect(d.accept(SSRC, 1, ev(6))).toBe('6');
  });

  it.each([0, -3, 2.5, Number.NaN, 1e9])('falls back to 16 slots for capacity %s', (capacity) => {
    const d = new DtmfDeduper(capacity);
    for (let i = 0; i < 16; i++) d.accept(SSRC, i * 1000, ev(1));
    expect(d.accept(SSRC, 0, ev(1, true))).toBeUndefined();
  });
});

describe('parseDtmfRelay (SIP INFO application/dtmf-relay)', () => {
  it.each([
    ['Signal=5\r\nDuration=160\r\n', { digit: '5', durationMs: 160 }],
    ['Signal=5\nDuration=160', { digit: '5', durationMs: 160 }],
    ['signal=1\r\nduration=250\r\n', { digit: '1', durationMs: 250 }],
    ['SIGNAL = *\r\nDURATION = 100\r\n', { digit: '*', durationMs: 100 }],
    ['Signal= *\r\nDuration= 160\r\n', { digit: '*', durationMs: 160 }],
    ['Signal=#\r\n', { digit: '#' }],
    ['Signal=10\r\nDuration=160', { digit: '*', durationMs: 160 }],
    ['Signal=11\r\nDuration=160', { digit: '#', durationMs: 160 }],
    ['Signal=12', { digit: 'A' }],
    ['Signal=d', { digit: 'D' }],
    ['Duration=160\r\nSignal=9\r\n', { digit: '9', durationMs: 160 }],
    ['Signal=3\r\nDuration=abc\r\n', { digit: '3' }],
    ['Signal=3\r\nDuration=-5\r\n', { digit: '3' }],
    ['\r\n\r\nSignal=0\r\n\r\n', { digit: '0' }],
    ['Signal=7\r\nDuration=160\r\nX-Other=1=2\r\n', { digit: '7', durationMs: 160 }],
  ])('%j', (body, expected) => {
    expect(parseDtmfRelay(body)).toEqual(expected);
  });

  it.each([
    '',
    'Duration=160',
    'Signal=\r\nDuration=160',
    'Signal=16',
    'Signal=E',
    'Signal=55',
    'Signal',
    '=5',
    'Signals=5',
    'garbage',
  ])('%j gives undefined', (body) => {
    expect(parseDtmfRelay(body)).toBeUndefined();
  });

  it('ignores anything beyond 4 KiB', () => {
    expect(parseDtmfRelay(`${' '.repeat(5000)}\r\nSignal=1`)).toBeUndefined();
    expect(parseDtmfRelay(`X=${'y'.repeat(100)}\r\nSignal=1`)).toEqual({ digit: '1' });
  });
});
