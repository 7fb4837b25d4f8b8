/**
 * A hand-driven SIP-over-TCP "device" for testing the Kamailio harness
 * without the real softphone: frames the byte stream, answers nothing on its
 * own, and lets a test await exactly the message it expects.
 *
 * Deliberately small and test-only; the real framer/parser live in src/sip.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

export interface SipMessage {
  /** "REGISTER sip:x SIP/2.0" or "SIP/2.0 200 OK". */
  startLine: string;
  method?: string;
  requestUri?: string;
  status?: number;
  headers: Array<[name: string, value: string]>;
  body: string;
  raw: string;
  /** First value of a header (case-insensitive, compact forms included). */
  header(name: string): string | undefined;
  headerAll(name: string): string[];
}

const COMPACT: Record<string, string> = {
  i: 'call-id',
  m: 'contact',
  e: 'content-encoding',
  l: 'content-length',
  c: 'content-type',
  f: 'from',
  s: 'subject',
  k: 'supported',
  t: 'to',
  v: 'via',
};

function canonical(name: string): string {
  const lower = name.toLowerCase();
  return COMPACT[lower] ?? lower;
}

export function parseSipMessage(raw: string): SipMessage {
  const headerEnd = raw.indexOf('\r\n\r\n');
  const head = headerEnd < 0 ? raw : raw.slice(0, headerEnd);
  const body = headerEnd < 0 ? '' : raw.slice(headerEnd + 4);
  const lines = head.split('\r\n');
  const startLine = lines.shift() ?? '';
  const headers: Array<[string, string]> = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line) && headers.length > 0) {
      headers[headers.length - 1]![1] += ` ${line.trim()}`; // folded line
      continue;
    }
    const colon = line.indexOf(':');
    if (colon > 0) headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  const headerAll = (name: string) =>
    headers.filter(([n]) => canonical(n) === canonical(name)).map(([, value]) => value);
  const message: SipMessage = {
    startLine,
    headers,
    body,
    raw,
    header: (name) => headerAll(name)[0],
    headerAll,
  };
  const response = /^SIP\/2\.0 (\d{3}) /.exec(startLine);
  if (response) {
    message.status = Number(response[1]);
  } else {
    const [method, uri] = startLine.split(' ');
    message.method = method;
    message.requestUri = uri;
  }
  return message;
}

/** Splits a SIP byte stream into messages (by Content-Length, counted in bytes) and CRLF keep-alives. */
export class SipStreamFramer {
  #buffer = Buffer.alloc(0);

  /** Returns the messages completed by `chunk` and the number of CRLF pongs seen between messages. */
  push(chunk: Buffer): { messages: SipMessage[]; pongs: number } {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    const messages: SipMessage[] = [];
    let pongs = 0;
    for (;;) {
      // RFC 5626 §4.4.1: keep-alive CRLFs between messages.
      while (this.#buffer.length >= 2 && this.#buffer[0] === 0x0d && this.#buffer[1] === 0x0a) {
        this.#buffer = this.#buffer.subarray(2);
        pongs++;
      }
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end < 0) break;
      const head = this.#buffer.subarray(0, end).toString('utf8');
      const lengthMatch = /^(?:content-length|l)[ \t]*:[ \t]*(\d+)/im.exec(head);
      const length = lengthMatch ? Number(lengthMatch[1]) : 0;
      const total = end + 4 + length;
      if (this.#buffer.length < total) break;
      messages.push(parseSipMessage(this.#buffer.subarray(0, total).toString('utf8')));
      this.#buffer = this.#buffer.subarray(total);
    }
    return { messages, pongs };
  }
}

interface Waiter {
  predicate: (message: SipMessage) => boolean;
  resolve: (message: SipMessage) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** A TCP connection that speaks SIP by hand. */
export class RawSipTcpClient {
  readonly socket: net.Socket;
  /** Messages received and not yet taken by next(). */
  readonly inbox: SipMessage[] = [];
  /** Every message received, in order. */
  readonly received: SipMessage[] = [];
  pongs = 0;
  readonly closed: Promise<void>;
  #framer = new SipStreamFramer();
  #waiters: Waiter[] = [];
  #pongWaiters: Array<() => void> = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => {}); // surfaced as 'close'
    socket.once('close', () => {
      for (const waiter of this.#waiters.splice(0)) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error('connection closed while waiting for a SIP message'));
      }
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawSipTcpClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawSipTcpClient(socket));
      });
    });
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  send(message: string): void {
    this.socket.write(message);
  }

