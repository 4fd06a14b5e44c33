/**
 * The Linux FUSE wire protocol (include/uapi/linux/fuse.h), the subset a read-only filesystem
 * speaks: request header decoding and the reply structures, little-endian as the kernel writes
 * them. Protocol 7.x; we answer INIT with minor 31 or the kernel's, whichever is lower, which every
 * kernel since 5.11 understands and which has everything used here (readdirplus, max_pages,
 * nanosecond times, FOPEN_KEEP_CACHE / FOPEN_CACHE_DIR).
 */

export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR = 31;
export const FUSE_ROOT_ID = 1;

export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
} as const;

/** Operations that would change the filesystem: answered EROFS without asking the filesystem. */
export const WRITE_OPS: ReadonlySet<number> = new Set([
  Op.SETATTR, Op.SYMLINK, Op.MKNOD, Op.MKDIR, Op.UNLINK, Op.RMDIR, Op.RENAME, Op.LINK, Op.WRITE,
  Op.SETXATTR, Op.REMOVEXATTR, Op.CREATE, Op.FALLOCATE, Op.RENAME2, Op.COPY_FILE_RANGE,
]);

/** Operation names for metrics and logs. */
export const OP_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(Op).map(([k, v]) => [v, k.toLowerCase()]));

// INIT flags (fuse_init_in.flags / fuse_init_out.flags).
export const INIT = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  NO_OPEN_SUPPORT: 1 << 17,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
} as const;

export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;

export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EROFS: 30,
  ERANGE: 34,
  ENOSYS: 38,
  ENODATA: 61,
  E2BIG: 7,
  EINTR: 4,
  EPROTO: 71,
} as const;

/** A filesystem operation's failure with the errno the caller sees. */
export class FuseErrno extends Error {
  constructor(readonly errno: number, message?: string) {
    super(message ?? `errno ${errno}`);
  }
}

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
const DIRENT_HEADER = 24;

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

export function decodeInHeader(b: Buffer): InHeader {
  return {
    len: b.readUInt32LE(0),
    opcode: b.readUInt32LE(4),
    unique: b.readBigUInt64LE(8),
    // Node IDs are our inode numbers (u32 in the index), so a JS number is exact.
    nodeid: Number(b.readBigUInt64LE(16)),
    uid: b.readUInt32LE(24),
    gid: b.readUInt32LE(28),
    pid: b.readUInt32LE(32),
  };
}

/** What getattr, lookup and readdirplus describe: one inode. */
export interface Attr {
  ino: number;
  size: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  /** Nanoseconds since the epoch (may be negative). */
  mtimeNs: bigint;
}

const NS = 1_000_000_000n;

/** Write a struct fuse_attr at `off`. atime and ctime are the mtime: the tree is immutable. */
export function writeAttr(b: Buffer, off: number, a: Attr): void {
  let sec = a.mtimeNs / NS;
  let nsec = a.mtimeNs % NS;
  if (nsec < 0n) {
    nsec += NS;
    sec -= 1n;
  }
  const usec = BigInt.asUintN(64, sec);
  b.writeBigUInt64LE(BigInt(a.ino), off);
  b.writeBigUInt64LE(BigInt(a.size), off + 8);
  b.writeBigUInt64LE(BigInt(Math.ceil(a.size / 512)), off + 16);
  b.writeBigUInt64LE(usec, off + 24);
  b.writeBigUInt64LE(usec, off + 32);
  b.writeBigUInt64LE(usec, off + 40);
  const n = Number(nsec);
  b.writeUInt32LE(n, off + 48);
  b.writeUInt32LE(n, off + 52);
  b.writeUInt32LE(n, off + 56);
  b.writeUInt32LE(a.mode >>> 0, off + 60);
  b.writeUInt32LE(a.nlink >>> 0, off + 64);
  b.writeUInt32LE(a.uid >>> 0, off + 68);
  b.writeUInt32LE(a.gid >>> 0, off + 72);
  b.writeUInt32LE(a.rdev >>> 0, off + 76);
  b.writeUInt32LE(4096, off + 80); // blksize
  b.writeUInt32LE(0, off + 84); // flags
}

/** The kernel's 32-bit device encoding (new_encode_dev) that fuse_attr.rdev carries. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

function writeValid(b: Buffer, off: number, seconds: number): void {
  b.writeBigUInt64LE(BigInt(Math.floor(seconds)), off);
}

/** struct fuse_entry_out for `a` (nodeid = a.ino, generation 0). */
export function writeEntry(b: Buffer, off: number, a: Attr, validSeconds: number): void {
  b.writeBigUInt64LE(BigInt(a.ino), off);
  b.writeBigUInt64LE(0n, off + 8);
  writeValid(b, off + 16, validSeconds);
  writeValid(b, off + 24, validSeconds);
  b.writeUInt32LE(0, off + 32);
  b.writeUInt32LE(0, off + 36);
  writeAttr(b, off + 40, a);
}

