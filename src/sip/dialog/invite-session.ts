/**
 * The INVITE dialog usage (RFC 3261 13-15, RFC 3264, RFC 3515), for a call
 * we answer (UAS) or place (UAC). Pure SIP: it knows nothing of RTP, files
 * or timers beyond the protocol's own; SDP goes through a
 * SessionDescriptionHandler the call's owner supplies, messages through a
 * DialogHost (client transactions, our Contact) and the SipConnection the
 * dialog lives on. Unit-tested against a fake connection.
 *
 * What it owns (SIP.js keeps the same in its session dialog):
 * - the dialog (ids, route set, target, CSeqs) once one exists;
 * - the offer/answer state: which message carries our offer or answer, the
 *   answer we wait for in an ACK (late offer) or a 2xx;
 * - 2xx retransmission until the ACK (13.3.1.4) and its Timer H give-up;
 * - UAC: provisional responses, early SDP, digest retry, CANCEL (9.1) and
 *   its race with the 2xx, ACK of every 2xx and BYE of extra forks (13.2.2.4);
 * - re-INVITE both ways with glare (14.1: 491 and a randomised retry),
 *   UPDATE, BYE, INFO, REFER with its NOTIFY sipfrag, OPTIONS/MESSAGE.
 */
import { EventEmitter } from 'node:events';
import { ErrorCodes, SoftphoneError } from '../../errors.js';
import { ALLOW, SUPPORTED } from '../capabilities.js';
import { generateBranch, generateTag, warningHeader } from '../message/build.js';
import { Headers } from '../message/headers.js';
import type { SipRequest, SipResponse } from '../message/types.js';
import type { InviteClientTransaction } from '../transaction/client.js';
import type { IncomingRequest } from '../transaction/server.js';
import { T1, T2, TIMER_H } from '../transaction/timers.js';
import type { SipConnection } from '../transport/connection.js';
import { Dialog } from './dialog.js';

/** The SDP side of the call, supplied by its owner. */
export interface SessionDescriptionHandler {
  /** Our offer (a new one each time: initial INVITE, late-offer 2xx, re-INVITE). */
  getOffer(): string;
  /** The SDP we last sent, offered again unchanged (re-homing); getOffer() when absent. */
  getSameOffer?(): string;
  /** The far end's offer: our answer, or why not (the usage answers 400/488 with the Warning). */
  onOffer(
    sdp: string,
  ): { ok: true; answer: string } | { ok: false; status: number; reason: string; warning?: string };
  /** The answer to our offer (in a 1xx when `early`, a 2xx or an ACK). */
  onAnswer(sdp: string, info: { early: boolean }): { ok: true } | { ok: false; reason: string };
  /** Our offer will not be answered (re-INVITE refused, cancelled): back to the previous state. */
  rollback(): void;
}

/** What the usage needs of the UA around it. */
export interface DialogHost {
  readonly userAgent: string;
  /** Our Contact header value for dialogs on this connection, e.g. `<sip:…;ob>`. */
  contact(connection: SipConnection): string;
  /** A non-INVITE client transaction; resolves with its final response. */
  request(request: SipRequest, connection: SipConnection, timeoutMs?: number): Promise<SipResponse>;
  /** An INVITE client transaction. */
  invite(
    connection: SipConnection,
    request: SipRequest,
    handlers: {
      onResponse(response: SipResponse): void;
      onTimeout(): void;
      onClosed(error: SoftphoneError): void;
    },
  ): InviteClientTransaction;
  /**
   * Credentials for a 401/407 to an INVITE: the header to add, or why the
   * challenge must not be answered (another realm: never leak a digest).
   */
  authorize?(
    response: SipResponse,
    request: SipRequest,
  ): { ok: true; name: string; value: string } | { ok: false; code: string; reason: string };
}

export type InviteSessionState =
  /** UAS: INVITE received, no final response yet. */
  | 'incoming'
  /** UAC: INVITE sent, nothing but 100 back. */
  | 'calling'
  /** UAC: a 18x arrived (ringing, early media). */
  | 'early'
  /** UAS: 2xx sent, its ACK not yet here. */
  | 'accepted'
  /** The dialog is established (ACK received or sent). */
  | 'confirmed'
  | 'terminated';

export type TerminationCause =
  /** The far end sent BYE. */
  | 'remote-bye'
  /** We sent BYE (bye()). */
  | 'local-bye'
  /** UAS: the caller cancelled before the answer; UAC: we cancelled (487). */
  | 'cancelled'
  /** UAS: we rejected the INVITE; UAC: the callee answered 3xx-6xx. */
  | 'rejected'
  /** UAS: no ACK for our 2xx within Timer H (the owner should BYE). */
  | 'ack-timeout'
  /** UAC: no final response within Timer B. */
  | 'timeout'
  /** The connection closed before the call was answered. */
  | 'connection-lost'
  /** UAC: a challenge we could not or would not answer. */
  | 'auth-failed'
  /** The SDP answer (ACK, 2xx) was unusable: the session ends with BYE (RFC 3261 13.2.1). */
  | 'bad-answer';

