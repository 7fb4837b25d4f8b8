/**
 * Opus (RFC 6716) as RTP carries it (RFC 7587): a decoder with packet loss
 * concealment and in-band FEC, and an encoder, at the call's working rate
 * (8 or 16 kHz), mono.
 *
 * Which library, and why (Node 20 on the 2-core project machine; µs per
 * 20 ms frame at 16 kHz, encode at complexity 5; all MIT, libopus BSD-3):
 *
 *   package               install, no compiler/download   enc  FEC  20 ms PLC  bad packet   dec / enc µs
 *   @evan/opus 1.0.3      yes (.node + WASM inside)        yes  no*  no*        throws       11 / 133 native
 *     its WASM, libopus C API called directly (ours)       yes  yes  yes        error code   13 / 165
 *   opusscript 0.1.1      yes (WASM, libopus 1.4)          yes  no   no: 180 ms throws       14 / 178
 *   opus-decoder 0.7.12   yes (WASM)                       no   no   no: 120 ms stderr line  17 (float)
 *   opus-encdec 0.1.1     yes (WASM, 2020 browser build)   yes  yes  yes        error code   13 (float)
 *   @discordjs/opus 0.10  no: fetches a binary from GitHub at install, else node-gyp compiles
 *   audify 1.10           no: prebuild-install fetches from GitHub, else cmake
 *   (* the JS wrapper passes decode_fec = 0 and a 120 ms frame size; libopus decodes to
 *   8/12/16/24/48 kHz in all of them, opus-decoder's wrapper included)
 *
 * No JavaScript wrapper exposes `decode_fec` or a one-frame PLC, and two of
 * them throw or print to stderr on a bad packet (a remote could flood our
 * logs). @evan/opus ships a standalone WASM build of libopus whose exports
 * are libopus's own C API (opus_decode with frame_size and decode_fec,
 * opus_encode, non-variadic ctl get/set), needs no JS glue and runs no
 * install script; it is also what RingCentral's own softphone SDK uses. So
 * we load that .wasm (a public subpath of the package) and call libopus
 * directly. Its weak points: one maintainer, binaries not rebuildable from
 * its repository, the libopus version unstated (the native one bundles
 * audiopus_sys's copy); hence the exact version pin. opus-encdec is the
 * fallback with the same capabilities (raw exports, float API).
 *
 * The WASM is compiled once per process: `await loadOpus()` before the first
 * call uses Opus (the media path awaits it once at start); after that
 * creating decoders and encoders is synchronous. One instance (one linear
 * memory) serves every call: each decoder/encoder owns only its libopus state
 * there, and all of them share one input and one output scratch buffer, which
 * is safe because every call into libopus copies in, runs and copies out
 * before returning (JavaScript never re-enters).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { ErrorCodes, SoftphoneError } from '../errors.js';
import type { DecodeError, DecodeResult, FrameDecoder, FrameEncoder } from './codec.js';

// ---------------------------------------------------------------------------
// libopus constants (include/opus_defines.h)

const OPUS_APPLICATION_VOIP = 2048;
const OPUS_SET_BITRATE = 4002;
const OPUS_SET_MAX_BANDWIDTH = 4004;
const OPUS_SET_COMPLEXITY = 4010;
const OPUS_SET_INBAND_FEC = 4012;
const OPUS_SET_PACKET_LOSS_PERC = 4014;
const OPUS_SET_DTX = 4016;
const OPUS_SET_SIGNAL = 4024;
const OPUS_RESET_STATE = 4028;
const OPUS_SIGNAL_VOICE = 3001;
const OPUS_BANDWIDTH_NARROWBAND = 1101;
const OPUS_BANDWIDTH_MEDIUMBAND = 1102;
const OPUS_BANDWIDTH_WIDEBAND = 1103;
const OPUS_BANDWIDTH_SUPERWIDEBAND = 1104;
const OPUS_BANDWIDTH_FULLBAND = 1105;

/** Sample rates libopus decodes to and encodes from (RFC 6716 2: 8, 12, 16, 24, 48 kHz). */
export const OPUS_RATES: readonly number[] = [8000, 12000, 16000, 24000, 48000];
/**
 * Largest payload we hand to libopus. RFC 6716 3.4 [R5] bounds a packet at
 * 120 ms of 1275-byte frames, but an RTP payload comes in one UDP datagram
 * (RFC 7587 4.2: no fragmentation), so nothing real is bigger than this.
 */
