/**
 * A tiny media-stream server for `--stream-url`: prints the Twilio-format
 * events it gets and talks back, replaying each caller's audio one second
 * later (an echo) with a mark after every chunk.
 *
 *   npx tsx samples/ws-server.ts 8080
 *   rc-softphone listen --stream-url ws://localhost:8080/media
 */
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 8080);
const wss = new WebSocketServer({ port });
console.log(`listening on ws://localhost:${port}`);

wss.on('connection', (ws, req) => {
  console.log(`connection from ${req.socket.remoteAddress} ${req.url}`);
  let streamSid = '';
  let buffered: string[] = [];
  let marks = 0;
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data));
    switch (msg.event) {
      case 'connected':
        console.log('connected', msg.protocol, msg.version);
        break;
      case 'start':
        streamSid = msg.streamSid;
        console.log('start', msg.start.callSid, msg.start.customParameters, msg.start.mediaFormat);
        break;
      case 'media':
        // 50 chunks = 1 s of audio: send it back as one message, then a mark.
        buffered.push(msg.media.payload);
        if (buffered.length === 50) {
          const payload = Buffer.concat(buffered.map((b) => Buffer.from(b, 'base64'))).toString('base64');
          ws.send(JSON.stringify({ event: 'media', streamSid, media: { payload } }));
          ws.send(JSON.stringify({ event: 'mark', streamSid, mark: { name: `echo-${++marks}` } }));
          buffered = [];
        }
        break;
      case 'dtmf':
        console.log('dtmf', msg.dtmf.digit);
        // "*" clears whatever echo is still queued.
        if (msg.dtmf.digit === '*') ws.send(JSON.stringify({ event: 'clear', streamSid }));
        break;
      case 'mark':
        console.log('played', msg.mark.name);
        break;
      case 'stop':
        console.log('stop', msg.stop.callSid);
        break;
      default:
        console.log('other', msg.event);
    }
  });
  ws.on('close', () => console.log('closed'));
});
