/**
 * A chunk store in a local directory, in the casync/desync layout `<root>/<4hex>/<id>.cacnk`
 * (one zstd frame per file). Several processes may write at once: each write goes to a uniquely
 * named temp file in the shard directory and is renamed into place, so readers only ever see whole
 * chunks, and a repeated put is a no-op.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { decodeChunk, idToHex, isHexId } from '../chunk.js';
import { BootfsError, ChunkCorruptError, ChunkNotFoundError, errnoCode, IoError, NotFoundError } from '../errors.js';
import type { GetOptions, PruneStore, StoredChunkInfo } from './types.js';
import { ReadScratch } from '../util/read-scratch.js';

/** File suffix of a stored chunk; casync and desync enumerate exactly `*\/*.cacnk`. */
export const CHUNK_SUFFIX = '.cacnk';
/**
 * Temp files start with this prefix and never end in `.cacnk`, so `casync gc`, `desync prune` and
 * our own listing skip another writer's in-flight file.
 */
export const TEMP_PREFIX = '.tmp-';

/** The largest stored (compressed) size a chunk of `plainSize` bytes can honestly have. */
export function storedBound(plainSize: number): number {
  return plainSize + Math.ceil(plainSize / 64) + 4096;
}

/**
 * Unique among every writer of a store: a random tag drawn once per thread (PIDs alone collide
 * across containers sharing a volume) plus a counter. Drawing random bytes per chunk cost a worker
 * about 1% of a convert.
 */
const writerTag = `${process.pid}.${randomBytes(6).toString('hex')}`;
let tempSeq = 0;
function tempName(hex: string): string {
  return `${TEMP_PREFIX}${hex}.${writerTag}.${(tempSeq++).toString(36)}`;
}
const SHARD = /^[0-9a-f]{4}$/;

export interface LocalStoreOptions {
  /** Create the root directory if missing (writers); readers want a clear "not found" instead. */
  create?: boolean;
}

export class LocalStore implements PruneStore {
  readonly root: string;
  readonly location: string;

  private constructor(root: string) {
    this.root = root;
    this.location = root;
  }

  /** Open a store directory; throws NotFoundError if it does not exist and `create` is not set. */
  static async open(root: string, opts: LocalStoreOptions = {}): Promise<LocalStore> {
    const abs = path.resolve(root);
    try {
      if (opts.create) await mkdir(abs, { recursive: true });
      const st = await stat(abs);
      if (!st.isDirectory()) throw new IoError(`store ${abs} is not a directory`);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new NotFoundError(`store directory ${abs} does not exist`);
      if (err instanceof IoError) throw err;
      throw new IoError(`cannot open store ${abs}: ${(err as Error).message}`, err);
    }
    return new LocalStore(abs);
  }

  /** Path of a chunk's file (whether or not it exists). */
  chunkPath(id: Uint8Array | string): string {
    const hex = typeof id === 'string' ? id : idToHex(id);
    return path.join(this.root, hex.slice(0, 4), hex + CHUNK_SUFFIX);
  }

  async getStored(id: Uint8Array, _opts?: GetOptions): Promise<Buffer> {
    const file = this.chunkPath(id);
    try {
      return await readFile(file);
    } catch (err) {
      throw this.readError(id, err);
    }
  }

  /**
   * Synchronous read of a chunk's stored bytes, for worker threads (same errors as getStored),
   * into a buffer kept for the next call (ReadScratch): the returned view is valid only until
   * then. Hot loops (extract in the workers) read thousands of chunks.
   */
  getStoredSyncScratch(id: Uint8Array, plainSize: number): Buffer {
    let fd: number;
    try {
      fd = openSync(this.chunkPath(id), 'r');
    } catch (err) {
      throw this.readError(id, err);
    }
    try {
      const size = fstatSync(fd).size;
      // zstd never grows data by more than a few bytes per 128 KiB block: anything larger is junk
      // (and must not make us allocate it).
      if (size > storedBound(plainSize)) throw new ChunkCorruptError(idToHex(id), this.location, `stored file is ${size} bytes, too large for a ${plainSize}-byte chunk`);
      return this.readScratch.read(fd, size);
    } catch (err) {
      throw this.readError(id, err);
    } finally {
      closeSync(fd);
    }
  }

  private readonly readScratch = new ReadScratch(1 << 20);

  private readError(id: Uint8Array, err: unknown): Error {
    if (err instanceof BootfsError) return err;
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return new ChunkNotFoundError(idToHex(id), this.location);
    return new IoError(`cannot read chunk ${idToHex(id)} from ${this.location}: ${(err as Error).message}`, err);
  }

  async getChunk(id: Uint8Array, opts: GetOptions = {}): Promise<Buffer> {
    const stored = await this.getStored(id, opts);
    return decodeChunk(id, stored, this.location, opts.size === undefined ? {} : { size: opts.size });
  }

  async hasChunk(id: Uint8Array): Promise<boolean> {
    try {
      // stat follows symlinks: casync's cache marks a missing chunk with a link to /dev/null.
      const st = await stat(this.chunkPath(id));
      return st.isFile();
    } catch (err) {
      return this.absentOrThrow(err, idToHex(id));
    }
  }

