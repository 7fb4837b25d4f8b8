/**
 * One call's frames to all of its sinks. The media session has two outputs
 * (see MediaSession): the recording's timeline ('frame', about 1 s behind,
 * every packet at its place) goes to the recording only (`writeRecording`);
 * the live stream ('liveFrame', one frame every 20 ms at an adaptive delay)
 * goes to the live sinks, then the user's listeners (`writeLive`). `write`
 * gives one frame to all of them, recording first, for a caller with a
 * single stream of frames. A sink that throws is reported once and skipped
 * for that frame; the others still get it. Closing closes the recording
 * first and synchronously (its header is final before the sidecar is
 * written), then the rest together.
 */
import type { FrameInfo, FrameSink } from '../media/frame-sink.js';

export class FrameFanOut implements FrameSink {
  #recording: FrameSink | undefined;
  readonly #live: FrameSink[] = [];
  readonly #onError: (error: unknown) => void;
  readonly #listeners: ((frame: Int16Array, info: FrameInfo) => void) | undefined;
  readonly #failed = new Set<FrameSink>();
  #closed = false;

  /** `listeners` runs last for every frame (the call's `frame` event: user code). */
  constructor(onError: (error: unknown) => void, listeners?: (frame: Int16Array, info: FrameInfo) => void) {
    this.#onError = onError;
    this.#listeners = listeners;
  }

  /** The WAV: written first, closed first. */
  setRecording(sink: FrameSink): void {
    this.#recording = sink;
  }

  add(sink: FrameSink): void {
    if (this.#closed) {
      void Promise.resolve(sink.close()).catch(this.#onError);
      return;
    }
    this.#live.push(sink);
  }

  /** One frame to every sink: the recording first, then the live sinks, then listeners. */
  write(frame: Int16Array, info: FrameInfo): void {
    this.writeRecording(frame, info);
    this.writeLive(frame, info);
  }

  /** A frame of the recording's timeline (MediaSession 'frame'): the WAV only. */
  writeRecording(frame: Int16Array, info: FrameInfo): void {
    if (this.#recording) this.#deliver(this.#recording, frame, info);
  }

  /** A frame of the live stream (MediaSession 'liveFrame'): the live sinks, then listeners. */
  writeLive(frame: Int16Array, info: FrameInfo): void {
    for (const sink of this.#live) this.#deliver(sink, frame, info);
    this.#listeners?.(frame, info);
  }

  stats(): Record<string, number> {
    const all = this.#recording ? [this.#recording, ...this.#live] : this.#live;
    return Object.assign({}, ...all.map((s) => s.stats?.() ?? {}));
  }

  /** Closes the recording now, then returns the live sinks' (possibly slow) closing. */
  closeRecording(): void {
    try {
      this.#recording?.close();
    } catch (err) {
      this.#onError(err);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.closeRecording();
    const results = await Promise.allSettled(this.#live.map(async (sink) => sink.close()));
    for (const r of results) if (r.status === 'rejected') this.#onError(r.reason);
  }

  #deliver(sink: FrameSink, frame: Int16Array, info: FrameInfo): void {
    try {
      sink.write(frame, info);
    } catch (err) {
      if (this.#failed.has(sink)) return;
      this.#failed.add(sink);
      this.#onError(err);
    }
  }
}
