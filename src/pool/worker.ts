/** Worker thread of the chunk pool: hashes, compresses, decompresses and verifies chunks. */
import { parentPort } from 'node:worker_threads';
import { chunkId, decodeChunk, encodeChunk } from '../chunk.js';
import { ChunkCorruptError } from '../errors.js';
import type { Job, Reply } from './protocol.js';

/** A fresh, exactly-sized copy whose ArrayBuffer can be transferred without detaching shared memory. */
function own(buf: Uint8Array): Uint8Array {
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return copy;
}

function run(job: Job): { reply: Reply; transfer: ArrayBuffer[] } {
  try {
    switch (job.op) {
      case 'encode': {
        const { id, stored } = encodeChunk(job.plain);
        const s = own(stored);
        return { reply: { seq: job.seq, ok: true, id: own(id), stored: s }, transfer: [s.buffer as ArrayBuffer] };
      }
      case 'hash':
        return { reply: { seq: job.seq, ok: true, id: own(chunkId(job.plain)) }, transfer: [] };
      case 'decode': {
        const opts: { size?: number; maxSize?: number } = {};
        if (job.size !== undefined) opts.size = job.size;
        if (job.maxSize !== undefined) opts.maxSize = job.maxSize;
        const p = own(decodeChunk(job.id, job.stored, job.location, opts));
        return { reply: { seq: job.seq, ok: true, plain: p }, transfer: [p.buffer as ArrayBuffer] };
      }
    }
  } catch (err) {
    const corrupt =
      err instanceof ChunkCorruptError ? { chunkId: err.chunkId, location: err.location, reason: err.reason } : undefined;
    const reply: Reply = { seq: job.seq, ok: false, message: (err as Error).message };
    if (corrupt) reply.corrupt = corrupt;
    return { reply, transfer: [] };
  }
}

parentPort!.on('message', (job: Job) => {
  const { reply, transfer } = run(job);
  parentPort!.postMessage(reply, transfer);
});
