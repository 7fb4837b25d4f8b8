/**
 * `rc-softphone serve`, the real binary: every configuration problem found
 * before a socket opens (exit 2, naming the flag or the bots.json entry),
 * and a run with bots.json: the events of a call (DID, bot, headers, the
 * intent), --exit-after, the certificate printed and kept across runs.
 */
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type CliRun, runCli } from '../helpers/cli.js';
import { freeUdpPortRange } from '../helpers/ports.js';
import { offer, RingCx } from '../helpers/ringcx.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function dir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'rcsp-cli-serve-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function run(args: string[], cwd?: string): CliRun {
  return runCli(['serve', ...args], { cleanups, ...(cwd !== undefined && { cwd }) });
}

type Event = Record<string, unknown> & { event?: string };

function nextEvent(r: CliRun, test: (e: Event) => boolean, timeoutMs = 20_000): Promise<Event> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const found = (r.events() as Event[]).find(test);
      if (found) {
        clear();
        resolve(found);
      }
      return found !== undefined;
    };
    const onExit = () => {
      if (!check()) {
        clear();
        reject(new Error(`serve exited: ${r.stderr()}`));
      }
    };
    const timer = setTimeout(() => {
      clear();
      reject(new Error(`no such event within ${timeoutMs} ms: ${r.stdout().slice(-2000)}`));
    }, timeoutMs);
    const clear = () => {
      clearTimeout(timer);
      r.child.stdout?.off('data', check);
      r.child.off('exit', onExit);
    };
    r.child.stdout?.on('data', check);
    r.child.once('exit', onExit);
    check();
  });
}

const LISTEN = ['--listen', 'tcp://127.0.0.1:0'];
const ALLOW = ['--allow', '127.0.0.1'];

