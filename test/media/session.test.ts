import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes, SoftphoneError } from '../../src/errors.js';
import { parseTelephoneEvent } from '../../src/media/dtmf.js';
import {
  ALAW_SILENCE,
  ALAW_TO_LINEAR,
  encodeAlaw,
  encodeUlaw,
  ULAW_SILENCE,
  ULAW_TO_LINEAR,
} from '../../src/media/g711.js';
import { RtpPortPool } from '../../src/media/port-pool.js';
import { ReceivePath } from '../../src/media/receive-path.js';
import { RtpSender } from '../../src/media/rtp-sender.js';
import { type DtmfEvent, MediaSession, type MediaSessionOptions } from '../../src/media/session.js';
import { isRtpInvalid, parseRtp, type RtpPacket, serializeRtp } from '../../src/rtp/packet.js';
import type { NegotiatedMedia } from '../../src/sdp/negotiate.js';
import { WavWriter } from '../../src/sinks/wav.js';
import { WavSink, type WavTarget } from '../../src/sinks/wav-sink.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { readWav } from '../helpers/wav.js';

const LOOPBACK = '127.0.0.1';
const F = 160;
/** Generous: a loaded 2-core CI machine can stall timers for a while. */
const WAIT = { timeoutMs: 15_000, intervalMs: 10 };

let dir: string;
const sockets: dgram.Socket[] = [];
const sessions: MediaSession[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rc-session-'));
});

afterEach(() => {
  for (const s of sessions.splice(0)) s.stop();
  for (const s of sockets.splice(0)) {
    try {
      s.close();
    } catch {
      // closed by the test
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

async function udp(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, LOOPBACK, () => resolve()));
  sockets.push(s);
  return s;
}

function portOf(s: dgram.Socket): number {
  return s.address().port;
}

interface Heard {
  packet: RtpPacket;
  at: number;
}

/** Collects the RTP packets a socket receives (copies: the buffers are the socket's). */
function capture(s: dgram.Socket): Heard[] {
  const heard: Heard[] = [];
  s.on('message', (msg) => {
    const p = parseRtp(Buffer.from(msg));
    if (!isRtpInvalid(p)) heard.push({ packet: p, at: performance.now() });
  });
  return heard;
}

function media(remote: dgram.Socket | number, over: Partial<NegotiatedMedia> = {}): NegotiatedMedia {
  return {
    codec: 'PCMU',
    payloadType: 0,
    clockRate: 8000,
    telephoneEventPt: 101,
    remoteAddress: LOOPBACK,
    remotePort: typeof remote === 'number' ? remote : portOf(remote),
    ptime: 20,
    direction: 'sendrecv',
    onHold: false,
    ...over,
  };
}

async function session(
  negotiated: NegotiatedMedia,
  over: Partial<MediaSessionOptions> & { wav?: WavTarget; onWavError?: (e: SoftphoneError) => void } = {},
): Promise<{
  s: MediaSession;
  local: number;
  frames: Int16Array[];
  live: Int16Array[];
  stop: () => ReturnType<MediaSession['stop']>;
}> {
  const { wav, onWavError, ...options } = over;
  const socket = options.socket ?? (await udp());
  const s = new MediaSession({ socket, negotiated, t0: performance.now(), ...options });
  sessions.push(s);
  // As the call's fan-out does: the recording gets each frame first.
  const sink = wav && new WavSink(wav, onWavError);
  if (sink) s.on('frame', (f, info) => sink.write(f, info));
  const frames: Int16Array[] = [];
  s.on('frame', (f) => frames.push(f.slice()));
  const live: Int16Array[] = [];
  s.on('liveFrame', (f) => live.push(f.slice()));
  const stop = () => {
    const stats = s.stop();
    sink?.close();
    return stats;
  };
  return { s, local: socket.address().port, frames, live, stop };
}

/** A recognisable µ-law payload for frame k (never silence). */
function payloadFor(k: number): Uint8Array {
  return Uint8Array.from({ length: F }, (_, i) =>
    encodeUlaw(Math.round(8000 * Math.sin((k * F + i) / 7)) + 300),
  );
}

function rtp(
  seq: number,
  ts: number,
  payload: Uint8Array,
  pt = 0,
  ssrc = 0x1234_5678,
  marker = false,
): Buffer {
  return serializeRtp({ payloadType: pt, sequenceNumber: seq, timestamp: ts, ssrc, payload, marker });
}

function sendTo(from: dgram.Socket, port: number, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) =>
    from.send(bytes, port, LOOPBACK, (err) => (err ? reject(err) : resolve())),
  );
}

