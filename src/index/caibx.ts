/**
 * casync `.caibx` blob indexes: reader and writer, byte-exact with casync (see docs/caibx.md).
 *
 * Layout (every integer is u64 little-endian, no padding):
 *
 *   off        size  field
 *   0          8     index header size = 48
 *   8          8     index header type = CA_FORMAT_INDEX
 *   16         8     feature flags
 *   24/32/40   8×3   chunk_size_min / avg / max
 *   48         8     table header size = 0xffff_ffff_ffff_ffff (streaming marker)
 *   56         8     table header type = CA_FORMAT_TABLE
 *   64         40·n  items: end offset (exclusive running sum), then the 32-byte chunk ID
 *   64+40n     40    tail: 0, 0, 48, table size (16 + 40n + 40), CA_FORMAT_TABLE_TAIL_MARKER
 *
 * The input of the decoder is hostile: every field is checked, work is O(n), and the only error it
 * throws is IndexFormatError.
 */
import { CHUNK_ID_BYTES, type Digest } from '../chunk.js';
import { MAX_CHUNK_SIZE_CEILING, type ChunkSizes } from '../chunker/params.js';
import { IndexFormatError } from '../errors.js';
import { readNamedFile, writeFileAtomic } from '../util/files.js';
import { ChunkTable } from './chunk-table.js';

/** Type of the 48-byte index header at offset 8 (casync `CA_FORMAT_INDEX`). */
export const CA_FORMAT_INDEX = 0x96824d9c7b129ff9n;
/** Type of the table header at offset 56 (casync `CA_FORMAT_TABLE`). */
export const CA_FORMAT_TABLE = 0xe75b9e112f17417dn;
/** Last u64 of the file: the marker that closes the 40-byte table tail. */
export const CA_FORMAT_TABLE_TAIL_MARKER = 0x4b4f050e5549ecd1n;
/** Feature flag: chunk IDs are SHA-512/256 (clear means SHA-256). */
export const CA_FORMAT_SHA512_256 = 0x2000000000000000n;
/** Feature flag: the encoder skipped files marked with chattr +d (meaningless for a blob). */
export const CA_FORMAT_EXCLUDE_NODUMP = 0x8000000000000000n;
/** Feature flag: the encoder skipped submounts (meaningless for a blob). */
export const CA_FORMAT_EXCLUDE_SUBMOUNTS = 0x4000000000000000n;
/** Feature flag: the encoder honoured `.caexclude` files (meaningless for a blob). */
export const CA_FORMAT_EXCLUDE_FILE = 0x1000000000000000n;
/** Flags casync writes on a .caibx: SHA512_256|EXCLUDE_NODUMP|EXCLUDE_FILE. */
export const CAIBX_DEFAULT_FLAGS = CA_FORMAT_SHA512_256 | CA_FORMAT_EXCLUDE_NODUMP | CA_FORMAT_EXCLUDE_FILE; // 0xb000…

/** The flags casync writes on a .caibx whose IDs use `digest` (0xb000… or, for SHA-256, 0x9000…). */
export function caibxFlags(digest: Digest): bigint {
  return digest === 'sha256' ? CAIBX_DEFAULT_FLAGS & ~CA_FORMAT_SHA512_256 : CAIBX_DEFAULT_FLAGS;
}

/** The chunk digest an index's feature flags name. */
export function digestOfFlags(flags: bigint): Digest {
  return (flags & CA_FORMAT_SHA512_256) !== 0n ? 'sha512-256' : 'sha256';
}
/**
 * Every feature bit casync knows (`CA_FORMAT_FEATURE_FLAGS_MAX`): the WITH_* bits 0x1…0x100000000
 * plus the EXCLUDE_* and digest bits. casync refuses an index with any other bit set.
 */
export const CA_FORMAT_FEATURE_FLAGS_MAX = 0x1ffffffffn | 0xf000000000000000n;

/** Size of the index header object (offset 0…48). */
export const CAIBX_HEADER_SIZE = 48;
/** Offset of the first table item: index header (48) + table header (16). */
export const CAIBX_ITEMS_OFFSET = 64;
/** Size of one table item: u64 end offset + 32-byte ID; the tail has the same size. */
export const CAIBX_ITEM_SIZE = 8 + CHUNK_ID_BYTES;
/** Size of an index with no chunks: header 48 + table header 16 + tail 40. */
export const CAIBX_MIN_SIZE = CAIBX_ITEMS_OFFSET + CAIBX_ITEM_SIZE;

