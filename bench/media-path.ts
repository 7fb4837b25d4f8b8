/**
 * Per-packet cost of the media receive path, in-process and without sockets:
 * RTP parse and validation, source latch, jitter buffer push, both outputs
 * (the recording and the live stream), G.711 decode, and the WAV write to a
 * temp file. It drives ReceivePath, the very code MediaSession runs for every
 * datagram, with the same frame sink work (WavWriter.write) its tick does.
 *
 * Measured in CPU time (process.cpuUsage), not wall time, so a busy machine
 * that deschedules the process does not inflate it.
 *
 * A 20 ms packet every 20 ms per call, so `callsPerCore` = 20 ms / cost is how
 * many calls one core could record before the receive path alone saturated it.
 *
 * SRTP (RFC 3711) is measured in the same run: the same stream protected
 * beforehand (the far end's cost, not ours), then per packet SrtpContext's
 * unprotect (index estimate, replay window, werift-rtp's HMAC-SHA1 and
 * AES-CM) in front of the very same path. Plain and SRTP rounds alternate, so
 * machine noise hits both alike; the ratio of the medians is what SRTP adds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeUlaw } from '../src/media/g711.js';
import { ReceivePath } from '../src/media/receive-path.js';
import { serializeRtp } from '../src/rtp/packet.js';
import { generateKeySalt, SRTP_SUITES, SrtpContext, type SrtpSuite } from '../src/rtp/srtp.js';
import { WavWriter } from '../src/sinks/wav.js';

export interface MediaPathFigures {
  /** Median over rounds of the cost of one 20 ms packet, in nanoseconds. */
  nsPerPacket: number;
  /** Best round, for a feel of the noise. */
  nsPerPacketBest: number;
  packets: number;
  rounds: number;
  packetsPerSecond: number;
  /** Calls one core could receive and record (20 ms of audio per packet). */
  callsPerCore: number;
  /** Bytes of WAV written per round. */
  wavBytesPerRound: number;
  /** The same path behind SRTP unprotect, per suite. */
  srtp: SrtpFigures[];
}

export interface SrtpFigures {
  suite: SrtpSuite;
  /** Median cost of unprotect + the path, per packet (ns). */
  nsPerPacket: number;
  nsPerPacketBest: number;
  /** Median cost of unprotect alone, per packet (ns). */
  unprotectNsPerPacket: number;
  /** nsPerPacket / the plain path's nsPerPacket. */
  ratio: number;
  /** (ratio − 1) in percent: what SRTP adds to the media path. */
  addedPercent: number;
  callsPerCore: number;
}

const F = 160;
const SOURCE = { address: '192.0.2.10', port: 40000 };

/** Datagrams of one stream: in order, distinct speech-like payloads, 1 in 100 swapped with its successor. */
function datagrams(count: number): Buffer[] {
  const payloads = Array.from({ length: 64 }, (_, p) =>
    Uint8Array.from({ length: F }, (_, i) => encodeUlaw(Math.round(9000 * Math.sin((p * F + i) / 11)))),
  );
  const out: Buffer[] = [];
  for (let k = 0; k < count; k++) {
    out.push(
      serializeRtp({
        payloadType: 0,
        sequenceNumber: (1000 + k) & 0xffff,
        timestamp: (123_456 + k * F) >>> 0,
        ssrc: 0x1234_5678,
        payload: payloads[k % payloads.length]!,
      }),
    );
  }
  // Mild reordering keeps the out-of-order branch warm, as on a real network.
  for (let k = 50; k + 1 < count; k += 100) [out[k], out[k + 1]] = [out[k + 1]!, out[k]!];
  return out;
}

const REMOTE_KEY = generateKeySalt();
const LOCAL_KEY = generateKeySalt();

/** The far end's view: the same datagrams protected with its key. */
function protect(packets: Buffer[], suite: SrtpSuite): Buffer[] {
  const far = new SrtpContext({ suite, localKeySalt: REMOTE_KEY, remoteKeySalt: LOCAL_KEY });
  // In sending order (the reordering was the network's), then reordered the same way.
  const bySeq = [...packets].sort((a, b) => a.readUInt16BE(2) - b.readUInt16BE(2));
  const map = new Map(bySeq.map((p) => [p, far.protectRtp(p)]));
  far.close();
  return packets.map((p) => map.get(p)!);
}

/**
 * One call's worth of packets through the path, SRTP-unprotected first when
 * `suite` is given; returns elapsed ns.
 */
