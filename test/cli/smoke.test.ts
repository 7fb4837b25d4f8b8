/**
 * `rc-softphone smoke` through the real binary: two devices' provision-format
 * files in a temp dir, a LocalPbx in this process that relays the call
 * between them (407 on the INVITE, like RingCentral). A passing run (exit 0,
 * JUnit, kept recordings, the report), a refused call (exit 1 naming the
 * check), and configuration errors (exit 2 naming the flag, before any
 * network I/O).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { saveSipInfoFile } from '../../src/config/sip-info.js';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/dirs.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { readWav } from '../helpers/wav.js';
import { findAll, parseXml } from '../helpers/xml.js';

const A = { username: '16505550501', authorizationId: '9501', password: 'Smoke-Caller-Secret' };
const B = { username: '16505550502', authorizationId: '9502', password: 'Smoke-Callee-Secret' };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const pbx = await LocalPbx.listen({ users: [A, B] });
  cleanups.push(() => pbx.close());
  const registers: string[] = [];
  pbx.on('register', (r) => registers.push(r.username));
  const cwd = tempDir(cleanups, 'rcsp-smokecli-');
  for (const [file, user] of [
    ['A.json', A],
    ['B.json', B],
  ] as const) {
    await saveSipInfoFile(path.join(cwd, file), {
      ...user,
      domain: pbx.domain,
      outboundProxy: pbx.address,
      transport: 'tcp',
    });
  }
  const rtp = await freeUdpPortRange(8);
  const run = (args: string[]) =>
    runCli(
      [
        'smoke',
        '--caller',
        'A.json',
        '--callee',
        'B.json',
        '--media-ip',
        '127.0.0.1',
        '--rtp-ports',
        `${rtp}-${rtp + 7}`,
        ...args,
      ],
      { cwd, cleanups },
    );
  return { pbx, cwd, run, registers };
}

/**
 * Limits for runs on a shared, loaded test machine: both phones run in one
 * process, and a stall of its event loop shows as late packets and clipped or
 * shifted tones, exactly as it would in production. The checks' precision is
 * proven on synthetic recordings (test/smoke); end-to-end runs prove the
 * plumbing, so they tolerate a starved event loop.
 */
const LOADED_MACHINE = ['--max-loss-percent', '5', '--tone-tolerance-ms', '100', '--max-jitter-ms', '100'];

const CHECKS = [
  'caller.register',
  'callee.register',
  'call.answer',
  ...['callee', 'caller'].flatMap((s) =>
    ['tones', 'tone-durations', 'tone-order', 'dtmf', 'latency', 'loss', 'jitter'].map((c) => `${s}.${c}`),
  ),
  'call.hangup',
];

