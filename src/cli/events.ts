/**
 * The event contract: one place maps Softphone events to log events
 * (`registered`, `call.incoming`, `call.ended`, …) for every command.
 */
import type { Call, CallEndInfo } from '../call/call.js';
import type { LogFields, Logger } from '../log/logger.js';
import { redactSipText } from '../log/redact.js';
import type { BotServer } from '../serve/bot-server.js';
import type { Softphone } from '../softphone.js';

/** The call lifecycle events a Softphone and a BotServer (serve) share. */
export interface CallEventSource {
  on(event: 'incomingCall', listener: (call: Call) => void): unknown;
  on(event: 'callAnswered', listener: (call: Call) => void): unknown;
  on(
    event: 'callRejected',
    listener: (info: { callId: string; from: string; status: number; reason: string }) => void,
  ): unknown;
  on(event: 'callEnded', listener: (call: Call, info: CallEndInfo) => void): unknown;
  on(event: 'warning', listener: (info: { code: string; message: string; callId?: string }) => void): unknown;
  on(
    event: 'sipTrace',
    listener: (info: { direction: 'send' | 'recv'; flowId: number; text: string }) => void,
  ): unknown;
}

/** More fields for a call's events (serve: the DID, the bot, the INVITE's headers). */
export interface CallEventExtras {
  incoming?: (call: Call) => LogFields;
  ended?: (call: Call) => LogFields;
}

export function wireEvents(phone: Softphone, log: Logger, username: string, domain: string): void {
  phone.on('connected', (e) => log.info('connected', e, `connected to ${e.target} from ${e.local}`));
  phone.on('disconnected', (e) => log.warn('disconnected', e, `lost ${e.target}: ${e.reason}`));
  phone.on('registered', (e) =>
    log.info(
      'registered',
      { username, domain, expires: e.expires, target: e.target, first: e.first },
      e.first
        ? `registered as ${username}@${domain} via ${e.target} (expires ${e.expires} s); waiting for calls`
        : `registration refreshed (expires ${e.expires} s)`,
    ),
  );
  phone.on('registrationFailed', (e) =>
    log.error(
      'registration.failed',
      {
        status: e.status ?? null,
        reason: e.reason,
        code: e.code,
        willRetry: e.willRetry,
        retryInMs: e.retryInMs ?? null,
        retryAfter: e.retryAfter ?? null,
      },
      `registration failed: ${e.status ?? ''} ${e.reason}${e.retryInMs !== undefined ? ` (retrying in ${(e.retryInMs / 1000).toFixed(1)} s${e.retryAfter !== undefined ? `, Retry-After ${e.retryAfter} s` : ''})` : ''}`,
    ),
  );
  phone.on('reconnecting', (e) =>
    log.warn(
      'reconnecting',
      { ...e },
      `reconnecting to ${e.target} in ${(e.delayMs / 1000).toFixed(1)} s (attempt ${e.attempt}): ${e.reason}`,
    ),
  );
  phone.on('unregistered', () => log.info('unregistered', {}, 'unregistered'));
  phone.on('outgoingCall', (call) => {
    log.info(
      'call.outgoing',
      { callId: call.id, from: call.from.header, to: call.to.header },
      `calling ${peer(call)}…`,
    );
    wireCall(call, log);
  });
  wireCallEvents(phone, log);
}

