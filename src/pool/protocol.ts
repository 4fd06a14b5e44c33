/** Messages between the chunk pool and its worker threads. */

export type Job =
  | { seq: number; op: 'encode'; plain: Uint8Array }
  | { seq: number; op: 'hash'; plain: Uint8Array }
  /**
   * A batch of consecutive chunks (`ends` are exclusive end offsets in `data`): hash each; with
   * `mode` 'encode' also return the stored bytes; with 'store-local' write missing ones to `root`.
   */
  | { seq: number; op: 'batch'; data: Uint8Array; ends: number[]; mode: BatchMode; root?: string }
  | { seq: number; op: 'decode'; id: Uint8Array; stored: Uint8Array; location: string; size?: number; maxSize?: number };

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
    }
  | { seq: number; ok: false; corrupt?: { chunkId: string; location: string; reason: string }; message: string; code?: string };
