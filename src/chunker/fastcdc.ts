/**
 * The production chunker: FastCDC ("ronomon" variant) through the `fastcdc-wasm` package, with the
 * windowing that gives it a bounded-memory streaming API (DESIGN §3.2).
 *
 * fastcdc-wasm has no streaming API: it chunks one in-memory buffer as if that buffer were the
 * whole input. We feed it windows and keep every chunk but the last of each window, then restart
 * at the last chunk's start. That is exact, not an approximation, because of how the ronomon
 * variant cuts a chunk starting at `p` with `r` bytes left (see fastcdc-ref.ts for the algorithm):
 *  - it only ever reads bytes [p, p + min(r, max)), and
 *  - the end of input changes only (a) where the loose mask would start (start + min(center, r)) and
 *    (b) what happens when no cut is found (the chunk is forced to end at r). Truncating r only
 *    removes a suffix of the scan; every position still scanned uses the same mask and the same
 *    hash as with the whole input.
 * So a chunk that ends before the window end ends exactly where it would in the whole input, and
 * only the window's last chunk (which may have been forced by the window end) is uncertain.
 * The property tests in test/chunker prove this against the whole-buffer oracle.
 */
import fastcdc from 'fastcdc-wasm';
import { UsageError } from '../errors.js';
import { DEFAULT_CHUNK_SIZES, validateChunkSizes, type ChunkSizes } from './params.js';

/**
 * Bounds fastcdc-rs 1.x asserts on (`MINIMUM_MIN` … `MAXIMUM_MAX`). Outside them the WASM build
 * panics, which surfaces as an opaque `RuntimeError: unreachable`, so we refuse such sizes first.
 * They are stricter than `validateChunkSizes` in two places: min >= 64 (not 48) and max >= 1024.
 */
export const FASTCDC_LIMITS = Object.freeze({
  minMin: 64,
  minMax: 64 * 1024 * 1024,
  avgMin: 256,
  avgMax: 256 * 1024 * 1024,
  maxMin: 1024,
  maxMax: 1024 * 1024 * 1024,
});

/** Default streaming window: large enough that re-scanning the carried-over chunk (<= max) is cheap. */
export const DEFAULT_WINDOW_SIZE = 8 * 1024 * 1024;

/**
 * Largest window we accept. The WASM module copies each window into its 32-bit linear memory
 * (which never shrinks) and returns u32 offsets, so stay far below 4 GiB.
 */
export const MAX_WINDOW_SIZE = 1024 * 1024 * 1024;

/** `validateChunkSizes` plus the fastcdc-rs bounds; throws UsageError naming the offending value. */
export function validateFastcdcSizes(sizes: ChunkSizes): ChunkSizes {
  validateChunkSizes(sizes);
  const L = FASTCDC_LIMITS;
  const check = (name: string, v: number, lo: number, hi: number): void => {
    if (v < lo || v > hi) {
      throw new UsageError(`chunk size ${name}=${v} is outside [${lo}, ${hi}], the range the FastCDC chunker (fastcdc-rs) accepts`);
    }
  };
  check('min', sizes.min, L.minMin, L.minMax);
  check('avg', sizes.avg, L.avgMin, L.avgMax);
  check('max', sizes.max, L.maxMin, L.maxMax);
  return sizes;
}

/** Options of `chunkStream`. */
export interface ChunkerOptions {
  /** Chunk sizes; default DEFAULT_CHUNK_SIZES (16K/64K/256K). Changing them changes every chunk ID. */
  sizes?: ChunkSizes;
  /**
   * Bytes handed to the WASM chunker at a time; default max(8 MiB, 2 * sizes.max). Must be
   * > sizes.max. Does not change the output, only memory (about windowSize + max) and speed.
   */
  windowSize?: number;
  /**
   * Where windows come from; the consumer gives each batch's buffer back when done with it, so a
   * long stream reuses a few windows instead of faulting in fresh memory for every one. Its
   * `size` must equal the window size.
   */
  windows?: WindowPool;
}

/**
 * A free list of equally sized window buffers. Reuse matters: a fresh multi-MiB buffer costs a
 * page fault per 4 KiB on first touch (measured: 65k faults converting the 116 MB Debian rootfs).
 */
export class WindowPool {
  private readonly free: ArrayBuffer[] = [];

  constructor(
    readonly size: number,
    private readonly keep = 8,
  ) {}

  take(): Buffer {
    const ab = this.free.pop();
    return ab ? Buffer.from(ab) : Buffer.allocUnsafeSlow(this.size);
  }

  /** Return a buffer for reuse; anything but a whole, undetached window of this size is ignored. */
  give(ab: ArrayBufferLike | undefined): void {
    if (ab instanceof ArrayBuffer && ab.byteLength === this.size && this.free.length < this.keep) this.free.push(ab);
  }
}