  /** hasChunk's answer to a failed stat: absent for ENOENT or ENOTDIR (a shard path that is a file), else IoError. */
  private absentOrThrow(err: unknown, hex: string): false {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw new IoError(`cannot stat chunk ${hex} in ${this.location}: ${(err as Error).message}`, err);
  }

  async storeChunk(id: Uint8Array, stored: Uint8Array): Promise<boolean> {
    if (await this.hasChunk(id)) return false;
    const hex = idToHex(id);
    const dir = path.join(this.root, hex.slice(0, 4));
    const final = path.join(dir, hex + CHUNK_SUFFIX);
    // pid + random: unique across processes and across concurrent puts within one process.
    const tmp = path.join(dir, tempName(hex));
    try {
      await mkdir(dir, { recursive: true });
      const fh = await open(tmp, 'wx', 0o644);
      try {
        await fh.writeFile(stored);
      } finally {
        await fh.close();
      }
      // rename replaces atomically; if another writer won the race, its file holds the same bytes.
      await rename(tmp, final);
      return true;
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new IoError(`cannot store chunk ${hex} in ${this.location}: ${(err as Error).message}`, err);
    }
  }

  /**
   * Synchronous store for worker threads (the chunk pool writes local stores itself: a sync
   * syscall in a worker is far cheaper than an fs promise round trip on the main thread).
   * `stored` may be produced lazily, so a chunk the store already has is never compressed.
   * Returns the stored size, or -1 when the chunk was already present.
   */
  storeChunkSync(id: Uint8Array, produce: () => Uint8Array): number {
    const hex = idToHex(id);
    const shard = hex.slice(0, 4);
    const dir = path.join(this.root, shard);
    const final = path.join(dir, hex + CHUNK_SUFFIX);
    if (this.hasChunkSync(hex, final)) return -1;
    const stored = produce();
    const tmp = path.join(dir, tempName(hex));
    try {
      if (!this.knownShards.has(shard)) {
        mkdirSync(dir, { recursive: true });
        this.knownShards.add(shard);
      }
      const fd = openSync(tmp, 'wx', 0o644);
      try {
        for (let off = 0; off < stored.length; ) off += writeSync(fd, stored, off);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, final);
      return stored.length;
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // never created, or already renamed
      }
      throw new IoError(`cannot store chunk ${hex} in ${this.location}: ${(err as Error).message}`, err);
    }
  }

  /** hasChunk, synchronously. */
  private hasChunkSync(hex: string, file: string): boolean {
    try {
      return statSync(file, { throwIfNoEntry: false })?.isFile() ?? false;
    } catch (err) {
      return this.absentOrThrow(err, hex);
    }
  }

  /** Shard directories known to exist; saves a mkdir per chunk (a store has at most 65536). */
  private readonly knownShards = new Set<string>();

  /** Open a store root without checks (worker threads; the main thread already checked it). */
  static unchecked(root: string): LocalStore {
    return new LocalStore(root);
  }

  async removeChunk(id: Uint8Array): Promise<void> {
    try {
      await unlink(this.chunkPath(id));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw new IoError(`cannot remove chunk ${idToHex(id)} from ${this.location}: ${(err as Error).message}`, err);
    }
  }

  async *listChunks(): AsyncIterable<StoredChunkInfo> {
    for (const shard of await this.readDir(this.root)) {
      if (!SHARD.test(shard)) continue;
      const dir = path.join(this.root, shard);
      for (const name of await this.readDir(dir)) {
        if (!name.endsWith(CHUNK_SUFFIX)) continue;
        const hex = name.slice(0, -CHUNK_SUFFIX.length);
        if (!isHexId(hex) || !hex.startsWith(shard)) continue;
        let st;
        try {
          st = await stat(path.join(dir, name));
        } catch (err) {
          if (errnoCode(err) === 'ENOENT') continue; // removed by a concurrent prune
          throw err;
        }
        if (st.isFile()) yield { id: hex, size: st.size, mtimeMs: st.mtimeMs };
      }
    }
  }

  /** Temp files left by writers, with their age; prune removes only stale ones. */
  async *listTempFiles(): AsyncIterable<{ path: string; mtimeMs: number }> {
    for (const shard of await this.readDir(this.root)) {
      if (!SHARD.test(shard)) continue;
      const dir = path.join(this.root, shard);
      for (const name of await this.readDir(dir)) {
        if (!name.startsWith(TEMP_PREFIX)) continue;
        const p = path.join(dir, name);
        const st = await stat(p).catch(() => undefined);
        if (st?.isFile()) yield { path: p, mtimeMs: st.mtimeMs };
      }
    }
  }

  async close(): Promise<void> {}

  private async readDir(dir: string): Promise<string[]> {
    try {
      return (await readdir(dir)).sort();
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
      throw new IoError(`cannot list ${dir}: ${(err as Error).message}`, err);
    }
  }
}
