/**
 * Reads bootfs indexes (layout: bootfs-index.ts, docs/index-format.md). `decode` treats its input as
 * hostile: it verifies the checksum, then every bound and every structural rule the accessors rely
 * on, in a few linear passes over the records (typed-array scratch, no per-entry objects), and
 * throws only IndexFormatError. After that every accessor is O(1) or a binary search straight from
 * the file's bytes, and cannot fail for a valid ino.
 *
 * Records are read as little-endian u32 words through one Uint32Array over the file (every record
 * field is 4-byte aligned because sections are 8-aligned and record sizes are multiples of 4).
 */
import { CHUNK_ID_BYTES, type Digest } from '../chunk.js';
import { MAX_CHUNK_SIZE_CEILING, type ChunkSizes } from '../chunker/params.js';
import { IndexFormatError } from '../errors.js';
import { readNamedFile } from '../util/files.js';
import type { ByteString, FsNode, ImageConfig, NodeKind } from '../tree/types.js';
import { type BlobIndex, caibxFlags } from './caibx.js';
import {
  BOOTFS_INDEX_MAGIC, BOOTFS_INDEX_MAJOR, BOOTFS_INDEX_MINOR, CHECKSUM_SIZE, CHUNK_ITEM_SIZE, CHUNKER_FASTCDC_RONOMON,
  CONFIG_MAX, digestById, ENTRY, ENTRY_SIZE, HEADER, HEADER_SIZE, IFMT, INODE, INODE_SIZE, KIND_BY_TYPE,
  MAX_HEADER_SIZE, NAME_MAX, PERM_MASK, SECTION_ALIGN, SECTION_ORDER, SYMLINK_MAX, XATTR, XATTR_NAME_MAX,
  XATTR_SIZE, XATTR_VALUE_MAX, alignUp, indexChecksum, type SectionName,
} from './bootfs-index.js';
import { ChunkTable } from './chunk-table.js';

/** What stat(ino) returns. */
export interface InodeStat {
  kind: NodeKind;
  /** Permission bits incl. setuid/setgid/sticky (mask 0o7777), as in FsNode. */
  mode: number;
  /** The full st_mode: S_IFMT type bits | mode. */
  stMode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  /** st_size: content size for files, target length for symlinks, 0 otherwise. */
  size: number;
  /** Non-dirs: number of names; dirs: 2 + number of subdirectories. */
  nlink: number;
  /** Char/block devices; 0 for other kinds. */
  devMajor: number;
  devMinor: number;
}

/** One directory entry. */
export interface DirEntry {
  name: ByteString;
  ino: number;
}

/** One name of the sorted depth-first walk (root first: path '', depth 0). */
export interface IndexWalkItem {
  path: ByteString;
  ino: number;
  depth: number;
}

// Record geometry in u32 words, copied into module locals once (hot loops read nothing else).
const IW = INODE_SIZE / 4;
const [I_MODE, I_NLINK, I_UID, I_GID, I_SIZE, I_A, I_B, I_XFIRST, I_XCOUNT] = [
  INODE.mode, INODE.nlink, INODE.uid, INODE.gid, INODE.size, INODE.a, INODE.b, INODE.xattrFirst, INODE.xattrCount,
].map((o) => o / 4) as [number, number, number, number, number, number, number, number, number];
const I_MTIME = INODE.mtime;
const EW = ENTRY_SIZE / 4;
const [E_OFF, E_LEN, E_INO] = [ENTRY.nameOff / 4, ENTRY.nameLen / 4, ENTRY.ino / 4];
const XW = XATTR_SIZE / 4;
const [X_NOFF, X_NLEN, X_VOFF, X_VLEN] = [XATTR.nameOff / 4, XATTR.nameLen / 4, XATTR.valueOff / 4, XATTR.valueLen / 4];
const KINDS = KIND_BY_TYPE;
const T_DIR = IFMT.dir >>> 12;
const TWO_32 = 2 ** 32;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The file as bytes plus little-endian u32 words (a view when possible, else an aligned or byte-swapped copy). */
function wordsOf(input: Buffer): { bytes: Buffer; words: Uint32Array } {
  if (!LITTLE_ENDIAN) {
    const words = new Uint32Array(input.length >>> 2);
    for (let i = 0; i < words.length; i++) words[i] = input.readUInt32LE(4 * i);
    return { bytes: input, words };
  }
  let bytes = input;
  if (input.byteOffset % 4 !== 0) {
    bytes = Buffer.alloc(input.length); // never from the pool: offset 0
    input.copy(bytes);
  }
  return { bytes, words: new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2) };
}

