/**
 * Scripted recording with the library: register, record each call to a path
 * you choose, react to DTMF, hang up after 60 s.
 *
 *   npx tsx samples/record-calls.ts ./sip-info.json
 */
import { loadSipInfoFile, Softphone } from 'rc-softphone';

const sipInfo = await loadSipInfoFile(process.argv[2] ?? './sip-info.json');
const phone = new Softphone({
  sipInfo,
  recordPath: ({ callId, from }) => `./recordings/${from.user ?? 'unknown'}-${callId.slice(0, 8)}.wav`,
  maxCalls: 4,
});

phone.on('registered', (e) => console.log(`registered (expires ${e.expires} s)`));
phone.on('callAnswered', (call) => {
  console.log(`answered ${call.from.user} with ${call.negotiated?.codec}`);
  call.on('dtmf', (d) => {
    console.log(`pressed ${d.digit}`);
    if (d.digit === '#') void call.hangup();
  });
  setTimeout(() => void call.hangup(), 60_000).unref();
});
phone.on('callEnded', (call, info) =>
  console.log(`${call.id}: ${info.reason}, ${info.durationMs} ms → ${info.wav}`),
);

process.once('SIGINT', () => void phone.stop().then(() => process.exit(0)));
await phone.start();
