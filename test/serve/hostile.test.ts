/**
 * `rc-softphone serve` (the real binary, its own process) under hostile
 * input on its listener: every RFC 4475 torture message and a slice of
 * PROTOS c07-sip (test/fixtures/protos) over TCP (one connection each) and
 * UDP (one datagram each), a burst of connections past the per-address
 * limit that send garbage and stay, and a slow trickle. Through all of it
 * the process stays up, and the next normal call is answered and recorded
 * sample-exact; the refusals and drops are counted in serve.stats.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type CliRun, runCli } from '../helpers/cli.js';
import { projectRoot } from '../helpers/paths.js';
import { freeUdpPortRange } from '../helpers/ports.js';
import { caseMessages, fillCase } from '../helpers/protos.js';
import { offer, RingCx, sendPaced, tonePackets } from '../helpers/ringcx.js';
import { readWav } from '../helpers/wav.js';
import { classifyRecording } from '../interop/kamailio/speech.js';

const RFC4475 = path.join(projectRoot, 'test', 'fixtures', 'rfc4475');
const PROTOS = path.join(projectRoot, 'test', 'fixtures', 'protos');
const DID = '16505550100';
const PER_IP = 40;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Event = Record<string, unknown> & { event?: string };

/** Resolves with the first JSON event `test` accepts, among those printed so far or later. */
function nextEvent(r: CliRun, test: (e: Event) => boolean, timeoutMs = 20_000): Promise<Event> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const found = (r.events() as Event[]).find(test);
      if (!found) return false;
      clear();
      resolve(found);
      return true;
    };
    const onData = () => check();
    const onExit = () => {
      if (!check()) {
        clear();
        reject(new Error(`serve exited before the event; stderr: ${r.stderr()}`));
      }
    };
    const timer = setTimeout(() => {
      clear();
      reject(new Error(`no such event within ${timeoutMs} ms; stdout tail: ${r.stdout().slice(-2000)}`));
    }, timeoutMs);
    const clear = () => {
      clearTimeout(timer);
      r.child.stdout?.off('data', onData);
      r.child.off('exit', onExit);
    };
    r.child.stdout?.on('data', onData);
    r.child.once('exit', onExit);
    check();
  });
}

