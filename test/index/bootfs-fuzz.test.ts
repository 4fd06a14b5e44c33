/**
 * The bootfs index decoder treats its input as hostile. For any corruption of a valid index — with
 * or without the checksum recomputed afterwards, so the structural checks are exercised and not only
 * the checksum — decode either throws IndexFormatError, or returns an index whose every accessor
 * works, whose lookups agree with its readdirs, and whose walk terminates.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IndexFormatError } from '../../src/errors.js';
import { encodeBootfsIndex } from '../../src/index/bootfs-builder.js';
import { HEADER, indexChecksum } from '../../src/index/bootfs-index.js';
import { BootfsIndex } from '../../src/index/bootfs-reader.js';
import { decodeCaibx, encodeCaibx } from '../../src/index/caibx.js';
import { ChunkTable } from '../../src/index/chunk-table.js';
import { newDir, type ByteString, type FsNode, type NodeKind } from '../../src/tree/types.js';
import { dataOrder } from '../../src/tree/walk.js';

const SIZES = Object.freeze({ min: 64, avg: 256, max: 1024 });

type OpKind = NodeKind | 'link';
interface Op {
  parent: number;
  name: ByteString;
  kind: OpKind;
  size: number;
  mode: number;
  uid: number;
  mtimeNs: bigint;
  xattrs: [ByteString, number][];
}

// Few distinct bytes, so names collide and sort in interesting ways ('.', 0x80, 0xff, space).
const nameByte = fc.constantFrom(0x61, 0x62, 0x2e, 0x41, 0x20, 0x80, 0xff, 0x7e);
const arbName = fc
  .array(nameByte, { minLength: 1, maxLength: 5 })
  .map((bytes) => Buffer.from(bytes).toString('latin1'))
  .filter((n) => n !== '.' && n !== '..');
const arbOp: fc.Arbitrary<Op> = fc.record({
  parent: fc.nat(),
  name: arbName,
  kind: fc.constantFrom<OpKind>('file', 'file', 'dir', 'dir', 'symlink', 'char', 'block', 'fifo', 'socket', 'link', 'link'),
  size: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3000 })),
  mode: fc.integer({ min: 0, max: 0o7777 }),
  uid: fc.oneof(fc.constant(0), fc.nat()),
  mtimeNs: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  xattrs: fc.array(fc.tuple(fc.constantFrom('user.a', 'user.b', 'security.capability', 'trusted.\xff'), fc.nat(40)), { maxLength: 2 }),
});

/** Interpret ops as a tree: each op adds one name under an existing directory. */
function treeOf(ops: Op[]): FsNode {
  const root = newDir();
  const dirs: FsNode[] = [root];
  const others: FsNode[] = [];
  for (const op of ops) {
    const dir = dirs[op.parent % dirs.length]!;
    if (dir.children!.has(op.name)) continue;
    let node: FsNode;
    if (op.kind === 'link' && others.length > 0) {
      node = others[op.size % others.length]!;
    } else {
      const kind: NodeKind = op.kind === 'link' ? 'file' : op.kind;
      const xattrs = new Map(op.xattrs.map(([n, len]) => [n, Buffer.alloc(len, len)] as const));
      node = { kind, mode: op.mode, uid: op.uid, gid: op.uid ^ 1, mtimeNs: op.mtimeNs, xattrs, size: kind === 'file' ? op.size : 0 };
      if (kind === 'dir') node.children = new Map();
      if (kind === 'symlink') node.target = `../${op.name}/x`;
      if (kind === 'char' || kind === 'block') [node.devMajor, node.devMinor] = [op.size, op.uid];
    }
    dir.children!.set(op.name, node);
    (node.kind === 'dir' ? dirs : others).push(node);
  }
  return root;
}

