/**
 * PROTOS c07-sip against a registered bot: how many of the suite's malformed
 * INVITEs get a response on the flow they came on.
 *
 *   node --import tsx bench/protos.ts <path to the PROTOS cases folder>
 *        [--every 9] [--offset 0] [--limit N] [--final-ms 3000] [--list | --all]
 *
 * The cases are the public PROTOS c07-sip test material (University of Oulu,
 * GPLv2; e.g. github.com/rtckit/protos-sip-test-cases, folder `cases/`). They
 * are not part of this repository: pass the folder. Each case file holds two
 * messages, each written as `<decimal byte count> SP <bytes>`: the INVITE
 * under test and a teardown template (ignored: the teardown is built here
 * from the bot's response).
 *
 * Set-up: LocalPbx (src/demo/local-pbx.ts, RingCentral-shaped, digest auth)
 * on loopback port 0 and a Softphone registered to it over TCP (not
 * recording, no RTP silence). Each chosen case is written to the device's
 * registration flow from the PBX side, as RingCentral's edge sends INVITEs.
 *
 * Placeholders are filled as the PROTOS tool does: <To> is the registered
 * user, <From>/<From-Address>/<From-IP>/<Local-Port> the PBX's address,
 * <Call-ID> and <Branch-ID> unique per case, <CSeq> 1, <Content-Length> the
 * body's byte length.
 *
 * Framing onto TCP: the cases were written for UDP, where the datagram ends
 * the message; on a stream Content-Length is the only delimiter (RFC 3261
 * 18.3), so each case is made to frame as exactly one message:
 *  - no blank line after the header fields: CRLFs are added to end them;
 *  - a Content-Length that is missing, repeated or not the body's byte count
 *    (the suite's Content-Length cases: -1, 2^128, …) is replaced by one
 *    field with the body's byte count (those cases then test nothing more).
 * The result is checked with the bot's own StreamFramer (case + probe must
 * come out as two events, the first being the case) and the figures say how
 * many cases are over the bot's size limits (16 KiB header section, 64 KiB
 * body: the framer skips them and the bot answers 513) or still do not frame
 * at all. Those are sent anyway; a case that costs the flow (the bot cannot
 * find where the next message starts, closes the connection and registers
 * again) is counted apart ("flow closed"), and the run waits for the new
 * registration.
 *
 * Per case: the case, then an OPTIONS probe. The bot handles one flow's
 * messages in order and sends its first response to a request (100 Trying,
 * 400, 505, …) before it reads the next message, so nothing from the bot
 * before the probe's 200 means the case got no response at all. A case
 * answered 1xx only is then given --final-ms for its final response.
 * Outcomes: answered (2xx: then ACK + BYE), rejected (3xx-6xx: then ACK),
 * provisional only (then CANCEL), unanswered, flow closed; a second probe
 * after the teardown keeps its answers out of the next case. A response
 * belongs to a case by the case's tag in its Via branch or its Call-ID, or,
 * when the case mangles both, by arriving between the case and its probe.
 * Responses are read whatever their size and whether or not our own parser
 * accepts them; how many our parser refuses is reported too (a 400 that
 * copies a malformed Via is as malformed as the request was).
 *
 * At the end a normal call is placed (LocalPbx.invite, then BYE) to show the
 * bot is still up and answering; the bot's warnings during the cases and its
 * reconnects are counted. Prints the figures (--list adds the cases without a
 * final answer, --all every case); exits 1 if the normal call fails.
 */
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { LocalPbx } from '../src/demo/local-pbx.js';
import { parseMessage } from '../src/sip/message/parse.js';
import { StreamFramer } from '../src/sip/transport/framer.js';
import { type Cleanups, callerSocket, RIG_USER, sdpOffer, startRig } from '../test/helpers/call-rig.js';
import { caseMessages, frameCase } from '../test/helpers/protos.js';

const CRLF = '\r\n';

/**
 * How the bot's framer (default limits) sees `bytes` followed by a probe:
 * the case as one message, the case as one message over the size limits,
 * or neither (the case would cost the flow).
 */
