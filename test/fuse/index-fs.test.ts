/**
 * src/fuse/index-fs.ts: the FUSE questions answered from a real (in-memory) bootfs index and a
 * DataReader over a fake chunk source — no kernel needed. The tree has every kind the index holds,
 * a hardlink pair, xattrs, negative times and names that are not UTF-8; file contents cross chunk
 * boundaries and lie next to each other in the data stream, so a read that leaks past its file shows.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { chunkId, idToHex } from '../../src/chunk.js';
import { Errno, FuseErrno, encodeDev, packDirents, type Attr, type Dirent } from '../../src/fuse/protocol.js';
import { IndexFs } from '../../src/fuse/index-fs.js';
import { encodeBootfsIndex } from '../../src/index/bootfs-builder.js';
import { BootfsIndex } from '../../src/index/bootfs-reader.js';
import { ChunkTable } from '../../src/index/chunk-table.js';
import { DataReader } from '../../src/mount/data-reader.js';
import { fromByteString, newDir, utf8ToByteString, type FsNode, type NodeKind } from '../../src/tree/types.js';
import { dataOrder, sortedNames } from '../../src/tree/walk.js';
import { lcgBytes } from '../helpers/bytes.js';

const T = 1_700_000_000_123_456_789n;
const CHUNK = 256;
const S_IFMT = 0o170000;
const IFMT = { file: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000, socket: 0o140000 };

function node(kind: NodeKind, extra: Partial<FsNode> = {}): FsNode {
  const n: FsNode = { kind, mode: 0o644, uid: 0, gid: 0, mtimeNs: T, xattrs: new Map(), size: 0, ...extra };
  if (kind === 'dir' && n.children === undefined) n.children = new Map();
  return n;
}

/** Deterministic bytes, different per seed. */
function bytes(n: number, seed: number): Buffer {
  return lcgBytes(n, seed * 2654435761 + 1);
}

const NON_UTF8 = '\xff\xfe-raw'; // a ByteString: bytes ff fe 2d 72 61 77
const CAFE = utf8ToByteString('café');
const CAP = Buffer.from('0100000200200000', 'hex');

/**
 * /                    0755, xattr user.root
 *   bin/               0755
 *     big              0644, 700 bytes (chunks 0–2)
 *     ll, ls           one file, 0755, 300 bytes, security.capability, two names
 *   café               0600, 50 bytes (UTF-8 name)
 *   dev/
 *     null             char 1:3
 *     nvme0n1p1        block 259:65536
 *   empty              0644, 0 bytes
 *   etc/               0700, uid 1000, xattrs user.a, user.\xff (non-UTF-8 name)
 *   fifo               fifo 0620
 *   lnk                symlink → bin/ls, mtime −1.500000001 s, uid 1000 gid 100
 *   rawlink            symlink → \xff/x (non-UTF-8 target)
 *   \xff\xfe-raw       file 0644, 10 bytes (non-UTF-8 name)
 */
function fixtureTree(): { root: FsNode; content: Map<FsNode, Buffer> } {
  const content = new Map<FsNode, Buffer>();
  const file = (size: number, seed: number, extra: Partial<FsNode> = {}): FsNode => {
    const n = node('file', { size, ...extra });
    content.set(n, bytes(size, seed));
    return n;
  };
  const root = newDir(0o755, 0, 0, T);
  root.xattrs.set('user.root', Buffer.from('r'));
  const bin = newDir(0o755, 0, 0, T);
  const ls = file(300, 2, { mode: 0o755, xattrs: new Map([['security.capability', CAP]]) });
  bin.children!.set('big', file(700, 1));
  bin.children!.set('ls', ls);
  bin.children!.set('ll', ls);
  const dev = newDir(0o755, 0, 0, T);
  dev.children!.set('null', node('char', { mode: 0o666, devMajor: 1, devMinor: 3 }));
  dev.children!.set('nvme0n1p1', node('block', { mode: 0o660, gid: 6, devMajor: 259, devMinor: 65536 }));
  const etc = newDir(0o700, 1000, 1000, T);
  etc.xattrs.set('user.a', Buffer.from('alpha'));
  etc.xattrs.set('user.\xff', Buffer.from([0, 1, 2]));
  root.children!.set('bin', bin);
  root.children!.set(CAFE, file(50, 3, { mode: 0o600 }));
  root.children!.set('dev', dev);
  root.children!.set('empty', file(0, 4));
  root.children!.set('etc', etc);
  root.children!.set('fifo', node('fifo', { mode: 0o620 }));
  root.children!.set('lnk', node('symlink', { mode: 0o777, uid: 1000, gid: 100, mtimeNs: -1_500_000_001n, target: 'bin/ls' }));
  root.children!.set('rawlink', node('symlink', { mode: 0o777, target: '\xff/x' }));
  root.children!.set(NON_UTF8, file(10, 5));
  return { root, content };
}

