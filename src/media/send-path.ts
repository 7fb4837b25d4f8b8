/**
 * What a call sends, as a pure processor beside ReceivePath (no socket, no
 * clock): the packet clock, the priming packet, DTMF events, and the audio
 * of the call's sources (talk-back, files being played), mixed, encoded in
 * the negotiated codec (G.711 by table, Opus by a stateful encoder), or
 * silence. MediaSession drives it from its timer;
 * the media benchmark can drive it without sockets.
 *
 * Times are milliseconds on the call's timeline (since the answer, t0).
 * Frame n of the stream is due at n·ptime and carries timestamp
 * ts0 + n·(samples per ptime); every due time and timestamp is computed
 * from n, never accumulated, so nothing drifts over hours (RFC 3550 5.1:
 * random SSRC, initial sequence number and timestamp).
 */
import { randomBytes } from 'node:crypto';
import { serializeRtp } from '../rtp/packet.js';
import {
  type CodecName,
  codecInfo,
  type EncoderOptions,
  type FrameEncoder,
  type SampleRate,
} from './codec.js';
import type { DtmfDigit } from './dtmf.js';
import { DtmfSender, type DtmfSendOptions } from './dtmf-sender.js';
import { FRAME_MS } from './frame.js';
import { opusSilence } from './opus.js';
import { StreamResampler } from './resample.js';

/**
 * Audio to send: 20 ms frames of PCM at `sampleRate` (default 8000), or
 * undefined when there is none right now. A source at another rate than the
 * encoder's is resampled (half-band filter), so a µ-law talk-back stream at
 * 8 kHz plays into an Opus call and a 16 kHz file into a G.711 one.
 */
export interface OutboundSource {
  readonly sampleRate?: SampleRate;
  nextFrame(): Int16Array | undefined;
}

export interface SendMedia {
  codec: CodecName;
  /** Payload type to send the codec with (the remote side's number). */
  payloadType: number;
  /** RFC 4733 telephone-event payload type, when negotiated. */
  telephoneEventPt?: number | undefined;
  /** Packetization, ms (a=ptime; bounded to 10..120; for Opus one of 10, 20, 40, 60). */
  ptime: number;
  /**
   * RTP clock rate (NegotiatedMedia.clockRate): timestamps advance by
   * ptime × clockRate / 1000 per packet. Default the codec's (48000 for Opus,
   * RFC 7587 4.1); RingCentral's OPUS/16000 runs at 16000.
   */
  clockRate?: number | undefined;
  /** Rate of the sources' PCM and of the encoder (NegotiatedMedia.sampleRate); default the codec's first working rate. */
  sampleRate?: SampleRate | undefined;
  /** Settings for a stateful codec's encoder (Opus: FEC when the far end decodes it, its maxplaybackrate, …). */
  encoder?: EncoderOptions | undefined;
}

export interface SendPathOptions {
  media: SendMedia;
  /** Send silence when no source has audio (keeps NAT bindings and media servers happy). Default true. */
  sendSilence?: boolean;
  /** Reported once when a source throws (it is then skipped for that frame). */
  onSourceError?: (error: unknown) => void;
  /** Each DTMF key as its first packet goes out. */
  onDtmfSent?: (digit: DtmfDigit) => void;
  /** After a stall longer than this (ms), skip ahead instead of sending the backlog. Default MAX_CATCH_UP_MS. */
  maxCatchUpMs?: number;
}

/** Packet durations an Opus encoder can produce in one frame (RFC 6716 2.1.4; 2.5 and 5 ms are below a=ptime's 10). */
const OPUS_PTIMES = [10, 20, 40, 60];

/**
 * After a stall longer than this, sending skips ahead instead of bursting the
 * backlog: a phone's jitter buffer drops a burst of old audio anyway, and the
 * timestamp jump tells it time passed. A measurement (smoke) raises it, so a
 * stall of its own process shows as latency instead of cutting the pattern.
 */
export const MAX_CATCH_UP_MS = 100;

