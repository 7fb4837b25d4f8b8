/**
 * The smoke test as a library call: two Softphones in this process, the
 * callee registered and answering, the caller dialling it; each plays its
 * tone pattern and then its DTMF, each records what it hears; the caller
 * hangs up; the recordings are analysed into checks (checks.ts). The shell
 * around sockets and timers is here; every verdict is a pure function
 * elsewhere. The CLI (`rc-softphone smoke`) prints, writes JUnit and the
 * report; this returns what it needs for that.
 *
 * Timing: one budget (`timeoutMs`) for registering, calling and exchanging;
 * the hang-up gets what is left, and at least HANGUP_BUDGET_MS, so a run that
 * ran out of time still ends its call and reports how.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Call, CallEndInfo } from '../call/call.js';
import type { SipInfo } from '../config/sip-info.js';
import { describeError } from '../errors.js';
import { readWavFile } from '../media/audio-file.js';
import { FRAME_MS } from '../media/frame.js';
import { Softphone, type SoftphoneOptions } from '../softphone.js';
import {
  answerCheck,
  type Check,
  DEFAULT_LIMITS,
  dtmfCheck,
  durationsCheck,
  hangupCheck,
  jitterCheck,
  latencyCheck,
  lossCheck,
  orderCheck,
  type RegisterOutcome,
  registerCheck,
  type Side,
  type SmokeLimits,
  type Summary,
  skipped,
  summarize,
  tonesCheck,
} from './checks.js';
import {
  type DtmfTiming,
  dtmfTransits,
  PatternSource,
  type PatternTiming,
  PlayoutClock,
  transitJitter,
} from './probe.js';
import {
  CALLEE_PATTERN,
  CALLER_PATTERN,
  detectTones,
  FREQUENCY_TOLERANCE,
  type HeardTone,
  matchPattern,
  synthesizePattern,
  type ToneMatch,
  type TonePattern,
  toneOffsetsMs,
} from './tones.js';

/** The keys each side sends, after its tones. Distinct sets, so a reflected digit reads as "not sent". */
export const CALLER_DTMF = '159#';
export const CALLEE_DTMF = '*260';

/** The hang-up and the BYE always get this long, even when the budget is spent. */
const HANGUP_BUDGET_MS = 5000;
/** After the caller's 200 OK, how long the callee's device may take to report its answer. */
const CALLEE_ANSWER_GRACE_MS = 3000;
/** Waiting for DTMF that does not come: give up this long after the latency limit has passed. */
const DTMF_GIVE_UP_MARGIN_MS = 500;

/** The Softphone options the run lets its caller set (the rest are the smoke test's). */
export type SmokePhoneOptions = Pick<
  SoftphoneOptions,
  | 'rtpPorts'
  | 'mediaIp'
  | 'tlsInsecure'
  | 'tlsCa'
  | 'keepAliveIntervalMs'
  | 'registrationExpires'
  | 'codecs'
  | 'srtp'
>;

export interface SmokeRunOptions {
  caller: SipInfo;
  callee: SipInfo;
  /** What the caller dials: a number, an extension or a SIP URI. */
  target: string;
  /** Where the two recordings go: caller.wav (what the caller heard) and callee.wav. */
  recordDir: string;
  limits?: Partial<SmokeLimits>;
  /** Budget for registering, calling and exchanging. */
  timeoutMs: number;
  phone?: SmokePhoneOptions;
  /** Each Softphone before it starts (the CLI wires its log events). */
  onPhone?: (side: Side, phone: Softphone) => void;
  /** Progress, for the CLI's log. */
  onStep?: (step: SmokeStep) => void;
  /**
   * Ends the run early (Ctrl-C, a CI job cancelled): whatever is being waited
   * for counts as not happened, the call is still hung up and both devices
   * unregister, so the run fails cleanly instead of leaving bindings behind.
   */
  signal?: AbortSignal;
}

export type SmokeStep =
  | { step: 'registering' }
  | { step: 'dialing'; target: string }
  | { step: 'exchanging'; codec: string | undefined }
  | { step: 'hanging-up' }
  | { step: 'analysing' };

/** What one side heard and measured (it is the receiving side of its checks). */
export interface SideResult {
  /** The recording of what this side heard, when there is one. */
  wav: string | undefined;
  rate: number | undefined;
  samples: Float32Array | undefined;
  heard: HeardTone[];
  /** The other side's pattern, matched against what was heard. */
  pattern: TonePattern;
  matches: ToneMatch[] | undefined;
  /** Keys that arrived, at ms on the recording's timeline (RFC 4733: when the first packet arrived). */
  dtmf: { digit: string; atMs: number }[];
  end: CallEndInfo | undefined;
}

