/** The unit of audio everywhere in the media path: 20 ms of 8 kHz mono, 160 samples. */
export const SAMPLE_RATE = 8000;
export const FRAME_MS = 20;
export const FRAME_SAMPLES = (SAMPLE_RATE * FRAME_MS) / 1000;
/**
 * The recording's bound: a packet is placed where its RTP timestamp puts it
 * as long as it arrives at most this long after its place on the timeline
 * (a delay spike, a stalled host). The WAV is written this far behind the
 * wall clock; with the WAV writer's 1 s batches a SIGKILL loses at most
 * ~2 s (the issue allows 2.5 s).
 */
export const RECORDING_DELAY_MS = 1000;
/**
 * The live stream's target delay adapts to the jitter actually seen, within
 * these bounds: 40 ms is one reordered packet plus timer slack on a clean
 * LAN; beyond 300 ms a live conversation stops feeling live (ITU-T G.114
 * puts the limit of acceptable one-way delay near 400 ms).
 */
export const LIVE_TARGET_MIN_MS = 40;
export const LIVE_TARGET_MAX_MS = 300;
/** Where the live target starts before enough packets have been seen (the old fixed design used 70 ms). */
export const LIVE_TARGET_INITIAL_MS = 40;