/** Byte order of bytes[a, a+aLen) vs bytes[b, b+bLen): negative, zero or positive. */
function compareBytes(bytes: Uint8Array, a: number, aLen: number, b: number, bLen: number): number {
  const n = aLen < bLen ? aLen : bLen;
  for (let i = 0; i < n; i++) {
    const d = bytes[a + i]! - bytes[b + i]!;
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

/** Byte order of bytes[b, b+len) vs the ByteString `key` (a char above 0xff sorts after every byte). */
function compareToKey(bytes: Uint8Array, b: number, len: number, key: ByteString): number {
  const n = len < key.length ? len : key.length;
  for (let i = 0; i < n; i++) {
    const d = bytes[b + i]! - key.charCodeAt(i);
    if (d !== 0) return d;
  }
  return len - key.length;
}

/**
 * A decoded bootfs index. Inode numbers: 1 is the root; the others are numbered 2, 3, … in the order
 * their first name appears in the sorted depth-first walk, so all names of a hardlinked file share one
 * ino. Methods taking an ino throw RangeError for an ino outside 1…inodeCount or of the wrong kind
 * (caller bugs: check kind() first); nothing else throws.
 */
export class BootfsIndex {
  readonly sizes: ChunkSizes;
  /** The chunk IDs' digest. */
  readonly digest: Digest;
  readonly table: ChunkTable;
  readonly config: ImageConfig;
  readonly version: { readonly major: number; readonly minor: number };
  readonly entryCount: number;
  readonly inodeCount: number;
  readonly xattrCount: number;
  readonly dataSize: number;
  readonly rootIno = 1;
  /** Hex SHA-512/256 checksum of the file: a cheap identity for caches and logs. */
  readonly checksum: string;
  /** Size of the index file in bytes. */
  readonly byteLength: number;
  private readonly bytes: Buffer;
  private readonly w: Uint32Array;
  private readonly inodeW: number;
  private readonly entryW: number;
  private readonly xattrW: number;
  private readonly namesOff: number;
  private readonly strOff: number;

  private constructor(c: Checker, table: ChunkTable, config: ImageConfig) {
    this.bytes = c.bytes;
    this.w = c.w;
    this.sizes = c.sizes;
    this.digest = c.digest;
    this.table = table;
    this.config = config;
    this.version = Object.freeze({ major: c.major, minor: c.minor });
    this.entryCount = c.entryCount;
    this.inodeCount = c.inodeCount;
    this.xattrCount = c.xattrCount;
    this.dataSize = c.dataSize;
    this.checksum = c.bytes.subarray(HEADER.checksum, HEADER.checksum + CHECKSUM_SIZE).toString('hex');
    this.byteLength = c.bytes.length;
    this.inodeW = c.inodeW;
    this.entryW = c.entryW;
    this.xattrW = c.xattrW;
    this.namesOff = c.offsets.names;
    this.strOff = c.offsets.strings;
  }

  /**
   * Validate and wrap `input` (the index keeps a view of it: do not modify it afterwards). `name`
   * (usually the path) is used in errors. Throws IndexFormatError only.
   */
  static decode(input: Uint8Array, name: string): BootfsIndex {
    const c = new Checker(Buffer.from(input.buffer, input.byteOffset, input.byteLength), name);
    c.header();
    const table = c.chunks();
    const config = c.config();
    c.inodes(c.entries());
    c.tree();
    c.order();
    return new BootfsIndex(c, table, config);
  }

  /** Read and decode a file: ENOENT → NotFoundError, other fs errors → IoError naming the file. */
  static async readFile(path: string): Promise<BootfsIndex> {
    return BootfsIndex.decode(await readNamedFile(path, 'index'), path);
  }

  /** A u64 field at word `k`, proven below 2^53 by decode. */
  private u64(k: number): number {
    return this.w[k + 1]! * TWO_32 + this.w[k]!;
  }

  /** A string of the strings section (section offset `base`, default) or of the names section. */
  private str(off: number, len: number, base = this.strOff): ByteString {
    return this.bytes.toString('latin1', base + off, base + off + len);
  }

  /** Word index of the inode record of `ino`; RangeError when there is none. */
  private rec(ino: number): number {
    if (!Number.isInteger(ino) || ino < 1 || ino > this.inodeCount) {
      throw new RangeError(`inode ${ino} does not exist (this index has inodes 1…${this.inodeCount})`);
    }
    return this.inodeW + (ino - 1) * IW;
  }

  /** The record of `ino`, which must be of kind `want`. */
  private recOf(ino: number, want: NodeKind, op: string): number {
    const r = this.rec(ino);
    const kind = KINDS[this.w[r + I_MODE]! >>> 12]!;
    if (kind !== want) throw new RangeError(`${op}: inode ${ino} is a ${kind}, not a ${want}`);
    return r;
  }

  /** The kind of `ino`. */
  kind(ino: number): NodeKind {
    return KINDS[this.w[this.rec(ino) + I_MODE]! >>> 12]!;
  }

  /** Metadata of `ino`. */
  stat(ino: number): InodeStat {
    const r = this.rec(ino);
    const w = this.w;
    const stMode = w[r + I_MODE]!;
    const kind = KINDS[stMode >>> 12]!;
    const device = kind === 'char' || kind === 'block';
    return {
      kind,
      mode: stMode & PERM_MASK,
      stMode,
      uid: w[r + I_UID]!,
      gid: w[r + I_GID]!,
      mtimeNs: this.bytes.readBigInt64LE(4 * r + I_MTIME),
      size: kind === 'symlink' ? this.u64(r + I_B) : this.u64(r + I_SIZE),
      nlink: w[r + I_NLINK]!,
      devMajor: device ? w[r + I_A]! : 0,
      devMinor: device ? w[r + I_B]! : 0,
    };
  }

  /** Number of entries in directory `ino`. */
  childCount(ino: number): number {
    return this.w[this.recOf(ino, 'dir', 'childCount') + I_B]!;
  }

  /** The i-th entry (0-based, in name order) of directory `ino`: for offset-based readdir. */
  childAt(ino: number, i: number): DirEntry {
    const r = this.recOf(ino, 'dir', 'childAt');
    if (!Number.isInteger(i) || i < 0 || i >= this.w[r + I_B]!) throw new RangeError(`childAt: directory ${ino} has no entry ${i}`);
    return this.entry(this.w[r + I_A]! + i);
  }

  private entry(e: number): DirEntry {
    const k = this.entryW + e * EW;
    return { name: this.str(this.w[k + E_OFF]!, this.w[k + E_LEN]!, this.namesOff), ino: this.w[k + E_INO]! };
  }

  /** The entries of directory `ino` in name-byte order (without '.' and '..'). */
  readdir(ino: number): Iterable<DirEntry> {
    const r = this.recOf(ino, 'dir', 'readdir');
    const first = this.w[r + I_A]!;
    const end = first + this.w[r + I_B]!;
    const self = this;
    return {
      *[Symbol.iterator]() {
        for (let e = first; e < end; e++) yield self.entry(e);
      },
    };
  }

  /** The ino named `name` in directory `parentIno` (binary search), or undefined (also when not a directory). */
  lookup(parentIno: number, name: ByteString): number | undefined {
    const r = this.rec(parentIno);
    const w = this.w;
    if (w[r + I_MODE]! >>> 12 !== T_DIR || name.length === 0 || name.length > NAME_MAX) return undefined;
    let lo = w[r + I_A]!;
    let hi = lo + w[r + I_B]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const k = this.entryW + mid * EW;
      const c = compareToKey(this.bytes, this.namesOff + w[k + E_OFF]!, w[k + E_LEN]!, name);
      if (c === 0) return w[k + E_INO]!;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  /**
   * The ino at `path` ('/a/b' or 'a/b', from the root), or undefined. Symlinks are not followed;
   * '.' and '..' are resolved lexically ('..' of the root is the root).
   */
  resolve(path: ByteString): number | undefined {
    let ino = this.rootIno;
    const parents: number[] = [];
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (this.kind(ino) !== 'dir') return undefined;
        ino = parents.pop() ?? this.rootIno;
        continue;
      }
      const next = this.lookup(ino, part);
      if (next === undefined) return undefined;
      parents.push(ino);
      ino = next;
    }
    return ino;
  }

  /** The target of symlink `ino`, verbatim. */
  readlink(ino: number): ByteString {
    const r = this.recOf(ino, 'symlink', 'readlink');
    return this.str(this.w[r + I_A]!, this.w[r + I_B]!);
  }

  /** Where file `ino`'s content is in the data stream (offset 0 for empty files). */
  fileExtent(ino: number): { offset: number; size: number } {
    const r = this.recOf(ino, 'file', 'fileExtent');
    return { offset: this.u64(r + I_A), size: this.u64(r + I_SIZE) };
  }

  private xattrRange(ino: number): [number, number] {
    const r = this.rec(ino);
    const first = this.w[r + I_XFIRST]!;
    return [first, first + this.w[r + I_XCOUNT]!];
  }

  private xattrName(x: number): ByteString {
    const k = this.xattrW + x * XW;
    return this.str(this.w[k + X_NOFF]!, this.w[k + X_NLEN]!);
  }

  private xattrValue(x: number): Buffer {
    const k = this.xattrW + x * XW;
    const s = this.strOff + this.w[k + X_VOFF]!;
    return Buffer.from(this.bytes.subarray(s, s + this.w[k + X_VLEN]!)); // a copy: the index stays intact
  }

  /** Names of the xattrs of `ino`, sorted by bytes. */
  listXattrs(ino: number): ByteString[] {
    const [first, end] = this.xattrRange(ino);
    const out: ByteString[] = [];
    for (let x = first; x < end; x++) out.push(this.xattrName(x));
    return out;
  }

  /** The value (a copy) of xattr `name` of `ino` (binary search), or undefined. */
  getXattr(ino: number, name: ByteString): Buffer | undefined {
    let [lo, hi] = this.xattrRange(ino);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const k = this.xattrW + mid * XW;
      const c = compareToKey(this.bytes, this.strOff + this.w[k + X_NOFF]!, this.w[k + X_NLEN]!, name);
      if (c === 0) return this.xattrValue(mid);
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  /** All xattrs of `ino`, name → value (copies), in name order. */
  xattrs(ino: number): Map<ByteString, Buffer> {
    const [first, end] = this.xattrRange(ino);
    const out = new Map<ByteString, Buffer>();
    for (let x = first; x < end; x++) out.set(this.xattrName(x), this.xattrValue(x));
    return out;
  }

  /** Every name in sorted depth-first order, root first — the order of inode numbers and data. */
  *walk(): Generator<IndexWalkItem> {
    yield { path: '', ino: this.rootIno, depth: 0 };
    const stack: { path: ByteString; next: number; end: number }[] = [];
    const open = (ino: number, path: ByteString): void => {
      const r = this.rec(ino);
      const first = this.w[r + I_A]!;
      stack.push({ path, next: first, end: first + this.w[r + I_B]! });
    };
    open(this.rootIno, '');
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next >= top.end) {
        stack.pop();
        continue;
      }
      const { name, ino } = this.entry(top.next++);
      const path = top.path === '' ? name : `${top.path}/${name}`;
      yield { path, ino, depth: stack.length };
      if (this.kind(ino) === 'dir') open(ino, path);
    }
  }

  /**
   * The tree as FsNodes (hardlinks share one node; file nodes have no `content`): for tools and
   * tests. Re-encoding it with this index's sizes, table and config gives an equivalent index.
   */
  toTree(): FsNode {
    const nodes: FsNode[] = [];
    for (let ino = 1; ino <= this.inodeCount; ino++) {
      const st = this.stat(ino);
      const node: FsNode = { kind: st.kind, mode: st.mode, uid: st.uid, gid: st.gid, mtimeNs: st.mtimeNs, xattrs: this.xattrs(ino), size: 0 };
      if (st.kind === 'file') node.size = st.size;
      if (st.kind === 'dir') node.children = new Map();
      if (st.kind === 'symlink') node.target = this.readlink(ino);
      if (st.kind === 'char' || st.kind === 'block') [node.devMajor, node.devMinor] = [st.devMajor, st.devMinor];
      nodes.push(node);
    }
    for (let ino = 1; ino <= this.inodeCount; ino++) {
      const dir = nodes[ino - 1]!;
      if (dir.kind === 'dir') for (const { name, ino: child } of this.readdir(ino)) dir.children!.set(name, nodes[child - 1]!);
    }
    return nodes[0]!;
  }

  /** The chunk table as a casync blob index (what `bootfs export-caibx` writes with encodeCaibx). */
  toBlobIndex(): BlobIndex {
    return { flags: caibxFlags(this.digest), sizes: this.sizes, table: this.table };
  }
}

