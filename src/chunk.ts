/**
 * Chunk identity: the ID is SHA-512/256 of the plain (uncompressed) bytes, as casync and desync
 * define it. Nothing else enters the digest.
 */
import { createHash } from 'node:crypto';
import { compressChunk, decompressInto, decompressOwned, decompressStored, decompressToScratch, DecodeFailure } from './codec/zstd.js';
import { ChunkCorruptError } from './errors.js';

/** Length of a chunk ID in bytes. */
export const CHUNK_ID_BYTES = 32;
const HEX_ID = /^[0-9a-f]{64}$/;

/** SHA-512/256 of the plain chunk bytes (32 raw bytes). */
export function chunkId(plain: Uint8Array): Buffer {
  return createHash('sha512-256').update(plain).digest();
}

/** Lower-case hex form of a 32-byte ID, the only form casync accepts in paths. */
export function idToHex(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
}

/** True for exactly 64 lower-case hex digits. */
export function isHexId(text: string): boolean {
  return HEX_ID.test(text);
}

/** Parse 64 lower-case hex digits into a 32-byte ID; returns undefined for anything else. */
export function hexToId(text: string): Buffer | undefined {
  return isHexId(text) ? Buffer.from(text, 'hex') : undefined;
}

/** A chunk ready to store: its ID and its stored (compressed) bytes. */
export interface EncodedChunk {
  id: Buffer;
  stored: Buffer;
}

/** Hash and compress plain bytes into the stored form. */
export function encodeChunk(plain: Uint8Array): EncodedChunk {
  return { id: chunkId(plain), stored: compressChunk(plain) };
}

/**
 * Decode stored bytes and verify them against `id`. With `into: 'scratch'` the result is a view of
 * a per-thread buffer, valid until the next decode on this thread; with `into: 'owned'` its
 * ArrayBuffer belongs to it alone (a worker transfers it without a copy); with a Buffer of at
 * least bound + 1 bytes it is a view at the start of that Buffer. `size` (when the index gives it)
 * must match exactly and bounds decompression; otherwise output is bounded by `maxSize`.
 * Throws ChunkCorruptError naming the chunk and `location`.
 */
export function decodeChunk(
  id: Uint8Array,
  stored: Uint8Array,
  location: string,
  opts: { size?: number; maxSize?: number; into?: 'scratch' | 'owned' | Buffer } = {},
): Buffer {
  const bound = opts.size ?? opts.maxSize ?? DEFAULT_MAX_DECODED_SIZE;
  let plain: Buffer;
  try {
    if (opts.into === 'scratch') plain = decompressToScratch(stored, bound);
    else if (opts.into === 'owned') plain = decompressOwned(stored, bound, opts.size !== undefined);
    else if (opts.into) plain = decompressInto(stored, bound, opts.into);
    else plain = decompressStored(stored, bound);
  } catch (err) {
    if (err instanceof DecodeFailure) throw new ChunkCorruptError(idToHex(id), location, err.message);
    throw err;
  }
  if (opts.size !== undefined && plain.length !== opts.size) {
    throw new ChunkCorruptError(idToHex(id), location, `decoded to ${plain.length} bytes, the index says ${opts.size}`);
  }
  const actual = chunkId(plain);
  if (!actual.equals(id)) {
    throw new ChunkCorruptError(idToHex(id), location, `content hashes to ${idToHex(actual)}`);
  }
  return plain;
}

/**
 * Bound on decoded size when neither the index nor the caller says more: casync's own cap on an
 * HTTP chunk body (16 MiB) — well above any sane max chunk size, far below memory trouble.
 */
export const DEFAULT_MAX_DECODED_SIZE = 16 * 1024 * 1024;
