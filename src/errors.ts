/**
 * One error taxonomy for the whole project. Callers and tests match on the
 * stable `code`, never on the message text.
 */
export const ErrorCodes = {
  // SIP framing and parsing (stream transports)
  SIP_FRAME_TOO_LARGE: 'SIP_FRAME_TOO_LARGE',
  SIP_FRAME_BAD_CONTENT_LENGTH: 'SIP_FRAME_BAD_CONTENT_LENGTH',
  SIP_FRAME_NO_CONTENT_LENGTH: 'SIP_FRAME_NO_CONTENT_LENGTH',
  SIP_FRAME_INCOMPLETE: 'SIP_FRAME_INCOMPLETE',
  SIP_PARSE_ERROR: 'SIP_PARSE_ERROR',
  SIP_BAD_REQUEST: 'SIP_BAD_REQUEST',
  // SIP transport, transactions, auth, registration
  SIP_TRANSPORT_CLOSED: 'SIP_TRANSPORT_CLOSED',
  SIP_TRANSPORT_CONNECT_FAILED: 'SIP_TRANSPORT_CONNECT_FAILED',
  /** The proxy's host name does not exist (DNS NXDOMAIN, ENOTFOUND): a setting to fix. */
  SIP_PROXY_NOT_FOUND: 'SIP_PROXY_NOT_FOUND',
  SIP_TLS_CERTIFICATE: 'SIP_TLS_CERTIFICATE',
  /** A listen address (serve) could not be bound: in use, not ours, no permission for the port. */
  SIP_LISTEN_FAILED: 'SIP_LISTEN_FAILED',
  SIP_TRANSACTION_TIMEOUT: 'SIP_TRANSACTION_TIMEOUT',
  SIP_AUTH_REJECTED: 'SIP_AUTH_REJECTED',
  SIP_AUTH_UNSUPPORTED: 'SIP_AUTH_UNSUPPORTED',
  SIP_REGISTRATION_REJECTED: 'SIP_REGISTRATION_REJECTED',
  /** A challenge to a call from a realm other than the registrar's: never answered. */
  SIP_AUTH_REALM: 'SIP_AUTH_REALM',
  /** A verb the call's state does not allow (hold before the answer, …). */
  CALL_STATE: 'CALL_STATE',
  // Media
  RTP_INVALID_PACKET: 'RTP_INVALID_PACKET',
  RTP_NO_PORT: 'RTP_NO_PORT',
  SDP_NOT_ACCEPTABLE: 'SDP_NOT_ACCEPTABLE',
  SDP_PARSE_ERROR: 'SDP_PARSE_ERROR',
  AUDIO_FILE_INVALID: 'AUDIO_FILE_INVALID',
  /** A codec library could not be loaded or set up (Opus WASM missing, not loaded yet, refused a setting). */
  CODEC_FAILED: 'CODEC_FAILED',
  // Sinks
  SINK_WRITE_FAILED: 'SINK_WRITE_FAILED',
  ENGINE_FAILED: 'ENGINE_FAILED',
  STREAM_FAILED: 'STREAM_FAILED',
  // Configuration and CLI
  CONFIG_MISSING: 'CONFIG_MISSING',
  CONFIG_INVALID: 'CONFIG_INVALID',
  FILE_EXISTS: 'FILE_EXISTS',
  // RingCentral REST
  REST_AUTH_FAILED: 'REST_AUTH_FAILED',
  REST_PERMISSION: 'REST_PERMISSION',
  REST_RATE_LIMITED: 'REST_RATE_LIMITED',
  REST_NETWORK: 'REST_NETWORK',
  REST_ERROR: 'REST_ERROR',
  // User code: a listener or callback of ours that threw (reported, never fatal)
  LISTENER_FAILED: 'LISTENER_FAILED',
  // Lifecycle
  CLOSED: 'CLOSED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class SoftphoneError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SoftphoneError';
    this.code = code;
    this.details = Object.freeze({ ...options.details });
  }
}

export function isSoftphoneError(err: unknown, code?: ErrorCode): err is SoftphoneError {
  return err instanceof SoftphoneError && (code === undefined || err.code === code);
}

/** A readable one-line description of any thrown value, for logs. */
export function describeError(err: unknown): string {
  if (err instanceof SoftphoneError) return `${err.message} [${err.code}]`;
  if (err instanceof Error) return err.message;
  return String(err);
}
