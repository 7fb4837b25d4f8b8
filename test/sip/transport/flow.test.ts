/**
 * SipFlow against real sockets: a raw TCP or TLS peer on 127.0.0.1, port 0,
 * playing the SIP server byte by byte. Every wait is on an event or on a
 * condition checked when an event arrives; the only timers are deadlines
 * (a wait that never completes fails with a message) and the pacing of a
 * peer that is meant to be slow.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCodes, type SoftphoneError } from '../../../src/errors.js';
import { type ParseResult, parseMessage } from '../../../src/sip/message/parse.js';
import { serialize } from '../../../src/sip/message/serialize.js';
import type { SipMessage } from '../../../src/sip/message/types.js';
import { type FlowOptions, SipFlow, type TraceDirection } from '../../../src/sip/transport/flow.js';
import { scriptedLookup } from '../../helpers/dns.js';
import { freePort } from '../../helpers/ports.js';
import { localhostCertificate } from '../../helpers/tls-cert.js';

const HOST = '127.0.0.1';
/** How long any single wait may take before the test fails with a message (generous: CI may be loaded). */
const DEADLINE_MS = 10_000;

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');
const lines = (...l: string[]): string => l.join('\r\n');

// --- SIP messages ---------------------------------------------------------------------------------

const REGISTER_TEXT = lines(
  'REGISTER sip:sip.example.com SIP/2.0',
  'Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKflow1',
  'Max-Forwards: 70',
  'From: <sip:bot@sip.example.com>;tag=a1',
  'To: <sip:bot@sip.example.com>',
  'Call-ID: flow-register-1',
  'CSeq: 1 REGISTER',
  'Contact: <sip:bot@127.0.0.1;transport=tcp>;expires=600',
  'Content-Length: 0',
  '',
  '',
);

/** A UTF-8 SDP: its byte length differs from its character count. */
const SDP = lines(
  'v=0',
  'o=- 4218563417 4218563417 IN IP4 127.0.0.1',
  's=Звонок ☎ café',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=audio 35678 RTP/AVP 0 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=sendrecv',
  '',
);
const INVITE = enc(
  lines(
    'INVITE sip:bot@127.0.0.1;transport=tcp SIP/2.0',
    'Via: SIP/2.0/TCP 127.0.0.1:5091;branch=z9hG4bKinv1',
    'From: "Абонент" <sip:+16505550199@127.0.0.1>;tag=3b7c1f9e',
    'To: <sip:bot@sip.example.com>',
    'Call-ID: flow-invite-1',
    'CSeq: 314159 INVITE',
    'Max-Forwards: 67',
    'Content-Type: application/sdp',
    `Content-Length: ${enc(SDP).length}`,
    '',
    SDP,
  ),
);
const BYE = enc(
  lines(
    'BYE sip:bot@127.0.0.1 SIP/2.0',
    'Via: SIP/2.0/TCP 127.0.0.1:5091;branch=z9hG4bKbye1',
    'From: <sip:+16505550199@127.0.0.1>;tag=3b7c1f9e',
    'To: <sip:bot@sip.example.com>;tag=z1',
    'Call-ID: flow-invite-1',
    'CSeq: 314160 BYE',
    'l: 0',
    '',
    '',
  ),
);
const OK_200 = enc(
  lines(
    'SIP/2.0 200 OK',
    'Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKflow1',
    'From: <sip:bot@sip.example.com>;tag=a1',
    'To: <sip:bot@sip.example.com>;tag=srv',
    'Call-ID: flow-register-1',
    'CSeq: 1 REGISTER',
    'Content-Length: 0',
    '',
    '',
  ),
);

/** A BYE with a numbered Call-ID (for streams of several messages). */
function numberedBye(n: number): Buffer {
  return Buffer.from(
    BYE.toString('utf8').replace('Call-ID: flow-invite-1', `Call-ID: flow-bye-${n}`),
    'utf8',
  );
}

function registerMessage(): SipMessage {
  const parsed = parseMessage(enc(REGISTER_TEXT));
  if (!parsed.ok) throw new Error(`test REGISTER does not parse: ${parsed.error.message}`);
  return parsed.message;
}

const PING = '\r\n\r\n';
const PONG = '\r\n';

