/**
 * Chunk identity: the ID is a digest of the plain (uncompressed) bytes, as casync and desync define
 * it: SHA-512/256 (casync's default) or SHA-256 (casync `--digest=sha256`). Nothing else enters the
 * digest. An index records which one its IDs use.
 */
import { createHash } from 'node:crypto';
import { compressChunk, decompressInto, decompressOwned, decompressStored, decompressToScratch, DecodeFailure } from './codec/zstd.js';
import { ChunkCorruptError } from './errors.js';

/** Length of a chunk ID in bytes. */
export const CHUNK_ID_BYTES = 32;
const HEX_ID = /^[0-9a-f]{64}$/;

/** The chunk digests casync knows; both give 32-byte IDs. */
export const DIGESTS = ['sha512-256', 'sha256'] as const;
export type Digest = (typeof DIGESTS)[number];
/** casync's and desync's default. */
export const CASYNC_DIGEST: Digest = 'sha512-256';

/** The digest of the plain chunk bytes (32 raw bytes). */
export function chunkId(plain: Uint8Array, digest: Digest = CASYNC_DIGEST): Buffer {
  return createHash(digest).update(plain).digest();
}

/**
 * The digest tried first when verifying: the last one that matched on this thread. A process
 * mostly reads the chunks of one index, so after the first chunk one hash per chunk is the rule.
 */
let verifyFirst: Digest = CASYNC_DIGEST;

/**
 * Does `plain` hash to `id` under either digest? casync does the same when a store has no fixed
 * digest. Accepting either costs nothing in safety: passing off other bytes under `id` would need
 * a second preimage of SHA-256 or of SHA-512/256. Returns the mismatching digest of the first try
 * when neither matches.
 */
function verifyId(plain: Uint8Array, id: Uint8Array): Buffer | undefined {
  const first = chunkId(plain, verifyFirst);
  if (first.equals(id)) return undefined;
  const other: Digest = verifyFirst === 'sha256' ? 'sha512-256' : 'sha256';
  if (!chunkId(plain, other).equals(id)) return first;
  verifyFirst = other;
  return undefined;
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
export function encodeChunk(plain: Uint8Array, digest: Digest = CASYNC_DIGEST): EncodedChunk {
  return { id: chunkId(plain, digest), stored: compressChunk(plain) };
}

/**
 * Decode stored bytes and verify them against `id`. With `into: 'scratch'` the result is a view of
 * a per-thread buffer, valid until the next decode on this thread; with `into: 'owned'` its
 * ArrayBuffer belongs to it alone (a worker transfers it without a copy); with a Buffer of at
 * least bound + 1 bytes it is a view at the start of that Buffer. `size` (when the index gives it)
 * must match exactly and bounds decompression; otherwise output is bounded by `maxSize`. The
 * bytes must hash to `id` under SHA-512/256 or SHA-256 (see verifyId). Throws ChunkCorruptError
 * naming the chunk and `location`.
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
  const actual = verifyId(plain, id);
  if (actual) throw new ChunkCorruptError(idToHex(id), location, `content hashes to ${idToHex(actual)}`);
  return plain;
}

/**
 * Bound on decoded size when neither the index nor the caller says more: casync's own cap on an
 * HTTP chunk body (16 MiB) — well above any sane max chunk size, far below memory trouble.
 */
export const DEFAULT_MAX_DECODED_SIZE = 16 * 1024 * 1024;
