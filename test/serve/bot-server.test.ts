/**
 * BotServer on loopback against a stand-in RingCX (test/helpers/ringcx.ts):
 * routing by DID and header, 404 for an unknown DID, the INVITE's headers at
 * the engine, intents from the engine's stdout and from the media stream as
 * INFO, the final intent's BYE, the sidecar, over TCP, UDP and TLS.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { Call, CallEndInfo } from '../../src/call/call.js';
import { AllowList, parseCidr } from '../../src/serve/allow-list.js';
import { BotServer, type BotServerOptions, type IntentOutcome } from '../../src/serve/bot-server.js';
import { type Bot, type BotDefaults, singleBot } from '../../src/serve/bots.js';
import type { CallSidecar } from '../../src/sinks/sidecar.js';
import { freeUdpPortRange } from '../helpers/ports.js';
import { offer, RingCx, responseTo } from '../helpers/ringcx.js';
import { localhostCertificate } from '../helpers/tls-cert.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DEFAULTS: BotDefaults = {
  recordDir: undefined,
  pipe: undefined,
  pipeGraceMs: 2000,
  streamUrl: undefined,
  codecs: undefined,
  play: undefined,
  maxCalls: 10,
  mediaTimeoutMs: 30_000,
  maxCallDurationMs: 600_000,
};

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-serve-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function allow(...cidrs: string[]): (address: string) => boolean {
  const list = new AllowList(
    cidrs.map((c) => {
      const p = parseCidr(c);
      if (!p.ok) throw new Error(p.reason);
      return p.cidr;
    }),
  );
  return (a) => list.allows(a);
}

async function startServer(bots: Bot[], extra: Partial<BotServerOptions> = {}) {
  const min = await freeUdpPortRange(20);
  const server = new BotServer({
    listen: [
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tls', host: '127.0.0.1', port: 0 },
    ],
    admit: allow('127.0.0.0/8'),
    tls: localhostCertificate(),
    bots,
    rtpPorts: { min, max: min + 19 },
    mediaIp: '127.0.0.1',
    ...extra,
  });
  cleanups.push(() => server.stop());
  const warnings: string[] = [];
  server.on('warning', (w) => warnings.push(`${w.code}: ${w.message}`));
  const ended = new Map<string, Promise<CallEndInfo>>();
  const endResolvers = new Map<string, (info: CallEndInfo) => void>();
  server.on('incomingCall', (call) => {
    ended.set(call.id, new Promise((resolve) => endResolvers.set(call.id, resolve)));
  });
  server.on('callEnded', (call, info) => endResolvers.get(call.id)?.(info));
  const intents: IntentOutcome[] = [];
  server.on('intent', (_call, outcome) => intents.push(outcome));
  await server.start();
  const port = (t: 'tcp' | 'udp' | 'tls') => server.addresses.find((a) => a.transport === t)?.port as number;
  return { server, port, warnings, ended, intents };
}

async function rtpSocket() {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  cleanups.push(() => socket.close());
  return socket;
}

function connect(transport: 'tcp' | 'udp' | 'tls', port: number, localAddress?: string) {
  return RingCx.connect({
    transport,
    port,
    ...(localAddress && { localAddress }),
    ...(transport === 'tls' && { ca: localhostCertificate().cert }),
  }).then((rx) => {
    cleanups.push(() => rx.close());
    return rx;
  });
}

describe('BotServer', () => {
  it('answers OPTIONS, refuses an unknown DID with 404, and routes by DID and by header', async () => {
    const { server, port } = await startServer([
      { ...singleBot(['16505550100'], DEFAULTS), name: 'sales' },
      { ...DEFAULTS, name: 'vip', dids: ['16505550199'], header: { name: 'X-Bot', value: 'vip' } },
    ]);
    const rejected: number[] = [];
    server.on('callRejected', (r) => rejected.push(r.status));
    const rx = await connect('tcp', port('tcp'));
    expect((await rx.options()).status).toBe(200);
    const unknown = await rx.invite({ did: '16505559999', sdp: offer(40000) });
    expect(unknown.final.status).toBe(404);
    expect(rejected).toEqual([404]);

    const bots: string[] = [];
    server.on('incomingCall', (call) => bots.push(server.callInfo(call)?.bot ?? '?'));
    const rtp = await rtpSocket();
    const a = await rx.invite({ did: '+1-650-555-0100', sdp: offer(rtp.address().port) });
    expect(a.final.status).toBe(200);
    // A header chooses the bot whatever the DID.
    const b = await rx.invite({
      did: '16505550100',
      sdp: offer(rtp.address().port),
      headers: [['X-Bot', 'vip']],
    });
    expect(b.final.status).toBe(200);
    expect(bots).toEqual(['sales', 'vip']);
    expect((await a.bye()).status).toBe(200);
    expect((await b.bye()).status).toBe(200);
  });

  for (const transport of ['tcp', 'udp', 'tls'] as const) {
    it(`${transport.toUpperCase()}: the engine gets the INVITE's headers, its rcInfo goes out as INFO, the final one ends with RingCX's BYE; sidecar`, async () => {
      const dir = tempDir();
      const script = [
        'printf "%s" "$RC_SIP_HEADERS" > "$OUT/headers.json"',
        'printf "%s %s %s" "$RC_DID" "$RC_CALLER" "$RC_BOT" > "$OUT/ids.txt"',
        'echo \'{"rcInfo": {"intent": "billing", "confidence": 0.9}}\'',
        "echo 'not json'",
        'echo \'{"rcInfo": {"intent": "done", "final": true}}\'',
        'cat > /dev/null',
      ].join('; ');
      const bot: Bot = {
        ...singleBot(['16505550100'], { ...DEFAULTS, recordDir: dir, pipe: `OUT=${dir}; ${script}` }),
        name: 'billing',
      };
      const { server, port, ended, intents, warnings } = await startServer([bot]);
      const rx = await connect(transport, port(transport));
      const rtp = await rtpSocket();
      // RingCX negotiates SRTP over TLS (our default there: required).
      const srtpKey = transport === 'tls' ? 'WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz' : undefined;
      const call = await rx.invite({
        did: '16505550100',
        sdp: offer(rtp.address().port, srtpKey ? { srtpKey } : {}),
        fromUser: '+14155550123',
        headers: [
          ['X-RingCX-Campaign', 'spring sale'],
          ['X-RingCX-Agent', '42'],
          ['Proxy-Authorization', 'Digest username="x", response="secret-digest"'],
        ],
      });
      expect(call.final.status).toBe(200);
      const first = await call.nextInfo();
      expect(first.headers.get('Content-Type')).toBe('application/json');
      expect(JSON.parse(Buffer.from(first.body).toString('utf8'))).toEqual({
        intent: 'billing',
        confidence: 0.9,
      });
      const second = await call.nextInfo();
      expect(JSON.parse(Buffer.from(second.body).toString('utf8'))).toEqual({ intent: 'done', final: true });
      // RingCX hangs up after the final intent.
      expect((await call.bye()).status).toBe(200);
      const [callId] = [...ended.keys()];
      const info = await ended.get(callId as string);
      expect(info?.reason).toBe('remote-bye');
      expect(intents.map((i) => [i.source, i.final, i.status])).toEqual([
        ['pipe', false, 200],
        ['pipe', true, 200],
      ]);
      const headers = JSON.parse(readFileSync(path.join(dir, 'headers.json'), 'utf8')) as Record<
        string,
        string
      >;
      expect(headers['X-RingCX-Campaign']).toBe('spring sale');
      expect(headers['X-RingCX-Agent']).toBe('42');
      expect(headers['Call-ID']).toBe(call.callId);
      // Credentials never reach the engine.
      expect(JSON.stringify(headers)).not.toContain('secret-digest');
      expect(readFileSync(path.join(dir, 'ids.txt'), 'utf8')).toBe('16505550100 +14155550123 billing');
      const sidecar = JSON.parse(readFileSync(info?.sidecar as string, 'utf8')) as CallSidecar;
      expect(sidecar.serve).toMatchObject({
        did: '16505550100',
        bot: 'billing',
        intents: [
          { source: 'pipe', final: false, status: 200, reason: 'OK' },
          { source: 'pipe', final: true, status: 200, reason: 'OK' },
        ],
      });
      expect(warnings).toEqual([]);
      void server;
    });
  }

  it('TCP: the final intent’s 200 and RingCX’s BYE in one read: the sidecar still has the intent with its 200', async () => {
    const dir = tempDir();
    const { server, port, ended } = await startServer([singleBot([], { ...DEFAULTS, recordDir: dir })]);
    let answered: Call | undefined;
    server.on('callAnswered', (call) => {
      answered = call;
    });
    const rx = await connect('tcp', port('tcp'));
    rx.leaveUnanswered.set('INFO', 1);
    const rtp = await rtpSocket();
    const call = await rx.invite({ did: 'x', sdp: offer(rtp.address().port) });
    const sent = server.sendIntent(answered as Call, { intent: 'done', final: true });
    const info = await call.nextInfo();
    expect((await call.byeAfter(responseTo(info, 200))).status).toBe(200);
    expect(await sent).toMatchObject({ status: 200, final: true });
    const end = await ended.get(answered?.id as string);
    expect(end?.reason).toBe('remote-bye');
    const sidecar = JSON.parse(readFileSync(end?.sidecar as string, 'utf8')) as CallSidecar;
    expect(sidecar.serve?.intents).toMatchObject([{ final: true, status: 200, reason: 'OK', source: 'api' }]);
  });

  it('UDP: an INFO RingCX does not answer is sent again (Timer E), same transaction, until it does', async () => {
    const { server, port } = await startServer([singleBot([], DEFAULTS)]);
    let answered: Call | undefined;
    server.on('callAnswered', (call) => {
      answered = call;
    });
    const rx = await connect('udp', port('udp'));
    rx.leaveUnanswered.set('INFO', 2);
    const rtp = await rtpSocket();
    const call = await rx.invite({ did: 'x', sdp: offer(rtp.address().port) });
    const outcome = await server.sendIntent(answered as Call, { intent: 'retry' });
    expect(outcome.status).toBe(200);
    expect(call.infos).toHaveLength(3);
    const branches = new Set(call.infos.map((i) => i.headers.topVia()?.params.get('branch')));
    const cseqs = new Set(call.infos.map((i) => i.headers.get('CSeq')));
    expect([branches.size, cseqs.size]).toEqual([1, 1]);
    await call.bye();
  });

  it('hangs up itself when RingCX sends no BYE within the timeout after the final intent', async () => {
    const { server, port, ended } = await startServer([singleBot([], DEFAULTS)], { finalByeTimeoutMs: 200 });
    const hangups: number[] = [];
    server.on('finalHangup', (_call, info) => hangups.push(info.afterMs));
    let answered: Call | undefined;
    server.on('callAnswered', (call) => {
      answered = call;
    });
    const rx = await connect('udp', port('udp'));
    const rtp = await rtpSocket();
    const call = await rx.invite({ did: 'anything', sdp: offer(rtp.address().port) });
    expect(call.final.status).toBe(200);
    const outcome = await server.sendIntent(answered as Call, { intent: 'bye', final: true });
    expect(outcome).toMatchObject({ status: 200, final: true, source: 'api' });
    await call.byeReceived();
    const info = await ended.get(answered?.id as string);
    expect(info?.reason).toBe('local-hangup');
    expect(hangups).toEqual([200]);
  });

  it('media stream: start.customParameters carry the DID, caller, bot and headers; an info message is sent as INFO', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())));
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const starts: Record<string, unknown>[] = [];
    wss.on('connection', (ws) => {
      ws.on('message', (data) => {
        const msg = JSON.parse(String(data)) as { event: string; start?: Record<string, unknown> };
        if (msg.event === 'start' && msg.start) {
          starts.push(msg.start);
          ws.send(JSON.stringify({ event: 'info', info: { intent: 'agent', final: false } }));
          ws.send(JSON.stringify({ event: 'info', info: 'not an object' }));
        }
      });
    });
    const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}/media`;
    const { server, port, intents } = await startServer([
      singleBot(['777'], { ...DEFAULTS, streamUrl: url }),
    ]);
    const rx = await connect('tcp', port('tcp'));
    const rtp = await rtpSocket();
    const intentSent = once(server, 'intent');
    const call = await rx.invite({
      did: '777',
      sdp: offer(rtp.address().port),
      headers: [['X-Queue', 'q1']],
    });
    const info = await call.nextInfo();
    expect(JSON.parse(Buffer.from(info.body).toString('utf8'))).toEqual({ intent: 'agent', final: false });
    const params = starts[0]?.customParameters as Record<string, string>;
    expect(params).toMatchObject({ did: '777', caller: '16505550123', bot: '777' });
    expect(JSON.parse(params.sipHeaders as string)['X-Queue']).toBe('q1');
    await intentSent;
    expect(intents.map((i) => i.source)).toEqual(['stream']);
    await call.bye();
  });
});
