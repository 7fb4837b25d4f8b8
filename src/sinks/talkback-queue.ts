/**
 * The media stream's talk-back playout queue, pure (no socket, no clock):
 * the server's µ-law payloads of any length become 160-sample frames that
 * MediaSession takes with `nextFrame()` every 20 ms on its monotonic clock;
 * its calls are this queue's clock (one tick each).
 *
 * A small adaptive lead absorbs the server's jitter. Many servers send at
 * real-time pace (straight from a TTS stream), so each frame arrives about
 * when it is due, a few ms either side; played at the first tick after it
 * arrives, one that comes just after its tick becomes a 20 ms hole and
 * shifts everything after it. So playing starts only once the first frame
 * has waited `lead` ticks (or more than `lead` frames are queued already),
 * at the start and again after the queue ran dry. Running dry and then
 * getting audio within 200 ms is an underrun: counted, and the lead grows
 * by a tick (up to 10, 200 ms); 10 s of playing without one shrinks it by a
 * tick (down to 1, 20 ms).
 *
 * Marks are echoed exactly when every frame queued before them has been
 * taken (Twilio: "once the audio before it has played"), so the lead delays
 * them only as much as it delays the audio. A partial frame is completed by
 * the next payload; it is padded with silence when a mark follows it, or
 * once it has waited a whole tick while playing with no more audio arriving.
 */
import { FRAME_MS, FRAME_SAMPLES } from '../media/frame.js';
import { decodeUlaw } from '../media/g711.js';

export interface TalkBackQueueOptions {
  /** Frames queued before further audio is dropped. */
  maxFrames: number;
  /** A mark whose audio has played (or that a clear released). */
  onMark: (name: string) => void;
  /** Lead bounds, in ticks (20 ms): default 1 and 10. */
  minLead?: number;
  maxLead?: number;
}

export interface TalkBackStats {
  /** Frames taken by nextFrame(). */
  played: number;
  /** Marks echoed (played, or released by a clear). */
  marks: number;
  /** Frames discarded by clear. */
  cleared: number;
  /** Frames discarded because the queue was full. */
  playbackDropped: number;
  /** Frames waiting. */
  queuedPlayback: number;
  /** Times the queue ran dry mid-stream (audio came again within 200 ms). */
  underruns: number;
  /** The lead now, ms. */
  leadMs: number;
}

type Entry = Int16Array | { mark: string };

/** Audio within this many ticks of running dry means the queue underran (it was not the end of an utterance). */
const UNDERRUN_TICKS = 10;
/** Ticks of playing without an underrun before the lead shrinks by one (10 s). */
const SHRINK_AFTER = 500;

export class TalkBackQueue {
  readonly #maxFrames: number;
  readonly #onMark: (name: string) => void;
  readonly #minLead: number;
  readonly #maxLead: number;
  #lead: number;
  #queue: Entry[] = [];
  #head = 0;
  #frames = 0;
  #partial = new Int16Array(FRAME_SAMPLES);
  #partialLen = 0;
  /** nextFrame() calls that found only the partial frame since it last grew. */
  #partialAge = 0;
  #playing = false;
  /** Ticks the queued audio has waited while not playing. */
  #waited = 0;
  #tick = 0;
  /** Tick at which the queue last ran dry while playing (−∞: not since audio last came). */
  #dryAt = Number.NEGATIVE_INFINITY;
  #sinceUnderrun = 0;
  #played = 0;
  #marks = 0;
  #cleared = 0;
  #dropped = 0;
  #underruns = 0;

  constructor(options: TalkBackQueueOptions) {
    this.#maxFrames = Math.max(0, options.maxFrames);
    this.#onMark = options.onMark;
    this.#minLead = Math.max(0, options.minLead ?? 1);
    this.#maxLead = Math.max(this.#minLead, options.maxLead ?? 10);
    this.#lead = this.#minLead;
  }

  get stats(): TalkBackStats {
    return {
      played: this.#played,
      marks: this.#marks,
      cleared: this.#cleared,
      playbackDropped: this.#dropped,
      queuedPlayback: this.#frames,
      underruns: this.#underruns,
      leadMs: this.#lead * FRAME_MS,
    };
  }

