import { describe, expect, it } from 'vitest';
import { SdpSession } from '../../src/sdp/session.js';

const offer = (port: number, extra = '', version = 1) =>
  [
    'v=0',
    `o=peer 7 ${version} IN IP4 192.0.2.1`,
    's=-',
    'c=IN IP4 192.0.2.1',
    't=0 0',
    `m=audio ${port} RTP/AVP 0 101`,
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:101 telephone-event/8000',
    ...(extra ? [extra] : []),
    '',
  ].join('\r\n');

const version = (sdp: string) => Number(/^o=\S+ \S+ (\d+) /m.exec(sdp)?.[1]);
const local = () => new SdpSession({ address: '198.51.100.7', port: 30000, sessionId: '42' });

describe('SdpSession (RFC 3264 8)', () => {
  it('keeps the version for an identical SDP and bumps it by one for a changed one', () => {
    const s = local();
    const first = s.answer(offer(4000));
    if (!first.ok) throw new Error(first.reason);
    expect(version(first.answer)).toBe(1);
    const same = s.answer(offer(4000, '', 2));
    expect(same.ok && same.answer).toBe(first.answer);
    const hold = s.answer(offer(4000, 'a=sendonly', 3));
    expect(hold.ok && version(hold.answer)).toBe(2);
    expect(hold.ok && hold.answer).toMatch(/a=recvonly/);
  });

  it('a rejected offer changes nothing', () => {
    const s = local();
    s.answer(offer(4000));
    const bad = s.answer(offer(4000).replace('RTP/AVP 0 101', 'RTP/AVP 18'));
    expect(bad.ok).toBe(false);
    const next = s.answer(offer(4000, 'a=sendonly'));
    expect(next.ok && version(next.answer)).toBe(2);
  });

  it('holds with a sendonly offer, rolls back a refused re-offer, and answers within what we want', () => {
    const s = local();
    const initial = s.offer();
    expect(initial).toMatch(/a=sendrecv/);
    expect(s.accept(offer(4000)).ok).toBe(true);
    s.setDirection('sendonly');
    const hold = s.offer();
    expect(hold).toMatch(/a=sendonly/);
    expect(version(hold)).toBe(2);
    s.rollback();
    expect(s.last).toBe(initial);
    expect(s.pendingOffer).toBeUndefined();
    const again = s.offer();
    expect(version(again)).toBe(2);
    expect(s.accept(offer(4000, 'a=recvonly')).ok).toBe(true);
    // While we hold, a sendrecv re-offer from them is answered sendonly.
    const answer = s.answer(offer(4000, '', 5));
    expect(answer.ok && answer.answer).toMatch(/a=sendonly/);
  });

  it('accept() without a pending offer is an error', () => {
    expect(local().accept(offer(4000))).toMatchObject({ ok: false, code: 'SDP_PARSE_ERROR' });
  });
});
