/**
 * The JSON sidecar written beside each recording: who, when, how long, which
 * codec, how the media path behaved, and the DTMF digits.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { describeError, ErrorCodes, SoftphoneError } from '../errors.js';

export interface PacketStats {
  received: number;
  lost: number;
  late: number;
  duplicate: number;
  reordered: number;
  foreignSource: number;
  invalid: number;
}

export interface DtmfRecord {
  digit: string;
  /** Milliseconds since the call started. */
  atMs: number;
  source: 'rfc4733' | 'info';
}

/** An intent a bot sent (SIP INFO, application/json) and what came of it. */
export interface IntentRecord {
  /** Milliseconds since the call was answered. */
  atMs: number;
  /** Where it came from: the engine's stdout, the media stream, or the library. */
  source: 'pipe' | 'stream' | 'api';
  final: boolean;
  /** The INFO's final status (408 when none came); null when it could not be sent. */
  status: number | null;
  reason: string;
}

/** What `serve` adds: the bot-partner side of the call. */
export interface ServeSidecar {
  /** The Request-URI user part the INVITE was for. */
  did: string;
  /** The bot that answered (its name in bots.json). */
  bot: string;
  intents: IntentRecord[];
}

export interface CallSidecar {
  callId: string;
  /** inbound (we answered) or outbound (we called). */
  direction?: 'inbound' | 'outbound';
  from: string;
  to: string;
  /** ISO 8601 */
  startedAt: string;
  /** ISO 8601 */
  endedAt: string;
  durationMs: number;
  codec: string | null;
  /** The WAV's sample rate (8000, or 16000 for a wideband call); null when the media never started. */
  sampleRate: number | null;
  wav: string | null;
  /** RingCentral's ids for the call (P-Rc-Api-Ids), to join with its REST API and webhooks. */
  ringCentral?: { partyId?: string; sessionId?: string };
  /** The final SIP status of an outbound call that was never established. */
  status?: number;
  /** Present when the recording failed: why (the WAV was not created, or a write failed). */
  recordingError?: { code: string; message: string };
  endReason: string;
  stats: PacketStats & Record<string, number>;
  dtmf: DtmfRecord[];
  /** serve: the DID, the bot and the intents it sent. */
  serve?: ServeSidecar;
}

const STAT_KEYS = ['received', 'lost', 'late', 'duplicate', 'reordered', 'foreignSource', 'invalid'] as const;

/**
 * Writes the sidecar atomically: a temp file in the same directory (so rename
 * cannot cross filesystems), fsynced once, then renamed over `path`. A reader
 * sees the old file or the complete new one, never a torn JSON. Mode 0644
 * (the process umask still applies). Throws SINK_WRITE_FAILED on failure and
 * leaves no temp file behind. Blocks for the fsync (milliseconds, more on a
 * busy disk): for a process about to exit; a call that ends while others go
 * on uses writeSidecarAsync.
 */
export function writeSidecar(path: string, data: CallSidecar): void {
  const text = sidecarText(data);
  const tmp = tempPath(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    writeFileSync(fd, text, 'utf8');
    // One fsync per call: without it a power cut after rename can leave an empty sidecar.
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // Reporting the original failure matters more.
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // Never created, or already gone.
    }
    throw sidecarError(path, err);
  }
}

/**
 * writeSidecar's steps on libuv's thread pool: the same file, the same
 * guarantees (temp file, one fsync, rename; no temp file left on failure;
 * rejects with SINK_WRITE_FAILED), and the event loop never waits for the
 * disk: a SIP message that arrives while a call ends is answered at once.
 */
export async function writeSidecarAsync(path: string, data: CallSidecar): Promise<void> {
  const text = sidecarText(data);
  const tmp = tempPath(path);
  let file: FileHandle | undefined;
  try {
    file = await open(tmp, 'wx', 0o644);
    await file.writeFile(text, 'utf8');
    await file.sync();
    await file.close();
    file = undefined;
    await rename(tmp, path);
  } catch (err) {
    await file?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw sidecarError(path, err);
  }
}

function sidecarText(data: CallSidecar): string {
  return `${JSON.stringify(ordered(data), null, 2)}\n`;
}

/** Hidden and unmistakably temporary, unique per process and attempt. */
function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

function sidecarError(path: string, err: unknown): SoftphoneError {
  const errno = (err as NodeJS.ErrnoException).code;
  return new SoftphoneError(
    ErrorCodes.SINK_WRITE_FAILED,
    `Sidecar write failed for ${path}: ${describeError(err)}`,
    {
      cause: err,
      details: { path, ...(errno ? { errno } : {}) },
    },
  );
}

/** A fixed key order, so sidecars diff cleanly whatever order the caller built the object in. */
function ordered(d: CallSidecar): CallSidecar {
  // Null prototype: an extra counter named e.g. "toString" or "__proto__" stays a plain key.
  const stats: Record<string, number> = Object.create(null);
  for (const k of STAT_KEYS) stats[k] = d.stats[k];
  for (const [k, v] of Object.entries(d.stats)) if (!Object.hasOwn(stats, k)) stats[k] = v;
  return {
    callId: d.callId,
    ...(d.direction && { direction: d.direction }),
    from: d.from,
    to: d.to,
    startedAt: d.startedAt,
    endedAt: d.endedAt,
    durationMs: d.durationMs,
    codec: d.codec,
    sampleRate: d.sampleRate,
    wav: d.wav,
    ...(d.ringCentral && { ringCentral: { ...d.ringCentral } }),
    ...(d.recordingError && {
      recordingError: { code: d.recordingError.code, message: d.recordingError.message },
    }),
    endReason: d.endReason,
    ...(d.status !== undefined && { status: d.status }),
    stats: stats as PacketStats & Record<string, number>,
    dtmf: d.dtmf.map((e) => ({ digit: e.digit, atMs: e.atMs, source: e.source })),
    ...(d.serve && {
      serve: {
        did: d.serve.did,
        bot: d.serve.bot,
        intents: d.serve.intents.map((i) => ({
          atMs: i.atMs,
          source: i.source,
          final: i.final,
          status: i.status,
          reason: i.reason,
        })),
      },
    }),
  };
}
