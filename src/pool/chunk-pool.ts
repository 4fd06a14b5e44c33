/**
 * A pool of worker threads for the CPU-heavy part of chunk I/O: the chunk digest and zstd. The main
 * thread keeps chunking and file/network I/O; callers await results in whatever order they need,
 * so output order (and thus index bytes) never depends on which worker finished first.
 */
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
// Types only: bin.ts loads this module before anything else, for every command.
import type { Digest, EncodedChunk } from '../chunk.js';
import { BootfsError, ChunkCorruptError, ChunkNotFoundError, IoError } from '../errors.js';
import type { BatchMode, Job, Reply, WorkerData } from './protocol.js';

/** What a batch job returns: IDs (32 bytes each), stored sizes and, for 'encode', the stored bytes back to back. */
export interface BatchResult {
  ids: Buffer;
  storedSizes: number[];
  stored?: Buffer;
  /** The batch's `data` buffer, back from the worker for reuse (see WindowPool). */
  window?: ArrayBuffer;
}

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  /** Jobs whose replies this thread has not handled yet. */
  inFlight: number;
  /** Jobs sent, modulo 2^32 as an int32 (as `done` counts). */
  sent: number;
  /** Jobs the worker has finished, counted by the worker itself (see unfinished()). */
  done: Int32Array;
}

// When running from TypeScript sources (tests, tsx), the worker is a .ts file and needs tsx.
const fromSource = import.meta.url.endsWith('.ts');
const workerUrl = new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url);

