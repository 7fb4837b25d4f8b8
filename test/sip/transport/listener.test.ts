/**
 * SipListener's limits on real loopback sockets: connections per address
 * and in total, the first-message deadline, the per-message deadline
 * against a trickle, a TLS peer that never shakes hands, the framer's size
 * limits; and --listen's URL grammar.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { SipMessage } from '../../../src/sip/message/types.js';
import type { SipConnection } from '../../../src/sip/transport/connection.js';
import { type ListenerOptions, parseListenUrl, SipListener } from '../../../src/sip/transport/listener.js';
import { localhostCertificate } from '../../helpers/tls-cert.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const OPTIONS = [
  'OPTIONS sip:bot@127.0.0.1 SIP/2.0',
  'Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-l1',
  'From: <sip:a@127.0.0.1>;tag=x',
  'To: <sip:bot@127.0.0.1>',
  'Call-ID: listener-1',
  'CSeq: 1 OPTIONS',
  'Content-Length: 0',
  '',
  '',
].join('\r\n');

async function listen(options: Partial<ListenerOptions> = {}) {
  const listener = await SipListener.listen({
    addresses: [
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
      { transport: 'tls', host: '127.0.0.1', port: 0 },
    ],
    admit: () => true,
    tls: localhostCertificate(),
    ...options,
  });
  cleanups.push(() => listener.close());
  const messages: { connection: SipConnection; message: SipMessage }[] = [];
  listener.on('message', (connection, message) => messages.push({ connection, message }));
  return {
    listener,
    messages,
    port: (t: string) => listener.addresses.find((a) => a.transport === t)?.port as number,
  };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
    cleanups.push(() => s.destroy());
  });
}

const closed = (s: net.Socket) =>
  s.closed ? Promise.resolve() : new Promise<void>((resolve) => s.once('close', () => resolve()));

describe('SipListener', () => {
  it('takes whole messages from an admitted connection and counts it', async () => {
    const { listener, messages, port } = await listen();
    const s = await connect(port('tcp'));
    s.write(OPTIONS);
    await once(listener, 'message');
    expect(messages[0]?.message.type === 'request' && messages[0].message.method).toBe('OPTIONS');
    expect(messages[0]?.connection.transport).toBe('tcp');
    expect(listener.stats.accepted).toBe(1);
  });

  it('refuses a connection past the per-address limit and past the total, before reading it', async () => {
    const { listener, port } = await listen({ maxConnectionsPerAddress: 2, maxConnections: 3 });
    const reasons: string[] = [];
    listener.on('refused', (r) => reasons.push(r.reason));
    const a = await connect(port('tcp'));
    const b = await connect(port('tcp'));
    // Each accepted connection proves itself with a message, so both are counted open.
    a.write(OPTIONS);
    b.write(OPTIONS.replace('listener-1', 'listener-2'));
    await once(listener, 'message');
    const c = await connect(port('tcp'));
    await closed(c);
    expect(reasons).toEqual(['too-many-from-address']);
    expect(listener.stats.refused['too-many-from-address']).toBe(1);
    expect(listener.stats.open).toBe(2);

    const refusedTotal = new Promise<void>((resolve) =>
      listener.on('refused', (r) => r.reason === 'too-many-connections' && resolve()),
    );
    const d = net.connect({ port: port('tcp'), host: '127.0.0.1', localAddress: '127.0.0.2' });
    const e = net.connect({ port: port('tcp'), host: '127.0.0.1', localAddress: '127.0.0.2' });
    for (const s of [d, e]) {
      s.on('error', () => {});
      cleanups.push(() => s.destroy());
    }
    await refusedTotal;
    expect(listener.stats.refused['too-many-connections']).toBe(1);
  });

  it('closes a connection that sends nothing within the first-message deadline', async () => {
    const { listener, port } = await listen({ firstMessageTimeoutMs: 150 });
    const dropped = once(listener, 'dropped');
    const s = await connect(port('tcp'));
    const [info] = (await dropped) as [{ reason: string; message: string }];
    expect(info.reason).toBe('no-message');
    expect(info.message).toContain('150 ms');
    await closed(s);
    expect(listener.stats.dropped['no-message']).toBe(1);
  });

  it('closes a connection that trickles a message slower than the message deadline, after its first message', async () => {
    const { listener, port } = await listen({ messageDeadlineMs: 300 });
    const s = await connect(port('tcp'));
    s.write(OPTIONS);
    await once(listener, 'message');
    const dropped = once(listener, 'dropped');
    // One byte every 50 ms: 200 bytes would take 10 s.
    let i = 0;
    const timer = setInterval(() => {
      if (!s.destroyed) s.write(OPTIONS.slice(i, ++i));
    }, 50);
    cleanups.push(() => clearInterval(timer));
    const [info] = (await dropped) as [{ reason: string }];
    expect(info.reason).toBe('incomplete-message');
    await closed(s);
  });

  it('drops a TLS peer that never completes its handshake', async () => {
    const { listener, port } = await listen({ firstMessageTimeoutMs: 150 });
    const dropped = once(listener, 'dropped');
    const s = await connect(port('tls'));
    const [info] = (await dropped) as [{ reason: string; transport: string }];
    expect(info).toMatchObject({ reason: 'tls-handshake', transport: 'tls' });
    await closed(s);
  });

  it('a message over the size limit is skipped (the caller answers 513), the connection stays', async () => {
    const { listener, port } = await listen({ maxBodyBytes: 1024 });
    const malformed = once(listener, 'malformed');
    const s = await connect(port('tcp'));
    const body = 'x'.repeat(2000);
    s.write(
      OPTIONS.replace('Content-Length: 0', `Content-Type: text/plain\r\nContent-Length: ${body.length}`) +
        body,
    );
    const [, result] = (await malformed) as [SipConnection, { status?: number }];
    expect(result.status).toBe(513);
    s.write(OPTIONS.replace('listener-1', 'after'));
    const [, message] = (await once(listener, 'message')) as [SipConnection, SipMessage];
    expect(message.headers.callId()).toBe('after');
  });
});

describe('SipListener over UDP: keep-alives', () => {
  it('answers a STUN Binding request with the sender’s address (RFC 5626 4.4.2), counts CRLFs, drops other STUN; none reach SIP', async () => {
    const { listener, messages, port } = await listen({
      addresses: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
    });
    const malformed: unknown[] = [];
    listener.on('malformed', (_c, r) => malformed.push(r));
    const client = dgram.createSocket('udp4');
    cleanups.push(() => client.close());
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    const id = Buffer.from('0102030405060708090a0b0c', 'hex');
    const binding = Buffer.concat([Buffer.from('000100002112a442', 'hex'), id]);
    const answer = once(client, 'message');
    client.send(binding, port('udp'), '127.0.0.1');
    const [reply] = (await answer) as [Buffer];
    expect(reply.readUInt16BE(0)).toBe(0x0101);
    expect(reply.subarray(8, 20)).toEqual(id);
    // XOR-MAPPED-ADDRESS: the client's port and 127.0.0.1, XORed with the magic cookie.
    expect(reply.readUInt16BE(20)).toBe(0x0020);
    expect(reply.readUInt16BE(26) ^ 0x2112).toBe(client.address().port);
    expect(reply.readUInt32BE(28) ^ 0x2112a442).toBe(0x7f000001);
    // A STUN response is not ours to answer; a CRLF is the other keep-alive. Then a real request.
    const response = Buffer.from(binding);
    response.writeUInt16BE(0x0101, 0);
    client.send(response, port('udp'), '127.0.0.1');
    client.send(Buffer.from('\r\n\r\n'), port('udp'), '127.0.0.1');
    const got = once(listener, 'message');
    client.send(Buffer.from(OPTIONS.replace('SIP/2.0/TCP', 'SIP/2.0/UDP')), port('udp'), '127.0.0.1');
    // Datagrams on loopback arrive in order: the three before it were handled first.
    await got;
    expect(messages).toHaveLength(1);
    expect(listener.stats).toMatchObject({ datagramKeepAlives: 2, datagramsStunIgnored: 1 });
    expect(malformed).toEqual([]);
  });
});

describe('SipListener.listen', () => {
  it('names the address it cannot bind (SIP_LISTEN_FAILED) and closes what it had bound', async () => {
    const { port } = await listen();
    const taken = port('tcp');
    await expect(
      SipListener.listen({
        addresses: [
          { transport: 'udp', host: '127.0.0.1', port: 0 },
          { transport: 'tcp', host: '127.0.0.1', port: taken },
        ],
        admit: () => true,
      }),
    ).rejects.toMatchObject({
      code: 'SIP_LISTEN_FAILED',
      message: expect.stringContaining(`tcp://127.0.0.1:${taken}`),
      details: { errno: 'EADDRINUSE' },
    });
    await expect(
      SipListener.listen({
        addresses: [{ transport: 'tls', host: '127.0.0.1', port: 0 }],
        admit: () => true,
      }),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID', details: { option: 'tls' } });
  });
});

describe('parseListenUrl', () => {
  it('takes tcp/tls/udp with an IPv4 or bracketed IPv6 address, and says what is wrong otherwise', () => {
    expect(parseListenUrl('tcp://0.0.0.0:5060')).toEqual({
      ok: true,
      address: { transport: 'tcp', host: '0.0.0.0', port: 5060 },
    });
    expect(parseListenUrl('TLS://[::]:5061')).toEqual({
      ok: true,
      address: { transport: 'tls', host: '::', port: 5061 },
    });
    expect(parseListenUrl('udp://127.0.0.1:0')).toMatchObject({ ok: true });
    expect(parseListenUrl('ws://0.0.0.0:5060')).toMatchObject({ ok: false });
    expect(parseListenUrl('tcp://example.com:5060')).toEqual({
      ok: false,
      reason: 'example.com is not an IP address',
    });
    expect(parseListenUrl('tcp://0.0.0.0:70000')).toEqual({ ok: false, reason: 'port 70000 is not 0-65535' });
    expect(parseListenUrl('tcp://0.0.0.0')).toMatchObject({ ok: false });
  });
});