export const MAX_OPUS_PAYLOAD = 4000;
/** RFC 6716 3.2.5 [R5]: a packet holds at most 120 ms of audio. */
const MAX_PACKET_MS = 120;
/** Largest Opus frame the encoder emits (RFC 6716 3.2.1: 1275 bytes), times three for 60 ms code-3 packets. */
const MAX_ENCODED_BYTES = 1275 * 3 + 7;

// ---------------------------------------------------------------------------
// The WASM module

/** The slice of the WebAssembly JS API we use (the project's lib settings carry no DOM/WebAssembly types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: object): Promise<{ exports: Record<string, unknown> }>;
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface OpusExports {
  memory: WasmMemory;
  malloc(size: number): number;
  free(ptr: number): void;
  opus_decoder_get_size(channels: number): number;
  opus_decoder_init(st: number, rate: number, channels: number): number;
  opus_decode(st: number, data: number, len: number, pcm: number, frameSize: number, fec: number): number;
  opus_decoder_ctl_set(st: number, request: number, value: number): number;
  opus_decoder_ctl_get(st: number, request: number): number;
  opus_encoder_get_size(channels: number): number;
  opus_encoder_init(st: number, rate: number, channels: number, application: number): number;
  opus_encode(st: number, pcm: number, frameSize: number, data: number, maxBytes: number): number;
  opus_encoder_ctl_set(st: number, request: number, value: number): number;
  opus_encoder_ctl_get(st: number, request: number): number;
  _initialize?: () => void;
}

const REQUIRED_EXPORTS = [
  'memory',
  'malloc',
  'free',
  'opus_decoder_get_size',
  'opus_decoder_init',
  'opus_decode',
  'opus_decoder_ctl_set',
  'opus_decoder_ctl_get',
  'opus_encoder_get_size',
  'opus_encoder_init',
  'opus_encode',
  'opus_encoder_ctl_set',
  'opus_encoder_ctl_get',
] as const;

class OpusLib {
  readonly x: OpusExports;
  /** Scratch for one encoded packet (decoder input, encoder output). */
  readonly bytesPtr: number;
  /** Scratch for 120 ms of 48 kHz mono PCM (decoder output, encoder input). */
  readonly pcmPtr: number;
  readonly pcmCapacity = (48000 * MAX_PACKET_MS) / 1000;
  #heap8: Uint8Array;
  #heap16: Int16Array;

  constructor(exports: OpusExports) {
    this.x = exports;
    exports._initialize?.();
    this.bytesPtr = this.#malloc(MAX_OPUS_PAYLOAD);
    this.pcmPtr = this.#malloc(this.pcmCapacity * 2);
    this.#heap8 = new Uint8Array(exports.memory.buffer);
    this.#heap16 = new Int16Array(exports.memory.buffer);
  }

  /** Views over the linear memory, renewed after it grew (growth detaches the old buffer). */
  get heap8(): Uint8Array {
    if (this.#heap8.buffer !== this.x.memory.buffer) this.#renew();
    return this.#heap8;
  }

  get heap16(): Int16Array {
    if (this.#heap16.buffer !== this.x.memory.buffer) this.#renew();
    return this.#heap16;
  }

  #renew(): void {
    this.#heap8 = new Uint8Array(this.x.memory.buffer);
    this.#heap16 = new Int16Array(this.x.memory.buffer);
  }

  #malloc(size: number): number {
    const ptr = this.x.malloc(size);
    if (ptr === 0) throw codecError('the Opus library is out of memory');
    return ptr;
  }

  alloc(size: number): number {
    return this.#malloc(size);
  }
}

let lib: OpusLib | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads libopus (WASM, from the @evan/opus package) once per process.
 * Idempotent; concurrent callers share one load. Rejects with CODEC_FAILED
 * when the module is missing or is not the libopus build we expect.
 */
