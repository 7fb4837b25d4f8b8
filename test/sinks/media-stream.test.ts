import { once } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { isSoftphoneError, type SoftphoneError } from '../../src/errors.js';
import { decodeUlaw, encodeUlawFrame } from '../../src/media/g711.js';
import {
  MediaStreamClient,
  type MediaStreamCloseInfo,
  streamUrlProblem,
} from '../../src/sinks/media-stream.js';
import { localhostCertificate } from '../helpers/tls-cert.js';

// biome-ignore lint/suspicious/noExplicitAny: test peer inspects arbitrary JSON
type Json = any;

/** The server side of one stream: every JSON message it got, and a way to wait for one. */
class Peer {
  readonly messages: Json[] = [];
  readonly closed: Promise<number>;
  #waiters: Array<{ match: (m: Json) => boolean; resolve: (m: Json) => void }> = [];

  constructor(
    readonly ws: WebSocket,
    readonly req: IncomingMessage,
  ) {
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      this.messages.push(msg);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.match(msg)) return true;
        w.resolve(msg);
        return false;
      });
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  }

  waitFor(match: (m: Json) => boolean): Promise<Json> {
    const seen = this.messages.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  send(message: object): void {
    this.ws.send(JSON.stringify(message));
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** A WebSocket server on a free port; `secure`: wss:// with the self-signed localhost certificate. */
async function listen(secure = false): Promise<{ url: string; peer: Promise<Peer> }> {
  const tlsServer = secure ? https.createServer(localhostCertificate()) : undefined;
  const wss = tlsServer
    ? new WebSocketServer({ server: tlsServer })
    : new WebSocketServer({ host: '127.0.0.1', port: 0 });
  if (tlsServer) {
    tlsServer.listen(0, '127.0.0.1');
    await once(tlsServer, 'listening');
  } else {
    await once(wss, 'listening');
  }
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => (tlsServer ? tlsServer.close(() => resolve()) : resolve()));
      }),
  );
  const peer = new Promise<Peer>((resolve) => {
    wss.once('connection', (ws, req) => resolve(new Peer(ws, req)));
  });
  const { port } = (tlsServer ?? wss).address() as AddressInfo;
  return { url: `${secure ? 'wss' : 'ws'}://127.0.0.1:${port}/media?token=s3cret`, peer };
}

function client(options: ConstructorParameters<typeof MediaStreamClient>[0] = {}) {
  const c = new MediaStreamClient(options);
  const errors: SoftphoneError[] = [];
  const marks: string[] = [];
  c.on('error', (err) => errors.push(err));
  c.on('mark', (name) => marks.push(name));
  cleanups.push(() => c.stop());
  return { c, errors, marks };
}

const CALL = { callId: 'call-1', from: '+15550001111', to: '+15550002222' };

function frameOf(seed: number): Int16Array {
  const frame = new Int16Array(160);
  for (let i = 0; i < frame.length; i++) frame[i] = ((seed * 7919 + i * 104729) % 65536) - 32768;
  return frame;
}

function ulawOf(frame: Int16Array): Buffer {
  const out = Buffer.alloc(frame.length);
  encodeUlawFrame(frame, out);
  return out;
}

function randomUlaw(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (seed * 31 + i * 17) & 0xff;
  return b;
}

/** The frames the client should play for these payloads, with a mark after the last one. */
function expectedFrames(payloads: Buffer[]): Int16Array[] {
  const all = Buffer.concat(payloads);
  const frames: Int16Array[] = [];
  for (let off = 0; off < all.length; off += 160) {
    const frame = new Int16Array(160); // zero = silence for the padded tail
    decodeUlaw(all.subarray(off, off + 160), frame);
    frames.push(frame);
  }
  return frames;
}

function messageEvent(c: MediaStreamClient, match: (m: Json) => boolean): Promise<Json> {
  return new Promise((resolve) => {
    const on = (m: Json) => {
      if (!match(m)) return;
      c.off('message', on);
      resolve(m);
    };
    c.on('message', on);
  });
}

