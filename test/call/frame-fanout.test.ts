import { describe, expect, it } from 'vitest';
import { FrameFanOut } from '../../src/call/frame-fanout.js';
import type { FrameSink } from '../../src/media/frame-sink.js';

function sink(name: string, log: string[], stats: Record<string, number> = {}): FrameSink {
  return {
    write: () => log.push(`${name}.write`),
    close: async () => {
      log.push(`${name}.close`);
    },
    stats: () => stats,
  };
}

describe('FrameFanOut', () => {
  it('writes the recording first, then live sinks, then listeners; closes the recording first', async () => {
    const log: string[] = [];
    const fan = new FrameFanOut(
      () => {},
      () => log.push('listeners'),
    );
    fan.add(sink('pipe', log, { engineFramesDropped: 2 }));
    fan.setRecording(sink('wav', log));
    fan.add(sink('stream', log, { streamFramesSent: 1 }));
    fan.write(new Int16Array(160), { position: 0, audio: true });
    expect(log).toEqual(['wav.write', 'pipe.write', 'stream.write', 'listeners']);
    expect(fan.stats()).toEqual({ engineFramesDropped: 2, streamFramesSent: 1 });
    log.length = 0;
    await fan.close();
    expect(log).toEqual(['wav.close', 'pipe.close', 'stream.close']);
    await fan.close();
    expect(log).toHaveLength(3);
  });

  it('a sink that throws is reported once and the others still get every frame', () => {
    const errors: unknown[] = [];
    let got = 0;
    const fan = new FrameFanOut((e) => errors.push(e));
    fan.add({
      write: () => {
        throw new Error('bad sink');
      },
      close: () => {},
    });
    fan.add({ write: () => got++, close: () => {} });
    for (let i = 0; i < 5; i++) fan.write(new Int16Array(160), { position: i * 160, audio: true });
    expect(got).toBe(5);
    expect(errors).toHaveLength(1);
  });
});

describe('FrameFanOut with the two timelines', () => {
  it('gives recording frames to the WAV only and live frames to the live sinks and listeners only', () => {
    const log: string[] = [];
    const fan = new FrameFanOut(
      () => {},
      (_f, info) => log.push(`listeners@${info.position}`),
    );
    fan.setRecording({ write: (_f, info) => log.push(`wav@${info.position}`), close: () => {} });
    fan.add({ write: (_f, info) => log.push(`pipe@${info.position}`), close: () => {} });
    fan.writeLive(new Int16Array(160), { position: 8000, audio: true });
    fan.writeRecording(new Int16Array(160), { position: 0, audio: true });
    expect(log).toEqual(['pipe@8000', 'listeners@8000', 'wav@0']);
  });
});