/** A chunk source over a map of plain chunks, counting calls. */
function fakeSource(chunks: Map<string, Buffer>) {
  const calls: string[] = [];
  const source = async (id: Uint8Array, size: number): Promise<Buffer> => {
    const hex = idToHex(id);
    calls.push(hex);
    const plain = chunks.get(hex);
    if (!plain || plain.length !== size) throw new Error(`fake source: no chunk ${hex} of ${size} bytes`);
    return plain;
  };
  return { source, calls };
}

let index: BootfsIndex;
let stream: Buffer;
let chunks: Map<string, Buffer>;
let content: Map<FsNode, Buffer>;
let root: FsNode;

beforeAll(() => {
  ({ root, content } = fixtureTree());
  stream = Buffer.concat(dataOrder(root).map((n) => content.get(n)!));
  chunks = new Map();
  const list: { size: number; id: Buffer }[] = [];
  for (let off = 0; off < stream.length; off += CHUNK) {
    const plain = stream.subarray(off, Math.min(off + CHUNK, stream.length));
    const id = chunkId(plain);
    chunks.set(idToHex(id), plain);
    list.push({ size: plain.length, id });
  }
  const bytesOut = encodeBootfsIndex({ root, sizes: { min: 64, avg: 128, max: CHUNK }, table: ChunkTable.fromChunks(list), config: {} });
  index = BootfsIndex.decode(bytesOut, 'fixture');
});

function setup(opts: { readaheadChunks?: number } = {}) {
  const src = fakeSource(chunks);
  const reader = new DataReader(index.table, src.source, { readaheadChunks: opts.readaheadChunks ?? 0 });
  return { fs: new IndexFs(index, reader), reader, calls: src.calls };
}

const ino = (path: string): number => {
  const i = index.resolve(path);
  if (i === undefined) throw new Error(`fixture has no ${path}`);
  return i;
};

/** The errno a call fails with (sync throw or rejection); fails the test if it succeeds or throws anything else. */
/** fs.read's answer as one buffer (it may come as parts to be written back to back). */
async function readAll(fs: IndexFs, ino: number, offset: number, size: number): Promise<Buffer> {
  return Buffer.concat([await fs.read(ino, offset, size)].flat());
}

async function errnoOf(fn: () => unknown): Promise<number> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FuseErrno);
    return (err as FuseErrno).errno;
  }
  throw new Error('expected a FuseErrno');
}

describe('IndexFs fixture', () => {
  it('spreads the data stream over several chunks', () => {
    expect(index.table.count).toBe(Math.ceil(1060 / CHUNK));
    expect(stream.length).toBe(1060);
  });
});