export function loadOpus(): Promise<void> {
  loading ??= instantiate().then(
    (l) => {
      lib = l;
    },
    (err: unknown) => {
      loading = undefined; // a later call may try again (e.g. after the package is installed)
      throw err instanceof SoftphoneError ? err : codecError('cannot load the Opus library', err);
    },
  );
  return loading;
}

/** True once loadOpus() has resolved: decoders and encoders can be created synchronously. */
export function opusLoaded(): boolean {
  return lib !== undefined;
}

async function instantiate(): Promise<OpusLib> {
  const require = createRequire(import.meta.url);
  let module: object | undefined;
  let firstError: unknown;
  // The SIMD build is ~15 % faster; the plain one is the fallback for a runtime without wasm SIMD.
  for (const file of ['@evan/opus/wasm/simd.wasm', '@evan/opus/wasm/opus.wasm']) {
    try {
      module = await wasmApi.compile(await readFile(require.resolve(file)));
      break;
    } catch (err) {
      firstError ??= err;
    }
  }
  if (module === undefined) throw codecError('cannot load the Opus library (@evan/opus)', firstError);
  let memory: WasmMemory | undefined;
  const instance = await wasmApi.instantiate(module, {
    // Emscripten's standalone runtime imports a few WASI calls; libopus itself
    // never does I/O. fd_write reports everything written so a libc write loop ends.
    wasi_snapshot_preview1: {
      fd_write: (_fd: number, iovs: number, count: number, written: number) => {
        if (memory === undefined) return 0;
        const view = new DataView(memory.buffer);
        let total = 0;
        for (let i = 0; i < count; i++) total += view.getUint32(iovs + i * 8 + 4, true);
        view.setUint32(written, total, true);
        return 0;
      },
      fd_seek: () => 0,
      fd_close: () => 0,
      proc_exit: (code: number) => {
        throw codecError(`the Opus library aborted (exit ${code})`);
      },
    },
    env: { emscripten_notify_memory_growth: () => {} },
  });
  const exports = instance.exports as unknown as OpusExports;
  const missing = REQUIRED_EXPORTS.filter((name) => !(name in instance.exports));
  if (missing.length > 0) {
    throw codecError(`the Opus library lacks ${missing.join(', ')} (an unexpected @evan/opus build)`);
  }
  memory = exports.memory;
  return new OpusLib(exports);
}

function requireLib(): OpusLib {
  if (lib === undefined) {
    throw codecError('the Opus library is not loaded: await loadOpus() before creating an Opus decoder');
  }
  return lib;
}

function codecError(message: string, cause?: unknown): SoftphoneError {
  return new SoftphoneError(ErrorCodes.CODEC_FAILED, message, cause === undefined ? {} : { cause });
}

// ---------------------------------------------------------------------------
// Packet inspection (RFC 6716 3.1-3.2), without decoding

export interface OpusPacketInfo {
  /** TOC configuration number, 0..31 (RFC 6716 3.1 Table 2). */
  config: number;
  mode: 'silk' | 'hybrid' | 'celt';
  /** Audio bandwidth the packet was coded with. */
  bandwidth: 'nb' | 'mb' | 'wb' | 'swb' | 'fb';
  stereo: boolean;
  frames: number;
  /** Duration of the whole packet in 48 kHz samples (RFC 7587 4.1: the RTP timestamp step at 48 kHz). */
  samples48k: number;
  /**
   * The packet carries in-band FEC (SILK LBRR) for the packet before it, so
   * a lost predecessor can be rebuilt from this one (RFC 6716 2.1.7, 4.2.4).
   */
  hasFec: boolean;
}

/** Frame duration per TOC config, in 48 kHz samples (RFC 6716 3.1 Table 2). */
function frameSamples48k(config: number): number {
  if (config < 12) return [480, 960, 1920, 2880][config & 3]!; // SILK: 10, 20, 40, 60 ms
  if (config < 16) return (config & 1) === 0 ? 480 : 960; // Hybrid: 10, 20 ms
  return [120, 240, 480, 960][config & 3]!; // CELT: 2.5, 5, 10, 20 ms
}

function bandwidthOf(config: number): OpusPacketInfo['bandwidth'] {
  if (config < 12) return (['nb', 'mb', 'wb'] as const)[config >> 2]!;
  if (config < 16) return config < 14 ? 'swb' : 'fb';
  return (['nb', 'wb', 'swb', 'fb'] as const)[(config - 16) >> 2]!;
}

