/** `bootfs unpack`: materialize an index's tree in a directory. */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { sharedPool } from '../../pool/chunk-pool.js';
import { openStore } from '../../store/location.js';
import { formatBytes, printJson, Progress, progressLine } from '../output.js';
import { insecureHostKeyOption, sshKeyOption, storeAccess, storeOption } from '../options.js';

export function registerUnpack(program: Command): void {
  program
    .command('unpack')
    .summary('write the image tree of an index into a directory')
    .description(
      'Create every entry of INDEX under DIR (which must not exist or be empty): file contents from ' +
        'the store, verified; hardlinks, symlinks, fifos; devices, owners and setuid bits when root; ' +
        'modes, xattrs and nanosecond mtimes. Nothing is ever written through a symlink. Uses mknod, ' +
        'mkfifo, touch, xargs (coreutils/findutils) and setfattr (attr) for what Node cannot do.',
    )
    .argument('<index>', 'a bootfs index')
    .argument('<dir>', 'target directory (new or empty)')
    .addOption(storeOption(true))
    .addOption(sshKeyOption())
    .addOption(insecureHostKeyOption())
    .option('--no-owners', 'do not set owners (default: set them when running as root)')
    .option('--json', 'print one JSON result on stdout')
    .option('--no-progress', 'no progress line on stderr')
    .action(async (indexPath: string, dir: string, flags: { store?: string; sshKey?: string; insecureSkipHostKeyCheck?: boolean; owners: boolean; json?: boolean; progress: boolean }) => {
      if (!flags.store) throw new UsageError('unpack needs --store (or BOOTFS_STORE)');
      // Loaded when the command runs: `bootfs make` should not pay for the converter's module graph.
      const [{ BootfsIndex }, { unpackIndex }] = await Promise.all([import('../../index/bootfs-reader.js'), import('../../ops/unpack.js')]);
      const index = await BootfsIndex.readFile(indexPath);
      const store = await openStore(flags.store, storeAccess(flags));
      const progress = new Progress(flags.progress && process.stderr.isTTY === true);
      const startedMs = Date.now();
      const result = await unpackIndex(index, store, dir, {
        pool: sharedPool(),
        ...(flags.owners ? {} : { owners: false }),
        onProgress: (bytes, total) => progress.update(() => progressLine(bytes, total, startedMs)),
        onWarning: (m) => {
          progress.done();
          process.stderr.write(`bootfs: warning: ${m}\n`);
        },
      });
      progress.done();
      if (flags.json) printJson({ index: indexPath, dir, ...result });
      else process.stdout.write(`${dir}: ${result.entries} entries, ${formatBytes(result.bytes)}${result.warnings ? `, ${result.warnings} warnings` : ''}\n`);
    });
}
