/**
 * Calls through the whole Softphone whose far end is a separate process
 * (test/helpers/rtp-child.ts), so its packets keep their schedule whatever
 * this process does: a caller whose uplink stalls and then bursts, and a
 * caller raced by a stream already aimed at the port, forged packets from
 * the caller's own address and a garbage flood. The WAV must hold every
 * frame the caller sent, bit-exact, at its place, and nothing else.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Call, CallEndInfo } from '../../src/call/call.js';
import { FRAME_MS, RECORDING_DELAY_MS } from '../../src/media/frame.js';
import { encodeUlawFrame, ULAW_TO_LINEAR } from '../../src/media/g711.js';
import type { LatchInfo } from '../../src/media/session.js';
import { serializeRtp } from '../../src/rtp/packet.js';
import { answerPort, RIG_USER, sdpOffer, startRig } from '../helpers/call-rig.js';
import { waitFor } from '../helpers/ports.js';
import { type PlannedDatagram, startRtpChild } from '../helpers/rtp-child.js';
import { readWav } from '../helpers/wav.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const F = 160;
/** µ-law 0x00 decodes to −32124: if any forged or stray packet reached the WAV, this sample would be in it. */
const LOUD = 0x00;

/** Unique, speech-like µ-law frames (a chirp plus noise, clamped below the loud code). */
function frames(count: number): Uint8Array[] {
  let seed = 4242;
  return Array.from({ length: count }, (_, k) => {
    const pcm = Int16Array.from({ length: F }, (_, i) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const t = k * F + i;
      return (
        Math.round(7000 * Math.sin((2 * Math.PI * (300 + t / 40) * t) / 8000)) + ((seed >>> 16) & 0x3ff) - 512
      );
    });
    const out = new Uint8Array(F);
    encodeUlawFrame(pcm, out);
    return out;
  });
}

function rtp(seq: number, ts: number, ssrc: number, payload: Uint8Array): Uint8Array {
  return serializeRtp({ payloadType: 0, sequenceNumber: seq & 0xffff, timestamp: ts >>> 0, ssrc, payload });
}