function round(
  packets: Buffer[],
  dir: string,
  index: number,
  suite?: SrtpSuite,
): { ns: number; wavBytes: number } {
  const wav = WavWriter.open(join(dir, `round-${index}.wav`));
  const path = new ReceivePath({ media: { codec: 'PCMU', payloadType: 0 }, expected: SOURCE });
  const srtp =
    suite === undefined
      ? undefined
      : new SrtpContext({ suite, localKeySalt: LOCAL_KEY, remoteKeySalt: REMOTE_KEY });
  const sink = (frame: Int16Array) => wav.write(frame);
  let liveFrames = 0;
  const live = () => {
    liveFrames++;
  };
  const start = process.cpuUsage();
  for (let k = 0; k < packets.length; k++) {
    // Arrival a little after the packet's slot, as the 20 ms tick would see it.
    const now = 800 + k * F + (k % 7);
    if (srtp === undefined) {
      path.receive(packets[k]!, SOURCE.address, SOURCE.port, now);
    } else {
      const r = srtp.unprotectRtp(packets[k]!);
      if (r.ok) path.receive(r.packet, SOURCE.address, SOURCE.port, now);
    }
    path.pullLive(now, live);
    path.pullRecording(now, sink);
  }
  path.flush(800 + packets.length * F + 480, sink, live);
  if (liveFrames < packets.length) throw new Error('benchmark lost live frames');
  wav.close();
  const used = process.cpuUsage(start);
  const ns = (used.user + used.system) * 1000;
  if (wav.error) throw wav.error;
  if (path.stats.received !== packets.length) throw new Error('benchmark lost packets');
  if (srtp !== undefined && srtp.stats.rtpUnprotected !== packets.length)
    throw new Error('SRTP dropped packets');
  srtp?.close();
  return { ns, wavBytes: wav.samplesWritten * 2 };
}

/** Unprotect alone over one round's datagrams; returns its CPU time in ns (like the path's rounds). */
function unprotectOnly(packets: Buffer[], suite: SrtpSuite): number {
  const srtp = new SrtpContext({ suite, localKeySalt: LOCAL_KEY, remoteKeySalt: REMOTE_KEY });
  let sink = 0;
  const start = process.cpuUsage();
  for (let k = 0; k < packets.length; k++) {
    const r = srtp.unprotectRtp(packets[k]!);
    if (r.ok) sink += r.packet.length;
  }
  const used = process.cpuUsage(start);
  const ns = (used.user + used.system) * 1000;
  if (sink === 0) throw new Error('SRTP dropped packets');
  srtp.close();
  return ns;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function benchMediaPath(
  options: { packets?: number; rounds?: number; srtp?: boolean } = {},
): Promise<MediaPathFigures> {
  const total = options.packets ?? 200_000;
  const rounds = Math.max(1, options.rounds ?? 5);
  const perRound = Math.max(1, Math.floor(total / rounds));
  const packets = datagrams(perRound);
  const suites = options.srtp === false ? [] : SRTP_SUITES;
  const secured = new Map(suites.map((suite) => [suite, protect(packets, suite)]));
  const dir = mkdtempSync(join(tmpdir(), 'rc-bench-media-'));
  try {
    // Warm-up: let the path reach its optimised tier before timing.
    const warm = Math.min(perRound, 20_000);
    round(packets.slice(0, warm), dir, -1);
    for (const [suite, wire] of secured) {
      rmSync(join(dir, 'round--1.wav'), { force: true });
      round(wire.slice(0, warm), dir, -1, suite);
      unprotectOnly(wire.slice(0, warm), suite);
    }
    const costs: number[] = [];
    const srtpCosts = new Map<SrtpSuite, { path: number[]; alone: number[] }>(
      suites.map((suite) => [suite, { path: [], alone: [] }]),
    );
    let wavBytesPerRound = 0;
    for (let r = 0; r < rounds; r++) {
      const { ns, wavBytes } = round(packets, dir, r);
      costs.push(ns / perRound);
      wavBytesPerRound = wavBytes;
      rmSync(join(dir, `round-${r}.wav`), { force: true });
      for (const [suite, wire] of secured) {
        const c = srtpCosts.get(suite)!;
        c.path.push(round(wire, dir, r, suite).ns / perRound);
        rmSync(join(dir, `round-${r}.wav`), { force: true });
        c.alone.push(unprotectOnly(wire, suite) / perRound);
      }
      // Yield between rounds so the bench never hogs the loop of a larger runner.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const sorted = [...costs].sort((a, b) => a - b);
    const nsPerPacket = sorted[Math.floor(sorted.length / 2)]!;
    const srtp: SrtpFigures[] = [...srtpCosts].map(([suite, c]) => {
      const ns = median(c.path);
      return {
        suite,
        nsPerPacket: Math.round(ns),
        nsPerPacketBest: Math.round(Math.min(...c.path)),
        unprotectNsPerPacket: Math.round(median(c.alone)),
        ratio: Math.round((ns / nsPerPacket) * 1000) / 1000,
        addedPercent: Math.round((ns / nsPerPacket - 1) * 1000) / 10,
        callsPerCore: Math.floor(20e6 / ns),
      };
    });
    return {
      nsPerPacket: Math.round(nsPerPacket),
      nsPerPacketBest: Math.round(sorted[0]!),
      packets: perRound * rounds,
      rounds,
      packetsPerSecond: Math.round(1e9 / nsPerPacket),
      callsPerCore: Math.floor(20e6 / nsPerPacket),
      wavBytesPerRound,
      srtp,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
