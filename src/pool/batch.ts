/**
 * A batch of consecutive chunks, processed where it is: in a pool worker, or on the main thread
 * when every worker is busy (MakeOptions.mainThread). Hash each chunk; per mode also compress it
 * ('encode', the stored bytes returned back to back) or write it into a local store unless the
 * store has it ('store-local': stored size, or -1 when it was there).
 */
import { CHUNK_ID_BYTES, chunkId, type Digest } from '../chunk.js';
import { compressToScratch } from '../codec/zstd.js';
import type { LocalStore } from '../store/local.js';
import type { BatchMode } from './protocol.js';

/** Buffers with ArrayBuffers of their own (never Node's shared pool), so a worker can transfer them. */
export interface BatchOutput {
  /** CHUNK_ID_BYTES per chunk. */
  ids: Buffer;
  storedSizes: number[];
  /** 'encode': the stored chunks back to back. */
  stored?: Buffer;
}

/** `ends` are exclusive end offsets in `data`; `store` is required for 'store-local'. */
export function processBatch(data: Uint8Array, ends: readonly number[], mode: BatchMode, digest: Digest, store?: LocalStore): BatchOutput {
  const n = ends.length;
  const ids = Buffer.alloc(n * CHUNK_ID_BYTES);
  const storedSizes: number[] = [];
  const storedParts: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    const end = ends[i]!;
    const plain = data.subarray(start, end);
    const id = chunkId(plain, digest);
    ids.set(id, i * CHUNK_ID_BYTES);
    if (mode === 'store-local') storedSizes.push(store!.storeChunkSync(id, () => compressToScratch(plain)));
    else if (mode === 'encode') {
      const stored = compressToScratch(plain);
      storedParts.push(new Uint8Array(stored)); // a copy: the scratch is reused
      storedSizes.push(stored.length);
    }
    start = end;
  }
  if (mode !== 'encode') return { ids, storedSizes };
  const stored = Buffer.allocUnsafeSlow(storedSizes.reduce((a, b) => a + b, 0));
  let off = 0;
  for (const part of storedParts) {
    stored.set(part, off);
    off += part.length;
  }
  return { ids, storedSizes, stored };
}
