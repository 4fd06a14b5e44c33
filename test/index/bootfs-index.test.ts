/**
 * The bootfs index: golden bytes, round trip of a hard tree, determinism, the reader's API, and the
 * decoder's refusals (each with the checksum recomputed, so the structural check itself is what fires).
 */
import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CHUNK_SIZES } from '../../src/chunker/params.js';
import { IndexFormatError, IoError, NotFoundError } from '../../src/errors.js';
import { canonicalJson, encodeBootfsIndex, writeBootfsIndexFile, type IndexBuildInput } from '../../src/index/bootfs-builder.js';
import { HEADER, HEADER_SIZE, INODE_SIZE, SECTION_ORDER, indexChecksum, type SectionName } from '../../src/index/bootfs-index.js';
import { BootfsIndex } from '../../src/index/bootfs-reader.js';
import { encodeCaibx } from '../../src/index/caibx.js';
import { ChunkTable } from '../../src/index/chunk-table.js';
import { newDir, type ByteString, type FsNode, type ImageConfig, type NodeKind } from '../../src/tree/types.js';
import { dataOrder, walkSorted } from '../../src/tree/walk.js';
import { HELLO_CAIBX, HELLO_ID } from './caibx-fixtures.js';

const T = 1_700_000_000_000_000_000n;

function node(kind: NodeKind, extra: Partial<FsNode> = {}): FsNode {
  const n: FsNode = { kind, mode: 0o644, uid: 0, gid: 0, mtimeNs: T, xattrs: new Map(), size: 0, ...extra };
  if (kind === 'dir' && n.children === undefined) n.children = new Map();
  return n;
}

/** A table of `total` bytes in ≤ 1000-byte chunks (sizes 256:512:1024). */
function tableFor(total: number): ChunkTable {
  const chunks: { size: number; id: Buffer }[] = [];
  for (let off = 0; off < total; off += 1000) chunks.push({ size: Math.min(1000, total - off), id: Buffer.alloc(32, chunks.length) });
  return ChunkTable.fromChunks(chunks);
}
const SMALL = { min: 256, avg: 512, max: 1024 };

function inputFor(root: FsNode, config: ImageConfig = { cmd: ['/bin/sh'] }): IndexBuildInput {
  const total = dataOrder(root).reduce((s, f) => s + f.size, 0);
  return { root, sizes: SMALL, table: tableFor(total), config };
}

// ---------------------------------------------------------------------------------------------
// The tiny golden tree: a dir, a file with an xattr and a second name (hardlink), a device, a symlink.
//   /bin/ll, /bin/ls  one file "hello\n" (0755, security.capability), two names
//   /dev/null         char 1:3
//   /lnk              symlink → bin/ls (uid 1000, gid 100, mtime −1 ns)
function tinyTree(): FsNode {
  const root = newDir(0o755, 0, 0, T);
  const bin = newDir(0o755, 0, 0, T);
  const dev = newDir(0o755, 0, 0, T);
  const ls = node('file', { mode: 0o755, mtimeNs: T + 123_456_789n, size: 6, xattrs: new Map([['security.capability', Buffer.from('0100000200200000', 'hex')]]) });
  root.children!.set('bin', bin);
  bin.children!.set('ls', ls);
  bin.children!.set('ll', ls);
  root.children!.set('dev', dev);
  dev.children!.set('null', node('char', { mode: 0o666, devMajor: 1, devMinor: 3 }));
  root.children!.set('lnk', node('symlink', { mode: 0o777, uid: 1000, gid: 100, mtimeNs: -1n, target: 'bin/ls' }));
  return root;
}
const tinyInput = (): IndexBuildInput => ({
  root: tinyTree(),
  sizes: DEFAULT_CHUNK_SIZES,
  table: ChunkTable.fromChunks([{ size: 6, id: Buffer.from(HELLO_ID, 'hex') }]),
  config: { cmd: ['/bin/ls'], env: ['PATH=/bin'] },
});

/** Expected bytes of the tiny tree. A format change must change this on purpose (and the docs). */
const TINY_HEX = [
    '894246534944580a01000000d000000000000000010000000040000000000100',
    '0000040001000000060000000600000001000000010000000600000000000000',
    'd000000000000000500100000000000020020000000000004800000000000000',
    '6802000000000000100000000000000078020000000000002800000000000000',
    'a0020000000000001100000000000000b8020000000000002100000000000000',
    'e0020000000000002700000000000000112c7ca77ca3700b60c1ad1006ece20d',
    '6bdaea526edb9a33343743fa0931983aed410000040000000000000000000000',
    '00002a36fe9c9717000000000000000000000000000000000300000000000000',
    '0000000000000000ed41000002000000000000000000000000002a36fe9c9717',
    '0000000000000000030000000000000002000000000000000000000000000000',
    'ed81000002000000000000000000000015cd853dfe9c97170600000000000000',
    '000000000000000000000000000000000000000001000000ed41000002000000',
    '000000000000000000002a36fe9c971700000000000000000500000000000000',
    '01000000000000000100000000000000b6210000010000000000000000000000',
    '00002a36fe9c9717000000000000000001000000000000000300000000000000',
    '0100000000000000ffa1000001000000e803000064000000ffffffffffffffff',
    '00000000000000001b0000000000000006000000000000000100000000000000',
    '0000000003000000020000000300000003000000040000000600000003000000',
    '060000000900000002000000030000000b00000002000000030000000d000000',
    '0400000005000000000000001300000013000000080000000600000000000000',
    '7f3f0c0d5219f51459578305ed2bbc198588758da85d08024c79c1195d1cd611',
    '62696e6465766c6e6b6c6c6c736e756c6c000000000000007365637572697479',
    '2e6361706162696c697479010000020020000062696e2f6c7300000000000000',
    '7b22636d64223a5b222f62696e2f6c73225d2c22656e76223a5b22504154483d',
    '2f62696e225d7d',
].join('');

