/**
 * The contract for wiring SRTP in front of the receive path: only what
 * SrtpContext.unprotectRtp returns as `ok` goes to ReceivePath. Tampered,
 * replayed and wrongly keyed packets are counted by the SRTP context and
 * never become audio in the recording.
 */
import { describe, expect, it } from 'vitest';
import { encodeUlaw } from '../../src/media/g711.js';
import { ReceivePath } from '../../src/media/receive-path.js';
import { serializeRtp } from '../../src/rtp/packet.js';
import { generateKeySalt, SrtpContext } from '../../src/rtp/srtp.js';

const SOURCE = { address: '192.0.2.10', port: 40000 };

function packet(seq: number, sample: number): Buffer {
  return serializeRtp({
    payloadType: 0,
    sequenceNumber: seq,
    timestamp: seq * 160,
    ssrc: 0x5eed,
    payload: new Uint8Array(160).fill(encodeUlaw(sample)),
  });
}

describe('SRTP in front of ReceivePath', () => {
  it('records only packets that authenticate; the rest is counted, not heard', () => {
    const ourKey = generateKeySalt();
    const theirKey = generateKeySalt();
    const far = new SrtpContext({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      localKeySalt: theirKey,
      remoteKeySalt: ourKey,
    });
    const stranger = new SrtpContext({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      localKeySalt: generateKeySalt(),
      remoteKeySalt: ourKey,
    });
    const us = new SrtpContext({
      suite: 'AES_CM_128_HMAC_SHA1_80',
      localKeySalt: ourKey,
      remoteKeySalt: theirKey,
    });
    const path = new ReceivePath({ media: { codec: 'PCMU', payloadType: 0 }, expected: SOURCE });

    const QUIET = 100;
    const LOUD = 20_000;
    // [datagram, arrival on the timeline in samples]: each packet in its 20 ms slot
    const arrivals: Array<[Buffer, number]> = [];
    for (let seq = 1000; seq < 1050; seq++) {
      const genuine = far.protectRtp(packet(seq, QUIET));
      const now = 800 + (seq - 1000) * 160;
      arrivals.push([genuine, now]);
      if (seq % 5 === 0) {
        // an attacker's loud packets: the same one replayed, one tampered, one under another key
        const tampered = Buffer.from(far.protectRtp(packet(seq + 100, LOUD)));
        tampered[20]! ^= 0x55;
        arrivals.push([genuine, now], [tampered, now], [stranger.protectRtp(packet(seq + 1, LOUD)), now]);
      }
    }

    let peak = 0;
    let audioFrames = 0;
    const sink = (frame: Int16Array, info: { audio: boolean }) => {
      if (info.audio) audioFrames++;
      for (const s of frame) peak = Math.max(peak, Math.abs(s));
    };
    arrivals.forEach(([datagram, now]) => {
      const r = us.unprotectRtp(datagram);
      if (r.ok) path.receive(r.packet, SOURCE.address, SOURCE.port, now);
      path.pullRecording(now, sink);
    });
    path.flush(800 + 60 * 160 + 2000, sink, () => {});

    expect(us.stats).toMatchObject({ rtpUnprotected: 50, rtpReplayed: 10, rtpAuthFailed: 20 });
    expect(path.stats).toMatchObject({ received: 50, duplicate: 0, invalid: 0 });
    expect(audioFrames).toBeGreaterThanOrEqual(50);
    // nothing loud was ever played out
    expect(peak).toBeLessThan(200);
  });
});

describe('from negotiation to SRTP contexts', () => {
  it('the SrtpKeys of each side make the SrtpContext that talks to the other', async () => {
    const { createOffer, negotiateAnswer, acceptAnswer } = await import('../../src/sdp/negotiate.js');
    const base = { sessionId: '1', sessionVersion: 1, srtp: 'required' as const };
    const offer = createOffer({ ...base, address: '192.0.2.1', port: 40000 });
    const answer = negotiateAnswer(offer, { ...base, address: '192.0.2.2', port: 50000 });
    if (!answer.ok) throw new Error(answer.reason);
    const accepted = acceptAnswer(offer, answer.answer);
    if (!accepted.ok) throw new Error(accepted.reason);
    const offerer = new SrtpContext(accepted.media.srtp!);
    const answerer = new SrtpContext(answer.media.srtp!);
    const p = packet(7, 1000);
    expect(answerer.unprotectRtp(offerer.protectRtp(p))).toEqual({ ok: true, packet: p });
    expect(offerer.unprotectRtp(answerer.protectRtp(p))).toEqual({ ok: true, packet: p });
  });
});
