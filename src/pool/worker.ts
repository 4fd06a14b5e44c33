/** Worker thread of the chunk pool: hashes, compresses, decompresses and verifies chunks. */
import { parentPort } from 'node:worker_threads';
import { CHUNK_ID_BYTES, chunkId, decodeChunk, DEFAULT_MAX_DECODED_SIZE, encodeChunk } from '../chunk.js';
import { compressToScratch } from '../codec/zstd.js';
import { closeSync, constants, fstatSync, openSync, readSync, utimesSync } from 'node:fs';
import { ChunkCorruptError, ChunkNotFoundError } from '../errors.js';
import { LocalStore, storedBound } from '../store/local.js';
import { BatchBuffer, decodeLocalBatch, writeAt } from './extract-batch.js';
import type { Job, Reply } from './protocol.js';

/** A fresh, exactly-sized copy whose ArrayBuffer can be transferred without detaching shared memory. */
function own(buf: Uint8Array): Uint8Array {
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return copy;
}

/** One LocalStore per root, so its known-shard cache lives as long as the worker. */
const stores = new Map<string, LocalStore>();
function localStore(root: string): LocalStore {
  let store = stores.get(root);
  if (!store) stores.set(root, (store = LocalStore.unchecked(root)));
  return store;
}

function run(job: Job): { reply: Reply; transfer: ArrayBuffer[] } {
  try {
    switch (job.op) {
      case 'encode': {
        const { id, stored } = encodeChunk(job.plain, job.digest);
        const s = own(stored);
        return { reply: { seq: job.seq, ok: true, id: own(id), stored: s }, transfer: [s.buffer as ArrayBuffer] };
      }
      case 'batch': {
        const n = job.ends.length;
        const ids = new Uint8Array(n * CHUNK_ID_BYTES);
        const storedSizes: number[] = [];
        const storedParts: Uint8Array[] = [];
        const store = job.mode === 'store-local' ? localStore(job.root!) : undefined;
        let start = 0;
        for (let i = 0; i < n; i++) {
          const end = job.ends[i]!;
          const plain = job.data.subarray(start, end);
          const id = chunkId(plain, job.digest);
          ids.set(id, i * CHUNK_ID_BYTES);
          if (store) storedSizes.push(store.storeChunkSync(id, () => compressToScratch(plain)));
          else if (job.mode === 'encode') {
            const stored = compressToScratch(plain);
            storedParts.push(own(stored));
            storedSizes.push(stored.length);
          }
          start = end;
        }
        const reply: Reply = { seq: job.seq, ok: true, ids, storedSizes, data: job.data };
        const transfer = [ids.buffer as ArrayBuffer, job.data.buffer as ArrayBuffer];
        if (job.mode === 'encode') {
          const all = new Uint8Array(storedSizes.reduce((a, b) => a + b, 0));
          let off = 0;
          for (const part of storedParts) {
            all.set(part, off);
            off += part.length;
          }
          reply.stored = all;
          transfer.push(all.buffer as ArrayBuffer);
        }
        return { reply, transfer };
      }
      case 'extract-local': {
        const store = localStore(job.root);
        const total = job.sizes.reduce((a, b) => a + b, 0);
        // Decoded in place into one buffer and written at once: a write per chunk made the workers
        // queue on the output file's lock. A stream sink gets the buffer transferred instead.
        if (job.outPath === undefined) {
          const buf = Buffer.allocUnsafeSlow(total + 1);
          decodeLocalBatch(store, job.ids, job.sizes, buf);
          return { reply: { seq: job.seq, ok: true, plain: buf.subarray(0, total) }, transfer: [buf.buffer as ArrayBuffer] };
        }
        const buf = batchBuffer.get(total + 1);
        decodeLocalBatch(store, job.ids, job.sizes, buf);
        writeAt(job.outPath, buf, total, job.outOffset);
        return { reply: { seq: job.seq, ok: true }, transfer: [] };
      }
      case 'hash':
        return { reply: { seq: job.seq, ok: true, id: own(chunkId(job.plain, job.digest)) }, transfer: [] };
      case 'cache-read': {
        const entry = readEntry(job.file, job.size ?? job.maxSize ?? DEFAULT_MAX_DECODED_SIZE);
        if (entry === undefined) return { reply: { seq: job.seq, ok: true }, transfer: [] };
        const opts: { size?: number; maxSize?: number } = {};
        if (job.size !== undefined) opts.size = job.size;
        if (job.maxSize !== undefined) opts.maxSize = job.maxSize;
        const p = decodeChunk(job.id, entry.stored, job.location, { ...opts, into: 'owned' });
        touch(job.file, entry.mtimeMs, job.touchAfterMs);
        return { reply: { seq: job.seq, ok: true, plain: p }, transfer: [p.buffer as ArrayBuffer] };
      }
      case 'cache-read-many': {
        // One buffer for the whole window, each entry decoded straight into its place.
        const total = job.sizes.reduce((a, b) => a + b, 0);
        const out = Buffer.allocUnsafeSlow(total + 1);
        const found: boolean[] = [];
        let off = 0;
        for (let i = 0; i < job.files.length; i++) {
          const size = job.sizes[i]!;
          let ok = false;
          try {
            const entry = readEntry(job.files[i]!, size);
            if (entry) {
              const id = job.ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
              decodeChunk(id, entry.stored, job.location, { size, into: out.subarray(off, off + size + 1) });
              ok = true;
              touch(job.files[i]!, entry.mtimeMs, job.touchAfterMs);
            }
          } catch {
            // Not a clean hit: the caller's careful path looks at it again.
          }
          found.push(ok);
          off += size;
        }
        return { reply: { seq: job.seq, ok: true, plain: out, found }, transfer: [out.buffer as ArrayBuffer] };
      }
      case 'decode': {
        const opts: { size?: number; maxSize?: number } = {};
        if (job.size !== undefined) opts.size = job.size;
        if (job.maxSize !== undefined) opts.maxSize = job.maxSize;
        const p = decodeChunk(job.id, job.stored, job.location, { ...opts, into: 'owned' });
        return { reply: { seq: job.seq, ok: true, plain: p }, transfer: [p.buffer as ArrayBuffer] };
      }
    }
  } catch (err) {
    const reply: Reply = { seq: job.seq, ok: false, message: (err as Error).message, code: (err as { code?: string }).code ?? '' };
    if (err instanceof ChunkCorruptError) reply.corrupt = { chunkId: err.chunkId, location: err.location, reason: err.reason };
    if (err instanceof ChunkNotFoundError) reply.missing = { chunkId: err.chunkId, location: err.location };
    return { reply, transfer: [] };
  }
}

parentPort!.on('message', (job: Job) => {
  const { reply, transfer } = run(job);
  parentPort!.postMessage(reply, transfer);
});

/** Stored bytes of cache entries, decoded before the next read on this thread. */
let readScratch = Buffer.allocUnsafeSlow(256 * 1024);
/** An extract batch's plain bytes on their way into the output file. */
const batchBuffer = new BatchBuffer();

/** Recency for LRU eviction: a good entry's mtime is refreshed when it is older than asked. */
function touch(file: string, mtimeMs: number, afterMs: number | undefined): void {
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
function readEntry(file: string, plainBound: number): { stored: Buffer; mtimeMs: number } | undefined {
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
    if (readScratch.length < st.size) readScratch = Buffer.allocUnsafeSlow(Math.max(st.size, 2 * readScratch.length));
    const buf = readScratch;
    let n = 0;
    while (n < st.size) {
      const r = readSync(fd, buf, n, st.size - n, n);
      if (r === 0) break;
      n += r;
    }
    return { stored: buf.subarray(0, n), mtimeMs: st.mtimeMs };
  } finally {
    closeSync(fd);
  }
}
