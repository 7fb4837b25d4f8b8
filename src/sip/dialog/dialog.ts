/**
 * UAS dialog state (RFC 3261 12.1.1): ids, route set, remote target and the
 * two CSeq spaces, plus building in-dialog requests (12.2.1.1).
 */
import { randomInt } from 'node:crypto';
import { generateBranch } from '../message/build.js';
import { Headers } from '../message/headers.js';
import type { SipRequest } from '../message/types.js';
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

export class Dialog {
  readonly id: DialogId;
  /** To of the INVITE plus our tag: our From in requests we send. */
  readonly localUri: string;
  /** From of the INVITE: our To in requests we send. */
  readonly remoteUri: string;
  /** Record-Route of the INVITE, in order: our Route set (12.1.1). */
  readonly routeSet: readonly string[];
  remoteTarget: string;
  remoteCSeq: number;
  #localCSeq = randomInt(1, 2 ** 16);
  /** The flow the dialog's requests arrive on and ours leave on. */
  flow: SipConnection;

  constructor(invite: SipRequest, localTag: string, flow: SipConnection) {
    const h = invite.headers;
    this.id = { callId: h.callId() ?? '', localTag, remoteTag: String(h.from()?.params.get('tag') ?? '') };
    this.localUri = `${h.get('To') ?? ''};tag=${localTag}`;
    this.remoteUri = h.get('From') ?? '';
    this.routeSet = h.getAll('Record-Route');
    const contact = h.nameAddrs('Contact')?.[0];
    this.remoteTarget = contact ? formatUri(contact.uri) : invite.uri;
    this.remoteCSeq = h.cseq()?.seq ?? 0;
    this.flow = flow;
  }

  get key(): string {
    return dialogKey(this.id);
  }

  /** A target refresh (re-INVITE, UPDATE) may move the remote target (12.2.2). */
  refreshTarget(request: SipRequest): void {
    const contact = request.headers.nameAddrs('Contact')?.[0];
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

  /** Builds an in-dialog request (BYE, …) for `flow`, loose routing only (12.2.1.1). */
  createRequest(
    method: string,
    via: { transport: string; address: string; port: number },
    userAgent: string,
  ): SipRequest {
    const host = via.address.includes(':') ? `[${via.address}]` : via.address;
    const headers = new Headers().append(
      'Via',
      `SIP/2.0/${via.transport.toUpperCase()} ${host}:${via.port};branch=${generateBranch()};rport`,
    );
    for (const route of this.routeSet) headers.append('Route', route);
    headers
      .append('Max-Forwards', '70')
      .append('From', this.localUri)
      .append('To', this.remoteUri)
      .append('Call-ID', this.id.callId)
      .append('CSeq', `${this.#localCSeq++} ${method}`)
      .append('User-Agent', userAgent);
    return { type: 'request', method, uri: this.remoteTarget, headers, body: new Uint8Array(0) };
  }
}