describe('rc-softphone smoke', () => {
  it('passes on loopback: exit 0, a smoke.check per check, JUnit, both WAVs kept, the report with both recordings', {
    timeout: 60_000,
  }, async () => {
    const { cwd, run } = await setup();
    const r = run([
      '--junit',
      'out/junit.xml',
      '--keep-recordings',
      'wavs',
      '--report',
      'report',
      '--log-format',
      'json',
      ...LOADED_MACHINE,
    ]);
    expect(await r.exit, r.stdout() + r.stderr()).toBe(0);
    const checks = r.events().filter((e) => e.event === 'smoke.check');
    expect(checks.map((c) => c.name)).toEqual(CHECKS);
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    for (const c of checks)
      expect(Object.keys(c)).toEqual(expect.arrayContaining(['name', 'ok', 'value', 'limit', 'message']));
    const latency = checks.find((c) => c.name === 'callee.latency')!;
    expect(latency).toMatchObject({ limit: 400, unit: 'ms' });
    expect(latency.value as number).toBeGreaterThan(15); // the live delay (40 ms at first) less up to a tick
    const result = r.events().find((e) => e.event === 'smoke.result');
    expect(result).toMatchObject({
      ok: true,
      passed: 18,
      failed: [],
      codec: 'opus', // the default preference, both devices offering it
      junit: 'out/junit.xml',
      report: path.join('report', 'index.html'),
      recordings: { caller: path.join('wavs', 'caller.wav'), callee: path.join('wavs', 'callee.wav') },
    });
    // The call itself was logged like `call` and `listen` log theirs.
    const names = r.events().map((e) => e.event);
    for (const e of [
      'smoke.start',
      'registered',
      'call.outgoing',
      'call.incoming',
      'call.dtmf',
      'call.ended',
    ])
      expect(names).toContain(e);

    const junit = parseXml(readFileSync(path.join(cwd, 'out/junit.xml'), 'utf8'));
    expect(findAll(junit, 'testsuite')[0]!.attributes).toMatchObject({
      tests: '18',
      failures: '0',
      skipped: '0',
    });
    expect(findAll(junit, 'testcase').map((t) => t.attributes.name)).toEqual(CHECKS);

    for (const side of ['caller', 'callee']) {
      const wav = readWav(path.join(cwd, 'wavs', `${side}.wav`));
      expect(wav.sampleRate).toBe(16000); // an Opus call is recorded wideband
      expect(wav.samples.length).toBeGreaterThan(16000 * 2); // lead-in, tones, DTMF: > 2 s
      expect(existsSync(path.join(cwd, 'wavs', `${side}.json`))).toBe(true);
      expect(readWav(path.join(cwd, 'report', `${side}.wav`)).samples).toEqual(wav.samples);
    }
    const html = readFileSync(path.join(cwd, 'report', 'index.html'), 'utf8');
    expect(html).toContain('<span class="badge pass">PASS</span>');
    for (const name of CHECKS) expect(html).toContain(`<code>${name}</code>`);
    expect(html).toContain('src="caller.wav"');
    expect(html).toContain('src="callee.wav"');
    expect(html.match(/<svg class="spec"/g)).toHaveLength(2);
    expect(html).not.toMatch(/<script|<link|https?:\/\//);
    // Neither password reaches the output or the files.
    for (const text of [
      r.stdout(),
      r.stderr(),
      html,
      readFileSync(path.join(cwd, 'out/junit.xml'), 'utf8'),
    ]) {
      expect(text).not.toContain(A.password);
      expect(text).not.toContain(B.password);
    }
  });

  it('exits 1 naming call.answer when the callee is busy (486); the table and JUnit say so', {
    timeout: 60_000,
  }, async () => {
    const { pbx, cwd, run } = await setup();
    pbx.calleeStatus.set(B.username, 486);
    const r = run(['--junit', 'junit.xml', '--report', 'report']);
    expect(await r.exit, r.stdout() + r.stderr()).toBe(1);
    const out = r.stdout();
    expect(out).toMatch(/^call\.answer\s+FAIL\s+486\s+calling sip:16505550502@\S+ failed: 486 Busy Here$/m);
    expect(out).toMatch(/^callee\.tones\s+SKIP\s/m);
    expect(out).toContain('FAIL: 1 of 18 checks failed: call.answer (calling sip:16505550502@');
    const junit = parseXml(readFileSync(path.join(cwd, 'junit.xml'), 'utf8'));
    expect(findAll(junit, 'testsuite')[0]!.attributes).toMatchObject({ failures: '1', skipped: '15' });
    expect(findAll(junit, 'failure')[0]!.attributes.message).toContain('486 Busy Here');
    const html = readFileSync(path.join(cwd, 'report', 'index.html'), 'utf8');
    expect(html).toContain('failed: call.answer');
    expect(html).toContain('No recording');
  });

  it('SIGTERM mid-call hangs up, unregisters both devices and exits 1 with the result', {
    timeout: 60_000,
  }, async () => {
    const { pbx, run } = await setup();
    const r = run(['--log-format', 'json']);
    await waitFor(() => r.events().some((e) => e.event === 'smoke.step' && e.step === 'exchanging'), {
      timeoutMs: 20_000,
    });
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(1);
    const names = r.events().map((e) => e.event);
    expect(names).toContain('shutdown');
    expect(names.filter((n) => n === 'unregistered')).toHaveLength(2);
    expect(r.events().find((e) => e.event === 'smoke.result')).toMatchObject({ ok: false });
    expect(pbx.binding(A.username)).toBeUndefined();
    expect(pbx.binding(B.username)).toBeUndefined();
  });

  it('exits 2 naming the flag for configuration errors, before any network I/O', async () => {
    const { cwd, run, registers } = await setup();
    writeFileSync(path.join(cwd, 'a-file'), 'x');
    mkdirSync(path.join(cwd, 'a-dir'));
    writeFileSync(path.join(cwd, 'broken.json'), '{ "sipInfo": { "username": "1" } }');
    const cases: [string[], RegExp][] = [
      [
        ['--caller', 'missing.json'],
        /--caller missing\.json: no such file \(make one with: rc-softphone provision --out missing\.json\)/,
      ],
      [['--callee', 'broken.json'], /--callee: Invalid SIP info file broken\.json/],
      [['--callee', 'A.json'], /--caller A\.json and --callee A\.json are the same device \(16505550501@/],
      [['--target', 'not a number!'], /--target "not a number!" is not a number, an extension or a SIP URI/],
      [['--report', 'a-file'], /--report a-file: is a file/],
      [['--keep-recordings', 'a-file'], /--keep-recordings a-file: /],
      [['--junit', 'a-dir'], /--junit a-dir: is a directory/],
      [['--max-loss-percent', 'lots'], /--max-loss-percent must be a number from 0 to 100/],
      [['--max-latency-ms', '0'], /--max-latency-ms must be an integer from 1/],
      [['--media-ip', 'nowhere'], /--media-ip /],
      [['--log-format', 'xml'], /--log-format must be "text" or "json"/],
    ];
    // Later flags win over the setup's --caller/--callee.
    const results = await Promise.all(
      cases.map(async ([args]) => {
        const r = run(args);
        return { code: await r.exit, stderr: r.stderr() };
      }),
    );
    results.forEach((res, i) => {
      expect(res.code, `${cases[i]![0].join(' ')}: ${res.stderr}`).toBe(2);
      expect(res.stderr).toMatch(cases[i]![1]);
    });
    const noCallee = runCli(['smoke', '--caller', 'A.json'], { cwd, cleanups });
    expect(await noCallee.exit).toBe(2);
    expect(noCallee.stderr()).toContain("required option '--callee <file>' not specified");
    expect(registers).toEqual([]);
  });
});