export interface SmokeResult {
  checks: Check[];
  summary: Summary;
  target: string;
  codec: string | undefined;
  startedAt: Date;
  durationMs: number;
  sides: Record<Side, SideResult>;
}

class SideState {
  readonly side: Side;
  /** The pattern this side plays, and the keys it sends. */
  readonly plays: TonePattern;
  readonly sends: string;
  readonly source = new PatternSource();
  /** Set right after construction (its options close over this state). */
  phone!: Softphone;
  call: Call | undefined;
  /** When each frame of this side's recording played out. */
  clock: PlayoutClock | undefined;
  readonly dtmfSent: DtmfTiming[] = [];
  /** Keys that arrived: on the shared clock, and `atMs` on the recording's timeline (the call's dtmf event). */
  readonly dtmfReceived: (DtmfTiming & { source: string; atMs: number })[] = [];
  timing: PatternTiming | undefined;
  /** When this side finished sending (tones and DTMF). */
  finishedAt: number | undefined;
  dtmfError: string | undefined;
  /** Called on each frame this side plays out, and when the other side finishes sending. */
  onFrame: (() => void) | undefined;
  /** Why the last registration attempt failed (said when registering runs out of time). */
  lastProblem: string | undefined;

  constructor(side: Side) {
    this.side = side;
    this.plays = side === 'caller' ? CALLER_PATTERN : CALLEE_PATTERN;
    this.sends = side === 'caller' ? CALLER_DTMF : CALLEE_DTMF;
  }
}

const TIMEOUT = Symbol('timeout');

