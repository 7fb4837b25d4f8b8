/**
 * `--stream-url ws://…|wss://…`: the call's audio as a Twilio Media Streams
 * WebSocket, so bots written for Twilio work unchanged.
 *
 * Message shapes follow https://www.twilio.com/docs/voice/media-streams/websocket-messages
 * (bidirectional stream, `<Connect><Stream>`):
 *
 *   → connected {event, protocol: "Call", version: "1.0.0"}            (no sequenceNumber)
 *   → start     {event, sequenceNumber: "1", start: {accountSid?, streamSid, callSid,
 *                tracks: ["inbound"], customParameters, mediaFormat: {encoding:
 *                "audio/x-mulaw", sampleRate: 8000, channels: 1}}, streamSid}
 *   → media     {event, sequenceNumber, media: {track: "inbound", chunk, timestamp, payload}, streamSid}
 *   → dtmf      {event, streamSid, sequenceNumber, dtmf: {track: "inbound_track", digit}}
 *   → mark      {event, sequenceNumber, streamSid, mark: {name}}       (echo of the server's mark)
 *   → stop      {event, sequenceNumber, stop: {accountSid?, callSid}, streamSid}
 *   ← media     {event, streamSid, media: {payload}}  base64 µ-law/8000, "can be of any size"
 *   ← mark      {event, streamSid, mark: {name}}      echoed once the audio before it has played
 *   ← clear     {event, streamSid}                    empties the audio buffer; pending marks are
 *                                                     sent back ("causes any mark messages to be
 *                                                     sent back to your WebSocket server")
 *
 * All numeric-looking fields (sequenceNumber, chunk, timestamp) are strings,
 * as Twilio sends them. sequenceNumber counts every message after
 * `connected` from 1; chunk counts media messages from 1; timestamp is the
 * frame's position in ms since the stream started (samples / 8), so frames
 * dropped here show as a jump in timestamps, as lost packets do at Twilio.
 *
 * Never blocking the call: frames are queued while connecting and the socket
 * is watched while open; once `maxBufferMs` of media is waiting (queued or
 * handed to the socket but not yet written out), further frames are dropped
 * and counted. A socket that fails mid-call is reported once (STREAM_FAILED)
 * and every later call is a safe no-op; the call and its recording go on.
 *
 * Talk-back: the server's media is decoded to 160-sample Int16 frames (any
 * payload length; partial frames are completed by the next payload) and
 * handed out by `outbound.nextFrame()`, which MediaSession calls every 20 ms
 * on its monotonic clock, after a small adaptive lead that absorbs the
 * server's jitter (see TalkBackQueue). A mark is echoed once every frame
 * queued before it has been taken.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type ClientOptions, type RawData, WebSocket } from 'ws';
import { ErrorCodes, SoftphoneError } from '../errors.js';
import { FRAME_MS, FRAME_SAMPLES } from '../media/frame.js';
import { encodeUlawFrame, ULAW_SILENCE } from '../media/g711.js';
import { TalkBackQueue, type TalkBackStats } from './talkback-queue.js';

export interface MediaStreamOptions {
  /** Media waiting to go out (connecting or slow socket) before frames are dropped; default 3000 ms. */
  maxBufferMs?: number;
  /** Talk-back audio queued for playout before further audio is dropped; default 300 000 ms. */
  maxPlaybackMs?: number;
  /** WebSocket opening handshake limit; default 10 000 ms. */
  handshakeTimeoutMs?: number;
  /** How long stop() waits for the connection to open (if still opening) and then to close; default 3000 ms. */
  closeTimeoutMs?: number;
  /** Largest message accepted from the server; default 4 MiB. */
  maxMessageBytes?: number;
  /** For wss:// to a server with a private CA. */
  ca?: string | Buffer | Array<string | Buffer>;
}

