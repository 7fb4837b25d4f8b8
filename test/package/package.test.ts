/**
 * The built package, imported the way a user's project does: through
 * node_modules/rc-softphone and package.json "exports", types included.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { projectRoot } from '../helpers/paths.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rcsp-pkg-'));
  mkdirSync(path.join(dir, 'node_modules'));
  symlinkSync(projectRoot, path.join(dir, 'node_modules', 'rc-softphone'), 'dir');
  // A Node project has @types/node; the package's typed events build on it.
  mkdirSync(path.join(dir, 'node_modules', '@types'));
  symlinkSync(
    path.join(projectRoot, 'node_modules', '@types', 'node'),
    path.join(dir, 'node_modules', '@types', 'node'),
    'dir',
  );
  writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'user-project', type: 'module', private: true }),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('imports Softphone and friends from "rc-softphone" at run time', () => {
  writeFileSync(
    path.join(dir, 'use.mjs'),
    `import { Softphone, SoftphoneError, ErrorCodes, loadSipInfoFile, provisionDevice } from 'rc-softphone';
const phone = new Softphone({ sipInfo: { username: '1', password: 'p', authorizationId: '1', domain: 'd', outboundProxy: { host: '127.0.0.1', port: 1 }, transport: 'tcp' } });
console.log(JSON.stringify({ softphone: typeof Softphone, start: typeof phone.start, error: new SoftphoneError(ErrorCodes.CLOSED, 'x').code, load: typeof loadSipInfoFile, provision: typeof provisionDevice }));
await phone.stop();`,
  );
  const out = execFileSync(process.execPath, ['use.mjs'], { cwd: dir, encoding: 'utf8' });
  expect(JSON.parse(out)).toEqual({
    softphone: 'function',
    start: 'function',
    error: 'CLOSED',
    load: 'function',
    provision: 'function',
  });
});

it('type-checks a TypeScript consumer against the shipped declarations', () => {
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        noEmit: true,
        types: ['node'],
        skipLibCheck: true,
      },
      files: ['use.ts'],
    }),
  );
  writeFileSync(
    path.join(dir, 'use.ts'),
    `import { Softphone, type CallEndInfo, type SoftphoneOptions } from 'rc-softphone';
const options: SoftphoneOptions = { sipInfo: { username: '1', password: 'p', authorizationId: '1', domain: 'd', outboundProxy: { host: 'h', port: 5090 }, transport: 'tcp' }, recordDir: './rec' };
const phone = new Softphone(options);
phone.on('callEnded', (call, info: CallEndInfo) => { const id: string = call.id; const wav: string | undefined = info.wav; void id; void wav; });
phone.on('callAnswered', (call) => call.on('dtmf', (d) => { const digit: string = d.digit; void digit; }));
// @ts-expect-error: a wrong option type must fail to compile
new Softphone({ sipInfo: options.sipInfo, maxCalls: 'ten' });
`,
  );
  const tsc = path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8' });
  } catch (err) {
    throw new Error(`tsc failed:\n${(err as { stdout?: string }).stdout ?? ''}`);
  }
});