/** RFC 6716 3.2.1: a frame length in one byte (0..251) or two (252..1275). */
function readFrameLength(p: Uint8Array, at: number): { length: number; bytes: number } | undefined {
  const b0 = p[at];
  if (b0 === undefined) return undefined;
  if (b0 < 252) return { length: b0, bytes: 1 };
  const b1 = p[at + 1];
  if (b1 === undefined) return undefined;
  return { length: b1 * 4 + b0, bytes: 2 };
}

/**
 * Reads the TOC and frame layout of an Opus packet (RFC 6716 3.1, 3.2) and
 * checks the rules a receiver must enforce ([R1]-[R7]); undefined for a
 * malformed packet. Cheap: no decoding.
 */
export function inspectOpusPacket(p: Uint8Array): OpusPacketInfo | undefined {
  const len = p.length;
  if (len < 1) return undefined; // [R1]: at least one byte
  const toc = p[0]!;
  const config = toc >> 3;
  const stereo = (toc & 0x04) !== 0;
  const code = toc & 0x03;
  const frameSize = frameSamples48k(config);
  let frames: number;
  let firstOffset = 1;
  let firstLength: number;
  if (code === 0) {
    frames = 1;
    firstLength = len - 1;
    if (firstLength > 1275) return undefined; // [R2]
  } else if (code === 1) {
    frames = 2;
    if ((len - 1) % 2 !== 0) return undefined; // [R3]
    firstLength = (len - 1) / 2;
    if (firstLength > 1275) return undefined;
  } else if (code === 2) {
    frames = 2;
    const first = readFrameLength(p, 1);
    if (first === undefined) return undefined; // [R4]
    firstOffset = 1 + first.bytes;
    firstLength = first.length;
    if (firstOffset + firstLength > len || len - firstOffset - firstLength > 1275) return undefined;
  } else {
    if (len < 2) return undefined; // [R6]
    const head = p[1]!;
    frames = head & 0x3f;
    const vbr = (head & 0x80) !== 0;
    const padded = (head & 0x40) !== 0;
    if (frames === 0 || frames * frameSize > 48 * MAX_PACKET_MS) return undefined; // [R5]
    let at = 2;
    let padding = 0;
    if (padded) {
      // RFC 6716 3.2.5: each 255 adds 254 bytes and another length byte follows.
      for (;;) {
        const b = p[at++];
        if (b === undefined) return undefined;
        padding += b === 255 ? 254 : b;
        if (b !== 255) break;
      }
    }
    if (vbr) {
      const lengths: number[] = [];
      for (let i = 0; i < frames - 1; i++) {
        const f = readFrameLength(p, at);
        if (f === undefined) return undefined;
        at += f.bytes;
        lengths.push(f.length);
      }
      const used = lengths.reduce((a, b) => a + b, 0);
      const last = len - at - padding - used;
      if (last < 0 || last > 1275) return undefined; // [R7]
      firstLength = frames === 1 ? last : lengths[0]!;
    } else {
      const body = len - at - padding;
      if (body < 0 || body % frames !== 0 || body / frames > 1275) return undefined; // [R6]
      firstLength = body / frames;
    }
    firstOffset = at;
  }
  const samples48k = frames * frameSize;
  if (samples48k > 48 * MAX_PACKET_MS) return undefined; // [R5]
  const mode = config < 12 ? 'silk' : config < 16 ? 'hybrid' : 'celt';
  let hasFec = false;
  if (mode !== 'celt' && firstLength > 0) {
    // The SILK layer opens with one VAD flag per 20 ms SILK frame and then the
    // LBRR flag, each a 1/2-probability symbol, so they are the leading bits
    // of the first frame's first byte (RFC 6716 4.2.3-4.2.4); for stereo the
    // side channel's flags follow.
    const silkFrames = frameSize > 960 ? frameSize / 960 : 1;
    const b = p[firstOffset]!;
    hasFec = ((b >> (7 - silkFrames)) & 1) === 1;
    if (stereo && !hasFec) hasFec = ((b >> (6 - 2 * silkFrames)) & 1) === 1;
  }
  return { config, mode, bandwidth: bandwidthOf(config), stereo, frames, samples48k, hasFec };
}

