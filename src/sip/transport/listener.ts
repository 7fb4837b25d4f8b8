/**
 * SIP listeners for peers that connect to us (`serve`: RingCX opens the
 * connection and sends the INVITE), over TCP, TLS and UDP. A thin adapter:
 * sockets in, SipConnections and parsed messages out; every stream
 * connection is a SipFlow (framer, parser, keep-alive pongs), every UDP
 * source address and port a UdpPeer that sends back to it.
 *
 * What reaches the parser is decided first, on the address alone:
 * - `admit(address)` (the allow-list) is asked before a byte is read: a
 *   refused TCP/TLS connection is closed while still paused (no TLS
 *   handshake, nothing read), a refused datagram is dropped unread;
 * - at most `maxConnections` stream connections, `maxConnectionsPerAddress`
 *   from one address;
 * - a connection must deliver a complete message within
 *   `firstMessageTimeoutMs` of its accept (the TLS handshake included), and
 *   every message within `messageDeadlineMs` of its first byte (a trickle is
 *   closed, RFC 4475 3.1.2.2); the framer's size limits apply.
 * Each refusal and each connection closed for its behaviour is counted and
 * reported (`refused`, `dropped`); none of them touches another connection.
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { ErrorCodes, SoftphoneError } from '../../errors.js';
import { type ParseResult, parseMessage } from '../message/parse.js';
import { serialize } from '../message/serialize.js';
import type { SipMessage } from '../message/types.js';
import { type SipConnection, type SipTransportName, unmapIpv4 } from './connection.js';
import { SipFlow, type TraceDirection } from './flow.js';
import { bindingRequestId, bindingSuccess, isStun } from './stun.js';

export interface ListenAddress {
  transport: SipTransportName;
  host: string;
  port: number;
}

/** The listener's limits; DEFAULTS.serve repeats them for the CLI and the library. */
export const LISTENER_LIMITS = Object.freeze({
  /** Open TCP/TLS connections at once. */
  maxConnections: 1000,
  /** Open TCP/TLS connections from one address. */
  maxConnectionsPerAddress: 100,
  /** From accept to the first complete message, the TLS handshake included. */
  firstMessageTimeoutMs: 5000,
  /** From a message's first byte to its last (a trickle is closed). */
  messageDeadlineMs: 5000,
  /** UDP sources remembered at once (the least recently heard is forgotten first). */
  maxUdpPeers: 10_000,
});

export type ListenerLimits = { -readonly [K in keyof typeof LISTENER_LIMITS]: number };

export interface ListenerOptions extends Partial<ListenerLimits> {
  addresses: readonly ListenAddress[];
  /** Admission by source address (unmapped IPv4 or IPv6), asked before anything is read. */
  admit: (address: string) => boolean;
  /** Certificate and key (PEM) for the TLS addresses. */
  tls?: { cert: string; key: string };
  maxHeaderBytes?: number;
  maxBodyBytes?: number;
}

export type RefusalReason = 'not-allowed' | 'too-many-connections' | 'too-many-from-address';
export type DropReason = 'no-message' | 'incomplete-message' | 'framing' | 'tls-handshake';

export interface PeerInfo {
  transport: SipTransportName;
  address: string;
  port: number;
}

export interface ListenerStats {
  /** Stream connections open now. */
  open: number;
  accepted: number;
  refused: Record<RefusalReason, number>;
  dropped: Record<DropReason, number>;
  datagrams: number;
  /** Datagrams from addresses the allow-list refuses, dropped unread. */
  datagramsRefused: number;
  /** Keep-alive datagrams: STUN Binding requests (RFC 5626 4.4.2, answered) and bare CRLFs (some peers send them). */
  datagramKeepAlives: number;
  /** STUN datagrams that are not a keep-alive we answer (responses, indications, other methods), dropped. */
  datagramsStunIgnored: number;
}

