/** JUnit XML of the checks: well-formed (parsed back strictly), counts, failure and skip elements, escaping. */
import { describe, expect, it } from 'vitest';
import type { Check } from '../../src/smoke/checks.js';
import { toJUnit } from '../../src/smoke/junit.js';
import { findAll, parseXml } from '../helpers/xml.js';

const checks: Check[] = [
  {
    name: 'caller.register',
    status: 'pass',
    value: 12,
    limit: null,
    unit: 'ms',
    message: 'registered in 12 ms',
  },
  {
    name: 'call.answer',
    status: 'fail',
    value: 486,
    limit: null,
    unit: 'ms',
    // Text from the network: quotes, markup, ampersands, a control character, a line break.
    message: 'calling 101 failed: 486 "Busy" <Here> & \u0001gone\nnext line',
  },
  {
    name: 'callee.tones',
    status: 'skip',
    value: null,
    limit: 2,
    unit: '%',
    message: 'not checked: the call was not answered',
  },
  { name: 'callee.latency', status: 'pass', value: 71.2, limit: 400, unit: 'ms', message: 'p50 71 ms' },
];

function junit(list = checks) {
  return toJUnit({
    suite: 'rc-softphone smoke',
    checks: list,
    startedAt: new Date('2026-12-01T10:20:30.456Z'),
    durationMs: 4321,
    properties: { target: 'sip:101@example.com', codec: 'PCMU', missing: undefined },
    hostname: 'ci-runner',
  });
}

describe('toJUnit', () => {
  it('is well-formed XML with one testsuite and one testcase per check', () => {
    const root = parseXml(junit());
    expect(root.name).toBe('testsuites');
    const suites = findAll(root, 'testsuite');
    expect(suites).toHaveLength(1);
    expect(suites[0]!.attributes).toMatchObject({
      name: 'rc-softphone smoke',
      tests: '4',
      failures: '1',
      errors: '0',
      skipped: '1',
      time: '4.321',
      timestamp: '2026-12-01T10:20:30',
      hostname: 'ci-runner',
    });
    expect(root.attributes).toMatchObject({ tests: '4', failures: '1', skipped: '1' });
    const cases = findAll(root, 'testcase');
    expect(cases.map((c) => c.attributes.name)).toEqual(checks.map((c) => c.name));
    expect(cases.every((c) => c.attributes.classname === 'rc-softphone.smoke')).toBe(true);
    const props = Object.fromEntries(
      findAll(root, 'property').map((p) => [p.attributes.name, p.attributes.value]),
    );
    expect(props).toEqual({ timezone: 'UTC', target: 'sip:101@example.com', codec: 'PCMU' });
  });

  it('gives a failed check a <failure> with its message, a skipped one <skipped>, a passed one neither', () => {
    const cases = findAll(parseXml(junit()), 'testcase');
    const [pass, fail, skip, latency] = cases;
    expect(pass!.children.map((c) => c.name)).toEqual(['system-out']);
    expect(pass!.children[0]!.text).toBe('value 12 ms: registered in 12 ms');
    const failure = fail!.children[0]!;
    expect(failure.name).toBe('failure');
    expect(failure.attributes.type).toBe('call.answer');
    // Escaped on the way out, exact on the way back in; the control character replaced.
    expect(failure.attributes.message).toBe('calling 101 failed: 486 "Busy" <Here> & \uFFFDgone\nnext line');
    expect(failure.text).toContain('value 486 ms: calling 101 failed');
    expect(skip!.children[0]!.name).toBe('skipped');
    expect(skip!.children[0]!.attributes.message).toBe('not checked: the call was not answered');
    expect(latency!.children[0]!.text).toBe('value 71.2 ms, limit ≤ 400 ms: p50 71 ms');
  });

  it('stays well-formed with no checks and with lone surrogates in a message', () => {
    expect(findAll(parseXml(junit([])), 'testcase')).toHaveLength(0);
    const odd = [{ ...checks[1]!, message: 'bad \uD800 half' }];
    expect(findAll(parseXml(junit(odd)), 'failure')[0]!.attributes.message).toBe('bad \uFFFD half');
  });

  it('the reader used here rejects what is not well-formed', () => {
    expect(() => parseXml('<a><b></a></b>')).toThrow(/closes/);
    expect(() => parseXml('<a x="1" x="2"/>')).toThrow(/duplicate/);
    expect(() => parseXml('<a>1 < 2</a>')).toThrow();
    expect(() => parseXml('<a>AT&T</a>')).toThrow(/raw '&'/);
    expect(() => parseXml('<a/><b/>')).toThrow(/after the root/);
    expect(() => parseXml('<a x=1/>')).toThrow(/not quoted/);
  });
});
