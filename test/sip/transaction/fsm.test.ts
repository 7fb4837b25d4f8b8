/**
 * The transaction state machines alone (no clock): every event's actions as
 * RFC 3261 17 and RFC 6026 list them, on UDP and on TCP.
 */
import { describe, expect, it } from 'vitest';
import {
  InviteClientFsm,
  InviteServerFsm,
  NonInviteClientFsm,
  NonInviteServerFsm,
  type TransactionAction,
} from '../../../src/sip/transaction/fsm.js';

const UDP = { reliable: false };
const TCP = { reliable: true };

/** The intervals at which a timer was started, in order. */
function starts(actions: TransactionAction[], timer: string): number[] {
  return actions.flatMap((a) => (a.type === 'start' && a.timer === timer ? [a.ms] : []));
}

const types = (actions: TransactionAction[]) => actions.map((a) => a.type);

describe('INVITE client (17.1.1.2, RFC 6026 7.2)', () => {
  it('UDP: retransmits with Timer A doubling without a cap until a response, gives up at Timer B', () => {
    const fsm = new InviteClientFsm(UDP);
    const first = fsm.start();
    expect(types(first)).toEqual(['send', 'start', 'start']);
    expect(starts(first, 'A')).toEqual([500]);
    expect(starts(first, 'B')).toEqual([32_000]);
    const intervals: number[] = [];
    for (let i = 0; i < 6; i++) {
      const a = fsm.timer('A');
      expect(a[0]).toEqual({ type: 'send' });
      intervals.push(...starts(a, 'A'));
    }
    expect(intervals).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000]);
    expect(types(fsm.timer('B'))).toEqual(['stop', 'timeout', 'terminated']);
    expect(fsm.state).toBe('terminated');
    expect(fsm.timer('A')).toEqual([]);
  });

  it('TCP: no Timer A; B is the only guard', () => {
    const fsm = new InviteClientFsm(TCP);
    const first = fsm.start();
    expect(starts(first, 'A')).toEqual([]);
    expect(starts(first, 'B')).toEqual([32_000]);
    expect(fsm.response(100)).toContainEqual({ type: 'deliver' });
    expect(fsm.state).toBe('proceeding');
    expect(fsm.response(183)).toEqual([{ type: 'deliver' }]);
  });

  it('UDP: a provisional stops A and B (17.1.1.2: B guards Calling only; a callee may ring for minutes)', () => {
    const fsm = new InviteClientFsm(UDP);
    fsm.start();
    expect(fsm.response(180)).toEqual([
      { type: 'stop', timer: 'A' },
      { type: 'stop', timer: 'B' },
      { type: 'deliver' },
    ]);
    expect(fsm.timer('A')).toEqual([]);
    expect(fsm.timer('B')).toEqual([]);
    expect(fsm.state).toBe('proceeding');
  });

  it('B still ends a transaction that gets nothing at all', () => {
    const fsm = new InviteClientFsm(UDP);
    fsm.start();
    expect(types(fsm.timer('B'))).toContain('timeout');
  });

  it('a non-2xx final is ACKed, delivered once, its retransmissions ACKed again until Timer D', () => {
    const fsm = new InviteClientFsm(UDP);
    fsm.start();
    const final = fsm.response(486);
    expect(final).toContainEqual({ type: 'ack' });
    expect(final).toContainEqual({ type: 'deliver' });
    expect(starts(final, 'D')).toEqual([32_000]);
    expect(fsm.response(486)).toEqual([{ type: 'ack' }]);
    expect(fsm.response(200)).toEqual([]);
    expect(fsm.timer('D')).toEqual([{ type: 'terminated' }]);
  });

  it('TCP: Timer D is zero', () => {
    const fsm = new InviteClientFsm(TCP);
    fsm.start();
    expect(starts(fsm.response(603), 'D')).toEqual([0]);
  });

  it('2xx: Accepted for Timer M, every further 2xx goes to the TU (its ACK is the dialog’s)', () => {
    const fsm = new InviteClientFsm(UDP);
    fsm.start();
    const ok = fsm.response(200);
    expect(ok).not.toContainEqual({ type: 'ack' });
    expect(starts(ok, 'M')).toEqual([32_000]);
    expect(fsm.response(200)).toEqual([{ type: 'deliver' }]);
    expect(fsm.response(180)).toEqual([]);
    expect(fsm.timer('M')).toEqual([{ type: 'terminated' }]);
  });

  it('a transport error terminates it once', () => {
    const fsm = new InviteClientFsm(UDP);
    fsm.start();
    expect(fsm.transportError()).toEqual([{ type: 'terminated' }]);
    expect(fsm.transportError()).toEqual([]);
  });
});

