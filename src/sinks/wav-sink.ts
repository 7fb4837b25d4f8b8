/**
 * The recording as a FrameSink: frames into a WavWriter. A write failure
 * (disk full, file gone) is reported once through `onError`; the writer
 * then drops audio and the call goes on.
 */
import type { SoftphoneError } from '../errors.js';
import type { FrameInfo, FrameSink } from '../media/frame-sink.js';
import type { WavWriter } from './wav.js';

/** What a WavSink needs of a writer (WavWriter, or a stand-in in tests). */
export type WavTarget = Pick<WavWriter, 'write' | 'close' | 'closed' | 'error'>;

export class WavSink implements FrameSink {
  readonly #wav: WavTarget;
  readonly #onError: ((error: SoftphoneError) => void) | undefined;
  #reported = false;

  constructor(wav: WavTarget, onError?: (error: SoftphoneError) => void) {
    this.#wav = wav;
    this.#onError = onError;
  }

  write(frame: Int16Array, _info?: FrameInfo): void {
    if (this.#wav.closed) return;
    this.#wav.write(frame);
    this.#check();
  }

  close(): void {
    this.#wav.close();
    this.#check();
  }

  #check(): void {
    const error = this.#wav.error;
    if (error === undefined || this.#reported) return;
    this.#reported = true;
    this.#onError?.(error);
  }
}