export interface ListenerEvents {
  message: [connection: SipConnection, message: SipMessage];
  malformed: [connection: SipConnection, result: Extract<ParseResult, { ok: false }>];
  /** A connection or datagram refused before anything was read. */
  refused: [info: PeerInfo & { reason: RefusalReason }];
  /** An admitted connection closed for its behaviour. */
  dropped: [info: PeerInfo & { reason: DropReason; message: string }];
  /** An admitted stream connection (after TLS's handshake). */
  connection: [connection: SipConnection, peer: PeerInfo];
  /** A stream connection ended (its calls end or wait, as the registry decides). */
  connectionClosed: [connection: SipConnection, error: SoftphoneError | undefined];
  /** Raw SIP as sent and received (NOT redacted: the logger redacts). */
  trace: [info: { direction: TraceDirection; connectionId: number; text: string }];
}

let nextPeerId = 1_000_000;

/** One UDP source address and port: what we send to it goes back from the socket it spoke to. */
class UdpPeer extends EventEmitter<{ close: [error: SoftphoneError | undefined] }> implements SipConnection {
  readonly id = nextPeerId++;
  readonly transport = 'udp' as const;
  readonly remote: { address: string; port: number };
  readonly localPort: number;
  localAddress: string;
  #closed = false;
  readonly #socket: dgram.Socket;
  readonly #trace: (direction: TraceDirection, bytes: Uint8Array) => void;

  constructor(
    socket: dgram.Socket,
    remote: { address: string; port: number },
    local: { address: string; port: number },
    trace: (direction: TraceDirection, bytes: Uint8Array) => void,
  ) {
    super();
    this.#socket = socket;
    this.remote = remote;
    this.localAddress = local.address;
    this.localPort = local.port;
    this.#trace = trace;
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(message: SipMessage): boolean {
    if (this.#closed) return false;
    const bytes = serialize(message);
    this.#trace('send', bytes);
    // RFC 3261 18.2.2 as RingCX wants it: back to the source address and port.
    this.#socket.send(bytes, this.remote.port, this.remote.address, () => {
      // A send error (ICMP unreachable, …) is the transaction's to notice: no answer comes.
    });
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close', undefined);
  }
}

interface UdpEndpoint {
  socket: dgram.Socket;
  address: ListenAddress;
  /** The socket is bound to a specific address (not 0.0.0.0 / ::): it is our address in Via and SDP. */
  fixedLocal: string | undefined;
  peers: Map<string, UdpPeer>;
  /** Local addresses towards a remote address, for a wildcard-bound socket (the kernel's route choice). */
  routes: Map<string, Promise<string>>;
  /** Datagrams that wait for their peer's local address, per peer key. */
  waiting: Map<string, Buffer[]>;
}

/** Datagrams held per new source while its local address is looked up. */
const MAX_WAITING = 16;

