import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { chunkId, encodeChunk } from '../../src/chunk.js';
import { ChunkCorruptError } from '../../src/errors.js';
import { ChunkPool, jobsBetween } from '../../src/pool/chunk-pool.js';

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

  it('cacheReadMany: a lone entry is read on the calling thread while the workers idle, a batch in a worker; both verify', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'bootfs-pool-cache-'));
    try {
      const plains = [randomBytes(20_001), randomBytes(20_002)];
      const chunks = plains.map((p, i) => encodeChunk(p, i === 1 ? 'sha256' : 'sha512-256'));
      const files = chunks.map((c, i) => path.join(dir, `c${i}`));
      for (const [i, c] of chunks.entries()) await writeFile(files[i]!, c.stored);
      const sizes = [20_001, 20_002];
      const ids = Buffer.concat(chunks.map((c) => c.id));
      const slots = (pool as unknown as { slots: { worker: { postMessage: (...a: unknown[]) => void } }[] }).slots;
      const posts = slots.map((s) => vi.spyOn(s.worker, 'postMessage'));
      const sent = (): number => posts.reduce((n, p) => n + p.mock.calls.length, 0);
      const one = async (i: number, size = sizes[i]!): Promise<Buffer | undefined> => (await pool.cacheReadMany([files[i]!], chunks[i]!.id, [size], 'loc'))[0];
      // Inline: good entries of either digest, and no job reaches a worker.
      expect((await one(0))!.equals(plains[0]!)).toBe(true);
      expect((await one(1))!.equals(plains[1]!)).toBe(true);
      expect(sent()).toBe(0);
      // Inline refusals: wrong size, flipped byte, absent, a symlink and a fifo in its place.
      expect(await one(0, 20_000)).toBeUndefined();
      const bad = Buffer.from(chunks[0]!.stored);
      bad[bad.length >> 1]! ^= 4;
      await writeFile(files[0]!, bad);
      expect(await one(0)).toBeUndefined();
      await rm(files[0]!);
      expect(await one(0)).toBeUndefined();
      await symlink(files[1]!, files[0]!);
      expect(await one(0)).toBeUndefined();
      await rm(files[0]!);
      execFileSync('mkfifo', [files[0]!]);
      expect(await one(0)).toBeUndefined();
      expect(sent()).toBe(0);
      // Two entries: one worker job, the same verdicts.
      const both = await pool.cacheReadMany(files, ids, sizes, 'loc');
      expect(both.map((b) => b !== undefined)).toEqual([false, true]);
      expect(sent()).toBe(1);
      posts.forEach((p) => p.mockRestore());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('saturated() counts what the workers have finished, even before this thread handles their replies', async () => {
    const p = new ChunkPool(1);
    try {
      await p.hash(Buffer.from('boot')); // the worker is up
      const plain = randomBytes(256 * 1024);
      const jobs = [p.encode(plain), p.encode(plain)];
      expect(p.saturated(2)).toBe(true);
      // No await: the replies cannot be handled while this loop runs, only the worker's own tally moves.
      const deadline = Date.now() + 5000;
      while (p.saturated(1) && Date.now() < deadline);
      expect(p.saturated(1)).toBe(false);
      await Promise.all(jobs);
      expect(p.saturated(1)).toBe(false);
    } finally {
      await p.close();
    }
  });

  it('counts unfinished jobs across the int32 wrap of the counters', () => {
    const wrap = (n: number): number => n | 0;
    expect(jobsBetween(5, 2)).toBe(3);
    expect(jobsBetween(wrap(2 ** 31 + 2), 2 ** 31 - 1)).toBe(3);
    expect(jobsBetween(wrap(2 ** 32 + 1), wrap(2 ** 32 - 2))).toBe(3);
    expect(jobsBetween(wrap(2 ** 31 + 7), wrap(2 ** 31 + 7))).toBe(0);
  });

  it('rejects work after close', async () => {
    const p = new ChunkPool(1);
    await p.close();
    await expect(p.hash(Buffer.from('x'))).rejects.toThrow(/closed/);
  });
});
