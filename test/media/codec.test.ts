import { describe, expect, it } from 'vitest';
import {
  CODECS,
  codecByName,
  codecInfo,
  codecOf,
  DEFAULT_CODECS,
  OPUS_FIRST_CODECS,
  prepareCodecs,
} from '../../src/media/codec.js';
import { encodeUlaw, ULAW_TO_LINEAR } from '../../src/media/g711.js';
import { opusLoaded } from '../../src/media/opus.js';

describe('codec table', () => {
  it('keeps the RTP clock rate apart from the working rates', () => {
    expect(CODECS.PCMU).toMatchObject({
      kind: 'table',
      payloadType: 0,
      clockRate: 8000,
      sampleRates: [8000],
    });
    expect(CODECS.PCMA).toMatchObject({ kind: 'table', payloadType: 8, clockRate: 8000 });
    // RFC 7587 4.1 / 7: 48 kHz timestamps, always signalled as two channels, decoded at 16 (or 8) kHz.
    expect(CODECS.opus).toMatchObject({
      kind: 'stateful',
      encodingName: 'opus',
      dynamic: true,
      clockRate: 48000,
      channels: 2,
      sampleRates: [16000, 8000],
    });
  });

  it('codecOf is the G.711 table view; Opus has none', () => {
    expect(codecOf('PCMU').decodeTable).toBe(ULAW_TO_LINEAR);
    expect(() => codecOf('opus')).toThrow(TypeError);
    expect(codecInfo('opus').name).toBe('opus');
  });

  it.each([
    ['opus', 'opus'],
    ['OPUS', 'opus'],
    [' pcmu ', 'PCMU'],
    ['Pcma', 'PCMA'],
    ['G722', undefined],
    ['', undefined],
  ])('codecByName(%j) = %j', (text, name) => {
    expect(codecByName(text)).toBe(name);
  });

  it('default preference: Opus whenever the far end offers it, then PCMU, then PCMA', () => {
    expect(DEFAULT_CODECS).toEqual(['opus', 'PCMU', 'PCMA']);
    expect(OPUS_FIRST_CODECS).toEqual(['opus', 'PCMU', 'PCMA']);
  });

  it('G.711 also speaks the stateful interface: table decode, silence for loss, no FEC', () => {
    const dec = CODECS.PCMU.createDecoder(8000);
    const enc = CODECS.PCMU.createEncoder(8000);
    const pcm = Int16Array.from({ length: 160 }, (_, i) => Math.round(5000 * Math.sin(i / 5)));
    const payload = enc.encode(pcm);
    expect(payload).toEqual(Uint8Array.from(pcm, (s) => encodeUlaw(s)));
    const r = dec.decode(payload);
    expect(r.ok && r.pcm).toEqual(Int16Array.from(payload, (b) => ULAW_TO_LINEAR[b]!));
    expect(dec.conceal(160)).toEqual(new Int16Array(160));
    expect(dec.decodeFec(payload, 160)).toEqual({ ok: true, pcm: new Int16Array(160), recovered: false });
    expect(dec.decode(new Uint8Array(0))).toEqual({ ok: false, error: 'empty' });
    dec.close();
    expect(dec.decode(payload)).toEqual({ ok: false, error: 'closed' });
    expect(() => CODECS.PCMA.createDecoder(16000)).toThrow(RangeError);
  });

  it('prepareCodecs loads the Opus library, then Opus decoders are synchronous', async () => {
    await prepareCodecs(['PCMU']);
    expect(opusLoaded()).toBe(false);
    await prepareCodecs(['opus', 'PCMU', 'opus']);
    expect(opusLoaded()).toBe(true);
    const dec = CODECS.opus.createDecoder(16000);
    const enc = CODECS.opus.createEncoder(16000, { fec: true });
    const r = dec.decode(enc.encode(new Int16Array(320)));
    expect(r.ok && r.pcm.length).toBe(320);
    dec.close();
    enc.close();
  });
});