/** A chunk table of `total` bytes in pieces of at most SIZES.max. */
function tableFor(total: number): ChunkTable {
  const chunks: { size: number; id: Buffer }[] = [];
  for (let off = 0, i = 0; off < total; i++) {
    const size = Math.min(total - off, 700 + ((i * 97) % 300));
    chunks.push({ size, id: createHash('sha512-256').update(`chunk ${i}`).digest() });
    off += size;
  }
  return ChunkTable.fromChunks(chunks);
}

function encodeTree(root: FsNode): Buffer {
  const total = dataOrder(root).reduce((s, n) => s + n.size, 0);
  return encodeBootfsIndex({ root, sizes: SIZES, table: tableFor(total), config: { cmd: ['/bin/sh'], labels: { a: 'b' } } });
}

const arbIndexBytes = fc.array(arbOp, { maxLength: 30 }).map((ops) => encodeTree(treeOf(ops)));

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'u64'; at: number; value: bigint }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array };

// Values on the decoder's boundaries: 0, 1, 2, small counts, '/', '.', sign bits, all ones.
const interesting32 = fc.constantFrom(0, 1, 2, 3, 4, 5, 8, 12, 47, 0x2e, 0x2f, 255, 256, 4095, 4096, 65536, 0x7fffffff, 0x80000000, 0xffffffff);
const interesting64 = fc.constantFrom(0n, 1n, 2n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n);
const arbMutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.oneof(interesting32, fc.nat()) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('u64' as const), at: fc.nat(), value: interesting64 }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }) },
);

function mutate(orig: Buffer, muts: Mutation[], fixChecksum: boolean): Buffer {
  let buf = Buffer.from(orig);
  for (const m of muts) {
    if (buf.length < 8 && m.kind !== 'append') continue;
    // u32/u64 writes land on aligned slots: record fields are 4-byte aligned.
    if (m.kind === 'flip') buf[m.at % buf.length]! ^= 1 << m.bit;
    else if (m.kind === 'u32') buf.writeUInt32LE(m.value >>> 0, (m.at % Math.floor(buf.length / 4)) * 4);
    else if (m.kind === 'u64') buf.writeBigUInt64LE(m.value, (m.at % Math.floor(buf.length / 8)) * 8);
    else if (m.kind === 'truncate') buf = buf.subarray(0, m.at % buf.length);
    else buf = Buffer.concat([buf, m.bytes]);
  }
  if (fixChecksum && buf.length >= HEADER.checksum + 32) indexChecksum(buf).copy(buf, HEADER.checksum);
  return buf;
}

type Structural =
  | { kind: 'entryIno'; e: number; ino: number }
  | { kind: 'entrySwap'; e: number; f: number }
  | { kind: 'entryName'; e: number; f: number }
  | { kind: 'dirRange'; i: number; first: number; count: number }
  | { kind: 'nlink'; i: number; delta: number };

const arbStructural: fc.Arbitrary<Structural> = fc.oneof(
  fc.record({ kind: fc.constant('entryIno' as const), e: fc.nat(), ino: fc.nat() }),
  fc.record({ kind: fc.constant('entrySwap' as const), e: fc.nat(), f: fc.nat() }),
  fc.record({ kind: fc.constant('entryName' as const), e: fc.nat(), f: fc.nat() }),
  fc.record({ kind: fc.constant('dirRange' as const), i: fc.nat(), first: fc.integer({ min: -2, max: 2 }), count: fc.integer({ min: -2, max: 2 }) }),
  fc.record({ kind: fc.constant('nlink' as const), i: fc.nat(), delta: fc.integer({ min: -1, max: 1 }) }),
);

