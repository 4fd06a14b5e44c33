/**
 * One extract batch from a local store: consecutive chunks read, decoded and verified into one
 * buffer, then written with one positioned write. The same code runs in the pool's workers and,
 * for its share of the batches, on the main thread of `bootfs extract` (ops/extract.ts).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { CHUNK_ID_BYTES, decodeChunk } from '../chunk.js';
import { IoError } from '../errors.js';
import type { LocalStore } from '../store/local.js';

/**
 * Decode chunks `ids` (32 bytes each) of plain sizes `sizes` from `store` into `buf` back to back
 * (buf needs one byte of room past their total: see decompressInto). Returns the total.
 * Throws ChunkNotFoundError / ChunkCorruptError naming the chunk.
 */
export function decodeLocalBatch(store: LocalStore, ids: Uint8Array, sizes: readonly number[], buf: Buffer): number {
  let off = 0;
  for (let i = 0; i < sizes.length; i++) {
    const id = ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
    const size = sizes[i]!;
    decodeChunk(id, store.getStoredSyncScratch(id, size), store.location, { size, into: buf.subarray(off, off + size + 1) });
    off += size;
  }
  return off;
}

/** Write buf[0, len) at `offset` of the existing file `path`. */
export function writeAt(path: string, buf: Buffer, len: number, offset: number): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r+');
    for (let w = 0; w < len; ) w += writeSync(fd, buf, w, len - w, offset + w);
  } catch (err) {
    throw new IoError(`cannot write ${path}: ${(err as Error).message}`, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A buffer of at least `n` bytes, kept between batches of one thread. */
export class BatchBuffer {
  private buf = Buffer.allocUnsafeSlow(0);

  get(n: number): Buffer {
    if (this.buf.length < n) this.buf = Buffer.allocUnsafeSlow(n);
    return this.buf;
  }
}