export interface MediaStreamConnectOptions {
  /** Our call id; sent as start.callSid and stop.callSid. */
  callId: string;
  from: string;
  to: string;
  /** Merged into start.customParameters after {from, to}. */
  customParameters?: Record<string, string>;
  /** Extra HTTP headers for the upgrade request (e.g. Authorization); never logged. */
  headers?: Record<string, string>;
  /** start.accountSid and stop.accountSid; omitted when not given. */
  accountSid?: string;
  /** Default: "MZ" + 32 hex digits, like Twilio's. */
  streamSid?: string;
}

/** The stream's counters: what went to the server, and its talk-back queue's (TalkBackStats). */
export interface MediaStreamStats extends TalkBackStats {
  /** Media messages written to the socket. */
  sent: number;
  /** Frames not streamed: backlog full, socket failed, or still queued when stopped. */
  dropped: number;
  /** Media frames queued or in flight to the server. */
  backlog: number;
}

/** A parsed message from the server. */
export interface MediaStreamInbound {
  event: string;
  streamSid?: unknown;
  [key: string]: unknown;
}

export interface MediaStreamCloseInfo {
  code: number;
  reason: string;
  /** Set when the stream ended because it failed, not because of stop(). */
  error?: SoftphoneError;
}

export interface MediaStreamEvents {
  open: [];
  /** Every JSON message from the server (media, mark, clear, and anything else), as parsed. */
  message: [message: MediaStreamInbound];
  /** A mark echoed back to the server (its audio played, or a clear released it). */
  mark: [name: string];
  /** STREAM_FAILED, once; emitted only if listened to. */
  error: [error: SoftphoneError];
  close: [info: MediaStreamCloseInfo];
}

/** What MediaSession pulls talk-back audio from every 20 ms. */
export interface OutboundAudioSource {
  nextFrame(): Int16Array | undefined;
}

export const STREAM_SAMPLE_RATE = 8000;
export { FRAME_SAMPLES };

const DEFAULT_MAX_BUFFER_MS = 3000;
const DEFAULT_MAX_PLAYBACK_MS = 300_000;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 3000;
const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** DTMF is tiny and rare; this only bounds a caller gone wild while connecting. */
const MAX_QUEUED_DTMF = 64;
const DTMF_DIGITS = /^[0-9*#A-D]$/;

type State = 'idle' | 'connecting' | 'open' | 'closed';

type Outgoing = { kind: 'media'; payload: Buffer; timestampMs: number } | { kind: 'dtmf'; digit: string };

/** The URL without credentials, path or query, for messages that may be logged. */
function safeOrigin(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(invalid URL)';
  }
}

/**
 * Why `url` cannot be a media stream URL, or undefined. Checked once, up
 * front, so a URL that can never connect is refused at start instead of
 * failing on every call. Pure.
 */
