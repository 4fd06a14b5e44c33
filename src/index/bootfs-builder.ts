/**
 * Builds bootfs index bytes from an FsNode tree, the data stream's chunk table and the image config
 * (layout: bootfs-index.ts, docs/index-format.md). Output is deterministic: everything is ordered by
 * name bytes or by the sorted walk, strings are laid out in first-use order, no clock or Map
 * insertion order reaches the bytes. The builder refuses (RangeError, a programming error) anything
 * the reader would refuse, so we never write an index we cannot read back.
 */
import { CASYNC_DIGEST, CHUNK_ID_BYTES, type Digest } from '../chunk.js';
import { MAX_CHUNK_SIZE_CEILING, type ChunkSizes } from '../chunker/params.js';
import { writeFileAtomic } from '../util/files.js';
import { displayName, type ByteString, type FsNode, type ImageConfig } from '../tree/types.js';
import { compareByteStrings, walkSorted, type WalkItem } from '../tree/walk.js';
import {
  BOOTFS_INDEX_MAGIC, BOOTFS_INDEX_MAJOR, BOOTFS_INDEX_MINOR, CHECKSUM_SIZE, CHUNK_ITEM_SIZE,
  CHUNKER_FASTCDC_RONOMON, CONFIG_MAX, DIGEST_ID, ENTRY, ENTRY_SIZE, HEADER, HEADER_SIZE, IFMT,
  INODE, INODE_SIZE, NAME_MAX, PERM_MASK, SECTION_ORDER, SYMLINK_MAX, XATTR, XATTR_NAME_MAX, XATTR_SIZE,
  XATTR_VALUE_MAX, alignUp, indexChecksum, type SectionName,
} from './bootfs-index.js';
import type { ChunkTable } from './chunk-table.js';

/** Everything an index holds. `table` must describe the data stream of `root` (see dataOrder). */
export interface IndexBuildInput {
  root: FsNode;
  sizes: ChunkSizes;
  /** The chunk IDs' digest (default SHA-512/256). */
  digest?: Digest;
  table: ChunkTable;
  config: ImageConfig;
}

const U32_MAX = 0xffffffff;
const TWO_32 = 2 ** 32;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const NOT_BYTES = /[^\x00-\xff]/;

class Fail extends RangeError {
  constructor(why: string) {
    super(`cannot encode bootfs index: ${why}`);
  }
}

const isU32 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= U32_MAX;

