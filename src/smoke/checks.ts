/**
 * The smoke test's checks and their verdicts, as pure functions of what was
 * measured; and the readable table. Names are stable (CI dashboards and the
 * JUnit test cases key on them):
 *
 *   caller.register, callee.register   the device registered
 *   call.answer                        the caller's call was answered, by the callee's device
 *   <side>.tones                       <side> heard the other's three tones within ±2 %
 *   <side>.tone-durations              … each as long as sent, ± the tone tolerance
 *   <side>.tone-order                  … in the order sent, spaced as sent, ± the tone tolerance
 *   <side>.dtmf                        … every digit the other sent, exactly once, in order
 *   <side>.latency                     one-way audio latency towards <side> (p50 over the tones)
 *   <side>.loss                        packets towards <side> lost or too late to play
 *   <side>.jitter                      transit jitter towards <side>
 *   call.hangup                        the caller hung up and the callee saw the BYE
 *
 * `<side>` is the receiving side: `callee.dtmf` is what the callee got from the caller.
 */
import type { ToneMatch, TonePattern } from './tones.js';
import { FREQUENCY_TOLERANCE, toneOffsetsMs } from './tones.js';

export type CheckStatus = 'pass' | 'fail' | 'skip';
export type Side = 'caller' | 'callee';

export interface Check {
  name: string;
  status: CheckStatus;
  /** What was measured; null when nothing could be. */
  value: number | string | null;
  /** What it was held against (a maximum, a ± tolerance, the expected text); null when none. */
  limit: number | string | null;
  /** Unit of value and limit ('ms', '%', or '' for text and counts). */
  unit: string;
  /** One line a person reads: what was seen, and for a failure what was wrong. */
  message: string;
}

export interface SmokeLimits {
  /** One-way latency, p50 over the tones, mouth to ear (our live stream's playout delay included). */
  maxLatencyMs: number;
  /** (lost + late) / expected packets, percent. */
  maxLossPercent: number;
  /** Transit jitter, ms. */
  maxJitterMs: number;
  /** How far a tone's duration, and its onset relative to the first tone's, may be off. */
  toneToleranceMs: number;
}

export const DEFAULT_LIMITS: Readonly<SmokeLimits> = Object.freeze({
  maxLatencyMs: 400,
  maxLossPercent: 1,
  // Transit jitter on a healthy path is a few ms; a media server that queues
  // a burst shows tens. 30 ms is where the live stream's delay must grow well
  // past its 40 ms minimum to keep up.
  maxJitterMs: 30,
  // One 20 ms packet plus the edges: a lost packet at a tone's end (played as
  // silence), or a media server's jitter buffer resizing, moves an edge by 20-40 ms.
  toneToleranceMs: 50,
});

const pct = (x: number) => {
  const text = (x * 100).toFixed(2);
  // A hair below zero prints as +0.00, not -0.00.
  return Number(text) === 0 ? '+0.00 %' : `${x > 0 ? '+' : ''}${text} %`;
};
const hz = (f: number) => `${Math.round(f)} Hz`;
const ms = (x: number) => `${x.toFixed(x < 10 && x > -10 ? 1 : 0)} ms`;
const round = (x: number, digits = 1) => Number(x.toFixed(digits));

export function skipped(name: string, why: string, limit: number | string | null = null, unit = ''): Check {
  return { name, status: 'skip', value: null, limit, unit, message: `not checked: ${why}` };
}

export type RegisterOutcome = { ok: true; ms: number } | { ok: false; message: string };

export function registerCheck(side: Side, outcome: RegisterOutcome): Check {
  const name = `${side}.register`;
  if (!outcome.ok)
    return { name, status: 'fail', value: null, limit: null, unit: 'ms', message: outcome.message };
  return {
    name,
    status: 'pass',
    value: Math.round(outcome.ms),
    limit: null,
    unit: 'ms',
    message: `registered in ${ms(outcome.ms)}`,
  };
}

export interface AnswerOutcome {
  /** The caller's call was answered (200 OK). */
  answered: boolean;
  /** The callee's device answered a call meanwhile. */
  calleeAnswered: boolean;
  /** INVITE to answer, ms. */
  ms?: number | undefined;
  /** The final status of a call that was not answered, and why it ended. */
  status?: number | undefined;
  reason?: string | undefined;
}

