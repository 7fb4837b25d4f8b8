/**
 * `rc-softphone call` through the real binary: a LocalPbx relays the call to
 * a library Softphone that answers; exit codes, JSON events, DTMF and play.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Call } from '../../src/call/call.js';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { Softphone } from '../../src/softphone.js';
import { runCli } from '../helpers/cli.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';

const CALLER = { username: '16505550301', authorizationId: '9301', password: 'Caller-Secret-1' };
const CALLEE = { username: '16505550302', authorizationId: '9302', password: 'Callee-Secret-2' };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const pbx = await LocalPbx.listen({ users: [CALLER, CALLEE] });
  cleanups.push(() => pbx.close());
  const min = await freeUdpPortRange(4);
  const callee = new Softphone({
    sipInfo: { ...CALLEE, domain: pbx.domain, outboundProxy: pbx.address, transport: 'tcp' },
    rtpPorts: { min, max: min + 3 },
    mediaIp: '127.0.0.1',
  });
  cleanups.push(() => callee.stop());
  await callee.start();
  const calls: Call[] = [];
  callee.on('callAnswered', (c) => calls.push(c));
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'rcsp-callcli-'));
  cleanups.push(() => rmSync(cwd, { recursive: true, force: true }));
  const rtp = await freeUdpPortRange(4);
  const run = (args: string[]) =>
    runCli(
      [
        'call',
        ...args,
        '--log-format',
        'json',
        '--rtp-ports',
        `${rtp}-${rtp + 3}`,
        '--media-ip',
        '127.0.0.1',
      ],
      {
        cwd,
        cleanups,
        env: {
          SIP_INFO_USERNAME: CALLER.username,
          SIP_INFO_PASSWORD: CALLER.password,
          SIP_INFO_AUTHORIZATION_ID: CALLER.authorizationId,
          SIP_INFO_DOMAIN: pbx.domain,
          SIP_INFO_OUTBOUND_PROXY: `${pbx.address.host}:${pbx.address.port}`,
          SIP_INFO_TRANSPORT: 'TCP',
        },
      },
    );
  return { pbx, callee, calls, cwd, run };
}

/** A 16-bit mono WAV of a 700 Hz tone at 16 kHz (played after conversion to 8 kHz). */
function toneWav(file: string, ms: number): void {
  const n = (16000 * ms) / 1000;
  const data = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++)
    data.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 700 * i) / 16000)), i * 2);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVEfmt ', 8, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(16000, 24);
  h.writeUInt32LE(32000, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(data.length, 40);
  writeFileSync(file, Buffer.concat([h, data]));
}

describe('rc-softphone call', () => {
  it('calls, sends DTMF, plays a file, hangs up after it and exits 0 with the events and a recording', async () => {
    const { calls, cwd, run } = await setup();
    toneWav(path.join(cwd, 'prompt.wav'), 400);
    const r = run([CALLEE.username, '--dtmf', '4,2', '--play', 'prompt.wav', '--hangup-after-play']);
    await waitFor(() => calls.length === 1, { timeoutMs: 15_000 });
    const heard: string[] = [];
    calls[0]?.on('dtmf', (d) => heard.push(d.digit));
    expect(await r.exit).toBe(0);
    const names = r.events().map((e) => e.event);
    for (const name of [
      'call.outgoing',
      'call.answered',
      'call.dtmf.sent',
      'call.play',
      'call.ended',
      'unregistered',
    ]) {
      expect(names, r.stdout()).toContain(name);
    }
    expect(
      r
        .events()
        .filter((e) => e.event === 'call.dtmf.sent')
        .map((e) => e.digit),
    ).toEqual(['4', '2']);
    const ended = r.events().find((e) => e.event === 'call.ended');
    expect(ended).toMatchObject({ reason: 'local-hangup', direction: 'outbound' });
    expect(typeof ended?.wav).toBe('string');
    await waitFor(() => heard.length === 2);
    expect(heard).toEqual(['4', '2']);
  });

  it('exits 1 with the status when the callee refuses (call.failed 486)', async () => {
    const { pbx, run } = await setup();
    pbx.calleeStatus.set(CALLEE.username, 486);
    const r = run([CALLEE.username]);
    expect(await r.exit).toBe(1);
    expect(r.events().find((e) => e.event === 'call.failed')).toMatchObject({
      status: 486,
      reason: 'Busy Here',
    });
    expect(r.events().find((e) => e.event === 'call.ended')).toMatchObject({
      reason: 'rejected',
      status: 486,
    });
  });

  it('exits 2 naming the flag for bad --dtmf, --hangup-after-play without --play, and a bad target', async () => {
    const { run } = await setup();
    const dtmf = run([CALLEE.username, '--dtmf', '12x']);
    expect(await dtmf.exit).toBe(2);
    expect(dtmf.stderr()).toContain('--dtmf');
    const hangup = run([CALLEE.username, '--hangup-after-play']);
    expect(await hangup.exit).toBe(2);
    expect(hangup.stderr()).toContain('--play');
    const target = run(['not a number!']);
    expect(await target.exit).toBe(2);
    expect(target.stderr()).toContain('is not a number, an extension or a SIP URI');
  });
});
