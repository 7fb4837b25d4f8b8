/**
 * Local UDP ports for RTP, one bound socket per call, from a configured range
 * (`--rtp-ports`). A thin adapter: it only picks numbers and binds.
 *
 * RFC 3550 11: RTP goes on an even port and RTCP on the next odd one, so even
 * ports are tried first; odd ones only when every even port is taken (we do
 * not run RTCP, and a working call beats a tidy number). Ports held by other
 * processes are skipped (EADDRINUSE). A port goes back to the pool when its
 * socket closes, and is handed out again only after the rest of the range has
 * had a turn; and a port released in the last 10 s comes after every other
 * free port, odd ones included: the far end of a finished call may still be
 * sending to it, and a stream already aimed at a new call's port competes
 * with the caller for the latch.
 *
 * Each socket asks for a 1 MiB receive buffer (SO_RCVBUF; the kernel caps it
 * at net.core.rmem_max): the recording waits up to a second for late
 * packets, so what must not happen is the kernel dropping them because the
 * event loop stalled while a flood filled the default ~200 KB (about 10 ms
 * of a 20 000 packets/s flood).
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { describeError, ErrorCodes, SoftphoneError } from '../errors.js';

export interface PortRange {
  min: number;
  max: number;
}

export interface AllocateOptions {
  /** Local IP to bind; default 0.0.0.0 (or :: when the pool was made for IPv6). */
  address?: string;
}

export interface RtpPortPoolOptions {
  /** Default local IP for {@link RtpPortPool.allocate}. */
  address?: string;
  /** How long a released port is avoided while others are free (ms); default 10 000. */
  quarantineMs?: number;
  /** The clock (ms) for the quarantine; default performance.now. */
  now?: () => number;
  /** SO_RCVBUF to ask for, bytes; default 1 MiB (0: leave the system's default). */
  recvBufferBytes?: number;
}

const RECV_BUFFER_BYTES = 1 << 20;

const QUARANTINE_MS = 10_000;

export class RtpPortPool {
  readonly range: Readonly<PortRange>;
  readonly #address: string;
  /** Ports bound (or being bound) by this pool. */
  readonly #held = new Set<number>();
  /** Where the next search starts: rotates through the range. */
  #cursor: number;
  /** Ports released recently, with when (insertion order: oldest first). */
  readonly #released = new Map<number, number>();
  readonly #quarantineMs: number;
  readonly #now: () => number;
  readonly #recvBuffer: number;

  constructor(range: PortRange, options: RtpPortPoolOptions = {}) {
    const { min, max } = range;
    const valid = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;
    if (!valid(min) || !valid(max) || min > max) {
      throw new SoftphoneError(
        ErrorCodes.CONFIG_INVALID,
        `--rtp-ports must be a range MIN-MAX of UDP ports within 1-65535, got ${min}-${max}`,
        { details: { flag: '--rtp-ports', min, max } },
      );
    }
    this.range = Object.freeze({ min, max });
    this.#address = options.address ?? '0.0.0.0';
    this.#cursor = min;
    this.#quarantineMs = options.quarantineMs ?? QUARANTINE_MS;
    this.#now = options.now ?? (() => performance.now());
    this.#recvBuffer = options.recvBufferBytes ?? RECV_BUFFER_BYTES;
  }

  /** Ports currently bound by sockets from this pool. */
  get inUse(): number {
    return this.#held.size;
  }

  /**
   * Binds a UDP socket on a free port of the range. The port returns to the
   * pool when the socket closes. Throws RTP_NO_PORT when no port can be bound.
   */
  async allocate(options: AllocateOptions = {}): Promise<dgram.Socket> {
    const address = options.address ?? this.#address;
    const type = net.isIPv6(address) ? 'udp6' : 'udp4';
    let inUseElsewhere = 0;
    for (const port of this.#candidates()) {
      // Reserve before the await so concurrent allocations never race for one port.
      this.#held.add(port);
      const result = await bindUdp(type, address, port);
      if (result instanceof dgram.Socket) {
        this.#cursor = port + 1 > this.range.max ? this.range.min : port + 1;
        this.#released.delete(port);
        if (this.#recvBuffer > 0) {
          try {
            result.setRecvBufferSize(this.#recvBuffer);
          } catch {
            // Refused (a hardened kernel): the default buffer still works, with less headroom.
          }
        }
        result.once('close', () => {
          this.#held.delete(port);
          this.#released.delete(port);
          this.#released.set(port, this.#now());
        });
        return result;
      }
      this.#held.delete(port);
      if (result.code === 'EADDRINUSE' || result.code === 'EACCES') {
        // Taken by another process (or privileged): try the next one.
        inUseElsewhere++;
        continue;
      }
      // EADDRNOTAVAIL and friends: the address is wrong, no port will do.
      throw new SoftphoneError(
        ErrorCodes.RTP_NO_PORT,
        `Cannot bind an RTP port on ${address}: ${describeError(result)}`,
        { cause: result, details: { address, port, ...(result.code ? { errno: result.code } : {}) } },
      );
    }
    const { min, max } = this.range;
    throw new SoftphoneError(
      ErrorCodes.RTP_NO_PORT,
      `No free RTP port in ${min}-${max} on ${address} (${this.#held.size} used by calls, ${inUseElsewhere} by other programs); widen --rtp-ports`,
      { details: { flag: '--rtp-ports', min, max, address, inUse: this.#held.size } },
    );
  }

  /**
   * Every port not held by us: even ones first, then odd ones, each group
   * starting at the cursor; ports released within the quarantine last,
   * longest released first.
   */
  *#candidates(): Generator<number> {
    const { min, max } = this.range;
    const size = max - min + 1;
    const since = this.#now() - this.#quarantineMs;
    for (const [port, at] of this.#released) {
      if (at > since) break;
      this.#released.delete(port);
    }
    const recent = this.#released;
    for (const parity of [0, 1]) {
      for (let i = 0; i < size; i++) {
        const port = min + ((this.#cursor - min + i) % size);
        if (port % 2 !== parity || this.#held.has(port) || recent.has(port)) continue;
        yield port;
      }
    }
    for (const port of [...recent.keys()]) if (!this.#held.has(port)) yield port;
  }
}

/**
 * The sockets' lookup: RTP and RTCP only ever go to IP addresses (a host
 * name in the SDP is resolved once by the session), and dns.lookup answers
 * even a literal a tick later: a closure and a nextTick per packet, 50 a
 * second a call, and the send would leave the tick that made it. Literals
 * are answered at once (the last one remembered); names still go to dns.lookup.
 */
let lastLiteral = '';
let lastFamily = 0;
function literalLookup(
  hostname: string,
  options: dns.LookupOneOptions | number,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  if (hostname !== lastLiteral) {
    const family = net.isIP(hostname);
    if (family === 0) {
      dns.lookup(hostname, typeof options === 'number' ? { family: options } : options, callback);
      return;
    }
    lastLiteral = hostname;
    lastFamily = family;
  }
  callback(null, hostname, lastFamily);
}

/** Binds or returns the bind error; the socket is closed on failure. */
function bindUdp(
  type: 'udp4' | 'udp6',
  address: string,
  port: number,
): Promise<dgram.Socket | NodeJS.ErrnoException> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket({ type, reuseAddr: false, lookup: literalLookup });
    const onError = (err: NodeJS.ErrnoException) => {
      socket.close();
      resolve(err);
    };
    socket.once('error', onError);
    // exclusive: a real bind of our own even under the cluster module.
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