// ---------------------------------------------------------------------------------------------
// Validation: header → sections → chunk table → config → entries → inodes → tree → order.

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): boolean => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** Why a parsed config is not an ImageConfig, or undefined. Unknown keys are kept (later minors may add some). */
function configProblem(v: unknown): string | undefined {
  if (!isObject(v)) return 'is not a JSON object';
  const has = (k: string): boolean => Object.hasOwn(v, k);
  for (const k of ['entrypoint', 'cmd', 'env', 'exposedPorts']) {
    if (has(k) && !isStringArray(v[k])) return `field ${k} is not an array of strings`;
  }
  for (const k of ['workingDir', 'user', 'stopSignal']) {
    if (has(k) && typeof v[k] !== 'string') return `field ${k} is not a string`;
  }
  if (has('labels') && !(isObject(v.labels) && Object.values(v.labels).every((s) => typeof s === 'string'))) {
    return 'field labels is not an object of strings';
  }
  if (has('source')) {
    const s = v.source;
    if (!isObject(s) || typeof s.reference !== 'string') return 'field source is not an object with a string reference';
    for (const k of ['manifestDigest', 'configDigest', 'os', 'architecture', 'variant']) {
      if (Object.hasOwn(s, k) && typeof s[k] !== 'string') return `field source.${k} is not a string`;
    }
  }
  return undefined;
}

