import dgram from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaScheduler } from '../../src/media/scheduler.js';

/** A clock that only moves when a test says so. */
function fakeClock(start = 0) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** A loopback socket pair: `send()` puts one datagram into `rx`'s queue (resolves once the kernel has it). */
async function loopback(onMessage: () => void) {
  const rx = dgram.createSocket('udp4');
  const tx = dgram.createSocket('udp4');
  sockets.push(rx, tx);
  rx.on('message', onMessage);
  rx.bind(0, '127.0.0.1');
  tx.bind(0, '127.0.0.1');
  await Promise.all([once(rx, 'listening'), once(tx, 'listening')]);
  const port = rx.address().port;
  return { send: () => tx.send('x', port, '127.0.0.1') };
}

describe('MediaScheduler', () => {
  it('runs each task once, at or after its due time, earliest first; re-arming replaces, cancel removes', async () => {
    const clock = fakeClock(100);
    const scheduler = new MediaScheduler({ now: clock.now });
    const ran: string[] = [];
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const task = (name: string) =>
      scheduler.timer(() => {
        ran.push(`${name}@${clock.now()}`);
        if (name === 'last') finish();
      });
    const a = task('a');
    const b = task('b');
    const c = task('c');
    const d = task('d');
    const last = task('last');
    a.arm(90); // already due
    b.arm(100);
    c.arm(500); // moved earlier below
    d.arm(95);
    c.arm(98);
    d.cancel();
    d.cancel();
    last.arm(100);
    expect(scheduler.size).toBe(4);
    await done;
    expect(ran).toEqual(['a@100', 'c@100', 'b@100', 'last@100']);
    expect(scheduler.size).toBe(0);
    expect(a.armed).toBe(false);
  });

  it('never runs a task before its due time', async () => {
    const scheduler = new MediaScheduler();
    const { performance } = await import('node:perf_hooks');
    const results: number[] = [];
    await new Promise<void>((resolve) => {
      let left = 20;
      for (let i = 0; i < 20; i++) {
        const due = performance.now() + 1 + i * 0.7;
        scheduler
          .timer(() => {
            results.push(performance.now() - due);
            if (--left === 0) resolve();
          })
          .arm(due);
      }
    });
    expect(Math.min(...results)).toBeGreaterThanOrEqual(0);
  });

  it('gives I/O a turn between slices when many tasks are due at once', async () => {
    const clock = fakeClock();
    const scheduler = new MediaScheduler({ now: clock.now, sliceMs: 3 });
    const order: string[] = [];
    const io = await loopback(() => order.push('datagram'));
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    for (let i = 0; i < 20; i++) {
      scheduler
        .timer(() => {
          order.push(`task ${i}`);
          if (i === 0) io.send(); // in the kernel's queue as soon as this slice is over
          clock.advance(1); // each task takes 1 ms
          if (i === 19) finish();
        })
        .arm(0);
    }
    await done;
    // 3 ms slices: the datagram is read after the first slice, long before the last task.
    expect(order.indexOf('datagram')).toBeGreaterThan(0);
    expect(order.indexOf('datagram')).toBeLessThanOrEqual(4);
    expect(order.filter((x) => x.startsWith('task'))).toEqual(
      Array.from({ length: 20 }, (_, i) => `task ${i}`),
    );
  });

  it('runs afterPoll work after the next poll phase, in order and in slices', async () => {
    const clock = fakeClock();
    const scheduler = new MediaScheduler({ now: clock.now, sliceMs: 2 });
    const order: string[] = [];
    const io = await loopback(() => order.push('datagram'));
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    scheduler
      .timer(() => {
        io.send();
        for (let i = 0; i < 10; i++) {
          scheduler.afterPoll(() => {
            order.push(`playout ${i}`);
            clock.advance(1);
            if (i === 3) io.send(); // a datagram in the middle: read between slices
            if (i === 9) finish();
          });
        }
      })
      .arm(0);
    await done;
    expect(order[0]).toBe('datagram');
    const second = order.indexOf('datagram', 1);
    expect(second).toBeGreaterThan(order.indexOf('playout 3'));
    expect(second).toBeLessThan(order.indexOf('playout 9'));
    expect(order.filter((x) => x.startsWith('playout'))).toEqual(
      Array.from({ length: 10 }, (_, i) => `playout ${i}`),
    );
  });

  it('a task armed again while the due ones run waits for the next run (no task can hold the loop)', async () => {
    const clock = fakeClock();
    const scheduler = new MediaScheduler({ now: clock.now });
    let runs = 0;
    let immediates = 0;
    const timer = scheduler.timer(() => {
      runs++;
      if (runs < 3) timer.arm(0); // due at once, again
    });
    const tick = () => {
      immediates++;
      if (runs < 3) setImmediate(tick);
    };
    setImmediate(tick);
    timer.arm(0);
    while (runs < 3) await new Promise((resolve) => setImmediate(resolve));
    // Each run was a turn of the event loop of its own.
    expect(immediates).toBeGreaterThanOrEqual(2);
    expect(scheduler.size).toBe(0);
  });
});
