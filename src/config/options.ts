/**
 * Every default in one table, and the one place a Softphone's options are
 * validated and completed (undici's way: checked once, at construction, and
 * the error names the option). The CLI builds its flag defaults and help from
 * the same table, so a default is written exactly once.
 */
import { ErrorCodes, SoftphoneError } from '../errors.js';
import { type CodecName, DEFAULT_CODECS, SAMPLE_RATES, type SampleRate } from '../media/codec.js';
import { MAX_CATCH_UP_MS } from '../media/send-path.js';
import { defaultSrtpPolicy, isSrtpPolicy, type SrtpPolicy } from '../sdp/crypto.js';
import { localAddressProblem } from '../sdp/negotiate.js';
import { streamUrlProblem } from '../sinks/media-stream.js';
import { LISTENER_LIMITS } from '../sip/transport/listener.js';

/** Library units: milliseconds for durations, seconds only where SIP counts in seconds. */
export const DEFAULTS = Object.freeze({
  /** Registration expiry we ask for, seconds (RFC 3261 10.2.1.1). */
  registrationExpires: 600,
  /** RFC 5626 4.4.1 CRLFCRLF keep-alive on an idle flow. */
  keepAliveIntervalMs: 30_000,
  /** Concurrent calls; more get 486 Busy Here. */
  maxCalls: 10,
  rtpPorts: Object.freeze({ min: 20000, max: 29999 }),
  sendSilence: true,
  /** After a stall of the process longer than this, sending skips ahead instead of sending the backlog. */
  sendCatchUpMs: MAX_CATCH_UP_MS,
  /** Hang up when no RTP arrives for this long. */
  mediaTimeoutMs: 60_000,
  /** Hang up calls longer than this. */
  maxCallDurationMs: 4 * 3600_000,
  /** Inbound calls are answered at once (listen); false: they ring until accept(). */
  autoAnswer: true,
  /** How long a call rings before we give up (outbound: CANCEL; inbound without auto-answer: 480). */
  ringTimeoutMs: 60_000,
  /** The engine's time to print final results after a call. */
  pipeGraceMs: 5000,
  codecs: DEFAULT_CODECS,
  /** Where `listen` records (the CLI; the library records only when told). */
  recordDir: './recordings',
  /** `serve`: the bot-partner listener's limits and conventions. */
  serve: Object.freeze({
    ...LISTENER_LIMITS,
    /** After a final intent, how long the far end (RingCX) has to send BYE before the bot does. */
    finalByeTimeoutMs: 10_000,
    /** Where `serve` keeps its self-signed TLS certificate. */
    stateDir: './.rc-softphone',
  }),
} as const);

export interface ResolvedOptionsInput {
  registrationExpires?: number;
  keepAliveIntervalMs?: number;
  maxCalls?: number;
  rtpPorts?: { min: number; max: number };
  mediaIp?: string;
  sendSilence?: boolean;
  sendCatchUpMs?: number;
  mediaTimeoutMs?: number;
  maxCallDurationMs?: number;
  autoAnswer?: boolean;
  ringTimeoutMs?: number;
  recordDir?: string;
  stream?: { url: string };
  codecs?: readonly CodecName[];
  sampleRate?: SampleRate;
  srtp?: SrtpPolicy;
  /** The device's SIP transport: decides the SRTP default (required on TLS, as RingCentral). */
  transport?: string;
}

export interface ResolvedCallOptions {
  readonly registrationExpires: number;
  readonly keepAliveIntervalMs: number;
  readonly maxCalls: number;
  readonly rtpPorts: Readonly<{ min: number; max: number }>;
  readonly mediaIp: string | undefined;
  readonly sendSilence: boolean;
  readonly sendCatchUpMs: number;
  readonly mediaTimeoutMs: number;
  readonly maxCallDurationMs: number;
  readonly autoAnswer: boolean;
  readonly ringTimeoutMs: number;
  readonly recordDir: string | undefined;
  readonly codecs: readonly CodecName[];
  /** Forced audio rate of every call; undefined: each call's negotiated rate. */
  readonly sampleRate: SampleRate | undefined;
  readonly srtp: SrtpPolicy;
}

