/**
 * `rc-softphone demo`: the whole pipeline without an account. A loopback
 * registrar shaped like RingCentral's edge, our device registering to it, a
 * call that plays the shipped speech sample, the recording and its stats.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { Command } from 'commander';
import type { CallEndInfo } from '../../call/call.js';
import { LocalPbx } from '../../demo/local-pbx.js';
import { DEMO_SPEECH_WAV, readPcmWav } from '../../demo/speech-sample.js';
import { describeError } from '../../errors.js';
import { RtpSender } from '../../media/rtp-sender.js';
import { Softphone } from '../../softphone.js';
import {
  addOutputOptions,
  checkRecordDirFlag,
  createLogger,
  ExitCode,
  type OutputOptions,
} from '../common.js';
import { wireEvents } from '../events.js';

interface DemoFlags extends OutputOptions {
  recordDir: string;
}

const EXAMPLES = `
Examples:
  $ rc-softphone demo                       # records into ./recordings and prints the WAV path
  $ rc-softphone demo --log-format json     # the same events listen prints, as JSON lines`;

export function demoCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('demo')
    .description(
      'Run the whole pipeline locally with no account: register, receive a call with speech, record it.',
    )
    .option('--record-dir <dir>', 'where the WAV and its JSON sidecar go', './recordings')
    .addHelpText('after', EXAMPLES)
    .exitOverride();
  addOutputOptions(command);
  command.action(async (flags: DemoFlags) => {
    setExitCode(await demo(flags));
  });
  return command;
}

async function demo(flags: DemoFlags): Promise<number> {
  // Before the registrar starts: nothing to clean up yet.
  checkRecordDirFlag(flags.recordDir, false);
  const user = {
    username: '15550001111',
    authorizationId: '15550001111',
    password: randomBytes(12).toString('hex'),
  };
  const log = createLogger(flags, [user.password]);
  const speech = readPcmWav(DEMO_SPEECH_WAV);
  const pbx = await LocalPbx.listen({ users: [user], maxExpires: 300 });
  const caller = dgram.createSocket('udp4');
  const phone = new Softphone({
    sipInfo: { ...user, domain: pbx.domain, outboundProxy: pbx.address, transport: 'tcp' },
    instanceId: 'urn:uuid:00000000-0000-4000-8000-0000000de300',
    recordDir: flags.recordDir,
    mediaIp: '127.0.0.1',
    mediaTimeoutMs: 10_000,
  });
  wireEvents(phone, log, user.username, pbx.domain);
  try {
    log.info(
      'demo.start',
      { registrar: `${pbx.address.host}:${pbx.address.port}` },
      `local registrar on ${pbx.address.host}:${pbx.address.port}`,
    );
    await phone.start();
    await new Promise<void>((resolve) => caller.bind(0, '127.0.0.1', resolve));
    const ended = new Promise<CallEndInfo>((resolve) =>
      phone.once('callEnded', (_call, info) => resolve(info)),
    );
    const offer = [
      'v=0',
      `o=demo-caller ${Date.now()} 1 IN IP4 127.0.0.1`,
      's=rc-softphone demo',
      'c=IN IP4 127.0.0.1',
      't=0 0',
      `m=audio ${caller.address().port} RTP/AVP 0 8 101`,
      'a=rtpmap:101 telephone-event/8000',
      'a=fmtp:101 0-15',
      '',
    ].join('\r\n');
    const call = await pbx.invite(user.username, offer, { from: '15550100' });
    const port = Number(/m=audio (\d+)/.exec(call.answer)?.[1]);
    // Play the sample, press "1" at the end like a caller would, then hang up.
    const frames = Math.ceil(speech.length / 160);
    const report = await new RtpSender({
      socket: caller,
      target: { address: '127.0.0.1', port },
      pcm: speech,
      impairments: [{ kind: 'dtmf', frame: frames - 5, digit: '1', frames: 4 }],
    }).start();
    await call.bye();
    const info = await ended;
    log.info(
      'demo.done',
      {
        wav: info.wav ?? null,
        sidecar: info.sidecar ?? null,
        packetsSent: report.packets.length,
        stats: info.stats ?? null,
      },
      `done: ${info.wav ?? '(not recorded)'} — play it with: aplay ${info.wav ?? ''}`,
    );
    return ExitCode.OK;
  } catch (err) {
    log.error('demo.failed', { message: describeError(err) }, `demo failed: ${describeError(err)}`);
    return ExitCode.FAILURE;
  } finally {
    await phone.stop();
    caller.close();
    await pbx.close();
  }
}