function resolveWindowSize(windowSize: number | undefined, sizes: ChunkSizes): number {
  if (windowSize === undefined) return Math.max(DEFAULT_WINDOW_SIZE, 2 * sizes.max);
  if (!Number.isSafeInteger(windowSize) || windowSize <= sizes.max || windowSize > MAX_WINDOW_SIZE) {
    throw new UsageError(
      `chunker windowSize must be an integer > sizes.max (${sizes.max}) and <= ${MAX_WINDOW_SIZE}, got ${windowSize}`,
    );
  }
  return windowSize;
}

/** The raw exports of fastcdc-wasm's module (wasm-bindgen 0.2 ABI), which its glue also uses. */
interface FastcdcExports {
  /** WebAssembly.Memory; only its (replaceable) buffer is used. */
  memory: { readonly buffer: ArrayBuffer };
  get_chunks(retptr: number, ptr: number, len: number, min: number, avg: number, max: number): void;
  __wbindgen_add_to_stack_pointer(delta: number): number;
  __wbindgen_malloc(size: number): number;
  __wbindgen_free(ptr: number, size: number): void;
}

function rawExports(): FastcdcExports | undefined {
  const raw = (fastcdc as unknown as { __wasm?: Partial<FastcdcExports> }).__wasm;
  const fns = ['get_chunks', '__wbindgen_add_to_stack_pointer', '__wbindgen_malloc', '__wbindgen_free'] as const;
  if (!raw || !(raw.memory?.buffer instanceof ArrayBuffer) || fns.some((f) => typeof raw[f] !== 'function')) return undefined;
  return raw as FastcdcExports;
}

/**
 * Calls the WASM chunker without the wasm-bindgen glue's per-call costs. The glue mallocs a copy
 * of the window inside the WASM memory, and since the Rust side takes `&mut [u8]` it copies the
 * (unchanged) bytes back into the window and frees the copy: two copies of every byte and a large
 * malloc per window. Here one input area is allocated once and kept, so each call is one copy in.
 * Only the result vector is freed per call, exactly as the glue does. Falls back to the glue when
 * the exports do not look like the version this was written against (fastcdc-wasm 0.1.0).
 */
class DirectChunker {
  private inPtr = 0;
  private inCap = 0;

  constructor(private readonly wasm: FastcdcExports) {}

  starts(win: Uint8Array, sizes: ChunkSizes): Uint32Array {
    const w = this.wasm;
    if (this.inCap === 0 || win.length > this.inCap) {
      if (this.inCap > 0) w.__wbindgen_free(this.inPtr, this.inCap);
      this.inCap = Math.max(win.length, DEFAULT_WINDOW_SIZE);
      this.inPtr = w.__wbindgen_malloc(this.inCap);
    }
    // Views are taken after malloc: growing the memory replaces its ArrayBuffer.
    new Uint8Array(w.memory.buffer, this.inPtr, win.length).set(win);
    const retptr = w.__wbindgen_add_to_stack_pointer(-16);
    try {
      w.get_chunks(retptr, this.inPtr, win.length, sizes.min, sizes.avg, sizes.max);
      const ret = new Int32Array(w.memory.buffer, retptr, 2);
      const [ptr, len] = [ret[0]!, ret[1]!];
      const starts = new Uint32Array(w.memory.buffer, ptr, len).slice();
      w.__wbindgen_free(ptr, len * 4);
      return starts;
    } finally {
      w.__wbindgen_add_to_stack_pointer(16);
    }
  }
}

const raw = rawExports();
const direct = raw ? new DirectChunker(raw) : undefined;

/** Which path cuts windows: 'direct' (the raw WASM exports) or 'glue' (the package's wrapper). */
export function chunkerBackend(): 'direct' | 'glue' {
  return direct ? 'direct' : 'glue';
}

/** One WASM call: chunk START offsets of `win` followed by win.length (`[0]` when empty). */
function wasmStarts(win: Uint8Array, sizes: ChunkSizes): Uint32Array {
  if (direct) return direct.starts(win, sizes);
  // The glue copies the bytes back into `win` after the call (unchanged, so harmless).
  return fastcdc.get_chunks(win, sizes.min, sizes.avg, sizes.max);
}

/** Cut offsets (exclusive ends) for a whole in-memory buffer; last = buf.length; [] for empty. */
export function cutPoints(buf: Uint8Array, sizes: ChunkSizes): number[] {
  validateFastcdcSizes(sizes);
  // Windowed even here: one WASM call on a multi-GiB buffer would overflow its u32 offsets and
  // grow the WASM memory (which never shrinks) to the buffer's size.
  const windowSize = resolveWindowSize(undefined, sizes);
  const cuts: number[] = [];
  let base = 0;
  for (;;) {
    const final = buf.length - base <= windowSize;
    const starts = wasmStarts(buf.subarray(base, final ? buf.length : base + windowSize), sizes);
    // starts = [0, s1, …, sk, len]. Ends are s1…sk and len; a non-final window drops its last
    // chunk [sk, len) because the window end may have forced it. windowSize > max guarantees k >= 1.
    const settled = final ? starts.length : starts.length - 1;
    for (let i = 1; i < settled; i++) cuts.push(base + starts[i]!);
    if (final) return cuts;
    base += starts[starts.length - 2]!;
  }
}

