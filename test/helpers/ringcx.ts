/**
 * A stand-in for RingCX (RingCentral's contact-center side) as `serve` sees
 * it: it opens the connection (TCP, TLS or UDP, from a chosen loopback
 * address), sends the INVITE for a DID, ACKs, answers the bot's INFO with
 * 200, pings with CRLFCRLF and hangs up. Test-only and small: it parses
 * with the project's parser and framer, and retransmits nothing (loopback).
 *
 *   const rcx = await RingCx.connect({ transport: 'tcp', port, localAddress: '127.0.0.2' });
 *   const call = await rcx.invite({ did: '16505550100', sdp: sdpOffer(rtpPort) });
 *   const info = await call.nextInfo();     // the bot's intent, answered 200
 *   await call.bye();
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { encodeUlawFrame, ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { serializeRtp } from '../../src/rtp/packet.js';
import { parseMessage } from '../../src/sip/message/parse.js';
import type { SipMessage, SipRequest, SipResponse } from '../../src/sip/message/types.js';
import { StreamFramer } from '../../src/sip/transport/framer.js';

export interface RingCxOptions {
  transport: 'tcp' | 'tls' | 'udp';
  host?: string;
  port: number;
  /** Our source address (loopback aliases 127.0.0.2, 127.0.0.3 work on Linux as they are). */
  localAddress?: string;
  /** TLS: trust this certificate (PEM). */
  ca?: string;
  /** TLS: the name to check the certificate against. */
  servername?: string;
  /**
   * TLS: accept exactly the certificate with this SHA-256 fingerprint (as
   * `serve` prints it), whatever signed it: how a peer trusts a self-signed one.
   */
  pin?: string;
}

export interface InviteOptions {
  did: string;
  sdp?: string;
  fromUser?: string;
  headers?: [string, string][];
  /** Stop at the final response (do not ACK a 2xx). Default false. */
  noAck?: boolean;
}

export interface RxCall {
  callId: string;
  /** The final response to the INVITE. */
  final: SipResponse;
  /** Every INFO the bot sent in this call (already answered 200), in order. */
  infos: SipRequest[];
  /** Resolves with the next INFO (one not yet returned). */
  nextInfo(timeoutMs?: number): Promise<SipRequest>;
  /** Resolves when the bot's BYE arrives (answered 200). */
  byeReceived(timeoutMs?: number): Promise<SipRequest>;
  /** Sends BYE and resolves with its final response. */
  bye(timeoutMs?: number): Promise<SipResponse>;
  /** Sends any in-dialog request and resolves with its final response. */
  request(method: string, body?: string, contentType?: string): Promise<SipResponse>;
  /**
   * Sends `before` (raw bytes, e.g. a response we held back) and BYE in one
   * write, so the far end reads them together; resolves with the BYE's final.
   */
  byeAfter(before: string): Promise<SipResponse>;
}

const CRLF = '\r\n';

function token(): string {
  return randomBytes(6).toString('hex');
}

export class RingCx {
  readonly transport: RingCxOptions['transport'];
  readonly received: SipMessage[] = [];
  /** Bytes that came back that were not SIP messages (pongs). */
  pongs = 0;
  readonly localAddress: string;
  readonly localPort: number;
  readonly #write: (bytes: Buffer) => void;
  readonly #close: () => void;
  readonly #target: { host: string; port: number };
  #waiters: { test: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void }[] = [];
  #closedWaiters: (() => void)[] = [];
  #closed = false;
  /** Requests we answer ourselves (INFO, BYE, OPTIONS): how, by method. */
  answerStatus = new Map<string, number>([['INFO', 200]]);
  /** How many requests of a method to leave unanswered first (as if lost), by method. */
  leaveUnanswered = new Map<string, number>();

  private constructor(
    options: RingCxOptions,
    local: { address: string; port: number },
    write: (b: Buffer) => void,
    close: () => void,
  ) {
    this.transport = options.transport;
    this.localAddress = local.address;
    this.localPort = local.port;
    this.#write = write;
    this.#close = close;
    this.#target = { host: options.host ?? '127.0.0.1', port: options.port };
  }

