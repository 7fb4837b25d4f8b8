/**
 * Our side of one call's SDP offer/answer (RFC 3264), across the initial
 * exchange and every re-INVITE or UPDATE: it owns the o= line (one session
 * id per call, a version that grows only when our SDP changes, 8), the SDP
 * we last sent, and the offer we are waiting to hear an answer to. Pure;
 * the INVITE dialog usage decides which message carries what.
 */
import { generateKeySalt } from '../rtp/srtp-suites.js';
import type { SrtpKeys } from './crypto.js';
import type { MediaDirection } from './negotiate.js';
import {
  type AnswerAcceptance,
  acceptAnswer,
  createOffer,
  type LocalMedia,
  type NegotiationResult,
  negotiateAnswer,
} from './negotiate.js';

export class SdpSession {
  readonly #local: LocalMedia;
  /** The SDP we last sent (offer or answer). */
  #last: string | undefined;
  /** Our offer awaiting an answer, and the SDP to return to if it fails. */
  #pending: { offer: string; before: string | undefined; version: number } | undefined;

  /** The SRTP keys of the last exchange (the far end's key decides whether ours changes). */
  #keys: SrtpKeys | undefined;

  constructor(local: Omit<LocalMedia, 'sessionVersion'> & { sessionVersion?: number }) {
    this.#local = { ...local, sessionVersion: local.sessionVersion ?? 1 };
    // One key of ours per call (RFC 4568 SDES): every re-offer and re-answer
    // repeats it, so the far end's context and ours keep going.
    if ((local.srtp ?? 'off') !== 'off') this.#local.srtpKeySalt ??= generateKeySalt();
  }

  /** The SDP we last sent. */
  get last(): string | undefined {
    return this.#last;
  }

  /** Our offer that still waits for its answer. */
  get pendingOffer(): string | undefined {
    return this.#pending?.offer;
  }

  /** What we want to do with the media (sendonly while we hold). */
  get direction(): MediaDirection {
    return this.#local.direction ?? 'sendrecv';
  }

  /** Our address and port in the SDP. */
  get address(): { address: string; port: number } {
    return { address: this.#local.address, port: this.#local.port };
  }

  /** Changes what our next offer and answers say we want (hold: sendonly; resume: sendrecv). */
  setDirection(direction: MediaDirection): void {
    this.#local.direction = direction;
  }

  /**
   * Answers the remote offer. On failure (400/488) nothing changes: a
   * rejected re-INVITE leaves the session as it was (RFC 3261 14.2).
   */
  answer(offer: string): NegotiationResult {
    let result = negotiateAnswer(offer, this.#local);
    if (!result.ok) return result;
    const keys = result.media.srtp;
    if (keys && this.#keys && !keys.sameRemoteKey(this.#keys)) {
      // The far end changed its key: a new context both ways. Reusing our key
      // under it would restart our rollover counter: keystream reuse (RFC 3711 9.1).
      this.#local.srtpKeySalt = generateKeySalt();
      result = negotiateAnswer(offer, this.#local);
      if (!result.ok) return result;
    }
    this.#keys = result.media.srtp;
    const answer = this.#next(
      () => (negotiateAnswer(offer, this.#local) as typeof result).answer,
      result.answer,
    );
    this.#last = answer;
    return { ...result, answer };
  }

  /** Our offer (initial, late-offer 200, re-INVITE); remembered until accept() or rollback(). */
  offer(): string {
    const before = this.#last;
    const version = this.#local.sessionVersion;
    const offer = this.#next(() => createOffer(this.#local), createOffer(this.#local));
    this.#pending = { offer, before, version };
    this.#last = offer;
    return offer;
  }

  /**
   * Offers exactly the SDP we last sent, same version (RFC 3264 8: an
   * unchanged SDP keeps its version): a re-INVITE that only moves the
   * dialog to a new connection (re-homing) changes nothing in the session.
   */
  reoffer(): string {
    const last = this.#last;
    if (last === undefined) return this.offer();
    this.#pending = { offer: last, before: last, version: this.#local.sessionVersion };
    return last;
  }

  /**
   * The answer to our pending offer (RFC 3264 7). The offer is settled, except
   * with `keepOffer` (an answer in an unreliable 18x, RFC 3261 13.2.1: the
   * 2xx may still bring the final one).
   */
  accept(answer: string, options: { keepOffer?: boolean } = {}): AnswerAcceptance {
    const pending = this.#pending;
    if (!pending) {
      const reason = 'no offer of ours is pending';
      return { ok: false, code: 'SDP_PARSE_ERROR', reason, warning: reason, warnCode: 399 };
    }
    if (!options.keepOffer) this.#pending = undefined;
    const accepted = acceptAnswer(pending.offer, answer);
    if (accepted.ok) this.#keys = accepted.media.srtp;
    return accepted;
  }

  /**
   * Our offer was rejected (a re-INVITE answered 488, 491, …): the session is
   * what it was before it, and so is our SDP and its version.
   */
  rollback(): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = undefined;
    this.#last = pending.before;
    this.#local.sessionVersion = pending.version;
  }

  /**
   * RFC 3264 8: a new SDP carries the next version only when it differs from
   * the previous one; an unchanged one keeps the version (and is identical).
   */
  #next(render: () => string, atCurrentVersion: string): string {
    if (this.#last === undefined || atCurrentVersion === this.#last) return atCurrentVersion;
    this.#local.sessionVersion++;
    return render();
  }
}
