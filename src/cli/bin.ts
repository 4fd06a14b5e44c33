#!/usr/bin/env node
/** Entry point of the `bootfs` executable. */
import { availableParallelism } from 'node:os';
import { sharedPool } from '../pool/chunk-pool.js';

// Commands that hash or compress start their worker threads now, so the workers boot while the
// main thread loads the rest of the CLI (a third of a short run's time otherwise).
const POOL_COMMANDS = new Set(['make', 'extract', 'store', 'demo', 'convert', 'unpack', 'mount']);
const command = process.argv[2] ?? '';
// extract's main thread decodes a share of the batches itself (ExtractOptions.mainThread), and
// make's and convert's takes batches when the workers are full (MakeOptions.mainThread): one
// worker fewer to boot for the same parallelism.
if (command === 'extract' || command === 'make' || command === 'convert') sharedPool(Math.max(1, availableParallelism() - 1));
else if (POOL_COMMANDS.has(command)) sharedPool();

// A reader that goes away (`bootfs cat … | head`) ends us quietly, as SIGPIPE ends C tools
// (128 + SIGPIPE), instead of an unhandled EPIPE stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(141);
  throw err;
});

const { runCli } = await import('./program.js');
const code = await runCli(process.argv.slice(2));
// Let stdout drain before exiting (large --json results, extract to a pipe).
process.exitCode = code;
