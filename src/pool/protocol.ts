/** Messages between the chunk pool and its worker threads. */
import type { Digest } from '../chunk.js';

export type Job =
  | { seq: number; op: 'encode'; plain: Uint8Array; digest: Digest }
  | { seq: number; op: 'hash'; plain: Uint8Array; digest: Digest }
  /**
   * A batch of consecutive chunks (`ends` are exclusive end offsets in `data`): hash each; with
   * `mode` 'encode' also return the stored bytes; with 'store-local' write missing ones to `root`.
   */
  | { seq: number; op: 'batch'; data: Uint8Array; ends: number[]; mode: BatchMode; digest: Digest; root?: string }
  /**
   * Read chunks `ids` (32 bytes each) from the local store at `root`, decode and verify each
   * against its ID and `sizes[i]`; then either write them at `outOffset` into the file `outPath`
   * (positioned writes: workers fill one file in parallel) or return them back to back.
   */
  | { seq: number; op: 'extract-local'; root: string; ids: Uint8Array; sizes: number[]; outPath?: string; outOffset: number }
  | { seq: number; op: 'decode'; id: Uint8Array; stored: Uint8Array; location: string; size?: number; maxSize?: number }
  | { seq: number; op: 'cache-read'; file: string; id: Uint8Array; location: string; size?: number; maxSize?: number; touchAfterMs?: number }
  /**
   * Several cache entries in one job (a readahead window): `ids` holds 32 bytes per entry. The
   * reply's `plain` has them back to back at their sizes, and `found[i]` says whether entry i was
   * there and good; anything else (absent, corrupt, unreadable) is left to the careful path.
   */
  | { seq: number; op: 'cache-read-many'; files: string[]; ids: Uint8Array; sizes: number[]; location: string; touchAfterMs?: number };

/** What each worker starts with. */
export interface WorkerData {
  /** One counter the worker increments after each job, before it replies (ChunkPool.saturated). */
  done: Int32Array;
}

export type BatchMode = 'hash' | 'encode' | 'store-local';

export type Reply =
  | {
      seq: number;
      ok: true;
      id?: Uint8Array;
      stored?: Uint8Array;
      plain?: Uint8Array;
      /** Batch replies: 32 bytes per chunk. */
      ids?: Uint8Array;
      /** Batch replies: stored size per chunk ('store-local': -1 when the store already had it). */
      storedSizes?: number[];
      /** Batch replies: the job's `data`, handed back so its memory can be reused. */
      data?: Uint8Array;
      /** cache-read-many: which entries `plain` holds. */
      found?: boolean[];
    }
  | {
      seq: number;
      ok: false;
      corrupt?: { chunkId: string; location: string; reason: string };
      missing?: { chunkId: string; location: string };
      message: string;
      code?: string;
    };
