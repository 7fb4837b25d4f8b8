/**
 * rc-softphone as a library: a RingCentral SIP device that registers, answers
 * inbound calls, records them to WAV and streams their audio.
 *
 * @example
 * ```ts
 * import { Softphone, loadSipInfoFile } from 'rc-softphone';
 *
 * const sipInfo = await loadSipInfoFile('./sip-info.json');
 * const phone = new Softphone({ sipInfo, recordDir: './recordings' });
 * phone.on('callAnswered', (call) => call.on('dtmf', (d) => console.log('pressed', d.digit)));
 * phone.on('callEnded', (call, info) => console.log(call.id, info.reason, info.wav));
 * await phone.start();
 * ```
 */
export {
  Call,
  type CallEndInfo,
  type CallEndReason,
  type CallEvents,
  type CallMediaInfo,
  type CallParty,
  type PlayPcm,
  type PlaySource,
} from './call/call.js';
export type { PipeOptions, StreamOptions } from './call/live-sinks.js';
export {
  deriveInstanceId,
  loadSipInfoFile,
  resolveSipInfo,
  type SipInfo,
  saveSipInfoFile,
} from './config/sip-info.js';
export { type ErrorCode, ErrorCodes, isSoftphoneError, SoftphoneError } from './errors.js';
export type { CodecName, SampleRate } from './media/codec.js';
export { RtpPortPool } from './media/port-pool.js';
export type { MediaStats, OutboundSource } from './media/session.js';
export { type ProvisionOptions, type ProvisionResult, provisionDevice } from './rest/provision.js';
export { AllowList, parseAllowFile, parseCidr } from './serve/allow-list.js';
export {
  BotServer,
  type BotServerEvents,
  type BotServerOptions,
  type IntentOutcome,
  type ServeCallInfo,
} from './serve/bot-server.js';
export {
  type Bot,
  type BotDefaults,
  BotsConfigError,
  chooseBot,
  parseBots,
  singleBot,
} from './serve/bots.js';
export { loadCertificateFiles, type ServeCertificate, stateCertificate } from './serve/certificate.js';
export type { CallSidecar, PacketStats } from './sinks/sidecar.js';
export { Softphone, type SoftphoneEvents, type SoftphoneOptions } from './softphone.js';
