/**
 * The converter part of the demo: a sample image (a small root filesystem built from the sample
 * data) in two versions, converted into one store; the index is browsed and unpacked.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { convertImage } from '../converter/convert.js';
import { BootfsIndex } from '../index/bootfs-reader.js';
import { resolveFollow } from '../index/path-resolve.js';
import { readRange } from '../ops/read-range.js';
import { unpackIndex } from '../ops/unpack.js';
import { parseImageRef } from '../oci/index.js';
import type { ChunkPool } from '../pool/chunk-pool.js';
import type { LocalStore } from '../store/local.js';
import { utf8ToByteString } from '../tree/types.js';
import { sampleImage } from './sample-data.js';

export interface ConvertDemoResult {
  v1Entries: number;
  v1Bytes: number;
  v1NewChunks: number;
  v2NewChunks: number;
  v2NewStoredBytes: number;
  indexBytes: number;
  unpackedOk: boolean;
}

/** Write a small root filesystem: config, "libraries", data files, docs, a symlink. */
async function writeSampleRootfs(dir: string, version: number): Promise<void> {
  await mkdir(path.join(dir, 'etc'), { recursive: true });
  await mkdir(path.join(dir, 'usr/lib/app'), { recursive: true });
  await mkdir(path.join(dir, 'usr/share/app/data'), { recursive: true });
  await mkdir(path.join(dir, 'usr/bin'), { recursive: true });
  await writeFile(path.join(dir, 'etc/app.conf'), `# sample app\nversion = ${version}\nlisten = 0.0.0.0:8080\n`);
  for (let i = 0; i < 12; i++) {
    // v2 rebuilds one library; the rest are byte-identical between versions.
    const seed = 100 + i + (version === 2 && i === 3 ? 1000 : 0);
    await writeFile(path.join(dir, `usr/lib/app/lib${i}.so`), sampleImage(512 * 1024 + i * 7919, seed));
  }
  for (let i = 0; i < 6; i++) await writeFile(path.join(dir, `usr/share/app/data/model-${i}.bin`), sampleImage(2 * 1024 * 1024, 500 + i));
  await writeFile(path.join(dir, 'usr/bin/app'), '#!/bin/sh\necho "sample app"\n');
  await chmod(path.join(dir, 'usr/bin/app'), 0o755);
  await symlink('app.conf', path.join(dir, 'etc/current.conf'));
  if (version === 2) await writeFile(path.join(dir, 'usr/share/app/CHANGES'), 'v2: rebuilt lib3\n');
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Run the converter demo in `dir` with `store`. */
export async function runConvertDemo(dir: string, store: LocalStore, pool: ChunkPool, log: (line: string) => void): Promise<ConvertDemoResult> {
  const v1 = path.join(dir, 'rootfs-v1');
  const v2 = path.join(dir, 'rootfs-v2');
  const out = path.join(dir, 'unpacked-v2');
  // Made afresh on every run (also in a reused --dir): unpack wants a new or empty directory.
  for (const d of [v1, v2, out]) await rm(d, { recursive: true, force: true });
  await writeSampleRootfs(v1, 1);
  await writeSampleRootfs(v2, 2);
  const c1 = await convertImage(parseImageRef(`dir:${v1}`), { store, pool });
  await writeFile(path.join(dir, 'app-v1.bootfs'), c1.index);
  log(`bootfs convert dir:rootfs-v1: ${c1.counts.entries} entries, ${(c1.bytes / 1e6).toFixed(1)} MB of files in ${c1.chunks} chunks, index ${(c1.index.length / 1024).toFixed(1)} KiB`);
  const c2 = await convertImage(parseImageRef(`dir:${v2}`), { store, pool });
  await writeFile(path.join(dir, 'app-v2.bootfs'), c2.index);
  log(`bootfs convert dir:rootfs-v2 (one library rebuilt, a file added): only ${c2.newChunks} new chunks, ${(c2.newStoredBytes / 1e6).toFixed(2)} MB stored`);

  const index = BootfsIndex.decode(c2.index, 'app-v2.bootfs');
  const conf = resolveFollow(index, utf8ToByteString('/etc/current.conf'));
  const { offset, size } = index.fileExtent(conf);
  const parts: Buffer[] = [];
  for await (const p of readRange(index.table, store, offset, size)) parts.push(p);
  log(`bootfs cat app-v2.bootfs /etc/current.conf (a symlink; fetches one chunk): ${JSON.stringify(Buffer.concat(parts).toString().split('\n')[1])}`);

  await unpackIndex(index, store, out, { pool, owners: false });
  let unpackedOk = true;
  for (const rel of ['usr/lib/app/lib3.so', 'usr/share/app/data/model-5.bin', 'etc/app.conf', 'usr/share/app/CHANGES']) {
    if (sha(await readFile(path.join(out, rel))) !== sha(await readFile(path.join(v2, rel)))) unpackedOk = false;
  }
  log(`bootfs unpack app-v2.bootfs: tree written to ${out}, contents ${unpackedOk ? 'identical to' : 'DIFFERENT from'} rootfs-v2`);
  return {
    v1Entries: c1.counts.entries,
    v1Bytes: c1.bytes,
    v1NewChunks: c1.newChunks,
    v2NewChunks: c2.newChunks,
    v2NewStoredBytes: c2.newStoredBytes,
    indexBytes: c2.index.length,
    unpackedOk,
  };
}
