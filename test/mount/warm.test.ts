/**
 * src/mount/warm.ts: which chunks a selection of paths needs (chunksOf), and filling a real cache
 * directory from a real local store through the router (warmCache).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkId, encodeChunk, idToHex } from '../../src/chunk.js';
import { ChunkNotFoundError, IoError, NotFoundError, UsageError } from '../../src/errors.js';
import { encodeBootfsIndex } from '../../src/index/bootfs-builder.js';
import { BootfsIndex } from '../../src/index/bootfs-reader.js';
import { ChunkTable } from '../../src/index/chunk-table.js';
import { chunksOf, warmCache } from '../../src/mount/warm.js';
import { CacheDir } from '../../src/store/cache-dir.js';
import { LocalStore } from '../../src/store/local.js';
import { StoreRouter } from '../../src/store/router.js';
import type { ChunkStore } from '../../src/store/types.js';
import { newDir, utf8ToByteString, type FsNode } from '../../src/tree/types.js';
import { dataOrder } from '../../src/tree/walk.js';
import { cleanup, tmpDir } from '../helpers/tools.js';
import { lcgBytes } from '../helpers/bytes.js';

afterAll(cleanup);

const MAX = 128;

function block(seed: number, n = MAX): Buffer {
  return lcgBytes(n, seed * 7919 + 13);
}

const file = (size: number): FsNode => ({ kind: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, xattrs: new Map(), size });
const symlink = (target: string): FsNode => ({ kind: 'symlink', mode: 0o777, uid: 0, gid: 0, mtimeNs: 0n, xattrs: new Map(), size: 0, target });

function dir(children: Record<string, FsNode>): FsNode {
  const d = newDir();
  for (const [name, n] of Object.entries(children)) d.children!.set(utf8ToByteString(name), n);
  return d;
}

/**
 * Build an index whose data stream is the contents of `root`'s files (dataOrder), cut into chunks
 * at the given stream offsets. Returns the index and the plain chunks by hex ID.
 */
function build(root: FsNode, content: Map<FsNode, Buffer>, cuts: number[]): { index: BootfsIndex; plain: Map<string, Buffer> } {
  const stream = Buffer.concat(dataOrder(root).map((n) => content.get(n)!));
  const ends = [...cuts, stream.length].filter((e, i, a) => e > 0 && (i === 0 || e > a[i - 1]!));
  const list: { size: number; id: Buffer }[] = [];
  const plain = new Map<string, Buffer>();
  let start = 0;
  for (const end of ends) {
    const p = stream.subarray(start, end);
    const id = chunkId(p);
    plain.set(idToHex(id), p);
    list.push({ size: p.length, id });
    start = end;
  }
  const bytes = encodeBootfsIndex({ root, sizes: { min: 1, avg: 64, max: MAX }, table: ChunkTable.fromChunks(list), config: {} });
  return { index: BootfsIndex.decode(bytes, 'warm-fixture'), plain };
}

/**
 * Chunks aligned with files; c/dup repeats a/one's content, so its chunks repeat a/one's IDs.
 *   a/one        256 bytes  P Q   chunks 0, 1
 *   a/sub/two    128 bytes  R     chunk 2
 *   c/dup        256 bytes  P Q   chunks 3, 4 (same IDs as 0, 1)
 *   c/three      100 bytes  S     chunk 5
 *   café          60 bytes  U     chunk 6
 *   empty          0 bytes
 *   link     → a/sub   abslink → /c/three   dangling → nope   loop → loop   chain → link
 */
function alignedFixture() {
  const [P, Q, R, S, U] = [block(1), block(2), block(3), block(4, 100), block(5, 60)];
  const one = file(256);
  const two = file(128);
  const dup = file(256);
  const three = file(100);
  const cafe = file(60);
  const content = new Map<FsNode, Buffer>([[one, Buffer.concat([P, Q])], [two, R], [dup, Buffer.concat([P, Q])], [three, S], [cafe, U]]);
  const root = dir({
    a: dir({ one, sub: dir({ two }) }),
    c: dir({ dup, three }),
    'café': cafe,
    empty: file(0),
    link: symlink('a/sub'),
    abslink: symlink('/c/three'),
    dangling: symlink('nope'),
    loop: symlink('loop'),
    chain: symlink('link'),
  });
  content.set(root.children!.get('empty')!, Buffer.alloc(0));
  const { index, plain } = build(root, content, [128, 256, 384, 512, 640, 740]);
  return { index, plain, ids: { P: idToHex(chunkId(P)), Q: idToHex(chunkId(Q)), R: idToHex(chunkId(R)), S: idToHex(chunkId(S)), U: idToHex(chunkId(U)) } };
}

