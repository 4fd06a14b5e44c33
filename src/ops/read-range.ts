/**
 * Random access into a chunked stream: bytes [offset, offset + size) of the stream a ChunkTable
 * describes, fetched chunk by chunk from a store and verified. The basis of `bootfs cat` and, later,
 * of FUSE reads.
 */
import { RangeError as BootfsRangeError } from './range-error.js';
import type { ChunkTable } from '../index/chunk-table.js';
import type { ChunkStore } from '../store/types.js';
import { mapOrdered } from './ordered.js';

/** Yield the bytes of [offset, offset + size) in order; chunks are fetched up to `inFlight` at once. */
export async function* readRange(
  table: ChunkTable,
  store: ChunkStore,
  offset: number,
  size: number,
  opts: { inFlight?: number; signal?: AbortSignal } = {},
): AsyncGenerator<Buffer> {
  if (size === 0) return;
  const end = offset + size;
  if (offset < 0 || size < 0 || end > table.totalSize) {
    throw new BootfsRangeError(`range ${offset}+${size} is outside the data stream (${table.totalSize} bytes)`);
  }
  const first = table.findChunk(offset);
  const last = table.findChunk(end - 1);
  const indices = Array.from({ length: last - first + 1 }, (_, k) => first + k);
  const chunks = mapOrdered(indices, opts.inFlight ?? 8, async (i) => {
    opts.signal?.throwIfAborted();
    const plain = await store.getChunk(table.id(i), { size: table.size(i) });
    const start = table.start(i);
    return plain.subarray(Math.max(0, offset - start), Math.min(plain.length, end - start));
  });
  yield* chunks;
}
