/** Shared vectors and generators for the .caibx tests. */
import fc from 'fast-check';
import { MAX_CHUNK_SIZE_CEILING, type ChunkSizes } from '../../src/chunker/params.js';
import { ChunkTable } from '../../src/index/chunk-table.js';
import { CAIBX_DEFAULT_FLAGS, type BlobIndex } from '../../src/index/caibx.js';

/** casync's `hello.caibx` (docs casync-format §3.1): content "hello\n", 16K/64K/256K, one chunk. */
export const HELLO_CAIBX = Buffer.from(
  [
    '3000000000000000 f99f127b9c4d8296 00000000000000b0 0040000000000000 0000010000000000 0000040000000000',
    'ffffffffffffffff 7d41172f119e5be7',
    '0600000000000000 7f3f0c0d5219f514 59578305ed2bbc19 8588758da85d0802 4c79c1195d1cd611',
    '0000000000000000 0000000000000000 3000000000000000 6000000000000000 d1ec49550e054f4b',
  ]
    .join('')
    .replace(/ /g, ''),
  'hex',
);

/** SHA-512/256("hello\n"), the ID of the only chunk of HELLO_CAIBX. */
export const HELLO_ID = '7f3f0c0d5219f51459578305ed2bbc198588758da85d08024c79c1195d1cd611';

/** The empty blob: 104 bytes, tail table size 0x38. */
export const EMPTY_CAIBX = Buffer.from(
  [
    '3000000000000000 f99f127b9c4d8296 00000000000000b0 0040000000000000 0000010000000000 0000040000000000',
    'ffffffffffffffff 7d41172f119e5be7',
    '0000000000000000 0000000000000000 3000000000000000 3800000000000000 d1ec49550e054f4b',
  ]
    .join('')
    .replace(/ /g, ''),
  'hex',
);

/** Deterministic test ID: 32 bytes derived from a counter. */
export function testId(i: number): Buffer {
  const id = Buffer.alloc(32);
  for (let b = 0; b < 32; b++) id[b] = (i * 31 + b * 7 + (i >>> 8)) & 0xff;
  return id;
}

/** A valid index with the given chunk sizes and default flags/sizes. */
export function indexOf(chunkSizes: number[], sizes: ChunkSizes = { min: 16384, avg: 65536, max: 262144 }): BlobIndex {
  return {
    flags: CAIBX_DEFAULT_FLAGS,
    sizes,
    table: ChunkTable.fromChunks(chunkSizes.map((size, i) => ({ size, id: testId(i) }))),
  };
}

/** Overwrite the u64 at `off` (returns the same buffer). */
export function setU64(buf: Buffer, off: number, v: bigint): Buffer {
  buf.writeBigUInt64LE(v, off);
  return buf;
}

const EXCLUDE_AND_DIGEST = [0x1000000000000000n, 0x2000000000000000n, 0x4000000000000000n, 0x8000000000000000n];

/** Valid (known, normalized) flag sets: ones seen in practice plus random EXCLUDE and digest subsets. */
export const arbFlags: fc.Arbitrary<bigint> = fc.oneof(
  fc.constantFrom(0xb000000000000000n, 0x9000000000000000n, 0xa000000000000000n, 0x2000000000000000n, 0xb0000001ffeffe26n, 0x2000000000000b22n),
  fc.subarray(EXCLUDE_AND_DIGEST).map((bits) => bits.reduce((a, b) => a | b, 0n)),
);

/** Valid min ≤ avg ≤ max, each in 1…128 MiB; biased towards small values so chunks stay small. */
export const arbSizes: fc.Arbitrary<ChunkSizes> = fc
  .tuple(
    fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: MAX_CHUNK_SIZE_CEILING })),
    fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: MAX_CHUNK_SIZE_CEILING })),
    fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: MAX_CHUNK_SIZE_CEILING })),
  )
  .map(([a, b, c]) => {
    const [min, avg, max] = [a, b, c].sort((x, y) => x - y) as [number, number, number];
    return { min, avg, max };
  });

/** A random valid index with up to `maxChunks` chunks (chunk sizes 1…max, random IDs). */
export function arbIndex(maxChunks: number): fc.Arbitrary<BlobIndex> {
  return fc.tuple(arbFlags, arbSizes).chain(([flags, sizes]) =>
    fc
      .array(
        fc.record({
          size: fc.oneof(fc.integer({ min: 1, max: sizes.max }), fc.constant(sizes.max), fc.constant(1)),
          id: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        }),
        { maxLength: maxChunks },
      )
      .map((chunks) => ({ flags, sizes, table: ChunkTable.fromChunks(chunks) })),
  );
}
