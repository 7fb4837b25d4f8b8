/**
 * Wrap-safe RTP sequence and timestamp arithmetic, and the RFC 3550 A.1
 * sequence-number bookkeeping with the A.3 loss counters.
 */

/** Signed 16-bit distance a − b in [-32768, 32767]: positive when a is after b. */
export function seqDiff(a: number, b: number): number {
  return ((a - b) << 16) >> 16;
}

/** True when sequence number a comes after b (modulo 2^16, half-range rule). */
export function isSeqNewer(a: number, b: number): boolean {
  return seqDiff(a, b) > 0;
}

/** Signed 32-bit distance a − b between RTP timestamps (modulo 2^32). */
export function tsDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/**
 * What {@link SequenceTracker.update} made of a packet:
 * - `first`: the first packet; numbering starts here.
 * - `inorder`: after the highest so far (a forward gap means loss).
 * - `duplicate-or-reordered`: at or shortly before the highest; counted as received.
 * - `jump`: far from the highest; not counted, probably drop it. A second
 *   consecutive one means the sender restarted.
 * - `restart`: the packet after a `jump` continued it: the counters and the
 *   extended numbering start over (reset anything keyed on extended numbers).
 */
export type SeqUpdateKind = 'first' | 'inorder' | 'duplicate-or-reordered' | 'jump' | 'restart';

export interface SequenceTrackerOptions {
  /** RFC 3550 A.1 MAX_DROPOUT: largest forward gap still taken as loss (default 3000). */
  maxDropout?: number;
  /** RFC 3550 A.1 MAX_MISORDER: how far behind a packet may be and still count (default 100). */
  maxMisorder?: number;
}

const SEQ_MOD = 0x10000;

/**
 * RFC 3550 A.1 `update_seq` without the probation phase (the RTP session
 * latches one source from SDP instead), keeping the extended (cycle-counted)
 * highest sequence number and the A.3 counters.
 */
export class SequenceTracker {
  readonly #maxDropout: number;
  readonly #maxMisorder: number;
  #started = false;
  /** extended highest sequence number received (RFC 3550 A.3 `extended_max`) */
  #maxExtended = 0;
  #baseExtended = 0;
  /** sequence number that would confirm a restart after a jump (A.1 `bad_seq`) */
  #badSeq = -1;
  #received = 0;
  #extended = Number.NaN;

  constructor(options: SequenceTrackerOptions = {}) {
    this.#maxDropout = options.maxDropout ?? 3000;
    this.#maxMisorder = options.maxMisorder ?? 100;
  }

  /** Records one packet's sequence number; afterwards {@link extended} holds its extended number. */
  update(sequenceNumber: number): SeqUpdateKind {
    const seq = sequenceNumber & 0xffff;
    if (!this.#started) {
      this.#restart(seq);
      return 'first';
    }
    const maxSeq = this.#maxExtended & 0xffff;
    const udelta = (seq - maxSeq) & 0xffff;
    if (udelta === 0) {
      // A.1 lumps duplicates with reordered packets and counts them as received,
      // which is why A.3 loss can go negative.
      this.#received++;
      this.#extended = this.#maxExtended;
      return 'duplicate-or-reordered';
    }
    if (udelta < this.#maxDropout) {
      this.#maxExtended += udelta; // crossing 65535 → 0 adds a cycle
      this.#received++;
      this.#extended = this.#maxExtended;
      return 'inorder';
    }
    if (udelta <= SEQ_MOD - this.#maxMisorder) {
      if (seq === this.#badSeq) {
        // Two sequential packets after a big jump: assume the sender restarted (A.1).
        this.#restart(seq);
        return 'restart';
      }
      this.#badSeq = (seq + 1) & 0xffff;
      this.#extended = Number.NaN;
      return 'jump';
    }
    this.#received++;
    this.#extended = this.#maxExtended + (udelta - SEQ_MOD); // behind the max, maybe across a wrap
    return 'duplicate-or-reordered';
  }

  /**
   * Extended number of the packet last given to {@link update}: cycles × 65536 + seq,
   * with cycles counted from the first packet. NaN after a `jump`; negative for
   * a packet reordered from before the first one across a wrap.
   */
  get extended(): number {
    return this.#extended;
  }

  /** Extended number of the highest packet so far (RFC 3550 6.4.1 "extended highest sequence number"). */
  get maxExtended(): number {
    return this.#maxExtended;
  }

  /** RFC 3550 A.3: extended_max − base_seq + 1 (0 before the first packet). */
  get expected(): number {
    return this.#started ? this.#maxExtended - this.#baseExtended + 1 : 0;
  }

  /** Packets counted as received, duplicates included (A.1). */
  get received(): number {
    return this.#received;
  }

  /** RFC 3550 A.3 cumulative loss: expected − received (negative with duplicates). */
  get lost(): number {
    return this.expected - this.#received;
  }

  /**
   * Extended number for a sequence number near the current highest, without
   * recording it; NaN before the first packet.
   */
  extend(sequenceNumber: number): number {
    if (!this.#started) return Number.NaN;
    return this.#maxExtended + seqDiff(sequenceNumber & 0xffff, this.#maxExtended & 0xffff);
  }

  #restart(seq: number): void {
    // A.1 init_seq: base = max = seq, cycles = 0, counters cleared, then this packet counts.
    this.#started = true;
    this.#maxExtended = seq;
    this.#baseExtended = seq;
    this.#badSeq = -1;
    this.#received = 1;
    this.#extended = seq;
  }
}

/**
 * RFC 3711 3.3.1 (and its Appendix A): the SRTP packet index a receiver
 * guesses for sequence number `seq`, given the highest sequence number it has
 * authenticated so far (`highestSeq`, s_l) and its rollover counter (`roc`).
 * Returns ROC·2^16 + SEQ with the ROC guessed as ROC−1, ROC or ROC+1, whichever
 * puts the packet nearest s_l; the result is negative for a packet that would
 * belong before the first cycle. Exactly the RFC's rule, ties included (a
 * packet exactly 2^15 ahead of s_l counts as ahead while s_l < 2^15), so our
 * guess matches libsrtp's and every other implementation of the RFC.
 */
export function srtpIndexEstimate(seq: number, highestSeq: number, roc: number): number {
  const s = seq & 0xffff;
  const sl = highestSeq & 0xffff;
  let v = roc;
  if (sl < 0x8000) {
    if (s - sl > 0x8000) v = roc - 1;
  } else if (sl - 0x8000 > s) {
    v = roc + 1;
  }
  return v * SEQ_MOD + s;
}
