/** `bootfs cache warm|gc|stats`: the node cache directory that mounts share. */
import { Option, type Command } from 'commander';
import { parseSize } from '../../chunker/params.js';
import { UsageError } from '../../errors.js';
import { formatBytes, printJson, Progress } from '../output.js';
import { insecureHostKeyOption, parseDuration, sshKeyOption, storeAccess } from '../options.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function registerCache(program: Command): void {
  const cache = program
    .command('cache')
    .summary('fill, trim or inspect a node cache directory')
    .description(
      'The cache directory (bootfs mount --cache) is a casync-layout chunk directory that every mount ' +
        'on a node shares, with verified reads and a fetch lock per chunk so each chunk crosses the ' +
        'network once per node. These commands work on it while mounts use it.',
    );

  cache
    .command('warm')
    .summary('fetch the chunks of an index (or some of its paths) into the cache')
    .description(
      'Fetch every chunk INDEX needs (or only the chunks of the files under PATH…, symlinks ' +
        'followed) into the cache directory, verified, several at a time. Chunks already cached are ' +
        'not fetched again; mounts reading at the same time share the fetches.',
    )
    .argument('<index>', 'the bootfs index')
    .argument('[paths...]', 'paths inside the image (default: the whole image)')
    .addOption(new Option('-c, --cache <dir>', 'the cache directory').env('BOOTFS_CACHE'))
    .addOption(new Option('-s, --store <location>', 'chunk store; repeat for fallbacks, tried in order').argParser(collect).env('BOOTFS_STORE'))
    .addOption(new Option('-j, --parallel <n>', 'chunks fetched at once').default(8).argParser((v) => positive(v, '--parallel')))
    .addOption(new Option('--timeout <duration>', 'how long a store may fail or stall before the warm fails (retried with back-off meanwhile)').default(30_000, '30s').argParser((v) => parseDuration(v)))
    .addOption(sshKeyOption())
    .addOption(insecureHostKeyOption())
    .option('--json', 'print one JSON result on stdout')
    .option('--no-progress', 'no progress line on stderr')
    .addHelpText('after', '\nExamples:\n  bootfs cache warm app.bootfs -c /var/cache/bootfs -s https://chunks.example/store\n  bootfs cache warm app.bootfs /usr/lib/python3 /app -c /var/cache/bootfs -s /srv/store')
    .action(async (indexPath: string, paths: string[], flags: { cache?: string; store?: string[]; parallel: number; timeout: number; json?: boolean; progress: boolean; sshKey?: string; insecureSkipHostKeyCheck?: boolean }) => {
      if (!flags.cache) throw new UsageError('cache warm needs --cache (or BOOTFS_CACHE)');
      const stores = (flags.store ?? []).filter((s) => s !== '');
      if (stores.length === 0) throw new UsageError('cache warm needs at least one --store (or BOOTFS_STORE)');
      const [{ BootfsIndex }, { CacheDir }, { StoreRouter }, { openStore, untilDeadline }, { chunksOf, warmCache }] = await Promise.all([
        import('../../index/bootfs-reader.js'),
        import('../../store/cache-dir.js'),
        import('../../store/router.js'),
        import('../../store/location.js'),
        import('../../mount/warm.js'),
      ]);
      const index = await BootfsIndex.readFile(indexPath);
      const chunks = chunksOf(index, paths);
      const access = untilDeadline(storeAccess(flags), flags.timeout);
      const opened = [];
      for (const loc of stores) opened.push(await openStore(loc, access));
      const router = new StoreRouter(opened, { maxChunkSize: index.sizes.max });
      const dir = await CacheDir.open(flags.cache);
      const progress = new Progress(flags.progress && process.stderr.isTTY === true);
      const started = performance.now();
      try {
        const r = await warmCache(index, chunks, dir, router, {
          parallel: flags.parallel,
          onProgress: (done, total) => progress.update(() => `${done}/${total} chunks`),
        });
        progress.done();
        const seconds = (performance.now() - started) / 1000;
        if (flags.json) printJson({ cache: dir.location, ...r, seconds });
        else {
          process.stdout.write(
            `${dir.location}: ${r.chunks} chunks (${formatBytes(r.bytes)}) wanted, ${r.cached} already cached, ` +
              `${r.fetched} fetched (${formatBytes(r.remoteBytes)} from the store) in ${seconds.toFixed(1)} s\n`,
          );
        }
      } finally {
        progress.done();
        await dir.close();
        await router.close();
      }
    });

  cache
    .command('gc')
    .summary('evict least recently used chunks down to a size')
    .description(
      'Delete the least recently used chunks (by mtime, which reads refresh) until the cache holds at ' +
        'most SIZE of stored chunks. Fetch locks and temp files of live writers are left alone; ' +
        'stale ones are removed. Safe while mounts use the cache: an evicted chunk is fetched again.',
    )
    .argument('<dir>', 'the cache directory')
    .addOption(new Option('--max-size <size>', 'size to trim to (e.g. 20G, 0 empties the cache)').makeOptionMandatory().argParser((v) => parseSize(v, '--max-size')))
    .option('--json', 'print one JSON result on stdout')
    .action(async (dirPath: string, flags: { maxSize: number; json?: boolean }) => {
      const { CacheDir } = await import('../../store/cache-dir.js');
      const dir = await openExisting(CacheDir, dirPath);
      try {
        const r = await dir.gc(flags.maxSize);
        if (flags.json) printJson({ cache: dir.location, ...r });
        else process.stdout.write(`${dir.location}: removed ${r.removed} chunks (${formatBytes(r.freedBytes)}); ${r.chunks} chunks (${formatBytes(r.bytes)}) remain\n`);
      } finally {
        await dir.close();
      }
    });

  cache
    .command('stats')
    .summary('count the chunks and bytes in a cache directory')
    .argument('<dir>', 'the cache directory')
    .option('--json', 'print one JSON result on stdout')
    .action(async (dirPath: string, flags: { json?: boolean }) => {
      const { CacheDir } = await import('../../store/cache-dir.js');
      const dir = await openExisting(CacheDir, dirPath);
      try {
        const s = await dir.stats();
        if (flags.json) printJson({ cache: dir.location, ...s });
        else {
          const age = (ms?: number): string => (ms === undefined ? '-' : new Date(ms).toISOString());
          process.stdout.write(
            `${dir.location}: ${s.chunks} chunks, ${formatBytes(s.bytes)} stored; least recently used ${age(s.oldestMs)}, most recently ${age(s.newestMs)}; ` +
              `${s.locks} fetch lock(s), ${s.tempFiles} temp file(s)\n`,
          );
        }
      } finally {
        await dir.close();
      }
    });
}

/** Maintenance commands must not create a cache directory from a typo. */
async function openExisting<T>(cls: { open(dir: string): Promise<T> }, dir: string): Promise<T> {
  const { stat } = await import('node:fs/promises');
  const { NotFoundError } = await import('../../errors.js');
  const st = await stat(dir).catch(() => undefined);
  if (!st) throw new NotFoundError(`cache directory ${dir} does not exist`);
  if (!st.isDirectory()) throw new UsageError(`cache directory ${dir} is not a directory`);
  return cls.open(dir);
}

function positive(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer, got '${v}'`);
  return n;
}