/** A decoded blob index: feature flags, the chunker's size parameters and the chunk table. */
export interface BlobIndex {
  flags: bigint;
  sizes: ChunkSizes;
  table: ChunkTable;
}

const U64_MAX = 0xffffffffffffffffn;
const TWO_32 = 2 ** 32;
/** End offsets are held in a Float64Array: exact only below 2^53, i.e. a high u32 word below 2^21. */
const MAX_SAFE_HIGH_WORD = 2 ** 21;
const TAIL_INDEX_OFFSET = 48n; // distance from the table header back to the index header

// Feature bits named in the normalization rules (casync ca_feature_flags_are_normalized).
const F_16BIT_UIDS = 0x1n;
const F_32BIT_UIDS = 0x2n;
const F_USER_NAMES = 0x4n;
const F_SEC_TIME = 0x8n;
const F_USEC_TIME = 0x10n;
const F_NSEC_TIME = 0x20n;
const F_2SEC_TIME = 0x40n;
const F_READ_ONLY = 0x80n;
const F_PERMISSIONS = 0x100n;
const F_FLAG_NODUMP = 0x100000n;
const F_SUBVOLUME = 0x4000000n;
const F_SUBVOLUME_RO = 0x8000000n;
const F_ACL = 0x20000000n;

const hex64 = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`;

/** Why `flags` is not a set casync accepts, or undefined when it is. */
function flagsProblem(flags: bigint): string | undefined {
  if (flags < 0n || flags > U64_MAX) return `feature flags ${flags} do not fit in an unsigned 64-bit field`;
  const unknown = flags & ~CA_FORMAT_FEATURE_FLAGS_MAX;
  if (unknown !== 0n) return `unknown feature flag bits ${hex64(unknown)} in flags ${hex64(flags)}`;
  const has = (bits: bigint): boolean => (flags & bits) !== 0n;
  const rules: [boolean, string][] = [
    [has(F_NSEC_TIME) && has(F_USEC_TIME | F_SEC_TIME | F_2SEC_TIME), 'more than one time-granularity bit'],
    [has(F_USEC_TIME) && has(F_SEC_TIME | F_2SEC_TIME), 'more than one time-granularity bit'],
    [has(F_SEC_TIME) && has(F_2SEC_TIME), 'more than one time-granularity bit'],
    [has(F_16BIT_UIDS) && has(F_32BIT_UIDS), '16BIT_UIDS together with 32BIT_UIDS'],
    [has(F_PERMISSIONS) && has(F_READ_ONLY), 'PERMISSIONS together with READ_ONLY'],
    [has(F_ACL) && has(F_PERMISSIONS | F_READ_ONLY), 'ACL together with PERMISSIONS or READ_ONLY'],
    [has(F_ACL) && !has(F_16BIT_UIDS | F_32BIT_UIDS | F_USER_NAMES), 'ACL without a uid or user-name bit'],
    [has(CA_FORMAT_EXCLUDE_NODUMP) && has(F_FLAG_NODUMP), 'EXCLUDE_NODUMP together with FLAG_NODUMP'],
    [has(F_SUBVOLUME_RO) && !has(F_SUBVOLUME), 'SUBVOLUME_RO without SUBVOLUME'],
  ];
  for (const [bad, why] of rules) {
    if (bad) return `feature flags ${hex64(flags)} are not normalized (${why}); casync refuses such an index`;
  }
  return undefined;
}

/** Why the three size fields are not acceptable, or undefined when they are. */
function sizesProblem(min: bigint, avg: bigint, max: bigint): string | undefined {
  const limit = BigInt(MAX_CHUNK_SIZE_CEILING);
  for (const [name, v] of [['min', min], ['avg', avg], ['max', max]] as const) {
    if (v < 1n || v > limit) return `chunk_size_${name} ${v} is outside 1…${limit} (128 MiB)`;
  }
  if (!(min <= avg && avg <= max)) return `chunk sizes must satisfy min <= avg <= max, got ${min}:${avg}:${max}`;
  return undefined;
}

/** Why item `i` with exclusive end `end` after `prev` is invalid, or undefined when it is fine. */
function itemProblem(i: number, prev: number, end: number, max: number): string | undefined {
  if (end === prev) return `item ${i} is a zero-size chunk (end offset ${end} equals the previous end)`;
  if (end < prev) return `end offsets are not strictly increasing at item ${i} (${end} after ${prev})`;
  if (end - prev > max) return `item ${i} is a ${end - prev}-byte chunk, larger than the index's max chunk size ${max}`;
  return undefined;
}

