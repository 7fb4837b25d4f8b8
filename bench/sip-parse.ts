/**
 * SIP parse + serialize throughput: ours (parseMessage + serialize, reading
 * the typed fields a UA reads) versus the npm `sip` package (parse +
 * stringify) on the same bytes, in the same run.
 *
 *   node --import tsx bench/sip-parse.ts
 *
 * Fairness notes: both sides get the same Buffer per message (sip.parse
 * decodes it with toString('binary')); ours returns bytes ready for the
 * socket while `sip` returns a string (its UTF-8 encoding is not counted).
 * `sip` parses Via/From/To/CSeq/Contact eagerly, ours on first access, so
 * ours is made to read top Via branch, CSeq, From tag and Call-ID each time.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseMessage } from '../src/sip/message/parse.js';
import { serialize } from '../src/sip/message/serialize.js';

interface PeerMessage {
  headers: {
    via: Array<{ params: Record<string, string | null> }>;
    cseq: { seq: number; method: string };
    from: { params: Record<string, string | null> };
    'call-id': string;
  };
}
interface SipPeer {
  parse(data: string | Buffer): PeerMessage | undefined;
  stringify(message: PeerMessage): string;
}

// `sip` ships no type declarations; createRequire keeps the import typed without a .d.ts.
const require = createRequire(import.meta.url);
const sip = require('sip') as SipPeer;

function message(head: string[], body = ''): Buffer {
  const bodyBytes = Buffer.from(body.replace(/\n/g, '\r\n'), 'utf8');
  return Buffer.concat([
    Buffer.from(`${head.join('\r\n')}\r\nContent-Length: ${bodyBytes.length}\r\n\r\n`, 'utf8'),
    bodyBytes,
  ]);
}

const AOR = 'sip:18885550123*101@sip.ringcentral.com';
const CALL_ID = '3f2a9c8e-7b1d-4e6f-a5c4-9d8e7f6a5b4c';

const OFFER = `v=0
o=- 4218563417 4218563417 IN IP4 104.245.57.182
s=SmcSip
c=IN IP4 104.245.57.182
t=0 0
m=audio 35678 RTP/AVP 0 8 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:35679
a=ptime:20
a=sendrecv
`;

const ANSWER = `v=0
o=rc-softphone 1700000000 1700000001 IN IP4 10.0.0.5
s=rc-softphone
c=IN IP4 10.0.0.5
t=0 0
m=audio 40000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
`;

/** What a RingCentral device sees on its TCP flow (header spellings as the edge sends them). */
export const corpus: Buffer[] = [
  message([
    'REGISTER sip:sip.ringcentral.com SIP/2.0',
    'Via: SIP/2.0/TCP 10.0.0.5:53412;rport;branch=z9hG4bK7f3a2c1e9b0d',
    'Max-Forwards: 70',
    `From: <${AOR}>;tag=a1b2c3d4e5f6`,
    `To: <${AOR}>`,
    `Call-ID: ${CALL_ID}`,
    'CSeq: 2 REGISTER',
    'Contact: <sip:18885550123*101@a7f3c2e1.invalid;transport=tcp;ob>;+sip.instance="<urn:uuid:5c2a8f3e-1b7d-4c9e-a6f5-3e2d1c0b9a87>";reg-id=1;expires=600',
    'Authorization: Digest algorithm=MD5, username="802398012345", realm="sip.ringcentral.com", nonce="Y2FmZWJhYmUxMjM0NTY3ODkwYWJjZGVm", uri="sip:sip.ringcentral.com", response="5f1c8e0a8b3d4c2e1f0a9b8c7d6e5f4a"',
    'Expires: 600',
    'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER, MESSAGE',
    'Supported: outbound, path, gruu',
    'User-Agent: rc-softphone/0.1.0',
  ]),
  message([
    'SIP/2.0 401 Unauthorized',
    'Via: SIP/2.0/TCP 10.0.0.5:53412;rport=53412;branch=z9hG4bK7f3a2c1e9b0c;received=203.0.113.7',
    `From: <${AOR}>;tag=a1b2c3d4e5f6`,
    `To: <${AOR}>;tag=6f4c9b2d8a1e7f3c`,
    `Call-Id: ${CALL_ID}`,
    'CSeq: 1 REGISTER',
    'Www-Authenticate: Digest realm="sip.ringcentral.com", nonce="Y2FmZWJhYmUxMjM0NTY3ODkwYWJjZGVm", algorithm=MD5',
    'Server: RC_SIPWAPI',
  ]),
  message([
    'SIP/2.0 200 OK',
    'Via: SIP/2.0/TCP 10.0.0.5:53412;rport=53412;branch=z9hG4bK7f3a2c1e9b0d;received=203.0.113.7',
    `From: <${AOR}>;tag=a1b2c3d4e5f6`,
    `To: <${AOR}>;tag=6f4c9b2d8a1e7f3c`,
    `Call-Id: ${CALL_ID}`,
    'CSeq: 2 REGISTER',
    'Contact: <sip:18885550123*101@203.0.113.7:53412;transport=tcp;ob>;expires=600;+sip.instance="<urn:uuid:5c2a8f3e-1b7d-4c9e-a6f5-3e2d1c0b9a87>";reg-id=1',
    'Server: RC_SIPWAPI',
  ]),
  message(
    [
      'INVITE sip:18885550123*101@203.0.113.7:53412;transport=tcp;ob SIP/2.0',
      'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK3c1e9f2a7b.1',
      'Via: SIP/2.0/UDP 10.13.22.241:5070;rport=5070;branch=z9hG4bK5d8e2f1a;received=10.13.22.241',
      'Via: SIP/2.0/UDP 10.13.21.112:5060;branch=z9hG4bKc0a8e7f6d5',
      'Record-Route: <sip:104.245.57.165:5091;transport=tcp;lr;r2=on>',
      'Record-Route: <sip:104.245.57.165;lr;r2=on>',
      'Record-Route: <sip:10.13.22.241:5070;lr>',
      'Max-Forwards: 67',
      'From: "WIRELESS CALLER" <sip:+16505550199@104.245.57.165>;tag=10.13.21.112-5060-3b7c1f9e',
      `To: "Bot" <${AOR}>`,
      'Call-ID: 8a7f6e5d4c3b2a19f8e7d6c5b4a39281@10.13.21.112',
      'CSeq: 314159 INVITE',
      'Contact: <sip:+16505550199@10.13.22.241:5070>',
      'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER',
      'Supported: 100rel, timer',
      'Session-Expires: 1800;refresher=uac',
      'Min-SE: 90',
      'P-Asserted-Identity: "WIRELESS CALLER" <sip:+16505550199@sip.ringcentral.com>',
      'p-rc-api-ids: party-id=p-a0c9e2f1b3d4z17a8c9f0e1-2;session-id=s-a0c9e2f1b3d4z17a8c9f0e1',
      'p-rc-api-call-info: callAttributes=reject,send-vm',
      'Content-Type: application/sdp',
    ],
    OFFER,
  ),
  message(
    [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK3c1e9f2a7b.1',
      'Via: SIP/2.0/UDP 10.13.22.241:5070;rport=5070;branch=z9hG4bK5d8e2f1a;received=10.13.22.241',
      'Via: SIP/2.0/UDP 10.13.21.112:5060;branch=z9hG4bKc0a8e7f6d5',
      'Record-Route: <sip:104.245.57.165:5091;transport=tcp;lr;r2=on>',
      'Record-Route: <sip:104.245.57.165;lr;r2=on>',
      'Record-Route: <sip:10.13.22.241:5070;lr>',
      'From: "WIRELESS CALLER" <sip:+16505550199@104.245.57.165>;tag=10.13.21.112-5060-3b7c1f9e',
      `To: "Bot" <${AOR}>;tag=Zx8c1RkT4mA`,
      'Call-ID: 8a7f6e5d4c3b2a19f8e7d6c5b4a39281@10.13.21.112',
      'CSeq: 314159 INVITE',
      'Contact: <sip:18885550123*101@203.0.113.7:53412;transport=tcp;ob>',
      'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO',
      'Supported: outbound',
      'Content-Type: application/sdp',
    ],
    ANSWER,
  ),
  message([
    'BYE sip:18885550123*101@203.0.113.7:53412;transport=tcp;ob SIP/2.0',
    'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK9e8d7c6b5a.1',
    'Via: SIP/2.0/UDP 10.13.22.241:5070;rport=5070;branch=z9hG4bK1a2b3c4d;received=10.13.22.241',
    'Max-Forwards: 69',
    'From: "WIRELESS CALLER" <sip:+16505550199@104.245.57.165>;tag=10.13.21.112-5060-3b7c1f9e',
    `To: "Bot" <${AOR}>;tag=Zx8c1RkT4mA`,
    'Call-ID: 8a7f6e5d4c3b2a19f8e7d6c5b4a39281@10.13.21.112',
    'CSeq: 314160 BYE',
    'Reason: Q.850;cause=16;text="Normal call clearing"',
  ]),
];

