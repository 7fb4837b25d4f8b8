/**
 * Prometheus metrics (prom-client), one registry per process. Gauges that
 * describe the present (registration, calls in progress, leases) are read
 * from the fleet when scraped; counters are fed by events. Media counters
 * (packets, concealment, sink drops) follow the calls in progress: at each
 * scrape every call's growth since the last one is added, and the rest when
 * it ends, so an hour-long call is visible while it lasts and no packet is
 * counted twice. Recording bytes are added when each call ends. Node's own
 * metrics (event-loop delay, GC pauses, memory, CPU) come from prom-client's
 * defaults with the same prefix.
 */
import { stat } from 'node:fs/promises';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Call, CallEndInfo } from '../call/call.js';
import type { ExporterStats } from '../events/exporter.js';
import type { DeviceState } from '../fleet/fleet.js';
import type { Softphone } from '../softphone.js';

export const METRIC_PREFIX = 'rc_softphone_';

export interface DeviceView {
  id: string;
  state: DeviceState;
  registered: boolean;
  activeCalls: number;
  /** Defined when coordinated. */
  leaseHeld?: boolean;
}

export interface MetricsSources {
  devices: () => Iterable<DeviceView>;
  exporter?: () => ExporterStats | undefined;
  coordination?: () => { members: number; share: number; storeConnected: boolean } | undefined;
}

/** What a call's media counters were when last counted. */
interface Counted {
  received: number;
  lost: number;
  late: number;
  concealed: number;
  engine: number;
  stream: number;
}

const NOTHING_COUNTED: Counted = { received: 0, lost: 0, late: 0, concealed: 0, engine: 0, stream: 0 };

const STATES: readonly DeviceState[] = [
  'standby',
  'starting',
  'registered',
  'reconnecting',
  'retrying',
  'stopping',
  'stopped',
];

export class SoftphoneMetrics {
  readonly registry = new Registry();
  readonly #calls: Counter<'device' | 'direction' | 'outcome'>;
  readonly #rejected: Counter<'device' | 'status'>;
  readonly #regFailures: Counter<'device'>;
  readonly #received: Counter<'device'>;
  readonly #lost: Counter<'device'>;
  readonly #late: Counter<'device'>;
  readonly #concealed: Counter<'device'>;
  readonly #sinkDropped: Counter<'device' | 'sink'>;
  readonly #recordingBytes: Counter<'device'>;
  /** Each device's Softphone, for its calls in progress. */
  readonly #phones = new Map<string, Softphone>();
  readonly #counted = new WeakMap<Call, Counted>();
  /** The calls were looked at in this turn of the event loop (one scrape collects every counter in one turn). */
  #sampled = false;

