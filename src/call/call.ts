/**
 * A call as the user sees it, inbound or outbound: read-only facts and
 * getters, verbs (hangup, play, sendDtmf, hold, transfer, …) and typed
 * events. Everything it does is done by its owner (CallSession), the one
 * object that holds the call's dialog usage, media and sinks and closes them
 * once; the facade keeps user code away from those internals.
 */
import type { SoftphoneError } from '../errors.js';
import type { DtmfDigit } from '../media/dtmf.js';
import type { DtmfSendOptions } from '../media/dtmf-sender.js';
import type { DtmfEvent, LatchInfo, MediaStats } from '../media/session.js';
import { SafeEmitter } from '../safe-emitter.js';
import type { NegotiatedMedia } from '../sdp/negotiate.js';
import type { DtmfRecord } from '../sinks/sidecar.js';

export type CallEndReason =
  | 'remote-bye'
  | 'local-hangup'
  /** Inbound: the caller cancelled before the answer. Outbound: we cancelled (hangup, Ctrl-C). */
  | 'cancelled'
  /** Outbound: the callee refused (3xx-6xx: `status` says which), or a challenge we could not answer. */
  | 'rejected'
  /** Outbound: nobody answered within the ring timeout (CANCEL sent). */
  | 'no-answer'
  | 'no-ack'
  | 'media-timeout'
  | 'max-duration'
  | 'shutdown'
  | 'flow-lost'
  /** We followed the far end's REFER (followRefer) and the new call was answered: this one is over. */
  | 'transferred'
  | 'error';

export type CallDirection = 'inbound' | 'outbound';

export interface CallParty {
  /** The From/To header value as received (or sent). */
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
  /** The final SIP status of a call that never got established (outbound 486, 404, …; 487 when cancelled). */
  status?: number;
  statusReason?: string;
  /** A stable error code where one applies (SIP_AUTH_REALM, SDP_NOT_ACCEPTABLE, …). */
  code?: string;
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
  /** Rate of the call's audio: the WAV, the frames, the engine pipe (8000, or 16000 for wideband). */
  sampleRate: number;
  /** The address and port in our SDP. */
  localMedia: string;
  /** Where the far end asked for RTP (its SDP). */
  remoteMedia: string;
  /** Our direction (RFC 3264). */
  direction: string;
  /** The far end holds the call. */
  onHold: boolean;
}

/** RingCentral's ids for the call (the `P-Rc-Api-Ids` header), to join with its REST API and webhooks. */
export interface RingCentralIds {
  partyId?: string;
  sessionId?: string;
}

export interface TransferResult {
  /** True when the transferee reported a 2xx for the new call. */
  ok: boolean;
  /** The final status from the NOTIFY sipfrag (or the REFER's refusal; 408 when none came). */
  status: number;
  reason: string;
}

export type CallState = 'ringing' | 'early' | 'answered' | 'ended';

