/**
 * What Opus costs against G.711, per 20 ms frame and for 200 calls, in one
 * run on this machine:
 *
 *  - per frame (median of rounds): G.711 table decode and encode; Opus decode
 *    of what RingCentral sends (SILK wideband mono, 16 kHz, ~24 kb/s, in-band
 *    FEC) and of what a browser or baresip sends (48 kHz stereo, 64 kb/s),
 *    both decoded to 16 kHz mono, and to 8 kHz; PLC; FEC; Opus encode of
 *    speech at complexity 1, 5 (our default) and 10, and of digital silence; the
 *    16 → 8 kHz stream resampler (our half-band FIR, libsamplerate fastest
 *    and medium);
 *  - the extrapolation: 200 calls × 50 frames/s = 10 000 frames/s, so one
 *    frame of work costing c µs takes c % of one core for 200 calls;
 *  - a real-time check: 200 decoders fed one packet each every 20 ms from a
 *    timer for `seconds`, the way MediaSession's tick would, measuring how
 *    long each tick's work took and how late the ticks ran, with the same
 *    loop for PCMU in the same run. No frame is lost when every tick's work
 *    ends well inside its 20 ms and no tick runs late by more than the live
 *    stream's 40 ms minimum delay.
 *
 *   npm run bench -- opus          (or node --import tsx bench/opus.ts [--calls 200] [--seconds 10])
 *
 * What this does not cover: sockets, RTP parsing, the jitter buffer and sinks
 * (bench/media-path.ts and bench/capacity.ts measure those for PCMU, and the
 * codec capacity run whole calls with Opus and SRTP from an Opus-capable
 * sender: SIPp's rtp_stream plays only G.711).
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Encoder as StereoEncoder } from '@evan/opus';
import { encodeUlaw, encodeUlawFrame, ULAW_TO_LINEAR } from '../src/media/g711.js';
import { loadOpus, OpusDecoder, OpusEncoder } from '../src/media/opus.js';
import { StreamResampler } from '../src/media/resample.js';

export interface OpusBenchOptions {
  /** Calls in the real-time check. Default 200. */
  calls?: number;
  /** Length of the real-time check, per codec. Default 10. */
  seconds?: number;
}

export interface TickFigures {
  ticks: number;
  /** Work per tick (all calls' frames), wall clock, ms: includes time the OS gave other processes. */
  workP50Ms: number;
  workP99Ms: number;
  workMaxMs: number;
  /** CPU time of the tick's work (process.cpuUsage), ms: what the work itself costs, whatever else runs. */
  cpuP50Ms: number;
  cpuP99Ms: number;
  /** How late ticks started against their 20 ms schedule, ms. */
  lateP99Ms: number;
  lateMaxMs: number;
  /** Ticks whose work ended after the next tick was due. */
  overruns: number;
  /** Process CPU over the check (user + system), % of one core. */
  cpuPercent: number;
  /** Frames decoded (calls × ticks), all of them. */
  frames: number;
}

export interface OpusFigures {
  /** µs per 20 ms frame. */
  perFrameUs: Record<string, number>;
  /** % of one core for `calls` calls (calls × 50 frames/s × µs). */
  percentOfCoreFor: { calls: number; figures: Record<string, number> };
  bytesPerPacket: { rcWideband: number; fullbandStereo: number };
  realtime: { calls: number; seconds: number; pcmu: TickFigures; opus: TickFigures };
}

const RATE = 16000;
const F16 = 320;

/** Voiced-speech-like test signal: a 150 Hz fundamental with vibrato and twelve harmonics, amplitude syllables. */
function speech(rate: number, seconds: number): Int16Array {
  const out = new Int16Array(Math.round(rate * seconds));
  let phase = 0;
  for (let i = 0; i < out.length; i++) {
    const t = i / rate;
    phase += (2 * Math.PI * (150 + 25 * Math.sin(2 * Math.PI * 3 * t))) / rate;
    let v = 0;
    for (let h = 1; h <= 12; h++) v += Math.sin(h * phase) / h;
    const envelope = 0.35 + 0.65 * Math.abs(Math.sin(2 * Math.PI * 2 * t));
    out[i] = Math.round(5000 * envelope * v);
  }
  return out;
}