/** Writes `bytes` on a new TCP connection, ends it, and resolves once the server has closed it too. */
function oneShot(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(bytes);
      s.end();
    });
    s.on('error', () => {});
    s.on('data', () => {});
    s.once('close', () => resolve());
  });
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** An OPTIONS over UDP from `socket`, and its 200: every datagram sent before it has been handled. */
async function udpProbe(socket: dgram.Socket, port: number, id: string): Promise<void> {
  const local = socket.address();
  const answered = new Promise<void>((resolve) => {
    const onMessage = (m: Buffer) => {
      if (m.toString('latin1').includes(id) && m.toString('latin1').startsWith('SIP/2.0 200')) {
        socket.off('message', onMessage);
        resolve();
      }
    };
    socket.on('message', onMessage);
  });
  socket.send(
    [
      'OPTIONS sip:bot@127.0.0.1 SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${local.port};branch=z9hG4bK-${id}`,
      'From: <sip:probe@127.0.0.1>;tag=p',
      'To: <sip:bot@127.0.0.1>',
      `Call-ID: ${id}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    port,
    '127.0.0.1',
  );
  await answered;
}

describe('serve under hostile input', () => {
  it('stays up through torture messages, PROTOS, a connection burst and a trickle; the next call is answered and recorded', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-hostile-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const rtpMin = await freeUdpPortRange(20);
    const r = runCli(
      [
        'serve',
        ...['--listen', 'tcp://127.0.0.1:0', '--listen', 'udp://127.0.0.1:0'],
        ...['--allow', '127.0.0.0/8', '--did', DID, '--record-dir', path.join(dir, 'rec')],
        ...['--rtp-ports', `${rtpMin}-${rtpMin + 19}`, '--media-ip', '127.0.0.1'],
        ...['--max-connections-per-ip', String(PER_IP), '--log-format', 'json'],
      ],
      { cwd: dir, cleanups },
    );
    const listening = await nextEvent(r, (e) => e.event === 'serve.listening');
    const urls = listening.addresses as string[];
    const port = (t: string) =>
      Number(
        urls
          .find((u) => u.startsWith(`${t}://`))
          ?.split(':')
          .pop(),
      );
    const tcp = port('tcp');
    const udpPort = port('udp');

    // A trickle: one whole message (the connection is proven), then a byte every 100 ms.
    const trickle = await RingCx.connect({ transport: 'tcp', port: tcp, localAddress: '127.0.0.4' });
    cleanups.push(() => trickle.close());
    expect((await trickle.options()).status).toBe(200);
    const invite = `INVITE sip:${DID}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.4:5060;branch=z9hG4bK-drip\r\n`;
    let drip = 0;
    const dripper = setInterval(() => {
      if (!trickle.closed && drip < invite.length) trickle.write(invite.slice(drip, ++drip));
    }, 100);
    cleanups.push(() => clearInterval(dripper));

    // RFC 4475 over TCP (a connection each) and UDP (a datagram each).
    const torture = readdirSync(RFC4475)
      .filter((f) => f.endsWith('.dat'))
      .map((f) => readFileSync(path.join(RFC4475, f)));
    expect(torture.length).toBeGreaterThan(40);
    for (const bytes of torture) await oneShot(tcp, bytes);
    const udp = dgram.createSocket('udp4');
    cleanups.push(() => udp.close());
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    for (const bytes of torture) udp.send(bytes, udpPort, '127.0.0.1');
    await udpProbe(udp, udpPort, 'probe-after-rfc4475');

    // PROTOS, placeholders filled as the suite's tool does (for a DID no bot answers: 404 at most).
    const cases = readdirSync(PROTOS).filter((f) => /^\d+$/.test(f));
    expect(cases.length).toBeGreaterThan(40);
    // The slice is the suite's bytes, unchanged (SHA256SUMS was made from the suite's checkout).
    const sums = readFileSync(path.join(PROTOS, 'SHA256SUMS'), 'utf8');
    for (const file of cases) {
      const sum = createHash('sha256')
        .update(readFileSync(path.join(PROTOS, file)))
        .digest('hex');
      expect(sums).toContain(`${sum}  ${file}`);
    }
    for (const [n, file] of cases.entries()) {
      const [raw] = caseMessages(readFileSync(path.join(PROTOS, file)));
      if (!raw) continue;
      const values = (transport: string) => ({
        '<To>': 'protos@127.0.0.1',
        '<From>': 'protos@127.0.0.1',
        '<From-Address>': '127.0.0.1',
        '<From-IP>': '127.0.0.1',
        '<Local-Port>': String(transport === 'udp' ? udp.address().port : 5060),
        '<Branch-ID>': `${transport}${n}`,
        '<Call-ID>': `protos-${transport}-${file}`,
        '<CSeq>': '1',
      });
      await oneShot(tcp, fillCase(raw, values('tcp')));
      udp.send(fillCase(raw, values('udp')), udpPort, '127.0.0.1');
    }
    await udpProbe(udp, udpPort, 'probe-after-protos');
    expect(alive(r.child)).toBe(true);

    // A burst: twice the per-address limit at once, each sending garbage and staying.
    const burst: net.Socket[] = [];
    await Promise.all(
      Array.from(
        { length: 2 * PER_IP },
        () =>
          new Promise<void>((resolve) => {
            const s = net.connect(tcp, '127.0.0.1', () => {
              s.write('\x16\x03\x01 not SIP at all, and no blank line');
              resolve();
            });
            s.on('error', () => resolve());
            burst.push(s);
          }),
      ),
    );
    cleanups.push(() => {
      for (const s of burst) s.destroy();
    });
    await nextEvent(r, (e) => e.event === 'serve.refused' && e.reason === 'too-many-from-address');

    // The next normal call (from another address: 127.0.0.1 is at its limit) is answered and recorded.
    const rtp = dgram.createSocket('udp4');
    cleanups.push(() => rtp.close());
    await new Promise<void>((resolve) => rtp.bind(0, '127.0.0.1', resolve));
    const rx = await RingCx.connect({ transport: 'tcp', port: tcp, localAddress: '127.0.0.2' });
    cleanups.push(() => rx.close());
    const call = await rx.invite({ did: DID, sdp: offer(rtp.address().port) });
    expect(call.final.status).toBe(200);
    const botRtp = Number(/^m=audio (\d+)/m.exec(Buffer.from(call.final.body).toString('utf8'))?.[1]);
    const { packets, pcm } = tonePackets(50);
    await sendPaced(rtp, packets, botRtp);
    // Loopback delivers at once; a moment for the last datagrams to be read before the BYE.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await call.bye()).status).toBe(200);
    const ended = await nextEvent(r, (e) => e.event === 'call.ended' && e.callId === call.callId);
    expect(ended).toMatchObject({ reason: 'remote-bye', did: DID });
    const wav = readWav(ended.wav as string);
    expect(classifyRecording(wav.samples, pcm, 1)).toBe('exact');

    // The trickle is cut at the message deadline.
    const dropped = await nextEvent(
      r,
      (e) => e.event === 'serve.dropped' && e.reason === 'incomplete-message' && e.address === '127.0.0.4',
    );
    expect(dropped.transport).toBe('tcp');
    expect(alive(r.child)).toBe(true);

    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    const stats = (r.events() as Event[]).find((e) => e.event === 'serve.stats') as {
      refused: Record<string, number>;
      dropped: Record<string, number>;
      datagrams: number;
    };
    expect(stats.refused['too-many-from-address']).toBeGreaterThanOrEqual(PER_IP);
    expect(stats).toMatchObject({ open: 0 });
    expect(stats.dropped.framing).toBeGreaterThan(0);
    expect(stats.dropped['incomplete-message']).toBeGreaterThanOrEqual(1);
    expect(stats.datagrams).toBeGreaterThan(torture.length + cases.length);
    expect(r.stderr()).toBe('');
  }, 90_000);
});
