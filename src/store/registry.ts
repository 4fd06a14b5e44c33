/**
 * A chunk store in an OCI registry repository: `oci://host[:port]/repo[:tag]`. Chunks are blobs
 * (their exact `.cacnk` bytes); segment manifests list them as layers, with a chunk map (chunk ID →
 * blob digest and size) as their first layer; an index under the tag (default `bootfs-chunks`) lists
 * the segments. Layout: src/store/registry-format.ts and docs/remote-stores.md.
 *
 * Reads: the index and every chunk map are loaded once, on first use; then one blob GET per chunk.
 * A miss re-reads the tag (at most every `refreshAfterMs`), so chunks written since are found.
 *
 * Writes: storeChunk uploads the blob (the client HEADs first), then waits for a group commit: the
 * chunks uploaded meanwhile become one new segment (map blob + manifest), and the index is re-read,
 * merged and put under the tag. So when storeChunk resolves, the chunk is referenced from the tag
 * (safe from garbage collection) and any reader finds it — no flush needed before writing an index
 * that names it. Small segments are repacked into full ones once more than `compactAfter` pile up.
 *
 * Concurrent writers on one tag: the registry has no compare-and-swap on tags, so the last index
 * put wins. Every commit re-reads the tag and merges (union), and re-adds this writer's segments, so
 * a loss is repaired by the writer's next commit or its close(); only two writers committing in
 * the same instant can drop the other's newest segment until then. Give concurrent writers
 * different tags when that matters.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeChunk, idToHex } from '../chunk.js';
import { BootfsError, ChunkCorruptError, ChunkNotFoundError, IoError, UsageError } from '../errors.js';
import { sha256Digest } from '../oci/digest.js';
import { OCI_INDEX, OCI_MANIFEST } from '../oci/media-types.js';
import { RegistryDigestError } from '../registry/errors.js';
import type { RegistryOptions } from '../registry/options.js';
import type { BlobRepo } from '../registry/types.js';
import { positiveInt } from '../util/limits.js';
import { buildSegment, ChunkMap, EMPTY_BLOB, EMPTY_DIGEST, encodeChunkMap, MAX_MAP_ENTRIES, MAX_STORED_CHUNK_BYTES, type MapEntry, SEGMENT_MAX_CHUNKS } from './registry-format.js';
import { parseRegistryStoreLocation, type RegistryStoreLocation } from './registry-location.js';
import { type Segment, StoreView } from './registry-view.js';
import type { GetOptions, WriteStore } from './types.js';

export interface RegistryStoreOptions {
  /** An open repository client (tests, or a caller sharing one); the store then does not close it. Default: a RegistryRepo for the URL. */
  repo?: BlobRepo;
  /** Options for the RegistryRepo the store opens (credentials, TLS, timeouts; concurrency defaults to 16 here, as for HttpStore). */
  registry?: RegistryOptions;
  /** Chunks per segment manifest (default 5000: a ~650 KB manifest, far below the 4 MiB cap). */
  segmentMaxChunks?: number;
  /** Repack the non-full segments into full ones when more than this many are listed (default 16). */
  compactAfter?: number;
  /** How long a commit waits for more chunks to join it, in ms (default 20). */
  commitDelayMs?: number;
  /** A chunk not found re-reads the tag if the last read is older than this, in ms (default 10 000). */
  refreshAfterMs?: number;
}

/** A chunk whose blob is uploaded and whose map entry waits for a commit. */
interface Pending extends MapEntry {
  id: Buffer;
  hex: string;
  sha256: Buffer;
}

interface Waiter {
  entry: Pending;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** `sha256:<hex>` of a raw SHA-256. */
const blobDigest = (sha256: Uint8Array) => `sha256:${Buffer.from(sha256).toString('hex')}`;

/** A WriteStore in one tag of one registry repository. */
export class RegistryStore implements WriteStore {
  /** `oci://host[:port]/repo:tag`. */
  readonly location: string;
  readonly ref: RegistryStoreLocation;
  private repoPromise: Promise<BlobRepo> | undefined;
  private readonly ownsRepo: boolean;
  private readonly segmentMax: number;
  private readonly compactAfter: number;
  private readonly commitDelayMs: number;
  private readonly refreshAfterMs: number;

  private readonly view: StoreView;
  private loaded: Promise<void> | undefined;
  private refreshing: Promise<void> | undefined;
  /** Metadata operations (read tag, commit, compact, publish) run one at a time. */
  private chain: Promise<unknown> = Promise.resolve();

  private readonly pending = new Map<string, Pending>();
  private readonly uploading = new Map<string, Promise<void>>();
  private queue: Waiter[] = [];
  private draining: Promise<void> | undefined;
  private emptyBlobPresent = false;
  private closed = false;

