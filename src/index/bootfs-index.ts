/**
 * The bootfs index format (version 1.0): constants, record layouts and the checksum, shared by the
 * builder (bootfs-builder.ts) and the reader (bootfs-reader.ts). The prose spec is
 * docs/index-format.md; keep the two in step.
 *
 * Every integer is little-endian. The file is a 208-byte header followed by seven sections, in this
 * order, each starting at an 8-byte-aligned offset (zero padding between them), the last one ending
 * at the end of the file:
 *
 *   inodes   56 bytes × inodeCount   one record per inode; ino = record index + 1 (root = 1)
 *   entries  12 bytes × entryCount   one record per name; a directory's children are contiguous
 *   xattrs   16 bytes × xattrCount   (name, value) string refs, grouped by inode, sorted by name
 *   chunks   40 bytes × chunkCount   the data stream's chunk table, byte-identical to .caibx items
 *   names    bytes                   entry names (deduplicated; never NUL or '/': one memchr checks all)
 *   strings  bytes                   symlink targets, xattr names and values (deduplicated)
 *   config   bytes                   the image config as canonical JSON (UTF-8, sorted keys)
 *
 * Fixed-size records make every access O(1) straight from the file's Buffer: no per-entry objects
 * are built at load, and a 100k-entry index is one Buffer plus the chunk table.
 */
import { createHash } from 'node:crypto';
import { type Digest, DIGESTS } from '../chunk.js';
import { CAIBX_ITEM_SIZE } from './caibx.js';
import type { NodeKind } from '../tree/types.js';

/** First 8 bytes: 0x89 (catches 7-bit transports) "BFSIDX" "\n" (catches newline translation). */
export const BOOTFS_INDEX_MAGIC: Buffer = Buffer.from('\x89BFSIDX\n', 'latin1');
/** Major version: readers refuse any other major (a change old readers would misread). */
export const BOOTFS_INDEX_MAJOR = 1;
/** Minor version: additions old readers of the same major can safely ignore (see docs). */
export const BOOTFS_INDEX_MINOR = 0;

/** Chunker algorithm id: FastCDC, the "ronomon" variant (fastcdc-wasm). */
export const CHUNKER_FASTCDC_RONOMON = 1;
/** Digest algorithm ids of the chunk IDs (the file checksum is SHA-512/256 under either). */
export const DIGEST_SHA512_256 = 1;
export const DIGEST_SHA256 = 2;
/** Header digest id by chunk digest, and back. */
export const DIGEST_ID: Readonly<Record<Digest, number>> = { 'sha512-256': DIGEST_SHA512_256, sha256: DIGEST_SHA256 };
export function digestById(id: number): Digest | undefined {
  return DIGESTS.find((d) => DIGEST_ID[d] === id);
}

/**
 * Header layout (208 bytes in 1.0):
 *
 *   off  size  field
 *   0    8     magic                      BOOTFS_INDEX_MAGIC
 *   8    2     version major              1
 *   10   2     version minor              0
 *   12   4     header size                208 (larger in later minors: new fields go at the end)
 *   16   4     required-feature flags     0 (a reader refuses any bit it does not know)
 *   20   4     chunker algorithm id       1 = FastCDC ronomon
 *   24   4×3   chunk size min / avg / max bytes, 1 ≤ min ≤ avg ≤ max ≤ 128 MiB
 *   36   4     digest algorithm id        of chunk IDs: 1 = SHA-512/256, 2 = SHA-256
 *   40   4     inode count                ≥ 1 (the root)
 *   44   4     entry count                number of names (the root has none)
 *   48   4     xattr count
 *   52   4     chunk count
 *   56   8     data size                  length of the data stream = last chunk end
 *   64   16×7  sections                   u64 offset, u64 length each, in SECTION_ORDER
 *   176  32    checksum                   SHA-512/256 of the file without these 32 bytes
 */
export const HEADER = {
  magic: 0,
  major: 8,
  minor: 10,
  headerSize: 12,
  flags: 16,
  chunker: 20,
  chunkMin: 24,
  chunkAvg: 28,
  chunkMax: 32,
  digest: 36,
  inodeCount: 40,
  entryCount: 44,
  xattrCount: 48,
  chunkCount: 52,
  dataSize: 56,
  sections: 64,
  checksum: 176,
} as const;
/** Size of the 1.0 header. */
export const HEADER_SIZE = 208;
/** Size of the checksum field (a SHA-512/256 digest). */
export const CHECKSUM_SIZE = 32;
/** Later minors may grow the header; this bounds what a reader accepts (and must be 8-aligned). */
export const MAX_HEADER_SIZE = 4096;

