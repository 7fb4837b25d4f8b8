/**
 * The project's own RTP sender: plays a G.711 sample (or PCM, encoded here) as
 * 20 ms RTP packets from a UDP socket to a target, paced on the monotonic
 * clock (each packet is due at start + its slot, never start + accumulated
 * delays), optionally through an impairment plan: reordering, duplicates,
 * loss, an SSRC change, a sequence wrap, DTX gaps with optional comfort noise
 * (RFC 3389), RFC 4733 key presses, malformed datagrams, and packets from a
 * second "foreign" socket.
 *
 * Everything is planned before the first packet leaves, and the report says
 * exactly what was sent (headers, payload, send time), so a test can compute
 * the recording a receiver must produce.
 */
import { randomBytes } from 'node:crypto';
import type dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { serializeRtp } from '../rtp/packet.js';
import type { Codec } from '../sdp/negotiate.js';
import { codecOf, TELEPHONE_EVENT_PT } from './codec.js';
import { type DtmfDigit, digitToEvent, encodeTelephoneEvent } from './dtmf.js';
import { FRAME_MS, FRAME_SAMPLES } from './frame.js';

export interface SenderTarget {
  address: string;
  port: number;
}

/** What happens around one audio frame (index into the sample, 20 ms each). */
export interface FramePlan {
  /** Not sent (loss). */
  drop?: boolean;
  /** Sent twice, back to back. */
  duplicate?: boolean;
  /** Sent one slot late, after the next frame (reordering). */
  reorder?: boolean;
  /** Before this frame: a new SSRC with its own sequence and timestamp bases (random unless given). */
  ssrcChange?: boolean | { ssrc?: number; sequenceNumber?: number; timestamp?: number };
  /** Before this frame: silence of this many ms; nothing is sent and the timestamps jump (DTX). */
  gapBeforeMs?: number;
  /** With gapBeforeMs: one comfort-noise packet (PT 13, RFC 3389) starts the gap. */
  comfortNoise?: boolean;
  /**
   * Replaces this and the following frames with one RFC 4733 key press
   * (update packets every 20 ms, the end packet sent three times, 2.5.1.4).
   */
  dtmf?: { digit: DtmfDigit; frames?: number };
  /** In this frame's slot, just before it: a packet from the foreign socket with this frame's header and a loud payload. */
  foreign?: boolean;
  /** In this frame's slot: a datagram that is not RTP (version 0). */
  invalid?: boolean;
}

/** A declarative impairment, applying to the listed frame indices. */
export type Impairment =
  | { kind: 'drop' | 'duplicate' | 'reorder' | 'foreign' | 'invalid'; frames: number[] }
  | { kind: 'ssrcChange'; frame: number; ssrc?: number; sequenceNumber?: number; timestamp?: number }
  | { kind: 'dtxGap'; frame: number; ms: number; comfortNoise?: boolean }
  | { kind: 'dtmf'; frame: number; digit: DtmfDigit; frames?: number };

export type ImpairmentPlan = Impairment[] | ((frame: number) => FramePlan | undefined);

export interface RtpSenderOptions {
  socket: dgram.Socket;
  target: SenderTarget;
  /** G.711 bytes to send, one per sample. Exactly one of `payload` and `pcm`. */
  payload?: Uint8Array;
  /** 8 kHz 16-bit PCM, encoded with `codec`. */
  pcm?: Int16Array;
  /** Default PCMU. */
  codec?: Codec;
  /** Default 0 (PCMU) or 8 (PCMA), RFC 3551 Table 4. */
  payloadType?: number;
  /** Default 101. */
  telephoneEventPt?: number;
  ssrc?: number;
  /** First sequence number; e.g. 65530 to cross the wrap early. Random by default. */
  sequenceNumber?: number;
  timestamp?: number;
  impairments?: ImpairmentPlan;
  /** Source of `foreign` packets: a second socket, so they come from another port. */
  foreignSocket?: dgram.Socket;
}