  constructor(url: string, private readonly opts: RegistryStoreOptions = {}) {
    this.ref = parseRegistryStoreLocation(url);
    this.location = `oci://${this.ref.registry}/${this.ref.repository}:${this.ref.tag}`;
    this.view = new StoreView(this.location, this.ref.tag);
    this.segmentMax = positiveInt('registry', 'segmentMaxChunks', opts.segmentMaxChunks, SEGMENT_MAX_CHUNKS);
    if (this.segmentMax > MAX_MAP_ENTRIES) throw new UsageError(`registry store option segmentMaxChunks must be at most ${MAX_MAP_ENTRIES}`);
    this.compactAfter = positiveInt('registry', 'compactAfter', opts.compactAfter, 16);
    this.commitDelayMs = opts.commitDelayMs ?? 20;
    this.refreshAfterMs = opts.refreshAfterMs ?? 10_000;
    if (!(this.commitDelayMs >= 0) || !(this.refreshAfterMs >= 0)) throw new UsageError('registry store options commitDelayMs and refreshAfterMs must be ≥ 0');
    this.ownsRepo = opts.repo === undefined;
    if (opts.repo) this.repoPromise = Promise.resolve(opts.repo);
  }

  async getStored(id: Uint8Array, opts: GetOptions = {}): Promise<Buffer> {
    const hex = idToHex(id);
    const blob = await this.locate(id);
    if (!blob) throw new ChunkNotFoundError(hex, this.location);
    const repo = await this.client();
    try {
      return await repo.getBlob(blob.digest, { maxBytes: blob.size, ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (err) {
      if (err instanceof RegistryDigestError) throw new ChunkCorruptError(hex, this.location, `blob ${blob.digest}: ${err.message}`);
      // Listed but gone (deleted, or collected by a garbage collection that ignored our manifests).
      if (err instanceof BootfsError && err.code === 'ERR_NOT_FOUND') throw new ChunkNotFoundError(hex, this.location);
      throw err;
    }
  }

  async getChunk(id: Uint8Array, opts: GetOptions = {}): Promise<Buffer> {
    const stored = await this.getStored(id, opts);
    return decodeChunk(id, stored, this.location, opts.size === undefined ? {} : { size: opts.size });
  }

  async hasChunk(id: Uint8Array): Promise<boolean> {
    return (await this.locate(id)) !== undefined;
  }

  /** The blob holding chunk `id` (digest and stored size), or undefined. */
  async blobOf(id: Uint8Array): Promise<{ digest: string; size: number } | undefined> {
    return this.locate(id);
  }

  async storeChunk(id: Uint8Array, stored: Uint8Array): Promise<boolean> {
    if (this.closed) throw new IoError(`registry store ${this.location} is closed`);
    if (stored.length === 0 || stored.length > MAX_STORED_CHUNK_BYTES) throw new UsageError(`chunk ${idToHex(id)}: stored size ${stored.length} is not between 1 and ${MAX_STORED_CHUNK_BYTES} bytes`);
    await this.ensureLoaded();
    const hex = idToHex(id);
    // Another call is storing it: "already there" only once that call's commit is done.
    const running = this.uploading.get(hex);
    if (running) {
      await running;
      return false;
    }
    if (this.view.find(id)) return false;
    const work = this.upload(Buffer.from(id), hex, stored);
    this.uploading.set(hex, work);
    try {
      await work;
      return true;
    } finally {
      this.uploading.delete(hex);
    }
  }

  /** Re-read the tag now (shared with a re-read already under way). */
  refresh(): Promise<void> {
    this.refreshing ??= this.locked(async () => this.view.read(await this.client())).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /**
   * Wait for every storeChunk under way and its commit, then make sure the tag still lists every
   * segment this store wrote (re-adding any a concurrent writer dropped). A reader does nothing here.
   */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.uploading.values()]);
    while (this.draining) await this.draining;
    if (this.view.hasOwn()) await this.locked(() => this.publish());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      if (this.ownsRepo && this.repoPromise) await (await this.repoPromise.catch(() => undefined))?.close();
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Reading the tag
  // ----------------------------------------------------------------------------------------------

  private client(): Promise<BlobRepo> {
    // Chunk traffic is many small requests: 16 in flight (the client's own default is 8) nearly
    // halves the time per 64 KiB blob against docker-registry on loopback.
    this.repoPromise ??= loadRegistryRepo(this.ref, { concurrency: 16, ...this.opts.registry });
    return this.repoPromise;
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private ensureLoaded(): Promise<void> {
    this.loaded ??= this.refresh().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }

  /** Committed entries first, then uploaded ones waiting for their commit. */
  private find(id: Uint8Array): { digest: string; size: number } | undefined {
    const hit = this.view.find(id);
    if (hit) return hit;
    const p = this.pending.get(idToHex(id));
    return p ? { digest: blobDigest(p.sha256), size: p.size } : undefined;
  }

  /** find(), re-reading the tag once on a miss when the last read is older than refreshAfterMs. */
  private async locate(id: Uint8Array): Promise<{ digest: string; size: number } | undefined> {
    await this.ensureLoaded();
    const hit = this.find(id);
    if (hit || performance.now() - this.view.readAt < this.refreshAfterMs) return hit;
    await this.refresh();
    return this.find(id);
  }

  // ----------------------------------------------------------------------------------------------
  // Writing: upload, group commit, publish, compact
  // ----------------------------------------------------------------------------------------------

  private async upload(id: Buffer, hex: string, stored: Uint8Array): Promise<void> {
    const sha256 = createHash('sha256').update(stored).digest();
    const repo = await this.client();
    await repo.putBlob(blobDigest(sha256), Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength));
    const entry: Pending = { id, hex, sha256, size: stored.length };
    this.pending.set(hex, entry);
    await new Promise<void>((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      this.draining ??= this.drain();
    });
  }

  /** Commit queued entries, a batch at a time, until the queue is empty. */
  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        // Let the rest of a burst (a make window's chunks finish uploading together) join this commit.
        if (this.queue.length < this.segmentMax && this.commitDelayMs > 0) await sleep(this.commitDelayMs);
        const batch = this.queue;
        this.queue = [];
        try {
          await this.locked(() => this.commit(batch.map((w) => w.entry)));
          for (const w of batch) w.resolve();
        } catch (err) {
          for (const w of batch) w.reject(err);
        } finally {
          for (const w of batch) this.pending.delete(w.entry.hex);
        }
      }
    } finally {
      // Cleared in the same tick the queue is seen empty, so an entry queued later starts a new drain.
      this.draining = undefined;
    }
  }