let fx: ReturnType<typeof alignedFixture>;
beforeAll(() => {
  fx = alignedFixture();
});

const hexes = (index: BootfsIndex, chunks: number[]): string[] => chunks.map((i) => index.table.hexId(i));

describe('chunksOf', () => {
  it('sanity: the fixture has 7 chunks of which 5 are distinct', () => {
    expect(fx.index.table.count).toBe(7);
    expect(new Set(hexes(fx.index, [0, 1, 2, 3, 4, 5, 6])).size).toBe(5);
  });

  it('selects every distinct chunk ID of the index once, in stream order, for no paths', () => {
    const all = chunksOf(fx.index, []);
    expect(all).toEqual([0, 1, 2, 5, 6]);
    expect(hexes(fx.index, all)).toEqual([fx.ids.P, fx.ids.Q, fx.ids.R, fx.ids.S, fx.ids.U]);
    expect(chunksOf(fx.index, ['/'])).toEqual(all);
    expect(chunksOf(fx.index, ['.'])).toEqual(all);
  });

  it('selects only the chunks of the named files', () => {
    expect(chunksOf(fx.index, ['a/one'])).toEqual([0, 1]);
    expect(chunksOf(fx.index, ['/a/sub/two'])).toEqual([2]);
    expect(chunksOf(fx.index, ['c/three'])).toEqual([5]);
    expect(hexes(fx.index, chunksOf(fx.index, ['c/dup']))).toEqual([fx.ids.P, fx.ids.Q]);
    expect(chunksOf(fx.index, ['café'])).toEqual([6]); // a UTF-8 path typed by a user
    expect(chunksOf(fx.index, ['empty'])).toEqual([]);
  });

  it('selects the whole subtree of a directory', () => {
    expect(chunksOf(fx.index, ['a'])).toEqual([0, 1, 2]);
    expect(chunksOf(fx.index, ['a/sub'])).toEqual([2]);
    expect(hexes(fx.index, chunksOf(fx.index, ['c']))).toEqual([fx.ids.P, fx.ids.Q, fx.ids.S]);
  });

  it('follows symlinks, relative, absolute and chained', () => {
    expect(chunksOf(fx.index, ['link'])).toEqual([2]);
    expect(chunksOf(fx.index, ['abslink'])).toEqual([5]);
    expect(chunksOf(fx.index, ['chain'])).toEqual([2]);
    expect(chunksOf(fx.index, ['link/two'])).toEqual([2]);
    expect(chunksOf(fx.index, ['link/../one'])).toEqual([0, 1]);
  });

  it('lists a chunk ID once however many selected files share it', () => {
    expect(hexes(fx.index, chunksOf(fx.index, ['a/one', 'c/dup']))).toEqual([fx.ids.P, fx.ids.Q]);
    expect(chunksOf(fx.index, ['a/one', 'a/one', 'a'])).toEqual([0, 1, 2]);
    expect(chunksOf(fx.index, ['c/three', 'a/sub/two'])).toEqual([2, 5]);
  });

  it('refuses missing paths with NotFoundError, loops and files used as directories with UsageError', () => {
    expect(() => chunksOf(fx.index, ['nope'])).toThrow(NotFoundError);
    expect(() => chunksOf(fx.index, ['a/one', 'a/nope'])).toThrow(NotFoundError);
    expect(() => chunksOf(fx.index, ['dangling'])).toThrow(NotFoundError);
    expect(() => chunksOf(fx.index, ['loop'])).toThrow(UsageError);
    expect(() => chunksOf(fx.index, ['a/one/x'])).toThrow(UsageError);
  });

  it('selects the chunks a file overlaps when chunks straddle file boundaries', () => {
    const f1 = file(100);
    const f2 = file(100);
    const f3 = file(100);
    const root = dir({ f1, f2, f3 });
    const content = new Map([[f1, block(11, 100)], [f2, block(12, 100)], [f3, block(13, 100)]]);
    const { index } = build(root, content, [128, 256]); // chunks [0,128) [128,256) [256,300)
    expect(chunksOf(index, ['f1'])).toEqual([0]);
    expect(chunksOf(index, ['f2'])).toEqual([0, 1]);
    expect(chunksOf(index, ['f3'])).toEqual([1, 2]);
    expect(chunksOf(index, ['f1', 'f3'])).toEqual([0, 1, 2]);
  });
});

// ------------------------------------------------------------------------------------------------

