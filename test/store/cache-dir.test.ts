import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeChunk, idToHex } from '../../src/chunk.js';
import { type BootfsError, ChunkCorruptError, IoError, UsageError } from '../../src/errors.js';
import { CacheDir, type Fetched, LOCK_SUFFIX } from '../../src/store/cache-dir.js';
import { ChunkPool } from '../../src/pool/chunk-pool.js';
import { LocalStore } from '../../src/store/local.js';
import { cleanup, tmpDir } from '../helpers/tools.js';

afterAll(cleanup);

const runner = path.join(import.meta.dirname, 'cache-dir-runner.mjs');

/** Same bytes as plainOf in cache-dir-runner.mjs. */
function plainOf(i: number): Buffer {
  return Buffer.from(`cache-dir chunk ${i} `.repeat(100 + i));
}

function chunk(i: number) {
  const plain = plainOf(i);
  return { plain, ...encodeChunk(plain) };
}

/** A fetch that counts its calls and returns chunk `c` after `ms`. */
function fetcher(c: { plain: Buffer; stored: Buffer }, ms = 0) {
  const f = Object.assign(
    async (): Promise<Fetched> => {
      f.calls++;
      if (ms) await sleep(ms);
      return { stored: c.stored, plain: c.plain };
    },
    { calls: 0 },
  );
  return f;
}

async function openCache(opts: Parameters<typeof CacheDir.open>[1] = {}) {
  const dir = await tmpDir('bootfs-cache-');
  const cache = await CacheDir.open(path.join(dir, 'cache'), { lockStaleMs: 400, heartbeatMs: 50, ...opts });
  return { dir, cache, store: await LocalStore.open(cache.location) };
}

function lockFile(cache: CacheDir, id: Uint8Array): string {
  const hex = idToHex(id);
  return path.join(cache.location, hex.slice(0, 4), hex + LOCK_SUFFIX);
}

async function ls(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

function spawnRunner(cfg: object): { child: ChildProcess; lines: AsyncIterator<string>; out: string[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', runner, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line);
      else out.push(line);
    }
  });
  const lines: AsyncIterator<string> = {
    next: () => (out.length ? Promise.resolve({ value: out.shift()!, done: false }) : new Promise((r) => waiting.push((value) => r({ value, done: false })))),
  };
  return { child, lines, out };
}

