/**
 * What this UA supports, advertised in REGISTER, OPTIONS answers, INVITEs
 * and their 2xx (RFC 3261 20.5 Allow, 20.37 Supported, 20.1 Accept). One
 * place, so every message says the same.
 */

/** Methods we implement (UPDATE: RFC 3311; INFO: RFC 6086). */
export const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, MESSAGE, UPDATE';

/** Option tags: RFC 5626 outbound (and path for REGISTER). */
export const SUPPORTED = 'outbound';

/** Bodies we understand. */
export const ACCEPT = 'application/sdp, application/dtmf-relay, application/json, message/sipfrag';

/** Our User-Agent and Server header value. */
export const USER_AGENT = 'rc-softphone/0.1';