describe('getattr', () => {
  it('describes the root: directory type bits, nlink 2 + subdirectories', () => {
    const { fs } = setup();
    expect(fs.getattr(1)).toEqual({ ino: 1, size: 0, mode: 0o040755, nlink: 5, uid: 0, gid: 0, rdev: 0, mtimeNs: T });
  });

  it('gives each kind its S_IFMT bits and permission bits', () => {
    const { fs } = setup();
    const want: [string, keyof typeof IFMT, number][] = [
      ['bin/big', 'file', 0o644], ['bin/ls', 'file', 0o755], ['dev/null', 'char', 0o666], ['dev/nvme0n1p1', 'block', 0o660],
      ['etc', 'dir', 0o700], ['fifo', 'fifo', 0o620], ['lnk', 'symlink', 0o777], [NON_UTF8, 'file', 0o644],
    ];
    for (const [path, kind, perm] of want) {
      const a = fs.getattr(ino(path));
      expect(a.mode & S_IFMT, path).toBe(IFMT[kind]);
      expect(a.mode & 0o7777, path).toBe(perm);
      expect(a.ino).toBe(ino(path));
    }
  });

  it('gives both names of a hardlink one inode with nlink 2', () => {
    const { fs } = setup();
    expect(ino('bin/ll')).toBe(ino('bin/ls'));
    const a = fs.getattr(ino('bin/ls'));
    expect(a).toMatchObject({ nlink: 2, size: 300, mode: 0o100755 });
    expect(fs.getattr(ino('bin/big')).nlink).toBe(1);
  });

  it('sizes: file content length, symlink target length, 0 for the rest', () => {
    const { fs } = setup();
    expect(fs.getattr(ino('bin/big')).size).toBe(700);
    expect(fs.getattr(ino('empty')).size).toBe(0);
    expect(fs.getattr(ino('lnk')).size).toBe('bin/ls'.length);
    expect(fs.getattr(ino('rawlink')).size).toBe(3);
    expect(fs.getattr(ino('dev/null')).size).toBe(0);
    expect(fs.getattr(ino('etc')).size).toBe(0);
  });

  it('encodes device numbers the kernel’s way and leaves rdev 0 for non-devices', () => {
    const { fs } = setup();
    expect(fs.getattr(ino('dev/null')).rdev).toBe(0x103);
    expect(fs.getattr(ino('dev/nvme0n1p1')).rdev).toBe(encodeDev(259, 65536));
    expect(fs.getattr(ino('dev/nvme0n1p1')).rdev).toBe(0x10010300);
    expect(fs.getattr(ino('fifo')).rdev).toBe(0);
    expect(fs.getattr(ino('bin/big')).rdev).toBe(0);
  });

  it('passes owner and nanosecond (also negative) mtimes through', () => {
    const { fs } = setup();
    expect(fs.getattr(ino('lnk'))).toMatchObject({ uid: 1000, gid: 100, mtimeNs: -1_500_000_001n });
    expect(fs.getattr(ino('etc'))).toMatchObject({ uid: 1000, gid: 1000, mtimeNs: T });
    expect(fs.getattr(ino('dev/nvme0n1p1')).gid).toBe(6);
  });

  it('refuses inode numbers outside 1…inodeCount with ENOENT', async () => {
    const { fs } = setup();
    for (const bad of [0, -1, index.inodeCount + 1, 2 ** 40, 1.5, Number.NaN]) {
      expect(await errnoOf(() => fs.getattr(bad)), String(bad)).toBe(Errno.ENOENT);
    }
    expect(fs.getattr(index.inodeCount).ino).toBe(index.inodeCount);
  });
});

describe('lookup', () => {
  it('finds names byte for byte: ASCII, UTF-8 and names that are not UTF-8', () => {
    const { fs } = setup();
    expect(fs.lookup(1, Buffer.from('bin'))!.ino).toBe(ino('bin'));
    expect(fs.lookup(1, Buffer.from('café', 'utf8'))!.ino).toBe(ino(CAFE));
    expect(fs.lookup(1, Buffer.from([0xff, 0xfe, 0x2d, 0x72, 0x61, 0x77]))!).toEqual(fs.getattr(ino(NON_UTF8)));
    expect(fs.lookup(ino('bin'), Buffer.from('ll'))!.ino).toBe(fs.lookup(ino('bin'), Buffer.from('ls'))!.ino);
  });

  it('returns the full attributes', () => {
    const { fs } = setup();
    expect(fs.lookup(ino('dev'), Buffer.from('null'))).toEqual(fs.getattr(ino('dev/null')));
  });

  it('answers undefined for a missing name (a negative entry, not an error)', () => {
    const { fs } = setup();
    expect(fs.lookup(1, Buffer.from('nope'))).toBeUndefined();
    expect(fs.lookup(1, Buffer.from('caf\xe9', 'latin1'))).toBeUndefined(); // café in Latin-1 is another name
    expect(fs.lookup(1, Buffer.from('BIN'))).toBeUndefined();
    expect(fs.lookup(1, Buffer.from('bin/big'))).toBeUndefined();
    expect(fs.lookup(1, Buffer.alloc(0))).toBeUndefined();
    expect(fs.lookup(1, Buffer.alloc(300, 0x61))).toBeUndefined();
  });

  it('refuses a lookup in a non-directory with ENOTDIR and in a missing inode with ENOENT', async () => {
    const { fs } = setup();
    for (const path of ['bin/big', 'lnk', 'dev/null', 'fifo']) {
      expect(await errnoOf(() => fs.lookup(ino(path), Buffer.from('x'))), path).toBe(Errno.ENOTDIR);
    }
    expect(await errnoOf(() => fs.lookup(index.inodeCount + 1, Buffer.from('x')))).toBe(Errno.ENOENT);
  });
});

