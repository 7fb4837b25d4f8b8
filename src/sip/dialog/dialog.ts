/**
 * Dialog state (RFC 3261 12): ids, route set, remote target and the two
 * CSeq spaces, for a dialog we answered (UAS, 12.1.1) or created by calling
 * (UAC, 12.1.2), plus building in-dialog requests (12.2.1.1).
 */
import { randomInt } from 'node:crypto';
import { generateBranch } from '../message/build.js';
import { Headers } from '../message/headers.js';
import type { SipRequest, SipResponse } from '../message/types.js';
import { formatUri } from '../message/uri.js';
import type { SipConnection } from '../transport/connection.js';

export interface DialogId {
  callId: string;
  localTag: string;
  remoteTag: string;
}

export function dialogKey(id: DialogId): string {
  return `${id.callId}\n${id.localTag}\n${id.remoteTag}`;
}

/** The dialog an in-dialog request belongs to, from our side (To tag is ours). */
export function requestDialogKey(request: SipRequest): string | undefined {
  const callId = request.headers.callId();
  const localTag = request.headers.to()?.params.get('tag');
  const remoteTag = request.headers.from()?.params.get('tag');
  if (!callId || !localTag || remoteTag === undefined || remoteTag === null) return undefined;
  return dialogKey({ callId, localTag, remoteTag });
}

interface DialogInit {
  id: DialogId;
  localUri: string;
  remoteUri: string;
  routeSet: readonly string[];
  remoteTarget: string;
  localCSeq: number;
  remoteCSeq: number;
  connection: SipConnection;
}

export class Dialog {
  readonly id: DialogId;
  /** Our From in requests we send (with our tag). */
  readonly localUri: string;
  /** Our To in requests we send (with their tag). */
  readonly remoteUri: string;
  /** The Route set, in the order our requests carry it (12.1.1, 12.1.2). */
  readonly routeSet: readonly string[];
  remoteTarget: string;
  /** Highest CSeq seen from the far end (0 before its first request). */
  remoteCSeq: number;
  #localCSeq: number;
  /** The connection the dialog's requests arrive on and ours leave on. */
  flow: SipConnection;

  private constructor(init: DialogInit) {
    this.id = init.id;
    this.localUri = init.localUri;
    this.remoteUri = init.remoteUri;
    this.routeSet = init.routeSet;
    this.remoteTarget = init.remoteTarget;
    this.remoteCSeq = init.remoteCSeq;
    this.#localCSeq = init.localCSeq;
    this.flow = init.connection;
  }

  /** The dialog our 2xx (or 1xx with a tag) to `invite` creates (12.1.1). */
  static uas(invite: SipRequest, localTag: string, connection: SipConnection): Dialog {
    const h = invite.headers;
    const contact = h.nameAddrs('Contact')?.[0];
    return new Dialog({
      id: { callId: h.callId() ?? '', localTag, remoteTag: String(h.from()?.params.get('tag') ?? '') },
      localUri: `${h.get('To') ?? ''};tag=${localTag}`,
      remoteUri: h.get('From') ?? '',
      // Record-Route of the request, in order.
      routeSet: h.getAll('Record-Route'),
      remoteTarget: contact ? formatUri(contact.uri) : invite.uri,
      localCSeq: randomInt(1, 2 ** 16),
      remoteCSeq: h.cseq()?.seq ?? 0,
      connection,
    });
  }

  /** The dialog a 2xx (or tagged 1xx) to our `invite` creates (12.1.2). */
  static uac(invite: SipRequest, response: SipResponse, connection: SipConnection): Dialog {
    const rh = response.headers;
    const contact = rh.nameAddrs('Contact')?.[0];
    return new Dialog({
      id: {
        callId: invite.headers.callId() ?? '',
        localTag: String(invite.headers.from()?.params.get('tag') ?? ''),
        remoteTag: String(rh.to()?.params.get('tag') ?? ''),
      },
      localUri: invite.headers.get('From') ?? '',
      remoteUri: rh.get('To') ?? '',
      // Record-Route of the response, reversed.
      routeSet: [...rh.getAll('Record-Route')].reverse(),
      remoteTarget: contact ? formatUri(contact.uri) : invite.uri,
      localCSeq: (invite.headers.cseq()?.seq ?? 0) + 1,
      remoteCSeq: 0,
      connection,
    });
  }

  get key(): string {
    return dialogKey(this.id);
  }

  /** A target refresh (re-INVITE, UPDATE, or its 2xx) may move the remote target (12.2). */
  refreshTarget(message: SipRequest | SipResponse): void {
    const contact = message.headers.nameAddrs('Contact')?.[0];
    if (contact) this.remoteTarget = formatUri(contact.uri);
  }

  /**
   * RFC 3261 12.2.2: a lower CSeq than the last one is out of order (500);
   * equal means a retransmission the transaction layer should have absorbed.
   */
  acceptRemoteCSeq(request: SipRequest): boolean {
    const seq = request.headers.cseq()?.seq;
    if (seq === undefined) return false;
    if (request.method === 'ACK' || request.method === 'CANCEL') return true;
    if (seq < this.remoteCSeq) return false;
    this.remoteCSeq = seq;
    return true;
  }

  /**
   * Builds an in-dialog request (BYE, re-INVITE, INFO, REFER, …), loose
   * routing only (12.2.1.1). `cseq` is for the ACK of a 2xx, which reuses
   * its INVITE's number (13.2.2.4); everything else takes the next one.
   */
  createRequest(method: string, userAgent: string, cseq?: number): SipRequest {
    const c = this.flow;
    const host = c.localAddress.includes(':') ? `[${c.localAddress}]` : c.localAddress;
    const headers = new Headers().append(
      'Via',
      `SIP/2.0/${c.transport.toUpperCase()} ${host}:${c.localPort};branch=${generateBranch()};rport`,
    );
    for (const route of this.routeSet) headers.append('Route', route);
    headers
      .append('Max-Forwards', '70')
      .append('From', this.localUri)
      .append('To', this.remoteUri)
      .append('Call-ID', this.id.callId)
      .append('CSeq', `${cseq ?? this.#localCSeq++} ${method}`)
      .append('User-Agent', userAgent);
    return { type: 'request', method, uri: this.remoteTarget, headers, body: new Uint8Array(0) };
  }
}
