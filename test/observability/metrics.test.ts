/**
 * The metrics: Prometheus naming (rc_softphone_ prefix, counters end in
 * _total, units in names), the values a fleet's state and a call's end put
 * there, the HTTP endpoint's answers, and the Grafana dashboard in samples/
 * querying only metrics that exist.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseHttpListen, startObservabilityServer } from '../../src/observability/http.js';
import { type DeviceView, SoftphoneMetrics } from '../../src/observability/metrics.js';
import type { Softphone } from '../../src/softphone.js';
import { projectRoot } from '../helpers/paths.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function fullMetrics(devices: DeviceView[] = []) {
  return new SoftphoneMetrics({
    devices: () => devices,
    exporter: () => ({ published: 10, delivered: 7, dropped: 2, buffered: 1, failures: 3, connected: false }),
    coordination: () => ({ members: 3, share: 2, storeConnected: true }),
  });
}

/** Every series name the registry can expose (histograms and summaries with their suffixes). */
async function seriesNames(m: SoftphoneMetrics): Promise<Set<string>> {
  const names = new Set<string>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === 'histogram')
      for (const s of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${s}`);
    if (String(metric.type) === 'summary')
      for (const s of ['_sum', '_count']) names.add(`${metric.name}${s}`);
  }
  return names;
}

describe('SoftphoneMetrics', () => {
  it('follows Prometheus naming: prefix, _total counters, units', async () => {
    const m = fullMetrics();
    for (const metric of await m.registry.getMetricsAsJSON()) {
      expect(metric.name).toMatch(/^rc_softphone_[a-z0-9_]+$/);
      if (String(metric.type) === 'counter') expect(metric.name).toMatch(/_total$/);
      // (prom-client's own gauges such as nodejs_active_resources_total keep their upstream names.)
      else if (!/^rc_softphone_(nodejs|process)_/.test(metric.name))
        expect(metric.name).not.toMatch(/_total$/);
      expect(metric.help.length).toBeGreaterThan(5);
    }
    const names = await seriesNames(m);
    for (const wanted of [
      'rc_softphone_device_registered',
      'rc_softphone_active_calls',
      'rc_softphone_calls_total',
      'rc_softphone_rtp_packets_received_total',
      'rc_softphone_rtp_packets_lost_total',
      'rc_softphone_rtp_packets_late_total',
      'rc_softphone_live_frames_concealed_total',
      'rc_softphone_sink_frames_dropped_total',
      'rc_softphone_recording_bytes_total',
      'rc_softphone_nodejs_eventloop_lag_seconds',
      'rc_softphone_nodejs_gc_duration_seconds_sum',
      'rc_softphone_events_dropped_total',
      'rc_softphone_device_lease_held',
    ]) {
      expect(names, wanted).toContain(wanted);
    }
  });

  it('reads the fleet when scraped', async () => {
    const m = fullMetrics([
      { id: 'a', state: 'registered', registered: true, activeCalls: 2, leaseHeld: true },
      { id: 'b', state: 'retrying', registered: false, activeCalls: 0, leaseHeld: false },
    ]);
    const text = await m.metrics();
    expect(text).toContain('rc_softphone_device_registered{device="a"} 1');
    expect(text).toContain('rc_softphone_device_registered{device="b"} 0');
    expect(text).toContain('rc_softphone_device_state{device="b",state="retrying"} 1');
    expect(text).toContain('rc_softphone_device_state{device="b",state="registered"} 0');
    expect(text).toContain('rc_softphone_active_calls{device="a"} 2');
    expect(text).toContain('rc_softphone_device_lease_held{device="a"} 1');
    expect(text).toContain('rc_softphone_fleet_members 3');
    expect(text).toContain('rc_softphone_events_dropped_total 2');
    expect(text).toContain('rc_softphone_events_broker_up 0');
  });

  it('media counters follow calls in progress at each scrape, and count each packet once when they end', async () => {
    const m = new SoftphoneMetrics({ devices: () => [] }, { defaultMetrics: false });
    // A Softphone as the metrics see it: its calls in progress, and callEnded.
    const phone = Object.assign(new EventEmitter(), { activeCalls: [] as object[] });
    m.watch('dev1', phone as unknown as Softphone);
    const stats = { received: 100, lost: 3, late: 0, liveConcealed: 0 } as Record<string, number>;
    const call = { direction: 'inbound', stats };
    phone.activeCalls.push(call);
    const value = async (name: string, labels = 'device="dev1"') => {
      const line = (await m.metrics())
        .split('\n')
        .find((l) => l.startsWith(`rc_softphone_${name}{${labels}}`));
      return line === undefined ? undefined : Number(line.split(' ').pop());
    };
    expect(await value('rtp_packets_received_total')).toBe(100);
    expect(await value('rtp_packets_lost_total')).toBe(3);
    // An hour-long call grows between scrapes; RFC 3550's cumulative loss may go down (a late packet).
    Object.assign(stats, { received: 250, lost: 1, late: 2, liveConcealed: 4 });
    expect(await value('rtp_packets_received_total')).toBe(250);
    expect(await value('rtp_packets_lost_total')).toBe(3);
    expect(await value('rtp_packets_late_total')).toBe(2);
    expect(await value('live_frames_concealed_total')).toBe(4);
    Object.assign(stats, { lost: 5 });
    expect(await value('rtp_packets_lost_total')).toBe(5);
    // It ends: only what grew since the last scrape is added, and nothing after.
    phone.activeCalls.length = 0;
    phone.emit('callEnded', call, {
      reason: 'remote-bye',
      stats: { ...stats, received: 260, engineFramesDropped: 2 },
      wav: undefined,
    });
    expect(await value('rtp_packets_received_total')).toBe(260);
    expect(await value('sink_frames_dropped_total', 'device="dev1",sink="engine"')).toBe(2);
    expect(await value('rtp_packets_received_total')).toBe(260);
    expect(await value('calls_total', 'device="dev1",direction="inbound",outcome="remote-bye"')).toBe(1);
    // A call no scrape saw is counted whole when it ends.
    phone.emit(
      'callEnded',
      { direction: 'outbound' },
      { reason: 'local-hangup', stats: { received: 40, lost: 0, late: 0 } },
    );
    expect(await value('rtp_packets_received_total')).toBe(300);
  });

  it('serves /metrics, /healthz, /readyz (503 with the reason when not ready) and 404/405 otherwise', async () => {
    const m = fullMetrics([{ id: 'a', state: 'starting', registered: false, activeCalls: 0 }]);
    let ready = false;
    const server = await startObservabilityServer({
      listen: { host: '127.0.0.1', port: 0 },
      metrics: m,
      readiness: () => ({
        ready,
        required: 1,
        reason: ready ? '1 of 1' : '0 of 1 devices registered (1 needed)',
      }),
    });
    cleanups.push(() => server.close());
    const base = `http://127.0.0.1:${server.port}`;
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/text\/plain/);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({
      ready: false,
      reason: '0 of 1 devices registered (1 needed)',
    });
    ready = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('a taken --http port is a clear error naming the flag', async () => {
    const m = fullMetrics();
    const first = await startObservabilityServer({
      listen: { host: '127.0.0.1', port: 0 },
      metrics: m,
      readiness: () => ({ ready: true, required: 0, reason: '' }),
    });
    cleanups.push(() => first.close());
    await expect(
      startObservabilityServer({
        listen: { host: '127.0.0.1', port: first.port },
        metrics: fullMetrics(),
        readiness: () => ({ ready: true, required: 0, reason: '' }),
      }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/--http .*EADDRINUSE/),
    });
  });

  it.each([
    ['127.0.0.1:9464', { host: '127.0.0.1', port: 9464 }],
    [':9464', { host: '0.0.0.0', port: 9464 }],
    ['[::1]:9000', { host: '::1', port: 9000 }],
    ['metrics.local:80', { host: 'metrics.local', port: 80 }],
  ])('--http %s', (text, value) => {
    expect(parseHttpListen(text)).toEqual({ ok: true, value });
  });

  it.each(['9464', 'host:', 'host:99999', '[::1]'])('--http %s is refused', (text) => {
    expect(parseHttpListen(text).ok).toBe(false);
  });
});

describe('samples/grafana-dashboard.json', () => {
  it('is an importable dashboard whose queries use only metrics the bot exposes', async () => {
    const dash = JSON.parse(
      readFileSync(path.join(projectRoot, 'samples', 'grafana-dashboard.json'), 'utf8'),
    ) as {
      title: string;
      uid: string;
      panels: { id: number; title: string; targets: { expr: string }[]; gridPos: unknown }[];
      __inputs: { pluginId: string }[];
    };
    expect(dash.title).toBeTruthy();
    expect(dash.__inputs[0]!.pluginId).toBe('prometheus');
    const names = await seriesNames(fullMetrics());
    const used = new Set<string>();
    for (const p of dash.panels) {
      expect(p.gridPos).toBeTruthy();
      for (const t of p.targets) for (const n of t.expr.match(/rc_softphone_[a-z0-9_]+/g) ?? []) used.add(n);
    }
    expect(used.size).toBeGreaterThan(10);
    for (const n of used) expect(names, n).toContain(n);
    expect(new Set(dash.panels.map((p) => p.id)).size).toBe(dash.panels.length);
  });
});
