/**
 * `make`: cut a byte stream into content-defined chunks, store the new ones, and describe the
 * stream as a casync blob index (.caibx).
 *
 * Pipeline: the main thread reads and cuts (FastCDC in WASM) one window at a time; each window's
 * settled chunks go to a worker thread as one batch (a transfer, no copy), where they are hashed
 * and, when the store lacks them, compressed and written. Results are consumed in input order, so
 * the index bytes never depend on which worker finished first.
 */
import { chunkBatches, type FillSource, WindowPool } from '../chunker/index.js';
import { type ChunkSizes, DEFAULT_CHUNK_SIZES, validateChunkSizes } from '../chunker/params.js';
import { CASYNC_DIGEST, CHUNK_ID_BYTES, type Digest } from '../chunk.js';
import { type BlobIndex, caibxFlags } from '../index/caibx.js';
import { ChunkTable } from '../index/chunk-table.js';
import { type BatchResult, ChunkPool } from '../pool/chunk-pool.js';
import { processBatch } from '../pool/batch.js';
import type { BatchMode } from '../pool/protocol.js';
import { LocalStore } from '../store/local.js';
import type { WriteStore } from '../store/types.js';
import { mapOrdered } from './ordered.js';

export interface MakeProgress {
  bytes: number;
  chunks: number;
  newChunks: number;
}

export interface MakeOptions {
  /** Where chunks go; without a store only the index is computed. */
  store?: WriteStore;
  sizes?: ChunkSizes;
  /** The chunk IDs' digest (default SHA-512/256, as casync); the index's flags record it. */
  digest?: Digest;
  /** A shared pool; by default one is created for the call and closed after. */
  pool?: ChunkPool;
  /** Windows being processed at once; memory is about (inFlight + 1) × windowSize. Default 2 per worker (+5 with mainThread). */
  inFlight?: number;
  /**
   * Let this thread process a batch itself whenever every worker already has MAIN_THREAD_QUEUE
   * unfinished. The CLI does, with one worker fewer than cores (`bootfs make` and `convert`): on
   * 2 cores one worker plus this thread do the work of two workers with one isolate less to boot
   * and feed. With more workers this thread's own reading and cutting is usually the bottleneck,
   * and it takes a batch only when every worker has fallen that far behind.
   */
  mainThread?: boolean;
  /** Bytes cut per window (default 4 MiB): smaller windows spread short inputs over more workers. */
  windowSize?: number;
  onProgress?: (p: MakeProgress) => void;
  signal?: AbortSignal;
}

export interface MakeResult {
  index: BlobIndex;
  /** Bytes of input. */
  bytes: number;
  chunks: number;
  /** Chunks the store did not have before (counted once even if repeated in the input). */
  newChunks: number;
  /** Stored (compressed) bytes added to the store. */
  newStoredBytes: number;
}

/**
 * With mainThread: batches a worker must have unfinished before this thread takes one itself.
 * Deep enough that the worker still has work while this thread spends a batch's time on its own.
 * The count is the worker's own (ChunkPool.saturated), current even while this thread is busy:
 * counted from replies handled, it went stale during the inline batches and sync reads, and this
 * thread took batch after batch while the worker sat idle.
 * Measured on 2 cores, Debian rootfs, 8 interleaved rounds each (wall median, casync 1188 ms):
 * 2 → 702 ms, 3 → 672, 4 → 698; 1 took too many and left the worker idle (776).
 */
const MAIN_THREAD_QUEUE = 3;

/** 4 MiB windows: ≥ 16 × the default max chunk, and short inputs still reach both cores. */
export const MAKE_WINDOW_SIZE = 4 * 1024 * 1024;

