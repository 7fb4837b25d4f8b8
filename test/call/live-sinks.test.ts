import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Call, CallEndInfo } from '../../src/call/call.js';
import { encodeUlawFrame, ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { RtpSender } from '../../src/media/rtp-sender.js';
import { parseRtp } from '../../src/rtp/packet.js';
import type { SoftphoneOptions } from '../../src/softphone.js';
import { answerPort, callerSocket, RIG_USER, sdpOffer, startRig } from '../helpers/call-rig.js';
import { waitFor } from '../helpers/ports.js';
import { localhostCertificate } from '../helpers/tls-cert.js';
import { readWav } from '../helpers/wav.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmp(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-live-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function setup(options: Partial<SoftphoneOptions>) {
  const { pbx, phone } = await startRig(cleanups, options, 10);
  const { socket } = await callerSocket(cleanups);
  const received: { at: number; payloadType: number; payload: Uint8Array }[] = [];
  socket.on('message', (m) => {
    const p = parseRtp(m);
    if (typeof p !== 'string')
      received.push({ at: performance.now(), payloadType: p.payloadType, payload: p.payload });
  });
  const answered = new Promise<Call>((r) => phone.once('callAnswered', r));
  const ended = new Promise<CallEndInfo>((r) => phone.once('callEnded', (_c, info) => r(info)));
  const call = await pbx.invite(RIG_USER.username, sdpOffer(socket.address().port));
  const port = answerPort(call.answer);
  return { pbx, phone, socket, received, call, port, answered: await answered, ended };
}

function speechLike(samples: number): Int16Array {
  const out = new Int16Array(samples);
  let seed = 7;
  for (let i = 0; i < samples; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out[i] = Math.round(6000 * Math.sin(i / (7 + (i % 900) / 300))) + (((seed >>> 16) & 0x3ff) - 512);
  }
  return out;
}

