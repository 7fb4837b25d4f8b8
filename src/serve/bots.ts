/**
 * Which bot answers an INVITE (`serve`), and with what: bots.json, checked
 * once (every problem names the entry and the key), and the choice per call.
 * Pure: files named in it (record dirs, greetings) are checked by the caller.
 *
 *   { "bots": [
 *       { "name": "support", "did": ["16505550100", "16505550101"],
 *         "header": { "name": "X-Bot", "value": "support" },
 *         "pipe": "./engine.sh", "recordDir": "./calls/support", "maxCalls": 20 },
 *       { "name": "fallback", "did": "*", "streamUrl": "ws://127.0.0.1:8080/media" } ] }
 *
 * Keys are `listen`'s flags in camelCase with the same units (seconds):
 * recordDir (or "record": false), pipe, pipeGrace, streamUrl, codecs, play,
 * maxCalls, mediaTimeout, maxDuration. What a bot leaves out comes from the
 * command line (and its defaults). A bot is chosen by a header it names
 * first (RingCX may select bots by a SIP header), then by the DID (the
 * Request-URI's user part), then by the catch-all `"*"`; none: 404.
 */
import { CODECS, type CodecName } from '../media/codec.js';
import { streamUrlProblem } from '../sinks/media-stream.js';

/** What every bot gets unless it says otherwise (the command line's values). */
export interface BotDefaults {
  recordDir: string | undefined;
  pipe: string | undefined;
  pipeGraceMs: number;
  streamUrl: string | undefined;
  codecs: readonly CodecName[] | undefined;
  play: string | undefined;
  maxCalls: number;
  mediaTimeoutMs: number;
  maxCallDurationMs: number;
}

export interface Bot extends BotDefaults {
  name: string;
  /** Normalized DIDs (see normalizeDid); `*` answers any. */
  dids: readonly string[];
  /** A header that selects this bot whatever the DID (name matched without case, value exactly). */
  header: { name: string; value: string } | undefined;
}

/** A problem with the configuration: where (`bots[1].streamUrl`) and what. */
export class BotsConfigError extends Error {
  readonly where: string;
  constructor(where: string, message: string) {
    super(`${where}: ${message}`);
    this.name = 'BotsConfigError';
    this.where = where;
  }
}

const KEYS = new Set([
  'name',
  'did',
  'header',
  'recordDir',
  'record',
  'pipe',
  'pipeGrace',
  'streamUrl',
  'codecs',
  'play',
  'maxCalls',
  'mediaTimeout',
  'maxDuration',
]);
/** setTimeout takes at most 2^31-1 ms. */
const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
/** RFC 3261 25.1 token: what a header name may be. */
const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/;

/**
 * The DID as bots are matched by it: a telephone number without its
 * leading `+` and visual separators (RFC 3966 5.1.1), any parameters
 * (`;phone-context=…`) dropped; anything else lowercased.
 */
export function normalizeDid(user: string): string {
  const bare = (user.split(';')[0] ?? '').trim();
  if (/^\+?[\d\s().-]+$/.test(bare)) return bare.replace(/[^\d]/g, '');
  return bare.toLowerCase();
}