function frames(pcm: Int16Array, size: number): Int16Array[] {
  const out: Int16Array[] = [];
  for (let at = 0; at + size <= pcm.length; at += size) out.push(pcm.subarray(at, at + size));
  return out;
}

/** Median over `rounds` of the mean cost of `fn` over `n` calls, in µs. */
function measure(n: number, fn: (i: number) => void, rounds = 5): number {
  for (let i = 0; i < Math.min(n, 2000); i++) fn(i); // reach the optimised tier first
  const costs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    for (let i = 0; i < n; i++) fn(i);
    costs.push(((performance.now() - start) * 1000) / n);
  }
  costs.sort((a, b) => a - b);
  return costs[Math.floor(costs.length / 2)]!;
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Runs `work` every 20 ms for `seconds`, like a media tick; measures work time and lateness. */
async function realtime(seconds: number, calls: number, work: () => void): Promise<TickFigures> {
  const ticks = Math.round((seconds * 1000) / 20);
  const workMs: number[] = [];
  const cpuMs: number[] = [];
  const lateMs: number[] = [];
  let overruns = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let k = 0; k < ticks; k++) {
    const due = t0 + k * 20;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const start = performance.now();
    lateMs.push(Math.max(0, start - due));
    const cpuStart = process.cpuUsage();
    work();
    const cpu = process.cpuUsage(cpuStart);
    const end = performance.now();
    workMs.push(end - start);
    cpuMs.push((cpu.user + cpu.system) / 1000);
    if (end > due + 20) overruns++;
  }
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  workMs.sort((a, b) => a - b);
  cpuMs.sort((a, b) => a - b);
  lateMs.sort((a, b) => a - b);
  return {
    ticks,
    workP50Ms: round2(percentile(workMs, 0.5)),
    workP99Ms: round2(percentile(workMs, 0.99)),
    workMaxMs: round2(workMs[workMs.length - 1]!),
    cpuP50Ms: round2(percentile(cpuMs, 0.5)),
    cpuP99Ms: round2(percentile(cpuMs, 0.99)),
    lateP99Ms: round1(percentile(lateMs, 0.99)),
    lateMaxMs: round1(lateMs[lateMs.length - 1]!),
    overruns,
    cpuPercent: round1(((cpu.user + cpu.system) / 1000 / elapsed) * 100),
    frames: ticks * calls,
  };
}

