/**
 * Admission by source address, end to end on loopback aliases (Linux routes
 * all of 127.0.0.0/8 to lo, no set-up needed): with only 127.0.0.2 allowed, a
 * peer on 127.0.0.2 is answered over TCP, TLS and UDP, and one on 127.0.0.3 is
 * refused before a byte of it is read (no TLS handshake, no answer, nothing
 * in the SIP trace), and counted. Plus the allow-list's own grammar.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { AllowList, parseAllowFile, parseCidr } from '../../src/serve/allow-list.js';
import { BotServer } from '../../src/serve/bot-server.js';
import { singleBot } from '../../src/serve/bots.js';
import { freeUdpPortRange } from '../helpers/ports.js';
import { RingCx } from '../helpers/ringcx.js';
import { localhostCertificate } from '../helpers/tls-cert.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function cidrs(...entries: string[]) {
  return entries.map((e) => {
    const p = parseCidr(e);
    if (!p.ok) throw new Error(p.reason);
    return p.cidr;
  });
}

const OPTIONS = (via: string) =>
  [
    'OPTIONS sip:bot@127.0.0.1 SIP/2.0',
    `Via: ${via};branch=z9hG4bK-refused`,
    'From: <sip:intruder@127.0.0.3>;tag=x',
    'To: <sip:bot@127.0.0.1>',
    'Call-ID: refused-1',
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');

describe('the allow-list', () => {
  it('parses IPv4 and IPv6 networks and single addresses, and names what is wrong', () => {
    expect(parseCidr('192.0.2.0/24')).toEqual({
      ok: true,
      cidr: { address: '192.0.2.0', prefix: 24, family: 'ipv4' },
    });
    expect(parseCidr('2001:db8::/32')).toMatchObject({ ok: true, cidr: { prefix: 32, family: 'ipv6' } });
    expect(parseCidr(' 10.1.2.3 ')).toMatchObject({ ok: true, cidr: { prefix: 32 } });
    expect(parseCidr('::1')).toMatchObject({ ok: true, cidr: { prefix: 128 } });
    expect(parseCidr('192.0.2.0/33')).toEqual({
      ok: false,
      reason: '"192.0.2.0/33": the prefix length must be 0-32',
    });
    expect(parseCidr('example.com/8')).toMatchObject({ ok: false });
    expect(parseCidr('10.0.0.0/')).toMatchObject({ ok: false });
    expect(
      parseAllowFile('# RingCentral\n192.0.2.0/24, 198.51.100.0/24\n\n2001:db8::/32 # v6\n'),
    ).toMatchObject({
      ok: true,
      cidrs: [{ prefix: 24 }, { prefix: 24 }, { family: 'ipv6' }],
    });
    expect(parseAllowFile('192.0.2.0/24\nnot-an-ip\n')).toEqual({
      ok: false,
      reason: 'line 2: "not-an-ip" is not an IP address or CIDR',
    });
  });

  it('matches IPv4, IPv6 and IPv4-mapped IPv6 sources', () => {
    const list = new AllowList(cidrs('192.0.2.0/24', '2001:db8::/32', '127.0.0.2'));
    expect(list.allows('192.0.2.77')).toBe(true);
    expect(list.allows('::ffff:192.0.2.77')).toBe(true);
    expect(list.allows('192.0.3.1')).toBe(false);
    expect(list.allows('2001:db8:1::5')).toBe(true);
    expect(list.allows('2001:db9::5')).toBe(false);
    expect(list.allows('127.0.0.2')).toBe(true);
    expect(list.allows('127.0.0.3')).toBe(false);
    expect(list.allows('garbage')).toBe(false);
    expect(list.describe()).toEqual(['192.0.2.0/24', '2001:db8::/32', '127.0.0.2/32']);
  });
});

describe('serve admits 127.0.0.2 and refuses 127.0.0.3', () => {
  it('over TCP, TLS and UDP: answered from .2; from .3 closed or dropped unread, and counted', async () => {
    const list = new AllowList(cidrs('127.0.0.2'));
    const min = await freeUdpPortRange(10);
    const server = new BotServer({
      listen: [
        { transport: 'tcp', host: '0.0.0.0', port: 0 },
        { transport: 'tls', host: '0.0.0.0', port: 0 },
        { transport: 'udp', host: '0.0.0.0', port: 0 },
      ],
      admit: (a) => list.allows(a),
      tls: localhostCertificate(),
      bots: [
        singleBot([], {
          recordDir: undefined,
          pipe: undefined,
          pipeGraceMs: 0,
          streamUrl: undefined,
          codecs: undefined,
          play: undefined,
          maxCalls: 1,
          mediaTimeoutMs: 0,
          maxCallDurationMs: 0,
        }),
      ],
      rtpPorts: { min, max: min + 9 },
    });
    cleanups.push(() => server.stop());
    const traced = new Set<string>();
    server.on('sipTrace', (t) => traced.add(t.text));
    const refused: string[] = [];
    server.on('refused', (r) => refused.push(`${r.transport} ${r.address} ${r.reason}`));
    await server.start();
    const port = (t: string) => server.addresses.find((a) => a.transport === t)?.port as number;

    // Admitted: 127.0.0.2 gets answers on every transport.
    for (const transport of ['tcp', 'tls', 'udp'] as const) {
      const rx = await RingCx.connect({
        transport,
        port: port(transport),
        localAddress: '127.0.0.2',
        ...(transport === 'tls' && { ca: localhostCertificate().cert }),
      });
      cleanups.push(() => rx.close());
      expect((await rx.options()).status, transport).toBe(200);
    }

    // TCP from .3: closed without a byte back; what it sent was never read.
    const tcp = net.connect({ port: port('tcp'), host: '127.0.0.1', localAddress: '127.0.0.3' });
    cleanups.push(() => tcp.destroy());
    let tcpBytes = 0;
    tcp.on('data', (d) => {
      tcpBytes += d.length;
    });
    tcp.on('error', () => {});
    tcp.on('connect', () => tcp.write(OPTIONS('SIP/2.0/TCP 127.0.0.3:5060')));
    await new Promise<void>((resolve) => tcp.once('close', () => resolve()));
    expect(tcpBytes).toBe(0);

    // TLS from .3: no handshake at all.
    const raw = net.connect({ port: port('tls'), host: '127.0.0.1', localAddress: '127.0.0.3' });
    raw.on('error', () => {});
    const secure = tls.connect({ socket: raw, ca: localhostCertificate().cert, servername: 'localhost' });
    cleanups.push(() => secure.destroy());
    const tlsOutcome = await new Promise<string>((resolve) => {
      secure.once('secureConnect', () => resolve('handshake completed'));
      secure.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      secure.once('close', () => resolve('closed'));
    });
    expect(tlsOutcome).not.toBe('handshake completed');

    // UDP from .3: dropped, never answered.
    const udp = dgram.createSocket('udp4');
    cleanups.push(() => udp.close());
    await new Promise<void>((r) => udp.bind(0, '127.0.0.3', r));
    let udpAnswers = 0;
    udp.on('message', () => udpAnswers++);
    const refusedDatagram = new Promise<void>((resolve) =>
      server.on('refused', (r) => r.transport === 'udp' && resolve()),
    );
    udp.send(OPTIONS(`SIP/2.0/UDP 127.0.0.3:${udp.address().port}`), port('udp'), '127.0.0.1');
    await refusedDatagram;
    // A datagram from an admitted peer after it is answered: had .3's been parsed, its answer would be out by then.
    const rx = await RingCx.connect({ transport: 'udp', port: port('udp'), localAddress: '127.0.0.2' });
    cleanups.push(() => rx.close());
    expect((await rx.options()).status).toBe(200);
    expect(udpAnswers).toBe(0);

    expect(refused.sort()).toEqual([
      'tcp 127.0.0.3 not-allowed',
      'tls 127.0.0.3 not-allowed',
      'udp 127.0.0.3 not-allowed',
    ]);
    const stats = server.listenerStats;
    expect(stats?.refused['not-allowed']).toBe(2);
    expect(stats?.datagramsRefused).toBe(1);
    // Nothing of .3 reached the parser: the trace holds no byte of what it sent.
    expect([...traced].some((t) => t.includes('refused-1') || t.includes('127.0.0.3'))).toBe(false);
  });
});
