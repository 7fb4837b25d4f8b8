/**
 * A tiny hand-driven SIP caller over UDP for interop tests that need an
 * established call with a real user agent (baresip, linphonec) and full
 * control over the RTP that goes into it: no registrar, no proxy, just
 * INVITE (with an SDP offer) → 200 → ACK straight to the agent's listen port,
 * then RTP from a socket the test owns, then BYE.
 *
 *   const call = await placeCall({ host: '127.0.0.1', port: ua.port, user: 'bot' });
 *   call.rtp.send({ payloadType: 0, frame: 0, payload: silenceFrame, marker: true });
 *   await call.rtp.paced(50, (frame) => call.rtp.send({ payloadType: 0, frame, payload }));
 *   await call.hangup();
 *
 * Deliberately small and test-only (RFC 3261 UAC core just far enough:
 * INVITE retransmission like timer A, ACK for every 2xx, 200 for an incoming
 * BYE); the real stack lives in src/sip.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { isRtpInvalid, parseRtp, serializeRtp } from '../../src/rtp/packet.js';
import { branch, parseSipMessage, type SipMessage, tag } from '../interop/kamailio/raw-sip.js';

const HOST = '127.0.0.1';
/** RFC 3261 17.1.1.2: T1. */
const T1_MS = 500;

export interface SdpFormat {
  payloadType: number;
  /** rtpmap value, e.g. 'PCMU/8000' or 'telephone-event/8000'. */
  rtpmap: string;
  fmtp?: string;
}

/** PCMU and telephone-event 101 with events 0-15, like RingCentral's (and our own) offers. */
export const DEFAULT_FORMATS: readonly SdpFormat[] = Object.freeze([
  { payloadType: 0, rtpmap: 'PCMU/8000' },
  { payloadType: 101, rtpmap: 'telephone-event/8000', fmtp: '0-15' },
]);

export interface CallTarget {
  host?: string;
  port: number;
  /** Request-URI user part. */
  user: string;
}

export interface PlaceCallOptions {
  /** Formats offered, in order. Default DEFAULT_FORMATS. */
  formats?: readonly SdpFormat[];
  ptime?: number;
  /** From user. Default 'uac'. */
  fromUser?: string;
  /** Give up on the INVITE after this long. Default 10 000 ms. */
  timeoutMs?: number;
}

export interface Endpoint {
  address: string;
  port: number;
}

export interface RawCall {
  callId: string;
  /** The 200 OK to the INVITE. */
  answer: SipMessage;
  /** Where the answer's SDP says to send RTP. */
  remote: Endpoint;
  /** The answer's audio formats: payload type → rtpmap value (static types without rtpmap are left out). */
  answerFormats: ReadonlyMap<number, string>;
  /** The audio m= line's payload types, as answered. */
  answerPayloadTypes: readonly number[];
  /** Our RTP socket and the stream sent from it. */
  rtp: RtpStream;
  /** Datagrams that arrived on our RTP socket (the agent's RTP), and the first one's source. */
  received(): { packets: number; firstFrom: Endpoint | undefined };
  /** Resolves when the first datagram from the agent arrives on our RTP socket. */
  firstRtp(timeoutMs?: number): Promise<Endpoint>;
  /** True once the agent sent BYE (answered with 200). */
  readonly remoteHungUp: boolean;
  /** BYE, resolves on its 200 (or at once if the agent hung up). */
  hangup(timeoutMs?: number): Promise<void>;
  /** Closes both sockets (no BYE). Idempotent. */
  close(): Promise<void>;
}

function bind(): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, HOST, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