export type SentKind = 'audio' | 'dtmf' | 'comfortNoise' | 'foreign' | 'invalid';

export interface SentPacket {
  kind: SentKind;
  /** The audio frame carried (audio, and the frame a foreign packet imitates). */
  frame?: number;
  /** The second copy of a duplicated frame. */
  duplicate: boolean;
  from: 'main' | 'foreign';
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  marker: boolean;
  /** RTP payload (for `invalid`: the whole datagram). */
  payload: Uint8Array;
  /** performance.now() when the packet was due. */
  dueAt: number;
  /** performance.now() just before it was handed to the socket. */
  sentAt: number;
}

export interface PlannedFrame {
  frame: number;
  /** Due time relative to the start, ms (gaps included). */
  slotMs: number;
  ssrc: number;
  sequenceNumber: number;
  timestamp: number;
  payload: Uint8Array;
  fate: 'sent' | 'dropped' | 'dtmf';
}

export interface SendReport {
  /** performance.now() of slot 0 (the first packet is sent right away). */
  startedAt: number;
  endedAt: number;
  /** In send order. */
  packets: SentPacket[];
  /** Every audio frame of the sample, sent or not. */
  frames: PlannedFrame[];
  /** Frames not sent because stop() came first. */
  stoppedEarly: boolean;
  sendErrors: number;
}

export { FRAME_MS, FRAME_SAMPLES };

const PT_COMFORT_NOISE = 13;
/** RFC 4733 2.5.1.4: the end packet goes out three times. */
const END_REPEATS = 3;
/** µ-law/A-law code of a loud sample (µ-law 0x00 ≈ −32124): unmistakable if it ever reaches a recording. */
const LOUD = 0x00;
/** Sort key offset that puts a reordered packet after everything else in its slot. */
const LATE_ORDER = 1e9;

interface Step {
  offsetMs: number;
  packet: Omit<SentPacket, 'dueAt' | 'sentAt'>;
  bytes: Buffer;
}

export class RtpSender {
  readonly #options: RtpSenderOptions;
  readonly #steps: Step[];
  readonly #frames: PlannedFrame[];
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  #stopped = false;
  #finish: (() => void) | undefined;

  constructor(options: RtpSenderOptions) {
    if ((options.payload === undefined) === (options.pcm === undefined))
      throw new TypeError('RtpSender needs exactly one of payload and pcm');
    this.#options = options;
    const planned = plan(options);
    if (options.foreignSocket === undefined && planned.steps.some((s) => s.packet.from === 'foreign'))
      throw new TypeError('foreign packets are planned but no foreignSocket was given');
    this.#steps = planned.steps;
    this.#frames = planned.frames;
  }

  /** The plan's audio frames (available before sending). */
  get frames(): readonly PlannedFrame[] {
    return this.#frames;
  }

  /** Total length of the plan in ms (last packet's slot + one frame). */
  get durationMs(): number {
    const last = this.#steps[this.#steps.length - 1];
    return last === undefined ? 0 : last.offsetMs + FRAME_MS;
  }

