import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root, wherever the checkout lives. */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** `../shared` beside the project, as on every developer machine and in CI. */
export const sharedDir = path.resolve(projectRoot, '../shared');
export const testdataDir = path.join(sharedDir, 'testdata');
