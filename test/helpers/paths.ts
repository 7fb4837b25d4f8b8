import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root, wherever the checkout lives. */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * The test vectors the suite reads (RFC 4475 corpus, digest known answers).
 * They live inside the repository so a clone alone passes its tests.
 */
export const fixturesDir = path.join(projectRoot, 'test', 'fixtures');
