/**
 * SIP parse and serialize throughput: ours (parseMessage, serialize) versus
 * the npm `sip` package (sip.parse, sip.stringify) on the same bytes, in the
 * same run, rounds interleaved.
 *
 *   node --import tsx bench/sip-parse.ts [--rounds 11] [--round-ms 150]
 *
 * What each side does (so that the work compared is the same):
 * - `sip.parse` decodes the Buffer with toString('binary') and parses Via,
 *   From, To, Contact, CSeq, Route/Record-Route (only these with their URIs),
 *   WWW-Authenticate/Authorization and Content-Length eagerly; every other
 *   header stays a string. It checks almost nothing.
 * - parseMessage decodes the header section (UTF-8; ASCII byte for byte),
 *   splits the fields, validates what RFC 3261/4475 require (start line,
 *   Request-URI, every Via, From, To, CSeq, Call-ID, Max-Forwards, Contact in
 *   requests, Content-Length; URIs included), builds the top Via, CSeq, From
 *   and To (every layer reads them) and only checks the rest: Headers builds
 *   those on first access. So ours is measured twice:
 *   "stack reads" reads what our transaction and dialog layers read on every
 *   message (top Via branch, CSeq, Call-ID, From and To tags); "every header"
 *   also builds every Via, Contact, Route and Record-Route and parses the
 *   digest header(s), i.e. at least what `sip` parses. The peer reads the same
 *   fields from its (already parsed) object.
 * - Serialize: ours returns bytes ready for the socket (a Buffer); `sip`
 *   returns a string whose encoding to bytes is not counted (in its favour).
 *   Each side serializes its own parsed messages, untouched.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseAuthParams, parseChallenge } from '../src/sip/auth/digest.js';
import { parseMessage } from '../src/sip/message/parse.js';
import { serialize } from '../src/sip/message/serialize.js';
import type { SipMessage } from '../src/sip/message/types.js';

interface PeerParams {
  params: Record<string, string | null>;
}
interface PeerMessage {
  headers: {
    via: PeerParams[];
    cseq: { seq: number; method: string };
    from: PeerParams;
    to: PeerParams;
    'call-id': string;
    contact?: PeerParams[] | '*';
    route?: PeerParams[];
    'record-route'?: PeerParams[];
    'www-authenticate'?: Array<Record<string, string>>;
    authorization?: Array<Record<string, string>>;
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

/** Early media of an outbound call: RingCentral answers 183 with SDP before the 200. */
const EARLY = `v=0
o=- 6812459034 6812459034 IN IP4 104.245.57.182
s=SmcSip
c=IN IP4 104.245.57.182
t=0 0
m=audio 36120 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:36121
a=ptime:20
a=sendrecv
`;

const EDGE_VIAS = [
  'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK3c1e9f2a7b.1',
  'Via: SIP/2.0/UDP 10.13.22.241:5070;rport=5070;branch=z9hG4bK5d8e2f1a;received=10.13.22.241',
  'Via: SIP/2.0/UDP 10.13.21.112:5060;branch=z9hG4bKc0a8e7f6d5',
];
const EDGE_ROUTES = [
  'Record-Route: <sip:104.245.57.165:5091;transport=tcp;lr;r2=on>',
  'Record-Route: <sip:104.245.57.165;lr;r2=on>',
  'Record-Route: <sip:10.13.22.241:5070;lr>',
];
const CALLER = 'From: "WIRELESS CALLER" <sip:+16505550199@104.245.57.165>;tag=10.13.21.112-5060-3b7c1f9e';
const INBOUND_CALL_ID = 'Call-ID: 8a7f6e5d4c3b2a19f8e7d6c5b4a39281@10.13.21.112';
const OUT_VIA = 'Via: SIP/2.0/TCP 10.0.0.5:53412;rport=53412;branch=z9hG4bKa91c3e7f20d4;received=203.0.113.7';
const OUT_FROM = `From: "Bot" <${AOR}>;tag=c81f2e9a04b7`;
const OUT_TO = 'To: <sip:+16505550199@sip.ringcentral.com>;tag=3a9e7c1f-5b2d';
const OUT_CALL_ID = 'Call-ID: 6e1f0c2b-93d7-4a58-b1e6-0f2c4d8a9b7e';