export async function runSmoke(options: SmokeRunOptions): Promise<SmokeResult> {
  const limits: SmokeLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const startedAt = new Date();
  const t0 = performance.now();
  const deadline = t0 + options.timeoutMs;
  const signal = options.signal;
  const aborted = new Promise<typeof TIMEOUT>((resolve) => {
    if (signal?.aborted) resolve(TIMEOUT);
    signal?.addEventListener('abort', () => resolve(TIMEOUT), { once: true });
  });
  /** `p`, or TIMEOUT at `by` (or on abort, unless `abortable` is false: the hang-up still runs). */
  const until = <T>(p: Promise<T>, by = deadline, abortable = true): Promise<T | typeof TIMEOUT> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<typeof TIMEOUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMEOUT), Math.max(0, by - performance.now()));
    });
    return Promise.race(abortable ? [p, timeout, aborted] : [p, timeout]).finally(() => clearTimeout(timer));
  };
  /** Why a wait ended without its event. */
  const gaveUp = () =>
    signal?.aborted
      ? 'the run was interrupted'
      : `--timeout ${Math.round(options.timeoutMs / 1000)} s passed`;

  const makeSide = (side: Side, sipInfo: SipInfo): SideState => {
    const state = new SideState(side);
    let recordings = 0;
    // The caller's call is the outbound one (From: our address of record); a stray inbound call
    // that came first must not take its file name. The callee takes only the first call.
    const ours = (call: { from: Call['from'] }) => side === 'callee' || call.from.user === sipInfo.username;
    state.phone = new Softphone({
      ...options.phone,
      sipInfo,
      // The callee answers at once; the caller answers nothing (a stray call must not take its line).
      autoAnswer: side === 'callee',
      maxCalls: 1,
      // Only the smoke call is recorded, under a fixed name the report and --keep-recordings use.
      recordPath: (call) =>
        ours(call) && recordings++ === 0 ? path.join(options.recordDir, `${side}.wav`) : undefined,
      outboundFor: (call) => {
        attach(state, call);
        return call === state.call ? state.source : undefined;
      },
      // The run's own budget ends a call that goes quiet; the phone must not end it first.
      mediaTimeoutMs: 0,
      // A stall of this process (a loaded CI runner) must not cut the pattern: the
      // backlog goes out with its true timestamps, the far end's jitter buffer places
      // it, and the stall shows where it belongs, as latency.
      sendCatchUpMs: 1000,
      maxCallDurationMs: Math.min(2 ** 31 - 1, options.timeoutMs + 60_000),
    });
    // A proxy that refuses connections or a registrar that answers 503 is retried, not fatal:
    // keep the reason, so a run that runs out of time says what it was waiting for.
    state.phone.on('reconnecting', (e) => {
      state.lastProblem = e.reason;
    });
    state.phone.on('registrationFailed', (e) => {
      state.lastProblem = `${e.status ?? ''} ${e.reason}`.trim();
    });
    return state;
  };
  const caller = makeSide('caller', options.caller);
  const callee = makeSide('callee', options.callee);
  caller.phone.on('incomingCall', (call) => {
    if (call.state === 'ringing') call.reject(486, 'Busy Here');
  });
  caller.phone.on('outgoingCall', (call) => attach(caller, call));
  callee.phone.on('incomingCall', (call) => attach(callee, call));
  options.onPhone?.('caller', caller.phone);
  options.onPhone?.('callee', callee.phone);

  const checks: Check[] = [];
  let codec: string | undefined;

  /** The steps in order; returns early (with the rest skipped) when one fails. */
  const steps = async (): Promise<void> => {
    // ── register ────────────────────────────────────────────────────────
    options.onStep?.({ step: 'registering' });
    const register = async (s: SideState): Promise<RegisterOutcome> => {
      const at = performance.now();
      try {
        const r = await until(s.phone.start());
        if (r === TIMEOUT) {
          const last = s.lastProblem === undefined ? '' : ` (last attempt: ${s.lastProblem})`;
          return { ok: false, message: `not registered: ${gaveUp()}${last}` };
        }
        return { ok: true, ms: performance.now() - at };
      } catch (err) {
        return { ok: false, message: `--${s.side}: ${describeError(err)}` };
      }
    };
    const [callerReg, calleeReg] = await Promise.all([register(caller), register(callee)]);
    checks.push(registerCheck('caller', callerReg), registerCheck('callee', calleeReg));
    if (!callerReg.ok || !calleeReg.ok) {
      skipRest(`the ${!callerReg.ok ? 'caller' : 'callee'} did not register`);
      return;
    }

    // ── call ────────────────────────────────────────────────────────────
    options.onStep?.({ step: 'dialing', target: options.target });
    const calleeAnswered = new Promise<void>((resolve) =>
      callee.phone.on('callAnswered', (call) => {
        if (call === callee.call) resolve();
      }),
    );
    const dialedAt = performance.now();
    let placed: Call;
    try {
      placed = await caller.phone.call(options.target);
    } catch (err) {
      checks.push(
        answerCheck(options.target, { answered: false, calleeAnswered: false, reason: describeError(err) }),
      );
      skipRest('the call was not placed');
      return;
    }
    const answered = await until(
      new Promise<boolean>((resolve) => {
        placed.once('answered', () => resolve(true));
        void placed.done.then(() => resolve(false));
      }),
    );
    if (answered !== true) {
      const end = placed.endInfo;
      checks.push(
        answerCheck(options.target, {
          answered: false,
          calleeAnswered: false,
          status: end?.status,
          reason: answered === TIMEOUT ? `no answer: ${gaveUp()}` : (end?.statusReason ?? end?.reason),
        }),
      );
      skipRest('the call was not answered');
      return;
    }
    const answerMs = performance.now() - dialedAt;
    // Through a B2BUA (RingCentral) the callee's 200 OK comes first; a caller answered while
    // the callee's device saw nothing was answered by someone else (voicemail).
    const byCallee =
      callee.call?.state === 'answered' ||
      (await until(calleeAnswered, Math.min(deadline, performance.now() + CALLEE_ANSWER_GRACE_MS))) !==
        TIMEOUT;
    checks.push(answerCheck(options.target, { answered: true, calleeAnswered: byCallee, ms: answerMs }));
    const calleeCall = callee.call;
    if (!byCallee || !calleeCall) {
      await until(placed.hangup(), performance.now() + HANGUP_BUDGET_MS, false);
      skipRest('the callee did not answer the call');
      return;
    }
    codec = placed.negotiated?.codec;

    // ── exchange: tones, then DTMF, both ways at once ───────────────────
    options.onStep?.({ step: 'exchanging', codec });
    const heardAll = Promise.all([
      complete(callee, caller, limits.maxLatencyMs),
      complete(caller, callee, limits.maxLatencyMs),
    ]);
    void exchange(caller);
    void exchange(callee);
    await until(Promise.race([heardAll, placed.done, calleeCall.done]));

    // ── hang up: the caller sends BYE, the callee must see it ──────────
    options.onStep?.({ step: 'hanging-up' });
    const hangupBy = Math.max(deadline, performance.now() + HANGUP_BUDGET_MS);
    if (!placed.ended) await until(placed.hangup(), hangupBy, false);
    await until(calleeCall.done, hangupBy, false);
    caller.source.stop();
    callee.source.stop();

    options.onStep?.({ step: 'analysing' });
    checks.push(...(await sideChecks(callee, caller, limits)));
    checks.push(...(await sideChecks(caller, callee, limits)));
    checks.push(hangupCheck(placed.endInfo?.reason, calleeCall.endInfo?.reason));
  };

  try {
    await steps();
  } finally {
    caller.source.stop();
    callee.source.stop();
    // Unregistering waits for the registrar at most a few seconds (UserAgent's unregister timeout).
    await Promise.allSettled([caller.phone.stop(), callee.phone.stop()]);
  }
  return {
    checks,
    summary: summarize(checks),
    target: options.target,
    codec,
    startedAt,
    durationMs: Math.round(performance.now() - t0),
    sides: { caller: await sideResult(caller, callee), callee: await sideResult(callee, caller) },
  };

  /** Every check not yet decided, skipped for `why`. */
  function skipRest(why: string): void {
    if (!checks.some((c) => c.name === 'call.answer')) checks.push(skipped('call.answer', why));
    for (const side of ['callee', 'caller'] as const) {
      checks.push(
        skipped(`${side}.tones`, why, FREQUENCY_TOLERANCE * 100, '%'),
        skipped(`${side}.tone-durations`, why, limits.toneToleranceMs, 'ms'),
        skipped(`${side}.tone-order`, why, limits.toneToleranceMs, 'ms'),
        skipped(`${side}.dtmf`, why, side === 'callee' ? CALLER_DTMF : CALLEE_DTMF),
        skipped(`${side}.latency`, why, limits.maxLatencyMs, 'ms'),
        skipped(`${side}.loss`, why, limits.maxLossPercent, '%'),
        skipped(`${side}.jitter`, why, limits.maxJitterMs, 'ms'),
      );
    }
    checks.push(skipped('call.hangup', why));
  }

  /** Tones, then the keys, from one side; notes when each went out. */
  async function exchange(s: SideState): Promise<void> {
    const call = s.call;
    if (!call || call.ended) return;
    // The pattern at the call's rate: an Opus call carries its tones wideband.
    const rate = call.sampleRate ?? 8000;
    const frameSamples = (rate * FRAME_MS) / 1000;
    const marks = toneOffsetsMs(s.plays).map((ms) => ms / FRAME_MS);
    s.timing = await s.source.start(synthesizePattern(s.plays, rate), frameSamples, marks);
    if (!call.ended) {
      try {
        await call.sendDtmf(s.sends);
      } catch (err) {
        s.dtmfError = describeError(err);
      }
    }
    s.finishedAt = performance.now();
    for (const other of [caller, callee]) other.onFrame?.();
  }

  /**
   * Resolves when `receiver` has heard everything `sender` sent: every key
   * (they go last, so the tones before them have played out by then), or,
   * when keys are missing, once its playout has passed the sender's end by
   * the latency limit and a margin. Judged at each frame the receiver plays.
   */
  function complete(receiver: SideState, sender: SideState, maxLatencyMs: number): Promise<void> {
    return new Promise((resolve) => {
      receiver.onFrame = () => {
        if (sender.finishedAt === undefined) return;
        const gotAll = receiver.dtmfReceived.length >= sender.sends.length;
        const last = receiver.clock?.lastAt ?? 0;
        if (gotAll || last >= sender.finishedAt + maxLatencyMs + DTMF_GIVE_UP_MARGIN_MS) {
          receiver.onFrame = undefined;
          resolve();
        }
      };
    });
  }
}