export interface CallEvents {
  /** Outbound: the callee is ringing (180) or sent progress (183, with early media when it has SDP). */
  progress: [info: { status: number; reason: string; earlyMedia: boolean }];
  answered: [];
  /** The media were negotiated (at the answer, or at the ACK of a late offer) or changed (re-INVITE). */
  media: [info: CallMediaInfo];
  /** RingCentral's party and telephony session ids arrived (P-Rc-Api-Ids). */
  ids: [ids: RingCentralIds];
  dtmf: [event: DtmfEvent & { source: 'rfc4733' | 'info' }];
  /** A key we sent went out (its first RFC 4733 packet). */
  dtmfSent: [event: { digit: DtmfDigit }];
  /**
   * Decoded audio of the live stream, one 20 ms frame every 20 ms (reused
   * array): what the engine pipe and the media stream get. The WAV gets the
   * same audio placed exactly by timestamp ~1 s later (see the README).
   */
  frame: [frame: Int16Array];
  /** RTP is now taken from this source (the SDP's, or a symmetric one after priming), or it moved. */
  latched: [info: LatchInfo];
  /** A sink failed (WAV write, engine, stream); the call goes on. */
  sinkError: [error: SoftphoneError];
  /** One stdout line of the --pipe engine: the text, and the parsed value when it is JSON. */
  engine: [line: { text: string; json: object | undefined }];
  engineStderr: [line: string];
  engineExit: [info: { code: number | null; signal: string | null; duringCall: boolean }];
  /** The media stream (WebSocket) opened or closed. */
  stream: [info: { state: 'open' | 'closed'; code?: number; reason?: string }];
  /**
   * The connection the call's dialog lived on was lost and the call was moved
   * to the new one (re-INVITE): `ok`, or `failed` and the call ends (flow-lost).
   */
  rehomed: [info: { outcome: 'ok' | 'failed'; status: number; reason: string }];
  /** The far end asked us to transfer the call (REFER); declined unless you opted in. */
  refer: [info: { referTo: string; referredBy: string | undefined; accepted: boolean }];
  /** The far end sent INFO with a body other than DTMF (e.g. application/json). */
  info: [info: { contentType: string; body: string }];
  /** Outbound: the call could not be established (the callee's status, a timeout, …); `ended` follows. */
  failed: [info: { status: number | undefined; reason: string; code: string | undefined }];
  ended: [info: CallEndInfo];
}

/** @internal The owner's side of a call, as the facade sees it. */
export interface CallOwner {
  readonly state: CallState;
  readonly negotiated: NegotiatedMedia | undefined;
  readonly localMedia: { address: string; port: number } | undefined;
  readonly sampleRate: number | undefined;
  readonly answeredAt: number | undefined;
  readonly level: number;
  readonly stats: CallEndInfo['stats'];
  readonly endInfo: CallEndInfo | undefined;
  readonly done: Promise<CallEndInfo>;
  readonly rcIds: RingCentralIds;
  hangup(): Promise<void>;
  play(source: PlaySource): Promise<void>;
  sendDtmf(digits: string, options?: DtmfSendOptions): Promise<void>;
  hold(): Promise<void>;
  unhold(): Promise<void>;
  transfer(target: string): Promise<TransferResult>;
  sendInfo(body: unknown, contentType?: string): Promise<{ status: number; reason: string }>;
  accept(): Promise<void>;
  reject(status: number, reason?: string): void;
  redirect(target: string): void;
}

/**
 * Audio to play into a call: a WAV file path (converted to the codec's rate),
 * 16-bit mono PCM at 8 kHz, or PCM at a rate you name. It is resampled
 * as needed (a 16 kHz file plays into a G.711 call, and 8 kHz into Opus).
 */
export type PlaySource = string | Int16Array | PlayPcm;

/** PCM to play, at the rate it is in. */
export interface PlayPcm {
  pcm: Int16Array;
  sampleRate: 8000 | 16000;
}

export interface CallInit {
  callId: string;
  direction: CallDirection;
  from: CallParty;
  to: CallParty;
  startedAt: Date;
  wavPath: string | undefined;
  sidecarPath: string | undefined;
}

export class Call extends SafeEmitter<CallEvents> {
  readonly id: string;
  readonly direction: CallDirection;
  readonly from: CallParty;
  readonly to: CallParty;
  readonly startedAt: Date;
  readonly wavPath: string | undefined;
  readonly sidecarPath: string | undefined;
  readonly #owner: CallOwner;

  /** @internal Calls are made by the Softphone (incoming) or `softphone.call()`. */
  constructor(init: CallInit, owner: CallOwner) {
    super();
    this.id = init.callId;
    this.direction = init.direction;
    this.from = init.from;
    this.to = init.to;
    this.startedAt = init.startedAt;
    this.wavPath = init.wavPath;
    this.sidecarPath = init.sidecarPath;
    this.#owner = owner;
  }

  get state(): CallState {
    return this.#owner.state;
  }

  get ended(): boolean {
    return this.#owner.state === 'ended';
  }

  get endInfo(): CallEndInfo | undefined {
    return this.#owner.endInfo;
  }

