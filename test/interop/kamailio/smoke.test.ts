/**
 * `rc-softphone smoke` against the real Kamailio with two users, as the
 * README's CI recipe runs it against a RingCentral sandbox with two
 * extensions: both devices register (401 digest), the caller's INVITE is
 * routed by Kamailio to the callee's registered flow (Record-Routed), media
 * flows device to device, the BYE crosses Kamailio, and every check passes.
 *
 * Written against the harness as it is: Kamailio does not challenge the
 * INVITE yet (a 407 would be answered: the realm is the registrar's).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { saveSipInfoFile } from '../../../src/config/sip-info.js';
import { runCli } from '../../helpers/cli.js';
import { tempDir } from '../../helpers/dirs.js';
import { freeUdpPortRange } from '../../helpers/ports.js';
import { describeInterop } from '../../helpers/tools.js';
import { findAll, parseXml } from '../../helpers/xml.js';
import { startKamailio } from './harness.js';

const CALLER = { username: '16506661001', authorizationId: '803001', password: 'smoke-caller-secret' };
const CALLEE = { username: '16506661002', authorizationId: '803002', password: 'smoke-callee-secret' };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describeInterop('smoke against Kamailio (two users)', ['kamailio', 'kamcmd'], () => {
  it('passes every check: tones, DTMF, latency, loss and jitter both ways, BYE seen; JUnit and report written', {
    timeout: 90_000,
  }, async () => {
    const kam = await startKamailio({ users: [CALLER, CALLEE] });
    cleanups.push(() => kam.stop());
    const cwd = tempDir(cleanups, 'rcsp-kam-smoke-');
    for (const [file, user] of [
      ['A.json', CALLER],
      ['B.json', CALLEE],
    ] as const) {
      await saveSipInfoFile(path.join(cwd, file), {
        ...user,
        domain: kam.domain,
        outboundProxy: { host: kam.host, port: kam.port },
        transport: 'tcp',
      });
    }
    const rtp = await freeUdpPortRange(8);
    const r = runCli(
      [
        'smoke',
        '--caller',
        'A.json',
        '--callee',
        'B.json',
        '--junit',
        'junit.xml',
        '--report',
        'report',
        '--media-ip',
        '127.0.0.1',
        '--rtp-ports',
        `${rtp}-${rtp + 7}`,
        '--log-format',
        'json',
        // Limits that tolerate a loaded machine (see test/cli/smoke.test.ts).
        '--max-loss-percent',
        '5',
        '--tone-tolerance-ms',
        '100',
        '--max-jitter-ms',
        '100',
      ],
      { cwd, cleanups },
    );
    const code = await r.exit;
    const checks = r.events().filter((e) => e.event === 'smoke.check');
    const failed = checks.filter((c) => c.status !== 'pass').map((c) => `${c.name}: ${c.message}`);
    expect(failed, r.stderr()).toEqual([]);
    expect(code).toBe(0);
    expect(checks).toHaveLength(18);
    // Figures for the record (the run's log has them too).
    const value = (name: string) => checks.find((c) => c.name === name)?.value;
    console.info(
      `[smoke via Kamailio] latency to callee ${value('callee.latency')} ms, to caller ${value('caller.latency')} ms; ` +
        `loss ${value('callee.loss')} % / ${value('caller.loss')} %; jitter ${value('callee.jitter')} / ${value('caller.jitter')} ms`,
    );
    // The call went through Kamailio: it relayed the INVITE and the BYE.
    const stats = await kam.statistics();
    expect(stats['core:rcv_requests_invite']).toBeGreaterThanOrEqual(1);
    expect(stats['core:rcv_requests_bye']).toBeGreaterThanOrEqual(1);
    const junit = parseXml(readFileSync(path.join(cwd, 'junit.xml'), 'utf8'));
    expect(findAll(junit, 'testsuite')[0]!.attributes).toMatchObject({ tests: '18', failures: '0' });
    expect(readFileSync(path.join(cwd, 'report', 'index.html'), 'utf8')).toContain(
      '<span class="badge pass">PASS</span>',
    );
    // Both devices unregistered on the way out.
    expect(await kam.ulDump()).toEqual([]);
  });
});
