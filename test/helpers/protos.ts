/**
 * The public PROTOS c07-sip test cases (University of Oulu; GPLv2 test
 * material, a slice of it in test/fixtures/protos): reading a case file and
 * filling its placeholders. Each case file holds two messages, each written
 * as `<decimal byte count> SP <bytes>`: the INVITE under test and a teardown
 * template.
 */

const CRLF = '\r\n';

/** The `<n> SP <bytes>` blocks of a PROTOS case file. */
export function caseMessages(file: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < file.length) {
    const sp = file.indexOf(0x20, i);
    if (sp === -1) break;
    const n = Number(file.toString('latin1', i, sp));
    if (!Number.isSafeInteger(n) || n < 0) break;
    out.push(file.subarray(sp + 1, sp + 1 + n));
    i = sp + 1 + n;
  }
  return out;
}

export interface Framed {
  bytes: Buffer;
  /** What had to change so the case frames on a stream. */
  repairs: string[];
}

/**
 * Fills the placeholders and makes the case one stream message (see the
 * header). Works on latin1 strings so every byte of the case survives as is.
 */
export function frameCase(raw: Buffer, values: Record<string, string>): Framed {
  let text = raw.toString('latin1');
  for (const [k, v] of Object.entries(values)) text = text.split(k).join(v);
  const repairs: string[] = [];
  let blank = text.indexOf(CRLF + CRLF);
  if (blank === -1) {
    text = text.endsWith(CRLF) ? text + CRLF : text + CRLF + CRLF;
    blank = text.length - 4;
    repairs.push('blank line added');
  }
  const head = text.slice(0, blank);
  let body = text.slice(blank + 4);
  if (body.includes('<Content-Length>')) body = body.split('<Content-Length>').join('0');
  const length = String(Buffer.byteLength(body, 'latin1'));
  const lines = head.split(CRLF);
  const isLength = (line: string) => /^(content-length|l)[ \t]*:/i.test(line);
  const lengthLines = lines.filter(isLength);
  const filled = lengthLines.map((l) => l.replace('<Content-Length>', length));
  const ok = filled.length === 1 && (filled[0] as string).replace(/^[^:]*:/, '').trim() === length;
  let out: string[];
  if (ok) out = lines.map((l) => (isLength(l) ? l.replace('<Content-Length>', length) : l));
  else {
    repairs.push(lengthLines.length === 0 ? 'Content-Length added' : 'Content-Length repaired');
    out = lines.filter((l) => !isLength(l));
    const at = lines.findIndex(isLength);
    out.splice(at === -1 ? out.length : at, 0, `Content-Length: ${length}`);
  }
  return { bytes: Buffer.from(out.join(CRLF) + CRLF + CRLF + body, 'latin1'), repairs };
}

/**
 * Placeholders filled as the PROTOS tool does, the case left as it is
 * (Content-Length filled with the body's byte count where the case asks
 * for it): what a datagram carries, or a stream gets as is.
 */
export function fillCase(raw: Buffer, values: Record<string, string>): Buffer {
  let text = raw.toString('latin1');
  for (const [k, v] of Object.entries(values)) text = text.split(k).join(v);
  const blank = text.indexOf(CRLF + CRLF);
  const body = blank === -1 ? '' : text.slice(blank + 4);
  text = text.split('<Content-Length>').join(String(Buffer.byteLength(body, 'latin1')));
  return Buffer.from(text, 'latin1');
}
