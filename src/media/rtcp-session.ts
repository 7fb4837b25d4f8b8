/**
 * One call's RTCP: the thin adapter around the pure rtp/rtcp.ts that owns a
 * socket and one timer, created by the call's owner next to MediaSession.
 *
 * - Sends our compound (SR when we sent RTP lately, else RR; SDES CNAME) at
 *   RFC 3550's randomized interval (6.3.1, about every 5 s), SRTCP when the
 *   call is SRTP, and a final one with BYE on close (6.6).
 * - Reads the far end's RTCP: SR, RR and BYE are counted; its SR gives the
 *   LSR/DLSR of our next report (so it can measure the round trip), and its
 *   report about our stream gives round-trip time, loss and jitter as the far
 *   end sees them (6.4.1).
 * - Without rtcp-mux it owns the RTCP socket (RTP port + 1, RFC 3550 11) and
 *   closes it; with rtcp-mux (RFC 5761) it listens on MediaSession's RTP
 *   socket, takes only what isRtcp() says is RTCP and never closes it.
 *
 * Like RTP latching (RFC 4961 symmetric RTP), once valid RTCP arrives from
 * the far end's address, reports go back to the port it came from.
 */

import { randomBytes } from 'node:crypto';
import type { RemoteInfo } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import {
  buildCompound,
  isRtcp,
  type LastSenderReport,
  nextAvgRtcpSize,
  ntpMiddle,
  ntpTimestamp,
  parseRtcp,
  type ReceptionSnapshot,
  type ReportBlock,
  ReportBlockBuilder,
  type RtcpPacket,
  roundTripMs,
  rtcpIntervalMs,
} from '../rtp/rtcp.js';
import type { SrtpContext } from '../rtp/srtp.js';
import type { Endpoint } from './receive-path.js';

/** The part of dgram.Socket this adapter uses (a fake one in tests). */
export interface RtcpSocket {
  send(msg: Uint8Array, port: number, address: string, callback?: (error: Error | null) => void): void;
  on(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): unknown;
  off(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): unknown;
  close(): void;
}

/** What we sent, for the sender info of an SR (6.4.1). */
export interface SendingSnapshot {
  /** RTP packets sent since the start (SendPath.packetsSent) */
  packetCount: number;
  /** payload octets sent since the start */
  octetCount: number;
  /** the RTP timestamp that corresponds to now on our sending clock */
  rtpTimestamp: number;
}

export interface RtcpSessionOptions {
  /** RTCP socket (RTP port + 1), or with `mux` MediaSession's RTP socket. */
  socket: RtcpSocket;
  /** RTCP shares the RTP socket (NegotiatedMedia.rtcp.mux): the socket is not ours to close. */
  mux: boolean;
  /** The far end's RTCP address (NegotiatedMedia.rtcp), resolved to an IP; undefined: nowhere yet. */
  remote?: Endpoint;
  /** Our SSRC: MediaSession's SendPath.ssrc, so reports and RTP name one source. */
  ssrc: number;
  /** Our CNAME (6.5.1); default a random one per call (no user or host name leaks). */
  cname?: string;
  /** Our reception of the far end's stream, asked at each report. */
  reception: () => ReceptionSnapshot | undefined;
  /** What we sent; undefined or absent when we do not send RTP (then RR only). */
  sending?: () => SendingSnapshot | undefined;
  /** SRTCP: the call's SRTP context (the one that protects its RTP). */
  srtp?: SrtpContext;
  /** Clock rate of the stream, for jitter in ms (default 8000). */
  clockRate?: number;
  /** Session bandwidth in octets/s (6.2; default 10 000: G.711 at 20 ms with headers). */
  sessionBandwidth?: number;
  /** Wall-clock ms (default performance.timeOrigin + performance.now()): NTP time and DLSR. */
  now?: () => number;
  /** [0, 1) for the interval's randomization (default Math.random). */
  random?: () => number;
}

export interface RtcpStats {
  /** last round-trip time from the far end's report on our stream (6.4.1) */
  rttMs: number | undefined;
  /** fraction of our packets the far end lost in its last interval (0-1) */
  farEndLoss: number | undefined;
  /** cumulative packets of ours the far end lost */
  farEndCumulativeLost: number | undefined;
  /** interarrival jitter of our stream at the far end */
  farEndJitterMs: number | undefined;
  srReceived: number;
  rrReceived: number;
  byeReceived: number;
  /** datagrams that were not valid RTCP (A.2), or SRTCP too short to be */
  rtcpInvalid: number;
  srtcpAuthFailed: number;
  srtcpReplayed: number;
  /** RTCP from an address that is not the far end's */
  rtcpForeign: number;
  reportsSent: number;
  sendErrors: number;
}

export interface RtcpSessionEvents {
  /** A valid compound from the far end, after its statistics were taken in. */
  report: [packets: RtcpPacket[]];
  /** The far end sent BYE for these sources (6.6); the SIP BYE usually follows. */
  bye: [info: { ssrcs: number[]; reason?: string }];
}

