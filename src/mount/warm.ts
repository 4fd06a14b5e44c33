/**
 * `bootfs cache warm`: fill a node cache directory with the chunks an index (or some paths of it)
 * needs, before any container reads them — what a DaemonSet runs. Shares the cache's single
 * flight, so warming while mounts read fetches nothing twice.
 */
import type { BootfsIndex } from '../index/bootfs-reader.js';
import { resolveFollow } from '../index/path-resolve.js';
import type { CacheDir } from '../store/cache-dir.js';
import type { StoreRouter } from '../store/router.js';
import { utf8ToByteString } from '../tree/types.js';
import { Semaphore } from '../util/limits.js';

export interface WarmResult {
  /** Distinct chunks the selection needs. */
  chunks: number;
  /** Plain bytes of those chunks. */
  bytes: number;
  /** Chunks that were already in the cache. */
  cached: number;
  /** Chunks fetched from the stores by this run. */
  fetched: number;
  /** Stored bytes received from the stores. */
  remoteBytes: number;
}

/**
 * The chunk numbers holding the data of `paths` (all files under a directory; symlinks followed),
 * in data-stream order, one per distinct chunk ID. No paths: every chunk of the index.
 */
export function chunksOf(index: BootfsIndex, paths: string[]): number[] {
  const table = index.table;
  const wanted = new Set<number>();
  if (paths.length === 0) for (let i = 0; i < table.count; i++) wanted.add(i);
  const addFile = (ino: number): void => {
    const ext = index.fileExtent(ino);
    if (ext.size === 0) return;
    const last = table.findChunk(ext.offset + ext.size - 1);
    for (let i = table.findChunk(ext.offset); i <= last; i++) wanted.add(i);
  };
  const visit = (ino: number): void => {
    const kind = index.kind(ino);
    if (kind === 'file') addFile(ino);
    else if (kind === 'dir') for (const e of index.readdir(ino)) visit(e.ino);
  };
  for (const p of paths) visit(resolveFollow(index, utf8ToByteString(p)));
  // One entry per distinct chunk: a chunk that occurs twice in the stream is fetched once.
  const seen = new Set<string>();
  return [...wanted].sort((a, b) => a - b).filter((i) => {
    const hex = table.hexId(i);
    if (seen.has(hex)) return false;
    seen.add(hex);
    return true;
  });
}

/** Make every chunk of `chunks` present in `cache`, `parallel` at a time. */
export async function warmCache(
  index: BootfsIndex,
  chunks: number[],
  cache: CacheDir,
  router: StoreRouter,
  opts: { parallel?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<WarmResult> {
  const table = index.table;
  const gate = new Semaphore(opts.parallel ?? 8);
  const fetchesBefore = router.counters.fetches;
  const bytesBefore = router.counters.bytes;
  let done = 0;
  let bytes = 0;
  // The first failure stops the run: chunks not started yet are skipped (a dead store would
  // otherwise cost its deadline once per chunk), the ones under way finish.
  let failure: unknown;
  await Promise.all(
    chunks.map(async (i) => {
      await gate.acquire();
      try {
        if (failure !== undefined) return;
        const id = table.id(i);
        const size = table.size(i);
        await cache.getOrFetch(id, size, () => router.fetch(id, size));
        bytes += size;
      } catch (err) {
        failure ??= err;
      } finally {
        gate.release();
        opts.onProgress?.(++done, chunks.length);
      }
    }),
  );
  if (failure !== undefined) throw failure;
  const fetched = router.counters.fetches - fetchesBefore;
  return { chunks: chunks.length, bytes, cached: chunks.length - fetched, fetched, remoteBytes: router.counters.bytes - bytesBefore };
}
