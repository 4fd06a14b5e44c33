/**
 * Reading cache-directory entries: the stored bytes of chunk files, decoded and verified. The pool's
 * workers run it for batches (a readahead window); the main thread runs it for a lone chunk when
 * every worker is idle, where the two thread hops would cost more than the work (see ChunkPool).
 */
import { closeSync, constants, fstatSync, openSync, utimesSync } from 'node:fs';
import { CHUNK_ID_BYTES, decodeChunk } from '../chunk.js';
import { ChunkCorruptError } from '../errors.js';
import { storedBound } from '../store/local.js';
import { ReadScratch } from '../util/read-scratch.js';

/** Stored bytes of cache entries, decoded before the next read on this thread. */
const scratch = new ReadScratch(256 * 1024);

/** Recency for LRU eviction: a good entry's mtime is refreshed when it is older than asked. */
export function touch(file: string, mtimeMs: number, afterMs: number | undefined): void {
  if (afterMs === undefined || Date.now() - mtimeMs <= afterMs) return;
  try {
    utimesSync(file, new Date(), new Date());
  } catch {
    /* evicted meanwhile, or a read-only cache: recency is best effort */
  }
}

/**
 * The stored bytes of a cache entry, or undefined when there is none. Opened without following a
 * symlink and without blocking (a fifo planted in a shared cache must not hang a worker); anything
 * but a regular file of plausible size is reported corrupt, and the caller's careful path deals
 * with it.
 */
export function readEntry(file: string, plainBound: number): { stored: Buffer; mtimeMs: number } | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ChunkCorruptError('', file, `cannot open: ${code ?? (err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > storedBound(plainBound)) throw new ChunkCorruptError('', file, 'not a regular file of plausible size');
    return { stored: scratch.read(fd, st.size), mtimeMs: st.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

/**
 * Entries `files` (chunk i of `ids`, 32 bytes each, plain size sizes[i]) decoded back to back into
 * one buffer of their own (transferable). `found[i]` says whether entry i was there and good;
 * anything else (absent, corrupt, unreadable) is left to the caller's careful path.
 */
export function readCacheEntries(files: readonly string[], ids: Uint8Array, sizes: readonly number[], location: string, touchAfterMs: number | undefined): { plain: Buffer; found: boolean[] } {
  const total = sizes.reduce((a, b) => a + b, 0);
  const out = Buffer.allocUnsafeSlow(total + 1);
  const found: boolean[] = [];
  let off = 0;
  for (let i = 0; i < files.length; i++) {
    const size = sizes[i]!;
    let ok = false;
    try {
      const entry = readEntry(files[i]!, size);
      if (entry) {
        const id = ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
        decodeChunk(id, entry.stored, location, { size, into: out.subarray(off, off + size + 1) });
        ok = true;
        touch(files[i]!, entry.mtimeMs, touchAfterMs);
      }
    } catch {
      // Not a clean hit: the caller's careful path looks at it again.
    }
    found.push(ok);
    off += size;
  }
  return { plain: out.subarray(0, total), found };
}