/** IPv4 + UDP headers, counted into the average compound size (6.3.3). */
const UDP_IP_OVERHEAD = 28;
const DEFAULT_SESSION_BANDWIDTH = 10_000;

export class RtcpSession extends EventEmitter<RtcpSessionEvents> {
  readonly ssrc: number;
  readonly cname: string;
  readonly #socket: RtcpSocket;
  readonly #mux: boolean;
  readonly #reception: () => ReceptionSnapshot | undefined;
  readonly #sending: (() => SendingSnapshot | undefined) | undefined;
  readonly #srtp: SrtpContext | undefined;
  readonly #clockRate: number;
  readonly #rtcpBandwidth: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #blocks = new ReportBlockBuilder();
  #remote: Endpoint | undefined;
  /** Where valid RTCP from the far end's address came from: our reports go there. */
  #latched: Endpoint | undefined;
  #lastSr: LastSenderReport | undefined;
  #avgRtcpSize: number;
  #initial = true;
  /** Packets sent as of the last two reports: SR while we sent since the one before (6.4). */
  #sentAtReport: [number, number] = [0, 0];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #stats: RtcpStats = {
    rttMs: undefined,
    farEndLoss: undefined,
    farEndCumulativeLost: undefined,
    farEndJitterMs: undefined,
    srReceived: 0,
    rrReceived: 0,
    byeReceived: 0,
    rtcpInvalid: 0,
    srtcpAuthFailed: 0,
    srtcpReplayed: 0,
    rtcpForeign: 0,
    reportsSent: 0,
    sendErrors: 0,
  };

  constructor(options: RtcpSessionOptions) {
    super();
    this.ssrc = options.ssrc >>> 0;
    // 6.5.1 wants it unique and stable for the session; user@host would name the machine.
    this.cname = options.cname ?? `${randomBytes(8).toString('hex')}@rc-softphone`;
    this.#socket = options.socket;
    this.#mux = options.mux;
    this.#remote = options.remote;
    this.#reception = options.reception;
    this.#sending = options.sending;
    this.#srtp = options.srtp;
    this.#clockRate = options.clockRate ?? 8000;
    // 6.2: RTCP gets 5% of the session bandwidth.
    this.#rtcpBandwidth = 0.05 * (options.sessionBandwidth ?? DEFAULT_SESSION_BANDWIDTH);
    this.#now = options.now ?? (() => performance.timeOrigin + performance.now());
    this.#random = options.random ?? Math.random;
    // 6.3.2: start from the size of the first compound we would send.
    this.#avgRtcpSize = 8 + 24 + 4 + 4 + 2 + this.cname.length + 4 + UDP_IP_OVERHEAD;
    this.#socket.on('message', this.#onMessage);
    this.#schedule();
  }

  get stats(): RtcpStats {
    return { ...this.#stats };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A re-INVITE moved the far end (NegotiatedMedia.rtcp, resolved): reports go there, the latch starts over. */
  setRemote(remote: Endpoint | undefined): void {
    this.#remote = remote;
    this.#latched = undefined;
  }

  /** Builds and sends our report now (the timer calls it; the owner may for a final report). */
  sendReport(options: { bye?: { reason?: string } } = {}): void {
    this.#report(options.bye, undefined);
  }

  /** Sends a report; `sent` runs once the datagram left (or failed); false when nothing was sent. */
  #report(bye: { reason?: string } | undefined, sent: (() => void) | undefined): boolean {
    if (this.#closed) return false;
    const target = this.#latched ?? this.#remote;
    if (target === undefined || target.port === 0) return false;
    const now = this.#now();
    const reports: ReportBlock[] = [];
    const reception = this.#reception();
    if (reception !== undefined && reception.expected > 0) {
      reports.push(this.#blocks.build(reception, this.#lastSr, now));
    }
    const sending = this.#sending?.();
    const sentBefore = this.#sentAtReport[0];
    const weSent = sending !== undefined && sending.packetCount > sentBefore;
    this.#sentAtReport = [this.#sentAtReport[1], sending?.packetCount ?? this.#sentAtReport[1]];
    let packet: Buffer = buildCompound({
      ssrc: this.ssrc,
      ...(weSent ? { sender: { ...ntpTimestamp(now), ...senderCounts(sending) } } : {}),
      reports,
      cname: this.cname,
      ...(bye === undefined ? {} : { bye }),
    });
    if (this.#srtp !== undefined) {
      if (this.#srtp.closed) return false;
      packet = this.#srtp.protectRtcp(packet);
    }
    this.#avgRtcpSize = nextAvgRtcpSize(this.#avgRtcpSize, packet.length + UDP_IP_OVERHEAD);
    this.#stats.reportsSent++;
    try {
      this.#socket.send(packet, target.port, target.address, (err) => {
        if (err) this.#stats.sendErrors++;
        sent?.();
      });
      return true;
    } catch {
      this.#stats.sendErrors++; // the socket closed under us
      return false;
    }
  }

  /**
   * Stops the timer and, unless told otherwise, says BYE (6.6) in a last
   * compound; closes the socket when it is ours (not with rtcp-mux).
   * Idempotent; returns the final statistics.
   */
  close(options: { bye?: boolean; reason?: string } = {}): RtcpStats {
    if (this.#closed) return this.stats;
    const closeSocket = (): void => {
      try {
        this.#socket.close();
      } catch {
        // already closed: nothing to release
      }
    };
    // Closing a socket cancels its pending sends: ours closes once the BYE has left.
    const own = !this.#mux;
    const byeSent =
      options.bye !== false &&
      this.#report(
        options.reason === undefined ? {} : { reason: options.reason },
        own ? closeSocket : undefined,
      );
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#socket.off('message', this.#onMessage);
    if (own && !byeSent) closeSocket();
    return this.stats;
  }

  #schedule(): void {
    if (this.#closed) return;
    const ms = rtcpIntervalMs(
      {
        members: 2,
        senders: this.#sentAtReport[1] > this.#sentAtReport[0] ? 2 : 1,
        weSent: this.#sentAtReport[1] > this.#sentAtReport[0],
        rtcpBandwidth: this.#rtcpBandwidth,
        avgRtcpSize: this.#avgRtcpSize,
        initial: this.#initial,
      },
      this.#random,
    );
    this.#initial = false;
    this.#timer = setTimeout(this.#tick, ms);
  }

  readonly #tick = (): void => {
    this.#timer = undefined;
    this.sendReport();
    this.#schedule();
  };

  readonly #onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    if (this.#closed) return;
    // With rtcp-mux the RTP stream shares the socket: leave RTP to MediaSession.
    if (this.#mux && !isRtcp(msg)) return;
    const remote = this.#remote;
    if (remote !== undefined && unmap(rinfo.address) !== unmap(remote.address)) {
      this.#stats.rtcpForeign++;
      return;
    }
    let compound: Buffer = msg;
    if (this.#srtp !== undefined) {
      const r = this.#srtp.unprotectRtcp(msg);
      if (!r.ok) {
        if (r.reason === 'auth-failed') this.#stats.srtcpAuthFailed++;
        else if (r.reason === 'replayed') this.#stats.srtcpReplayed++;
        else if (r.reason === 'malformed') this.#stats.rtcpInvalid++;
        return;
      }
      compound = r.packet;
    }
    const parsed = parseRtcp(compound);
    if (!parsed.ok) {
      this.#stats.rtcpInvalid++;
      return;
    }
    this.#latched = { address: rinfo.address, port: rinfo.port };
    this.#avgRtcpSize = nextAvgRtcpSize(this.#avgRtcpSize, msg.length + UDP_IP_OVERHEAD);
    const now = this.#now();
    for (const p of parsed.packets) {
      if (p.type === 'sr') {
        this.#stats.srReceived++;
        this.#lastSr = {
          ssrc: p.ssrc,
          lsr: ntpMiddle(p.sender.ntpSeconds, p.sender.ntpFraction),
          receivedAtMs: now,
        };
        this.#takeReports(p.reports, now);
      } else if (p.type === 'rr') {
        this.#stats.rrReceived++;
        this.#takeReports(p.reports, now);
      } else if (p.type === 'bye') {
        this.#stats.byeReceived++;
        this.emit('bye', p.reason === undefined ? { ssrcs: p.ssrcs } : { ssrcs: p.ssrcs, reason: p.reason });
      }
    }
    this.emit('report', parsed.packets);
  };

  /** The far end's view of our stream (6.4.1): only the block about our SSRC. */
  #takeReports(blocks: readonly ReportBlock[], now: number): void {
    const mine = blocks.find((b) => b.ssrc === this.ssrc);
    if (mine === undefined) return;
    const s = this.#stats;
    s.farEndLoss = mine.fractionLost / 256;
    s.farEndCumulativeLost = mine.cumulativeLost;
    s.farEndJitterMs = (mine.jitter / this.#clockRate) * 1000;
    const { ntpSeconds, ntpFraction } = ntpTimestamp(now);
    const rtt = roundTripMs(mine, ntpMiddle(ntpSeconds, ntpFraction));
    if (rtt !== undefined) s.rttMs = rtt;
  }
}

function senderCounts(s: SendingSnapshot | undefined): SendingSnapshot {
  return {
    rtpTimestamp: (s?.rtpTimestamp ?? 0) >>> 0,
    packetCount: (s?.packetCount ?? 0) >>> 0,
    octetCount: (s?.octetCount ?? 0) >>> 0,
  };
}

/** A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; compare them as a.b.c.d. */
function unmap(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
