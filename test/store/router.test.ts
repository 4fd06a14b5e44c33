/**
 * src/store/router.ts: stores asked in order, "not found" and "corrupt" passed on to the next
 * store, one verified answer or one error that says what every store did. Real LocalStores in
 * temp directories (a corrupt copy is a real file with a flipped byte) plus fakes for failures a
 * directory cannot produce.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chunkId, decodeChunk, encodeChunk, idToHex } from '../../src/chunk.js';
import { ChunkCorruptError, ChunkNotFoundError, ExitCode, IoError } from '../../src/errors.js';
import { LocalStore } from '../../src/store/local.js';
import { ChunkUnavailableError, StoreRouter } from '../../src/store/router.js';
import type { ChunkStore, GetOptions } from '../../src/store/types.js';
import { cleanup, tmpDir } from '../helpers/tools.js';
import { rejection } from '../helpers/assert.js';

afterAll(cleanup);

const PLAIN = Buffer.from('router test chunk\n'.repeat(200));
const CHUNK = { plain: PLAIN, ...encodeChunk(PLAIN) };

async function store(name: string, chunks: { id: Buffer; stored: Buffer }[] = []): Promise<LocalStore> {
  const dir = await tmpDir(`bootfs-router-${name}-`);
  const s = await LocalStore.open(path.join(dir, name), { create: true });
  for (const c of chunks) await s.storeChunk(c.id, c.stored);
  return s;
}

/** A store holding `chunk` with one byte of its stored form flipped. */
async function corruptStore(name: string, chunk = CHUNK, at = -1): Promise<LocalStore> {
  const s = await store(name, [chunk]);
  const file = s.chunkPath(chunk.id);
  const bytes = await readFile(file);
  const i = at < 0 ? bytes.length + at : at;
  bytes[i]! ^= 0x40;
  await writeFile(file, bytes);
  return s;
}

/** Wraps a store (or nothing) and records getStored calls; `fail` replaces the answer with an error. */
function spy(location: string, inner?: ChunkStore, fail?: () => Error) {
  const calls: { id: string; opts: GetOptions | undefined }[] = [];
  let closed = 0;
  const s: ChunkStore & { calls: typeof calls; closed(): number } = {
    location,
    calls,
    closed: () => closed,
    async getStored(id, opts) {
      calls.push({ id: idToHex(id), opts });
      if (fail) throw fail();
      if (!inner) throw new ChunkNotFoundError(idToHex(id), location);
      return inner.getStored(id, opts);
    },
    async getChunk() {
      throw new Error('the router must not call getChunk');
    },
    async hasChunk() {
      throw new Error('the router must not call hasChunk');
    },
    async close() {
      closed++;
    },
  };
  return s;
}

