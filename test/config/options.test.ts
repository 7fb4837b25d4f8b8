/** resolveOptions: the defaults come from DEFAULTS, and a bad value names its option. */
import { describe, expect, it } from 'vitest';
import { DEFAULTS, resolveOptions } from '../../src/config/options.js';
import { ErrorCodes, SoftphoneError } from '../../src/errors.js';

function problem(fn: () => unknown): { code: string; option: unknown; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof SoftphoneError)
      return { code: err.code, option: err.details?.option, message: err.message };
    throw err;
  }
  throw new Error('did not throw');
}

describe('resolveOptions', () => {
  it('fills every default from DEFAULTS and freezes the result', () => {
    const r = resolveOptions({});
    expect(r.sendCatchUpMs).toBe(DEFAULTS.sendCatchUpMs);
    expect(r.maxCalls).toBe(DEFAULTS.maxCalls);
    expect(r.codecs).toEqual(DEFAULTS.codecs);
    expect(r.srtp).toBe('off');
    expect(resolveOptions({ transport: 'tls' }).srtp).toBe('required');
    expect(Object.isFrozen(r)).toBe(true);
  });

  it('sendCatchUpMs: a whole number of ms from 20 to 10 000, else CONFIG_INVALID naming it', () => {
    expect(resolveOptions({ sendCatchUpMs: 1000 }).sendCatchUpMs).toBe(1000);
    for (const bad of [0, 19, 10_001, 1.5, Number.NaN]) {
      const p = problem(() => resolveOptions({ sendCatchUpMs: bad }));
      expect(p.code).toBe(ErrorCodes.CONFIG_INVALID);
      expect(p.option).toBe('sendCatchUpMs');
      expect(p.message).toMatch(/sendCatchUpMs must be a whole number from 20 to 10000/);
    }
  });
});