/** Offset of section `s` read straight from the header (independent of the reader). */
const sectionOffset = (buf: Buffer, s: SectionName): number => Number(buf.readBigUInt64LE(HEADER.sections + 16 * SECTION_ORDER.indexOf(s)));

/** Apply `edit` to a copy, recompute the checksum, and return the decoder's reason. */
function reasonAfter(orig: Buffer, edit: (buf: Buffer) => Buffer | void, name = 't.bfsidx'): string {
  let buf: Buffer = Buffer.from(orig);
  buf = edit(buf) ?? buf;
  if (buf.length >= HEADER.checksum + 32) indexChecksum(buf).copy(buf, HEADER.checksum);
  return reasonOf(buf, name);
}

function reasonOf(buf: Buffer, name = 't.bfsidx'): string {
  try {
    BootfsIndex.decode(buf, name);
  } catch (err) {
    expect(err).toBeInstanceOf(IndexFormatError);
    const e = err as IndexFormatError;
    expect(e.code).toBe('ERR_INDEX_FORMAT');
    expect(e.exitCode).toBe(3);
    expect(e.message.startsWith(`index ${name} is invalid: `)).toBe(true);
    return e.message.slice(`index ${name} is invalid: `.length);
  }
  throw new Error('decode accepted an invalid index');
}

