/** `bootfs demo`: the main job on built-in sample data. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { runChunkDemo } from '../../demo/chunk-demo.js';
import { BootfsError, ExitCode } from '../../errors.js';
import { printJson } from '../output.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .summary('run bootfs on built-in sample data and explain what happens')
    .description('Chunks two versions of a sample image into one store, shows how much the second adds,\nextracts it with verification and, when casync is installed, has casync read our store.')
    .option('--dir <dir>', 'work directory (default: a new temp directory, kept for inspection)')
    .option('--size <MiB>', 'size of the sample image in MiB', '48')
    .option('--json', 'print one JSON result on stdout')
    .action(async (flags: { dir?: string; size: string; json?: boolean }) => {
      const dir = flags.dir ?? (await mkdtemp(path.join(tmpdir(), 'bootfs-demo-')));
      const log = (line: string): void => void process.stderr.write(`• ${line}\n`);
      const result = await runChunkDemo(dir, log, Math.max(1, Number(flags.size) || 48));
      if (flags.json) printJson(result);
      else process.stdout.write(`demo files are in ${dir}\n`);
      if (!result.extractedOk || result.casync === 'mismatch') {
        throw new BootfsError('demo failed: extracted bytes differ', { exitCode: ExitCode.integrity });
      }
    });
}
