/**
 * A synthetic, deterministic filesystem tree of exactly SYNTHETIC_ENTRIES names, for measuring the
 * bootfs index at a size no fixture reaches: 1000 directories (20 top-level × 49 subdirectories
 * each, plus the 20) holding 99 non-directory names each, 12–20-byte names, ~5 % symlinks, a few
 * xattrs, small files, and a chunk table whose totalSize equals the sum of the file sizes.
 *
 * Names and symlink targets are pseudo-random, so the index's string tables cannot deduplicate them:
 * a real tree (many `__init__.py`, `Makefile`, …) encodes smaller, so this is the conservative case.
 */
import { createHash } from 'node:crypto';
import { type ChunkSizes, DEFAULT_CHUNK_SIZES } from '../src/chunker/params.js';
import { ChunkTable } from '../src/index/chunk-table.js';
import { type ByteString, type FsNode, type ImageConfig, newDir } from '../src/tree/types.js';

/** Names in the tree (the root has none). */
export const SYNTHETIC_ENTRIES = 100_000;
const TOP_DIRS = 20;
const SUBDIRS_PER_TOP = 49;
const DIRS = TOP_DIRS * (1 + SUBDIRS_PER_TOP); // 1000
const LEAVES_PER_DIR = (SYNTHETIC_ENTRIES - DIRS) / DIRS; // 99
const SYMLINK_SHARE = 0.05;
const EMPTY_FILE_SHARE = 0.02;
const EXEC_SHARE = 0.05;
/** Files get security.capability / user.checksum with these probabilities. */
const CAPABILITY_SHARE = 0.005;
const USER_XATTR_SHARE = 0.002;
/** Non-empty files are log-uniform in 1 … MAX_FILE_SIZE-1 bytes (mean ≈ 3 KB). */
const MAX_FILE_SIZE = 32 * 1024;
/** Name lengths (bytes), inclusive. */
const NAME_MIN = 12;
const NAME_MAX = 20;
const EXTENSIONS = ['', '', '', '.so', '.so.1', '.py', '.pyc', '.h', '.conf', '.gz', '.txt', '.mo', '.pm', '.json'];
const FIRST = 'abcdefghijklmnopqrstuvwxyz';
const REST = 'abcdefghijklmnopqrstuvwxyz0123456789_-.';
/** Fixed seed: the same tree, the same index bytes on every run and machine. */
const SEED = 0x6b6f6f74;
/** `setcap cap_net_raw+ep`-style VFS_CAP_REVISION_2 value (20 bytes). */
const CAPABILITY = Buffer.from('0000000200200000000000000000000000000000', 'hex');

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A path whose expected properties the reader must return (verification after decode). */
export interface SyntheticProbe {
  path: ByteString;
  kind: 'file' | 'symlink' | 'dir';
  size?: number;
  target?: ByteString;
  xattr?: { name: ByteString; value: Buffer };
}

/** The tree, its chunk table, and what it holds. */
export interface SyntheticTree {
  root: FsNode;
  sizes: ChunkSizes;
  table: ChunkTable;
  config: ImageConfig;
  counts: { entries: number; dirs: number; files: number; symlinks: number; xattrs: number; dataBytes: number; nameBytes: number; chunks: number };
  probes: SyntheticProbe[];
}

