/**
 * The INVITE dialog usage against a fake connection and a fake UA host: no
 * sockets, fake timers for 2xx retransmission, Timer H and glare.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SoftphoneError } from '../../../src/errors.js';
import {
  type DialogHost,
  glareDelayMs,
  InviteSession,
  REINVITE_TIMEOUT_MS,
  type SessionDescriptionHandler,
  type Termination,
} from '../../../src/sip/dialog/invite-session.js';
import { createResponse } from '../../../src/sip/message/build.js';
import { parseMessage } from '../../../src/sip/message/parse.js';
import type { SipMessage, SipRequest, SipResponse } from '../../../src/sip/message/types.js';
import type { IncomingRequest } from '../../../src/sip/transaction/server.js';
import type { SipConnection } from '../../../src/sip/transport/connection.js';

class FakeConnection implements SipConnection {
  readonly id = 1;
  readonly transport = 'tcp' as const;
  readonly localAddress = '192.0.2.10';
  readonly localPort = 5070;
  closed = false;
  readonly sent: SipMessage[] = [];
  send(message: SipMessage): boolean {
    this.sent.push(message);
    return !this.closed;
  }
  once(): this {
    return this;
  }
  requests(method: string): SipRequest[] {
    return this.sent.filter((m): m is SipRequest => m.type === 'request' && m.method === method);
  }
  responses(status?: number): SipResponse[] {
    return this.sent.filter(
      (m): m is SipResponse => m.type === 'response' && (status === undefined || m.status === status),
    );
  }
}

interface InviteHandlers {
  request: SipRequest;
  onResponse(r: SipResponse): void;
  onTimeout(): void;
  onClosed(e: SoftphoneError): void;
  cancelled: number;
}

function fakeHost(connection: FakeConnection, options: { authorize?: DialogHost['authorize'] } = {}) {
  const invites: InviteHandlers[] = [];
  const requests: SipRequest[] = [];
  let answerStatus = 200;
  const host: DialogHost = {
    userAgent: 'test-ua',
    contact: () => '<sip:bot@192.0.2.10:5070;transport=tcp;ob>',
    request: async (request) => {
      requests.push(request);
      connection.send(request);
      return createResponse(request, answerStatus);
    },
    invite: (_c, request, handlers) => {
      connection.send(request);
      const entry: InviteHandlers = { request, ...handlers, cancelled: 0 };
      invites.push(entry);
      return {
        request,
        connection,
        completed: false,
        cancel: async () => {
          entry.cancelled++;
          return createResponse(request, 200);
        },
        dispose: () => {},
      };
    },
    ...(options.authorize && { authorize: options.authorize }),
  };
  return {
    host,
    invites,
    requests,
    setRequestStatus: (s: number) => {
      answerStatus = s;
    },
  };
}

/** An SDH that accepts everything and records what happened. */
function fakeSdh(overrides: Partial<SessionDescriptionHandler> = {}) {
  const log: string[] = [];
  const sdh: SessionDescriptionHandler = {
    getOffer: () => {
      log.push('offer');
      return 'v=0\r\no=us 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n';
    },
    onOffer: (sdp) => {
      log.push(`onOffer:${sdp.includes('sendonly') ? 'hold' : 'plain'}`);
      return {
        ok: true,
        answer:
          'v=0\r\no=us 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n',
      };
    },
    onAnswer: (_sdp, info) => {
      log.push(`onAnswer:${info.early ? 'early' : 'final'}`);
      return { ok: true };
    },
    rollback: () => log.push('rollback'),
    ...overrides,
  };
  return { sdh, log };
}

const SDP =
  'v=0\r\no=them 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n';