function countOf(haystack: Buffer, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

// --- waiting on events ----------------------------------------------------------------------------

/**
 * Resolves with `check()`'s first truthy value, re-checking whenever `source`
 * emits `change`; rejects after DEADLINE_MS, or when `fail()` returns a reason.
 */
function until<T>(
  source: EventEmitter,
  check: () => T,
  what: string,
  fail: () => string | undefined = () => undefined,
  timeoutMs = DEADLINE_MS,
): Promise<NonNullable<T>> {
  return new Promise((resolve, reject) => {
    const evaluate = (): void => {
      const value = check();
      if (value) {
        done();
        resolve(value as NonNullable<T>);
        return;
      }
      const reason = fail();
      if (reason !== undefined) {
        done();
        reject(new Error(`${what}: ${reason}`));
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what}: not within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      source.off('change', evaluate);
    };
    source.on('change', evaluate);
    evaluate();
  });
}

/** Everything a flow emits, recorded from the moment it connected. */
class FlowWatch {
  readonly messages: SipMessage[] = [];
  readonly malformed: Array<{ result: Extract<ParseResult, { ok: false }>; bytes: Uint8Array }> = [];
  readonly closes: Array<SoftphoneError | undefined> = [];
  readonly traces: Array<{ direction: TraceDirection; bytes: Buffer }> = [];
  pongs = 0;
  readonly #changes = new EventEmitter();

  constructor(readonly flow: SipFlow) {
    flow.on('message', (m) => this.#record(() => this.messages.push(m)));
    flow.on('malformed', (result, bytes) => this.#record(() => this.malformed.push({ result, bytes })));
    flow.on('close', (error) => this.#record(() => this.closes.push(error)));
    flow.on('trace', (direction, bytes) =>
      this.#record(() => this.traces.push({ direction, bytes: Buffer.from(bytes) })),
    );
    flow.on('pong', () => this.#record(() => this.pongs++));
  }

  /** Waits for `count` messages; fails fast if the flow closes first. */
  messagesReceived(count: number): Promise<SipMessage[]> {
    return until(
      this.#changes,
      () => (this.messages.length >= count ? this.messages.slice(0, count) : undefined),
      `${count} message(s) received`,
      () => (this.closes.length > 0 ? `flow closed first (${explain(this.closes[0])})` : undefined),
    );
  }

  /** Waits for the first close event and resolves with its argument (wrapped: undefined is a value). */
  closed(timeoutMs = DEADLINE_MS): Promise<{ error: SoftphoneError | undefined }> {
    return until(
      this.#changes,
      () => (this.closes.length > 0 ? { error: this.closes[0] } : undefined),
      'flow closed',
      undefined,
      timeoutMs,
    );
  }

  waitUntil<T>(check: () => T, what: string): Promise<NonNullable<T>> {
    return until(this.#changes, check, what, () =>
      this.closes.length > 0 ? `flow closed first (${explain(this.closes[0])})` : undefined,
    );
  }

  #record(push: () => void): void {
    push();
    this.#changes.emit('change');
  }
}

function explain(error: SoftphoneError | undefined): string {
  return error === undefined ? 'close()' : `${error.code}: ${error.message}`;
}

/** The server's end of one accepted connection. */
class Peer {
  #received = Buffer.alloc(0);
  #closed = false;
  #ended = false;
  readonly #changes = new EventEmitter();

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#received = Buffer.concat([this.#received, chunk]);
      this.#changes.emit('change');
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#changes.emit('change');
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#changes.emit('change');
    });
    // A reset from the flow is expected in several tests; 'close' follows and is what they watch.
    socket.on('error', () => {});
  }

  get received(): Buffer {
    return this.#received;
  }

  /** Forgets what was received so far. */
  clear(): void {
    this.#received = Buffer.alloc(0);
  }

  /** Waits until the bytes received satisfy `check`; fails fast if the connection closes first. */
  receivedUntil(check: (bytes: Buffer) => boolean, what: string): Promise<Buffer> {
    return until(
      this.#changes,
      () => (check(this.#received) ? this.#received : undefined),
      `peer received ${what}`,
      () =>
        this.#closed
          ? `connection closed; got ${JSON.stringify(this.#received.toString('latin1'))}`
          : undefined,
    );
  }

  /** Waits for the flow's FIN (a graceful close). */
  ended(): Promise<true> {
    return until(this.#changes, () => this.#ended || undefined, 'peer saw FIN');
  }

  /** Waits until this side of the connection is fully closed. */
  closed(): Promise<true> {
    return until(this.#changes, () => this.#closed || undefined, 'peer connection closed');
  }

  /** Writes and resolves once the bytes are handed to the kernel. */
  write(bytes: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }
}

type ServerKind = 'tcp' | 'tls' | 'silent';

/** A listening fake server; `silent` is plain TCP that never says a word (not even a TLS handshake). */
class FakeServer {
  readonly peers: Peer[] = [];
  readonly #changes = new EventEmitter();

  private constructor(
    readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(kind: ServerKind): Promise<FakeServer> {
    let server: net.Server;
    let onPeer: (socket: net.Socket) => void = () => {};
    const accept = (socket: net.Socket): void => onPeer(socket);
    if (kind === 'tls') {
      const { cert, key } = localhostCertificate();
      server = tls.createServer({ cert, key }, accept);
      // Handshakes our client aborts (certificate rejected) are expected here.
      server.on('tlsClientError', () => {});
    } else {
      server = net.createServer(accept);
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: HOST, port: 0 }, () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('server has no port');
    const fake = new FakeServer(server, address.port);
    onPeer = (socket) => {
      socket.setNoDelay(true);
      fake.peers.push(new Peer(socket));
      fake.#changes.emit('change');
    };
    cleanups.push(() => fake.close());
    return fake;
  }

  /** The n-th accepted connection (0-based), once it exists. */
  peer(n = 0): Promise<Peer> {
    return until(this.#changes, () => this.peers[n], `connection #${n} accepted`);
  }

  close(): Promise<void> {
    for (const p of this.peers) p.socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// --- the client sockets SipFlow opens (observed, not altered) -------------------------------------

/**
 * The sockets SipFlow.connect created, so that tests can tell when the flow's
 * own socket is really gone (e.g. that no second close event follows it).
 */
const clientSockets: net.Socket[] = [];
type ConnectFn = (...args: unknown[]) => net.Socket;
const realNetConnect = net.connect as unknown as ConnectFn;
const realTlsConnect = tls.connect as unknown as ConnectFn;

let observing = false;

function observeClientSockets(): void {
  if (observing) return;
  observing = true;
  vi.spyOn(net, 'connect').mockImplementation(((...args: unknown[]) => {
    const socket = realNetConnect(...args);
    clientSockets.push(socket);
    return socket;
  }) as unknown as typeof net.connect);
  vi.spyOn(tls, 'connect').mockImplementation(((...args: unknown[]) => {
    const socket = realTlsConnect(...args);
    clientSockets.push(socket);
    return socket;
  }) as unknown as typeof tls.connect);
}

function lastClientSocket(): net.Socket {
  const socket = clientSockets.at(-1);
  if (!socket) throw new Error('SipFlow.connect opened no socket');
  return socket;
}

/** Resolves once the socket has emitted 'close' (at once if it already has). */
function socketClosed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

// --- setup ----------------------------------------------------------------------------------------

const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  clientSockets.length = 0;
  observing = false;
  vi.restoreAllMocks();
});

/** Connects a flow (keep-alive off unless asked for) and starts recording its events. */
async function open(
  server: FakeServer,
  options: Partial<FlowOptions> = {},
): Promise<{ flow: SipFlow; watch: FlowWatch; peer: Peer }> {
  observeClientSockets();
  const index = server.peers.length;
  const flow = await SipFlow.connect({
    host: HOST,
    port: server.port,
    transport: 'tcp',
    keepAliveIntervalMs: 0,
    connectTimeoutMs: DEADLINE_MS,
    ...options,
  });
  // Attached before any I/O callback can run: connect() resolved in this same macrotask.
  const watch = new FlowWatch(flow);
  cleanups.push(() => flow.close());
  const peer = await server.peer(index);
  return { flow, watch, peer };
}

/** Connects and expects a rejection; returns the error (and checks the socket was not leaked). */
async function connectFails(options: FlowOptions): Promise<SoftphoneError> {
  observeClientSockets();
  const error = await SipFlow.connect(options).then(
    (flow) => {
      flow.close();
      throw new Error('SipFlow.connect resolved; expected a rejection');
    },
    (err: unknown) => err as SoftphoneError,
  );
  await socketClosed(lastClientSocket());
  return error;
}

// --- tests ----------------------------------------------------------------------------------------

describe('SipFlow over TCP', () => {
  it('connects and sends a serialized message (traced as sent)', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server);
    expect(flow.transport).toBe('tcp');
    expect(flow.remote).toEqual({ host: HOST, port: server.port });
    expect(flow.closed).toBe(false);
    expect(flow.localAddress).toBe(HOST);
    expect(flow.localPort).toBe(peer.socket.remotePort);

    const message = registerMessage();
    expect(flow.send(message)).toBe(true);
    const expected = serialize(message);
    const got = await peer.receivedUntil((b) => b.length >= expected.length, 'the REGISTER');
    expect(got.equals(expected)).toBe(true);
    expect(watch.traces).toHaveLength(1);
    expect(watch.traces[0]?.direction).toBe('send');
    expect(watch.traces[0]?.bytes.equals(expected)).toBe(true);

    const echoed = parseMessage(got);
    expect(echoed.ok && echoed.message.type === 'request' && echoed.message.method).toBe('REGISTER');
    expect(echoed.ok && echoed.message.headers.callId()).toBe('flow-register-1');
  });

  it('parses a message that arrives split across many writes (inside CRLFCRLF and UTF-8 sequences)', async () => {
    const server = await FakeServer.start('tcp');
    const { watch, peer } = await open(server);
    const reads = { count: 0 };
    lastClientSocket().on('data', () => reads.count++);

    // Chunk sizes cycle through small primes, so splits land everywhere:
    // inside the blank line, inside multi-byte characters, inside Content-Length.
    const sizes = [1, 2, 3, 5, 7, 11, 13];
    let offset = 0;
    for (let i = 0; offset < INVITE.length; i++) {
      const size = sizes[i % sizes.length] ?? 1;
      await peer.write(INVITE.subarray(offset, offset + size));
      offset += size;
      // Give the flow's read a turn between writes (pacing, not a wait for an outcome).
      await new Promise((resolve) => setImmediate(resolve));
    }
    const [invite] = await watch.messagesReceived(1);
    expect(reads.count).toBeGreaterThan(1);
    expect(watch.messages).toHaveLength(1);
    expect(invite?.type).toBe('request');
    if (invite?.type !== 'request') return;
    expect(invite.method).toBe('INVITE');
    expect(invite.headers.callId()).toBe('flow-invite-1');
    expect(Buffer.from(invite.body).toString('utf8')).toBe(SDP);
    expect(invite.body.byteLength).toBeGreaterThan(SDP.length);
    const recv = watch.traces.filter((t) => t.direction === 'recv');
    expect(recv).toHaveLength(1);
    expect(recv[0]?.bytes.equals(INVITE)).toBe(true);
  });

  it('parses several messages that arrive in one write, in order, answering a ping between them', async () => {
    const server = await FakeServer.start('tcp');
    const { watch, peer } = await open(server);
    await peer.write(Buffer.concat([INVITE, BYE, enc(PING), OK_200]));

    const [invite, bye, ok] = await watch.messagesReceived(3);
    expect(invite?.type === 'request' && invite.method).toBe('INVITE');
    expect(bye?.type === 'request' && bye.method).toBe('BYE');
    expect(ok?.type === 'response' && ok.status).toBe(200);
    expect(ok?.headers.cseq()).toEqual({ seq: 1, method: 'REGISTER' });
    expect(watch.malformed).toEqual([]);
    // The ping in the middle of the stream is answered with a pong (RFC 5626 4.4.1).
    await peer.receivedUntil((b) => b.toString('latin1') === PONG, 'the CRLF pong');
    expect(watch.closes).toEqual([]);
  });
});

describe('SipFlow keep-alive (RFC 5626 4.4.1)', () => {
  it('sends CRLFCRLF when the flow has been idle for keepAliveIntervalMs', async () => {
    const server = await FakeServer.start('tcp');
    const start = performance.now();
    const { peer } = await open(server, { keepAliveIntervalMs: 200 });
    const got = await peer.receivedUntil((b) => b.length >= 4, 'a ping');
    const elapsed = performance.now() - start;
    expect(got.toString('latin1')).toBe(PING);
    expect(elapsed).toBeGreaterThanOrEqual(190);
  });

  it("emits 'pong' when the server answers a ping with CRLF", async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server, { keepAliveIntervalMs: 200, pongTimeoutMs: 5000 });
    peer.socket.on('data', () => peer.socket.write(PONG));
    await watch.waitUntil(() => watch.pongs >= 2, 'two pongs');
    expect(flow.closed).toBe(false);
    expect(watch.messages).toEqual([]);
  });

  it('answers an explicit ping() the same way', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server);
    flow.ping();
    await peer.receivedUntil((b) => b.toString('latin1') === PING, 'a ping');
    await peer.write(PONG);
    await watch.waitUntil(() => watch.pongs === 1, 'the pong');
  });

  it('closes with SIP_TRANSPORT_CLOSED when a server that answered pings stops answering', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server, { keepAliveIntervalMs: 300, pongTimeoutMs: 300 });
    // Answer the first ping only.
    await peer.receivedUntil((b) => b.length >= 4, 'the first ping');
    await peer.write(PONG);
    await watch.waitUntil(() => watch.pongs === 1, 'the first pong');

    const { error } = await watch.closed();
    expect(error?.code).toBe(ErrorCodes.SIP_TRANSPORT_CLOSED);
    expect(error?.message).toMatch(/pong/);
    expect(error?.message).toMatch(/300 ms/);
    expect(countOf(peer.received, PING)).toBeGreaterThanOrEqual(2);
    expect(flow.closed).toBe(true);
    await peer.closed();
    expect(watch.closes).toHaveLength(1);
  });

  it('never waits longer for a pong than the keep-alive interval: a half-open flow is found within two periods', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch } = await open(server, { keepAliveIntervalMs: 150 });
    flow.expectPongs(); // the registrar supports outbound: trust pongs from the first ping
    const { error } = await watch.closed();
    expect(error?.message).toMatch(/no keep-alive pong within 150 ms/);
  });

  it('keeps the flow open when the server never answers pings (nothing to judge it by)', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server, { keepAliveIntervalMs: 100, pongTimeoutMs: 100 });
    // Five pings at 100 ms, each "unanswered" for longer than pongTimeoutMs.
    await peer.receivedUntil((b) => countOf(b, PING) >= 5, 'five pings');
    expect(peer.received.toString('latin1')).toBe(PING.repeat(countOf(peer.received, PING)));
    expect(watch.closes).toEqual([]);
    expect(flow.closed).toBe(false);
    // Still usable.
    flow.send(registerMessage());
    await peer.receivedUntil((b) => b.includes('REGISTER sip:'), 'the REGISTER');
  });

  it("answers the server's CRLFCRLF ping with a CRLF pong (and reports no pong of its own)", async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server);
    await peer.write(PING);
    await peer.receivedUntil((b) => b.length >= 2, 'the pong');
    expect(peer.received.toString('latin1')).toBe(PONG);
    expect(watch.pongs).toBe(0);
    expect(flow.closed).toBe(false);
    // And again, after a message in between.
    peer.clear();
    await peer.write(Buffer.concat([BYE, enc(PING)]));
    await peer.receivedUntil((b) => b.length >= 2, 'the second pong');
    expect(peer.received.toString('latin1')).toBe(PONG);
    expect(watch.messages).toHaveLength(1);
  });

  it('answers a server ping split across two reads (CRLF | CRLF) once, and takes neither half for a pong', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server);
    // Two reads, deterministically: the halves are handed to the flow's socket one by one.
    const socket = lastClientSocket();
    socket.emit('data', Buffer.from(PONG, 'latin1'));
    socket.emit('data', Buffer.from(PONG, 'latin1'));
    await peer.receivedUntil((b) => b.length >= 2, 'the pong');
    expect(peer.received.toString('latin1')).toBe(PONG);
    expect(watch.pongs).toBe(0);
    expect(flow.closed).toBe(false);
  });

  it('takes a CRLF for a pong only while a ping of ours is unanswered', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch } = await open(server);
    const socket = lastClientSocket();
    // Unasked: not a pong (a server is judged by missing pongs only once it answered one).
    socket.emit('data', Buffer.from(PONG, 'latin1'));
    expect(watch.pongs).toBe(0);
    flow.ping();
    socket.emit('data', Buffer.from(PONG, 'latin1'));
    expect(watch.pongs).toBe(1);
    // Answered: a second CRLF is not another pong.
    socket.emit('data', Buffer.from(PONG, 'latin1'));
    expect(watch.pongs).toBe(1);
  });
});

