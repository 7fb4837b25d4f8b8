/**
 * RTCP (RFC 3550 6) as pure functions and small state machines, no sockets
 * and no clocks (times come in as arguments):
 *
 * - parse a compound packet with the validity checks of RFC 3550 A.2 (SR,
 *   RR, SDES, BYE read; APP and the feedback/XR types skipped, but counted);
 * - build our compound: SR or RR, then SDES with our CNAME (6.1), and BYE
 *   last when we leave (6.6);
 * - the report block of our reception: cumulative and fractional loss
 *   (A.3), interarrival jitter (A.8), LSR/DLSR (6.4.1);
 * - round-trip time from the LSR/DLSR of a report about our stream (6.4.1);
 * - the transmission interval (6.3.1, A.7);
 * - isRtcp: RTP/RTCP demultiplexing on one port (RFC 5761 4).
 *
 * Parsing never throws: a datagram from the network is a compound or a reason.
 */
import { inRtcpWindow } from './packet.js';
import { SequenceTracker, tsDiff } from './seq.js';

export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
export const RTCP_BYE = 203;
export const RTCP_APP = 204;
/** SDES item types (RFC 3550 6.5). */
export const SDES_END = 0;
export const SDES_CNAME = 1;

const HEADER = 4;
const REPORT_BLOCK = 24;
const SENDER_INFO = 20;
/** RC and SC are 5 bits (RFC 3550 6.4.1). */
const MAX_COUNT = 31;

export interface ReportBlock {
  /** the source this block reports on (SSRC_n) */
  ssrc: number;
  /** fraction lost since the previous report, in 1/256 (0-255) */
  fractionLost: number;
  /** cumulative packets lost, signed 24-bit (negative with duplicates, A.3) */
  cumulativeLost: number;
  /** extended highest sequence number received */
  extendedHighestSeq: number;
  /** interarrival jitter, in RTP timestamp units */
  jitter: number;
  /** middle 32 bits of the NTP timestamp of the last SR from that source (0: none yet) */
  lsr: number;
  /** delay since that SR, in 1/65536 s (0: none yet) */
  dlsr: number;
}