  static async connect(options: RingCxOptions): Promise<RingCx> {
    const host = options.host ?? '127.0.0.1';
    if (options.transport === 'udp') {
      const socket = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(0, options.localAddress ?? '127.0.0.1', () => resolve());
      });
      const a = socket.address();
      const rx: RingCx = new RingCx(
        options,
        { address: a.address, port: a.port },
        (b) => socket.send(b, options.port, host),
        () => socket.close(),
      );
      socket.on('message', (data) => rx.#onMessage(data));
      return rx;
    }
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s =
        options.transport === 'tls'
          ? tls.connect({
              host,
              port: options.port,
              ...(options.localAddress && { localAddress: options.localAddress }),
              ...(options.ca && { ca: options.ca }),
              servername: options.servername ?? 'localhost',
              ...(options.pin !== undefined && {
                // The chain is not judged; the certificate is, by its fingerprint.
                rejectUnauthorized: false,
              }),
            })
          : net.connect({
              host,
              port: options.port,
              ...(options.localAddress && { localAddress: options.localAddress }),
            });
      s.once('error', reject);
      s.once(options.transport === 'tls' ? 'secureConnect' : 'connect', () => {
        s.off('error', reject);
        if (options.pin !== undefined) {
          const seen = (s as tls.TLSSocket).getPeerCertificate().fingerprint256;
          if (seen !== options.pin) {
            s.destroy();
            reject(new Error(`certificate fingerprint ${seen}, pinned ${options.pin}`));
            return;
          }
        }
        resolve(s);
      });
    });
    const rx: RingCx = new RingCx(
      options,
      { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
      (b) => socket.write(b),
      () => socket.destroy(),
    );
    const framer = new StreamFramer({ maxBodyBytes: 1 << 20 });
    socket.on('data', (chunk: Buffer) => {
      for (const ev of framer.push(chunk)) {
        if (ev.type === 'message') rx.#onMessage(Buffer.from(ev.bytes));
        else if (ev.type === 'pong' || ev.type === 'ping') rx.pongs++;
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => rx.#onClosed());
    return rx;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves when the connection closes (stream transports). */
  whenClosed(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#closedWaiters.push(resolve));
  }

  write(bytes: string | Buffer): void {
    this.#write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** RFC 5626 4.4.1 keep-alive ping. */
  ping(): void {
    this.write(`${CRLF}${CRLF}`);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#close();
  }

  /** The next message `test` accepts (one already received counts). */
  waitFor(test: (m: SipMessage) => boolean, timeoutMs = 10_000, what = 'message'): Promise<SipMessage> {
    const seen = this.received.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({
        test,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Via for our requests. */
  via(branch = `z9hG4bK-${token()}`): string {
    return `SIP/2.0/${this.transport.toUpperCase()} ${this.localAddress}:${this.localPort};branch=${branch};rport`;
  }

  /** OPTIONS to the bot; resolves with its answer. */
  async options(): Promise<SipResponse> {
    const callId = `opt-${token()}`;
    this.write(
      [
        `OPTIONS sip:${this.#target.host}:${this.#target.port} SIP/2.0`,
        `Via: ${this.via()}`,
        'Max-Forwards: 70',
        `From: <sip:ringcx@${this.localAddress}>;tag=${token()}`,
        `To: <sip:${this.#target.host}>`,
        `Call-ID: ${callId}`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join(CRLF),
    );
    return (await this.waitFor(
      (m) => m.type === 'response' && m.headers.callId() === callId,
      10_000,
      'OPTIONS answer',
    )) as SipResponse;
  }

  /** INVITE for `did`; resolves once the final response arrived (and a 2xx was ACKed). */
  async invite(options: InviteOptions): Promise<RxCall> {
    const callId = `rcx-${token()}`;
    const fromTag = token();
    const from = `<sip:${options.fromUser ?? '16505550123'}@${this.localAddress}>;tag=${fromTag}`;
    const ruri = `sip:${options.did}@${this.#target.host}:${this.#target.port}`;
    const body = options.sdp ?? '';
    const lines = [
      `INVITE ${ruri} SIP/2.0`,
      `Via: ${this.via()}`,
      'Max-Forwards: 70',
      `From: ${from}`,
      `To: <sip:${options.did}@${this.#target.host}>`,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:ringcx@${this.localAddress}:${this.localPort};transport=${this.transport}>`,
      ...(options.headers ?? []).map(([n, v]) => `${n}: ${v}`),
    ];
    if (body !== '') lines.push('Content-Type: application/sdp');
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
    this.write(lines.join(CRLF));
    const final = (await this.waitFor(
      (m) => m.type === 'response' && m.headers.callId() === callId && m.status >= 200,
      15_000,
      `final response to the INVITE for ${options.did}`,
    )) as SipResponse;
    const to = final.headers.get('To') ?? '';
    const cseq = { n: 1 };
    const inDialog = (method: string, seq: number, extra: string[] = [], payload = '') =>
      [
        `${method} ${ruri} SIP/2.0`,
        `Via: ${this.via()}`,
        'Max-Forwards: 70',
        `From: ${from}`,
        `To: ${to}`,
        `Call-ID: ${callId}`,
        `CSeq: ${seq} ${method}`,
        ...extra,
        `Content-Length: ${Buffer.byteLength(payload)}`,
        '',
        payload,
      ].join(CRLF);
    if (final.status < 300 && !options.noAck) this.write(inDialog('ACK', 1));
    if (final.status >= 300) {
      // RFC 3261 17.1.1.3: the ACK of a non-2xx final reuses the INVITE's branch; a stray one is absorbed anyway.
      this.write(inDialog('ACK', 1));
    }
    let infosTaken = 0;
    const infos: SipRequest[] = [];
    const infoWaiters: { index: number; resolve: (m: SipRequest) => void }[] = [];
    this.#onRequestHook.set(callId, (m) => {
      if (m.type !== 'request' || m.method !== 'INFO') return;
      infos.push(m);
      for (const w of [...infoWaiters]) {
        const got = infos[w.index];
        if (got) {
          infoWaiters.splice(infoWaiters.indexOf(w), 1);
          w.resolve(got);
        }
      }
    });
    const request = async (
      method: string,
      payload = '',
      contentType?: string,
      before = '',
    ): Promise<SipResponse> => {
      cseq.n++;
      const seq = cseq.n;
      this.write(
        before + inDialog(method, seq, contentType ? [`Content-Type: ${contentType}`] : [], payload),
      );
      return (await this.waitFor(
        (m) =>
          m.type === 'response' &&
          m.headers.callId() === callId &&
          m.status >= 200 &&
          m.headers.cseq()?.seq === seq &&
          m.headers.cseq()?.method === method,
        15_000,
        `final response to ${method}`,
      )) as SipResponse;
    };
    return {
      callId,
      final,
      infos,
      nextInfo: (timeoutMs = 15_000) =>
        new Promise<SipRequest>((resolve, reject) => {
          const index = infosTaken++;
          const got = infos[index];
          if (got) {
            resolve(got);
            return;
          }
          const timer = setTimeout(
            () => reject(new Error(`no INFO #${index + 1} within ${timeoutMs} ms`)),
            timeoutMs,
          );
          infoWaiters.push({
            index,
            resolve: (m) => {
              clearTimeout(timer);
              resolve(m);
            },
          });
        }),
      byeReceived: async (timeoutMs = 15_000) =>
        (await this.waitFor(
          (m) => m.type === 'request' && m.method === 'BYE' && m.headers.callId() === callId,
          timeoutMs,
          'BYE from the bot',
        )) as SipRequest,
      bye: (timeoutMs?: number) => {
        void timeoutMs;
        return request('BYE');
      },
      request: (method, payload, contentType) => request(method, payload, contentType),
      byeAfter: (before) => request('BYE', '', undefined, before),
    };
  }

  readonly #onRequestHook = new Map<string, (m: SipMessage) => void>();

  #onMessage(data: Buffer): void {
    const r = parseMessage(data, { maxBodyBytes: 1 << 20 });
    if (!r.ok) return;
    const m = r.message;
    if (m.type === 'request') {
      this.#onRequestHook.get(m.headers.callId() ?? '')?.(m);
      const skip = this.leaveUnanswered.get(m.method) ?? 0;
      if (skip > 0) this.leaveUnanswered.set(m.method, skip - 1);
      const status = m.method === 'ACK' || skip > 0 ? undefined : (this.answerStatus.get(m.method) ?? 200);
      if (status !== undefined) this.write(responseTo(m, status));
    }
    this.received.push(m);
    for (const w of [...this.#waiters]) {
      if (w.test(m)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  }

  #onClosed(): void {
    this.#closed = true;
    for (const w of this.#closedWaiters.splice(0)) w();
  }
}

/** A response to `request` built from its raw fields (To gets a tag when it has none). */
export function responseTo(
  request: SipRequest,
  status: number,
  reason = status === 200 ? 'OK' : 'Error',
): string {
  const h = request.headers;
  const to = h.get('To') ?? '';
  return [
    `SIP/2.0 ${status} ${reason}`,
    ...h.getAll('Via').map((v) => `Via: ${v}`),
    `From: ${h.get('From') ?? ''}`,
    `To: ${/;tag=/i.test(to) ? to : `${to};tag=${token()}`}`,
    `Call-ID: ${h.get('Call-ID') ?? ''}`,
    `CSeq: ${h.get('CSeq') ?? ''}`,
    'Content-Length: 0',
    '',
    '',
  ].join(CRLF);
}

/** A caller's SDP offer for media at `address:port` (PCMU, telephone-event), plain or SDES SRTP. */
export function offer(port: number, options: { address?: string; srtpKey?: string } = {}): string {
  const address = options.address ?? '127.0.0.1';
  return [
    'v=0',
    `o=ringcx 1 1 IN IP4 ${address}`,
    's=-',
    `c=IN IP4 ${address}`,
    't=0 0',
    `m=audio ${port} ${options.srtpKey ? 'RTP/SAVP' : 'RTP/AVP'} 0 101`,
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-15',
    'a=ptime:20',
    ...(options.srtpKey ? [`a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${options.srtpKey}`] : []),
    'a=sendrecv',
    '',
  ].join(CRLF);
}

/**
 * `count` PCMU packets (20 ms each) of a 440 Hz tone, and the audio they
 * decode to: what a recording of them must hold, sample for sample.
 */
export function tonePackets(count: number, ssrc = 0x5eed_1234): { packets: Buffer[]; pcm: Int16Array } {
  const pcm = new Int16Array(count * 160);
  const packets: Buffer[] = [];
  for (let p = 0; p < count; p++) {
    const frame = new Int16Array(160);
    for (let i = 0; i < 160; i++) {
      frame[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * (p * 160 + i)) / 8000));
    }
    const payload = Buffer.alloc(160);
    encodeUlawFrame(frame, payload);
    for (let i = 0; i < 160; i++) pcm[p * 160 + i] = ULAW_TO_LINEAR[payload[i] as number] as number;
    packets.push(
      serializeRtp({
        marker: p === 0,
        payloadType: 0,
        sequenceNumber: 1000 + p,
        timestamp: 5000 + p * 160,
        ssrc,
        payload,
      }),
    );
  }
  return { packets, pcm };
}

/** Sends `packets` to `port` on loopback one every 20 ms (the sender's own clock, as a phone paces). */
export async function sendPaced(
  socket: dgram.Socket,
  packets: readonly Buffer[],
  port: number,
): Promise<void> {
  const t0 = performance.now();
  for (const [i, packet] of packets.entries()) {
    const due = t0 + i * 20 - performance.now();
    if (due > 0) await new Promise((r) => setTimeout(r, due));
    socket.send(packet, port, '127.0.0.1');
  }
}
