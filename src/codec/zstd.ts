/**
 * The stored form of a chunk: one zstd frame (casync's and desync's default). Decompression is
 * bounded: a stored chunk is untrusted input and must never expand past the size the caller allows.
 */
import { gunzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';

// zstd-napi is CommonJS; its low-level binding gives streaming decompression with a caller-sized buffer.
const binding = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof ZstdBinding;

/** Level 3: casync's default, and zstd's sweet spot (DESIGN §6: 428 MB/s on 64 KiB chunks). */
export const ZSTD_LEVEL = 3;

const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC = [0x1f, 0x8b];
const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];

/** Why stored bytes could not be decoded; callers wrap it with the chunk ID and location. */
export class DecodeFailure extends Error {}

// One context per thread, reused: creating a zstd context costs more than compressing 64 KiB.
let cctx: ZstdBinding.CCtx | undefined;
let dctx: ZstdBinding.DCtx | undefined;

/** Compress plain chunk bytes into one zstd frame (level 3; deterministic for a given zstd build). */
export function compressChunk(plain: Uint8Array): Buffer {
  // Copy out of the shared scratch so the result is the caller's to keep.
  return Buffer.from(compressToScratch(plain));
}

let scratch: Buffer | undefined;

/**
 * Compress into a per-thread scratch buffer and return a view of it, valid only until the next
 * call. Hot paths (the pool writing a local store) use it to avoid an allocation per chunk.
 */
export function compressToScratch(plain: Uint8Array): Buffer {
  cctx ??= new binding.CCtx();
  const bound = binding.compressBound(plain.length);
  if (!scratch || scratch.length < bound) scratch = Buffer.allocUnsafeSlow(Math.max(bound, 1 << 20));
  const n = cctx.compress(scratch, plain, ZSTD_LEVEL);
  return scratch.subarray(0, n);
}

function startsWith(buf: Uint8Array, magic: number[]): boolean {
  return buf.length >= magic.length && magic.every((b, i) => buf[i] === b);
}

/**
 * Decode a stored chunk, sniffing the compression by magic bytes as casync does: zstd (one or more
 * frames) or gzip. The output may not exceed `maxSize` bytes; a stream that would is rejected
 * without allocating more than maxSize + 1 bytes.
 */
export function decompressStored(stored: Uint8Array, maxSize: number): Buffer {
  if (startsWith(stored, ZSTD_MAGIC)) return zstdBounded(stored, maxSize);
  if (startsWith(stored, GZIP_MAGIC)) {
    try {
      // maxOutputLength makes zlib stop instead of inflating a bomb.
      return gunzipSync(stored, { maxOutputLength: maxSize });
    } catch (err) {
      throw new DecodeFailure(`gzip data does not decode within ${maxSize} bytes (${(err as Error).message})`);
    }
  }
  if (startsWith(stored, XZ_MAGIC)) throw new DecodeFailure('xz-compressed chunks are not supported (recompress the store with zstd)');
  if (stored.length === 0) throw new DecodeFailure('empty file');
  throw new DecodeFailure('unknown compression (not a zstd frame)');
}

let dscratch: Buffer | undefined;

/**
 * Like decompressStored, but decodes into a per-thread scratch buffer and returns a view of it,
 * valid only until the next call (hot paths that write the bytes out immediately).
 */
export function decompressToScratch(stored: Uint8Array, maxSize: number): Buffer {
  if (!startsWith(stored, ZSTD_MAGIC)) return decompressStored(stored, maxSize);
  if (!dscratch || dscratch.length < maxSize + 1) dscratch = Buffer.allocUnsafeSlow(Math.max(maxSize + 1, 1 << 20));
  return zstdInto(stored, maxSize, dscratch);
}

function zstdBounded(src: Uint8Array, maxSize: number): Buffer {
  // One byte of headroom: filling it proves the output is larger than allowed.
  return Buffer.from(zstdInto(src, maxSize, Buffer.allocUnsafe(maxSize + 1)));
}

/** Decode into `dst` (at least maxSize + 1 bytes); returns the view of the decoded bytes. */
function zstdInto(src: Uint8Array, maxSize: number, dst: Buffer): Buffer {
  dctx ??= new binding.DCtx();
  dctx.reset(binding.ResetDirective.sessionOnly);
  let produced = 0;
  let consumed = 0;
  let frameDone = false;
  try {
    while (consumed < src.length) {
      const [ret, out, inp] = dctx.decompressStream(dst.subarray(produced, maxSize + 1), src.subarray(consumed));
      produced += out;
      consumed += inp;
      if (produced > maxSize) throw new DecodeFailure(`decompresses to more than ${maxSize} bytes`);
      frameDone = ret === 0;
      // No progress with input left means the decoder wants more input than exists: truncated.
      if (out === 0 && inp === 0) break;
    }
    // Flush anything the decoder still holds (it may buffer output when dst was tight).
    while (!frameDone) {
      const [ret, out] = dctx.decompressStream(dst.subarray(produced, maxSize + 1), Buffer.alloc(0));
      produced += out;
      if (produced > maxSize) throw new DecodeFailure(`decompresses to more than ${maxSize} bytes`);
      frameDone = ret === 0;
      if (out === 0) break;
    }
  } catch (err) {
    if (err instanceof DecodeFailure) throw err;
    throw new DecodeFailure(`zstd: ${(err as Error).message}`);
  } finally {
    dctx.reset(binding.ResetDirective.sessionOnly);
  }
  if (!frameDone) throw new DecodeFailure('truncated zstd frame');
  return dst.subarray(0, produced);
}
