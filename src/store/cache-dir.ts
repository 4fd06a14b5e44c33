/**
 * The node cache directory: one casync-layout chunk directory (`<dir>/<4hex>/<id>.cacnk`, zstd
 * stored form, written by LocalStore) shared by every process and container on a node. Reads are
 * verified; a miss is fetched by exactly one process, which holds `<shard>/<id>.cacnk.lock` and
 * heartbeats its mtime while the others poll for the chunk. The protocol is in docs/cache.md.
 */
import { constants, type Stats } from 'node:fs';
import { lstat, open, stat, unlink, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { CHUNK_ID_BYTES, decodeChunk, DEFAULT_MAX_DECODED_SIZE, hexToId, idToHex } from '../chunk.js';
import { type BootfsError, ChunkCorruptError, errnoCode, IoError, UsageError } from '../errors.js';
import { FetchLocks } from './cache-lock.js';
import { LocalStore } from './local.js';
import type { ChunkDecoder, Fetched, StoredChunkInfo } from './types.js';

export type { Fetched };

export interface CacheDirOptions {
  /** Bytes of stored chunks to keep; writes beyond it start a background gc. Default: unbounded. */
  maxSize?: number;
  /** A lock whose heartbeat (mtime) is older than this is stale and may be broken. Default 3000 ms. */
  lockStaleMs?: number;
  /** How often a lock holder refreshes its lock's mtime. Default 500 ms; at most lockStaleMs / 2. */
  heartbeatMs?: number;
  /** Longest poll interval while waiting on a peer (polling starts at 2 ms and doubles). Default 25 ms. */
  pollMs?: number;
  /**
   * Told about problems the cache absorbs instead of failing the read: a corrupt entry removed, a
   * write that failed (ENOSPC, EACCES, …), a failed background gc. For logs and metrics.
   */
  onError?: (err: BootfsError) => void;
  /** Decompress and verify entries (default: decodeChunk on this thread; a mount passes its worker pool's). */
  decode?: ChunkDecoder;
  /**
   * A fast path for hits: read, decompress and verify entry `file` in one step (a worker pool's
   * cacheRead). Undefined = absent; a rejection sends the entry through the careful path, which
   * removes it if it really is bad. It must refresh a hit's recency (mtime) itself, as load() does.
   */
  readEntry?: (file: string, id: Uint8Array, size: number | undefined) => Promise<Buffer | undefined>;
  /**
   * readEntry for several entries at once (`ids`: 32 bytes each): the clean hits, undefined for
   * the rest (a worker pool's cacheReadMany). Used by getHits.
   */
  readEntries?: (files: string[], ids: Uint8Array, sizes: number[]) => Promise<(Buffer | undefined)[]>;
}

/** Per-process counters (this CacheDir only). */
export interface CacheCounters {
  /** getOrFetch/get calls served from the cache without waiting. */
  hits: number;
  /** getOrFetch/get calls that did not find the chunk at first. */
  misses: number;
  /** Entries that failed verification and were removed. */
  corrupt: number;
  /** Calls of a caller's fetch function. */
  fetches: number;
  /** Misses that waited for another process's fetch. */
  peerWaits: number;
  staleLocksBroken: number;
  evictions: number;
  /** Stored bytes of chunks this process wrote. */
  bytesWritten: number;
  /** I/O errors absorbed (see CacheDirOptions.onError): the read was served without the cache. */
  errors: number;
}

export { LOCK_SUFFIX } from './cache-lock.js';
/** A temp file this old is abandoned (a writer killed mid-write): no chunk write takes an hour. */
export const CACHE_STALE_TEMP_MS = 60 * 60 * 1000;
/** A hit refreshes the chunk's mtime (its LRU age) only when older than this: one write per minute at most. */
export const TOUCH_INTERVAL_MS = 60 * 1000;
/** Background gc evicts down to this fraction of maxSize, so it does not rerun on the next write. */
const GC_LOW_WATER = 0.9;
const FIRST_POLL_MS = 2;
// O_NOFOLLOW: a symlink planted in a shared directory is never followed; O_NONBLOCK: nor does a FIFO hang us.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

interface Flight {
  promise: Promise<Buffer>;
  /** Aborted when every caller that passed a signal has aborted and no caller without one joined. */
  controller: AbortController;
  callers: number;
}

export class CacheDir {
  readonly location: string;
  readonly counters: CacheCounters = { hits: 0, misses: 0, corrupt: 0, fetches: 0, peerWaits: 0, staleLocksBroken: 0, evictions: 0, bytesWritten: 0, errors: 0 };
  private readonly flights = new Map<string, Flight>();
  private readonly locks: FetchLocks;
  /** Stored bytes in the directory as of the last scan plus this process's writes since; unknown until a gc. */
  private trackedBytes: number | undefined;
  private gcChain: Promise<unknown> = Promise.resolve();
  private backgroundGc: Promise<void> | undefined;
  private gcAgain = false;
  private closed = false;

  private constructor(
    private readonly store: LocalStore,
    private readonly opts: Required<Omit<CacheDirOptions, 'maxSize' | 'onError' | 'readEntry' | 'readEntries'>> & Pick<CacheDirOptions, 'maxSize' | 'onError' | 'readEntry' | 'readEntries'>,
  ) {
    this.location = store.location;
    this.locks = new FetchLocks(store.location, opts);
  }

  /** Open (creating it if needed) a cache directory. Refuses contradictory options. */
  static async open(dir: string, opts: CacheDirOptions = {}): Promise<CacheDir> {
    const resolved = { ...opts, lockStaleMs: opts.lockStaleMs ?? 3000, heartbeatMs: opts.heartbeatMs ?? 500, pollMs: opts.pollMs ?? 25, decode: opts.decode ?? decodeChunk };
    for (const field of ['lockStaleMs', 'heartbeatMs', 'pollMs'] as const) {
      if (!(resolved[field] > 0) || !Number.isFinite(resolved[field])) throw new UsageError(`cache option ${field} must be a positive number of milliseconds, not ${resolved[field]}`);
    }
    if (resolved.maxSize !== undefined && !(resolved.maxSize >= 0 && Number.isSafeInteger(resolved.maxSize))) {
      throw new UsageError(`cache option maxSize must be a whole number of bytes, not ${resolved.maxSize}`);
    }
    // A holder that misses one beat must not look dead yet.
    if (resolved.heartbeatMs * 2 > resolved.lockStaleMs) {
      throw new UsageError(`cache option heartbeatMs (${resolved.heartbeatMs}) must be at most half of lockStaleMs (${resolved.lockStaleMs})`);
    }
    return new CacheDir(await LocalStore.open(dir, { create: true }), resolved);
  }

  /** Verified plain bytes, or undefined when absent. A corrupt entry is removed and reported as absent. */
  async get(id: Uint8Array, size?: number): Promise<Buffer | undefined> {
    const plain = await this.load(id, size);
    if (plain) this.counters.hits++;
    else this.counters.misses++;
    return plain;
  }

  /**
   * The chunks among `ids` (CHUNK_ID_BYTES each, plain sizes `sizes`) that the cache holds in good
   * shape, read in one step (readEntries: one worker job for a readahead window); undefined for
   * the others, which the caller sends through getOrFetch (that takes the careful path and counts
   * the miss). Never throws: a failed read is just no hit.
   */
  async getHits(ids: Uint8Array, sizes: number[]): Promise<(Buffer | undefined)[]> {
    const entry = (i: number): Uint8Array => ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
    let hits: (Buffer | undefined)[];
    if (this.opts.readEntries) {
      const files = sizes.map((_, i) => this.store.chunkPath(entry(i)));
      hits = await this.opts.readEntries(files, ids, sizes).catch(() => sizes.map(() => undefined));
    } else {
      hits = await Promise.all(sizes.map((size, i) => this.load(entry(i), size).catch(() => undefined)));
    }
    for (const h of hits) if (h) this.counters.hits++;
    return hits;
  }

  /**
   * A hit, or the chunk fetched by exactly one caller in this process and one process on the node,
   * written to the cache, and returned. `signal` aborts this caller's wait (not a running fetch).
   */
  async getOrFetch(id: Uint8Array, size: number | undefined, fetch: () => Promise<Fetched>, signal?: AbortSignal): Promise<Buffer> {
    signal?.throwIfAborted();
    const hex = idToHex(id);
    let flight = this.live(hex);
    if (!flight) {
      let plain: Buffer | undefined;
      try {
        plain = await this.load(id, size);
      } catch (err) {
        // An unreadable cache must not fail the read: fetch without it.
        this.absorb(err as BootfsError);
        this.counters.misses++;
        this.counters.fetches++;
        return (await fetch()).plain;
      }
      if (plain) {
        this.counters.hits++;
        return plain;
      }
      flight = this.live(hex); // another caller may have started one while we read
    }
    this.counters.misses++;
    if (!flight) {
      const controller = new AbortController();
      const started: Flight = { controller, callers: 0, promise: undefined as unknown as Promise<Buffer> };
      started.promise = this.fly(id, hex, size, fetch, controller.signal).finally(() => {
        if (this.flights.get(hex) === started) this.flights.delete(hex);
      });
      started.promise.catch(() => undefined); // callers that aborted no longer listen
      this.flights.set(hex, started);
      flight = started;
    }
    return this.join(flight, signal);
  }

  /**
   * Evict least-recently-used chunks (oldest mtime first) until at most `maxSize` stored bytes
   * remain; remove temp files older than an hour and stale locks. Live writers' files are kept.
   */
  async gc(maxSize: number): Promise<{ removed: number; freedBytes: number; chunks: number; bytes: number }> {
    return this.serialGc(() => this.sweep(maxSize, maxSize));
  }

  /** Counts of chunks, stored bytes, mtimes, lock files and temp files in the directory. */
  async stats(): Promise<{ chunks: number; bytes: number; oldestMs?: number; newestMs?: number; locks: number; tempFiles: number }> {
    let chunks = 0;
    let bytes = 0;
    let oldestMs: number | undefined;
    let newestMs: number | undefined;
    for await (const c of this.store.listChunks()) {
      chunks++;
      bytes += c.size;
      oldestMs = Math.min(oldestMs ?? c.mtimeMs, c.mtimeMs);
      newestMs = Math.max(newestMs ?? c.mtimeMs, c.mtimeMs);
    }
    let locks = 0;
    for await (const _ of this.locks.list()) locks++;
    let tempFiles = 0;
    for await (const _ of this.store.listTempFiles()) tempFiles++;
    return { chunks, bytes, ...(oldestMs === undefined ? {} : { oldestMs, newestMs }), locks, tempFiles };
  }

  /** Stop heartbeats and background gc. Fetches still running finish and release their locks. */
  async close(): Promise<void> {
    this.closed = true;
    this.locks.stopHeartbeats();
    await this.backgroundGc;
  }

  // ---------------------------------------------------------------------------------------------
  // Reading

  /** Read and verify an entry; undefined when absent or corrupt (a corrupt one is removed). */
  private async load(id: Uint8Array, size: number | undefined): Promise<Buffer | undefined> {
    const file = this.store.chunkPath(id);
    if (this.opts.readEntry) {
      try {
        return await this.opts.readEntry(file, id, size);
      } catch {
        // Not a good copy (or unreadable): the careful path below decides and cleans up.
      }
    }
    let fh: FileHandle;
    try {
      fh = await open(file, READ_FLAGS);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      if (code === 'ELOOP') return this.discard(id, file, undefined, 'is a symbolic link');
      throw new IoError(`cannot read chunk ${idToHex(id)} from cache directory ${this.location}: ${(err as Error).message}`, err);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) return await this.discard(id, file, st, 'is not a regular file');
      // A stored form exceeds its plain size only by the codec's per-block overhead (< 1/64 plus a header).
      const plainBound = size ?? DEFAULT_MAX_DECODED_SIZE;
      if (st.size > plainBound + plainBound / 64 + 4096) return await this.discard(id, file, st, `is ${st.size} bytes, too big for its chunk`);
      // One read of the size fstat gave (readFile would fstat and loop again); a short read is a
      // truncated entry and fails verification.
      const stored = Buffer.allocUnsafe(st.size);
      const { bytesRead } = await fh.read(stored, 0, st.size, 0);
      let plain: Buffer;
      try {
        plain = await this.opts.decode(id, stored.subarray(0, bytesRead), this.location, size === undefined ? {} : { size });
      } catch (err) {
        if (err instanceof ChunkCorruptError) return await this.discard(id, file, st, err.reason);
        throw err;
      }
      const now = Date.now();
      if (now - st.mtimeMs > TOUCH_INTERVAL_MS) await fh.utimes(now / 1000, now / 1000).catch(() => undefined);
      return plain;
    } catch (err) {
      if (err instanceof ChunkCorruptError || err instanceof IoError) throw err;
      throw new IoError(`cannot read chunk ${idToHex(id)} from cache directory ${this.location}: ${(err as Error).message}`, err);
    } finally {
      await fh.close();
    }
  }

  /** load(), with a read error (EIO, EACCES) counted and reported as a miss: the fetch still serves the read. */
  private async loadOrAbsorb(id: Uint8Array, size: number | undefined): Promise<Buffer | undefined> {
    try {
      return await this.load(id, size);
    } catch (err) {
      this.absorb(err as BootfsError);
      return undefined;
    }
  }

  /**
   * Remove a bad entry, unless it was replaced since we looked (a peer removed it and stored a good
   * copy): deleting that one would only cost a refetch, but there is no reason to.
   */
  private async discard(id: Uint8Array, file: string, seen: Stats | undefined, reason: string): Promise<undefined> {
    this.counters.corrupt++;
    this.opts.onError?.(new ChunkCorruptError(idToHex(id), this.location, `${reason}; removed, it will be fetched again`));
    const now = await lstat(file).catch(() => undefined);
    if (now && (!seen || (now.ino === seen.ino && now.dev === seen.dev))) await this.store.removeChunk(id);
    return undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Single flight

  /** The running flight for a chunk, unless all its callers have abandoned it. */
  private live(hex: string): Flight | undefined {
    const flight = this.flights.get(hex);
    return flight && !flight.controller.signal.aborted ? flight : undefined;
  }

  private join(flight: Flight, signal: AbortSignal | undefined): Promise<Buffer> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    flight.callers++;
    if (!signal) return flight.promise;
    return new Promise<Buffer>((resolve, reject) => {
      const onAbort = () => {
        if (--flight.callers === 0) flight.controller.abort(signal.reason);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise
        .then(resolve, reject)
        .finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** One process-wide miss: take the lock and fetch, or wait for the holder; repeat if it fails. */
  private async fly(id: Uint8Array, hex: string, size: number | undefined, fetch: () => Promise<Fetched>, signal: AbortSignal): Promise<Buffer> {
    let waited = false;
    for (;;) {
      const lock = await this.locks.tryLock(hex, (err) => this.absorb(new IoError(`cannot lock chunk ${hex} in cache directory ${this.location}: ${(err as Error).message}; fetching without the cache`, err)));
      if (lock === 'unavailable') {
        this.counters.fetches++;
        return (await fetch()).plain;
      }
      if (lock !== 'busy') {
        try {
          // The previous holder may have stored it between our read and our lock.
          const cached = await this.loadOrAbsorb(id, size);
          if (cached) return cached;
          this.counters.fetches++;
          const fetched = await fetch();
          await this.save(id, fetched.stored);
          return fetched.plain;
        } finally {
          await this.locks.release(lock);
        }
      }
      if (!waited) this.counters.peerWaits++;
      waited = true;
      if (await this.waitForPeer(id, hex, signal)) {
        const cached = await this.loadOrAbsorb(id, size);
        if (cached) return cached;
      }
      // The holder failed, died or stored a bad copy (now removed): compete for the lock again.
    }
  }

  /**
   * Poll (2 ms doubling to pollMs) until the chunk exists (true), or the lock is gone or was broken
   * as stale (false: compete again).
   */
  private async waitForPeer(id: Uint8Array, hex: string, signal: AbortSignal): Promise<boolean> {
    const file = this.locks.path(hex);
    for (let delay = FIRST_POLL_MS; ; delay = Math.min(delay * 2, this.opts.pollMs)) {
      signal.throwIfAborted();
      // Chunk before lock: a holder renames its chunk into place before it removes its lock.
      if (await this.store.hasChunk(id)) return true;
      const st = await lstat(file).catch(() => undefined);
      if (!st) return false;
      if (Date.now() - st.mtimeMs > this.opts.lockStaleMs) {
        if (await this.locks.breakStale(hex)) this.counters.staleLocksBroken++;
        return false;
      }
      await sleep(delay, undefined, { signal });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Writing and eviction

  /** Store atomically; a failure (ENOSPC, EACCES, …) is absorbed: the caller has the bytes anyway. */
  private async save(id: Uint8Array, stored: Buffer): Promise<void> {
    let wrote: boolean;
    try {
      wrote = await this.store.storeChunk(id, stored);
    } catch (err) {
      this.absorb(err as BootfsError); // IoError naming the chunk and directory
      return;
    }
    if (!wrote) return;
    this.counters.bytesWritten += stored.length;
    if (this.trackedBytes !== undefined) this.trackedBytes += stored.length;
    const max = this.opts.maxSize;
    // Unknown size: the first gc doubles as the initial scan.
    if (max !== undefined && (this.trackedBytes === undefined || this.trackedBytes > max)) this.startBackgroundGc(max);
  }

  /** One background gc at a time; a write that pushes the size over during one asks for another. */
  private startBackgroundGc(max: number): void {
    if (this.closed) return;
    if (this.backgroundGc) {
      this.gcAgain = true;
      return;
    }
    this.backgroundGc = (async () => {
      do {
        this.gcAgain = false;
        try {
          await this.serialGc(() => this.sweep(max, Math.floor(max * GC_LOW_WATER)));
        } catch (err) {
          this.absorb(err instanceof IoError ? err : new IoError(`gc of cache directory ${this.location} failed: ${(err as Error).message}`, err));
          return;
        }
      } while (this.gcAgain && (this.trackedBytes ?? 0) > max);
    })().finally(() => {
      this.backgroundGc = undefined;
    });
  }

  private serialGc<T>(job: () => Promise<T>): Promise<T> {
    const run = this.gcChain.then(job, job);
    this.gcChain = run.catch(() => undefined);
    return run;
  }

  /** If stored bytes exceed `limit`, evict oldest-first down to `target`; clear stale temps and locks. */
  private async sweep(limit: number, target: number): Promise<{ removed: number; freedBytes: number; chunks: number; bytes: number }> {
    const writtenBefore = this.counters.bytesWritten;
    const all: StoredChunkInfo[] = [];
    let bytes = 0;
    for await (const c of this.store.listChunks()) {
      all.push(c);
      bytes += c.size;
    }
    let removed = 0;
    let freedBytes = 0;
    let vanished = 0;
    if (bytes > limit) {
      all.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.id < b.id ? -1 : 1));
      for (const c of all) {
        if (bytes <= target) break;
        const id = hexToId(c.id)!;
        // Touched (hit) or rewritten since the listing: no longer among the oldest.
        const now = await stat(this.store.chunkPath(id)).catch(() => undefined);
        if (!now) {
          bytes -= c.size; // removed by a peer's gc
          vanished++;
          continue;
        }
        if (now.mtimeMs > c.mtimeMs) continue;
        await this.store.removeChunk(id);
        removed++;
        freedBytes += c.size;
        bytes -= c.size;
        this.counters.evictions++;
      }
    }
    const now = Date.now();
    for await (const t of this.store.listTempFiles()) {
      if (now - t.mtimeMs > CACHE_STALE_TEMP_MS) await unlink(t.path).catch(() => undefined);
    }
    for await (const l of this.locks.list()) {
      if (now - l.mtimeMs > this.opts.lockStaleMs && (await this.locks.breakStale(l.hex))) this.counters.staleLocksBroken++;
    }
    this.trackedBytes = bytes + (this.counters.bytesWritten - writtenBefore);
    return { removed, freedBytes, chunks: all.length - removed - vanished, bytes };
  }

  private absorb(err: BootfsError): void {
    this.counters.errors++;
    this.opts.onError?.(err);
  }
}