/** Proves everything BootfsIndex relies on; each method throws IndexFormatError at the first problem. */
class Checker {
  readonly bytes: Buffer;
  readonly w: Uint32Array;
  readonly len: number;
  major = 0;
  minor = 0;
  inodeCount = 0;
  entryCount = 0;
  xattrCount = 0;
  chunkCount = 0;
  dataSize = 0;
  dirCount = 0;
  sizes: ChunkSizes = { min: 0, avg: 0, max: 0 };
  digest: Digest = 'sha512-256';
  inodeW = 0;
  entryW = 0;
  xattrW = 0;
  strOff = 0;
  strLen = 0;
  namesOff = 0;
  namesLen = 0;
  readonly offsets = {} as Record<SectionName, number>;
  readonly lengths = {} as Record<SectionName, number>;

  constructor(
    input: Buffer,
    readonly name: string,
  ) {
    ({ bytes: this.bytes, words: this.w } = wordsOf(input));
    this.len = input.length;
  }

  bad(why: string): never {
    throw new IndexFormatError(this.name, why);
  }

  /** A u64 at 4-aligned byte offset `off`, or -1 when it is 2^53 or more (not exact in a double). */
  u64(off: number): number {
    const high = this.w[(off >>> 2) + 1]!;
    return high >= 2 ** 21 ? -1 : high * TWO_32 + this.w[off >>> 2]!;
  }

