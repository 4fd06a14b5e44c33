/**
 * Random reads from the data stream an index describes, as a mount needs them: offset → chunks
 * (binary search in the chunk table) → a bounded in-memory LRU of plain chunks → the chunk source
 * (cache directory, then the stores). Concurrent requests for one chunk share one fetch, and reads
 * that continue where the previous one on the same file ended start fetching the next chunks
 * ahead of time (readahead, growing while the reads stay sequential).
 */
import { CHUNK_ID_BYTES } from '../chunk.js';
import type { ChunkTable } from '../index/chunk-table.js';

/** Where plain chunks come from: verified bytes of chunk `id` with plain size `size`. */
export type ChunkSource = (id: Uint8Array, size: number) => Promise<Buffer>;

/**
 * A fast path for several chunks at once (`ids`: 32 bytes each, back to back): verified bytes of
 * the ones it can give cheaply (cache hits), undefined for the others, which then go through the
 * ChunkSource one by one. Must not reject for a single chunk's sake.
 */
export type BatchSource = (ids: Uint8Array, sizes: number[]) => Promise<(Buffer | undefined)[]>;

export interface DataReaderOptions {
  /** Bytes of plain chunks kept in memory (default 64 MiB). */
  memoryBytes?: number;
  /** Most chunks fetched ahead of a sequential reader (default 8; 0 turns readahead off); a walk across files gets at most 16. */
  readaheadChunks?: number;
  /** Chunks needed together (a read, a readahead window) are asked of it first, in groups. */
  batchSource?: BatchSource;
}

/** Most chunks, and plain bytes, in one BatchSource call: one worker job each, short enough to spread over the workers. */
const BATCH_CHUNKS = 8;
const BATCH_BYTES = 512 * 1024;
/** Most chunks read ahead of a walk across files (see noteAccess). */
const WALK_READAHEAD = 16;

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
  private readonly batchSource: BatchSource | undefined;

  constructor(
    readonly table: ChunkTable,
    private readonly source: ChunkSource,
    opts: DataReaderOptions = {},
  ) {
    this.memoryBytes = opts.memoryBytes ?? 64 * 1024 * 1024;
    this.readahead = opts.readaheadChunks ?? 8;
    this.batchSource = opts.batchSource;
  }

  /**
   * Bytes [offset, offset + size) of the data stream, clipped to its end. `stream` names the reader
   * (e.g. the inode) so sequential access can be recognised per file; its readahead stops at
   * `streamEnd` (the file's end in the data stream), when given.
   */
  async read(offset: number, size: number, stream?: number, streamEnd?: number): Promise<Buffer> {
    const parts = await this.readParts(offset, size, stream, streamEnd);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /**
   * Like read, but as views of the cached chunks, in order, without copying them together: a
   * FUSE reply writes them out with one writev. Views stay valid (chunks are never modified).
   */
  async readParts(offset: number, size: number, stream?: number, streamEnd?: number): Promise<Buffer[]> {
    const end = Math.min(offset + size, this.table.totalSize);
    if (size <= 0 || offset >= end) return [Buffer.alloc(0)];
    const first = this.table.findChunk(offset);
    const last = this.table.findChunk(end - 1);
    const missing: number[] = [];
    for (let i = first; i <= last; i++) if (!this.lru.has(i) && !this.inflight.has(i)) missing.push(i);
    if (missing.length > 0) this.fetch(missing, false);
    if (stream !== undefined) this.noteAccess(stream, offset, end, first, last, streamEnd ?? this.table.totalSize);
    if (first === last) {
      const plain = await this.chunk(first);
      const start = this.table.start(first);
      return [plain.subarray(offset - start, end - start)];
    }
    const parts = await Promise.all(Array.from({ length: last - first + 1 }, (_, k) => this.chunk(first + k)));
    return parts.map((plain, k) => {
      const start = this.table.start(first + k);
      return plain.subarray(Math.max(0, offset - start), Math.min(plain.length, end - start));
    });
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
    this.fetch([i], ahead);
    return this.inflight.get(i)!;
  }

  /**
   * Start fetching chunks `indices` (ascending; none in memory or under way). With a batchSource,
   * runs of them go there together and only what it lacks goes to the source one by one.
   */
  private fetch(indices: number[], ahead: boolean): void {
    this.counters.sourceReads += indices.length;
    if (ahead) this.counters.readaheads += indices.length;
    const { table } = this;
    const single = (i: number): Promise<Buffer> => this.source(table.id(i), table.size(i));
    const batch = this.batchSource;
    if (!batch) {
      for (const i of indices) this.track(i, single(i));
      return;
    }
    for (let s = 0; s < indices.length; ) {
      let e = s + 1;
      let bytes = table.size(indices[s]!);
      while (e < indices.length && e - s < BATCH_CHUNKS && bytes + table.size(indices[e]!) <= BATCH_BYTES) bytes += table.size(indices[e++]!);
      const group = indices.slice(s, e);
      const ids = new Uint8Array(group.length * CHUNK_ID_BYTES);
      group.forEach((i, k) => ids.set(table.id(i), k * CHUNK_ID_BYTES));
      const hits = batch(ids, group.map((i) => table.size(i))).catch(() => group.map(() => undefined));
      group.forEach((i, k) => this.track(i, hits.then((h) => h[k] ?? single(i))));
      s = e;
    }
  }

  /** Record `i` as under way until `p` settles, then keep its bytes in memory. */
  private track(i: number, p: Promise<Buffer>): void {
    const q = p.then(
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
    // Readahead nobody waits for yet: its error surfaces when (and if) a reader gets there.
    q.catch(() => undefined);
    this.inflight.set(i, q);
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
   * Each window starts at one chunk and doubles while its pattern holds. A file's window reaches
   * the full readahead but stops at the file's end (`streamEnd`); the walk's, which crosses
   * files, stays at most WALK_READAHEAD chunks, so a boot that visits files in order does not
   * pull in much it never reads.
   */
  private noteAccess(stream: number, offset: number, end: number, first: number, last: number, streamEnd: number): void {
    if (this.readahead === 0) return;
    const w = this.walk;
    const inOrder = first >= w.lastChunk && first <= w.lastChunk + 1;
    if (first !== w.lastChunk || last !== w.lastChunk) {
      w.window = inOrder ? Math.min(this.readahead, WALK_READAHEAD, Math.max(1, w.window * 2)) : 0;
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
    // The file's chunks ahead end with the one holding its last byte.
    const fileLast = streamEnd > end ? this.table.findChunk(Math.min(streamEnd, this.table.totalSize) - 1) : last;
    const until = Math.min(this.table.count - 1, Math.max(last + w.window, Math.min(last + s.window, fileLast)));
    const ahead: number[] = [];
    for (let i = last + 1; i <= until; i++) if (!this.lru.has(i) && !this.inflight.has(i)) ahead.push(i);
    if (ahead.length > 0) this.fetch(ahead, true);
  }
}
