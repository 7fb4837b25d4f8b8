import { describe, expect, it } from 'vitest';
import { SafeEmitter } from '../src/safe-emitter.js';

interface Events {
  tick: [n: number];
  error: [err: Error];
}

describe('SafeEmitter', () => {
  it('runs every listener even when one throws, and reports the first failure per event', () => {
    const e = new SafeEmitter<Events>();
    const reports: { event: string; count: number }[] = [];
    e.setListenerErrorHandler(({ event, count }) => reports.push({ event, count }));
    const seen: number[] = [];
    e.on('tick', () => {
      throw new Error('boom');
    });
    e.on('tick', (n) => seen.push(n));
    e.once('tick', (n) => seen.push(-n));
    expect(e.emit('tick', 1)).toBe(true);
    expect(e.emit('tick', 2)).toBe(true);
    expect(seen).toEqual([1, -1, 2]);
    expect(reports).toEqual([{ event: 'tick', count: 1 }]);
    expect(e.listenerErrors).toBe(2);
  });

  it('keeps Node semantics for an unhandled error event and for no listeners', () => {
    const e = new SafeEmitter<Events>();
    expect(e.emit('tick', 1)).toBe(false);
    expect(() => e.emit('error', new Error('unhandled'))).toThrow('unhandled');
  });

  it('survives a reporter that throws', () => {
    const e = new SafeEmitter<Events>();
    e.setListenerErrorHandler(() => {
      throw new Error('reporter');
    });
    e.on('tick', () => {
      throw new Error('listener');
    });
    expect(() => e.emit('tick', 1)).not.toThrow();
  });
});