/** Why `name` cannot be a directory entry name, or undefined. */
function nameProblem(name: ByteString): string | undefined {
  if (typeof name !== 'string' || NOT_BYTES.test(name)) return 'is not a byte string';
  if (name.length === 0 || name.length > NAME_MAX) return `is ${name.length} bytes long (1…${NAME_MAX} allowed)`;
  if (name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return "is '.', '..' or contains '/' or NUL";
  return undefined;
}

/** Why the node cannot be encoded (a phrase that follows its path), or undefined. */
function nodeProblem(node: FsNode): string | undefined {
  if (!Object.hasOwn(IFMT, node.kind)) return `has unknown kind ${String(node.kind)}`;
  if (!Number.isInteger(node.mode) || node.mode < 0 || node.mode > PERM_MASK) return `has mode ${node.mode} outside 0…0o7777`;
  if (!isU32(node.uid) || !isU32(node.gid)) return `has uid/gid ${node.uid}/${node.gid} outside 0…2^32-1`;
  if (typeof node.mtimeNs !== 'bigint' || node.mtimeNs < I64_MIN || node.mtimeNs > I64_MAX) return 'has an mtime that is not a signed 64-bit bigint';
  if (node.kind === 'file' ? !Number.isSafeInteger(node.size) || node.size < 0 : node.size !== 0) {
    return `has size ${node.size} (files: 0…2^53-1; other kinds: 0)`;
  }
  if (node.kind === 'symlink') {
    const t = node.target;
    if (typeof t !== 'string' || NOT_BYTES.test(t)) return 'is a symlink without a byte-string target';
    if (t.length > SYMLINK_MAX || t.includes('\0')) return `has a symlink target of ${t.length} bytes or with NUL (≤ ${SYMLINK_MAX}, no NUL)`;
  }
  if ((node.kind === 'char' || node.kind === 'block') && !(isU32(node.devMajor ?? 0) && isU32(node.devMinor ?? 0))) {
    return `has device numbers ${node.devMajor}:${node.devMinor} outside 0…2^32-1`;
  }
  for (const [name, value] of node.xattrs) {
    if (typeof name !== 'string' || NOT_BYTES.test(name) || name.length === 0 || name.length > XATTR_NAME_MAX || name.includes('\0')) {
      return `has an xattr name that is not 1…${XATTR_NAME_MAX} bytes without NUL`;
    }
    if (!(value instanceof Uint8Array) || value.length > XATTR_VALUE_MAX) return `has xattr ${displayName(name)} whose value is not ≤ ${XATTR_VALUE_MAX} bytes`;
  }
  return undefined;
}

/** Why the chunk sizes or table cannot be written, or undefined. */
function tableProblem(sizes: ChunkSizes, table: ChunkTable, dataSize: number): string | undefined {
  const s = [sizes.min, sizes.avg, sizes.max];
  if (!s.every((v) => Number.isInteger(v) && v >= 1 && v <= MAX_CHUNK_SIZE_CEILING) || !(s[0]! <= s[1]! && s[1]! <= s[2]!)) {
    return `chunk sizes ${s.join(':')} must be integers with 1 <= min <= avg <= max <= 128 MiB`;
  }
  if (table.count > U32_MAX) return `${table.count} chunks exceed the 2^32-1 limit`;
  let prev = 0;
  for (let i = 0; i < table.count; i++) {
    const end = table.ends[i]!;
    if (!Number.isSafeInteger(end) || end <= prev || end - prev > sizes.max) {
      return `chunk ${i} ends at ${end} after ${prev}: ends must increase, chunks be at most max (${sizes.max}) bytes`;
    }
    prev = end;
  }
  if (table.totalSize !== dataSize) {
    return `the chunk table covers ${table.totalSize} bytes but the tree's files (dataOrder) hold ${dataSize}`;
  }
  return undefined;
}

/** JSON with object keys sorted at every level: one text per value, whatever the insertion order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Fail(`config holds the non-finite number ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  throw new Fail(`config holds a ${typeof value}, which JSON cannot represent`);
}

/** Deduplicating string table; offsets in first-use order. */
class StringTable {
  private readonly offsets = new Map<ByteString, number>();
  readonly parts: ByteString[] = [];
  size = 0;
  add(s: ByteString): number {
    let off = this.offsets.get(s);
    if (off === undefined) {
      off = this.size;
      this.offsets.set(s, off);
      this.parts.push(s);
      this.size += s.length;
    }
    return off;
  }

  /**
   * Write the strings back to back at `at`. Joined into runs of up to ~1 MiB first: a write call
   * per name (thousands) cost more than the bytes.
   */
  writeTo(buf: Buffer, at: number): void {
    let run: ByteString[] = [];
    let runBytes = 0;
    const flush = (): void => {
      at += buf.write(run.join(''), at, 'latin1');
      run = [];
      runBytes = 0;
    };
    for (const part of this.parts) {
      run.push(part);
      runBytes += part.length;
      if (runBytes >= 1 << 20) flush();
    }
    if (run.length > 0) flush();
  }
}

/**
 * A u64 (a safe integer) at `off`, little-endian. Index bytes are written through DataViews, not
 * Buffer's write methods: those are JavaScript with range checks and run interpreted in the
 * one-off passes here (they were ~40 % of prepareBootfsIndex). Every value is range-checked
 * before it is written (nodeProblem, the counts, tableProblem), so the views' silent wrapping
 * cannot happen.
 */
function writeU64(view: DataView, value: number, off: number): void {
  view.setUint32(off, value % TWO_32, true);
  view.setUint32(off + 4, Math.floor(value / TWO_32), true);
}

/**
 * Where the sections go: after the header, in SECTION_ORDER, each at the next aligned offset. The
 * leading sections given are laid out (prepare knows only those before the chunk table, finish
 * all of them), so both agree by construction.
 */
function layOut<K extends SectionName>(lengths: Record<K, number>): { offsets: Record<K, number>; end: number } {
  const given: Partial<Record<SectionName, number>> = lengths;
  const offsets: Partial<Record<SectionName, number>> = {};
  let end = HEADER_SIZE;
  for (const name of SECTION_ORDER) {
    const len = given[name];
    if (len === undefined) break;
    const at = alignUp(end);
    offsets[name] = at;
    end = at + len;
  }
  return { offsets: offsets as Record<K, number>, end };
}

/** What prepareBootfsIndex computed from the tree (opaque to callers). */
export interface PreparedIndex {
  sizes: ChunkSizes;
  digest: Digest;
  dataSize: number;
  names: StringTable;
  strings: StringTable;
  configBytes: Buffer;
  counts: { inodes: number; entries: number; xattrs: number };
  /** The index up to the chunk table: header space, then the inode, entry and xattr records. */
  records: Buffer;
}

/** Encode the index; throws RangeError naming the path or field when the input cannot be encoded. */
export function encodeBootfsIndex(input: IndexBuildInput): Buffer {
  return finishBootfsIndex(prepareBootfsIndex(input), input.table);
}

/**
 * The part of an index that depends on the tree only: its inodes, entries and strings, and all
 * their checks. A convert prepares it while the workers still hash the last chunks, then finishes
 * it with the chunk table (finishBootfsIndex). Throws like encodeBootfsIndex.
 */
export function prepareBootfsIndex(input: Omit<IndexBuildInput, 'table'>): PreparedIndex {
  const { root, sizes, config } = input;
  if (root.kind !== 'dir') throw new Fail(`the root is a ${root.kind}, not a directory`);

  // Inodes: numbered by first appearance in the sorted depth-first walk; data offsets are the running
  // sum in the same order, which is dataOrder(root) — the order the converter streams contents in.
  // The same pass records each directory's children (names and inode numbers, in byte order: the
  // walk visits them so), so the entries below need neither a second sort nor a lookup per name.
  // This runs once per convert, cold, on the critical path at its end: it is written for that.
  const inoOf = new Map<FsNode, number>();
  const inodes: FsNode[] = [];
  const nlink: number[] = [];
  const dataOffset: number[] = [];
  /** Per inode index: a directory's child names and inode numbers, and its path (for errors). */
  const childNames: ByteString[][] = [];
  const childInos: number[][] = [];
  const dirPath: ByteString[] = [];
  /** The inode index of the directory open at each depth of the walk. */
  const openDir: number[] = [];
  let dataSize = 0;
  const walk = walkSorted(root);
  for (;;) {
    let step: IteratorResult<WalkItem>;
    try {
      step = walk.next();
    } catch (err) {
      throw new Fail((err as Error).message); // a hardlinked directory or a cycle
    }
    if (step.done === true) break;
    const { path, name, node, depth } = step.value;
    let ino = inoOf.get(node);
    if (ino === undefined) {
      const why = nodeProblem(node);
      if (why !== undefined) throw new Fail(`'/${displayName(path)}' ${why}`);
      ino = inodes.length + 1;
      inoOf.set(node, ino);
      inodes.push(node);
      nlink.push(node.kind === 'dir' ? 2 : 0);
      dataOffset.push(node.kind === 'file' && node.size > 0 ? dataSize : 0);
      if (node.kind === 'file') dataSize += node.size;
    }
    if (depth > 0) {
      const parent = openDir[depth - 1]!;
      childNames[parent]!.push(name);
      childInos[parent]!.push(ino);
    }
    if (node.kind === 'dir') {
      // A directory is walked once (walkSorted refuses a second visit), so this runs once per directory.
      openDir[depth] = ino - 1;
      childNames[ino - 1] = [];
      childInos[ino - 1] = [];
      dirPath[ino - 1] = path;
      if (depth > 0) nlink[openDir[depth - 1]!]!++;
    } else nlink[ino - 1]!++;
  }

  // Entries: breadth first, each directory's children sorted, so every child range is one slice.
  const names = new StringTable();
  const entryName: number[] = [];
  const entryNameLen: number[] = [];
  const entryIno: number[] = [];
  const childFirst = new Array<number>(inodes.length).fill(0);
  const childCount = new Array<number>(inodes.length).fill(0);
  const queue: number[] = [0]; // inode indexes of directories; the root is inode 1
  for (let q = 0; q < queue.length; q++) {
    const dirIdx = queue[q]!;
    const kidNames = childNames[dirIdx]!;
    const kidInos = childInos[dirIdx]!;
    childFirst[dirIdx] = entryIno.length;
    childCount[dirIdx] = kidNames.length;
    for (let k = 0; k < kidNames.length; k++) {
      const name = kidNames[k]!;
      const why = nameProblem(name);
      if (why !== undefined) throw new Fail(`a name in '/${displayName(dirPath[dirIdx]!)}' ${why}`);
      const ino = kidInos[k]!;
      entryName.push(names.add(name));
      entryNameLen.push(name.length);
      entryIno.push(ino);
      if (inodes[ino - 1]!.kind === 'dir') queue.push(ino - 1);
    }
  }

  // Xattrs (and symlink targets) in inode order, each inode's xattrs sorted by name.
  const strings = new StringTable();
  const xattrRefs: number[] = []; // name off, name len, value off, value len
  const xattrFirst: number[] = [];
  const targetOff: number[] = [];
  for (const node of inodes) {
    targetOff.push(node.kind === 'symlink' ? strings.add(node.target!) : 0);
    xattrFirst.push(xattrRefs.length / 4);
    if (node.xattrs.size === 0) continue;
    for (const name of Array.from(node.xattrs.keys()).sort(compareByteStrings)) {
      const value = Buffer.from(node.xattrs.get(name)!).toString('latin1');
      xattrRefs.push(strings.add(name), name.length, strings.add(value), value.length);
    }
  }
  const configBytes = Buffer.from(canonicalJson(config), 'utf8');
  if (configBytes.length > CONFIG_MAX) throw new Fail(`the config is ${configBytes.length} bytes (limit ${CONFIG_MAX})`);
  const counts = { inodes: inodes.length, entries: entryIno.length, xattrs: xattrRefs.length / 4 };
  if (strings.size > U32_MAX || names.size > U32_MAX || counts.entries > U32_MAX || counts.inodes > U32_MAX || counts.xattrs > U32_MAX) {
    throw new Fail('the tree exceeds the 2^32-1 limit on entries, inodes, xattrs or string bytes');
  }

  // The inode, entry and xattr records come before the chunk table, so their offsets do not
  // depend on it: they are written now, into what becomes the start of the index.
  const { offsets, end } = layOut({ inodes: counts.inodes * INODE_SIZE, entries: counts.entries * ENTRY_SIZE, xattrs: counts.xattrs * XATTR_SIZE });
  const buf = Buffer.alloc(end);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length); // see writeU64
  for (let i = 0; i < inodes.length; i++) {
    const node = inodes[i]!;
    const r = offsets.inodes + i * INODE_SIZE;
    view.setUint32(r + INODE.mode, IFMT[node.kind] | node.mode, true);
    view.setUint32(r + INODE.nlink, nlink[i]!, true);
    view.setUint32(r + INODE.uid, node.uid, true);
    view.setUint32(r + INODE.gid, node.gid, true);
    view.setBigInt64(r + INODE.mtime, node.mtimeNs, true);
    writeU64(view, node.size, r + INODE.size);
    let a = 0;
    let b = 0;
    if (node.kind === 'file') a = dataOffset[i]!;
    else if (node.kind === 'dir') [a, b] = [childFirst[i]!, childCount[i]!];
    else if (node.kind === 'symlink') [a, b] = [targetOff[i]!, node.target!.length];
    else if (node.kind === 'char' || node.kind === 'block') [a, b] = [node.devMajor ?? 0, node.devMinor ?? 0];
    writeU64(view, a, r + INODE.a);
    writeU64(view, b, r + INODE.b);
    view.setUint32(r + INODE.xattrFirst, xattrFirst[i]!, true);
    view.setUint32(r + INODE.xattrCount, node.xattrs.size, true);
  }
  for (let e = 0; e < counts.entries; e++) {
    const r = offsets.entries + e * ENTRY_SIZE;
    view.setUint32(r + ENTRY.nameOff, entryName[e]!, true);
    view.setUint32(r + ENTRY.nameLen, entryNameLen[e]!, true);
    view.setUint32(r + ENTRY.ino, entryIno[e]!, true);
  }
  for (let x = 0; x < counts.xattrs; x++) {
    const r = offsets.xattrs + x * XATTR_SIZE;
    view.setUint32(r + XATTR.nameOff, xattrRefs[4 * x]!, true);
    view.setUint32(r + XATTR.nameLen, xattrRefs[4 * x + 1]!, true);
    view.setUint32(r + XATTR.valueOff, xattrRefs[4 * x + 2]!, true);
    view.setUint32(r + XATTR.valueLen, xattrRefs[4 * x + 3]!, true);
  }
  return { sizes, digest: input.digest ?? CASYNC_DIGEST, dataSize, names, strings, configBytes, counts, records: buf };
}

