/**
 * Bounded RTP header parse and serialize (RFC 3550 5.1), with the validity
 * checks of RFC 3550 A.1. Parsing never throws and never copies the payload.
 */

export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  /** unsigned 32-bit */
  timestamp: number;
  /** unsigned 32-bit */
  ssrc: number;
  csrcCount: number;
  /** view into the input buffer: after CSRCs and header extension, padding removed */
  payload: Uint8Array;
}

export type RtpInvalidReason = 'short' | 'version' | 'csrc' | 'extension' | 'padding' | 'rtcp';

export interface RtpPacketInit {
  marker?: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  payload: Uint8Array;
}

const RTP_HEADER_LENGTH = 12;

/** True when the value is a reason, i.e. {@link parseRtp} rejected the datagram. */
export function isRtpInvalid(result: RtpPacket | RtpInvalidReason): result is RtpInvalidReason {
  return typeof result === 'string';
}

/**
 * Whether parseRtp would answer 'rtcp' (RFC 5761 4: payload types 72-76 are
 * RTCP's SR/RR seen as RTP), from the first two octets alone: no packet
 * object, for a check every datagram passes.
 */
export function inRtcpWindow(buf: Uint8Array): boolean {
  if (buf.length < 4 || buf[0]! >> 6 !== 2) return false;
  const payloadType = buf[1]! & 0x7f;
  return payloadType >= 72 && payloadType <= 76;
}

/**
 * Parses one datagram. Returns the packet, or why it is not a valid RTP packet.
 *
 * Checked in this order, so an RTCP packet multiplexed onto the RTP port
 * (RFC 5761 4: SR/RR/SDES/BYE/APP = 200-204 look like marker + PT 72-76) is
 * reported as 'rtcp' even when shorter than an RTP header.
 */
export function parseRtp(buf: Uint8Array): RtpPacket | RtpInvalidReason {
  const length = buf.length;
  if (length < 4) return 'short';
  const b0 = buf[0]!;
  if (b0 >> 6 !== 2) return 'version';
  const b1 = buf[1]!;
  const payloadType = b1 & 0x7f;
  if (inRtcpWindow(buf)) return 'rtcp';
  if (length < RTP_HEADER_LENGTH) return 'short';

  const csrcCount = b0 & 0x0f;
  let offset = RTP_HEADER_LENGTH + 4 * csrcCount;
  if (offset > length) return 'csrc';

  if ((b0 & 0x10) !== 0) {
    // RFC 3550 5.3.1: 16-bit profile field, 16-bit length in 32-bit words (excluding this header).
    if (offset + 4 > length) return 'extension';
    const words = (buf[offset + 2]! << 8) | buf[offset + 3]!;
    offset += 4 + 4 * words;
    if (offset > length) return 'extension';
  }

  let end = length;
  if ((b0 & 0x20) !== 0) {
    // RFC 3550 5.1: the last octet counts the padding, itself included, so it is
    // at least 1 and cannot reach back into the header (A.1).
    const padding = buf[length - 1]!;
    if (padding === 0 || padding > length - offset) return 'padding';
    end = length - padding;
  }

  return {
    marker: (b1 & 0x80) !== 0,
    payloadType,
    sequenceNumber: (buf[2]! << 8) | buf[3]!,
    timestamp: ((buf[4]! << 24) | (buf[5]! << 16) | (buf[6]! << 8) | buf[7]!) >>> 0,
    ssrc: ((buf[8]! << 24) | (buf[9]! << 16) | (buf[10]! << 8) | buf[11]!) >>> 0,
    csrcCount,
    payload: buf.subarray(offset, end),
  };
}

/**
 * Writes a 12-byte header (V=2, no padding, extension or CSRCs) and the
 * payload. Fields are reduced to their widths (PT 7 bits, sequence 16,
 * timestamp and SSRC 32). With `out` large enough the bytes go there and a
 * view of it is returned; otherwise a new Buffer is allocated.
 */
export function serializeRtp(p: RtpPacketInit, out?: Buffer): Buffer {
  const total = RTP_HEADER_LENGTH + p.payload.length;
  const buf = out !== undefined && out.length >= total ? out : Buffer.allocUnsafe(total);
  buf[0] = 0x80;
  buf[1] = (p.marker === true ? 0x80 : 0) | (p.payloadType & 0x7f);
  buf[2] = (p.sequenceNumber >> 8) & 0xff;
  buf[3] = p.sequenceNumber & 0xff;
  const ts = p.timestamp >>> 0;
  buf[4] = ts >>> 24;
  buf[5] = (ts >>> 16) & 0xff;
  buf[6] = (ts >>> 8) & 0xff;
  buf[7] = ts & 0xff;
  const ssrc = p.ssrc >>> 0;
  buf[8] = ssrc >>> 24;
  buf[9] = (ssrc >>> 16) & 0xff;
  buf[10] = (ssrc >>> 8) & 0xff;
  buf[11] = ssrc & 0xff;
  buf.set(p.payload, RTP_HEADER_LENGTH);
  return buf.length === total ? buf : buf.subarray(0, total);
}
