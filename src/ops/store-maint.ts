/** Store maintenance: verify (and repair), prune against a set of indexes, statistics. */
import { unlink } from 'node:fs/promises';
import { hexToId, idToHex } from '../chunk.js';
import { ChunkCorruptError } from '../errors.js';
import type { BlobIndex } from '../index/caibx.js';
import { ChunkPool } from '../pool/chunk-pool.js';
import type { LocalStore } from '../store/local.js';
import type { StoredChunkInfo } from '../store/types.js';
import { mapOrdered } from './ordered.js';

export interface VerifyProblem {
  id: string;
  reason: string;
  removed: boolean;
}

export interface VerifyResult {
  chunks: number;
  storedBytes: number;
  problems: VerifyProblem[];
}

/**
 * Decode and hash every chunk of `store`. With `repair`, chunks that fail are removed (as
 * `desync verify --repair` does) so the next writer or cache fill stores a good copy.
 */
export async function verifyStore(
  store: LocalStore,
  opts: { repair?: boolean; pool?: ChunkPool; onProgress?: (checked: number) => void } = {},
): Promise<VerifyResult> {
  const pool = opts.pool ?? new ChunkPool();
  const result: VerifyResult = { chunks: 0, storedBytes: 0, problems: [] };
  try {
    const checks = mapOrdered(store.listChunks(), 32, async (info: StoredChunkInfo) => {
      const id = hexToId(info.id)!;
      try {
        // Listing and reading are not atomic: a chunk pruned in between is simply gone, not bad.
        const stored = await store.getStored(id);
        await pool.decode(id, stored, store.location);
        return { info, reason: undefined };
      } catch (err) {
        if (err instanceof ChunkCorruptError) return { info, reason: err.reason };
        if ((err as { code?: string }).code === 'ERR_CHUNK_NOT_FOUND') return { info, reason: undefined };
        throw err;
      }
    });
    for await (const { info, reason } of checks) {
      result.chunks++;
      result.storedBytes += info.size;
      if (reason !== undefined) {
        let removed = false;
        if (opts.repair) {
          await store.removeChunk(hexToId(info.id)!);
          removed = true;
        }
        result.problems.push({ id: info.id, reason, removed });
      }
      opts.onProgress?.(result.chunks);
    }
  } finally {
    if (!opts.pool) await pool.close();
  }
  return result;
}

export interface PruneResult {
  kept: number;
  removed: number;
  removedBytes: number;
  /** Stale temp files (older than the temp grace period) removed. */
  removedTempFiles: number;
  /** Chunks kept only because they are younger than `minAgeMs`. */
  keptYoung: number;
  dryRun: boolean;
}

/** A writer's temp file this old is certainly abandoned (a crash): no chunk write takes a day. */
export const STALE_TEMP_MS = 24 * 60 * 60 * 1000;

/**
 * Remove every chunk not referenced by one of `keep`. Temp files of in-flight writers are never
 * touched (only those older than STALE_TEMP_MS). `minAgeMs` keeps recently written chunks, which
 * protects a `make` running concurrently whose index is not written yet.
 */
export async function pruneStore(
  store: LocalStore,
  keep: BlobIndex[],
  opts: { minAgeMs?: number; dryRun?: boolean; now?: number } = {},
): Promise<PruneResult> {
  const wanted = new Set<string>();
  for (const index of keep) for (let i = 0; i < index.table.count; i++) wanted.add(idToHex(index.table.id(i)));
  const now = opts.now ?? Date.now();
  const minAge = opts.minAgeMs ?? 0;
  const result: PruneResult = { kept: 0, removed: 0, removedBytes: 0, removedTempFiles: 0, keptYoung: 0, dryRun: !!opts.dryRun };
  for await (const info of store.listChunks()) {
    if (wanted.has(info.id)) {
      result.kept++;
    } else if (now - info.mtimeMs < minAge) {
      result.keptYoung++;
    } else {
      if (!opts.dryRun) await store.removeChunk(hexToId(info.id)!);
      result.removed++;
      result.removedBytes += info.size;
    }
  }
  for await (const tmp of store.listTempFiles()) {
    if (now - tmp.mtimeMs >= STALE_TEMP_MS) {
      if (!opts.dryRun) await unlink(tmp.path).catch(() => undefined);
      result.removedTempFiles++;
    }
  }
  return result;
}

export interface StoreStats {
  chunks: number;
  storedBytes: number;
  shards: number;
  tempFiles: number;
  smallestChunk: number;
  largestChunk: number;
}

/** Count chunks and stored bytes (no decoding; use verifyStore for integrity). */
export async function storeStats(store: LocalStore): Promise<StoreStats> {
  const stats: StoreStats = { chunks: 0, storedBytes: 0, shards: 0, tempFiles: 0, smallestChunk: 0, largestChunk: 0 };
  const shards = new Set<string>();
  for await (const info of store.listChunks()) {
    stats.chunks++;
    stats.storedBytes += info.size;
    shards.add(info.id.slice(0, 4));
    stats.smallestChunk = stats.chunks === 1 ? info.size : Math.min(stats.smallestChunk, info.size);
    stats.largestChunk = Math.max(stats.largestChunk, info.size);
  }
  for await (const _ of store.listTempFiles()) stats.tempFiles++;
  stats.shards = shards.size;
  return stats;
}
