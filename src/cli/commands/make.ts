/** `bootfs make`: chunk a file (or stdin) into a store and write its .caibx. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import type { ChunkSizes } from '../../chunker/params.js';
import { type Digest, idToHex } from '../../chunk.js';
import { errnoCode, IoError, NotFoundError } from '../../errors.js';
import { writeCaibxFile } from '../../index/caibx.js';
import { makeBlobIndex } from '../../ops/make.js';
import { openStore } from '../../store/location.js';
import { sharedPool } from '../../pool/chunk-pool.js';
import { createHash } from 'node:crypto';
import { formatBytes, formatRate, printJson, Progress, progressLine } from '../output.js';
import { chunkDigestOption, chunkSizeOption, insecureHostKeyOption, sshKeyOption, storeAccess, storeOption } from '../options.js';

interface MakeFlags {
  store?: string;
  sshKey?: string;
  insecureSkipHostKeyCheck?: boolean;
  digest?: boolean;
  chunkDigest: Digest;
  chunkSize: ChunkSizes;
  json?: boolean;
  progress: boolean;
}

/**
 * Open FILE or '-' (stdin) as a byte stream, with its size when it is a regular file (for the
 * progress bar); missing files are NotFoundError (exit 2).
 */
export async function openInput(file: string): Promise<{ stream: Readable; size?: number }> {
  if (file === '-') return { stream: process.stdin };
  let size: number | undefined;
  try {
    const st = await stat(file);
    if (st.isDirectory()) throw new IoError(`input ${file} is a directory (bootfs make takes a file; directories come with bootfs convert)`);
    if (st.isFile()) size = st.size;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new NotFoundError(`input file ${file} not found`);
    if (err instanceof IoError) throw err;
    throw new IoError(`cannot read input ${file}: ${(err as Error).message}`, err);
  }
  const stream = createReadStream(file, { highWaterMark: 1024 * 1024 });
  return size === undefined ? { stream } : { stream, size };
}

/** Wrap read errors so they name the input. */
async function* named(input: Readable, name: string): AsyncGenerator<Uint8Array> {
  try {
    for await (const piece of input) yield piece as Uint8Array;
  } catch (err) {
    throw new IoError(`cannot read input ${name}: ${(err as Error).message}`, err);
  }
}

export function registerMake(program: Command): void {
  program
    .command('make')
    .summary('chunk a file into a store and write a casync blob index (.caibx)')
    .description(
      'Cut FILE (or stdin with -) into content-defined chunks (FastCDC), store each new chunk as ' +
        '<store>/<4hex>/<id>.cacnk (zstd; the casync/desync layout) and write INDEX, a .caibx that ' +
        'casync, desync and bootfs can extract. Chunks are written before the index, so an index never ' +
        'names a chunk its store lacks.',
    )
    .argument('<index>', 'the .caibx to write (replaced atomically)')
    .argument('<file>', 'input file, or - for stdin')
    .addOption(storeOption(false))
    .addOption(sshKeyOption())
    .addOption(insecureHostKeyOption())
    .addOption(chunkSizeOption())
    .addOption(chunkDigestOption('sha512-256', "Default: casync's and desync's"))
    .option('--digest', 'also print the SHA-512/256 of the whole input (what `casync digest` prints, whatever the chunk digest)')
    .option('--json', 'print one JSON result on stdout')
    .option('--no-progress', 'no progress line on stderr')
    .addHelpText(
      'after',
      '\nExamples:\n  bootfs make --store /srv/store image.caibx image.raw\n  tar c rootfs | bootfs make -s /srv/store rootfs.caibx -\n  casync extract --store=/srv/store image.caibx copy.raw   # real casync reads the result',
    )
    .action(async (indexPath: string, file: string, flags: MakeFlags) => {
      const started = performance.now();
      const store = flags.store ? await openStore(flags.store, { create: true, ...storeAccess(flags) }) : undefined;
      const input = await openInput(file);
      const startedMs = Date.now();
      const progress = new Progress(flags.progress && process.stderr.isTTY === true);
      // The whole-blob digest `casync digest` prints. Opt-in: it is one more sequential hash of
      // every byte on the main thread (about a quarter of make's CPU time).
      const digest = flags.digest ? createHash('sha512-256') : undefined;
      async function* tee(): AsyncGenerator<Uint8Array> {
        for await (const piece of named(input.stream, file)) {
          digest?.update(piece);
          yield piece;
        }
      }
      const result = await makeBlobIndex(tee(), {
        sizes: flags.chunkSize,
        digest: flags.chunkDigest,
        pool: sharedPool(),
        mainThread: true, // bin.ts started one worker fewer than cores
        ...(store ? { store } : {}),
        onProgress: (p) => progress.update(() => progressLine(p.bytes, input.size, startedMs, `${p.chunks} chunks, ${p.newChunks} new`)),
      });
      progress.done();
      await writeCaibxFile(indexPath, result.index);
      const seconds = (performance.now() - started) / 1000;
      const summary = {
        index: indexPath,
        store: store?.location ?? null,
        chunkDigest: flags.chunkDigest,
        digest: digest ? idToHex(digest.digest()) : null,
        bytes: result.bytes,
        chunks: result.chunks,
        newChunks: result.newChunks,
        newStoredBytes: result.newStoredBytes,
        chunkSizes: flags.chunkSize,
        seconds: Number(seconds.toFixed(3)),
      };
      if (flags.json) printJson(summary);
      else {
        process.stdout.write(
          `${indexPath}: ${formatBytes(result.bytes)} in ${result.chunks} chunks` +
            (store ? `, ${result.newChunks} new (${formatBytes(result.newStoredBytes)} stored)` : '') +
            `, ${formatRate(result.bytes, seconds)}\n` +
            (summary.digest ? `${summary.digest}\n` : ''),
        );
      }
    });
}
