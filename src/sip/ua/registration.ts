/**
 * Pure pieces of registration (RFC 3261 section 10, RFC 5626 outbound): the
 * REGISTER request, our Contact, reading the granted expiry, and when to
 * refresh. The UserAgent drives them with sockets and timers.
 */
import { ALLOW } from '../capabilities.js';
import { generateBranch } from '../message/build.js';
import { Headers } from '../message/headers.js';
import type { SipRequest, SipResponse } from '../message/types.js';
import { parseBoundedInt, unquoteString } from '../message/uri.js';
import type { TransportName } from '../transport/flow.js';

export interface RegistrationIdentity {
  username: string;
  domain: string;
  transport: TransportName;
  /** `urn:uuid:…`, stable for the device across restarts (RFC 5626 4.1). */
  instanceId: string;
}

export { ALLOW } from '../capabilities.js';

/**
 * Our Contact. With a registrar that supports outbound (RFC 5626, as
 * RingCentral's), requests come over the flow and the Contact is never
 * routed to: its host is a `.invalid` name derived from the instance id,
 * stable across reconnects, and `ob` asks for outbound semantics (5.4).
 * Behind a plain proxy, which routes in-dialog requests by Contact, `local`
 * (the flow's own address and port) makes it routable: requests still
 * arrive on the flow, since that is the address they are sent to.
 */
export function contactUri(id: RegistrationIdentity, local?: { address: string; port: number }): string {
  if (local) {
    const host = local.address.includes(':') ? `[${local.address}]` : local.address;
    return `sip:${id.username}@${host}:${local.port};transport=${id.transport}`;
  }
  return `sip:${id.username}@${contactHost(id)};transport=${id.transport};ob`;
}

/**
 * RFC 5626 6: a registrar that supports outbound says so in the 2xx
 * (Require: outbound; some only list it in Supported).
 */
export function supportsOutbound(response: SipResponse): boolean {
  const tags = [...response.headers.getAll('Require'), ...response.headers.getAll('Supported')]
    .flatMap((v) => v.split(','))
    .map((t) => t.trim().toLowerCase());
  return tags.includes('outbound');
}

function contactHost(id: RegistrationIdentity): string {
  const short =
    id.instanceId
      .replace(/^urn:uuid:/i, '')
      .slice(0, 8)
      .toLowerCase() || 'device';
  return `${short}.invalid`;
}

export function contactHeader(id: RegistrationIdentity, local?: { address: string; port: number }): string {
  // reg-id only means something to an outbound registrar (RFC 5626 4.2).
  const regId = local ? '' : ';reg-id=1';
  return `<${contactUri(id, local)}>${regId};+sip.instance="<${id.instanceId}>"`;
}

export interface RegisterRequestInput {
  identity: RegistrationIdentity;
  callId: string;
  fromTag: string;
  cseq: number;
  expires: number;
  local: { address: string; port: number };
  userAgent: string;
  authorization?: { header: 'Authorization' | 'Proxy-Authorization'; value: string };
  /** Register this routable Contact (flow address) instead of the outbound one. */
  routable?: { address: string; port: number };
  /** Contacts (header values, without params) to remove in the same REGISTER (expires=0). */
  remove?: string[];
}

export function buildRegister(input: RegisterRequestInput): SipRequest {
  const { identity: id } = input;
  const aor = `<sip:${id.username}@${id.domain}>`;
  const host = input.local.address.includes(':') ? `[${input.local.address}]` : input.local.address;
  const headers = new Headers()
    .append(
      'Via',
      `SIP/2.0/${id.transport.toUpperCase()} ${host}:${input.local.port};branch=${generateBranch()};rport`,
    )
    .append('Max-Forwards', '70')
    .append('From', `${aor};tag=${input.fromTag}`)
    .append('To', aor)
    .append('Call-ID', input.callId)
    .append('CSeq', `${input.cseq} REGISTER`)
    .append('Contact', contactHeader(id, input.routable));
  for (const old of input.remove ?? []) headers.append('Contact', `<${old}>;expires=0`);
  headers
    .append('Expires', String(input.expires))
    .append('Supported', 'outbound, path')
    .append('Allow', ALLOW)
    .append('User-Agent', input.userAgent);
  if (input.authorization) headers.append(input.authorization.header, input.authorization.value);
  return { type: 'request', method: 'REGISTER', uri: `sip:${id.domain}`, headers, body: new Uint8Array(0) };
}

/**
 * The expiry the registrar granted our binding: the `expires` param of our own
 * Contact in the 200 (matched by instance id, RFC 5626 6) wins over the
 * Expires header (RFC 3261 10.2.4); undefined when neither says.
 */