/** Build the tree (deterministic; ~100 ms). */
export function buildSyntheticTree(): SyntheticTree {
  const rand = prng(SEED);
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)]!;
  const mtime = (): bigint => 1_700_000_000_000_000_000n + BigInt(int(3e7)) * 1_000_000_000n + BigInt(int(1e9));
  const name = (taken: Map<ByteString, FsNode>): ByteString => {
    for (;;) {
      const length = NAME_MIN + int(NAME_MAX - NAME_MIN + 1);
      const ext = pick(EXTENSIONS);
      let s = FIRST[int(FIRST.length)]!;
      while (s.length < length - ext.length) s += REST[int(REST.length)]!;
      s += ext;
      if (!taken.has(s)) return s;
    }
  };

  const counts = { entries: 0, dirs: 0, files: 0, symlinks: 0, xattrs: 0, dataBytes: 0, nameBytes: 0, chunks: 0 };
  const probes: SyntheticProbe[] = [];
  const root = newDir(0o755, 0, 0, mtime());
  const add = (dir: FsNode, n: ByteString, node: FsNode): void => {
    dir.children!.set(n, node);
    counts.entries++;
    counts.nameBytes += n.length;
  };
  const dirs: { node: FsNode; path: ByteString }[] = [];
  const topNames: ByteString[] = [];
  for (let t = 0; t < TOP_DIRS; t++) {
    const top = newDir(0o755, 0, 0, mtime());
    const topName = name(root.children!);
    add(root, topName, top);
    topNames.push(topName);
    dirs.push({ node: top, path: topName });
    for (let s = 0; s < SUBDIRS_PER_TOP; s++) {
      const sub = newDir(0o755, 0, 0, mtime());
      const subName = name(top.children!);
      add(top, subName, sub);
      dirs.push({ node: sub, path: `${topName}/${subName}` });
    }
  }
  counts.dirs = dirs.length;
  for (const { node: dir, path } of dirs) {
    for (let k = 0; k < LEAVES_PER_DIR; k++) {
      const n = name(dir.children!);
      const full = `${path}/${n}`;
      if (rand() < SYMLINK_SHARE) {
        const target = rand() < 0.5 ? `../${pick(topNames)}/${name(new Map())}` : `/usr/lib/${name(new Map())}`;
        add(dir, n, { kind: 'symlink', mode: 0o777, uid: 0, gid: 0, mtimeNs: mtime(), xattrs: new Map(), size: 0, target });
        counts.symlinks++;
        if (probes.every((p) => p.kind !== 'symlink')) probes.push({ path: full, kind: 'symlink', target });
        continue;
      }
      const size = rand() < EMPTY_FILE_SHARE ? 0 : Math.floor(Math.exp(rand() * Math.log(MAX_FILE_SIZE)));
      const exec = rand() < EXEC_SHARE;
      const file: FsNode = { kind: 'file', mode: exec ? 0o755 : 0o644, uid: 0, gid: rand() < 0.01 ? 1000 : 0, mtimeNs: mtime(), xattrs: new Map(), size };
      if (rand() < CAPABILITY_SHARE) file.xattrs.set('security.capability', CAPABILITY);
      if (rand() < USER_XATTR_SHARE) file.xattrs.set('user.checksum', Buffer.from(createHash('md5').update(full).digest('hex'), 'latin1'));
      counts.xattrs += file.xattrs.size;
      counts.files++;
      counts.dataBytes += size;
      add(dir, n, file);
      if (file.xattrs.size > 0 && probes.every((p) => p.xattr === undefined)) {
        const [xn, xv] = file.xattrs.entries().next().value as [ByteString, Buffer];
        probes.push({ path: full, kind: 'file', size, xattr: { name: xn, value: xv } });
      }
    }
  }
  // A few more fixed probes: the first and last directory, a file in the last directory.
  probes.push({ path: dirs[0]!.path, kind: 'dir' }, { path: dirs[dirs.length - 1]!.path, kind: 'dir' });
  const lastDir = dirs[dirs.length - 1]!;
  for (const [n, node] of lastDir.node.children!) {
    if (node.kind === 'file') {
      probes.push({ path: `${lastDir.path}/${n}`, kind: 'file', size: node.size });
      break;
    }
  }

  // The data stream's chunk table: avg-sized chunks (the last one shorter) with distinct IDs.
  const sizes = DEFAULT_CHUNK_SIZES;
  const chunks: { size: number; id: Uint8Array }[] = [];
  for (let off = 0, i = 0; off < counts.dataBytes; off += sizes.avg, i++) {
    chunks.push({ size: Math.min(sizes.avg, counts.dataBytes - off), id: createHash('sha256').update(`synthetic chunk ${i}`).digest() });
  }
  const table = ChunkTable.fromChunks(chunks);
  counts.chunks = table.count;
  const config: ImageConfig = {
    cmd: ['/bin/sh'],
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    workingDir: '/',
    source: { reference: 'synthetic:100k', os: 'linux', architecture: 'amd64' },
  };
  return { root, sizes, table, config, counts, probes };
}
