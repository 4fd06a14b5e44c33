/** `bootfs mount` and `bootfs umount`: a lazy, read-only FUSE view of a bootfs index. */
import { Option, type Command } from 'commander';
import { parseSize } from '../../chunker/params.js';
import { UsageError } from '../../errors.js';
import { insecureHostKeyOption, parseDuration, sshKeyOption, storeAccess } from '../options.js';

interface MountFlags {
  store: string[];
  cache?: string;
  cacheMaxSize?: number;
  allowOther?: boolean;
  memory: number;
  readahead: number;
  kernelReadahead: number;
  timeout: number;
  metrics?: string;
  statsFile?: string;
  sshKey?: string;
  insecureSkipHostKeyCheck?: boolean;
  quiet?: boolean;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function registerMount(program: Command): void {
  program
    .command('mount')
    .summary('mount an index read-only with FUSE; file data is fetched lazily')
    .description(
      'Mount the filesystem a bootfs index describes at MOUNTPOINT (read-only FUSE; needs root or ' +
        'CAP_SYS_ADMIN and /dev/fuse). Metadata comes from the index; file data is fetched chunk by ' +
        'chunk when read: from memory, then the cache directory (--cache, shareable by every process ' +
        'and container on a node: each chunk is fetched once per node), then the stores in the order ' +
        'given. Every chunk is verified; a corrupt copy is replaced from the next source. A read that ' +
        'no store can serve within --timeout fails with EIO, and the mount keeps serving.\n\n' +
        'Runs in the foreground until unmounted (bootfs umount, umount(8)) or stopped with SIGINT or ' +
        'SIGTERM, which unmount cleanly.',
    )
    .argument('<index>', 'the bootfs index (as written by bootfs convert)')
    .argument('<mountpoint>', 'an existing directory')
    .addOption(new Option('-s, --store <location>', 'chunk store: a directory, http(s)://, sftp:// or oci://registry/repo URL; repeat for fallbacks, tried in order').argParser(collect).env('BOOTFS_STORE'))
    .addOption(new Option('-c, --cache <dir>', 'node cache directory shared by every mount on the machine').env('BOOTFS_CACHE'))
    .addOption(new Option('--cache-max-size <size>', 'evict least recently used chunks beyond this size (e.g. 20G)').argParser((v) => parseSize(v, '--cache-max-size')))
    .option('--allow-other', 'let other users (and containers) read the mount (FUSE allow_other)')
    .addOption(new Option('--memory <size>', 'in-memory chunk cache').default(64 * 1024 * 1024, '64M').argParser((v) => parseSize(v, '--memory')))
    .addOption(new Option('--readahead <chunks>', 'chunks fetched ahead of a file read from start to end, up to its end (0 = off; reads that walk across files in order get at most 16)').default(64).argParser((v) => intArg(v, '--readahead')))
    .addOption(new Option('--kernel-readahead <KiB>', "the kernel's readahead for the mount: more helps big sequential reads, less fetches less for scattered ones (kernel default 128)").default(4096).argParser((v) => intArg(v, '--kernel-readahead')))
    .addOption(new Option('--timeout <duration>', 'how long a store may fail or stall before a read gets EIO (retried with back-off meanwhile)').default(30_000, '30s').argParser((v) => parseDuration(v)))
    .option('--metrics <[host:]port>', 'serve Prometheus metrics at /metrics and JSON at /stats')
    .option('--stats-file <file>', 'write the counters as JSON to this file every second and at exit')
    .addOption(sshKeyOption())
    .addOption(insecureHostKeyOption())
    .option('-q, --quiet', 'do not log absorbed errors (store failures, corrupt copies) to stderr')
    .addHelpText(
      'after',
      '\nExamples:\n  bootfs mount --store https://chunks.example/store --cache /var/cache/bootfs app.bootfs /mnt/app\n' +
        '  bootfs mount -s /srv/store -s http://mirror:8080/ --cache-max-size 20G -c /var/cache/bootfs app.bootfs /mnt/app\n' +
        '  bootfs umount /mnt/app',
    )
    .action(async (indexPath: string, mountpoint: string, flags: MountFlags) => {
      const stores = (flags.store ?? []).filter((s) => s !== '');
      if (stores.length === 0) throw new UsageError('mount needs at least one --store (or BOOTFS_STORE)');
      if (flags.cacheMaxSize !== undefined && !flags.cache) throw new UsageError('--cache-max-size needs --cache');
      const { runMount } = await import('../../mount/run.js');
      await runMount({
        indexPath,
        mountpoint,
        stores,
        storeOptions: storeAccess(flags),
        ...(flags.cache ? { cacheDir: flags.cache } : {}),
        ...(flags.cacheMaxSize !== undefined ? { cacheMaxSize: flags.cacheMaxSize } : {}),
        allowOther: !!flags.allowOther,
        memoryBytes: flags.memory,
        readaheadChunks: flags.readahead,
        kernelReadaheadKb: flags.kernelReadahead,
        timeoutMs: flags.timeout,
        ...(flags.metrics ? { metricsAddr: flags.metrics } : {}),
        ...(flags.statsFile ? { statsFile: flags.statsFile } : {}),
        quiet: !!flags.quiet,
      });
    });

  program
    .command('umount')
    .alias('unmount')
    .summary('unmount a bootfs mount')
    .description('Unmount MOUNTPOINT; the bootfs mount process serving it then exits. With --lazy a busy mount is detached now and goes away when its last file is closed.')
    .argument('<mountpoint>', 'where the index is mounted')
    .option('-l, --lazy', 'detach even while files are open (umount -l)')
    .action(async (mountpoint: string, flags: { lazy?: boolean }) => {
      const { unmount } = await import('../../fuse/device.js');
      await unmount(mountpoint, { lazy: !!flags.lazy });
    });
}

function intArg(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${name} must be a non-negative integer, got '${v}'`);
  return n;
}
