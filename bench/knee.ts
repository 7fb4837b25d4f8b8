/**
 * Where the bot's capacity ends: the capacity bench (bench/capacity.ts) at
 * several sizes, in one process and in N (`listen --processes N`), one run
 * after the other, printed as one table.
 *
 *   npm run build && node --import tsx bench/knee.ts [--calls 500,800,1000] [--processes 1,2]
 *                                                    [--seconds 40] [--rate 50]
 *   npm run bench -- knee
 *
 * Each row: CPU of the bot (all processes) with every call up and per call
 * per 20 ms, frames lost or late, WAVs bit-exact, INVITE→200 p50/p99/max on
 * the wire, event-loop delay p99/max of the worst process, the longest GC
 * pause, how long each event loop waited for a CPU (other processes' share),
 * SIPp's and Kamailio's CPU, the whole machine's, and the load average
 * before and after (the machine is shared: a busy one shows in the last
 * columns, and in the latencies).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchCapacity, type CapacityFigures } from './capacity.js';

export interface KneeOptions {
  calls?: number[];
  processes?: number[];
  seconds?: number;
  rate?: number;
}

export async function benchKnee(options: KneeOptions = {}): Promise<CapacityFigures[]> {
  const sizes = options.calls ?? [500, 800, 1000];
  const modes = options.processes ?? [1, 2];
  const out: CapacityFigures[] = [];
  console.log(header());
  for (const calls of sizes) {
    for (const processes of modes) {
      try {
        const r = await benchCapacity({
          calls,
          processes,
          seconds: options.seconds ?? 40,
          rate: options.rate ?? 50,
        });
        out.push(r);
        console.log(row(r));
      } catch (err) {
        console.log(
          `| ${calls} | ${processes} | failed: ${err instanceof Error ? err.message : String(err)} |`,
        );
      }
    }
  }
  return out;
}

function header(): string {
  const cols = [
    'calls',
    'processes',
    'peak up',
    'bot CPU all up (per process)',
    'µs/call/20 ms',
    'lost / late',
    'WAVs bit-exact',
    'INVITE→200 p50 / p99 / max ms',
    'event-loop delay p99 / max ms',
    'GC max ms',
    'run-queue wait',
    'SIPp / Kamailio CPU',
    'machine busy',
    'load avg',
  ];
  return `| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|`;
}

function row(r: CapacityFigures): string {
  const e = r.eventLoopDelayMs;
  const n = r.neighbours;
  const perProcess = r.processes > 1 ? ` (${r.cpu.allUpPerProcessPercent.join(' + ')})` : '';
  return `| ${[
    r.calls,
    r.processes,
    r.bot.peakConcurrent,
    `${r.cpu.allUpAvgPercent} %${perProcess}`,
    r.cpu.perCallUsPer20Ms,
    `${r.frames.lost} / ${r.frames.late}`,
    `${r.recordings.bitExact}/${r.calls}`,
    `${r.inviteTo200.p50Ms} / ${r.inviteTo200.p99Ms} / ${r.inviteTo200.maxMs}`,
    e ? `${e.p99} / ${e.max}` : 'n/a',
    e ? e.gcMaxMs : 'n/a',
    `${r.cpu.allUpRunQueueWaitPercent.join(' / ')} %`,
    `${n.load.sippPercent} / ${n.load.kamailioPercent} %`,
    `${n.allUp.machinePercent} / ${n.machineCores * 100} %`,
    r.loadAverage.join(' → '),
  ].join(' | ')} |`;
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(path.resolve(invokedPath)).href) {
  const args = process.argv.slice(2);
  const list = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1]!.split(',').map(Number) : undefined;
  };
  const one = (flag: string) => list(flag)?.[0];
  const calls = list('--calls');
  const processes = list('--processes');
  const seconds = one('--seconds');
  const rate = one('--rate');
  await benchKnee({
    ...(calls && { calls }),
    ...(processes && { processes }),
    ...(seconds !== undefined && { seconds }),
    ...(rate !== undefined && { rate }),
  });
}
