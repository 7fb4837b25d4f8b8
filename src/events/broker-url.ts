/**
 * Broker URLs for --events and --coordinate: `redis://`, `rediss://` (TLS)
 * and `nats://` (`tls://` for NATS over TLS), with optional credentials.
 * Parsed and checked once, before any network I/O; the credentials never
 * reach a message (`shown` is the URL with them replaced).
 */

export type BrokerKind = 'redis' | 'nats';

export interface BrokerUrl {
  kind: BrokerKind;
  /** The URL as given: holds the credentials, pass it only to the client. */
  url: string;
  /** The URL with user and password replaced by `***`: safe for logs and errors. */
  shown: string;
  host: string;
  port: number;
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
  /** Redis database number (the path), default 0. */
  db: number;
}

const DEFAULT_PORT: Record<string, number> = { 'redis:': 6379, 'rediss:': 6379, 'nats:': 4222, 'tls:': 4222 };

/** The URL, or why it is not usable (a phrase that fits after the flag's name). */
export function parseBrokerUrl(text: string): { ok: true; value: BrokerUrl } | { ok: false; reason: string } {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return { ok: false, reason: 'is not a URL' };
  }
  const port = DEFAULT_PORT[url.protocol];
  if (port === undefined) {
    return { ok: false, reason: `has the scheme "${url.protocol}"; use redis://, rediss:// or nats://` };
  }
  if (url.hostname === '') return { ok: false, reason: 'has no host' };
  const kind: BrokerKind = url.protocol.startsWith('redis') ? 'redis' : 'nats';
  let db = 0;
  const path = url.pathname.replace(/^\/+/, '');
  if (kind === 'redis' && path !== '') {
    if (!/^\d{1,5}$/.test(path))
      return {
        ok: false,
        reason: `has the path "/${path}"; a Redis URL's path is the database number (e.g. /0)`,
      };
    db = Number(path);
  }
  if (kind === 'nats' && path !== '')
    return { ok: false, reason: 'has a path; a NATS URL is nats://host:port' };
  const shownUrl = new URL(url.href);
  if (shownUrl.username) shownUrl.username = '***';
  if (shownUrl.password) shownUrl.password = '***';
  return {
    ok: true,
    value: {
      kind,
      url: url.href,
      shown: shownUrl.href.replace(/\/$/, ''),
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? port : Number(url.port),
      tls: url.protocol === 'rediss:' || url.protocol === 'tls:',
      username: url.username === '' ? undefined : decodeURIComponent(url.username),
      password: url.password === '' ? undefined : decodeURIComponent(url.password),
      db,
    },
  };
}
