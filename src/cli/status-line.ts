/**
 * A live status line for humans on a terminal: registration state, active
 * calls with their durations and audio levels. Log lines are printed above
 * it (the logger clears and redraws it around each write).
 */
import type { Logger } from '../log/logger.js';
import type { Softphone } from '../softphone.js';

const CLEAR = '\r\x1b[2K';

export function startStatusLine(
  phone: Softphone,
  log: Logger,
  out: NodeJS.WriteStream = process.stdout,
): () => void {
  let state = phone.ua.registered ? 'registered' : 'connecting';
  phone.on('registered', () => {
    state = 'registered';
  });
  phone.on('reconnecting', () => {
    state = 'reconnecting';
  });
  phone.on('registrationFailed', () => {
    state = 'registration failed';
  });
  phone.on('unregistered', () => {
    state = 'unregistered';
  });
  const render = (): string => {
    const calls = phone.activeCalls.map((call) => {
      const seconds = Math.floor(call.durationMs / 1000);
      const level = call.level;
      return `${call.from.user ?? '?'} ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')} ${meter(level)}`;
    });
    const text = `● ${state} │ ${calls.length === 0 ? 'no calls' : `${calls.length} call${calls.length > 1 ? 's' : ''}: ${calls.join(', ')}`}`;
    const width = out.columns ?? 100;
    return text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text;
  };
  return drawStatusLine(render, log, out);
}

/**
 * The fleet's status line: how many devices are registered, how many wait
 * (standby, retrying), how many calls run, the lease share when coordinated.
 */
export function startFleetStatusLine(
  summary: () => {
    devices: number;
    registered: number;
    retrying: number;
    standby: number;
    calls: number;
    share?: string;
  },
  log: Logger,
  out: NodeJS.WriteStream = process.stdout,
): () => void {
  const render = (): string => {
    const s = summary();
    const waiting = [
      s.retrying > 0 ? `${s.retrying} retrying` : '',
      s.standby > 0 ? `${s.standby} standby` : '',
    ].filter(Boolean);
    const text = `● ${s.registered}/${s.devices} registered${waiting.length ? ` (${waiting.join(', ')})` : ''} │ ${s.calls === 0 ? 'no calls' : `${s.calls} call${s.calls > 1 ? 's' : ''}`}${s.share ? ` │ ${s.share}` : ''}`;
    const width = out.columns ?? 100;
    return text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text;
  };
  return drawStatusLine(render, log, out);
}

function drawStatusLine(render: () => string, log: Logger, out: NodeJS.WriteStream): () => void {
  const draw = () => out.write(`${CLEAR}${render()}`);
  log.onBeforeWrite = () => out.write(CLEAR);
  log.onAfterWrite = draw;
  const timer = setInterval(draw, 1000);
  timer.unref();
  draw();
  return () => {
    clearInterval(timer);
    log.onBeforeWrite = log.onAfterWrite = undefined;
    out.write(CLEAR);
  };
}

/** Five-step level meter for -60..0 dBFS. */
function meter(dbfs: number): string {
  const steps = ' ▁▃▅▇';
  const i = Math.max(0, Math.min(4, Math.floor((dbfs + 60) / 12)));
  return `${steps[i]}${dbfs <= -99 ? '' : ` ${Math.round(dbfs)} dB`}`;
}