describe('readlink', () => {
  it('returns the target bytes verbatim', () => {
    const { fs } = setup();
    expect(fs.readlink(ino('lnk'))).toEqual(Buffer.from('bin/ls'));
    expect(fs.readlink(ino('rawlink'))).toEqual(Buffer.from([0xff, 0x2f, 0x78]));
  });

  it('refuses anything but a symlink with EINVAL, a missing inode with ENOENT', async () => {
    const { fs } = setup();
    for (const path of ['bin/big', 'etc', 'dev/null', 'fifo']) expect(await errnoOf(() => fs.readlink(ino(path))), path).toBe(Errno.EINVAL);
    expect(await errnoOf(() => fs.readlink(0))).toBe(Errno.ENOENT);
  });
});

describe('open', () => {
  it('opens regular files', () => {
    const { fs } = setup();
    expect(() => fs.open(ino('bin/big'))).not.toThrow();
    expect(() => fs.open(ino('empty'))).not.toThrow();
  });

  it('refuses directories with EISDIR, other kinds with EINVAL, missing inodes with ENOENT', async () => {
    const { fs } = setup();
    expect(await errnoOf(() => fs.open(1))).toBe(Errno.EISDIR);
    expect(await errnoOf(() => fs.open(ino('etc')))).toBe(Errno.EISDIR);
    for (const path of ['dev/null', 'dev/nvme0n1p1', 'fifo', 'lnk']) expect(await errnoOf(() => fs.open(ino(path))), path).toBe(Errno.EINVAL);
    expect(await errnoOf(() => fs.open(index.inodeCount + 1))).toBe(Errno.ENOENT);
  });
});

describe('read', () => {
  const contentOf = (path: string): Buffer => {
    let n: FsNode = root;
    for (const part of path.split('/')) n = n.children!.get(part)!;
    return content.get(n)!;
  };

  it('reads whole files, each exactly its own bytes (no leak into the neighbours)', async () => {
    const { fs } = setup();
    for (const path of ['bin/big', 'bin/ls', 'bin/ll', CAFE, NON_UTF8]) {
      const got = await readAll(fs, ino(path), 0, 1 << 20);
      expect(got, path).toEqual(contentOf(path));
    }
  });

  it('reads across chunk boundaries', async () => {
    const { fs } = setup();
    const big = contentOf('bin/big');
    // bin/big is data bytes 0…700: 250…270 crosses chunk 0/1, 200…600 spans chunks 0–2.
    expect(await readAll(fs, ino('bin/big'), 250, 20)).toEqual(big.subarray(250, 270));
    expect(await readAll(fs, ino('bin/big'), 200, 400)).toEqual(big.subarray(200, 600));
    // bin/ls is data bytes 700…1000, crossing the 768 boundary.
    const ls = contentOf('bin/ls');
    expect(await readAll(fs, ino('bin/ls'), 60, 20)).toEqual(ls.subarray(60, 80));
  });

  it('clips at end of file and returns nothing at or past it', async () => {
    const { fs, calls } = setup();
    const big = contentOf('bin/big');
    expect(await readAll(fs, ino('bin/big'), 690, 4096)).toEqual(big.subarray(690));
    const before = calls.length;
    expect((await readAll(fs, ino('bin/big'), 700, 4096)).length).toBe(0);
    expect((await readAll(fs, ino('bin/big'), 10_000, 4096)).length).toBe(0);
    expect((await readAll(fs, ino('bin/big'), 0, 0)).length).toBe(0);
    expect((await readAll(fs, ino('empty'), 0, 4096)).length).toBe(0);
    expect(calls.length).toBe(before); // none of these asks the source
  });

  it('refuses non-files with EINVAL and missing inodes with ENOENT', async () => {
    const { fs } = setup();
    for (const path of ['etc', 'lnk', 'dev/null', 'fifo']) expect(await errnoOf(() => fs.read(ino(path), 0, 10)), path).toBe(Errno.EINVAL);
    expect(await errnoOf(() => fs.read(index.inodeCount + 1, 0, 10))).toBe(Errno.ENOENT);
  });

  it('lets sequential reads of one file trigger readahead, and release ends the stream', async () => {
    const { fs, reader } = setup({ readaheadChunks: 4 });
    const big = ino('bin/big');
    await readAll(fs, big, 0, 100);
    await readAll(fs, big, 100, 100);
    expect(reader.counters.readaheads).toBeGreaterThan(0);
    const ahead = reader.counters.readaheads;
    fs.release(big);
    // After release this is a new reader, and offset 0 does not continue the data-stream walk
    // either: no readahead.
    await readAll(fs, big, 0, 100);
    expect(reader.counters.readaheads).toBe(ahead);
  });
});