describe('MediaStreamClient (Twilio Media Streams)', () => {
  it('sends connected, start, media…, dtmf, stop in order and in Twilio’s shapes', async () => {
    const { url, peer: peerP } = await listen();
    const { c, errors } = client();
    const frame = new Int16Array(160); // reused, as MediaSession does
    const sent: Buffer[] = [];
    const send = (n: number) => {
      frame.set(frameOf(n));
      sent.push(ulawOf(frame));
      c.sendFrame(frame);
      frame.fill(1234);
    };

    const opened = c.connect(url, {
      ...CALL,
      customParameters: { lang: 'en-US' },
      headers: { Authorization: 'Bearer abc' },
    });
    for (let n = 0; n < 3; n++) send(n); // queued while connecting
    await opened;
    const peer = await peerP;
    for (let n = 3; n < 10; n++) send(n);
    c.sendDtmf('5');
    c.sendDtmf('x'); // not a DTMF digit: ignored
    send(10);
    await c.stop();
    expect(await peer.closed).toBe(1000);

    expect(peer.req.headers.authorization).toBe('Bearer abc');
    expect(peer.req.url).toBe('/media?token=s3cret');
    const sid = c.streamSid;
    expect(sid).toMatch(/^MZ[0-9a-f]{32}$/);
    const m = peer.messages;
    expect(m.map((x) => x.event)).toEqual([
      'connected',
      'start',
      ...Array(10).fill('media'),
      'dtmf',
      'media',
      'stop',
    ]);
    expect(m[0]).toEqual({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    expect(m[1]).toEqual({
      event: 'start',
      sequenceNumber: '1',
      start: {
        streamSid: sid,
        callSid: 'call-1',
        tracks: ['inbound'],
        customParameters: { from: '+15550001111', to: '+15550002222', lang: 'en-US' },
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
      streamSid: sid,
    });
    const media = m.filter((x) => x.event === 'media');
    media.forEach((msg, i) => {
      expect(msg).toEqual({
        event: 'media',
        sequenceNumber: expect.any(String),
        media: {
          track: 'inbound',
          chunk: String(i + 1),
          timestamp: String(i * 20),
          payload: expect.any(String),
        },
        streamSid: sid,
      });
      expect(Buffer.from(msg.media.payload, 'base64')).toEqual(sent[i]);
    });
    expect(m[12]).toEqual({
      event: 'dtmf',
      streamSid: sid,
      sequenceNumber: '12',
      dtmf: { track: 'inbound_track', digit: '5' },
    });
    expect(m.at(-1)).toEqual({
      event: 'stop',
      sequenceNumber: '14',
      stop: { callSid: 'call-1' },
      streamSid: sid,
    });
    // Every message after connected is numbered 1, 2, 3… as strings.
    expect(m.slice(1).map((x) => x.sequenceNumber)).toEqual(m.slice(1).map((_, i) => String(i + 1)));
    expect(c.stats).toMatchObject({ sent: 11, dropped: 0, backlog: 0 });
    expect(errors).toEqual([]);
  });

  it('completes a short last frame with u-law silence: every media message is 20 ms', async () => {
    const { url, peer: peerP } = await listen();
    const { c } = client();
    await c.connect(url, CALL);
    const peer = await peerP;
    const tail = frameOf(7).subarray(0, 100); // the call ended 12.5 ms into a frame
    c.sendFrame(tail);
    await c.stop();
    await peer.closed;
    const media = peer.messages.filter((x) => x.event === 'media') as { media: { payload: string } }[];
    expect(media).toHaveLength(1);
    const payload = Buffer.from(media[0]?.media.payload ?? '', 'base64');
    expect(payload.length).toBe(160);
    expect(payload.subarray(0, 100).equals(ulawOf(tail))).toBe(true);
    expect(payload.subarray(100).every((b) => b === 0xff)).toBe(true);
  });

  it('includes accountSid in start and stop when given', async () => {
    const { url, peer: peerP } = await listen();
    const { c } = client();
    await c.connect(url, { ...CALL, accountSid: 'AC00000000000000000000000000000001', streamSid: 'MZtest' });
    const peer = await peerP;
    await c.stop();
    await peer.closed;
    expect(peer.messages[1].start.accountSid).toBe('AC00000000000000000000000000000001');
    expect(peer.messages[1].streamSid).toBe('MZtest');
    expect(peer.messages.at(-1).stop).toEqual({
      accountSid: 'AC00000000000000000000000000000001',
      callSid: 'call-1',
    });
  });

  it('plays talk-back media of any length as 160-sample frames and echoes a mark only after its audio', async () => {
    const { url, peer: peerP } = await listen();
    const { c, marks } = client();
    await c.connect(url, CALL);
    const peer = await peerP;
    await peer.waitFor((m) => m.event === 'start');

    const first = [100, 60, 160, 400, 30].map((len, i) => randomUlaw(len, i + 1)); // 750 bytes
    const second = [randomUlaw(320, 9)];
    const lastMessage = messageEvent(c, (m) => m.event === 'mark' && m.mark?.name === 'm2');
    for (const p of first)
      peer.send({ event: 'media', streamSid: c.streamSid, media: { payload: p.toString('base64') } });
    peer.send({ event: 'mark', streamSid: c.streamSid, mark: { name: 'm1' } });
    for (const p of second)
      peer.send({ event: 'media', streamSid: c.streamSid, media: { payload: p.toString('base64') } });
    peer.send({ event: 'mark', streamSid: c.streamSid, mark: { name: 'm2' } });
    await lastMessage;

    const want1 = expectedFrames(first); // 4 full frames + 110 samples padded with silence
    const want2 = expectedFrames(second);
    expect(want1).toHaveLength(5);
    expect(c.stats.queuedPlayback).toBe(7);
    for (const want of want1) {
      expect(marks).toEqual([]); // m1 waits for the audio before it
      expect(c.outbound.nextFrame()).toEqual(want);
    }
    expect(marks).toEqual(['m1']);
    const echo1 = await peer.waitFor((m) => m.event === 'mark');
    expect(echo1).toEqual({
      event: 'mark',
      sequenceNumber: expect.any(String),
      streamSid: c.streamSid,
      mark: { name: 'm1' },
    });
    expect(c.outbound.nextFrame()).toEqual(want2[0]);
    expect(marks).toEqual(['m1']);
    expect(c.outbound.nextFrame()).toEqual(want2[1]);
    expect(marks).toEqual(['m1', 'm2']);
    await peer.waitFor((m) => m.event === 'mark' && m.mark.name === 'm2');
    expect(c.outbound.nextFrame()).toBeUndefined();
    expect(c.stats).toMatchObject({ played: 7, marks: 2, queuedPlayback: 0 });
  });

  it('completes a partial frame with the next payload, or plays it padded once it has stalled a tick', async () => {
    const { url, peer: peerP } = await listen();
    const { c } = client();
    await c.connect(url, CALL);
    const peer = await peerP;

    const a = randomUlaw(100, 1);
    let got = messageEvent(c, (m) => m.event === 'media');
    peer.send({ event: 'media', media: { payload: a.toString('base64') } });
    await got;
    expect(c.outbound.nextFrame()).toBeUndefined(); // maybe more is on its way
    const b = randomUlaw(60, 2);
    got = messageEvent(c, (m) => m.event === 'media');
    peer.send({ event: 'media', media: { payload: b.toString('base64') } });
    await got;
    expect(c.outbound.nextFrame()).toEqual(expectedFrames([a, b])[0]); // merged, no silence inserted

    const tail = randomUlaw(40, 3);
    got = messageEvent(c, (m) => m.event === 'media');
    peer.send({ event: 'media', media: { payload: tail.toString('base64') } });
    await got;
    expect(c.outbound.nextFrame()).toBeUndefined();
    expect(c.outbound.nextFrame()).toEqual(expectedFrames([tail])[0]);
    expect(c.outbound.nextFrame()).toBeUndefined();
  });

  it('clear empties the playout queue and sends back the pending marks', async () => {
    const { url, peer: peerP } = await listen();
    const { c, marks } = client();
    await c.connect(url, CALL);
    const peer = await peerP;

    const markB = messageEvent(c, (m) => m.event === 'mark' && m.mark?.name === 'b');
    peer.send({ event: 'media', media: { payload: randomUlaw(1600, 1).toString('base64') } });
    peer.send({ event: 'mark', mark: { name: 'a' } });
    peer.send({ event: 'media', media: { payload: randomUlaw(800, 2).toString('base64') } });
    peer.send({ event: 'mark', mark: { name: 'b' } });
    await markB;
    expect(c.outbound.nextFrame()).toBeDefined();
    expect(c.outbound.nextFrame()).toBeDefined();
    expect(marks).toEqual([]);

    const cleared = messageEvent(c, (m) => m.event === 'clear');
    peer.send({ event: 'clear', streamSid: c.streamSid });
    await cleared;
    expect(marks).toEqual(['a', 'b']);
    expect(c.outbound.nextFrame()).toBeUndefined();
    expect(c.stats).toMatchObject({ cleared: 13, played: 2, marks: 2, queuedPlayback: 0 });
    await peer.waitFor((m) => m.event === 'mark' && m.mark.name === 'b');
    expect(peer.messages.filter((m) => m.event === 'mark').map((m) => m.mark.name)).toEqual(['a', 'b']);
  });

  it('ignores binary frames, invalid JSON and unknown events', async () => {
    const { url, peer: peerP } = await listen();
    const { c, errors } = client();
    await c.connect(url, CALL);
    const peer = await peerP;
    const done = messageEvent(c, (m) => m.event === 'mark');
    peer.ws.send(Buffer.from([1, 2, 3]));
    peer.ws.send('not json');
    peer.ws.send('[1,2]');
    peer.send({ event: 'something-new' });
    peer.send({ event: 'media', media: {} });
    peer.send({ event: 'mark', mark: { name: 'done' } });
    await done;
    expect(c.outbound.nextFrame()).toBeUndefined();
    expect(errors).toEqual([]);
    expect(c.state).toBe('open');
  });

  it('reports a server that closes mid-call; sendFrame and nextFrame stay safe', async () => {
    const { url, peer: peerP } = await listen();
    const { c, errors } = client();
    await c.connect(url, CALL);
    const peer = await peerP;
    const talk = messageEvent(c, (m) => m.event === 'media');
    peer.send({ event: 'media', media: { payload: randomUlaw(320, 1).toString('base64') } });
    await talk;
    // (events.once would reject on the `error` that precedes `close`.)
    const closed = new Promise<MediaStreamCloseInfo>((resolve) => c.once('close', resolve));
    peer.ws.close(1011, 'bot crashed');
    const info = await closed;

    expect(info).toMatchObject({ code: 1011, reason: 'bot crashed' });
    expect(errors).toHaveLength(1);
    expect(isSoftphoneError(errors[0], 'STREAM_FAILED')).toBe(true);
    expect(info.error).toBe(errors[0]);
    expect(errors[0]!.message).not.toContain('s3cret');
    expect(() => {
      for (let n = 0; n < 10; n++) c.sendFrame(frameOf(n));
      c.sendDtmf('1');
    }).not.toThrow();
    expect(c.stats.dropped).toBe(10);
    // Talk-back that already arrived still plays.
    expect(c.outbound.nextFrame()).toBeDefined();
    expect(c.outbound.nextFrame()).toBeDefined();
    expect(c.outbound.nextFrame()).toBeUndefined();
    await c.stop();
    expect(errors).toHaveLength(1);
  });

  it('rejects connect and reports STREAM_FAILED when nothing listens, without leaking the URL', async () => {
    const { url } = await listen();
    const deadPort = http.createServer();
    deadPort.listen(0, '127.0.0.1');
    await once(deadPort, 'listening');
    const { port } = deadPort.address() as AddressInfo;
    await new Promise((resolve) => deadPort.close(resolve));

    const { c, errors } = client();
    const target = url.replace(/:\d+\//, `:${port}/`);
    await expect(c.connect(target, CALL)).rejects.toMatchObject({ code: 'STREAM_FAILED' });
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).not.toContain('s3cret');
    expect(JSON.stringify(errors[0]!.details)).not.toContain('s3cret');
    expect(() => c.sendFrame(frameOf(0))).not.toThrow();
    await c.stop();

    const bad = client();
    await expect(bad.c.connect('http://127.0.0.1:1/x', CALL)).rejects.toMatchObject({
      code: 'STREAM_FAILED',
    });
  });

  it('streams over wss:// to a server whose private CA is given, in the same messages as ws://', async () => {
    const { url, peer: peerP } = await listen(true);
    const { c, errors } = client({ ca: localhostCertificate().cert });
    await c.connect(url, CALL);
    const peer = await peerP;
    c.sendFrame(frameOf(1));
    const media = await peer.waitFor((m) => m.event === 'media');
    expect(Buffer.from(media.media.payload, 'base64')).toEqual(ulawOf(frameOf(1)));
    expect(peer.messages.slice(0, 2).map((m: Json) => m.event)).toEqual(['connected', 'start']);
    await c.stop();
    expect(errors).toEqual([]);
  });

  it('refuses a wss:// certificate it cannot verify: STREAM_FAILED with the reason, no data sent', async () => {
    const { url, peer: peerP } = await listen(true);
    let connected = false;
    void peerP.then(() => {
      connected = true;
    });
    const { c, errors } = client();
    await expect(c.connect(url, CALL)).rejects.toMatchObject({ code: 'STREAM_FAILED' });
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/self[- ]signed/);
    expect(errors[0]!.message).not.toContain('s3cret');
    expect(connected).toBe(false);
    expect(() => c.sendFrame(frameOf(0))).not.toThrow();
  });

  it('bounds the backlog while the connection is still opening, and counts the drops', async () => {
    // A server that accepts the TCP connection but never answers the upgrade.
    const sockets: Duplex[] = [];
    const server = http.createServer();
    server.on('upgrade', (_req, socket) => sockets.push(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        }),
    );
    const upgraded = once(server, 'upgrade');
    const { port } = server.address() as AddressInfo;
    const { c, errors } = client({ maxBufferMs: 1000, closeTimeoutMs: 200 });
    void c.connect(`ws://127.0.0.1:${port}/`, CALL);
    await upgraded;
    for (let n = 0; n < 500; n++) c.sendFrame(frameOf(n));
    expect(c.stats).toMatchObject({ backlog: 50, dropped: 450, sent: 0 });
    await c.stop();
    expect(c.stats).toMatchObject({ backlog: 0, dropped: 500, sent: 0 });
    expect(c.state).toBe('closed');
    expect(errors.every((e) => e.code === 'STREAM_FAILED')).toBe(true);
  });

  it('bounds the backlog when the server stops reading', async () => {
    const { url, peer: peerP } = await listen();
    const { c, errors } = client({ maxBufferMs: 1000 });
    await c.connect(url, CALL);
    const peer = await peerP;
    await peer.waitFor((m) => m.event === 'start');
    const rawSocket = (peer.ws as unknown as { _socket: import('node:net').Socket })._socket;
    rawSocket.pause();

    // Keep offering frames, a few per turn of the event loop so write
    // callbacks can run, until the kernel's socket buffers are full and
    // frames start being dropped.
    const frame = frameOf(1);
    let offered = 0;
    let maxBacklog = 0;
    while (c.stats.dropped === 0 && offered < 1_000_000) {
      for (let n = 0; n < 10; n++, offered++) c.sendFrame(frame);
      maxBacklog = Math.max(maxBacklog, c.stats.backlog);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(c.stats.dropped).toBeGreaterThan(0);
    expect(c.stats.sent).toBeGreaterThan(100); // it flowed until the server stopped draining the socket
    expect(maxBacklog).toBeLessThanOrEqual(50);
    rawSocket.resume();
    await c.stop();
    expect(c.stats.sent + c.stats.dropped).toBe(offered);
    expect(errors).toEqual([]);
  });

  it('stop() before connect, and twice, is harmless', async () => {
    const { c } = client();
    c.sendFrame(frameOf(0));
    await c.stop();
    await c.stop();
    expect(c.stats.dropped).toBe(1);
    await expect(c.connect('ws://127.0.0.1:1/', CALL)).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

describe('streamUrlProblem', () => {
  it.each([
    ['ws://localhost:8080/media', undefined],
    ['wss://bot.example.com/media?token=abc', undefined],
    ['WSS://user:pw@[::1]:443/m', undefined],
    ['ws://a b', 'must not contain whitespace'],
    ['ws://host/a b', 'must not contain whitespace'],
    [' ws://host/', 'must not contain whitespace'],
    ['http://host/media', 'must start with ws:// or wss://'],
    ['ws:host', 'must start with ws:// or wss://'],
    ['ws://host:99999/media', 'port must be 1-65535'],
    ['ws://[::1]:65536/', 'port must be 1-65535'],
    ['ws://host:0/', 'port must be 1-65535'],
    ['ws://ho%st/', 'is not a valid URL'],
    ['ws:///media', 'needs a host'],
    ['ws://host/media#x', 'must not have a #fragment'],
  ])('%j: %s', (url, problem) => {
    expect(streamUrlProblem(url)).toBe(problem);
  });
});
