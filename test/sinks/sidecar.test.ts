import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes, isSoftphoneError } from '../../src/errors.js';
import { type CallSidecar, writeSidecar, writeSidecarAsync } from '../../src/sinks/sidecar.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rc-sidecar-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function sample(): CallSidecar {
  return {
    callId: 'a84b4c76e66710@pc33',
    from: '"Alice" <sip:+16505550100@sip.ringcentral.com>;tag=1928301774',
    to: '<sip:bot@sip.ringcentral.com>;tag=a6c85cf',
    startedAt: '2024-02-29T03:04:05.678Z',
    endedAt: '2024-02-29T03:05:06.789Z',
    durationMs: 61_111,
    codec: 'PCMU/8000',
    sampleRate: 8000,
    wav: '20240229-030405_+16505550100_a84b4c76e66710_pc33.wav',
    endReason: 'remote-bye',
    stats: { received: 3050, lost: 3, late: 1, duplicate: 2, reordered: 4, foreignSource: 0, invalid: 1 },
    dtmf: [
      { digit: '1', atMs: 1500, source: 'rfc4733' },
      { digit: '#', atMs: 2300, source: 'info' },
    ],
  };
}

describe('writeSidecar', () => {
  it('writes pretty JSON that round-trips, with a trailing newline', () => {
    const path = join(dir, 'call.json');
    writeSidecar(path, sample());
    const text = readFileSync(path, 'utf8');
    expect(JSON.parse(text)).toEqual(sample());
    expect(text).toBe(`${JSON.stringify(sample(), null, 2)}\n`);
  });

  it('uses a fixed key order, known counters first, extra counters kept', () => {
    const path = join(dir, 'order.json');
    const s = sample();
    const shuffled = {
      dtmf: s.dtmf,
      stats: {
        extraCounter: 7,
        toString: 1,
        invalid: 1,
        foreignSource: 0,
        reordered: 4,
        duplicate: 2,
        late: 1,
        lost: 3,
        received: 3050,
      },
      endReason: s.endReason,
      wav: null,
      sampleRate: null,
      codec: null,
      durationMs: s.durationMs,
      endedAt: s.endedAt,
      startedAt: s.startedAt,
      to: s.to,
      from: s.from,
      callId: s.callId,
    } as CallSidecar;
    writeSidecar(path, shuffled);
    const parsed = JSON.parse(readFileSync(path, 'utf8'));
    expect(Object.keys(parsed)).toEqual([
      'callId',
      'from',
      'to',
      'startedAt',
      'endedAt',
      'durationMs',
      'codec',
      'sampleRate',
      'wav',
      'endReason',
      'stats',
      'dtmf',
    ]);
    expect(Object.keys(parsed.stats)).toEqual([
      'received',
      'lost',
      'late',
      'duplicate',
      'reordered',
      'foreignSource',
      'invalid',
      'extraCounter',
      'toString',
    ]);
    expect(parsed.stats.toString).toBe(1);
    expect(parsed.codec).toBeNull();
    expect(parsed.wav).toBeNull();
  });

  it('replaces an existing sidecar atomically and leaves no temp files', () => {
    const path = join(dir, 'call.json');
    writeFileSync(path, '{"old":true}');
    writeSidecar(path, sample());
    writeSidecar(path, { ...sample(), endReason: 'local-hangup' });
    expect(JSON.parse(readFileSync(path, 'utf8')).endReason).toBe('local-hangup');
    expect(readdirSync(dir)).toEqual(['call.json']);
  });

  it('creates the file with mode 0644 (umask applies)', () => {
    const path = join(dir, 'mode.json');
    writeSidecar(path, sample());
    const probe = join(dir, 'probe');
    writeFileSync(probe, '', { mode: 0o644 });
    expect(statSync(path).mode & 0o777).toBe(statSync(probe).mode & 0o777);
  });

  it('throws SINK_WRITE_FAILED and leaves nothing behind when it cannot write', () => {
    let thrown: unknown;
    try {
      writeSidecar(join(dir, 'missing', 'call.json'), sample());
    } catch (err) {
      thrown = err;
    }
    expect(isSoftphoneError(thrown, ErrorCodes.SINK_WRITE_FAILED)).toBe(true);

    // Renaming onto a directory fails after the temp file exists: the temp must be cleaned up.
    const sub = join(dir, 'taken.json');
    mkdirSync(sub);
    writeFileSync(join(dir, 'keep'), '');
    thrown = undefined;
    try {
      writeSidecar(sub, sample());
    } catch (err) {
      thrown = err;
    }
    expect(isSoftphoneError(thrown, ErrorCodes.SINK_WRITE_FAILED)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['keep', 'taken.json']);
  });
});

describe('writeSidecarAsync', () => {
  it('writes the same bytes as writeSidecar, atomically, mode 0644, no temp file left', async () => {
    const sync = join(dir, 'sync.json');
    const async = join(dir, 'async.json');
    writeSidecar(sync, sample());
    writeFileSync(async, '{"old":true}');
    await writeSidecarAsync(async, sample());
    expect(readFileSync(async, 'utf8')).toBe(readFileSync(sync, 'utf8'));
    expect(statSync(async).mode & 0o777).toBe(statSync(sync).mode & 0o777);
    expect(readdirSync(dir).sort()).toEqual(['async.json', 'sync.json']);
  });

  it('rejects with SINK_WRITE_FAILED and leaves nothing behind when it cannot write', async () => {
    await expect(writeSidecarAsync(join(dir, 'missing', 'call.json'), sample())).rejects.toSatisfy((err) =>
      isSoftphoneError(err, ErrorCodes.SINK_WRITE_FAILED),
    );
    const sub = join(dir, 'taken.json');
    mkdirSync(sub);
    writeFileSync(join(dir, 'keep'), '');
    await expect(writeSidecarAsync(sub, sample())).rejects.toSatisfy((err) =>
      isSoftphoneError(err, ErrorCodes.SINK_WRITE_FAILED),
    );
    expect(readdirSync(dir).sort()).toEqual(['keep', 'taken.json']);
  });
});
