/** Access to the RFC 4475 torture-test corpus kept in test/fixtures/rfc4475 (see its README). */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fixturesDir } from '../../helpers/paths.js';

export const corpusDir = path.join(fixturesDir, 'rfc4475');

export interface ManifestCase {
  file: string;
  rfc4475_section: string;
  title: string;
  parser_class: 'valid' | 'invalid' | 'valid-syntax';
  category: string;
  transport_note: string;
  bytes: number;
  sha256: string;
}

export const manifest: { cases: ManifestCase[] } = JSON.parse(
  readFileSync(path.join(corpusDir, 'manifest.json'), 'utf8'),
);

const cache = new Map<string, Buffer>();

export function loadCase(file: string): Buffer {
  let bytes = cache.get(file);
  if (bytes === undefined) {
    bytes = readFileSync(path.join(corpusDir, file));
    cache.set(file, bytes);
  }
  return bytes;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