  /** Server media: µ-law of any length. */
  enqueueAudio(ulaw: Uint8Array): void {
    if (ulaw.length === 0) return;
    if (this.#tick - this.#dryAt <= UNDERRUN_TICKS) {
      // More audio right after the queue ran dry: it was late, not finished.
      this.#underruns++;
      this.#sinceUnderrun = 0;
      this.#lead = Math.min(this.#maxLead, this.#lead + 1);
    }
    this.#dryAt = Number.NEGATIVE_INFINITY;
    let i = 0;
    while (i < ulaw.length) {
      const n = Math.min(FRAME_SAMPLES - this.#partialLen, ulaw.length - i);
      decodeUlaw(ulaw.subarray(i, i + n), this.#partial, this.#partialLen);
      this.#partialLen += n;
      i += n;
      if (this.#partialLen === FRAME_SAMPLES) this.#completePartial();
    }
    this.#partialAge = 0;
  }

  enqueueMark(name: string): void {
    // The audio before the mark must play in full, so a partial frame is closed with silence.
    if (this.#partialLen > 0) this.#completePartial();
    this.#queue.push({ mark: name });
    this.#echoHeadMarks();
  }

  /** Empties the queue; pending marks are echoed (Twilio's clear). */
  clear(): void {
    let discarded = this.#partialLen > 0 ? 1 : 0;
    const marks: string[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const entry = this.#queue[i]!;
      if (entry instanceof Int16Array) discarded++;
      else marks.push(entry.mark);
    }
    this.#cleared += discarded;
    this.#queue = [];
    this.#head = 0;
    this.#frames = 0;
    this.#partial = new Int16Array(FRAME_SAMPLES);
    this.#partialLen = 0;
    this.#partialAge = 0;
    this.#playing = false;
    this.#waited = 0;
    // A cleared queue is not an underrun: the server wanted it empty.
    this.#dryAt = Number.NEGATIVE_INFINITY;
    for (const name of marks) this.#echo(name);
  }

  /** One tick: the next frame to play, or undefined (silence). */
  nextFrame(): Int16Array | undefined {
    this.#tick++;
    if (!this.#playing) {
      if (this.#frames === 0 && this.#partialLen === 0) {
        this.#echoHeadMarks();
        return undefined;
      }
      this.#waited++;
      if (this.#waited <= this.#lead && this.#frames <= this.#lead) {
        this.#echoHeadMarks();
        return undefined;
      }
      this.#playing = true;
    }
    let frame: Int16Array | undefined;
    const head = this.#queue[this.#head];
    if (head instanceof Int16Array) {
      this.#head++;
      this.#frames--;
      frame = head;
    } else if (head === undefined && this.#partialLen > 0) {
      // A stalled tail: play it padded rather than hold it back forever.
      if (this.#partialAge >= 1) {
        frame = this.#partial;
        this.#partial = new Int16Array(FRAME_SAMPLES);
        this.#partialLen = 0;
        this.#partialAge = 0;
      } else {
        this.#partialAge++;
      }
    } else if (head === undefined) {
      // Ran dry: wait for the lead again before the next audio.
      this.#playing = false;
      this.#waited = 0;
      this.#dryAt = this.#tick;
    }
    if (frame !== undefined) {
      this.#played++;
      if (++this.#sinceUnderrun >= SHRINK_AFTER) {
        this.#sinceUnderrun = 0;
        this.#lead = Math.max(this.#minLead, this.#lead - 1);
      }
    }
    this.#echoHeadMarks();
    return frame;
  }

  /** Moves the partial frame (silence-padded: the array starts zeroed) to the queue. */
  #completePartial(): void {
    const frame = this.#partial;
    this.#partial = new Int16Array(FRAME_SAMPLES);
    this.#partialLen = 0;
    this.#partialAge = 0;
    if (this.#frames >= this.#maxFrames) {
      this.#dropped++;
      return;
    }
    this.#queue.push(frame);
    this.#frames++;
  }

  /** Echoes the marks that no longer have audio in front of them. */
  #echoHeadMarks(): void {
    for (;;) {
      const head = this.#queue[this.#head];
      if (head === undefined || head instanceof Int16Array) break;
      this.#head++;
      this.#echo(head.mark);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #echo(name: string): void {
    this.#marks++;
    this.#onMark(name);
  }
}
