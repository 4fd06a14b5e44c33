import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeChunk, idToHex } from '../../src/chunk.js';
import { NotFoundError } from '../../src/errors.js';
import { LocalStore } from '../../src/store/local.js';
import { describeChunkStore } from './conformance.js';

async function freshDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'bootfs-local-'));
}

describeChunkStore('local', async () => {
  const dir = await freshDir();
  const store = await LocalStore.open(dir, { create: true });
  return {
    store,
    corrupt: (hex, bytes) => writeFile(store.chunkPath(hex), bytes),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('LocalStore', () => {
  it('uses the casync layout <root>/<4hex>/<id>.cacnk and leaves no temp files', async () => {
    const dir = await freshDir();
    const store = await LocalStore.open(dir, { create: true });
    const { id, stored } = encodeChunk(Buffer.from('hello\n'));
    await store.storeChunk(id, stored);
    expect(await readdir(dir)).toEqual(['7f3f']);
    expect(await readdir(path.join(dir, '7f3f'))).toEqual(['7f3f0c0d5219f51459578305ed2bbc198588758da85d08024c79c1195d1cd611.cacnk']);
    await rm(dir, { recursive: true });
  });

  it('refuses a missing directory unless asked to create it', async () => {
    const dir = path.join(await freshDir(), 'nope');
    await expect(LocalStore.open(dir)).rejects.toBeInstanceOf(NotFoundError);
    await LocalStore.open(dir, { create: true });
  });

  it('lists chunks, skipping temp files, foreign files and misplaced names', async () => {
    const dir = await freshDir();
    const store = await LocalStore.open(dir, { create: true });
    const a = encodeChunk(Buffer.from('a'));
    const b = encodeChunk(Buffer.from('b'));
    await store.storeChunk(a.id, a.stored);
    await store.storeChunk(b.id, b.stored);
    const shard = path.join(dir, idToHex(a.id).slice(0, 4));
    await writeFile(path.join(shard, `.tmp-${idToHex(a.id)}.1.abc`), 'partial');
    await writeFile(path.join(shard, 'README'), 'not a chunk');
    await mkdir(path.join(dir, 'zzzz'));
    await writeFile(path.join(dir, 'zzzz', `${'0'.repeat(64)}.cacnk`), 'misplaced');
    const listed = [];
    for await (const c of store.listChunks()) listed.push(c.id);
    expect(listed.sort()).toEqual([idToHex(a.id), idToHex(b.id)].sort());
    const temps = [];
    for await (const t of store.listTempFiles()) temps.push(path.basename(t.path));
    expect(temps).toEqual([`.tmp-${idToHex(a.id)}.1.abc`]);
    await store.removeChunk(a.id);
    await store.removeChunk(a.id); // absent: not an error
    expect(await store.hasChunk(a.id)).toBe(false);
    await rm(dir, { recursive: true });
  });

  it('is safe with several writer processes at once', async () => {
    const dir = await freshDir();
    // 4 processes each store the same 50 chunks (and 10 of their own) at the same time.
    const script = `
      import { LocalStore } from ${JSON.stringify(path.resolve('src/store/local.ts'))};
      import { encodeChunk } from ${JSON.stringify(path.resolve('src/chunk.ts'))};
      const store = await LocalStore.open(process.argv[2], { create: true });
      const jobs = [];
      for (let i = 0; i < 50; i++) { const c = encodeChunk(Buffer.from('shared ' + i + ' '.repeat(i * 100))); jobs.push(store.storeChunk(c.id, c.stored)); }
      for (let i = 0; i < 10; i++) { const c = encodeChunk(Buffer.from('own ' + process.pid + ' ' + i)); jobs.push(store.storeChunk(c.id, c.stored)); }
      await Promise.all(jobs);
    `;
    const scriptFile = path.join(dir, 'writer.mts');
    await writeFile(scriptFile, script);
    const storeDir = path.join(dir, 'store');
    const codes = await Promise.all(
      Array.from({ length: 4 }, () => new Promise<number | null>((resolve) => {
        const p = spawn(process.execPath, ['--import', 'tsx', scriptFile, storeDir], { stdio: 'inherit' });
        p.on('exit', resolve);
      })),
    );
    expect(codes).toEqual([0, 0, 0, 0]);
    const store = await LocalStore.open(storeDir);
    let n = 0;
    for await (const c of store.listChunks()) {
      n++;
      await store.getChunk(Buffer.from(c.id, 'hex')); // verifies
    }
    expect(n).toBe(50 + 40);
    const temps = [];
    for await (const t of store.listTempFiles()) temps.push(t);
    expect(temps).toEqual([]);
    await rm(dir, { recursive: true });
  });

  it('does not follow a chunk name out of the store', async () => {
    const dir = await freshDir();
    const store = await LocalStore.open(dir, { create: true });
    // IDs are raw bytes rendered as hex, so a path can only ever be <root>/<4hex>/<64hex>.cacnk.
    const p = store.chunkPath(randomBytes(32));
    expect(path.dirname(path.dirname(p))).toBe(store.root);
    await rm(dir, { recursive: true });
  });
});
