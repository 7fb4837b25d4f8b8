/**
 * SRTP interop with libsrtp, the reference implementation (Debian's
 * libsrtp2 through python3-pylibsrtp): what it protects we unprotect, what we
 * protect it unprotects, for both suites, RTP across a sequence wrap and
 * SRTCP; and it refuses what we refuse (tampered, replayed).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { serializeRtp } from '../../../src/rtp/packet.js';
import { generateKeySalt, SRTP_SUITES, SrtpContext, type SrtpSuite } from '../../../src/rtp/srtp.js';
import { describeInterop, toolPath } from '../../helpers/tools.js';

const run = promisify(execFile);
const PEER = path.join(import.meta.dirname, 'peer.py');

type Op = 'protect' | 'unprotect' | 'protect_rtcp' | 'unprotect_rtcp';
type PeerResult = { ok: string } | { error: string };

/** One libsrtp session over the packets, in order. */
async function libsrtp(suite: SrtpSuite, keySalt: Buffer, op: Op, packets: Buffer[]): Promise<PeerResult[]> {
  const child = run(toolPath('pylibsrtp'), [PEER], { timeout: 20_000, maxBuffer: 16 * 1024 * 1024 });
  child.child.stdin?.end(
    JSON.stringify({
      suite,
      key: keySalt.toString('hex'),
      op,
      packets: packets.map((p) => p.toString('hex')),
    }),
  );
  const { stdout } = await child;
  return (JSON.parse(stdout) as { results: PeerResult[] }).results;
}

function ok(result: PeerResult | undefined): Buffer {
  if (result === undefined || !('ok' in result)) throw new Error(`libsrtp: ${JSON.stringify(result)}`);
  return Buffer.from(result.ok, 'hex');
}

/** 400 packets of one stream from 65400 on: it wraps after 136. */
function stream(ssrc: number): Buffer[] {
  return Array.from({ length: 400 }, (_, i) =>
    serializeRtp({
      marker: i === 0,
      payloadType: 0,
      sequenceNumber: (65400 + i) & 0xffff,
      timestamp: (0xffff_f000 + i * 160) >>> 0,
      ssrc,
      payload: Buffer.alloc(160, i & 0xff),
    }),
  );
}

/** An RTCP RR with one report block plus SDES CNAME: a compound as we send it. */
function rtcp(ssrc: number, n: number): Buffer {
  const rr = Buffer.alloc(32);
  rr[0] = 0x81;
  rr[1] = 201;
  rr.writeUInt16BE(7, 2);
  rr.writeUInt32BE(ssrc, 4);
  rr.writeUInt32BE(0x5555_0000 + n, 8);
  const cname = Buffer.from('rc-softphone');
  const sdes = Buffer.alloc(4 + 4 + 2 + cname.length + 2);
  sdes[0] = 0x81;
  sdes[1] = 202;
  sdes.writeUInt16BE(sdes.length / 4 - 1, 2);
  sdes.writeUInt32BE(ssrc, 4);
  sdes[8] = 1;
  sdes[9] = cname.length;
  cname.copy(sdes, 10);
  return Buffer.concat([rr, sdes]);
}

describeInterop('SRTP interop with libsrtp (python3-pylibsrtp)', ['pylibsrtp'], () => {
  for (const suite of SRTP_SUITES) {
    it(`${suite}: libsrtp protects, we unprotect, across the sequence wrap`, async () => {
      const key = generateKeySalt();
      const plain = stream(0x0bad_cafe);
      const wire = (await libsrtp(suite, key, 'protect', plain)).map(ok);
      const us = new SrtpContext({ suite, localKeySalt: generateKeySalt(), remoteKeySalt: key });
      const out = wire.map((p) => us.unprotectRtp(p));
      expect(out.every((r) => r.ok)).toBe(true);
      expect(out.map((r) => (r.ok ? r.packet : undefined))).toEqual(plain);
      // a replay and a tampered packet, as libsrtp would refuse them
      expect(us.unprotectRtp(wire[150]!)).toEqual({ ok: false, reason: 'replayed' });
      const last = Buffer.from(wire[399]!);
      last[20]! ^= 0x80;
      expect(us.unprotectRtp(last)).toEqual({ ok: false, reason: 'replayed' }); // same index as #399
      const fresh = (await libsrtp(suite, key, 'protect', stream(0x0bad_cafe).slice(0, 1))).map(ok)[0]!;
      fresh[20]! ^= 0x80;
      const other = new SrtpContext({ suite, localKeySalt: generateKeySalt(), remoteKeySalt: key });
      expect(other.unprotectRtp(fresh)).toEqual({ ok: false, reason: 'auth-failed' });
    });

    it(`${suite}: we protect, libsrtp unprotects, byte for byte what libsrtp itself sends`, async () => {
      const key = generateKeySalt();
      const plain = stream(0x1234_5678);
      const us = new SrtpContext({ suite, localKeySalt: key, remoteKeySalt: generateKeySalt() });
      const wire = plain.map((p) => us.protectRtp(p));
      const back = await libsrtp(suite, key, 'unprotect', [...wire, wire[10]!]);
      expect(back.slice(0, 400).map(ok)).toEqual(plain);
      // libsrtp's replay check refuses our duplicate too
      expect(back[400]).toEqual({ error: expect.stringMatching(/replay/) });
      const theirs = (await libsrtp(suite, key, 'protect', plain)).map(ok);
      expect(wire).toEqual(theirs);
    });

    it(`${suite}: SRTCP both ways (80-bit tag under both suites)`, async () => {
      const key = generateKeySalt();
      const packets = Array.from({ length: 5 }, (_, n) => rtcp(0x0bad_cafe, n));
      const fromLibsrtp = (await libsrtp(suite, key, 'protect_rtcp', packets)).map(ok);
      expect(fromLibsrtp[0]!.length).toBe(packets[0]!.length + 4 + 10);
      const us = new SrtpContext({ suite, localKeySalt: key, remoteKeySalt: key });
      expect(fromLibsrtp.map((p) => us.unprotectRtcp(p))).toEqual(
        packets.map((packet) => ({ ok: true, packet })),
      );
      const ours = packets.map((p) => us.protectRtcp(p));
      const back = await libsrtp(suite, key, 'unprotect_rtcp', ours);
      expect(back.map(ok)).toEqual(packets);
    });
  }
});