  /** Resolves with the end info once the call has ended and its sinks are closed (after 'ended'). */
  get done(): Promise<CallEndInfo> {
    return this.#owner.done;
  }

  /** What was negotiated; undefined until the SDP answer (a late offer's ACK, an outbound call's 183/200). */
  get negotiated(): Readonly<NegotiatedMedia> | undefined {
    return this.#owner.negotiated;
  }

  /** The address and port our SDP announces (not the socket's bind address). */
  get localMedia(): Readonly<{ address: string; port: number }> | undefined {
    return this.#owner.localMedia;
  }

  /**
   * The rate of the call's audio, once its media started: what the WAV, the
   * `frame` events and the engine pipe carry (8000 for G.711, 16000 for a
   * wideband Opus call, or what `sampleRate` forced).
   */
  get sampleRate(): number | undefined {
    return this.#owner.sampleRate;
  }

  /** RingCentral's party and telephony session ids, when its edge sent them. */
  get ringCentralIds(): Readonly<RingCentralIds> {
    return this.#owner.rcIds;
  }

  /** performance.now() when the call was answered. */
  get answeredAt(): number | undefined {
    return this.#owner.answeredAt;
  }

  /** Milliseconds since the answer (0 before it). */
  get durationMs(): number {
    const at = this.#owner.answeredAt;
    return at === undefined ? 0 : performance.now() - at;
  }

  /** RMS of the last 100 ms of received audio, dBFS (-100 for silence): for a live level meter. */
  get level(): number {
    return this.#owner.level;
  }

  /**
   * The media statistics so far (packets received, lost, late, live
   * concealment, live-sink drops, …), as `ended` will report them; undefined
   * before the media started. Final once the call has ended.
   */
  get stats(): CallEndInfo['stats'] {
    return this.#owner.stats;
  }

  /** Hangs up: BYE (or CANCEL before the answer), recording finished. Resolves when the call has ended. */
  hangup(): Promise<void> {
    return this.#owner.hangup();
  }

  /**
   * Plays a WAV file (any rate and channel count; converted) or PCM into the
   * call, mixed with any other audio being sent. Resolves when it has played.
   */
  play(source: PlaySource): Promise<void> {
    return this.#owner.play(source);
  }

  /** Sends DTMF (0-9 * # A-D, ',' pauses) as RFC 4733 events; SIP INFO when none were negotiated. */
  sendDtmf(digits: string, options?: DtmfSendOptions): Promise<void> {
    return this.#owner.sendDtmf(digits, options);
  }

  /** Puts the far end on hold (re-INVITE, sendonly); the recording goes on, on the same timeline. */
  hold(): Promise<void> {
    return this.#owner.hold();
  }

  unhold(): Promise<void> {
    return this.#owner.unhold();
  }

  /** Blind transfer (REFER): resolves with the outcome the transferee reports; the call then ends with BYE. */
  transfer(target: string): Promise<TransferResult> {
    return this.#owner.transfer(target);
  }

  /** Sends SIP INFO in the call's dialog (an object goes as application/json). */
  sendInfo(body: unknown, contentType?: string): Promise<{ status: number; reason: string }> {
    return this.#owner.sendInfo(body, contentType);
  }

  /** Inbound, when the Softphone does not auto-answer: answer the call. */
  accept(): Promise<void> {
    return this.#owner.accept();
  }

  /** Inbound, not yet answered: 603 Decline. */
  decline(): void {
    this.#owner.reject(603, 'Decline');
  }

  /** Inbound, not yet answered: refuse with any 4xx-6xx status (486 Busy Here, 480, …). */
  reject(status: number, reason?: string): void {
    this.#owner.reject(status, reason);
  }

  /** Inbound, not yet answered: 302 Moved Temporarily to `target` (a SIP URI or number). */
  redirect(target: string): void {
    this.#owner.redirect(target);
  }
}

export function describeEnd(info: CallEndInfo): string {
  return `${info.reason} after ${(info.durationMs / 1000).toFixed(1)} s`;
}
