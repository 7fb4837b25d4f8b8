/**
 * Where a sent stream sits in a recording, packet by packet: for checking a
 * recording sample by sample against what a peer sent (PCM, at 8 kHz).
 */

export interface Alignment {
  /** Sample index in the recording where the sent audio starts (first non-zero samples lined up). */
  offset: number;
  /** Sent packets found, bit-exact and in order. */
  packets: number;
  /** Index of the first packet not found (null: all were). */
  missingPacket: number | null;
  /** Runs of silence (zeros) inserted between packets, and the longest, in samples. */
  gaps: number;
  maxGapSamples: number;
  /** Non-zero samples before the sent audio / after its last packet: silence fill must be exact zeros. */
  nonZeroBefore: number;
  nonZeroAfter: number;
}

/** Index of the first sample that is not `zero`, or -1. */
export function firstNonZero(samples: ArrayLike<number>, zero = 0): number {
  for (let i = 0; i < samples.length; i++) if (samples[i] !== zero) return i;
  return -1;
}

/**
 * Locates `sent` in `recording` and walks it `packetSamples` at a time: each
 * packet must come next, bit-exact; where one does not, only zeros may come
 * before it (silence a receiver inserted for a late packet). The recording is
 * silence up to the sent audio's arrival, so the first non-zero sample of the
 * recording is the first non-zero sample sent: that fixes the offset.
 */
export function alignPackets(recording: Int16Array, sent: Int16Array, packetSamples = 160): Alignment {
  const offset = firstNonZero(recording) - firstNonZero(sent);
  const matchesAt = (at: number, packet: number) => {
    const base = packet * packetSamples;
    const length = Math.min(packetSamples, sent.length - base);
    if (at < 0 || at + length > recording.length) return false;
    for (let i = 0; i < length; i++) if (recording[at + i] !== sent[base + i]) return false;
    return true;
  };
  const total = Math.ceil(sent.length / packetSamples);
  let at = offset;
  let packets = 0;
  let missingPacket: number | null = null;
  let gaps = 0;
  let maxGap = 0;
  for (let k = 0; k < total; k++) {
    const length = Math.min(packetSamples, sent.length - k * packetSamples);
    if (matchesAt(at, k)) {
      at += length;
      packets++;
      continue;
    }
    // Skip a run of zeros (inserted silence) and look for the packet after it.
    let next = at;
    while (next < recording.length && recording[next] === 0 && !matchesAt(next + 1, k)) next++;
    if (next < recording.length && recording[next] === 0 && matchesAt(next + 1, k)) {
      gaps++;
      maxGap = Math.max(maxGap, next + 1 - at);
      at = next + 1 + length;
      packets++;
      continue;
    }
    missingPacket = k;
    break;
  }
  let nonZeroBefore = 0;
  for (let i = 0; i < Math.max(0, offset); i++) if (recording[i] !== 0) nonZeroBefore++;
  let nonZeroAfter = 0;
  if (missingPacket === null)
    for (let i = at; i < recording.length; i++) if (recording[i] !== 0) nonZeroAfter++;
  return { offset, packets, missingPacket, gaps, maxGapSamples: maxGap, nonZeroBefore, nonZeroAfter };
}

/** Index of `needle` in `haystack` at or after `from`, or -1. */
export function indexOfRun(haystack: ArrayLike<number>, needle: ArrayLike<number>, from = 0): number {
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Largest lateness of a packet against the earliest before it (arrival − timestamp distance), ms. */
export function wireLatenessMs(
  packets: readonly { atMs: number; timestamp: number }[],
  clockRate = 8000,
): number {
  const first = packets[0];
  if (!first) return Number.NaN;
  let baseline = Number.POSITIVE_INFINITY;
  let worst = 0;
  for (const p of packets) {
    const offset = p.atMs - (((p.timestamp - first.timestamp) | 0) / clockRate) * 1000;
    baseline = Math.min(baseline, offset);
    worst = Math.max(worst, offset - baseline);
  }
  return worst;
}