  /** Check that a string-table ref lies inside the table. */
  inStrings(off: number, len: number, what: string): void {
    if (off + len > this.strLen) this.bad(`${what} (${len} bytes at ${off}) lies outside the ${this.strLen}-byte string table`);
  }

  /** Whether a string-table ref holds a NUL. A bounded loop: indexOf would scan on past the string. */
  hasNul(off: number, len: number): boolean {
    const b = this.bytes;
    for (let p = this.strOff + off, end = p + len; p < end; p++) if (b[p] === 0) return true;
    return false;
  }

  header(): void {
    const { bytes, len } = this;
    if (len < BOOTFS_INDEX_MAGIC.length || !bytes.subarray(0, BOOTFS_INDEX_MAGIC.length).equals(BOOTFS_INDEX_MAGIC)) {
      this.bad('not a bootfs index (bad magic)');
    }
    if (len < HEADER.headerSize) this.bad(`file is ${len} bytes, too short for a header (truncated)`);
    this.major = bytes.readUInt16LE(HEADER.major);
    this.minor = bytes.readUInt16LE(HEADER.minor);
    const version = `${this.major}.${this.minor}`;
    if (this.major !== BOOTFS_INDEX_MAJOR) {
      this.bad(`format version ${version} is not supported: this bootfs reads ${BOOTFS_INDEX_MAJOR}.x indexes (use a bootfs release that reads ${this.major}.x)`);
    }
    if (len < HEADER_SIZE) this.bad(`file is ${len} bytes, shorter than the ${HEADER_SIZE}-byte header (truncated)`);
    const headerSize = bytes.readUInt32LE(HEADER.headerSize);
    const newer = this.minor > BOOTFS_INDEX_MINOR;
    const headerOk = newer
      ? headerSize >= HEADER_SIZE && headerSize <= Math.min(MAX_HEADER_SIZE, len) && headerSize % SECTION_ALIGN === 0
      : headerSize === HEADER_SIZE;
    if (!headerOk) this.bad(`header size ${headerSize} is invalid for version ${version}`);
    // The checksum right after the version: fields of another major may mean anything.
    const stored = bytes.subarray(HEADER.checksum, HEADER.checksum + CHECKSUM_SIZE);
    const actual = indexChecksum(bytes.subarray(0, len));
    if (!actual.equals(stored)) {
      this.bad(`checksum mismatch (stored ${stored.toString('hex')}, computed ${actual.toString('hex')}): the file is damaged or was modified`);
    }
    const u32 = (off: number): number => bytes.readUInt32LE(off);
    const flags = u32(HEADER.flags);
    if (flags !== 0) this.bad(`required-feature flags 0x${flags.toString(16)} are unknown to this bootfs (use a newer release)`);
    const chunker = u32(HEADER.chunker);
    if (chunker !== CHUNKER_FASTCDC_RONOMON) this.bad(`unknown chunker algorithm id ${chunker} (this bootfs knows 1 = FastCDC ronomon)`);
    const digestId = u32(HEADER.digest);
    const digest = digestById(digestId);
    if (!digest) this.bad(`unknown digest algorithm id ${digestId} (this bootfs knows 1 = SHA-512/256, 2 = SHA-256)`);
    this.digest = digest;
    const [min, avg, max] = [u32(HEADER.chunkMin), u32(HEADER.chunkAvg), u32(HEADER.chunkMax)];
    if (!(min >= 1 && min <= avg && avg <= max && max <= MAX_CHUNK_SIZE_CEILING)) {
      this.bad(`chunk sizes ${min}:${avg}:${max} must satisfy 1 <= min <= avg <= max <= 128 MiB`);
    }
    this.sizes = Object.freeze({ min, avg, max });
    this.inodeCount = u32(HEADER.inodeCount);
    this.entryCount = u32(HEADER.entryCount);
    this.xattrCount = u32(HEADER.xattrCount);
    this.chunkCount = u32(HEADER.chunkCount);
    this.dataSize = this.u64(HEADER.dataSize);
    if (this.dataSize < 0) this.bad('data size is not below 2^53');
    if (this.inodeCount < 1) this.bad('inode count is 0: the root directory is missing');
    this.sections(headerSize, newer);
  }

