/**
 * `extract`: rebuild a blob from its index and a chunk store. Every chunk is verified against its
 * ID and its size in the index before a byte of it is written; output goes to a temp file renamed
 * into place only when complete, so a failed extract leaves no half-written file.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { errnoCode, IoError } from '../errors.js';
import type { BlobIndex } from '../index/caibx.js';
import { ChunkPool } from '../pool/chunk-pool.js';
import { BatchBuffer, decodeLocalBatch, writeAt } from '../pool/extract-batch.js';
import { CHUNK_ID_BYTES } from '../chunk.js';
import { LocalStore } from '../store/local.js';
import type { ChunkStore } from '../store/types.js';
import { mapOrdered } from './ordered.js';

export interface ExtractProgress {
  bytes: number;
  chunks: number;
}

export interface ExtractOptions {
  pool?: ChunkPool;
  /**
   * Local stores into a regular file: the main thread, otherwise idle, also decodes one batch in
   * (pool.threads + 1). Meant for a pool started with a thread fewer than the cores (`bootfs
   * extract` does): one isolate less to boot (~50 ms of CPU) for the same parallelism.
   */
  mainThread?: boolean;
  /** Chunks fetched/decoded at once (network stores want more than local disks). */
  inFlight?: number;
  onProgress?: (p: ExtractProgress) => void;
  signal?: AbortSignal;
}

/** Bytes to write, in order; implemented by a file (temp + rename) or a stream (stdout). */
export interface BlobSink {
  /**
   * A regular file the output goes to, when positioned writes into it are allowed (workers then
   * fill it in parallel instead of calling write()). Absent for streams, devices and FIFOs.
   */
  readonly positionalPath?: string;
  write(buf: Buffer): Promise<void>;
  /** Make the output visible (rename into place / flush). */
  commit(): Promise<void>;
  /** Remove partial output; called on any failure. */
  abort(): Promise<void>;
}

/** Fetch, verify and write every chunk of `index` in order into `sink`. */
export async function extractBlob(index: BlobIndex, store: ChunkStore, sink: BlobSink, opts: ExtractOptions = {}): Promise<ExtractProgress> {
  const pool = opts.pool ?? new ChunkPool();
  const { table } = index;
  const progress: ExtractProgress = { bytes: 0, chunks: 0 };
  try {
    if (store instanceof LocalStore) {
      await extractLocal(index, store, sink, pool, progress, opts);
      await sink.commit();
      return progress;
    }
    const indices = Array.from({ length: table.count }, (_, i) => i);
    const chunks = mapOrdered(indices, opts.inFlight ?? 32, async (i) => {
      opts.signal?.throwIfAborted();
      const id = table.id(i);
      const size = table.size(i);
      const stored = await store.getStored(id, { size });
      return pool.decode(id, stored, store.location, { size });
    });
    for await (const plain of chunks) {
      await sink.write(plain);
      progress.bytes += plain.length;
      progress.chunks++;
      opts.onProgress?.(progress);
    }
    await sink.commit();
  } catch (err) {
    await sink.abort();
    throw err;
  } finally {
    if (!opts.pool) await pool.close();
  }
  return progress;
}

/** Plain bytes per worker job when extracting from a local store: few messages, short tail. */
const EXTRACT_BATCH_BYTES = 4 * 1024 * 1024;

/** Consecutive chunk ranges [first, last) of about EXTRACT_BATCH_BYTES plain bytes each. */
function* batchRanges(index: BlobIndex): Generator<[number, number]> {
  const { table } = index;
  let first = 0;
  for (let i = 0; i < table.count; i++) {
    if (table.end(i) - table.start(first) >= EXTRACT_BATCH_BYTES || i === table.count - 1) {
      yield [first, i + 1];
      first = i + 1;
    }
  }
}

/**
 * Local stores: workers read, decode and verify whole batches with sync I/O, and write them in
 * place when the sink is a regular file; the main thread only schedules.
 */