/** One pass of ours over the corpus; returns a checksum so the work cannot be optimized away. */
function oursOnce(): number {
  let sink = 0;
  for (const bytes of corpus) {
    const result = parseMessage(bytes);
    if (!result.ok) throw new Error(`our parser rejected a corpus message: ${result.error.message}`);
    const h = result.message.headers;
    sink += h.topVia()?.params.get('branch')?.length ?? 0;
    sink += h.cseq()?.seq ?? 0;
    sink += h.from()?.params.get('tag')?.length ?? 0;
    sink += h.callId()?.length ?? 0;
    sink += serialize(result.message).length;
  }
  return sink;
}

function peerOnce(): number {
  let sink = 0;
  for (const bytes of corpus) {
    const m = sip.parse(bytes);
    if (m === undefined) throw new Error('sip.parse rejected a corpus message');
    sink += m.headers.via[0]?.params.branch?.length ?? 0;
    sink += m.headers.cseq.seq;
    sink += m.headers.from.params.tag?.length ?? 0;
    sink += m.headers['call-id'].length;
    sink += sip.stringify(m).length;
  }
  return sink;
}

function measure(pass: () => number, passes: number): number {
  const start = performance.now();
  let sink = 0;
  for (let i = 0; i < passes; i++) sink += pass();
  const seconds = (performance.now() - start) / 1000;
  if (sink === 0) throw new Error('benchmark did no work');
  return (passes * corpus.length) / seconds;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export async function benchSipParse(
  options: { rounds?: number; roundMs?: number } = {},
): Promise<{ oursPerSec: number; peerPerSec: number; ratio: number }> {
  const rounds = options.rounds ?? 11;
  const roundMs = options.roundMs ?? 200;
  // Warm-up: let both reach their optimized tiers, then size rounds to ~roundMs.
  const warm = (pass: () => number): number => {
    const perSec = Math.max(measure(pass, 200), measure(pass, 2000));
    return Math.max(1, Math.round((perSec * roundMs) / 1000 / corpus.length));
  };
  const oursPasses = warm(oursOnce);
  const peerPasses = warm(peerOnce);
  const ours: number[] = [];
  const peer: number[] = [];
  // Interleave rounds so that drift (thermal, GC, other load) hits both alike.
  for (let r = 0; r < rounds; r++) {
    ours.push(measure(oursOnce, oursPasses));
    peer.push(measure(peerOnce, peerPasses));
    await new Promise((resolve) => setImmediate(resolve));
  }
  const oursPerSec = median(ours);
  const peerPerSec = median(peer);
  const ratio = oursPerSec / peerPerSec;
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log(
    `sip-parse: parse+serialize of ${corpus.length} messages (REGISTER, 401, 200 REGISTER, INVITE+SDP, 200+SDP, BYE)`,
  );
  console.log(`  ours (parseMessage + typed reads + serialize): ${fmt(oursPerSec)} msg/s`);
  console.log(`  npm sip@0.0.6 (parse + stringify):             ${fmt(peerPerSec)} msg/s`);
  console.log(`  ratio ours/peer: ${ratio.toFixed(2)}x (median of ${rounds} rounds)`);
  return { oursPerSec, peerPerSec, ratio };
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(path.resolve(invokedPath)).href) {
  await benchSipParse();
}