/** A copy of buf[start, end) in a Buffer of its own (not a pool slice, not a view of the window). */
function copyOut(buf: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafeSlow(end - start);
  buf.copy(out, 0, start, end);
  return out;
}

/**
 * A run of consecutive whole chunks: `data` holds them back to back and `ends` are their exclusive
 * end offsets within `data` (the last equals data.length). The consumer owns `data` and its
 * ArrayBuffer (nothing else references it), so it may transfer it to a worker thread, and give it
 * back to the chunker's WindowPool when done.
 */
export interface ChunkBatch {
  data: Buffer;
  ends: number[];
}

/**
 * A byte stream that writes itself into the chunker's window, instead of handing out pieces the
 * chunker then copies in: `fill(dst)` writes the stream's next bytes at the start of `dst` (at
 * least one, at most dst.length) and returns how many; 0 means the end. A source that reads
 * files can read them straight into the window (convert dir: saves a copy of every byte).
 */
export interface FillSource {
  fill(dst: Uint8Array): Promise<number>;
  /** Called once when the chunker stops reading, at the end or early (an error, a consumer that left). */
  close?(): void;
}

function isFillSource(source: AsyncIterable<Uint8Array> | FillSource): source is FillSource {
  return typeof (source as FillSource).fill === 'function';
}

/**
 * Chunk an async byte stream into batches of whole chunks, one batch per window: the form the
 * pipelines want, because a batch crosses to a worker thread in one transfer with no per-chunk copy.
 * Memory: one window being filled plus the batches the consumer holds.
 */
export function chunkBatches(source: AsyncIterable<Uint8Array> | FillSource, opts: ChunkerOptions = {}): AsyncGenerator<ChunkBatch> {
  // Validate here, not inside the generator, so bad options throw at the call site.
  const sizes = validateFastcdcSizes(opts.sizes ?? DEFAULT_CHUNK_SIZES);
  const windowSize = resolveWindowSize(opts.windowSize, sizes);
  const windows = opts.windows ?? new WindowPool(windowSize, 0);
  if (windows.size !== windowSize) throw new UsageError(`chunker window pool holds ${windows.size}-byte windows, not ${windowSize}`);
  return batchWindows(source, sizes, windows);
}

/** Chunk an async byte stream with bounded memory; yields each plain chunk (a Buffer it owns) in order. */
export function chunkStream(source: AsyncIterable<Uint8Array>, opts: ChunkerOptions = {}): AsyncGenerator<Buffer> {
  // chunkBatches validates now; the generator below runs lazily.
  return splitBatches(chunkBatches(source, opts));
}

async function* splitBatches(batches: AsyncIterable<ChunkBatch>): AsyncGenerator<Buffer> {
  for await (const { data, ends } of batches) {
    let start = 0;
    for (const end of ends) {
      yield copyOut(data, start, end);
      start = end;
    }
  }
}

async function* batchWindows(source: AsyncIterable<Uint8Array> | FillSource, sizes: ChunkSizes, windows: WindowPool): AsyncGenerator<ChunkBatch> {
  const windowSize = windows.size;
  // Each byte lands in the window once: copied from a piece, or written there by a FillSource.
  // When the window is full, its settled chunks go out as a batch that keeps the window's memory,
  // and the uncertain last chunk (<= max bytes) moves to the front of a fresh window.
  let win = windows.take();
  let filled = 0;
  function* cut(): Generator<ChunkBatch> {
    const starts = wasmStarts(win, sizes);
    const carry = starts[starts.length - 2]!; // start of the last, possibly forced, chunk
    const next = windows.take();
    win.copy(next, 0, carry, filled);
    // windowSize > max guarantees at least one settled chunk, so the batch is never empty.
    yield { data: win.subarray(0, carry), ends: Array.from(starts.subarray(1, starts.length - 1)) };
    win = next;
    filled -= carry;
  }
  if (isFillSource(source)) {
    try {
      for (;;) {
        const n = await source.fill(win.subarray(filled));
        if (!(n >= 0 && n <= windowSize - filled)) throw new UsageError(`chunker fill source wrote ${n} bytes into ${windowSize - filled}`);
        if (n === 0) break;
        filled += n;
        if (filled === windowSize) yield* cut();
      }
    } finally {
      source.close?.();
    }
  } else {
    for await (const piece of source) {
      if (!(piece instanceof Uint8Array)) {
        throw new UsageError(`chunkStream source must yield Uint8Array pieces, got ${typeof piece}`);
      }
      // A piece larger than the window is consumed window by window; we never hold more than a view.
      for (let taken = 0; taken < piece.length; ) {
        const n = Math.min(windowSize - filled, piece.length - taken);
        win.set(piece.subarray(taken, taken + n), filled);
        filled += n;
        taken += n;
        if (filled === windowSize) yield* cut();
      }
    }
  }
  if (filled > 0) {
    const starts = wasmStarts(win.subarray(0, filled), sizes);
    yield { data: win.subarray(0, filled), ends: Array.from(starts.subarray(1)) };
  }
}
