/**
 * src/converter/content.ts: the data stream of a dir: image, written straight into the buffers it
 * is given (the chunker's window), checked against the files' bytes in data order; files that
 * change size after the walk are refused, and an abandoned stream closes what it opened.
 */
import { readdirSync } from 'node:fs';
import { appendFile, mkdir, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dataSource } from '../../src/converter/content.js';
import { readDirTree } from '../../src/converter/dir-tree.js';
import { IoError } from '../../src/errors.js';
import { dataOrder } from '../../src/tree/walk.js';
import { fromByteString } from '../../src/tree/types.js';
import { cleanup, tmpDir } from '../helpers/tools.js';
import { lcgBytes } from '../helpers/bytes.js';

afterAll(cleanup);

const bytes = lcgBytes;

/** 150 small files in two directories (more than one read group), a 3 MiB file and an empty one. */
async function sampleDir(): Promise<string> {
  const dir = path.join(await tmpDir('bootfs-content-'), 'root');
  await mkdir(path.join(dir, 'a'), { recursive: true });
  await mkdir(path.join(dir, 'b'));
  for (let i = 0; i < 150; i++) await writeFile(path.join(dir, i % 2 ? 'a' : 'b', `f${String(i).padStart(3, '0')}`), bytes(1 + ((i * 7919) % 20_000), i));
  await writeFile(path.join(dir, 'big'), bytes(3 * 1024 * 1024 + 17, 999));
  await writeFile(path.join(dir, 'empty'), '');
  return dir;
}

/** What the data stream must be: the files' bytes in data order. */
async function expected(dir: string) {
  const root = await readDirTree(dir, { sourceIndex: 0, getfattr: false });
  const files = dataOrder(root);
  const { readFileSync } = await import('node:fs');
  const want = Buffer.concat(files.map((f) => readFileSync(Buffer.concat([Buffer.from(`${dir}/`), fromByteString(f.content!.path!)]))));
  return { files, want };
}

/** Drain a source through buffers of the given sizes (cycled). */
async function drain(source: ReturnType<typeof dataSource>, sizes: number[]): Promise<Buffer> {
  const out: Buffer[] = [];
  for (let k = 0; ; k++) {
    const dst = Buffer.alloc(sizes[k % sizes.length]!);
    const n = await source.fill(dst);
    expect(n).toBeLessThanOrEqual(dst.length);
    if (n === 0) break;
    out.push(dst.subarray(0, n));
  }
  return Buffer.concat(out);
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('dataSource (dir:)', () => {
  it('writes every file in data order, whatever the sizes of the buffers it fills', async () => {
    const dir = await sampleDir();
    const { files, want } = await expected(dir);
    expect(files.length).toBe(151);
    for (const sizes of [[4 * 1024 * 1024], [1, 3, 8191, 65536, 7], [1000, 65536, 7], [want.length + 100]]) {
      const got = await drain(dataSource(files, [{ kind: 'dir', root: dir }]), sizes);
      expect(got.length).toBe(want.length);
      expect(got.equals(want)).toBe(true);
    }
  });

  it('refuses a file that shrank or grew after the walk, at the end of a buffer or inside one', async () => {
    for (const [change, size] of [
      ['shrank', 1 << 20],
      ['grew', 1 << 20],
      ['grew', 1], // one byte at a time: the end can only be checked with a read of its own
      ['shrank', 1],
    ] as const) {
      const dir = await sampleDir();
      const { files } = await expected(dir);
      const victim = path.join(dir, 'a', 'f001');
      if (change === 'shrank') await truncate(victim, 3);
      else await appendFile(victim, 'more');
      const before = openFds();
      const source = dataSource(files, [{ kind: 'dir', root: dir }]);
      const err = await drain(source, [size]).catch((e: unknown) => e);
      expect(err, `${change} / ${size}`).toBeInstanceOf(IoError);
      expect((err as Error).message).toMatch(new RegExp(`a/f001 in .* ${change} while it was converted \\(expected \\d+ bytes\\)`));
      source.close?.();
      expect(openFds()).toBe(before);
    }
  });

  it('closes the file it is in the middle of when the stream is abandoned', async () => {
    const dir = await sampleDir();
    const { files } = await expected(dir);
    const before = openFds();
    const source = dataSource(files, [{ kind: 'dir', root: dir }]);
    // Into the big file (data order: a/…, big, b/…) and stop there.
    let total = 0;
    const aBytes = files.filter((f) => f.content!.path!.startsWith('a/')).reduce((s, f) => s + f.size, 0);
    while (total < aBytes + 1000) total += await source.fill(Buffer.alloc(4096));
    expect(openFds()).toBe(before + 1);
    source.close?.();
    expect(openFds()).toBe(before);
  });
});
