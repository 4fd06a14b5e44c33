/** Worker thread of the chunk pool: hashes, compresses, decompresses and verifies chunks. */
import { parentPort, workerData } from 'node:worker_threads';
import { chunkId, decodeChunk, DEFAULT_MAX_DECODED_SIZE, encodeChunk } from '../chunk.js';
import { ChunkCorruptError, ChunkNotFoundError } from '../errors.js';
import { LocalStore } from '../store/local.js';
import { readCacheEntries, readEntry, touch } from './cache-batch.js';
import { processBatch } from './batch.js';
import { BatchBuffer, decodeLocalBatch, writeAt } from './extract-batch.js';
import type { Job, Reply, WorkerData } from './protocol.js';

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
        if (job.mode === 'store-local' && job.root === undefined) throw new Error('store-local batch without a store root');
        const out = processBatch(job.data, job.ends, job.mode, job.digest, job.mode === 'store-local' ? localStore(job.root!) : undefined);
        const reply: Reply = { seq: job.seq, ok: true, ids: out.ids, storedSizes: out.storedSizes, data: job.data };
        const transfer = [out.ids.buffer as ArrayBuffer, job.data.buffer as ArrayBuffer];
        if (out.stored) {
          reply.stored = out.stored;
          transfer.push(out.stored.buffer as ArrayBuffer);
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
        const { plain, found } = readCacheEntries(job.files, job.ids, job.sizes, job.location, job.touchAfterMs);
        return { reply: { seq: job.seq, ok: true, plain, found }, transfer: [plain.buffer as ArrayBuffer] };
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

const { done } = workerData as WorkerData;
parentPort!.on('message', (job: Job) => {
  const { reply, transfer } = run(job);
  Atomics.add(done, 0, 1);
  parentPort!.postMessage(reply, transfer);
});

/** An extract batch's plain bytes on their way into the output file. */
const batchBuffer = new BatchBuffer();
