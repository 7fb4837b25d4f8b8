/**
 * Per-packet cost of the media receive path, in-process and without sockets:
 * RTP parse and validation, source latch, jitter buffer push, both outputs
 * (the recording and the live stream), G.711 decode, and the WAV write to a
 * temp file. It drives ReceivePath, the very code MediaSession runs for every
 * datagram, with the same frame sink work (WavWriter.write) its tick does.
 *
 * Measured in CPU time (process.cpuUsage), not wall time, so a busy machine
 * that deschedules the process does not inflate it; the median and the best
 * of the rounds are reported.
 *
 * A 20 ms packet every 20 ms per call, so `callsPerCore` = 20 ms / cost is how
 * many calls one core could record before the receive path alone saturated it.
 * (The same file runs against the receive path before issue 11, whose single
 * output was `pull`, for a before/after comparison.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeUlaw } from '../src/media/g711.js';
import { ReceivePath } from '../src/media/receive-path.js';
import { serializeRtp } from '../src/rtp/packet.js';
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

/** One call's worth of packets through the path; returns elapsed ns. */
function round(packets: Buffer[], dir: string, index: number): { ns: number; wavBytes: number } {
  const wav = WavWriter.open(join(dir, `round-${index}.wav`));
  const path = new ReceivePath({
    media: { codec: 'PCMU', payloadType: 0 },
    expected: SOURCE,
  }) as ReceivePath & Record<string, (...args: unknown[]) => number>;
  const sink = (frame: Int16Array) => wav.write(frame);
  let liveFrames = 0;
  const live = () => {
    liveFrames++;
  };
  const split = typeof path.pullLive === 'function';
  const start = process.cpuUsage();
  for (let k = 0; k < packets.length; k++) {
    // Arrival a little after the packet's slot, as the 20 ms tick would see it.
    const now = 800 + k * F + (k % 7);
    path.receive(packets[k]!, SOURCE.address, SOURCE.port, now);
    if (split) {
      path.pullLive!(now, live);
      path.pullRecording!(now, sink);
    } else path.pull!(now, sink);
  }
  if (split) path.flush(800 + packets.length * F + 480, sink, live);
  else path.flush(800 + packets.length * F + 480, sink);
  if (split && liveFrames < packets.length) throw new Error('benchmark lost live frames');
  wav.close();
  const used = process.cpuUsage(start);
  const ns = (used.user + used.system) * 1000;
  if (wav.error) throw wav.error;
  if (path.stats.received !== packets.length) throw new Error('benchmark lost packets');
  return { ns, wavBytes: wav.samplesWritten * 2 };
}

export async function benchMediaPath(
  options: { packets?: number; rounds?: number } = {},
): Promise<MediaPathFigures> {
  const total = options.packets ?? 200_000;
  const rounds = Math.max(1, options.rounds ?? 10);
  const perRound = Math.max(1, Math.floor(total / rounds));
  const packets = datagrams(perRound);
  const dir = mkdtempSync(join(tmpdir(), 'rc-bench-media-'));
  try {
    // Warm-up: let the path reach its optimised tier before timing.
    round(packets.slice(0, Math.min(perRound, 20_000)), dir, -1);
    const costs: number[] = [];
    let wavBytesPerRound = 0;
    for (let r = 0; r < rounds; r++) {
      const { ns, wavBytes } = round(packets, dir, r);
      costs.push(ns / perRound);
      wavBytesPerRound = wavBytes;
      rmSync(join(dir, `round-${r}.wav`), { force: true });
      // Yield between rounds so the bench never hogs the loop of a larger runner.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const sorted = [...costs].sort((a, b) => a - b);
    const nsPerPacket = sorted[Math.floor(sorted.length / 2)]!;
    return {
      nsPerPacket: Math.round(nsPerPacket),
      nsPerPacketBest: Math.round(sorted[0]!),
      packets: perRound * rounds,
      rounds,
      packetsPerSecond: Math.round(1e9 / nsPerPacket),
      callsPerCore: Math.floor(20e6 / nsPerPacket),
      wavBytesPerRound,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