  /** Resolves with the first queued or future message matching `predicate`, taking it off the inbox. */
  next(predicate: (message: SipMessage) => boolean = () => true, timeoutMs = 10_000): Promise<SipMessage> {
    const index = this.inbox.findIndex(predicate);
    if (index >= 0) return Promise.resolve(this.inbox.splice(index, 1)[0]!);
    if (this.socket.destroyed) return Promise.reject(new Error('connection is closed'));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          const seen = this.received.map((m) => m.startLine).join(' | ');
          reject(
            new Error(`no matching SIP message within ${timeoutMs} ms (received: ${seen || 'nothing'})`),
          );
        }, timeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /** Resolves once `count` CRLF pongs in total have arrived. */
  async waitForPongs(count: number): Promise<void> {
    while (this.pongs < count) {
      if (this.socket.destroyed) throw new Error('connection closed while waiting for a pong');
      await new Promise<void>((resolve) => this.#pongWaiters.push(resolve));
    }
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }

  #onData(chunk: Buffer): void {
    const { messages, pongs } = this.#framer.push(chunk);
    if (pongs > 0) {
      this.pongs += pongs;
      for (const wake of this.#pongWaiters.splice(0)) wake();
    }
    for (const message of messages) {
      this.received.push(message);
      const waiter = this.#waiters.find((w) => w.predicate(message));
      if (waiter) {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(message);
      } else {
        this.inbox.push(message);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Digest (RFC 2617 §3.2.2), MD5 only.

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

/** Parses `Digest realm="x", nonce="y", qop="auth"` into lower-case keys. */
export function parseChallenge(header: string): Record<string, string> {
  const params: Record<string, string> = {};
  const body = header.replace(/^\s*Digest\s+/i, '');
  for (const match of body.matchAll(/([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    params[match[1]!.toLowerCase()] = match[2] ?? match[3] ?? '';
  }
  return params;
}

export interface DigestInput {
  username: string;
  password: string;
  realm: string;
  nonce: string;
  method: string;
  uri: string;
  /** From the challenge; only "auth" is supported. */
  qop?: string;
  opaque?: string;
}

/** Builds the Authorization header value answering a challenge. */
export function digestAuthorization(input: DigestInput): string {
  const ha1 = md5(`${input.username}:${input.realm}:${input.password}`);
  const ha2 = md5(`${input.method}:${input.uri}`);
  const parts = [
    `username="${input.username}"`,
    `realm="${input.realm}"`,
    `nonce="${input.nonce}"`,
    `uri="${input.uri}"`,
  ];
  if (input.qop?.split(',').some((q) => q.trim() === 'auth')) {
    const nc = '00000001';
    const cnonce = randomBytes(8).toString('hex');
    const response = md5(`${ha1}:${input.nonce}:${nc}:${cnonce}:auth:${ha2}`);
    parts.push(`response="${response}"`, 'qop=auth', `nc=${nc}`, `cnonce="${cnonce}"`);
  } else {
    parts.push(`response="${md5(`${ha1}:${input.nonce}:${ha2}`)}"`);
  }
  parts.push('algorithm=MD5');
  if (input.opaque !== undefined) parts.push(`opaque="${input.opaque}"`);
  return `Digest ${parts.join(', ')}`;
}

// ---------------------------------------------------------------------------
// Message builders

export function branch(): string {
  return `z9hG4bK${randomBytes(8).toString('hex')}`;
}

export function tag(): string {
  return randomBytes(6).toString('hex');
}

export interface RegisterInput {
  domain: string;
  user: string;
  callId: string;
  cseq: number;
  fromTag: string;
  /** Contact URI host (RingCentral SDKs use "<uuid>.invalid"). */
  contactHost: string;
  instance: string;
  regId?: number;
  expires: number;
  authorization?: string;
}

export function buildRegister(input: RegisterInput): string {
  const contactParams = [`+sip.instance="<urn:uuid:${input.instance}>"`];
  if (input.regId !== undefined) contactParams.push(`reg-id=${input.regId}`);
  return [
    `REGISTER sip:${input.domain} SIP/2.0`,
    `Via: SIP/2.0/TCP ${input.contactHost};branch=${branch()}`,
    'Max-Forwards: 70',
    `From: <sip:${input.user}@${input.domain}>;tag=${input.fromTag}`,
    `To: <sip:${input.user}@${input.domain}>`,
    `Call-ID: ${input.callId}`,
    `CSeq: ${input.cseq} REGISTER`,
    `Contact: <sip:${input.user}@${input.contactHost};transport=tcp>;${contactParams.join(';')}`,
    `Expires: ${input.expires}`,
    ...(input.authorization === undefined ? [] : [`Authorization: ${input.authorization}`]),
    'User-Agent: rc-softphone-harness-test',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** A response to `request` copying Via/From/To/Call-ID/CSeq/Record-Route (RFC 3261 §8.2.6.2). */
export function buildResponse(
  request: SipMessage,
  status: number,
  reason: string,
  options: { toTag?: string; contact?: string; body?: string; contentType?: string } = {},
): string {
  const to = request.header('To') ?? '';
  const body = options.body ?? '';
  return [
    `SIP/2.0 ${status} ${reason}`,
    ...request.headerAll('Via').map((via) => `Via: ${via}`),
    ...request.headerAll('Record-Route').map((rr) => `Record-Route: ${rr}`),
    `From: ${request.header('From') ?? ''}`,
    `To: ${options.toTag !== undefined && !/;\s*tag=/i.test(to) ? `${to};tag=${options.toTag}` : to}`,
    `Call-ID: ${request.header('Call-ID') ?? ''}`,
    `CSeq: ${request.header('CSeq') ?? ''}`,
    ...(options.contact === undefined ? [] : [`Contact: ${options.contact}`]),
    ...(body === '' ? [] : [`Content-Type: ${options.contentType ?? 'application/sdp'}`]),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}
