/** commander wiring only: each command lives in its own file and returns an exit code. */
import { Command, CommanderError } from 'commander';
import { describeError } from '../errors.js';
import { callCommand } from './commands/call.js';
import { demoCommand } from './commands/demo.js';
import { listenCommand } from './commands/listen.js';
import { provisionCommand } from './commands/provision.js';
import { serveCommand } from './commands/serve.js';
import { smokeCommand } from './commands/smoke.js';
import { ExitCode, UsageError } from './common.js';

export function buildProgram(setExitCode: (code: number) => void): Command {
  const program = new Command('rc-softphone')
    .description(
      'Headless RingCentral softphone bot: registers a SIP device, answers and places calls, records them to WAV.',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.addCommand(demoCommand(setExitCode));
  program.addCommand(listenCommand(setExitCode));
  program.addCommand(callCommand(setExitCode));
  program.addCommand(provisionCommand(setExitCode));
  program.addCommand(smokeCommand(setExitCode));
  program.addCommand(serveCommand(setExitCode));
  return program;
}

/** Runs the CLI and resolves with the process exit code. */
export async function run(argv: string[]): Promise<number> {
  let exitCode: number = ExitCode.OK;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with exit code 0; anything else is a usage error.
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`rc-softphone: ${err.message}\n`);
      return ExitCode.USAGE;
    }
    process.stderr.write(`rc-softphone: ${describeError(err)}\n`);
    return ExitCode.FAILURE;
  }
}
