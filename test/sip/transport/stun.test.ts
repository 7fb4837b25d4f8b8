/**
 * STUN keep-alives on a SIP UDP port (RFC 5626 4.4.2): which datagrams are
 * STUN, which Binding requests we answer, and the answer's XOR-MAPPED-ADDRESS
 * against RFC 5769's sample responses (2.2 IPv4, 2.3 IPv6).
 */
import { describe, expect, it } from 'vitest';
import { bindingRequestId, bindingSuccess, isStun } from '../../../src/sip/transport/stun.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** RFC 5769's transaction id. */
const ID = hex('b7e7a701 bc34d686 fa87dfae');

/** A Binding request with these attributes (type, value). */
function request(attributes: [number, Buffer][] = [], id = ID): Buffer {
  const body = Buffer.concat(
    attributes.map(([type, value]) => {
      const a = Buffer.alloc(4 + Math.ceil(value.length / 4) * 4);
      a.writeUInt16BE(type, 0);
      a.writeUInt16BE(value.length, 2);
      value.copy(a, 4);
      return a;
    }),
  );
  const header = Buffer.alloc(20);
  header.writeUInt16BE(0x0001, 0);
  header.writeUInt16BE(body.length, 2);
  header.writeUInt32BE(0x2112a442, 4);
  id.copy(header, 8);
  return Buffer.concat([header, body]);
}

describe('STUN keep-alives', () => {
  it('answers with RFC 5769’s XOR-MAPPED-ADDRESS: 192.0.2.1:32853 (2.2) and 2001:db8:1234:5678:11:2233:4455:6677 (2.3)', () => {
    const v4 = bindingSuccess(ID, '192.0.2.1', 32853);
    expect(v4.subarray(0, 20)).toEqual(Buffer.concat([hex('0101 000c 2112a442'), ID]));
    expect(v4.subarray(20)).toEqual(hex('0020 0008 0001 a147 e112a643'));
    const v6 = bindingSuccess(ID, '2001:db8:1234:5678:11:2233:4455:6677', 32853);
    expect(v6.readUInt16BE(2)).toBe(24);
    expect(v6.subarray(20)).toEqual(hex('0020 0014 0002 a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9'));
  });

  it('expands IPv6 forms: ::, a leading or trailing ::, an IPv4 tail', () => {
    /** The address back out of the attribute (XOR with the cookie and the id). */
    const decoded = (address: string) => {
      const r = bindingSuccess(ID, address, 5060);
      const mask = r.subarray(4, 20);
      return Array.from(r.subarray(28, 44), (b, i) => b ^ mask[i]!);
    };
    const bytes = (...words: number[]) => words.flatMap((w) => [w >> 8, w & 0xff]);
    expect(decoded('::1')).toEqual(bytes(0, 0, 0, 0, 0, 0, 0, 1));
    expect(decoded('::')).toEqual(bytes(0, 0, 0, 0, 0, 0, 0, 0));
    expect(decoded('fe80::1:2')).toEqual(bytes(0xfe80, 0, 0, 0, 0, 0, 1, 2));
    expect(decoded('1:2:3:4:5:6:7::')).toEqual(bytes(1, 2, 3, 4, 5, 6, 7, 0));
    expect(decoded('::ffff:127.0.0.1')).toEqual(bytes(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1));
    expect(decoded('2001:db8:0:0:1:0:0:1')).toEqual(bytes(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1));
    expect(() => bindingSuccess(ID, 'example.com', 1)).toThrow(RangeError);
  });

  it('answers a Binding request with no attributes or optional ones, and nothing else', () => {
    expect(bindingRequestId(request())).toEqual(ID);
    // SOFTWARE (0x8022) and FINGERPRINT (0x8028) may be ignored.
    expect(
      bindingRequestId(
        request([
          [0x8022, Buffer.from('baresip')],
          [0x8028, Buffer.alloc(4)],
        ]),
      ),
    ).toEqual(ID);
    // USERNAME (0x0006) must be understood: not a keep-alive we can answer.
    expect(bindingRequestId(request([[0x0006, Buffer.from('user')]]))).toBeUndefined();
    const response = request();
    response.writeUInt16BE(0x0101, 0);
    expect(isStun(response)).toBe(true);
    expect(bindingRequestId(response)).toBeUndefined();
    const indication = request();
    indication.writeUInt16BE(0x0011, 0);
    expect(bindingRequestId(indication)).toBeUndefined();
    // The length field must match the datagram, in whole words.
    expect(bindingRequestId(Buffer.concat([request(), Buffer.alloc(4)]))).toBeUndefined();
    const odd = request([[0x8022, Buffer.from('abc')]]);
    expect(bindingRequestId(odd.subarray(0, odd.length - 1))).toBeUndefined();
  });

  it('tells STUN from SIP and from a CRLF keep-alive', () => {
    expect(isStun(request())).toBe(true);
    expect(isStun(Buffer.from('OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\n\r\n'))).toBe(false);
    expect(isStun(Buffer.from('\r\n\r\n'))).toBe(false);
    const noCookie = request();
    noCookie.writeUInt32BE(0x2112a443, 4);
    expect(isStun(noCookie)).toBe(false);
  });
});