export function answerCheck(target: string, o: AnswerOutcome): Check {
  const base = { name: 'call.answer', limit: null, unit: 'ms' };
  if (o.answered && o.calleeAnswered) {
    return {
      ...base,
      status: 'pass',
      value: o.ms === undefined ? null : Math.round(o.ms),
      message: `${target} answered by the callee${o.ms === undefined ? '' : ` in ${ms(o.ms)}`}`,
    };
  }
  if (o.answered) {
    return {
      ...base,
      status: 'fail',
      value: null,
      message: `${target} was answered, but not by the callee's device (voicemail, another device, or a wrong --target?)`,
    };
  }
  const why =
    o.status !== undefined ? `${o.status}${o.reason ? ` ${o.reason}` : ''}` : (o.reason ?? 'no answer');
  // A refusal's value is its SIP status (no unit).
  return {
    ...base,
    status: 'fail',
    value: o.status ?? null,
    unit: '',
    message: `calling ${target} failed: ${why}`,
  };
}

/** The tones the other side sent, heard within ±2 %. */
export function tonesCheck(side: Side, matches: readonly ToneMatch[] | undefined, why?: string): Check {
  const name = `${side}.tones`;
  const limit = FREQUENCY_TOLERANCE * 100;
  if (!matches) return skipped(name, why ?? 'no recording', limit, '%');
  const missing = matches.filter((m) => !m.heard);
  const errors = matches.flatMap((m) => (m.error === undefined ? [] : [Math.abs(m.error)]));
  const worst = errors.length > 0 ? round(Math.max(...errors) * 100, 2) : null;
  const parts = matches.map((m) => {
    if (m.heard) return `${hz(m.expected.frequency)} (${pct(m.error ?? 0)})`;
    if (m.nearest)
      return `${hz(m.expected.frequency)} missing: heard ${m.nearest.frequency.toFixed(1)} Hz instead (${pct((m.nearest.frequency - m.expected.frequency) / m.expected.frequency)}) at ${(m.nearest.onsetMs / 1000).toFixed(2)} s`;
    return `${hz(m.expected.frequency)} missing`;
  });
  if (missing.length === 0)
    return { name, status: 'pass', value: worst, limit, unit: '%', message: `heard ${parts.join(', ')}` };
  return {
    name,
    status: 'fail',
    value: worst,
    limit,
    unit: '%',
    message: `${missing.length} of ${matches.length} tones not heard within ±${limit} %: ${parts.join(', ')}`,
  };
}

export function durationsCheck(
  side: Side,
  matches: readonly ToneMatch[] | undefined,
  toleranceMs: number,
): Check {
  const name = `${side}.tone-durations`;
  const heard = (matches ?? []).filter((m) => m.heard);
  if (heard.length === 0) return skipped(name, 'no tone heard', toleranceMs, 'ms');
  const deviations = heard.map((m) => m.heard!.durationMs - m.expected.durationMs);
  const worst = deviations.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a), 0);
  const parts = heard.map((m) => `${hz(m.expected.frequency)} ${ms(m.heard!.durationMs)}`);
  const ok = Math.abs(worst) <= toleranceMs;
  return {
    name,
    status: ok ? 'pass' : 'fail',
    value: round(Math.abs(worst)),
    limit: toleranceMs,
    unit: 'ms',
    message: `${ok ? '' : `a tone is ${ms(Math.abs(worst))} ${worst < 0 ? 'short' : 'long'}: `}${parts.join(', ')} (sent ${heard.map((m) => ms(m.expected.durationMs)).join(', ')})`,
  };
}

