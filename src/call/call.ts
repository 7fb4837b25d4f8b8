/**
 * One answered (or being answered) inbound call. It owns its dialog, its
 * media session (RTP socket, jitter buffer, WAV) and its live sinks; ending
 * the call closes all of them, once, and writes the sidecar.
 */
import { describeError, ErrorCodes, SoftphoneError } from '../errors.js';
import type { FrameSink } from '../media/frame-sink.js';
import type { DtmfEvent, MediaSession, MediaStats } from '../media/session.js';
import { SafeEmitter } from '../safe-emitter.js';
import type { NegotiatedMedia } from '../sdp/negotiate.js';
import type { DtmfRecord } from '../sinks/sidecar.js';
import { writeSidecar } from '../sinks/sidecar.js';
import type { WavWriter } from '../sinks/wav.js';
import { WavSink } from '../sinks/wav-sink.js';
import type { Dialog } from '../sip/dialog/dialog.js';
import { FrameFanOut } from './frame-fanout.js';

export type CallEndReason =
  | 'remote-bye'
  | 'local-hangup'
  | 'cancelled'
  | 'no-ack'
  | 'media-timeout'
  | 'max-duration'
  | 'shutdown'
  | 'flow-lost'
  | 'error';

export interface CallParty {
  /** The From/To header value as received. */
  header: string;
  /** The URI's user part (the phone number), when there is one. */
  user: string | undefined;
  displayName: string | undefined;
}

export interface CallEndInfo {
  reason: CallEndReason;
  durationMs: number;
  wav: string | undefined;
  sidecar: string | undefined;
  /** Media statistics plus live-sink counters (engineFramesDropped, streamFramesDropped, …). */
  stats: (MediaStats & Record<string, number>) | undefined;
  dtmf: DtmfRecord[];
  /**
   * Why the recording failed, when it did: the WAV could not be created
   * (`wav` is then undefined) or a write failed mid-call (`wav` holds what
   * reached the disk).
   */
  recordingError?: { code: string; message: string };
}

/** What was negotiated, as the `media` event and `call.media` report it. */
export interface CallMediaInfo {
  codec: string;
  /** The address and port in our SDP. */
  localMedia: string;
  /** Where the far end asked for RTP (its SDP). */
  remoteMedia: string;
  /** Our direction (RFC 3264). */
  direction: string;
  /** The far end holds the call. */
  onHold: boolean;
}

export interface CallEvents {
  answered: [];
  /** The media were negotiated (at the answer, or at the ACK of a late offer) or changed (re-INVITE). */
  media: [info: CallMediaInfo];
  dtmf: [event: DtmfEvent & { source: 'rfc4733' | 'info' }];
  /** Decoded audio as it plays out of the jitter buffer: the WAV's samples, 20 ms at a time (reused array). */
  frame: [frame: Int16Array];
  /** A sink failed (WAV write, engine, stream); the call goes on. */
  sinkError: [error: SoftphoneError];
  /** One stdout line of the --pipe engine: the text, and the parsed value when it is JSON. */
  engine: [line: { text: string; json: object | undefined }];
  engineStderr: [line: string];
  engineExit: [info: { code: number | null; signal: string | null; duringCall: boolean }];
  /** The media stream (WebSocket) opened or closed. */
  stream: [info: { state: 'open' | 'closed'; code?: number; reason?: string }];
  ended: [info: CallEndInfo];
}

export interface CallInit {
  callId: string;
  from: CallParty;
  to: CallParty;
  startedAt: Date;
  wavPath: string | undefined;
  sidecarPath: string | undefined;
}