/** A store directory holding every chunk of the fixture. */
async function fullStore(): Promise<LocalStore> {
  const dir = await tmpDir('bootfs-warm-store-');
  const store = await LocalStore.open(path.join(dir, 'store'), { create: true });
  for (const p of fx.plain.values()) {
    const c = encodeChunk(p);
    await store.storeChunk(c.id, c.stored);
  }
  return store;
}

async function openCache(): Promise<CacheDir> {
  const dir = await tmpDir('bootfs-warm-cache-');
  return CacheDir.open(path.join(dir, 'cache'));
}

/** A store that fails every read with an I/O error, counting calls. */
function brokenStore(): ChunkStore & { calls: number } {
  const s = {
    location: 'http://broken.example',
    calls: 0,
    async getStored(): Promise<Buffer> {
      s.calls++;
      throw new IoError('connection refused');
    },
    async getChunk(): Promise<Buffer> {
      throw new IoError('connection refused');
    },
    async hasChunk(): Promise<boolean> {
      return false;
    },
    async close(): Promise<void> {},
  };
  return s;
}

describe('warmCache', () => {
  it('fetches every needed chunk on the first run and nothing on the second', async () => {
    const store = await fullStore();
    const cache = await openCache();
    const router = new StoreRouter([store]);
    const chunks = chunksOf(fx.index, []);
    const bytes = chunks.reduce((s, i) => s + fx.index.table.size(i), 0);
    const progress: [number, number][] = [];
    const first = await warmCache(fx.index, chunks, cache, router, { onProgress: (d, t) => progress.push([d, t]) });
    const storedBytes = chunks.reduce((s, i) => s + encodeChunk(fx.plain.get(fx.index.table.hexId(i))!).stored.length, 0);
    expect(first).toEqual({ chunks: 5, bytes, cached: 0, fetched: 5, remoteBytes: storedBytes });
    expect(progress.map(([d]) => d)).toEqual([1, 2, 3, 4, 5]);
    expect(progress.every(([, t]) => t === 5)).toBe(true);
    // Every chunk is in the cache directory now, verified.
    expect((await cache.stats()).chunks).toBe(5);
    for (const i of chunks) expect(await cache.get(fx.index.table.id(i), fx.index.table.size(i))).toEqual(fx.plain.get(fx.index.table.hexId(i)));

    const second = await warmCache(fx.index, chunks, cache, router);
    expect(second).toEqual({ chunks: 5, bytes, cached: 5, fetched: 0, remoteBytes: 0 });
    expect(router.counters.fetches).toBe(5);
    await cache.close();
  });

  it('fetches only what a partial warm left out', async () => {
    const store = await fullStore();
    const cache = await openCache();
    const router = new StoreRouter([store]);
    expect(await warmCache(fx.index, chunksOf(fx.index, ['a']), cache, router, { parallel: 1 })).toMatchObject({ chunks: 3, fetched: 3, cached: 0 });
    expect(await warmCache(fx.index, chunksOf(fx.index, []), cache, router, { parallel: 2 })).toMatchObject({ chunks: 5, fetched: 2, cached: 3 });
    await cache.close();
  });

  it('warms nothing for an empty selection', async () => {
    const cache = await openCache();
    const router = new StoreRouter([await fullStore()]);
    expect(await warmCache(fx.index, [], cache, router)).toEqual({ chunks: 0, bytes: 0, cached: 0, fetched: 0, remoteBytes: 0 });
    await cache.close();
  });

  it('rejects when the stores fail, and stops starting new fetches after the first failure', async () => {
    const broken = brokenStore();
    const cache = await openCache();
    const router = new StoreRouter([broken]);
    await expect(warmCache(fx.index, chunksOf(fx.index, []), cache, router, { parallel: 1 })).rejects.toThrow(/connection refused/);
    expect(broken.calls).toBe(1);
    expect((await cache.stats()).chunks).toBe(0);
    await cache.close();
  });

  it('rejects with ChunkNotFoundError when no store has a chunk', async () => {
    const dir = await tmpDir('bootfs-warm-empty-');
    const cache = await openCache();
    const router = new StoreRouter([await LocalStore.open(dir)]);
    await expect(warmCache(fx.index, chunksOf(fx.index, ['c/three']), cache, router)).rejects.toBeInstanceOf(ChunkNotFoundError);
    await cache.close();
  });

  it('falls back to a later store and caches what it got', async () => {
    const cache = await openCache();
    const router = new StoreRouter([brokenStore(), await fullStore()]);
    expect(await warmCache(fx.index, chunksOf(fx.index, ['a/one']), cache, router)).toMatchObject({ chunks: 2, fetched: 2 });
    expect(router.counters.errors).toBe(2);
    expect((await cache.stats()).chunks).toBe(2);
    await cache.close();
  });
});
