import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { Call, CallEndInfo } from '../../src/call/call.js';
import { RtpSender } from '../../src/media/rtp-sender.js';
import { answerPort, callerSocket, RIG_USER, sdpOffer, startRig } from '../helpers/call-rig.js';
import { projectRoot } from '../helpers/paths.js';
import { waitFor } from '../helpers/ports.js';
import { describeInterop } from '../helpers/tools.js';

const SPEECH = '/usr/share/pocketsphinx/test/data/goforward.raw';
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

    const { pbx, phone } = await startRig(
      cleanups,
      { pipe: { command: path.join(projectRoot, 'samples', 'pocketsphinx.sh'), graceMs: 20_000 } },
      4,
    );
    const { socket } = await callerSocket(cleanups);
    const texts: string[] = [];
    phone.on('callAnswered', (call: Call) =>
      call.on('engine', (l) => texts.push(String((l.json as { text?: string })?.text ?? l.text))),
    );
    const ended = new Promise<CallEndInfo>((r) => phone.once('callEnded', (_c, info) => r(info)));
    const call = await pbx.invite(RIG_USER.username, sdpOffer(socket.address().port, 'RTP/AVP', '0'));
    const port = answerPort(call.answer);
    await new RtpSender({ socket, target: { address: '127.0.0.1', port }, pcm: narrow }).start();
    await call.bye();
    await ended;
    await waitFor(() => texts.length > 0, { timeoutMs: 30_000 });
    expect(texts.join(' ')).toMatch(/go forward/);
  });
});
