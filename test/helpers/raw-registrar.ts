/**
 * A raw SIP peer for signalling edge cases LocalPbx does not script: it
 * accepts the device's REGISTER without a challenge (or answers it as the
 * test's `register` script says: 503 with Retry-After, …), then lets a test
 * write any bytes to the device's flow and see every response and request it
 * sends, with the time each request arrived.
 */
import net from 'node:net';
import { parseMessage } from '../../src/sip/message/parse.js';
import type { SipRequest, SipResponse } from '../../src/sip/message/types.js';
import { StreamFramer } from '../../src/sip/transport/framer.js';

export interface RawRegistrar {
  port: number;
  responses: SipResponse[];
  requests: SipRequest[];
  /** Every message the device sent, as framed, whether our parser takes it or not. */
  raw: Buffer[];
  /** performance.now() when each of `requests` arrived (the answer went out in the same tick). */
  requestTimes: number[];
  write(text: string): void;
  /**
   * From now on answer nothing, not even keep-alive pings, but keep the TCP
   * connection open: a half-open connection as the device sees it.
   */
  mute(): void;
  /** Writes bytes as they are (write() takes text). */
  socketWrite(bytes: Uint8Array): void;
  close(): Promise<void>;
}

/** A final answer to a REGISTER: status line and extra header lines (without CRLF). */
export interface RegisterAnswer {
  status: number;
  reason: string;
  headers?: string[];
}

export interface RawRegistrarOptions {
  /**
   * Answers the `n`-th REGISTER (0-based, counted over every connection);
   * undefined (and the default) is 200 OK binding the Contact for 300 s.
   */
  register?: (request: SipRequest, n: number) => RegisterAnswer | undefined;
  /** false: a plain registrar whose 200 shows no RFC 5626 outbound support. Default true. */
  outbound?: boolean;
  /** false: never answer a CRLFCRLF ping (many servers do not). Default true. */
  pong?: boolean;
  /**
   * Any other request from the device: return raw bytes to write back (a
   * whole response, or several messages), or undefined for the default
   * (200 to BYE, nothing else).
   */
  respond?: (request: SipRequest, reply: (text: string) => void) => boolean | undefined;
}

export async function startRawRegistrar(options: RawRegistrarOptions = {}): Promise<RawRegistrar> {
  const responses: SipResponse[] = [];
  const requests: SipRequest[] = [];
  const raw: Buffer[] = [];
  const requestTimes: number[] = [];
  let registers = 0;
  let muted = false;
  const sockets = new Set<net.Socket>();
  let device: net.Socket | undefined;
  const server = net.createServer((s) => {
    sockets.add(s);
    device = s;
    const framer = new StreamFramer();
    s.on('data', (chunk) => {
      if (muted) return;
      for (const ev of framer.push(chunk)) {
        if (ev.type === 'ping' && options.pong !== false) s.write('\r\n');
        if (ev.type !== 'message') continue;
        raw.push(Buffer.from(ev.bytes));
        const parsed = parseMessage(ev.bytes);
        if (!parsed.ok) continue;
        const m = parsed.message;
        if (m.type === 'response') {
          responses.push(m);
          continue;
        }
        requests.push(m);
        requestTimes.push(performance.now());
        const h = m.headers;
        const answer = (status: string, extra = '') =>
          s.write(
            `SIP/2.0 ${status}\r\nVia: ${h.get('Via')}\r\nFrom: ${h.get('From')}\r\nTo: ${h.get('To')}${h.to()?.params.has('tag') ? '' : ';tag=reg'}\r\nCall-ID: ${h.get('Call-ID')}\r\nCSeq: ${h.get('CSeq')}\r\n${extra}Content-Length: 0\r\n\r\n`,
          );
        if (m.method === 'REGISTER') {
          const scripted = options.register?.(m, registers++);
          if (scripted) {
            const extra = (scripted.headers ?? []).map((line) => `${line}\r\n`).join('');
            answer(`${scripted.status} ${scripted.reason}`, extra);
          } else {
            // Like RingCentral: outbound supported (RFC 5626 6), unless the test models a plain registrar.
            const outbound = options.outbound === false ? '' : 'Require: outbound\r\n';
            answer('200 OK', `Contact: ${h.get('Contact')};expires=300\r\n${outbound}`);
          }
        } else if (options.respond?.(m, (text) => s.write(text))) {
          // scripted by the test
        } else if (m.method === 'BYE' || m.method === 'OPTIONS') answer('200 OK');
      }
    });
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    responses,
    requests,
    raw,
    requestTimes,
    write: (text) => device?.write(text),
    mute: () => {
      muted = true;
    },
    socketWrite: (bytes) => device?.write(bytes),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

let counter = 0;

/** A request from the "caller" side, with a fresh branch; `to` may carry a tag for in-dialog requests. */
export function rawRequest(
  method: string,
  options: {
    callId: string;
    fromTag?: string;
    toTag?: string;
    cseq?: number;
    body?: string;
    branch?: string;
    contentType?: string;
  },
): string {
  const body = options.body ?? '';
  const branch = options.branch ?? `z9hG4bK-raw-${++counter}`;
  return [
    `${method} sip:16506668888@device.invalid;transport=tcp SIP/2.0`,
    `Via: SIP/2.0/TCP 127.0.0.1:5999;branch=${branch}`,
    'Max-Forwards: 70',
    `From: "Caller" <sip:15550100@test.invalid>;tag=${options.fromTag ?? 'caller-tag'}`,
    `To: <sip:16506668888@test.invalid>${options.toTag ? `;tag=${options.toTag}` : ''}`,
    `Call-ID: ${options.callId}`,
    `CSeq: ${options.cseq ?? 1} ${method}`,
    'Contact: <sip:15550100@127.0.0.1:5999;transport=tcp>',
    ...(body ? [`Content-Type: ${options.contentType ?? 'application/sdp'}`] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

/** A response to `request` as raw text: its Via/From/To/Call-ID/CSeq, our To tag, extra lines and a body. */
export function rawResponse(
  request: SipRequest,
  status: string,
  options: { toTag?: string; headers?: string[]; body?: string; contentType?: string } = {},
): string {
  const h = request.headers;
  const body = options.body ?? '';
  const to = h.to()?.params.has('tag') ? h.get('To') : `${h.get('To')};tag=${options.toTag ?? 'peer'}`;
  return [
    `SIP/2.0 ${status}`,
    ...h.getAll('Via').map((v) => `Via: ${v}`),
    `From: ${h.get('From')}`,
    `To: ${to}`,
    `Call-ID: ${h.get('Call-ID')}`,
    `CSeq: ${h.get('CSeq')}`,
    ...(options.headers ?? []),
    ...(body ? [`Content-Type: ${options.contentType ?? 'application/sdp'}`] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}