// ---------------------------------------------------------------------------
// Decoder

export type OpusDecodeResult = DecodeResult;

export class OpusDecoder implements FrameDecoder {
  readonly sampleRate: number;
  /** Samples per 2.5 ms, the unit of every Opus frame size (RFC 6716 2.1.4). */
  readonly #quantum: number;
  readonly #max: number;
  #lib: OpusLib;
  #state = 0;

  /** Needs loadOpus() to have resolved. Mono output: a stereo stream is downmixed (RFC 7587 3.4). */
  constructor(sampleRate: number) {
    if (!OPUS_RATES.includes(sampleRate)) throw new RangeError(`Opus cannot decode at ${sampleRate} Hz`);
    const l = requireLib();
    this.#lib = l;
    this.sampleRate = sampleRate;
    this.#quantum = sampleRate / 400;
    this.#max = (sampleRate * MAX_PACKET_MS) / 1000;
    const state = l.alloc(l.x.opus_decoder_get_size(1));
    const rc = l.x.opus_decoder_init(state, sampleRate, 1);
    if (rc !== 0) {
      l.x.free(state);
      throw codecError(`opus_decoder_init failed (${rc})`);
    }
    this.#state = state;
  }

  /** Decodes one RTP payload (one Opus packet: 2.5 to 120 ms). Never throws. */
  decode(payload: Uint8Array): OpusDecodeResult {
    const bad = this.#check(payload);
    if (bad !== undefined) return { ok: false, error: bad };
    return this.#run(payload, this.#max, 0);
  }