/** Encode to exact .caibx bytes (104 + 40n); throws RangeError for an index decodeCaibx would refuse. */
export function encodeCaibx(index: BlobIndex): Buffer {
  const { flags, sizes, table } = index;
  const fail = (why: string): never => {
    throw new RangeError(`cannot encode .caibx: ${why}`);
  };
  const sizeInts = [sizes.min, sizes.avg, sizes.max];
  if (!sizeInts.every((v) => Number.isSafeInteger(v))) fail(`chunk sizes must be integers, got ${sizeInts.join(':')}`);
  const headerWhy = flagsProblem(flags) ?? sizesProblem(BigInt(sizes.min), BigInt(sizes.avg), BigInt(sizes.max));
  if (headerWhy !== undefined) fail(headerWhy);

  const n = table.count;
  const buf = Buffer.alloc(CAIBX_MIN_SIZE + n * CAIBX_ITEM_SIZE);
  buf.writeBigUInt64LE(BigInt(CAIBX_HEADER_SIZE), 0);
  buf.writeBigUInt64LE(CA_FORMAT_INDEX, 8);
  buf.writeBigUInt64LE(flags, 16);
  buf.writeBigUInt64LE(BigInt(sizes.min), 24);
  buf.writeBigUInt64LE(BigInt(sizes.avg), 32);
  buf.writeBigUInt64LE(BigInt(sizes.max), 40);
  buf.writeBigUInt64LE(U64_MAX, 48);
  buf.writeBigUInt64LE(CA_FORMAT_TABLE, 56);

  let prev = 0;
  let off = CAIBX_ITEMS_OFFSET;
  for (let i = 0; i < n; i++, off += CAIBX_ITEM_SIZE) {
    const end = table.ends[i]!;
    if (!Number.isSafeInteger(end)) fail(`item ${i} end offset ${end} is not an integer below 2^53`);
    const why = itemProblem(i, prev, end, sizes.max);
    if (why !== undefined) fail(why);
    // Split into u32 words: exact for any safe integer, no BigInt per item.
    buf.writeUInt32LE(end % TWO_32, off);
    buf.writeUInt32LE(Math.floor(end / TWO_32), off + 4);
    table.ids.copy(buf, off + 8, i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
    prev = end;
  }
  // Tail: two zero fills (already zero), the offset back to the index header, the table size, marker.
  buf.writeBigUInt64LE(TAIL_INDEX_OFFSET, off + 16);
  buf.writeBigUInt64LE(BigInt(16 + n * CAIBX_ITEM_SIZE + CAIBX_ITEM_SIZE), off + 24);
  buf.writeBigUInt64LE(CA_FORMAT_TABLE_TAIL_MARKER, off + 32);
  return buf;
}

/** Why the 40 bytes at `off` are not the tail of a table with `n` items, or undefined when they are. */
function tailProblem(buf: Buffer, off: number, n: number): string | undefined {
  const marker = buf.readBigUInt64LE(off + 32);
  if (marker !== CA_FORMAT_TABLE_TAIL_MARKER) {
    return `bad table tail marker ${hex64(marker)} at offset ${off + 32}, expected ${hex64(CA_FORMAT_TABLE_TAIL_MARKER)} (truncated or damaged file?)`;
  }
  if (buf.readBigUInt64LE(off) !== 0n || buf.readBigUInt64LE(off + 8) !== 0n) {
    return `table tail zero fill at offset ${off} is not zero`;
  }
  const indexOffset = buf.readBigUInt64LE(off + 16);
  if (indexOffset !== TAIL_INDEX_OFFSET) return `table tail index offset is ${indexOffset}, expected 48`;
  const size = buf.readBigUInt64LE(off + 24);
  const want = BigInt(16 + n * CAIBX_ITEM_SIZE + CAIBX_ITEM_SIZE);
  if (size !== want) return `table tail size is ${size}, expected ${want} (16 + 40·n + 40 for n = ${n} items)`;
  return undefined;
}

/** Decode and validate; `name` is used in error messages (usually the file path). Throws IndexFormatError. */
export function decodeCaibx(input: Uint8Array, name: string): BlobIndex {
  const bad = (why: string): never => {
    throw new IndexFormatError(name, why);
  };
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const len = buf.length;
  if (len < CAIBX_MIN_SIZE) {
    bad(`file is ${len} bytes, shorter than the ${CAIBX_MIN_SIZE}-byte minimum of a .caibx (truncated or not an index)`);
  }

  // Magic before size: a random file should be reported as "not an index", not as a bad size.
  if (buf.readBigUInt64LE(8) !== CA_FORMAT_INDEX) bad('not a casync index (bad magic)');
  const headerSize = buf.readBigUInt64LE(0);
  if (headerSize !== BigInt(CAIBX_HEADER_SIZE)) bad(`index header size is ${headerSize}, expected 48`);
  const flags = buf.readBigUInt64LE(16);
  const flagsWhy = flagsProblem(flags);
  if (flagsWhy !== undefined) bad(flagsWhy);
  const min = buf.readBigUInt64LE(24);
  const avg = buf.readBigUInt64LE(32);
  const maxBig = buf.readBigUInt64LE(40);
  const sizesWhy = sizesProblem(min, avg, maxBig);
  if (sizesWhy !== undefined) bad(sizesWhy);
  const tableSize = buf.readBigUInt64LE(48);
  if (tableSize !== U64_MAX) bad(`table header size is ${hex64(tableSize)}, expected 0xffffffffffffffff`);
  const tableType = buf.readBigUInt64LE(56);
  if (tableType !== CA_FORMAT_TABLE) bad(`bad table magic ${hex64(tableType)}, expected ${hex64(CA_FORMAT_TABLE)}`);

  // Locate the tail by the file size; only when that fails, look for an earlier valid tail to tell
  // "trailing bytes" apart from truncation or damage. Both passes are O(n).
  const body = len - CAIBX_MIN_SIZE;
  const lengthFits = body % CAIBX_ITEM_SIZE === 0;
  const n = Math.floor(body / CAIBX_ITEM_SIZE);
  const tailWhy = lengthFits ? tailProblem(buf, len - CAIBX_ITEM_SIZE, n) : 'no tail';
  if (tailWhy !== undefined) {
    for (let k = 0, off = CAIBX_ITEMS_OFFSET; off + CAIBX_ITEM_SIZE < len; k++, off += CAIBX_ITEM_SIZE) {
      if (tailProblem(buf, off, k) === undefined) {
        bad(`${len - off - CAIBX_ITEM_SIZE} trailing bytes after the table tail that ends at offset ${off + CAIBX_ITEM_SIZE}`);
      }
    }
    if (!lengthFits) {
      bad(`file size ${len} is not 104 + 40·n and no table tail was found (truncated or trailing bytes)`);
    }
    bad(tailWhy);
  }

  const max = Number(maxBig); // ≤ 128 MiB, checked above
  const ends = new Float64Array(n);
  const ids = Buffer.allocUnsafe(n * CHUNK_ID_BYTES);
  let prev = 0;
  for (let i = 0, off = CAIBX_ITEMS_OFFSET; i < n; i++, off += CAIBX_ITEM_SIZE) {
    const high = buf.readUInt32LE(off + 4);
    if (high >= MAX_SAFE_HIGH_WORD) {
      bad(`item ${i} end offset ${buf.readBigUInt64LE(off)} is not below 2^53 and would lose precision`);
    }
    const end = high * TWO_32 + buf.readUInt32LE(off);
    const why = itemProblem(i, prev, end, max);
    if (why !== undefined) bad(why);
    ends[i] = end;
    buf.copy(ids, i * CHUNK_ID_BYTES, off + 8, off + CAIBX_ITEM_SIZE);
    prev = end;
  }
  return {
    flags,
    sizes: Object.freeze({ min: Number(min), avg: Number(avg), max }),
    table: new ChunkTable(ends, ids),
  };
}

/** Read+decode a file: ENOENT → NotFoundError('index FILE not found'), other fs errors → IoError naming the file. */
export async function readCaibxFile(path: string): Promise<BlobIndex> {
  return decodeCaibx(await readNamedFile(path, 'index'), path);
}

/**
 * Write atomically (see writeFileAtomic): a reader never sees a half-written index. Encoding errors
 * (RangeError) come first.
 */
export async function writeCaibxFile(path: string, index: BlobIndex): Promise<void> {
  await writeFileAtomic(path, encodeCaibx(index), 'index');
}