/** Parses bots.json's text into bots; throws BotsConfigError naming the place. */
export function parseBots(text: string, defaults: BotDefaults): Bot[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new BotsConfigError(
      'bots.json',
      `is not JSON (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  if (!isObject(json) || !Array.isArray(json.bots)) {
    throw new BotsConfigError('bots.json', 'must be an object with a "bots" array');
  }
  if (json.bots.length === 0) throw new BotsConfigError('bots', 'needs at least one bot');
  for (const key of Object.keys(json)) {
    if (key !== 'bots') throw new BotsConfigError(key, 'is not a known key (only "bots")');
  }
  const bots = json.bots.map((entry, i) => parseBot(entry, `bots[${i}]`, defaults));
  checkUnique(bots);
  return bots;
}

/** One bot from the command line alone: `dids` (none: every DID). */
export function singleBot(dids: readonly string[], defaults: BotDefaults): Bot {
  const normalized = dids.length === 0 ? ['*'] : dids.map(normalizeDid);
  return { ...defaults, name: dids[0] ?? 'default', dids: normalized, header: undefined };
}

/**
 * The bot for an INVITE: the first whose header the request carries, else the
 * one with its DID, else the catch-all; undefined when none.
 */
export function chooseBot(
  bots: readonly Bot[],
  request: { did: string; header: (name: string) => string[] },
): Bot | undefined {
  for (const bot of bots) {
    if (bot.header && request.header(bot.header.name).some((v) => v.trim() === bot.header?.value)) return bot;
  }
  const did = normalizeDid(request.did);
  return bots.find((b) => b.dids.includes(did)) ?? bots.find((b) => b.dids.includes('*'));
}

function parseBot(entry: unknown, where: string, defaults: BotDefaults): Bot {
  if (!isObject(entry)) throw new BotsConfigError(where, 'must be an object');
  for (const key of Object.keys(entry)) {
    if (!KEYS.has(key)) {
      throw new BotsConfigError(`${where}.${key}`, `is not a bot setting (known: ${[...KEYS].join(', ')})`);
    }
  }
  const dids = parseDids(entry.did, `${where}.did`);
  const header = parseHeader(entry.header, `${where}.header`);
  if (dids.length === 0 && !header) {
    throw new BotsConfigError(where, 'needs a "did" (a number, a list, or "*" for any) or a "header"');
  }
  const firstDid = Array.isArray(entry.did) ? entry.did[0] : entry.did;
  const name =
    optionalString(entry.name, `${where}.name`) ??
    (firstDid === undefined ? undefined : String(firstDid)) ??
    header?.value ??
    where;
  if (entry.record !== undefined && typeof entry.record !== 'boolean') {
    throw new BotsConfigError(`${where}.record`, 'must be true or false');
  }
  const recordDir = optionalString(entry.recordDir, `${where}.recordDir`);
  if (entry.record === false && recordDir !== undefined) {
    throw new BotsConfigError(where, '"record": false and a "recordDir" contradict each other');
  }
  const streamUrl = optionalString(entry.streamUrl, `${where}.streamUrl`);
  const urlProblem = streamUrl === undefined ? undefined : streamUrlProblem(streamUrl);
  // The URL itself is not repeated: it may hold credentials.
  if (urlProblem)
    throw new BotsConfigError(`${where}.streamUrl`, `${urlProblem} (example: ws://127.0.0.1:8080/media)`);
  const pipe = optionalString(entry.pipe, `${where}.pipe`);
  if (pipe !== undefined && pipe.trim() === '') throw new BotsConfigError(`${where}.pipe`, 'needs a command');
  const play = optionalString(entry.play, `${where}.play`);
  const codecs = entry.codecs === undefined ? defaults.codecs : parseCodecs(entry.codecs, `${where}.codecs`);
  const seconds = (key: string, fallbackMs: number, min: number): number => {
    const v = entry[key];
    if (v === undefined) return fallbackMs;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_SECONDS) {
      throw new BotsConfigError(
        `${where}.${key}`,
        `must be a whole number of seconds from ${min} to ${MAX_SECONDS}`,
      );
    }
    return v * 1000;
  };
  const maxCalls = entry.maxCalls;
  if (
    maxCalls !== undefined &&
    (typeof maxCalls !== 'number' || !Number.isInteger(maxCalls) || maxCalls < 1)
  ) {
    throw new BotsConfigError(`${where}.maxCalls`, 'must be a whole number from 1');
  }
  return {
    name,
    dids,
    header,
    recordDir: entry.record === false ? undefined : (recordDir ?? defaults.recordDir),
    pipe: pipe ?? defaults.pipe,
    pipeGraceMs: seconds('pipeGrace', defaults.pipeGraceMs, 0),
    streamUrl: streamUrl ?? defaults.streamUrl,
    codecs,
    play: play ?? defaults.play,
    maxCalls: (maxCalls as number | undefined) ?? defaults.maxCalls,
    mediaTimeoutMs: seconds('mediaTimeout', defaults.mediaTimeoutMs, 0),
    maxCallDurationMs: seconds('maxDuration', defaults.maxCallDurationMs, 0),
  };
}

function parseDids(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw new BotsConfigError(where, 'is an empty list');
  return list.map((v, i) => {
    if (typeof v !== 'string' && typeof v !== 'number') {
      throw new BotsConfigError(
        Array.isArray(value) ? `${where}[${i}]` : where,
        'must be a string (or a number)',
      );
    }
    const did = v === '*' ? '*' : normalizeDid(String(v));
    if (did === '') throw new BotsConfigError(Array.isArray(value) ? `${where}[${i}]` : where, 'is empty');
    return did;
  });
}

function parseHeader(value: unknown, where: string): Bot['header'] {
  if (value === undefined) return undefined;
  if (!isObject(value) || typeof value.name !== 'string' || typeof value.value !== 'string') {
    throw new BotsConfigError(where, 'must be {"name": "X-Header", "value": "…"}');
  }
  if (!TOKEN.test(value.name)) throw new BotsConfigError(`${where}.name`, 'is not a header name');
  if (value.value.trim() === '') throw new BotsConfigError(`${where}.value`, 'is empty');
  return { name: value.name, value: value.value.trim() };
}

function parseCodecs(value: unknown, where: string): CodecName[] {
  const names = Object.keys(CODECS) as CodecName[];
  const list = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? value : undefined;
  if (!list) throw new BotsConfigError(where, `must be a list of codecs (from ${names.join(', ')})`);
  const out: CodecName[] = [];
  for (const item of list) {
    const found = names.find(
      (n) => typeof item === 'string' && n.toLowerCase() === item.trim().toLowerCase(),
    );
    if (!found)
      throw new BotsConfigError(where, `unknown codec ${JSON.stringify(item)} (known: ${names.join(', ')})`);
    if (!out.includes(found)) out.push(found);
  }
  if (out.length === 0) throw new BotsConfigError(where, 'needs at least one codec');
  return out;
}

function checkUnique(bots: readonly Bot[]): void {
  const names = new Map<string, number>();
  const dids = new Map<string, number>();
  const headers = new Map<string, number>();
  bots.forEach((bot, i) => {
    for (const did of bot.dids) {
      const other = dids.get(did);
      if (other !== undefined) {
        throw new BotsConfigError(`bots[${i}].did`, `${did === '*' ? '"*"' : did} is also bots[${other}]'s`);
      }
      dids.set(did, i);
    }
    if (bot.header) {
      const key = `${bot.header.name.toLowerCase()}\n${bot.header.value}`;
      const other = headers.get(key);
      if (other !== undefined) throw new BotsConfigError(`bots[${i}].header`, `is also bots[${other}]'s`);
      headers.set(key, i);
    }
  });
  // Names last: two bots for the same DID are the likelier mistake, and say more.
  bots.forEach((bot, i) => {
    const name = names.get(bot.name);
    if (name !== undefined) {
      throw new BotsConfigError(`bots[${i}].name`, `"${bot.name}" is also bots[${name}]'s name`);
    }
    names.set(bot.name, i);
  });
}

function optionalString(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new BotsConfigError(where, 'must be a string');
  return value;
}

function isObject(v: unknown): v is Record<string, unknown> & { did?: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
