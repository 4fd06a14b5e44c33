/** `bootfs demo`: the main job on built-in sample data. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { sharedPool } from '../../pool/chunk-pool.js';
import { LocalStore } from '../../store/local.js';
import { BootfsError, ExitCode } from '../../errors.js';
import { printJson } from '../output.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .summary('run bootfs on built-in sample data and explain what happens')
    .description(
      'Part 1 chunks two versions of a sample disk image into one store, shows how little the second ' +
        'adds, extracts it with verification and, when casync is installed, has casync read our store. ' +
        'Part 2 converts two versions of a sample root filesystem into the same store, reads a file ' +
        'through the index (following a symlink) and unpacks the tree.',
    )
    .option('--dir <dir>', 'work directory (default: a new temp directory, kept for inspection)')
    .option('--size <MiB>', 'size of the sample image in MiB', '48')
    .option('--json', 'print one JSON result on stdout')
    .action(async (flags: { dir?: string; size: string; json?: boolean }) => {
      const dir = flags.dir ?? (await mkdtemp(path.join(tmpdir(), 'bootfs-demo-')));
      const log = (line: string): void => void process.stderr.write(`• ${line}\n`);
      const [{ runChunkDemo }, { runConvertDemo }] = await Promise.all([import('../../demo/chunk-demo.js'), import('../../demo/convert-demo.js')]);
      const pool = sharedPool();
      log('part 1 — chunks and casync-compatible blob indexes');
      const result = await runChunkDemo(dir, log, Math.max(1, Number(flags.size) || 48), pool);
      log('part 2 — converting an image (a root filesystem) into chunks plus one bootfs index');
      const store = await LocalStore.open(path.join(dir, 'store'));
      const converted = await runConvertDemo(dir, store, pool, log);
      if (flags.json) printJson({ ...result, convert: converted });
      else process.stdout.write(`demo files are in ${dir}\n`);
      if (!converted.unpackedOk) throw new BootfsError('demo failed: unpacked files differ', { exitCode: ExitCode.integrity });
      if (!result.extractedOk || result.casync === 'mismatch') {
        throw new BootfsError('demo failed: extracted bytes differ', { exitCode: ExitCode.integrity });
      }
    });
}