describe('SipFlow framing errors and malformed messages', () => {
  const head = (...fields: string[]): string =>
    lines(
      'MESSAGE sip:bot@127.0.0.1 SIP/2.0',
      'Via: SIP/2.0/TCP 127.0.0.1:5091;branch=z9hG4bKmsg',
      'From: <sip:a@127.0.0.1>;tag=1',
      'To: <sip:bot@127.0.0.1>',
      'Call-ID: flow-frame',
      'CSeq: 1 MESSAGE',
      ...fields,
      '',
      '',
    );

  it.each([
    { name: 'missing Content-Length', bytes: head() + 'hello', code: ErrorCodes.SIP_FRAME_NO_CONTENT_LENGTH },
    {
      name: 'negative Content-Length',
      bytes: head('Content-Length: -5') + 'hello',
      code: ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH,
    },
    {
      name: 'conflicting Content-Length',
      bytes: head('Content-Length: 5', 'l: 6') + 'hello!',
      code: ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH,
    },
    {
      name: 'non-numeric Content-Length',
      bytes: head('Content-Length: five') + 'hello',
      code: ErrorCodes.SIP_FRAME_BAD_CONTENT_LENGTH,
    },
    {
      name: 'header section over maxSkipBytes',
      bytes: head(`Subject: ${'x'.repeat(400)}`, 'Content-Length: 0'),
      code: ErrorCodes.SIP_FRAME_TOO_LARGE,
    },
    {
      name: 'Content-Length over maxSkipBytes',
      bytes: head('Content-Length: 1000') + 'x'.repeat(1000),
      code: ErrorCodes.SIP_FRAME_TOO_LARGE,
    },
  ])('$name closes the flow with $code, after delivering the message before it', async ({ bytes, code }) => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server, {
      maxHeaderBytes: 300,
      maxBodyBytes: 100,
      maxSkipBytes: 300,
    });
    await peer.write(Buffer.concat([BYE, enc(bytes)]));

    const { error } = await watch.closed();
    expect(error?.code).toBe(code);
    expect(watch.messages).toHaveLength(1);
    expect(watch.messages[0]?.type === 'request' && watch.messages[0].method).toBe('BYE');
    expect(flow.closed).toBe(true);
    expect(flow.send(registerMessage())).toBe(false);
    await peer.closed();
    await socketClosed(lastClientSocket());
    expect(watch.closes).toHaveLength(1);
  });

  it.each([
    {
      name: 'a request without Call-ID and CSeq',
      bytes: lines(
        'OPTIONS sip:bot@127.0.0.1 SIP/2.0',
        'Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx',
        'l: 0',
        '',
        '',
      ),
    },
    { name: 'a start line that is not SIP', bytes: lines('HELLO WORLD', 'Content-Length: 3', '', 'abc') },
    {
      name: 'a response with a bad status code',
      bytes: lines('SIP/2.0 99 Too Low', 'Call-ID: x', 'Content-Length: 0', '', ''),
    },
  ])("$name is reported as 'malformed' and the flow stays open", async ({ bytes }) => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server);
    const raw = enc(bytes);
    const expected = parseMessage(raw);
    expect(expected.ok).toBe(false);

    await peer.write(raw);
    const [bad] = await watch.waitUntil(
      () => (watch.malformed.length > 0 ? watch.malformed : undefined),
      'malformed',
    );
    expect(bad?.result.ok).toBe(false);
    expect(bad?.result.error.code).toBe(expected.ok ? undefined : expected.error.code);
    expect(Buffer.from(bad?.bytes ?? []).equals(raw)).toBe(true);
    expect(watch.messages).toEqual([]);
    expect(flow.closed).toBe(false);

    // The stream is still in step: the next message parses.
    await peer.write(BYE);
    const [bye] = await watch.messagesReceived(1);
    expect(bye?.type === 'request' && bye.method).toBe('BYE');
    expect(watch.closes).toEqual([]);
  });

  it.each([
    {
      name: 'a header section over maxHeaderBytes',
      bytes: head(`Subject: ${'x'.repeat(400)}`, 'Content-Length: 0'),
    },
    { name: 'a body over maxBodyBytes', bytes: head('Content-Length: 1000') + 'x'.repeat(1000) },
  ])(
    "$name (within maxSkipBytes) is reported as 'malformed' with status 513 and the flow stays open",
    async ({ bytes }) => {
      const server = await FakeServer.start('tcp');
      const { flow, watch, peer } = await open(server, { maxHeaderBytes: 300, maxBodyBytes: 100 });
      await peer.write(Buffer.concat([enc(bytes), BYE]));
      const [bye] = await watch.messagesReceived(1);
      expect(bye?.type === 'request' && bye.method).toBe('BYE');
      const [bad] = watch.malformed;
      expect(bad?.result.status).toBe(513);
      expect(bad?.result.error.code).toBe(ErrorCodes.SIP_FRAME_TOO_LARGE);
      // The fields that fit are there to answer with.
      const request = bad?.result.message;
      expect(request?.type === 'request' && request.method).toBe('MESSAGE');
      expect(request?.headers.get('Call-ID')).toBe('flow-frame');
      expect(flow.closed).toBe(false);
      expect(watch.closes).toEqual([]);
    },
  );

  it('closes with SIP_FRAME_INCOMPLETE when a message never completes within incompleteMessageTimeoutMs', async () => {
    const server = await FakeServer.start('tcp');
    const { watch, peer } = await open(server, { incompleteMessageTimeoutMs: 300 });
    const start = performance.now();
    await peer.write(head('Content-Length: 100') + 'only ten!!');

    const { error } = await watch.closed();
    expect(performance.now() - start).toBeGreaterThanOrEqual(290);
    expect(error?.code).toBe(ErrorCodes.SIP_FRAME_INCOMPLETE);
    expect(error?.message).toMatch(/300 ms/);
    expect(watch.messages).toEqual([]);
    await peer.closed();
  });

  it('does not time out a message that completes within incompleteMessageTimeoutMs', async () => {
    const server = await FakeServer.start('tcp');
    const { watch, peer } = await open(server, { incompleteMessageTimeoutMs: 400 });
    await peer.write(INVITE.subarray(0, 100));
    await new Promise((resolve) => setTimeout(resolve, 100)); // a slow peer, by design
    await peer.write(INVITE.subarray(100));
    await watch.messagesReceived(1);
    // A second message after the buffer emptied gets a fresh timer.
    await peer.write(BYE.subarray(0, 50));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await peer.write(BYE.subarray(50));
    await watch.messagesReceived(2);
    expect(watch.closes).toEqual([]);
  });

  // The deadline counts from a message's first byte: a slow but honest sender
  // fits in it (here ~270 ms of a 500 ms deadline).
  it('accepts a message whose bytes arrive slowly but complete within the deadline from its first byte', async () => {
    const server = await FakeServer.start('tcp');
    const { watch, peer } = await open(server, { incompleteMessageTimeoutMs: 500 });
    const pieces = 10;
    const size = Math.ceil(INVITE.length / pieces);
    for (let i = 0; i < pieces; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 30)); // a slow peer, by design
      if (watch.closes.length > 0) break;
      await peer.write(INVITE.subarray(i * size, (i + 1) * size));
    }
    await watch.messagesReceived(1);
    expect(watch.closes).toEqual([]);
  });

  // Issue 11: a lying Content-Length kept the flow waiting for minutes, the
  // server's CRLF keep-alive answers landing inside the unfinished body and
  // re-arming the timer; every later request (a caller's BYE) was swallowed.
  it('closes at the deadline a message whose body never completes, however bytes keep trickling in', async () => {
    const server = await FakeServer.start('tcp');
    const { watch, peer } = await open(server, { incompleteMessageTimeoutMs: 600 });
    const start = performance.now();
    const liar = Buffer.from(BYE.toString('latin1').replace('l: 0\r\n', 'l: 500\r\n'), 'latin1');
    expect(liar.toString('latin1')).toContain('l: 500');
    await peer.write(liar);
    const drip = setInterval(() => void peer.write(Buffer.from('\r\n')), 100);
    try {
      await watch.closed();
    } finally {
      clearInterval(drip);
    }
    expect(watch.closes[0]?.code).toBe(ErrorCodes.SIP_FRAME_INCOMPLETE);
    // Closed by the deadline, not extended by the 100 ms drip (generous upper bound for a loaded machine).
    expect(performance.now() - start).toBeLessThan(4000);
    expect(watch.closes[0]?.message).toMatch(/still incomplete 600 ms after it began/);
  });

  // Regression, same cause: on a busy stream whose reads never end on a message
  // boundary the buffer never empties; completed messages must keep it alive.
  it('does not time out a stream of messages that each complete in time but never leave the buffer empty', async () => {
    const server = await FakeServer.start('tcp');
    const { watch, peer } = await open(server, { incompleteMessageTimeoutMs: 400 });
    const count = 8;
    const messages = Array.from({ length: count }, (_, i) => numberedBye(i));
    const half = Math.floor(BYE.length / 2);
    // Each write finishes one message and starts the next: ~120 ms per message, ~840 ms in all.
    await peer.write(messages[0]!.subarray(0, half));
    for (let i = 0; i < count; i++) {
      await new Promise((resolve) => setTimeout(resolve, 120)); // a slow peer, by design
      if (watch.closes.length > 0) break;
      const rest = messages[i]!.subarray(half);
      const next = messages[i + 1]?.subarray(0, half) ?? Buffer.alloc(0);
      await peer.write(Buffer.concat([rest, next]));
    }
    await watch.messagesReceived(count);
    expect(watch.messages.map((m) => m.headers.callId())).toEqual(messages.map((_, i) => `flow-bye-${i}`));
    expect(watch.closes).toEqual([]);
  });

  // Regression: a listener closing the flow mid-read must not leave a fresh
  // incomplete-message timer armed on the closed flow.
  it('arms no timer after a message listener closed the flow with a partial message buffered', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server, { incompleteMessageTimeoutMs: 7_777 });
    const timeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    flow.on('message', () => flow.close());
    await peer.write(Buffer.concat([BYE, INVITE.subarray(0, 40)]));
    await watch.closed();
    expect(watch.closes).toEqual([undefined]);
    const armed = timeoutSpy.mock.calls.filter((call) => call[1] === 7_777);
    expect(armed).toEqual([]);
  });
});