function framing(bytes: Buffer, probe: Buffer): 'message' | 'over the size limits' | 'unframeable' {
  const events = new StreamFramer().push(Buffer.concat([bytes, probe]));
  if (events.length !== 2 || events[1]?.type !== 'message') return 'unframeable';
  if (events[0]?.type === 'oversized') return 'over the size limits';
  return events[0]?.type === 'message' && Buffer.compare(events[0].bytes, bytes) === 0
    ? 'message'
    : 'unframeable';
}

interface Seen {
  status: number;
  /** Our strict parser refuses it (it copies a malformed field, or lacks a required one). */
  strict: boolean;
  callId: string | undefined;
  via: string | undefined;
  from: string | undefined;
  to: string | undefined;
  cseq: string | undefined;
}

/** Status and raw fields of a response the bot sent, even one our parser would refuse. */
function readResponse(bytes: Uint8Array): Seen | undefined {
  const r = parseMessage(bytes, BIG);
  const m = r.ok ? r.message : r.message;
  if (m?.type === 'response') {
    const h = m.headers;
    return {
      status: m.status,
      strict: !r.ok,
      callId: h.get('Call-ID'),
      via: h.get('Via'),
      from: h.get('From'),
      to: h.get('To'),
      cseq: h.get('CSeq'),
    };
  }
  const line = /^SIP\/2\.0 ([1-6][0-9][0-9])/.exec(Buffer.from(bytes).toString('latin1'));
  if (!line) return undefined;
  return {
    status: Number(line[1]),
    strict: true,
    callId: undefined,
    via: undefined,
    from: undefined,
    to: undefined,
    cseq: undefined,
  };
}

/** Whatever the bot sends is read, however large, so that nothing it says is missed. */
const BIG = { maxHeaderBytes: 1 << 24, maxBodyBytes: 1 << 24 };

type Outcome = 'answered' | 'rejected' | 'provisional only' | 'unanswered' | 'flow closed';
const OUTCOMES: readonly Outcome[] = [
  'answered',
  'rejected',
  'provisional only',
  'unanswered',
  'flow closed',
];

/** Reads the bot's responses off the device's flow (beside LocalPbx's own reader). */
class Reader {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  onResponse: ((r: Seen) => void) | undefined;
  /** Called whenever anything happens, for waits. */
  wake: (() => void) | undefined;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((r) => socket.once('close', () => r()));
    void this.closed.then(() => this.wake?.());
    const framer = new StreamFramer(BIG);
    socket.on('data', (chunk: Buffer) => {
      for (const ev of framer.push(chunk)) {
        if (ev.type !== 'message') continue;
        const seen = readResponse(ev.bytes);
        if (seen) this.onResponse?.(seen);
        this.wake?.();
      }
    });
  }

  /** Resolves when `done()` holds, the flow closes or `ms` pass; says whether `done()` holds. */
  async until(done: () => boolean, ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    while (!done() && !this.socket.destroyed) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    this.wake = undefined;
    return done();
  }
}

async function deviceSocket(pbx: LocalPbx): Promise<net.Socket> {
  for (;;) {
    const b = pbx.binding(RIG_USER.username);
    if (b) return b.socket;
    await once(pbx, 'register');
  }
}

