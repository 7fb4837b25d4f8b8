/**
 * The observability endpoint (`--http HOST:PORT`), node:http only:
 *
 *   GET /metrics  Prometheus text format (SoftphoneMetrics)
 *   GET /healthz  200 while the process runs (liveness)
 *   GET /readyz   200 when ready (see health.ts), else 503; JSON says why
 *
 * Anything else is 404 (405 for other methods). It serves nothing secret.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError, ErrorCodes, SoftphoneError } from '../errors.js';
import type { Readiness } from './health.js';

/** What /metrics serves: SoftphoneMetrics, or a supervisor's aggregate of its processes'. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface ObservabilityServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface HttpListen {
  host: string;
  port: number;
}

/** Parses --http's HOST:PORT ([v6]:PORT, :PORT for every interface); the reason names the flag. */
export function parseHttpListen(
  text: string,
): { ok: true; value: HttpListen } | { ok: false; reason: string } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[3]);
  if (!m || port > 65535) {
    return {
      ok: false,
      reason: `must be HOST:PORT (example: --http 127.0.0.1:9464, or --http :9464 for every interface), got "${text}"`,
    };
  }
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : (m[2] as string));
  return { ok: true, value: { host, port } };
}

export async function startObservabilityServer(options: {
  listen: HttpListen;
  metrics: MetricsSource;
  readiness: () => Readiness | Promise<Readiness>;
}): Promise<ObservabilityServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
    };
    if (url === '/metrics') {
      options.metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': options.metrics.contentType }).end(text),
        (err) =>
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${describeError(err)}\n`),
      );
      return;
    }
    if (url === '/healthz') return json(200, { status: 'ok' });
    if (url === '/readyz') {
      Promise.resolve()
        .then(options.readiness)
        .then(
          (r) => json(r.ready ? 200 : 503, { ready: r.ready, reason: r.reason, required: r.required }),
          (err) => json(503, { ready: false, reason: `readiness failed: ${describeError(err)}` }),
        );
      return;
    }
    json(404, { error: 'not found', paths: ['/metrics', '/healthz', '/readyz'] });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new SoftphoneError(
          ErrorCodes.CONFIG_INVALID,
          `--http ${options.listen.host}:${options.listen.port}: cannot listen (${err.code ?? err.message})`,
          { details: { option: 'http', errno: err.code } },
        ),
      ),
    );
    server.listen({ host: options.listen.host, port: options.listen.port }, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    host: address.address,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
