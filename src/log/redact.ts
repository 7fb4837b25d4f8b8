/**
 * Secrets never reach a log line (design: conventions). Two layers: SIP
 * header values that carry credentials are replaced wholesale, and every
 * known secret string (SIP password, JWT, client secret) is scrubbed from
 * any text as a last line of defence.
 */

const CREDENTIAL_HEADERS = /^(authorization|proxy-authorization)([ \t]*:)[^\r\n]*$/gim;

/** Redacts Authorization / Proxy-Authorization values in a SIP message text. */
export function redactSipText(text: string): string {
  return text.replace(CREDENTIAL_HEADERS, (_m, name: string, colon: string) => `${name}${colon} <redacted>`);
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
