import { describe, expect, it } from 'vitest';
import { parseTelephoneEvent } from '../../src/media/dtmf.js';
import { DtmfSender } from '../../src/media/dtmf-sender.js';

function drain(sender: DtmfSender) {
  const out: ReturnType<DtmfSender['next']>[] = [];
  for (let plan = sender.next(); plan !== undefined; plan = sender.next()) out.push(plan);
  return out;
}

describe('DtmfSender (RFC 4733 2.5.1)', () => {
  it('sends one event per key: marker first, growing duration, the end packet three times, then a gap', () => {
    const s = new DtmfSender(20, 8000);
    let done = false;
    s.enqueue('5', { durationMs: 100, gapMs: 40 }, () => {
      done = true;
    });
    const plans = drain(s);
    const events = plans.filter((p) => p?.kind === 'event');
    expect(events).toHaveLength(5 + 2);
    const parsed = events.map((p) => (p?.kind === 'event' ? parseTelephoneEvent(p.payload) : undefined));
    expect(parsed.map((e) => e?.event)).toEqual(Array(7).fill(5));
    expect(parsed.map((e) => e?.duration)).toEqual([160, 320, 480, 640, 800, 800, 800]);
    expect(parsed.map((e) => e?.end)).toEqual([false, false, false, false, true, true, true]);
    expect(events.map((p) => p?.kind === 'event' && p.marker)).toEqual([
      true,
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
    // All packets of the event carry its start as timestamp: the offset back to it grows by one per interval.
    expect(events.map((p) => p?.kind === 'event' && p.startOffset)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(plans.slice(7)).toEqual([{ kind: 'silence' }, { kind: 'silence' }]);
    expect(done).toBe(true);
    expect(s.busy).toBe(false);
    expect(s.next()).toBeUndefined();
  });

  it('pauses on a comma, reports each key as it starts, and accepts lower-case A-D', () => {
    const s = new DtmfSender(20, 8000);
    s.enqueue('1,d', { pauseMs: 200, gapMs: 0 });
    const heard: string[] = [];
    const plans: ReturnType<DtmfSender['next']>[] = [];
    for (let p = s.next((d) => heard.push(d)); p !== undefined; p = s.next((d) => heard.push(d)))
      plans.push(p);
    expect(heard).toEqual(['1', 'D']);
    expect(plans.filter((p) => p?.kind === 'silence')).toHaveLength(10);
  });

  it('rejects anything that is not a key or a pause', () => {
    const s = new DtmfSender(20, 8000);
    expect(() => s.enqueue('12x')).toThrow(RangeError);
    expect(() => s.enqueue('')).toThrow(RangeError);
  });
});
