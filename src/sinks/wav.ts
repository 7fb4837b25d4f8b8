/**
 * Crash-safe, progressive WAV writer (16-bit little-endian PCM).
 *
 * The file is always a valid WAV: the header is written first with sizes 0,
 * and after every batch of audio has landed on disk the header is rewritten
 * with the sizes of exactly what is now on disk. A SIGKILL or crash therefore
 * leaves a playable file holding everything up to the last batch (~1 s).
 *
 * The synchronous fs API (openSync / writeSync with explicit positions) is used
 * on purpose: each call writes one ~16 KB batch and one 44-byte header rewrite
 * per second of audio, ordering is trivially "data, then header", and a crash
 * can never leave an async write half-queued behind a header that already
 * claims its bytes. Nothing is fsynced: we protect against process death, not
 * power loss, and fsync would stall the event loop.
 */
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { describeError, ErrorCodes, SoftphoneError } from '../errors.js';

export interface WavFormat {
  sampleRate: number;
  channels: number;
}

export interface WavWriterOptions {
  /** Samples (all channels counted) buffered before a write + header patch; default 1 s of audio. */
  flushSamples?: number;
  /** File mode for the new file (the process umask still applies); default 0o644. */
  mode?: number;
}

export const WAV_HEADER_BYTES = 44;
const BITS_PER_SAMPLE = 16;
const BYTES_PER_SAMPLE = BITS_PER_SAMPLE / 8;
/** RIFF sizes are unsigned 32-bit and the RIFF size counts 36 header bytes plus the data. */
const MAX_RIFF_SIZE = 0xffff_ffff;
const DEFAULT_FORMAT: WavFormat = { sampleRate: 8000, channels: 1 };
const HOST_IS_LE = endianness() === 'LE';

export class WavWriter {
  readonly path: string;
  readonly format: Readonly<WavFormat>;

  #fd: number | undefined;
  readonly #blockAlign: number;
  readonly #maxDataBytes: number;
  /** Staging buffer: the only audio ever held in memory (flushSamples samples). */
  readonly #pending: Buffer;
  #pendingBytes = 0;
  /** Bytes of audio on disk and covered by the header. */
  #dataBytes = 0;
  #samplesAccepted = 0;
  readonly #header = Buffer.alloc(WAV_HEADER_BYTES);
  #error: SoftphoneError | undefined;
  #closed = false;

