/** `bootfs demo`: the main job on built-in sample data. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { sharedPool } from '../../pool/chunk-pool.js';
import { LocalStore } from '../../store/local.js';
import { BootfsError, ExitCode } from '../../errors.js';
import { printJson } from '../output.js';
import { BOOTFS_VERSION } from '../version.js';
import type { BootMode } from '../../demo/boot-demo.js';

interface DemoFlags {
  dir?: string;
  size: string;
  boot: BootMode;
  json?: boolean;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .summary('run bootfs on built-in sample data and explain what happens')
    .description(
      'Part 1 chunks two versions of a sample disk image into one store, shows how little the second ' +
        'adds, extracts it with verification and, when casync is installed, has casync read our store. ' +
        'Part 2 converts two versions of a sample root filesystem into the same store, reads a file ' +
        'through the index (following a symlink) and unpacks the tree. ' +
        'Part 3 boots an image lazily: a sample app (a config and 1 MiB of code it reads at start, ' +
        '64 MiB of weights of which it reads only a header) is converted into a fresh store, the ' +
        'store is served over HTTP on 127.0.0.1, and the app is started — under podman from a boot ' +
        'image (on the Debian rootfs) when podman, runc and the base-image test fixture are there, ' +
        'else with its files read through a FUSE mount — and the bytes fetched from the store are ' +
        'compared with the image size. Part 3 needs root and /dev/fuse; without them it is skipped.',
    )
    .option('--dir <dir>', 'work directory (default: a new temp directory, kept for inspection)')
    .option('--size <MiB>', 'size of the sample image of part 1 in MiB', '48')
    .addOption(
      new Option('--boot <how>', 'part 3: podman when available else FUSE (auto), force one, or skip (none)').choices(['auto', 'podman', 'fuse', 'none'] satisfies BootMode[]).default('auto'),
    )
    .option('--json', 'print one JSON result on stdout')
    .addHelpText('after', '\nExamples:\n  bootfs demo\n  bootfs demo --boot fuse --json\n  bootfs demo --dir /tmp/demo --size 8 --boot none')
    .action(async (flags: DemoFlags) => {
      const dir = flags.dir ?? (await mkdtemp(path.join(tmpdir(), 'bootfs-demo-')));
      const log = (line: string): void => void process.stderr.write(`• ${line}\n`);
      const [{ runChunkDemo }, { runConvertDemo }, { planBoot, runBootDemo }] = await Promise.all([
        import('../../demo/chunk-demo.js'),
        import('../../demo/convert-demo.js'),
        import('../../demo/boot-demo.js'),
      ]);
      // Decided first: a forced --boot that cannot work here fails before minutes of parts 1 and 2.
      const bootPlan = await planBoot(flags.boot);
      const pool = sharedPool();
      log('part 1 — chunks and casync-compatible blob indexes');
      const result = await runChunkDemo(dir, log, Math.max(1, Number(flags.size) || 48), pool);
      log('part 2 — converting an image (a root filesystem) into chunks plus one bootfs index');
      const store = await LocalStore.open(path.join(dir, 'store'));
      const converted = await runConvertDemo(dir, store, pool, log);
      log('part 3 — booting an image lazily from its chunk store over HTTP');
      const boot = await runBootDemo({ dir, pool, log, plan: bootPlan, bootfsVersion: BOOTFS_VERSION });
      if (flags.json) printJson({ ...result, convert: converted, boot });
      else process.stdout.write(`demo files are in ${dir}\n`);
      if (!converted.unpackedOk) throw new BootfsError('demo failed: unpacked files differ', { exitCode: ExitCode.integrity });
      if (!result.extractedOk || result.casync === 'mismatch') {
        throw new BootfsError('demo failed: extracted bytes differ', { exitCode: ExitCode.integrity });
      }
      if (boot.mode !== 'skipped' && !boot.outputOk) throw new BootfsError(`demo failed: the booted app read wrong bytes (its output differs; files in ${dir}/boot)`, { exitCode: ExitCode.integrity });
    });
}
