/** `bootfs store verify|prune|stats`: maintenance of a local chunk store. */
import type { Command } from 'commander';
import { BootfsError, ExitCode } from '../../errors.js';
import { readCaibxFile } from '../../index/caibx.js';
import { pruneStore, storeStats, verifyStore } from '../../ops/store-maint.js';
import { openLocalStore } from '../../store/location.js';
import { sharedPool } from '../../pool/chunk-pool.js';
import { formatBytes, printJson, Progress } from '../output.js';
import { parseDuration } from '../options.js';

/** Exit status 3 after the report is printed: the store holds chunks that fail verification. */
class StoreIntegrityError extends BootfsError {
  constructor(message: string) {
    super(message, { code: 'ERR_CHUNK_CORRUPT', exitCode: ExitCode.integrity });
  }
}

export function registerStore(program: Command): void {
  const store = program.command('store').summary('verify, prune or inspect a chunk store').description('Maintenance of a local chunk store directory (casync/desync layout).');

  store
    .command('verify')
    .summary('decode and hash every chunk; --repair removes bad ones')
    .description(
      'Decompress every chunk and check that its content hashes to its name. Exit status 3 when any ' +
        'chunk is bad. With --repair bad chunks are deleted (as desync verify --repair does), so the ' +
        'next make or cache fill stores a good copy; the exit status is still 3, because indexes that ' +
        'name them cannot be extracted until then.',
    )
    .argument('<dir>', 'store directory')
    .option('--repair', 'delete chunks that fail verification')
    .option('--json', 'print one JSON result on stdout')
    .action(async (dir: string, flags: { repair?: boolean; json?: boolean }) => {
      const s = await openLocalStore(dir);
      const progress = new Progress();
      const result = await verifyStore(s, { repair: !!flags.repair, pool: sharedPool(), onProgress: (n) => progress.update(() => `${n} chunks checked`) });
      progress.done();
      if (flags.json) printJson({ store: s.location, ...result });
      else {
        for (const p of result.problems) process.stdout.write(`bad chunk ${p.id}: ${p.reason}${p.removed ? ' (removed)' : ''}\n`);
        process.stdout.write(`${s.location}: ${result.chunks} chunks (${formatBytes(result.storedBytes)}), ${result.problems.length} bad\n`);
      }
      if (result.problems.length > 0) {
        throw new StoreIntegrityError(`${result.problems.length} bad chunk(s) in ${s.location}${flags.repair ? ' (removed)' : '; run with --repair to delete them'}`);
      }
    });

  store
    .command('prune')
    .summary('delete chunks no given index references')
    .description(
      'Delete every chunk that none of the --keep indexes names. Temp files of writers still running ' +
        'are never touched (only ones older than a day, left by crashed writers). Pruning while a ' +
        'make writes into the same store could delete chunks its future index needs: use --min-age to ' +
        'keep recently written chunks.',
    )
    .argument('<dir>', 'store directory')
    .requiredOption('-k, --keep <index...>', '.caibx indexes whose chunks must stay')
    .option('--min-age <duration>', 'keep unreferenced chunks younger than this (e.g. 30m, 2h)', '0s')
    .option('-n, --dry-run', 'report what would be deleted, delete nothing')
    .option('--json', 'print one JSON result on stdout')
    .action(async (dir: string, flags: { keep: string[]; minAge: string; dryRun?: boolean; json?: boolean }) => {
      const minAgeMs = parseDuration(flags.minAge);
      // Read every index before deleting anything: a bad --keep must not prune what it would keep.
      const keep = [];
      for (const k of flags.keep) keep.push(await readCaibxFile(k));
      const s = await openLocalStore(dir);
      const result = await pruneStore(s, keep, { minAgeMs, dryRun: !!flags.dryRun });
      if (flags.json) printJson({ store: s.location, ...result });
      else {
        const verb = result.dryRun ? 'would remove' : 'removed';
        process.stdout.write(
          `${s.location}: kept ${result.kept} chunks, ${verb} ${result.removed} (${formatBytes(result.removedBytes)})` +
            (result.keptYoung ? `, kept ${result.keptYoung} younger than ${flags.minAge}` : '') +
            (result.removedTempFiles ? `, ${verb} ${result.removedTempFiles} stale temp files` : '') +
            '\n',
        );
      }
    });

  store
    .command('stats')
    .summary('count chunks and stored bytes')
    .argument('<dir>', 'store directory')
    .option('--json', 'print one JSON result on stdout')
    .action(async (dir: string, flags: { json?: boolean }) => {
      const s = await openLocalStore(dir);
      const stats = await storeStats(s);
      if (flags.json) printJson({ store: s.location, ...stats });
      else
        process.stdout.write(
          `${s.location}: ${stats.chunks} chunks, ${formatBytes(stats.storedBytes)} stored in ${stats.shards} shard dirs` +
            (stats.chunks ? `, chunk files ${formatBytes(stats.smallestChunk)} to ${formatBytes(stats.largestChunk)}` : '') +
            (stats.tempFiles ? `, ${stats.tempFiles} temp files` : '') +
            '\n',
        );
    });
}