/** Subscribes to a call of ours, once: its frames (playout clock), keys heard and sent. */
function attach(s: SideState, call: Call): void {
  if (s.call) return;
  s.call = call;
  call.on('frame', (frame) => {
    const now = performance.now();
    s.clock ??= new PlayoutClock(call.sampleRate ?? 8000);
    s.clock.note(frame, now);
    s.onFrame?.();
  });
  call.on('dtmf', (d) =>
    s.dtmfReceived.push({ digit: d.digit, at: performance.now(), source: d.source, atMs: d.atMs }),
  );
  call.on('dtmfSent', (d) => s.dtmfSent.push({ digit: d.digit, at: performance.now() }));
}

/** The checks of what `receiver` got from `sender`, from its recording, clock and stats. */
async function sideChecks(receiver: SideState, sender: SideState, limits: SmokeLimits): Promise<Check[]> {
  const side = receiver.side;
  const end = receiver.call?.endInfo;
  const analysis = await analyse(receiver, sender);
  const why = analysis.problem;
  const matches = analysis.matches;
  const rfc4733 = receiver.dtmfReceived.filter((d) => d.source === 'rfc4733');
  const transits = dtmfTransits(sender.dtmfSent, rfc4733);
  const latencies = (analysis.live ?? []).map((m) => {
    if (!m.heard || !receiver.clock || analysis.clockProblem) return undefined;
    const heardAt = receiver.clock.timeAt(m.heard.onset);
    const sentAt = sender.timing?.toneSentAt[m.index];
    return heardAt === undefined || sentAt === undefined ? undefined : heardAt - sentAt;
  });
  const stats = end?.stats;
  const checks = [
    tonesCheck(side, matches, why),
    durationsCheck(side, matches, limits.toneToleranceMs),
    orderCheck(side, matches, sender.plays, limits.toneToleranceMs),
    dtmfCheck(
      side,
      sender.sends,
      receiver.dtmfReceived.map((d) => d.digit),
      sender.dtmfError === undefined
        ? undefined
        : `the ${sender.side} could not send DTMF: ${sender.dtmfError}`,
    ),
    analysis.clockProblem
      ? skipped(`${side}.latency`, analysis.clockProblem, limits.maxLatencyMs, 'ms')
      : latencyCheck(side, latencies, transits, limits.maxLatencyMs, stats?.liveDelayP50Ms, stats?.rttMs),
    lossCheck(
      side,
      stats && { received: stats.received, lost: stats.lost, late: stats.late },
      limits.maxLossPercent,
    ),
    jitterCheck(side, transits, transitJitter(transits), limits.maxJitterMs, stats?.jitterMs),
  ];
  return checks;
}