export interface Termination {
  cause: TerminationCause;
  /** The SIP status that ended it (the callee's 486, our 488, 408 for Timer B, …). */
  status?: number;
  reason?: string;
  /** A stable error code where one applies (SIP_AUTH_REALM, …). */
  code?: string;
}

export interface ReferProgress {
  status: number;
  reason: string;
  /** True for the last NOTIFY (a final status, or the subscription ended). */
  final: boolean;
}

export interface InviteSessionEvents {
  /** UAC: a provisional response (180, 183 with or without SDP). */
  progress: [response: SipResponse];
  /** The dialog is established: ACK received (UAS) or sent (UAC). */
  confirmed: [];
  /** An offer/answer exchange completed (the SDH's state changed): update the media. */
  media: [];
  /** UAS: the 2xx was never ACKed (Timer H); RFC 3261 13.3.1.4 says end it with BYE. */
  ackTimeout: [];
  /** The far end sent INFO (answered 200). */
  info: [info: { contentType: string; body: Uint8Array }];
  /**
   * The far end asked us to transfer (REFER, RFC 3515): answered 603, or
   * 202 when the owner follows transfers (followRefers), in which case it
   * reports the new call's progress with notifyRefer().
   */
  refer: [info: { referTo: string; referredBy: string | undefined; accepted: boolean }];
  /** Progress of a transfer we asked for (NOTIFY with message/sipfrag). */
  referProgress: [progress: ReferProgress];
  /** Once, whatever ended the session. */
  terminated: [termination: Termination];
}

export interface OutgoingInit {
  /** Request-URI: whom we call. */
  target: string;
  /** Our identity (From without tag), e.g. `<sip:16505550100@sip.ringcentral.com>`. */
  from: string;
  /** To (without tag), usually the target as a name-addr. */
  to: string;
  callId: string;
  /** Route set for the initial INVITE (the outbound proxy, RFC 3261 8.1.2), in order. */
  route?: readonly string[];
  headers?: readonly (readonly [string, string])[];
}

/** RFC 3261 14.1: the wait before retrying a re-INVITE refused with 491. */
export function glareDelayMs(callIdOwner: boolean, random: () => number = Math.random): number {
  // The Call-ID's owner waits 2.1-4 s, the other side 0-2 s, so they do not collide again.
  return callIdOwner ? 2100 + Math.floor(random() * 1900) : Math.floor(random() * 2000);
}

/** How long a transfer waits for the final NOTIFY before giving up. */
export const REFER_TIMEOUT_MS = 64 * T1;
/** How long a re-INVITE may go without a final response, provisional or not (Timer B's value). */
export const REINVITE_TIMEOUT_MS = 64 * T1;
/** Digest rounds for one INVITE before giving up (a second challenge means wrong credentials). */
const MAX_AUTH_ROUNDS = 2;

export class InviteSession extends EventEmitter<InviteSessionEvents> {
  readonly role: 'uas' | 'uac';
  readonly callId: string;
  readonly #host: DialogHost;
  readonly #sdh: SessionDescriptionHandler;
  readonly #connection: SipConnection;
  #state: InviteSessionState;
  #dialog: Dialog | undefined;
  #termination: Termination | undefined;
  #disposed = false;
  /** Timer H: how long our 2xx waits for its ACK. */
  #ackTimeoutMs = TIMER_H;

  // UAS: the INVITE in its server transaction until the final response.
  #incoming: IncomingRequest | undefined;
  #localTag: string | undefined;
  /** Our 2xx waiting for its ACK (initial or re-INVITE). */
  #awaitingAck:
    | {
        response: SipResponse;
        cseq: number;
        offerInResponse: boolean;
        timer: NodeJS.Timeout;
        giveUp: NodeJS.Timeout;
      }
    | undefined;

  // UAC
  #invite: SipRequest | undefined;
  #inviteTx: InviteClientTransaction | undefined;
  #authRounds = 0;
  #provisional = false;
  #cancelRequested = false;
  /** The SDP answer a 18x brought (early media), so the 2xx need not repeat it. */
  #earlyAnswer: string | undefined;
  /** The ACK for our 2xx, re-sent for its retransmissions. */
  #ack: SipRequest | undefined;
  /** A re-INVITE of ours in progress. */
  #reinvite: InviteClientTransaction | undefined;
  #referWaiter: ((progress: ReferProgress) => void) | undefined;
  /** Accept REFERs (202) instead of declining them (603): the owner places the new call. */
  #followRefers = false;

  private constructor(
    role: 'uas' | 'uac',
    callId: string,
    host: DialogHost,
    sdh: SessionDescriptionHandler,
    connection: SipConnection,
    state: InviteSessionState,
  ) {
    super();
    this.role = role;
    this.callId = callId;
    this.#host = host;
    this.#sdh = sdh;
    this.#connection = connection;
    this.#state = state;
  }

