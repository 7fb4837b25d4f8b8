/**
 * Secrets never reach a log line (design: conventions). Two layers: SIP
 * header values that carry credentials are replaced wholesale, and every
 * known secret string (SIP password, JWT, client secret) is scrubbed from
 * any text as a last line of defence.
 */

/**
 * Header names compare case-insensitively and may have whitespace before the
 * colon (RFC 3261 7.3.1). Neither header has a compact form (7.3.3).
 */
const CREDENTIAL_HEADER = /^(authorization|proxy-authorization)([ \t]*:)/i;
/** RFC 3261 7.3.1: a line starting with SP or HTAB continues the previous header's value. */
const CONTINUATION = /^[ \t]/;

/**
 * Redacts Authorization / Proxy-Authorization values in a SIP message text,
 * including every continuation line of a folded value.
 */
export function redactSipText(text: string): string {
  // Odd indexes hold the line ends, so each line keeps the one it had.
  const parts = text.split(/(\r\n|\n|\r)/);
  let out = '';
  for (let i = 0; i < parts.length; i += 2) {
    const line = parts[i] as string;
    const header = CREDENTIAL_HEADER.exec(line);
    if (header) {
      while (i + 2 < parts.length && CONTINUATION.test(parts[i + 2] as string)) i += 2;
      out += `${header[1]}${header[2]} <redacted>`;
    } else {
      out += line;
    }
    out += parts[i + 1] ?? '';
  }
  return out;
}

export class SecretScrubber {
  readonly #secrets = new Set<string>();

  /** Registers a secret; strings shorter than 4 characters are ignored (they would mangle ordinary text). */
  add(secret: string | undefined): void {
    if (secret && secret.length >= 4) this.#secrets.add(secret);
  }

  scrub(text: string): string {
    let out = text;
    for (const secret of this.#secrets) {
      if (out.includes(secret)) out = out.split(secret).join('***');
    }
    return out;
  }
}