/** Rewrite tree records with values that are in range (inos, entry indices, string refs), then fix the checksum. */
function mutateStructure(orig: Buffer, muts: Structural[]): Buffer {
  const buf = Buffer.from(orig);
  const inodes = Number(buf.readBigUInt64LE(64));
  const entries = Number(buf.readBigUInt64LE(80));
  const inodeCount = buf.readUInt32LE(HEADER.inodeCount);
  const entryCount = buf.readUInt32LE(HEADER.entryCount);
  for (const m of muts) {
    const i = m.kind === 'dirRange' || m.kind === 'nlink' ? m.i % inodeCount : 0;
    if (m.kind === 'nlink') {
      const at = inodes + 56 * i + 4;
      buf.writeUInt32LE(Math.max(0, buf.readUInt32LE(at) + m.delta), at);
      continue;
    }
    if (m.kind === 'dirRange') {
      const at = inodes + 56 * i + 32;
      buf.writeUInt32LE(Math.max(0, buf.readUInt32LE(at) + m.first), at);
      buf.writeUInt32LE(Math.max(0, buf.readUInt32LE(at + 8) + m.count), at + 8);
      continue;
    }
    if (entryCount === 0) continue;
    const e = entries + 12 * (m.e % entryCount);
    if (m.kind === 'entryIno') buf.writeUInt32LE(1 + (m.ino % inodeCount), e + 8);
    else {
      const f = entries + 12 * (m.f % entryCount);
      const [a, b] = [Buffer.from(buf.subarray(e, e + 12)), Buffer.from(buf.subarray(f, f + 12))];
      if (m.kind === 'entrySwap') {
        b.copy(buf, e);
        a.copy(buf, f);
      } else {
        b.copy(buf, e, 0, 8); // e gets f's name
      }
    }
  }
  indexChecksum(buf).copy(buf, HEADER.checksum);
  return buf;
}

/** Every accessor on every inode and name; throws on any inconsistency. */
function exercise(idx: BootfsIndex): void {
  let steps = 0;
  for (const { path, ino } of idx.walk()) {
    // A walk longer than the names would mean a loop; fail instead of hanging.
    if (++steps > idx.entryCount + 1) throw new Error('walk does not terminate');
    expect(idx.resolve(path)).toBe(ino);
    expect(idx.resolve(`/${path}`)).toBe(ino);
  }
  expect(steps).toBe(idx.entryCount + 1);
  let names = 0;
  let filesBytes = 0;
  for (let ino = 1; ino <= idx.inodeCount; ino++) {
    const st = idx.stat(ino);
    expect(idx.kind(ino)).toBe(st.kind);
    const xattrs = idx.xattrs(ino);
    expect(idx.listXattrs(ino)).toEqual([...xattrs.keys()]);
    for (const [k, v] of xattrs) expect(idx.getXattr(ino, k)!.equals(v)).toBe(true);
    expect(idx.getXattr(ino, 'no.such')).toBeUndefined();
    if (st.kind === 'dir') {
      let i = 0;
      let prev: ByteString | undefined;
      for (const { name, ino: child } of idx.readdir(ino)) {
        expect(name.length).toBeGreaterThan(0);
        expect(name.includes('/') || name.includes('\0')).toBe(false);
        if (prev !== undefined) expect(prev < name).toBe(true);
        expect(idx.lookup(ino, name)).toBe(child); // binary search agrees with the slice
        expect(idx.childAt(ino, i)).toEqual({ name, ino: child });
        expect(idx.lookup(ino, `${name}\x01`)).toBeUndefined();
        prev = name;
        i++;
        names++;
      }
      expect(i).toBe(idx.childCount(ino));
    } else {
      expect(idx.lookup(ino, 'a')).toBeUndefined();
      expect(st.nlink).toBeGreaterThan(0);
    }
    if (st.kind === 'file') {
      const ext = idx.fileExtent(ino);
      expect(ext.size).toBe(st.size);
      expect(ext.offset + ext.size).toBeLessThanOrEqual(idx.dataSize);
      filesBytes += ext.size;
    }
    if (st.kind === 'symlink') expect(idx.readlink(ino).length).toBe(st.size);
  }
  expect(names).toBe(idx.entryCount);
  expect(filesBytes).toBe(idx.dataSize);
  const blob = idx.toBlobIndex();
  expect(decodeCaibx(encodeCaibx(blob), 'export.caibx').table.totalSize).toBe(idx.dataSize);
  // What was accepted can be rebuilt, and the rebuilt index reads the same.
  const again = BootfsIndex.decode(encodeBootfsIndex({ root: idx.toTree(), sizes: idx.sizes, table: idx.table, config: idx.config }), 're');
  expect([...again.walk()]).toEqual([...idx.walk()]);
}

