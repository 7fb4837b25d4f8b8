/**
 * runSmoke end to end on loopback: two Softphones in one process through a
 * LocalPbx (which challenges the INVITE with 407 and relays it, like
 * RingCentral's edge), and the ways a run fails: a refused registration, a
 * busy callee, a target nobody answers for.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SipInfo } from '../../src/config/sip-info.js';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { runSmoke, type SmokeRunOptions } from '../../src/smoke/run.js';
import { freePort, freeUdpPortRange } from '../helpers/ports.js';

const CALLER = { username: '16505550401', authorizationId: '9401', password: 'Caller-Secret-4' };
const CALLEE = { username: '16505550402', authorizationId: '9402', password: 'Callee-Secret-4' };

/**
 * Limits for runs on a shared, loaded test machine: both phones run in one
 * process, and a stall of its event loop shows as late packets and clipped or
 * shifted tones, exactly as it would in production. The checks' precision is
 * proven on synthetic recordings (test/smoke); end-to-end runs prove the
 * plumbing, so they tolerate a starved event loop.
 */
const LOADED_MACHINE = { maxLossPercent: 5, toneToleranceMs: 100, maxJitterMs: 100 };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A LocalPbx with both users, and a run against it (the caller's proxy can be pointed elsewhere). */
async function setup(
  overrides: Partial<SmokeRunOptions> = {},
  callerProxy?: { host: string; port: number },
  phone: SmokeRunOptions['phone'] = {},
) {
  const pbx = await LocalPbx.listen({ users: [CALLER, CALLEE] });
  cleanups.push(() => pbx.close());
  const recordDir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-smoke-'));
  cleanups.push(() => rmSync(recordDir, { recursive: true, force: true }));
  const min = await freeUdpPortRange(8);
  const info = (u: typeof CALLER): SipInfo => ({
    ...u,
    domain: pbx.domain,
    outboundProxy: pbx.address,
    transport: 'tcp',
  });
  const run = () =>
    runSmoke({
      caller: callerProxy ? { ...info(CALLER), outboundProxy: callerProxy } : info(CALLER),
      callee: info(CALLEE),
      target: CALLEE.username,
      recordDir,
      timeoutMs: 20_000,
      limits: LOADED_MACHINE,
      phone: { mediaIp: '127.0.0.1', rtpPorts: { min, max: min + 7 }, ...phone },
      ...overrides,
    });
  return { pbx, recordDir, run };
}

const byName = (checks: { name: string }[]) => checks.map((c) => c.name);

describe('runSmoke', () => {
  it.each<[string, SmokeRunOptions['phone'], string]>([
    ['G.711', { codecs: ['PCMU', 'PCMA'] }, 'PCMU'],
    ['Opus (the default) over SRTP', { srtp: 'required' }, 'opus'],
  ])(
    'passes on loopback with %s: tones, DTMF, latency, loss, jitter both ways; both recordings kept',
    async (_name, phone, codec) => {
      const steps: string[] = [];
      const { pbx, recordDir, run } = await setup({ onStep: (s) => steps.push(s.step) }, undefined, phone);
      const result = await run();
      expect(result.summary.failed.map((c) => `${c.name}: ${c.message}`)).toEqual([]);
      expect(result.summary.ok).toBe(true);
      expect(byName(result.checks)).toEqual([
        'caller.register',
        'callee.register',
        'call.answer',
        ...['callee', 'caller'].flatMap((s) =>
          ['tones', 'tone-durations', 'tone-order', 'dtmf', 'latency', 'loss', 'jitter'].map(
            (c) => `${s}.${c}`,
          ),
        ),
        'call.hangup',
      ]);
      expect(result.checks.every((c) => c.status === 'pass')).toBe(true);
      expect(result.codec).toBe(codec);
      // Mouth to ear on loopback: transit (~0) + the live stream's adaptive delay, which starts
      // at its 40 ms minimum, give or take the ticks (a sender tick that runs late shortens it:
      // the jitter buffer keeps the stream's phase).
      for (const side of ['caller', 'callee']) {
        const latency = result.checks.find((c) => c.name === `${side}.latency`)!.value as number;
        expect(latency).toBeGreaterThan(15);
        expect(latency).toBeLessThan(200);
      }
      // Jitter is the receiver's RFC 3550 interarrival jitter over the audio, not the DTMF estimate.
      for (const side of ['caller', 'callee']) {
        const jitter = result.checks.find((c) => c.name === `${side}.jitter`)!;
        expect(jitter.message).toMatch(/^RFC 3550 interarrival jitter over the audio packets/);
        expect(jitter.value).toBeGreaterThanOrEqual(0);
      }
      expect(result.sides.callee.wav).toBe(path.join(recordDir, 'callee.wav'));
      expect(result.sides.caller.wav).toBe(path.join(recordDir, 'caller.wav'));
      expect(existsSync(path.join(recordDir, 'caller.wav'))).toBe(true);
      expect(result.sides.callee.dtmf.map((d) => d.digit).join('')).toBe('159#');
      expect(result.sides.caller.dtmf.map((d) => d.digit).join('')).toBe('*260');
      expect(result.sides.callee.end?.reason).toBe('remote-bye');
      // The devices unregistered.
      expect(pbx.binding(CALLER.username)).toBeUndefined();
      expect(pbx.binding(CALLEE.username)).toBeUndefined();
      expect(steps).toEqual(['registering', 'dialing', 'exchanging', 'hanging-up', 'analysing']);
    },
  );

  it('fails call.answer with the status when the callee is busy; the rest is skipped', async () => {
    const { pbx, run } = await setup();
    pbx.calleeStatus.set(CALLEE.username, 486);
    const result = await run();
    expect(result.summary.ok).toBe(false);
    expect(result.summary.failed.map((c) => c.name)).toEqual(['call.answer']);
    expect(result.summary.failed[0]!.message).toBe(`calling ${CALLEE.username} failed: 486 Busy Here`);
    expect(result.checks.filter((c) => c.status === 'skip')).toHaveLength(15);
    expect(result.checks.find((c) => c.name === 'callee.tones')!.message).toBe(
      'not checked: the call was not answered',
    );
  });

  it('fails the registration of a device whose password is refused, naming its flag', async () => {
    const { pbx, run } = await setup();
    pbx.rejectUsers.add(CALLEE.username);
    const result = await run();
    const reg = result.checks.find((c) => c.name === 'callee.register')!;
    expect(reg.status).toBe('fail');
    expect(reg.message).toMatch(/^--callee: /);
    expect(result.checks.find((c) => c.name === 'caller.register')!.status).toBe('pass');
    expect(result.summary.failed.map((c) => c.name)).toEqual(['callee.register']);
    expect(result.sides.callee.wav).toBeUndefined();
  });

  it('fails call.answer for a target that is not registered (404)', async () => {
    const { run } = await setup({ target: '16505550499' });
    const result = await run();
    expect(result.summary.failed.map((c) => c.message)).toEqual([
      'calling 16505550499 failed: 404 Not Found',
    ]);
  });

  it('an abort (Ctrl-C, a cancelled CI job) mid-call still hangs up and unregisters; the run fails', async () => {
    const abort = new AbortController();
    const { pbx, run } = await setup({
      signal: abort.signal,
      onStep: (s) => {
        if (s.step === 'exchanging') abort.abort();
      },
    });
    const result = await run();
    expect(result.summary.ok).toBe(false);
    expect(result.checks.find((c) => c.name === 'call.hangup')!.status).toBe('pass');
    expect(result.checks.find((c) => c.name === 'callee.dtmf')!.status).toBe('fail');
    expect(pbx.binding(CALLER.username)).toBeUndefined();
    expect(pbx.binding(CALLEE.username)).toBeUndefined();
  });

  it('an abort before registering fails both registrations as interrupted', async () => {
    const abort = new AbortController();
    abort.abort();
    const { run } = await setup({ signal: abort.signal });
    const result = await run();
    expect(result.checks.slice(0, 2).map((c) => c.message)).toEqual([
      'not registered: the run was interrupted',
      'not registered: the run was interrupted',
    ]);
    expect(result.summary.failed.map((c) => c.name)).toEqual(['caller.register', 'callee.register']);
  });

  it('a proxy that refuses connections is retried until the budget runs out; the check says why', async () => {
    const closed = await freePort('tcp');
    const { run } = await setup({ timeoutMs: 2500 }, { host: '127.0.0.1', port: closed });
    const result = await run();
    const reg = result.checks.find((c) => c.name === 'caller.register')!;
    expect(reg.status).toBe('fail');
    expect(reg.message).toMatch(/^not registered: --timeout 3 s passed \(last attempt: .*ECONNREFUSED/);
    expect(result.checks.find((c) => c.name === 'callee.register')!.status).toBe('pass');
  });
});