function indexOf(hay: Int16Array, needle: ArrayLike<number>, from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const decode = (payload: Uint8Array) => Array.from(payload, (b) => ULAW_TO_LINEAR[b]!);

/** Places a call whose far end is `plan` (built once the child's caller port is known); returns what the bot made of it. */
async function call(plan: (callerPort: number) => PlannedDatagram[]) {
  const { pbx, phone } = await startRig(cleanups);
  const ended = new Map<string, CallEndInfo>();
  phone.on('callEnded', (c, info) => ended.set(c.id, info));
  const latches: LatchInfo[] = [];
  phone.once('callAnswered', (c: Call) => c.on('latched', (l) => latches.push(l)));
  // The plan does not depend on the port the child binds: build it with a placeholder, then start.
  const child = await startRtpChild(plan(0));
  cleanups.push(() => child.kill());
  const invite = await pbx.invite(RIG_USER.username, sdpOffer(child.callerPort));
  child.go(answerPort(invite.answer));
  const senderLateMs = await child.done;
  await invite.bye();
  await waitFor(() => ended.has(invite.callId), { timeoutMs: 15_000 });
  const info = ended.get(invite.callId)!;
  return { info, samples: readWav(info.wav!).samples, senderLateMs, latches, child };
}

describe('recordings on real and hostile networks', () => {
  it('a caller whose uplink stalls 150 ms and then 400 ms, then bursts: every frame bit-exact at its place', async () => {
    const sent = frames(150);
    const holds: Array<[number, number]> = [
      [100 + 30 * FRAME_MS, 150],
      [100 + 80 * FRAME_MS, 400],
    ];
    const { info, samples, senderLateMs } = await call(() =>
      sent.map((payload, k) => {
        let at = 100 + k * FRAME_MS;
        for (const [start, ms] of holds) if (at >= start && at < start + ms) at = start + ms;
        return { at, from: 'caller', bytes: rtp(1000 + k, 5000 + k * F, 0x1234, payload) };
      }),
    );
    expect(info.stats).toMatchObject({ received: 150, lost: 0 });
    const origin = indexOf(samples, decode(sent[0]!));
    expect(origin).toBeGreaterThanOrEqual(0);
    if (senderLateMs + 400 > RECORDING_DELAY_MS - FRAME_MS) {
      // The sender's own process was starved past the bound: only content and order can be demanded.
      let at = origin;
      for (const payload of sent) {
        at = indexOf(samples, decode(payload), at);
        expect(at).toBeGreaterThanOrEqual(0);
      }
      return;
    }
    sent.forEach((payload, k) => {
      const at = origin + k * F;
      expect(Array.from(samples.subarray(at, at + F)), `frame ${k}`).toEqual(decode(payload));
    });
    expect(info.stats).toMatchObject({ late: 0, resync: 0 });
    // The live stream waited out the stalls (silence), then played the late audio.
    expect(info.stats?.liveConcealed).toBeGreaterThan(0);
  });

  it('a caller raced by a stream already aimed at the port, forged packets from its own address and a flood', async () => {
    const sent = frames(120);
    const loud = new Uint8Array(F).fill(LOUD);
    let seed = 99;
    const random = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 0;
    };
    const { info, samples, latches, child } = await call(() => {
      const plan: PlannedDatagram[] = [];
      // A stream that was already hitting this port (the last call's far end): from the answer on, for 3.5 s.
      for (let i = 0; i < 175; i++)
        plan.push({ at: i * FRAME_MS, from: 'stranger', bytes: rtp(7000 + i, 90_000 + i * F, 0x5a1e, loud) });
      // The caller starts 300 ms after the answer.
      for (const [k, payload] of sent.entries())
        plan.push({
          at: 300 + k * FRAME_MS,
          from: 'caller',
          bytes: rtp(1000 + k, 5000 + k * F, 0x1234, payload),
        });
      const at = (k: number, ms: number) => 300 + k * FRAME_MS + ms;
      // From the caller's own address: one forged packet with a new SSRC ...
      plan.push({ at: at(20, 7), from: 'caller', bytes: rtp(1, 1, 0xbad, loud) });
      // ... ten in sequence, interleaved with the caller ...
      for (let i = 0; i < 10; i++)
        plan.push({ at: at(40 + i, 7), from: 'caller', bytes: rtp(50 + i, 777 + i * F, 0xbad2, loud) });
      // ... one with an 8 000-byte payload (1 s of audio, if it were believed) ...
      plan.push({ at: at(60, 7), from: 'caller', bytes: rtp(9, 9, 0xbad3, new Uint8Array(8000).fill(LOUD)) });
      // ... and a garbage flood: 300 valid-looking packets in 300 ms (ten at a time, so the sender
      // does not spin a core of this 2-core machine), and 50 that are not RTP at all.
      for (let i = 0; i < 300; i++)
        plan.push({
          at: at(80, 10 * Math.floor(i / 10) + 3),
          from: 'caller',
          bytes: rtp(random(), random(), random(), loud),
        });
      for (let i = 0; i < 50; i++)
        plan.push({ at: at(85, i), from: 'caller', bytes: Uint8Array.of(0, 1, 2, 3, i) });
      return plan;
    });
    const origin = indexOf(samples, decode(sent[0]!));
    expect(origin).toBeGreaterThanOrEqual(0);
    sent.forEach((payload, k) => {
      const at = origin + k * F;
      expect(Array.from(samples.subarray(at, at + F)), `frame ${k}`).toEqual(decode(payload));
    });
    // Before the caller's first packet the stray stream held the latch (it proved itself, and the
    // caller was silent): what it sent then is in the WAV. From the caller's first packet on, nothing else is.
    expect(samples.subarray(origin).includes(ULAW_TO_LINEAR[LOUD]!)).toBe(false);
    expect(info.stats).toMatchObject({ lost: 0, late: 0, resync: 0, invalidPayload: 1 });
    expect(info.stats?.received).toBeGreaterThanOrEqual(120);
    expect(info.stats?.invalid).toBeGreaterThanOrEqual(50);
    expect(info.stats?.probationDropped).toBeGreaterThanOrEqual(11 + 290);
    expect(info.stats?.foreignSource).toBeGreaterThan(100);
    // The stray stream proved itself first (3 packets in sequence); the caller, from the SDP's
    // address, took the latch with its first packet and kept it.
    expect(latches).toEqual([
      { address: '127.0.0.1', port: child.strangerPort, reason: 'symmetric' },
      {
        address: '127.0.0.1',
        port: child.callerPort,
        reason: 'sdp',
        previous: { address: '127.0.0.1', port: child.strangerPort },
      },
    ]);
  });
});
