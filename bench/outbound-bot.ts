/**
 * The bot of bench/outbound.ts, in a process of its own so that its CPU,
 * memory and event-loop delay are its own: a Softphone (the library, as a
 * user script drives it) that registers, and on "go" (a line on stdin)
 * places `calls` outbound calls to `target` at `rate` per second. Each call
 * plays `playFile` (raw s16le, 8 kHz) from its answer on, records, and is
 * hung up `seconds` after its answer. Not meant to be run by hand.
 *
 *   node --import tsx bench/outbound-bot.ts '<JSON BotConfig>'
 *
 * stdout: one JSON object per line —
 *   { event: 'registered' }
 *   { event: 'answered', callId, localPort }
 *   { event: 'ended', callId, … per-call times (performance.now() of this
 *     process, ms) and the CallEndInfo's reason, status, code, wav, stats }
 *   { event: 'done', eventLoopDelayMs }        every call has ended
 *   { event: 'warning', code, message }
 * SIGTERM: phone.stop() (unregister), then exit 0.
 *
 * Times come from the SIP trace: `inviteSent` is the first INVITE of the
 * call leaving (the one Kamailio challenges), `challenged` its 407 arriving,
 * `ok` the 200 arriving; `dialed` is softphone.call() being called and
 * `answered` the call's 'answered' event (what a user's code sees).
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import type { SipInfo } from '../src/config/sip-info.js';
import { Softphone } from '../src/softphone.js';

export interface BotConfig {
  sipInfo: SipInfo;
  instanceId: string;
  recordDir: string;
  rtpPorts: { min: number; max: number };
  target: string;
  calls: number;
  rate: number;
  seconds: number;
  /** Raw s16le mono 8 kHz: what every call plays from its answer on. */
  playFile: string;
}

interface CallTimes {
  dialed: number;
  inviteSent?: number;
  challenged?: number;
  ok?: number;
  answered?: number;
  invites: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as BotConfig;
const out = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

const raw = readFileSync(config.playFile);
const pcm = new Int16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);

const phone = new Softphone({
  sipInfo: config.sipInfo,
  instanceId: config.instanceId,
  recordDir: config.recordDir,
  rtpPorts: config.rtpPorts,
  mediaIp: '127.0.0.1',
  maxCalls: config.calls + 10,
});
phone.on('warning', (w) => out({ event: 'warning', code: w.code, message: w.message }));

const times = new Map<string, CallTimes>();
// The trace is the SIP stack's own view: a message is traced as it is written to or read from the socket.
phone.on('sipTrace', ({ direction, text }) => {
  if (!/^CSeq[ \t]*:[ \t]*\d+[ \t]+INVITE/im.test(text)) return;
  const callId = /^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)/im.exec(text)?.[1];
  if (callId === undefined) return;
  const now = performance.now();
  // The first INVITE is traced inside softphone.call(), before it returns the Call-ID.
  let t = times.get(callId);
  if (!t) {
    t = { dialed: Number.NaN, invites: 0 };
    times.set(callId, t);
  }
  if (direction === 'send' && text.startsWith('INVITE ')) {
    t.invites++;
    t.inviteSent ??= now;
  } else if (direction === 'recv' && text.startsWith('SIP/2.0 407 ')) {
    t.challenged ??= now;
  } else if (direction === 'recv' && text.startsWith('SIP/2.0 200 ')) {
    t.ok ??= now;
  }
});

const histogram = monitorEventLoopDelay({ resolution: 5 });
let gc: number[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gc.push(e.duration);
}).observe({ entryTypes: ['gc'] });

await phone.start();
out({ event: 'registered' });

let ended = 0;

async function place(): Promise<void> {
  const dialed = performance.now();
  const call = await phone.call(config.target);
  const t: CallTimes = times.get(call.id) ?? { dialed, invites: 0 };
  t.dialed = dialed;
  times.set(call.id, t);
  call.once('answered', () => {
    t.answered = performance.now();
    out({ event: 'answered', callId: call.id, localPort: call.localMedia?.port });
    call.play(pcm).catch((err: unknown) => out({ event: 'warning', code: 'PLAY', message: String(err) }));
    setTimeout(() => void call.hangup(), config.seconds * 1000);
  });
  const info = await call.done;
  out({
    event: 'ended',
    callId: call.id,
    ...t,
    reason: info.reason,
    status: info.status,
    code: info.code,
    durationMs: info.durationMs,
    wav: info.wav,
    stats: info.stats,
  });
  oneEnded();
}

function oneEnded(): void {
  ended++;
  if (ended === config.calls) {
    histogram.disable();
    // The histogram holds whole timer periods: the delay is what exceeds the 5 ms resolution.
    const ms = (ns: number) => Math.max(0, Math.round(ns / 1e3 - 5000) / 1e3);
    gc.sort((a, b) => a - b);
    out({
      event: 'done',
      eventLoopDelayMs: {
        p50: ms(histogram.percentile(50)),
        p99: ms(histogram.percentile(99)),
        max: ms(histogram.max),
        mean: ms(histogram.mean),
        gcPauses: gc.length,
        gcMaxMs: Math.round((gc.at(-1) ?? 0) * 1000) / 1000,
        gcTotalMs: Math.round(gc.reduce((a, b) => a + b, 0) * 1000) / 1000,
      },
    });
  }
}

process.on('SIGTERM', () => {
  void phone.stop().finally(() => process.exit(0));
});

// "go": the load starts now (event-loop delay from here on).
const lines = createInterface({ input: process.stdin });
lines.once('line', () => {
  histogram.enable();
  gc = [];
  const spacingMs = 1000 / config.rate;
  const start = performance.now();
  let next = 0;
  const tick = () => {
    // Every call whose start time has come (a late timer does not slow the rate down).
    while (next < config.calls && performance.now() - start >= next * spacingMs) {
      next++;
      place().catch((err: unknown) => {
        out({ event: 'warning', code: 'DIAL', message: String(err) });
        oneEnded();
      });
    }
    if (next < config.calls) setTimeout(tick, Math.max(0, start + next * spacingMs - performance.now()));
  };
  tick();
});