  /**
   * Packet loss concealment (RFC 6716 4.4): `samples` of audio continuing the
   * last decoded signal, for a packet that never came. Rounded up to whole
   * 2.5 ms for libopus, then cut to exactly `samples`. The concealment fades
   * towards silence over a few packets; for long gaps (DTX, hold) callers
   * should conceal only the first packet or two and play silence after.
   */
  conceal(samples: number): Int16Array {
    const n = Math.max(0, Math.floor(samples));
    const out = new Int16Array(n);
    if (this.#state === 0) return out;
    let done = 0;
    while (done < n) {
      const want = Math.min(this.#max, Math.ceil((n - done) / this.#quantum) * this.#quantum);
      const r = this.#run(undefined, want, 0);
      if (!r.ok) break; // cannot happen for a valid frame size; the rest stays silent
      const take = Math.min(r.pcm.length, n - done);
      out.set(r.pcm.subarray(0, take), done);
      done += take;
    }
    return out;
  }

  /**
   * In-band FEC (RFC 6716 2.1.7): rebuilds the `samples` lost just before
   * `next` from the redundant copy `next` carries (SILK LBRR), or conceals
   * them when it carries none (`recovered` says which). Then decode `next`
   * itself as usual. `samples` is the gap at the decoder's rate (the lost
   * packet's duration, from the RTP timestamps); at most the last 120 ms of
   * a longer gap are returned (conceal the part before). Never throws.
   */
  decodeFec(next: Uint8Array, samples: number): OpusDecodeResult {
    const bad = this.#check(next);
    if (bad !== undefined) return { ok: false, error: bad };
    const info = inspectOpusPacket(next);
    if (info === undefined) return { ok: false, error: 'invalid' };
    const n = Math.min(this.#max, Math.max(0, Math.floor(samples)));
    if (n === 0) return { ok: true, pcm: new Int16Array(0), recovered: false };
    // libopus wants whole 2.5 ms; the extra (before the FEC part) is cut off again.
    const frameSize = Math.min(this.#max, Math.ceil(n / this.#quantum) * this.#quantum);
    const r = this.#run(next, frameSize, 1);
    if (!r.ok) return r;
    return { ok: true, pcm: r.pcm.subarray(r.pcm.length - n), recovered: info.hasFec };
  }

  /** Forgets the signal history (after a change of SSRC: the next packet is a new stream). */
  reset(): void {
    if (this.#state !== 0) this.#lib.x.opus_decoder_ctl_get(this.#state, OPUS_RESET_STATE);
  }

  /** Frees the libopus state. Idempotent; decode then answers 'closed'. */
  close(): void {
    if (this.#state === 0) return;
    this.#lib.x.free(this.#state);
    this.#state = 0;
  }

  #check(payload: Uint8Array): DecodeError | undefined {
    if (this.#state === 0) return 'closed';
    if (payload.length === 0) return 'empty';
    if (payload.length > MAX_OPUS_PAYLOAD) return 'too-large';
    return undefined;
  }

  #run(payload: Uint8Array | undefined, frameSize: number, fec: 0 | 1): OpusDecodeResult {
    const l = this.#lib;
    let dataPtr = 0;
    let len = 0;
    if (payload !== undefined) {
      l.heap8.set(payload, l.bytesPtr);
      dataPtr = l.bytesPtr;
      len = payload.length;
    }
    const n = l.x.opus_decode(this.#state, dataPtr, len, l.pcmPtr, frameSize, fec);
    if (n < 0) return { ok: false, error: 'invalid' };
    const start = l.pcmPtr >> 1;
    return { ok: true, pcm: l.heap16.slice(start, start + n) };
  }
}

// ---------------------------------------------------------------------------
// Encoder

export interface OpusEncoderOptions {
  /** Target bitrate, bits/s. Default 24 000 at 16 kHz and above, 16 000 at 8 kHz (RFC 7587 3.1.1's speech ranges, plus room for FEC). */
  bitrate?: number;
  /** Add in-band FEC (LBRR) for the receiver to rebuild a lost packet: when the far end said useinbandfec=1 (RFC 7587 6.1). */
  fec?: boolean;
  /** Expected loss, %, which also makes libopus spend bits on FEC (it sends none at 0). Default 10 with fec. */
  packetLossPercent?: number;
  /** 0..10; default 5: a third of the CPU of 10 for speech that sounds the same at these bitrates. */
  complexity?: number;
  /** Discontinuous transmission (RFC 7587 3.1.3): only when the far end asked with usedtx=1. Default false. */
  dtx?: boolean;
  /** The far end's maxplaybackrate (RFC 7587 6.1): no point coding a band it cannot play. */
  maxPlaybackRate?: number;
}

export class OpusEncoder implements FrameEncoder {
  readonly sampleRate: number;
  readonly #quantum: number;
  #lib: OpusLib;
  #state = 0;

  /** Needs loadOpus() to have resolved. Mono, application VOIP, signal voice. */
  constructor(sampleRate: number, options: OpusEncoderOptions = {}) {
    if (!OPUS_RATES.includes(sampleRate)) throw new RangeError(`Opus cannot encode at ${sampleRate} Hz`);
    const l = requireLib();
    this.#lib = l;
    this.sampleRate = sampleRate;
    this.#quantum = sampleRate / 400;
    const state = l.alloc(l.x.opus_encoder_get_size(1));
    const rc = l.x.opus_encoder_init(state, sampleRate, 1, OPUS_APPLICATION_VOIP);
    if (rc !== 0) {
      l.x.free(state);
      throw codecError(`opus_encoder_init failed (${rc})`);
    }
    this.#state = state;
    try {
      const fec = options.fec ?? false;
      this.#set(OPUS_SET_BITRATE, options.bitrate ?? defaultBitrate(sampleRate));
      this.#set(OPUS_SET_COMPLEXITY, options.complexity ?? 5);
      this.#set(OPUS_SET_SIGNAL, OPUS_SIGNAL_VOICE);
      this.#set(OPUS_SET_INBAND_FEC, fec ? 1 : 0);
      this.#set(OPUS_SET_PACKET_LOSS_PERC, options.packetLossPercent ?? (fec ? 10 : 0));
      this.#set(OPUS_SET_DTX, options.dtx ? 1 : 0);
      const band = bandwidthFor(Math.min(sampleRate, options.maxPlaybackRate ?? sampleRate));
      this.#set(OPUS_SET_MAX_BANDWIDTH, band);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /**
   * Encodes one frame (2.5, 5, 10, 20, 40 or 60 ms of samples at the
   * encoder's rate) into one Opus packet, a fresh array. A frame of another
   * length is a programming error (RangeError).
   */
  encode(pcm: Int16Array): Uint8Array {
    if (this.#state === 0) throw codecError('the Opus encoder is closed');
    const q = pcm.length / this.#quantum;
    if (![1, 2, 4, 8, 16, 24].includes(q)) {
      throw new RangeError(
        `an Opus frame is 2.5 to 60 ms; got ${pcm.length} samples at ${this.sampleRate} Hz`,
      );
    }
    const l = this.#lib;
    l.heap16.set(pcm, l.pcmPtr >> 1);
    const n = l.x.opus_encode(this.#state, l.pcmPtr, pcm.length, l.bytesPtr, MAX_ENCODED_BYTES);
    if (n < 0) throw codecError(`opus_encode failed (${n})`);
    return l.heap8.slice(l.bytesPtr, l.bytesPtr + n);
  }

  /** Forgets the signal history: the next frame is coded as the start of a stream. */
  reset(): void {
    if (this.#state !== 0) this.#lib.x.opus_encoder_ctl_get(this.#state, OPUS_RESET_STATE);
  }

  /** Frees the libopus state. Idempotent. */
  close(): void {
    if (this.#state === 0) return;
    this.#lib.x.free(this.#state);
    this.#state = 0;
  }

  #set(request: number, value: number): void {
    const rc = this.#lib.x.opus_encoder_ctl_set(this.#state, request, value);
    if (rc < 0) throw codecError(`libopus refused encoder setting ${request}=${value} (${rc})`);
  }
}

function defaultBitrate(sampleRate: number): number {
  return sampleRate >= 16000 ? 24000 : 16000;
}

/** What the far end said about receiving Opus (NegotiatedMedia's fec and opus, from its fmtp). */
export interface OpusReceiverParams {
  fec?: boolean | undefined;
  opus?: { maxPlaybackRate: number; maxAverageBitrate?: number | undefined } | undefined;
}

/**
 * Our encoder's settings for a far end (RFC 7587 6.1): FEC when it decodes
 * FEC, no wider band than it plays, no more bits than it wants on average.
 * DTX stays off even when it asks (usedtx is a preference): a media server
 * that latches, and our own recordings of the far end, want packets flowing.
 */
export function opusEncoderOptions(receiver: OpusReceiverParams, sampleRate: number): OpusEncoderOptions {
  const options: OpusEncoderOptions = { fec: receiver.fec ?? false };
  const opus = receiver.opus;
  if (opus !== undefined) {
    options.maxPlaybackRate = opus.maxPlaybackRate;
    if (opus.maxAverageBitrate !== undefined) {
      options.bitrate = Math.min(defaultBitrate(sampleRate), opus.maxAverageBitrate);
    }
  }
  return options;
}

/** RFC 7587 6.1 / RFC 6716 2: the Opus bandwidth that a playback rate can render. */
function bandwidthFor(rate: number): number {
  if (rate <= 8000) return OPUS_BANDWIDTH_NARROWBAND;
  if (rate <= 12000) return OPUS_BANDWIDTH_MEDIUMBAND;
  if (rate <= 16000) return OPUS_BANDWIDTH_WIDEBAND;
  if (rate <= 24000) return OPUS_BANDWIDTH_SUPERWIDEBAND;
  return OPUS_BANDWIDTH_FULLBAND;
}

const silencePackets = new Map<string, Uint8Array>();

/**
 * One Opus packet of digital silence, `frameSamples` long at `sampleRate`,
 * made once per process and shared: what a sender with nothing to say puts
 * on the wire, every packet the same, instead of running an encoder over
 * zeros for every call (that costs about half a speech frame). Any valid
 * packet decodes on its own, and this one decodes to silence. Do not
 * modify the array.
 */
export function opusSilence(sampleRate: number, frameSamples: number): Uint8Array {
  const key = `${sampleRate}/${frameSamples}`;
  let packet = silencePackets.get(key);
  if (packet === undefined) {
    const encoder = new OpusEncoder(sampleRate);
    try {
      const zeros = new Int16Array(frameSamples);
      // The first packets of a stream carry the encoder's start-up; a later one is plain silence.
      for (let i = 0; i < 3; i++) packet = encoder.encode(zeros);
    } finally {
      encoder.close();
    }
    silencePackets.set(key, packet!);
  }
  return packet!;
}
