/**
 * STUN keep-alives on a SIP UDP port (RFC 5626 4.4.2, 8.4; RFC 5389): a
 * peer keeping its flow to us alive over UDP sends STUN Binding requests
 * there, and the answer (its address as we see it, XOR-MAPPED-ADDRESS) tells
 * it whether its NAT binding changed. Pure: bytes in, bytes out.
 *
 * Only what a keep-alive needs: a Binding request with no attributes we must
 * understand (RFC 5389 7.3.1: an unknown comprehension-required attribute
 * would need a 420, which keep-alives never carry, so such a request is
 * ignored), answered with a Binding success response.
 */
import net from 'node:net';

/** RFC 5389 6: the fixed value in every STUN message, which also tells it from SIP. */
const MAGIC_COOKIE = 0x2112a442;
const HEADER_LENGTH = 20;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
/** RFC 5389 15.2. */
const XOR_MAPPED_ADDRESS = 0x0020;
/** Attribute types below this must be understood (RFC 5389 15). */
const COMPREHENSION_OPTIONAL = 0x8000;

/**
 * Whether the datagram is a STUN message at all (RFC 5389 6: the first two
 * bits zero and the magic cookie; RFC 5626 uses this to tell STUN from SIP
 * on one port). A SIP message starts with a letter, so never matches.
 */
export function isStun(datagram: Uint8Array): boolean {
  return (
    datagram.length >= HEADER_LENGTH &&
    (datagram[0]! & 0xc0) === 0 &&
    ((datagram[4]! << 24) | (datagram[5]! << 16) | (datagram[6]! << 8) | datagram[7]!) >>> 0 === MAGIC_COOKIE
  );
}

/**
 * The transaction id of a well-formed Binding request, or undefined for any
 * other STUN message (a response, an indication, another method, a length
 * that disagrees, an attribute we would have to understand).
 */
export function bindingRequestId(datagram: Uint8Array): Uint8Array | undefined {
  if (!isStun(datagram)) return undefined;
  const type = (datagram[0]! << 8) | datagram[1]!;
  const length = (datagram[2]! << 8) | datagram[3]!;
  if (type !== BINDING_REQUEST || length % 4 !== 0 || HEADER_LENGTH + length !== datagram.length)
    return undefined;
  for (let at = HEADER_LENGTH; at < datagram.length; ) {
    if (at + 4 > datagram.length) return undefined;
    const attribute = (datagram[at]! << 8) | datagram[at + 1]!;
    const size = (datagram[at + 2]! << 8) | datagram[at + 3]!;
    if (attribute < COMPREHENSION_OPTIONAL) return undefined;
    // Values are padded to 4 octets (RFC 5389 15).
    at += 4 + Math.ceil(size / 4) * 4;
    if (at > datagram.length) return undefined;
  }
  return datagram.subarray(8, HEADER_LENGTH);
}

/** A Binding success response for `transactionId` carrying the requester's address and port, XORed (RFC 5389 15.2). */
export function bindingSuccess(transactionId: Uint8Array, address: string, port: number): Buffer {
  const family = net.isIP(address);
  if (family === 0) throw new RangeError(`not an IP address: ${address}`);
  const addressLength = family === 4 ? 4 : 16;
  const out = Buffer.alloc(HEADER_LENGTH + 4 + 4 + addressLength);
  out.writeUInt16BE(BINDING_SUCCESS, 0);
  out.writeUInt16BE(4 + 4 + addressLength, 2);
  out.writeUInt32BE(MAGIC_COOKIE, 4);
  out.set(transactionId, 8);
  const at = HEADER_LENGTH;
  out.writeUInt16BE(XOR_MAPPED_ADDRESS, at);
  out.writeUInt16BE(4 + addressLength, at + 2);
  out[at + 5] = family === 4 ? 0x01 : 0x02;
  out.writeUInt16BE(port ^ (MAGIC_COOKIE >>> 16), at + 6);
  // The address XORed with the cookie (IPv4), or with the cookie and the transaction id (IPv6).
  const mask = out.subarray(4, 4 + addressLength);
  const bytes = addressBytes(address, family);
  for (let i = 0; i < addressLength; i++) out[at + 8 + i] = bytes[i]! ^ mask[i]!;
  return out;
}

/** The 4 or 16 octets of an IP address in its text form (validated by net.isIP first). */
function addressBytes(address: string, family: number): Uint8Array {
  if (family === 4) return Uint8Array.from(address.split('.'), Number);
  // IPv6: an embedded IPv4 tail (::ffff:1.2.3.4) as two groups, then "::" expanded to the missing zeros.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  const text = v4
    ? `${address.slice(0, v4.index)}${((+v4[1]! << 8) | +v4[2]!).toString(16)}:${((+v4[3]! << 8) | +v4[4]!).toString(16)}`
    : address;
  const [head = '', tail] = text.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const before = groups(head);
  const after = tail === undefined ? [] : groups(tail);
  const all = [...before, ...new Array<string>(8 - before.length - after.length).fill('0'), ...after];
  const out = new Uint8Array(16);
  all.forEach((group, i) => {
    const v = Number.parseInt(group, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}
