/**
 * Secrets never reach a log line (design: conventions). Two layers: SIP
 * header values that carry credentials are replaced wholesale, SDES keys in
 * SDP bodies (a=crypto ... inline:<key>) are cut out, and every known secret
 * string (SIP password, JWT, client secret) plus any SDES key is scrubbed from
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
 * An SRTP master key in SDP: RFC 4568 key-params "inline:" key||salt in
 * base64, then optional "|lifetime|MKI:length" (not secret, kept). FEC_KEY=
 * carries one the same way. The key ends at anything base64 lacks, which also
 * stops it at the backslash of a JSON escape (\r\n) or a closing quote; a
 * "\/" (JSON's optional escape of "/") is part of the key.
 */
const SDES_KEY = /(inline:)(?:[A-Za-z0-9+/=]|\\\/)+/gi;

/** Replaces every SDES inline key with `inline:<redacted>`; the rest of the text stays as it was. */
export function redactSdesKeys(text: string): string {
  return text.replace(SDES_KEY, '$1<redacted>');
}

/**
 * Redacts Authorization / Proxy-Authorization values in a SIP message text,
 * including every continuation line of a folded value, and the SRTP keys of
 * a=crypto lines in its SDP body.
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
  return redactSdesKeys(out);
}

export class SecretScrubber {
  readonly #secrets = new Set<string>();

  /** Registers a secret; strings shorter than 4 characters are ignored (they would mangle ordinary text). */
  add(secret: string | undefined): void {
    if (secret && secret.length >= 4) this.#secrets.add(secret);
  }

  scrub(text: string): string {
    let out = redactSdesKeys(text);
    for (const secret of this.#secrets) {
      if (out.includes(secret)) out = out.split(secret).join('***');
    }
    return out;
  }
}