export function entryOut(a: Attr, validSeconds: number): Buffer {
  const b = Buffer.allocUnsafe(ENTRY_OUT_SIZE);
  writeEntry(b, 0, a, validSeconds);
  return b;
}

/** A negative lookup the kernel may cache: nodeid 0 with an entry timeout (fuse's "negative entry"). */
export function negativeEntryOut(validSeconds: number): Buffer {
  const b = Buffer.alloc(ENTRY_OUT_SIZE);
  writeValid(b, 16, validSeconds);
  return b;
}

export function attrOut(a: Attr, validSeconds: number): Buffer {
  const b = Buffer.allocUnsafe(ATTR_OUT_SIZE);
  writeValid(b, 0, validSeconds);
  b.writeUInt32LE(0, 8);
  b.writeUInt32LE(0, 12);
  writeAttr(b, 16, a);
  return b;
}

export function openOut(fh: number, openFlags: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(fh), 0);
  b.writeUInt32LE(openFlags, 8);
  return b;
}

export interface StatfsInfo {
  blocks: number;
  files: number;
  bsize: number;
  namelen: number;
}

export function statfsOut(s: StatfsInfo): Buffer {
  const b = Buffer.alloc(80);
  b.writeBigUInt64LE(BigInt(s.blocks), 0);
  // bfree, bavail, ffree stay 0: a read-only image has no free space.
  b.writeBigUInt64LE(BigInt(s.files), 24);
  b.writeUInt32LE(s.bsize, 40);
  b.writeUInt32LE(s.namelen, 44);
  b.writeUInt32LE(s.bsize, 48);
  return b;
}

export function xattrSizeOut(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(size, 0);
  return b;
}

export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
}

export function decodeInitIn(body: Buffer): InitIn {
  return { major: body.readUInt32LE(0), minor: body.readUInt32LE(4), maxReadahead: body.readUInt32LE(8), flags: body.readUInt32LE(12) };
}

export interface InitOutParams {
  minor: number;
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  maxPages: number;
}

export function initOut(p: InitOutParams): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(FUSE_KERNEL_VERSION, 0);
  b.writeUInt32LE(p.minor, 4);
  b.writeUInt32LE(p.maxReadahead, 8);
  b.writeUInt32LE(p.flags >>> 0, 12);
  b.writeUInt16LE(p.maxBackground, 16);
  b.writeUInt16LE(p.congestionThreshold, 18);
  b.writeUInt32LE(p.maxWrite, 20);
  b.writeUInt32LE(1, 24); // time_gran: nanoseconds
  b.writeUInt16LE(p.maxPages, 28);
  return b;
}

/** One directory entry as readdir returns it. */
export interface Dirent {
  name: Buffer;
  ino: number;
  /** The S_IFMT bits of the entry's mode (the kernel wants mode >> 12 as d_type). */
  mode: number;
  /** The offset that resumes reading after this entry. */
  next: number;
  /** For readdirplus: the entry's attributes. */
  attr?: Attr;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/**
 * Pack entries as struct fuse_dirent (or fuse_direntplus when `plusValid` is given) into at most
 * `size` bytes; stops at the first entry that does not fit, as the kernel expects.
 */
export function packDirents(entries: Iterable<Dirent>, size: number, plusValid?: number): Buffer {
  const out = Buffer.alloc(size);
  let off = 0;
  for (const e of entries) {
    const head = plusValid === undefined ? 0 : ENTRY_OUT_SIZE;
    const len = align8(head + DIRENT_HEADER + e.name.length);
    if (off + len > size) break;
    if (plusValid !== undefined) {
      // "." and ".." carry no entry (nodeid 0): the kernel must not take a lookup count on them.
      if (e.attr) writeEntry(out, off, e.attr, plusValid);
    }
    const d = off + head;
    out.writeBigUInt64LE(BigInt(e.ino), d);
    out.writeBigUInt64LE(BigInt(e.next), d + 8);
    out.writeUInt32LE(e.name.length, d + 16);
    out.writeUInt32LE((e.mode >>> 12) & 0xf, d + 20);
    e.name.copy(out, d + DIRENT_HEADER);
    off += len;
  }
  return out.subarray(0, off);
}
