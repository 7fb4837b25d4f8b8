/**
 * Intents: what a bot reports back to RingCX, as SIP INFO with a JSON body
 * (RingCentral's bot-partner interface); one with `"final": true` ends the
 * bot's part of the call, and RingCX then sends BYE. Pure: which engine
 * lines and media-stream messages are intents, and how large one may be.
 *
 * - the engine (`--pipe`) prints a line `{"rcInfo": {…}}`: the object is the intent;
 * - the media-stream server sends `{"event": "info", "info": {…}}`: likewise.
 */

/** An INFO body larger than this is not sent (a UDP datagram must stay deliverable). */
export const MAX_INTENT_BYTES = 8 * 1024;

export type Intent = Record<string, unknown>;

/** The intent in an engine's JSON line, or undefined when the line is not one. */
export function intentFromEngineLine(json: object | undefined): Intent | undefined {
  if (!isPlainObject(json)) return undefined;
  const info = json.rcInfo;
  return isPlainObject(info) ? info : undefined;
}

/** The intent in a media-stream message, or undefined when the message is not one. */
export function intentFromStreamMessage(message: {
  event: string;
  [key: string]: unknown;
}): Intent | undefined {
  if (message.event !== 'info') return undefined;
  return isPlainObject(message.info) ? message.info : undefined;
}

/** RingCX's convention: `"final": true` (the JSON boolean) is the bot's last word. */
export function isFinalIntent(intent: Intent): boolean {
  return intent.final === true;
}

/** The INFO body for an intent, or why it cannot be sent. */
export function intentBody(intent: Intent): { ok: true; body: string } | { ok: false; reason: string } {
  let body: string;
  try {
    body = JSON.stringify(intent);
  } catch (err) {
    return {
      ok: false,
      reason: `not serializable as JSON (${err instanceof Error ? err.message : String(err)})`,
    };
  }
  const bytes = Buffer.byteLength(body, 'utf8');
  if (bytes > MAX_INTENT_BYTES)
    return { ok: false, reason: `${bytes} bytes of JSON exceed ${MAX_INTENT_BYTES}` };
  return { ok: true, body };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