export class Call extends SafeEmitter<CallEvents> {
  readonly id: string;
  readonly from: CallParty;
  readonly to: CallParty;
  readonly startedAt: Date;
  readonly wavPath: string | undefined;
  readonly sidecarPath: string | undefined;
  dialog: Dialog | undefined;
  media: MediaSession | undefined;
  negotiated: NegotiatedMedia | undefined;
  /** The address and port our SDP announces (not the socket's bind address). */
  localMedia: { address: string; port: number } | undefined;
  /** performance.now() when the 200 OK went out. */
  answeredAt: number | undefined;
  readonly dtmf: DtmfRecord[] = [];
  #ended: CallEndInfo | undefined;
  #recordingError: SoftphoneError | undefined;
  /** True once a WAV file was created for this call. */
  #recording = false;
  #resolveDone: (info: CallEndInfo) => void = () => {};
  /** Resolves with the end info once the call has ended and its sinks are closed (after 'ended'). */
  readonly done: Promise<CallEndInfo> = new Promise((resolve) => {
    this.#resolveDone = resolve;
  });
  /** Installed by the call manager: sends BYE (when confirmed) and ends the call. */
  hangupHandler: ((reason: CallEndReason) => Promise<void>) | undefined;
  /** Extra closers run at the end; each may take time. */
  readonly #closers: (() => Promise<unknown> | unknown)[] = [];
  /** The call's frames to the WAV first, then the live sinks, then 'frame' listeners. */
  readonly #fanOut = new FrameFanOut(
    (err) => this.emit('sinkError', asSinkError(err)),
    (frame) => this.emit('frame', frame),
  );
  readonly #statSources: (() => Record<string, number>)[] = [];

  constructor(init: CallInit) {
    super();
    this.id = init.callId;
    this.from = init.from;
    this.to = init.to;
    this.startedAt = init.startedAt;
    this.wavPath = init.wavPath;
    this.sidecarPath = init.sidecarPath;
  }

  get ended(): boolean {
    return this.#ended !== undefined;
  }

  get endInfo(): CallEndInfo | undefined {
    return this.#ended;
  }

  /** Milliseconds since the answer (0 before it). */
  get durationMs(): number {
    return this.answeredAt === undefined ? 0 : performance.now() - this.answeredAt;
  }

  /** Hangs up: BYE to the caller, recording finished. Resolves when the call has ended. */
  async hangup(): Promise<void> {
    if (this.ended) return;
    if (this.hangupHandler) await this.hangupHandler('local-hangup');
    else this.finish('local-hangup');
  }

  /** Registers something to close when the call ends (after the media stops). */
  onClose(closer: () => Promise<unknown> | unknown): void {
    this.#closers.push(closer);
  }

  /** Adds a live sink (engine pipe, media stream): it gets every frame after the WAV; closed at the end. */
  addSink(sink: FrameSink): void {
    this.#fanOut.add(sink);
  }

  /** Adds counters (e.g. frames a live sink dropped) to the call's final stats and sidecar. */
  addStats(source: () => Record<string, number>): void {
    this.#statSources.push(source);
  }

  /** Records newly negotiated media and reports them (`media` event). */
  setNegotiated(negotiated: NegotiatedMedia): void {
    this.negotiated = negotiated;
    const local = this.localMedia;
    this.emit('media', {
      codec: negotiated.codec,
      localMedia: local ? hostPort(local.address, local.port) : '',
      remoteMedia: hostPort(negotiated.remoteAddress, negotiated.remotePort),
      direction: negotiated.direction,
      onHold: negotiated.onHold,
    });
  }

  /** The WAV could not be created or written (the first failure is kept). */
  recordingFailed(error: SoftphoneError): void {
    this.#recordingError ??= error;
  }

  /** Connects the media: its frames go to the recording (when there is one), the live sinks and listeners. */
  attachMedia(media: MediaSession, wav: WavWriter | undefined): void {
    this.#recording = wav !== undefined;
    this.media = media;
    if (wav) {
      this.#fanOut.setRecording(
        new WavSink(wav, (err) => {
          this.recordingFailed(err);
          this.emit('sinkError', err);
        }),
      );
    }
    media.on('dtmf', (e) => this.recordDtmf(e.digit, e.atMs, 'rfc4733'));
    media.on('frame', (frame, info) => this.#fanOut.write(frame, info));
    media.on('error', (err) => this.emit('sinkError', err));
  }

  recordDtmf(digit: string, atMs: number, source: 'rfc4733' | 'info'): void {
    const record: DtmfRecord = { digit, atMs: Math.round(atMs), source };
    this.dtmf.push(record);
    this.emit('dtmf', { digit: digit as DtmfEvent['digit'], atMs: record.atMs, source });
  }

  /**
   * Ends the call locally: stops the media (flushing the jitter buffer's tail
   * into the WAV), writes the sidecar, closes live sinks. Idempotent; returns
   * the end info. Signalling (BYE) is the call manager's job.
   */
  finish(reason: CallEndReason): CallEndInfo {
    if (this.#ended) return this.#ended;
    const mediaStats = this.media?.stop();
    // The WAV is final (header patched) before the sidecar that names it is written.
    this.#fanOut.closeRecording();
    const extra = Object.assign(
      {},
      this.#fanOut.stats(),
      ...this.#statSources.map((source) => source()),
    ) as Record<string, number>;
    const stats = mediaStats ? { ...mediaStats, ...extra } : undefined;
    const durationMs = Math.round(this.durationMs);
    const wav = this.#recording ? this.wavPath : undefined;
    const failure = this.#recordingError;
    const recordingError = failure && { code: failure.code, message: failure.message };
    let sidecar = this.sidecarPath;
    if (this.sidecarPath) {
      try {
        writeSidecar(this.sidecarPath, {
          callId: this.id,
          from: this.from.header,
          to: this.to.header,
          startedAt: this.startedAt.toISOString(),
          endedAt: new Date().toISOString(),
          durationMs,
          codec: this.negotiated?.codec ?? null,
          wav: wav ?? null,
          ...(recordingError && { recordingError }),
          endReason: reason,
          stats: { ...sidecarStats(mediaStats), ...extra },
          dtmf: this.dtmf,
        });
      } catch (err) {
        sidecar = undefined;
        this.emit('sinkError', err as SoftphoneError);
      }
    }
    this.#ended = {
      reason,
      durationMs,
      wav,
      sidecar,
      stats,
      dtmf: [...this.dtmf],
      ...(recordingError && { recordingError }),
    };
    const info = this.#ended;
    const closing = [this.#fanOut.close(), ...this.#closers.map(async (close) => close())];
    void Promise.allSettled(closing).then((results) => {
      for (const r of results) {
        if (r.status === 'rejected') this.emit('sinkError', r.reason as SoftphoneError);
      }
      this.emit('ended', info);
      this.#resolveDone(info);
    });
    return info;
  }
}

function sidecarStats(stats: MediaStats | undefined) {
  const s = stats;
  return {
    received: s?.received ?? 0,
    lost: s?.lost ?? 0,
    late: s?.late ?? 0,
    duplicate: s?.duplicate ?? 0,
    reordered: s?.reordered ?? 0,
    foreignSource: s?.foreignSource ?? 0,
    invalid: s?.invalid ?? 0,
    ...(s && {
      resync: s.resync,
      ssrcChange: s.ssrcChange,
      framesWritten: s.framesWritten,
      packetsSent: s.packetsSent,
    }),
  };
}

function asSinkError(err: unknown): SoftphoneError {
  return err instanceof SoftphoneError
    ? err
    : new SoftphoneError(ErrorCodes.SINK_WRITE_FAILED, `a sink failed: ${describeError(err)}`, {
        cause: err,
      });
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function describeEnd(info: CallEndInfo): string {
  return `${info.reason} after ${(info.durationMs / 1000).toFixed(1)} s`;
}