describe('SipFlow over TLS', () => {
  it('rejects a self-signed certificate by default with SIP_TLS_CERTIFICATE naming --tls-insecure', async () => {
    const server = await FakeServer.start('tls');
    const error = await connectFails({ host: HOST, port: server.port, transport: 'tls' });
    expect(error.code).toBe(ErrorCodes.SIP_TLS_CERTIFICATE);
    expect(error.message).toContain('--tls-insecure');
    expect(error.message).toContain(`TLS ${HOST}:${server.port}`);
  });

  it('connects when the certificate is passed as tlsCa with tlsServername localhost, and carries SIP both ways', async () => {
    const server = await FakeServer.start('tls');
    const { flow, watch, peer } = await open(server, {
      transport: 'tls',
      tlsCa: localhostCertificate().cert,
      tlsServername: 'localhost',
    });
    expect(flow.transport).toBe('tls');
    expect((peer.socket as tls.TLSSocket).servername).toBe('localhost');
    expect((lastClientSocket() as tls.TLSSocket).authorized).toBe(true);

    flow.send(registerMessage());
    await peer.receivedUntil((b) => b.includes('\r\n\r\n'), 'the REGISTER');
    expect(peer.received.equals(serialize(registerMessage()))).toBe(true);
    await peer.write(Buffer.concat([OK_200, INVITE]));
    const [ok, invite] = await watch.messagesReceived(2);
    expect(ok?.type === 'response' && ok.status).toBe(200);
    expect(invite?.type === 'request' && Buffer.from(invite.body).toString('utf8')).toBe(SDP);
  });

  it('checks the IP address against the certificate when connecting to an IP literal with tlsCa', async () => {
    const server = await FakeServer.start('tls');
    const { flow } = await open(server, { transport: 'tls', tlsCa: [localhostCertificate().cert] });
    expect((lastClientSocket() as tls.TLSSocket).authorized).toBe(true);
    expect(flow.closed).toBe(false);
  });

  it('rejects a trusted certificate whose names do not match tlsServername', async () => {
    const server = await FakeServer.start('tls');
    const error = await connectFails({
      host: HOST,
      port: server.port,
      transport: 'tls',
      tlsCa: localhostCertificate().cert,
      tlsServername: 'sip.example.com',
    });
    expect(error.code).toBe(ErrorCodes.SIP_TLS_CERTIFICATE);
    expect(error.message).toContain('--tls-insecure');
  });

  it('connects to a self-signed server with tlsVerify: false', async () => {
    const server = await FakeServer.start('tls');
    const { flow, watch, peer } = await open(server, { transport: 'tls', tlsVerify: false });
    expect((lastClientSocket() as tls.TLSSocket).authorized).toBe(false);
    await peer.write(BYE);
    await watch.messagesReceived(1);
    flow.send(registerMessage());
    await peer.receivedUntil((b) => b.includes('REGISTER sip:'), 'the REGISTER');
  });
});

