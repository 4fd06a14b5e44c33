/** `bootfs extract`: rebuild a blob from a .caibx and a store. */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { readCaibxFile } from '../../index/caibx.js';
import { extractBlob, fileSink, streamSink } from '../../ops/extract.js';
import { openStore } from '../../store/location.js';
import { sharedPool } from '../../pool/chunk-pool.js';
import { ChunkNotFoundError } from '../../errors.js';
import type { ChunkStore } from '../../store/types.js';

/** A store with nothing in it, for indexes that name no chunk. */
function emptyStore(location: string): ChunkStore {
  const missing = (id: Uint8Array): Promise<never> => Promise.reject(new ChunkNotFoundError(Buffer.from(id).toString('hex'), location));
  return { location, getStored: missing, getChunk: missing, hasChunk: async () => false, close: async () => {} };
}
import { formatBytes, formatRate, printJson, Progress, progressLine } from '../output.js';
import { assertStdoutFree, insecureHostKeyOption, sshKeyOption, storeAccess, storeOption } from '../options.js';

interface ExtractFlags {
  store?: string;
  sshKey?: string;
  insecureSkipHostKeyCheck?: boolean;
  json?: boolean;
  progress: boolean;
}

export function registerExtract(program: Command): void {
  program
    .command('extract')
    .summary('rebuild a file from a .caibx and its chunk store')
    .description(
      'Fetch every chunk INDEX names from the store, verify it (its digest, SHA-512/256 or SHA-256, and size) and write the ' +
        'blob to OUT, or to stdout with -. OUT is written to a temp file beside it and renamed when ' +
        'complete: a failed extract leaves no partial file. Works on indexes made by casync or desync.',
    )
    .argument('<index>', 'the .caibx to read')
    .argument('<out>', 'output file, or - for stdout')
    .addOption(storeOption(true))
    .addOption(sshKeyOption())
    .addOption(insecureHostKeyOption())
    .option('--json', 'print one JSON result on stdout (not with OUT = -)')
    .option('--no-progress', 'no progress line on stderr')
    .addHelpText('after', '\nExamples:\n  bootfs extract --store /srv/store image.caibx image.raw\n  bootfs extract -s /srv/store image.caibx - | sha256sum')
    .action(async (indexPath: string, out: string, flags: ExtractFlags) => {
      if (!flags.store) throw new UsageError('extract needs --store (or BOOTFS_STORE)');
      assertStdoutFree(!!flags.json, out === '-');
      const started = performance.now();
      const startedMs = Date.now();
      const index = await readCaibxFile(indexPath);
      // An empty blob needs no chunk, and casync creates no store for one: don't demand it exists.
      const store = index.table.count === 0 ? await openStore(flags.store, storeAccess(flags)).catch(() => emptyStore(flags.store!)) : await openStore(flags.store, storeAccess(flags));
      const sink = out === '-' ? streamSink(process.stdout) : await fileSink(out);
      const progress = new Progress(flags.progress && process.stderr.isTTY === true);
      const total = index.table.totalSize;
      const done = await extractBlob(index, store, sink, {
        pool: sharedPool(),
        mainThread: true,
        onProgress: (p) => progress.update(() => progressLine(p.bytes, total, startedMs)),
      });
      progress.done();
      const seconds = (performance.now() - started) / 1000;
      if (flags.json) printJson({ index: indexPath, out, store: store.location, bytes: done.bytes, chunks: done.chunks, seconds: Number(seconds.toFixed(3)) });
      else if (out !== '-') process.stdout.write(`${out}: ${formatBytes(done.bytes)} from ${done.chunks} chunks, ${formatRate(done.bytes, seconds)}\n`);
    });
}