export interface SenderInfo {
  /** NTP timestamp, seconds since 1900 (modulo 2^32) and fraction of 2^32 */
  ntpSeconds: number;
  ntpFraction: number;
  /** the same instant on the RTP clock */
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

export interface SdesChunk {
  ssrc: number;
  /** CNAME, when the chunk has one (the only item RFC 3550 6.5.1 requires) */
  cname?: string;
}

export type RtcpPacket =
  | { type: 'sr'; ssrc: number; sender: SenderInfo; reports: ReportBlock[] }
  | { type: 'rr'; ssrc: number; reports: ReportBlock[] }
  | { type: 'sdes'; chunks: SdesChunk[] }
  | { type: 'bye'; ssrcs: number[]; reason?: string }
  /** APP (204), feedback (205, 206), XR (207) and the rest: read past, not interpreted */
  | { type: 'other'; packetType: number };

/**
 * Why a datagram is not a valid RTCP compound (RFC 3550 A.2):
 * - `short`: under 8 octets, or a header cut off;
 * - `version`: a packet that is not version 2;
 * - `first-packet`: the first is not SR or RR, or has padding;
 * - `length`: the length fields do not add up to the datagram;
 * - `padding`: padding anywhere but the last packet, or an impossible count;
 * - `malformed`: a packet whose count or items overrun its length.
 */
export type RtcpInvalidReason = 'short' | 'version' | 'first-packet' | 'length' | 'padding' | 'malformed';

export type RtcpParseResult = { ok: true; packets: RtcpPacket[] } | { ok: false; reason: RtcpInvalidReason };

/**
 * RFC 5761 4: is this datagram on a multiplexed port RTCP? A valid compound
 * starts with SR or RR (RFC 3550 6.1), whose second octet (200, 201) reads as
 * RTP marker + payload type 72/73: the window packet.ts already reports as
 * 'rtcp'. SRTCP keeps those 8 octets in the clear, so this works before
 * unprotecting. (RFC 5761's wider 192-223 window only matters for
 * reduced-size RTCP, RFC 5506, which we never negotiate.)
 */
export function isRtcp(datagram: Uint8Array): boolean {
  return inRtcpWindow(datagram);
}

/** Parses a compound RTCP packet (already unprotected, for SRTCP). Never throws. */
export function parseRtcp(buf: Uint8Array): RtcpParseResult {
  const total = buf.length;
  if (total < 8) return { ok: false, reason: 'short' };
  // A.2: the first packet is SR or RR, without padding.
  if (buf[0]! >> 6 !== 2) return { ok: false, reason: 'version' };
  if ((buf[0]! & 0x20) !== 0 || (buf[1] !== RTCP_SR && buf[1] !== RTCP_RR)) {
    return { ok: false, reason: 'first-packet' };
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const packets: RtcpPacket[] = [];
  let offset = 0;
  while (offset < total) {
    if (offset + HEADER > total) return { ok: false, reason: 'short' };
    const b0 = buf[offset]!;
    if (b0 >> 6 !== 2) return { ok: false, reason: 'version' };
    const length = (view.getUint16(offset + 2) + 1) * 4;
    const end = offset + length;
    if (end > total) return { ok: false, reason: 'length' };
    let bodyEnd = end;
    if ((b0 & 0x20) !== 0) {
      // RFC 3550 6.4.1: only the last packet of a compound may be padded.
      const padding = buf[end - 1]!;
      if (end !== total || padding === 0 || padding > length - HEADER)
        return { ok: false, reason: 'padding' };
      bodyEnd = end - padding;
    }
    const packet = parseOne(view, buf, offset, bodyEnd);
    if (packet === undefined) return { ok: false, reason: 'malformed' };
    packets.push(packet);
    offset = end;
  }
  return { ok: true, packets };
}

function parseOne(view: DataView, buf: Uint8Array, offset: number, end: number): RtcpPacket | undefined {
  const count = buf[offset]! & 0x1f;
  const type = buf[offset + 1]!;
  switch (type) {
    case RTCP_SR: {
      if (offset + 8 + SENDER_INFO + count * REPORT_BLOCK > end) return undefined;
      const s = offset + 8;
      return {
        type: 'sr',
        ssrc: view.getUint32(offset + 4),
        sender: {
          ntpSeconds: view.getUint32(s),
          ntpFraction: view.getUint32(s + 4),
          rtpTimestamp: view.getUint32(s + 8),
          packetCount: view.getUint32(s + 12),
          octetCount: view.getUint32(s + 16),
        },
        reports: reportBlocks(view, s + SENDER_INFO, count),
      };
    }
    case RTCP_RR:
      if (offset + 8 + count * REPORT_BLOCK > end) return undefined;
      return { type: 'rr', ssrc: view.getUint32(offset + 4), reports: reportBlocks(view, offset + 8, count) };
    case RTCP_SDES:
      return parseSdes(view, buf, offset, end, count);
    case RTCP_BYE: {
      let at = offset + HEADER;
      if (at + 4 * count > end) return undefined;
      const ssrcs: number[] = [];
      for (let i = 0; i < count; i++, at += 4) ssrcs.push(view.getUint32(at));
      if (at < end) {
        // 6.6: an optional reason, length-prefixed, then padding to 32 bits.
        const len = buf[at]!;
        if (at + 1 + len > end) return undefined;
        return { type: 'bye', ssrcs, reason: latin1(buf, at + 1, at + 1 + len) };
      }
      return { type: 'bye', ssrcs };
    }
    default:
      // APP (6.7), RTPFB/PSFB (RFC 4585), XR (RFC 3611) and anything newer: skipped by length.
      return { type: 'other', packetType: type };
  }
}

function reportBlocks(view: DataView, at: number, count: number): ReportBlock[] {
  const blocks: ReportBlock[] = [];
  for (let i = 0; i < count; i++, at += REPORT_BLOCK) {
    const lostWord = view.getUint32(at + 4);
    blocks.push({
      ssrc: view.getUint32(at),
      fractionLost: lostWord >>> 24,
      cumulativeLost: ((lostWord & 0xffffff) << 8) >> 8, // signed 24-bit
      extendedHighestSeq: view.getUint32(at + 8),
      jitter: view.getUint32(at + 12),
      lsr: view.getUint32(at + 16),
      dlsr: view.getUint32(at + 20),
    });
  }
  return blocks;
}

/** RFC 3550 6.5: SC chunks, each an SSRC then items up to a null octet, padded to 32 bits. */
function parseSdes(
  view: DataView,
  buf: Uint8Array,
  offset: number,
  end: number,
  count: number,
): RtcpPacket | undefined {
  const chunks: SdesChunk[] = [];
  let at = offset + HEADER;
  for (let i = 0; i < count; i++) {
    if (at + 4 > end) return undefined;
    const chunk: SdesChunk = { ssrc: view.getUint32(at) };
    at += 4;
    for (;;) {
      if (at >= end) return undefined;
      const itemType = buf[at]!;
      if (itemType === SDES_END) {
        at += 1;
        break;
      }
      if (at + 2 > end) return undefined;
      const len = buf[at + 1]!;
      if (at + 2 + len > end) return undefined;
      if (itemType === SDES_CNAME) chunk.cname = latin1(buf, at + 2, at + 2 + len);
      at += 2 + len;
    }
    at = (at + 3) & ~3; // to the next 32-bit boundary
    chunks.push(chunk);
  }
  return { type: 'sdes', chunks };
}

/** Text from the wire, bounded and without control characters (it may reach a log line). */
function latin1(buf: Uint8Array, start: number, end: number): string {
  let out = '';
  for (let i = start; i < end && out.length < 255; i++) {
    const c = buf[i]!;
    out += c >= 0x20 && c !== 0x7f ? String.fromCharCode(c) : '?';
  }
  return out;
}

// ---------------------------------------------------------------------------
// Building our compound

export interface CompoundInit {
  ssrc: number;
  /** present when we sent RTP since the last report: an SR (6.4.1), else an RR (6.4.2) */
  sender?: SenderInfo;
  /** at most 31 blocks (RC is 5 bits) */
  reports?: readonly ReportBlock[];
  /** RFC 3550 6.5.1: every compound carries our CNAME */
  cname: string;
  /** append a BYE for our SSRC (6.6), with an optional reason */
  bye?: { reason?: string };
}

/** SR or RR, SDES with CNAME, optionally BYE: one compound (RFC 3550 6.1). */
export function buildCompound(init: CompoundInit): Buffer {
  const reports = init.reports ?? [];
  if (reports.length > MAX_COUNT) throw new RangeError('at most 31 report blocks per SR/RR');
  const parts = [
    init.sender === undefined ? receiverReport(init.ssrc, reports) : senderReport(init, reports),
  ];
  parts.push(sdesCname(init.ssrc, init.cname));
  if (init.bye !== undefined) parts.push(bye(init.ssrc, init.bye.reason));
  return Buffer.concat(parts);
}

function header(buf: Buffer, count: number, type: number): void {
  buf[0] = 0x80 | count;
  buf[1] = type;
  buf.writeUInt16BE(buf.length / 4 - 1, 2);
}

function senderReport(init: CompoundInit, reports: readonly ReportBlock[]): Buffer {
  const s = init.sender!;
  const buf = Buffer.alloc(8 + SENDER_INFO + reports.length * REPORT_BLOCK);
  header(buf, reports.length, RTCP_SR);
  buf.writeUInt32BE(init.ssrc >>> 0, 4);
  buf.writeUInt32BE(s.ntpSeconds >>> 0, 8);
  buf.writeUInt32BE(s.ntpFraction >>> 0, 12);
  buf.writeUInt32BE(s.rtpTimestamp >>> 0, 16);
  buf.writeUInt32BE(s.packetCount >>> 0, 20);
  buf.writeUInt32BE(s.octetCount >>> 0, 24);
  writeBlocks(buf, 28, reports);
  return buf;
}

function receiverReport(ssrc: number, reports: readonly ReportBlock[]): Buffer {
  const buf = Buffer.alloc(8 + reports.length * REPORT_BLOCK);
  header(buf, reports.length, RTCP_RR);
  buf.writeUInt32BE(ssrc >>> 0, 4);
  writeBlocks(buf, 8, reports);
  return buf;
}

function writeBlocks(buf: Buffer, at: number, reports: readonly ReportBlock[]): void {
  for (const r of reports) {
    buf.writeUInt32BE(r.ssrc >>> 0, at);
    const lost = Math.max(-0x800000, Math.min(0x7fffff, Math.trunc(r.cumulativeLost)));
    buf.writeUInt32BE((((r.fractionLost & 0xff) << 24) | (lost & 0xffffff)) >>> 0, at + 4);
    buf.writeUInt32BE(r.extendedHighestSeq >>> 0, at + 8);
    buf.writeUInt32BE(Math.min(0xffffffff, Math.max(0, Math.floor(r.jitter))), at + 12);
    buf.writeUInt32BE(r.lsr >>> 0, at + 16);
    buf.writeUInt32BE(r.dlsr >>> 0, at + 20);
    at += REPORT_BLOCK;
  }
}

function sdesCname(ssrc: number, cname: string): Buffer {
  const text = Buffer.from(cname, 'utf8').subarray(0, 255);
  // SSRC, CNAME item (type, length, text), at least one null octet, padded to 32 bits.
  const chunk = 4 + 2 + text.length + 1;
  const buf = Buffer.alloc(HEADER + Math.ceil(chunk / 4) * 4);
  header(buf, 1, RTCP_SDES);
  buf.writeUInt32BE(ssrc >>> 0, 4);
  buf[8] = SDES_CNAME;
  buf[9] = text.length;
  text.copy(buf, 10);
  return buf;
}

function bye(ssrc: number, reason: string | undefined): Buffer {
  const text = reason === undefined ? undefined : Buffer.from(reason, 'utf8').subarray(0, 255);
  const body = 4 + (text === undefined ? 0 : 1 + text.length);
  const buf = Buffer.alloc(HEADER + Math.ceil(body / 4) * 4);
  header(buf, 1, RTCP_BYE);
  buf.writeUInt32BE(ssrc >>> 0, 4);
  if (text !== undefined) {
    buf[8] = text.length;
    text.copy(buf, 9);
  }
  return buf;
}

// ---------------------------------------------------------------------------
// Time: NTP timestamps, LSR/DLSR, round-trip time (RFC 3550 4, 6.4.1)

/** Seconds from the NTP epoch (1900) to the Unix epoch (1970). */
const NTP_UNIX_OFFSET = 2_208_988_800;
const TWO_32 = 0x1_0000_0000;

/** The NTP timestamp of a wall-clock time in Unix milliseconds (seconds wrap in 2036, as NTP's do). */
export function ntpTimestamp(unixMs: number): { ntpSeconds: number; ntpFraction: number } {
  const seconds = unixMs / 1000 + NTP_UNIX_OFFSET;
  const whole = Math.floor(seconds);
  return { ntpSeconds: whole % TWO_32, ntpFraction: Math.floor((seconds - whole) * TWO_32) >>> 0 };
}

/** The middle 32 bits of an NTP timestamp (LSR and the round-trip arithmetic use them). */
export function ntpMiddle(ntpSeconds: number, ntpFraction: number): number {
  return (((ntpSeconds & 0xffff) << 16) | (ntpFraction >>> 16)) >>> 0;
}

/** 1/65536 s units (LSR, DLSR) from milliseconds. */
export function toNtpShort(ms: number): number {
  return Math.max(0, Math.round((ms * 65536) / 1000)) % TWO_32;
}

/**
 * RFC 3550 6.4.1: round-trip time in ms from a report block about our stream,
 * received when our clock read `arrivalMiddle` (ntpMiddle of now): A − LSR −
 * DLSR. Undefined when the block carries no LSR yet, or the result is negative
 * (clocks stepped, or a report about an SR we did not send).
 */
export function roundTripMs(
  block: Pick<ReportBlock, 'lsr' | 'dlsr'>,
  arrivalMiddle: number,
): number | undefined {
  if (block.lsr === 0) return undefined;
  const units = (arrivalMiddle - block.lsr - block.dlsr) | 0; // modulo 2^32, signed
  if (units < 0) return undefined;
  return (units * 1000) / 65536;
}

// ---------------------------------------------------------------------------
// Our reception of the far end's stream: loss (A.3), jitter (A.8)

/**
 * RFC 3550 A.8 interarrival jitter: J += (|D| − J) / 16, with D the change of
 * transit time between consecutive packets, in RTP timestamp units. Feed it
 * audio packets only, with arrival times on the same clock rate: events that
 * repeat one timestamp (RFC 4733) would read as jitter.
 */
export class JitterEstimator {
  #jitter = 0;
  #lastTransit: number | undefined;
  #lastTimestamp = 0;
  #lastArrival = 0;

  /** Jitter so far, in RTP timestamp units (what the report block carries). */
  get jitter(): number {
    return this.#jitter;
  }

  /** One packet: its RTP timestamp and its arrival, in timestamp units on any fixed origin. */
  update(arrival: number, rtpTimestamp: number): void {
    if (this.#lastTransit === undefined) {
      this.#lastTransit = 0;
    } else {
      // transit difference, wrap-safe on the 32-bit timestamp
      const d = arrival - this.#lastArrival - tsDiff(rtpTimestamp, this.#lastTimestamp);
      this.#jitter += (Math.abs(d) - this.#jitter) / 16;
    }
    this.#lastArrival = arrival;
    this.#lastTimestamp = rtpTimestamp >>> 0;
  }

  /** A new source (SSRC change, restart): start over. */
  reset(): void {
    this.#jitter = 0;
    this.#lastTransit = undefined;
  }
}

/** What a report block needs to know of our reception of one source. */
export interface ReceptionSnapshot {
  /** the far end's SSRC */
  ssrc: number;
  /** RFC 3550 A.3 extended highest sequence number received */
  extendedHighestSeq: number;
  /** packets expected: extended highest − base + 1 */
  expected: number;
  /** packets received, duplicates included (A.1) */
  received: number;
  /** interarrival jitter, RTP timestamp units */
  jitter: number;
}

/**
 * Per-packet reception bookkeeping of one source for our reports: the
 * RFC 3550 A.1 sequence tracker (rtp/seq.ts) and the A.8 jitter estimator.
 * A convenience for whoever sees each received RTP packet; a receive path
 * that already counts can build a ReceptionSnapshot itself.
 */
export class ReceptionStatistics {
  #ssrc: number | undefined;
  #seq = new SequenceTracker();
  readonly #jitter = new JitterEstimator();

  /**
   * One RTP packet of the far end's stream; `arrival` in timestamp units.
   * `timed` false counts the packet without timing it: an RFC 4733 event's
   * packets all carry the event's start timestamp, so their transit says
   * nothing about the path and would read as jitter.
   */
  update(ssrc: number, sequenceNumber: number, rtpTimestamp: number, arrival: number, timed = true): void {
    if (ssrc !== this.#ssrc) {
      this.#ssrc = ssrc;
      this.#seq = new SequenceTracker();
      this.#jitter.reset();
    }
    const kind = this.#seq.update(sequenceNumber);
    if (kind === 'restart') this.#jitter.reset();
    // A.8: from consecutive packets as they arrive; a far jump is not a transit change.
    if (kind !== 'jump' && timed) this.#jitter.update(arrival, rtpTimestamp);
  }

  snapshot(): ReceptionSnapshot | undefined {
    if (this.#ssrc === undefined) return undefined;
    return {
      ssrc: this.#ssrc,
      extendedHighestSeq: this.#seq.maxExtended,
      expected: this.#seq.expected,
      received: this.#seq.received,
      jitter: this.#jitter.jitter,
    };
  }
}

/** The far end's last SR as we received it, for LSR/DLSR (6.4.1). */
export interface LastSenderReport {
  ssrc: number;
  /** middle 32 bits of its NTP timestamp */
  lsr: number;
  /** when it arrived, in ms on the clock `nowMs` is on */
  receivedAtMs: number;
}

/**
 * Report blocks over time: RFC 3550 A.3 keeps the expected and received
 * counts of the previous report to give the fraction lost in the interval.
 */
export class ReportBlockBuilder {
  #ssrc: number | undefined;
  #expectedPrior = 0;
  #receivedPrior = 0;

  /** The block for this report; `lastSr` when the far end sent an SR, `nowMs` on its clock. */
  build(r: ReceptionSnapshot, lastSr: LastSenderReport | undefined, nowMs: number): ReportBlock {
    if (r.ssrc !== this.#ssrc) {
      this.#ssrc = r.ssrc;
      this.#expectedPrior = 0;
      this.#receivedPrior = 0;
    }
    const expectedInterval = r.expected - this.#expectedPrior;
    const receivedInterval = r.received - this.#receivedPrior;
    this.#expectedPrior = r.expected;
    this.#receivedPrior = r.received;
    const lostInterval = expectedInterval - receivedInterval;
    // A.3: duplicates can make the interval's loss negative; it reports as 0.
    const fractionLost =
      expectedInterval <= 0 || lostInterval <= 0
        ? 0
        : Math.min(255, Math.floor((lostInterval * 256) / expectedInterval));
    const sr = lastSr !== undefined && lastSr.ssrc === r.ssrc ? lastSr : undefined;
    return {
      ssrc: r.ssrc,
      fractionLost,
      cumulativeLost: Math.max(-0x800000, Math.min(0x7fffff, r.expected - r.received)),
      extendedHighestSeq: r.extendedHighestSeq >>> 0,
      jitter: Math.floor(r.jitter),
      lsr: sr?.lsr ?? 0,
      dlsr: sr === undefined ? 0 : toNtpShort(nowMs - sr.receivedAtMs),
    };
  }
}

// ---------------------------------------------------------------------------
// Transmission interval (RFC 3550 6.3.1, A.7)

/** RFC 3550 6.2: the minimum interval; half of it before the first report. */
export const RTCP_MIN_INTERVAL_MS = 5000;
/** 6.3.1: the randomized interval is divided by e − 3/2 to compensate for timer reconsideration. */
const COMPENSATION = Math.E - 1.5;

export interface IntervalInput {
  /** session members, us included (2 on a call) */
  members: number;
  /** members that sent RTP recently, us included when `weSent` */
  senders: number;
  weSent: boolean;
  /** RTCP bandwidth: 5% of the session bandwidth (6.2), in octets per second */
  rtcpBandwidth: number;
  /** average compound size with UDP and IP headers, octets (6.3.3) */
  avgRtcpSize: number;
  /** before our first report: half the minimum (6.2) */
  initial: boolean;
}

/**
 * The interval until our next report, in ms (RFC 3550 A.7 `rtcp_interval`):
 * max(5 s minimum, the members' share of 5% of the session bandwidth), scaled
 * by a random factor in [0.5, 1.5) and divided by e − 3/2. `random` returns a
 * number in [0, 1) (Math.random by default; injected in tests).
 *
 * The minimum stays 5 s, although 6.2 allows a two-party session a reduced
 * one of 360 / (session kbit/s): for G.711 at 20 ms (80 kbit/s with headers)
 * that is 4.5 s, too close to 5 s to be worth a second rule, and 5 s is what
 * every peer expects. So reports go every 2.05-6.16 s (1.03-3.08 s for the
 * first), about 5 s on average; timer reconsideration (6.3.6) is left out, as
 * a two-party session's membership does not change.
 */
export function rtcpIntervalMs(input: IntervalInput, random: () => number = Math.random): number {
  const minMs = input.initial ? RTCP_MIN_INTERVAL_MS / 2 : RTCP_MIN_INTERVAL_MS;
  let members = Math.max(1, input.members);
  const senders = Math.max(0, Math.min(input.senders, members));
  let bandwidth = Math.max(1, input.rtcpBandwidth);
  // 6.3.1: with few senders, senders share 25% of the RTCP bandwidth, receivers 75%.
  if (senders <= members * 0.25) {
    if (input.weSent) {
      bandwidth *= 0.25;
      members = senders;
    } else {
      bandwidth *= 0.75;
      members -= senders;
    }
  }
  const t = Math.max(minMs, (1000 * members * Math.max(1, input.avgRtcpSize)) / bandwidth);
  const r = random();
  const factor = 0.5 + (Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0.5);
  return (t * factor) / COMPENSATION;
}

/** 6.3.3: avg_rtcp_size = 1/16 · packet + 15/16 · avg, the packet with UDP/IP headers. */
export function nextAvgRtcpSize(avg: number, packetOctets: number): number {
  return avg + (packetOctets - avg) / 16;
}
