/**
 * The chunk-store part of the demo: two versions of an image into one store, the dedup between
 * them, extraction with verification, and (when casync is installed) casync reading our store.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeCaibxFile } from '../index/caibx.js';
import { extractBlob, fileSink } from '../ops/extract.js';
import { makeBlobIndex } from '../ops/make.js';
import { ChunkPool } from '../pool/chunk-pool.js';
import { LocalStore } from '../store/local.js';
import { storeStats } from '../ops/store-maint.js';
import { nextVersion, sampleImage } from './sample-data.js';

export interface ChunkDemoResult {
  dir: string;
  v1Bytes: number;
  v2Bytes: number;
  v1Chunks: number;
  v2Chunks: number;
  v2NewChunks: number;
  v1StoredBytes: number;
  v2NewStoredBytes: number;
  extractedOk: boolean;
  casync: 'ok' | 'mismatch' | 'not installed';
}

async function* once(buf: Buffer): AsyncGenerator<Uint8Array> {
  yield buf;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Run the demo in `dir`, logging the story through `log`. */
export async function runChunkDemo(dir: string, log: (line: string) => void, sizeMiB = 48, sharedPool?: ChunkPool): Promise<ChunkDemoResult> {
  await mkdir(dir, { recursive: true });
  const storeDir = path.join(dir, 'store');
  // A fresh store on every run (also in a reused --dir), so "new chunks" tells the story.
  await rm(storeDir, { recursive: true, force: true });
  const store = await LocalStore.open(storeDir, { create: true });
  const pool = sharedPool ?? new ChunkPool();
  try {
    const v1 = sampleImage(sizeMiB * 1024 * 1024);
    const v2 = nextVersion(v1);
    await writeFile(path.join(dir, 'image-v1.raw'), v1);
    await writeFile(path.join(dir, 'image-v2.raw'), v2);
    log(`sample image v1: ${(v1.length / 1e6).toFixed(1)} MB; v2 = v1 with 300 KiB inserted near the start and 3 patches`);

    const m1 = await makeBlobIndex(once(v1), { store, pool });
    await writeCaibxFile(path.join(dir, 'image-v1.caibx'), m1.index);
    log(`bootfs make v1: ${m1.chunks} chunks, ${m1.newChunks} new, ${(m1.newStoredBytes / 1e6).toFixed(1)} MB stored (zstd)`);
    const m2 = await makeBlobIndex(once(v2), { store, pool });
    await writeCaibxFile(path.join(dir, 'image-v2.caibx'), m2.index);
    log(
      `bootfs make v2: ${m2.chunks} chunks, only ${m2.newChunks} new, ${(m2.newStoredBytes / 1e6).toFixed(2)} MB stored ` +
        `— the insertion shifted every later byte, yet content-defined chunks still match`,
    );
    const stats = await storeStats(store);
    log(`store ${storeDir}: ${stats.chunks} chunks, ${(stats.storedBytes / 1e6).toFixed(1)} MB for ${((v1.length + v2.length) / 1e6).toFixed(1)} MB of images`);

    const out = path.join(dir, 'image-v2.extracted');
    await extractBlob(m2.index, store, await fileSink(out), { pool });
    const extractedOk = sha(await readFile(out)) === sha(v2);
    log(`bootfs extract v2: every chunk verified (SHA-512/256); output ${extractedOk ? 'identical to' : 'DIFFERS from'} v2`);

    let casync: ChunkDemoResult['casync'] = 'not installed';
    const which = spawnSync('sh', ['-c', 'command -v casync'], { encoding: 'utf8' });
    if (which.status === 0) {
      const casyncOut = path.join(dir, 'image-v2.casync');
      const r = spawnSync('casync', ['extract', `--store=${storeDir}`, path.join(dir, 'image-v2.caibx'), casyncOut], { encoding: 'utf8' });
      casync = r.status === 0 && sha(await readFile(casyncOut)) === sha(v2) ? 'ok' : 'mismatch';
      log(`casync extract of our index and store: ${casync === 'ok' ? 'identical bytes' : `FAILED ${r.stderr}`}`);
    } else log('casync not installed: skipping the casync cross-check (scripts/setup installs it)');

    return {
      dir,
      v1Bytes: v1.length,
      v2Bytes: v2.length,
      v1Chunks: m1.chunks,
      v2Chunks: m2.chunks,
      v2NewChunks: m2.newChunks,
      v1StoredBytes: m1.newStoredBytes,
      v2NewStoredBytes: m2.newStoredBytes,
      extractedOk,
      casync,
    };
  } finally {
    if (!sharedPool) await pool.close();
  }
}