interface Analysis {
  samples?: Float32Array;
  rate?: number;
  heard: HeardTone[];
  matches: ToneMatch[] | undefined;
  problem?: string;
  clockProblem?: string;
  /** The sender's tones found in the live stream (for latency). */
  live?: ReturnType<typeof matchPattern>;
}

const analyses = new WeakMap<SideState, Promise<Analysis>>();

/** The receiver's recording read back from disk and searched for the sender's tones (once per side). */
function analyse(receiver: SideState, sender: SideState): Promise<Analysis> {
  let a = analyses.get(receiver);
  if (!a) {
    a = (async (): Promise<Analysis> => {
      const wav = receiver.call?.endInfo?.wav;
      if (!wav) {
        const why = receiver.call?.endInfo?.recordingError?.message ?? 'the call was not recorded';
        return { heard: [], matches: undefined, problem: why };
      }
      let audio: Awaited<ReturnType<typeof readWavFile>>;
      try {
        audio = await readWavFile(wav);
      } catch (err) {
        return { heard: [], matches: undefined, problem: describeError(err) };
      }
      const heard = detectTones(audio.samples, audio.sampleRate);
      const clock = receiver.clock;
      // Latency from the live stream (what a listener hears when), the tones' shapes from the WAV.
      const live = clock ? matchPattern(detectTones(clock.audio, clock.rate), sender.plays) : undefined;
      const clockProblem = clock === undefined ? 'no frame played out' : undefined;
      return {
        samples: audio.samples,
        rate: audio.sampleRate,
        heard,
        matches: matchPattern(heard, sender.plays),
        ...(live && { live }),
        ...(clockProblem && { clockProblem }),
      };
    })();
    analyses.set(receiver, a);
  }
  return a;
}

async function sideResult(s: SideState, other: SideState): Promise<SideResult> {
  const end = s.call?.endInfo;
  const a = end?.wav ? await analyse(s, other) : undefined;
  return {
    wav: end?.wav,
    rate: a?.rate,
    samples: a?.samples,
    heard: a?.heard ?? [],
    pattern: other.plays,
    matches: a?.matches,
    dtmf: s.dtmfReceived.map((d) => ({ digit: d.digit, atMs: d.atMs })),
    end,
  };
}