/** Heard in the order sent, and each onset where the pattern puts it relative to the first heard. */
export function orderCheck(
  side: Side,
  matches: readonly ToneMatch[] | undefined,
  pattern: TonePattern,
  toleranceMs: number,
): Check {
  const name = `${side}.tone-order`;
  const heard = (matches ?? []).filter((m) => m.heard);
  if (heard.length < 2) return skipped(name, 'fewer than two tones heard', toleranceMs, 'ms');
  const offsets = toneOffsetsMs(pattern);
  for (let i = 1; i < heard.length; i++) {
    const a = heard[i - 1]!;
    const b = heard[i]!;
    if (b.heard!.onset <= a.heard!.onset) {
      return {
        name,
        status: 'fail',
        value: null,
        limit: toleranceMs,
        unit: 'ms',
        message: `out of order: ${hz(b.expected.frequency)} (sent after ${hz(a.expected.frequency)}) was heard ${ms(a.heard!.onsetMs - b.heard!.onsetMs)} before it`,
      };
    }
  }
  const first = heard[0]!;
  let worst = 0;
  const spacings: string[] = [];
  for (const m of heard.slice(1)) {
    const sent = offsets[m.index]! - offsets[first.index]!;
    const got = m.heard!.onsetMs - first.heard!.onsetMs;
    spacings.push(`${hz(m.expected.frequency)} +${ms(got)}`);
    if (Math.abs(got - sent) > Math.abs(worst)) worst = got - sent;
  }
  const ok = Math.abs(worst) <= toleranceMs;
  return {
    name,
    status: ok ? 'pass' : 'fail',
    value: round(Math.abs(worst)),
    limit: toleranceMs,
    unit: 'ms',
    message: `${ok ? 'in order' : `spacing off by ${ms(worst)}`}: onsets after ${hz(first.expected.frequency)}: ${spacings.join(', ')} (sent ${heard
      .slice(1)
      .map((m) => `+${ms(offsets[m.index]! - offsets[first.index]!)}`)
      .join(', ')})`,
  };
}

/** Every digit sent arrived exactly once, in the order sent. */
export function dtmfCheck(side: Side, expected: string, received: readonly string[], why?: string): Check {
  const name = `${side}.dtmf`;
  if (why !== undefined) return skipped(name, why, expected);
  const got = received.join('');
  if (got === expected)
    return {
      name,
      status: 'pass',
      value: got,
      limit: expected,
      unit: '',
      message: `got ${expected}, each once`,
    };
  const count = (list: readonly string[], d: string) => list.filter((x) => x === d).length;
  const want = [...expected];
  const problems: string[] = [];
  for (const d of new Set(want)) {
    const n = count(received, d);
    const w = count(want, d);
    if (n === 0) problems.push(`${d} missing`);
    else if (n > w) problems.push(`${d} ${n} times`);
    else if (n < w) problems.push(`${d} ${n} of ${w} times`);
  }
  for (const d of new Set(received)) if (!want.includes(d)) problems.push(`${d} not sent`);
  if (problems.length === 0) problems.push('out of order');
  return {
    name,
    status: 'fail',
    value: got,
    limit: expected,
    unit: '',
    message: `got "${got}", sent "${expected}": ${problems.join(', ')}`,
  };
}

/**
 * One-way latency: p50 over the tones of heard − sent (see probe.ts: mouth to
 * ear, our receiver's playout delay included); the DTMF transit (network and
 * event loop only) is told beside it.
 */
export function latencyCheck(
  side: Side,
  latencies: readonly (number | undefined)[],
  transits: readonly number[],
  maxMs: number,
  /** The receiver's live playout delay, p50 over the call, when known. */
  playoutDelayMs: number | undefined,
  /** The receiver's last RTCP round-trip time (RFC 3550 6.4.1), when the far end sent reports. */
  rttMs?: number,
): Check {
  const name = `${side}.latency`;
  const values = latencies.filter((x): x is number => x !== undefined);
  if (values.length === 0) return skipped(name, 'no tone heard to time', maxMs, 'ms');
  const p50 = median(values)!;
  const transit = median(transits);
  const ok = p50 <= maxMs;
  return {
    name,
    status: ok ? 'pass' : 'fail',
    value: round(p50),
    limit: maxMs,
    unit: 'ms',
    message: `p50 ${ms(p50)} over ${values.length} tone${values.length === 1 ? '' : 's'} (${values.map((v) => ms(v)).join(', ')}), incl. the receiver's playout delay${playoutDelayMs === undefined ? '' : ` (p50 ${ms(playoutDelayMs)})`}${rttMs === undefined ? '' : `; RTCP round trip ${ms(rttMs)}`}${transit === undefined ? '' : `; DTMF transit p50 ${ms(transit)}`}${ok ? '' : `; above ${maxMs} ms`}`,
  };
}

export interface PacketCounts {
  received: number;
  lost: number;
  late: number;
}

export function lossCheck(side: Side, stats: PacketCounts | undefined, maxPercent: number): Check {
  const name = `${side}.loss`;
  if (!stats) return skipped(name, 'no media statistics', maxPercent, '%');
  const expected = stats.received + stats.lost;
  const missed = stats.lost + stats.late;
  const percent = expected === 0 ? 100 : (missed / expected) * 100;
  const ok = expected > 0 && percent <= maxPercent;
  return {
    name,
    status: ok ? 'pass' : 'fail',
    value: round(percent, 2),
    limit: maxPercent,
    unit: '%',
    message:
      expected === 0
        ? 'no RTP arrived'
        : `${stats.lost} lost and ${stats.late} too late of ${expected} packets`,
  };
}

