/**
 * EventExporter over a transport the test controls: publish never blocks or
 * throws, batches go out in order one at a time, a failing broker is retried
 * with the batch kept at the head, drops are counted and reported once when
 * delivery resumes, flush and close behave.
 */
import { describe, expect, it } from 'vitest';
import type { BufferedEvent } from '../../src/events/buffer.js';
import { EventExporter, type EventTransport } from '../../src/events/exporter.js';
import { waitFor } from '../helpers/ports.js';

class ControlledTransport implements EventTransport {
  readonly kind = 'test';
  readonly description = 'test broker';
  failing = false;
  readonly received: { seq: number; data: Record<string, unknown> }[] = [];
  batches = 0;
  inFlight = 0;
  maxInFlight = 0;
  async send(batch: readonly BufferedEvent[]): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setImmediate(r));
      if (this.failing) throw new Error('broker unreachable');
      this.batches++;
      for (const e of batch) this.received.push({ seq: e.seq, data: JSON.parse(e.data) });
    } finally {
      this.inFlight--;
    }
  }
  async close(): Promise<void> {}
}

describe('EventExporter', () => {
  it('adds source and seq in front of each event, keeps order, sends one batch at a time', async () => {
    const t = new ControlledTransport();
    const ex = new EventExporter({ transport: t, source: 'host:1:abc', batchSize: 10 });
    for (let i = 0; i < 35; i++) ex.publish({ event: 'call.dtmf', digit: String(i % 10) });
    ex.publish('{"time":"t","event":"from.logger","device":"d1"}');
    ex.publish('{}');
    expect(await ex.flush(5000)).toBe(true);
    expect(t.received.map((r) => r.seq)).toEqual(Array.from({ length: 37 }, (_, i) => i + 1));
    expect(t.received[35]!.data).toEqual({
      source: 'host:1:abc',
      seq: 36,
      time: 't',
      event: 'from.logger',
      device: 'd1',
    });
    expect(t.received[36]!.data).toEqual({ source: 'host:1:abc', seq: 37 });
    expect(t.maxInFlight).toBe(1);
    expect(ex.stats).toMatchObject({
      published: 37,
      delivered: 37,
      dropped: 0,
      buffered: 0,
      connected: true,
    });
  });

  it('an outage: publish stays instant, the buffer drops the oldest (counted), delivery resumes in order', async () => {
    const t = new ControlledTransport();
    const ex = new EventExporter({ transport: t, source: 's', capacity: 5, retry: { baseMs: 5, maxMs: 20 } });
    const downs: string[] = [];
    const resumed: number[] = [];
    ex.on('down', (d) => downs.push(d.reason));
    ex.on('resumed', (r) => resumed.push(r.dropped));
    t.failing = true;
    ex.publish({ event: 'a' });
    await waitFor(() => downs.length === 1);
    for (let i = 0; i < 10; i++) ex.publish({ event: 'b', i });
    expect(ex.stats.buffered).toBe(5);
    expect(ex.stats.dropped).toBe(6);
    expect(ex.stats.connected).toBe(false);
    t.failing = false;
    expect(await ex.flush(5000)).toBe(true);
    const seqs = t.received.map((r) => r.seq);
    // The newest five always arrive; the first may too, if a retry had it in flight when it was
    // pushed out (then it counts as delivered, not dropped): the counts stay exact either way.
    expect(seqs.slice(-5)).toEqual([7, 8, 9, 10, 11]);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(seqs.length + ex.stats.dropped).toBe(11);
    expect(ex.stats.delivered).toBe(seqs.length);
    expect(resumed).toHaveLength(1);
    expect(downs).toEqual(['broker unreachable']);
    expect(ex.stats.failures).toBeGreaterThan(0);
  });

  it('flush gives up after its timeout while the broker stays away; close stops everything', async () => {
    const t = new ControlledTransport();
    t.failing = true;
    const ex = new EventExporter({ transport: t, source: 's', retry: { baseMs: 10, maxMs: 10 } });
    ex.publish({ event: 'x' });
    expect(await ex.flush(100)).toBe(false);
    await ex.close();
    ex.publish({ event: 'after-close' });
    expect(ex.stats.published).toBe(1);
  });

  it('an event that cannot be serialized becomes a marker, not an exception', async () => {
    const t = new ControlledTransport();
    const ex = new EventExporter({ transport: t, source: 's' });
    const cyclic: Record<string, unknown> = { event: 'bad' };
    cyclic.self = cyclic;
    expect(() => ex.publish(cyclic)).not.toThrow();
    expect(await ex.flush(5000)).toBe(true);
    expect(t.received[0]!.data).toMatchObject({ event: 'event.unserializable', seq: 1 });
  });
});