/** The index of a prepared tree with its chunk table. */
export function finishBootfsIndex(prepared: PreparedIndex, table: ChunkTable): Buffer {
  const { sizes, digest, dataSize, names, strings, configBytes } = prepared;
  const tableWhy = tableProblem(sizes, table, dataSize);
  if (tableWhy !== undefined) throw new Fail(tableWhy);
  const counts = { ...prepared.counts, chunks: table.count };

  const lengths: Record<SectionName, number> = {
    inodes: counts.inodes * INODE_SIZE,
    entries: counts.entries * ENTRY_SIZE,
    xattrs: counts.xattrs * XATTR_SIZE,
    chunks: counts.chunks * CHUNK_ITEM_SIZE,
    names: names.size,
    strings: strings.size,
    config: configBytes.length,
  };
  const { offsets, end } = layOut(lengths);
  const buf = Buffer.alloc(end); // zeroed: padding and reserved fields are 0

  const view = new DataView(buf.buffer, buf.byteOffset, buf.length); // see writeU64
  BOOTFS_INDEX_MAGIC.copy(buf, HEADER.magic);
  view.setUint16(HEADER.major, BOOTFS_INDEX_MAJOR, true);
  view.setUint16(HEADER.minor, BOOTFS_INDEX_MINOR, true);
  view.setUint32(HEADER.headerSize, HEADER_SIZE, true);
  view.setUint32(HEADER.chunker, CHUNKER_FASTCDC_RONOMON, true);
  view.setUint32(HEADER.chunkMin, sizes.min, true);
  view.setUint32(HEADER.chunkAvg, sizes.avg, true);
  view.setUint32(HEADER.chunkMax, sizes.max, true);
  view.setUint32(HEADER.digest, DIGEST_ID[digest], true);
  view.setUint32(HEADER.inodeCount, counts.inodes, true);
  view.setUint32(HEADER.entryCount, counts.entries, true);
  view.setUint32(HEADER.xattrCount, counts.xattrs, true);
  view.setUint32(HEADER.chunkCount, counts.chunks, true);
  writeU64(view, dataSize, HEADER.dataSize);
  SECTION_ORDER.forEach((name, k) => {
    writeU64(view, offsets[name], HEADER.sections + 16 * k);
    writeU64(view, lengths[name], HEADER.sections + 16 * k + 8);
  });

  // The records before the chunk table were written by prepareBootfsIndex, at the same offsets.
  prepared.records.copy(buf, HEADER_SIZE, HEADER_SIZE);
  for (let c = 0; c < counts.chunks; c++) {
    const r = offsets.chunks + c * CHUNK_ITEM_SIZE;
    writeU64(view, table.ends[c]!, r);
    table.ids.copy(buf, r + 8, c * CHUNK_ID_BYTES, (c + 1) * CHUNK_ID_BYTES);
  }
  for (const [table, name] of [[names, 'names'], [strings, 'strings']] as const) table.writeTo(buf, offsets[name]);
  configBytes.copy(buf, offsets.config);
  indexChecksum(buf).copy(buf, HEADER.checksum, 0, CHECKSUM_SIZE);
  return buf;
}

/**
 * Encode, then write atomically: a temp file `.<name>.<random>.tmp` in the target's directory,
 * fsync, rename, fsync the directory (best effort). Encoding errors (RangeError) come first; fs
 * failures remove the temp file and throw IoError naming the path.
 */
export async function writeBootfsIndexFile(path: string, input: IndexBuildInput): Promise<void> {
  await writeFileAtomic(path, encodeBootfsIndex(input), 'index');
}