export class SipListener extends EventEmitter<ListenerEvents> {
  readonly #options: ListenerOptions;
  readonly #limits: ListenerLimits;
  readonly #servers: { server: net.Server; address: ListenAddress }[] = [];
  readonly #udp: UdpEndpoint[] = [];
  /** Admitted stream sockets, each with the promise of its 'close'. */
  readonly #sockets = new Map<net.Socket, Promise<void>>();
  readonly #flows = new Set<SipFlow>();
  readonly #perAddress = new Map<string, number>();
  readonly #secureContext: tls.SecureContext | undefined;
  readonly #stats: ListenerStats = {
    open: 0,
    accepted: 0,
    refused: { 'not-allowed': 0, 'too-many-connections': 0, 'too-many-from-address': 0 },
    dropped: { 'no-message': 0, 'incomplete-message': 0, framing: 0, 'tls-handshake': 0 },
    datagrams: 0,
    datagramsRefused: 0,
    datagramKeepAlives: 0,
    datagramsStunIgnored: 0,
  };
  #closed = false;

  private constructor(options: ListenerOptions) {
    super();
    this.#options = options;
    this.#limits = {
      maxConnections: options.maxConnections ?? LISTENER_LIMITS.maxConnections,
      maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? LISTENER_LIMITS.maxConnectionsPerAddress,
      firstMessageTimeoutMs: options.firstMessageTimeoutMs ?? LISTENER_LIMITS.firstMessageTimeoutMs,
      messageDeadlineMs: options.messageDeadlineMs ?? LISTENER_LIMITS.messageDeadlineMs,
      maxUdpPeers: options.maxUdpPeers ?? LISTENER_LIMITS.maxUdpPeers,
    };
    this.#secureContext = options.tls
      ? tls.createSecureContext({ cert: options.tls.cert, key: options.tls.key })
      : undefined;
  }

  /**
   * Binds every address (port 0: any free one). Rejects, closing what was
   * bound, with SIP_LISTEN_FAILED naming the address (EADDRINUSE, EACCES,
   * EADDRNOTAVAIL), or CONFIG_INVALID for a tls:// address without a certificate.
   */
  static async listen(options: ListenerOptions): Promise<SipListener> {
    if (options.addresses.some((a) => a.transport === 'tls') && !options.tls) {
      throw new SoftphoneError(ErrorCodes.CONFIG_INVALID, 'a tls:// address needs a certificate and key', {
        details: { option: 'tls' },
      });
    }
    const listener = new SipListener(options);
    for (const address of options.addresses) {
      try {
        if (address.transport === 'udp') await listener.#bindUdp(address);
        else await listener.#bindStream(address);
      } catch (err) {
        await listener.close();
        const errno = (err as NodeJS.ErrnoException).code;
        const host = address.host.includes(':') ? `[${address.host}]` : address.host;
        const where = `${address.transport}://${host}:${address.port}`;
        const why = err instanceof Error ? err.message : String(err);
        throw new SoftphoneError(ErrorCodes.SIP_LISTEN_FAILED, `cannot listen on ${where}: ${why}`, {
          cause: err,
          details: { address: where, ...(errno !== undefined && { errno }) },
        });
      }
    }
    return listener;
  }

  /** The bound addresses, in the order given, with the ports the system chose for port 0. */
  get addresses(): ListenAddress[] {
    const out: ListenAddress[] = [];
    for (const given of this.#options.addresses) {
      const s = this.#servers.find((x) => x.address === given);
      const u = this.#udp.find((x) => x.address === given);
      const bound = s ? s.server.address() : u ? u.socket.address() : null;
      if (bound && typeof bound === 'object') {
        out.push({ transport: given.transport, host: unmapIpv4(bound.address), port: bound.port });
      }
    }
    return out;
  }

  get stats(): ListenerStats {
    return {
      ...this.#stats,
      open: this.#sockets.size,
      refused: { ...this.#stats.refused },
      dropped: { ...this.#stats.dropped },
    };
  }

  /** Stops listening and closes every connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const flow of [...this.#flows]) flow.close();
    const sockets = [...this.#sockets];
    for (const [socket] of sockets) socket.destroy();
    await Promise.all(sockets.map(([, gone]) => gone));
    await Promise.all(
      this.#servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
    for (const endpoint of this.#udp) {
      for (const peer of endpoint.peers.values()) peer.close();
      endpoint.peers.clear();
      await new Promise<void>((resolve) => {
        try {
          endpoint.socket.close(() => resolve());
        } catch {
          resolve(); // never bound
        }
      });
    }
  }

  // ── TCP and TLS ───────────────────────────────────────────────────────

  #bindStream(address: ListenAddress): Promise<void> {
    // Paused: nothing is read from a connection until it is admitted.
    const server = net.createServer({ pauseOnConnect: true }, (socket) => this.#accept(socket, address));
    this.#servers.push({ server, address });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: address.host, port: address.port }, () => {
        server.off('error', reject);
        // Accept errors (EMFILE, …) are the system's; the server keeps listening.
        server.on('error', () => {});
        resolve();
      });
    });
  }

  #accept(socket: net.Socket, listen: ListenAddress): void {
    const peer: PeerInfo = {
      transport: listen.transport,
      address: unmapIpv4(socket.remoteAddress ?? ''),
      port: socket.remotePort ?? 0,
    };
    socket.on('error', () => {}); // a reset while refusing or handshaking is not ours to report
    const reason = this.#refusal(peer.address);
    if (reason !== undefined || this.#closed) {
      socket.destroy();
      if (reason !== undefined) {
        this.#stats.refused[reason]++;
        this.emit('refused', { ...peer, reason });
      }
      return;
    }
    this.#stats.accepted++;
    this.#sockets.set(socket, new Promise((resolve) => socket.once('close', () => resolve())));
    this.#perAddress.set(peer.address, (this.#perAddress.get(peer.address) ?? 0) + 1);
    let flow: SipFlow | undefined;
    let settled = false;
    const drop = (why: DropReason, message: string) => {
      if (settled) return;
      settled = true;
      this.#stats.dropped[why]++;
      this.emit('dropped', { ...peer, reason: why, message });
      if (flow) flow.close();
      socket.destroy();
    };
    const firstMessage = setTimeout(
      () =>
        drop(
          flow ? 'no-message' : 'tls-handshake',
          `no complete SIP message within ${this.#limits.firstMessageTimeoutMs} ms of connecting`,
        ),
      this.#limits.firstMessageTimeoutMs,
    );
    socket.once('close', () => {
      clearTimeout(firstMessage);
      this.#sockets.delete(socket);
      const n = (this.#perAddress.get(peer.address) ?? 1) - 1;
      if (n <= 0) this.#perAddress.delete(peer.address);
      else this.#perAddress.set(peer.address, n);
    });
    const start = (stream: net.Socket) => {
      flow = this.#wireFlow(stream, listen.transport === 'tls' ? 'tls' : 'tcp', peer, () => {
        clearTimeout(firstMessage);
        settled = true;
      });
      stream.resume();
    };
    if (listen.transport === 'tls') {
      const secure = new tls.TLSSocket(socket, {
        isServer: true,
        secureContext: this.#secureContext as tls.SecureContext,
      });
      let secured = false;
      secure.on('error', (err) => {
        // After the handshake the flow reports its own errors.
        if (!secured) drop('tls-handshake', `TLS: ${err.message}`);
      });
      secure.once('secure', () => {
        secured = true;
        if (!settled) start(secure);
      });
      socket.resume();
    } else {
      start(socket);
    }
  }

  /** Why a connection from `address` is refused, or undefined: it is admitted. */
  #refusal(address: string): RefusalReason | undefined {
    if (!this.#admits(address)) return 'not-allowed';
    if (this.#sockets.size >= this.#limits.maxConnections) return 'too-many-connections';
    if ((this.#perAddress.get(address) ?? 0) >= this.#limits.maxConnectionsPerAddress) {
      return 'too-many-from-address';
    }
    return undefined;
  }

  #admits(address: string): boolean {
    try {
      return this.#options.admit(address);
    } catch {
      return false; // an allow-list that cannot decide admits nobody
    }
  }

  #wireFlow(socket: net.Socket, transport: 'tcp' | 'tls', peer: PeerInfo, onFirst: () => void): SipFlow {
    const flow = SipFlow.accepted(socket, {
      transport,
      incompleteMessageTimeoutMs: this.#limits.messageDeadlineMs,
      ...(this.#options.maxHeaderBytes !== undefined && { maxHeaderBytes: this.#options.maxHeaderBytes }),
      ...(this.#options.maxBodyBytes !== undefined && { maxBodyBytes: this.#options.maxBodyBytes }),
    });
    this.#flows.add(flow);
    let first = true;
    const got = () => {
      if (!first) return;
      first = false;
      onFirst();
    };
    flow.on('trace', (direction, bytes) =>
      this.emit('trace', { direction, connectionId: flow.id, text: Buffer.from(bytes).toString('utf8') }),
    );
    flow.on('message', (message) => {
      got();
      this.emit('message', flow, message);
    });
    flow.on('malformed', (result) => {
      got();
      this.emit('malformed', flow, result);
    });
    flow.once('close', (error) => {
      this.#flows.delete(flow);
      socket.destroy();
      if (error && !this.#closed) {
        const why: DropReason | undefined =
          error.code === ErrorCodes.SIP_FRAME_INCOMPLETE
            ? 'incomplete-message'
            : error.code.startsWith('SIP_FRAME_')
              ? 'framing'
              : undefined;
        if (why) {
          this.#stats.dropped[why]++;
          this.emit('dropped', { ...peer, reason: why, message: error.message });
        }
      }
      this.emit('connectionClosed', flow, error);
    });
    this.emit('connection', flow, peer);
    return flow;
  }

  // ── UDP ───────────────────────────────────────────────────────────────

  #bindUdp(address: ListenAddress): Promise<void> {
    const socket = dgram.createSocket({ type: net.isIPv6(address.host) ? 'udp6' : 'udp4' });
    const wildcard = address.host === '0.0.0.0' || address.host === '::';
    const endpoint: UdpEndpoint = {
      socket,
      address,
      fixedLocal: wildcard ? undefined : unmapIpv4(address.host),
      peers: new Map(),
      routes: new Map(),
      waiting: new Map(),
    };
    this.#udp.push(endpoint);
    socket.on('message', (datagram, rinfo) => this.#datagram(endpoint, datagram, rinfo));
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: address.host, port: address.port }, () => {
        socket.off('error', reject);
        socket.on('error', () => {}); // ICMP errors surface here: the transactions notice the silence
        resolve();
      });
    });
  }

  #datagram(endpoint: UdpEndpoint, datagram: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.#closed) return;
    const address = unmapIpv4(rinfo.address);
    if (!this.#admits(address)) {
      this.#stats.datagramsRefused++;
      this.emit('refused', { transport: 'udp', address, port: rinfo.port, reason: 'not-allowed' });
      return;
    }
    this.#stats.datagrams++;
    if (isKeepAlive(datagram)) {
      this.#stats.datagramKeepAlives++;
      return;
    }
    if (isStun(datagram)) {
      // RFC 5626 4.4.2: the peer's address as we see it tells it whether its NAT binding moved.
      const id = bindingRequestId(datagram);
      if (id === undefined) {
        this.#stats.datagramsStunIgnored++;
        return;
      }
      this.#stats.datagramKeepAlives++;
      endpoint.socket.send(bindingSuccess(id, address, rinfo.port), rinfo.port, rinfo.address);
      return;
    }
    const key = `${address}|${rinfo.port}`;
    const peer = endpoint.peers.get(key);
    if (peer) {
      // Most recently heard last: the map's first entry is the one to forget.
      endpoint.peers.delete(key);
      endpoint.peers.set(key, peer);
      this.#deliver(peer, datagram);
      return;
    }
    const waiting = endpoint.waiting.get(key);
    if (waiting) {
      if (waiting.length < MAX_WAITING) waiting.push(datagram);
      return;
    }
    const local = endpoint.socket.address();
    if (endpoint.fixedLocal !== undefined) {
      this.#deliver(
        this.#newPeer(endpoint, key, address, rinfo.port, endpoint.fixedLocal, local.port),
        datagram,
      );
      return;
    }
    // Bound to a wildcard: our address towards this peer is the one the kernel routes by.
    endpoint.waiting.set(key, [datagram]);
    void this.#localAddressTowards(endpoint, address).then((localAddress) => {
      const held = endpoint.waiting.get(key) ?? [];
      endpoint.waiting.delete(key);
      if (this.#closed) return;
      const p = this.#newPeer(endpoint, key, address, rinfo.port, localAddress, local.port);
      for (const d of held) this.#deliver(p, d);
    });
  }

  #newPeer(
    endpoint: UdpEndpoint,
    key: string,
    address: string,
    port: number,
    localAddress: string,
    localPort: number,
  ): UdpPeer {
    if (endpoint.peers.size >= this.#limits.maxUdpPeers) {
      const [oldest] = endpoint.peers.keys();
      if (oldest !== undefined) endpoint.peers.delete(oldest);
    }
    const peer: UdpPeer = new UdpPeer(
      endpoint.socket,
      { address, port },
      { address: localAddress, port: localPort },
      (direction, bytes) =>
        this.emit('trace', { direction, connectionId: peer.id, text: Buffer.from(bytes).toString('utf8') }),
    );
    endpoint.peers.set(key, peer);
    return peer;
  }

  #deliver(peer: UdpPeer, datagram: Buffer): void {
    this.emit('trace', { direction: 'recv', connectionId: peer.id, text: datagram.toString('utf8') });
    const limits: { maxHeaderBytes?: number; maxBodyBytes?: number } = {};
    if (this.#options.maxHeaderBytes !== undefined) limits.maxHeaderBytes = this.#options.maxHeaderBytes;
    if (this.#options.maxBodyBytes !== undefined) limits.maxBodyBytes = this.#options.maxBodyBytes;
    const result = parseMessage(datagram, limits);
    if (result.ok) this.emit('message', peer, result.message);
    else this.emit('malformed', peer, result);
  }

  /** The source address the kernel picks for `remote` (a connected UDP socket, nothing sent). */
  #localAddressTowards(endpoint: UdpEndpoint, remote: string): Promise<string> {
    let route = endpoint.routes.get(remote);
    if (route) return route;
    const fallback = endpoint.address.host;
    route = new Promise<string>((resolve) => {
      const probe = dgram.createSocket(net.isIPv6(remote) ? 'udp6' : 'udp4');
      probe.on('error', () => {
        probe.close();
        resolve(fallback);
      });
      probe.connect(9, remote, () => {
        const local = probe.address().address;
        probe.close();
        resolve(unmapIpv4(local));
      });
    });
    endpoint.routes.set(remote, route);
    // Routes change rarely; a bounded cache is enough.
    if (endpoint.routes.size > 1024) {
      const [oldest] = endpoint.routes.keys();
      if (oldest !== undefined) endpoint.routes.delete(oldest);
    }
    return route;
  }
}