/** An in-transaction or in-dialog request built from the raw fields of the bot's response. */
function request(method: string, uri: string, seen: Seen, cseq: string, via: string): string {
  const to = method === 'CANCEL' ? (seen.to ?? '').replace(/;tag=[^;]*$/, '') : (seen.to ?? '');
  return [
    `${method} ${uri} SIP/2.0`,
    `Via: ${via}`,
    `From: ${seen.from ?? ''}`,
    `To: ${to}`,
    `Call-ID: ${seen.callId ?? ''}`,
    `CSeq: ${cseq}`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join(CRLF);
}

function options(user: string, host: string, port: number, id: string): Buffer {
  return Buffer.from(
    [
      `OPTIONS sip:${user} SIP/2.0`,
      `Via: SIP/2.0/TCP ${host}:${port};branch=z9hG4bK-${id}`,
      `From: <sip:probe@${host}>;tag=probe`,
      `To: <sip:${user}>`,
      `Call-ID: ${id}`,
      'CSeq: 1 OPTIONS',
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join(CRLF),
  );
}

async function main(): Promise<number> {
  const { values: flags, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      every: { type: 'string', default: '9' },
      offset: { type: 'string', default: '0' },
      limit: { type: 'string' },
      'final-ms': { type: 'string', default: '3000' },
      list: { type: 'boolean', default: false },
      all: { type: 'boolean', default: false },
    },
  });
  const dir = positionals[0];
  if (!dir) {
    console.error('usage: node --import tsx bench/protos.ts <PROTOS cases folder> [--every 9] [--offset 0]');
    return 2;
  }
  const every = Number(flags.every);
  const offset = Number(flags.offset);
  const finalMs = Number(flags['final-ms']);
  let files = readdirSync(dir)
    .filter((f) => /^[0-9]+$/.test(f))
    .sort()
    .filter((_f, i) => i % every === offset);
  if (flags.limit !== undefined) files = files.slice(0, Number(flags.limit));

  const cleanups: Cleanups = [];
  // RTP ports for every case a call could take: an answered case's port is
  // quarantined after its call (port-pool.ts), and the final normal call needs one.
  const { pbx, phone } = await startRig(
    cleanups,
    { recordDir: undefined, sendSilence: false, maxCalls: 1000, keepAliveIntervalMs: 0 },
    Math.min(1000, files.length * 2 + 20),
  );
  const warnings: string[] = [];
  phone.on('warning', (w) => warnings.push(w.message));
  let reconnects = 0;
  phone.on('reconnecting', () => reconnects++);
  const { host, port } = pbx.address;
  const user = `${RIG_USER.username}@${pbx.domain}`;
  const run = Date.now().toString(36);

  const counts = new Map<Outcome, number>();
  const repairs = new Map<string, number>();
  const listed: string[] = [];
  const framings = new Map<string, number>();
  /** Bot warnings during the cases themselves (the teardown's are not counted). */
  const caseWarnings: string[] = [];
  let strictlyUnreadable = 0;
  let reader = new Reader(await deviceSocket(pbx));

  for (const [n, file] of files.entries()) {
    const [invite] = caseMessages(readFileSync(path.join(dir, file)));
    if (!invite) continue;
    // Unique per case and run: a response is this case's when its Via carries `tag`.
    const tag = `x${file}${run}`;
    const callId = `protos-${file}-${run}`;
    const framed = frameCase(invite, {
      '<To>': user,
      '<From>': `protos@${host}`,
      '<From-Address>': host,
      '<From-IP>': host,
      '<Local-Port>': String(port),
      '<Branch-ID>': tag,
      '<Call-ID>': callId,
      '<CSeq>': '1',
    });
    for (const r of framed.repairs) repairs.set(r, (repairs.get(r) ?? 0) + 1);
    const probeId = `probe-${n}-${run}`;
    const probe = options(user, host, port, probeId);
    const seenAs = framing(framed.bytes, probe);
    if (seenAs !== 'message') framings.set(seenAs, (framings.get(seenAs) ?? 0) + 1);

    if (reader.socket.destroyed) reader = new Reader(await deviceSocket(pbx));
    const mine: Seen[] = [];
    /** Call-IDs the bot used answering this case (its own, or a mangled one as copied). */
    const caseIds = new Set([callId]);
    let probed = false;
    reader.onResponse = (r) => {
      if (r.callId === probeId) probed = true;
      else if (
        r.via?.includes(tag) ||
        caseIds.has(r.callId ?? '') ||
        // The Via is mangled: anything before the probe's answer that is not an earlier case's.
        (!probed && !r.via?.includes(run))
      ) {
        mine.push(r);
        if (r.callId !== undefined) caseIds.add(r.callId);
      }
    };
    const warningsBefore = warnings.length;
    reader.socket.write(framed.bytes);
    reader.socket.write(probe);
    await reader.until(() => probed, 10_000);
    const finalOf = () => mine.find((r) => r.status >= 200);
    if (mine.length > 0 && !finalOf()) await reader.until(() => finalOf() !== undefined, finalMs);
    const final = finalOf();
    const said = warnings.slice(warningsBefore);
    caseWarnings.push(...said);
    let outcome: Outcome;
    if (mine.length === 0) outcome = reader.socket.destroyed ? 'flow closed' : 'unanswered';
    else if (!final) outcome = 'provisional only';
    else outcome = final.status < 300 ? 'answered' : 'rejected';
    counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    if (mine.some((r) => r.strict)) strictlyUnreadable++;

    // Teardown, so that no call or transaction outlives its case; then a
    // second probe, so that its answers are read before the next case.
    const first = mine[0];
    if (!reader.socket.destroyed && first?.via !== undefined) {
      const uri = `sip:${user}`;
      const seq = /^[ \t]*([0-9]+)/.exec(first.cseq ?? '')?.[1] ?? '1';
      if (final && final.status < 300) {
        reader.socket.write(
          request('ACK', uri, final, `${seq} ACK`, `SIP/2.0/TCP ${host}:${port};branch=z9hG4bK-ack-${tag}`),
        );
        reader.socket.write(
          request(
            'BYE',
            uri,
            final,
            `${Number(seq) + 1} BYE`,
            `SIP/2.0/TCP ${host}:${port};branch=z9hG4bK-bye-${tag}`,
          ),
        );
      } else if (final) reader.socket.write(request('ACK', uri, final, `${seq} ACK`, final.via ?? ''));
      else reader.socket.write(request('CANCEL', uri, first, `${seq} CANCEL`, first.via ?? ''));
      let synced = false;
      const endId = `${probeId}-end`;
      reader.onResponse = (r) => {
        if (r.callId === endId) synced = true;
      };
      reader.socket.write(options(user, host, port, endId));
      await reader.until(() => synced, 10_000);
    }
    reader.onResponse = undefined;

    const unanswered =
      outcome === 'unanswered' || outcome === 'flow closed' || outcome === 'provisional only';
    if (flags.all || (flags.list && unanswered)) {
      const firstLine = invite.toString('latin1', 0, Math.min(invite.indexOf(0x0d), 60));

      const statuses = mine.map((r) => r.status).join(',');
      listed.push(
        `${file} ${outcome} ${statuses} [${framed.repairs.join(', ')}] ${JSON.stringify(firstLine)}: ${(said.join(' | ') || '-').slice(0, 300)}`,
      );
    }
  }

  // The bot is still up: a normal call is answered and hung up.
  let normal: string;
  try {
    await deviceSocket(pbx);
    const caller = await callerSocket(cleanups);
    const call = await pbx.invite(RIG_USER.username, sdpOffer(caller.port));
    const bye = await call.bye();
    normal = `200 then BYE ${bye.status}`;
  } catch (err) {
    normal = `failed: ${err instanceof Error ? err.message : String(err)}`;
  }

  const total = files.length;
  const pct = (k: number) => `${((100 * k) / total).toFixed(1)} %`;
  console.log(`PROTOS c07-sip: ${total} INVITE cases (every ${every}th from ${offset}) over one TCP flow`);
  for (const o of OUTCOMES) {
    const k = counts.get(o) ?? 0;
    console.log(`  ${o.padEnd(17)} ${String(k).padStart(4)}  ${pct(k)}`);
  }
  const list = (m: Map<string, number>) => [...m].map(([r, k]) => `${r} ${k}`).join(', ') || 'none';
  console.log(
    `  framing repairs: ${list(repairs)}; not one plain message to the bot's framer: ${list(framings)}`,
  );
  console.log(
    `  cases whose response our own parser refuses (it copies what was malformed): ${strictlyUnreadable}`,
  );
  const dropped = caseWarnings.filter((w) => /^dropped a malformed/.test(w));
  console.log(
    `  bot warnings during the cases: ${caseWarnings.length}, of which "dropped a malformed …" ${dropped.length}; ${reconnects} reconnects`,
  );
  console.log(`  normal call afterwards: ${normal}; registered: ${phone.ua.registered}`);
  if (listed.length) console.log(listed.map((l) => `  ${l}`).join('\n'));

  for (const c of cleanups.reverse()) await c();
  return normal.startsWith('200') ? 0 : 1;
}

// Run when started as a script; importing it (for frameCase) runs nothing.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.exitCode = await main();
