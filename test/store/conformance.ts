/**
 * The conformance suite every ChunkStore backend runs: has, get, put, not-found, corrupt,
 * idempotent and concurrent puts. Backends supply a factory and a way to corrupt a stored chunk.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeChunk, idToHex } from '../../src/chunk.js';
import { ChunkCorruptError, ChunkNotFoundError } from '../../src/errors.js';
import type { WriteStore } from '../../src/store/types.js';

export interface StoreHarness {
  store: WriteStore;
  /** Overwrite the stored bytes of a chunk behind the store's back. */
  corrupt(idHex: string, bytes: Buffer): Promise<void>;
  cleanup(): Promise<void>;
}

/** Register the conformance tests for one backend. */
export function describeChunkStore(name: string, factory: () => Promise<StoreHarness>): void {
  describe(`ChunkStore conformance: ${name}`, () => {
    const withStore = (fn: (h: StoreHarness) => Promise<void>) => async () => {
      const h = await factory();
      try {
        await fn(h);
      } finally {
        await h.store.close();
        await h.cleanup();
      }
    };

    it(
      'stores, reports and returns a chunk',
      withStore(async ({ store }) => {
        const plain = randomBytes(40_000);
        const { id, stored } = encodeChunk(plain);
        expect(await store.hasChunk(id)).toBe(false);
        expect(await store.storeChunk(id, stored)).toBe(true);
        expect(await store.hasChunk(id)).toBe(true);
        expect(await store.getChunk(id)).toEqual(plain);
        expect(await store.getChunk(id, { size: plain.length })).toEqual(plain);
        expect(await store.getStored(id)).toEqual(stored);
      }),
    );

    it(
      'treats a repeated put as a no-op',
      withStore(async ({ store }) => {
        const { id, stored } = encodeChunk(Buffer.from('again'));
        expect(await store.storeChunk(id, stored)).toBe(true);
        expect(await store.storeChunk(id, stored)).toBe(false);
        expect(await store.getChunk(id)).toEqual(Buffer.from('again'));
      }),
    );

    it(
      'says not found with the chunk ID and location',
      withStore(async ({ store }) => {
        const { id } = encodeChunk(Buffer.from('never stored'));
        const err = await store.getChunk(id).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ChunkNotFoundError);
        expect((err as Error).message).toContain(idToHex(id));
        expect((err as Error).message).toContain(store.location);
        await expect(store.getStored(id)).rejects.toBeInstanceOf(ChunkNotFoundError);
      }),
    );

    it(
      'detects a corrupt chunk on read',
      withStore(async (h) => {
        const plain = randomBytes(5000);
        const { id, stored } = encodeChunk(plain);
        await h.store.storeChunk(id, stored);
        const flipped = Buffer.from(stored);
        flipped[flipped.length - 10]! ^= 0x40;
        await h.corrupt(idToHex(id), flipped);
        await expect(h.store.getChunk(id)).rejects.toBeInstanceOf(ChunkCorruptError);
        await h.corrupt(idToHex(id), stored.subarray(0, 7));
        await expect(h.store.getChunk(id)).rejects.toBeInstanceOf(ChunkCorruptError);
        // A chunk stored under another chunk's name.
        await h.corrupt(idToHex(id), encodeChunk(Buffer.from('imposter')).stored);
        await expect(h.store.getChunk(id)).rejects.toThrow(/hashes to/);
      }),
    );

    it(
      'survives concurrent puts of the same and different chunks',
      withStore(async ({ store }) => {
        const chunks = Array.from({ length: 20 }, (_, i) => encodeChunk(Buffer.from(`chunk ${i % 5} `.repeat(500))));
        const results = await Promise.all(chunks.map((c) => store.storeChunk(c.id, c.stored)));
        // Five distinct chunks: at least five real writes happened, and every chunk reads back.
        expect(results.filter(Boolean).length).toBeGreaterThanOrEqual(5);
        for (const c of chunks) expect(await store.getStored(c.id)).toEqual(c.stored);
      }),
    );
  });
}