describe('SipFlow.connect failures', () => {
  it('rejects with SIP_TRANSPORT_CONNECT_FAILED when nothing listens on the port', async () => {
    const port = await freePort('tcp');
    const error = await connectFails({ host: HOST, port, transport: 'tcp' });
    expect(error.code).toBe(ErrorCodes.SIP_TRANSPORT_CONNECT_FAILED);
    expect(error.message).toContain(`TCP ${HOST}:${port}`);
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('rejects with SIP_TRANSPORT_CONNECT_FAILED after connectTimeoutMs when the TLS handshake never completes', async () => {
    const server = await FakeServer.start('silent');
    const start = performance.now();
    const error = await connectFails({
      host: HOST,
      port: server.port,
      transport: 'tls',
      connectTimeoutMs: 300,
    });
    expect(performance.now() - start).toBeGreaterThanOrEqual(290);
    expect(error.code).toBe(ErrorCodes.SIP_TRANSPORT_CONNECT_FAILED);
    expect(error.message).toContain('no connection after 300 ms');
    // The half-open connection is torn down, not left behind.
    const peer = await server.peer();
    await peer.closed();
  });
});

describe('SipFlow.connect name resolution', () => {
  it.each(['tcp', 'tls'] as const)(
    'rejects with SIP_PROXY_NOT_FOUND over %s when the name does not exist (.invalid, RFC 6761)',
    async (transport) => {
      const error = await connectFails({ host: 'proxy.invalid', port: 5090, transport });
      expect(error.code).toBe(ErrorCodes.SIP_PROXY_NOT_FOUND);
      expect(error.message).toContain('proxy.invalid');
      expect(error.message).toContain('ENOTFOUND');
    },
  );

  it('a resolver that cannot answer now (EAI_AGAIN) is a connect failure, not a missing name', async () => {
    const dns = scriptedLookup(() => ({ error: 'EAI_AGAIN' }));
    const error = await connectFails({
      host: 'proxy.example.com',
      port: 5090,
      transport: 'tcp',
      lookup: dns.lookup,
    });
    expect(error.code).toBe(ErrorCodes.SIP_TRANSPORT_CONNECT_FAILED);
    expect(error.message).toContain('EAI_AGAIN');
    expect(dns.calls).toEqual(['proxy.example.com']);
  });

  it('connects to the address the injected lookup gives', async () => {
    const server = await FakeServer.start('tcp');
    const dns = scriptedLookup(() => ({ address: HOST }));
    const { flow } = await open(server, { host: 'registrar.example.com', lookup: dns.lookup });
    expect(flow.remote.host).toBe('registrar.example.com');
    expect(dns.calls).toEqual(['registrar.example.com']);
  });
});

describe('SipFlow close', () => {
  it('close() is idempotent: one close(undefined), a FIN to the server, nothing after', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server, { keepAliveIntervalMs: 50 });
    flow.close();
    flow.close();
    expect(flow.closed).toBe(true);
    expect(watch.closes).toEqual([undefined]);
    expect(flow.send(registerMessage())).toBe(false);
    flow.ping();
    await peer.ended();
    await peer.closed();
    await socketClosed(lastClientSocket());
    flow.close();
    expect(watch.closes).toEqual([undefined]);
    // Nothing but (at most) keep-alives sent before close() reached the server.
    expect(peer.received.toString('latin1')).toBe(PING.repeat(countOf(peer.received, PING)));
  });

  it('emits close(SIP_TRANSPORT_CLOSED) once when the server closes the connection', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server);
    peer.socket.end();
    const { error } = await watch.closed();
    expect(error?.code).toBe(ErrorCodes.SIP_TRANSPORT_CLOSED);
    expect(flow.closed).toBe(true);
    await socketClosed(lastClientSocket());
    flow.close();
    expect(watch.closes).toHaveLength(1);
  });

  it('reports SIP_FRAME_INCOMPLETE when the server closes in the middle of a message', async () => {
    const server = await FakeServer.start('tcp');
    const { watch, peer } = await open(server);
    peer.socket.end('OPTIONS sip:x SIP/2.0\r\nContent-Length: 50\r\n\r\nonly part of the body');
    const { error } = await watch.closed();
    expect(error?.code).toBe(ErrorCodes.SIP_FRAME_INCOMPLETE);
    expect(watch.closes).toHaveLength(1);
  });

  it('emits close(SIP_TRANSPORT_CLOSED) once when the server resets the connection (error, then close)', async () => {
    const server = await FakeServer.start('tcp');
    const { flow, watch, peer } = await open(server);
    peer.socket.resetAndDestroy();
    const { error } = await watch.closed();
    expect(error?.code).toBe(ErrorCodes.SIP_TRANSPORT_CLOSED);
    await socketClosed(lastClientSocket());
    flow.close();
    expect(watch.closes).toHaveLength(1);
    expect(flow.send(registerMessage())).toBe(false);
  });

  it('emits close once when the server closes a TLS connection', async () => {
    const server = await FakeServer.start('tls');
    const { watch, peer } = await open(server, { transport: 'tls', tlsVerify: false });
    peer.socket.end();
    const { error } = await watch.closed();
    expect(error?.code).toBe(ErrorCodes.SIP_TRANSPORT_CLOSED);
    await socketClosed(lastClientSocket());
    expect(watch.closes).toHaveLength(1);
  });
});
