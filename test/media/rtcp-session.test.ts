import dgram from 'node:dgram';
import { EventEmitter, once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RtcpSession, type RtcpSessionOptions, type RtcpSocket } from '../../src/media/rtcp-session.js';
import { serializeRtp } from '../../src/rtp/packet.js';
import { buildCompound, parseRtcp, type RtcpPacket } from '../../src/rtp/rtcp.js';
import { generateKeySalt, SrtpContext } from '../../src/rtp/srtp.js';

const LOOPBACK = '127.0.0.1';
const A_SSRC = 0xaaaa_0001;
const B_SSRC = 0xbbbb_0002;

async function udp(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, LOOPBACK, () => resolve()));
  return s;
}

const port = (s: dgram.Socket) => s.address().port;
const sessions: RtcpSession[] = [];
const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.close({ bye: false });
  for (const s of sockets.splice(0)) {
    try {
      s.close();
    } catch {
      // closed by its session
    }
  }
});

function session(options: RtcpSessionOptions): RtcpSession {
  const s = new RtcpSession(options);
  sessions.push(s);
  return s;
}

/** A controllable wall clock per side (ms). */
function clock(start: number) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** Two ends of one call on loopback, each with its own RTCP socket; SRTCP when `secure`. */
async function pair(secure: boolean) {
  const [sa, sb] = [await udp(), await udp()];
  sockets.push(sa, sb);
  const ka = generateKeySalt();
  const kb = generateKeySalt();
  const srtpA = secure
    ? new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_80', localKeySalt: ka, remoteKeySalt: kb })
    : undefined;
  const srtpB = secure
    ? new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_80', localKeySalt: kb, remoteKeySalt: ka })
    : undefined;
  const clockA = clock(1_000_000);
  const clockB = clock(7_000_000);
  const a = session({
    socket: sa,
    mux: false,
    remote: { address: LOOPBACK, port: port(sb) },
    ssrc: A_SSRC,
    cname: 'a@test',
    // A sends RTP: SRs
    sending: () => ({ packetCount: 500, octetCount: 80_000, rtpTimestamp: 123_456 }),
    reception: () => ({
      ssrc: B_SSRC,
      extendedHighestSeq: 70_000,
      expected: 1000,
      received: 1000,
      jitter: 0,
    }),
    now: clockA.now,
    ...(srtpA ? { srtp: srtpA } : {}),
  });
  const b = session({
    socket: sb,
    mux: false,
    remote: { address: LOOPBACK, port: port(sa) },
    ssrc: B_SSRC,
    cname: 'b@test',
    // B only receives: RRs, 10 % of A's stream lost, 80 samples of jitter
    reception: () => ({ ssrc: A_SSRC, extendedHighestSeq: 5099, expected: 100, received: 90, jitter: 80 }),
    now: clockB.now,
    ...(srtpB ? { srtp: srtpB } : {}),
  });
  return { a, b, sa, sb, clockA, clockB, srtpA, srtpB };
}