describe('readdir', () => {
  const names = (entries: Iterable<Dirent>): string[] => [...entries].map((e) => e.name.toString('latin1'));
  const rootNames = (): string[] => ['.', '..', ...sortedNames(root)];

  it('lists ".", "..", then the children in byte order with resume offsets 1, 2, 3, …', () => {
    const { fs } = setup();
    const all = [...fs.readdir(1, 0, false)];
    expect(names(all)).toEqual(rootNames());
    expect(names(all)).toEqual(['.', '..', 'bin', CAFE, 'dev', 'empty', 'etc', 'fifo', 'lnk', 'rawlink', NON_UTF8]);
    expect(all.map((e) => e.next)).toEqual(all.map((_, i) => i + 1));
    expect(all[0]).toMatchObject({ ino: 1, mode: 0o040000 });
    expect(all[1]).toMatchObject({ mode: 0o040000 });
    expect(all.every((e) => e.attr === undefined)).toBe(true);
  });

  it('gives each child its inode and type', () => {
    const { fs } = setup();
    for (const e of [...fs.readdir(1, 2, false)]) {
      const path = e.name.toString('latin1');
      expect(e.ino, path).toBe(ino(path));
      expect(e.mode & S_IFMT, path).toBe(fs.getattr(ino(path)).mode & S_IFMT);
    }
    const bin = [...fs.readdir(ino('bin'), 2, false)];
    expect(bin.map((e) => [e.name.toString(), e.ino])).toEqual([['big', ino('bin/big')], ['ll', ino('bin/ls')], ['ls', ino('bin/ls')]]);
  });

  it('resumes from any offset, and from an entry’s `next` with the entries after it', () => {
    const { fs } = setup();
    const all = [...fs.readdir(1, 0, false)];
    for (let off = 0; off <= all.length + 2; off++) {
      expect(names(fs.readdir(1, off, false)), `offset ${off}`).toEqual(names(all.slice(off)));
    }
    for (const e of all) expect(names(fs.readdir(1, e.next, false))).toEqual(names(all.slice(e.next)));
    expect([...fs.readdir(1, 2 ** 40, false)]).toEqual([]);
  });

  it('lists an empty directory as "." and ".." only', () => {
    const { fs } = setup();
    const dev = ino('dev');
    expect(names(fs.readdir(dev, 0, false))).toEqual(['.', '..', 'null', 'nvme0n1p1']);
    // '.' is the directory itself, '..' its parent (the root's parent is the root).
    const [dot, dotdot] = [...fs.readdir(dev, 0, false)];
    expect([dot!.ino, dotdot!.ino]).toEqual([dev, 1]);
    expect([...fs.readdir(1, 0, false)].slice(0, 2).map((e) => e.ino)).toEqual([1, 1]);
    expect(names(fs.readdir(dev, 4, false))).toEqual([]);
  });

  it('with plus, carries each child’s attributes, but none for "." and ".."', () => {
    const { fs } = setup();
    const all = [...fs.readdir(1, 0, true)];
    expect(all[0]!.attr).toBeUndefined();
    expect(all[1]!.attr).toBeUndefined();
    for (const e of all.slice(2)) expect(e.attr, e.name.toString('latin1')).toEqual(fs.getattr(e.ino));
    expect([...fs.readdir(1, 5, true)].map((e) => (e.attr as Attr).ino)).toEqual(all.slice(5).map((e) => e.ino));
  });

  it('packs into a readdirplus reply whose dot entries have nodeid 0 and children their inode', () => {
    const { fs } = setup();
    const b = packDirents(fs.readdir(ino('bin'), 0, true), 4096, 1);
    const nodeids: bigint[] = [];
    for (let off = 0; off < b.length; ) {
      nodeids.push(b.readBigUInt64LE(off));
      const namelen = b.readUInt32LE(off + 128 + 16);
      off += (128 + 24 + namelen + 7) & ~7;
    }
    expect(nodeids).toEqual([0n, 0n, BigInt(ino('bin/big')), BigInt(ino('bin/ls')), BigInt(ino('bin/ls'))]);
  });

  it('refuses a non-directory with ENOTDIR and a missing inode with ENOENT (when iterated)', async () => {
    const { fs } = setup();
    expect(await errnoOf(() => [...fs.readdir(ino('bin/big'), 0, false)])).toBe(Errno.ENOTDIR);
    expect(await errnoOf(() => [...fs.readdir(ino('lnk'), 0, true)])).toBe(Errno.ENOTDIR);
    expect(await errnoOf(() => [...fs.readdir(index.inodeCount + 1, 0, false)])).toBe(Errno.ENOENT);
  });
});

