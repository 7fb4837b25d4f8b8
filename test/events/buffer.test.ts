import { describe, expect, it } from 'vitest';
import { parseBrokerUrl } from '../../src/events/broker-url.js';
import { BoundedEventBuffer } from '../../src/events/buffer.js';

describe('BoundedEventBuffer', () => {
  it('keeps order, numbers events from 1, and acks up to a sequence number', () => {
    const b = new BoundedEventBuffer(4);
    expect([b.push('a'), b.push('b'), b.push('c')]).toEqual([1, 2, 3]);
    expect(b.peek(2)).toEqual([
      { seq: 1, data: 'a' },
      { seq: 2, data: 'b' },
    ]);
    b.ack(2);
    expect(b.peek(10).map((e) => e.data)).toEqual(['c']);
    expect(b.length).toBe(1);
    b.ack(99);
    expect(b.length).toBe(0);
    expect(b.peek(5)).toEqual([]);
  });

  it('drops the oldest when full and counts every drop', () => {
    const b = new BoundedEventBuffer(3);
    for (const d of ['a', 'b', 'c', 'd', 'e']) b.push(d);
    expect(b.dropped).toBe(2);
    expect(b.peek(10).map((e) => [e.seq, e.data])).toEqual([
      [3, 'c'],
      [4, 'd'],
      [5, 'e'],
    ]);
  });

  it('an ack for a batch partly dropped while in flight removes only what is left of it', () => {
    const b = new BoundedEventBuffer(2);
    b.push('a');
    b.push('b');
    const batch = b.peek(2); // in flight: 1, 2
    b.push('c'); // drops 1
    b.push('d'); // drops 2
    b.ack(batch[batch.length - 1]!.seq);
    expect(b.peek(5).map((e) => e.data)).toEqual(['c', 'd']);
    expect(b.dropped).toBe(2);
  });

  it('refuses a capacity below 1', () => {
    expect(() => new BoundedEventBuffer(0)).toThrow(RangeError);
  });
});

describe('parseBrokerUrl', () => {
  it.each([
    ['redis://127.0.0.1', { kind: 'redis', host: '127.0.0.1', port: 6379, db: 0, tls: false }],
    ['rediss://cache.example:6380/2', { kind: 'redis', port: 6380, db: 2, tls: true }],
    ['nats://n1.example', { kind: 'nats', port: 4222, tls: false }],
    ['tls://n1.example:4443', { kind: 'nats', port: 4443, tls: true }],
    ['redis://[::1]:7000', { host: '::1', port: 7000 }],
  ])('%s', (url, expected) => {
    const r = parseBrokerUrl(url);
    expect(r.ok && r.value).toMatchObject(expected);
  });

  it('redacts credentials in what it shows', () => {
    const r = parseBrokerUrl('redis://user:S3cret-pass@h:6379/1');
    expect(r.ok && r.value.shown).toBe('redis://***:***@h:6379/1');
    expect(r.ok && r.value.password).toBe('S3cret-pass');
    const t = parseBrokerUrl('nats://tok3n-value@h');
    expect(t.ok && t.value.shown).toBe('nats://***@h:4222'.replace(':4222', ''));
  });

  it.each([
    ['not a url', 'is not a URL'],
    ['http://h', 'has the scheme "http:"'],
    ['redis://h/abc', 'has the path "/abc"'],
    ['nats://h/x', 'has a path'],
  ])('refuses %s', (url, reason) => {
    const r = parseBrokerUrl(url);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toContain(reason);
  });
});
