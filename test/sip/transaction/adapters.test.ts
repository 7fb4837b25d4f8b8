/**
 * The transaction adapters (client.ts, server.ts) on a fake connection with
 * fake timers: what goes on the wire when, over UDP and over TCP.
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createResponse } from '../../../src/sip/message/build.js';
import { parseMessage } from '../../../src/sip/message/parse.js';
import type { SipMessage, SipRequest, SipResponse } from '../../../src/sip/message/types.js';
import { ClientTransactions } from '../../../src/sip/transaction/client.js';
import { ServerTransactions } from '../../../src/sip/transaction/server.js';
import type { SipConnection, SipTransportName } from '../../../src/sip/transport/connection.js';

class FakeConnection extends EventEmitter implements SipConnection {
  static next = 1;
  readonly id = FakeConnection.next++;
  readonly localAddress = '127.0.0.1';
  readonly localPort = 5060;
  closed = false;
  readonly sent: { at: number; message: SipMessage }[] = [];
  readonly transport: SipTransportName;

  constructor(transport: SipTransportName) {
    super();
    this.transport = transport;
  }

  send(message: SipMessage): boolean {
    if (this.closed) return false;
    this.sent.push({ at: Date.now(), message });
    return true;
  }

  /** When each message matching `what` went out, ms from `t0`. */
  times(t0: number, what: (m: SipMessage) => boolean): number[] {
    return this.sent.filter((s) => what(s.message)).map((s) => s.at - t0);
  }
}

