import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CHUNK_SIZES } from '../../src/chunker/params.js';
import { IndexFormatError, IoError, NotFoundError } from '../../src/errors.js';
import { ChunkTable } from '../../src/index/chunk-table.js';
import {
  CA_FORMAT_INDEX,
  CA_FORMAT_SHA512_256,
  CA_FORMAT_TABLE,
  CA_FORMAT_TABLE_TAIL_MARKER,
  CAIBX_DEFAULT_FLAGS,
  caibxFlags,
  decodeCaibx,
  digestOfFlags,
  encodeCaibx,
  readCaibxFile,
  writeCaibxFile,
  type BlobIndex,
} from '../../src/index/caibx.js';
import { EMPTY_CAIBX, HELLO_CAIBX, HELLO_ID, arbIndex, indexOf, setU64 } from './caibx-fixtures.js';

/** Decode expecting an IndexFormatError; returns its reason (the text after "is invalid: "). */
function reasonOf(buf: Buffer, name = 'x.caibx'): string {
  try {
    decodeCaibx(buf, name);
  } catch (err) {
    expect(err).toBeInstanceOf(IndexFormatError);
    const e = err as IndexFormatError;
    expect(e.code).toBe('ERR_INDEX_FORMAT');
    expect(e.file).toBe(name);
    expect(e.message.startsWith(`index ${name} is invalid: `)).toBe(true);
    return e.message.slice(`index ${name} is invalid: `.length);
  }
  throw new Error('decodeCaibx accepted an invalid index');
}

function expectSameIndex(a: BlobIndex, b: BlobIndex): void {
  expect(a.flags).toBe(b.flags);
  expect({ ...a.sizes }).toEqual({ ...b.sizes });
  expect(Array.from(a.table.ends)).toEqual(Array.from(b.table.ends));
  expect(a.table.ids.equals(b.table.ids)).toBe(true);
}

/** Three chunks of 100, 200, 300 bytes: items at 64, 104, 144; tail at 184; 224 bytes. */
const three = (): Buffer => encodeCaibx(indexOf([100, 200, 300]));
const item = (i: number): number => 64 + 40 * i;

describe('constants', () => {
  it('match casync caformat.h', () => {
    expect(CA_FORMAT_INDEX).toBe(0x96824d9c7b129ff9n);
    expect(CA_FORMAT_TABLE).toBe(0xe75b9e112f17417dn);
    expect(CA_FORMAT_TABLE_TAIL_MARKER).toBe(0x4b4f050e5549ecd1n);
    expect(CA_FORMAT_SHA512_256).toBe(0x2000000000000000n);
    expect(CAIBX_DEFAULT_FLAGS).toBe(0xb000000000000000n);
  });
});

describe('golden vectors', () => {
  const hello: BlobIndex = {
    flags: CAIBX_DEFAULT_FLAGS,
    sizes: DEFAULT_CHUNK_SIZES,
    table: ChunkTable.fromChunks([{ size: 6, id: Buffer.from(HELLO_ID, 'hex') }]),
  };

  it('encodes casync hello.caibx byte for byte', () => {
    expect(HELLO_CAIBX.length).toBe(144);
    expect(encodeCaibx(hello).toString('hex')).toBe(HELLO_CAIBX.toString('hex'));
  });

  it('decodes casync hello.caibx', () => {
    const idx = decodeCaibx(HELLO_CAIBX, 'hello.caibx');
    expect(idx.flags).toBe(0xb000000000000000n);
    expect({ ...idx.sizes }).toEqual({ min: 16384, avg: 65536, max: 262144 });
    expect(idx.table.count).toBe(1);
    expect(idx.table.totalSize).toBe(6);
    expect(idx.table.hexId(0)).toBe(HELLO_ID);
  });

  it('encodes and decodes the empty blob (104 bytes, tail size 0x38)', () => {
    const empty: BlobIndex = { flags: CAIBX_DEFAULT_FLAGS, sizes: DEFAULT_CHUNK_SIZES, table: ChunkTable.fromChunks([]) };
    const bytes = encodeCaibx(empty);
    expect(bytes.length).toBe(104);
    expect(bytes.readBigUInt64LE(88)).toBe(0x38n);
    expect(bytes.equals(EMPTY_CAIBX)).toBe(true);
    const idx = decodeCaibx(EMPTY_CAIBX, 'empty.caibx');
    expect(idx.table.count).toBe(0);
    expect(idx.table.totalSize).toBe(0);
  });

  it('decodes from a Uint8Array view at a non-zero offset and copies the IDs', () => {
    const backing = new Uint8Array(HELLO_CAIBX.length + 13);
    backing.set(HELLO_CAIBX, 13);
    const view = backing.subarray(13);
    const idx = decodeCaibx(view, 'view');
    view.fill(0);
    expect(idx.table.hexId(0)).toBe(HELLO_ID);
  });

  it('writes end offsets above 2^32 exactly', () => {
    const max = 128 * 1024 * 1024;
    const sizes = { min: max, avg: max, max };
    const idx = indexOf(new Array<number>(40).fill(max), sizes); // 5 GiB
    const bytes = encodeCaibx(idx);
    expect(bytes.readBigUInt64LE(item(39))).toBe(40n * BigInt(max));
    expectSameIndex(decodeCaibx(bytes, 'big'), idx);
  });
});