/**
 * Validates and completes the options that shape calls and registration;
 * throws CONFIG_INVALID with `details.option` naming the first bad one.
 */
export function resolveOptions(input: ResolvedOptionsInput): ResolvedCallOptions {
  const num = (option: keyof typeof DEFAULTS, value: number | undefined, min: number, max: number) => {
    const v = value ?? (DEFAULTS[option] as number);
    if (!Number.isFinite(v) || v < min || v > max || !Number.isInteger(v)) {
      throw invalid(option, `${option} must be a whole number from ${min} to ${max}, got ${value}`);
    }
    return v;
  };
  if (input.mediaIp !== undefined) {
    const problem = localAddressProblem(input.mediaIp);
    if (problem) throw invalid('mediaIp', `mediaIp ${problem}, got "${input.mediaIp}"`, { reason: problem });
  }
  if (input.stream !== undefined) {
    const problem = streamUrlProblem(input.stream.url);
    // Not echoed: a stream URL may carry credentials.
    if (problem) throw invalid('stream.url', `stream.url ${problem}`, { reason: problem });
  }
  if (input.recordDir !== undefined && input.recordDir.trim() === '') {
    throw invalid('recordDir', 'recordDir is empty: give a directory, or leave recordDir out to not record', {
      reason: 'is empty',
    });
  }
  const ports = input.rtpPorts ?? DEFAULTS.rtpPorts;
  if (
    !Number.isInteger(ports.min) ||
    !Number.isInteger(ports.max) ||
    ports.min < 1024 ||
    ports.max > 65535 ||
    ports.min > ports.max
  ) {
    throw invalid('rtpPorts', `rtpPorts must be min..max within 1024..65535, got ${ports.min}..${ports.max}`);
  }
  if (input.srtp !== undefined && !isSrtpPolicy(input.srtp)) {
    throw invalid('srtp', `srtp must be required, optional or off, got "${String(input.srtp)}"`);
  }
  if (input.sampleRate !== undefined && !SAMPLE_RATES.includes(input.sampleRate)) {
    throw invalid('sampleRate', `sampleRate must be 8000 or 16000, got ${String(input.sampleRate)}`);
  }
  const codecs = input.codecs ?? DEFAULTS.codecs;
  if (codecs.length === 0) throw invalid('codecs', 'codecs must name at least one codec');
  return Object.freeze({
    registrationExpires: num('registrationExpires', input.registrationExpires, 30, 86_400),
    keepAliveIntervalMs: num('keepAliveIntervalMs', input.keepAliveIntervalMs, 0, 3_600_000),
    maxCalls: num('maxCalls', input.maxCalls, 1, 100_000),
    rtpPorts: Object.freeze({ min: ports.min, max: ports.max }),
    mediaIp: input.mediaIp,
    sendSilence: input.sendSilence ?? DEFAULTS.sendSilence,
    sendCatchUpMs: num('sendCatchUpMs', input.sendCatchUpMs, 20, 10_000),
    mediaTimeoutMs: num('mediaTimeoutMs', input.mediaTimeoutMs, 0, 2 ** 31 - 1),
    maxCallDurationMs: num('maxCallDurationMs', input.maxCallDurationMs, 0, 2 ** 31 - 1),
    autoAnswer: input.autoAnswer ?? DEFAULTS.autoAnswer,
    ringTimeoutMs: num('ringTimeoutMs', input.ringTimeoutMs, 0, 2 ** 31 - 1),
    recordDir: input.recordDir,
    codecs: Object.freeze([...codecs]),
    sampleRate: input.sampleRate,
    srtp: input.srtp ?? defaultSrtpPolicy(input.transport ?? 'tcp'),
  });
}

function invalid(option: string, message: string, details: Record<string, unknown> = {}): SoftphoneError {
  return new SoftphoneError(ErrorCodes.CONFIG_INVALID, message, { details: { option, ...details } });
}
