/** The two tools under comparison, as argv builders with identical chunking parameters. */
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { runProcess } from './proc.js';

/** Tool names, in the order each round runs them (A then B). */
export const TOOL_NAMES = ['bootfs', 'casync'] as const;
/** One of TOOL_NAMES. */
export type ToolName = (typeof TOOL_NAMES)[number];
/** The operations compared. */
export type Op = 'make' | 'extract';

/**
 * casync's defaults (min 16K, avg 64K, max 256K), which are also bootfs's; passed explicitly to both
 * so a change of either default cannot silently make the comparison unequal. Both write zstd chunks
 * by default (casync: --compression=zstd; bootfs has only zstd).
 */
export const CHUNK_SIZE = '16384:65536:262144';

/** How to run one tool's make and extract. */
export interface Tool {
  name: ToolName;
  command: string;
  makeArgs(store: string, index: string, input: string): string[];
  extractArgs(store: string, index: string, output: string): string[];
}

/** bootfs through the built CLI, run by the same node binary as the benchmark. */
export function bootfsTool(bin: string): Tool {
  return {
    name: 'bootfs',
    command: process.execPath,
    makeArgs: (store, index, input) => [bin, 'make', '--store', store, '--chunk-size', CHUNK_SIZE, '--no-progress', index, input],
    extractArgs: (store, index, output) => [bin, 'extract', '--store', store, '--no-progress', index, output],
  };
}

/** casync at `command` (an absolute path, recorded in the results). */
export function casyncTool(command: string): Tool {
  return {
    name: 'casync',
    command,
    makeArgs: (store, index, input) => ['make', `--store=${store}`, `--chunk-size=${CHUNK_SIZE}`, index, input],
    extractArgs: (store, index, output) => ['extract', `--store=${store}`, index, output],
  };
}

/** Absolute path of an executable on PATH, or null. */
export function which(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const file = path.join(dir, name);
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** First line of `command --version`, or an explanation when it fails. */
export async function toolVersion(command: string, args: string[] = ['--version']): Promise<string> {
  try {
    const r = await runProcess(command, args);
    const line = (r.stdout.trim() || r.stderr.trim()).split('\n')[0] ?? '';
    return r.code === 0 ? line : `unknown (exit ${r.code}: ${line})`;
  } catch (err) {
    return `unknown (${(err as Error).message})`;
  }
}