  /** Sends the plan; resolves when the last packet has left (or after stop()). */
  start(): Promise<SendReport> {
    if (this.#started) throw new Error('RtpSender.start() called twice');
    this.#started = true;
    const { socket, foreignSocket, target } = this.#options;
    const steps = this.#steps;
    const packets: SentPacket[] = [];
    let sendErrors = 0;
    let pending = 0;
    let next = 0;
    const startedAt = performance.now();

    return new Promise<SendReport>((resolve) => {
      let done = false;
      const settle = () => {
        if (done || pending > 0 || (next < steps.length && !this.#stopped)) return;
        done = true;
        if (this.#timer !== undefined) clearTimeout(this.#timer);
        this.#timer = undefined;
        resolve({
          startedAt,
          endedAt: performance.now(),
          packets,
          frames: this.#frames,
          stoppedEarly: next < steps.length,
          sendErrors,
        });
      };
      this.#finish = settle;
      const step = () => {
        this.#timer = undefined;
        const now = performance.now();
        while (!this.#stopped && next < steps.length && startedAt + steps[next]!.offsetMs <= now) {
          const s = steps[next++]!;
          const sock = s.packet.from === 'foreign' ? foreignSocket! : socket;
          const sentAt = performance.now();
          packets.push({ ...s.packet, dueAt: startedAt + s.offsetMs, sentAt });
          pending++;
          sock.send(s.bytes, target.port, target.address, (err) => {
            pending--;
            if (err) sendErrors++;
            settle();
          });
        }
        const upcoming = steps[next];
        if (this.#stopped || upcoming === undefined) {
          settle();
          return;
        }
        this.#timer = setTimeout(
          step,
          Math.max(0, Math.ceil(startedAt + upcoming.offsetMs - performance.now())),
        );
      };
      step();
    });
  }

  /** Stops sending; start()'s promise resolves with what was sent. Idempotent. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#finish?.();
  }
}

/** Compiles a declarative list into a per-frame lookup. */
export function framePlans(list: Impairment[]): (frame: number) => FramePlan | undefined {
  const byFrame = new Map<number, FramePlan>();
  const at = (k: number): FramePlan => {
    let p = byFrame.get(k);
    if (!p) {
      p = {};
      byFrame.set(k, p);
    }
    return p;
  };
  for (const imp of list) {
    switch (imp.kind) {
      case 'drop':
      case 'duplicate':
      case 'reorder':
      case 'foreign':
      case 'invalid':
        for (const k of imp.frames) at(k)[imp.kind] = true;
        break;
      case 'ssrcChange': {
        const change: { ssrc?: number; sequenceNumber?: number; timestamp?: number } = {};
        if (imp.ssrc !== undefined) change.ssrc = imp.ssrc;
        if (imp.sequenceNumber !== undefined) change.sequenceNumber = imp.sequenceNumber;
        if (imp.timestamp !== undefined) change.timestamp = imp.timestamp;
        at(imp.frame).ssrcChange = change;
        break;
      }
      case 'dtxGap':
        at(imp.frame).gapBeforeMs = imp.ms;
        if (imp.comfortNoise) at(imp.frame).comfortNoise = true;
        break;
      case 'dtmf':
        at(imp.frame).dtmf =
          imp.frames === undefined ? { digit: imp.digit } : { digit: imp.digit, frames: imp.frames };
        break;
    }
  }
  return (k) => byFrame.get(k);
}

/** A sequence number shared by a packet, its duplicate and its foreign imitation. */
interface SeqRef {
  stream: number;
  /** Natural position (slot, then order of planning): numbers go out in this order. */
  slotMs: number;
  order: number;
  value: number;
}

interface Draft {
  sendMs: number;
  /** Sort key within a slot; a reordered packet goes after everything else there. */
  order: number;
  packet: Step['packet'];
  seq?: SeqRef;
  raw?: Buffer;
}

/**
 * Lays out every packet with its slot (ms from the start) and its bytes.
 * Sequence numbers are given last, in natural send order, so that only the
 * planned reordering (not e.g. an RFC 4733 end retransmission that shares a
 * later slot with audio) makes a packet arrive out of order.
 */
function plan(options: RtpSenderOptions): { steps: Step[]; frames: PlannedFrame[] } {
  const codec = options.codec ?? 'PCMU';
  const audio = options.payload ?? encode(options.pcm!, codec);
  const audioPt = options.payloadType ?? codecOf(codec).payloadType;
  const eventPt = options.telephoneEventPt ?? TELEPHONE_EVENT_PT;
  const impairments = options.impairments;
  const planOf =
    impairments === undefined
      ? () => undefined
      : typeof impairments === 'function'
        ? impairments
        : framePlans(impairments);

  const frameCount = Math.ceil(audio.length / FRAME_SAMPLES);
  const silence = codecOf(codec).silence;
  let ssrc = (options.ssrc ?? random32()) >>> 0;
  let ts = (options.timestamp ?? random32()) >>> 0;
  /** First sequence number of each SSRC's stream. */
  const seqBase = [(options.sequenceNumber ?? random32()) & 0xffff];
  let gapMs = 0;
  let marker = true;

  const drafts: Draft[] = [];
  const refs: SeqRef[] = [];
  const frameRefs: Array<SeqRef | undefined> = [];
  const frames: PlannedFrame[] = [];
  let order = 0;
  const newSeq = (slotMs: number): SeqRef => {
    const ref = { stream: seqBase.length - 1, slotMs, order: order++, value: -1 };
    refs.push(ref);
    return ref;
  };
  const add = (sendMs: number, packet: Step['packet'], seq?: SeqRef, late = false, raw?: Buffer) => {
    drafts.push({
      sendMs,
      order: (late ? LATE_ORDER : 0) + order++,
      packet,
      ...(seq ? { seq } : {}),
      ...(raw ? { raw } : {}),
    });
  };

  let dtmfLeft = 0;
  let dtmf: { event: number; timestamp: number; index: number } | undefined;
  for (let k = 0; k < frameCount; k++) {
    const p = planOf(k) ?? {};
    let slotMs = k * FRAME_MS + gapMs;
    if (p.gapBeforeMs !== undefined && p.gapBeforeMs > 0) {
      if (p.comfortNoise) {
        // RFC 3389 4: one CN packet at the start of the silence, with its timestamp.
        add(
          slotMs,
          {
            kind: 'comfortNoise',
            duplicate: false,
            from: 'main',
            payloadType: PT_COMFORT_NOISE,
            sequenceNumber: -1,
            timestamp: (ts + k * FRAME_SAMPLES) >>> 0,
            ssrc,
            marker: false,
            payload: Uint8Array.of(70), // noise level -70 dBov
          },
          newSeq(slotMs),
        );
      }
      const gapFrames = Math.round(p.gapBeforeMs / FRAME_MS);
      gapMs += gapFrames * FRAME_MS;
      ts = (ts + gapFrames * FRAME_SAMPLES) >>> 0;
      slotMs = k * FRAME_MS + gapMs;
      marker = true; // RFC 3551 4.1: first packet of a talkspurt
    }
    if (p.ssrcChange) {
      const c = typeof p.ssrcChange === 'object' ? p.ssrcChange : {};
      ssrc = (c.ssrc ?? random32()) >>> 0;
      seqBase.push((c.sequenceNumber ?? random32()) & 0xffff);
      // Choose the base so that this frame gets the requested timestamp.
      ts = ((c.timestamp ?? random32()) - k * FRAME_SAMPLES) >>> 0;
      marker = true;
    }
    const timestamp = (ts + k * FRAME_SAMPLES) >>> 0;
    const payload = frameBytes(audio, k, silence);

    if (p.invalid) {
      const junk = Buffer.from([0x00, 0x01, 0x02, 0x03, 0x04]); // version 0: not RTP
      const header = { payloadType: -1, sequenceNumber: -1, timestamp: -1, ssrc: -1, marker: false };
      add(
        slotMs,
        { kind: 'invalid', duplicate: false, from: 'main', ...header, payload: junk },
        undefined,
        false,
        junk,
      );
    }
    if (p.dtmf && dtmfLeft === 0) {
      const event = digitToEvent(p.dtmf.digit);
      if (event === undefined) throw new RangeError(`not a DTMF digit: ${p.dtmf.digit}`);
      dtmfLeft = Math.max(1, p.dtmf.frames ?? 5);
      dtmf = { event, timestamp, index: 0 };
    }
    if (dtmfLeft > 0 && dtmf) {
      frames.push({ frame: k, slotMs, ssrc, sequenceNumber: -1, timestamp, payload, fate: 'dtmf' });
      frameRefs.push(undefined);
      dtmf.index++;
      dtmfLeft--;
      const end = dtmfLeft === 0;
      const eventPayload = encodeTelephoneEvent({
        event: dtmf.event,
        end,
        volume: 10,
        duration: Math.min(0xffff, dtmf.index * FRAME_SAMPLES),
      });
      // RFC 4733 2.5.1.4: the end packet three times, one per update interval, each a new RTP packet.
      for (let r = 0; r < (end ? END_REPEATS : 1); r++) {
        const at = slotMs + r * FRAME_MS;
        add(
          at,
          {
            kind: 'dtmf',
            duplicate: r > 0,
            from: 'main',
            payloadType: eventPt,
            sequenceNumber: -1,
            timestamp: dtmf.timestamp,
            ssrc,
            marker: dtmf.index === 1 && r === 0, // RFC 4733 2.5.1.1: M on the first packet of an event
            payload: eventPayload,
          },
          newSeq(at),
        );
      }
      marker = true;
      continue;
    }

    const seq = newSeq(slotMs);
    frames.push({
      frame: k,
      slotMs,
      ssrc,
      sequenceNumber: -1,
      timestamp,
      payload,
      fate: p.drop ? 'dropped' : 'sent',
    });
    frameRefs.push(seq);
    const packet: Step['packet'] = {
      kind: 'audio',
      frame: k,
      duplicate: false,
      from: 'main',
      payloadType: audioPt,
      sequenceNumber: -1,
      timestamp,
      ssrc,
      marker,
      payload,
    };
    marker = false;
    if (p.foreign) {
      // Same header as the real packet, sent first from another port: if the
      // receiver took it, the loud payload would be in the recording instead.
      const loud = new Uint8Array(payload.length).fill(LOUD);
      add(slotMs, { ...packet, kind: 'foreign', from: 'foreign', payload: loud }, seq);
    }
    if (p.drop) continue;
    // A reordered frame goes out in the next slot, after that slot's packets.
    const sendMs = p.reorder ? slotMs + FRAME_MS : slotMs;
    add(sendMs, packet, seq, p.reorder);
    if (p.duplicate) add(sendMs, { ...packet, duplicate: true }, seq, p.reorder);
  }

  // Number each stream's packets in natural order (RFC 3550 5.1: +1 per packet sent).
  refs.sort((x, y) => x.slotMs - y.slotMs || x.order - y.order);
  const next = [...seqBase];
  for (const ref of refs) ref.value = next[ref.stream]!++ & 0xffff;
  frames.forEach((f, i) => {
    f.sequenceNumber = frameRefs[i]?.value ?? -1;
  });

  drafts.sort((x, y) => x.sendMs - y.sendMs || x.order - y.order);
  const steps = drafts.map((d): Step => {
    const packet = d.seq ? { ...d.packet, sequenceNumber: d.seq.value } : d.packet;
    const bytes =
      d.raw ??
      serializeRtp({
        marker: packet.marker,
        payloadType: packet.payloadType,
        sequenceNumber: packet.sequenceNumber,
        timestamp: packet.timestamp,
        ssrc: packet.ssrc,
        payload: packet.payload,
      });
    return { offsetMs: d.sendMs, packet, bytes };
  });
  return { steps, frames };
}

function frameBytes(audio: Uint8Array, k: number, silence: number): Uint8Array {
  const start = k * FRAME_SAMPLES;
  const end = start + FRAME_SAMPLES;
  if (end <= audio.length) return audio.subarray(start, end);
  // The last frame is padded with silence: RTP frames stay 20 ms long.
  const out = new Uint8Array(FRAME_SAMPLES).fill(silence);
  out.set(audio.subarray(start));
  return out;
}

function encode(pcm: Int16Array, codec: Codec): Uint8Array {
  const out = new Uint8Array(pcm.length);
  codecOf(codec).encodeFrame(pcm, out);
  return out;
}

function random32(): number {
  return randomBytes(4).readUInt32BE(0);
}