/**
 * What a RingCentral device sees and sends on its TCP flow, header spellings
 * as the edge sends them: registration (REGISTER, 401, 200), an inbound call
 * (INVITE with SDP, our 200 with SDP, ACK, BYE), an outbound call's
 * provisional responses (100, 180, 183 with SDP) and an OPTIONS probe.
 */
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
      ...EDGE_VIAS,
      ...EDGE_ROUTES,
      'Max-Forwards: 67',
      CALLER,
      `To: "Bot" <${AOR}>`,
      INBOUND_CALL_ID,
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
      ...EDGE_VIAS,
      ...EDGE_ROUTES,
      CALLER,
      `To: "Bot" <${AOR}>;tag=Zx8c1RkT4mA`,
      INBOUND_CALL_ID,
      'CSeq: 314159 INVITE',
      'Contact: <sip:18885550123*101@203.0.113.7:53412;transport=tcp;ob>',
      'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO',
      'Supported: outbound',
      'Content-Type: application/sdp',
    ],
    ANSWER,
  ),
  message([
    'ACK sip:18885550123*101@203.0.113.7:53412;transport=tcp;ob SIP/2.0',
    'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK7d6c5b4a39.1',
    'Via: SIP/2.0/UDP 10.13.22.241:5070;rport=5070;branch=z9hG4bK2b3c4d5e;received=10.13.22.241',
    'Max-Forwards: 69',
    CALLER,
    `To: "Bot" <${AOR}>;tag=Zx8c1RkT4mA`,
    INBOUND_CALL_ID,
    'CSeq: 314159 ACK',
  ]),
  message([
    'BYE sip:18885550123*101@203.0.113.7:53412;transport=tcp;ob SIP/2.0',
    'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK9e8d7c6b5a.1',
    'Via: SIP/2.0/UDP 10.13.22.241:5070;rport=5070;branch=z9hG4bK1a2b3c4d;received=10.13.22.241',
    'Max-Forwards: 69',
    CALLER,
    `To: "Bot" <${AOR}>;tag=Zx8c1RkT4mA`,
    INBOUND_CALL_ID,
    'CSeq: 314160 BYE',
    'Reason: Q.850;cause=16;text="Normal call clearing"',
  ]),
  message([
    'SIP/2.0 100 Trying',
    OUT_VIA,
    OUT_FROM,
    'To: <sip:+16505550199@sip.ringcentral.com>',
    OUT_CALL_ID,
    'CSeq: 2 INVITE',
    'Server: RC_SIPWAPI',
  ]),
  message([
    'SIP/2.0 180 Ringing',
    OUT_VIA,
    'Record-Route: <sip:104.245.57.165:5091;transport=tcp;lr;r2=on>',
    'Record-Route: <sip:104.245.57.165;lr;r2=on>',
    OUT_FROM,
    OUT_TO,
    OUT_CALL_ID,
    'CSeq: 2 INVITE',
    'Contact: <sip:+16505550199@104.245.57.165:5091;transport=tcp>',
    'p-rc-api-ids: party-id=p-7c1e9a0b2d3f4e5a6b7c8d9e0f1-2;session-id=s-7c1e9a0b2d3f4e5a6b7c8d9e0f1',
  ]),
  message(
    [
      'SIP/2.0 183 Session Progress',
      OUT_VIA,
      'Record-Route: <sip:104.245.57.165:5091;transport=tcp;lr;r2=on>',
      'Record-Route: <sip:104.245.57.165;lr;r2=on>',
      OUT_FROM,
      OUT_TO,
      OUT_CALL_ID,
      'CSeq: 2 INVITE',
      'Contact: <sip:+16505550199@104.245.57.165:5091;transport=tcp>',
      'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER',
      'p-rc-api-ids: party-id=p-7c1e9a0b2d3f4e5a6b7c8d9e0f1-2;session-id=s-7c1e9a0b2d3f4e5a6b7c8d9e0f1',
      'Content-Type: application/sdp',
    ],
    EARLY,
  ),
  message([
    'OPTIONS sip:18885550123*101@203.0.113.7:53412;transport=tcp;ob SIP/2.0',
    'Via: SIP/2.0/TCP 104.245.57.165:5091;branch=z9hG4bK0f1e2d3c4b.1',
    'Max-Forwards: 70',
    'From: <sip:104.245.57.165:5091>;tag=1c9e7a5b3d',
    `To: <${AOR}>`,
    'Call-ID: 1d2c3b4a5f6e7d8c9b0a@104.245.57.165',
    'CSeq: 1 OPTIONS',
    'Accept: application/sdp',
  ]),
];

const CORPUS_LABEL = 'REGISTER, 401, 200 REGISTER, INVITE+SDP, 200+SDP, ACK, BYE, 100, 180, 183+SDP, OPTIONS';

