/**
 * The loopback rig the call tests share: LocalPbx (RingCentral-shaped
 * registrar that calls over the device's flow), a registered Softphone that
 * records into a temp dir, and caller-side RTP sockets and SDP.
 */
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { Softphone, type SoftphoneOptions } from '../../src/softphone.js';
import { freeUdpPortRange } from './ports.js';

export const RIG_USER = { username: '16506668888', authorizationId: '802398', password: 'pbx-secret' };

export type Cleanups = (() => unknown)[];

/** A registered Softphone at a fresh LocalPbx; everything is torn down by `cleanups`. */
export async function startRig(cleanups: Cleanups, options: Partial<SoftphoneOptions> = {}, rtpPorts = 20) {
  const pbx = await LocalPbx.listen({ users: [RIG_USER] });
  cleanups.push(() => pbx.close());
  const recordDir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-rig-'));
  cleanups.push(() => rmSync(recordDir, { recursive: true, force: true }));
  const min = await freeUdpPortRange(rtpPorts);
  const phone = new Softphone({
    sipInfo: { ...RIG_USER, domain: pbx.domain, outboundProxy: pbx.address, transport: 'tcp' },
    recordDir,
    rtpPorts: { min, max: min + rtpPorts - 1 },
    mediaIp: '127.0.0.1',
    ...options,
  });
  cleanups.push(() => phone.stop());
  await phone.start();
  return { pbx, phone, recordDir };
}

/** The caller's RTP socket on loopback, keeping every datagram it receives. */
export async function callerSocket(cleanups: Cleanups) {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  cleanups.push(() => socket.close());
  const packets: Buffer[] = [];
  socket.on('message', (m) => packets.push(m));
  return { socket, port: socket.address().port, packets };
}

/** A caller's SDP offer for media at 127.0.0.1:`port`. */
export function sdpOffer(port: number, proto = 'RTP/AVP', formats = '0 101'): string {
  return [
    'v=0',
    'o=caller 1 1 IN IP4 127.0.0.1',
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} ${proto} ${formats}`,
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-15',
    ...(proto === 'RTP/SAVP'
      ? ['a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz']
      : []),
    '',
  ].join('\r\n');
}

/** Our RTP port from the SDP answer. */
export function answerPort(sdp: string): number {
  return Number(/m=audio (\d+)/.exec(sdp)?.[1]);
}
