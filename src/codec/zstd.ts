/**
 * The stored form of a chunk: one zstd frame (casync's and desync's default). Decompression is
 * bounded: a stored chunk is untrusted input and must never expand past the size the caller allows.
 */
import { createRequire } from 'node:module';
import type { Transform } from 'node:stream';
import type * as ZstdBinding from 'zstd-napi/binding.js';

// zstd-napi is CommonJS; its low-level binding gives streaming decompression with a caller-sized buffer.
// Both are loaded on first use (~4 ms each per thread): the main thread of an extract or a mount
// never compresses or decodes, and gzip chunks are rare.
const requireCjs = createRequire(import.meta.url);
let loaded: typeof ZstdBinding | undefined;
const zstd = (): typeof ZstdBinding => (loaded ??= requireCjs('zstd-napi/binding.js') as typeof ZstdBinding);
const gunzipSync = (buf: Uint8Array, opts: { maxOutputLength: number }): Buffer => (requireCjs('node:zlib') as typeof import('node:zlib')).gunzipSync(buf, opts);

/**
 * A zstd decompressing Transform stream (OCI layers compressed with zstd). The package's stream
 * layer is loaded on first use: importing it costs ~25 ms, which every convert paid, even of a
 * plain directory or a gzip image.
 */
export function zstdDecompressStream(): Transform {
  const { DecompressStream } = requireCjs('zstd-napi') as typeof import('zstd-napi');
  return new DecompressStream() as unknown as Transform;
}

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
  cctx ??= new (zstd().CCtx)();
  const bound = zstd().compressBound(plain.length);
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
  const out = zstdDecode(stored, maxSize, dscratch);
  // Keep the (possibly grown) buffer for the next call.
  dscratch = Buffer.from(out.buffer, 0, out.buffer.byteLength);
  return out;
}

/**
 * Like decompressStored, but the result has an ArrayBuffer of its own (never Node's shared small
 * buffer pool), so a worker can transfer it. A zstd chunk whose plain size is known is decoded
 * straight into it, with no copy.
 */
export function decompressOwned(stored: Uint8Array, maxSize: number, knownSize: boolean): Buffer {
  // Room for one byte more than allowed: filling it is how zstdDecode sees a chunk that is too big.
  if (knownSize) return decompressInto(stored, maxSize, Buffer.allocUnsafeSlow(maxSize + 1));
  const view = decompressToScratch(stored, maxSize);
  const own = Buffer.allocUnsafeSlow(view.length);
  view.copy(own);
  return own;
}

/**
 * Decode into `dst` (at least maxSize + 1 bytes: the extra byte detects output that is too big)
 * and return the view of `dst` that holds the plain bytes. zstd decodes in place; other codecs
 * via the scratch buffer and a copy. Bytes of `dst` past the result may be overwritten.
 */
export function decompressInto(stored: Uint8Array, maxSize: number, dst: Buffer): Buffer {
  if (dst.length < maxSize + 1) throw new RangeError(`decompressInto: ${dst.length} bytes of room for at most ${maxSize}`);
  if (startsWith(stored, ZSTD_MAGIC)) return zstdDecode(stored, maxSize, dst);
  const view = decompressStored(stored, maxSize);
  view.copy(dst);
  return dst.subarray(0, view.length);
}

function zstdBounded(src: Uint8Array, maxSize: number): Buffer {
  return Buffer.from(zstdDecode(src, maxSize, undefined));
}

/** First output buffer when the frame does not declare its size (casync's frames do not). */
const INITIAL_OUTPUT = 128 * 1024;

/**
 * Decode one or more zstd frames, never producing more than maxSize bytes. The output buffer is
 * sized from the frame header's content size when there is one, else it starts small and doubles:
 * allocating maxSize up front (16 MiB when no index gives the size) for every chunk made a busy
 * server spend its time in the allocator and the GC. Returns a view of `reuse` or of a new buffer.
 */
function zstdDecode(src: Uint8Array, maxSize: number, reuse: Buffer | undefined): Buffer {
  const limit = maxSize + 1; // one byte of headroom: filling it proves the output is too large
  let declared: number | null = null;
  try {
    declared = zstd().getFrameContentSize(src);
  } catch {
    // An unreadable header: decompressStream below reports the real error.
  }
  if (declared !== null && declared > maxSize) throw new DecodeFailure(`frame declares ${declared} bytes, more than ${maxSize}`);
  const want = Math.min(limit, declared !== null ? declared + 1 : INITIAL_OUTPUT);
  let dst = reuse && reuse.length >= want ? reuse : Buffer.allocUnsafe(want);
  dctx ??= new (zstd().DCtx)();
  dctx.reset(zstd().ResetDirective.sessionOnly);
  let produced = 0;
  let consumed = 0;
  let frameDone = false;
  try {
    for (;;) {
      if (produced === dst.length) {
        if (dst.length >= limit) throw new DecodeFailure(`decompresses to more than ${maxSize} bytes`);
        const bigger = Buffer.allocUnsafe(Math.min(limit, dst.length * 2));
        dst.copy(bigger, 0, 0, produced);
        dst = bigger;
      }
      const [ret, out, inp] = dctx.decompressStream(dst.subarray(produced, limit), src.subarray(consumed));
      produced += out;
      consumed += inp;
      if (produced > maxSize) throw new DecodeFailure(`decompresses to more than ${maxSize} bytes`);
      frameDone = ret === 0;
      if (frameDone && consumed >= src.length) break;
      // No progress although the output has room: the decoder needs input that is not there.
      if (out === 0 && inp === 0 && produced < dst.length) break;
    }
  } catch (err) {
    if (err instanceof DecodeFailure) throw err;
    throw new DecodeFailure(`zstd: ${(err as Error).message}`);
  } finally {
    dctx.reset(zstd().ResetDirective.sessionOnly);
  }
  if (!frameDone) throw new DecodeFailure('truncated zstd frame');
  return dst.subarray(0, produced);
}
