/** The verdicts as pure functions of what was measured, and the table. */
import { describe, expect, it } from 'vitest';
import {
  answerCheck,
  type Check,
  DEFAULT_LIMITS,
  dtmfCheck,
  formatTable,
  hangupCheck,
  jitterCheck,
  latencyCheck,
  lossCheck,
  registerCheck,
  skipped,
  summarize,
  tonesCheck,
} from '../../src/smoke/checks.js';

describe('dtmfCheck: every digit exactly once, in order', () => {
  it('passes the exact sequence', () => {
    expect(dtmfCheck('callee', '159#', ['1', '5', '9', '#'])).toMatchObject({
      name: 'callee.dtmf',
      status: 'pass',
      value: '159#',
      limit: '159#',
    });
  });

  it.each([
    [['1', '5', '5', '9', '#'], '5 2 times'],
    [['1', '9', '#'], '5 missing'],
    [[], '1 missing, 5 missing, 9 missing, # missing'],
    [['1', '5', '9', '#', '7'], '7 not sent'],
    [['5', '1', '9', '#'], 'out of order'],
  ])('fails %j: %s', (received, problem) => {
    const check = dtmfCheck('callee', '159#', received);
    expect(check.status).toBe('fail');
    expect(check.value).toBe(received.join(''));
    expect(check.message).toContain(problem);
  });

  it('counts a digit sent twice', () => {
    expect(dtmfCheck('caller', '*22', ['*', '2']).message).toContain('2 1 of 2 times');
    expect(dtmfCheck('caller', '*22', ['*', '2', '2']).status).toBe('pass');
  });

  it('is skipped when the sender could not send', () => {
    expect(dtmfCheck('caller', '*260', [], 'no telephone-event')).toMatchObject({
      status: 'skip',
      value: null,
    });
  });
});

describe('latency, loss, jitter', () => {
  it('latency is the p50 over the tones heard, against the limit', () => {
    const pass = latencyCheck('callee', [72, undefined, 70, 90], [0.4, 0.5], 400, 70);
    expect(pass).toMatchObject({ status: 'pass', value: 72, limit: 400, unit: 'ms' });
    expect(pass.message).toContain('over 3 tones');
    expect(pass.message).toContain("incl. the receiver's playout delay (p50 70 ms)");
    expect(latencyCheck('callee', [72], [], 400, undefined).message).toMatch(
      /incl. the receiver's playout delay$/,
    );
    expect(pass.message).toContain('DTMF transit p50 0.5 ms');
    expect(latencyCheck('callee', [72], [], 400, 40, 12.5).message).toContain('RTCP round trip 13 ms');
    expect(latencyCheck('callee', [500, 420], [], 400, 70)).toMatchObject({ status: 'fail', value: 460 });
    expect(latencyCheck('callee', [undefined], [], 400, 70).status).toBe('skip');
  });

  it('loss counts lost and late packets against those expected', () => {
    expect(lossCheck('caller', { received: 199, lost: 1, late: 0 }, 1)).toMatchObject({
      status: 'pass',
      value: 0.5,
    });
    const fail = lossCheck('caller', { received: 95, lost: 3, late: 2 }, 1);
    expect(fail).toMatchObject({ status: 'fail', value: 5.1 });
    expect(fail.message).toBe('3 lost and 2 too late of 98 packets');
    expect(lossCheck('caller', { received: 0, lost: 0, late: 0 }, 1)).toMatchObject({
      status: 'fail',
      message: 'no RTP arrived',
    });
    expect(lossCheck('caller', undefined, 1).status).toBe('skip');
  });

  it('jitter against its limit; skipped without two RFC 4733 presses', () => {
    expect(jitterCheck('callee', [1, 3, 1], 2, 30)).toMatchObject({ status: 'pass', value: 2 });
    expect(jitterCheck('callee', [1, 80], 79, 30).status).toBe('fail');
    expect(jitterCheck('callee', [1], undefined, 30).status).toBe('skip');
    // The receiver's RFC 3550 interarrival jitter, when it has one, is the figure; DTMF's beside it.
    const interarrival = jitterCheck('callee', [1, 3, 1], 2, 30, 0.61);
    expect(interarrival).toMatchObject({ status: 'pass', value: 0.61 });
    expect(interarrival.message).toMatch(
      /^RFC 3550 interarrival jitter over the audio packets; mean transit change over 3 DTMF packets/,
    );
    expect(jitterCheck('callee', [], undefined, 30, 31).status).toBe('fail');
  });
});

describe('registration, answer, hang-up', () => {
  it('register', () => {
    expect(registerCheck('caller', { ok: true, ms: 12.3 })).toMatchObject({ status: 'pass', value: 12 });
    expect(registerCheck('callee', { ok: false, message: '--callee: 403 Forbidden' })).toMatchObject({
      name: 'callee.register',
      status: 'fail',
      message: '--callee: 403 Forbidden',
    });
  });

  it('answer: by the callee, by someone else, or not at all', () => {
    expect(answerCheck('101', { answered: true, calleeAnswered: true, ms: 80 }).status).toBe('pass');
    expect(answerCheck('101', { answered: true, calleeAnswered: false }).message).toContain('voicemail');
    const busy = answerCheck('101', {
      answered: false,
      calleeAnswered: false,
      status: 486,
      reason: 'Busy Here',
    });
    expect(busy).toMatchObject({
      status: 'fail',
      value: 486,
      unit: '',
      message: 'calling 101 failed: 486 Busy Here',
    });
  });

  it('hang-up: the caller hung up and the callee saw the BYE', () => {
    expect(hangupCheck('local-hangup', 'remote-bye').status).toBe('pass');
    expect(hangupCheck('remote-bye', 'local-hangup').status).toBe('fail');
    expect(hangupCheck('local-hangup', undefined).message).toContain('callee ended (still up)');
  });
});

describe('summary and table', () => {
  const checks: Check[] = [
    registerCheck('caller', { ok: true, ms: 5 }),
    tonesCheck('callee', undefined, 'no recording'),
    lossCheck('callee', { received: 50, lost: 10, late: 0 }, DEFAULT_LIMITS.maxLossPercent),
  ];

  it('fails when any check failed, naming it; a run of only skips does not pass', () => {
    const s = summarize(checks);
    expect(s).toMatchObject({ ok: false, passed: 1, skipped: 1 });
    expect(s.failed.map((c) => c.name)).toEqual(['callee.loss']);
    expect(summarize([checks[0]!]).ok).toBe(true);
    expect(summarize([skipped('x', 'y')]).ok).toBe(false);
  });

  it('prints one aligned row per check, limits as ≤ or ±', () => {
    const lines = formatTable(checks).split('\n');
    expect(lines[0]).toMatch(/^check\s+result\s+value\s+limit\s+details$/);
    expect(lines).toHaveLength(2 + checks.length);
    expect(lines[2]).toMatch(/^caller\.register\s+PASS\s+5 ms\s+registered in 5\.0 ms$/);
    expect(lines[3]).toMatch(/^callee\.tones\s+SKIP\s+-\s+±2 %\s+not checked: no recording$/);
    expect(lines[4]).toMatch(/^callee\.loss\s+FAIL\s+16\.67 %\s+≤ 1 %\s+10 lost/);
    // Columns line up: the result column starts at the same place on every row.
    const at = lines[0]!.indexOf('result');
    for (const line of lines.slice(2)) expect(line.slice(at, at + 4)).toMatch(/PASS|FAIL|SKIP/);
  });
});