describe('round trip (fast-check)', () => {
  it('decode(encode(x)) equals x and the size is 104 + 40n', () => {
    fc.assert(
      fc.property(arbIndex(500), (idx) => {
        const bytes = encodeCaibx(idx);
        expect(bytes.length).toBe(104 + 40 * idx.table.count);
        const back = decodeCaibx(bytes, 'rt');
        expectSameIndex(back, idx);
        expect(encodeCaibx(back).equals(bytes)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('accepts chunks smaller than min, as casync does', () => {
    const idx = indexOf([1, 2, 3]);
    expectSameIndex(decodeCaibx(encodeCaibx(idx), 'small'), idx);
  });

  it('decodes a million items in linear time', () => {
    const n = 1_000_000;
    const ends = new Float64Array(n);
    for (let i = 0; i < n; i++) ends[i] = (i + 1) * 1000;
    const big: BlobIndex = { flags: CAIBX_DEFAULT_FLAGS, sizes: DEFAULT_CHUNK_SIZES, table: new ChunkTable(ends, Buffer.alloc(n * 32, 7)) };
    const bytes = encodeCaibx(big);
    const t0 = performance.now();
    expect(decodeCaibx(bytes, 'big').table.count).toBe(n);
    // The error path that scans for an earlier tail must be linear too.
    expect(reasonOf(Buffer.concat([bytes, Buffer.alloc(1)]))).toMatch(/1 trailing bytes/);
    expect(performance.now() - t0).toBeLessThan(20_000);
  });
});

describe('reader checks', () => {
  it('rejects a file shorter than 104 bytes', () => {
    expect(reasonOf(HELLO_CAIBX.subarray(0, 103))).toMatch(/103 bytes, shorter than the 104-byte minimum/);
    expect(reasonOf(Buffer.alloc(0))).toMatch(/0 bytes, shorter than the 104-byte minimum/);
  });

  it('rejects a wrong index magic', () => {
    expect(reasonOf(setU64(three(), 8, 0x1396fabcea5bbb51n))).toBe('not a casync index (bad magic)');
    expect(reasonOf(Buffer.alloc(200, 0x41))).toBe('not a casync index (bad magic)');
  });

  it('rejects a header size other than 48', () => {
    expect(reasonOf(setU64(three(), 0, 64n))).toBe('index header size is 64, expected 48');
  });

  it('rejects unknown feature flag bits', () => {
    expect(reasonOf(setU64(three(), 16, CAIBX_DEFAULT_FLAGS | 0x200000000n))).toMatch(
      /unknown feature flag bits 0x0000000200000000/,
    );
    expect(reasonOf(setU64(three(), 16, 0xffffffffffffffffn))).toMatch(/unknown feature flag bits 0x0ffffffe00000000/);
  });

  it('accepts every known bit in a normalized set', () => {
    for (const flags of [0xf0000001ffeffe26n, 0x2000000000000000n, 0x2000000000000b22n]) {
      expect(decodeCaibx(setU64(three(), 16, flags), 'f').flags).toBe(flags);
    }
  });

  it('rejects feature flags casync does not consider normalized', () => {
    expect(reasonOf(setU64(three(), 16, CA_FORMAT_SHA512_256 | 0x20n | 0x10n))).toMatch(
      /not normalized \(more than one time-granularity bit\)/,
    );
    expect(reasonOf(setU64(three(), 16, CAIBX_DEFAULT_FLAGS | 0x100000n))).toMatch(/EXCLUDE_NODUMP together with FLAG_NODUMP/);
    expect(reasonOf(setU64(three(), 16, CA_FORMAT_SHA512_256 | 0x20000000n))).toMatch(/ACL without a uid/);
  });

  it('reads the digest from the SHA512_256 flag: set is SHA-512/256, clear is SHA-256', () => {
    const sha256 = setU64(three(), 16, 0x9000000000000000n);
    expect(digestOfFlags(decodeCaibx(sha256, 'x').flags)).toBe('sha256');
    expect(digestOfFlags(decodeCaibx(three(), 'x').flags)).toBe('sha512-256');
    expect(caibxFlags('sha256')).toBe(0x9000000000000000n);
    expect(caibxFlags('sha512-256')).toBe(CAIBX_DEFAULT_FLAGS);
  });

  it('rejects chunk sizes outside 1…128 MiB, without truncating huge values', () => {
    expect(reasonOf(setU64(three(), 24, 0n))).toMatch(/chunk_size_min 0 is outside 1…134217728/);
    expect(reasonOf(setU64(three(), 32, 0xffffffffffffffffn))).toMatch(
      /chunk_size_avg 18446744073709551615 is outside 1…134217728/,
    );
    expect(reasonOf(setU64(three(), 40, 134217729n))).toMatch(/chunk_size_max 134217729 is outside/);
    // 2^32 + 1 would look like 1 if only the low word were read.
    expect(reasonOf(setU64(three(), 24, 0x100000001n))).toMatch(/chunk_size_min 4294967297 is outside/);
  });

  it('rejects min > avg or avg > max', () => {
    expect(reasonOf(setU64(three(), 24, 65537n))).toBe('chunk sizes must satisfy min <= avg <= max, got 65537:65536:262144');
    expect(reasonOf(setU64(three(), 32, 262145n))).toMatch(/min <= avg <= max, got 16384:262145:262144/);
  });

  it('rejects a table size that is not all ones', () => {
    expect(reasonOf(setU64(three(), 48, 184n))).toBe('table header size is 0x00000000000000b8, expected 0xffffffffffffffff');
  });

  it('rejects a wrong table magic', () => {
    expect(reasonOf(setU64(three(), 56, 0n))).toMatch(/bad table magic 0x0000000000000000, expected 0xe75b9e112f17417d/);
  });

  it('rejects a size that is not 104 + 40n', () => {
    expect(reasonOf(three().subarray(0, 223))).toMatch(/file size 223 is not 104 \+ 40·n and no table tail was found/);
    expect(reasonOf(three().subarray(0, 105))).toMatch(/file size 105 is not 104 \+ 40·n/);
  });

  it('rejects a file truncated at an item boundary', () => {
    expect(reasonOf(three().subarray(0, 184))).toMatch(/bad table tail marker .* at offset 176.*truncated/);
  });

  it('rejects end offsets that are not strictly increasing, naming the item', () => {
    expect(reasonOf(setU64(three(), item(2), 50n))).toBe('end offsets are not strictly increasing at item 2 (50 after 300)');
  });

  it('rejects zero-size chunks', () => {
    expect(reasonOf(setU64(three(), item(0), 0n))).toMatch(/^item 0 is a zero-size chunk/);
    expect(reasonOf(setU64(three(), item(1), 100n))).toMatch(/^item 1 is a zero-size chunk \(end offset 100/);
  });

  it('rejects a chunk larger than max, naming the item and sizes', () => {
    expect(reasonOf(setU64(three(), item(1), 100n + 262145n))).toBe(
      "item 1 is a 262145-byte chunk, larger than the index's max chunk size 262144",
    );
    // Exactly max is fine.
    expect(decodeCaibx(setU64(setU64(three(), item(1), 100n + 262144n), item(2), 262244n + 1n), 'ok').table.size(1)).toBe(262144);
  });

  it('rejects end offsets at or above 2^53', () => {
    expect(reasonOf(setU64(three(), item(0), 2n ** 53n))).toBe(
      'item 0 end offset 9007199254740992 is not below 2^53 and would lose precision',
    );
    expect(reasonOf(setU64(three(), item(1), 0xffffffffffffffffn))).toMatch(/item 1 end offset 18446744073709551615 is not below 2\^53/);
  });

  it('rejects a chunk that is too large only in the high word', () => {
    // 2^32 + 100: a reader that dropped the high word would see a 0-byte chunk after item 0.
    expect(reasonOf(setU64(three(), item(1), 0x100000064n))).toMatch(/item 1 is a 4294967296-byte chunk, larger than/);
  });

  it('rejects a damaged tail, field by field', () => {
    const tail = item(3);
    expect(reasonOf(setU64(three(), tail, 1n))).toBe('table tail zero fill at offset 184 is not zero');
    expect(reasonOf(setU64(three(), tail + 8, 1n))).toBe('table tail zero fill at offset 184 is not zero');
    expect(reasonOf(setU64(three(), tail + 16, 49n))).toBe('table tail index offset is 49, expected 48');
    expect(reasonOf(setU64(three(), tail + 24, 136n))).toBe('table tail size is 136, expected 176 (16 + 40·n + 40 for n = 3 items)');
    expect(reasonOf(setU64(three(), tail + 32, 0x4b4f050e5549ecd0n))).toMatch(
      /^bad table tail marker 0x4b4f050e5549ecd0 at offset 216, expected 0x4b4f050e5549ecd1/,
    );
  });

  it('rejects trailing bytes after the tail', () => {
    expect(reasonOf(Buffer.concat([three(), Buffer.alloc(1)]))).toBe(
      '1 trailing bytes after the table tail that ends at offset 224',
    );
    expect(reasonOf(Buffer.concat([three(), Buffer.alloc(40, 0xff)]))).toBe(
      '40 trailing bytes after the table tail that ends at offset 224',
    );
    expect(reasonOf(Buffer.concat([EMPTY_CAIBX, EMPTY_CAIBX.subarray(64)]))).toMatch(/^40 trailing bytes after the table tail that ends at offset 104/);
  });
});

describe('encodeCaibx refuses what decodeCaibx would refuse', () => {
  it('throws RangeError for bad flags, sizes or tables', () => {
    expect(() => encodeCaibx({ ...indexOf([1]), flags: 0x9000000000000000n | 0x30n })).toThrow(/not normalized/);
    expect(() => encodeCaibx({ ...indexOf([1]), flags: 1n << 64n })).toThrow(RangeError);
    expect(() => encodeCaibx({ ...indexOf([1]), flags: -1n })).toThrow(/do not fit in an unsigned 64-bit field/);
    expect(() => encodeCaibx(indexOf([1], { min: 5, avg: 4, max: 6 }))).toThrow(/min <= avg <= max/);
    expect(() => encodeCaibx(indexOf([1], { min: 1.5, avg: 4, max: 6 }))).toThrow(/integers/);
    expect(() => encodeCaibx(indexOf([7], { min: 1, avg: 4, max: 6 }))).toThrow(/item 0 is a 7-byte chunk/);
    expect(() => encodeCaibx(indexOf([1, 0]))).toThrow(/item 1 is a zero-size chunk/);
    const ends = Float64Array.of(10, 5);
    expect(() => encodeCaibx({ ...indexOf([]), table: new ChunkTable(ends, Buffer.alloc(64)) })).toThrow(/not strictly increasing at item 1/);
    expect(() => encodeCaibx({ ...indexOf([]), table: new ChunkTable(Float64Array.of(1.5), Buffer.alloc(32)) })).toThrow(/not an integer/);
  });
});

describe('files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bootfs-caibx-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writeCaibxFile writes the exact bytes and leaves no temp file', async () => {
    const idx = indexOf([100, 200, 300]);
    const path = join(dir, 'a.caibx');
    await writeCaibxFile(path, idx);
    expect(await readdir(dir)).toEqual(['a.caibx']);
    expect((await readFile(path)).equals(encodeCaibx(idx))).toBe(true);
    expectSameIndex(await readCaibxFile(path), idx);
  });

  it('writeCaibxFile replaces an existing file atomically', async () => {
    const path = join(dir, 'a.caibx');
    await writeFile(path, 'old');
    await writeCaibxFile(path, indexOf([5]));
    expect(await readdir(dir)).toEqual(['a.caibx']);
    expect(decodeCaibx(await readFile(path), path).table.totalSize).toBe(5);
  });

  it('writeCaibxFile into a missing directory throws IoError naming the path', async () => {
    const path = join(dir, 'missing', 'a.caibx');
    const err = await writeCaibxFile(path, indexOf([5])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).message).toContain(path);
    expect(await readdir(dir)).toEqual([]);
  });

  it('writeCaibxFile onto a directory throws IoError and removes its temp file', async () => {
    const path = join(dir, 'taken.caibx');
    await mkdir(path);
    const err = await writeCaibxFile(path, indexOf([5])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).message).toContain(path);
    expect(await readdir(dir)).toEqual(['taken.caibx']);
    expect(await readdir(path)).toEqual([]);
  });

  it('readCaibxFile maps ENOENT to NotFoundError and other errors to IoError', async () => {
    const missing = join(dir, 'nope.caibx');
    const nf = await readCaibxFile(missing).catch((e: unknown) => e);
    expect(nf).toBeInstanceOf(NotFoundError);
    expect((nf as NotFoundError).message).toBe(`index ${missing} not found`);
    const io = await readCaibxFile(dir).catch((e: unknown) => e);
    expect(io).toBeInstanceOf(IoError);
    expect((io as IoError).message).toContain(dir);
  });

  it('readCaibxFile reports format errors with the path', async () => {
    const path = join(dir, 'bad.caibx');
    await writeFile(path, Buffer.concat([HELLO_CAIBX, Buffer.from([0])]));
    const err = await readCaibxFile(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IndexFormatError);
    expect((err as Error).message).toBe(`index ${path} is invalid: 1 trailing bytes after the table tail that ends at offset 144`);
  });
});