  private constructor(path: string, fd: number, format: WavFormat, flushSamples: number) {
    this.path = path;
    this.format = Object.freeze({ ...format });
    this.#fd = fd;
    this.#blockAlign = format.channels * BYTES_PER_SAMPLE;
    // Largest data size whose RIFF size still fits in 32 bits, whole sample frames only.
    const maxData = MAX_RIFF_SIZE - (WAV_HEADER_BYTES - 8);
    this.#maxDataBytes = maxData - (maxData % this.#blockAlign);
    this.#pending = Buffer.alloc(flushSamples * BYTES_PER_SAMPLE);
    fillHeader(this.#header, format);
  }

  /**
   * Creates `path` exclusively (never overwrites, never follows a symlink there)
   * and writes a header with sizes 0. Throws FILE_EXISTS if the path exists,
   * SINK_WRITE_FAILED for any other failure to create it.
   */
  static open(path: string, format: Partial<WavFormat> = {}, options: WavWriterOptions = {}): WavWriter {
    const fmt: WavFormat = { ...DEFAULT_FORMAT, ...stripUndefined(format) };
    if (!Number.isInteger(fmt.sampleRate) || fmt.sampleRate < 1 || fmt.sampleRate > 0xffff_ffff / 8) {
      throw new RangeError(`WAV sample rate must be a positive integer, got ${fmt.sampleRate}`);
    }
    if (!Number.isInteger(fmt.channels) || fmt.channels < 1 || fmt.channels > 64) {
      throw new RangeError(`WAV channel count must be an integer in 1..64, got ${fmt.channels}`);
    }
    let flushSamples = options.flushSamples ?? fmt.sampleRate * fmt.channels;
    if (!Number.isInteger(flushSamples) || flushSamples < 1) {
      throw new RangeError(`flushSamples must be a positive integer, got ${flushSamples}`);
    }
    // Batches hold whole sample frames so the size on disk is always a whole number of frames.
    flushSamples = Math.max(fmt.channels, flushSamples - (flushSamples % fmt.channels));
    const mode = options.mode ?? 0o644;

    let fd: number;
    try {
      // 'wx' = O_CREAT | O_EXCL: fails on any existing entry, dangling symlinks included.
      fd = openSync(path, 'wx', mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new SoftphoneError(ErrorCodes.FILE_EXISTS, `Recording file already exists: ${path}`, {
          cause: err,
          details: { path },
        });
      }
      throw sinkError(path, 'create', err);
    }
    const writer = new WavWriter(path, fd, fmt, flushSamples);
    try {
      writeFully(fd, writer.#header, 0, WAV_HEADER_BYTES, 0);
    } catch (err) {
      // A file we created but could not even give a header is useless; do not leave it behind.
      safeClose(fd);
      try {
        unlinkSync(path);
      } catch {
        // Best effort: the create error below is what matters.
      }
      throw sinkError(path, 'write header', err);
    }
    return writer;
  }

  /** Samples accepted so far (all channels counted). After a write error: what reached the disk. */
  get samplesWritten(): number {
    return this.#samplesAccepted;
  }

  get durationMs(): number {
    return (this.#samplesAccepted / this.format.channels / this.format.sampleRate) * 1000;
  }

  /** The first I/O error; once set, audio is dropped and nothing more is written. */
  get error(): SoftphoneError | undefined {
    return this.#error;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Appends interleaved samples. Never throws for I/O errors (see `error`);
   * throws CLOSED after close() and RangeError for a partial sample frame.
   */
  write(samples: Int16Array): void {
    if (this.#closed) {
      throw new SoftphoneError(ErrorCodes.CLOSED, `WAV writer is closed: ${this.path}`, {
        details: { path: this.path },
      });
    }
    if (samples.length % this.format.channels !== 0) {
      throw new RangeError(
        `WAV write of ${samples.length} samples is not a whole number of ${this.format.channels}-channel frames`,
      );
    }
    if (this.#error) return;
    const capacity = this.#pending.length / BYTES_PER_SAMPLE;
    let offset = 0;
    while (offset < samples.length) {
      const room = capacity - this.#pendingBytes / BYTES_PER_SAMPLE;
      const n = Math.min(room, samples.length - offset);
      copyLE(samples, offset, n, this.#pending, this.#pendingBytes);
      this.#pendingBytes += n * BYTES_PER_SAMPLE;
      this.#samplesAccepted += n;
      offset += n;
      if (this.#pendingBytes === this.#pending.length) {
        this.#writePending();
        if (this.#error) return;
      }
    }
  }

  /** Writes any buffered samples now and patches the header. No-op once closed or failed. */
  flush(): void {
    if (this.#closed || this.#error) return;
    this.#writePending();
  }

  /** Flushes, patches the header and closes the file. Idempotent; never throws for I/O errors. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    if (this.#fd !== undefined) {
      const fd = this.#fd;
      this.#fd = undefined;
      try {
        closeSync(fd);
      } catch (err) {
        this.#fail('close', err);
      }
    }
  }

  #writePending(): void {
    const fd = this.#fd;
    const pending = this.#pendingBytes;
    if (fd === undefined || pending === 0) return;
    this.#pendingBytes = 0;
    const length = Math.min(pending, this.#maxDataBytes - this.#dataBytes);
    let written = 0;
    let failure: { op: string; err: unknown } | undefined;
    try {
      // Data first, header second: the header must never claim bytes that are not on disk.
      written = writeFully(fd, this.#pending, 0, length, WAV_HEADER_BYTES + this.#dataBytes);
    } catch (err) {
      written = (err as PartialWriteError).bytesWritten ?? 0;
      failure = { op: 'write', err };
    }
    if (!failure && length < pending) {
      failure = { op: 'write', err: new Error('WAV size limit reached (RIFF sizes are 32-bit)') };
    }
    // Count only whole sample frames: a torn frame at the end stays outside the header.
    this.#dataBytes += written - (written % this.#blockAlign);
    try {
      this.#header.writeUInt32LE(this.#dataBytes + WAV_HEADER_BYTES - 8, 4);
      this.#header.writeUInt32LE(this.#dataBytes, 40);
      // One positioned write of the whole header: both sizes change in one syscall, so a
      // kill can never leave the RIFF size and the data size disagreeing.
      writeFully(fd, this.#header, 0, WAV_HEADER_BYTES, 0);
    } catch (err) {
      failure ??= { op: 'patch header', err };
    }
    if (failure) this.#fail(failure.op, failure.err);
  }

  #fail(op: string, err: unknown): void {
    // Audio that never reached the disk is no longer "written".
    this.#samplesAccepted = this.#dataBytes / BYTES_PER_SAMPLE;
    this.#pendingBytes = 0;
    this.#error ??= sinkError(this.path, op, err);
  }
}

interface PartialWriteError extends Error {
  bytesWritten?: number;
}

/**
 * writeSync may write less than asked (e.g. right up to RLIMIT_FSIZE or a full
 * disk); loop until done. On failure the error carries how much did land.
 */
function writeFully(fd: number, buf: Buffer, offset: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = writeSync(fd, buf, offset + done, length - done, position + done);
    } catch (err) {
      (err as PartialWriteError).bytesWritten = done;
      throw err;
    }
    if (n <= 0) {
      // A regular file never legitimately accepts zero bytes; do not spin.
      const err: PartialWriteError = new Error('write accepted no bytes');
      err.bytesWritten = done;
      throw err;
    }
    done += n;
  }
  return done;
}

function copyLE(src: Int16Array, start: number, count: number, dst: Buffer, dstOffset: number): void {
  if (HOST_IS_LE) {
    const bytes = Buffer.from(
      src.buffer,
      src.byteOffset + start * BYTES_PER_SAMPLE,
      count * BYTES_PER_SAMPLE,
    );
    bytes.copy(dst, dstOffset);
    return;
  }
  // WAV is little-endian whatever the host is.
  for (let i = 0; i < count; i++) {
    dst.writeInt16LE(src[start + i]!, dstOffset + i * BYTES_PER_SAMPLE);
  }
}

function fillHeader(h: Buffer, format: WavFormat): void {
  const blockAlign = format.channels * BYTES_PER_SAMPLE;
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(WAV_HEADER_BYTES - 8, 4); // RIFF size with no data yet
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16); // fmt chunk size for PCM
  h.writeUInt16LE(1, 20); // WAVE_FORMAT_PCM
  h.writeUInt16LE(format.channels, 22);
  h.writeUInt32LE(format.sampleRate, 24);
  h.writeUInt32LE(format.sampleRate * blockAlign, 28); // byte rate
  h.writeUInt16LE(blockAlign, 32);
  h.writeUInt16LE(BITS_PER_SAMPLE, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(0, 40);
}

function sinkError(path: string, op: string, err: unknown): SoftphoneError {
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  return new SoftphoneError(
    ErrorCodes.SINK_WRITE_FAILED,
    `WAV ${op} failed for ${path}: ${describeError(err)}`,
    {
      cause: err,
      details: { path, op, ...(errno ? { errno } : {}) },
    },
  );
}

function safeClose(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already failing; the original error is the one to report.
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