/** The sections in file order; header slot k (offset 64 + 16k) describes SECTION_ORDER[k]. */
export const SECTION_ORDER = ['inodes', 'entries', 'xattrs', 'chunks', 'names', 'strings', 'config'] as const;
export type SectionName = (typeof SECTION_ORDER)[number];
/** Sections start at multiples of 8 so typed-array views over records are possible. */
export const SECTION_ALIGN = 8;

/**
 * Inode record (56 bytes), one per inode, ino = index + 1. Inodes are numbered in the order their
 * first name appears in the sorted depth-first walk (src/tree/walk.ts), the root first.
 *
 *   off  size  field
 *   0    4     st_mode     S_IFMT type bits | permission bits (mask 0o7777: incl. setuid/setgid/sticky)
 *   4    4     nlink       non-dirs: number of names (entries) of this inode; dirs: 2 + subdirectories
 *   8    4     uid
 *   12   4     gid
 *   16   8     mtime       signed nanoseconds since the epoch
 *   24   8     size        regular files: content size; 0 for every other kind
 *   32   8     a           file: data-stream offset (0 when size is 0); dir: first child entry;
 *                          symlink: target offset in strings; char/block: major; else 0
 *   40   8     b           dir: child count; symlink: target length; char/block: minor; else 0
 *   48   4     xattr first index into the xattrs section
 *   52   4     xattr count
 */
export const INODE = {
  mode: 0,
  nlink: 4,
  uid: 8,
  gid: 12,
  mtime: 16,
  size: 24,
  a: 32,
  b: 40,
  xattrFirst: 48,
  xattrCount: 52,
} as const;
export const INODE_SIZE = 56;

/**
 * Entry record (12 bytes), one per name. Entries are in breadth-first order: the root's children,
 * then the children of each directory in the order of that directory's own entry, each group sorted
 * by name bytes. So a directory's children are one contiguous, sorted slice (readdir is a slice,
 * lookup a binary search), and every child range lies strictly after its directory's entry.
 *
 *   off  size  field
 *   0    4     name offset in the names section
 *   4    4     name length (1…255)
 *   8    4     ino (2…inodeCount; the root has no name)
 */
export const ENTRY = { nameOff: 0, nameLen: 4, ino: 8 } as const;
export const ENTRY_SIZE = 12;

/**
 * Xattr record (16 bytes). Each inode owns a contiguous run (inode order), sorted by name bytes.
 * Offsets are into the strings section.
 *
 *   off  size  field
 *   0    4     name offset     4   4   name length (1…255, no NUL)
 *   8    4     value offset    12  4   value length (0…65536)
 */
export const XATTR = { nameOff: 0, nameLen: 4, valueOff: 8, valueLen: 12 } as const;
export const XATTR_SIZE = 16;

/** Chunk item (40 bytes): u64 exclusive end offset, 32-byte chunk ID — exactly a .caibx item. */
export const CHUNK_ITEM_SIZE = CAIBX_ITEM_SIZE;

/** Linux NAME_MAX: the longest file name. */
export const NAME_MAX = 255;
/** Linux PATH_MAX − 1: the longest symlink target. */
export const SYMLINK_MAX = 4095;
/** Linux XATTR_NAME_MAX. */
export const XATTR_NAME_MAX = 255;
/** Linux XATTR_SIZE_MAX. */
export const XATTR_VALUE_MAX = 65536;
/** Bound on the config section (an OCI config with labels is a few KiB). */
export const CONFIG_MAX = 16 * 1024 * 1024;

/** The S_IFMT type bits of st_mode per node kind. */
export const IFMT: Readonly<Record<NodeKind, number>> = Object.freeze({
  fifo: 0o010000,
  char: 0o020000,
  dir: 0o040000,
  block: 0o060000,
  file: 0o100000,
  symlink: 0o120000,
  socket: 0o140000,
});
/** Mask of the type bits in st_mode. */
export const S_IFMT = 0o170000;
/** Mask of the permission bits (incl. setuid, setgid, sticky). */
export const PERM_MASK = 0o7777;

/** Node kind by (st_mode >>> 12), undefined for type codes that are not a kind. */
export const KIND_BY_TYPE: readonly (NodeKind | undefined)[] = (() => {
  const table: (NodeKind | undefined)[] = new Array(16).fill(undefined);
  for (const [kind, bits] of Object.entries(IFMT)) table[bits >>> 12] = kind as NodeKind;
  return table;
})();

/** The file checksum: SHA-512/256 over every byte except the checksum field itself. */
export function indexChecksum(buf: Uint8Array): Buffer {
  return createHash('sha512-256')
    .update(buf.subarray(0, HEADER.checksum))
    .update(buf.subarray(HEADER.checksum + CHECKSUM_SIZE))
    .digest();
}

/** Round up to the section alignment. */
export function alignUp(n: number): number {
  return Math.ceil(n / SECTION_ALIGN) * SECTION_ALIGN;
}
