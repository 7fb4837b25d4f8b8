/** The unit of audio everywhere in the media path: 20 ms of 8 kHz mono, 160 samples. */
export const SAMPLE_RATE = 8000;
export const FRAME_MS = 20;
export const FRAME_SAMPLES = (SAMPLE_RATE * FRAME_MS) / 1000;
/**
 * Playout delay: how long a frame waits after its packet's expected arrival.
 * Three 20 ms packets of reordering (a packet arriving after the next three)
 * plus 10 ms of jitter; the bound is 100 ms.
 */
export const JITTER_DELAY_MS = 70;