/** Decode: accepted (then exercised) or IndexFormatError; anything else fails the property. */
function check(bytes: Buffer): boolean {
  let idx: BootfsIndex;
  try {
    idx = BootfsIndex.decode(bytes, 'fuzz.bfsidx');
  } catch (err) {
    if (!(err instanceof IndexFormatError)) throw new Error(`decode threw ${String(err)}`, { cause: err });
    expect(err.message.startsWith('index fuzz.bfsidx is invalid: ')).toBe(true);
    return false;
  }
  exercise(idx);
  return true;
}

describe('BootfsIndex.decode on corrupted input (fast-check)', () => {
  it('valid encodings of random trees are accepted and consistent', () => {
    fc.assert(fc.property(arbIndexBytes, (bytes) => {
      expect(check(bytes)).toBe(true);
    }), { numRuns: 300 });
  });

  it('random corruption without fixing the checksum is rejected', () => {
    fc.assert(
      fc.property(arbIndexBytes, fc.array(arbMutation, { minLength: 1, maxLength: 3 }), (bytes, muts) => {
        const bad = mutate(bytes, muts, false);
        if (!bad.equals(bytes)) expect(check(bad)).toBe(false);
      }),
      { numRuns: 1500 },
    );
  });

  it('random corruption with the checksum recomputed exercises the structural checks', () => {
    const seen = { accepted: 0, rejected: 0 };
    const reasons = new Map<string, number>();
    fc.assert(
      fc.property(arbIndexBytes, fc.array(arbMutation, { minLength: 1, maxLength: 3 }), (bytes, muts) => {
        const bad = mutate(bytes, muts, true);
        const accepted = check(bad);
        seen[accepted ? 'accepted' : 'rejected']++;
        if (!accepted) try {
          BootfsIndex.decode(bad, 'r');
        } catch (err) {
          const key = (err as Error).message.replace(/\d+/g, 'N').slice(0, 60);
          reasons.set(key, (reasons.get(key) ?? 0) + 1);
        }
      }),
      { numRuns: 4000 },
    );
    // Both outcomes, and many different checks, must be hit or the property says little.
    expect(seen.accepted).toBeGreaterThan(200);
    expect(seen.rejected).toBeGreaterThan(1000);
    expect(reasons.size).toBeGreaterThan(25);
  });

  it('plausible structural corruption (in-range values in the tree records)', () => {
    const reasons = new Set<string>();
    let accepted = 0;
    fc.assert(
      fc.property(arbIndexBytes, fc.array(arbStructural, { minLength: 1, maxLength: 2 }), (bytes, muts) => {
        const bad = mutateStructure(bytes, muts);
        if (check(bad)) accepted++;
        else {
          try {
            BootfsIndex.decode(bad, 'r');
          } catch (err) {
            reasons.add((err as Error).message.replace(/\d+/g, 'N'));
          }
        }
      }),
      { numRuns: 3000 },
    );
    expect(accepted).toBeGreaterThan(50);
    const rx = [...reasons].join('\n');
    // The tree rules that only in-range values reach.
    for (const why of ['not in strictly increasing name order', 'breadth-first', 'depth-first', 'names (a directory', 'nlink']) {
      expect(rx).toContain(why);
    }
  });

  it('random bytes behind a valid header prefix', () => {
    fc.assert(
      fc.property(arbIndexBytes, fc.integer({ min: 0, max: 400 }), fc.uint8Array({ maxLength: 600 }), (bytes, keep, tail) => {
        check(mutate(Buffer.concat([bytes.subarray(0, keep), tail]), [], true));
      }),
      { numRuns: 1000 },
    );
  });
});
