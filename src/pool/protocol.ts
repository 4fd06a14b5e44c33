/** Messages between the chunk pool and its worker threads. */

export type Job =
  | { seq: number; op: 'encode'; plain: Uint8Array }
  | { seq: number; op: 'hash'; plain: Uint8Array }
  | { seq: number; op: 'decode'; id: Uint8Array; stored: Uint8Array; location: string; size?: number; maxSize?: number };

export type Reply =
  | { seq: number; ok: true; id?: Uint8Array; stored?: Uint8Array; plain?: Uint8Array }
  | { seq: number; ok: false; corrupt?: { chunkId: string; location: string; reason: string }; message: string };