describe('RtcpSession: two ends of a call', () => {
  for (const secure of [false, true]) {
    it(`${secure ? 'SRTCP' : 'RTCP'}: SR and RR both ways give the far end's loss, jitter and the round trip`, async () => {
      const { a, b, clockA, clockB } = await pair(secure);
      // A's SR at A-time 1 000 000 ms
      const gotSr = once(b, 'report') as Promise<[RtcpPacket[]]>;
      a.sendReport();
      const [srPackets] = await gotSr;
      expect(srPackets.map((p) => p.type)).toEqual(['sr', 'sdes']);
      expect(srPackets[0]).toMatchObject({
        ssrc: A_SSRC,
        sender: { packetCount: 500, octetCount: 80_000, rtpTimestamp: 123_456 },
      });
      expect(b.stats.srReceived).toBe(1);
      // B holds it 250 ms, then reports: LSR echoes A's SR, DLSR = 250 ms; it reaches A
      // 400 ms after A sent its SR, so the round trip is 400 − 250 = 150 ms.
      clockB.t += 250;
      clockA.t += 400;
      const gotRr = once(a, 'report') as Promise<[RtcpPacket[]]>;
      b.sendReport();
      const [rrPackets] = await gotRr;
      expect(rrPackets[0]).toMatchObject({
        type: 'rr',
        ssrc: B_SSRC,
        reports: [{ ssrc: A_SSRC, fractionLost: 25, cumulativeLost: 10, jitter: 80, dlsr: 0x4000 }],
      });
      const s = a.stats;
      expect(s.rrReceived).toBe(1);
      expect(s.rttMs).toBeCloseTo(150, 0);
      expect(s.farEndLoss).toBeCloseTo(25 / 256, 6);
      expect(s.farEndCumulativeLost).toBe(10);
      expect(s.farEndJitterMs).toBe(10); // 80 samples at 8 kHz
      expect(s.rtcpInvalid).toBe(0);
    });
  }

  it('says BYE on close (RFC 3550 6.6), closes its own socket, and is idempotent', async () => {
    const { a, b, sa } = await pair(true);
    const bye = once(b, 'bye');
    const socketClosed = once(sa, 'close');
    const final = a.close({ reason: 'call ended' });
    expect(await bye).toEqual([{ ssrcs: [A_SSRC], reason: 'call ended' }]);
    expect(b.stats.byeReceived).toBe(1);
    expect(final.reportsSent).toBe(1);
    expect(a.close()).toEqual(final);
    expect(a.closed).toBe(true);
    await socketClosed; // closed once the BYE had left
  });

  it('drops and counts tampered, replayed, invalid and foreign RTCP; none reaches the statistics', async () => {
    const { b, sb, srtpA } = await pair(true);
    const intruder = await udp();
    const sender = await udp();
    sockets.push(intruder, sender);
    // sender shares A's address (loopback) but not its port; intruder too: same IP, so not "foreign".
    const rr = buildCompound({
      ssrc: A_SSRC,
      cname: 'a',
      reports: [
        {
          ssrc: B_SSRC,
          fractionLost: 255,
          cumulativeLost: 99,
          extendedHighestSeq: 1,
          jitter: 1,
          lsr: 0,
          dlsr: 0,
        },
      ],
    });
    const good = srtpA!.protectRtcp(rr);
    const tampered = Buffer.from(good);
    tampered[12]! ^= 1;
    const send = (s: dgram.Socket, d: Buffer) => s.send(d, port(sb), LOOPBACK);
    const reported = once(b, 'report');
    send(sender, tampered);
    send(sender, Buffer.from('hello, not RTCP at all'));
    send(sender, good);
    await reported;
    const replayed = once(b, 'report');
    send(sender, good); // replay
    const fresh = srtpA!.protectRtcp(rr);
    send(sender, fresh);
    await replayed;
    expect(b.stats).toMatchObject({ srtcpAuthFailed: 1, srtcpReplayed: 1, rtcpInvalid: 1, rrReceived: 2 });
  });

  it('counts RTCP from another address as foreign', async () => {
    const s = await udp();
    const other = await udp();
    sockets.push(s, other);
    const x = session({
      socket: s,
      mux: false,
      remote: { address: '192.0.2.1', port: 40001 },
      ssrc: 1,
      reception: () => undefined,
    });
    const seen = once(s, 'message');
    other.send(buildCompound({ ssrc: 2, cname: 'c' }), port(s), LOOPBACK);
    await seen;
    expect(x.stats).toMatchObject({ rtcpForeign: 1, rrReceived: 0 });
  });
});