describe('live sinks on real calls', () => {
  it('--pipe: the engine reads the WAV samples from the first sound on; its JSON result after hang-up becomes an event', async () => {
    const dir = tmp();
    const command = `cat > "${dir}/$RC_CALL_ID.raw"; echo "{\\"rate\\":$RC_SAMPLE_RATE,\\"encoding\\":\\"$RC_ENCODING\\"}"`;
    const s = await setup({ pipe: { command, graceMs: 5000 } });
    const lines: { text: string; json: object | undefined }[] = [];
    s.answered.on('engine', (l) => lines.push(l));
    await new RtpSender({
      socket: s.socket,
      target: { address: '127.0.0.1', port: s.port },
      pcm: speechLike(8000),
    }).start();
    await s.call.bye();
    const info = await s.ended;
    expect(lines.map((l) => l.json)).toEqual([{ rate: 8000, encoding: 's16le' }]);
    const raw = readFileSync(path.join(dir, `${s.call.callId}.raw`));
    const engine = Array.from(new Int16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2));
    const wav = Array.from(readWav(info.wav as string).samples);
    // The engine gets the live stream: its own (shorter) delay, so the silence
    // before the first sound and after the last may differ by the frames the
    // stats count (the call's start and end); from the first sound on, the
    // samples are the WAV's.
    const firstSound = (x: number[]) => x.findIndex((v) => Math.abs(v) > 8);
    const live = engine.slice(firstSound(engine));
    const recorded = wav.slice(firstSound(wav));
    const lastSound = recorded.length - [...recorded].reverse().findIndex((v) => Math.abs(v) > 8);
    expect(lastSound).toBeGreaterThan(7000);
    expect(live.length).toBeGreaterThanOrEqual(lastSound);
    expect(live.slice(0, lastSound)).toEqual(recorded.slice(0, lastSound));
    expect(info.stats?.engineFramesDropped).toBe(0);
  });

  it('--stream-url: Twilio-format messages in order, media equal to the WAV, talk-back paced at 20 ms, marks echoed', async () => {
    const messages: Record<string, unknown>[] = [];
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())));
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const talkBack = new Uint8Array(50 * 160);
    const tone = new Int16Array(50 * 160);
    for (let i = 0; i < tone.length; i++)
      tone[i] = Math.round(9000 * Math.sin((2 * Math.PI * 500 * i) / 8000));
    encodeUlawFrame(tone, talkBack);
    let socket: WebSocket | undefined;
    wss.on('connection', (ws) => {
      socket = ws;
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as Record<string, unknown>;
        messages.push(m);
        if (m.event === 'start') {
          const streamSid = m.streamSid;
          ws.send(
            JSON.stringify({
              event: 'media',
              streamSid,
              media: { payload: Buffer.from(talkBack).toString('base64') },
            }),
          );
          ws.send(JSON.stringify({ event: 'mark', streamSid, mark: { name: 'greeting-done' } }));
        }
      });
    });
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/media`;
    const s = await setup({ stream: { url } });
    await waitFor(() => messages.some((m) => m.event === 'mark'), { timeoutMs: 10_000 });
    await new RtpSender({
      socket: s.socket,
      target: { address: '127.0.0.1', port: s.port },
      pcm: speechLike(4000),
      impairments: [{ kind: 'dtmf', frame: 10, digit: '9', frames: 3 }],
    }).start();
    await s.call.bye();
    const info = await s.ended;
    await waitFor(() => messages.some((m) => m.event === 'stop'));
    expect(socket).toBeDefined();

    const events = messages.map((m) => m.event);
    expect(events[0]).toBe('connected');
    expect(events[1]).toBe('start');
    expect(events.at(-1)).toBe('stop');
    expect(events).toContain('dtmf');
    const start = messages[1] as {
      start: { callSid: string; mediaFormat: unknown; customParameters: Record<string, string> };
    };
    expect(start.start.callSid).toBe(s.call.callId);
    expect(start.start.mediaFormat).toEqual({ encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 });
    expect(start.start.customParameters.from).toContain('15550100');

    // Media payloads, decoded, are the WAV's audio, in order, 20 ms each. The
    // live stream runs at its own (shorter) delay and ends when the call does,
    // so the silence around the audio may differ by the frames the stats count;
    // from the first sound on, the samples are the same.
    const media = messages.filter((m) => m.event === 'media') as { media: { payload: string } }[];
    const streamed = media.flatMap((m) =>
      Array.from(Buffer.from(m.media.payload, 'base64'), (b) => ULAW_TO_LINEAR[b] as number),
    );
    const wav = Array.from(readWav(info.wav as string).samples);
    expect(media.every((m) => Buffer.from(m.media.payload, 'base64').length === 160)).toBe(true);
    const firstSound = (x: number[]) => x.findIndex((v) => Math.abs(v) > 8);
    const live = streamed.slice(firstSound(streamed));
    const recorded = wav.slice(firstSound(wav));
    const lastSound = recorded.length - [...recorded].reverse().findIndex((v) => Math.abs(v) > 8);
    expect(live.length).toBeGreaterThanOrEqual(lastSound);
    expect(live.slice(0, lastSound)).toEqual(recorded.slice(0, lastSound));
    expect(info.stats).toMatchObject({ liveSkipped: 0, liveStretched: 0, liveLate: 0 });

    // The talk-back tone reached the caller's RTP port, in order, at 20 ms pacing.
    const played = s.received.filter((p) => p.payloadType === 0 && p.payload.some((b) => b !== 0xff));
    expect(played.length).toBe(50);
    expect(Buffer.concat(played.map((p) => p.payload)).equals(Buffer.from(talkBack))).toBe(true);
    // Paced, not burst: the typical gap is one 20 ms frame (the median shrugs off a
    // scheduling hiccup on a loaded machine), and the whole never plays faster than real time.
    const gaps = played.slice(1).map((p, i) => p.at - (played[i]?.at ?? 0));
    const median = [...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)] ?? 0;
    expect(median).toBeGreaterThan(15);
    expect(median).toBeLessThan(25);
    expect((played.at(-1)?.at ?? 0) - (played[0]?.at ?? 0)).toBeGreaterThan(49 * 20 - 60);
    const mark = messages.find((m) => m.event === 'mark') as { mark: { name: string } };
    expect(mark.mark.name).toBe('greeting-done');
  });

  it('--stream-url: a server that is down is reported and the call is still recorded', async () => {
    const s = await setup({ stream: { url: 'ws://127.0.0.1:9/media' } });
    const errors: string[] = [];
    s.answered.on('sinkError', (e) => errors.push(e.code));
    await new RtpSender({
      socket: s.socket,
      target: { address: '127.0.0.1', port: s.port },
      pcm: speechLike(1600),
    }).start();
    await s.call.bye();
    const info = await s.ended;
    expect(errors).toContain('STREAM_FAILED');
    expect(readWav(info.wav as string).samples.length).toBeGreaterThanOrEqual(1600);
  });

  it('--stream-url: a stream that fails as it starts reaches a sinkError listener added on callAnswered', async () => {
    // An upgrade header the HTTP client refuses makes the connect fail synchronously.
    const errors: string[] = [];
    const { phone, pbx } = await startRig(cleanups, {
      stream: { url: 'ws://127.0.0.1:9/media', headers: { 'X-Token': 'a\r\nb' } },
    });
    phone.on('callAnswered', (call) => call.on('sinkError', (e) => errors.push(e.code)));
    const { socket } = await callerSocket(cleanups);
    const ended = new Promise<CallEndInfo>((r) => phone.once('callEnded', (_c, info) => r(info)));
    const call = await pbx.invite(RIG_USER.username, sdpOffer(socket.address().port));
    await call.bye();
    await ended;
    expect(errors).toEqual(['STREAM_FAILED']);
  });

  it("--stream-url wss:// with the server's CA given: the call's audio streams over TLS", async () => {
    const server = https.createServer(localhostCertificate());
    const wss = new WebSocketServer({ server });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const c of wss.clients) c.terminate();
          wss.close(() => server.close(() => resolve()));
        }),
    );
    const media: Buffer[] = [];
    wss.on('connection', (ws) =>
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as { event: string; media?: { payload: string } };
        if (m.event === 'media' && m.media) media.push(Buffer.from(m.media.payload, 'base64'));
      }),
    );
    const url = `wss://127.0.0.1:${(server.address() as AddressInfo).port}/media`;
    const s = await setup({ stream: { url, ca: localhostCertificate().cert } });
    const states: string[] = [];
    s.answered.on('stream', (e) => states.push(e.state));
    const pcm = speechLike(1600);
    await new RtpSender({ socket: s.socket, target: { address: '127.0.0.1', port: s.port }, pcm }).start();
    await waitFor(() => media.length >= 10);
    await s.call.bye();
    const info = await s.ended;
    expect(states[0]).toBe('open');
    // The streamed µ-law decodes to the recording's samples.
    const wav = readWav(info.wav as string).samples;
    const streamed = Int16Array.from(Buffer.concat(media), (b) => ULAW_TO_LINEAR[b] as number);
    expect(Array.from(streamed.subarray(0, wav.length))).toEqual(
      Array.from(wav.subarray(0, streamed.length)),
    );
  });
});