  /** A call we are offered: answer it with accept(), progress(), reject(). */
  static incoming(
    incoming: IncomingRequest,
    host: DialogHost,
    sdh: SessionDescriptionHandler,
    options: { ackTimeoutMs?: number } = {},
  ): InviteSession {
    const s = new InviteSession(
      'uas',
      incoming.request.headers.callId() ?? '',
      host,
      sdh,
      incoming.flow,
      'incoming',
    );
    s.#incoming = incoming;
    s.#localTag = generateTag();
    if (options.ackTimeoutMs !== undefined) s.#ackTimeoutMs = options.ackTimeoutMs;
    return s;
  }

  /** A call we place: the INVITE (with our offer) goes out at once. */
  static outgoing(
    init: OutgoingInit,
    connection: SipConnection,
    host: DialogHost,
    sdh: SessionDescriptionHandler,
  ): InviteSession {
    const s = new InviteSession('uac', init.callId, host, sdh, connection, 'calling');
    s.#invite = s.#buildInvite(init, sdh.getOffer());
    s.#sendInvite();
    return s;
  }

  get state(): InviteSessionState {
    return this.#state;
  }

  get dialog(): Dialog | undefined {
    return this.#dialog;
  }

  get termination(): Termination | undefined {
    return this.#termination;
  }

  /** The dialog's connection (or the INVITE's, before there is a dialog). */
  get connection(): SipConnection {
    return this.#dialog?.flow ?? this.#connection;
  }

  /** The INVITE that started the session (ours as UAC, theirs as UAS). */
  get request(): SipRequest | undefined {
    return this.#invite ?? this.#incoming?.request;
  }

  // ── UAS ───────────────────────────────────────────────────────────────