describe('RtcpSession with rtcp-mux (RFC 5761)', () => {
  it('takes only RTCP from the shared RTP socket, answers to where it came from, and leaves the socket open', async () => {
    const rtpSocket = await udp();
    const far = await udp();
    sockets.push(rtpSocket, far);
    const s = session({
      socket: rtpSocket,
      mux: true,
      // the SDP said port 9 (nothing listens); the far end's RTCP comes from `far`
      remote: { address: LOOPBACK, port: 9 },
      ssrc: A_SSRC,
      reception: () => ({ ssrc: B_SSRC, extendedHighestSeq: 10, expected: 10, received: 10, jitter: 0 }),
    });
    const got = once(s, 'report');
    far.send(
      serializeRtp({
        payloadType: 0,
        sequenceNumber: 1,
        timestamp: 1,
        ssrc: B_SSRC,
        payload: new Uint8Array(160),
      }),
      port(rtpSocket),
      LOOPBACK,
    );
    far.send(buildCompound({ ssrc: B_SSRC, cname: 'far' }), port(rtpSocket), LOOPBACK);
    await got;
    expect(s.stats).toMatchObject({ rrReceived: 1, rtcpInvalid: 0 });
    // our report goes back to the port the far end's RTCP came from (latched)
    const back = once(far, 'message') as Promise<[Buffer]>;
    s.sendReport();
    const [report] = await back;
    const parsed = parseRtcp(report);
    expect(parsed.ok && parsed.packets[0]).toMatchObject({
      type: 'rr',
      ssrc: A_SSRC,
      reports: [{ ssrc: B_SSRC }],
    });
    s.close({ bye: false });
    expect(rtpSocket.address().port).toBeGreaterThan(0); // still open: MediaSession's
  });
});

describe('RtcpSession: the report timer (RFC 3550 6.3)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  class FakeSocket extends EventEmitter implements RtcpSocket {
    sent: Buffer[] = [];
    closed = false;
    send(msg: Uint8Array, _port: number, _address: string, callback?: (error: Error | null) => void): void {
      this.sent.push(Buffer.from(msg));
      callback?.(null);
    }
    close(): void {
      this.closed = true;
    }
  }

  it('reports after half the interval first, then at the full randomized interval, SR only while sending', () => {
    vi.useFakeTimers();
    const socket = new FakeSocket();
    let sent = 0;
    const s = new RtcpSession({
      socket,
      mux: false,
      remote: { address: '192.0.2.1', port: 40001 },
      ssrc: 5,
      reception: () => undefined,
      sending: () => ({ packetCount: sent, octetCount: sent * 160, rtpTimestamp: sent * 160 }),
      random: () => 0.5,
    });
    const first = 2500 / (Math.E - 1.5); // 2052 ms
    vi.advanceTimersByTime(first - 1);
    expect(socket.sent).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(socket.sent).toHaveLength(1);
    const types = (i: number) => {
      const r = parseRtcp(socket.sent[i]!);
      return r.ok ? r.packets.map((p) => p.type) : [];
    };
    expect(types(0)).toEqual(['rr', 'sdes']); // nothing sent yet
    sent = 250;
    vi.advanceTimersByTime(5000 / (Math.E - 1.5));
    expect(socket.sent).toHaveLength(2);
    expect(types(1)).toEqual(['sr', 'sdes']);
    // 6.4: SR while we sent since the report before last; then, sending stopped, RR again
    vi.advanceTimersByTime(5000 / (Math.E - 1.5));
    expect(types(2)).toEqual(['sr', 'sdes']);
    vi.advanceTimersByTime(5000 / (Math.E - 1.5));
    expect(types(3)).toEqual(['rr', 'sdes']);
    s.close();
    expect(types(4)).toEqual(['rr', 'sdes', 'bye']);
    expect(socket.closed).toBe(true);
    vi.advanceTimersByTime(60_000);
    expect(socket.sent).toHaveLength(5);
  });

  it('sends nothing while it has nowhere to send, and stops when its SRTP context is closed', () => {
    vi.useFakeTimers();
    const socket = new FakeSocket();
    const srtp = new SrtpContext({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      localKeySalt: generateKeySalt(),
      remoteKeySalt: generateKeySalt(),
    });
    const s = new RtcpSession({
      socket,
      mux: false,
      ssrc: 5,
      reception: () => undefined,
      srtp,
      random: () => 0,
    });
    vi.advanceTimersByTime(20_000);
    expect(socket.sent).toHaveLength(0);
    s.setRemote({ address: '192.0.2.1', port: 40001 });
    vi.advanceTimersByTime(7000);
    expect(socket.sent.length).toBeGreaterThan(0);
    // SRTCP: E flag set, 80-bit tag
    const last = socket.sent.at(-1)!;
    expect(last.readUInt32BE(last.length - 14) >>> 31).toBe(1);
    const count = socket.sent.length;
    srtp.close();
    vi.advanceTimersByTime(20_000);
    expect(socket.sent).toHaveLength(count);
    s.close();
  });
});