describe('non-INVITE client (17.1.2.2)', () => {
  it('UDP Trying: Timer E doubles up to T2; Proceeding: every T2; Timer F gives up', () => {
    const fsm = new NonInviteClientFsm(UDP);
    expect(starts(fsm.start(), 'E')).toEqual([500]);
    const trying = [1, 2, 3, 4].flatMap(() => starts(fsm.timer('E'), 'E'));
    expect(trying).toEqual([1000, 2000, 4000, 4000]);
    expect(fsm.response(100)).toEqual([{ type: 'deliver' }]);
    expect(starts(fsm.timer('E'), 'E')).toEqual([4000]);
    expect(types(fsm.timer('F'))).toEqual(['stop', 'timeout', 'terminated']);
  });

  it('a final stops E and F, is delivered, and its retransmissions are absorbed for Timer K = T4', () => {
    const fsm = new NonInviteClientFsm(UDP);
    fsm.start();
    const final = fsm.response(200);
    expect(final).toContainEqual({ type: 'stop', timer: 'E' });
    expect(final).toContainEqual({ type: 'stop', timer: 'F' });
    expect(starts(final, 'K')).toEqual([5000]);
    expect(final.at(-1)).toEqual({ type: 'deliver' });
    expect(fsm.response(200)).toEqual([]);
    expect(fsm.timer('E')).toEqual([]);
    expect(fsm.timer('K')).toEqual([{ type: 'terminated' }]);
  });

  it('TCP: no E, K is zero, a timeout override replaces F', () => {
    const fsm = new NonInviteClientFsm({ reliable: true, timeoutMs: 5000 });
    const first = fsm.start();
    expect(starts(first, 'E')).toEqual([]);
    expect(starts(first, 'F')).toEqual([5000]);
    expect(starts(fsm.response(481), 'K')).toEqual([0]);
  });
});

describe('INVITE server (17.2.1, RFC 6026 8.7)', () => {
  it('UDP non-2xx final: Timer G doubles up to T2 until the ACK, then Timer I absorbs ACKs', () => {
    const fsm = new InviteServerFsm(UDP);
    expect(fsm.request()).toEqual([]); // nothing sent yet
    expect(fsm.respond(100)).toEqual([{ type: 'send' }]);
    expect(fsm.request()).toEqual([{ type: 'send' }]); // the 100 again
    const final = fsm.respond(404);
    expect(final[0]).toEqual({ type: 'send' });
    expect(starts(final, 'G')).toEqual([500]);
    expect(starts(final, 'H')).toEqual([32_000]);
    const g = [1, 2, 3, 4].flatMap(() => starts(fsm.timer('G'), 'G'));
    expect(g).toEqual([1000, 2000, 4000, 4000]);
    expect(fsm.request()).toEqual([{ type: 'send' }]); // the INVITE again: the 404 again
    const ack = fsm.ack();
    expect(ack).toEqual([
      { type: 'stop', timer: 'G' },
      { type: 'stop', timer: 'H' },
      { type: 'start', timer: 'I', ms: 5000 },
    ]);
    expect(fsm.state).toBe('confirmed');
    expect(fsm.ack()).toEqual([]);
    expect(fsm.timer('G')).toEqual([]);
    expect(fsm.timer('I')).toEqual([{ type: 'terminated' }]);
  });

  it('Timer H: no ACK ends it with a timeout', () => {
    const fsm = new InviteServerFsm(UDP);
    fsm.respond(486);
    expect(types(fsm.timer('H'))).toEqual(['stop', 'timeout', 'terminated']);
  });

  it('TCP: no G; Timer I is zero', () => {
    const fsm = new InviteServerFsm(TCP);
    expect(starts(fsm.respond(486), 'G')).toEqual([]);
    expect(starts(fsm.ack(), 'I')).toEqual([0]);
  });

  it('2xx: Accepted (its retransmissions are the dialog’s) for Timer L; a second final is not sent', () => {
    const fsm = new InviteServerFsm(UDP);
    const ok = fsm.respond(200);
    expect(ok).toEqual([{ type: 'send' }, { type: 'start', timer: 'L', ms: 32_000 }]);
    expect(fsm.respond(487)).toEqual([]);
    expect(fsm.ack()).toEqual([]);
    expect(fsm.timer('L')).toEqual([{ type: 'terminated' }]);
  });
});

describe('non-INVITE server (17.2.2)', () => {
  it('absorbs a retransmission in Trying, answers it again after that, Timer J = 64·T1 on UDP', () => {
    const fsm = new NonInviteServerFsm(UDP);
    expect(fsm.request()).toEqual([]);
    expect(fsm.respond(200)).toEqual([{ type: 'send' }, { type: 'start', timer: 'J', ms: 32_000 }]);
    expect(fsm.request()).toEqual([{ type: 'send' }]);
    expect(fsm.respond(500)).toEqual([]);
    expect(fsm.timer('J')).toEqual([{ type: 'terminated' }]);
    expect(fsm.request()).toEqual([]);
  });

  it('TCP: J is what the UA keeps completed transactions for (0 by the RFC)', () => {
    expect(starts(new NonInviteServerFsm(TCP).respond(200), 'J')).toEqual([0]);
    expect(
      starts(new NonInviteServerFsm({ reliable: true, reliableRetainMs: 32_000 }).respond(200), 'J'),
    ).toEqual([32_000]);
  });
});
