import { parse } from 'sdp-transform';
import { describe, expect, it } from 'vitest';
import {
  acceptAnswer,
  createOffer,
  type LocalMedia,
  localAddressProblem,
  type NegotiatedMedia,
  type NegotiationResult,
  negotiateAnswer,
} from '../../src/sdp/index.js';

/** G.711 only: this file is about the G.711 rules; Opus and the default preference are in opus.test.ts. */
const LOCAL: LocalMedia = {
  address: '192.0.2.10',
  port: 40000,
  sessionId: '1234567890',
  sessionVersion: 1,
  codecs: ['PCMU', 'PCMA'],
};

const sdp = (...lines: string[]): string => lines.join('\r\n') + '\r\n';
const head = (c = 'c=IN IP4 203.0.113.5') => ['v=0', 'o=- 111 222 IN IP4 203.0.113.5', 's=-', c, 't=0 0'];

/** What RingCentral's media servers typically offer. */
const RC_OFFER = sdp(
  ...head(),
  'm=audio 20000 RTP/AVP 0 8 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'a=sendrecv',
);

function ok(result: NegotiationResult): { answer: string; media: NegotiatedMedia } {
  if (!result.ok) throw new Error(`negotiation failed: ${result.status} ${result.reason}`);
  return result;
}

const base: NegotiatedMedia = {
  codec: 'PCMU',
  payloadType: 0,
  clockRate: 8000,
  sampleRate: 8000,
  fec: false,
  remoteAddress: '203.0.113.5',
  remotePort: 20000,
  ptime: 20,
  direction: 'sendrecv',
  onHold: false,
};

/** The media we expect, with RTCP where RFC 3550 11 puts it (RTP port + 1) unless the row says otherwise. */
function withRtcp(m: NegotiatedMedia): NegotiatedMedia {
  const port = m.remotePort > 0 ? m.remotePort + 1 : 0;
  return { rtcp: { address: m.remoteAddress, port, mux: false }, ...m };
}

