/**
 * `rc-softphone call <target>`: register, place one call, optionally send
 * DTMF and play audio, record it like `listen` does, hang up, unregister.
 * Exit 0 when the call was answered and ended normally; 1 when it failed
 * (the callee's status is in call.failed and call.ended); 2 for usage.
 */
import { Command } from 'commander';
import type { Call, CallEndInfo, PlayPcm } from '../../call/call.js';
import { targetUri } from '../../call/call-manager.js';
import { DEFAULTS } from '../../config/options.js';
import { describeError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { loadAudioFile, PLAY_SAMPLE_RATE } from '../../media/audio-file.js';
import { DTMF_SEND_PATTERN } from '../../media/dtmf-sender.js';
import { Softphone } from '../../softphone.js';
import { ExitCode, intOption, onStopSignals, UsageError } from '../common.js';
import { addDeviceOptions, configUsageError, type DeviceFlags, prepareDevice } from '../device.js';
import { wireEvents } from '../events.js';

interface CallFlags extends DeviceFlags {
  duration?: number;
  play?: string;
  hangupAfterPlay?: boolean;
  dtmf?: string;
  ringTimeout: number;
}

const EXAMPLES = `
Examples:
  $ rc-softphone call 16505550123                         # call a number, record until either side hangs up
  $ rc-softphone call 101 --duration 30                   # an extension, hang up after 30 s
  $ rc-softphone call sip:ivr@example.com --dtmf ',,1,2#' --play prompt.wav --hangup-after-play
  $ rc-softphone call 16505550123 --log-format json --ring-timeout 20`;

/** Normal ends of an answered call: exit 0. */
const NORMAL_END = new Set(['remote-bye', 'local-hangup', 'max-duration', 'shutdown']);

export function callCommand(setExitCode: (code: number) => void): Command {
  const command = new Command('call')
    .description('Register the device, call TARGET (a number, an extension or a SIP URI), record the call.')
    .argument('<target>', 'a phone number, an extension, or a sip: URI')
    .option(
      '--duration <seconds>',
      'hang up this long after the answer (default: when the other side does)',
      intOption('--duration', 1, Math.floor((2 ** 31 - 1) / 1000)),
    )
    .option('--play <file>', 'play this WAV (any rate, mono or stereo) once the call is answered')
    .option('--hangup-after-play', 'hang up when --play has finished')
    .option('--dtmf <digits>', "send these keys (0-9 * # A-D; ',' waits 0.5 s) once answered, before --play")
    .option(
      '--ring-timeout <seconds>',
      'give up (CANCEL) when nobody answers within this long',
      intOption('--ring-timeout', 1, 3600),
      Math.round(DEFAULTS.ringTimeoutMs / 1000),
    );
  addDeviceOptions(command).addHelpText('after', EXAMPLES).exitOverride();
  command.action(async (target: string, flags: CallFlags) => {
    setExitCode(await placeCall(target, flags));
  });
  return command;
}

async function placeCall(target: string, flags: CallFlags): Promise<number> {
  if (flags.hangupAfterPlay && flags.play === undefined) {
    throw new UsageError(
      '--hangup-after-play needs --play FILE (example: --play prompt.wav --hangup-after-play)',
    );
  }
  if (flags.dtmf !== undefined && !DTMF_SEND_PATTERN.test(flags.dtmf)) {
    throw new UsageError(
      `--dtmf takes 0-9 * # A-D and ',' (a pause), got "${flags.dtmf}" (example: --dtmf ',,1234#')`,
    );
  }
  const { options, resolved, log } = await prepareDevice(flags);
  try {
    targetUri(target, options.sipInfo.domain);
  } catch (err) {
    throw new UsageError(`${describeError(err)} (examples: 16505550123, 101, sip:alice@example.com)`);
  }
  let audio: PlayPcm | undefined;
  if (flags.play !== undefined) {
    try {
      audio = { pcm: await loadAudioFile(flags.play, PLAY_SAMPLE_RATE), sampleRate: PLAY_SAMPLE_RATE };
    } catch (err) {
      throw new UsageError(`--play ${describeError(err)}`);
    }
  }
  // One call of ours at a time; an inbound call meanwhile gets 486.
  const phone = new Softphone({ ...options, maxCalls: 1, ringTimeoutMs: flags.ringTimeout * 1000 });
  log.info(
    'starting',
    { credentials: resolved.description, recordDir: flags.record ? flags.recordDir : null },
    `using credentials from ${resolved.description}; recording to ${flags.record ? flags.recordDir : '(off)'}`,
  );
  wireEvents(phone, log, options.sipInfo.username, options.sipInfo.domain);

  let call: Call | undefined;
  let interrupted = false;
  const offSignals = onStopSignals(log, {
    first: (signal) => {
      interrupted = true;
      log.info(
        'shutdown',
        { reason: signal, activeCalls: phone.activeCalls.length },
        `hanging up (${signal})…`,
      );
      if (call) void call.hangup();
      else void phone.stop();
    },
    now: () => phone.stopNow(),
    forced: 'exiting without unregistering',
  });
  try {
    try {
      await phone.start();
    } catch (err) {
      const usage = configUsageError(err, flags);
      await phone.stop();
      if (usage) throw usage;
      if (interrupted) return ExitCode.FAILURE;
      log.error('fatal', { message: describeError(err) }, `cannot register: ${describeError(err)}`);
      return ExitCode.FAILURE;
    }
    if (interrupted) {
      await phone.stop();
      return ExitCode.FAILURE;
    }
    try {
      call = await phone.call(target);
    } catch (err) {
      log.error('fatal', { message: describeError(err) }, `cannot place the call: ${describeError(err)}`);
      await phone.stop();
      return ExitCode.FAILURE;
    }
    const placed = call;
    placed.once('answered', () => void afterAnswer(placed, flags, audio, log));
    const info: CallEndInfo = await placed.done;
    await phone.stop();
    return placed.answeredAt !== undefined && NORMAL_END.has(info.reason) ? ExitCode.OK : ExitCode.FAILURE;
  } finally {
    offSignals();
  }
}

/** What happens once the call is answered: the hang-up timer, DTMF, then the audio. */
async function afterAnswer(
  call: Call,
  flags: CallFlags,
  audio: PlayPcm | undefined,
  log: Logger,
): Promise<void> {
  if (flags.duration !== undefined) {
    const timer = setTimeout(() => void call.hangup(), flags.duration * 1000);
    void call.done.then(() => clearTimeout(timer));
  }
  const warn = (what: string, err: unknown) => {
    if (call.ended) return;
    log.warn(
      'warning',
      { code: 'CALL_WARNING', message: `${what}: ${describeError(err)}`, callId: call.id },
      `${what}: ${describeError(err)}`,
    );
  };
  try {
    if (flags.dtmf !== undefined) await call.sendDtmf(flags.dtmf);
  } catch (err) {
    warn('sending DTMF failed', err);
  }
  if (audio === undefined || call.ended) return;
  try {
    log.info('call.play', { callId: call.id, file: flags.play, state: 'started' }, `playing ${flags.play}`);
    await call.play(audio);
    if (!call.ended)
      log.info('call.play', { callId: call.id, file: flags.play, state: 'done' }, `played ${flags.play}`);
  } catch (err) {
    warn('playing failed', err);
  }
  if (flags.hangupAfterPlay && !call.ended) await call.hangup();
}
