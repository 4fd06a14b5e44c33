import fc from 'fast-check';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BootfsError, IoError } from '../../src/errors.js';
import { Spool } from '../../src/converter/spool.js';
import { cleanup, tmpDir } from '../helpers/tools.js';
import { chunked } from './tar-writer.js';

afterAll(cleanup);

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('Spool', () => {
  it('appends, reads ranges back (async and sync), and removes its directory on close', async () => {
    const parent = await tmpDir('bootfs-spool-test-');
    const spool = await Spool.create(parent, { bufferSize: 1000 });
    expect(path.dirname(spool.dir)).toBe(parent);
    const a = await spool.append(Buffer.from('hello'));
    const b = await spool.append(chunked(Buffer.alloc(5000, 7), 333));
    const c = await spool.append([Buffer.from('x'), Buffer.from('yz')]);
    const empty = await spool.append(Buffer.alloc(0));
    expect([a, b, c, empty]).toEqual([
      { offset: 0, size: 5 },
      { offset: 5, size: 5000 },
      { offset: 5005, size: 3 },
      { offset: 5008, size: 0 },
    ]);
    expect(spool.size).toBe(5008);
    // readRange flushes what is still buffered
    expect((await collect(spool.readRange(5005, 3))).toString()).toBe('xyz');
    expect(spool.readRangeSync(0, 5).toString()).toBe('hello');
    expect(spool.readRangeSync(5, 5000)).toEqual(Buffer.alloc(5000, 7));
    expect((await readFile(spool.path)).length).toBe(5008);
    await expect(collect(spool.readRange(5000, 10))).rejects.toThrow(BootfsError);
    await spool.close();
    await spool.close();
    expect(existsSync(spool.dir)).toBe(false);
    await expect(spool.append(Buffer.from('late'))).rejects.toThrow(/closed/);
  });

  it('readRangeSync refuses ranges that are not flushed yet', async () => {
    const spool = await Spool.create(await tmpDir('bootfs-spool-test-'));
    await spool.append(Buffer.from('abc'));
    expect(() => spool.readRangeSync(0, 3)).toThrow(/flush/);
    await spool.flush();
    expect(spool.readRangeSync(1, 2).toString()).toBe('bc');
    await spool.close();
  });

  it('reads large ranges in chunks of at most 1 MiB', async () => {
    const spool = await Spool.create(await tmpDir('bootfs-spool-test-'));
    const data = Buffer.alloc(3_500_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const r = await spool.append(chunked(data, 65536));
    const sizes: number[] = [];
    const got: Buffer[] = [];
    for await (const c of spool.readRange(r.offset, r.size)) {
      sizes.push(c.length);
      got.push(c);
    }
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1 << 20);
    expect(Buffer.concat(got).equals(data)).toBe(true);
    await spool.close();
  });

  it('property: any sequence of appends reads back exactly', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 4 }), { maxLength: 12 }), fc.integer({ min: 1, max: 700 }), async (files, bufferSize) => {
        const spool = await Spool.create(await tmpDir('bootfs-spool-prop-'), { bufferSize });
        try {
          const ranges = [];
          for (const parts of files) ranges.push(await spool.append(parts));
          await spool.flush();
          for (let i = 0; i < files.length; i++) {
            const want = Buffer.concat(files[i]!.map((p) => Buffer.from(p)));
            expect(ranges[i]!.size).toBe(want.length);
            expect(spool.readRangeSync(ranges[i]!.offset, ranges[i]!.size).equals(want)).toBe(true);
            expect((await collect(spool.readRange(ranges[i]!.offset, ranges[i]!.size))).equals(want)).toBe(true);
          }
        } finally {
          await spool.close();
        }
      }),
      { numRuns: 50 },
    );
  });

  it('reports a missing parent directory as an IoError', async () => {
    await expect(Spool.create('/nonexistent/bootfs')).rejects.toThrow(IoError);
  });
});