function request(method: string, branch = 'z9hG4bK-1', cseq = 1): SipRequest {
  const text = [
    `${method} sip:bot@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.2:5070;branch=${branch}`,
    'From: <sip:ringcx@127.0.0.2>;tag=a',
    'To: <sip:bot@127.0.0.1>;tag=b',
    'Call-ID: tx-test',
    `CSeq: ${cseq} ${method}`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const r = parseMessage(Buffer.from(text));
  if (!r.ok || r.message.type !== 'request') throw new Error('bad test request');
  return r.message;
}

const isMethod = (method: string) => (m: SipMessage) => m.type === 'request' && m.method === method;
const isStatus = (status: number) => (m: SipMessage) => m.type === 'response' && m.status === status;

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('client transactions over UDP', () => {
  it('non-INVITE: Timer E retransmits (500, 1000, 2000, 4000, 4000 ms apart) until the final; K absorbs its copies', async () => {
    const c = new FakeConnection('udp');
    const tx = new ClientTransactions();
    const info = request('INFO');
    const finals: number[] = [];
    const result = tx.send(c, info, { onFinal: (r) => finals.push(r.status) });
    await vi.advanceTimersByTimeAsync(11_600);
    expect(c.times(0, isMethod('INFO'))).toEqual([0, 500, 1500, 3500, 7500, 11_500]);
    const ok = createResponse(info, 200);
    expect(tx.handleResponse(ok)).toBe(true);
    // onFinal runs as the final is handled, before any continuation of the promise.
    expect(finals).toEqual([200]);
    await expect(result).resolves.toBe(ok);
    await vi.advanceTimersByTimeAsync(4000);
    expect(c.times(0, isMethod('INFO'))).toHaveLength(6);
    // A copy of the final within T4 is the transaction's (no stray-response warning).
    expect(tx.handleResponse(createResponse(info, 200))).toBe(true);
    await vi.advanceTimersByTimeAsync(1001);
    expect(tx.handleResponse(createResponse(info, 200))).toBe(false);
    expect(finals).toEqual([200]);
  });

  it('non-INVITE: no final within Timer F (32 s) rejects SIP_TRANSACTION_TIMEOUT', async () => {
    const c = new FakeConnection('udp');
    const tx = new ClientTransactions();
    const result = tx.send(c, request('BYE'));
    const outcome = result.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(32_000);
    expect(await outcome).toMatchObject({ code: 'SIP_TRANSACTION_TIMEOUT' });
    // 0.5, 1.5, 3.5, 7.5 s, then every 4 s: 11 transmissions in 32 s.
    expect(c.times(0, isMethod('BYE'))).toHaveLength(11);
    expect(tx.size).toBe(0);
  });

  it('INVITE: Timer A doubles until a provisional; a 486 is ACKed, and ACKed again when it comes again', async () => {
    const c = new FakeConnection('udp');
    const tx = new ClientTransactions();
    const invite = request('INVITE');
    const seen: number[] = [];
    tx.invite(c, invite, {
      onResponse: (r) => seen.push(r.status),
      onTimeout: () => seen.push(-1),
      onClosed: () => seen.push(-2),
    });
    await vi.advanceTimersByTimeAsync(3600);
    expect(c.times(0, isMethod('INVITE'))).toEqual([0, 500, 1500, 3500]);
    tx.handleResponse(createResponse(invite, 180, undefined, { toTag: 'x' }));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(c.times(0, isMethod('INVITE'))).toHaveLength(4);
    const busy = createResponse(invite, 486, undefined, { toTag: 'x' });
    tx.handleResponse(busy);
    tx.handleResponse(busy);
    expect(seen).toEqual([180, 486]);
    expect(c.times(0, isMethod('ACK'))).toHaveLength(2);
  });
});

describe('client transactions over TCP keep their old shape', () => {
  it('no retransmission; Timer F', async () => {
    const c = new FakeConnection('tcp');
    const tx = new ClientTransactions();
    const outcome = tx.send(c, request('OPTIONS')).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(31_999);
    expect(c.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(await outcome).toMatchObject({ code: 'SIP_TRANSACTION_TIMEOUT' });
  });
});

describe('server transactions over UDP', () => {
  function respond(tx: ServerTransactions, c: FakeConnection, req: SipRequest, status: number): SipResponse {
    const match = tx.match(req, c);
    if (match.kind !== 'new') throw new Error(`expected a new transaction, got ${match.kind}`);
    const response = createResponse(req, status, undefined, { toTag: 'srv' });
    tx.respond(match.transaction, response);
    return response;
  }

  it('INVITE refused: Timer G retransmits the 486 until the ACK; the ACK and its copies are absorbed', async () => {
    const c = new FakeConnection('udp');
    const tx = new ServerTransactions();
    const invite = request('INVITE');
    respond(tx, c, invite, 486);
    await vi.advanceTimersByTimeAsync(7600);
    expect(c.times(0, isStatus(486))).toEqual([0, 500, 1500, 3500, 7500]);
    // The INVITE again: the 486 again.
    expect(tx.match(invite, c).kind).toBe('retransmission');
    expect(c.times(0, isStatus(486))).toHaveLength(6);
    const ack = request('ACK');
    expect(tx.match(ack, c).kind).toBe('ack-absorbed');
    await vi.advanceTimersByTimeAsync(4000);
    expect(c.times(0, isStatus(486))).toHaveLength(6);
    expect(tx.match(ack, c).kind).toBe('ack-absorbed');
    await vi.advanceTimersByTimeAsync(1001);
    expect(tx.size).toBe(0);
  });

  it('INVITE refused and never ACKed: Timer H stops the retransmissions after 32 s', async () => {
    const c = new FakeConnection('udp');
    const tx = new ServerTransactions();
    respond(tx, c, request('INVITE'), 603);
    await vi.advanceTimersByTimeAsync(40_000);
    // 0, 0.5, 1.5, 3.5, 7.5, then every 4 s up to 31.5 s.
    expect(c.times(0, isStatus(603))).toEqual([
      0, 500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
    ]);
    expect(tx.size).toBe(0);
  });

  it('non-INVITE: a retransmitted request gets the final again for Timer J, then counts as new', async () => {
    const c = new FakeConnection('udp');
    const tx = new ServerTransactions();
    const bye = request('BYE');
    respond(tx, c, bye, 200);
    await vi.advanceTimersByTimeAsync(31_000);
    expect(tx.match(bye, c).kind).toBe('retransmission');
    expect(c.times(0, isStatus(200))).toEqual([0, 31_000]);
    await vi.advanceTimersByTimeAsync(1001);
    expect(tx.match(bye, c).kind).toBe('new');
  });

  it('TCP: a refused INVITE is sent once and waits for its ACK without retransmitting', async () => {
    const c = new FakeConnection('tcp');
    const tx = new ServerTransactions();
    respond(tx, c, request('INVITE'), 486);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(c.times(0, isStatus(486))).toEqual([0]);
    expect(tx.match(request('ACK'), c).kind).toBe('ack-absorbed');
  });
});
