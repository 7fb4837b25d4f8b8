/**
 * Sending DTMF as RFC 4733 telephone-events, as a pure per-frame planner:
 * the media session asks it, once per outgoing packet interval, whether this
 * interval carries an event packet, silence (muted audio around the tones
 * and `,` pauses) or nothing (normal audio).
 *
 * Each key press is one event (RFC 4733 2.5.1): every packet carries the
 * event's start as RTP timestamp and the duration so far; the first has the
 * marker bit; the last (E bit) is sent three times (2.5.1.4), one interval
 * apart, which also spaces the digits. Audio stays muted from the first
 * event to the end of the sequence.
 */
import { type DtmfDigit, digitToEvent, encodeTelephoneEvent } from './dtmf.js';

export interface DtmfSendOptions {
  /** Tone length per digit, ms (default 100; ITU-T Q.24 receivers need 40). */
  durationMs?: number;
  /** Silence between digits, ms, after the end packets (default 60). */
  gapMs?: number;
  /** What a `,` waits, ms (default 500). */
  pauseMs?: number;
  /** Power level in -dBm0 (RFC 4733 2.3.4; default 10). */
  volume?: number;
}

export const DTMF_DEFAULTS = { durationMs: 100, gapMs: 60, pauseMs: 500, volume: 10 } as const;

/** The digits `sendDtmf` accepts: 0-9 * # A-D (any case) and `,` for a pause. */
export const DTMF_SEND_PATTERN = /^[0-9*#A-Da-d,]+$/;

export type DtmfFramePlan =
  /** An event packet: timestamp of the frame `startOffset` intervals ago (the event's start). */
  | { kind: 'event'; payload: Uint8Array; marker: boolean; startOffset: number }
  /** Muted: send silence (keeps the stream and the receiver's clock going). */
  | { kind: 'silence' };

interface Step {
  plan: DtmfFramePlan;
  /** Set on the step that completes a job: resolves its promise. */
  done?: () => void;
  /** Reported when the key's first packet goes out. */
  digit?: DtmfDigit;
}

export class DtmfSender {
  readonly #frameSamples: number;
  readonly #ptimeMs: number;
  #steps: Step[] = [];
  #next = 0;

  constructor(ptimeMs: number, clockRate: number) {
    this.#ptimeMs = ptimeMs;
    this.#frameSamples = Math.round((ptimeMs * clockRate) / 1000);
  }

  /** True while digits remain to be sent. */
  get busy(): boolean {
    return this.#next < this.#steps.length;
  }

  /**
   * Queues `digits`; `done` is called when the last of their packets has been
   * planned. Throws RangeError for characters outside {@link DTMF_SEND_PATTERN}.
   */
  enqueue(digits: string, options: DtmfSendOptions = {}, done?: () => void): void {
    if (!DTMF_SEND_PATTERN.test(digits)) {
      throw new RangeError(`DTMF digits must be 0-9 * # A-D or ',' (pause), got ${JSON.stringify(digits)}`);
    }
    const o = { ...DTMF_DEFAULTS, ...stripUndefined(options) };
    const frames = (ms: number) => Math.max(1, Math.round(ms / this.#ptimeMs));
    const steps: Step[] = [];
    for (const ch of digits) {
      if (ch === ',') {
        for (let i = frames(o.pauseMs); i > 0; i--) steps.push({ plan: { kind: 'silence' } });
        continue;
      }
      const event = digitToEvent(ch) as number;
      const toneFrames = frames(o.durationMs);
      for (let k = 0; k < toneFrames; k++) {
        const last = k === toneFrames - 1;
        const payload = encodeTelephoneEvent({
          event,
          end: last,
          volume: o.volume,
          duration: (k + 1) * this.#frameSamples,
        });
        const step: Step = { plan: { kind: 'event', payload, marker: k === 0, startOffset: k } };
        if (k === 0) step.digit = ch.toUpperCase() as DtmfDigit;
        steps.push(step);
        if (last) {
          // RFC 4733 2.5.1.4: the end packet twice more, same timestamp and duration.
          steps.push({ plan: { kind: 'event', payload, marker: false, startOffset: k + 1 } });
          steps.push({ plan: { kind: 'event', payload, marker: false, startOffset: k + 2 } });
        }
      }
      for (let i = Math.round(o.gapMs / this.#ptimeMs); i > 0; i--) steps.push({ plan: { kind: 'silence' } });
    }
    if (steps.length === 0) steps.push({ plan: { kind: 'silence' } });
    const lastStep = steps[steps.length - 1]!;
    if (done) lastStep.done = done;
    // Drop the finished prefix so a long-lived call does not keep every step.
    this.#steps = this.#steps.slice(this.#next).concat(steps);
    this.#next = 0;
  }

  /**
   * The plan for the next packet interval, or undefined when no DTMF is
   * under way (send audio). `onDigit` hears each key as its first packet goes.
   */
  next(onDigit?: (digit: DtmfDigit) => void): DtmfFramePlan | undefined {
    const step = this.#steps[this.#next];
    if (step === undefined) return undefined;
    this.#next++;
    if (step.digit !== undefined) onDigit?.(step.digit);
    step.done?.();
    return step.plan;
  }

  /** Drops everything queued (the call ends); pending jobs are completed. */
  clear(): void {
    for (let i = this.#next; i < this.#steps.length; i++) this.#steps[i]!.done?.();
    this.#steps = [];
    this.#next = 0;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