describe('xattrs', () => {
  it('gets values byte for byte, also under names that are not UTF-8', () => {
    const { fs } = setup();
    expect(fs.getxattr(ino('bin/ls'), Buffer.from('security.capability'))).toEqual(CAP);
    expect(fs.getxattr(ino('bin/ll'), Buffer.from('security.capability'))).toEqual(CAP);
    expect(fs.getxattr(ino('etc'), Buffer.from('user.a'))).toEqual(Buffer.from('alpha'));
    expect(fs.getxattr(ino('etc'), Buffer.from([...Buffer.from('user.'), 0xff]))).toEqual(Buffer.from([0, 1, 2]));
    expect(fs.getxattr(1, Buffer.from('user.root'))).toEqual(Buffer.from('r'));
  });

  it('answers undefined for a missing xattr (ENODATA to the caller)', () => {
    const { fs } = setup();
    expect(fs.getxattr(ino('bin/big'), Buffer.from('security.capability'))).toBeUndefined();
    expect(fs.getxattr(ino('etc'), Buffer.from('user.b'))).toBeUndefined();
    expect(fs.getxattr(ino('etc'), Buffer.from('user.ÿ', 'utf8'))).toBeUndefined(); // UTF-8 ÿ is c3 bf, not ff
  });

  it('lists names in byte order as raw bytes', () => {
    const { fs } = setup();
    expect(fs.listxattr(ino('etc'))).toEqual([Buffer.from('user.a'), Buffer.from([...Buffer.from('user.'), 0xff])]);
    expect(fs.listxattr(ino('bin/ls'))).toEqual([Buffer.from('security.capability')]);
    expect(fs.listxattr(ino('fifo'))).toEqual([]);
  });

  it('refuses missing inodes with ENOENT', async () => {
    const { fs } = setup();
    expect(await errnoOf(() => fs.getxattr(index.inodeCount + 1, Buffer.from('user.a')))).toBe(Errno.ENOENT);
    expect(await errnoOf(() => fs.listxattr(0))).toBe(Errno.ENOENT);
  });
});

describe('statfs', () => {
  it('reports the data size in 4 KiB blocks and the inode count', () => {
    const { fs } = setup();
    expect(fs.statfs()).toEqual({ blocks: Math.ceil(1060 / 4096), files: index.inodeCount, bsize: 4096, namelen: 255 });
    expect(index.inodeCount).toBe(14);
  });
});

describe('non-UTF-8 round trip', () => {
  it('readdir names feed lookup back unchanged', () => {
    const { fs } = setup();
    for (const e of [...fs.readdir(1, 2, false)]) expect(fs.lookup(1, e.name)!.ino).toBe(e.ino);
    expect([...fs.readdir(1, 0, false)].some((e) => e.name.equals(fromByteString(NON_UTF8)))).toBe(true);
  });
});