  /** Sections: in order, contiguous up to 8-byte alignment with zero padding, inside the file, sized by the counts. */
  private sections(headerSize: number, newer: boolean): void {
    let end = headerSize;
    SECTION_ORDER.forEach((s, k) => {
      const off = this.u64(HEADER.sections + 16 * k);
      const length = this.u64(HEADER.sections + 16 * k + 8);
      const want = alignUp(end);
      if (off < 0 || length < 0) this.bad(`${s} section offset or length is not below 2^53`);
      if (off !== want) this.bad(`${s} section starts at ${off}, expected ${want} (sections are in order, 8-byte aligned, without gaps)`);
      if (off + length > this.len) this.bad(`${s} section (${length} bytes at ${off}) runs past the end of the ${this.len}-byte file (truncated?)`);
      for (let p = end; p < off; p++) if (this.bytes[p] !== 0) this.bad(`padding byte at offset ${p} is not zero`);
      this.offsets[s] = off;
      this.lengths[s] = length;
      end = off + length;
    });
    // A newer minor may append sections after ours; our own minor has nothing after the config.
    if (!newer && end !== this.len) this.bad(`${this.len - end} trailing bytes after the config section`);
    const records: [SectionName, number, number][] = [
      ['inodes', this.inodeCount, INODE_SIZE],
      ['entries', this.entryCount, ENTRY_SIZE],
      ['xattrs', this.xattrCount, XATTR_SIZE],
      ['chunks', this.chunkCount, CHUNK_ITEM_SIZE],
    ];
    for (const [s, count, size] of records) {
      if (this.lengths[s] !== count * size) this.bad(`${s} section is ${this.lengths[s]} bytes, expected ${count} × ${size}`);
    }
    // String refs are u32 (offset, length): a larger table could not be addressed.
    for (const s of ['names', 'strings'] as const) {
      if (this.lengths[s] > 0xffffffff) this.bad(`${s} section is ${this.lengths[s]} bytes (limit 2^32-1)`);
    }
    // Names hold nothing but entry names, so one native scan proves no name has a NUL or '/'.
    const names = this.bytes.subarray(this.offsets.names, this.offsets.names + this.lengths.names);
    for (const [byte, what] of [[0, 'NUL'], [0x2f, "'/'"]] as const) {
      const at = names.indexOf(byte);
      if (at !== -1) this.bad(`names section holds a ${what} at offset ${at} (names never contain one)`);
    }
    if (this.lengths.config > CONFIG_MAX) this.bad(`config section is ${this.lengths.config} bytes (limit ${CONFIG_MAX})`);
    [this.inodeW, this.entryW, this.xattrW] = [this.offsets.inodes >>> 2, this.offsets.entries >>> 2, this.offsets.xattrs >>> 2];
    [this.strOff, this.strLen] = [this.offsets.strings, this.lengths.strings];
    [this.namesOff, this.namesLen] = [this.offsets.names, this.lengths.names];
  }

  /** The chunk table: strictly increasing ends, no chunk above max, the last end = data size. */
  chunks(): ChunkTable {
    const n = this.chunkCount;
    const ends = new Float64Array(n);
    const ids = Buffer.allocUnsafe(n * CHUNK_ID_BYTES);
    let prev = 0;
    for (let i = 0, off = this.offsets.chunks; i < n; i++, off += CHUNK_ITEM_SIZE) {
      const end = this.u64(off);
      if (end < 0) this.bad(`chunk ${i} end offset is not below 2^53`);
      if (end <= prev) this.bad(`chunk end offsets are not strictly increasing at chunk ${i} (${end} after ${prev})`);
      if (end - prev > this.sizes.max) this.bad(`chunk ${i} is ${end - prev} bytes, larger than the max chunk size ${this.sizes.max}`);
      ends[i] = end;
      this.bytes.copy(ids, i * CHUNK_ID_BYTES, off + 8, off + CHUNK_ITEM_SIZE);
      prev = end;
    }
    if (prev !== this.dataSize) this.bad(`the chunk table covers ${prev} bytes but the data stream is ${this.dataSize} bytes`);
    return new ChunkTable(ends, ids);
  }

