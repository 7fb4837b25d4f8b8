/**
 * The narrow interface the transaction and dialog layers see of a
 * transport (SIP.js's `core/transport.ts` idea): a place to send messages
 * that can close. A client flow to the outbound proxy (SipFlow) is one; so
 * is a connection a listener accepted, or a UDP peer. Transactions and
 * dialogs are unit-tested against a fake of this, without sockets.
 */
import type { SoftphoneError } from '../../errors.js';
import type { SipMessage } from '../message/types.js';

export type SipTransportName = 'tcp' | 'tls' | 'udp';

export interface SipConnection {
  /** Unique per process, for logs and traces. */
  readonly id: number;
  readonly transport: SipTransportName;
  /** Our end (for Via and Contact). */
  readonly localAddress: string;
  readonly localPort: number;
  readonly closed: boolean;
  /** Sends one message; false when the connection is already closed. */
  send(message: SipMessage): boolean;
  /** Called once when the connection closes (`error` undefined for a close we asked for). */
  once(event: 'close', listener: (error: SoftphoneError | undefined) => void): unknown;
}

/** A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; this is the IPv4 address. */
export function unmapIpv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** RFC 3261 17: TCP and TLS deliver or fail; over UDP the transaction layer retransmits. */
export function isReliable(connection: Pick<SipConnection, 'transport'>): boolean {
  return connection.transport !== 'udp';
}