/**
 * Transit jitter from the DTMF presses (probe.ts transitJitter).
 * TODO(rtcp): when RtcpSession is wired into calls, take the RFC 3550 A.8
 * interarrival jitter over every audio packet from the call's reception
 * statistics instead (rtp/rtcp.ts ReceptionStatistics), and keep this as
 * the fallback.
 */
/**
 * Jitter: the receiver's RFC 3550 interarrival jitter over every audio packet
 * of the call (A.8, what its RTCP reports carry) when it has one; otherwise the
 * mean transit change between consecutive DTMF presses.
 */
export function jitterCheck(
  side: Side,
  transits: readonly number[],
  dtmfJitter: number | undefined,
  maxMs: number,
  interarrivalMs?: number,
): Check {
  const name = `${side}.jitter`;
  const dtmf =
    dtmfJitter === undefined
      ? undefined
      : `mean transit change over ${transits.length} DTMF packets (${transits.map((t) => ms(t)).join(', ')})`;
  const jitter = interarrivalMs ?? dtmfJitter;
  if (jitter === undefined)
    return skipped(
      name,
      "needs the audio's reception statistics or two DTMF presses that arrived as RFC 4733 events",
      maxMs,
      'ms',
    );
  const ok = jitter <= maxMs;
  const what =
    interarrivalMs === undefined
      ? dtmf!
      : `RFC 3550 interarrival jitter over the audio packets${dtmf ? `; ${dtmf}: ${ms(dtmfJitter!)}` : ''}`;
  return {
    name,
    status: ok ? 'pass' : 'fail',
    value: round(jitter, 2),
    limit: maxMs,
    unit: 'ms',
    message: `${what}${ok ? '' : `; above ${maxMs} ms`}`,
  };
}

export function hangupCheck(callerEnd: string | undefined, calleeEnd: string | undefined): Check {
  const name = 'call.hangup';
  const ok = callerEnd === 'local-hangup' && calleeEnd === 'remote-bye';
  return {
    name,
    status: ok ? 'pass' : 'fail',
    value: calleeEnd ?? null,
    limit: 'remote-bye',
    unit: '',
    message: ok
      ? 'the caller hung up; the callee saw the BYE'
      : `caller ended ${callerEnd ?? '(still up)'}, callee ended ${calleeEnd ?? '(still up)'}; want local-hangup / remote-bye`,
  };
}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Summary {
  ok: boolean;
  passed: number;
  failed: Check[];
  skipped: number;
}

/** Passes when nothing failed (a check skipped because an earlier one failed never passes a run alone). */
export function summarize(checks: readonly Check[]): Summary {
  const failed = checks.filter((c) => c.status === 'fail');
  return {
    ok: failed.length === 0 && checks.some((c) => c.status === 'pass'),
    passed: checks.filter((c) => c.status === 'pass').length,
    failed,
    skipped: checks.filter((c) => c.status === 'skip').length,
  };
}

/** `value unit`, `≤ limit unit`, as the table and the report print them. */
export function formatValue(check: Check): string {
  if (check.value === null) return '-';
  return check.unit ? `${check.value} ${check.unit}` : String(check.value);
}

export function formatLimit(check: Check): string {
  if (check.limit === null) return '';
  if (typeof check.limit === 'string') return check.limit;
  if (
    check.name.endsWith('.tones') ||
    check.name.endsWith('.tone-durations') ||
    check.name.endsWith('.tone-order')
  )
    return `±${check.limit} ${check.unit}`;
  return `≤ ${check.limit} ${check.unit}`;
}

/** The readable table: one row per check, the message last (it may be long). */
export function formatTable(checks: readonly Check[]): string {
  const rows = checks.map((c) => [c.name, c.status.toUpperCase(), formatValue(c), formatLimit(c), c.message]);
  const header = ['check', 'result', 'value', 'limit', 'details'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [
    line(header),
    line(widths.map((w, i) => (i === widths.length - 1 ? '-------' : '-'.repeat(w)))),
    ...rows.map(line),
  ].join('\n');
}
