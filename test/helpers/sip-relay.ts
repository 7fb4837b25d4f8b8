/**
 * A transparent SIP relay between a client that cannot ping (SIPp) and the
 * server under test, that pings the way RingCX does: RFC 5626 CRLFCRLF
 * keep-alives on the connection (TCP), or CRLF datagrams from the same source
 * (UDP), every `pingEveryMs`. Over TCP, messages are forwarded whole (the
 * project's framer finds their ends), so a ping never lands inside one; the
 * server's CRLF pongs are counted and not forwarded (the client never asked).
 *
 *   const relay = await startRelay({ transport: 'tcp', target: { host, port }, pingEveryMs: 200 });
 *   // point SIPp at 127.0.0.1:relay.port
 *   relay.pingsSent, relay.pongsSeen
 *   await relay.close();
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { StreamFramer } from '../../src/sip/transport/framer.js';

export interface RelayOptions {
  transport: 'tcp' | 'udp';
  target: { host: string; port: number };
  pingEveryMs: number;
}

export interface Relay {
  /** Where the client connects (127.0.0.1). */
  readonly port: number;
  readonly pingsSent: number;
  readonly pongsSeen: number;
  /** SIP messages forwarded, both ways. */
  readonly forwarded: number;
  close(): Promise<void>;
}

const PING = Buffer.from('\r\n\r\n');
const BIG = { maxHeaderBytes: 1 << 20, maxBodyBytes: 1 << 20, maxSkipBytes: 1 << 22 };

export async function startRelay(options: RelayOptions): Promise<Relay> {
  return options.transport === 'tcp' ? tcpRelay(options) : udpRelay(options);
}

async function tcpRelay(options: RelayOptions): Promise<Relay> {
  let pingsSent = 0;
  let pongsSeen = 0;
  let forwarded = 0;
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = net.createServer((client) => {
    sockets.add(client);
    const upstream = net.connect(options.target.port, options.target.host);
    sockets.add(upstream);
    const toServer = new StreamFramer(BIG);
    const toClient = new StreamFramer(BIG);
    client.on('data', (chunk: Buffer) => {
      for (const ev of toServer.push(chunk)) {
        if (ev.type === 'message') {
          forwarded++;
          upstream.write(ev.bytes);
        }
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const ev of toClient.push(chunk)) {
        if (ev.type === 'message') {
          forwarded++;
          client.write(ev.bytes);
        } else if (ev.type === 'pong' || ev.type === 'ping') {
          pongsSeen++;
        }
      }
    });
    // Everything the relay forwards is whole messages, so a ping may go at any moment.
    const timer = setInterval(() => {
      if (upstream.writable) {
        upstream.write(PING);
        pingsSent++;
      }
    }, options.pingEveryMs);
    timers.add(timer);
    const end = () => {
      clearInterval(timer);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get pingsSent() {
      return pingsSent;
    },
    get pongsSeen() {
      return pongsSeen;
    },
    get forwarded() {
      return forwarded;
    },
    close: async () => {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function udpRelay(options: RelayOptions): Promise<Relay> {
  let pingsSent = 0;
  let forwarded = 0;
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => front.bind(0, '127.0.0.1', () => resolve()));
  await new Promise<void>((resolve) => back.bind(0, '127.0.0.1', () => resolve()));
  let client: { address: string; port: number } | undefined;
  front.on('message', (data, rinfo) => {
    client = { address: rinfo.address, port: rinfo.port };
    forwarded++;
    back.send(data, options.target.port, options.target.host);
  });
  back.on('message', (data) => {
    if (!client) return;
    forwarded++;
    front.send(data, client.port, client.address);
  });
  const timer = setInterval(() => {
    // RFC 5626 keeps UDP alive with STUN; a CRLF datagram is what some peers send anyway.
    if (client) {
      back.send(PING, options.target.port, options.target.host);
      pingsSent++;
    }
  }, options.pingEveryMs);
  return {
    port: front.address().port,
    get pingsSent() {
      return pingsSent;
    },
    pongsSeen: 0,
    get forwarded() {
      return forwarded;
    },
    close: async () => {
      clearInterval(timer);
      await Promise.all([
        new Promise<void>((r) => front.close(() => r())),
        new Promise<void>((r) => back.close(() => r())),
      ]);
    },
  };
}