/** From sources, register tsx's loader inside the worker before loading worker.ts (dev and tests only). */
function sourceWorker(options: WorkerOptions): Worker {
  const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api')).href;
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}); })`;
  return new Worker(code, { ...options, eval: true });
}

/**
 * An exactly-sized copy to transfer to a worker. Copying (memcpy speed) is far cheaper than the
 * alternatives: cloning a view clones its whole ArrayBuffer (often a multi-MiB window), and
 * transferring the caller's own buffer would detach memory the caller still holds.
 */
function transferable(buf: Uint8Array): Uint8Array {
  return new Uint8Array(buf); // copies (Buffer#slice would return a view)
}

export class ChunkPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private closed = false;

  /** `threads` defaults to the number of cores (hash + zstd scale linearly with them). */
  constructor(threads = availableParallelism()) {
    const n = Math.max(1, Math.floor(threads));
    for (let i = 0; i < n; i++) {
      const done = new Int32Array(new SharedArrayBuffer(4));
      const options: WorkerOptions = { workerData: { done } satisfies WorkerData };
      const worker = fromSource ? sourceWorker(options) : new Worker(workerUrl, options);
      const slot: Slot = { worker, inFlight: 0, sent: 0, done };
      worker.on('message', (reply: Reply) => {
        // Idle workers must not keep the process alive; busy ones must (see submit).
        if (--slot.inFlight === 0) worker.unref();
        const p = this.pending.get(reply.seq);
        this.pending.delete(reply.seq);
        p?.resolve(reply);
      });
      worker.on('error', (err) => this.failAll(new BootfsError(`chunk worker failed: ${err.message}`, { cause: err })));
      worker.on('exit', (code) => {
        if (!this.closed) this.failAll(new BootfsError(`chunk worker exited unexpectedly with code ${code}`));
      });
      // Idle until the first job. After the listeners: attaching one refs the worker's port again.
      worker.unref();
      this.slots.push(slot);
    }
  }

  get threads(): number {
    return this.slots.length;
  }

  /**
   * Whether every worker has at least `queued` jobs it has not finished yet (more work sent now
   * would wait). Counted from the workers' own tallies, so the answer is current even while this
   * thread has been too busy to handle their replies.
   */
  saturated(queued: number): boolean {
    return this.slots.every((s) => unfinished(s) >= queued);
  }

  /** Hash and compress plain bytes. */
  async encode(plain: Uint8Array, digest: Digest = 'sha512-256'): Promise<EncodedChunk> {
    const copy = transferable(plain);
    const reply = await this.submit({ seq: 0, op: 'encode', plain: copy, digest }, [copy]);
    return { id: Buffer.from(reply.id!), stored: view(reply.stored!) };
  }

  /**
   * Process a batch of consecutive chunks (see ChunkBatch) in one worker: hash each, and per
   * `mode` also compress ('encode', returning the stored bytes) or write the missing ones into the
   * local store at `root` ('store-local'). IDs are `digest`s of the plain bytes. `data`'s
   * ArrayBuffer is transferred: the caller gives it up (chunkBatches hands out buffers nothing
   * else references).
   */
  async batch(data: Uint8Array, ends: number[], mode: BatchMode, digest: Digest, root?: string): Promise<BatchResult> {
    const job: Job = { seq: 0, op: 'batch', data, ends, mode, digest };
    if (root !== undefined) job.root = root;
    const reply = await this.submit(job, [data]);
    const result: BatchResult = { ids: view(reply.ids!), storedSizes: reply.storedSizes ?? [] };
    if (reply.data) result.window = reply.data.buffer as ArrayBuffer;
    if (reply.stored) result.stored = view(reply.stored);
    return result;
  }

  /**
   * Read, decode and verify consecutive chunks from the local store at `root`. With `outPath`
   * they are written into that (existing) file at `outOffset` and nothing is returned; otherwise
   * their plain bytes come back concatenated. Rejects with ChunkNotFoundError / ChunkCorruptError.
   */
  async extractLocal(root: string, ids: Uint8Array, sizes: number[], out?: { path: string; offset: number }): Promise<Buffer | undefined> {
    const idCopy = new Uint8Array(ids);
    const job: Job = { seq: 0, op: 'extract-local', root, ids: idCopy, sizes, outOffset: out?.offset ?? 0 };
    if (out) job.outPath = out.path;
    const reply = await this.submit(job, [idCopy]);
    return reply.plain ? view(reply.plain) : undefined;
  }

  /** Hash only (an index without a store). */
  async hash(plain: Uint8Array, digest: Digest = 'sha512-256'): Promise<Buffer> {
    const buf = transferable(plain);
    const reply = await this.submit({ seq: 0, op: 'hash', plain: buf, digest }, [buf]);
    return Buffer.from(reply.id!);
  }

  /** Decompress and verify; rejects with ChunkCorruptError. */
  async decode(id: Uint8Array, stored: Uint8Array, location: string, opts: { size?: number; maxSize?: number } = {}): Promise<Buffer> {
    const copy = transferable(stored);
    const reply = await this.submit({ seq: 0, op: 'decode', id, stored: copy, location, ...opts }, [copy]);
    return view(reply.plain!);
  }

  /**
   * Read, decompress and verify the cache entry `file` (a chunk file), all in a worker: undefined
   * when absent; rejects with ChunkCorruptError for anything that is not a good copy. A good
   * entry whose mtime is older than `touchAfterMs` gets a fresh one (LRU recency).
   */
  async cacheRead(file: string, id: Uint8Array, location: string, opts: { size?: number; maxSize?: number; touchAfterMs?: number } = {}): Promise<Buffer | undefined> {
    const reply = await this.submit({ seq: 0, op: 'cache-read', file, id: new Uint8Array(id), location, ...opts }, []);
    return reply.plain ? view(reply.plain) : undefined;
  }

  /**
   * cacheRead for several entries in one job (files[i] holds chunk i of `ids`, 32 bytes each, of
   * plain size sizes[i]): the good ones, undefined for every entry that is absent or not a clean
   * copy (the caller's careful path decides about those).
   */
  async cacheReadMany(files: string[], ids: Uint8Array, sizes: number[], location: string, opts: { touchAfterMs?: number } = {}): Promise<(Buffer | undefined)[]> {
    if (files.length === 1 && this.slots.every((s) => s.inFlight === 0)) {
      // A lone chunk while every worker idles (a random read, the first chunk of a small file):
      // reading it here saves two thread hops, more than the read, decode and hash cost.
      const { readCacheEntries } = await (cacheBatch ??= import('./cache-batch.js'));
      const { plain, found } = readCacheEntries(files, ids, sizes, location, opts.touchAfterMs);
      return [found[0] ? plain : undefined];
    }
    const idCopy = new Uint8Array(ids);
    const reply = await this.submit({ seq: 0, op: 'cache-read-many', files, ids: idCopy, sizes, location, ...opts }, [idCopy]);
    const all = view(reply.plain!);
    let off = 0;
    return sizes.map((size, i) => {
      const start = off;
      off += size;
      return reply.found![i] ? all.subarray(start, off) : undefined;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.failAll(new BootfsError('chunk pool closed'));
  }

  /** Send `job` to the least-loaded worker; the buffers in `transfer` move to it (the caller gives them up). */
  private submit(job: Job, transfer: Uint8Array[]): Promise<Extract<Reply, { ok: true }>> {
    if (this.closed) return Promise.reject(new BootfsError('chunk pool closed'));
    job.seq = ++this.seq;
    // Least-loaded worker: chunks vary in size and zstd time varies with content.
    let slot = this.slots[0]!;
    for (const s of this.slots) if (unfinished(s) < unfinished(slot)) slot = s;
    slot.sent = (slot.sent + 1) | 0;
    if (slot.inFlight++ === 0) slot.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(job.seq, {
        resolve: (r) => {
          if (r.ok) resolve(r);
          else if (r.corrupt) reject(new ChunkCorruptError(r.corrupt.chunkId, r.corrupt.location, r.corrupt.reason));
          else if (r.missing) reject(new ChunkNotFoundError(r.missing.chunkId, r.missing.location));
          else if (r.code === 'ERR_IO') reject(new IoError(r.message));
          else reject(new BootfsError(r.message));
        },
        reject,
      });
      slot.worker.postMessage(job, transfer.map((b) => b.buffer as ArrayBuffer));
    });
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/** Jobs sent to the slot's worker that it has not finished. */
function unfinished(slot: Slot): number {
  return jobsBetween(slot.sent, Atomics.load(slot.done, 0));
}

/**
 * `sent - done` for two int32 counters that wrap around at 2^31 (a mount daemon that reads a
 * thousand chunks a second gets there in 25 days); right while the true difference is below 2^31.
 */
export function jobsBetween(sent: number, done: number): number {
  return (sent - done) | 0;
}

/** A transferred reply array as a Buffer over the same memory (no copy). */
function view(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.length);
}

/** Loaded on the first inline cache read: the main thread otherwise never loads zstd. */
let cacheBatch: Promise<typeof import('./cache-batch.js')> | undefined;

let shared: ChunkPool | undefined;

/**
 * The process-wide pool the CLI uses. Created on first use; `bin.ts` creates it before loading the
 * rest of the CLI so worker start-up (~70 ms each here) overlaps module loading. Its workers are
 * unref'd, so it never keeps the process alive. `threads` applies to the call that creates it.
 */
export function sharedPool(threads?: number): ChunkPool {
  shared ??= new ChunkPool(threads);
  return shared;
}