describe('negotiateAnswer: codec and media table', () => {
  it.each<[string, string, Partial<NegotiatedMedia>]>([
    ['RingCentral offer', RC_OFFER, { telephoneEventPt: 101 }],
    ['PCMU only', sdp(...head(), 'm=audio 20000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000'), {}],
    [
      'PCMA only',
      sdp(...head(), 'm=audio 20000 RTP/AVP 8', 'a=rtpmap:8 PCMA/8000'),
      { codec: 'PCMA', payloadType: 8 },
    ],
    [
      'PCMA before PCMU: our preference wins',
      sdp(...head(), 'm=audio 20000 RTP/AVP 8 0', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:0 PCMU/8000'),
      {},
    ],
    ['static payload types without rtpmap', sdp(...head(), 'm=audio 20000 RTP/AVP 8 0'), {}],
    [
      'static PCMA without rtpmap',
      sdp(...head(), 'm=audio 20000 RTP/AVP 8'),
      { codec: 'PCMA', payloadType: 8 },
    ],
    [
      'lowercase codec names',
      sdp(
        ...head(),
        'm=audio 20000 RTP/AVP 0 101',
        'a=rtpmap:0 pcmu/8000',
        'a=rtpmap:101 TELEPHONE-EVENT/8000',
      ),
      { telephoneEventPt: 101 },
    ],
    [
      'PCMU on a dynamic payload type',
      sdp(
        ...head(),
        'm=audio 20000 RTP/AVP 110 96',
        'a=rtpmap:110 PCMU/8000',
        'a=rtpmap:96 telephone-event/8000',
      ),
      { payloadType: 110, telephoneEventPt: 96 },
    ],
    [
      'telephone-event on 96, with its fmtp',
      sdp(...head(), 'm=audio 20000 RTP/AVP 0 96', 'a=rtpmap:96 telephone-event/8000', 'a=fmtp:96 0-16'),
      { telephoneEventPt: 96 },
    ],
    [
      'telephone-event/48000 is not ours',
      sdp(...head(), 'm=audio 20000 RTP/AVP 0 110', 'a=rtpmap:110 telephone-event/48000'),
      {},
    ],
    [
      'rtpmap for a payload type not in the m= line is ignored',
      sdp(...head(), 'm=audio 20000 RTP/AVP 0', 'a=rtpmap:101 telephone-event/8000'),
      {},
    ],
    [
      'stereo PCMU is skipped',
      sdp(...head(), 'm=audio 20000 RTP/AVP 96 8', 'a=rtpmap:96 PCMU/8000/2'),
      { codec: 'PCMA', payloadType: 8 },
    ],
    ['a=ptime:30', sdp(...head(), 'm=audio 20000 RTP/AVP 0', 'a=ptime:30'), { ptime: 30 }],
    ['session-level a=ptime', sdp(...head(), 'a=ptime:40', 'm=audio 20000 RTP/AVP 0'), { ptime: 40 }],
    ['nonsense a=ptime is ignored', sdp(...head(), 'm=audio 20000 RTP/AVP 0', 'a=ptime:0'), {}],
    ['RTP/AVPF', sdp(...head(), 'm=audio 20000 RTP/AVPF 0'), {}],
    [
      'hostname in c=',
      sdp(...head('c=IN IP4 media01.sjc01.ringcentral.com'), 'm=audio 20000 RTP/AVP 0'),
      { remoteAddress: 'media01.sjc01.ringcentral.com' },
    ],
    [
      'media-level c= overrides session-level',
      sdp(...head(), 'm=audio 20000 RTP/AVP 0', 'c=IN IP4 198.51.100.7'),
      { remoteAddress: '198.51.100.7' },
    ],
    [
      'media-level c= only',
      sdp(
        'v=0',
        'o=- 1 1 IN IP4 203.0.113.5',
        's=-',
        't=0 0',
        'm=audio 20000 RTP/AVP 0',
        'c=IN IP4 198.51.100.7',
      ),
      { remoteAddress: '198.51.100.7' },
    ],
    [
      'IPv6 c=',
      sdp(...head('c=IN IP6 2001:db8::5'), 'm=audio 20000 RTP/AVP 0'),
      { remoteAddress: '2001:db8::5' },
    ],
    [
      'multicast TTL suffix removed',
      sdp(...head('c=IN IP4 233.252.0.1/127'), 'm=audio 20000 RTP/AVP 0'),
      { remoteAddress: '233.252.0.1' },
    ],
    ['LF line endings', RC_OFFER.replaceAll('\r\n', '\n'), { telephoneEventPt: 101 }],
    [
      'video + audio: audio is second',
      sdp(...head(), 'm=video 30000 RTP/AVP 96', 'a=rtpmap:96 H264/90000', 'm=audio 20000 RTP/AVP 0'),
      {},
    ],
    [
      'two audio m-lines: the first usable one',
      sdp(...head(), 'm=audio 20000 RTP/AVP 0', 'm=audio 20002 RTP/AVP 8'),
      {},
    ],
    [
      'first audio unusable (G729), second PCMA',
      sdp(...head(), 'm=audio 20000 RTP/AVP 18', 'm=audio 20002 RTP/AVP 8'),
      { codec: 'PCMA', payloadType: 8, remotePort: 20002 },
    ],
    [
      'SAVP audio next to an AVP one (best-effort SRTP)',
      sdp(
        ...head(),
        'm=audio 20000 RTP/SAVP 0',
        'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR',
        'm=audio 20002 RTP/AVP 0',
      ),
      { remotePort: 20002 },
    ],
    [
      'a disabled audio line before an active one',
      sdp(...head(), 'm=audio 0 RTP/AVP 0', 'm=audio 20002 RTP/AVP 0'),
      { remotePort: 20002 },
    ],
  ])('%s', (_, offer, expected) => {
    const { media, answer } = ok(negotiateAnswer(offer, LOCAL));
    expect(media).toEqual(withRtcp({ ...base, ...expected }));
    // every answer is valid SDP that sdp-transform reads back with one m-line per offered one
    const parsed = parse(answer);
    expect(parsed.media).toHaveLength(parse(offer).media.length);
  });
});

describe('negotiateAnswer: direction and hold', () => {
  it.each<[string, string[], Partial<NegotiatedMedia>, string]>([
    ['sendrecv (explicit)', ['m=audio 20000 RTP/AVP 0', 'a=sendrecv'], {}, 'sendrecv'],
    ['no direction = sendrecv', ['m=audio 20000 RTP/AVP 0'], {}, 'sendrecv'],
    [
      'sendonly → we recvonly, held',
      ['m=audio 20000 RTP/AVP 0', 'a=sendonly'],
      { direction: 'recvonly', onHold: true },
      'recvonly',
    ],
    [
      'recvonly → we sendonly',
      ['m=audio 20000 RTP/AVP 0', 'a=recvonly'],
      { direction: 'sendonly' },
      'sendonly',
    ],
    [
      'inactive → inactive, held',
      ['m=audio 20000 RTP/AVP 0', 'a=inactive'],
      { direction: 'inactive', onHold: true },
      'inactive',
    ],
    [
      'session-level sendonly',
      ['a=sendonly', 'm=audio 20000 RTP/AVP 0'],
      { direction: 'recvonly', onHold: true },
      'recvonly',
    ],
    [
      'media-level overrides session-level',
      ['a=sendonly', 'm=audio 20000 RTP/AVP 0', 'a=sendrecv'],
      {},
      'sendrecv',
    ],
    [
      'c=0.0.0.0 (RFC 2543 hold): we must not send',
      ['m=audio 20000 RTP/AVP 0', 'c=IN IP4 0.0.0.0'],
      { remoteAddress: '0.0.0.0', direction: 'recvonly', onHold: true },
      'recvonly',
    ],
    [
      'c=0.0.0.0 and sendonly',
      ['m=audio 20000 RTP/AVP 0', 'c=IN IP4 0.0.0.0', 'a=sendonly'],
      { remoteAddress: '0.0.0.0', direction: 'recvonly', onHold: true },
      'recvonly',
    ],
    [
      'c=0.0.0.0 and recvonly',
      ['m=audio 20000 RTP/AVP 0', 'c=IN IP4 0.0.0.0', 'a=recvonly'],
      { remoteAddress: '0.0.0.0', direction: 'inactive', onHold: true },
      'inactive',
    ],
    [
      'port 0 with a usable codec: disabled, not 488',
      ['m=audio 0 RTP/AVP 0'],
      { remotePort: 0, direction: 'inactive', onHold: true },
      'inactive',
    ],
  ])('%s', (_, body, expected, answerDirection) => {
    const { media, answer } = ok(negotiateAnswer(sdp(...head(), ...body), LOCAL));
    expect(media).toEqual(withRtcp({ ...base, ...expected }));
    expect(parse(answer).media[0]!.direction).toBe(answerDirection);
  });

  it('answers a disabled stream with port 0 (RFC 3264 8.2)', () => {
    const { answer } = ok(negotiateAnswer(sdp(...head(), 'm=audio 0 RTP/AVP 0'), LOCAL));
    expect(parse(answer).media[0]!.port).toBe(0);
  });
});

describe('negotiateAnswer: the answer SDP', () => {
  it('is exactly what we expect for the RingCentral offer', () => {
    const { answer } = ok(negotiateAnswer(RC_OFFER, LOCAL));
    expect(answer).toBe(
      sdp(
        'v=0',
        'o=rc-softphone 1234567890 1 IN IP4 192.0.2.10',
        's=rc-softphone',
        'c=IN IP4 192.0.2.10',
        't=0 0',
        'm=audio 40000 RTP/AVP 0 101',
        'a=rtpmap:0 PCMU/8000',
        'a=rtpmap:101 telephone-event/8000',
        'a=fmtp:101 0-15',
        'a=sendrecv',
      ),
    );
  });

  it('parses back with sdp-transform', () => {
    const { answer } = ok(negotiateAnswer(RC_OFFER, { ...LOCAL, username: 'bot', sessionVersion: 7 }));
    const s = parse(answer);
    expect(s.version).toBe(0);
    expect(s.origin).toMatchObject({
      username: 'bot',
      sessionId: 1234567890,
      sessionVersion: 7,
      address: '192.0.2.10',
    });
    expect(s.connection).toEqual({ version: 4, ip: '192.0.2.10' });
    expect(s.timing).toEqual({ start: 0, stop: 0 });
    expect(s.media).toHaveLength(1);
    const m = s.media[0]!;
    expect(m).toMatchObject({
      type: 'audio',
      port: 40000,
      protocol: 'RTP/AVP',
      payloads: '0 101',
      direction: 'sendrecv',
    });
    expect(m.rtp).toEqual([
      { payload: 0, codec: 'PCMU', rate: 8000 },
      { payload: 101, codec: 'telephone-event', rate: 8000 },
    ]);
    expect(m.fmtp).toEqual([{ payload: 101, config: '0-15' }]);
  });

  it('echoes the offerer fmtp and ptime, uses PCMA when configured first', () => {
    const offer = sdp(
      ...head(),
      'm=audio 20000 RTP/AVP 0 8 96',
      'a=rtpmap:96 telephone-event/8000',
      'a=fmtp:96 0-16',
      'a=ptime:30',
    );
    const { answer, media } = ok(negotiateAnswer(offer, { ...LOCAL, codecs: ['PCMA', 'PCMU'] }));
    expect(media).toMatchObject({ codec: 'PCMA', payloadType: 8, telephoneEventPt: 96, ptime: 30 });
    const m = parse(answer).media[0]!;
    expect(m.payloads).toBe('8 96');
    expect(m.ptime).toBe(30);
    expect(m.fmtp).toEqual([{ payload: 96, config: '0-16' }]);
    expect(m.rtp).toEqual([
      { payload: 8, codec: 'PCMA', rate: 8000 },
      { payload: 96, codec: 'telephone-event', rate: 8000 },
    ]);
  });

  it('answers without telephone-event when none was offered', () => {
    const { answer, media } = ok(negotiateAnswer(sdp(...head(), 'm=audio 20000 RTP/AVP 0'), LOCAL));
    expect(media.telephoneEventPt).toBeUndefined();
    const m = parse(answer).media[0]!;
    expect(m.payloads).toBe(0);
    expect(m.fmtp).toEqual([]);
    expect(m.ptime).toBeUndefined();
  });

  it('rejects every other m-line with port 0, same type, proto and one of its formats (RFC 3264 6)', () => {
    const offer = sdp(
      ...head(),
      'm=video 30000 RTP/AVP 96 97',
      'a=rtpmap:96 H264/90000',
      'm=audio 20000 RTP/SAVP 0',
      'm=audio 20002 RTP/AVP 0 101',
      'a=rtpmap:101 telephone-event/8000',
      'm=audio 20004 RTP/AVP 8',
      'm=application 5000 UDP/DTLS/SCTP webrtc-datachannel',
      'm=text 6000 RTP/AVP 98',
    );
    const { answer, media } = ok(negotiateAnswer(offer, LOCAL));
    expect(media).toMatchObject({ remotePort: 20002, codec: 'PCMU', telephoneEventPt: 101 });
    const lines = answer.split('\r\n').filter((l) => l.startsWith('m='));
    expect(lines).toEqual([
      'm=video 0 RTP/AVP 96',
      'm=audio 0 RTP/SAVP 0',
      'm=audio 40000 RTP/AVP 0 101',
      'm=audio 0 RTP/AVP 8',
      'm=application 0 UDP/DTLS/SCTP webrtc-datachannel',
      'm=text 0 RTP/AVP 98',
    ]);
    const parsed = parse(answer);
    expect(parsed.media.map((m) => [m.type, m.port, m.protocol])).toEqual([
      ['video', 0, 'RTP/AVP'],
      ['audio', 0, 'RTP/SAVP'],
      ['audio', 40000, 'RTP/AVP'],
      ['audio', 0, 'RTP/AVP'],
      ['application', 0, 'UDP/DTLS/SCTP'],
      ['text', 0, 'RTP/AVP'],
    ]);
    // attributes only for the accepted stream
    expect(parsed.media[2]!.direction).toBe('sendrecv');
    expect(parsed.media[0]!.rtp).toEqual([]);
  });

  it('uses IP6 for an IPv6 local address', () => {
    const { answer } = ok(negotiateAnswer(RC_OFFER, { ...LOCAL, address: '2001:db8::10' }));
    expect(answer).toContain('o=rc-softphone 1234567890 1 IN IP6 2001:db8::10\r\n');
    expect(answer).toContain('c=IN IP6 2001:db8::10\r\n');
    expect(parse(answer).connection).toEqual({ version: 6, ip: '2001:db8::10' });
  });
});

describe('negotiateAnswer: failures', () => {
  it.each<[string, string, 400 | 488, string]>([
    ['SAVP only → SRTP not supported', sdp(...head(), 'm=audio 20000 RTP/SAVP 0 8'), 488, 'SRTP'],
    ['SAVPF only', sdp(...head(), 'm=audio 20000 RTP/SAVPF 0'), 488, 'SRTP'],
    ['WebRTC profile', sdp(...head(), 'm=audio 9 UDP/TLS/RTP/SAVPF 111'), 488, 'SRTP'],
    ['G729 only (static)', sdp(...head(), 'm=audio 20000 RTP/AVP 18'), 488, 'G729'],
    [
      'G729 only (rtpmap)',
      sdp(
        ...head(),
        'm=audio 20000 RTP/AVP 18 101',
        'a=rtpmap:18 G729/8000',
        'a=rtpmap:101 telephone-event/8000',
      ),
      488,
      'offered G729/8000, telephone-event/8000',
    ],
    [
      'opus only',
      sdp(...head(), 'm=audio 20000 RTP/AVP 111', 'a=rtpmap:111 opus/48000/2'),
      488,
      'opus/48000',
    ],
    [
      'PCMU at 16 kHz',
      sdp(...head(), 'm=audio 20000 RTP/AVP 96', 'a=rtpmap:96 PCMU/16000'),
      488,
      'PCMU/16000',
    ],
    ['unknown dynamic PT', sdp(...head(), 'm=audio 20000 RTP/AVP 99'), 488, 'PT 99'],
    ['video only', sdp(...head(), 'm=video 30000 RTP/AVP 96'), 488, 'no audio'],
    ['no m= lines', sdp(...head()), 488, 'no audio'],
    ['audio over a non-RTP transport', sdp(...head(), 'm=audio 20000 udp 0'), 488, 'udp'],
    ['garbage', 'hello world', 400, 'v=0'],
    ['empty', '', 400, 'empty'],
    ['v=1', sdp('v=1', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 't=0 0', 'm=audio 1 RTP/AVP 0'), 400, 'v=0'],
    ['malformed m= line', sdp(...head(), 'm=audio twenty RTP/AVP 0'), 400, 'm= line 1'],
    ['m= line without formats', sdp(...head(), 'm=audio 20000 RTP/AVP'), 400, 'm= line 1'],
    ['port out of range', sdp(...head(), 'm=audio 70000 RTP/AVP 0'), 400, 'm= line 1'],
    [
      'no c= anywhere',
      sdp('v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 't=0 0', 'm=audio 20000 RTP/AVP 0'),
      400,
      'c=',
    ],
    [
      'too large',
      sdp(...head(), 'm=audio 20000 RTP/AVP 0', `a=x-pad:${'x'.repeat(70_000)}`),
      400,
      'too large',
    ],
  ])('%s → %i', (_, offer, status, mention) => {
    const result = negotiateAnswer(offer, LOCAL);
    if (result.ok) throw new Error('expected a failure');
    expect(result.status).toBe(status);
    expect(result.code).toBe(status === 400 ? 'SDP_PARSE_ERROR' : 'SDP_NOT_ACCEPTABLE');
    expect(result.reason).toContain(mention);
    expect(result.warning).toContain(mention);
    // safe inside a quoted-string of a Warning header
    expect(result.warning).not.toMatch(/["\\\r\n]/);
  });

  it('lists at most a few offered codecs in the warning', () => {
    const pts = Array.from({ length: 20 }, (_, i) => 96 + i);
    const result = negotiateAnswer(sdp(...head(), `m=audio 20000 RTP/AVP ${pts.join(' ')}`), LOCAL);
    if (result.ok) throw new Error('expected a failure');
    expect(result.warning).toContain('PT 96');
    expect(result.warning).not.toContain('PT 115');
    expect(result.warning.length).toBeLessThanOrEqual(200);
  });

  it('does not throw on non-string input', () => {
    expect(negotiateAnswer(undefined as unknown as string, LOCAL)).toMatchObject({ ok: false, status: 400 });
  });
});

describe('createOffer / acceptAnswer (offer in our 200 OK, answer in the ACK)', () => {
  it('creates an offer that sdp-transform parses', () => {
    const offer = createOffer(LOCAL);
    expect(offer).toBe(
      sdp(
        'v=0',
        'o=rc-softphone 1234567890 1 IN IP4 192.0.2.10',
        's=rc-softphone',
        'c=IN IP4 192.0.2.10',
        't=0 0',
        'm=audio 40000 RTP/AVP 0 8 101',
        'a=rtpmap:0 PCMU/8000',
        'a=rtpmap:8 PCMA/8000',
        'a=rtpmap:101 telephone-event/8000',
        'a=fmtp:101 0-15',
        'a=rtcp-mux',
        'a=ptime:20',
        'a=sendrecv',
      ),
    );
    const m = parse(offer).media[0]!;
    expect(m).toMatchObject({ type: 'audio', port: 40000, protocol: 'RTP/AVP', payloads: '0 8 101' });
  });

  it('honours codec preference and the telephone-event payload type', () => {
    const offer = createOffer({ ...LOCAL, codecs: ['PCMA'], telephoneEventPt: 96, username: 'bot' });
    expect(offer).toContain('o=bot ');
    expect(offer).toContain('m=audio 40000 RTP/AVP 8 96\r\n');
    expect(offer).not.toContain('PCMU');
    expect(createOffer({ ...LOCAL, codecs: ['PCMU', 'PCMU'] })).toContain('m=audio 40000 RTP/AVP 0 101\r\n');
    // An empty list is the default preference: Opus first (see opus.test.ts).
    expect(createOffer({ ...LOCAL, codecs: [] })).toContain('m=audio 40000 RTP/AVP 111 0 8 101\r\n');
  });

  it('our offer answered by our own negotiateAnswer round-trips', () => {
    const offer = createOffer(LOCAL);
    const remote = ok(
      negotiateAnswer(offer, { ...LOCAL, address: '203.0.113.5', port: 20000, codecs: ['PCMA'] }),
    );
    const accepted = acceptAnswer(offer, remote.answer);
    // both offer a=rtcp-mux (RFC 5761): RTCP goes to the RTP port
    expect(remote.answer).toContain('a=rtcp-mux\r\n');
    expect(accepted).toEqual({
      ok: true,
      media: {
        ...base,
        codec: 'PCMA',
        payloadType: 8,
        telephoneEventPt: 101,
        rtcp: { address: '203.0.113.5', port: 20000, mux: true },
      },
    });
    // and the other side's view is symmetric
    expect(remote.media).toEqual({
      ...base,
      remoteAddress: '192.0.2.10',
      remotePort: 40000,
      codec: 'PCMA',
      payloadType: 8,
      telephoneEventPt: 101,
      rtcp: { address: '192.0.2.10', port: 40000, mux: true },
    });
  });

  const OFFER = createOffer(LOCAL);
  it.each<[string, string[], Partial<NegotiatedMedia>]>([
    ['PCMU answer', ['m=audio 20000 RTP/AVP 0'], {}],
    [
      'answer lists PCMA first: the answerer’s choice',
      ['m=audio 20000 RTP/AVP 8 0'],
      { codec: 'PCMA', payloadType: 8 },
    ],
    [
      'lowercase, with telephone-event',
      ['m=audio 20000 RTP/AVP 0 101', 'a=rtpmap:0 pcmu/8000', 'a=rtpmap:101 telephone-event/8000'],
      { telephoneEventPt: 101 },
    ],
    [
      'answer uses its own telephone-event PT',
      ['m=audio 20000 RTP/AVP 0 100', 'a=rtpmap:100 telephone-event/8000'],
      { telephoneEventPt: 100 },
    ],
    ['ptime from the answer', ['m=audio 20000 RTP/AVP 0', 'a=ptime:30'], { ptime: 30 }],
    [
      'sendonly answer: held',
      ['m=audio 20000 RTP/AVP 0', 'a=sendonly'],
      { direction: 'recvonly', onHold: true },
    ],
    ['recvonly answer', ['m=audio 20000 RTP/AVP 0', 'a=recvonly'], { direction: 'sendonly' }],
    [
      'c=0.0.0.0',
      ['m=audio 20000 RTP/AVP 0', 'c=IN IP4 0.0.0.0'],
      { remoteAddress: '0.0.0.0', direction: 'recvonly', onHold: true },
    ],
    [
      'hostname',
      ['m=audio 20000 RTP/AVP 0', 'c=IN IP4 media.example.com'],
      { remoteAddress: 'media.example.com' },
    ],
  ])('accepts: %s', (_, body, expected) => {
    const result = acceptAnswer(OFFER, sdp(...head(), ...body));
    expect(result).toEqual({ ok: true, media: withRtcp({ ...base, ...expected }) });
  });

  it.each<[string, string, string, string]>([
    ['audio rejected (port 0)', OFFER, sdp(...head(), 'm=audio 0 RTP/AVP 0'), 'SDP_NOT_ACCEPTABLE'],
    ['codec we did not offer', OFFER, sdp(...head(), 'm=audio 20000 RTP/AVP 18'), 'SDP_NOT_ACCEPTABLE'],
    [
      'PCMU answered to a PCMA-only offer',
      createOffer({ ...LOCAL, codecs: ['PCMA'] }),
      sdp(...head(), 'm=audio 20000 RTP/AVP 0'),
      'SDP_NOT_ACCEPTABLE',
    ],
    [
      'm-line count differs',
      OFFER,
      sdp(...head(), 'm=audio 20000 RTP/AVP 0', 'm=video 0 RTP/AVP 96'),
      'SDP_NOT_ACCEPTABLE',
    ],
    ['media type differs', OFFER, sdp(...head(), 'm=video 20000 RTP/AVP 0'), 'SDP_NOT_ACCEPTABLE'],
    ['transport differs', OFFER, sdp(...head(), 'm=audio 20000 RTP/SAVP 0'), 'SDP_NOT_ACCEPTABLE'],
    ['garbage answer', OFFER, 'nope', 'SDP_PARSE_ERROR'],
    [
      'no c=',
      OFFER,
      sdp('v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 't=0 0', 'm=audio 20000 RTP/AVP 0'),
      'SDP_PARSE_ERROR',
    ],
    ['garbage offer of ours', 'nope', sdp(...head(), 'm=audio 20000 RTP/AVP 0'), 'SDP_PARSE_ERROR'],
  ])('fails: %s', (_, offer, answer, code) => {
    const result = acceptAnswer(offer, answer);
    if (result.ok) throw new Error('expected a failure');
    expect(result.code).toBe(code);
    expect(result.reason.length).toBeGreaterThan(0);
    expect(result.warning).not.toMatch(/["\\\r\n]/);
  });
});

describe('localAddressProblem (a configured media IP)', () => {
  it.each([
    ['203.0.113.7', undefined],
    ['2001:db8::7', undefined],
    ['not-an-ip', 'must be an IPv4 or IPv6 address'],
    ['media.example.com', 'must be an IPv4 or IPv6 address'],
    ['203.0.113', 'must be an IPv4 or IPv6 address'],
    ['', 'must be an IPv4 or IPv6 address'],
    ['fe80::1%eth0', 'must not carry a zone id (%…): SDP has no place for it'],
    ['0.0.0.0', 'must not be the unspecified address (0.0.0.0 or ::)'],
    ['::', 'must not be the unspecified address (0.0.0.0 or ::)'],
  ])('%j: %s', (address, problem) => {
    expect(localAddressProblem(address)).toBe(problem);
  });
});

// ---------------------------------------------------------------------------
// SRTP (RFC 4568 SDES) and the --srtp policy

const KEY = 'PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR';
const OUR_KEY = Buffer.alloc(30, 7);
const crypto80 = `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`;
const audio = (proto: string, port = 20000) => `m=audio ${port} ${proto} 0 101`;
const te = ['a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-15'];

const OFFERS: Record<string, string> = {
  AVP: sdp(...head(), audio('RTP/AVP'), ...te),
  'SAVP + crypto': sdp(...head(), audio('RTP/SAVP'), ...te, crypto80),
  'SAVP + crypto _32': sdp(
    ...head(),
    audio('RTP/SAVP'),
    ...te,
    `a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:${KEY}`,
  ),
  'SAVPF + crypto': sdp(...head(), audio('RTP/SAVPF'), ...te, crypto80),
  'best-effort (AVP + crypto)': sdp(...head(), audio('RTP/AVP'), ...te, crypto80),
  'two m-lines (SAVP, AVP)': sdp(...head(), audio('RTP/SAVP'), crypto80, audio('RTP/AVP', 20002)),
  'SAVP without a=crypto': sdp(...head(), audio('RTP/SAVP')),
  'SAVP with an unknown suite': sdp(
    ...head(),
    audio('RTP/SAVP'),
    `a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:${KEY}`,
  ),
  'AVP + crypto we cannot honour': sdp(...head(), audio('RTP/AVP'), `${crypto80} UNENCRYPTED_SRTP`),
  'DTLS-SRTP': sdp(...head(), audio('UDP/TLS/RTP/SAVPF'), 'a=fingerprint:sha-256 AB:CD', 'a=setup:actpass'),
};

type Outcome =
  | {
      proto: string;
      port?: number;
      suite?: 'AES_CM_128_HMAC_SHA1_80' | 'AES_CM_128_HMAC_SHA1_32';
      tag?: number;
    }
  | { warning: string };

const REQUIRED_BUT = 'SRTP is required (--srtp required) but';
const DTLS = 'DTLS-SRTP (UDP/TLS/RTP/SAVPF) is not supported; offer RTP/SAVP with a=crypto (SDES, RFC 4568)';
const SUITES =
  'no supported crypto-suite (offered AES_256_CM_HMAC_SHA1_80; supported AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32)';
const CANNOT = 'a=crypto:1: UNENCRYPTED_SRTP is not supported (we always encrypt and authenticate)';

describe('negotiateAnswer: the SRTP policy matrix', () => {
  const S80 = 'AES_CM_128_HMAC_SHA1_80' as const;
  it.each<[string, 'required' | 'optional' | 'off', Outcome]>([
    ['AVP', 'required', { warning: `${REQUIRED_BUT} the offer is RTP/AVP` }],
    ['AVP', 'optional', { proto: 'RTP/AVP' }],
    ['AVP', 'off', { proto: 'RTP/AVP' }],
    ['SAVP + crypto', 'required', { proto: 'RTP/SAVP', suite: S80 }],
    ['SAVP + crypto', 'optional', { proto: 'RTP/SAVP', suite: S80 }],
    ['SAVP + crypto', 'off', { warning: 'SRTP is off (--srtp off) but the offer is RTP/SAVP only' }],
    ['SAVP + crypto _32', 'required', { proto: 'RTP/SAVP', suite: 'AES_CM_128_HMAC_SHA1_32', tag: 3 }],
    ['SAVP + crypto _32', 'optional', { proto: 'RTP/SAVP', suite: 'AES_CM_128_HMAC_SHA1_32', tag: 3 }],
    ['SAVP + crypto _32', 'off', { warning: 'SRTP is off (--srtp off) but the offer is RTP/SAVP only' }],
    ['SAVPF + crypto', 'required', { proto: 'RTP/SAVPF', suite: S80 }],
    ['SAVPF + crypto', 'off', { warning: 'SRTP is off (--srtp off) but the offer is RTP/SAVPF only' }],
    ['best-effort (AVP + crypto)', 'required', { proto: 'RTP/AVP', suite: S80 }],
    ['best-effort (AVP + crypto)', 'optional', { proto: 'RTP/AVP', suite: S80 }],
    ['best-effort (AVP + crypto)', 'off', { proto: 'RTP/AVP' }],
    ['two m-lines (SAVP, AVP)', 'required', { proto: 'RTP/SAVP', suite: S80 }],
    ['two m-lines (SAVP, AVP)', 'optional', { proto: 'RTP/SAVP', suite: S80 }],
    ['two m-lines (SAVP, AVP)', 'off', { proto: 'RTP/AVP', port: 20002 }],
    [
      'SAVP without a=crypto',
      'required',
      { warning: `${REQUIRED_BUT} no a=crypto of the offer is usable: no a=crypto line` },
    ],
    [
      'SAVP without a=crypto',
      'optional',
      { warning: 'no a=crypto of the RTP/SAVP offer is usable: no a=crypto line' },
    ],
    ['SAVP without a=crypto', 'off', { warning: 'SRTP is off (--srtp off) but the offer is RTP/SAVP only' }],
    [
      'SAVP with an unknown suite',
      'required',
      { warning: `${REQUIRED_BUT} no a=crypto of the offer is usable: ${SUITES}` },
    ],
    [
      'SAVP with an unknown suite',
      'optional',
      { warning: `no a=crypto of the RTP/SAVP offer is usable: ${SUITES}` },
    ],
    [
      'AVP + crypto we cannot honour',
      'required',
      { warning: `${REQUIRED_BUT} no a=crypto of the offer is usable: ${CANNOT}` },
    ],
    ['AVP + crypto we cannot honour', 'optional', { proto: 'RTP/AVP' }],
    ['AVP + crypto we cannot honour', 'off', { proto: 'RTP/AVP' }],
    ['DTLS-SRTP', 'required', { warning: `${REQUIRED_BUT} ${DTLS}` }],
    ['DTLS-SRTP', 'optional', { warning: DTLS }],
    ['DTLS-SRTP', 'off', { warning: DTLS }],
  ])('%s, --srtp %s', (offerName, policy, outcome) => {
    const result = negotiateAnswer(OFFERS[offerName]!, { ...LOCAL, srtp: policy, srtpKeySalt: OUR_KEY });
    if ('warning' in outcome) {
      if (result.ok) throw new Error('expected 488');
      expect(result).toMatchObject({ status: 488, code: 'SDP_NOT_ACCEPTABLE', warnCode: 302 });
      expect(result.warning).toBe(outcome.warning);
      expect(result.reason).toBe(outcome.warning);
      expect(result.warning).not.toContain(KEY.slice(0, 12));
      return;
    }
    const { answer, media } = ok(result);
    const m = parse(answer).media.find((line) => line.port !== 0)!;
    expect(m.protocol).toBe(outcome.proto);
    expect(media.remotePort).toBe(outcome.port ?? 20000);
    const cryptoLines = answer.split('\r\n').filter((l) => l.startsWith('a=crypto:'));
    if (outcome.suite === undefined) {
      expect(media.srtp).toBeUndefined();
      expect(cryptoLines).toEqual([]);
      return;
    }
    const tag = outcome.tag ?? 1;
    // RFC 4568 5.1.2: the offer's tag and suite, our key
    expect(cryptoLines).toEqual([`a=crypto:${tag} ${outcome.suite} inline:${OUR_KEY.toString('base64')}`]);
    expect(media.srtp).toMatchObject({ suite: outcome.suite, tag });
    expect(media.srtp!.localKeySalt).toEqual(OUR_KEY);
    expect(media.srtp!.remoteKeySalt).toEqual(Buffer.from(KEY, 'base64'));
  });

  it('takes the far end’s MKI and lifetime into the keys, and uses a fresh key of ours by default', () => {
    const offer = sdp(
      ...head(),
      audio('RTP/SAVP'),
      `a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^31|7:1`,
    );
    const a = ok(negotiateAnswer(offer, { ...LOCAL, srtp: 'required' }));
    const b = ok(negotiateAnswer(offer, { ...LOCAL, srtp: 'required' }));
    expect(a.media.srtp).toMatchObject({ tag: 5, remoteLifetime: 2 ** 31 });
    expect(a.media.srtp!.remoteMki).toEqual(Buffer.from([7]));
    expect(a.media.srtp!.localKeySalt.equals(b.media.srtp!.localKeySalt)).toBe(false);
    // our answer declares neither a lifetime nor an MKI
    expect(a.answer).toMatch(/^a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:[A-Za-z0-9+/]{40}\r$/m);
  });

  it('keeps the keys out of JSON of the negotiated media', () => {
    const { media } = ok(
      negotiateAnswer(OFFERS['SAVP + crypto']!, { ...LOCAL, srtp: 'required', srtpKeySalt: OUR_KEY }),
    );
    const json = JSON.stringify(media);
    expect(json).not.toContain(KEY);
    expect(json).not.toContain(OUR_KEY.toString('base64'));
    expect(JSON.parse(json).srtp).toEqual({ suite: 'AES_CM_128_HMAC_SHA1_80', tag: 1, keys: '<redacted>' });
  });

  it('reads every session parameter from the SDP text (sdp-transform keeps only the first)', () => {
    const offer = sdp(...head(), audio('RTP/SAVP'), `${crypto80} WSH=128 UNENCRYPTED_SRTP`);
    const result = negotiateAnswer(offer, { ...LOCAL, srtp: 'optional' });
    expect(result).toMatchObject({ ok: false, status: 488 });
  });
});

describe('negotiateAnswer: RTCP destination (RFC 3550 11, RFC 3605, RFC 5761)', () => {
  it.each<[string, string[], Partial<LocalMedia>, NonNullable<NegotiatedMedia['rtcp']>, string[]]>([
    ['port + 1 by default', [], {}, { address: '203.0.113.5', port: 20001, mux: false }, []],
    ['a=rtcp port', ['a=rtcp:20011'], {}, { address: '203.0.113.5', port: 20011, mux: false }, []],
    [
      'a=rtcp port and address',
      ['a=rtcp:53020 IN IP4 198.51.100.9'],
      {},
      { address: '198.51.100.9', port: 53020, mux: false },
      [],
    ],
    [
      'a=rtcp-mux offered: accepted',
      ['a=rtcp-mux'],
      {},
      { address: '203.0.113.5', port: 20000, mux: true },
      ['a=rtcp-mux'],
    ],
    [
      'a=rtcp-mux offered, ours off',
      ['a=rtcp-mux'],
      { rtcpMux: false },
      { address: '203.0.113.5', port: 20001, mux: false },
      [],
    ],
    [
      'our RTCP port is not RTP + 1: a=rtcp',
      [],
      { rtcpPort: 40005 },
      { address: '203.0.113.5', port: 20001, mux: false },
      ['a=rtcp:40005'],
    ],
    [
      'our RTCP port is RTP + 1: nothing to say',
      [],
      { rtcpPort: 40001 },
      { address: '203.0.113.5', port: 20001, mux: false },
      [],
    ],
  ])('%s', (_, attributes, local, rtcp, answerLines) => {
    const { media, answer } = ok(
      negotiateAnswer(sdp(...head(), 'm=audio 20000 RTP/AVP 0', ...attributes), { ...LOCAL, ...local }),
    );
    expect(media.rtcp).toEqual(rtcp);
    expect(answer.split('\r\n').filter((l) => l.startsWith('a=rtcp'))).toEqual(answerLines);
  });
});

describe('createOffer / acceptAnswer with SRTP', () => {
  it.each<['required' | 'optional', string]>([
    ['required', 'RTP/SAVP'],
    ['optional', 'RTP/AVP'],
  ])('--srtp %s offers %s with one a=crypto (AES_CM_128_HMAC_SHA1_80, our key)', (policy, proto) => {
    const offer = createOffer({ ...LOCAL, srtp: policy, srtpKeySalt: OUR_KEY });
    expect(offer).toContain(`m=audio 40000 ${proto} 0 8 101\r\n`);
    expect(offer.split('\r\n').filter((l) => l.startsWith('a=crypto:'))).toEqual([
      `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${OUR_KEY.toString('base64')}`,
    ]);
    expect(createOffer({ ...LOCAL, srtp: policy })).toMatch(
      /a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:[A-Za-z0-9+/]{40}\r\n/,
    );
  });

  it('our RTP/SAVP offer answered by our own negotiateAnswer: each side’s local key is the other’s remote', () => {
    const theirKey = Buffer.alloc(30, 9);
    const offer = createOffer({ ...LOCAL, srtp: 'required', srtpKeySalt: OUR_KEY });
    const remote = ok(
      negotiateAnswer(offer, {
        ...LOCAL,
        address: '203.0.113.5',
        port: 20000,
        srtp: 'required',
        srtpKeySalt: theirKey,
      }),
    );
    const accepted = acceptAnswer(offer, remote.answer);
    if (!accepted.ok) throw new Error(accepted.reason);
    expect(accepted.media.srtp).toMatchObject({ suite: 'AES_CM_128_HMAC_SHA1_80', tag: 1 });
    expect(accepted.media.srtp!.localKeySalt).toEqual(OUR_KEY);
    expect(accepted.media.srtp!.remoteKeySalt).toEqual(theirKey);
    expect(remote.media.srtp!.localKeySalt).toEqual(theirKey);
    expect(remote.media.srtp!.remoteKeySalt).toEqual(OUR_KEY);
  });

  it('a best-effort offer answered without a=crypto is plain RTP; with it, SRTP', () => {
    const offer = createOffer({ ...LOCAL, srtp: 'optional', srtpKeySalt: OUR_KEY });
    const plainAnswer = acceptAnswer(offer, sdp(...head(), 'm=audio 20000 RTP/AVP 0'));
    expect(plainAnswer).toMatchObject({ ok: true });
    expect(plainAnswer.ok && plainAnswer.media.srtp).toBeUndefined();
    const keyed = acceptAnswer(offer, sdp(...head(), 'm=audio 20000 RTP/AVP 0', crypto80));
    expect(keyed.ok && keyed.media.srtp?.remoteKeySalt).toEqual(Buffer.from(KEY, 'base64'));
  });

  it('an a=crypto in the answer to a plain offer means nothing', () => {
    const result = acceptAnswer(createOffer(LOCAL), sdp(...head(), 'm=audio 20000 RTP/AVP 0', crypto80));
    expect(result.ok && result.media.srtp).toBeUndefined();
  });

  it.each<[string, string[], string]>([
    ['no a=crypto', ['m=audio 20000 RTP/SAVP 0'], 'the answer to our RTP/SAVP offer has no a=crypto'],
    [
      'a tag we did not offer',
      ['m=audio 20000 RTP/SAVP 0', `a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`],
      'tag 2 is not one we offered',
    ],
    [
      'another suite for our tag',
      ['m=audio 20000 RTP/SAVP 0', `a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:${KEY}`],
      'has AES_CM_128_HMAC_SHA1_32; we offered AES_CM_128_HMAC_SHA1_80',
    ],
    [
      'two a=crypto',
      ['m=audio 20000 RTP/SAVP 0', crypto80, `a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`],
      'more than one a=crypto',
    ],
    [
      'a malformed a=crypto',
      ['m=audio 20000 RTP/SAVP 0', 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:short'],
      "the answer's a=crypto:1 has a malformed key",
    ],
    ['plain RTP to our RTP/SAVP', ['m=audio 20000 RTP/AVP 0'], 'do not match the offer'],
  ])('refuses the answer to our RTP/SAVP offer: %s', (_, body, mention) => {
    const offer = createOffer({ ...LOCAL, srtp: 'required', srtpKeySalt: OUR_KEY });
    const result = acceptAnswer(offer, sdp(...head(), ...body));
    if (result.ok) throw new Error('expected a failure');
    expect(result.code).toBe('SDP_NOT_ACCEPTABLE');
    expect(result.reason).toContain(mention);
    expect(result.reason).not.toContain(KEY.slice(0, 12));
  });

  it('takes a=rtcp-mux only when both offered it, else a=rtcp or port + 1', () => {
    const offer = createOffer(LOCAL);
    const muxed = acceptAnswer(offer, sdp(...head(), 'm=audio 20000 RTP/AVP 0', 'a=rtcp-mux'));
    expect(muxed.ok && muxed.media.rtcp).toEqual({ address: '203.0.113.5', port: 20000, mux: true });
    const noMuxOffer = createOffer({ ...LOCAL, rtcpMux: false });
    expect(noMuxOffer).not.toContain('a=rtcp-mux');
    const notMuxed = acceptAnswer(noMuxOffer, sdp(...head(), 'm=audio 20000 RTP/AVP 0', 'a=rtcp-mux'));
    expect(notMuxed.ok && notMuxed.media.rtcp).toEqual({ address: '203.0.113.5', port: 20001, mux: false });
    const rtcpAttr = acceptAnswer(offer, sdp(...head(), 'm=audio 20000 RTP/AVP 0', 'a=rtcp:30001'));
    expect(rtcpAttr.ok && rtcpAttr.media.rtcp).toEqual({ address: '203.0.113.5', port: 30001, mux: false });
  });
});