export async function benchOpus(options: OpusBenchOptions = {}): Promise<OpusFigures> {
  const calls = options.calls ?? 200;
  const seconds = options.seconds ?? 10;
  await loadOpus();

  // --- packets as the far ends send them
  const speech16 = frames(speech(RATE, 2), F16);
  const rcEncoder = new OpusEncoder(RATE, { fec: true, bitrate: 24000 });
  const rcPackets = speech16.map((f) => rcEncoder.encode(f));
  rcEncoder.close();
  const speech48 = speech(48000, 2);
  const stereo = new Int16Array(speech48.length * 2);
  for (let i = 0; i < speech48.length; i++) stereo[2 * i] = stereo[2 * i + 1] = speech48[i]!;
  const fbEncoder = new StereoEncoder({ channels: 2, sample_rate: 48000, application: 'audio' });
  fbEncoder.bitrate = 64000;
  const fbPackets = frames(stereo, 1920).map((f) => Uint8Array.from(fbEncoder.encode(f)));
  const mean = (ps: Uint8Array[]) => Math.round(ps.reduce((n, p) => n + p.length, 0) / ps.length);

  // --- G.711, the way the jitter buffer decodes (table lookup into a frame) and the sender encodes
  const speech8 = frames(speech(8000, 2), 160);
  const ulawPayloads = speech8.map((f) => Uint8Array.from(f, (s) => encodeUlaw(s)));
  const frame8 = new Int16Array(160);
  const out8 = new Uint8Array(160);
  const perFrameUs: Record<string, number> = {};
  const n = 20_000;
  perFrameUs.g711Decode = measure(n * 5, (i) => {
    const p = ulawPayloads[i % ulawPayloads.length]!;
    for (let k = 0; k < 160; k++) frame8[k] = ULAW_TO_LINEAR[p[k]!]!;
  });
  perFrameUs.g711Encode = measure(n * 5, (i) => {
    encodeUlawFrame(speech8[i % speech8.length]!, out8);
  });

  // --- Opus decode
  const decodeAll = (packets: Uint8Array[], rate: number) => {
    const dec = new OpusDecoder(rate);
    const us = measure(n, (i) => {
      dec.decode(packets[i % packets.length]!);
    });
    dec.close();
    return us;
  };
  perFrameUs.opusDecodeRcWideband16k = decodeAll(rcPackets, 16000);
  perFrameUs.opusDecodeRcWideband8k = decodeAll(rcPackets, 8000);
  perFrameUs.opusDecodeFullbandStereo16k = decodeAll(fbPackets, 16000);
  {
    const dec = new OpusDecoder(16000);
    perFrameUs.opusConceal = measure(n, (i) => {
      // Alternate real packets and losses so PLC always continues a live signal.
      if (i % 2 === 0) dec.decode(rcPackets[i % rcPackets.length]!);
      else dec.conceal(F16);
    });
    perFrameUs.opusConceal = Math.max(0, perFrameUs.opusConceal * 2 - perFrameUs.opusDecodeRcWideband16k);
    perFrameUs.opusDecodeFec = measure(n, (i) => {
      dec.decodeFec(rcPackets[i % rcPackets.length]!, F16);
    });
    dec.close();
  }

  // --- Opus encode
  const encodeWith = (options: ConstructorParameters<typeof OpusEncoder>[1], input: Int16Array[]) => {
    const enc = new OpusEncoder(RATE, options);
    const us = measure(
      n / 4,
      (i) => {
        enc.encode(input[i % input.length]!);
      },
      3,
    );
    enc.close();
    return us;
  };
  perFrameUs.opusEncodeSpeechC1Fec = encodeWith({ fec: true, complexity: 1 }, speech16);
  perFrameUs.opusEncodeSpeechC5Fec = encodeWith({ fec: true }, speech16);
  perFrameUs.opusEncodeSpeechC10Fec = encodeWith({ fec: true, complexity: 10 }, speech16);
  perFrameUs.opusEncodeSilenceC5 = encodeWith({ fec: true }, [new Int16Array(F16)]);

  // --- the live path's resampler
  for (const quality of ['halfband', 'fastest', 'medium'] as const) {
    const r = await StreamResampler.create(16000, 8000, { quality });
    perFrameUs[`resample16to8${quality[0]!.toUpperCase()}${quality.slice(1)}`] = measure(n / 4, (i) => {
      r.process(speech16[i % speech16.length]!);
    });
    r.close();
  }

  for (const key of Object.keys(perFrameUs)) perFrameUs[key] = round1(perFrameUs[key]!);
  const figures: Record<string, number> = {};
  for (const [key, us] of Object.entries(perFrameUs)) figures[key] = round1((calls * 50 * us) / 1e4);

  // --- real time: every call's frame each 20 ms, PCMU then Opus, in this one process
  const pcmuTick = (() => {
    const frame = new Int16Array(160);
    let k = 0;
    return () => {
      for (let c = 0; c < calls; c++) {
        const p = ulawPayloads[(k + c) % ulawPayloads.length]!;
        for (let s = 0; s < 160; s++) frame[s] = ULAW_TO_LINEAR[p[s]!]!;
      }
      k++;
    };
  })();
  const decoders = Array.from({ length: calls }, () => new OpusDecoder(16000));
  const opusTick = (() => {
    let k = 0;
    return () => {
      for (let c = 0; c < calls; c++) {
        const r = decoders[c]!.decode(rcPackets[(k + c) % rcPackets.length]!);
        if (!r.ok) throw new Error(`decode failed: ${r.error}`);
      }
      k++;
    };
  })();
  const pcmu = await realtime(seconds, calls, pcmuTick);
  const opus = await realtime(seconds, calls, opusTick);
  for (const d of decoders) d.close();

  return {
    perFrameUs,
    percentOfCoreFor: { calls, figures },
    bytesPerPacket: { rcWideband: mean(rcPackets), fullbandStereo: mean(fbPackets) },
    realtime: { calls, seconds, pcmu, opus },
  };
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(path.resolve(invokedPath)).href) {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : undefined;
  };
  const options: OpusBenchOptions = {};
  const calls = flag('--calls');
  const secs = flag('--seconds');
  if (calls !== undefined) options.calls = calls;
  if (secs !== undefined) options.seconds = secs;
  console.log(JSON.stringify(await benchOpus(options), null, 2));
}