/** Warnings, the SIP trace, and every call's events from the INVITE to its end. */
export function wireCallEvents(source: CallEventSource, log: Logger, extras: CallEventExtras = {}): void {
  source.on('warning', (w) => log.warn('warning', { ...w }, w.message));
  source.on('sipTrace', (t) => {
    if (!log.debugEnabled) return;
    const text = redactSipText(t.text);
    log.debug(
      'sip.trace',
      { direction: t.direction, flowId: t.flowId, text },
      `${t.direction === 'send' ? '>>> sent' : '<<< received'}\n${text.trimEnd()}`,
    );
  });
  source.on('incomingCall', (call) => {
    log.info(
      'call.incoming',
      { callId: call.id, from: call.from.header, to: call.to.header, ...extras.incoming?.(call) },
      `incoming call from ${peer(call)}`,
    );
    wireCall(call, log);
  });
  source.on('callAnswered', (call) => {
    const local = call.localMedia;
    const n = call.negotiated;
    log.info(
      'call.answered',
      {
        callId: call.id,
        direction: call.direction,
        codec: n?.codec ?? null,
        localMedia: local ? `${local.address}:${local.port}` : null,
        remoteMedia: n ? `${n.remoteAddress}:${n.remotePort}` : null,
        wav: call.wavPath ?? null,
      },
      `${call.direction === 'inbound' ? 'answered' : 'answered by'} ${peer(call)} (${n?.codec ?? 'offer sent'}, RTP ${local?.port ?? '?'} ⇄ ${n ? `${n.remoteAddress}:${n.remotePort}` : 'pending ACK'})`,
    );
  });
  source.on('callRejected', (r) =>
    log.info('call.rejected', { ...r }, `rejected a call from ${r.from}: ${r.status} ${r.reason}`),
  );
  source.on('callEnded', (call, info) =>
    log.info(
      'call.ended',
      {
        callId: call.id,
        reason: info.reason,
        durationMs: info.durationMs,
        wav: info.wav ?? null,
        sidecar: info.sidecar ?? null,
        stats: info.stats ?? null,
        dtmf: info.dtmf.map((d) => d.digit).join(''),
        direction: call.direction,
        ...(info.status !== undefined && { status: info.status, statusReason: info.statusReason ?? '' }),
        ...(info.code !== undefined && { code: info.code }),
        ...(hasIds(call) && { ringCentral: { ...call.ringCentralIds } }),
        ...(info.recordingError && { recordingError: info.recordingError }),
        ...extras.ended?.(call),
      },
      `call ${call.direction === 'inbound' ? 'from' : 'to'} ${peer(call)} ended (${info.reason}${info.status ? ` ${info.status}` : ''}) after ${(info.durationMs / 1000).toFixed(1)} s${info.wav ? ` → ${info.wav}` : ''}${info.stats ? ` [received ${info.stats.received}, lost ${info.stats.lost}]` : ''}`,
    ),
  );
}

/** The events of one call, inbound or outbound, from the moment the user can see it. */
function wireCall(call: Call, log: Logger): void {
  const who = peer(call);
  call.on('progress', (p) =>
    log.info(
      'call.progress',
      { callId: call.id, status: p.status, reason: p.reason, earlyMedia: p.earlyMedia },
      `${who}: ${p.status} ${p.reason}${p.earlyMedia ? ' (early media)' : ''}`,
    ),
  );
  call.on('failed', (f) =>
    log.warn(
      'call.failed',
      { callId: call.id, status: f.status ?? null, reason: f.reason, code: f.code ?? null },
      `call to ${who} failed: ${f.status ?? ''} ${f.reason}`.replace('  ', ' '),
    ),
  );
  call.on('ids', (ids) =>
    log.info(
      'call.ids',
      { callId: call.id, ...ids },
      `${who}: RingCentral party ${ids.partyId ?? '?'}, session ${ids.sessionId ?? '?'}`,
    ),
  );
  call.on('rehomed', (r) => {
    const fields = { callId: call.id, outcome: r.outcome, status: r.status, reason: r.reason };
    const text = `${who}: ${r.outcome === 'ok' ? 'moved to the new connection' : `could not be moved to the new connection (${r.status} ${r.reason}); it ends`}`;
    if (r.outcome === 'ok') log.info('call.rehomed', fields, text);
    else log.warn('call.rehomed', fields, text);
  });
  call.on('latched', (l) =>
    log.info(
      'call.latched',
      { callId: call.id, address: l.address, port: l.port, reason: l.reason, previous: l.previous ?? null },
      `${who}: RTP from ${l.address}:${l.port} (${l.reason}${l.previous ? `, was ${l.previous.address}:${l.previous.port}` : ''})`,
    ),
  );
  call.on('media', (m) =>
    log.info(
      'call.media',
      { callId: call.id, ...m },
      `${who}: ${m.codec} at ${m.sampleRate / 1000} kHz, RTP ${m.localMedia} ⇄ ${m.remoteMedia} (${m.onHold ? 'held' : m.direction})`,
    ),
  );
  call.on('dtmf', (d) =>
    log.info(
      'call.dtmf',
      { callId: call.id, digit: d.digit, atMs: d.atMs, source: d.source },
      `DTMF ${d.digit} from ${who}`,
    ),
  );
  call.on('dtmfSent', (d) =>
    log.info('call.dtmf.sent', { callId: call.id, digit: d.digit }, `DTMF ${d.digit} to ${who}`),
  );
  call.on('info', (i) =>
    log.info(
      'call.info',
      { callId: call.id, contentType: i.contentType, body: i.body },
      `${who} sent INFO (${i.contentType})`,
    ),
  );
  call.on('refer', (r) =>
    log.info(
      'call.refer',
      { callId: call.id, referTo: r.referTo, referredBy: r.referredBy ?? null, accepted: r.accepted },
      `${who} asked to transfer the call to ${r.referTo} (${r.accepted ? 'accepted' : 'declined'})`,
    ),
  );
  call.on('engine', (line) =>
    log.info(
      'call.engine',
      { callId: call.id, text: line.text, ...(line.json !== undefined && { result: line.json }) },
      `engine (${who}): ${line.text}`,
    ),
  );
  call.on('engineStderr', (line) =>
    log.info('call.engine.stderr', { callId: call.id, line }, `engine stderr (${who}): ${line}`),
  );
  call.on('engineExit', (e) => {
    const fields = { callId: call.id, code: e.code, signal: e.signal, duringCall: e.duringCall };
    const text = `engine for ${who} exited (${e.signal ?? `code ${e.code}`})${e.duringCall ? ' during the call; recording goes on' : ''}`;
    if (e.duringCall) log.warn('call.engine.exit', fields, text);
    else log.debug('call.engine.exit', fields, text);
  });
  call.on('stream', (st) =>
    log.info(
      'call.stream',
      { callId: call.id, ...st },
      `media stream for ${who} ${st.state}${st.reason ? `: ${st.reason}` : ''}`,
    ),
  );
  call.on('sinkError', (err) =>
    log.warn(
      'call.sink.error',
      { callId: call.id, code: err.code, message: err.message },
      `${who}: ${err.message}`,
    ),
  );
}

