/** The benchmark's scratch directory (tmpfs when possible) and store measurements. */
import { mkdtemp, readdir, stat, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** statfs f_type of tmpfs (linux/magic.h TMPFS_MAGIC). */
const TMPFS_MAGIC = 0x01021994;
/** Preferred base: RAM-backed, so timings do not include this VM's noisy disk (ext4 + discard). */
const SHM = '/dev/shm';

/** Where the work dir is and why it was chosen; recorded in the results. */
export interface WorkDir {
  path: string;
  /** 'dir' = inside --dir, 'shm' = /dev/shm, 'tmpdir' = os.tmpdir() fallback. */
  source: 'dir' | 'shm' | 'tmpdir';
  tmpfs: boolean;
  freeBytes: number;
  neededBytes: number;
  note: string;
}

async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

async function isTmpfs(dir: string): Promise<boolean> {
  return (await statfs(dir)).type === TMPFS_MAGIC;
}

/** Create a fresh `bootfs-bench-*` dir in --dir, else /dev/shm if it has `neededBytes` free, else os.tmpdir(). */
export async function createWorkDir(override: string | undefined, neededBytes: number): Promise<WorkDir> {
  let base: string;
  let source: WorkDir['source'];
  let note: string;
  if (override !== undefined) {
    base = path.resolve(override);
    source = 'dir';
    note = 'chosen with --dir';
  } else {
    const shmFree = await freeBytes(SHM).catch(() => -1);
    if (shmFree >= neededBytes) {
      base = SHM;
      source = 'shm';
      note = 'tmpfs: no disk I/O in the timings';
    } else {
      base = os.tmpdir();
      source = 'tmpdir';
      note = shmFree < 0 ? `${SHM} unavailable` : `${SHM} has ${shmFree} bytes free, needs ${neededBytes}`;
    }
  }
  const free = await freeBytes(base);
  if (free < neededBytes) {
    // Not fatal: the estimate is generous (it assumes incompressible data), but say so.
    note += `; warning: only ${free} bytes free, estimate needs ${neededBytes}`;
  }
  const dir = await mkdtemp(path.join(base, 'bootfs-bench-'));
  return { path: dir, source, tmpfs: await isTmpfs(dir), freeBytes: free, neededBytes, note };
}

/**
 * Space one input needs: the input, plus per run and tool a store and an extracted copy
 * (stores of incompressible data are about input-sized), plus 10% and 64 MiB of slack.
 */
export function estimateNeededBytes(inputBytes: number, runs: number): number {
  return Math.ceil(inputBytes * (1 + 4 * runs) * 1.1) + 64 * 1024 * 1024;
}

/** Size and chunk count of a store. */
export interface StoreStats {
  /** Sum of the sizes of every regular file under the store. */
  bytes: number;
  /** Number of `.cacnk` files. */
  chunks: number;
}

/** StoreStats plus the bytes of the `.cacnk` files alone. */
export interface ChunkStoreStats extends StoreStats {
  /** Sum of the sizes of the `.cacnk` files (what the store's chunks occupy, without stray files). */
  chunkBytes: number;
}

/** Walk a store directory and add up its files. */
export async function storeStats(dir: string): Promise<StoreStats> {
  const { bytes, chunks } = await chunkStoreStats(dir);
  return { bytes, chunks };
}

/** Walk a store directory and add up its files, and separately its `.cacnk` files. */
export async function chunkStoreStats(dir: string): Promise<ChunkStoreStats> {
  const totals: ChunkStoreStats = { bytes: 0, chunks: 0, chunkBytes: 0 };
  const pending = [dir];
  for (let d = pending.pop(); d !== undefined; d = pending.pop()) {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) pending.push(full);
      else if (entry.isFile()) {
        const size = (await stat(full)).size;
        totals.bytes += size;
        if (entry.name.endsWith('.cacnk')) {
          totals.chunks += 1;
          totals.chunkBytes += size;
        }
      }
    }
  }
  return totals;
}