describe('rc-softphone serve: configuration', () => {
  const cases: [string, string[], RegExp, ((d: string) => void)?][] = [
    [
      'no --listen',
      [...ALLOW],
      /serve needs at least one --listen \(example: --listen tcp:\/\/0\.0\.0\.0:5060/,
    ],
    [
      'a bad --listen',
      ['--listen', 'tcp://localhost:5060', ...ALLOW],
      /--listen tcp:\/\/localhost:5060: localhost is not an IP address/,
    ],
    ['no --allow', [...LISTEN], /serve admits nobody without --allow or --allow-file/],
    [
      'a bad --allow',
      [...LISTEN, '--allow', '10.0.0.0/40'],
      /--allow "10\.0\.0\.0\/40": the prefix length must be 0-32/,
    ],
    ['a missing --allow-file', [...LISTEN, '--allow-file', 'nope.txt'], /--allow-file nope\.txt: .*ENOENT/],
    [
      'a bad line in --allow-file',
      [...LISTEN, '--allow-file', 'allow.txt'],
      /--allow-file allow\.txt: line 2: "bogus"/,
      (d) => writeFileSync(path.join(d, 'allow.txt'), '10.0.0.0/8\nbogus\n'),
    ],
    [
      'bots.json that is not JSON',
      [...LISTEN, ...ALLOW, '--bots', 'bots.json'],
      /--bots bots\.json: bots\.json: is not JSON/,
      (d) => writeFileSync(path.join(d, 'bots.json'), '{'),
    ],
    [
      'a bots.json entry with a bad stream URL',
      [...LISTEN, ...ALLOW, '--bots', 'bots.json'],
      /--bots bots\.json: bots\[1\]\.streamUrl: must start with ws:\/\//,
      (d) =>
        writeFileSync(
          path.join(d, 'bots.json'),
          JSON.stringify({ bots: [{ did: '1' }, { did: '2', streamUrl: 'http://x' }] }),
        ),
    ],
    [
      '--did with --bots',
      [...LISTEN, ...ALLOW, '--bots', 'bots.json', '--did', '1'],
      /--did describes the one bot of the flags/,
      (d) => writeFileSync(path.join(d, 'bots.json'), '{"bots":[{"did":"1"}]}'),
    ],
    [
      '--tls-cert without --tls-key',
      ['--listen', 'tls://127.0.0.1:0', ...ALLOW, '--tls-cert', 'c.pem'],
      /--tls-cert and --tls-key go together/,
    ],
    [
      'an unreadable --tls-cert',
      ['--listen', 'tls://127.0.0.1:0', ...ALLOW, '--tls-cert', 'c.pem', '--tls-key', 'k.pem'],
      /^rc-softphone: --tls-cert c\.pem: .*ENOENT/,
    ],
    ['an empty --did', [...LISTEN, ...ALLOW, '--did', ' '], /--did needs a number or a name/],
    [
      'a bad --srtp',
      [...LISTEN, ...ALLOW, '--srtp', 'maybe'],
      /--srtp must be required, optional or off, got "maybe"/,
    ],
    [
      'a bad --stream-url',
      [...LISTEN, ...ALLOW, '--stream-url', 'http://x'],
      /--stream-url must start with ws:\/\//,
    ],
    ['a bad --codecs', [...LISTEN, ...ALLOW, '--codecs', 'G729'], /--codecs: unknown codec "G729"/],
    [
      'a record dir that is a file',
      [...LISTEN, ...ALLOW, '--record-dir', 'file'],
      /--record-dir file: is a file/,
      (d) => writeFileSync(path.join(d, 'file'), ''),
    ],
  ];
  for (const [what, args, message, prepare] of cases) {
    it(`${what}: exit 2, the problem named, nothing opened`, async () => {
      const d = dir();
      prepare?.(d);
      const r = run(args, d);
      expect(await r.exit).toBe(2);
      expect(r.stderr()).toMatch(message);
      expect(r.stdout()).not.toContain('serve.listening');
    });
  }
});

describe('rc-softphone serve: a run', () => {
  it('answers a call for the bot bots.json names, prints its events with the DID, bot, headers and intent, and exits after it', async () => {
    const d = dir();
    const rtpMin = await freeUdpPortRange(20);
    writeFileSync(
      path.join(d, 'bots.json'),
      JSON.stringify({
        bots: [
          { name: 'other', did: '16505550199' },
          {
            name: 'billing',
            did: '16505550100',
            recordDir: 'billing-calls',
            pipe: `head -c 3200 > /dev/null; echo '{"rcInfo": {"intent": "pay", "final": true}}'; cat > /dev/null`,
          },
        ],
      }),
    );
    const r = run(
      [
        ...[
          '--listen',
          'udp://127.0.0.1:0',
          '--listen',
          'tls://127.0.0.1:0',
          ...ALLOW,
          '--bots',
          'bots.json',
        ],
        ...['--rtp-ports', `${rtpMin}-${rtpMin + 19}`, '--media-ip', '127.0.0.1', '--exit-after', '1'],
        ...['--log-format', 'json'],
      ],
      d,
    );
    const certificate = await nextEvent(r, (e) => e.event === 'serve.certificate');
    expect(certificate).toMatchObject({
      source: 'created',
      path: path.join('.rc-softphone', 'serve-cert.pem'),
    });
    expect(certificate.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const listening = await nextEvent(r, (e) => e.event === 'serve.listening');
    const udpUrl = (listening.addresses as string[]).find((u) => u.startsWith('udp://')) as string;
    const rx = await RingCx.connect({ transport: 'udp', port: Number(udpUrl.split(':').pop()) });
    cleanups.push(() => rx.close());
    const rtp = dgram.createSocket('udp4');
    cleanups.push(() => rtp.close());
    await new Promise<void>((resolve) => rtp.bind(0, '127.0.0.1', resolve));
    const call = await rx.invite({
      did: '16505550100',
      sdp: offer(rtp.address().port),
      headers: [['X-Agent', '7']],
    });
    expect(call.final.status).toBe(200);
    const info = await call.nextInfo();
    expect(JSON.parse(Buffer.from(info.body).toString('utf8'))).toEqual({ intent: 'pay', final: true });
    await nextEvent(r, (e) => e.event === 'call.intent');
    expect((await call.bye()).status).toBe(200);
    expect(await r.exit).toBe(0);
    const events = r.events() as Event[];
    const incoming = events.find((e) => e.event === 'call.incoming');
    expect(incoming).toMatchObject({ did: '16505550100', bot: 'billing', caller: '16505550123' });
    expect(incoming?.sipHeaders).toMatchObject({ 'X-Agent': '7' });
    expect(events.find((e) => e.event === 'call.intent')).toMatchObject({
      source: 'pipe',
      final: true,
      status: 200,
      info: { intent: 'pay', final: true },
    });
    const ended = events.find((e) => e.event === 'call.ended');
    expect(ended).toMatchObject({ reason: 'remote-bye', did: '16505550100', bot: 'billing', intents: 1 });
    expect(String(ended?.wav)).toContain(`billing-calls${path.sep}`);
    expect(events.find((e) => e.event === 'serve.stats')).toMatchObject({ open: 0 });

    // The next run presents the same certificate.
    const again = run(
      ['--listen', 'tls://127.0.0.1:0', ...ALLOW, '--did', '1', '--no-record', '--log-format', 'json'],
      d,
    );
    const second = await nextEvent(again, (e) => e.event === 'serve.certificate');
    expect(second).toMatchObject({ source: 'stored', fingerprint: certificate.fingerprint });
    await nextEvent(again, (e) => e.event === 'serve.listening');
    again.child.kill('SIGINT');
    expect(await again.exit).toBe(0);
  });
});
