/**
 * Stores tried in order for one chunk: the first store that has it and serves bytes that verify
 * wins. A store that lacks the chunk, serves a corrupt copy or fails (after its own retries within
 * its deadline) passes the question to the next one; when every store has failed the error says
 * what each one did. The read path of a mount sits on this.
 */
import { decodeChunk, idToHex } from '../chunk.js';
import { BootfsError, ChunkCorruptError, ChunkNotFoundError, ExitCode } from '../errors.js';
import type { ChunkDecoder, ChunkStore, Fetched } from './types.js';

export interface RouterCounters {
  /** Chunks fetched from a store (verified). */
  fetches: number;
  /** Stored bytes received from stores. */
  bytes: number;
  /** Copies that failed verification. */
  corrupt: number;
  /** Store errors other than "not found" and "corrupt" (after the store's own retries). */
  errors: number;
}

/** Every store failed for one chunk: corrupt everywhere → integrity error; otherwise an I/O error. */
export class ChunkUnavailableError extends BootfsError {
  constructor(id: string, reasons: string[], integrity: boolean) {
    super(`chunk ${id} is not available: ${reasons.join('; ')}`, {
      code: integrity ? 'ERR_CHUNK_CORRUPT' : 'ERR_IO',
      exitCode: integrity ? ExitCode.integrity : ExitCode.error,
    });
  }
}

export class StoreRouter {
  readonly counters: RouterCounters = { fetches: 0, bytes: 0, corrupt: 0, errors: 0 };

  constructor(
    readonly stores: readonly ChunkStore[],
    private readonly opts: { maxChunkSize?: number; decode?: ChunkDecoder; onError?: (store: string, id: string, err: unknown) => void } = {},
  ) {
    if (stores.length === 0) throw new RangeError('StoreRouter needs at least one store');
  }

  get location(): string {
    return this.stores.map((s) => s.location).join(', ');
  }

  /** Fetch and verify chunk `id` (plain size `size` when known) from the first store that has a good copy. */
  async fetch(id: Uint8Array, size?: number, signal?: AbortSignal): Promise<Fetched> {
    const reasons: string[] = [];
    let missing = 0;
    let corrupt = 0;
    for (const store of this.stores) {
      signal?.throwIfAborted();
      try {
        const stored = await store.getStored(id, { ...(size !== undefined ? { size } : {}), ...(signal ? { signal } : {}) });
        this.counters.bytes += stored.length;
        const plain = await (this.opts.decode ?? decodeChunk)(id, stored, store.location, size !== undefined ? { size } : { maxSize: this.opts.maxChunkSize });
        this.counters.fetches++;
        return { stored, plain };
      } catch (err) {
        if (err instanceof ChunkNotFoundError) {
          missing++;
          reasons.push(`${store.location}: not found`);
          continue;
        }
        if (signal?.aborted) throw err;
        // A copy that fails verification here, or that the store itself reports corrupt.
        if (err instanceof ChunkCorruptError) {
          corrupt++;
          this.counters.corrupt++;
          reasons.push(`${store.location}: corrupt (${err.reason})`);
        } else {
          this.counters.errors++;
          reasons.push(`${store.location}: ${(err as Error).message}`);
        }
        this.opts.onError?.(store.location, idToHex(id), err);
      }
    }
    if (missing === this.stores.length) throw new ChunkNotFoundError(idToHex(id), this.location);
    // An integrity failure only when no store failed for another reason (it might have had a good copy).
    throw new ChunkUnavailableError(idToHex(id), reasons, corrupt > 0 && missing + corrupt === this.stores.length);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.stores.map((s) => s.close()));
  }
}