describe('CacheDir', () => {
  it('misses, fetches and stores in the casync layout, then hits', async () => {
    const { cache, store } = await openCache();
    const c = chunk(1);
    expect(await cache.get(c.id)).toBeUndefined();
    const fetch = fetcher(c);
    expect((await cache.getOrFetch(c.id, c.plain.length, fetch)).equals(c.plain)).toBe(true);
    expect((await cache.getOrFetch(c.id, c.plain.length, fetch)).equals(c.plain)).toBe(true);
    expect((await cache.get(c.id, c.plain.length))!.equals(c.plain)).toBe(true);
    expect(fetch.calls).toBe(1);
    const hex = idToHex(c.id);
    expect(await ls(cache.location)).toEqual([hex.slice(0, 4)]);
    expect(await ls(path.join(cache.location, hex.slice(0, 4)))).toEqual([`${hex}.cacnk`]); // lock and temp gone
    expect((await store.getStored(c.id)).equals(c.stored)).toBe(true);
    expect(cache.counters).toMatchObject({ hits: 2, misses: 2, fetches: 1, corrupt: 0, bytesWritten: c.stored.length, errors: 0 });
    await cache.close();
  });

  it('removes a flipped, truncated, mis-sized or symlinked entry and fetches a good copy', async () => {
    const { cache, store } = await openCache();
    const c = chunk(2);
    const file = store.chunkPath(c.id);
    const spoil = [
      async () => {
        const b = Buffer.from(c.stored);
        b[b.length >> 1]! ^= 0x40;
        await writeFile(file, b);
      },
      async () => {
        await writeFile(file, c.stored);
        await truncate(file, c.stored.length - 3);
      },
      () => writeFile(file, ''),
      async () => {
        const other = chunk(3); // a valid zstd frame of the wrong content
        await writeFile(file, other.stored);
      },
      () => symlink('/etc/hostname', file),
    ];
    for (const damage of spoil) {
      await store.removeChunk(c.id);
      await mkdir(path.dirname(file), { recursive: true });
      await damage();
      expect(await cache.get(c.id, c.plain.length)).toBeUndefined();
      await expect(stat(file)).rejects.toThrow(/ENOENT/); // removed
      await damage();
      const fetch = fetcher(c);
      expect((await cache.getOrFetch(c.id, c.plain.length, fetch)).equals(c.plain)).toBe(true);
      expect(fetch.calls).toBe(1);
      expect((await readFile(file)).equals(c.stored)).toBe(true); // replaced
    }
    // The right bytes under a wrong size hint are refused too: never return a wrong byte.
    expect(await cache.get(c.id, c.plain.length + 1)).toBeUndefined();
    expect(cache.counters.corrupt).toBe(2 * spoil.length + 1);
    await cache.close();
  });

  it('getHits: a window of entries in one worker job; damaged and absent ones are no hit, and getOrFetch repairs them', async () => {
    const pool = new ChunkPool(1);
    try {
      for (const viaPool of [true, false]) {
        const { cache, store } = await openCache(viaPool ? { readEntries: (files, ids, sizes) => pool.cacheReadMany(files, ids, sizes, 'the test cache') } : {});
        const cs = [10, 11, 12, 13, 14].map(chunk);
        for (const c of cs) await store.storeChunk(c.id, c.stored);
        // 11: a flipped byte; 12: absent; 13: the right bytes, one more than the size given (its decode
        // spills a byte into 14's place, which must still come back intact).
        const bad = Buffer.from(cs[1]!.stored);
        bad[bad.length >> 1]! ^= 0x40;
        await writeFile(store.chunkPath(cs[1]!.id), bad);
        await store.removeChunk(cs[2]!.id);
        const ids = Buffer.concat(cs.map((c) => c.id));
        const sizes = cs.map((c, i) => c.plain.length - (i === 3 ? 1 : 0));
        const hits = await cache.getHits(ids, sizes);
        expect(hits.map((h) => h !== undefined)).toEqual([true, false, false, false, true]);
        expect(hits[0]!.equals(cs[0]!.plain) && hits[4]!.equals(cs[4]!.plain)).toBe(true);
        expect(cache.counters.hits).toBe(2);
        const fetch = fetcher(cs[1]!);
        expect((await cache.getOrFetch(cs[1]!.id, cs[1]!.plain.length, fetch)).equals(cs[1]!.plain)).toBe(true);
        expect(fetch.calls).toBe(1);
        expect((await readFile(store.chunkPath(cs[1]!.id))).equals(cs[1]!.stored)).toBe(true); // replaced
        await cache.close();
      }
    } finally {
      await pool.close();
    }
  });

  it('reports corruption and absorbed write errors through onError, and still serves the read', async () => {
    const reported: BootfsError[] = [];
    const { cache, store } = await openCache({ onError: (e) => reported.push(e) });
    const c = chunk(4);
    await mkdir(path.dirname(store.chunkPath(c.id)), { recursive: true });
    await writeFile(store.chunkPath(c.id), 'junk');
    // The fetch plants a directory where the chunk goes, so the rename into place fails (EISDIR):
    // as root, chmod cannot make a write fail, and the path is the same as for ENOSPC or EACCES.
    const plain = await cache.getOrFetch(c.id, undefined, async () => {
      await mkdir(store.chunkPath(c.id));
      return { stored: c.stored, plain: c.plain };
    });
    expect(plain.equals(c.plain)).toBe(true);
    expect(reported.map((e) => e.constructor)).toEqual([ChunkCorruptError, IoError]);
    expect(reported[0]!.message).toContain(idToHex(c.id));
    expect(reported[1]!.message).toMatch(new RegExp(`chunk ${idToHex(c.id)} in ${cache.location}`));
    expect(cache.counters).toMatchObject({ errors: 1, corrupt: 1, fetches: 1, bytesWritten: 0 });
    expect((await stat(store.chunkPath(c.id))).isDirectory()).toBe(true);
    expect(await cache.stats()).toMatchObject({ chunks: 0, locks: 0, tempFiles: 0 });

    // A shard path that cannot be a directory: no lock possible, the read is served uncached.
    const d = chunk(5);
    await writeFile(path.join(cache.location, idToHex(d.id).slice(0, 4)), 'not a directory');
    const fetch = fetcher(d);
    expect((await cache.getOrFetch(d.id, undefined, fetch)).equals(d.plain)).toBe(true);
    expect(fetch.calls).toBe(1);
    expect(cache.counters.errors).toBe(2);
    expect(reported[2]!.message).toMatch(/cannot lock chunk .* in cache directory .*fetching without the cache/);
    await cache.close();
  });

  it('runs one fetch for concurrent calls in a process; an aborted caller leaves the others', async () => {
    const { cache } = await openCache();
    const c = chunk(6);
    const fetch = fetcher(c, 50);
    const aborter = new AbortController();
    const calls = Array.from({ length: 10 }, () => cache.getOrFetch(c.id, c.plain.length, fetch));
    const aborted = cache.getOrFetch(c.id, c.plain.length, fetch, aborter.signal);
    await sleep(10);
    aborter.abort(new Error('gave up'));
    await expect(aborted).rejects.toThrow('gave up');
    for (const p of await Promise.all(calls)) expect(p.equals(c.plain)).toBe(true);
    // Shared in memory: nobody polled the lock file.
    expect(cache.counters).toMatchObject({ fetches: 1, peerWaits: 0, misses: 11 });
    expect(fetch.calls).toBe(1);
    // Aborting every caller abandons the flight; the next call starts a new one.
    const d = chunk(16);
    const only = new AbortController();
    const slow = fetcher(d, 100);
    const first = cache.getOrFetch(d.id, undefined, slow, only.signal);
    await sleep(10);
    only.abort(new Error('gone'));
    await expect(first).rejects.toThrow('gone');
    expect((await cache.getOrFetch(d.id, undefined, fetcher(d))).equals(d.plain)).toBe(true);
    await cache.close();
  });

  it('waits for a peer holding the lock; if the holder fails, a waiter fetches; a signal ends the wait', async () => {
    const { cache } = await openCache();
    const peer = await CacheDir.open(cache.location, { lockStaleMs: 400, heartbeatMs: 50 }); // another "process"
    const c = chunk(7);
    const failing = peer.getOrFetch(c.id, undefined, async () => {
      await sleep(150);
      throw new Error('origin down');
    });
    await sleep(20);
    const fetch = fetcher(c);
    const waiter = cache.getOrFetch(c.id, undefined, fetch);
    await sleep(60);
    expect(fetch.calls).toBe(0); // still waiting: the peer's lock is live
    await expect(failing).rejects.toThrow('origin down');
    expect((await waiter).equals(c.plain)).toBe(true);
    expect(fetch.calls).toBe(1);
    expect(cache.counters).toMatchObject({ peerWaits: 1, fetches: 1, staleLocksBroken: 0 });

    const d = chunk(8);
    void peer.getOrFetch(d.id, undefined, () => new Promise<Fetched>(() => undefined));
    await sleep(20);
    const t0 = Date.now();
    await expect(cache.getOrFetch(d.id, undefined, fetcher(d), AbortSignal.timeout(100))).rejects.toThrow(/abort|timeout/i);
    expect(Date.now() - t0).toBeLessThan(300);
    await peer.close();
    await cache.close();
  });

  it('breaks a stale lock: at once when its mtime is old, after lockStaleMs when nobody heartbeats it', async () => {
    const { cache, store } = await openCache({ lockStaleMs: 300 });
    for (const [i, age] of [
      [9, 60_000],
      [10, 0],
    ] as const) {
      const c = chunk(i);
      await mkdir(path.dirname(store.chunkPath(c.id)), { recursive: true });
      await writeFile(lockFile(cache, c.id), '');
      const t = (Date.now() - age) / 1000;
      await utimes(lockFile(cache, c.id), t, t);
      const t0 = Date.now();
      expect((await cache.getOrFetch(c.id, undefined, fetcher(c))).equals(c.plain)).toBe(true);
      const took = Date.now() - t0;
      if (age) expect(took).toBeLessThan(200);
      else expect(took).toBeGreaterThanOrEqual(290), expect(took).toBeLessThan(800);
      expect(await ls(path.dirname(store.chunkPath(c.id)))).toEqual([`${idToHex(c.id)}.cacnk`]);
    }
    expect(cache.counters.staleLocksBroken).toBe(2);
    await cache.close();
  });

  // Together: 20 slow fetches started at one moment (everyone waits on a holder), and 60 quick ones
  // started at random moments (holders finish while others are between their read and their lock).
  it.each([
    { n: 20, fetchMs: 50, jitterMs: 0 },
    { n: 60, fetchMs: 3, jitterMs: 40 },
  ])('fetches each chunk once across 5 processes racing for the same $n chunks (fetch $fetchMs ms, jitter $jitterMs ms)', async ({ n, fetchMs, jitterMs }) => {
    const dir = await tmpDir('bootfs-cache-race-');
    const log = path.join(dir, 'fetches.log');
    await writeFile(log, '');
    const kids = Array.from({ length: 5 }, () => spawnRunner({ mode: 'race', dir: path.join(dir, 'cache'), log, n, fetchMs, jitterMs }));
    for (const k of kids) expect((await k.lines.next()).value).toBe('ready');
    for (const k of kids) k.child.stdin!.write('go\n');
    const codes = await Promise.all(kids.map(async (k) => (await once(k.child, 'exit'))[0]));
    expect(codes).toEqual([0, 0, 0, 0, 0]);
    const fetched = (await readFile(log, 'utf8')).trim().split('\n').map((l) => l.split(' ')[0]);
    const want = Array.from({ length: n }, (_, i) => idToHex(chunk(i).id)).sort();
    expect(fetched.sort()).toEqual(want); // every chunk exactly once
    const counters = await Promise.all(kids.map(async (k) => JSON.parse((await k.lines.next()).value) as Record<string, number>));
    expect(counters.reduce((s, c) => s + c.fetches!, 0)).toBe(n);
    expect(counters.reduce((s, c) => s + c.peerWaits!, 0)).toBeGreaterThan(0);
    const cache = await CacheDir.open(path.join(dir, 'cache'));
    expect(await cache.stats()).toMatchObject({ chunks: n, locks: 0, tempFiles: 0 });
  });

  it('lets another process through within lockStaleMs after a holder is killed with -9', async () => {
    const dir = await tmpDir('bootfs-cache-kill-');
    const lockStaleMs = 600;
    const holder = spawnRunner({ mode: 'hang', dir, n: 11, lockStaleMs, heartbeatMs: 100 });
    expect((await holder.lines.next()).value).toBe('locked');
    const cache = await CacheDir.open(dir, { lockStaleMs, heartbeatMs: 100 });
    const c = chunk(11);
    const fetch = fetcher(c);
    const result = cache.getOrFetch(c.id, undefined, fetch);
    await sleep(2 * lockStaleMs);
    expect(fetch.calls).toBe(0); // the live holder's heartbeat keeps its lock fresh
    const killed = Date.now();
    holder.child.kill('SIGKILL');
    expect((await result).equals(c.plain)).toBe(true);
    expect(Date.now() - killed).toBeLessThan(lockStaleMs + 400);
    expect(cache.counters).toMatchObject({ fetches: 1, peerWaits: 1, staleLocksBroken: 1 });
    await cache.close();
  });

  it('gc evicts oldest-mtime chunks to the limit and keeps fresh locks and temp files', async () => {
    const { cache, store } = await openCache();
    const chunks = Array.from({ length: 8 }, (_, i) => chunk(20 + i));
    const now = Date.now() / 1000;
    for (const [i, c] of chunks.entries()) {
      await cache.getOrFetch(c.id, undefined, fetcher(c));
      await utimes(store.chunkPath(c.id), now - 1000 + i, now - 1000 + i); // chunk 0 oldest
    }
    // A hit refreshes an old entry's age: chunk 0 becomes the newest.
    await cache.get(chunks[0]!.id);
    expect((await stat(store.chunkPath(chunks[0]!.id))).mtimeMs).toBeGreaterThan(Date.now() - 5000);
    // …but not one used within the last minute.
    await utimes(store.chunkPath(chunks[7]!.id), now - 30, now - 30);
    await cache.get(chunks[7]!.id);
    expect(Math.round((await stat(store.chunkPath(chunks[7]!.id))).mtimeMs / 1000)).toBe(Math.round(now - 30));

    const shard = (c: { id: Buffer }) => path.dirname(store.chunkPath(c.id));
    const freshLock = lockFile(cache, chunks[1]!.id);
    const staleLock = lockFile(cache, chunks[2]!.id);
    const freshTemp = path.join(shard(chunks[3]!), `.tmp-${idToHex(chunks[3]!.id)}.1.aaaa`);
    const oldTemp = path.join(shard(chunks[4]!), `.tmp-${idToHex(chunks[4]!.id)}.1.bbbb`);
    for (const f of [freshLock, staleLock, freshTemp, oldTemp]) await writeFile(f, '');
    await utimes(staleLock, now - 10, now - 10);
    await utimes(oldTemp, now - 2 * 3600, now - 2 * 3600);
    const before = await cache.stats();
    const total = chunks.reduce((s, c) => s + c.stored.length, 0);
    expect(before).toMatchObject({ chunks: 8, bytes: total, locks: 2, tempFiles: 2 });
    expect(before.oldestMs).toBeLessThan(before.newestMs!);

    // Keep room for 5: chunks 1, 2, 3 (oldest after chunk 0's hit) go.
    const limit = chunks.slice(4).reduce((s, c) => s + c.stored.length, 0) + chunks[0]!.stored.length;
    const r = await cache.gc(limit);
    const gone = [1, 2, 3].map((i) => chunks[i]!);
    expect(r).toEqual({ removed: 3, freedBytes: gone.reduce((s, c) => s + c.stored.length, 0), chunks: 5, bytes: limit });
    for (const [i, c] of chunks.entries()) expect(await store.hasChunk(c.id)).toBe(![1, 2, 3].includes(i));
    const after = await cache.stats();
    expect(after).toMatchObject({ chunks: 5, bytes: limit, locks: 1, tempFiles: 1 });
    await stat(freshLock);
    await stat(freshTemp);
    expect(cache.counters.evictions).toBe(3);
    await cache.close();
  });

  it('with maxSize, evicts in the background after writes push it over', async () => {
    const chunks = Array.from({ length: 12 }, (_, i) => chunk(40 + i));
    const maxSize = chunks.slice(0, 5).reduce((s, c) => s + c.stored.length, 0);
    const { cache } = await openCache({ maxSize });
    for (const c of chunks) {
      await cache.getOrFetch(c.id, undefined, fetcher(c));
      await sleep(2); // distinct mtimes
    }
    await cache.close(); // waits for a running gc
    const s = await cache.stats();
    expect(s.bytes).toBeLessThanOrEqual(maxSize);
    expect(cache.counters.evictions).toBeGreaterThan(0);
    expect((await cache.get(chunks[11]!.id))!.equals(chunks[11]!.plain)).toBe(true); // newest stays
  });

  it('never lists lock files as chunks, and refuses contradictory options', async () => {
    const { cache, store } = await openCache();
    const c = chunk(60);
    await mkdir(path.dirname(store.chunkPath(c.id)), { recursive: true });
    await writeFile(lockFile(cache, c.id), '');
    const listed = [];
    for await (const x of store.listChunks()) listed.push(x);
    expect(listed).toEqual([]);
    expect(await cache.stats()).toMatchObject({ chunks: 0, bytes: 0, locks: 1, tempFiles: 0 });
    await expect(CacheDir.open(cache.location, { lockStaleMs: 500, heartbeatMs: 400 })).rejects.toThrow(UsageError);
    await expect(CacheDir.open(cache.location, { pollMs: 0 })).rejects.toThrow(/pollMs/);
    await expect(CacheDir.open(cache.location, { maxSize: -1 })).rejects.toThrow(/maxSize/);
    await cache.close();
  });
});
