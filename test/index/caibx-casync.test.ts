/**
 * Interop with the real casync: indexes it makes decode, re-encode byte-identically and describe
 * the right chunks; indexes we write are extracted by casync.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkId } from '../../src/chunk.js';
import { decodeCaibx, digestOfFlags, encodeCaibx, writeCaibxFile } from '../../src/index/caibx.js';

const run = promisify(execFile);

/** Absolute path of `casync` on PATH, like `which casync`. */
function findCasync(): string | undefined {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(d, 'casync');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this PATH entry
    }
  }
  return undefined;
}

const casync = findCasync();
if (casync === undefined && process.env.CI === 'true') {
  throw new Error('casync is not installed but CI=true: run scripts/setup to install the interop peers');
}

describe.skipIf(casync === undefined)('casync interop', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bootfs-caibx-casync-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const cases: { name: string; data: () => Buffer; args: string[] }[] = [
    { name: 'empty', data: () => Buffer.alloc(0), args: [] },
    { name: 'hello', data: () => Buffer.from('hello\n'), args: [] },
    { name: 'random-300k', data: () => randomBytes(300_000), args: [] },
    { name: 'random-1m-small-chunks', data: () => randomBytes(1 << 20), args: ['--chunk-size=1024:4096:16384'] },
    { name: 'zeros-1m', data: () => Buffer.alloc(1 << 20), args: ['--chunk-size=4096'] },
  ];

  for (const c of cases) {
    it(`decodes and re-encodes casync make output byte-identically: ${c.name}`, async () => {
      const data = c.data();
      const input = join(dir, `${c.name}.bin`);
      const index = join(dir, `${c.name}.caibx`);
      await writeFile(input, data);
      await run(casync!, ['make', `--store=${join(dir, 'store')}`, ...c.args, index, input]);
      const bytes = await readFile(index);
      const idx = decodeCaibx(bytes, index);
      expect(encodeCaibx(idx).equals(bytes)).toBe(true);
      expect(idx.table.totalSize).toBe(data.length);
      for (let i = 0; i < idx.table.count; i++) {
        const chunk = data.subarray(idx.table.start(i), idx.table.end(i));
        expect(chunkId(chunk).equals(idx.table.id(i))).toBe(true);
      }
      if (c.name === 'random-1m-small-chunks') {
        expect({ ...idx.sizes }).toEqual({ min: 1024, avg: 4096, max: 16384 });
        expect(idx.table.count).toBeGreaterThan(50);
      }
    });
  }

  it('casync extracts an index written by writeCaibxFile', async () => {
    const data = randomBytes(200_000);
    const input = join(dir, 'ours.bin');
    const theirs = join(dir, 'theirs.caibx');
    const ours = join(dir, 'ours.caibx');
    const out = join(dir, 'ours.out');
    await writeFile(input, data);
    await run(casync!, ['make', `--store=${join(dir, 'store')}`, '--chunk-size=2048:8192:32768', theirs, input]);
    const idx = decodeCaibx(await readFile(theirs), theirs);
    await writeCaibxFile(ours, idx);
    await run(casync!, ['extract', `--store=${join(dir, 'store')}`, ours, out]);
    expect((await readFile(out)).equals(data)).toBe(true);
  });

  it('reads a casync --digest=sha256 index: flags 0x9000…, IDs are SHA-256 of the chunks', async () => {
    const data = randomBytes(300_000);
    const input = join(dir, 'h256.bin');
    const index = join(dir, 'h256.caibx');
    await writeFile(input, data);
    await run(casync!, ['make', `--store=${join(dir, 'store256')}`, '--digest=sha256', index, input]);
    const bytes = await readFile(index);
    const idx = decodeCaibx(bytes, index);
    expect(idx.flags).toBe(0x9000000000000000n);
    expect(digestOfFlags(idx.flags)).toBe('sha256');
    expect(encodeCaibx(idx).equals(bytes)).toBe(true);
    for (let i = 0; i < idx.table.count; i++) {
      const chunk = data.subarray(idx.table.start(i), idx.table.end(i));
      expect(chunkId(chunk, 'sha256').equals(idx.table.id(i))).toBe(true);
      expect(chunkId(chunk, 'sha512-256').equals(idx.table.id(i))).toBe(false);
    }
  });
});
