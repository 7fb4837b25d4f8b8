/**
 * Every RTP packet to and from one UDP port on lo, as tshark dissects it
 * (RTP header fields, the RFC 4733 event fields of its rtpevent dissector,
 * the payload), live: for tests that must see what a peer that cannot
 * report it (SIPp) received and sent.
 *
 *   const wire = await RtpCapture.start(sippMediaPort);
 *   // … the call …
 *   await wire.until(() => wire.from(sippMediaPort).length >= 140, 20_000, 'SIPp’s stream');
 *   await wire.finish();               // everything sent before this is in wire.packets
 *
 * The capture is proven live before start() resolves and complete when
 * finish() does: probe datagrams to a port nobody listens on pass the same
 * capture filter, and tshark prints packets of one interface in order.
 * tshark's rtpevent dissector takes payload type 101 as telephone-event (its
 * default), which is what our SDP offers and SIPp's answers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { freePort } from '../../helpers/ports.js';
import { toolPath } from '../../helpers/tools.js';
import { exited, waitForStderr } from './speech.js';

export interface CapturedRtp {
  /** Capture time, ms since the epoch (µs resolution). */
  atMs: number;
  srcPort: number;
  dstPort: number;
  seq: number;
  timestamp: number;
  marker: boolean;
  payloadType: number;
  /** RFC 4733 event code (tshark's rtpevent.event_id), for telephone-event packets. */
  event: number | undefined;
  /** The E bit (rtpevent.end_of_event). */
  end: boolean | undefined;
  /** The RTP payload (audio packets; empty when tshark gives none). */
  payload: Buffer;
}

const FIELDS = [
  'udp.dstport',
  'frame.time_epoch',
  'udp.srcport',
  'rtp.seq',
  'rtp.timestamp',
  'rtp.marker',
  'rtp.p_type',
  'rtpevent.event_id',
  'rtpevent.end_of_event',
  'rtp.payload',
];

export class RtpCapture {
  readonly packets: CapturedRtp[] = [];
  readonly #child: ChildProcess;
  readonly #probePort: number;
  readonly #probe: dgram.Socket;
  #probesSeen = 0;
  #partial = '';
  #stderr = '';
  #wake: (() => void)[] = [];
  #stopped = false;

  private constructor(child: ChildProcess, probePort: number, probe: dgram.Socket) {
    this.#child = child;
    this.#probePort = probePort;
    this.#probe = probe;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.#onText(chunk));
    child.stderr!.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString('utf8')).slice(-8192);
    });
    child.once('exit', () => this.#notify());
  }

  get process(): ChildProcess {
    return this.#child;
  }

  /** Starts capturing every UDP packet to or from `port`, dissected as RTP; resolves once the capture is live. */
  static async start(port: number): Promise<RtpCapture> {
    const probePort = await freePort('udp');
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    const child = spawn(
      toolPath('tshark'),
      [
        ...['-i', 'lo', '-l', '-f', `(udp port ${port}) or (udp dst port ${probePort})`],
        ...['-d', `udp.port==${port},rtp`, '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=f'],
        ...FIELDS.flatMap((field) => ['-e', field]),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const capture = new RtpCapture(child, probePort, probe);
    try {
      await waitForStderr(child, /Capturing on/, 20_000);
      await capture.#probeUntilSeen();
    } catch (error) {
      await capture.stop();
      throw error;
    }
    return capture;
  }

  /** Packets sent from `port`, in capture order. */
  from(port: number): CapturedRtp[] {
    return this.packets.filter((p) => p.srcPort === port);
  }

  /** Packets sent to `port`, in capture order. */
  to(port: number): CapturedRtp[] {
    return this.packets.filter((p) => p.dstPort === port);
  }

  /** Resolves once `condition` holds (checked as packets arrive); rejects after `timeoutMs` or if tshark exits. */
  until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`capture: no ${what} within ${timeoutMs} ms (${this.packets.length} packets)`)),
        timeoutMs,
      );
      const check = () => {
        if (condition()) {
          clearTimeout(timer);
          resolve();
        } else if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
          clearTimeout(timer);
          reject(new Error(`tshark exited before ${what}: ${this.#stderr}`));
        } else {
          this.#wake.push(check);
        }
      };
      check();
    });
  }

  /** Proves everything sent so far is captured, then ends the capture. */
  async finish(): Promise<void> {
    await this.#probeUntilSeen();
    await this.stop();
  }

  /** Idempotent. */
  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#probe.close();
    }
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGINT');
      await exited(this.#child);
    }
  }

  async #probeUntilSeen(): Promise<void> {
    const before = this.#probesSeen;
    const deadline = performance.now() + 20_000;
    while (this.#probesSeen === before) {
      if (performance.now() > deadline)
        throw new Error(`tshark never showed a probe packet: ${this.#stderr}`);
      if (this.#child.exitCode !== null) throw new Error(`tshark exited: ${this.#stderr}`);
      this.#probe.send('rcsp-probe', this.#probePort, '127.0.0.1');
      // Until the capture shows it, or 100 ms pass and another probe goes out.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  #onText(chunk: string): void {
    const lines = (this.#partial + chunk).split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') continue;
      const [dst, epoch, src, seq, timestamp, marker, pt, event, end, payload] = line.split('\t');
      if (dst === String(this.#probePort)) {
        this.#probesSeen++;
        continue;
      }
      if (seq === undefined || seq === '' || pt === undefined || pt === '') continue; // not RTP
      this.packets.push({
        atMs: Number(epoch) * 1000,
        srcPort: Number(src),
        dstPort: Number(dst),
        seq: Number(seq),
        timestamp: Number(timestamp),
        marker: marker === '1' || marker === 'True',
        payloadType: Number(pt),
        event: event === undefined || event === '' ? undefined : Number(event),
        end: end === undefined || end === '' ? undefined : end === '1' || end === 'True',
        payload: Buffer.from((payload ?? '').replace(/:/g, ''), 'hex'),
      });
    }
    this.#notify();
  }

  #notify(): void {
    for (const wake of this.#wake.splice(0)) wake();
  }
}
