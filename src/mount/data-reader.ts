/**
 * Random reads from the data stream an index describes, as a mount needs them: offset → chunks
 * (binary search in the chunk table) → a bounded in-memory LRU of plain chunks → the chunk source
 * (cache directory, then the stores). Concurrent requests for one chunk share one fetch, and reads
 * that continue where the previous one on the same file ended start fetching the next chunks
 * ahead of time (readahead, growing while the reads stay sequential).
 */
import type { ChunkTable } from '../index/chunk-table.js';

/** Where plain chunks come from: verified bytes of chunk `id` with plain size `size`. */
export type ChunkSource = (id: Uint8Array, size: number) => Promise<Buffer>;

export interface DataReaderOptions {
  /** Bytes of plain chunks kept in memory (default 64 MiB). */
  memoryBytes?: number;
  /** Most chunks fetched ahead of a sequential reader (default 8; 0 turns readahead off). */
  readaheadChunks?: number;
}

export interface DataReaderCounters {
  /** Chunk lookups answered from memory. */
  memoryHits: number;
  /** Chunks requested from the source (cache directory or stores). */
  sourceReads: number;
  /** Of those, requested ahead of a reader. */
  readaheads: number;
}

interface Stream {
  /** Where the last read ended (data-stream offset). */
  next: number;
  /** Current readahead window in chunks. */
  window: number;
}

export class DataReader {
  readonly counters: DataReaderCounters = { memoryHits: 0, sourceReads: 0, readaheads: 0 };
  private readonly lru = new Map<number, Buffer>();
  private lruBytes = 0;
  private readonly inflight = new Map<number, Promise<Buffer>>();
  private readonly streams = new Map<number, Stream>();
  /** The data stream as a whole: reads that walk it in order across files (see noteAccess). */
  private walk = { lastChunk: -2, window: 0 };
  private readonly memoryBytes: number;
  private readonly readahead: number;

  constructor(
    readonly table: ChunkTable,
    private readonly source: ChunkSource,
    opts: DataReaderOptions = {},
  ) {
    this.memoryBytes = opts.memoryBytes ?? 64 * 1024 * 1024;
    this.readahead = opts.readaheadChunks ?? 8;
  }

  /**
   * Bytes [offset, offset + size) of the data stream, clipped to its end. `stream` names the reader
   * (e.g. the inode) so sequential access can be recognised per file.
   */
  async read(offset: number, size: number, stream?: number): Promise<Buffer> {
    const end = Math.min(offset + size, this.table.totalSize);
    if (size <= 0 || offset >= end) return Buffer.alloc(0);
    const first = this.table.findChunk(offset);
    const last = this.table.findChunk(end - 1);
    if (stream !== undefined) this.noteAccess(stream, offset, end, first, last);
    if (first === last) {
      const plain = await this.chunk(first);
      const start = this.table.start(first);
      return plain.subarray(offset - start, end - start);
    }
    const parts = await Promise.all(Array.from({ length: last - first + 1 }, (_, k) => this.chunk(first + k)));
    const out = Buffer.allocUnsafe(end - offset);
    let pos = 0;
    parts.forEach((plain, k) => {
      const i = first + k;
      const start = this.table.start(i);
      const from = Math.max(0, offset - start);
      const to = Math.min(plain.length, end - start);
      pos += plain.copy(out, pos, from, to);
    });
    return out;
  }

  /** Resolves when no chunk fetch is under way (their results or errors are dropped). */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight.values()]);
  }

  /** Forget a stream's sequential state (e.g. on close). */
  endStream(stream: number): void {
    this.streams.delete(stream);
  }

  /** Plain bytes of chunk `i`: memory, a fetch already under way, or the source. */
  chunk(i: number, ahead = false): Promise<Buffer> {
    const hit = this.lru.get(i);
    if (hit) {
      this.lru.delete(i);
      this.lru.set(i, hit);
      this.counters.memoryHits++;
      return Promise.resolve(hit);
    }
    const pending = this.inflight.get(i);
    if (pending) return pending;
    this.counters.sourceReads++;
    if (ahead) this.counters.readaheads++;
    const p = this.source(this.table.id(i), this.table.size(i)).then(
      (plain) => {
        this.inflight.delete(i);
        this.remember(i, plain);
        return plain;
      },
      (err: unknown) => {
        this.inflight.delete(i);
        throw err;
      },
    );
    this.inflight.set(i, p);
    return p;
  }

  private remember(i: number, plain: Buffer): void {
    if (plain.length > this.memoryBytes) return;
    this.lru.set(i, plain);
    this.lruBytes += plain.length;
    while (this.lruBytes > this.memoryBytes) {
      const [oldest, buf] = this.lru.entries().next().value as [number, Buffer];
      this.lru.delete(oldest);
      this.lruBytes -= buf.length;
    }
  }

  /**
   * Readahead decisions. Two patterns count as sequential: one file read from start to end (a
   * stream whose reads continue where the last one ended), and the data stream walked in order
   * across files — the stream is laid out in path order, the order `find`, `cp -a`, `tar` and
   * most boots visit files in, so reading many small files one after another is a walk too.
   * The window starts at one chunk and doubles while the pattern holds.
   */
  private noteAccess(stream: number, offset: number, end: number, first: number, last: number): void {
    if (this.readahead === 0) return;
    const w = this.walk;
    const inOrder = first >= w.lastChunk && first <= w.lastChunk + 1;
    if (first !== w.lastChunk || last !== w.lastChunk) {
      w.window = inOrder ? Math.min(this.readahead, Math.max(1, w.window * 2)) : 0;
    }
    w.lastChunk = Math.max(last, inOrder ? w.lastChunk : last);
    let s = this.streams.get(stream);
    if (!s || s.next !== offset) {
      // A new or repositioned reader: no per-file readahead until it proves sequential.
      s = { next: end, window: 0 };
      this.streams.set(stream, s);
      if (this.streams.size > 4096) this.streams.delete(this.streams.keys().next().value as number);
    } else {
      s.next = end;
      s.window = Math.min(this.readahead, Math.max(1, s.window * 2));
    }
    const window = Math.max(w.window, s.window);
    for (let k = 1; k <= window && last + k < this.table.count; k++) {
      const i = last + k;
      if (this.lru.has(i) || this.inflight.has(i)) continue;
      // Errors surface when (and if) the reader gets there; a failed readahead is simply dropped.
      this.chunk(i, true).catch(() => undefined);
    }
  }
}