  /** New segments for `entries`, then the tag updated. */
  private async commit(entries: Pending[]): Promise<void> {
    const todo = entries.filter((e) => !this.view.find(e.id));
    for (let i = 0; i < todo.length; i += this.segmentMax) this.view.add(await this.writeSegment(todo.slice(i, i + this.segmentMax)));
    await this.publish();
  }

  /** Upload a chunk map and its segment manifest (the chunk blobs are already there). */
  private async writeSegment(entries: readonly MapEntry[]): Promise<Segment> {
    const repo = await this.client();
    const body = encodeChunkMap(entries);
    const map = ChunkMap.parse(body, 'being written');
    const built = buildSegment(map, body);
    if (!this.emptyBlobPresent) {
      await repo.putBlob(EMPTY_DIGEST, EMPTY_BLOB);
      this.emptyBlobPresent = true;
    }
    await repo.putBlob(built.mapDigest, body);
    await repo.putManifest(built.digest, OCI_MANIFEST, built.body);
    return { descriptor: built.descriptor, map, own: true };
  }

  /** Merge what the tag holds now, repack if due, and put the index unless it is unchanged. */
  private async publish(): Promise<void> {
    const repo = await this.client();
    await this.view.read(repo);
    await this.compact();
    const body = this.view.indexBody();
    const digest = sha256Digest(body);
    if (digest === this.view.indexDigest) return;
    await repo.putManifest(this.ref.tag, OCI_INDEX, body);
    this.view.indexDigest = digest;
  }

  /** More than compactAfter non-full segments: repack their chunks (sorted by ID) into full ones. */
  private async compact(): Promise<void> {
    const small = this.view.smallSegments(this.segmentMax);
    if (small.length <= this.compactAfter) return;
    const entries: MapEntry[] = [];
    const seen = new Set<string>();
    for (const s of small) {
      for (let i = 0; i < s.map.count; i++) {
        const e = s.map.entry(i);
        const key = Buffer.from(e.id).toString('hex');
        if (seen.has(key)) continue;
        seen.add(key);
        entries.push(e);
      }
    }
    entries.sort((a, b) => Buffer.compare(a.id, b.id));
    const made: Segment[] = [];
    for (let i = 0; i < entries.length; i += this.segmentMax) made.push(await this.writeSegment(entries.slice(i, i + this.segmentMax)));
    this.view.replace(small, made);
  }
}

/** The registry client for the location's repository, loaded on first use (undici and the auth code cost import time). */
async function loadRegistryRepo(ref: RegistryStoreLocation, opts: RegistryOptions): Promise<BlobRepo> {
  const { RegistryRepo } = await import('../registry/client.js');
  return new RegistryRepo({ registry: ref.registry, repository: ref.repository }, opts);
}

export { parseRegistryStoreLocation, type RegistryStoreLocation };
