/**
 * SIPp as RingCX against the bot-partner listener, over TCP and over UDP:
 * an INVITE for a DID straight to the bot (no proxy), real speech as RTP
 * (pocketsphinx's goforward.raw through sox, as in the Kamailio call tests),
 * RFC 5626 CRLF pings on the same connection (a relay in front of SIPp adds
 * them, since SIPp cannot), the engine's intent as SIP INFO with a JSON body
 * saying "final": true (SIPp checks it and answers 200), then SIPp's BYE.
 *
 * The recording must hold exactly the bytes SIPp sent, decoded. The one
 * thing the bot cannot be held to is a sender that stalled for longer than
 * the recording's 1 s bound (SIPp's playback thread on a loaded machine):
 * then every packet must still be there bit-exact and in order, with only
 * silence between, and the bot's stats must say it re-placed the stream
 * (resync) without losing anything (see calls.test.ts for the long story).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CallEndInfo } from '../../../src/call/call.js';
import { AllowList, parseCidr } from '../../../src/serve/allow-list.js';
import { BotServer, type IntentOutcome } from '../../../src/serve/bot-server.js';
import { singleBot } from '../../../src/serve/bots.js';
import type { CallSidecar } from '../../../src/sinks/sidecar.js';
import { freePort, freeUdpPortRange } from '../../helpers/ports.js';
import { type Relay, startRelay } from '../../helpers/sip-relay.js';
import { describeInterop, toolPath } from '../../helpers/tools.js';
import { readWav } from '../../helpers/wav.js';
import { parseStatCsv } from '../kamailio/sipp-uas.js';
import { classifyRecording, exited, prepareSpeech, RATE, type Speech } from '../kamailio/speech.js';

const SCENARIO = fileURLToPath(new URL('./sipp/ringcx-speech.xml', import.meta.url));
const DID = '16505550100';
/** The engine waits for 1 s of the call's audio (8 kHz s16le), then reports its final intent. */
const ENGINE = [
  'printf "%s" "$RC_SIP_HEADERS" > "$RC_OUT/headers-$RC_CALL_ID.json"',
  'head -c 16000 > /dev/null',
  'echo \'{"rcInfo": {"intent": "heard-speech", "final": true}}\'',
  'cat > /dev/null',
].join('; ');