describe('StoreRouter', () => {
  it('returns stored and plain bytes that verify, from the first store that has the chunk', async () => {
    const only = await store('only', [CHUNK]);
    const router = new StoreRouter([only]);
    const got = await router.fetch(CHUNK.id, PLAIN.length);
    expect(got.plain).toEqual(PLAIN);
    expect(got.stored).toEqual(await readFile(only.chunkPath(CHUNK.id)));
    expect(decodeChunk(CHUNK.id, got.stored, 'test', { size: PLAIN.length })).toEqual(PLAIN);
    expect(chunkId(got.plain)).toEqual(CHUNK.id);
    expect(router.counters).toEqual({ fetches: 1, bytes: got.stored.length, corrupt: 0, errors: 0 });
  });

  it('asks the stores in order and stops at the first good copy', async () => {
    const first = spy('first', await store('a', [CHUNK]));
    const second = spy('second', await store('b', [CHUNK]));
    const router = new StoreRouter([first, second]);
    expect((await router.fetch(CHUNK.id, PLAIN.length)).plain).toEqual(PLAIN);
    expect(first.calls.length).toBe(1);
    expect(second.calls.length).toBe(0);
    expect(first.calls[0]!.opts).toEqual({ size: PLAIN.length });
  });

  it('passes "not found" in the first store on to the second', async () => {
    const first = spy('first', await store('empty'));
    const second = spy('second', await store('full', [CHUNK]));
    const router = new StoreRouter([first, second]);
    expect((await router.fetch(CHUNK.id)).plain).toEqual(PLAIN);
    expect([first.calls.length, second.calls.length]).toEqual([1, 1]);
    expect(router.counters).toMatchObject({ fetches: 1, corrupt: 0, errors: 0 });
  });

  it('passes a corrupt copy on to the next store and counts it', async () => {
    const bad = await corruptStore('bad');
    const good = await store('good', [CHUNK]);
    const seen: [string, string, unknown][] = [];
    const router = new StoreRouter([bad, good], { onError: (s, id, err) => seen.push([s, id, err]) });
    const got = await router.fetch(CHUNK.id, PLAIN.length);
    expect(got.plain).toEqual(PLAIN);
    expect(got.stored).toEqual(CHUNK.stored);
    expect(router.counters.corrupt).toBe(1);
    expect(router.counters.fetches).toBe(1);
    expect(router.counters.errors).toBe(0);
    // Both copies were received.
    expect(router.counters.bytes).toBe(2 * CHUNK.stored.length);
    expect(seen).toHaveLength(1);
    expect(seen[0]![0]).toBe(bad.location);
    expect(seen[0]![1]).toBe(idToHex(CHUNK.id));
    expect(seen[0]![2]).toBeInstanceOf(ChunkCorruptError);
  });

  it('treats bytes that decode to another chunk as corrupt', async () => {
    const other = encodeChunk(Buffer.from('some other chunk'));
    const wrong = await store('wrong');
    await mkdir(path.dirname(wrong.chunkPath(CHUNK.id)), { recursive: true });
    await writeFile(wrong.chunkPath(CHUNK.id), other.stored);
    const router = new StoreRouter([wrong]);
    const err = await rejection(router.fetch(CHUNK.id));
    expect(err).toBeInstanceOf(ChunkUnavailableError);
    expect(err.message).toMatch(/hashes to/);
    expect(router.counters.corrupt).toBe(1);
  });

  it('treats a size that differs from the index’s as corruption', async () => {
    const s = await store('sized', [CHUNK]);
    for (const size of [PLAIN.length - 1, PLAIN.length + 1]) {
      const router = new StoreRouter([s]);
      const err = await rejection(router.fetch(CHUNK.id, size));
      expect(err, `size ${size}`).toBeInstanceOf(ChunkUnavailableError);
      expect((err as ChunkUnavailableError).exitCode).toBe(ExitCode.integrity);
      expect((err as ChunkUnavailableError).code).toBe('ERR_CHUNK_CORRUPT');
      expect(router.counters).toMatchObject({ corrupt: 1, fetches: 0 });
    }
    // …and the next store with a matching copy is still asked.
    const router = new StoreRouter([s, spy('never')]);
    await expect(router.fetch(CHUNK.id, PLAIN.length)).resolves.toMatchObject({ plain: PLAIN });
  });

  it('bounds decoding by maxChunkSize when the size is not known', async () => {
    const s = await store('max', [CHUNK]);
    const router = new StoreRouter([s], { maxChunkSize: PLAIN.length - 1 });
    const err = await rejection(router.fetch(CHUNK.id));
    expect(err).toBeInstanceOf(ChunkUnavailableError);
    expect(router.counters.corrupt).toBe(1);
    await expect(new StoreRouter([s], { maxChunkSize: PLAIN.length }).fetch(CHUNK.id)).resolves.toMatchObject({ plain: PLAIN });
  });

  it('throws ChunkNotFoundError naming every store when none has the chunk', async () => {
    const a = await store('na');
    const b = await store('nb');
    const router = new StoreRouter([a, b]);
    const err = await rejection(router.fetch(CHUNK.id));
    expect(err).toBeInstanceOf(ChunkNotFoundError);
    expect((err as ChunkNotFoundError).code).toBe('ERR_CHUNK_NOT_FOUND');
    expect((err as ChunkNotFoundError).exitCode).toBe(ExitCode.notFound);
    expect(err.message).toContain(idToHex(CHUNK.id));
    expect(err.message).toContain(a.location);
    expect(err.message).toContain(b.location);
    expect(router.counters).toEqual({ fetches: 0, bytes: 0, corrupt: 0, errors: 0 });
  });

  it('throws an integrity error (exit code 3) when every copy is corrupt', async () => {
    const a = await corruptStore('ca');
    const b = await corruptStore('cb', CHUNK, 0); // a broken frame header this time
    const router = new StoreRouter([a, b]);
    const err = await rejection(router.fetch(CHUNK.id, PLAIN.length));
    expect(err).toBeInstanceOf(ChunkUnavailableError);
    expect((err as ChunkUnavailableError).exitCode).toBe(3);
    expect((err as ChunkUnavailableError).code).toBe('ERR_CHUNK_CORRUPT');
    expect(err.message).toContain(idToHex(CHUNK.id));
    expect(err.message).toContain(`${a.location}: corrupt`);
    expect(err.message).toContain(`${b.location}: corrupt`);
    expect(router.counters).toMatchObject({ corrupt: 2, fetches: 0, errors: 0 });
  });

  it('calls corrupt-or-missing everywhere an integrity error too', async () => {
    const router = new StoreRouter([await store('missing'), await corruptStore('corrupt1')]);
    const err = await rejection(router.fetch(CHUNK.id));
    expect(err).toBeInstanceOf(ChunkUnavailableError);
    expect((err as ChunkUnavailableError).exitCode).toBe(ExitCode.integrity);
  });

  it('passes a store’s I/O error on to the next store and counts it', async () => {
    const broken = spy('http://broken.example', undefined, () => new IoError('GET chunk at http://broken.example failed: ECONNREFUSED'));
    const good = await store('after-error', [CHUNK]);
    const seen: string[] = [];
    const router = new StoreRouter([broken, good], { onError: (s) => seen.push(s) });
    expect((await router.fetch(CHUNK.id, PLAIN.length)).plain).toEqual(PLAIN);
    expect(router.counters).toMatchObject({ fetches: 1, errors: 1, corrupt: 0 });
    expect(seen).toEqual(['http://broken.example']);
  });

  it('throws an I/O error (exit code 1) naming each store when errors and misses are all there is', async () => {
    const broken = spy('http://broken.example', undefined, () => new IoError('connection refused'));
    const missing = await store('miss');
    const router = new StoreRouter([missing, broken]);
    const err = await rejection(router.fetch(CHUNK.id));
    expect(err).toBeInstanceOf(ChunkUnavailableError);
    expect((err as ChunkUnavailableError).code).toBe('ERR_IO');
    expect((err as ChunkUnavailableError).exitCode).toBe(ExitCode.error);
    expect(err.message).toContain(`${missing.location}: not found`);
    expect(err.message).toContain('http://broken.example: connection refused');
  });

  it('throws an I/O error, not an integrity error, when one copy is corrupt and another store failed', async () => {
    const broken = spy('http://broken.example', undefined, () => new IoError('connection refused'));
    const router = new StoreRouter([await corruptStore('c-and-io'), broken]);
    const err = await rejection(router.fetch(CHUNK.id));
    expect((err as ChunkUnavailableError).code).toBe('ERR_IO');
    expect((err as ChunkUnavailableError).exitCode).toBe(ExitCode.error);
  });

  // BUG (src/store/router.ts): a store error is classified by the text of its message
  // (/corrupt|not found/), so an I/O error that happens to say "not found" turns the result into an
  // integrity error (exit 3) although no store lacked or corrupted anything but the first copy.
  // Remove `.fails` once fetch() classifies by error type.
  it('classifies store errors by type, not by the words in their messages', async () => {
    const proxy = spy('http://mirror.example', undefined, () => new IoError('GET chunk at http://mirror.example: HTTP 502 upstream not found after 3 tries'));
    const router = new StoreRouter([await corruptStore('c-and-text'), proxy]);
    const err = await rejection(router.fetch(CHUNK.id));
    expect((err as ChunkUnavailableError).code).toBe('ERR_IO');
  });

  // BUG (src/store/router.ts): getStored may itself throw ChunkCorruptError — HttpStore does when
  // `bootfs serve` answers 500 with bootfs-error: ERR_CHUNK_CORRUPT — but fetch() counts it as a
  // store error (counters.errors, remoteErrors) and, with anyCorrupt still false, reports ERR_IO /
  // exit 1 when every store holds only a corrupt copy. Remove `.fails` once it is handled as corruption.
  it('treats a ChunkCorruptError from getStored as a corrupt copy', async () => {
    const serve = spy('http://serve.example', undefined, () => new ChunkCorruptError(idToHex(CHUNK.id), 'http://serve.example', 'the server reports: bad'));
    const router = new StoreRouter([serve]);
    const err = await rejection(router.fetch(CHUNK.id));
    expect(router.counters).toMatchObject({ corrupt: 1, errors: 0 });
    expect((err as ChunkUnavailableError).exitCode).toBe(ExitCode.integrity);
  });

  it('stops at once on an aborted signal and passes the signal to the stores', async () => {
    const a = spy('a', await store('sig', [CHUNK]));
    const router = new StoreRouter([a]);
    const ac = new AbortController();
    await router.fetch(CHUNK.id, PLAIN.length, ac.signal);
    expect(a.calls[0]!.opts).toEqual({ size: PLAIN.length, signal: ac.signal });
    ac.abort();
    await expect(router.fetch(CHUNK.id, PLAIN.length, ac.signal)).rejects.toMatchObject({ name: 'AbortError' });
    expect(a.calls.length).toBe(1);
  });

  it('rethrows a store error caused by the caller’s abort instead of trying the next store', async () => {
    const ac = new AbortController();
    const aborting = spy('aborting', undefined, () => {
      ac.abort();
      return new IoError('aborted mid-request');
    });
    const next = spy('next', await store('after-abort', [CHUNK]));
    const router = new StoreRouter([aborting, next]);
    await expect(router.fetch(CHUNK.id, undefined, ac.signal)).rejects.toThrow('aborted mid-request');
    expect(next.calls.length).toBe(0);
    expect(router.counters.errors).toBe(0);
  });

  it('needs at least one store, names all of them, and closes all of them', async () => {
    expect(() => new StoreRouter([])).toThrow(RangeError);
    const a = spy('a');
    const b = spy('b');
    const failing = { ...spy('c'), close: async () => Promise.reject(new Error('close failed')) };
    const router = new StoreRouter([a, failing, b]);
    expect(router.location).toBe('a, c, b');
    await router.close();
    expect([a.closed(), b.closed()]).toEqual([1, 1]);
  });
});