function request(
  method: string,
  o: {
    callId?: string;
    fromTag?: string;
    toTag?: string;
    cseq?: number;
    body?: string;
    extra?: string[];
  } = {},
): SipRequest {
  const body = o.body ?? '';
  const text = [
    `${method} sip:bot@192.0.2.10:5070;transport=tcp SIP/2.0`,
    `Via: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bK-${method}-${o.cseq ?? 1}-${Math.random().toString(36).slice(2)}`,
    'Max-Forwards: 70',
    `From: <sip:alice@example.com>;tag=${o.fromTag ?? 'alice'}`,
    `To: <sip:bot@example.com>${o.toTag ? `;tag=${o.toTag}` : ''}`,
    `Call-ID: ${o.callId ?? 'call-1'}`,
    `CSeq: ${o.cseq ?? 1} ${method}`,
    'Contact: <sip:alice@192.0.2.20:5060;transport=tcp>',
    'Record-Route: <sip:proxy.example.com;lr>',
    ...(o.extra ?? []),
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
  const parsed = parseMessage(Buffer.from(text));
  if (!parsed.ok || parsed.message.type !== 'request') throw new Error(`bad test request: ${text}`);
  return parsed.message;
}

function incoming(connection: FakeConnection, req: SipRequest): IncomingRequest {
  return {
    request: req,
    flow: connection,
    respond: (status, reason, options) => {
      const r = createResponse(req, status, reason, options);
      connection.send(r);
      return r;
    },
  };
}

function response(
  req: SipRequest,
  status: number,
  o: { toTag?: string; body?: string; contact?: boolean } = {},
): SipResponse {
  const r = createResponse(req, status, undefined, {
    ...(o.toTag !== undefined && { toTag: o.toTag }),
    headers: [
      ...(o.contact === false
        ? []
        : ([['Contact', '<sip:carol@192.0.2.30:5060;transport=tcp>']] as [string, string][])),
      ['Record-Route', '<sip:proxy.example.com;lr>'],
    ],
    ...(o.body && { body: Buffer.from(o.body), contentType: 'application/sdp' }),
  });
  return r;
}

let conn: FakeConnection;
beforeEach(() => {
  conn = new FakeConnection();
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function uas(body = SDP, sdh = fakeSdh()) {
  const host = fakeHost(conn);
  const invite = request('INVITE', { body });
  const session = InviteSession.incoming(incoming(conn, invite), host.host, sdh.sdh);
  const terminated: Termination[] = [];
  session.on('terminated', (t) => terminated.push(t));
  const events: string[] = [];
  for (const e of ['confirmed', 'media', 'ackTimeout'] as const) session.on(e, () => events.push(e));
  return { session, host, invite, terminated, events, log: sdh.log };
}

function toTagOf(r: SipResponse | undefined): string {
  return String(r?.headers.to()?.params.get('tag'));
}

describe('InviteSession as UAS', () => {
  it('answers with 200 + SDP, Contact and Record-Route, retransmits it (T1 doubling) until the ACK', () => {
    const { session, events } = uas();
    expect(session.accept()).toBe(true);
    const ok = conn.responses(200)[0];
    expect(ok?.headers.get('Contact')).toContain(';ob>');
    expect(ok?.headers.getAll('Record-Route')).toEqual(['<sip:proxy.example.com;lr>']);
    expect(session.state).toBe('accepted');
    vi.advanceTimersByTime(500);
    expect(conn.responses(200)).toHaveLength(2);
    vi.advanceTimersByTime(1000);
    expect(conn.responses(200)).toHaveLength(3);
    session.receive(incoming(conn, request('ACK', { toTag: toTagOf(ok) })));
    expect(session.state).toBe('confirmed');
    vi.advanceTimersByTime(10_000);
    expect(conn.responses(200)).toHaveLength(3);
    expect(events).toEqual(['media', 'confirmed']);
  });

  it('without an ACK gives up after Timer H (ackTimeout)', () => {
    const { session, events } = uas();
    session.accept();
    vi.advanceTimersByTime(32_000);
    expect(events).toContain('ackTimeout');
    // T1 doubling up to T2: 0.5, 1, 2, 4, 4, 4 … within 32 s.
    expect(conn.responses(200).length).toBeGreaterThanOrEqual(9);
  });

  it('late offer: our offer in the 200, the answer from the ACK', () => {
    const { session, log, events } = uas('');
    session.accept();
    const ok = conn.responses(200)[0];
    expect(Buffer.from(ok?.body ?? []).toString()).toContain('m=audio 30000');
    expect(log).toEqual(['offer']);
    session.receive(incoming(conn, request('ACK', { toTag: toTagOf(ok), body: SDP })));
    expect(log).toEqual(['offer', 'onAnswer:final']);
    expect(events).toEqual(['media', 'confirmed']);
  });

  it('late offer with an ACK that has no answer ends the session (bad-answer)', () => {
    const { session, terminated } = uas('');
    session.accept();
    session.receive(incoming(conn, request('ACK', { toTag: toTagOf(conn.responses(200)[0]) })));
    expect(terminated).toEqual([{ cause: 'bad-answer', reason: 'no SDP answer in the ACK' }]);
  });

  it('an offer it cannot take gets the SDH status and Warning, and the session ends rejected', () => {
    const sdh = fakeSdh({
      onOffer: () => ({ ok: false, status: 488, reason: 'Not Acceptable Here', warning: '305 x "no"' }),
    });
    const { session, terminated } = uas(SDP, sdh);
    expect(session.accept()).toBe(false);
    expect(conn.responses(488)[0]?.headers.get('Warning')).toBe('305 x "no"');
    expect(terminated[0]).toMatchObject({ cause: 'rejected', status: 488 });
  });

  it('CANCEL before the answer: 200 for the CANCEL, 487 for the INVITE; after the answer: no effect', () => {
    const a = uas();
    a.session.cancelReceived(incoming(conn, request('CANCEL')));
    expect(conn.responses().map((r) => `${r.status} ${r.headers.cseq()?.method}`)).toEqual([
      '200 CANCEL',
      '487 INVITE',
    ]);
    expect(a.terminated[0]).toMatchObject({ cause: 'cancelled', status: 487 });
    conn = new FakeConnection();
    const b = uas();
    b.session.accept();
    b.session.cancelReceived(incoming(conn, request('CANCEL')));
    expect(b.session.state).toBe('accepted');
    expect(b.terminated).toEqual([]);
  });

  it('re-INVITE: answered with 200 and the SDH answer; refused offers keep the session; 491 while ours is pending', async () => {
    const refusing = { value: false };
    const sdh = fakeSdh();
    const baseOnOffer = sdh.sdh.onOffer;
    sdh.sdh.onOffer = (s) =>
      refusing.value
        ? { ok: false, status: 488, reason: 'Not Acceptable Here', warning: '305 a "b"' }
        : baseOnOffer(s);
    const { session, host, log } = uas(SDP, sdh);
    session.accept();
    const tag = toTagOf(conn.responses(200)[0]);
    session.receive(incoming(conn, request('ACK', { toTag: tag })));
    session.receive(
      incoming(
        conn,
        request('INVITE', { toTag: tag, cseq: 2, body: SDP.replace('t=0 0', 't=0 0\r\na=sendonly') }),
      ),
    );
    expect(log).toContain('onOffer:hold');
    const reOk = conn.responses(200).at(-1);
    expect(reOk?.headers.cseq()).toEqual({ seq: 2, method: 'INVITE' });
    session.receive(incoming(conn, request('ACK', { toTag: tag, cseq: 2 })));
    refusing.value = true;
    session.receive(incoming(conn, request('INVITE', { toTag: tag, cseq: 3, body: SDP })));
    expect(conn.responses(488)).toHaveLength(1);
    expect(session.state).toBe('confirmed');
    refusing.value = false;
    // Glare: our re-INVITE is pending when theirs arrives.
    const ours = session.reinvite();
    expect(host.invites).toHaveLength(1);
    session.receive(incoming(conn, request('INVITE', { toTag: tag, cseq: 4, body: SDP })));
    expect(conn.responses(491)).toHaveLength(1);
    const reinvite = host.invites[0] as InviteHandlers;
    reinvite.onResponse(response(reinvite.request, 200, { body: SDP }));
    expect(await ours).toMatchObject({ ok: true, status: 200 });
    expect(conn.requests('ACK')).toHaveLength(1);
  });

  it('our re-INVITE refused with 491 is retried once after the RFC 3261 14.1 wait; other refusals roll back', async () => {
    const { session, host, log } = uas();
    session.accept();
    session.receive(incoming(conn, request('ACK', { toTag: toTagOf(conn.responses(200)[0]) })));
    const result = session.reinvite();
    const first = host.invites[0] as InviteHandlers;
    first.onResponse(response(first.request, 491));
    expect(log.filter((l) => l === 'rollback')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2000);
    expect(host.invites).toHaveLength(2);
    const second = host.invites[1] as InviteHandlers;
    second.onResponse(response(second.request, 488));
    expect(await result).toMatchObject({ ok: false, status: 488 });
    expect(session.state).toBe('confirmed');
    expect(glareDelayMs(true, () => 0)).toBe(2100);
    expect(glareDelayMs(false, () => 0.999)).toBeLessThan(2000);
  });

  it('a re-INVITE answered only with 100 is cancelled after REINVITE_TIMEOUT_MS and rolls back (Timer B stops at a provisional)', async () => {
    const { session, host, log } = uas();
    session.accept();
    session.receive(incoming(conn, request('ACK', { toTag: toTagOf(conn.responses(200)[0]) })));
    const result = session.reinvite();
    const pending = host.invites[0] as InviteHandlers;
    pending.onResponse(response(pending.request, 100));
    await vi.advanceTimersByTimeAsync(REINVITE_TIMEOUT_MS - 1);
    expect(pending.cancelled).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(await result).toMatchObject({ ok: false, status: 408 });
    expect(pending.cancelled).toBe(1);
    expect(log).toContain('rollback');
    expect(session.state).toBe('confirmed');
    // A late answer to it changes nothing.
    pending.onResponse(response(pending.request, 487));
    expect(session.state).toBe('confirmed');
  });

  it('BYE: from them in any state ends it remote-bye; ours sends BYE in the dialog; lower CSeq → 500; unknown → 501', async () => {
    const { session, terminated, host } = uas();
    session.accept();
    const tag = toTagOf(conn.responses(200)[0]);
    session.receive(incoming(conn, request('ACK', { toTag: tag })));
    session.receive(incoming(conn, request('FROB', { toTag: tag, cseq: 2 })));
    session.receive(incoming(conn, request('INFO', { toTag: tag, cseq: 1 })));
    expect(
      conn
        .responses()
        .slice(-2)
        .map((r) => r.status),
    ).toEqual([501, 500]);
    await session.bye();
    expect(host.requests.map((r) => r.method)).toEqual(['BYE']);
    expect(host.requests[0]?.headers.getAll('Route')).toEqual(['<sip:proxy.example.com;lr>']);
    expect(host.requests[0]?.uri).toBe('sip:alice@192.0.2.20:5060;transport=tcp');
    expect(terminated).toEqual([{ cause: 'local-bye' }]);
    // A BYE for a dialog that has ended: 481.
    session.receive(incoming(conn, request('BYE', { toTag: tag, cseq: 3 })));
    expect(conn.responses(481)).toHaveLength(1);

    conn = new FakeConnection();
    const waiting = uas();
    waiting.session.accept();
    waiting.session.receive(
      incoming(conn, request('BYE', { toTag: toTagOf(conn.responses(200)[0]), cseq: 2 })),
    );
    expect(waiting.terminated).toEqual([{ cause: 'remote-bye' }]);
    vi.advanceTimersByTime(5000);
    expect(conn.responses(200).filter((r) => r.headers.cseq()?.method === 'INVITE')).toHaveLength(1);

    conn = new FakeConnection();
    const unanswered = uas();
    await unanswered.session.bye();
    expect(conn.responses(480)).toHaveLength(1);
  });

  it('REFER is declined and reported; NOTIFY with a sipfrag follows a transfer we asked for', async () => {
    const { session, host } = uas();
    session.accept();
    const tag = toTagOf(conn.responses(200)[0]);
    session.receive(incoming(conn, request('ACK', { toTag: tag })));
    const refers: unknown[] = [];
    session.on('refer', (r) => refers.push(r));
    session.receive(
      incoming(conn, request('REFER', { toTag: tag, cseq: 2, extra: ['Refer-To: <sip:carol@example.com>'] })),
    );
    expect(conn.responses(603)).toHaveLength(1);
    expect(refers).toEqual([{ referTo: '<sip:carol@example.com>', referredBy: undefined, accepted: false }]);

    host.setRequestStatus(202);
    const transfer = session.refer('sip:dave@example.com', '<sip:bot@example.com>');
    await vi.advanceTimersByTimeAsync(0);
    expect(host.requests.at(-1)?.headers.get('Refer-To')).toBe('<sip:dave@example.com>');
    const notify = (frag: string, state: string, cseq: number) => {
      const n = request('NOTIFY', {
        toTag: tag,
        cseq,
        extra: ['Event: refer', `Subscription-State: ${state}`, 'Content-Type: message/sipfrag'],
      });
      n.body = Buffer.from(frag);
      n.headers.set('Content-Length', String(n.body.byteLength));
      session.receive(incoming(conn, n));
    };
    notify('SIP/2.0 100 Trying\r\n', 'active;expires=60', 3);
    notify('SIP/2.0 200 OK\r\n', 'terminated;reason=noresource', 4);
    expect(await transfer).toEqual({ status: 200, reason: 'OK', final: true });
  });

  it('following REFERs: 202, an immediate NOTIFY 100 Trying, then the owner’s final status ends the subscription', async () => {
    const { session, host } = uas();
    session.followRefers(true);
    session.accept();
    const tag = toTagOf(conn.responses(200)[0]);
    session.receive(incoming(conn, request('ACK', { toTag: tag })));
    const refers: unknown[] = [];
    session.on('refer', (r) => refers.push(r));
    session.receive(
      incoming(
        conn,
        request('REFER', {
          toTag: tag,
          cseq: 2,
          extra: ['Refer-To: <sip:carol@example.com>', 'Referred-By: <sip:alice@example.com>'],
        }),
      ),
    );
    expect(conn.responses(202)).toHaveLength(1);
    expect(refers).toEqual([
      { referTo: '<sip:carol@example.com>', referredBy: '<sip:alice@example.com>', accepted: true },
    ]);
    await vi.advanceTimersByTimeAsync(0);
    const trying = host.requests.at(-1)!;
    expect(trying.method).toBe('NOTIFY');
    expect(trying.headers.get('Event')).toBe('refer');
    expect(trying.headers.get('Subscription-State')).toBe('active;expires=60');
    expect(trying.headers.get('Content-Type')).toBe('message/sipfrag;version=2.0');
    expect(Buffer.from(trying.body).toString()).toBe('SIP/2.0 100 Trying\r\n');
    await session.notifyRefer(486, 'Busy Here');
    const final = host.requests.at(-1)!;
    expect(final.headers.get('Subscription-State')).toBe('terminated;reason=noresource');
    expect(Buffer.from(final.body).toString()).toBe('SIP/2.0 486 Busy Here\r\n');
    expect(final.headers.cseq()!.seq).toBeGreaterThan(trying.headers.cseq()!.seq);
  });
});

describe('InviteSession as UAC', () => {
  const INIT = {
    target: 'sip:carol@example.com',
    from: '<sip:bot@example.com>',
    to: '<sip:carol@example.com>',
    callId: 'out-1',
    route: ['<sip:proxy.example.com;lr>'],
  };

  function uac(sdh = fakeSdh(), authorize?: DialogHost['authorize']) {
    const host = fakeHost(conn, authorize ? { authorize } : {});
    const session = InviteSession.outgoing(INIT, conn, host.host, sdh.sdh);
    const terminated: Termination[] = [];
    session.on('terminated', (t) => terminated.push(t));
    const progress: number[] = [];
    session.on('progress', (r) => progress.push(r.status));
    return {
      session,
      host,
      terminated,
      progress,
      log: sdh.log,
      tx: () => host.invites.at(-1) as InviteHandlers,
    };
  }

  it('sends the INVITE with our offer and Route; 180, 183 with SDP (early media), 200 → ACK, then BYE', async () => {
    const { session, tx, progress, log, host } = uac();
    const invite = tx().request;
    expect(invite.headers.getAll('Route')).toEqual(['<sip:proxy.example.com;lr>']);
    expect(invite.headers.get('Content-Type')).toBe('application/sdp');
    tx().onResponse(response(invite, 100));
    tx().onResponse(response(invite, 180, { toTag: 'carol' }));
    tx().onResponse(response(invite, 183, { toTag: 'carol', body: SDP }));
    expect(progress).toEqual([180, 183]);
    expect(session.state).toBe('early');
    tx().onResponse(response(invite, 200, { toTag: 'carol', body: SDP }));
    // The same SDP as the 183: not applied twice.
    expect(log).toEqual(['offer', 'onAnswer:early']);
    const ack = conn.requests('ACK')[0];
    expect(ack?.headers.cseq()).toEqual({ seq: 1, method: 'ACK' });
    expect(ack?.uri).toBe('sip:carol@192.0.2.30:5060;transport=tcp');
    expect(session.state).toBe('confirmed');
    // A retransmitted 200 gets the same ACK again; a 200 from another fork is ACKed and BYEd.
    tx().onResponse(response(invite, 200, { toTag: 'carol', body: SDP }));
    tx().onResponse(response(invite, 200, { toTag: 'dave', body: SDP }));
    expect(conn.requests('ACK')).toHaveLength(3);
    expect(
      host.requests.filter((r) => r.method === 'BYE').map((r) => r.headers.to()?.params.get('tag')),
    ).toEqual(['dave']);
    await session.bye();
    expect(
      host.requests.filter((r) => r.method === 'BYE').map((r) => r.headers.to()?.params.get('tag')),
    ).toEqual(['dave', 'carol']);
  });

  it('a 3xx-6xx fails the call with its status; SDP rolled back', () => {
    const { tx, terminated, log } = uac();
    tx().onResponse(response(tx().request, 486, { toTag: 'carol' }));
    expect(terminated).toEqual([{ cause: 'rejected', status: 486, reason: 'Busy Here' }]);
    expect(log).toContain('rollback');
  });

  it('answers 407 for the registrar realm with a new CSeq and branch; a second challenge fails', () => {
    const { tx, host, terminated } = uac(fakeSdh(), () => ({
      ok: true,
      name: 'Proxy-Authorization',
      value: 'Digest x',
    }));
    const first = tx().request;
    tx().onResponse(response(first, 407, { toTag: 'p' }));
    expect(host.invites).toHaveLength(2);
    const second = tx().request;
    expect(second.headers.cseq()).toEqual({ seq: 2, method: 'INVITE' });
    expect(second.headers.get('Proxy-Authorization')).toBe('Digest x');
    expect(second.headers.topVia()?.params.get('branch')).not.toBe(
      first.headers.topVia()?.params.get('branch'),
    );
    expect(second.body).toEqual(first.body);
    tx().onResponse(response(second, 407, { toTag: 'p' }));
    tx().onResponse(response(tx().request, 407, { toTag: 'p' }));
    expect(terminated[0]).toMatchObject({ cause: 'auth-failed', status: 407 });
  });

  it('never answers a challenge from another realm', () => {
    const { tx, host, terminated } = uac(fakeSdh(), () => ({
      ok: false,
      code: 'SIP_AUTH_REALM',
      reason: 'realm evil.example is not the registrar realm',
    }));
    tx().onResponse(response(tx().request, 401, { toTag: 'p' }));
    expect(host.invites).toHaveLength(1);
    expect(terminated[0]).toMatchObject({ cause: 'auth-failed', code: 'SIP_AUTH_REALM' });
  });

  it('cancel before any provisional waits for one, then CANCELs; the 487 ends it cancelled', async () => {
    const { session, tx, terminated } = uac();
    const cancelled = session.cancel();
    expect(tx().cancelled).toBe(0);
    tx().onResponse(response(tx().request, 100));
    expect(tx().cancelled).toBe(1);
    tx().onResponse(response(tx().request, 487, { toTag: 'carol' }));
    await cancelled;
    expect(terminated).toEqual([{ cause: 'cancelled', status: 487, reason: 'Request Terminated' }]);
  });

  it('a 200 that crosses our CANCEL is ACKed and ended with BYE', async () => {
    const { session, tx, host } = uac();
    tx().onResponse(response(tx().request, 180, { toTag: 'carol' }));
    const cancelled = session.cancel();
    tx().onResponse(response(tx().request, 200, { toTag: 'carol', body: SDP }));
    await cancelled;
    expect(conn.requests('ACK')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(host.requests.map((r) => r.method)).toEqual(['BYE']);
  });

  it('no final response (Timer B) and a lost connection end it with a cause', () => {
    const a = uac();
    a.tx().onTimeout();
    expect(a.terminated[0]).toMatchObject({ cause: 'timeout', status: 408 });
    const b = uac();
    b.tx().onClosed({ message: 'gone' } as SoftphoneError);
    expect(b.terminated[0]).toMatchObject({ cause: 'connection-lost' });
  });

  it('a 2xx without any SDP answer is ACKed and ends bad-answer', () => {
    const { tx, terminated } = uac();
    tx().onResponse(response(tx().request, 200, { toTag: 'carol' }));
    expect(conn.requests('ACK')).toHaveLength(1);
    expect(terminated[0]).toMatchObject({ cause: 'bad-answer' });
  });
});