function hasIds(call: Call): boolean {
  const ids = call.ringCentralIds;
  return ids.partyId !== undefined || ids.sessionId !== undefined;
}

/** The other party: the caller of an inbound call, the callee of an outbound one. */
function peer(call: Call): string {
  const p = call.direction === 'inbound' ? call.from : call.to;
  return p.user ?? p.header;
}

/**
 * `serve`'s events: the listener (listening, refusals, dropped connections),
 * the intents and their outcome, and every call's events with the DID, the
 * bot and the INVITE's headers added. A refusal is logged once per address
 * and reason (a flood must not flood the log); `serve.stats` counts them all.
 */
export function wireServeEvents(server: BotServer, log: Logger): void {
  server.on('listening', (addresses) =>
    log.info(
      'serve.listening',
      { addresses: addresses.map((a) => listenUrl(a)) },
      `listening on ${addresses.map((a) => listenUrl(a)).join(', ')}`,
    ),
  );
  const refusedOnce = new Set<string>();
  server.on('refused', (r) => {
    const key = `${r.reason}\n${r.address}`;
    if (refusedOnce.has(key)) return;
    if (refusedOnce.size < 10_000) refusedOnce.add(key);
    log.warn(
      'serve.refused',
      { ...r },
      `refused ${r.transport.toUpperCase()} from ${r.address}:${r.port} (${r.reason}); further ones from it are only counted`,
    );
  });
  server.on('dropped', (d) =>
    log.warn(
      'serve.dropped',
      { ...d },
      `closed ${d.transport.toUpperCase()} from ${d.address}:${d.port} (${d.reason}): ${d.message}`,
    ),
  );
  server.on('intent', (call, o) => {
    const fields = {
      callId: call.id,
      source: o.source,
      final: o.final,
      status: o.status,
      reason: o.reason,
      ...(o.code !== undefined && { code: o.code }),
      info: o.info,
    };
    const text = `intent${o.final ? ' (final)' : ''} from the ${o.source} for ${peer(call)}: ${o.status === null ? `not sent (${o.reason})` : `${o.status} ${o.reason}`}`;
    if (o.status !== null && o.status < 300) log.info('call.intent', fields, text);
    else log.warn('call.intent', fields, text);
  });
  server.on('finalHangup', (call, h) =>
    log.info(
      'call.intent.hangup',
      { callId: call.id, afterMs: h.afterMs },
      `${peer(call)}: no BYE within ${h.afterMs} ms of the final intent; hanging up`,
    ),
  );
  wireCallEvents(server, log, {
    incoming: (call) => {
      const info = server.callInfo(call);
      return info ? { did: info.did, bot: info.bot, caller: info.caller, sipHeaders: info.sipHeaders } : {};
    },
    ended: (call) => {
      const info = server.callInfo(call);
      return info ? { did: info.did, bot: info.bot, intents: info.intents.length } : {};
    },
  });
}

function listenUrl(a: { transport: string; host: string; port: number }): string {
  return `${a.transport}://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}