  config(): ImageConfig {
    const bytes = this.bytes.subarray(this.offsets.config, this.offsets.config + this.lengths.config);
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
    } catch (err) {
      this.bad(`config is not UTF-8 JSON: ${(err as Error).message}`);
    }
    const why = configProblem(value);
    if (why !== undefined) this.bad(`config ${why}`);
    return value as ImageConfig;
  }

  /**
   * Per-inode fields; file extents tile the data stream in inode order; xattr runs tile the xattrs;
   * hardlink groups: a directory has exactly one name (the root none), any other inode nlink ≥ 1.
   */
  inodes(refs: Uint32Array): void {
    const w = this.w;
    let data = 0;
    let xattrs = 0;
    for (let ino = 1, r = this.inodeW; ino <= this.inodeCount; ino++, r += IW) {
      const stMode = w[r + I_MODE]!;
      const kind = KINDS[stMode >>> 12];
      if (kind === undefined || stMode > 0xffff) this.bad(`inode ${ino} has an invalid st_mode 0o${stMode.toString(8)}`);
      if (ino === 1 && kind !== 'dir') this.bad(`the root (inode 1) is a ${kind}, not a directory`);
      const names = refs[ino - 1]!;
      if (kind === 'dir') {
        if (names !== (ino === 1 ? 0 : 1)) this.bad(`directory inode ${ino} has ${names} names (a directory has exactly one)`);
      } else {
        if (names === 0) this.bad(`inode ${ino} has no name (unreachable)`);
        if (w[r + I_NLINK] !== names) this.bad(`inode ${ino} has nlink ${w[r + I_NLINK]} but ${names} names`);
      }
      const size = this.u64(4 * (r + I_SIZE));
      const a = this.u64(4 * (r + I_A));
      const b = this.u64(4 * (r + I_B));
      if (size < 0 || a < 0 || b < 0) this.bad(`inode ${ino} has a size or payload field not below 2^53`);
      if (kind !== 'file' && size !== 0) this.bad(`inode ${ino} is a ${kind} with size ${size} (only files have a size)`);
      if (kind === 'file') {
        if (b !== 0) this.bad(`inode ${ino} (file) has a non-zero reserved field`);
        if (a !== (size === 0 ? 0 : data) || size > this.dataSize - data) {
          this.bad(`inode ${ino} has data extent ${a}+${size}, expected ${size === 0 ? 0 : data}: file contents must tile the ${this.dataSize}-byte data stream in inode order`);
        }
        data += size;
      } else if (kind === 'dir') {
        if (a > this.entryCount || b > this.entryCount - a) this.bad(`directory inode ${ino} has children ${a}+${b} outside the ${this.entryCount} entries`);
        this.dirCount++;
      } else if (kind === 'symlink') {
        if (b > SYMLINK_MAX) this.bad(`symlink inode ${ino} has a ${b}-byte target (limit ${SYMLINK_MAX})`);
        this.inStrings(a, b, `symlink target of inode ${ino}`);
        if (this.hasNul(a, b)) this.bad(`symlink target of inode ${ino} contains NUL`);
      } else if (kind === 'char' || kind === 'block') {
        if (a > 0xffffffff || b > 0xffffffff) this.bad(`device inode ${ino} has device numbers ${a}:${b} above 2^32-1`);
      } else if (a !== 0 || b !== 0) {
        this.bad(`inode ${ino} (${kind}) has non-zero reserved fields`);
      }
      const first = w[r + I_XFIRST]!;
      const count = w[r + I_XCOUNT]!;
      if (first !== xattrs || count > this.xattrCount - xattrs) {
        this.bad(`inode ${ino} has xattrs ${first}+${count}, expected them to start at ${xattrs} within ${this.xattrCount} records`);
      }
      if (count > 0) this.xattrRun(ino, first, count);
      xattrs += count;
    }
    if (data !== this.dataSize) this.bad(`files hold ${data} bytes but the data stream is ${this.dataSize} bytes`);
    if (xattrs !== this.xattrCount) this.bad(`${this.xattrCount - xattrs} xattr records belong to no inode`);
  }

  private xattrRun(ino: number, first: number, count: number): void {
    const w = this.w;
    for (let x = first, k = this.xattrW + first * XW; x < first + count; x++, k += XW) {
      const [nOff, nLen, vOff, vLen] = [w[k + X_NOFF]!, w[k + X_NLEN]!, w[k + X_VOFF]!, w[k + X_VLEN]!];
      if (nLen < 1 || nLen > XATTR_NAME_MAX) this.bad(`xattr ${x} of inode ${ino} has a ${nLen}-byte name (1…${XATTR_NAME_MAX} allowed)`);
      if (vLen > XATTR_VALUE_MAX) this.bad(`xattr ${x} of inode ${ino} has a ${vLen}-byte value (limit ${XATTR_VALUE_MAX})`);
      this.inStrings(nOff, nLen, `name of xattr ${x}`);
      this.inStrings(vOff, vLen, `value of xattr ${x}`);
      if (this.hasNul(nOff, nLen)) this.bad(`name of xattr ${x} contains NUL`);
      const p = k - XW;
      if (x > first && compareBytes(this.bytes, this.strOff + w[p + X_NOFF]!, w[p + X_NLEN]!, this.strOff + nOff, nLen) >= 0) {
        this.bad(`xattrs of inode ${ino} are not in strictly increasing name order at record ${x}`);
      }
    }
  }

  /** Names are valid (their bytes were checked with the names section); inos in range. Returns each inode's name count. */
  entries(): Uint32Array {
    const { w, bytes, namesOff, namesLen } = this;
    const refs = new Uint32Array(this.inodeCount);
    for (let e = 0, k = this.entryW; e < this.entryCount; e++, k += EW) {
      const [off, len, ino] = [w[k + E_OFF]!, w[k + E_LEN]!, w[k + E_INO]!];
      if (len < 1 || len > NAME_MAX) this.bad(`entry ${e} has a ${len}-byte name (1…${NAME_MAX} allowed)`);
      if (off + len > namesLen) this.bad(`name of entry ${e} (${len} bytes at ${off}) lies outside the ${namesLen}-byte names section`);
      if (bytes[namesOff + off] === 0x2e && (len === 1 || (len === 2 && bytes[namesOff + off + 1] === 0x2e))) this.bad(`entry ${e} is named '.' or '..'`);
      if (ino < 2 || ino > this.inodeCount) this.bad(`entry ${e} points at inode ${ino}, outside 2…${this.inodeCount}`);
      refs[ino - 1]!++;
    }
    return refs;
  }

  private isDir(ino: number): boolean {
    return this.w[this.inodeW + (ino - 1) * IW + I_MODE]! >>> 12 === T_DIR;
  }

  /**
   * The tree: child ranges, taken in breadth-first order (the root's, then each directory's as its
   * entry comes up), must tile the entries exactly. So every entry has one parent, lying before it,
   * and no range can point back at an ancestor: the tree is finite and loop-free.
   */
  tree(): void {
    const { w, bytes, namesOff } = this;
    let cursor = 0;
    const open = (ino: number): void => {
      const r = this.inodeW + (ino - 1) * IW;
      const first = w[r + I_A]!;
      const end = first + w[r + I_B]!;
      if (first !== cursor) this.bad(`directory inode ${ino} has children from entry ${first}, expected ${cursor} (breadth-first order)`);
      let subdirs = 0;
      for (let e = first, k = this.entryW + first * EW; e < end; e++, k += EW) {
        if (this.isDir(w[k + E_INO]!)) subdirs++;
        if (e > first && compareBytes(bytes, namesOff + w[k - EW + E_OFF]!, w[k - EW + E_LEN]!, namesOff + w[k + E_OFF]!, w[k + E_LEN]!) >= 0) {
          this.bad(`entries ${e - 1} and ${e} of directory inode ${ino} are not in strictly increasing name order`);
        }
      }
      if (w[r + I_NLINK] !== 2 + subdirs) this.bad(`directory inode ${ino} has nlink ${w[r + I_NLINK]}, expected ${2 + subdirs} (2 + subdirectories)`);
      cursor = end;
    };
    open(1);
    for (let e = 0, k = this.entryW; e < this.entryCount; e++, k += EW) {
      if (e >= cursor) this.bad(`entry ${e} lies in no directory's children (or before its own directory)`);
      if (this.isDir(w[k + E_INO]!)) open(w[k + E_INO]!);
    }
  }

  /** Inode numbers follow first appearance in the sorted depth-first walk (iterative; the tree is proven finite). */
  order(): void {
    const w = this.w;
    const stack = new Uint32Array(2 * (this.dirCount + 1));
    let sp = 0;
    const push = (ino: number): void => {
      const r = this.inodeW + (ino - 1) * IW;
      stack[sp] = w[r + I_A]!;
      stack[sp + 1] = w[r + I_A]! + w[r + I_B]!;
      sp += 2;
    };
    push(1);
    let next = 2;
    while (sp > 0) {
      const pos = stack[sp - 2]!;
      if (pos === stack[sp - 1]) {
        sp -= 2;
        continue;
      }
      stack[sp - 2] = pos + 1;
      const ino = w[this.entryW + pos * EW + E_INO]!;
      if (ino > next) this.bad(`entry ${pos} has inode ${ino} where ${next} is next: inodes must be numbered in sorted depth-first order`);
      if (ino === next) next++;
      if (this.isDir(ino)) push(ino);
    }
    if (next !== this.inodeCount + 1) this.bad(`only ${next - 1} of ${this.inodeCount} inodes are reachable`);
  }
}
