import { describe, expect, it } from 'vitest';
import { Headers } from '../../../src/sip/message/headers.js';
import type { SipResponse } from '../../../src/sip/message/types.js';
import {
  MAX_RETRY_AFTER_S,
  registerFailurePolicy,
  retryAfterSeconds,
} from '../../../src/sip/ua/registration.js';

function response(status: number, retryAfter?: string): SipResponse {
  const headers = new Headers();
  if (retryAfter !== undefined) headers.append('Retry-After', retryAfter);
  return { type: 'response', status, reason: 'x', headers, body: new Uint8Array(0) };
}

describe('retryAfterSeconds (RFC 3261 20.33)', () => {
  it.each([
    ['30', 30],
    [' 18000;duration=3600', MAX_RETRY_AFTER_S],
    ['120 (I am in a meeting)', 120],
    ['0', 0],
    ['4294967295', MAX_RETRY_AFTER_S],
  ])('reads %j as %d seconds, cut to the bound', (value, seconds) => {
    expect(retryAfterSeconds(response(503, value))).toBe(seconds);
  });

  it.each([['soon'], ['-5'], ['3.5'], ['99999999999999999999'], ['']])('ignores %j', (value) => {
    expect(retryAfterSeconds(response(503, value))).toBeUndefined();
  });

  it('is undefined without the header', () => {
    expect(retryAfterSeconds(response(503))).toBeUndefined();
  });
});

describe('registerFailurePolicy', () => {
  it.each([401, 403, 404, 407, 604])(
    '%d (credentials or user wrong) ends the first registration, Retry-After or not',
    (status) => {
      expect(registerFailurePolicy(status, undefined)).toEqual({ fatalFirst: true, failover: false });
      expect(registerFailurePolicy(status, 30)).toEqual({ fatalFirst: true, failover: false });
    },
  );

  it.each([408, 500, 503, 504])('%d is waited out on another proxy first', (status) => {
    expect(registerFailurePolicy(status, undefined)).toEqual({ fatalFirst: false, failover: true });
    expect(registerFailurePolicy(status, 30)).toEqual({ fatalFirst: false, failover: true });
  });

  it('480 Temporarily Unavailable is waited out on the same proxy', () => {
    expect(registerFailurePolicy(480, undefined)).toEqual({ fatalFirst: false, failover: false });
  });

  it.each([400, 420, 603, 606])('%d is retried only when the server said when', (status) => {
    expect(registerFailurePolicy(status, undefined)).toEqual({ fatalFirst: true, failover: false });
    expect(registerFailurePolicy(status, 60)).toEqual({ fatalFirst: false, failover: false });
  });

  it('our own give-up (no status) is fatal for the first registration', () => {
    expect(registerFailurePolicy(undefined, undefined).fatalFirst).toBe(true);
  });
});