  constructor(sources: MetricsSources, options: { defaultMetrics?: boolean } = {}) {
    const r = this.registry;
    const p = METRIC_PREFIX;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: r, prefix: p });
    new Gauge({
      name: `${p}device_registered`,
      help: 'Whether the device is registered (1) or not (0).',
      labelNames: ['device'],
      registers: [r],
      collect() {
        this.reset();
        for (const d of sources.devices()) this.set({ device: d.id }, d.registered ? 1 : 0);
      },
    });
    new Gauge({
      name: `${p}device_state`,
      help: 'The device state: 1 for the current one (standby, starting, registered, reconnecting, retrying, stopping, stopped).',
      labelNames: ['device', 'state'],
      registers: [r],
      collect() {
        this.reset();
        for (const d of sources.devices()) {
          for (const s of STATES) this.set({ device: d.id, state: s }, d.state === s ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: `${p}active_calls`,
      help: 'Calls in progress.',
      labelNames: ['device'],
      registers: [r],
      collect() {
        this.reset();
        for (const d of sources.devices()) this.set({ device: d.id }, d.activeCalls);
      },
    });
    if (sources.coordination) {
      const coordination = sources.coordination;
      new Gauge({
        name: `${p}device_lease_held`,
        help: 'Whether this process holds the device lease (1) or not (0).',
        labelNames: ['device'],
        registers: [r],
        collect() {
          this.reset();
          for (const d of sources.devices()) this.set({ device: d.id }, d.leaseHeld ? 1 : 0);
        },
      });
      new Gauge({
        name: `${p}fleet_members`,
        help: 'Live processes listing this fleet, at the last heartbeat.',
        registers: [r],
        // Every worker of --processes sees the same members: aggregated, one of them.
        aggregator: 'max',
        collect() {
          this.set(coordination()?.members ?? 0);
        },
      });
      new Gauge({
        name: `${p}fleet_share`,
        help: 'Devices this process takes at most.',
        registers: [r],
        collect() {
          this.set(coordination()?.share ?? 0);
        },
      });
      new Gauge({
        name: `${p}lease_store_up`,
        help: 'Whether the lease store answered the last round (1) or not (0).',
        registers: [r],
        aggregator: 'min',
        collect() {
          this.set(coordination()?.storeConnected ? 1 : 0);
        },
      });
    }
    if (sources.exporter) {
      const stats = sources.exporter;
      const counterOf = (
        name: string,
        help: string,
        key: 'published' | 'delivered' | 'dropped' | 'failures',
      ) =>
        new Counter({
          name: `${p}${name}`,
          help,
          registers: [r],
          collect() {
            const s = stats();
            if (s) {
              this.reset();
              this.inc(s[key]);
            }
          },
        });
      counterOf('events_published_total', 'Events queued for the broker.', 'published');
      counterOf('events_delivered_total', 'Events the broker acknowledged.', 'delivered');
      counterOf(
        'events_dropped_total',
        'Events dropped from the full buffer while the broker was away.',
        'dropped',
      );
      counterOf('events_send_failures_total', 'Failed sends to the broker (each retried).', 'failures');
      new Gauge({
        name: `${p}events_buffered`,
        help: 'Events waiting for the broker.',
        registers: [r],
        collect() {
          this.set(stats()?.buffered ?? 0);
        },
      });
      new Gauge({
        name: `${p}events_broker_up`,
        help: 'Whether the last send to the broker succeeded (1) or not (0).',
        registers: [r],
        aggregator: 'min',
        collect() {
          this.set(stats()?.connected ? 1 : 0);
        },
      });
    }
    this.#calls = new Counter({
      name: `${p}calls_total`,
      help: 'Calls ended, by direction and outcome (remote-bye, local-hangup, cancelled, rejected, no-answer, media-timeout, max-duration, shutdown, flow-lost, error, …).',
      labelNames: ['device', 'direction', 'outcome'],
      registers: [r],
    });
    this.#rejected = new Counter({
      name: `${p}calls_refused_total`,
      help: 'INVITEs not taken (busy, no acceptable codec, cancelled before the answer), by SIP status.',
      labelNames: ['device', 'status'],
      registers: [r],
    });
    this.#regFailures = new Counter({
      name: `${p}registration_failures_total`,
      help: 'REGISTER exchanges that failed.',
      labelNames: ['device'],
      registers: [r],
    });
    // Media counters: each scrape first adds what the calls in progress received since the last.
    const sample = () => this.#sampleCalls();
    const perDevice = (name: string, help: string, live = true) =>
      new Counter({
        name: `${p}${name}`,
        help,
        labelNames: ['device'],
        registers: [r],
        ...(live && { collect: sample }),
      });
    this.#received = perDevice('rtp_packets_received_total', 'RTP packets received.');
    this.#lost = perDevice('rtp_packets_lost_total', 'RTP packets lost.');
    this.#late = perDevice('rtp_packets_late_total', 'RTP packets that arrived too late for the recording.');
    this.#concealed = perDevice(
      'live_frames_concealed_total',
      'Silent frames the live stream played while audio was overdue.',
    );
    this.#sinkDropped = new Counter({
      name: `${p}sink_frames_dropped_total`,
      help: 'Frames a live sink (engine pipe, media stream) could not take.',
      labelNames: ['device', 'sink'],
      registers: [r],
      collect: sample,
    });
    this.#recordingBytes = perDevice(
      'recording_bytes_total',
      'Bytes of WAV recordings written (counted when each call ends).',
      false,
    );
  }

  /** Counts the events of one device's Softphone (call it for every new Softphone of the device). */
  watch(device: string, phone: Softphone): void {
    phone.on('registrationFailed', () => this.#regFailures.inc({ device }));
    phone.on('callRejected', (info) => this.#rejected.inc({ device, status: String(info.status) }));
    this.#phones.set(device, phone);
    phone.on('callEnded', (call, info) => {
      this.#calls.inc({ device, direction: call.direction, outcome: info.reason });
      if (info.stats) this.#count(device, call, info.stats);
      if (info.wav) {
        stat(info.wav).then(
          (st) => this.#recordingBytes.inc({ device }, st.size),
          () => {},
        );
      }
    });
  }

  /**
   * Adds every call in progress's growth since it was last counted, once per
   * scrape: a scrape runs every counter's collect in one synchronous pass, so
   * the first does the work and the flag clears before the next scrape.
   */
  #sampleCalls(): void {
    if (this.#sampled) return;
    this.#sampled = true;
    queueMicrotask(() => {
      this.#sampled = false;
    });
    for (const [device, phone] of this.#phones) {
      for (const call of phone.activeCalls) {
        const stats = call.stats;
        if (stats) this.#count(device, call, stats);
      }
    }
  }

  /**
   * Adds what grew since this call was last counted. A counter only grows:
   * a figure that went down (RFC 3550's cumulative loss does when a late
   * packet arrives) adds nothing until it passes what was counted.
   */
  #count(device: string, call: Call, stats: NonNullable<CallEndInfo['stats']>): void {
    const before = this.#counted.get(call) ?? NOTHING_COUNTED;
    const now: Counted = {
      received: Math.max(before.received, stats.received),
      lost: Math.max(before.lost, stats.lost),
      late: Math.max(before.late, stats.late),
      concealed: Math.max(before.concealed, stats.liveConcealed ?? 0),
      engine: Math.max(before.engine, stats.engineFramesDropped ?? 0),
      stream: Math.max(before.stream, stats.streamFramesDropped ?? 0),
    };
    const labels = { device };
    if (now.received > before.received) this.#received.inc(labels, now.received - before.received);
    if (now.lost > before.lost) this.#lost.inc(labels, now.lost - before.lost);
    if (now.late > before.late) this.#late.inc(labels, now.late - before.late);
    if (now.concealed > before.concealed) this.#concealed.inc(labels, now.concealed - before.concealed);
    if (now.engine > before.engine)
      this.#sinkDropped.inc({ device, sink: 'engine' }, now.engine - before.engine);
    if (now.stream > before.stream)
      this.#sinkDropped.inc({ device, sink: 'stream' }, now.stream - before.stream);
    this.#counted.set(call, now);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