  /** A provisional response (180 Ringing by default) before the answer. */
  progress(status = 180, reason?: string): void {
    if (this.#state !== 'incoming' || !this.#incoming) return;
    this.#incoming.respond(status, reason, {
      toTag: this.#localTag as string,
      headers: this.#contactHeaders(),
    });
  }

  /**
   * Answers with 200 OK: our answer to the INVITE's offer, or our offer when
   * it had none (the answer then comes in the ACK). An offer we cannot
   * accept gets 400/488 with a Warning instead, and the session ends
   * 'rejected'. Returns whether the call was answered.
   */
  accept(extraHeaders: readonly (readonly [string, string])[] = []): boolean {
    const incoming = this.#incoming;
    if (this.#state !== 'incoming' || !incoming) return false;
    const { request } = incoming;
    let body: string;
    let offerInResponse = false;
    if (request.body.byteLength > 0) {
      const result = this.#sdh.onOffer(Buffer.from(request.body).toString('utf8'));
      if (!result.ok) {
        this.#rejectWith(result.status, result.reason, result.warning);
        return false;
      }
      body = result.answer;
    } else {
      // RFC 3261 13.2.1: no offer in the INVITE → ours in the 2xx, the answer in the ACK.
      body = this.#sdh.getOffer();
      offerInResponse = true;
    }
    this.#dialog = Dialog.uas(request, this.#localTag as string, incoming.flow);
    // RFC 3261 12.1.1: the 2xx copies Record-Route.
    const headers: [string, string][] = request.headers
      .getAll('Record-Route')
      .map((rr) => ['Record-Route', rr]);
    headers.push(...this.#contactHeaders(), ...extraHeaders.map(([n, v]): [string, string] => [n, v]));
    const ok = incoming.respond(200, 'OK', {
      toTag: this.#localTag as string,
      headers,
      body: Buffer.from(body, 'utf8'),
      contentType: 'application/sdp',
    });
    this.#incoming = undefined;
    this.#state = 'accepted';
    this.#awaitAck(ok, request.headers.cseq()?.seq ?? 0, offerInResponse);
    if (!offerInResponse) this.emit('media');
    return true;
  }

  /** Refuses the call (486, 603, 488, …) or redirects it (302 with a Contact). */
  reject(status: number, reason?: string, headers: readonly (readonly [string, string])[] = []): void {
    const incoming = this.#incoming;
    if (this.#state !== 'incoming' || !incoming) return;
    const response = incoming.respond(status, reason, {
      toTag: this.#localTag as string,
      headers: headers.map(([n, v]): [string, string] => [n, v]),
    });
    this.#incoming = undefined;
    this.#terminate({ cause: 'rejected', status, reason: response.reason });
  }

  /**
   * The caller's CANCEL for our INVITE (RFC 3261 9.2): 200 for the CANCEL,
   * 487 for the INVITE when it is still unanswered; no effect after the answer.
   */
  cancelReceived(cancel: IncomingRequest): void {
    cancel.respond(200, undefined, { toTag: this.#localTag as string });
    const incoming = this.#incoming;
    if (this.#state !== 'incoming' || !incoming) return;
    incoming.respond(487, 'Request Terminated', { toTag: this.#localTag as string });
    this.#incoming = undefined;
    this.#terminate({ cause: 'cancelled', status: 487, reason: 'cancelled by the caller' });
  }

  // ── UAC ───────────────────────────────────────────────────────────────

  /**
   * Cancels a call not yet answered (RFC 3261 9.1): the CANCEL goes as soon
   * as a provisional response has arrived. A 2xx that crosses it is ACKed
   * and ended with BYE. Resolves when the session has ended.
   */
  async cancel(): Promise<void> {
    if (this.role !== 'uac' || (this.#state !== 'calling' && this.#state !== 'early')) return;
    this.#cancelRequested = true;
    if (this.#provisional) this.#sendCancel();
    await this.#ended();
  }

  // ── in the dialog ─────────────────────────────────────────────────────

  /** A request within the dialog (the owner routes it here by dialog key). */
  receive(incoming: IncomingRequest): void {
    const { request } = incoming;
    const dialog = this.#dialog;
    if (!dialog || this.#state === 'terminated') {
      if (request.method !== 'ACK') incoming.respond(481, 'Call/Transaction Does Not Exist');
      return;
    }
    if (!dialog.acceptRemoteCSeq(request)) {
      if (request.method !== 'ACK') incoming.respond(500, 'CSeq out of order');
      return;
    }
    switch (request.method) {
      case 'ACK':
        this.#onAck(request);
        return;
      case 'BYE':
        incoming.respond(200);
        this.#stopAckWait();
        this.#terminate({ cause: 'remote-bye' });
        return;
      case 'INVITE':
        this.#onReinvite(incoming);
        return;
      case 'UPDATE':
        this.#onUpdate(incoming);
        return;
      case 'INFO': {
        incoming.respond(200);
        const contentType = request.headers.get('Content-Type')?.split(';')[0]?.trim().toLowerCase() ?? '';
        this.emit('info', { contentType, body: request.body });
        return;
      }
      case 'NOTIFY':
        this.#onNotify(incoming);
        return;
      case 'REFER':
        this.#onRefer(incoming);
        return;
      case 'OPTIONS':
      case 'MESSAGE':
        incoming.respond(200, undefined, { headers: [['Allow', ALLOW]] });
        return;
      case 'PRACK':
        // We never send reliable provisionals (RFC 3262), so there is nothing to acknowledge.
        incoming.respond(481, 'Call/Transaction Does Not Exist');
        return;
      default:
        incoming.respond(501, undefined, { headers: [['Allow', ALLOW]] });
    }
  }

  /**
   * Ends the session: BYE in a dialog (resolves when it is answered or times
   * out), CANCEL for an unanswered call of ours, 480 for one we have not answered.
   */
  async bye(timeoutMs?: number): Promise<SipResponse | undefined> {
    if (this.#state === 'terminated') return undefined;
    if (this.#state === 'calling' || this.#state === 'early') {
      await this.cancel();
      return undefined;
    }
    if (this.#state === 'incoming') {
      this.reject(480, 'Temporarily Unavailable');
      return undefined;
    }
    const dialog = this.#dialog as Dialog;
    this.#stopAckWait();
    this.#terminate({ cause: 'local-bye' });
    if (dialog.flow.closed) return undefined;
    try {
      return await this.#host.request(
        dialog.createRequest('BYE', this.#host.userAgent),
        dialog.flow,
        timeoutMs,
      );
    } catch {
      return undefined;
    }
  }

  /**
   * Sends a new offer (hold, resume) in a re-INVITE. On 491 (glare) it waits
   * as RFC 3261 14.1 says and tries once more. Resolves with the final status;
   * on failure the SDP is rolled back and the session goes on unchanged.
   */
  async reinvite(): Promise<{ ok: boolean; status: number; reason: string }> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const result = await this.#reinviteOnce();
      if (result.status !== 491 || attempt === 1) return result;
      await new Promise((r) => setTimeout(r, glareDelayMs(this.role === 'uac')));
      if (this.#state !== 'confirmed') return result;
    }
    /* c8 ignore next */
    return { ok: false, status: 500, reason: 'unreachable' };
  }

  /**
   * Moves the dialog to `connection` after the one it lived on was lost: a
   * re-INVITE with our unchanged SDP and our Contact on the new connection
   * (RingCentral's edge re-homes the dialog on it; an UPDATE would get 481).
   * Resolves with its outcome; on failure the caller ends the call.
   */
  async rehome(connection: SipConnection): Promise<{ ok: boolean; status: number; reason: string }> {
    const dialog = this.#dialog;
    if (!dialog || this.#state !== 'confirmed') {
      return { ok: false, status: 481, reason: `the call is ${this.#state}` };
    }
    this.#stopAckWait();
    this.#reinvite?.dispose();
    this.#reinvite = undefined;
    dialog.flow = connection;
    return this.#reinviteOnce(true);
  }

  /** Sends INFO with `body` (e.g. application/json for the bot-partner interface). */
  async info(contentType: string, body: string | Uint8Array, timeoutMs?: number): Promise<SipResponse> {
    const dialog = this.#requireDialog('INFO');
    const request = dialog.createRequest('INFO', this.#host.userAgent);
    request.headers.append('Content-Type', contentType);
    request.body = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    return this.#host.request(request, dialog.flow, timeoutMs);
  }

  /** Whether REFERs from the far end are accepted (202, the owner follows them) or declined (603). */
  followRefers(follow: boolean): void {
    this.#followRefers = follow;
  }

  /**
   * Transferee side (RFC 3515 2.4.4-2.4.5): reports the new call's progress
   * to the transferor as a NOTIFY with a message/sipfrag status line; a final
   * status terminates the implicit subscription. Resolves with the NOTIFY's
   * response status (0 when it could not be sent: the dialog ended).
   */
  async notifyRefer(status: number, reason: string): Promise<number> {
    const dialog = this.#dialog;
    if (dialog === undefined || this.#state === 'terminated') return 0;
    const final = status >= 200;
    const request = dialog.createRequest('NOTIFY', this.#host.userAgent);
    request.headers
      .append('Event', 'refer')
      .append('Subscription-State', final ? 'terminated;reason=noresource' : 'active;expires=60')
      .append('Contact', this.#host.contact(dialog.flow))
      .append('Content-Type', 'message/sipfrag;version=2.0');
    request.body = Buffer.from(`SIP/2.0 ${status} ${reason}\r\n`, 'utf8');
    try {
      return (await this.#host.request(request, dialog.flow)).status;
    } catch {
      return 0;
    }
  }

  /**
   * Blind transfer (RFC 3515): REFER to `target`; resolves with the final
   * status the transferee reports in its NOTIFY sipfrag (or the REFER's own
   * refusal, or 408 when no final NOTIFY comes within REFER_TIMEOUT_MS).
   */
  async refer(target: string, referredBy: string): Promise<ReferProgress> {
    const dialog = this.#requireDialog('REFER');
    const request = dialog.createRequest('REFER', this.#host.userAgent);
    request.headers
      .append('Refer-To', target.startsWith('<') ? target : `<${target}>`)
      .append('Referred-By', referredBy)
      .append('Contact', this.#host.contact(dialog.flow));
    const final = new Promise<ReferProgress>((resolve) => {
      const timer = setTimeout(
        () => done({ status: 408, reason: 'no final NOTIFY for the transfer', final: true }),
        REFER_TIMEOUT_MS,
      );
      const done = (p: ReferProgress) => {
        clearTimeout(timer);
        this.#referWaiter = undefined;
        resolve(p);
      };
      this.#referWaiter = (p) => {
        if (p.final) done(p);
      };
    });
    const response = await this.#host.request(request, dialog.flow);
    if (response.status >= 300) {
      this.#referWaiter?.({ status: response.status, reason: response.reason, final: true });
    }
    return final;
  }

  /** Stops every timer; no more events. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#stopAckWait();
    this.#inviteTx?.dispose();
    this.#reinvite?.dispose();
  }

  // ── internals: UAS ────────────────────────────────────────────────────

  #contactHeaders(): [string, string][] {
    return [
      ['Contact', this.#host.contact(this.connection)],
      ['Allow', ALLOW],
      ['Supported', SUPPORTED],
      ['User-Agent', this.#host.userAgent],
    ];
  }

  #rejectWith(status: number, reason: string, warning: string | undefined): void {
    this.reject(status, reason, warning === undefined ? [] : [['Warning', warning]]);
  }

  /** RFC 3261 13.3.1.4: retransmit the 2xx (T1 doubling to T2) until the ACK; give up after Timer H. */
  #awaitAck(response: SipResponse, cseq: number, offerInResponse: boolean): void {
    this.#stopAckWait();
    let interval = T1;
    const again = () => {
      const wait = this.#awaitingAck;
      if (!wait || this.connection.closed) return;
      this.connection.send(wait.response);
      interval = Math.min(interval * 2, T2);
      wait.timer = setTimeout(again, interval);
    };
    this.#awaitingAck = {
      response,
      cseq,
      offerInResponse,
      timer: setTimeout(again, interval),
      giveUp: setTimeout(() => {
        this.#stopAckWait();
        if (offerInResponse) this.#sdh.rollback();
        this.emit('ackTimeout');
      }, this.#ackTimeoutMs),
    };
  }

  #stopAckWait(): void {
    const wait = this.#awaitingAck;
    if (!wait) return;
    clearTimeout(wait.timer);
    clearTimeout(wait.giveUp);
    this.#awaitingAck = undefined;
  }

  #onAck(request: SipRequest): void {
    const wait = this.#awaitingAck;
    if (!wait || request.headers.cseq()?.seq !== wait.cseq) return; // a retransmitted ACK
    this.#stopAckWait();
    if (wait.offerInResponse) {
      const answer = request.body.byteLength > 0 ? Buffer.from(request.body).toString('utf8') : '';
      const result = answer
        ? this.#sdh.onAnswer(answer, { early: false })
        : { ok: false as const, reason: 'no SDP answer in the ACK' };
      if (!result.ok) {
        // RFC 3261 13.2.1 / 14.2: a bad answer ends the session (the owner sends BYE).
        this.#confirm();
        this.#terminate({ cause: 'bad-answer', reason: result.reason });
        return;
      }
      this.emit('media');
    }
    this.#confirm();
  }

  #confirm(): void {
    if (this.#state === 'confirmed') return;
    this.#state = 'confirmed';
    this.emit('confirmed');
  }

  #onReinvite(incoming: IncomingRequest): void {
    const { request } = incoming;
    const dialog = this.#dialog as Dialog;
    // RFC 3261 14.2: glare with a re-INVITE of ours, or our late offer still unanswered → 491.
    if (this.#reinvite || this.#awaitingAck?.offerInResponse) {
      incoming.respond(491, 'Request Pending');
      return;
    }
    dialog.refreshTarget(request);
    let body: string;
    let offerInResponse = false;
    if (request.body.byteLength > 0) {
      const result = this.#sdh.onOffer(Buffer.from(request.body).toString('utf8'));
      if (!result.ok) {
        // RFC 3261 14.2: a refused re-INVITE leaves the session as it was.
        const headers: [string, string][] = result.warning === undefined ? [] : [['Warning', result.warning]];
        incoming.respond(result.status, result.reason, { headers });
        return;
      }
      body = result.answer;
    } else {
      body = this.#sdh.getOffer();
      offerInResponse = true;
    }
    const ok = incoming.respond(200, undefined, {
      headers: this.#contactHeaders(),
      body: Buffer.from(body, 'utf8'),
      contentType: 'application/sdp',
    });
    this.#awaitAck(ok, request.headers.cseq()?.seq ?? 0, offerInResponse);
    if (!offerInResponse) this.emit('media');
  }

  #onUpdate(incoming: IncomingRequest): void {
    const { request } = incoming;
    const dialog = this.#dialog as Dialog;
    dialog.refreshTarget(request);
    if (request.body.byteLength === 0) {
      incoming.respond(200, undefined, { headers: [['Contact', this.#host.contact(dialog.flow)]] });
      return;
    }
    if (this.#reinvite) {
      incoming.respond(491, 'Request Pending');
      return;
    }
    const result = this.#sdh.onOffer(Buffer.from(request.body).toString('utf8'));
    if (!result.ok) {
      const headers: [string, string][] = result.warning === undefined ? [] : [['Warning', result.warning]];
      incoming.respond(result.status, result.reason, { headers });
      return;
    }
    incoming.respond(200, undefined, {
      headers: [['Contact', this.#host.contact(dialog.flow)]],
      body: Buffer.from(result.answer, 'utf8'),
      contentType: 'application/sdp',
    });
    this.emit('media');
  }

  #onNotify(incoming: IncomingRequest): void {
    const { request } = incoming;
    incoming.respond(200);
    const event = request.headers.get('Event')?.split(';')[0]?.trim().toLowerCase();
    if (event !== 'refer' || !this.#referWaiter) return;
    // RFC 3515 2.4.5: the body is a message/sipfrag status line of the transfer's INVITE.
    const line = Buffer.from(request.body).toString('utf8').split('\r\n')[0] ?? '';
    const m = /^SIP\/2\.0 (\d{3})(?: (.*))?$/.exec(line.trim());
    const terminated = /^\s*terminated/i.test(request.headers.get('Subscription-State') ?? '');
    if (!m) {
      if (terminated)
        this.#referWaiter({
          status: 500,
          reason: 'transfer subscription ended without a status',
          final: true,
        });
      return;
    }
    const status = Number(m[1]);
    const progress = { status, reason: m[2] ?? '', final: status >= 200 || terminated };
    this.emit('referProgress', progress);
    this.#referWaiter(progress);
  }

  #onRefer(incoming: IncomingRequest): void {
    const { request } = incoming;
    const referTo = request.headers.get('Refer-To');
    if (!referTo) {
      incoming.respond(400, 'Missing Refer-To');
      return;
    }
    const referredBy = request.headers.get('Referred-By');
    if (!this.#followRefers || this.#state !== 'confirmed') {
      // Transfers we were asked for are not acted on unless the owner opted in: decline, report.
      incoming.respond(603, 'Decline');
      this.emit('refer', { referTo, referredBy, accepted: false });
      return;
    }
    // RFC 3515 2.4.2: accepted; the first NOTIFY follows at once (2.4.4: 100 Trying).
    incoming.respond(202, 'Accepted');
    this.emit('refer', { referTo, referredBy, accepted: true });
    void this.notifyRefer(100, 'Trying');
  }

  // ── internals: UAC ────────────────────────────────────────────────────

  #buildInvite(init: OutgoingInit, offer: string): SipRequest {
    const c = this.#connection;
    const host = c.localAddress.includes(':') ? `[${c.localAddress}]` : c.localAddress;
    const headers = new Headers().append(
      'Via',
      `SIP/2.0/${c.transport.toUpperCase()} ${host}:${c.localPort};branch=${generateBranch()};rport`,
    );
    for (const route of init.route ?? []) headers.append('Route', route);
    headers
      .append('Max-Forwards', '70')
      .append('From', `${init.from};tag=${generateTag()}`)
      .append('To', init.to)
      .append('Call-ID', init.callId)
      .append('CSeq', '1 INVITE');
    for (const [name, value] of this.#contactHeaders()) headers.append(name, value);
    for (const [name, value] of init.headers ?? []) headers.append(name, value);
    headers.append('Content-Type', 'application/sdp');
    return { type: 'request', method: 'INVITE', uri: init.target, headers, body: Buffer.from(offer, 'utf8') };
  }

  #sendInvite(): void {
    const invite = this.#invite as SipRequest;
    this.#inviteTx = this.#host.invite(this.#connection, invite, {
      onResponse: (r) => this.#onInviteResponse(r),
      onTimeout: () => this.#failed({ cause: 'timeout', status: 408, reason: 'no final response (Timer B)' }),
      onClosed: (err) => this.#failed({ cause: 'connection-lost', reason: err.message }),
    });
  }

  #onInviteResponse(response: SipResponse): void {
    if (this.#disposed) return;
    const status = response.status;
    if (status < 200) {
      this.#onProvisional(response);
      return;
    }
    if (status < 300) {
      this.#on2xx(response);
      return;
    }
    if ((status === 401 || status === 407) && this.#retryWithCredentials(response)) return;
    if (this.#state === 'terminated') return;
    this.#sdh.rollback();
    const cancelled = this.#cancelRequested && status === 487;
    this.#failed({
      cause: cancelled ? 'cancelled' : 'rejected',
      status,
      reason: response.reason,
    });
  }

  #onProvisional(response: SipResponse): void {
    if (this.#state !== 'calling' && this.#state !== 'early') return;
    this.#provisional = true;
    if (this.#cancelRequested) {
      this.#sendCancel();
      return;
    }
    if (response.status === 100) return;
    this.#state = 'early';
    // RFC 3261 13.2.1 / RFC 3960: an SDP in a 18x is the answer to our offer (early media).
    if (response.body.byteLength > 0 && this.#earlyAnswer === undefined) {
      const sdp = Buffer.from(response.body).toString('utf8');
      const result = this.#sdh.onAnswer(sdp, { early: true });
      if (result.ok) {
        this.#earlyAnswer = sdp;
        this.emit('media');
      }
    }
    this.emit('progress', response);
  }

  #on2xx(response: SipResponse): void {
    const invite = this.#invite as SipRequest;
    const toTag = response.headers.to()?.params.get('tag');
    const dialog = this.#dialog;
    if (dialog) {
      // A retransmission of the 2xx we ACKed: ACK again. Another fork's 2xx: ACK and BYE it (13.2.2.4).
      if (toTag === dialog.id.remoteTag) {
        if (this.#ack) dialog.flow.send(this.#ack);
      } else {
        this.#ackAndBye(Dialog.uac(invite, response, this.#connection));
      }
      return;
    }
    if (this.#state === 'terminated') {
      // A 2xx after we gave up (timeout, a failure we already reported): do not leave it hanging.
      this.#ackAndBye(Dialog.uac(invite, response, this.#connection));
      return;
    }
    const established = Dialog.uac(invite, response, this.#connection);
    this.#dialog = established;
    const cseq = invite.headers.cseq()?.seq ?? 1;
    this.#ack = established.createRequest('ACK', this.#host.userAgent, cseq);
    established.flow.send(this.#ack);
    if (this.#cancelRequested) {
      // CANCEL crossed the 2xx: the call was answered; end it properly (RFC 3261 9.1).
      this.#confirm();
      void this.bye();
      return;
    }
    const sdp = response.body.byteLength > 0 ? Buffer.from(response.body).toString('utf8') : undefined;
    let failure: string | undefined;
    if (sdp !== undefined && sdp !== this.#earlyAnswer) {
      const result = this.#sdh.onAnswer(sdp, { early: false });
      if (!result.ok) failure = result.reason;
      else this.emit('media');
    } else if (sdp === undefined && this.#earlyAnswer === undefined) {
      failure = 'the 2xx carries no SDP answer';
    }
    this.#confirm();
    if (failure !== undefined) this.#terminate({ cause: 'bad-answer', reason: failure });
  }

  /** RFC 3261 22.2: answer a challenge with the device's credentials, once per realm check. */
  #retryWithCredentials(response: SipResponse): boolean {
    if (this.#state !== 'calling' && this.#state !== 'early') return false;
    if (this.#authRounds >= MAX_AUTH_ROUNDS || !this.#host.authorize) {
      this.#failed({
        cause: 'auth-failed',
        status: response.status,
        reason: `${response.reason} (credentials refused)`,
        code: ErrorCodes.SIP_AUTH_REJECTED,
      });
      return true;
    }
    const previous = this.#invite as SipRequest;
    const auth = this.#host.authorize(response, previous);
    if (!auth.ok) {
      this.#failed({ cause: 'auth-failed', status: response.status, reason: auth.reason, code: auth.code });
      return true;
    }
    this.#authRounds++;
    // RFC 3261 8.1.3.5: the same request with the credentials, a new branch and the next CSeq.
    const headers = previous.headers.clone();
    headers.delete('Authorization');
    headers.delete('Proxy-Authorization');
    const via = headers.getAll('Via')[0] ?? '';
    headers.delete('Via');
    headers.prepend('Via', via.replace(/;branch=[^;]*/i, `;branch=${generateBranch()}`));
    headers.set('CSeq', `${(previous.headers.cseq()?.seq ?? 1) + 1} INVITE`);
    headers.append(auth.name, auth.value);
    this.#invite = { ...previous, headers };
    this.#provisional = false;
    this.#sendInvite();
    return true;
  }

  #sendCancel(): void {
    const tx = this.#inviteTx;
    if (!tx || tx.completed) return;
    tx.cancel().catch(() => {
      // The CANCEL's own fate does not matter: the INVITE's final response (487, or a 2xx) decides.
    });
  }

  #ackAndBye(extra: Dialog): void {
    const invite = this.#invite as SipRequest;
    extra.flow.send(extra.createRequest('ACK', this.#host.userAgent, invite.headers.cseq()?.seq ?? 1));
    this.#host.request(extra.createRequest('BYE', this.#host.userAgent), extra.flow).catch(() => {});
  }

  #failed(termination: Termination): void {
    if (this.#state === 'terminated') return;
    this.#terminate(termination);
  }

  async #reinviteOnce(unchanged = false): Promise<{ ok: boolean; status: number; reason: string }> {
    if (this.#state !== 'confirmed' || this.#reinvite || this.#awaitingAck) {
      return { ok: false, status: 491, reason: 'an offer/answer exchange is already in progress' };
    }
    const dialog = this.#dialog as Dialog;
    const request = dialog.createRequest('INVITE', this.#host.userAgent);
    for (const [name, value] of this.#contactHeaders()) request.headers.append(name, value);
    request.headers.append('Content-Type', 'application/sdp');
    const offer = unchanged ? (this.#sdh.getSameOffer?.() ?? this.#sdh.getOffer()) : this.#sdh.getOffer();
    request.body = Buffer.from(offer, 'utf8');
    const cseq = request.headers.cseq()?.seq ?? 0;
    return new Promise((resolve) => {
      let ack: SipRequest | undefined;
      let settled = false;
      // Timer B stops at the first provisional (RFC 3261 17.1.1.2): a re-INVITE
      // the far end never answers after its 100 is cancelled (9.1) after as long.
      const guard = setTimeout(() => {
        const tx = this.#reinvite;
        this.#sdh.rollback();
        settle({ ok: false, status: 408, reason: 'no final answer to the re-INVITE' });
        tx?.cancel().catch(() => {});
      }, REINVITE_TIMEOUT_MS);
      guard.unref?.();
      const settle = (r: { ok: boolean; status: number; reason: string }) => {
        if (settled) return;
        settled = true;
        clearTimeout(guard);
        this.#reinvite = undefined;
        resolve(r);
      };
      this.#reinvite = this.#host.invite(dialog.flow, request, {
        onResponse: (response) => {
          if (response.status < 200) return;
          if (response.status >= 300) {
            this.#sdh.rollback();
            settle({ ok: false, status: response.status, reason: response.reason });
            return;
          }
          if (ack) {
            dialog.flow.send(ack); // a retransmitted 2xx
            return;
          }
          ack = dialog.createRequest('ACK', this.#host.userAgent, cseq);
          dialog.flow.send(ack);
          dialog.refreshTarget(response);
          const sdp = Buffer.from(response.body).toString('utf8');
          const result = sdp
            ? this.#sdh.onAnswer(sdp, { early: false })
            : { ok: false as const, reason: 'no SDP' };
          if (!result.ok) {
            this.#terminate({ cause: 'bad-answer', reason: result.reason });
            settle({ ok: false, status: 488, reason: result.reason });
            return;
          }
          this.emit('media');
          settle({ ok: true, status: response.status, reason: response.reason });
        },
        onTimeout: () => {
          this.#sdh.rollback();
          settle({ ok: false, status: 408, reason: 'no answer to the re-INVITE' });
        },
        onClosed: (err) => {
          this.#sdh.rollback();
          settle({ ok: false, status: 503, reason: err.message });
        },
      });
    });
  }

  // ── common ────────────────────────────────────────────────────────────

  #requireDialog(method: string): Dialog {
    if (this.#state !== 'confirmed' && this.#state !== 'accepted') {
      throw new SoftphoneError(ErrorCodes.CALL_STATE, `cannot send ${method}: the call is ${this.#state}`);
    }
    return this.#dialog as Dialog;
  }

  #terminate(termination: Termination): void {
    if (this.#state === 'terminated') return;
    this.#state = 'terminated';
    this.#termination = termination;
    this.#referWaiter?.({ status: 487, reason: 'the call ended', final: true });
    this.emit('terminated', termination);
  }

  #ended(): Promise<void> {
    if (this.#state === 'terminated') return Promise.resolve();
    return new Promise((resolve) => this.once('terminated', () => resolve()));
  }
}

/** A Warning header for a refused offer (RFC 3261 20.43). */
export function sdpWarning(code: number, text: string): string {
  return warningHeader(code, text);
}