// ---------------------------------------------------------------------------
// The work of each side. Every function returns a checksum so that nothing
// can be optimized away.

/** What our transaction and dialog layers read on every message. */
function oursStackReads(m: SipMessage): number {
  const h = m.headers;
  let sink = h.topVia()?.params.get('branch')?.length ?? 0;
  sink += h.cseq()?.seq ?? 0;
  sink += h.callId()?.length ?? 0;
  sink += h.from()?.params.get('tag')?.length ?? 0;
  sink += h.to()?.params.get('tag')?.length ?? 0;
  return sink;
}

/** At least what `sip.parse` parses eagerly. */
function oursEveryHeader(m: SipMessage): number {
  const h = m.headers;
  let sink = oursStackReads(m);
  for (const via of h.vias() ?? []) sink += via.params.size;
  for (const name of ['Contact', 'Route', 'Record-Route']) {
    for (const na of h.nameAddrs(name) ?? []) sink += na.params.size + 1;
  }
  for (const name of ['WWW-Authenticate', 'Proxy-Authenticate']) {
    for (const value of h.getAll(name)) {
      const c = parseChallenge(value);
      if (c.ok) sink += c.challenge.nonce.length;
    }
  }
  for (const name of ['Authorization', 'Proxy-Authorization']) {
    for (const value of h.getAll(name)) sink += parseAuthParams(value.slice(value.indexOf(' ') + 1)).size;
  }
  return sink;
}

function peerStackReads(m: PeerMessage): number {
  const h = m.headers;
  let sink = h.via[0]?.params.branch?.length ?? 0;
  sink += h.cseq.seq;
  sink += h['call-id'].length;
  sink += h.from.params.tag?.length ?? 0;
  sink += h.to.params.tag?.length ?? 0;
  return sink;
}

function peerEveryHeader(m: PeerMessage): number {
  const h = m.headers;
  let sink = peerStackReads(m);
  for (const via of h.via) sink += Object.keys(via.params).length;
  for (const list of [h.contact === '*' ? undefined : h.contact, h.route, h['record-route']]) {
    for (const na of list ?? []) sink += Object.keys(na.params).length + 1;
  }
  for (const c of h['www-authenticate'] ?? []) sink += c.nonce?.length ?? 0;
  for (const a of h.authorization ?? []) sink += Object.keys(a).length;
  return sink;
}

function oursParse(bytes: Buffer): SipMessage {
  const result = parseMessage(bytes);
  if (!result.ok) throw new Error(`our parser rejected a corpus message: ${result.error.message}`);
  return result.message;
}

function peerParse(bytes: Buffer): PeerMessage {
  const m = sip.parse(bytes);
  if (m === undefined) throw new Error('sip.parse rejected a corpus message');
  return m;
}

const oursParsed = corpus.map(oursParse);
const peerParsed = corpus.map(peerParse);

type Pass = () => number;
interface Mode {
  name: string;
  ours: Pass;
  peer: Pass;
}

const modes: Mode[] = [
  {
    name: 'parse (stack reads)',
    ours: () => corpus.reduce((sink, b) => sink + oursStackReads(oursParse(b)), 0),
    peer: () => corpus.reduce((sink, b) => sink + peerStackReads(peerParse(b)), 0),
  },
  {
    name: 'parse (every header)',
    ours: () => corpus.reduce((sink, b) => sink + oursEveryHeader(oursParse(b)), 0),
    peer: () => corpus.reduce((sink, b) => sink + peerEveryHeader(peerParse(b)), 0),
  },
  {
    name: 'serialize',
    ours: () => oursParsed.reduce((sink, m) => sink + serialize(m).length, 0),
    peer: () => peerParsed.reduce((sink, m) => sink + sip.stringify(m).length, 0),
  },
  {
    name: 'parse+serialize (stack reads)',
    ours: () =>
      corpus.reduce((sink, b) => {
        const m = oursParse(b);
        return sink + oursStackReads(m) + serialize(m).length;
      }, 0),
    peer: () =>
      corpus.reduce((sink, b) => {
        const m = peerParse(b);
        return sink + peerStackReads(m) + sip.stringify(m).length;
      }, 0),
  },
  {
    name: 'parse+serialize (every header)',
    ours: () =>
      corpus.reduce((sink, b) => {
        const m = oursParse(b);
        return sink + oursEveryHeader(m) + serialize(m).length;
      }, 0),
    peer: () =>
      corpus.reduce((sink, b) => {
        const m = peerParse(b);
        return sink + peerEveryHeader(m) + sip.stringify(m).length;
      }, 0),
  },
];

