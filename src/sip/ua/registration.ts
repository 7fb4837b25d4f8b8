/**
 * Pure pieces of registration (RFC 3261 section 10, RFC 5626 outbound): the
 * REGISTER request, our Contact, reading the granted expiry, and when to
 * refresh. The UserAgent drives them with sockets and timers.
 */
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

/** Allowed methods, advertised in REGISTER and OPTIONS answers. */
export const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, MESSAGE, UPDATE';

/**
 * Our Contact: RingCentral never routes to it (requests come over the flow),
 * so the host is a `.invalid` name derived from the instance id, stable
 * across reconnects; `ob` asks for outbound semantics (RFC 5626 5.4).
 */
export function contactUri(id: RegistrationIdentity): string {
  return `sip:${id.username}@${contactHost(id)};transport=${id.transport};ob`;
}

function contactHost(id: RegistrationIdentity): string {
  const short =
    id.instanceId
      .replace(/^urn:uuid:/i, '')
      .slice(0, 8)
      .toLowerCase() || 'device';
  return `${short}.invalid`;
}

export function contactHeader(id: RegistrationIdentity): string {
  return `<${contactUri(id)}>;reg-id=1;+sip.instance="<${id.instanceId}>"`;
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
    .append('Contact', contactHeader(id))
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
export function grantedExpires(response: SipResponse, id: RegistrationIdentity): number | undefined {
  const contacts = response.headers.nameAddrs('Contact') ?? [];
  const ours = contacts.find((c) => {
    const instance = c.params.get('+sip.instance');
    if (instance && unquoteString(instance) === `<${id.instanceId}>`) return true;
    return 'host' in c.uri && c.uri.host.toLowerCase() === contactHost(id);
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
