/**
 * `bootfs mount`: an index, its stores and an optional cache directory put together into a FUSE
 * filesystem, with metrics. The read path is DataReader (memory) → CacheDir (node cache, single
 * flight across processes) → StoreRouter (stores in order, each with its own retries and
 * deadline); a read that cannot be served gets EIO and the mount stays up.
 */
import type { Server } from 'node:http';
import { BootfsError } from '../errors.js';
import { BootfsIndex } from '../index/bootfs-reader.js';
import { FuseSession } from '../fuse/session.js';
import { IndexFs } from '../fuse/index-fs.js';
import { CacheDir, TOUCH_INTERVAL_MS } from '../store/cache-dir.js';
import { StoreRouter } from '../store/router.js';
import type { ChunkDecoder, ChunkStore } from '../store/types.js';
import { sharedPool } from '../pool/chunk-pool.js';
import { DataReader } from './data-reader.js';
import { RequestCounters, serveMetrics, statsFileWriter, type MountStats } from './metrics.js';

export interface MountConfig {
  index: BootfsIndex;
  mountpoint: string;
  /** Stores in the order they are asked; at least one. Owned by the mount (closed with it). */
  stores: ChunkStore[];
  cacheDir?: string;
  cacheMaxSize?: number;
  allowOther?: boolean;
  /** In-memory chunk cache, bytes. */
  memoryBytes?: number;
  readaheadChunks?: number;
  /** The kernel's readahead for the mount, KiB (default: the kernel's, 128). */
  kernelReadaheadKb?: number;
  /** `[HOST:]PORT` for /metrics and /stats. */
  metricsAddr?: string;
  statsFile?: string;
  /** Problems absorbed by the mount (a store error, a corrupt copy, a read that got EIO). */
  log?: (message: string) => void;
}

export class Mount {
  private constructor(
    readonly session: FuseSession,
    private readonly parts: {
      requests: RequestCounters;
      reader: DataReader;
      router: StoreRouter;
      cache?: CacheDir;
      metrics?: Server;
      statsFile?: { stop(): Promise<void> };
      started: number;
    },
  ) {}

  static async start(cfg: MountConfig): Promise<Mount> {
    const log = cfg.log ?? (() => undefined);
    const maxChunkSize = cfg.index.sizes.max;
    // Decompression and hashing run on the worker pool: the main thread answers FUSE requests.
    const pool = sharedPool();
    const decode: ChunkDecoder = (id, stored, location, o) => pool.decode(id, stored, location, o);
    const router = new StoreRouter(cfg.stores, {
      maxChunkSize,
      decode,
      onError: (store, id, err) => log(`store ${store}: chunk ${id}: ${(err as Error).message}`),
    });
    const cache = cfg.cacheDir
      ? await CacheDir.open(cfg.cacheDir, {
          ...(cfg.cacheMaxSize !== undefined ? { maxSize: cfg.cacheMaxSize } : {}),
          decode,
          readEntry: (file, id, size) => pool.cacheRead(file, id, cfg.cacheDir!, { ...(size !== undefined ? { size } : { maxSize: maxChunkSize }), touchAfterMs: TOUCH_INTERVAL_MS }),
          readEntries: (files, ids, sizes) => pool.cacheReadMany(files, ids, sizes, cfg.cacheDir!, { touchAfterMs: TOUCH_INTERVAL_MS }),
          onError: (err) => log(`cache: ${err.message}`),
        })
      : undefined;
    const source = cache
      ? (id: Uint8Array, size: number) => cache.getOrFetch(id, size, () => router.fetch(id, size))
      : async (id: Uint8Array, size: number) => (await router.fetch(id, size)).plain;
    const reader = new DataReader(cfg.index.table, source, {
      ...(cache ? { batchSource: (ids: Uint8Array, sizes: number[]) => cache.getHits(ids, sizes) } : {}),
      ...(cfg.memoryBytes !== undefined ? { memoryBytes: cfg.memoryBytes } : {}),
      ...(cfg.readaheadChunks !== undefined ? { readaheadChunks: cfg.readaheadChunks } : {}),
    });
    const requests = new RequestCounters();
    const fs = new IndexFs(cfg.index, reader);
    const session = await FuseSession.mount(fs, cfg.mountpoint, {
      allowOther: !!cfg.allowOther,
      ...(cfg.kernelReadaheadKb !== undefined ? { readaheadKb: cfg.kernelReadaheadKb } : {}),
      fsname: 'bootfs',
      onRequest: (op, errno, bytes) => requests.record(op, errno, bytes),
      onError: (op, err) => log(`${op}: ${(err as Error).message} (answered EIO)`),
      onReplyError: (err) => log(`a reply to the kernel was not written: ${(err as Error).message}`),
    });
    const mount = new Mount(session, { requests, reader, router, ...(cache ? { cache } : {}), started: Date.now() });
    if (cfg.metricsAddr) mount.parts.metrics = await serveMetrics(cfg.metricsAddr, () => mount.stats());
    if (cfg.statsFile) mount.parts.statsFile = statsFileWriter(cfg.statsFile, () => mount.stats());
    return mount;
  }

  /**
   * Fetch the first chunk of the data stream through the whole read path: proves the stores (or
   * the cache) answer before anything depends on them. Rejects with the store's error after its
   * retries, naming the stores.
   */
  async probe(): Promise<void> {
    const { reader, router } = this.parts;
    if (reader.table.count === 0) return;
    try {
      await reader.chunk(0);
    } catch (err) {
      throw new BootfsError(`cannot fetch chunks from ${router.location}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** A consistent snapshot of every counter. */
  stats(): MountStats {
    const { requests, reader, router, cache } = this.parts;
    return {
      requests: { ...requests.requests },
      errors: { ...requests.errors },
      reads: requests.reads,
      bytesServed: requests.bytesServed,
      memoryHits: reader.counters.memoryHits,
      cacheHits: cache ? cache.counters.hits : 0,
      cacheMisses: cache ? cache.counters.misses : reader.counters.sourceReads,
      remoteFetches: router.counters.fetches,
      remoteBytes: router.counters.bytes,
      verifyFailures: router.counters.corrupt + (cache ? cache.counters.corrupt : 0),
      remoteErrors: router.counters.errors,
      readaheads: reader.counters.readaheads,
      uptimeSeconds: Math.round((Date.now() - this.parts.started) / 1000),
    };
  }

  /** Resolves when the filesystem goes away (unmounted from outside, or closed). */
  closed(): Promise<void> {
    return this.session.closed();
  }

  /** Unmount and release everything. */
  async close(): Promise<void> {
    await this.session.close();
    // Reads the kernel started (readahead) may still be fetching: let them finish before their
    // stores and cache go away, so nothing reports a closed store.
    // Bounded: a store that hangs must not hold up the exit beyond a moment.
    await Promise.race([this.parts.reader.settle(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    await this.parts.statsFile?.stop();
    this.parts.metrics?.close();
    await this.parts.cache?.close();
    await this.parts.router.close();
  }
}
