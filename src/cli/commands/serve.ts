/**
 * `rc-softphone serve`: the SIP endpoint for RingCentral's bot-partner
 * interface. RingCX connects (UDP, TCP or TLS), sends an INVITE for a DID;
 * the bot bots.json names for it (or the one the flags describe) answers,
 * records, streams the caller to its engine, and sends the engine's intents
 * back as SIP INFO. Everything is checked before a socket opens (exit 2
 * naming the flag); runs until SIGINT/SIGTERM or --exit-after.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { DEFAULTS } from '../../config/options.js';
import { describeError, isSoftphoneError } from '../../errors.js';
import type { SampleRate } from '../../media/codec.js';
import { localAddressProblem } from '../../sdp/negotiate.js';
import { AllowList, type Cidr, parseAllowFile, parseCidr } from '../../serve/allow-list.js';
import { BotServer } from '../../serve/bot-server.js';
import {
  type Bot,
  type BotDefaults,
  BotsConfigError,
  normalizeDid,
  parseBots,
  singleBot,
} from '../../serve/bots.js';
import { loadCertificateFiles, type ServeCertificate, stateCertificate } from '../../serve/certificate.js';
import { streamUrlProblem } from '../../sinks/media-stream.js';
import { type ListenAddress, parseListenUrl } from '../../sip/transport/listener.js';
import {
  addOutputOptions,
  checkRecordDirFlag,
  createLogger,
  ExitCode,
  intOption,
  type OutputOptions,
  onStopSignals,
  recordDirUsage,
  UsageError,
} from '../common.js';
import { addMediaOptions, parseCodecs, parsePortRange, parseSrtpPolicy, seconds } from '../device.js';
import { wireServeEvents } from '../events.js';

interface ServeFlags extends OutputOptions {
  listen: string[];
  bots?: string;
  did: string[];
  allow: string[];
  allowFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  stateDir: string;
  recordDir: string;
  record: boolean;
  pipe?: string;
  pipeGrace: number;
  streamUrl?: string;
  codecs?: string;
  play?: string;
  maxCalls: number;
  mediaTimeout: number;
  maxDuration: number;
  rtpPorts: string;
  mediaIp?: string;
  silence: boolean;
  srtp?: string;
  sampleRate?: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  finalByeTimeout: number;
  exitAfter?: number;
}

const EXAMPLES = `
Examples:
  $ rc-softphone serve --listen tcp://0.0.0.0:5060 --listen udp://0.0.0.0:5060 --listen tls://0.0.0.0:5061 \\
      --allow-file ringcentral-supernets.txt --bots bots.json
  $ rc-softphone serve --listen tcp://0.0.0.0:5060 --allow 192.0.2.0/24 --did 16505550100 --pipe ./engine.sh
  $ rc-softphone serve --listen udp://127.0.0.1:5060 --allow 127.0.0.1 --stream-url ws://127.0.0.1:8080/media`;

const collect = (value: string, previous: string[]) => [...previous, value];

export function serveCommand(setExitCode: (code: number) => void): Command {
  const s = DEFAULTS.serve;
  const command = new Command('serve')
    .description(
      "Listen for RingCentral's bot-partner SIP (RingCX connects to us), answer each call with the bot its DID names, send the bot's intents back as SIP INFO.",
    )
    .option('--listen <url>', 'tcp://HOST:PORT, tls://HOST:PORT or udp://HOST:PORT (repeatable)', collect, [])
    .option('--allow <cidr>', 'admit connections from this network, IPv4 or IPv6 (repeatable)', collect, [])
    .option('--allow-file <file>', 'admit the networks listed in FILE (one CIDR per line, # comments)')
    .option('--bots <file>', 'bots.json: which bot answers which DID, with its settings')
    .option(
      '--did <number>',
      'one bot from the flags: the DID it answers (repeatable; none: any DID)',
      collect,
      [],
    )
    .option('--tls-cert <file>', 'certificate (PEM) for tls:// (default: a self-signed one in --state-dir)')
    .option('--tls-key <file>', 'private key (PEM) for --tls-cert')
    .option('--state-dir <dir>', 'where the self-signed TLS certificate is kept', s.stateDir)
    .option('--record-dir <dir>', 'where WAV recordings and their JSON sidecars go', DEFAULTS.recordDir)
    .option('--no-record', 'do not record calls')
    .option('--pipe <command>', 'per call, run COMMAND with sh -c, the audio on its stdin')
    .option(
      '--pipe-grace <seconds>',
      'after a call, time the --pipe engine gets to print final results',
      intOption('--pipe-grace', 0, 600),
      seconds(DEFAULTS.pipeGraceMs),
    )
    .option('--stream-url <url>', 'per call, a Twilio Media Streams WebSocket, both ways')
    .option('--play <file>', 'a greeting played to every caller on answer')
    .option(
      '--max-calls <n>',
      'concurrent calls per bot; more get 486 Busy Here',
      intOption('--max-calls', 1, 100_000),
      DEFAULTS.maxCalls,
    )
    .option(
      '--max-connections <n>',
      'TCP/TLS connections open at once',
      intOption('--max-connections', 1, 1_000_000),
      s.maxConnections,
    )
    .option(
      '--max-connections-per-ip <n>',
      'TCP/TLS connections open at once from one address',
      intOption('--max-connections-per-ip', 1, 1_000_000),
      s.maxConnectionsPerAddress,
    )
    .option(
      '--final-bye-timeout <seconds>',
      'after a final intent, hang up if RingCX has not within this long',
      intOption('--final-bye-timeout', 1, 3600),
      seconds(s.finalByeTimeoutMs),
    )
    .option('--exit-after <n>', 'exit 0 after this many calls have ended', intOption('--exit-after', 1));
  addMediaOptions(command, {
    mediaIp: 'the address the INVITE came to',
    srtpDefault: 'required on TLS, off on TCP/UDP',
  });
  addOutputOptions(command).addHelpText('after', EXAMPLES).exitOverride();
  command.action(async (flags: ServeFlags) => {
    setExitCode(await serve(flags));
  });
  return command;
}

async function serve(flags: ServeFlags): Promise<number> {
  const log = createLogger(flags);
  const listen = parseListen(flags.listen);
  const allow = allowList(flags);
  const bots = resolveBots(flags);
  const srtp = flags.srtp === undefined ? undefined : parseSrtpPolicy(flags.srtp);
  if (flags.mediaIp !== undefined) {
    const problem = localAddressProblem(flags.mediaIp);
    if (problem)
      throw new UsageError(`--media-ip ${problem}, got "${flags.mediaIp}" (example: --media-ip 203.0.113.7)`);
  }
  const rtpPorts = parsePortRange(flags.rtpPorts);
  for (const bot of bots) if (bot.recordDir !== undefined) checkRecordDir(bot, flags);
  const certificate = tlsCertificate(flags, listen);
  if (certificate) {
    log.info(
      'serve.certificate',
      {
        fingerprint: certificate.fingerprint,
        source: certificate.source,
        path: certificate.certPath,
        subject: certificate.subject,
        validTo: certificate.validTo.toISOString(),
        ...(certificate.replaced !== undefined && { replaced: certificate.replaced }),
      },
      `TLS certificate (${certificate.source === 'files' ? certificate.certPath : `self-signed, ${certificate.source}, ${certificate.certPath}`}) SHA-256 ${certificate.fingerprint}${certificate.replaced ? ` (replaced: ${certificate.replaced})` : ''}`,
    );
  }

  const server = new BotServer({
    listen,
    admit: (address) => allow.allows(address),
    bots,
    rtpPorts,
    sendSilence: flags.silence,
    finalByeTimeoutMs: flags.finalByeTimeout * 1000,
    limits: { maxConnections: flags.maxConnections, maxConnectionsPerAddress: flags.maxConnectionsPerIp },
    ...(certificate && { tls: { cert: certificate.cert, key: certificate.key } }),
    ...(srtp !== undefined && { srtp }),
    ...(flags.sampleRate !== undefined && { sampleRate: flags.sampleRate as SampleRate }),
    ...(flags.mediaIp !== undefined && { mediaIp: flags.mediaIp }),
  });
  log.info(
    'starting',
    { bots: bots.map((b) => b.name), allow: allow.describe() },
    `bots: ${bots.map((b) => `${b.name} (${b.dids.join(', ') || `header ${b.header?.name}`})`).join('; ')}; admitting ${allow.describe().join(', ')}`,
  );
  wireServeEvents(server, log);

  let endedCalls = 0;
  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.info(
        'shutdown',
        { reason: why, activeCalls: server.activeCalls.length },
        `shutting down (${why})…`,
      );
      await server.stop();
      const stats = server.listenerStats;
      if (stats) log.info('serve.stats', { ...stats }, `listener: ${JSON.stringify(stats)}`);
    })();
    return stopping;
  };
  const done = new Promise<number>((resolve) => {
    server.on('callEnded', () => {
      endedCalls++;
      if (flags.exitAfter !== undefined && endedCalls >= flags.exitAfter) {
        void stop(`--exit-after ${flags.exitAfter} reached`).then(() => resolve(ExitCode.OK));
      }
    });
    onStopSignals(log, {
      first: (signal) => void stop(signal).then(() => resolve(ExitCode.OK)),
      now: () => server.stopNow(),
      forced: 'exiting at once',
    });
  });

  try {
    await server.start();
  } catch (err) {
    await server.stop();
    if (isSoftphoneError(err, 'CONFIG_INVALID')) throw new UsageError(err.message);
    log.error('fatal', { message: describeError(err) }, `cannot listen: ${describeError(err)}`);
    return ExitCode.FAILURE;
  }
  return done;
}

function parseListen(urls: readonly string[]): ListenAddress[] {
  if (urls.length === 0) {
    throw new UsageError(
      'serve needs at least one --listen (example: --listen tcp://0.0.0.0:5060 --listen tls://0.0.0.0:5061)',
    );
  }
  return urls.map((url) => {
    const parsed = parseListenUrl(url);
    if (!parsed.ok)
      throw new UsageError(`--listen ${url}: ${parsed.reason} (example: --listen tcp://0.0.0.0:5060)`);
    return parsed.address;
  });
}

function allowList(flags: ServeFlags): AllowList {
  const cidrs: Cidr[] = [];
  for (const entry of flags.allow) {
    const parsed = parseCidr(entry);
    if (!parsed.ok) throw new UsageError(`--allow ${parsed.reason} (example: --allow 192.0.2.0/24)`);
    cidrs.push(parsed.cidr);
  }
  if (flags.allowFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.allowFile, 'utf8');
    } catch (err) {
      throw new UsageError(`--allow-file ${flags.allowFile}: ${describeError(err)}`);
    }
    const parsed = parseAllowFile(text);
    if (!parsed.ok) throw new UsageError(`--allow-file ${flags.allowFile}: ${parsed.reason}`);
    if (parsed.cidrs.length === 0) throw new UsageError(`--allow-file ${flags.allowFile}: lists no network`);
    cidrs.push(...parsed.cidrs);
  }
  if (cidrs.length === 0) {
    throw new UsageError(
      "serve admits nobody without --allow or --allow-file (RingCentral's supernets; example: --allow 192.0.2.0/24; --allow 0.0.0.0/0 --allow ::/0 admits everyone)",
    );
  }
  return new AllowList(cidrs);
}

function resolveBots(flags: ServeFlags): Bot[] {
  if (flags.pipe !== undefined && flags.pipe.trim() === '') {
    throw new UsageError('--pipe needs a command (example: --pipe "cat > /dev/null")');
  }
  const urlProblem = flags.streamUrl === undefined ? undefined : streamUrlProblem(flags.streamUrl);
  if (urlProblem) {
    throw new UsageError(
      `--stream-url ${urlProblem}, got "${flags.streamUrl}" (example: --stream-url ws://localhost:8080/media)`,
    );
  }
  if (flags.record && flags.recordDir.trim() === '') throw recordDirUsage(flags.recordDir, 'is empty', true);
  const defaults: BotDefaults = {
    recordDir: flags.record ? flags.recordDir : undefined,
    pipe: flags.pipe,
    pipeGraceMs: flags.pipeGrace * 1000,
    streamUrl: flags.streamUrl,
    codecs: flags.codecs === undefined ? undefined : parseCodecs(flags.codecs),
    play: flags.play,
    maxCalls: flags.maxCalls,
    mediaTimeoutMs: flags.mediaTimeout * 1000,
    maxCallDurationMs: flags.maxDuration * 1000,
  };
  if (flags.did.some((d) => normalizeDid(d) === '')) {
    throw new UsageError('--did needs a number or a name (example: --did 16505550100)');
  }
  if (flags.bots === undefined) return [singleBot(flags.did, defaults)];
  if (flags.did.length > 0) {
    throw new UsageError(
      '--did describes the one bot of the flags; with --bots, give each bot its "did" in the file',
    );
  }
  let text: string;
  try {
    text = readFileSync(flags.bots, 'utf8');
  } catch (err) {
    throw new UsageError(`--bots ${flags.bots}: ${describeError(err)}`);
  }
  try {
    return parseBots(text, defaults);
  } catch (err) {
    if (err instanceof BotsConfigError) throw new UsageError(`--bots ${flags.bots}: ${err.message}`);
    throw err;
  }
}

function checkRecordDir(bot: Bot, flags: ServeFlags): void {
  const dir = bot.recordDir as string;
  try {
    checkRecordDirFlag(dir, true);
  } catch (err) {
    // A bots.json entry's directory is named by the bot, the flag's by the flag.
    if (dir !== flags.recordDir && err instanceof UsageError) {
      throw new UsageError(
        `--bots ${flags.bots}: bot "${bot.name}": recordDir ${err.message.replace(/^--record-dir /, '')}`,
      );
    }
    throw err;
  }
}

/** The certificate for the tls:// addresses (none without one). */
function tlsCertificate(flags: ServeFlags, listen: readonly ListenAddress[]): ServeCertificate | undefined {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new UsageError(
      '--tls-cert and --tls-key go together (example: --tls-cert cert.pem --tls-key key.pem)',
    );
  }
  const tls = listen.filter((a) => a.transport === 'tls');
  if (tls.length === 0) return undefined;
  try {
    if (flags.tlsCert !== undefined && flags.tlsKey !== undefined)
      return loadCertificateFiles(flags.tlsCert, flags.tlsKey);
    return stateCertificate(flags.stateDir, { names: tls.map((a) => a.host) });
  } catch (err) {
    if (!isSoftphoneError(err, 'CONFIG_INVALID')) throw err;
    // The library names its options; the command line, its flags.
    throw new UsageError(
      err.message
        .replace(/\btlsCert\b/g, '--tls-cert')
        .replace(/\btlsKey\b/g, '--tls-key')
        .replace(/^stateDir\b/, '--state-dir'),
    );
  }
}
