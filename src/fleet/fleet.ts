/**
 * Many devices in one process: one Softphone (one flow, one registration)
 * per device, one RTP port pool for all, per-device call limits. A device
 * whose registration is refused (wrong password, 403) or that cannot start
 * is reported and tried again later with capped backoff, on its own; the
 * others never notice. With a coordinator, a device runs only while this
 * process holds its lease (coordinator.ts).
 */
import { describeError, ErrorCodes, isSoftphoneError } from '../errors.js';
import { RtpPortPool } from '../media/port-pool.js';
import { SafeEmitter } from '../safe-emitter.js';
import { type BackoffOptions, backoffDelay } from '../sip/transport/backoff.js';
import { Softphone, type SoftphoneOptions } from '../softphone.js';
import type { LeaseCoordinator } from './coordinator.js';
import type { FleetDevice } from './devices.js';

export type DeviceState =
  /** Not running: waiting for its lease (coordinated fleets). */
  | 'standby'
  /** Connecting and registering. */
  | 'starting'
  | 'registered'
  /** Registered before; the flow or the registration is being recovered. */
  | 'reconnecting'
  /** The start failed; it is tried again after a backoff. */
  | 'retrying'
  | 'stopping'
  | 'stopped';

export interface DeviceStatus {
  readonly id: string;
  readonly state: DeviceState;
  readonly registered: boolean;
  readonly activeCalls: number;
  /** Failed starts in a row. */
  readonly failures: number;
  readonly lastError: string | undefined;
}

export interface DeviceFailure {
  device: string;
  code: string;
  message: string;
  attempt: number;
  retryInMs: number;
}

export interface FleetEvents {
  /** A new Softphone for a device, before it starts: wire its events here (it is new after every retry). */
  phone: [device: string, phone: Softphone];
  state: [device: string, state: DeviceState];
  /** A device could not start (refused registration, …); it is retried after retryInMs. */
  deviceFailed: [failure: DeviceFailure];
}

export type SharedSoftphoneOptions = Omit<
  SoftphoneOptions,
  'sipInfo' | 'instanceId' | 'proxySettingNames' | 'portPool' | 'maxCalls'
>;

export interface FleetOptions {
  devices: readonly FleetDevice[];
  /** Options every device's Softphone gets (record dir, media, pipe, stream, …). */
  phone: SharedSoftphoneOptions;
  /** Concurrent calls per device unless the device says otherwise. */
  maxCalls: number;
  /** Backoff between failed starts of one device. Default 5 s doubling to 5 min. */
  retry?: BackoffOptions;
}

export const DEFAULT_DEVICE_RETRY: Readonly<Required<BackoffOptions>> = Object.freeze({
  baseMs: 5000,
  maxMs: 300_000,
  jitter: 0.3,
});

