/**
 * The samples/pocketsphinx.sh recipe as a real --pipe engine: a call carrying
 * real human speech (pocketsphinx-testdata "go forward ten meters") must come
 * back as a call.engine event with the recognised command.
 */
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { Call, CallEndInfo } from '../../src/call/call.js';
import { LocalPbx } from '../../src/demo/local-pbx.js';
import { RtpSender } from '../../src/media/rtp-sender.js';
import { Softphone } from '../../src/softphone.js';
import { projectRoot } from '../helpers/paths.js';
import { freeUdpPortRange, waitFor } from '../helpers/ports.js';
import { describeInterop } from '../helpers/tools.js';

const SPEECH = '/usr/share/pocketsphinx/test/data/goforward.raw';
const USER = { username: '16506668888', authorizationId: '802398', password: 'pbx-secret' };
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describeInterop('samples/pocketsphinx.sh as a --pipe engine', ['sox', 'pocketsphinx_continuous'], () => {
  it('transcribes real speech from a call into a call.engine event', { timeout: 60_000 }, async () => {
    if (!existsSync(SPEECH))
      throw new Error(`${SPEECH} missing: install the Debian package pocketsphinx-testdata`);
    // 16 kHz speech → 8 kHz phone audio: average sample pairs (a crude low-pass is enough for this check).
    const raw = readFileSync(SPEECH);
    const wide = new Int16Array(raw.buffer, raw.byteOffset, raw.byteLength >> 1);
    const narrow = new Int16Array(wide.length >> 1);
    for (let i = 0; i < narrow.length; i++) narrow[i] = ((wide[2 * i] ?? 0) + (wide[2 * i + 1] ?? 0)) >> 1;

    const pbx = await LocalPbx.listen({ users: [USER] });
    cleanups.push(() => pbx.close());
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-asr-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const min = await freeUdpPortRange(4);
    const phone = new Softphone({
      sipInfo: { ...USER, domain: pbx.domain, outboundProxy: pbx.address, transport: 'tcp' },
      recordDir: dir,
      rtpPorts: { min, max: min + 3 },
      mediaIp: '127.0.0.1',
      pipe: { command: path.join(projectRoot, 'samples', 'pocketsphinx.sh'), graceMs: 20_000 },
    });
    cleanups.push(() => phone.stop());
    await phone.start();
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    cleanups.push(() => socket.close());
    const texts: string[] = [];
    phone.on('callAnswered', (call: Call) =>
      call.on('engine', (l) => texts.push(String((l.json as { text?: string })?.text ?? l.text))),
    );
    const ended = new Promise<CallEndInfo>((r) => phone.once('callEnded', (_c, info) => r(info)));
    const offer = `v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${socket.address().port} RTP/AVP 0\r\n`;
    const call = await pbx.invite(USER.username, offer);
    const port = Number(/m=audio (\d+)/.exec(call.answer)?.[1]);
    await new RtpSender({ socket, target: { address: '127.0.0.1', port }, pcm: narrow }).start();
    await call.bye();
    await ended;
    await waitFor(() => texts.length > 0, { timeoutMs: 30_000 });
    expect(texts.join(' ')).toMatch(/go forward/);
  });
});
