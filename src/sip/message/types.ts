import type { Headers } from './headers.js';

/** A parsed SIP request (RFC 3261 section 7.1). */
export interface SipRequest {
  readonly type: 'request';
  method: string;
  /** The Request-URI exactly as it appeared on the start line. */
  uri: string;
  headers: Headers;
  /** The body as bytes; Content-Length is always the byte length of this. */
  body: Uint8Array;
}

/** A parsed SIP response (RFC 3261 section 7.2). */
export interface SipResponse {
  readonly type: 'response';
  status: number;
  reason: string;
  headers: Headers;
  body: Uint8Array;
}

export type SipMessage = SipRequest | SipResponse;

/** A SIP or SIPS URI (RFC 3261 section 19.1), with escapes decoded in user and password. */
export interface SipUri {
  scheme: 'sip' | 'sips';
  user?: string;
  password?: string;
  /** Hostname, IPv4 address, or IPv6 reference including the brackets. */
  host: string;
  port?: number;
  /** uri-parameters in order; a value of null means a flag parameter such as `;lr`. Names are lowercased. */
  params: Map<string, string | null>;
  /** Escaped headers after `?`, decoded; never turned into real header fields. */
  headers: Map<string, string>;
}

/** Any URI whose scheme is not sip/sips (tel:, http:, isbn:, …), kept opaque. */
export interface OtherUri {
  scheme: string;
  /** Everything after `scheme:`. */
  opaque: string;
}

export type Uri = SipUri | OtherUri;

/** name-addr or addr-spec as found in From, To, Contact, Route, Record-Route. */
export interface NameAddr {
  displayName?: string;
  uri: Uri;
  /** Header parameters after the URI (tag, expires, q, +sip.instance, reg-id, …); names lowercased. */
  params: Map<string, string | null>;
}

/** One Via value (RFC 3261 section 20.42). */
export interface Via {
  /** e.g. "SIP/2.0" */
  protocol: string;
  /** Upper-case transport token: UDP, TCP, TLS, SCTP, WS, WSS or anything else. */
  transport: string;
  host: string;
  port?: number;
  /** branch, received, rport (null when empty), alias, maddr, ttl, …; names lowercased. */
  params: Map<string, string | null>;
}

export interface CSeq {
  seq: number;
  method: string;
}