/** A datagram of CRLFs only: a keep-alive, not a message. */
function isKeepAlive(datagram: Buffer): boolean {
  if (datagram.length > 4) return false;
  for (const b of datagram) if (b !== 0x0d && b !== 0x0a) return false;
  return true;
}

/**
 * Parses `tcp://0.0.0.0:5060`, `tls://[::]:5061`, `udp://127.0.0.1:0`: the
 * address, or why not. Pure.
 */
export function parseListenUrl(
  text: string,
): { ok: true; address: ListenAddress } | { ok: false; reason: string } {
  const m = /^(tcp|tls|udp):\/\/(\[[^\]]+\]|[^:/[\]]+):(\d{1,5})\/?$/i.exec(text.trim());
  if (!m) return { ok: false, reason: 'must be tcp://HOST:PORT, tls://HOST:PORT or udp://HOST:PORT' };
  const transport = (m[1] as string).toLowerCase() as SipTransportName;
  const host = (m[2] as string).replace(/^\[|\]$/g, '');
  const port = Number(m[3]);
  if (net.isIP(host) === 0) return { ok: false, reason: `${host} is not an IP address` };
  if (port > 65535) return { ok: false, reason: `port ${port} is not 0-65535` };
  return { ok: true, address: { transport, host, port } };
}
