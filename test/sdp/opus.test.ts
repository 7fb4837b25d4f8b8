import { parse } from 'sdp-transform';
import { describe, expect, it } from 'vitest';
import { OPUS_FIRST_CODECS } from '../../src/media/codec.js';
import {
  acceptAnswer,
  createOffer,
  type LocalMedia,
  type NegotiatedMedia,
  type NegotiationResult,
  negotiateAnswer,
  parseOpusFmtp,
} from '../../src/sdp/index.js';

const LOCAL: LocalMedia = {
  address: '192.0.2.10',
  port: 40000,
  sessionId: '1234567890',
  sessionVersion: 1,
  codecs: [...OPUS_FIRST_CODECS],
};

const sdp = (...lines: string[]): string => lines.join('\r\n') + '\r\n';
const head = ['v=0', 'o=- 111 222 IN IP4 203.0.113.5', 's=-', 'c=IN IP4 203.0.113.5', 't=0 0'];

/**
 * What RingCentral's edge offers (from an INVITE its SDK team published),
 * with the plain RTP profile: Opus twice (its own OPUS/16000 first, then
 * RFC 7587's opus/48000/2), G.729, G.711, G.722, iLBC, telephone-event/8000.
 */
const RC_OPUS_OFFER = sdp(
  ...head,
  'm=audio 29768 RTP/AVP 109 111 18 0 8 9 96 101',
  'a=rtpmap:109 OPUS/16000',
  'a=fmtp:109 useinbandfec=1',
  'a=rtcp-fb:109 ccm tmmbr',
  'a=rtpmap:111 OPUS/48000/2',
  'a=fmtp:111 useinbandfec=1',
  'a=rtpmap:18 g729/8000',
  'a=fmtp:18 annexb=no',
  'a=rtpmap:0 pcmu/8000',
  'a=rtpmap:8 pcma/8000',
  'a=rtpmap:9 g722/8000',
  'a=rtpmap:96 ilbc/8000',
  'a=fmtp:96 mode=20',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'a=sendrecv',
);

/** A WebRTC-style offer: opus/48000/2 with stereo, telephone-event at both rates. */
const WEBRTC_OFFER = sdp(
  ...head,
  'm=audio 20000 RTP/AVP 111 0 110 101',
  'a=rtpmap:111 opus/48000/2',
  'a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:110 telephone-event/48000',
  'a=rtpmap:101 telephone-event/8000',
  'a=sendrecv',
);

function ok(result: NegotiationResult): { answer: string; media: NegotiatedMedia } {
  if (!result.ok) throw new Error(`negotiation failed: ${result.status} ${result.reason}`);
  return result;
}

function audioLines(answer: string): string[] {
  return answer.split('\r\n').filter((l) => l.startsWith('m=') || l.startsWith('a='));
}