export function streamUrlProblem(url: string): string | undefined {
  if (/\s/.test(url)) return 'must not contain whitespace';
  if (!/^wss?:\/\//i.test(url)) return 'must start with ws:// or wss://';
  // The WHATWG parser only says "Invalid URL"; name the usual culprit first.
  const port = /^wss?:\/\/(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#]*):(\d+)(?:[/?#]|$)/i.exec(url)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return 'port must be 1-65535';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a valid URL';
  }
  if (/^wss?:\/\/[/?#]/i.test(url) || parsed.hostname === '') return 'needs a host';
  // ws refuses fragments (RFC 6455 3).
  if (parsed.hash !== '') return 'must not have a #fragment';
  return undefined;
}

export function newStreamSid(): string {
  return `MZ${randomBytes(16).toString('hex')}`;
}

export class MediaStreamClient extends EventEmitter<MediaStreamEvents> {
  /** Talk-back source for MediaSession: one 160-sample frame per call, or undefined (silence). */
  readonly outbound: OutboundAudioSource;

  readonly #maxBacklog: number;
  readonly #handshakeTimeoutMs: number;
  readonly #closeTimeoutMs: number;
  readonly #maxMessageBytes: number;
  readonly #ca: MediaStreamOptions['ca'];

  #state: State = 'idle';
  #ws: WebSocket | undefined;
  #origin = '';
  #streamSid = '';
  #callSid = '';
  #accountSid: string | undefined;
  #connectOptions: MediaStreamConnectOptions | undefined;
  #opened: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #failed = false;
  /** The first failure; later ones are consequences of it. */
  #error: SoftphoneError | undefined;

  // Outgoing
  readonly #queue: Outgoing[] = [];
  #queuedMedia = 0;
  #queuedDtmf = 0;
  #inflight = 0;
  #sequence = 0;
  #chunk = 0;
  #samplesIn = 0;
  #sent = 0;
  #dropped = 0;

  readonly #talkBack: TalkBackQueue;

  constructor(options: MediaStreamOptions = {}) {
    super();
    this.#maxBacklog = Math.max(0, Math.floor((options.maxBufferMs ?? DEFAULT_MAX_BUFFER_MS) / FRAME_MS));
    this.#talkBack = new TalkBackQueue({
      maxFrames: Math.max(0, Math.floor((options.maxPlaybackMs ?? DEFAULT_MAX_PLAYBACK_MS) / FRAME_MS)),
      onMark: (name) => this.#echoMark(name),
    });
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#ca = options.ca;
    this.outbound = { nextFrame: () => this.#talkBack.nextFrame() };
  }

  get streamSid(): string {
    return this.#streamSid;
  }

  get state(): State {
    return this.#state;
  }

  get stats(): MediaStreamStats {
    return {
      sent: this.#sent,
      dropped: this.#dropped,
      ...this.#talkBack.stats,
      backlog: this.#queuedMedia + this.#inflight,
    };
  }

  /**
   * Opens the stream. Resolves once the socket is open (connected and start
   * are then on their way, followed by any frames queued meanwhile); rejects
   * with STREAM_FAILED if it cannot open (also emitted as `error`). Not
   * awaiting it is fine: the call goes on either way.
   */
  connect(url: string, options: MediaStreamConnectOptions): Promise<void> {
    if (this.#opened !== undefined) return this.#opened;
    this.#connectOptions = options;
    this.#origin = safeOrigin(url);
    this.#streamSid = options.streamSid ?? newStreamSid();
    this.#callSid = options.callId;
    this.#accountSid = options.accountSid;
    this.#opened = new Promise<void>((resolve, reject) => {
      if (this.#state === 'closed') {
        reject(new SoftphoneError(ErrorCodes.CLOSED, 'media stream already stopped'));
        return;
      }
      this.#state = 'connecting';
      const problem = streamUrlProblem(url);
      if (problem !== undefined) {
        // The URL itself is not repeated: it may hold credentials.
        reject(this.#fail(`media stream URL ${problem}`));
        return;
      }
      const wsOptions: ClientOptions = {
        handshakeTimeout: this.#handshakeTimeoutMs,
        maxPayload: this.#maxMessageBytes,
        // base64 µ-law barely compresses; deflate would only add latency and CPU.
        perMessageDeflate: false,
        followRedirects: false,
      };
      if (options.headers !== undefined) wsOptions.headers = { ...options.headers };
      if (this.#ca !== undefined) wsOptions.ca = this.#ca;
      let ws: WebSocket;
      try {
        ws = new WebSocket(url, wsOptions);
      } catch (err) {
        reject(this.#fail(`cannot open media stream to ${this.#origin}`, err));
        return;
      }
      this.#ws = ws;
      ws.on('open', () => {
        if (this.#state !== 'connecting') return;
        this.#state = 'open';
        this.#sendStart();
        this.#flushQueue();
        this.emit('open');
        resolve();
      });
      ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
      ws.on('error', (err) => {
        const error = this.#fail(`media stream to ${this.#origin} failed: ${err.message}`, err);
        reject(error);
      });
      ws.on('close', (code, reasonBuf) => {
        const reason = reasonBuf.toString('utf8');
        if (this.#stopping === undefined || this.#failed) {
          reject(
            this.#fail(
              `media stream to ${this.#origin} closed by the server mid-call (code ${code})`,
              undefined,
              {
                code,
              },
            ),
          );
        }
        const error = this.#error;
        this.#state = 'closed';
        this.emit('close', error === undefined ? { code, reason } : { code, reason, error });
      });
    });
    // Callers may ignore the promise; the failure is also an `error` event.
    this.#opened.catch(() => {});
    return this.#opened;
  }

  /**
   * Streams one frame (copied, µ-law encoded). Never blocks or throws; when
   * the backlog is full or the socket has failed, the frame is dropped and
   * counted. Ignored after stop().
   */
  sendFrame(frame: Int16Array): void {
    if (this.#stopping !== undefined || (this.#state === 'closed' && !this.#failed)) return;
    const timestampMs = Math.floor((this.#samplesIn * 1000) / STREAM_SAMPLE_RATE);
    this.#samplesIn += frame.length;
    if (this.#failed || this.#queuedMedia + this.#inflight >= this.#maxBacklog) {
      this.#dropped++;
      return;
    }
    // Every media message carries 20 ms, as Twilio's do: the call's last frame,
    // which may be short, is completed with u-law silence.
    const payload = Buffer.alloc(Math.max(frame.length, FRAME_SAMPLES), ULAW_SILENCE);
    encodeUlawFrame(frame, payload);
    if (this.#state === 'open') {
      this.#sendMedia(payload, timestampMs);
    } else {
      this.#queue.push({ kind: 'media', payload, timestampMs });
      this.#queuedMedia++;
    }
  }

  /** Sends a dtmf message (a digit the caller pressed), in order with the media around it. */
  sendDtmf(digit: string): void {
    if (this.#stopping !== undefined || this.#failed || this.#state === 'closed') return;
    if (!DTMF_DIGITS.test(digit)) return;
    if (this.#state === 'open') {
      this.#sendDtmfNow(digit);
    } else if (this.#queuedDtmf < MAX_QUEUED_DTMF) {
      this.#queue.push({ kind: 'dtmf', digit });
      this.#queuedDtmf++;
    }
  }

  /**
   * Ends the stream: waits (bounded) for a connection still opening, sends
   * what is queued, then `stop`, and closes the socket. Idempotent; never rejects.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const ws = this.#ws;
    if (ws === undefined) {
      this.#dropQueue();
      this.#state = 'closed';
      return;
    }
    if (this.#state === 'connecting' && this.#opened !== undefined) {
      await this.#within(
        this.#opened.then(
          () => {},
          () => {},
        ),
      );
    }
    if (this.#state === 'open' && ws.readyState === WebSocket.OPEN) {
      this.#flushQueue();
      this.#send({
        event: 'stop',
        sequenceNumber: this.#nextSequence(),
        stop:
          this.#accountSid === undefined
            ? { callSid: this.#callSid }
            : { accountSid: this.#accountSid, callSid: this.#callSid },
        streamSid: this.#streamSid,
      });
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      ws.close(1000, 'call ended');
      if (!(await this.#within(closed))) ws.terminate();
    } else if (ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      ws.terminate();
      await this.#within(closed);
    }
    this.#dropQueue();
    this.#state = 'closed';
  }

  /** True when `promise` settled within closeTimeoutMs. */
  async #within(promise: Promise<void>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#closeTimeoutMs);
    });
    const done = await Promise.race([promise.then(() => true), timedOut]);
    clearTimeout(timer);
    return done;
  }

  #nextSequence(): string {
    this.#sequence++;
    return String(this.#sequence);
  }

  #sendStart(): void {
    const options = this.#connectOptions!;
    this.#send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    const start: Record<string, unknown> = {};
    if (this.#accountSid !== undefined) start.accountSid = this.#accountSid;
    start.streamSid = this.#streamSid;
    start.callSid = this.#callSid;
    start.tracks = ['inbound'];
    start.customParameters = { from: options.from, to: options.to, ...options.customParameters };
    start.mediaFormat = { encoding: 'audio/x-mulaw', sampleRate: STREAM_SAMPLE_RATE, channels: 1 };
    this.#send({
      event: 'start',
      sequenceNumber: this.#nextSequence(),
      start,
      streamSid: this.#streamSid,
    });
  }

  #sendMedia(payload: Buffer, timestampMs: number): void {
    this.#chunk++;
    this.#inflight++;
    const ok = this.#send(
      {
        event: 'media',
        sequenceNumber: this.#nextSequence(),
        media: {
          track: 'inbound',
          chunk: String(this.#chunk),
          timestamp: String(timestampMs),
          payload: payload.toString('base64'),
        },
        streamSid: this.#streamSid,
      },
      (err) => {
        this.#inflight--;
        if (err) this.#dropped++;
        else this.#sent++;
      },
    );
    if (!ok) {
      this.#inflight--;
      this.#dropped++;
    }
  }

  #sendDtmfNow(digit: string): void {
    this.#send({
      event: 'dtmf',
      streamSid: this.#streamSid,
      sequenceNumber: this.#nextSequence(),
      dtmf: { track: 'inbound_track', digit },
    });
  }

  /** False when the message could not be handed to the socket (its callback will not run). */
  #send(message: object, callback?: (err?: Error) => void): boolean {
    const ws = this.#ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(message), callback);
      return true;
    } catch {
      return false;
    }
  }

  #flushQueue(): void {
    for (const item of this.#queue) {
      if (item.kind === 'media') this.#sendMedia(item.payload, item.timestampMs);
      else this.#sendDtmfNow(item.digit);
    }
    this.#queue.length = 0;
    this.#queuedMedia = 0;
    this.#queuedDtmf = 0;
  }

  #dropQueue(): void {
    this.#dropped += this.#queuedMedia;
    this.#queue.length = 0;
    this.#queuedMedia = 0;
    this.#queuedDtmf = 0;
  }

  /** Marks the stream failed and reports it once; returns the error. */
  #fail(message: string, cause?: unknown, details: Record<string, unknown> = {}): SoftphoneError {
    const error = new SoftphoneError(ErrorCodes.STREAM_FAILED, message, {
      cause,
      details: { url: this.#origin, streamSid: this.#streamSid, ...details },
    });
    if (this.#stopping !== undefined && !this.#failed && this.#state === 'open') {
      // A close or error while we are stopping is part of stopping.
      return error;
    }
    this.#failed = true;
    this.#dropQueue();
    if (this.#error !== undefined) return this.#error;
    this.#error = error;
    if (this.listenerCount('error') > 0) this.emit('error', error);
    return error;
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (isBinary) return; // Twilio's protocol is JSON text frames only
    let message: unknown;
    try {
      message = JSON.parse(
        Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(toBuffers(data)).toString('utf8'),
      );
    } catch {
      return;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) return;
    const msg = message as MediaStreamInbound;
    if (typeof msg.event !== 'string') return;
    this.emit('message', msg);
    switch (msg.event) {
      case 'media': {
        const payload = (msg.media as { payload?: unknown } | undefined)?.payload;
        if (typeof payload === 'string' && payload.length > 0)
          this.#talkBack.enqueueAudio(Buffer.from(payload, 'base64'));
        break;
      }
      case 'mark': {
        const name = (msg.mark as { name?: unknown } | undefined)?.name;
        if (typeof name === 'string') this.#talkBack.enqueueMark(name);
        break;
      }
      case 'clear':
        this.#talkBack.clear();
        break;
      default:
        break;
    }
  }

  #echoMark(name: string): void {
    this.#send({
      event: 'mark',
      sequenceNumber: this.#nextSequence(),
      streamSid: this.#streamSid,
      mark: { name },
    });
    this.emit('mark', name);
  }
}

function toBuffers(data: RawData): Buffer[] {
  if (Array.isArray(data)) return data;
  return [Buffer.from(data as ArrayBuffer)];
}
