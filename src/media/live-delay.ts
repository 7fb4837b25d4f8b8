/**
 * The live stream's target delay, from the jitter actually seen. Pure: it is
 * fed the lag of every audio packet placed (arrival minus its place on the
 * timeline, in samples) with the arrival time, and answers two numbers.
 *
 * - `baseline`: the smallest lag of the last 2–3 s (the packets with the
 *   least network delay). A frame cannot be played before its packet
 *   arrives; the baseline is when the best-placed packets do. Kept as
 *   minima of 1 s blocks, so a lower floor is taken at once and a higher one
 *   (a new route, a sender that paused without advancing its clock) after
 *   the window.
 * - `target`: how long after the baseline a frame is played, so that the
 *   packets that come later than the best ones are still in time: the
 *   smallest delay that at most 10 of the last 500 packets (10 s of 20 ms
 *   packets) exceeded, i.e. their 98th percentile once 500 have been seen,
 *   plus 5 ms for timer slack, clamped to [min, max] (40–300 ms by default).
 *   The packets of a burst (released together after a spike) count as one,
 *   the first: a spike is one late event, and a few spikes do not move the
 *   target, early in the call neither; a path that is jittery all the time
 *   does (within a second or two). Before 25 packets have been seen it is
 *   the initial value.
 *
 * The percentile is read from a histogram with 1 ms bins over a ring of the
 * last 500 observations: O(1) per packet, and a scan of the low bins every
 * 10 packets.
 */

export interface LiveDelayOptions {
  /** Samples per millisecond (8 at 8 kHz). */
  samplesPerMs: number;
  minSamples: number;
  maxSamples: number;
  initialSamples: number;
}

/** Packets the percentile looks back over. */
const WINDOW = 500;
/** How many of those may come later than the target (2 %). */
const ALLOWED_LATE = 10;
/** Below this many observations the target stays at its initial value. */
const MIN_OBSERVATIONS = 25;
/** The target is recomputed every this many observations. */
const RECOMPUTE_EVERY = 10;
/** Timer slack on top of the percentile, ms. */
const MARGIN_MS = 5;
/** Baseline blocks: the minimum of each 1 s of arrivals, the last 3 kept. */
const BLOCK_MS = 1000;
const BLOCKS = 3;

export class LiveDelay {
  readonly #perMs: number;
  readonly #min: number;
  readonly #max: number;
  readonly #binSamples: number;
  /** Bins 0..maxBin−1 hold 1 ms each; the last one everything above the largest target. */
  readonly #counts: Uint16Array;
  readonly #ring = new Uint16Array(WINDOW);
  #slot = 0;
  #observations = 0;
  #untilRecompute = MIN_OBSERVATIONS;
  readonly #blockSamples: number;
  /** Where the current baseline block ends (samples of `now`). */
  #blockEnd = Number.NEGATIVE_INFINITY;
  #target: number;
  readonly #blockMin = new Float64Array(BLOCKS).fill(Number.POSITIVE_INFINITY);
  #block = Number.NEGATIVE_INFINITY;
  #baseline = 0;
  #hasBaseline = false;

  constructor(options: LiveDelayOptions) {
    this.#perMs = options.samplesPerMs;
    this.#min = Math.max(0, Math.round(options.minSamples));
    this.#max = Math.max(this.#min, Math.round(options.maxSamples));
    this.#target = Math.min(this.#max, Math.max(this.#min, Math.round(options.initialSamples)));
    this.#binSamples = Math.max(1, Math.round(this.#perMs));
    this.#blockSamples = BLOCK_MS * this.#perMs;
    this.#counts = new Uint16Array(Math.ceil(this.#max / this.#binSamples) + 2);
  }

  /** Smallest recent lag (samples); 0 before any packet. */
  get baseline(): number {
    return this.#baseline;
  }

  /** Target delay after the baseline (samples). */
  get target(): number {
    return this.#target;
  }

  /**
   * One audio packet placed `lag` samples after its place began, arriving at
   * `now`. `jitter` false: it only moves the baseline (a packet that came in
   * the same burst as the one before it: the burst is one late event).
   */
  observe(lag: number, now: number, jitter = true): void {
    // Only forward: packets replayed after probation carry their (earlier) arrival times.
    if (now >= this.#blockEnd) this.#advance(Math.floor(now / this.#blockSamples));
    const mins = this.#blockMin;
    if (lag < mins[0]!) mins[0] = lag;
    if (!this.#hasBaseline || lag < this.#baseline) {
      this.#baseline = lag;
      this.#hasBaseline = true;
    }
    if (!jitter) return;
    const excess = lag - this.#baseline;
    const last = this.#counts.length - 1;
    const bin = excess <= 0 ? 0 : Math.min(last, Math.floor(excess / this.#binSamples));
    const slot = this.#slot;
    if (this.#observations >= WINDOW) this.#counts[this.#ring[slot]!]!--;
    this.#ring[slot] = bin;
    this.#counts[bin]!++;
    this.#slot = slot + 1 === WINDOW ? 0 : slot + 1;
    this.#observations++;
    if (--this.#untilRecompute === 0) {
      this.#untilRecompute = RECOMPUTE_EVERY;
      this.#recompute();
    }
  }

  /** The timeline moved under the packets by `delta` samples (an anchor shift): their lags did too. */
  shift(delta: number): void {
    for (let i = 0; i < BLOCKS; i++) this.#blockMin[i]! += delta;
    this.#baseline += delta;
  }

  #advance(block: number): void {
    const steps = this.#block === Number.NEGATIVE_INFINITY ? BLOCKS : Math.min(BLOCKS, block - this.#block);
    const mins = this.#blockMin;
    for (let i = BLOCKS - 1; i >= 0; i--)
      mins[i] = i - steps >= 0 ? mins[i - steps]! : Number.POSITIVE_INFINITY;
    this.#block = block;
    this.#blockEnd = (block + 1) * this.#blockSamples;
    let lowest = Number.POSITIVE_INFINITY;
    for (let i = 1; i < BLOCKS; i++) lowest = Math.min(lowest, mins[i]!);
    // Blocks with no packets (a pause) keep the last baseline rather than forget it.
    if (lowest !== Number.POSITIVE_INFINITY) this.#baseline = lowest;
  }

  #recompute(): void {
    const n = Math.min(this.#observations, WINDOW);
    const want = n - ALLOWED_LATE;
    const counts = this.#counts;
    let seen = 0;
    let bin = 0;
    for (; bin < counts.length; bin++) {
      seen += counts[bin]!;
      if (seen >= want) break;
    }
    const target = (bin + 1) * this.#binSamples + MARGIN_MS * this.#perMs;
    this.#target = Math.min(this.#max, Math.max(this.#min, Math.round(target)));
  }
}