describe('golden bytes', () => {
  it('encodes the tiny tree byte for byte', () => {
    const bytes = encodeBootfsIndex(tinyInput());
    expect(bytes.toString('hex')).toBe(TINY_HEX);
  });

  it('has the documented layout (read without the reader)', () => {
    const buf = Buffer.from(TINY_HEX, 'hex');
    expect(buf.subarray(0, 8).toString('latin1')).toBe('\x89BFSIDX\n');
    expect([buf.readUInt16LE(8), buf.readUInt16LE(10), buf.readUInt32LE(12), buf.readUInt32LE(16)]).toEqual([1, 0, HEADER_SIZE, 0]);
    expect([buf.readUInt32LE(20), buf.readUInt32LE(24), buf.readUInt32LE(28), buf.readUInt32LE(32), buf.readUInt32LE(36)]).toEqual([1, 16384, 65536, 262144, 1]);
    // 6 inodes (root, bin, ll=ls, dev, null, lnk), 6 names, 1 xattr, 1 chunk, 6 data bytes.
    expect([buf.readUInt32LE(40), buf.readUInt32LE(44), buf.readUInt32LE(48), buf.readUInt32LE(52)]).toEqual([6, 6, 1, 1]);
    expect(buf.readBigUInt64LE(56)).toBe(6n);
    expect(SECTION_ORDER.map((s) => sectionOffset(buf, s))).toEqual([208, 544, 616, 632, 672, 696, 736]);
    expect(buf.subarray(HEADER.checksum, HEADER.checksum + 32).equals(indexChecksum(buf))).toBe(true);
    // Inode 3 (bin/ll = bin/ls): regular 0755, nlink 2, data at 0, 6 bytes, xattr run 0+1.
    const r = 208 + 2 * INODE_SIZE;
    expect(buf.readUInt32LE(r)).toBe(0o100755);
    expect(buf.readUInt32LE(r + 4)).toBe(2);
    expect(buf.readBigInt64LE(r + 16)).toBe(T + 123_456_789n);
    expect([buf.readBigUInt64LE(r + 24), buf.readBigUInt64LE(r + 32), buf.readBigUInt64LE(r + 40)]).toEqual([6n, 0n, 0n]);
    expect([buf.readUInt32LE(r + 48), buf.readUInt32LE(r + 52)]).toEqual([0, 1]);
    // Entries, breadth first: bin dev lnk | ll ls | null; names deduplicated in first-use order.
    const names = sectionOffset(buf, 'names');
    const entries = [0, 1, 2, 3, 4, 5].map((e) => {
      const k = 544 + 12 * e;
      const off = buf.readUInt32LE(k);
      return [buf.toString('latin1', names + off, names + off + buf.readUInt32LE(k + 4)), buf.readUInt32LE(k + 8)];
    });
    expect(entries).toEqual([['bin', 2], ['dev', 4], ['lnk', 6], ['ll', 3], ['ls', 3], ['null', 5]]);
    // The chunk section is exactly the .caibx item list.
    expect(buf.subarray(632, 672).equals(HELLO_CAIBX.subarray(64, 104))).toBe(true);
    expect(JSON.parse(buf.toString('utf8', 736))).toEqual({ cmd: ['/bin/ls'], env: ['PATH=/bin'] });
  });

  it('decodes the tiny tree', () => {
    const idx = BootfsIndex.decode(Buffer.from(TINY_HEX, 'hex'), 'tiny');
    expect([idx.inodeCount, idx.entryCount, idx.xattrCount, idx.dataSize, idx.rootIno]).toEqual([6, 6, 1, 6, 1]);
    expect(idx.version).toEqual({ major: 1, minor: 0 });
    expect([...idx.walk()].map((w) => [w.path, w.ino, w.depth])).toEqual([
      ['', 1, 0], ['bin', 2, 1], ['bin/ll', 3, 2], ['bin/ls', 3, 2], ['dev', 4, 1], ['dev/null', 5, 2], ['lnk', 6, 1],
    ]);
    expect(idx.stat(3)).toEqual({
      kind: 'file', mode: 0o755, stMode: 0o100755, uid: 0, gid: 0, mtimeNs: T + 123_456_789n, size: 6, nlink: 2, devMajor: 0, devMinor: 0,
    });
    expect(idx.stat(1).nlink).toBe(4); // 2 + bin + dev
    expect(idx.stat(5)).toMatchObject({ kind: 'char', stMode: 0o20666, devMajor: 1, devMinor: 3, nlink: 1 });
    expect(idx.stat(6)).toMatchObject({ kind: 'symlink', uid: 1000, gid: 100, mtimeNs: -1n, size: 6 });
    expect(idx.readlink(6)).toBe('bin/ls');
    expect(idx.fileExtent(3)).toEqual({ offset: 0, size: 6 });
    expect(idx.xattrs(3)).toEqual(new Map([['security.capability', Buffer.from('0100000200200000', 'hex')]]));
    expect(idx.config).toEqual({ cmd: ['/bin/ls'], env: ['PATH=/bin'] });
  });

  it('exports its chunk table as casync hello.caibx, byte for byte', () => {
    const idx = BootfsIndex.decode(Buffer.from(TINY_HEX, 'hex'), 'tiny');
    expect(encodeCaibx(idx.toBlobIndex()).equals(HELLO_CAIBX)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
/**
 * Everything hard at once: hardlinks across directories (also of empty files), xattrs (empty and
 * 64 KiB values), fifos, sockets, devices, setuid/setgid/sticky, empty files, 200-deep directories,
 * 255-byte and non-UTF-8 names, dangling/absolute/4095-byte symlinks, extreme uids and mtimes.
 * `reverse` inserts every map in the opposite order (the bytes must not change).
 */
function hardTree(reverse = false): FsNode {
  const put = (dir: FsNode, entries: [ByteString, FsNode][]): FsNode => {
    for (const [k, v] of reverse ? [...entries].reverse() : entries) dir.children!.set(k, v);
    return dir;
  };
  const xattrs = (pairs: [ByteString, Buffer][]): Map<ByteString, Buffer> => new Map(reverse ? [...pairs].reverse() : pairs);
  const shared = node('file', { size: 1234, mode: 0o4755, xattrs: xattrs([['security.capability', Buffer.from([1, 0, 0, 2])], ['user.empty', Buffer.alloc(0)]]) });
  const emptyShared = node('file', { size: 0, mode: 0o2755, uid: 2 ** 32 - 1 });
  let deep = node('dir', { mode: 0o700 });
  put(deep, [['bottom', node('file', { size: 77 })]]);
  for (let i = 0; i < 199; i++) deep = put(node('dir'), [['d', deep]]);
  const big = Buffer.alloc(65536, 0xab);
  return put(newDir(0o755, 0, 0, -(2n ** 63n)), [
    ['a', put(node('dir'), [['x', shared], ['empty', emptyShared], ['\xff\xfe', node('file', { size: 3 })]])],
    ['b', put(node('dir', { mode: 0o2775, gid: 50 }), [['y', shared], ['caf\xe9', node('fifo', { mode: 0o600 })], ['empty2', emptyShared]])],
    ['z', shared],
    ['d', deep],
    ['n'.repeat(255), node('file', { size: 255 })],
    ['\xff'.repeat(255), node('file', { size: 0, mtimeNs: 2n ** 63n - 1n })],
    ['tmp', node('dir', { mode: 0o1777 })],
    ['dev', put(node('dir'), [
      ['null', node('char', { mode: 0o666, devMajor: 1, devMinor: 3 })],
      ['sda', node('block', { mode: 0o660, devMajor: 8, devMinor: 0 })],
      ['big', node('char', { devMajor: 4095, devMinor: 1048575 })],
      ['log', node('socket', { mode: 0o666 })],
    ])],
    ['links', put(node('dir'), [
      ['dangling', node('symlink', { mode: 0o777, target: 'no/such/file' })],
      ['absolute', node('symlink', { mode: 0o777, target: '/etc/passwd' })],
      ['long', node('symlink', { mode: 0o777, target: 'x/'.repeat(2047) + 'y' })],
      ['latin1', node('symlink', { mode: 0o777, target: '\xe9t\xe9' })],
      ['self', node('symlink', { mode: 0o777, target: 'self' })],
    ])],
    ['xattrs', node('file', { size: 10, xattrs: xattrs([['user.big', big], ['trusted.overlay.opaque', Buffer.from('y')], ['user.\xff', Buffer.from([0])]]) })],
    ['B', node('file', { size: 1 })], // 'B' < 'a' < '\xff' in byte order
  ]);
}

/** A comparable description of a tree: per name its metadata and hardlink identity (the first path of its node). */
function describeTree(root: FsNode): unknown[] {
  const first = new Map<FsNode, ByteString>();
  const out: unknown[] = [];
  for (const { path, node: n, depth } of walkSorted(root)) {
    if (!first.has(n)) first.set(n, path);
    out.push({
      path, depth, same: first.get(n), kind: n.kind, mode: n.mode, uid: n.uid, gid: n.gid, mtime: n.mtimeNs, size: n.size,
      target: n.target, dev: n.kind === 'char' || n.kind === 'block' ? [n.devMajor, n.devMinor] : undefined,
      xattrs: [...n.xattrs].map(([k, v]) => [k, Buffer.from(v).toString('hex')]).sort(),
    });
  }
  return out;
}

describe('round trip of a hard tree', () => {
  const root = hardTree();
  const input = inputFor(root);
  const bytes = encodeBootfsIndex(input);
  const idx = BootfsIndex.decode(bytes, 'hard');

  it('toTree() describes the same tree', () => {
    expect(describeTree(idx.toTree())).toEqual(describeTree(root));
    expect(idx.dataSize).toBe(input.table.totalSize);
  });

  it('walks names in sorted depth-first order, with inos by first appearance', () => {
    const fromWalk = [...walkSorted(root)].map((w) => w.path);
    expect([...idx.walk()].map((w) => w.path)).toEqual(fromWalk);
    let next = 1;
    for (const { ino } of idx.walk()) {
      expect(ino).toBeLessThanOrEqual(next);
      if (ino === next) next++;
    }
    expect(next).toBe(idx.inodeCount + 1);
    expect(idx.entryCount).toBe(fromWalk.length - 1);
  });

  it('gives every name of a hardlinked inode one ino, nlink and extent', () => {
    const inos = ['/a/x', '/b/y', '/z'].map((p) => idx.resolve(p));
    expect(new Set(inos).size).toBe(1);
    const ino = inos[0]!;
    expect(idx.stat(ino)).toMatchObject({ kind: 'file', nlink: 3, mode: 0o4755, size: 1234 });
    const empty = idx.resolve('a/empty')!;
    expect(idx.resolve('b/empty2')).toBe(empty);
    expect(idx.stat(empty)).toMatchObject({ nlink: 2, mode: 0o2755, uid: 2 ** 32 - 1, size: 0 });
    expect(idx.fileExtent(empty)).toEqual({ offset: 0, size: 0 });
  });

  it('lays out file data in dataOrder (the converter streams in that order)', () => {
    let offset = 0;
    const byNode = new Map<FsNode, number>();
    for (const f of dataOrder(root)) {
      byNode.set(f, offset);
      offset += f.size;
    }
    expect(offset).toBe(idx.dataSize);
    for (const { path, node: n } of walkSorted(root)) {
      if (n.kind !== 'file') continue;
      expect(idx.fileExtent(idx.resolve(path)!)).toEqual({ offset: n.size === 0 ? 0 : byNode.get(n), size: n.size });
    }
  });

  it('keeps modes, devices, odd names and targets', () => {
    expect(idx.stat(idx.resolve('/tmp')!).stMode).toBe(0o41777);
    expect(idx.stat(idx.resolve('/b')!)).toMatchObject({ mode: 0o2775, gid: 50 });
    expect(idx.stat(idx.resolve('/dev/big')!)).toMatchObject({ kind: 'char', devMajor: 4095, devMinor: 1048575 });
    expect(idx.stat(idx.resolve('/dev/sda')!)).toMatchObject({ kind: 'block', stMode: 0o60660, devMajor: 8, devMinor: 0 });
    expect(idx.kind(idx.resolve('/dev/log')!)).toBe('socket');
    expect(idx.kind(idx.resolve('/b/caf\xe9')!)).toBe('fifo');
    expect(idx.readlink(idx.resolve('/links/long')!).length).toBe(4095);
    expect(idx.readlink(idx.resolve('/links/latin1')!)).toBe('\xe9t\xe9');
    expect(idx.stat(idx.resolve('/links/dangling')!).size).toBe('no/such/file'.length);
    expect(idx.resolve('/' + 'd/'.repeat(200) + 'bottom')).toBeDefined();
    expect(idx.stat(idx.resolve('/' + '\xff'.repeat(255))!).mtimeNs).toBe(2n ** 63n - 1n);
    expect(idx.stat(1).mtimeNs).toBe(-(2n ** 63n));
    expect([...idx.readdir(1)].map((e) => e.name).slice(0, 4)).toEqual(['B', 'a', 'b', 'd']);
    const x = idx.resolve('/xattrs')!;
    expect(idx.listXattrs(x)).toEqual(['trusted.overlay.opaque', 'user.big', 'user.\xff']);
    expect(idx.getXattr(x, 'user.big')!.equals(Buffer.alloc(65536, 0xab))).toBe(true);
  });
});

describe('determinism', () => {
  it('gives identical bytes for trees built in different insertion orders', () => {
    const a = encodeBootfsIndex(inputFor(hardTree(false), { cmd: ['x'], env: ['A=1'], labels: { z: '1', a: '2' } }));
    const b = encodeBootfsIndex(inputFor(hardTree(true), { labels: { a: '2', z: '1' }, env: ['A=1'], cmd: ['x'] }));
    expect(a.equals(b)).toBe(true);
  });

  it('gives identical bytes when encoding twice, and when re-encoding the decoded tree', () => {
    const input = inputFor(hardTree());
    const a = encodeBootfsIndex(input);
    expect(encodeBootfsIndex(input).equals(a)).toBe(true);
    const idx = BootfsIndex.decode(a, 'a');
    expect(encodeBootfsIndex({ root: idx.toTree(), sizes: idx.sizes, table: idx.table, config: idx.config }).equals(a)).toBe(true);
  });

  it('records the chunk digest: id 1 SHA-512/256 (the default), id 2 SHA-256, each with its caibx flags', () => {
    const plain = BootfsIndex.decode(encodeBootfsIndex(inputFor(hardTree())), 'a');
    expect(plain.digest).toBe('sha512-256');
    expect(plain.toBlobIndex().flags).toBe(0xb000000000000000n);
    const bytes = encodeBootfsIndex({ ...inputFor(hardTree()), digest: 'sha256' });
    expect(bytes.readUInt32LE(HEADER.digest)).toBe(2);
    const idx = BootfsIndex.decode(bytes, 'b');
    expect(idx.digest).toBe('sha256');
    expect(idx.toBlobIndex().flags).toBe(0x9000000000000000n);
    expect(encodeBootfsIndex({ root: idx.toTree(), sizes: idx.sizes, digest: idx.digest, table: idx.table, config: idx.config }).equals(bytes)).toBe(true);
  });

  it('canonicalJson sorts keys at every level and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } })).toBe('{"a":{"d":[1,{"x":1,"y":2}]},"b":1}');
  });
});

// ---------------------------------------------------------------------------------------------
describe('reader API', () => {
  const idx = BootfsIndex.decode(encodeBootfsIndex(tinyInput()), 'tiny');

  it('looks names up by binary search, undefined when absent', () => {
    expect(idx.lookup(1, 'bin')).toBe(2);
    expect(idx.lookup(2, 'ls')).toBe(3);
    expect(idx.lookup(1, 'bim')).toBeUndefined();
    expect(idx.lookup(1, 'binx')).toBeUndefined();
    expect(idx.lookup(1, '')).toBeUndefined();
    expect(idx.lookup(1, 'b\u0169n')).toBeUndefined(); // not a byte string: never truncated into 'bin'
    expect(idx.lookup(3, 'x')).toBeUndefined(); // not a directory
  });

  it('resolves paths without following symlinks', () => {
    expect(idx.resolve('/')).toBe(1);
    expect(idx.resolve('')).toBe(1);
    expect(idx.resolve('/bin/ls')).toBe(3);
    expect(idx.resolve('bin//ll/')).toBe(3);
    expect(idx.resolve('/bin/./../lnk')).toBe(6);
    expect(idx.resolve('/../..')).toBe(1);
    expect(idx.resolve('/lnk/x')).toBeUndefined();
    expect(idx.resolve('/bin/ls/..')).toBeUndefined();
    expect(idx.resolve('/nope')).toBeUndefined();
  });

  it('reads directories as sorted slices, also by position', () => {
    expect([...idx.readdir(1)]).toEqual([{ name: 'bin', ino: 2 }, { name: 'dev', ino: 4 }, { name: 'lnk', ino: 6 }]);
    expect(idx.childCount(2)).toBe(2);
    expect(idx.childAt(2, 1)).toEqual({ name: 'ls', ino: 3 });
    expect(() => idx.childAt(2, 2)).toThrow(RangeError);
  });

  it('throws RangeError for a missing ino or the wrong kind, eagerly', () => {
    for (const bad of [0, 7, -1, 1.5, NaN]) expect(() => idx.stat(bad)).toThrow(RangeError);
    expect(() => idx.readdir(3)).toThrow(/readdir: inode 3 is a file, not a dir/);
    expect(() => idx.readlink(2)).toThrow(RangeError);
    expect(() => idx.fileExtent(6)).toThrow(RangeError);
  });

  it('returns xattr values as copies', () => {
    idx.xattrs(3).get('security.capability')!.fill(0);
    idx.getXattr(3, 'security.capability')!.fill(0);
    expect(idx.getXattr(3, 'security.capability')!.toString('hex')).toBe('0100000200200000');
    expect(idx.getXattr(3, 'user.none')).toBeUndefined();
    expect(idx.xattrs(1).size).toBe(0);
  });

  it('decodes from an unaligned view', () => {
    const bytes = encodeBootfsIndex(tinyInput());
    const shifted = Buffer.alloc(bytes.length + 1);
    bytes.copy(shifted, 1);
    const view = shifted.subarray(1);
    expect([...BootfsIndex.decode(view, 'odd').walk()]).toEqual([...idx.walk()]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('builder refuses what the reader would refuse (RangeError)', () => {
  const cases: [string, () => IndexBuildInput, RegExp][] = [
    ['a table that does not cover the data', () => ({ ...inputFor(tinyTree()), table: tableFor(5) }), /covers 5 bytes but the tree's files \(dataOrder\) hold 6/],
    ['a chunk above max', () => ({ ...inputFor(tinyTree()), sizes: { min: 1, avg: 2, max: 4 } }), /chunks be at most max/],
    ['bad chunk sizes', () => ({ ...inputFor(tinyTree()), sizes: { min: 8, avg: 4, max: 2048 } }), /chunk sizes 8:4:2048/],
    ['a root that is not a dir', () => inputFor(node('file')), /root is a file/],
    ["a name with '/'", () => inputFor(put1('a/b', node('file'))), /contains '\/'/],
    ["the name '..'", () => inputFor(put1('..', node('file'))), /is '\.', '\.\.'/],
    ['an empty name', () => inputFor(put1('', node('file'))), /is 0 bytes long/],
    ['a 256-byte name', () => inputFor(put1('x'.repeat(256), node('file'))), /is 256 bytes long/],
    ['a name that is not a byte string', () => inputFor(put1('\u0100', node('file'))), /not a byte string/],
    ['mode above 0o7777', () => inputFor(put1('f', node('file', { mode: 0o10000 }))), /'\/f' has mode 4096/],
    ['a negative uid', () => inputFor(put1('f', node('file', { uid: -1 }))), /uid\/gid/],
    ['a dir with a size', () => inputFor(put1('d', node('dir', { size: 1 }))), /has size 1/],
    ['a symlink without target', () => inputFor(put1('l', node('symlink'))), /without a byte-string target/],
    ['a symlink target with NUL', () => inputFor(put1('l', node('symlink', { target: 'a\0b' }))), /NUL/],
    ['an xattr value above 64 KiB', () => inputFor(put1('f', node('file', { xattrs: new Map([['user.x', Buffer.alloc(65537)]]) }))), /user\.x/],
    ['a config with a bigint', () => inputFor(tinyTree(), { labels: { a: 1n } } as unknown as ImageConfig), /bigint/],
  ];
  function put1(name: ByteString, child: FsNode): FsNode {
    const root = newDir();
    root.children!.set(name, child);
    return root;
  }
  for (const [what, make, why] of cases) {
    it(`refuses ${what}`, () => {
      const input = make();
      expect(() => encodeBootfsIndex(input)).toThrow(RangeError);
      expect(() => encodeBootfsIndex(input)).toThrow(why);
    });
  }

  it('refuses hardlinked directories and cycles', () => {
    const root = newDir();
    const d = newDir();
    root.children!.set('a', d);
    root.children!.set('b', d);
    expect(() => encodeBootfsIndex(inputFor(root))).toThrow(/directory 'b' is reached twice/);
    const loop = newDir();
    loop.children!.set('self', loop);
    expect(() => encodeBootfsIndex(inputFor(loop))).toThrow(/reached twice/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('decoder refuses invalid indexes with a clear IndexFormatError', () => {
  const tiny = encodeBootfsIndex(tinyInput());
  const inodeRec = (ino: number): number => sectionOffset(tiny, 'inodes') + (ino - 1) * INODE_SIZE;
  const entryRec = (e: number): number => sectionOffset(tiny, 'entries') + e * 12;

  it('not an index, empty, truncated, damaged', () => {
    expect(reasonOf(Buffer.from('{"not": "an index"}'))).toBe('not a bootfs index (bad magic)');
    expect(reasonOf(Buffer.alloc(0))).toBe('not a bootfs index (bad magic)');
    expect(reasonOf(tiny.subarray(0, 100))).toMatch(/shorter than the 208-byte header \(truncated\)/);
    expect(reasonOf(tiny.subarray(0, tiny.length - 1))).toMatch(/^checksum mismatch .*damaged or was modified/);
    const flipped = Buffer.from(tiny);
    flipped[600]! ^= 1;
    expect(reasonOf(flipped)).toMatch(/^checksum mismatch/);
  });

  it('names the file', () => {
    expect(() => BootfsIndex.decode(Buffer.alloc(3), '/var/lib/x.bfsidx')).toThrow('index /var/lib/x.bfsidx is invalid: not a bootfs index');
  });

  it('refuses an unknown major version before anything else', () => {
    const v2 = Buffer.from(tiny);
    v2.writeUInt16LE(2, HEADER.major);
    expect(reasonOf(v2)).toBe('format version 2.0 is not supported: this bootfs reads 1.x indexes (use a bootfs release that reads 2.x)');
  });

  it('accepts a newer minor with a longer header and an appended section', () => {
    // What a 1.1 writer might produce: 8 more header bytes, every section 8 bytes later, 16 bytes appended.
    const extra = 8;
    const body = tiny.subarray(HEADER_SIZE);
    const v11 = Buffer.concat([tiny.subarray(0, HEADER_SIZE), Buffer.alloc(extra, 0x5a), body, Buffer.alloc(16, 0xee)]);
    v11.writeUInt16LE(1, HEADER.minor);
    v11.writeUInt32LE(HEADER_SIZE + extra, HEADER.headerSize);
    SECTION_ORDER.forEach((_, k) => v11.writeBigUInt64LE(v11.readBigUInt64LE(HEADER.sections + 16 * k) + BigInt(extra), HEADER.sections + 16 * k));
    indexChecksum(v11).copy(v11, HEADER.checksum);
    const idx = BootfsIndex.decode(v11, 'v11');
    expect(idx.version).toEqual({ major: 1, minor: 1 });
    expect(idx.resolve('/bin/ls')).toBe(3);
    // The same bytes claiming 1.0 are refused: 1.0 has a fixed header and nothing after the config.
    expect(reasonAfter(v11, (b) => void b.writeUInt16LE(0, HEADER.minor))).toBe('header size 216 is invalid for version 1.0');
    expect(reasonAfter(tiny, (b) => Buffer.concat([b, Buffer.alloc(3)]))).toBe('3 trailing bytes after the config section');
  });

  const cases: [string, (b: Buffer) => Buffer | void, RegExp | string][] = [
    ['unknown required features', (b) => void b.writeUInt32LE(4, HEADER.flags), 'required-feature flags 0x4 are unknown to this bootfs (use a newer release)'],
    ['another chunker', (b) => void b.writeUInt32LE(2, HEADER.chunker), /unknown chunker algorithm id 2/],
    ['another digest', (b) => void b.writeUInt32LE(3, HEADER.digest), 'unknown digest algorithm id 3 (this bootfs knows 1 = SHA-512/256, 2 = SHA-256)'],
    ['min > avg', (b) => void b.writeUInt32LE(70000, HEADER.chunkMin), /chunk sizes 70000:65536:262144/],
    ['a section out of place', (b) => void b.writeBigUInt64LE(552n, HEADER.sections + 16), /entries section starts at 552, expected 544/],
    ['a count that disagrees with its section', (b) => void b.writeUInt32LE(7, HEADER.entryCount), /entries section is 72 bytes, expected 7 × 12/],
    ['a data size the chunks do not cover', (b) => void b.writeBigUInt64LE(7n, HEADER.dataSize), /chunk table covers 6 bytes but the data stream is 7 bytes/],
    ['a child range pointing back at an ancestor', (b) => void b.writeBigUInt64LE(0n, inodeRec(2) + 32), /directory inode 2 has children from entry 0, expected 3/],
    ['a directory containing itself', (b) => void b.writeUInt32LE(2, entryRec(3) + 8), /directory inode 2 has 2 names/],
    ['a child range past the entries', (b) => void b.writeBigUInt64LE(9n, inodeRec(4) + 40), /directory inode 4 has children 5\+9 outside the 6 entries/],
    ['unsorted children', (b) => swapEntries(b, 0, 1), /entries 0 and 1 of directory inode 1 are not in strictly increasing name order/],
    ['a root with a name', (b) => void b.writeUInt32LE(1, entryRec(5) + 8), /entry 5 points at inode 1, outside 2…6/],
    ['a wrong nlink', (b) => void b.writeUInt32LE(1, inodeRec(3) + 4), 'inode 3 has nlink 1 but 2 names'],
    ['a wrong directory nlink', (b) => void b.writeUInt32LE(2, inodeRec(1) + 4), /directory inode 1 has nlink 2, expected 4/],
    ['an unreachable inode', (b) => void b.writeUInt32LE(6, entryRec(5) + 8), 'inode 5 has no name (unreachable)'],
    ['a file extent outside the data stream', (b) => void b.writeBigUInt64LE(7n, inodeRec(3) + 24), /inode 3 has data extent 0\+7/],
    ['a size on a directory', (b) => void b.writeBigUInt64LE(1n, inodeRec(2) + 24), /inode 2 is a dir with size 1/],
    ['an unknown file type', (b) => void b.writeUInt32LE(0o030644, inodeRec(3)), /inode 3 has an invalid st_mode 0o30644/],
    ['a root that is a file', (b) => void b.writeUInt32LE(0o100644, inodeRec(1)), /the root \(inode 1\) is a file/],
    ["a '/' in a name", (b) => void (b[sectionOffset(b, 'names')] = 0x2f), /names section holds a '\/' at offset 0/],
    ['an empty name', (b) => void b.writeUInt32LE(0, entryRec(0) + 4), /entry 0 has a 0-byte name/],
    ['a name outside the names', (b) => void b.writeUInt32LE(1000, entryRec(0)), /name of entry 0 \(3 bytes at 1000\) lies outside the 17-byte names section/],
    ['a symlink target outside the strings', (b) => void b.writeBigUInt64LE(100n, inodeRec(6) + 40), /symlink target of inode 6 \(100 bytes at 27\) lies outside/],
    ['a NUL in a symlink target', (b) => void (b[sectionOffset(b, 'strings') + 27] = 0), /symlink target of inode 6 contains NUL/],
    ['an xattr run that does not tile', (b) => void b.writeUInt32LE(0, inodeRec(3) + 52), 'inode 4 has xattrs 1+0, expected them to start at 0 within 1 records'],
    ['an xattr record owned by no inode', (b) => dropXattrOfInode3(b), '1 xattr records belong to no inode'],
    ['an xattr value above 64 KiB', (b) => void b.writeUInt32LE(65537, sectionOffset(b, 'xattrs') + 12), /65537-byte value/],
    ['device numbers in a fifo', (b) => void b.writeUInt32LE(0o10666, inodeRec(5)), /inode 5 \(fifo\) has non-zero reserved fields/],
    ['config that is not JSON', (b) => void (b[sectionOffset(b, 'config')] = 0x5b), /config is not UTF-8 JSON/],
    ['config of the wrong shape', (b) => replaceConfig(b, '{"cmd":"/bin/ls"}'), 'config field cmd is not an array of strings'],
    ['config that is not UTF-8', (b) => replaceConfig(b, '{"user":"\xff"}', 'latin1'), /config is not UTF-8 JSON/],
    ['non-zero padding', (b) => void (b[sectionOffset(b, 'names') + 20] = 1), 'padding byte at offset 692 is not zero'],
  ];
  function dropXattrOfInode3(b: Buffer): void {
    b.writeUInt32LE(0, inodeRec(3) + 52);
    for (const ino of [4, 5, 6]) b.writeUInt32LE(0, inodeRec(ino) + 48);
  }
  function swapEntries(b: Buffer, e: number, f: number): void {
    const a = Buffer.from(b.subarray(entryRec(e), entryRec(e) + 12));
    b.copy(b, entryRec(e), entryRec(f), entryRec(f) + 12);
    a.copy(b, entryRec(f));
  }
  function replaceConfig(b: Buffer, json: string, enc: BufferEncoding = 'utf8'): Buffer {
    const off = sectionOffset(b, 'config');
    const out = Buffer.concat([b.subarray(0, off), Buffer.from(json, enc)]);
    out.writeBigUInt64LE(BigInt(out.length - off), HEADER.sections + 16 * SECTION_ORDER.indexOf('config') + 8);
    return out;
  }
  for (const [what, edit, why] of cases) {
    it(`refuses ${what}`, () => {
      const reason = reasonAfter(tiny, edit);
      if (typeof why === 'string') expect(reason).toBe(why);
      else expect(reason).toMatch(why);
    });
  }

  it('refuses inode numbers that do not follow the sorted depth-first walk', () => {
    // /a and /b, two files of 1 byte: inodes 2 and 3. Swapping their inos keeps extents, nlink and
    // tiling valid; only the numbering rule catches it.
    const root = newDir();
    root.children!.set('a', node('file', { size: 1 }));
    root.children!.set('b', node('file', { size: 1 }));
    const bytes = encodeBootfsIndex(inputFor(root));
    const entries = sectionOffset(bytes, 'entries');
    const reason = reasonAfter(bytes, (b) => {
      b.writeUInt32LE(3, entries + 8);
      b.writeUInt32LE(2, entries + 12 + 8);
    });
    expect(reason).toBe('entry 0 has inode 3 where 2 is next: inodes must be numbered in sorted depth-first order');
  });

  it("refuses an entry named '.' or '..'", () => {
    const root = newDir();
    root.children!.set('..x', node('file'));
    const bytes = encodeBootfsIndex(inputFor(root));
    const entries = sectionOffset(bytes, 'entries');
    expect(reasonAfter(bytes, (b) => void b.writeUInt32LE(2, entries + 4))).toBe("entry 0 is named '.' or '..'");
    expect(reasonAfter(bytes, (b) => void b.writeUInt32LE(1, entries + 4))).toBe("entry 0 is named '.' or '..'");
  });

  it('refuses unsorted xattrs', () => {
    const root = newDir();
    root.children!.set('f', node('file', { xattrs: new Map([['user.a', Buffer.from('1')], ['user.b', Buffer.from('2')]]) }));
    const bytes = encodeBootfsIndex(inputFor(root));
    const x = sectionOffset(bytes, 'xattrs');
    const reason = reasonAfter(bytes, (b) => {
      const first = Buffer.from(b.subarray(x, x + 16));
      b.copy(b, x, x + 16, x + 32);
      first.copy(b, x + 16);
    });
    expect(reason).toBe('xattrs of inode 2 are not in strictly increasing name order at record 1');
  });
});

// ---------------------------------------------------------------------------------------------
describe('files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bootfs-index-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes atomically and reads back', async () => {
    const path = join(dir, 'image.bfsidx');
    await writeBootfsIndexFile(path, tinyInput());
    expect(await readdir(dir)).toEqual(['image.bfsidx']); // no temp file left behind
    const idx = await BootfsIndex.readFile(path);
    expect(idx.checksum).toBe(Buffer.from(TINY_HEX, 'hex').subarray(HEADER.checksum, HEADER.checksum + 32).toString('hex'));
    expect(idx.byteLength).toBe(TINY_HEX.length / 2);
  });

  it('reports a missing file as NotFoundError and other failures as IoError', async () => {
    await expect(BootfsIndex.readFile(join(dir, 'missing.bfsidx'))).rejects.toThrow(NotFoundError);
    await expect(BootfsIndex.readFile(join(dir, 'missing.bfsidx'))).rejects.toThrow(/index .*missing\.bfsidx not found/);
    await mkdir(join(dir, 'a-dir'));
    await expect(BootfsIndex.readFile(join(dir, 'a-dir'))).rejects.toThrow(IoError);
    await expect(writeBootfsIndexFile(join(dir, 'no', 'such', 'x'), tinyInput())).rejects.toThrow(IoError);
  });

  it('reports a damaged file as IndexFormatError naming its path', async () => {
    const path = join(dir, 'bad.bfsidx');
    await writeFile(path, 'garbage');
    await expect(BootfsIndex.readFile(path)).rejects.toThrow(`index ${path} is invalid: not a bootfs index (bad magic)`);
  });
});
