/**
 * Chunk stores, stacked by capability as desync does: a ChunkStore reads, a WriteStore also
 * stores, a PruneStore also lists and removes. Caches, routers and retrying stores are themselves
 * ChunkStores wrapping ChunkStores.
 *
 * IDs are 32 raw bytes. `getChunk` returns verified plain bytes; "missing" is always a
 * ChunkNotFoundError (routers branch on it) and bad bytes a ChunkCorruptError.
 */

export interface GetOptions {
  /** Exact plain size when the index knows it: bounds decompression and is checked. */
  size?: number;
  signal?: AbortSignal;
}

export interface ChunkStore {
  /** Human-readable location for messages, e.g. a directory or URL. */
  readonly location: string;
  /** The stored (compressed) bytes, unverified. Throws ChunkNotFoundError when absent. */
  getStored(id: Uint8Array, opts?: GetOptions): Promise<Buffer>;
  /** Verified plain bytes. Throws ChunkNotFoundError or ChunkCorruptError. */
  getChunk(id: Uint8Array, opts?: GetOptions): Promise<Buffer>;
  hasChunk(id: Uint8Array): Promise<boolean>;
  close(): Promise<void>;
}

export interface WriteStore extends ChunkStore {
  /**
   * Store a chunk in its stored form. The caller vouches that `stored` decodes to bytes whose
   * digest is `id` (it just computed both). Idempotent: an existing chunk is left alone and
   * `false` is returned; readers never observe a partial chunk.
   */
  storeChunk(id: Uint8Array, stored: Uint8Array): Promise<boolean>;
}

export interface StoredChunkInfo {
  id: string;
  /** Stored (compressed) size in bytes. */
  size: number;
  mtimeMs: number;
}

export interface PruneStore extends WriteStore {
  /** Every chunk in the store (hex IDs), in no particular order. In-flight temp files are never listed. */
  listChunks(): AsyncIterable<StoredChunkInfo>;
  /** Remove a chunk; removing an absent chunk is not an error. */
  removeChunk(id: Uint8Array): Promise<void>;
}

/** A chunk as fetched by a reader: the stored form (what a cache keeps) and its verified plain bytes. */
export interface Fetched {
  stored: Buffer;
  plain: Buffer;
}

/**
 * Decompress and verify a stored chunk (throws ChunkCorruptError). `decodeChunk` from chunk.ts does
 * it on the calling thread; a worker pool's `decode` does the same off it.
 */
export type ChunkDecoder = (id: Uint8Array, stored: Uint8Array, location: string, opts: { size?: number; maxSize?: number }) => Buffer | Promise<Buffer>;