export class SendPath {
  readonly ssrc = randomBytes(4).readUInt32BE(0);
  readonly #seq0 = randomBytes(2).readUInt16BE(0);
  readonly #ts0 = randomBytes(4).readUInt32BE(0);
  readonly #sources = new Set<OutboundSource>();
  readonly #sendSilence: boolean;
  readonly #onSourceError: ((error: unknown) => void) | undefined;
  readonly #onDtmfSent: ((digit: DtmfDigit) => void) | undefined;
  readonly #maxCatchUpMs: number;
  #media: SendMedia;
  #clockRate: number;
  #sampleRate: SampleRate;
  /** The stateful codec's encoder (Opus); undefined for G.711, which encodes by table. */
  #encoder: FrameEncoder | undefined;
  /** The last frame sent was silence, not encoder output: reset the encoder when audio resumes. */
  #quiet = true;
  #dtmf: DtmfSender;
  #packetsSent = 0;
  #octetsSent = 0;
  /** Index of the next frame to send; frame n is due at n·ptime. */
  #index = 0;
  #marker = true;
  #ptime = FRAME_MS;
  /** RTP timestamp step per packet (clock rate). */
  #frameSamples = 160;
  /** PCM samples per packet (working rate). */
  #pcmSamples = 160;
  #pcm = new Int16Array(160);
  #mix = new Int32Array(160);
  #payload = new Uint8Array(160);
  /** Per source: the rest of a frame that did not fit this ptime. */
  readonly #leftover = new Map<OutboundSource, Int16Array>();
  /** Per source at another rate than the encoder's: its resampler (filter state kept across frames). */
  readonly #resamplers = new Map<OutboundSource, StreamResampler>();
  #sourceFailed = false;

  /**
   * For Opus the codec's library must be loaded (prepareCodecs / loadOpus);
   * otherwise this throws CODEC_FAILED.
   */
  constructor(options: SendPathOptions) {
    this.#media = { ...options.media };
    this.#clockRate = clockRateOf(options.media);
    this.#sampleRate = sampleRateOf(options.media);
    this.#encoder = createEncoder(options.media, this.#sampleRate);
    this.#sendSilence = options.sendSilence ?? true;
    this.#onSourceError = options.onSourceError;
    this.#onDtmfSent = options.onDtmfSent;
    this.#maxCatchUpMs = options.maxCatchUpMs ?? MAX_CATCH_UP_MS;
    this.#setPtime(options.media.ptime, false);
    this.#dtmf = new DtmfSender(this.#ptime, this.#clockRate);
  }

  get packetsSent(): number {
    return this.#packetsSent;
  }

  /** Payload octets sent (RFC 3550 6.4.1 sender's octet count: headers and padding excluded). */
  get octetsSent(): number {
    return this.#octetsSent;
  }