function concat(frames: Int16Array[]): Int16Array {
  const out = new Int16Array(frames.reduce((n, f) => n + f.length, 0));
  let o = 0;
  for (const f of frames) {
    out.set(f, o);
    o += f.length;
  }
  return out;
}

/** Index of `needle` in `hay`, or -1. */
function indexOf(hay: Int16Array, needle: Int16Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function decode(payload: Uint8Array): Int16Array {
  return Int16Array.from(payload, (b) => ULAW_TO_LINEAR[b]!);
}

describe('MediaSession priming and sending', () => {
  it('primes with one silence frame in the codec (never an event: it would be heard as a key), then paces silence with the same SSRC', async () => {
    const remote = await udp();
    const heard = capture(remote);
    const { s } = await session(media(remote, { telephoneEventPt: 96 }));
    await s.prime();
    await waitFor(() => heard.length >= 51, { ...WAIT, message: '51 packets' });

    const first = heard[0]!.packet;
    expect(first.payloadType).toBe(0);
    expect(first.marker).toBe(true);
    expect(first.payload.every((b) => b === ULAW_SILENCE)).toBe(true);

    const silence = heard.slice(1, 51);
    for (const [i, h] of silence.entries()) {
      expect(h.packet.payloadType).toBe(0);
      expect(h.packet.ssrc).toBe(first.ssrc);
      expect(h.packet.sequenceNumber).toBe((first.sequenceNumber + 1 + i) & 0xffff);
      expect(h.packet.payload.length).toBe(F);
      expect(h.packet.payload.every((b) => b === ULAW_SILENCE)).toBe(true);
    }
    // Timestamps run at 8 kHz from the prime on; the first frame follows the prime's 20 ms.
    expect((silence[0]!.packet.timestamp - first.timestamp) >>> 0).toBe(F);
    // Paced on the monotonic clock: 50 frames span ~1 s (timestamps and arrival agree).
    const spanTs = (silence[49]!.packet.timestamp - silence[0]!.packet.timestamp) >>> 0;
    const spanMs = silence[49]!.at - silence[0]!.at;
    expect(spanTs % F).toBe(0);
    expect(Math.abs(spanTs / 8 - spanMs)).toBeLessThan(150);
    expect(spanTs / 8).toBeGreaterThanOrEqual(49 * 20);
    expect(s.stats.packetsSent).toBeGreaterThanOrEqual(51);
  });

  it('primes with a silence frame in the codec when no telephone-event was negotiated, then sends nothing more without silence', async () => {
    const remote = await udp();
    const heard = capture(remote);
    const negotiated = media(remote);
    delete negotiated.telephoneEventPt;
    const { s, frames } = await session(negotiated, { sendSilence: false });
    await s.prime();
    await waitFor(() => heard.length >= 1 && frames.length >= 10, { ...WAIT, message: 'prime + 200 ms' });
    expect(heard[0]!.packet.payloadType).toBe(negotiated.payloadType);
    expect(heard[0]!.packet.payload.every((b) => b === 0xff)).toBe(true);
    expect(heard.length).toBe(1);
    expect(s.stats.packetsSent).toBe(1);
  });

  it('resolves a hostname in the SDP once and primes it', async () => {
    const remote = await udp();
    const heard = capture(remote);
    const { s } = await session(media(remote, { remoteAddress: 'localhost' }));
    await s.prime();
    await waitFor(() => heard.length >= 3, { ...WAIT, message: 'packets to localhost' });
    expect(heard[0]!.packet.payloadType).toBe(0);
  });

  it('rejects prime() for an unresolvable host but still records what arrives', async () => {
    const sender = await udp();
    const { s, local, frames } = await session(media(9, { remoteAddress: 'no-such-host.invalid' }));
    await expect(s.prime()).rejects.toMatchObject({ code: ErrorCodes.SDP_NOT_ACCEPTABLE });
    // No address to prefer: the first source with three valid packets in sequence.
    for (let k = 1; k <= 3; k++) await sendTo(sender, local, rtp(k, 1000 + k * F, payloadFor(k)));
    await waitFor(() => s.latched?.port === portOf(sender), { ...WAIT, message: 'latched' });
    await waitFor(() => frames.some((f) => f.some((x) => x !== 0)), { ...WAIT, message: 'audio frame' });
  });

  it('sends nothing but the prime while the remote holds, and resumes with the marker bit', async () => {
    const remote = await udp();
    const heard = capture(remote);
    const held = media(remote, { onHold: true, direction: 'recvonly' });
    const { s, frames } = await session(held);
    await s.prime();
    await waitFor(() => frames.length >= 10, { ...WAIT, message: '200 ms on hold' });
    expect(heard.length).toBe(1); // the prime: a latching media server must learn where to send hold music
    s.update(media(remote));
    await waitFor(() => heard.length >= 5, { ...WAIT, message: 'silence after resume' });
    const prime = heard[0]!.packet;
    const resumed = heard[1]!.packet;
    expect(resumed.payloadType).toBe(0);
    expect(resumed.marker).toBe(true);
    expect(resumed.sequenceNumber).toBe((prime.sequenceNumber + 1) & 0xffff);
    // The timestamp jumped by the time on hold (>= 200 ms), in whole frames.
    const jump = (resumed.timestamp - prime.timestamp) >>> 0;
    expect(jump % F).toBe(0);
    expect(jump).toBeGreaterThanOrEqual(10 * F);
    expect(heard[2]!.packet.marker).toBe(false);
  });

  it('replaces silence with talk-back audio from an outbound source, encoded with the codec', async () => {
    const remote = await udp();
    const heard = capture(remote);
    let n = 0;
    const tone = (k: number) => Int16Array.from({ length: F }, (_, i) => ((k * F + i) % 50) * 100 - 2500);
    const outbound = { nextFrame: () => (n < 3 ? tone(n++) : undefined) };
    const { s } = await session(media(remote, { codec: 'PCMA', payloadType: 8 }), { outbound });
    await s.prime();
    await waitFor(() => heard.length >= 6, { ...WAIT, message: 'talk-back + silence' });
    expect(heard.slice(1, 6).map((h) => h.packet.payloadType)).toEqual([8, 8, 8, 8, 8]);
    for (let k = 0; k < 3; k++) {
      expect(Array.from(heard[1 + k]!.packet.payload)).toEqual(Array.from(tone(k), (x) => encodeAlaw(x)));
    }
    expect(heard[4]!.packet.payload.every((b) => b === ALAW_SILENCE)).toBe(true);
  });
});

describe('MediaSession receiving', () => {
  it('records received audio bit-exact; frame listeners see exactly the WAV samples', async () => {
    const remote = await udp();
    const path = join(dir, 'call.wav');
    const wav = WavWriter.open(path);
    const { s, local, frames, stop } = await session(media(remote), { wav });
    await s.prime();
    for (let k = 0; k < 10; k++) await sendTo(remote, local, rtp(100 + k, 5000 + k * F, payloadFor(k)));
    await waitFor(() => s.stats.received === 10, { ...WAIT, message: '10 packets' });
    const stats = stop();
    const { samples } = readWav(path);
    expect(Array.from(concat(frames))).toEqual(Array.from(samples));
    const expected = concat(Array.from({ length: 10 }, (_, k) => decode(payloadFor(k))));
    const at = indexOf(samples, expected);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(at % F).toBe(0);
    expect(stats).toMatchObject({ received: 10, lost: 0, duplicate: 0, foreignSource: 0, invalid: 0 });
    expect(stats.framesWritten).toBe(frames.length);
    expect(stats.rmsDbfs).toBeGreaterThan(-40);
    expect(stats.peakDbfs).toBeLessThanOrEqual(0);
  });

  it('emits the live stream every 20 ms from the start and the recording a second behind the wall clock', async () => {
    const remote = await udp();
    const t0 = performance.now();
    const { s, local } = await session(media(remote), { t0 });
    const liveAt: number[] = [];
    const recorded: { at: number; position: number }[] = [];
    s.on('liveFrame', () => liveAt.push(performance.now() - t0));
    s.on('frame', (_f, info) => recorded.push({ at: performance.now() - t0, position: info.position }));
    await s.prime();
    for (let k = 0; k < 5; k++) await sendTo(remote, local, rtp(k, k * F, payloadFor(k)));
    await waitFor(() => recorded.length >= 5, WAIT);
    // The live stream starts at the initial target delay and runs a second ahead of the recording.
    expect(liveAt[0]).toBeLessThan(500);
    expect(liveAt.length).toBeGreaterThanOrEqual(recorded.length + 45);
    for (const r of recorded) expect(r.at - r.position / 8).toBeGreaterThanOrEqual(1000 + 20 - 1);
    expect(s.stats).toMatchObject({ liveTargetMs: 40, received: 5 });
  });

  it('latches to the offer address and counts packets from anywhere else as foreign', async () => {
    const remote = await udp();
    const other = await udp();
    const { s, local } = await session(media(remote));
    const latched = once(s, 'latched');
    await s.prime();
    await sendTo(remote, local, rtp(1, 1000, payloadFor(1)));
    expect(await latched).toEqual([{ address: LOOPBACK, port: portOf(remote), reason: 'sdp' }]);
    await sendTo(other, local, rtp(2, 1160, payloadFor(2)));
    await sendTo(remote, local, Buffer.from([1, 2, 3])); // not RTP
    await waitFor(() => s.stats.foreignSource === 1 && s.stats.invalid === 1, WAIT);
    expect(s.stats.received).toBe(1);
  });

  it('latches to another source after priming when the offer address stays silent (NAT), and to the offer as soon as it sends', async () => {
    const offer = await udp();
    const nat = await udp();
    const { s, local } = await session(media(offer));
    const latches: unknown[] = [];
    s.on('latched', (l) => latches.push(l));
    // Before priming only the offer's address is taken.
    await sendTo(nat, local, rtp(1, 1000, payloadFor(1)));
    await waitFor(() => s.stats.foreignSource === 1, WAIT);
    await s.prime();
    // Three valid packets in sequence prove the source.
    for (let k = 2; k <= 4; k++) await sendTo(nat, local, rtp(k, 1000 + k * F, payloadFor(k)));
    await waitFor(() => s.latched?.port === portOf(nat), { ...WAIT, message: 'latched to NAT source' });
    expect(s.stats.received).toBe(3);
    // The offer's own address is always preferred: its first packet moves the latch.
    await sendTo(offer, local, rtp(5, 1000 + 5 * F, payloadFor(5), 0, 0x777));
    await waitFor(() => s.latched?.port === portOf(offer), { ...WAIT, message: 're-latched to the offer' });
    await sendTo(nat, local, rtp(6, 1000 + 6 * F, payloadFor(6)));
    await waitFor(() => s.stats.foreignSource === 2, WAIT);
    expect(latches).toEqual([
      { address: LOOPBACK, port: portOf(nat), reason: 'symmetric' },
      {
        address: LOOPBACK,
        port: portOf(offer),
        reason: 'sdp',
        previous: { address: LOOPBACK, port: portOf(nat) },
      },
    ]);
    expect(s.stats).toMatchObject({ received: 4, latches: 2, ssrcChange: 1 });
  });

  it('moves the latch on a re-INVITE with a new address; the old stream becomes foreign', async () => {
    const first = await udp();
    const second = await udp();
    const heardSecond = capture(second);
    const { s, local } = await session(media(first));
    await s.prime();
    await sendTo(first, local, rtp(1, 1000, payloadFor(1)));
    await waitFor(() => s.latched?.port === portOf(first), WAIT);
    s.update(media(second));
    await sendTo(first, local, rtp(2, 1160, payloadFor(2))); // in flight from the old leg
    await sendTo(second, local, rtp(500, 90_000, payloadFor(3), 0, 0xabcdef));
    await waitFor(() => s.latched?.port === portOf(second), { ...WAIT, message: 're-latched' });
    await waitFor(() => s.stats.received === 2 && s.stats.foreignSource === 1, WAIT);
    // Silence now goes to the new address.
    await waitFor(() => heardSecond.length >= 2, { ...WAIT, message: 'silence to the new address' });
  });

  it('reports one DTMF digit per key press despite three end retransmissions, never in the WAV', async () => {
    const remote = await udp();
    const path = join(dir, 'dtmf.wav');
    const { s, local, stop } = await session(media(remote), { wav: WavWriter.open(path) });
    const digits: DtmfEvent[] = [];
    s.on('dtmf', (d) => digits.push(d));
    await s.prime();
    const ev = (end: boolean, duration: number) =>
      Uint8Array.of(5, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff);
    const ts = 40_000;
    await sendTo(remote, local, rtp(10, ts, ev(false, 160), 101, 0x1234_5678, true));
    await sendTo(remote, local, rtp(11, ts, ev(false, 320), 101));
    await sendTo(remote, local, rtp(12, ts, ev(true, 480), 101));
    await sendTo(remote, local, rtp(13, ts, ev(true, 480), 101));
    await sendTo(remote, local, rtp(14, ts, ev(true, 480), 101));
    // An RFC 2833-style sender repeats the end packet with the same sequence number.
    await sendTo(remote, local, rtp(14, ts, ev(true, 480), 101));
    await waitFor(() => s.stats.received === 6, WAIT);
    // A second press of the same key is a new digit (new timestamp).
    await sendTo(remote, local, rtp(15, ts + 800, ev(true, 160), 101));
    await waitFor(() => digits.length === 2, { ...WAIT, message: 'second digit' });
    const stats = stop();
    expect(digits.map((d) => d.digit)).toEqual(['5', '5']);
    expect(digits[0]!.atMs).toBeGreaterThanOrEqual(0);
    expect(stats.dtmf).toBe(2);
    expect(stats.duplicate).toBe(1);
    const { samples } = readWav(path);
    expect(samples.every((x) => x === 0)).toBe(true);
  });

  it('gives exactly one digit for a key press from the RTP sender (end packet sent three times)', async () => {
    const remote = await udp();
    const { s, local } = await session(media(remote));
    const digits: DtmfEvent[] = [];
    s.on('dtmf', (d) => digits.push(d));
    await s.prime();
    const sender = new RtpSender({
      socket: remote,
      target: { address: LOOPBACK, port: local },
      pcm: new Int16Array(12 * F).fill(1000),
      impairments: [{ kind: 'dtmf', frame: 3, digit: '#', frames: 4 }],
    });
    const report = await sender.start();
    const events = report.packets.filter((p) => p.kind === 'dtmf');
    expect(events.length).toBe(4 + 2);
    expect(events.filter((p) => parseTelephoneEvent(p.payload)?.end).length).toBe(3);
    await waitFor(() => s.stats.received === report.packets.length, WAIT);
    expect(digits.map((d) => d.digit)).toEqual(['#']);
    expect(s.stats.lost).toBe(0);
  });

  it('ignores comfort noise and other payload types without breaking the timeline', async () => {
    const remote = await udp();
    const { s, local, frames } = await session(media(remote));
    await s.prime();
    await sendTo(remote, local, rtp(1, 1000, payloadFor(1)));
    await sendTo(remote, local, rtp(2, 1160, Uint8Array.of(60), 13));
    await sendTo(remote, local, rtp(3, 1320, payloadFor(3)));
    await waitFor(() => s.stats.received === 3, WAIT);
    await waitFor(() => frames.filter((f) => f.some((x) => x !== 0)).length >= 2, WAIT);
    const all = concat(frames);
    const a = indexOf(all, decode(payloadFor(1)));
    const b = indexOf(all, decode(payloadFor(3)));
    expect(b - a).toBe(2 * F);
    expect(all.slice(a + F, b).every((x) => x === 0)).toBe(true);
    expect(s.stats).toMatchObject({ otherPayload: 1, lost: 0, resync: 0 });
  });
});

describe('MediaSession lifecycle', () => {
  it('emits inactive once after the timeout, not counting time on hold', async () => {
    const remote = await udp();
    const { s, frames } = await session(media(remote, { onHold: true, direction: 'recvonly' }), {
      inactivityTimeoutMs: 150,
    });
    let inactive = 0;
    s.on('inactive', () => inactive++);
    await s.prime();
    await waitFor(() => frames.length >= 20, { ...WAIT, message: '400 ms on hold' });
    expect(inactive).toBe(0);
    const resumedAt = performance.now();
    s.update(media(remote));
    await waitFor(() => inactive === 1, { ...WAIT, message: 'inactive' });
    expect(performance.now() - resumedAt).toBeGreaterThanOrEqual(100);
    const more = frames.length;
    await waitFor(() => frames.length >= more + 10, WAIT);
    expect(inactive).toBe(1);
  });

  it('keeps quiet while RTP flows', async () => {
    const remote = await udp();
    const { s, local, live } = await session(media(remote), { inactivityTimeoutMs: 150 });
    let inactive = 0;
    s.on('inactive', () => inactive++);
    await s.prime();
    // 30 packets, each sent when the live stream has played the next frame (~20 ms apart).
    for (let k = 0; k < 30; k++) {
      const before = live.length;
      await sendTo(remote, local, rtp(k, k * F, payloadFor(k)));
      await waitFor(() => live.length > before, WAIT);
    }
    expect(inactive).toBe(0);
  });

  it('stop() writes the tail, keeps wall-clock length, releases the port, and is idempotent', async () => {
    const remote = await udp();
    const base = await freeUdpPortRange(2);
    const pool = new RtpPortPool({ min: base, max: base + 1 }, { address: LOOPBACK });
    const socket = await pool.allocate();
    const path = join(dir, 'tail.wav');
    const t0 = performance.now();
    const { s, local, stop } = await session(media(remote), { socket, wav: WavWriter.open(path), t0 });
    await s.prime();
    await waitFor(() => s.stats.framesWritten >= 10, WAIT);
    // The last packet arrives just before stop(): still within the jitter delay, it must be written.
    await sendTo(remote, local, rtp(7, 7000, payloadFor(7)));
    await waitFor(() => s.stats.received === 1, WAIT);
    const stopAt = performance.now();
    const stats = stop();
    expect(s.stop()).toEqual(stats);
    expect(s.stopped).toBe(true);
    const { samples } = readWav(path);
    expect(indexOf(samples, decode(payloadFor(7)))).toBeGreaterThanOrEqual(0);
    const wallSamples = (stopAt - t0) * 8;
    expect(Math.abs(samples.length - wallSamples)).toBeLessThanOrEqual(2 * F);
    expect(stats.durationMs).toBeCloseTo(samples.length / 8, 6);
    await once(socket, 'close');
    expect(pool.inUse).toBe(0);
  });

  it('reports a WAV write failure once as SINK_WRITE_FAILED and keeps the call going', async () => {
    const remote = await udp();
    let writes = 0;
    const failure = new SoftphoneError(ErrorCodes.SINK_WRITE_FAILED, 'disk full');
    // A writer that fails like WavWriter does on ENOSPC: write() never throws, `error` is set.
    const wav = {
      closed: false,
      error: undefined as SoftphoneError | undefined,
      write() {
        if (++writes === 3) this.error = failure;
      },
      close() {
        this.closed = true;
      },
    };
    const errors: SoftphoneError[] = [];
    const { s, frames, stop } = await session(media(remote), { wav, onWavError: (e) => errors.push(e) });
    await s.prime();
    await waitFor(() => frames.length >= 15, WAIT);
    expect(errors).toEqual([failure]);
    expect(errors[0]!.code).toBe(ErrorCodes.SINK_WRITE_FAILED);
    stop();
    expect(errors.length).toBe(1);
    expect(wav.closed).toBe(true);
  });

  it('has a live level: silence is MIN_DBFS, a loud tone is near 0 dBFS', async () => {
    const remote = await udp();
    const { s, local, frames } = await session(media(remote));
    await s.prime();
    await waitFor(() => frames.length >= 5, WAIT);
    expect(s.level).toBe(-100);
    const loud = new Uint8Array(F).fill(0x80); // µ-law 0x80: +32124
    for (let k = 0; k < 50; k++) await sendTo(remote, local, rtp(k, k * F, loud));
    await waitFor(() => s.level > -1, { ...WAIT, message: 'loud level' });
  });
});

describe('ReceivePath (the pure per-packet core)', () => {
  const OFFER = { address: '192.0.2.10', port: 40000 };
  const ULAW_MEDIA = { codec: 'PCMU' as const, payloadType: 0, telephoneEventPt: 101 };

  function drive(
    path: ReceivePath,
    arrivals: Array<{ at: number; bytes: Uint8Array; from?: { address: string; port: number } }>,
    end: number,
  ): Int16Array {
    const out: Int16Array[] = [];
    const sink = (f: Int16Array) => out.push(f.slice());
    let tick = 0;
    for (const a of arrivals) {
      for (; tick <= a.at; tick += F) path.pullRecording(tick, sink);
      const from = a.from ?? OFFER;
      path.receive(a.bytes, from.address, from.port, a.at);
    }
    for (; tick <= end; tick += F) path.pullRecording(tick, sink);
    path.flush(end, sink);
    return concat(out);
  }

  const event = (end: boolean, duration: number) =>
    Uint8Array.of(9, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff);

  it('keeps the audio timeline through a long key press and end repeats sent after audio resumed', () => {
    const digits: string[] = [];
    const path = new ReceivePath({ media: ULAW_MEDIA, expected: OFFER, onDtmf: (d) => digits.push(d) });
    const arrivals: Array<{ at: number; bytes: Uint8Array }> = [];
    let seq = 1000;
    const start = 800;
    // Frames 0-4 audio, 5-19 a 300 ms key press (longer than the live delay), 20-29 audio;
    // the end packet's two repeats go out in the slots of frames 20 and 21, after their audio.
    for (let k = 0; k < 30; k++) {
      const at = start + k * F;
      const ts = 10_000 + k * F;
      if (k < 5 || k >= 20) arrivals.push({ at, bytes: rtp(seq++, ts, payloadFor(k)) });
      else arrivals.push({ at, bytes: rtp(seq++, 10_000 + 5 * F, event(k === 19, (k - 4) * F), 101) });
      if (k === 20 || k === 21)
        arrivals.push({ at: at + 1, bytes: rtp(seq++, 10_000 + 5 * F, event(true, 15 * F), 101) });
    }
    const out = drive(path, arrivals, start + 31 * F);
    const first = indexOf(out, decode(payloadFor(0)));
    expect(first).toBe(start);
    for (let k = 20; k < 30; k++) expect(indexOf(out, decode(payloadFor(k)))).toBe(start + k * F);
    expect(out.slice(start + 5 * F, start + 20 * F).every((x) => x === 0)).toBe(true);
    expect(digits).toEqual(['9']);
    expect(path.stats).toMatchObject({ resync: 0, lost: 0, late: 0, dtmf: 1, received: 32 });
  });

  it('plays audio after comfort noise and a DTX gap at its timestamp', () => {
    const path = new ReceivePath({ media: ULAW_MEDIA, expected: OFFER });
    const arrivals = [
      { at: 800, bytes: rtp(1, 5000, payloadFor(0)) },
      { at: 960, bytes: rtp(2, 5160, Uint8Array.of(70), 13) },
      { at: 960 + 8000, bytes: rtp(3, 5160 + 8000, payloadFor(1)) },
    ];
    const out = drive(path, arrivals, 11_000);
    expect(indexOf(out, decode(payloadFor(0)))).toBe(800);
    expect(indexOf(out, decode(payloadFor(1)))).toBe(960 + 8000);
    expect(path.stats).toMatchObject({ otherPayload: 1, resync: 0, lost: 0 });
  });

  it('latches to the offer, or after allowAnySource() to the first source; update() moves it', () => {
    const path = new ReceivePath({ media: ULAW_MEDIA, expected: OFFER });
    const nat = { address: '198.51.100.7', port: 5004 };
    expect(path.receive(rtp(1, 0, payloadFor(0)), nat.address, nat.port, 0)).toBe('foreign');
    path.allowAnySource();
    expect(path.receive(rtp(2, 160, payloadFor(1)), nat.address, nat.port, 160)).toBe('foreign');
    expect(path.receive(rtp(3, 320, payloadFor(2)), nat.address, nat.port, 320)).toBe('foreign');
    expect(path.receive(rtp(4, 480, payloadFor(3)), nat.address, nat.port, 480)).toBe('audio');
    expect(path.latched).toEqual(nat);
    // A re-INVITE to a new address: the old source may not win the race back.
    const moved = { address: '203.0.113.5', port: 6000 };
    path.update(ULAW_MEDIA, moved);
    expect(path.latched).toBeUndefined();
    expect(path.receive(rtp(5, 640, payloadFor(4)), nat.address, nat.port, 640)).toBe('foreign');
    expect(path.receive(rtp(9, 9000, payloadFor(5), 0, 77), moved.address, moved.port, 800)).toBe('audio');
    expect(path.latched).toEqual(moved);
    expect(path.latchInfo).toEqual({ ...moved, reason: 'sdp', previous: nat });
    expect(path.receive(Uint8Array.of(0x80, 0), moved.address, moved.port, 900)).toBe('invalid');
    expect(path.stats).toMatchObject({
      foreignSource: 2,
      invalid: 1,
      received: 4,
      ssrcChange: 1,
      latches: 2,
    });
  });

  it('matches an IPv4 peer reported as ::ffff:a.b.c.d by a dual-stack socket', () => {
    const path = new ReceivePath({ media: ULAW_MEDIA, expected: OFFER });
    expect(path.receive(rtp(1, 0, payloadFor(0)), `::ffff:${OFFER.address}`, OFFER.port, 0)).toBe('audio');
    expect(path.latched).toEqual(OFFER);
  });

  it('decodes A-law after a re-INVITE switches the codec', () => {
    const path = new ReceivePath({ media: ULAW_MEDIA, expected: OFFER });
    path.update({ codec: 'PCMA', payloadType: 8 }, OFFER);
    const payload = Uint8Array.from({ length: F }, (_, i) => i);
    expect(path.receive(rtp(1, 0, payload, 8), OFFER.address, OFFER.port, 0)).toBe('audio');
    expect(path.receive(rtp(2, 160, payload, 0), OFFER.address, OFFER.port, 1)).toBe('other');
    const out = drive(path, [], 2 * F + 480);
    expect(Array.from(out.slice(0, F))).toEqual(Array.from(payload, (b) => ALAW_TO_LINEAR[b]!));
  });
});
