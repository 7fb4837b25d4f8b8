/**
 * Port and polling helpers for tests that start real peers.
 *
 * Ports are found by asking the kernel (bind to port 0) and then released, so
 * another process can still take one before the caller binds it. Callers that
 * start a daemon on such a port should treat "address in use" as retryable
 * (the Kamailio harness does).
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';

const LOOPBACK = '127.0.0.1';

export type PortKind = 'tcp' | 'udp' | 'both';

/** Binds a TCP listener on 127.0.0.1:port (0 = any); resolves with it, or null if the port is taken. */
function bindTcp(port: number): Promise<net.Server | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(null));
    // exclusive: don't share a handle with cluster workers; we want a real bind.
    server.listen({ host: LOOPBACK, port, exclusive: true }, () => resolve(server));
  });
}

/** Binds a UDP socket on 127.0.0.1:port (0 = any); resolves with it, or null if the port is taken. */
function bindUdp(port: number): Promise<dgram.Socket | null> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    socket.once('error', () => {
      socket.close();
      resolve(null);
    });
    socket.bind({ address: LOOPBACK, port, exclusive: true }, () => resolve(socket));
  });
}

function closeTcp(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function closeUdp(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}

function boundPort(handle: net.Server | dgram.Socket): number {
  const address = handle.address();
  if (address === null || typeof address === 'string') throw new Error('socket has no port');
  return address.port;
}

const MAX_ATTEMPTS = 50;

/**
 * A loopback port that was free for `kind` a moment ago ('both': the same
 * number free for TCP and for UDP, as a SIP server listening on both needs).
 */
export async function freePort(kind: PortKind): Promise<number> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (kind === 'udp') {
      const udp = await bindUdp(0);
      if (udp === null) continue;
      const port = boundPort(udp);
      await closeUdp(udp);
      return port;
    }
    const tcp = await bindTcp(0);
    if (tcp === null) continue;
    const port = boundPort(tcp);
    if (kind === 'tcp') {
      await closeTcp(tcp);
      return port;
    }
    const udp = await bindUdp(port);
    await closeTcp(tcp);
    if (udp === null) continue;
    await closeUdp(udp);
    return port;
  }
  throw new Error(`no free ${kind} port on ${LOOPBACK} after ${MAX_ATTEMPTS} attempts`);
}

/** The kernel's ephemeral range (ports handed out for port 0), to stay out of it. */
function ephemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const range = { low: Number(low), high: Number(high) };
    if (Number.isInteger(range.low) && Number.isInteger(range.high)) return range;
  } catch {
    // not Linux: fall through to the IANA dynamic range
  }
  return { low: 49152, high: 65535 };
}

export interface UdpPortRangeOptions {
  /** Make the base even (RTP on even ports, RTCP on the next odd one; RFC 3550 §11). Default true. */
  even?: boolean;
}

/**
 * A base port such that base .. base+count-1 were all free for UDP on
 * 127.0.0.1 a moment ago, e.g. for an RTP port range.
 *
 * Bases are picked at random below the kernel's ephemeral range, so that
 * other tests asking for port 0 are unlikely to be handed a port inside it.
 */
export async function freeUdpPortRange(count: number, options: UdpPortRangeOptions = {}): Promise<number> {
  if (!Number.isInteger(count) || count < 1 || count > 8000) throw new RangeError(`bad port count ${count}`);
  const even = options.even ?? true;
  const { low: ephemeralLow, high: ephemeralHigh } = ephemeralRange();
  // Prefer [10000, ephemeralLow); if that is too small use the space above the range.
  const windows: Array<[number, number]> = [];
  if (ephemeralLow - 10_000 > count * 4) windows.push([10_000, ephemeralLow - count]);
  if (65_535 - ephemeralHigh > count * 4) windows.push([ephemeralHigh + 1, 65_536 - count]);
  if (windows.length === 0) windows.push([1024, 65_536 - count]);

  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const [from, to] = windows[attempt % windows.length]!;
    let base = from + Math.floor(Math.random() * (to - from));
    if (even && base % 2 === 1) base -= 1;
    if (base < from) base += 2;
    const held: dgram.Socket[] = [];
    let ok = true;
    for (let port = base; port < base + count; port++) {
      const socket = await bindUdp(port);
      if (socket === null) {
        ok = false;
        break;
      }
      held.push(socket);
    }
    await Promise.all(held.map(closeUdp));
    if (ok) return base;
  }
  throw new Error(`no free range of ${count} UDP ports on ${LOOPBACK} after ${MAX_ATTEMPTS} attempts`);
}

export interface WaitForOptions {
  /** Give up after this long. Default 10 000 ms. */
  timeoutMs?: number;
  /** Time between polls. Default 50 ms. */
  intervalMs?: number;
  /** Said in the timeout error, e.g. "device re-registered". */
  message?: string;
  /** Stop polling and reject when this aborts. */
  signal?: AbortSignal;
}

/**
 * Polls `predicate` until it returns a truthy value and resolves with that
 * value. Only for conditions that have no event to wait on (a file appearing,
 * a daemon's state seen through its CLI). A predicate that throws counts as
 * "not yet"; the last error is reported on timeout.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (options.signal?.aborted) throw new Error(`waitFor: ${options.message ?? 'condition'}: aborted`);
    try {
      const value = await predicate();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const what = options.message ?? 'condition';
      const why = lastError === undefined ? '' : `; last error: ${String(lastError)}`;
      throw new Error(`waitFor: ${what} not met within ${timeoutMs} ms${why}`);
    }
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(intervalMs, Math.max(0, deadline - Date.now()))),
    );
  }
}
