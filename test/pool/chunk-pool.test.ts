import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { chunkId, encodeChunk } from '../../src/chunk.js';
import { ChunkCorruptError } from '../../src/errors.js';
import { ChunkPool } from '../../src/pool/chunk-pool.js';

describe('ChunkPool', () => {
  const pool = new ChunkPool(2);
  afterAll(() => pool.close());

  it('hashes and compresses like the single-threaded code, in any completion order', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const views = Array.from({ length: 64 }, (_, i) => data.subarray(i * 32768, (i + 1) * 32768));
    const results = await Promise.all(views.map((v) => pool.encode(v)));
    results.forEach((r, i) => {
      const expected = encodeChunk(views[i]!);
      expect(r.id).toEqual(expected.id);
      expect(r.stored).toEqual(expected.stored);
    });
    // The caller's memory is untouched (views of one buffer are not detached by transfers).
    expect(data.length).toBe(2 * 1024 * 1024);
    expect(await pool.hash(views[3]!)).toEqual(chunkId(views[3]!));
  });

  it('decodes with verification and reports corruption as ChunkCorruptError', async () => {
    const plain = randomBytes(10_000);
    const { id, stored } = encodeChunk(plain);
    expect(await pool.decode(id, stored, 'loc', { size: 10_000 })).toEqual(plain);
    const bad = Buffer.from(stored);
    bad[bad.length - 1]! ^= 1;
    const err = await pool.decode(id, bad, '/some/store', { size: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChunkCorruptError);
    expect((err as ChunkCorruptError).location).toBe('/some/store');
    await expect(pool.decode(id, stored, 'loc', { size: 9_999 })).rejects.toBeInstanceOf(ChunkCorruptError);
  });

  it('rejects work after close', async () => {
    const p = new ChunkPool(1);
    await p.close();
    await expect(p.hash(Buffer.from('x'))).rejects.toThrow(/closed/);
  });
});
