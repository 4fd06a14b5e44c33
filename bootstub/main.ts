#!/usr/bin/env node
/**
 * The boot stub: the entrypoint of every boot image `bootfs convert SRC DST` writes. As PID 1 of
 * the container it mounts the image lazily and runs the original entrypoint (src/boot/stub.ts).
 * Arguments are the container's command (`docker run IMAGE ARGS`); settings come from
 * /bootfs/boot.json and BOOTFS_* variables. Small on purpose: no CLI framework, no server.
 */
import { BootfsError } from '../src/errors.js';
import { boot, closeInheritedFds } from '../src/boot/stub.js';

closeInheritedFds();

const verbose = process.env.BOOTFS_VERBOSE === '1';
try {
  const status = await boot({
    args: process.argv.slice(2),
    env: process.env,
    ...(verbose ? { log: (line: string) => process.stderr.write(`bootfs: ${line}\n`) } : {}),
  });
  process.exit(status);
} catch (err) {
  if (err instanceof BootfsError) process.stderr.write(`bootfs: ${err.message}\n`);
  else process.stderr.write(`bootfs: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(err instanceof BootfsError ? err.exitCode : 1);
}
