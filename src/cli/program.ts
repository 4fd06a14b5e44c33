/** The bootfs command line: builds the commander program and maps errors to exit codes. */
import { Command, CommanderError } from 'commander';
import { BootfsError, ExitCode } from '../errors.js';
import { registerCache } from './commands/cache.js';
import { registerConvert } from './commands/convert.js';
import { registerDemo } from './commands/demo.js';
import { registerExtract } from './commands/extract.js';
import { registerInspect } from './commands/inspect.js';
import { registerMake } from './commands/make.js';
import { registerMount } from './commands/mount.js';
import { registerServe } from './commands/serve.js';
import { registerStore } from './commands/store.js';
import { registerUnpack } from './commands/unpack.js';

import { BOOTFS_VERSION } from './version.js';

export { BOOTFS_VERSION };

const EXIT_HELP = `
Exit status:
  0  success
  1  error (bad usage, I/O failure, …)
  2  not found (input file, index, image, tag, platform, store, path or chunk)
  3  integrity failure (corrupt chunk, invalid index, digest mismatch, hostile layer)

Environment:
  BOOTFS_STORE       default for --store
  BOOTFS_CACHE       default for --cache (mount, cache warm)
  BOOTFS_CHUNK_SIZE  default for --chunk-size
  BOOTFS_DEBUG=1     print stack traces of internal errors`;

/** Build a fresh program (tests build their own). */
export function buildProgram(): Command {
  const program = new Command('bootfs')
    .description('Content-defined chunk store and lazy boot images for big container images.\nStores and .caibx indexes are casync/desync compatible.')
    .version(BOOTFS_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXIT_HELP)
    .exitOverride();
  registerMake(program);
  registerExtract(program);
  registerStore(program);
  registerServe(program);
  registerConvert(program);
  registerInspect(program);
  registerUnpack(program);
  registerMount(program);
  registerCache(program);
  registerDemo(program);
  for (const cmd of program.commands) {
    cmd.exitOverride();
    for (const sub of cmd.commands) sub.exitOverride();
  }
  return program;
}

/** Run the CLI; returns the exit code instead of exiting so tests and bin.ts decide. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version "errors" are successes; commander already printed usage problems.
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.error;
    }
    if (err instanceof BootfsError) {
      process.stderr.write(`bootfs: ${err.message}\n`);
      if (process.env.BOOTFS_DEBUG && err.cause) process.stderr.write(`${String((err.cause as Error).stack ?? err.cause)}\n`);
      return err.exitCode;
    }
    process.stderr.write(`bootfs: internal error: ${(err as Error).message ?? String(err)}\n`);
    if (process.env.BOOTFS_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    else process.stderr.write('bootfs: run with BOOTFS_DEBUG=1 for details, and please report this\n');
    return ExitCode.error;
  }
}
