/**
 * The port between the media path and whatever consumes a call's audio: the
 * WAV recording, the `--pipe` engine, the `--stream-url` media stream, the
 * user's `frame` listeners. Declared here, in media/, so media never
 * imports sinks; the call's fan-out (call/frame-fanout.ts) delivers each
 * frame to every sink, the WAV first.
 */

export interface FrameInfo {
  /** Timeline position of the frame's first sample (samples since the answer). */
  position: number;
  /** False when nothing arrived for any part of this frame (silence fill). */
  audio: boolean;
  /**
   * Live stream only: silence that is not part of the recording's timeline,
   * played while audio was overdue ('concealment') or to lengthen a pause
   * ('stretch'); `position` is then that of the frame it was played before.
   */
  filler?: 'concealment' | 'stretch';
}

export interface FrameSink {
  /**
   * Takes one frame (20 ms, the last of a call may be shorter). Must not
   * block and must not throw for I/O: what it cannot take it drops and
   * counts. The array is reused after the call: copy it to keep it.
   */
  write(frame: Int16Array, info: FrameInfo): void;
  /** Ends the sink (flush, EOF, close); may take time (an engine's grace). Idempotent. */
  close(): void | Promise<void>;
  /** Counters merged into the call's stats and sidecar, e.g. `{ engineFramesDropped: 3 }`. */
  stats?(): Record<string, number>;
}
