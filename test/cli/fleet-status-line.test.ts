/**
 * The fleet's status line: registered over listed, who waits (retrying,
 * standby), calls, the lease share; cleared around log lines, cut to the
 * terminal's width.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { startFleetStatusLine } from '../../src/cli/status-line.js';
import { Logger } from '../../src/log/logger.js';

const CLEAR = '\r\x1b[2K';

class Terminal extends Writable {
  text = '';
  constructor(readonly columns: number) {
    super();
  }
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
  get line(): string {
    return this.text.slice(this.text.lastIndexOf(CLEAR) + CLEAR.length);
  }
}

describe('startFleetStatusLine', () => {
  it('sums up the fleet and redraws after each log line', () => {
    const term = new Terminal(120);
    const log = new Logger({ format: 'text', out: term });
    let summary = {
      devices: 20,
      registered: 17,
      retrying: 2,
      standby: 1,
      calls: 3,
      share: 'share 7 of 3 processes',
    };
    const stop = startFleetStatusLine(() => summary, log, term as unknown as NodeJS.WriteStream);
    expect(term.line).toBe('● 17/20 registered (2 retrying, 1 standby) │ 3 calls │ share 7 of 3 processes');
    summary = { devices: 2, registered: 2, retrying: 0, standby: 0, calls: 0, share: '' };
    log.info('x', {}, 'a log line');
    expect(term.text).toContain('a log line\n');
    expect(term.line).toBe('● 2/2 registered │ no calls');
    stop();
    expect(term.text.endsWith(CLEAR)).toBe(true);
  });

  it('fits the terminal', () => {
    const term = new Terminal(30);
    const log = new Logger({ format: 'text', out: term });
    const stop = startFleetStatusLine(
      () => ({ devices: 500, registered: 480, retrying: 20, standby: 0, calls: 1234 }),
      log,
      term as unknown as NodeJS.WriteStream,
    );
    expect(term.line.length).toBeLessThanOrEqual(29);
    expect(term.line.endsWith('…')).toBe(true);
    stop();
  });
});
