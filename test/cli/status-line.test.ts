/**
 * The live status line on a terminal: registration state, each active call
 * with its caller, duration and audio level, cleared before every log line
 * and redrawn after it, cleared for good when stopped. Driven by a real
 * registered Softphone and a real call; the terminal is a stream that keeps
 * what was written (its width is `columns`, as on a TTY).
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { Call } from '../../src/call/call.js';
import { startStatusLine } from '../../src/cli/status-line.js';
import { Logger } from '../../src/log/logger.js';
import { RtpSender } from '../../src/media/rtp-sender.js';
import { answerPort, callerSocket, RIG_USER, sdpOffer, startRig } from '../helpers/call-rig.js';
import { waitFor } from '../helpers/ports.js';

const CLEAR = '\r\x1b[2K';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A terminal of `columns` width that records every write. */
class Terminal extends Writable {
  text = '';
  constructor(readonly columns: number) {
    super();
  }
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
  /** What the status line shows now: the text after the last clear. */
  get line(): string {
    return this.text.slice(this.text.lastIndexOf(CLEAR) + CLEAR.length);
  }
}

function tone(samples: number): Int16Array {
  return Int16Array.from({ length: samples }, (_, i) =>
    Math.round(16000 * Math.sin((2 * Math.PI * 440 * i) / 8000)),
  );
}

describe('status line', () => {
  it('shows the registration, then the call with its caller, duration and level; log lines go above it', async () => {
    const { pbx, phone } = await startRig(cleanups);
    const terminal = new Terminal(120);
    const log = new Logger({ out: terminal });
    const stop = startStatusLine(phone, log, terminal as unknown as NodeJS.WriteStream);
    cleanups.push(stop);
    expect(terminal.line).toBe('● registered │ no calls');

    // A log line: cleared first, printed on its own line, the status redrawn below it.
    log.info('note', {}, 'hello');
    expect(terminal.text).toMatch(/\r\x1b\[2K\d\d:\d\d:\d\d hello\n\r\x1b\[2K● registered │ no calls$/);

    const { socket } = await callerSocket(cleanups);
    const answered = new Promise<Call>((r) => phone.once('callAnswered', r));
    const call = await pbx.invite(RIG_USER.username, sdpOffer(socket.address().port));
    const answeredCall = await answered;
    // 2.5 s of a loud tone (about -9 dBFS); the line is checked while it plays.
    const playing = new RtpSender({
      socket,
      target: { address: '127.0.0.1', port: answerPort(call.answer) },
      pcm: tone(20_000),
    }).start();
    // Redrawn every second: the caller, m:ss, and the tone's level near 0 dBFS.
    const caller = answeredCall.from.user ?? '';
    expect(caller).not.toBe('');
    const expected = new RegExp(`^● registered │ 1 call: ${caller} 0:0[1-2] ▇ -\\d+ dB$`);
    await waitFor(() => expected.test(terminal.line), {
      timeoutMs: 10_000,
      message: `status line like ${expected}`,
    });
    await playing;

    await call.bye();
    await waitFor(() => terminal.line === '● registered │ no calls', { timeoutMs: 10_000 });
    stop();
    expect(terminal.text.endsWith(CLEAR)).toBe(true);
    // Stopped: log lines no longer redraw it.
    log.info('note', {}, 'after');
    expect(terminal.text).toMatch(/\d\d:\d\d:\d\d after\n$/);
  });

  it('is cut to the terminal width with an ellipsis, and follows reconnecting', async () => {
    const { pbx, phone } = await startRig(cleanups);
    const terminal = new Terminal(12);
    const stop = startStatusLine(
      phone,
      new Logger({ out: terminal }),
      terminal as unknown as NodeJS.WriteStream,
    );
    cleanups.push(stop);
    expect(terminal.line).toBe('● register…');
    expect(terminal.line.length).toBeLessThan(12);
    await pbx.close();
    // Redrawn each second; 10 columns of text, then the ellipsis.
    await waitFor(() => terminal.line === '● reconnec…', { timeoutMs: 10_000 });
  });
});
