/** The unit of audio everywhere in the media path: 20 ms of 8 kHz mono, 160 samples. */
export const SAMPLE_RATE = 8000;
export const FRAME_MS = 20;
export const FRAME_SAMPLES = (SAMPLE_RATE * FRAME_MS) / 1000;