function closeSocket(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

export function sdpOffer(rtpPort: number, formats: readonly SdpFormat[], ptime?: number): string {
  const lines = [
    'v=0',
    `o=uac ${Date.now()} 1 IN IP4 ${HOST}`,
    's=raw-uac',
    `c=IN IP4 ${HOST}`,
    't=0 0',
    `m=audio ${rtpPort} RTP/AVP ${formats.map((f) => f.payloadType).join(' ')}`,
  ];
  for (const f of formats) {
    lines.push(`a=rtpmap:${f.payloadType} ${f.rtpmap}`);
    if (f.fmtp !== undefined) lines.push(`a=fmtp:${f.payloadType} ${f.fmtp}`);
  }
  if (ptime !== undefined) lines.push(`a=ptime:${ptime}`);
  lines.push('a=sendrecv');
  return lines.join('\r\n') + '\r\n';
}

/** The audio stream of an answer: address, port, payload types, rtpmaps (IPv4 or IPv6 c=). */
export function parseAnswerSdp(sdp: string): {
  remote: Endpoint;
  payloadTypes: number[];
  formats: Map<number, string>;
} {
  const lines = sdp.split(/\r?\n/);
  let address: string | undefined;
  let port: number | undefined;
  let payloadTypes: number[] = [];
  const formats = new Map<number, string>();
  let inAudio = false;
  for (const line of lines) {
    const c = /^c=IN IP[46] ([^\s/]+)/.exec(line);
    // session-level c= applies unless the audio section has its own
    if (c && (address === undefined || inAudio)) address = c[1];
    const m = /^m=(\w+) (\d+) [^ ]+ ?(.*)$/.exec(line);
    if (m) {
      inAudio = m[1] === 'audio' && port === undefined;
      if (inAudio) {
        port = Number(m[2]);
        payloadTypes = m[3]!.split(' ').filter(Boolean).map(Number);
      }
      continue;
    }
    const rtpmap = /^a=rtpmap:(\d+) (\S+)/.exec(line);
    if (rtpmap && inAudio) formats.set(Number(rtpmap[1]), rtpmap[2]!);
  }
  if (address === undefined || port === undefined) throw new Error(`no audio stream in the answer:\n${sdp}`);
  return { remote: { address, port }, payloadTypes, formats };
}

/** INVITE → 200 → ACK; resolves once the ACK is sent. Rejects on a non-2xx final response or timeout. */
export async function placeCall(target: CallTarget, options: PlaceCallOptions = {}): Promise<RawCall> {
  const host = target.host ?? HOST;
  const sip = await bind();
  const rtpSocket = await bind();
  const localSip = sip.address().port;
  const callId = `raw-uac-${randomBytes(8).toString('hex')}`;
  const fromTag = tag();
  const fromUser = options.fromUser ?? 'uac';
  const from = `<sip:${fromUser}@${HOST}:${localSip}>;tag=${fromTag}`;
  const to = `<sip:${target.user}@${host}:${target.port}>`;
  const requestUri = `sip:${target.user}@${host}:${target.port}`;
  const body = sdpOffer(rtpSocket.address().port, options.formats ?? DEFAULT_FORMATS, options.ptime);
  const inviteBranch = branch();
  const invite = [
    `INVITE ${requestUri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${HOST}:${localSip};branch=${inviteBranch};rport`,
    'Max-Forwards: 70',
    `From: ${from}`,
    `To: ${to}`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:${fromUser}@${HOST}:${localSip}>`,
    'User-Agent: rc-softphone-raw-uac',
    'Content-Type: application/sdp',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');

  let ack: string | undefined;
  let remoteHungUp = false;
  const byeWaiters: Array<(message: SipMessage) => void> = [];
  let rtpPackets = 0;
  let firstFrom: Endpoint | undefined;
  const rtpWaiters: Array<(from: Endpoint) => void> = [];
  rtpSocket.on('message', (_data, rinfo) => {
    rtpPackets++;
    if (firstFrom === undefined) {
      firstFrom = { address: rinfo.address, port: rinfo.port };
      for (const wake of rtpWaiters.splice(0)) wake(firstFrom);
    }
  });

  const send = (text: string) => sip.send(text, target.port, host);
  let settle: { resolve: (m: SipMessage) => void; reject: (e: Error) => void } | undefined;
  sip.on('message', (data) => {
    const message = parseSipMessage(data.toString('utf8'));
    if (message.status !== undefined) {
      const cseq = message.header('CSeq') ?? '';
      if (cseq.endsWith('INVITE')) {
        retransmit.stop();
        if (message.status >= 200 && message.status < 300) {
          if (ack === undefined) ack = buildAck(message);
          send(ack); // every 2xx retransmission gets the ACK again (RFC 3261 13.2.2.4)
          settle?.resolve(message);
        } else if (message.status >= 300) {
          // RFC 3261 17.1.1.3: ACK a non-2xx final response in the INVITE transaction.
          send(ackForFailure(message));
          settle?.reject(new Error(`INVITE answered ${message.startLine}\n${message.raw}`));
        }
      } else if (cseq.endsWith('BYE')) {
        for (const wake of byeWaiters.splice(0)) wake(message);
      }
      return;
    }
    if (message.method === 'BYE') {
      remoteHungUp = true;
      send(okFor(message));
    } else if (message.method !== 'ACK') {
      send(okFor(message)); // OPTIONS, INFO, …: accept whatever the agent asks in the dialog
    }
  });

  const buildAck = (ok: SipMessage) => {
    const contact = /<([^>]+)>/.exec(ok.header('Contact') ?? '')?.[1] ?? requestUri;
    return [
      `ACK ${contact} SIP/2.0`,
      `Via: SIP/2.0/UDP ${HOST}:${localSip};branch=${branch()};rport`,
      'Max-Forwards: 70',
      `From: ${from}`,
      `To: ${ok.header('To') ?? to}`,
      `Call-ID: ${callId}`,
      'CSeq: 1 ACK',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
  };
  const ackForFailure = (response: SipMessage) =>
    [
      `ACK ${requestUri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${HOST}:${localSip};branch=${inviteBranch};rport`,
      'Max-Forwards: 70',
      `From: ${from}`,
      `To: ${response.header('To') ?? to}`,
      `Call-ID: ${callId}`,
      'CSeq: 1 ACK',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');

  const retransmit = retransmitter(() => send(invite));
  let answer: SipMessage;
  const timeoutMs = options.timeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    answer = await new Promise<SipMessage>((resolve, reject) => {
      settle = { resolve, reject };
      timer = setTimeout(
        () => reject(new Error(`no final response to INVITE ${requestUri} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      retransmit.start();
    });
  } catch (error) {
    retransmit.stop();
    await Promise.all([closeSocket(sip), closeSocket(rtpSocket)]);
    throw error;
  } finally {
    clearTimeout(timer);
  }
  settle = undefined;
  const parsed = parseAnswerSdp(answer.body);
  const rtp = new RtpStream(rtpSocket, parsed.remote);
  const okTo = answer.header('To') ?? to;
  const remoteTarget = /<([^>]+)>/.exec(answer.header('Contact') ?? '')?.[1] ?? requestUri;
  let closed: Promise<void> | undefined;

  return {
    callId,
    answer,
    remote: parsed.remote,
    answerFormats: parsed.formats,
    answerPayloadTypes: parsed.payloadTypes,
    rtp,
    received: () => ({ packets: rtpPackets, firstFrom }),
    firstRtp(waitMs = 10_000) {
      if (firstFrom !== undefined) return Promise.resolve(firstFrom);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no RTP from the agent within ${waitMs} ms`)), waitMs);
        rtpWaiters.push((source) => {
          clearTimeout(t);
          resolve(source);
        });
      });
    },
    get remoteHungUp() {
      return remoteHungUp;
    },
    async hangup(waitMs = 10_000) {
      if (remoteHungUp) return;
      const bye = [
        `BYE ${remoteTarget} SIP/2.0`,
        `Via: SIP/2.0/UDP ${HOST}:${localSip};branch=${branch()};rport`,
        'Max-Forwards: 70',
        `From: ${from}`,
        `To: ${okTo}`,
        `Call-ID: ${callId}`,
        'CSeq: 2 BYE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      const byeRetransmit = retransmitter(() => send(bye));
      let t: NodeJS.Timeout | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          t = setTimeout(() => reject(new Error(`BYE not answered within ${waitMs} ms`)), waitMs);
          byeWaiters.push(() => resolve());
          byeRetransmit.start();
        });
      } finally {
        clearTimeout(t);
        byeRetransmit.stop();
      }
    },
    close() {
      closed ??= Promise.all([closeSocket(sip), closeSocket(rtpSocket)]).then(() => {});
      return closed;
    },
  };
}

/** Sends now, then again after T1, 2·T1, … (RFC 3261 timers A and E on an unreliable transport). */
function retransmitter(send: () => void): { start(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let interval = T1_MS;
  let stopped = false;
  const fire = () => {
    if (stopped) return;
    send();
    timer = setTimeout(fire, interval);
    interval = Math.min(interval * 2, 4000);
  };
  return {
    start: fire,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

function okFor(request: SipMessage): string {
  return [
    'SIP/2.0 200 OK',
    ...request.headerAll('Via').map((via) => `Via: ${via}`),
    `From: ${request.header('From') ?? ''}`,
    `To: ${request.header('To') ?? ''}`,
    `Call-ID: ${request.header('Call-ID') ?? ''}`,
    `CSeq: ${request.header('CSeq') ?? ''}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

// ---------------------------------------------------------------------------
// RTP

export interface RtpSendInit {
  payloadType: number;
  /** Position on the stream's timeline in frames: timestamp = initial timestamp + frame · samplesPerFrame. */
  frame: number;
  payload: Uint8Array;
  marker?: boolean;
}

/**
 * One RTP stream (RFC 3550 5.1: random SSRC, initial sequence number and
 * timestamp) from the call's socket to the agent. Sequence numbers count
 * packets sent; timestamps come from the frame index the caller gives, so
 * telephone-event packets can share their event's start timestamp
 * (RFC 4733 2.5.1.2) while audio advances.
 */
export class RtpStream {
  readonly socket: dgram.Socket;
  readonly remote: Endpoint;
  /** 20 ms at 8 kHz. */
  readonly samplesPerFrame = 160;
  readonly frameMs = 20;
  #ssrc = randomBytes(4).readUInt32BE(0);
  #seq0 = randomBytes(2).readUInt16BE(0);
  #ts0 = randomBytes(4).readUInt32BE(0);
  #sent = 0;

  constructor(socket: dgram.Socket, remote: Endpoint) {
    this.socket = socket;
    this.remote = remote;
  }

  get ssrc(): number {
    return this.#ssrc;
  }

  get packetsSent(): number {
    return this.#sent;
  }

  /**
   * Continues someone else's stream (e.g. the packet a MediaSession primed
   * with): same SSRC, the next sequence number, and frame 0 at that packet's
   * timestamp. Receivers with a jitter buffer keyed on sequence numbers
   * (baresip's) drop a second stream whose numbers run behind the first.
   */
  continueAfter(packet: Uint8Array): void {
    const parsed = parseRtp(packet);
    if (isRtpInvalid(parsed)) throw new Error(`not an RTP packet (${parsed})`);
    this.#ssrc = parsed.ssrc;
    this.#seq0 = (parsed.sequenceNumber + 1) & 0xffff;
    this.#ts0 = parsed.timestamp;
    this.#sent = 0;
  }

  timestampOf(frame: number): number {
    return (this.#ts0 + frame * this.samplesPerFrame) >>> 0;
  }

  /** Sends one packet now. */
  send(init: RtpSendInit): void {
    const packet = serializeRtp({
      marker: init.marker ?? false,
      payloadType: init.payloadType,
      sequenceNumber: (this.#seq0 + this.#sent) & 0xffff,
      timestamp: this.timestampOf(init.frame),
      ssrc: this.#ssrc,
      payload: init.payload,
    });
    this.#sent++;
    this.socket.send(packet, this.remote.port, this.remote.address);
  }

  /**
   * Calls `tick(i)` for i = 0 … count-1, one call every frameMs on the
   * monotonic clock (the media clock of a real sender: tick i is due at
   * start + i · frameMs, computed, never accumulated).
   */
  async paced(count: number, tick: (i: number) => void): Promise<void> {
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const due = start + i * this.frameMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      tick(i);
    }
  }
}

/** RFC 4733 2.3: one event block. */
export function telephoneEvent(event: number, end: boolean, volume: number, duration: number): Uint8Array {
  return Uint8Array.of(
    event & 0xff,
    (end ? 0x80 : 0) | (volume & 0x3f),
    (duration >> 8) & 0xff,
    duration & 0xff,
  );
}

/**
 * The packets of one RFC 4733 key press as a real phone sends them, one per
 * frame tick: the first with the marker bit and duration one frame, updates
 * growing by a frame, then the end packet three times (2.5.1.4) with the
 * final duration. All carry the event's start timestamp (`startFrame`).
 */
export function digitPackets(
  event: number,
  payloadType: number,
  startFrame: number,
  frames = 5,
  volume = 10,
): RtpSendInit[] {
  const packets: RtpSendInit[] = [];
  for (let i = 1; i <= frames; i++) {
    packets.push({
      payloadType,
      frame: startFrame,
      marker: i === 1,
      payload: telephoneEvent(event, false, volume, i * 160),
    });
  }
  for (let i = 0; i < 3; i++) {
    packets.push({
      payloadType,
      frame: startFrame,
      payload: telephoneEvent(event, true, volume, frames * 160),
    });
  }
  return packets;
}