export class Fleet extends SafeEmitter<FleetEvents> {
  readonly ports: RtpPortPool;
  readonly #runners = new Map<string, DeviceRunner>();
  #coordinator: LeaseCoordinator | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: FleetOptions) {
    super();
    const range = options.phone.rtpPorts ?? { min: 20000, max: 29999 };
    this.ports = new RtpPortPool(range);
    for (const device of options.devices) {
      this.#runners.set(device.id, new DeviceRunner(this, device, options, this.ports));
    }
  }

  get deviceIds(): string[] {
    return [...this.#runners.keys()];
  }

  get devices(): DeviceStatus[] {
    return [...this.#runners.values()].map((r) => r.status);
  }

  /** The current Softphone of a device (undefined while it is not running). */
  phone(id: string): Softphone | undefined {
    return this.#runners.get(id)?.phone;
  }

  get activeCalls(): number {
    let n = 0;
    for (const r of this.#runners.values()) n += r.phone?.activeCalls.length ?? 0;
    return n;
  }

  /**
   * Starts every device, or, with a coordinator, lets it start the devices
   * whose leases this process takes. Resolves at once: devices register on
   * their own time and report through their events.
   */
  start(coordinator?: LeaseCoordinator): void {
    this.#coordinator = coordinator;
    if (coordinator) {
      for (const r of this.#runners.values()) r.standby();
      coordinator.start();
      return;
    }
    for (const r of this.#runners.values()) r.start();
  }

  /** Starts one device (the coordinator's `start`). */
  startDevice(id: string): void {
    this.#runners.get(id)?.start();
  }

  /** Stops one device: its calls end, it unregisters (the coordinator's `stop`). */
  stopDevice(id: string, _reason: string): Promise<void> {
    return this.#runners.get(id)?.stop(true) ?? Promise.resolve();
  }

  /** Hangs up every call, unregisters every device, releases every lease. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.#coordinator) await this.#coordinator.stop();
      await Promise.all([...this.#runners.values()].map((r) => r.stop(false)));
    })();
    return this.#stopping;
  }

  /** Ends every call at once without signalling, recordings finished: a forced exit. */
  stopNow(): void {
    for (const r of this.#runners.values()) r.phone?.stopNow();
  }

  /** @internal */
  stateChanged(id: string, state: DeviceState): void {
    this.emit('state', id, state);
  }

  /** @internal */
  newPhone(id: string, phone: Softphone): void {
    this.emit('phone', id, phone);
  }

  /** @internal */
  failed(failure: DeviceFailure): void {
    this.emit('deviceFailed', failure);
  }
}

class DeviceRunner {
  readonly #fleet: Fleet;
  readonly #device: FleetDevice;
  readonly #options: FleetOptions;
  readonly #ports: RtpPortPool;
  #state: DeviceState = 'stopped';
  #phone: Softphone | undefined;
  #failures = 0;
  #lastError: string | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Bumped by every start and stop: a late answer of an older run changes nothing. */
  #generation = 0;
  #stopping: Promise<void> | undefined;
  /** Whether the device should run: a start() during a stop takes effect once the stop is done. */
  #wanted = false;

  constructor(fleet: Fleet, device: FleetDevice, options: FleetOptions, ports: RtpPortPool) {
    this.#fleet = fleet;
    this.#device = device;
    this.#options = options;
    this.#ports = ports;
  }

  get phone(): Softphone | undefined {
    return this.#phone;
  }

  get status(): DeviceStatus {
    return {
      id: this.#device.id,
      state: this.#state,
      registered: this.#phone?.registered ?? false,
      activeCalls: this.#phone?.activeCalls.length ?? 0,
      failures: this.#failures,
      lastError: this.#lastError,
    };
  }

  standby(): void {
    this.#set('standby');
  }

  start(): void {
    this.#wanted = true;
    if (this.#stopping) return; // the stop in progress starts it again when done
    if (this.#phone || this.#state === 'starting') return;
    const generation = ++this.#generation;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const d = this.#device;
    let phone: Softphone;
    try {
      phone = new Softphone({
        ...this.#options.phone,
        sipInfo: d.sipInfo,
        instanceId: d.instanceId,
        maxCalls: d.maxCalls ?? this.#options.maxCalls,
        portPool: this.#ports,
        proxySettingNames: {
          outboundProxy: `outboundProxy of ${d.source}`,
          outboundProxyBackup: `outboundProxyBackup of ${d.source}`,
        },
      });
    } catch (err) {
      this.#failed(generation, err);
      return;
    }
    this.#phone = phone;
    phone.on('registered', () => {
      if (this.#phone === phone) this.#set('registered');
    });
    phone.on('reconnecting', () => {
      if (this.#phone === phone && this.#state === 'registered') this.#set('reconnecting');
    });
    this.#fleet.newPhone(d.id, phone);
    this.#set('starting');
    phone.start().then(
      () => {
        if (generation !== this.#generation) return;
        this.#failures = 0;
        this.#lastError = undefined;
      },
      (err) => {
        if (generation !== this.#generation) return;
        this.#phone = undefined;
        void phone.stop().catch(() => {});
        this.#failed(generation, err);
      },
    );
  }

  /** Stops the device; `standby` leaves it waiting for its lease again instead of stopped. */
  async stop(standby: boolean): Promise<void> {
    this.#wanted = false;
    this.#generation++;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const phone = this.#phone;
    if (phone) {
      this.#set('stopping');
      this.#stopping ??= phone.stop().catch(() => {});
      await this.#stopping;
      this.#stopping = undefined;
      if (this.#phone === phone) this.#phone = undefined;
    }
    this.#set(standby ? 'standby' : 'stopped');
    // The lease came back while it was stopping (or a start() raced the stop): run it again.
    if (this.#wanted && !this.#phone) this.start();
  }

  #failed(generation: number, err: unknown): void {
    if (generation !== this.#generation) return;
    this.#failures++;
    this.#lastError = describeError(err);
    const retryInMs = backoffDelay(this.#failures, { ...DEFAULT_DEVICE_RETRY, ...this.#options.retry });
    const code = isSoftphoneError(err) ? err.code : ErrorCodes.SIP_REGISTRATION_REJECTED;
    this.#set('retrying');
    this.#fleet.failed({
      device: this.#device.id,
      code,
      message: this.#lastError,
      attempt: this.#failures,
      retryInMs,
    });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (generation === this.#generation) this.start();
    }, retryInMs);
  }

  #set(state: DeviceState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#fleet.stateChanged(this.#device.id, state);
  }
}