  /**
   * The RTP timestamp of our stream at `nowMs` on the call's timeline: what an
   * RTCP sender report pairs with its NTP time (RFC 3550 6.4.1), so the far end
   * can line our stream up with wall-clock time. Frame n carries
   * ts0 + n·(samples per ptime) and is due at n·ptime, hence ts0 + ms·rate.
   */
  rtpTimestampAt(nowMs: number): number {
    return (this.#ts0 + Math.round((nowMs * this.#clockRate) / 1000)) >>> 0;
  }

  get ptime(): number {
    return this.#ptime;
  }

  /** When (ms on the timeline) the next frame is due. */
  get nextDueMs(): number {
    return this.#index * this.#ptime;
  }

  /** True when there is something to send besides silence (a source, DTMF). */
  get hasContent(): boolean {
    return this.#sources.size > 0 || this.#dtmf.busy;
  }

  /** Whether frames without audio are sent as silence. */
  get sendsSilence(): boolean {
    return this.#sendSilence;
  }

  addSource(source: OutboundSource): void {
    this.#sources.add(source);
  }

  removeSource(source: OutboundSource): void {
    this.#sources.delete(source);
    this.#leftover.delete(source);
    this.#resamplers.get(source)?.close();
    this.#resamplers.delete(source);
  }

  /** The rate the encoder takes (sources at another rate are resampled to it). */
  get sampleRate(): SampleRate {
    return this.#sampleRate;
  }

  /** Queues DTMF; `done` when its last packet has gone out (see DtmfSender). */
  sendDtmf(digits: string, options: DtmfSendOptions, done: () => void): void {
    this.#dtmf.enqueue(digits, options, done);
  }

  /** A re-INVITE changed the codec, payload types, rates or ptime. */
  update(media: SendMedia, nowMs: number): void {
    const old = this.#media;
    const clockRate = clockRateOf(media);
    const sampleRate = sampleRateOf(media);
    const ptimeChanged =
      media.ptime !== old.ptime || clockRate !== this.#clockRate || sampleRate !== this.#sampleRate;
    if (
      media.codec !== old.codec ||
      sampleRate !== this.#sampleRate ||
      JSON.stringify(media.encoder) !== JSON.stringify(old.encoder)
    ) {
      this.#encoder?.close();
      this.#encoder = createEncoder(media, sampleRate);
      this.#quiet = true;
    }
    if (sampleRate !== this.#sampleRate) this.#closeResamplers();
    this.#media = { ...media };
    this.#clockRate = clockRate;
    this.#sampleRate = sampleRate;
    if (ptimeChanged) {
      this.#setPtime(media.ptime, true);
      this.#dtmf.clear();
      this.#dtmf = new DtmfSender(this.#ptime, this.#clockRate);
      this.skipTo(nowMs);
    }
  }

  /**
   * The priming packet, sent right after answering (a latching media server
   * learns our address from it): one frame of silence in the negotiated
   * codec, marker set, as the first packet of our stream. Not a
   * telephone-event: real receivers report any event as a key press
   * (baresip on its start or end packet, linphone on the end packet, Asterisk
   * ends an unended one itself), and an IVR hears "0". It takes the frame slot
   * due now, so the first frame after it never shares its timestamp.
   */
  prime(nowMs: number): Buffer {
    const index = Math.max(this.#index, Math.floor(nowMs / this.#ptime));
    const m = this.#media;
    // RFC 3550 5.1 / RFC 3551 4.1: M bit on the first packet of a talkspurt.
    this.#marker = true;
    const packet = this.#packet(m.payloadType, index, this.#silence());
    this.#index = index + 1;
    return packet;
  }

  /** Sending resumes at `nowMs` (after hold, a stall): the timestamp jump tells the receiver time passed. */
  skipTo(nowMs: number): void {
    const index = Math.ceil(nowMs / this.#ptime);
    if (index > this.#index) this.#index = index;
    this.#marker = true;
  }

  /** Builds every frame due by `nowMs` and hands each packet to `send`. */
  due(nowMs: number, send: (packet: Buffer) => void): void {
    if (nowMs - this.#index * this.#ptime > this.#maxCatchUpMs) this.skipTo(nowMs);
    while (this.#index * this.#ptime <= nowMs) {
      const packet = this.#frame();
      if (packet !== undefined) send(packet);
      this.#index++;
    }
  }

  /** Drops DTMF still queued (completing its promises) and frees the encoder: the call is over. */
  close(): void {
    this.#encoder?.close();
    this.#dtmf.clear();
    this.#sources.clear();
    this.#leftover.clear();
    this.#closeResamplers();
  }

  #closeResamplers(): void {
    for (const r of this.#resamplers.values()) r.close();
    this.#resamplers.clear();
  }

  #frame(): Buffer | undefined {
    const plan = this.#dtmf.next(this.#onDtmfSent);
    const m = this.#media;
    if (plan?.kind === 'event' && m.telephoneEventPt !== undefined) {
      if (plan.marker) this.#marker = true;
      return this.#packet(m.telephoneEventPt, this.#index - plan.startOffset, plan.payload);
    }
    // DTMF mutes the sources (they are still read, so talk-back keeps its pace).
    const haveAudio = this.#fillFromSources() && plan === undefined;
    if (!haveAudio && !this.#sendSilence && plan === undefined) return undefined;
    return this.#packet(m.payloadType, this.#index, haveAudio ? this.#encode() : this.#silence());
  }

  #encode(): Uint8Array {
    const encoder = this.#encoder;
    if (encoder === undefined) {
      const codec = codecInfo(this.#media.codec);
      if (codec.kind === 'table') codec.encodeFrame(this.#pcm, this.#payload);
      return this.#payload;
    }
    // Silence went out as a fixed packet the encoder never saw: start it afresh
    // so its first frame does not lean on a history the far end never decoded.
    if (this.#quiet) encoder.reset();
    this.#quiet = false;
    return encoder.encode(this.#pcm);
  }

  /**
   * One packet of silence: G.711's silence byte, or a fixed Opus packet of
   * digital silence (encoding silence costs about half a speech frame, for
   * every call, every 20 ms: not worth it for nothing).
   */
  #silence(): Uint8Array {
    this.#quiet = true;
    const codec = codecInfo(this.#media.codec);
    if (codec.kind === 'table') return this.#payload.fill(codec.silence);
    return opusSilence(this.#sampleRate, this.#pcmSamples);
  }

  /** Mixes one ptime of every source into #pcm (clipped sum); false when none had audio. */
  #fillFromSources(): boolean {
    if (this.#sources.size === 0) return false;
    const mix = this.#mix;
    mix.fill(0);
    let any = false;
    for (const source of this.#sources) {
      if (this.#addSource(source, mix)) any = true;
    }
    if (!any) return false;
    const pcm = this.#pcm;
    for (let i = 0; i < pcm.length; i++) {
      const v = mix[i]!;
      pcm[i] = Math.min(32767, Math.max(-32768, v));
    }
    return true;
  }

  #addSource(source: OutboundSource, mix: Int32Array): boolean {
    let filled = 0;
    while (filled < mix.length) {
      let chunk = this.#leftover.get(source);
      this.#leftover.delete(source);
      chunk ??= this.#read(source);
      if (chunk === undefined) break;
      const take = Math.min(chunk.length, mix.length - filled);
      for (let i = 0; i < take; i++) mix[filled + i]! += chunk[i]!;
      filled += take;
      // A ptime that is not 20 ms splits frames; keep a copy, the source may reuse its array.
      if (take < chunk.length) this.#leftover.set(source, chunk.slice(take));
    }
    return filled > 0;
  }

  /** A source is user code: a throw means "no audio now" (reported once), never a dead tick. */
  #read(source: OutboundSource): Int16Array | undefined {
    try {
      const frame = source.nextFrame();
      const rate = source.sampleRate ?? 8000;
      if (frame === undefined || rate === this.#sampleRate) return frame;
      let resampler = this.#resamplers.get(source);
      if (resampler === undefined) {
        resampler = StreamResampler.halfband(rate, this.#sampleRate);
        this.#resamplers.set(source, resampler);
      }
      return resampler.process(frame);
    } catch (err) {
      if (!this.#sourceFailed) {
        this.#sourceFailed = true;
        this.#onSourceError?.(err);
      }
      return undefined;
    }
  }

  #packet(payloadType: number, index: number, payload: Uint8Array): Buffer {
    const packet = serializeRtp({
      marker: this.#marker,
      payloadType,
      sequenceNumber: (this.#seq0 + this.#packetsSent) & 0xffff,
      timestamp: (this.#ts0 + index * this.#frameSamples) >>> 0,
      ssrc: this.ssrc,
      payload,
    });
    this.#marker = false;
    this.#packetsSent++;
    this.#octetsSent += payload.length;
    return packet;
  }

  #setPtime(ptime: number, keepClock: boolean): void {
    // Sanity bounds for a remote-supplied value (RFC 4566 a=ptime).
    let ms = Number.isFinite(ptime) ? Math.min(120, Math.max(10, Math.round(ptime))) : FRAME_MS;
    // An Opus encoder makes one frame of 10, 20, 40 or 60 ms per packet: the longest that fits.
    if (this.#encoder !== undefined) ms = OPUS_PTIMES.filter((p) => p <= ms).pop() ?? FRAME_MS;
    if (keepClock) {
      // Keep the timestamp running at the clock rate across the change of frame size.
      const elapsed = this.#index * this.#ptime;
      this.#ptime = ms;
      this.#index = Math.ceil(elapsed / ms);
    } else {
      this.#ptime = ms;
    }
    this.#frameSamples = (ms * this.#clockRate) / 1000;
    this.#pcmSamples = (ms * this.#sampleRate) / 1000;
    this.#pcm = new Int16Array(this.#pcmSamples);
    this.#mix = new Int32Array(this.#pcmSamples);
    this.#payload = new Uint8Array(this.#pcmSamples);
    this.#leftover.clear();
  }
}

function clockRateOf(media: SendMedia): number {
  return media.clockRate ?? codecInfo(media.codec).clockRate;
}

function sampleRateOf(media: SendMedia): SampleRate {
  const rates = codecInfo(media.codec).sampleRates;
  return media.sampleRate !== undefined && rates.includes(media.sampleRate) ? media.sampleRate : rates[0]!;
}

function createEncoder(media: SendMedia, sampleRate: SampleRate): FrameEncoder | undefined {
  const codec = codecInfo(media.codec);
  return codec.kind === 'stateful' ? codec.createEncoder(sampleRate, media.encoder) : undefined;
}