/** Chunk, hash, compress and store `source`; returns the blob index describing it. */
export async function makeBlobIndex(source: AsyncIterable<Uint8Array> | FillSource, opts: MakeOptions = {}): Promise<MakeResult> {
  const sizes = validateChunkSizes(opts.sizes ?? DEFAULT_CHUNK_SIZES);
  const pool = opts.pool ?? new ChunkPool();
  const store = opts.store;
  const digest = opts.digest ?? CASYNC_DIGEST;
  const ends: number[] = [];
  const idParts: Buffer[] = [];
  const progress: MakeProgress = { bytes: 0, chunks: 0, newChunks: 0 };
  let newStoredBytes = 0;
  // A chunk repeated in the input (runs of zeros, duplicate files) may be written by two workers
  // at once (same bytes, atomic rename): count it as new only once.
  const counted = new Set<string>();
  const windowSize = opts.windowSize ?? Math.max(MAKE_WINDOW_SIZE, 2 * sizes.max);
  // A local store is written where the chunks are compressed; any other gets them encoded, from here.
  const local = store instanceof LocalStore ? store : undefined;
  const mode: BatchMode = !store ? 'hash' : local ? 'store-local' : 'encode';
  try {
    // Windows come back from the workers with each result and are filled again. With mainThread,
    // room for the worker's queue plus this thread's finished batches, which wait in order behind
    // the worker's older ones: a cap that counted those kept this thread idle.
    const inFlight = opts.inFlight ?? 2 * pool.threads + (opts.mainThread ? MAIN_THREAD_QUEUE + 2 : 0);
    const windows = new WindowPool(windowSize, inFlight + 2);
    const batches = chunkBatches(source, { sizes, windowSize, windows });
    const results = mapOrdered(batches, inFlight, async ({ data, ends: batchEnds }) => {
      opts.signal?.throwIfAborted();
      const sizesOf = batchEnds.map((e, i) => e - (i === 0 ? 0 : batchEnds[i - 1]!));
      // Processed on this thread as a worker would (see MakeOptions.mainThread), or by a worker.
      let r: BatchResult =
        opts.mainThread && pool.saturated(MAIN_THREAD_QUEUE)
          ? { ...processBatch(data, batchEnds, mode, digest, local), window: data.buffer as ArrayBuffer }
          : await pool.batch(data, batchEnds, mode, digest, local?.root);
      if (mode === 'encode') r = await storeEncoded(store!, r);
      windows.give(r.window);
      return { sizes: sizesOf, ...r };
    });
    let offset = 0;
    for await (const r of results) {
      idParts.push(r.ids);
      r.sizes.forEach((size, i) => {
        offset += size;
        ends.push(offset);
        const stored = r.storedSizes[i];
        if (store && stored !== undefined && stored >= 0) {
          const key = r.ids.toString('hex', i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
          if (!counted.has(key)) {
            counted.add(key);
            progress.newChunks++;
            newStoredBytes += stored;
          }
        }
      });
      progress.bytes = offset;
      progress.chunks = ends.length;
      opts.onProgress?.(progress);
    }
  } finally {
    if (!opts.pool) await pool.close();
  }
  const table = new ChunkTable(Float64Array.from(ends), Buffer.concat(idParts, ends.length * CHUNK_ID_BYTES));
  return {
    index: { flags: caibxFlags(digest), sizes, table },
    bytes: progress.bytes,
    chunks: progress.chunks,
    newChunks: progress.newChunks,
    newStoredBytes,
  };
}

/** Store the encoded chunks of a batch in a generic WriteStore; marks already-present ones -1. */
async function storeEncoded(store: WriteStore, r: BatchResult): Promise<BatchResult> {
  const stored = r.stored!;
  let off = 0;
  const puts = r.storedSizes.map((size, i) => {
    const bytes = stored.subarray(off, off + size);
    off += size;
    return store.storeChunk(r.ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES), bytes);
  });
  const written = await Promise.all(puts);
  return { ids: r.ids, storedSizes: r.storedSizes.map((size, i) => (written[i] ? size : -1)), ...(r.window ? { window: r.window } : {}) };
}
