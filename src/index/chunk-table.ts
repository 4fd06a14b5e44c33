/**
 * A compact, random-access table of chunks: (end offset, 32-byte ID) pairs, exactly the item list of
 * a .caibx and of the bootfs index's data-stream table. End offsets are exclusive running sums.
 * Offsets are JS numbers (exact below 2^53 = 8 PiB, far above any image).
 */
import { CHUNK_ID_BYTES, idToHex } from '../chunk.js';

export class ChunkTable {
  /** Exclusive end offset of each chunk, strictly increasing. */
  readonly ends: Float64Array;
  /** Concatenated 32-byte IDs, `CHUNK_ID_BYTES * count` bytes. */
  readonly ids: Buffer;

  /** Takes ownership of `ends` and `ids`; callers validate monotonicity (decoders) or build it (writers). */
  constructor(ends: Float64Array, ids: Buffer) {
    if (ids.length !== ends.length * CHUNK_ID_BYTES) {
      throw new RangeError(`chunk table: ${ends.length} ends but ${ids.length} id bytes`);
    }
    this.ends = ends;
    this.ids = ids;
  }

  /** Build from a list of (size, id) in stream order. */
  static fromChunks(chunks: Iterable<{ size: number; id: Uint8Array }>): ChunkTable {
    const list = Array.from(chunks);
    const ends = new Float64Array(list.length);
    const ids = Buffer.alloc(list.length * CHUNK_ID_BYTES);
    let off = 0;
    list.forEach((c, i) => {
      off += c.size;
      ends[i] = off;
      ids.set(c.id, i * CHUNK_ID_BYTES);
    });
    return new ChunkTable(ends, ids);
  }

  get count(): number {
    return this.ends.length;
  }

  /** Length of the whole stream the table describes. */
  get totalSize(): number {
    return this.ends.length === 0 ? 0 : this.ends[this.ends.length - 1]!;
  }

  start(i: number): number {
    return i === 0 ? 0 : this.ends[i - 1]!;
  }

  end(i: number): number {
    return this.ends[i]!;
  }

  size(i: number): number {
    return this.end(i) - this.start(i);
  }

  /** The 32-byte ID of chunk i (a view into the table; copy before keeping it past the table). */
  id(i: number): Buffer {
    return this.ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
  }

  hexId(i: number): string {
    return idToHex(this.id(i));
  }

  /** Index of the chunk holding stream byte `offset`, or -1 when offset is outside [0, totalSize). */
  findChunk(offset: number): number {
    if (offset < 0 || offset >= this.totalSize) return -1;
    let lo = 0;
    let hi = this.ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid]! > offset) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Largest chunk size in the table (0 when empty). */
  maxChunkSize(): number {
    let m = 0;
    for (let i = 0; i < this.count; i++) m = Math.max(m, this.size(i));
    return m;
  }
}