async function extractLocal(index: BlobIndex, store: LocalStore, sink: BlobSink, pool: ChunkPool, progress: ExtractProgress, opts: ExtractOptions): Promise<void> {
  const { table } = index;
  const out = sink.positionalPath;
  // Every (threads + 1)-th batch is the main thread's, when it helps (see ExtractOptions.mainThread).
  const mainEvery = opts.mainThread && out !== undefined ? pool.threads + 1 : 0;
  const mainBuffer = new BatchBuffer();
  let n = 0;
  const jobs = mapOrdered(batchRanges(index), 2 * pool.threads + (mainEvery ? 1 : 0), async ([first, last]) => {
    opts.signal?.throwIfAborted();
    const sizes: number[] = [];
    for (let i = first; i < last; i++) sizes.push(table.size(i));
    const ids = table.ids.subarray(first * CHUNK_ID_BYTES, last * CHUNK_ID_BYTES);
    const bytes = table.end(last - 1) - table.start(first);
    if (mainEvery && n++ % mainEvery === mainEvery - 1) {
      // After the jobs queued with it have gone to the workers; then synchronously, as they do.
      await new Promise((resolve) => setImmediate(resolve));
      const buf = mainBuffer.get(bytes + 1);
      decodeLocalBatch(store, ids, sizes, buf);
      writeAt(out!, buf, bytes, table.start(first));
      return { plain: undefined, chunks: last - first, bytes };
    }
    const plain = await pool.extractLocal(store.root, ids, sizes, out === undefined ? undefined : { path: out, offset: table.start(first) });
    return { plain, chunks: last - first, bytes };
  });
  for await (const r of jobs) {
    if (r.plain) await sink.write(r.plain);
    progress.bytes += r.bytes;
    progress.chunks += r.chunks;
    opts.onProgress?.(progress);
  }
}

/**
 * A sink writing `target` atomically: a temp file beside it, renamed over it on commit. When
 * `target` already exists and is not a regular file (a device such as /dev/null, a FIFO), bytes
 * are written to it directly, since renaming over it would be wrong.
 */
export async function fileSink(target: string): Promise<BlobSink> {
  const abs = path.resolve(target);
  const existing = await stat(abs).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new IoError(`cannot write ${abs}: ${(err as Error).message}`, err);
  });
  if (existing?.isDirectory()) throw new IoError(`cannot write ${abs}: it is a directory`);
  const direct = existing !== undefined && !existing.isFile();
  const tmp = direct ? abs : path.join(path.dirname(abs), `.${path.basename(abs)}.${process.pid}.${randomBytes(4).toString('hex')}.partial`);
  let fh: FileHandle;
  try {
    fh = await open(tmp, direct ? 'w' : 'wx', 0o644);
  } catch (err) {
    throw new IoError(`cannot write ${abs}: ${(err as Error).message}`, err);
  }
  let closed = false;
  const close = async (): Promise<void> => {
    if (!closed) {
      closed = true;
      await fh.close();
    }
  };
  return {
    ...(direct ? {} : { positionalPath: tmp }),
    async write(buf) {
      try {
        await fh.write(buf);
      } catch (err) {
        throw new IoError(`cannot write ${abs}: ${(err as Error).message}`, err);
      }
    },
    async commit() {
      try {
        if (!direct) await fh.sync();
        await close();
        if (!direct) await rename(tmp, abs);
      } catch (err) {
        throw new IoError(`cannot write ${abs}: ${(err as Error).message}`, err);
      }
    },
    async abort() {
      await close().catch(() => undefined);
      if (!direct) await unlink(tmp).catch(() => undefined);
    },
  };
}

/** A sink writing to a stream such as stdout, honouring backpressure. Partial output cannot be undone. */
export function streamSink(out: Writable): BlobSink {
  return {
    write(buf) {
      return new Promise((resolve, reject) => {
        out.write(buf, (err) => (err ? reject(new IoError(`cannot write output: ${err.message}`, err)) : resolve()));
      });
    },
    async commit() {},
    async abort() {},
  };
}