describe('negotiateAnswer with Opus (RFC 7587)', () => {
  it("takes RingCentral's OPUS/16000 (its first Opus, 16 kHz RTP clock), FEC both ways", () => {
    const { answer, media } = ok(negotiateAnswer(RC_OPUS_OFFER, LOCAL));
    expect(media).toMatchObject({
      codec: 'opus',
      payloadType: 109,
      clockRate: 16000,
      sampleRate: 16000,
      fec: true,
      telephoneEventPt: 101,
      ptime: 20,
    });
    expect(media.telephoneEventRate).toBeUndefined(); // 8000
    expect(audioLines(answer)).toEqual([
      'm=audio 40000 RTP/AVP 109 101',
      'a=rtpmap:109 opus/16000',
      'a=fmtp:109 maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1',
      'a=rtpmap:101 telephone-event/8000',
      'a=fmtp:101 0-15',
      'a=sendrecv',
    ]);
    expect(parse(answer).media[0]!.fmtp[0]).toMatchObject({ payload: 109 });
  });

  it('answers opus/48000/2 as RFC 7587 says: 48 kHz clock, two channels in the rtpmap, decoded as mono', () => {
    const { answer, media } = ok(negotiateAnswer(WEBRTC_OFFER, LOCAL));
    expect(media).toMatchObject({ codec: 'opus', payloadType: 111, clockRate: 48000, sampleRate: 16000 });
    // A stereo preference is noted for the encoder; we still send and decode mono (RFC 7587 7.1).
    expect(media.opus).toMatchObject({ stereo: true, useInbandFec: true, minPtime: 10 });
    expect(answer).toContain('a=rtpmap:111 opus/48000/2\r\n');
    expect(answer).not.toMatch(/stereo=1/);
    // RFC 4733 2.1: telephone-event at the codec's clock rate when offered.
    expect(media).toMatchObject({ telephoneEventPt: 110, telephoneEventRate: 48000 });
    expect(answer).toContain('m=audio 40000 RTP/AVP 111 110\r\n');
    expect(answer).toContain('a=rtpmap:110 telephone-event/48000\r\n');
  });

  it('with PCMU chosen, takes the telephone-event at 8000 from the same offer', () => {
    const { media } = ok(negotiateAnswer(WEBRTC_OFFER, { ...LOCAL, codecs: ['PCMU'] }));
    expect(media).toMatchObject({ codec: 'PCMU', clockRate: 8000, sampleRate: 8000, telephoneEventPt: 101 });
    expect(media.opus).toBeUndefined();
  });

  it.each<[string, LocalMedia['codecs'], string, number]>([
    ['Opus preferred and offered', ['opus', 'PCMU', 'PCMA'], 'opus', 109],
    ['the user prefers PCMU', ['PCMU', 'opus'], 'PCMU', 0],
    ['the user order: PCMA, then Opus', ['PCMA', 'opus', 'PCMU'], 'PCMA', 8],
    ['the default: Opus whenever offered', undefined, 'opus', 109],
  ])('%s', (_name, codecs, codec, pt) => {
    const { media } = ok(negotiateAnswer(RC_OPUS_OFFER, { ...LOCAL, codecs }));
    expect(media).toMatchObject({ codec, payloadType: pt });
  });

  it('Opus first but not offered: the next codec in the user’s order', () => {
    const offer = sdp(...head, 'm=audio 20000 RTP/AVP 8 0', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:0 PCMU/8000');
    expect(ok(negotiateAnswer(offer, LOCAL)).media).toMatchObject({ codec: 'PCMU', sampleRate: 8000 });
    const only = negotiateAnswer(offer, { ...LOCAL, codecs: ['opus'] });
    expect(only).toMatchObject({ ok: false, status: 488, warnCode: 305 });
    expect(!only.ok && only.reason).toMatch(/supported opus\/48000\/2$/);
  });

  it.each([
    ['a clock rate Opus never uses', 'a=rtpmap:111 opus/44100/2'],
    ['three channels', 'a=rtpmap:111 opus/48000/3'],
  ])('refuses an Opus rtpmap with %s (and falls back to G.711)', (_name, rtpmap) => {
    const offer = sdp(...head, 'm=audio 20000 RTP/AVP 111 0', rtpmap, 'a=rtpmap:0 PCMU/8000');
    expect(ok(negotiateAnswer(offer, LOCAL)).media.codec).toBe('PCMU');
  });

  it('a dynamic payload type without rtpmap is never taken for Opus', () => {
    const offer = sdp(...head, 'm=audio 20000 RTP/AVP 111 0');
    expect(ok(negotiateAnswer(offer, LOCAL)).media.codec).toBe('PCMU');
  });

  it('reads an fmtp with odd spacing and case, ignoring what it cannot use', () => {
    const offer = sdp(
      ...head,
      'm=audio 20000 RTP/AVP 111',
      'a=rtpmap:111 OPUS/48000/2',
      'a=fmtp:111 MaxPlaybackRate = 16000 ;  USEINBANDFEC=1;Stereo=0; sprop-maxcapturerate=8000;bogus; cbr=2;ptime=40',
    );
    const { media, answer } = ok(negotiateAnswer(offer, LOCAL));
    expect(media.opus).toEqual({
      maxPlaybackRate: 16000,
      spropMaxCaptureRate: 8000,
      stereo: false,
      useInbandFec: true,
      useDtx: false,
      cbr: false, // 2 is not a flag: the default
      ptime: 40,
    });
    // The sender captures narrowband only: a 16 kHz recording would hold nothing more.
    expect(media.sampleRate).toBe(8000);
    expect(answer).toContain('a=fmtp:111 maxplaybackrate=8000;sprop-maxcapturerate=8000;useinbandfec=1\r\n');
    // RFC 7587 6.1: ptime as an fmtp parameter counts when there is no a=ptime.
    expect(media.ptime).toBe(40);
  });

  it('without useinbandfec=1 the far end cannot use FEC: fec false (we still decode any it sends)', () => {
    const offer = sdp(...head, 'm=audio 20000 RTP/AVP 111', 'a=rtpmap:111 opus/48000/2');
    const { media, answer } = ok(negotiateAnswer(offer, LOCAL));
    expect(media).toMatchObject({ fec: false, sampleRate: 16000 });
    expect(media.opus).toMatchObject({ maxPlaybackRate: 48000, useInbandFec: false });
    expect(answer).toContain('useinbandfec=1');
  });

  it.each([40, 60])('a=ptime:%i is kept and echoed (one packet then holds several 20 ms frames)', (ptime) => {
    const offer = sdp(...head, 'm=audio 20000 RTP/AVP 111', 'a=rtpmap:111 opus/48000/2', `a=ptime:${ptime}`);
    const { media, answer } = ok(negotiateAnswer(offer, LOCAL));
    expect(media.ptime).toBe(ptime);
    expect(answer).toContain(`a=ptime:${ptime}\r\n`);
  });

  it('--sample-rate 8000 decodes Opus at 8 kHz and asks the far end for no more', () => {
    const { media, answer } = ok(negotiateAnswer(WEBRTC_OFFER, { ...LOCAL, sampleRate: 8000 }));
    expect(media.sampleRate).toBe(8000);
    expect(answer).toContain('a=fmtp:111 maxplaybackrate=8000;sprop-maxcapturerate=8000;useinbandfec=1\r\n');
    // A G.711 call stays 8 kHz whatever is forced: the sinks resample if they want.
    const g711 = negotiateAnswer(WEBRTC_OFFER, { ...LOCAL, codecs: ['PCMU'], sampleRate: 16000 });
    expect(ok(g711).media.sampleRate).toBe(8000);
  });
});

describe('parseOpusFmtp', () => {
  it('defaults (RFC 7587 6.1)', () => {
    expect(parseOpusFmtp(undefined)).toEqual({
      maxPlaybackRate: 48000,
      stereo: false,
      useInbandFec: false,
      useDtx: false,
      cbr: false,
    });
  });

  it.each([
    ['maxplaybackrate=4000', {}],
    ['maxplaybackrate=96000', {}],
    ['maxplaybackrate=16000.5', {}],
    ['maxplaybackrate=-8000', {}],
    ['maxaveragebitrate=20000', { maxAverageBitrate: 20000 }],
    ['maxaveragebitrate=1000', {}],
    ['usedtx=1;cbr=1', { useDtx: true, cbr: true }],
    ['useinbandfec=yes', {}],
    ['minptime=10;maxptime=120', { minPtime: 10, maxPtime: 120 }],
    ['=1;;useinbandfec', {}],
  ])('%j', (config, expected) => {
    expect(parseOpusFmtp(config)).toEqual({ ...parseOpusFmtp(undefined), ...expected });
  });
});

describe('our offer with Opus', () => {
  it('is what we offer by default (no codecs given)', () => {
    const { codecs: _, ...defaults } = LOCAL;
    expect(audioLines(createOffer(defaults))[0]).toBe('m=audio 40000 RTP/AVP 111 0 8 101');
  });

  it('lists Opus first as opus/48000/2 with our fmtp, then G.711', () => {
    const offer = createOffer(LOCAL);
    expect(audioLines(offer)).toEqual([
      'm=audio 40000 RTP/AVP 111 0 8 101',
      'a=rtpmap:111 opus/48000/2',
      'a=fmtp:111 maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1',
      'a=rtpmap:0 PCMU/8000',
      'a=rtpmap:8 PCMA/8000',
      'a=rtpmap:101 telephone-event/8000',
      'a=fmtp:101 0-15',
      'a=rtcp-mux',
      'a=ptime:20',
      'a=sendrecv',
    ]);
    expect(parse(offer).media[0]!.rtp[0]).toMatchObject({
      payload: 111,
      codec: 'opus',
      rate: 48000,
      encoding: 2,
    });
  });

  it('round-trips through our own answerer: both sides agree on Opus at 48 kHz clock, 16 kHz working rate', () => {
    const offer = createOffer(LOCAL);
    const remote = ok(negotiateAnswer(offer, { ...LOCAL, address: '203.0.113.5', port: 20000 }));
    const accepted = acceptAnswer(offer, remote.answer);
    expect(accepted).toMatchObject({
      ok: true,
      media: {
        codec: 'opus',
        payloadType: 111,
        clockRate: 48000,
        sampleRate: 16000,
        fec: true,
        telephoneEventPt: 101,
        remoteAddress: '203.0.113.5',
      },
    });
    expect(remote.media).toMatchObject({ codec: 'opus', clockRate: 48000, sampleRate: 16000, fec: true });
  });

  it('an answer that picks G.711 from our Opus-first offer is accepted', () => {
    const offer = createOffer(LOCAL);
    const answer = sdp(...head, 'm=audio 20000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000');
    expect(acceptAnswer(offer, answer)).toMatchObject({
      ok: true,
      media: { codec: 'PCMU', sampleRate: 8000 },
    });
  });

  it('offering at 8 kHz (--sample-rate 8000) keeps 8 kHz when the answer comes', () => {
    const offer = createOffer({ ...LOCAL, sampleRate: 8000 });
    expect(offer).toContain('a=fmtp:111 maxplaybackrate=8000;sprop-maxcapturerate=8000;useinbandfec=1\r\n');
    const answer = sdp(...head, 'm=audio 20000 RTP/AVP 111', 'a=rtpmap:111 opus/48000/2');
    expect(acceptAnswer(offer, answer)).toMatchObject({
      ok: true,
      media: { codec: 'opus', sampleRate: 8000 },
    });
  });
});