describeInterop('serve: SIPp as RingCX', ['sipp', 'sox'], () => {
  let work: string;
  let speech: Speech;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'rcsp-serve-sipp-'));
    speech = await prepareSpeech(work);
  });

  afterAll(() => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (work) rmSync(work, { recursive: true, force: true });
  });

  for (const transport of ['tcp', 'udp'] as const) {
    it(`${transport.toUpperCase()}: records the speech sample-exact, answers pings, the final intent's INFO round trip ends with SIPp's BYE`, async () => {
      const dir = mkdtempSync(path.join(work, `${transport}-`));
      const rtpMin = await freeUdpPortRange(20);
      const cidr = parseCidr('127.0.0.0/8');
      if (!cidr.ok) throw new Error(cidr.reason);
      const allow = new AllowList([cidr.cidr]);
      const server = new BotServer({
        listen: [{ transport, host: '127.0.0.1', port: 0 }],
        admit: (a) => allow.allows(a),
        bots: [
          {
            ...singleBot([DID], {
              recordDir: dir,
              pipe: `RC_OUT=${dir}; ${ENGINE}`,
              pipeGraceMs: 2000,
              streamUrl: undefined,
              codecs: undefined,
              play: undefined,
              maxCalls: 4,
              mediaTimeoutMs: 30_000,
              maxCallDurationMs: 120_000,
            }),
            name: 'speech-bot',
          },
        ],
        rtpPorts: { min: rtpMin, max: rtpMin + 19 },
        mediaIp: '127.0.0.1',
      });
      const warnings: string[] = [];
      server.on('warning', (w) => warnings.push(`${w.code}: ${w.message}`));
      const intents: IntentOutcome[] = [];
      server.on('intent', (_call, o) => intents.push(o));
      const ended = new Promise<CallEndInfo>((resolve) =>
        server.once('callEnded', (_call, info) => resolve(info)),
      );
      let relay: Relay | undefined;
      try {
        await server.start();
        const botPort = server.addresses[0]?.port as number;
        relay = await startRelay({
          transport,
          target: { host: '127.0.0.1', port: botPort },
          pingEveryMs: 250,
        });
        let mediaPort: number;
        do mediaPort = await freeUdpPortRange(4);
        while (mediaPort + 3 >= rtpMin && mediaPort <= rtpMin + 19);
        const sippDir = mkdtempSync(path.join(work, 'sipp-'));
        const args = [
          `127.0.0.1:${relay.port}`,
          ...['-sf', SCENARIO, '-s', DID, '-key', 'speech', `${speech.file},1,0`],
          // After the INFO (about 1 s in): the rest of the speech and a margin.
          ...['-d', String(Math.round(speech.ms + 1000))],
          ...['-i', '127.0.0.1', '-p', String(await freePort(transport)), '-mp', String(mediaPort)],
          ...['-t', transport === 'tcp' ? 't1' : 'u1', '-m', '1', '-l', '1'],
          ...['-nostdin', '-timeout', '60s', '-timeout_error'],
          ...['-trace_err', '-error_file', path.join(sippDir, 'errors.log')],
          ...['-trace_stat', '-stf', path.join(sippDir, 'stat.csv')],
        ];
        const child = spawn(toolPath('sipp'), args, { cwd: sippDir, stdio: ['ignore', 'pipe', 'pipe'] });
        children.add(child);
        let screen = '';
        const collect = (chunk: Buffer) => {
          screen = (screen + chunk.toString('utf8')).slice(-6000);
        };
        child.stdout?.on('data', collect);
        child.stderr?.on('data', collect);
        const code = await exited(child);
        const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
        const output = [
          `sipp exit ${code}`,
          read(path.join(sippDir, 'errors.log')).slice(-4000),
          screen,
        ].join('\n');
        const stats = parseStatCsv(read(path.join(sippDir, 'stat.csv')));
        expect(code, output).toBe(0);
        expect(stats['SuccessfulCall(C)'], output).toBe(1);

        const info = await ended;
        expect(info.reason).toBe('remote-bye');
        const wav = readWav(info.wav as string);
        const verdict = classifyRecording(wav.samples, speech.pcm, 1);
        const packets = speech.pcm.length / 160;
        if (verdict !== 'exact') {
          // Only a sender stall beyond the 1 s bound may insert silence, and the bot says so.
          expect(verdict).toBe('gaps');
          expect(info.stats?.resync).toBeGreaterThan(0);
        }
        expect(info.stats).toMatchObject({ received: packets, lost: 0, late: 0, duplicate: 0, invalid: 0 });

        expect(intents.map((i) => [i.source, i.final, i.status])).toEqual([['pipe', true, 200]]);
        const sidecar = JSON.parse(readFileSync(info.sidecar as string, 'utf8')) as CallSidecar;
        expect(sidecar.serve).toMatchObject({
          did: DID,
          bot: 'speech-bot',
          intents: [{ final: true, status: 200 }],
        });
        const headerFile = readFileSync(path.join(dir, `headers-${sidecar.callId}.json`), 'utf8');
        expect(JSON.parse(headerFile)).toMatchObject({ 'X-RingCX-Campaign': 'spring-sale' });

        // The pings went over the call's own connection (or source), and changed nothing.
        expect(relay.pingsSent).toBeGreaterThan(4);
        if (transport === 'tcp') expect(relay.pongsSeen).toBeGreaterThan(0);
        else expect(server.listenerStats?.datagramKeepAlives).toBeGreaterThan(0);
        expect(warnings).toEqual([]);
        expect(wav.sampleRate).toBe(RATE);
      } finally {
        await relay?.close();
        await server.stop();
      }
    }, 90_000);
  }
});
