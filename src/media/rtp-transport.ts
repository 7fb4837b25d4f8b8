/**
 * What sits between a call's UDP socket and its MediaSession: SRTP (RFC
 * 3711) and RTCP multiplexing (RFC 5761). It looks like the socket to the
 * session (messages in, send out), so the media path stays the same with
 * or without security:
 *
 * - in: RTCP (PT 200-204) goes to the RTCP session when muxed (counted and
 *   dropped otherwise); SRTP is unprotected, and a packet that fails
 *   authentication, replays or is malformed is counted and dropped here,
 *   before the receive path: it never reaches the recording and never counts
 *   as "heard" for the media timeout;
 * - out: RTP is protected with our key.
 *
 * Every RTP packet that got through is also shown to `onRtp` with its
 * arrival time (our RTCP reception statistics).
 */
import type dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isRtcp } from '../rtp/rtcp.js';
import type { SrtpContext } from '../rtp/srtp.js';

/** The part of a UDP socket MediaSession uses. */
export interface MediaSocket {
  on(event: 'message', listener: (msg: Buffer, rinfo: dgram.RemoteInfo) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'message', listener: (msg: Buffer, rinfo: dgram.RemoteInfo) => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
  send(msg: Uint8Array, port: number, address: string, callback?: (error: Error | null) => void): void;
  address(): { address: string; family: string; port: number };
  close(): void;
}

export interface RtpTransportStats {
  /** SRTP packets that failed authentication (tampered, wrong key). */
  srtpAuthFailed: number;
  /** SRTP packets seen before (RFC 3711 3.3.2 replay window). */
  srtpReplayed: number;
  /** SRTP packets too short or otherwise unusable. */
  srtpMalformed: number;
  /** RTCP that arrived on the RTP port without rtcp-mux (dropped). */
  rtcpOnRtpPort: number;
}

interface TransportEvents {
  message: [msg: Buffer, rinfo: dgram.RemoteInfo];
  error: [err: Error];
}

export class RtpTransport extends EventEmitter<TransportEvents> implements MediaSocket {
  readonly #socket: dgram.Socket;
  #srtp: SrtpContext | undefined;
  #onRtcp: ((msg: Buffer, rinfo: dgram.RemoteInfo) => void) | undefined;
  readonly #onRtp: ((msg: Buffer, rinfo: dgram.RemoteInfo, arrivalMs: number) => void) | undefined;
  readonly #stats: RtpTransportStats = {
    srtpAuthFailed: 0,
    srtpReplayed: 0,
    srtpMalformed: 0,
    rtcpOnRtpPort: 0,
  };
  #closed = false;

  constructor(
    socket: dgram.Socket,
    options: { onRtp?: (msg: Buffer, rinfo: dgram.RemoteInfo, arrivalMs: number) => void } = {},
  ) {
    super();
    this.#socket = socket;
    this.#onRtp = options.onRtp;
    socket.on('message', this.#onMessage);
    // An asynchronous socket error must never become an uncaught exception.
    socket.on('error', (err) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
  }

  /** The raw socket (RTCP sends on it when muxed: RtcpSession protects with SRTCP itself). */
  get socket(): dgram.Socket {
    return this.#socket;
  }

  get stats(): RtpTransportStats {
    return { ...this.#stats };
  }

  /** SRTP from now on (or none): set when keys are negotiated or change (re-INVITE). */
  setSrtp(srtp: SrtpContext | undefined): void {
    if (this.#srtp && this.#srtp !== srtp) this.#srtp.close();
    this.#srtp = srtp;
  }

  get srtp(): SrtpContext | undefined {
    return this.#srtp;
  }

  /** RTCP multiplexed on this port goes to `handler` (undefined: not muxed, dropped). */
  setRtcpHandler(handler: ((msg: Buffer, rinfo: dgram.RemoteInfo) => void) | undefined): void {
    this.#onRtcp = handler;
  }

  send(msg: Uint8Array, port: number, address: string, callback?: (error: Error | null) => void): void {
    let out: Uint8Array = msg;
    if (this.#srtp) {
      try {
        out = this.#srtp.protectRtp(msg);
      } catch (err) {
        callback?.(err as Error);
        return;
      }
    }
    this.#socket.send(out, port, address, callback);
  }

  address(): { address: string; family: string; port: number } {
    return this.#socket.address();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.off('message', this.#onMessage);
    this.#srtp?.close();
    this.#srtp = undefined;
    try {
      this.#socket.close();
    } catch {
      // Already closed.
    }
  }

  readonly #onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (isRtcp(msg)) {
      if (this.#onRtcp) this.#onRtcp(msg, rinfo);
      else this.#stats.rtcpOnRtpPort++;
      return;
    }
    let packet = msg;
    const srtp = this.#srtp;
    if (srtp) {
      const r = srtp.unprotectRtp(msg);
      if (!r.ok) {
        if (r.reason === 'auth-failed') this.#stats.srtpAuthFailed++;
        else if (r.reason === 'replayed') this.#stats.srtpReplayed++;
        else if (r.reason === 'malformed') this.#stats.srtpMalformed++;
        return;
      }
      packet = r.packet;
    }
    this.#onRtp?.(packet, rinfo, performance.now());
    this.emit('message', packet, rinfo);
  };
}
