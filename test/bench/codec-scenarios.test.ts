/**
 * The codec-capacity load generator's half of each call, against the bot's
 * own code: its offer negotiated by negotiateAnswer under `--srtp optional`
 * and the default codec preference gives the scenario's codec and transport;
 * its SRTP (a SrtpContext per call, keys from the offer and the answer)
 * unprotects on the bot's side; and the Opus stream it sends is recorded by
 * the bot's ReceivePath bit for bit as the bench expects. Synthetic audio:
 * the bench's real speech file is a Debian package this test must not need.
 */
import { describe, expect, it } from 'vitest';
import {
  buildOffer,
  codecOfScenario,
  encodeStream,
  loopSpeech,
  readAnswer,
  SCENARIOS,
  srtpOfScenario,
  verifyRecording,
  WIRE,
} from '../../bench/codec-scenarios.js';
import { loadOpus } from '../../src/media/opus.js';
import { ReceivePath } from '../../src/media/receive-path.js';
import { serializeRtp } from '../../src/rtp/packet.js';
import { generateKeySalt, SrtpContext } from '../../src/rtp/srtp.js';
import { negotiateAnswer } from '../../src/sdp/negotiate.js';

/** 1 s of a voiced, syllabic test signal at 16 kHz. */
function voice(): Int16Array {
  return Int16Array.from({ length: 16000 }, (_, i) => {
    const t = i / 16000;
    const envelope = 0.5 + 0.5 * Math.sin(2 * Math.PI * 3 * t);
    return Math.round(
      6000 * envelope * (Math.sin(2 * Math.PI * 180 * t) + 0.5 * Math.sin(2 * Math.PI * 720 * t)),
    );
  });
}

describe('codec-capacity load generator', () => {
  for (const scenario of SCENARIOS) {
    it(`${scenario}: the bot answers the offer with the scenario's codec and transport, and our SRTP unprotects there`, () => {
      const ours = generateKeySalt();
      const offer = buildOffer({
        scenario,
        address: '127.0.0.1',
        port: 41000,
        sessionId: '7',
        keySalt: ours,
      });
      const result = negotiateAnswer(offer, {
        address: '127.0.0.1',
        port: 42000,
        sessionId: '1',
        sessionVersion: 1,
        srtp: 'optional',
      });
      if (!result.ok) throw new Error(`negotiation failed: ${result.reason}`);
      const codec = codecOfScenario(scenario);
      expect(result.media.codec).toBe(codec);
      expect(result.media.payloadType).toBe(WIRE[codec].payloadType);
      expect(result.media.sampleRate).toBe(WIRE[codec].sampleRate);
      expect(result.media.rtcp?.mux).toBe(true);
      const answer = readAnswer(scenario, result.answer);
      expect(answer).toMatchObject({ address: '127.0.0.1', port: 42000 });
      if (!srtpOfScenario(scenario)) {
        expect(result.media.srtp).toBeUndefined();
        return;
      }
      const keys = result.media.srtp!;
      expect(keys.remoteKeySalt.equals(ours)).toBe(true);
      expect(answer.keySalt?.equals(keys.localKeySalt)).toBe(true);
      const caller = new SrtpContext({
        suite: keys.suite,
        localKeySalt: ours,
        remoteKeySalt: answer.keySalt!,
      });
      const bot = new SrtpContext({
        suite: keys.suite,
        localKeySalt: keys.localKeySalt,
        remoteKeySalt: keys.remoteKeySalt,
      });
      // Across a sequence wrap: the index (and so the keystream) changes per packet.
      for (let k = 0; k < 40; k++) {
        const plain = serializeRtp({
          payloadType: WIRE[codec].payloadType,
          sequenceNumber: (65_520 + k) & 0xffff,
          timestamp: k * WIRE[codec].ticksPerFrame,
          ssrc: 0x0bad_cafe,
          payload: Uint8Array.from({ length: 60 }, (_, i) => (i * 7 + k) & 0xff),
        });
        const r = bot.unprotectRtp(caller.protectRtp(plain));
        expect(r.ok && r.packet.equals(plain)).toBe(true);
      }
      expect(bot.stats).toMatchObject({ rtpUnprotected: 40, rtpAuthFailed: 0 });
      caller.close();
      bot.close();
    });
  }

  it('the Opus stream, received in order by the bot’s ReceivePath at 16 kHz, is recorded exactly as expected', async () => {
    await loadOpus();
    const stream = encodeStream('opus', loopSpeech(voice(), 100));
    expect(stream.payloads).toHaveLength(100);
    const source = { address: '127.0.0.1', port: 41000 };
    const path = new ReceivePath({
      media: { codec: 'opus', payloadType: 111, clockRate: 48000 },
      sampleRate: 16000,
      expected: source,
      frameSamples: 320,
      recordingDelaySamples: 16000,
    });
    const recorded: Int16Array[] = [];
    const sink = (frame: Int16Array) => recorded.push(frame.slice());
    const start = 1600; // the first packet arrives 100 ms into the call
    for (let k = 0; k < stream.payloads.length; k++) {
      const now = start + k * 320 + (k % 5);
      const packet = serializeRtp({
        payloadType: 111,
        sequenceNumber: 100 + k,
        timestamp: 5000 + k * 960,
        ssrc: 0x1234,
        payload: stream.payloads[k]!,
      });
      path.receive(packet, source.address, source.port, now);
      path.pullRecording(now, sink);
    }
    path.flush(start + 101 * 320 + 16000, sink);
    const wav = new Int16Array(recorded.reduce((n, f) => n + f.length, 0));
    let at = 0;
    for (const f of recorded) {
      wav.set(f, at);
      at += f.length;
    }
    expect(path.stats).toMatchObject({ lost: 0, late: 0, plcMs: 0, fecMs: 0 });
    expect(verifyRecording(wav, stream.expected, 320).verdict).toBe('exact');
    // And a recording missing one frame is not.
    const damaged = wav.slice();
    damaged.fill(0, start + 40 * 320, start + 41 * 320);
    expect(verifyRecording(damaged, stream.expected, 320).verdict).not.toBe('exact');
  });
});