export function grantedExpires(
  response: SipResponse,
  id: RegistrationIdentity,
  routable?: { address: string; port: number },
): number | undefined {
  const contacts = response.headers.nameAddrs('Contact') ?? [];
  const host = routable
    ? routable.address.includes(':')
      ? `[${routable.address}]`
      : routable.address
    : undefined;
  const ours = contacts.find((c) => {
    if (c.params.get('expires') === '0') return false; // a binding we removed
    const instance = c.params.get('+sip.instance');
    if (instance && unquoteString(instance) === `<${id.instanceId}>`) return true;
    if (!('host' in c.uri)) return false;
    if (routable) return c.uri.host.toLowerCase() === host?.toLowerCase() && c.uri.port === routable.port;
    return c.uri.host.toLowerCase() === contactHost(id);
  });
  const param = ours?.params.get('expires');
  if (param) {
    const v = parseBoundedInt(param, 0xffffffff);
    if (v !== undefined) return v;
  }
  const header = response.headers.get('Expires');
  if (header !== undefined) return parseBoundedInt(header.trim(), 0xffffffff);
  return undefined;
}

/** Min-Expires of a 423 (RFC 3261 10.2.8), if usable. */
export function minExpires(response: SipResponse): number | undefined {
  const v = response.headers.get('Min-Expires');
  return v === undefined ? undefined : parseBoundedInt(v.trim(), 0xffffffff);
}

/**
 * When to refresh a binding granted for `granted` seconds: halfway for short
 * bindings, else 32 s before expiry (room for a Timer F timeout and a retry).
 */
export function refreshDelayMs(granted: number): number {
  const seconds = granted <= 64 ? granted / 2 : granted - 32;
  return Math.max(1000, Math.round(seconds * 1000));
}

/**
 * The longest Retry-After we wait. RFC 3261 20.33 allows up to 2^32-1
 * seconds; a server asking for hours is more likely misconfigured than
 * meaning it, and one REGISTER every 10 minutes is no storm.
 */
export const MAX_RETRY_AFTER_S = 600;

/**
 * Retry-After of a response in seconds, cut to MAX_RETRY_AFTER_S; undefined
 * when absent or unreadable. RFC 3261 20.33: `delta-seconds [ comment ]
 * *( SEMI retry-param )`; only the delta-seconds matter to us.
 */
export function retryAfterSeconds(response: SipResponse): number | undefined {
  const value = response.headers.get('Retry-After');
  if (value === undefined) return undefined;
  const digits = /^\s*(\d+)\s*(?:[(;]|$)/.exec(value)?.[1];
  const seconds = digits === undefined ? undefined : parseBoundedInt(digits, 0xffffffff);
  return seconds === undefined ? undefined : Math.min(seconds, MAX_RETRY_AFTER_S);
}

/** What a final non-2xx answer to REGISTER means for the device. */
export interface RegisterFailurePolicy {
  /** True when it ends start() if it answers the run's first registration (exit 1). */
  fatalFirst: boolean;
  /** True when another outbound proxy may do better (RFC 3261 21.5.4, RFC 3263 4.3). */
  failover: boolean;
}

/**
 * Which REGISTER failures are fatal for the first registration: only those
 * that say the credentials or the user are wrong (401/407 we could not
 * answer, 403, 404, 604), where the same REGISTER would get the same answer
 * and retrying could lock the account. The server's own conditions are
 * waited out: 408 and 5xx (another proxy is tried first: the one we asked
 * may be overloaded, down, or unable to reach the registrar) and 480
 * Temporarily Unavailable. Any other refusal (a 4xx about our request, a 6xx
 * such as RingCentral's 603 Too Many Contacts) is retried only when the
 * server said when (Retry-After). After a first registration everything is
 * retried, never faster than Retry-After and backoff allow.
 * `status` undefined is our own give-up (too many REGISTER rounds).
 */
export function registerFailurePolicy(
  status: number | undefined,
  retryAfter: number | undefined,
): RegisterFailurePolicy {
  if (status === undefined) return { fatalFirst: true, failover: false };
  if (status === 401 || status === 403 || status === 404 || status === 407 || status === 604) {
    return { fatalFirst: true, failover: false };
  }
  if (status === 408 || (status >= 500 && status < 600)) return { fatalFirst: false, failover: true };
  if (status === 480) return { fatalFirst: false, failover: false };
  return { fatalFirst: retryAfter === undefined, failover: false };
}