// ---------------------------------------------------------------------------
// Measurement

/**
 * Messages per second of CPU time (process.cpuUsage, user + system), not wall
 * time: on a shared machine the time this process waits for a core is not
 * the parser's cost. Helper threads' CPU (GC, compiler) is included, for both sides.
 */
function measure(pass: Pass, passes: number): number {
  const start = process.cpuUsage();
  let sink = 0;
  for (let i = 0; i < passes; i++) sink += pass();
  const used = process.cpuUsage(start);
  const seconds = (used.user + used.system) / 1e6;
  if (sink === 0) throw new Error('benchmark did no work');
  return (passes * corpus.length) / Math.max(seconds, 1e-6);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export interface SipParseModeResult {
  mode: string;
  oursPerSec: number;
  peerPerSec: number;
  /** Median of the per-round ratios ours/peer. */
  ratio: number;
  ratioMin: number;
  ratioMax: number;
}

export interface SipParseResult {
  corpus: string;
  rounds: number;
  modes: SipParseModeResult[];
  /** The headline figure: parse+serialize with what the stack reads. */
  oursPerSec: number;
  peerPerSec: number;
  ratio: number;
}

export async function benchSipParse(
  options: { rounds?: number; roundMs?: number } = {},
): Promise<SipParseResult> {
  const rounds = options.rounds ?? 11;
  const roundMs = options.roundMs ?? 150;
  // Warm-up: let both reach their optimized tiers, then size rounds to ~roundMs.
  const warm = (pass: Pass): number => {
    const perSec = Math.max(measure(pass, 200), measure(pass, 1000));
    return Math.max(1, Math.round((perSec * roundMs) / 1000 / corpus.length));
  };
  const sized = modes.map((m) => ({ ...m, oursPasses: warm(m.ours), peerPasses: warm(m.peer) }));
  const samples = sized.map(() => ({ ours: [] as number[], peer: [] as number[], ratio: [] as number[] }));
  // Interleave rounds, modes and sides (alternating which goes first) so that
  // drift and other load on the machine hit both sides alike.
  for (let r = 0; r < rounds; r++) {
    for (const [i, m] of sized.entries()) {
      const s = samples[i] as (typeof samples)[number];
      let ours: number;
      let peer: number;
      if (r % 2 === 0) {
        ours = measure(m.ours, m.oursPasses);
        peer = measure(m.peer, m.peerPasses);
      } else {
        peer = measure(m.peer, m.peerPasses);
        ours = measure(m.ours, m.oursPasses);
      }
      s.ours.push(ours);
      s.peer.push(peer);
      s.ratio.push(ours / peer);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  const results: SipParseModeResult[] = sized.map((m, i) => {
    const s = samples[i] as (typeof samples)[number];
    return {
      mode: m.name,
      oursPerSec: median(s.ours),
      peerPerSec: median(s.peer),
      ratio: median(s.ratio),
      ratioMin: Math.min(...s.ratio),
      ratioMax: Math.max(...s.ratio),
    };
  });
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(9);
  console.log(`sip-parse: ours vs npm sip@0.0.6 on ${corpus.length} messages (${CORPUS_LABEL})`);
  console.log(
    `  msg per CPU second, median of ${rounds} interleaved rounds; ratio = median of per-round ratios (range)`,
  );
  for (const r of results) {
    console.log(
      `  ${r.mode.padEnd(31)} ours ${fmt(r.oursPerSec)}  peer ${fmt(r.peerPerSec)}  ratio ${r.ratio.toFixed(2)}x (${r.ratioMin.toFixed(2)}–${r.ratioMax.toFixed(2)})`,
    );
  }
  const headline = results[3] as SipParseModeResult;
  return {
    corpus: CORPUS_LABEL,
    rounds,
    modes: results,
    oursPerSec: headline.oursPerSec,
    peerPerSec: headline.peerPerSec,
    ratio: headline.ratio,
  };
}

function flag(name: string): number | undefined {
  const at = process.argv.indexOf(name);
  const value = at === -1 ? undefined : Number(process.argv[at + 1]);
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : undefined;
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(path.resolve(invokedPath)).href) {
  const options: { rounds?: number; roundMs?: number } = {};
  const rounds = flag('--rounds');
  const roundMs = flag('--round-ms');
  if (rounds !== undefined) options.rounds = rounds;
  if (roundMs !== undefined) options.roundMs = roundMs;
  await benchSipParse(options);
}
