/**
 * `make`: cut a byte stream into content-defined chunks, store the new ones, and describe the
 * stream as a casync blob index (.caibx).
 */
import { chunkStream } from '../chunker/index.js';
import { type ChunkSizes, DEFAULT_CHUNK_SIZES, validateChunkSizes } from '../chunker/params.js';
import { CHUNK_ID_BYTES } from '../chunk.js';
import { CAIBX_DEFAULT_FLAGS, type BlobIndex } from '../index/caibx.js';
import { ChunkTable } from '../index/chunk-table.js';
import { ChunkPool } from '../pool/chunk-pool.js';
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
  /** A shared pool; by default one is created for the call and closed after. */
  pool?: ChunkPool;
  /** Chunks hashed/compressed at once; bounds memory to about inFlight × max chunk size. */
  inFlight?: number;
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

/** Default in-flight chunk count: enough to keep every worker and the disk busy; ×max = 16 MiB at 256 KiB. */
export const DEFAULT_IN_FLIGHT = 64;

/** Chunk, hash, compress and store `source`; returns the blob index describing it. */
export async function makeBlobIndex(source: AsyncIterable<Uint8Array>, opts: MakeOptions = {}): Promise<MakeResult> {
  const sizes = validateChunkSizes(opts.sizes ?? DEFAULT_CHUNK_SIZES);
  const pool = opts.pool ?? new ChunkPool();
  const store = opts.store;
  const sizesOut: number[] = [];
  const ids: Buffer[] = [];
  const progress: MakeProgress = { bytes: 0, chunks: 0, newChunks: 0 };
  let newStoredBytes = 0;
  // First store attempt per chunk ID in this run: repeats (runs of zeros, duplicate files) neither
  // race each other into the store nor count as new twice.
  const firstPut = new Map<string, Promise<boolean>>();
  try {
    const chunks = chunkStream(source, { sizes, ...(opts.windowSize ? { windowSize: opts.windowSize } : {}) });
    const results = mapOrdered(chunks, opts.inFlight ?? DEFAULT_IN_FLIGHT, async (plain) => {
      opts.signal?.throwIfAborted();
      const size = plain.length;
      if (!store) return { size, id: await pool.hash(plain), added: 0 };
      const { id, stored } = await pool.encode(plain);
      // Writes run inside the window too, so disk I/O overlaps hashing of later chunks.
      const key = id.toString('hex');
      let put = firstPut.get(key);
      if (put) {
        await put;
        return { size, id, added: -1 };
      }
      put = store.storeChunk(id, stored);
      firstPut.set(key, put);
      const added = (await put) ? stored.length : -1;
      return { size, id, added };
    });
    for await (const r of results) {
      sizesOut.push(r.size);
      ids.push(r.id);
      progress.bytes += r.size;
      progress.chunks++;
      if (r.added >= 0 && store) {
        progress.newChunks++;
        newStoredBytes += r.added;
      }
      opts.onProgress?.(progress);
    }
  } finally {
    if (!opts.pool) await pool.close();
  }
  const table = new ChunkTable(new Float64Array(sizesOut.length), Buffer.alloc(ids.length * CHUNK_ID_BYTES));
  let end = 0;
  for (let i = 0; i < sizesOut.length; i++) {
    end += sizesOut[i]!;
    table.ends[i] = end;
    table.ids.set(ids[i]!, i * CHUNK_ID_BYTES);
  }
  return {
    index: { flags: CAIBX_DEFAULT_FLAGS, sizes, table },
    bytes: progress.bytes,
    chunks: progress.chunks,
    newChunks: progress.newChunks,
    newStoredBytes,
  };
}
