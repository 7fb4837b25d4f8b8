/**
 * Live sinks for a call: the `--pipe` engine and the `--stream-url` media
 * stream get the very frames the WAV gets, as they play out of the jitter
 * buffer. Neither can hurt the call: their failures become events and
 * counters, and the recording goes on.
 */
import { StreamResampler } from '../media/resample.js';
import { EnginePipe } from '../sinks/engine-pipe.js';
import { MediaStreamClient } from '../sinks/media-stream.js';
import type { Call } from './call.js';
import type { LiveSinkPort } from './call-manager.js';

export interface PipeOptions {
  /** Run with `sh -c` per answered call; audio (s16le, mono, at the call's rate: RC_SAMPLE_RATE) on its stdin. */
  command: string;
  /** Time after stdin closes for final results before the engine is stopped (default 5000 ms). */
  graceMs?: number;
  /** Audio buffered for a slow engine before frames are dropped (default 3000 ms). */
  maxBufferMs?: number;
  /** More variables for the engine's environment (serve: RC_SIP_HEADERS, RC_DID, …). */
  env?: Readonly<Record<string, string>>;
}

export interface StreamOptions {
  /** ws:// or wss:// URL of a Twilio Media Streams compatible server. */
  url: string;
  /** Extra HTTP headers for the upgrade (e.g. Authorization). */
  headers?: Record<string, string>;
  /** wss:// to a server with a private CA: the CA certificate(s), PEM. (The CLI: NODE_EXTRA_CA_CERTS.) */
  ca?: string | string[];
  /** More `start.customParameters` after `from` and `to` (serve: did, caller, bot, sipHeaders). */
  customParameters?: Readonly<Record<string, string>>;
}

/** Starts the engine for an answered call and feeds it the call's frames. */
export function attachPipe(call: Call, port: LiveSinkPort, options: PipeOptions): void {
  const pipe = EnginePipe.start({
    command: options.command,
    call: {
      callId: call.id,
      from: call.from.header,
      to: call.to.header,
      wavPath: call.wavPath,
      sampleRate: call.sampleRate,
    },
    ...(options.graceMs !== undefined && { graceMs: options.graceMs }),
    ...(options.maxBufferMs !== undefined && { maxBufferMs: options.maxBufferMs }),
    ...(options.env !== undefined && { env: { ...process.env, ...options.env } }),
  });
  port.addSink({
    write: (frame) => pipe.write(frame),
    close: async () => {
      await pipe.close();
    },
    stats: () => ({
      engineFramesWritten: pipe.stats.framesWritten,
      engineFramesDropped: pipe.stats.framesDropped,
    }),
  });
  pipe.on('line', (text, json) => call.emit('engine', { text, json }));
  pipe.on('stderr', (line) => call.emit('engineStderr', line));
  pipe.on('exit', (info) => call.emit('engineExit', info));
  pipe.on('error', (err) => call.emit('sinkError', err));
}

/**
 * Creates the stream client for a call before its media starts (its talk-back
 * queue is the media session's outbound source); `attachStream` connects it.
 */
export function createStream(options: StreamOptions): MediaStreamClient {
  return new MediaStreamClient(options.ca !== undefined ? { ca: options.ca } : {});
}

export function attachStream(
  call: Call,
  port: LiveSinkPort,
  client: MediaStreamClient,
  options: StreamOptions,
): void {
  // The Twilio format is µ-law at 8 kHz by definition: a wideband call is
  // low-passed and decimated on the way (the half-band filter keeps its state
  // from frame to frame, so nothing clicks at the frame edges).
  const down = call.sampleRate === 16000 ? StreamResampler.halfband(16000, 8000) : undefined;
  port.addSink({
    write: (frame) => client.sendFrame(down ? down.process(frame) : frame),
    close: async () => {
      await client.stop();
      down?.close();
    },
    stats: () => ({
      streamFramesSent: client.stats.sent,
      streamFramesDropped: client.stats.dropped,
      streamFramesPlayed: client.stats.played,
      streamUnderruns: client.stats.underruns,
      streamLeadMs: client.stats.leadMs,
    }),
  });
  call.on('dtmf', (d) => client.sendDtmf(d.digit));
  client.on('error', (err) => call.emit('sinkError', err));
  client.on('open', () => call.emit('stream', { state: 'open' }));
  client.on('close', (info) =>
    call.emit('stream', { state: 'closed', code: info.code, reason: info.reason }),
  );
  // Failures arrive as the 'error' event above; the call does not wait for the socket.
  client
    .connect(options.url, {
      callId: call.id,
      from: call.from.header,
      to: call.to.header,
      ...(options.headers && { headers: options.headers }),
      ...(options.customParameters && { customParameters: { ...options.customParameters } }),
    })
    .catch(() => {});
}
