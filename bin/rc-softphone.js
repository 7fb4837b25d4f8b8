#!/usr/bin/env node
// Entry point of the installed CLI; the TypeScript build lives in dist/ (npm ci runs `prepare`).
import { run } from '../dist/cli/main.js';

process.exitCode = await run(process.argv);
