/** The bootfs command line: builds the commander program and maps errors to exit codes. */
import { Command, CommanderError } from 'commander';
import { BootfsError, ExitCode } from '../errors.js';
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

type Register = (program: Command) => void;

/**
 * Every command, in the order --help lists them, and where its definition lives. A run loads
 * only the module of the command it names (each pulls in its own dependencies: the chunker's
 * WASM, the OCI and registry code, FUSE, fastify, …); --help, `help` and anything unknown load
 * them all. Loading all of them cost every short run ~30 ms before it did anything.
 */
const COMMANDS: [name: string, load: () => Promise<Register>][] = [
  ['make', async () => (await import('./commands/make.js')).registerMake],
  ['extract', async () => (await import('./commands/extract.js')).registerExtract],
  ['store', async () => (await import('./commands/store.js')).registerStore],
  ['serve', async () => (await import('./commands/serve.js')).registerServe],
  ['convert', async () => (await import('./commands/convert.js')).registerConvert],
  ['inspect', async () => (await import('./commands/inspect.js')).registerInspect],
  ['unpack', async () => (await import('./commands/unpack.js')).registerUnpack],
  ['mount', async () => (await import('./commands/mount.js')).registerMount],
  ['cache', async () => (await import('./commands/cache.js')).registerCache],
  ['demo', async () => (await import('./commands/demo.js')).registerDemo],
];

/**
 * Build a fresh program. With `command`, a name from argv, only that command is defined when
 * it is one of ours (its own --help, parsing and errors are the same); otherwise all of them.
 */
export async function buildProgram(command?: string): Promise<Command> {
  const program = new Command('bootfs')
    .description('Content-defined chunk store and lazy boot images for big container images.\nStores and .caibx indexes are casync/desync compatible.')
    .version(BOOTFS_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXIT_HELP)
    .exitOverride();
  const only = COMMANDS.find(([name]) => name === command);
  const registers = await Promise.all((only ? [only] : COMMANDS).map(([, load]) => load()));
  for (const register of registers) register(program);
  for (const cmd of program.commands) {
    cmd.exitOverride();
    for (const sub of cmd.commands) sub.exitOverride();
  }
  return program;
}

/** Run the CLI; returns the exit code instead of exiting so tests and bin.ts decide. */
export async function runCli(argv: string[]): Promise<number> {
  const program = await buildProgram(argv[0]);
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
