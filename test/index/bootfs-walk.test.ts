/**
 * src/tree/walk.ts: the sorted depth-first order that fixes the bootfs index's inode numbers and
 * the data stream (the converter feeds the chunker in dataOrder; the builder assigns offsets in it).
 * (Kept beside the index tests: the walk exists for the index format.)
 */
import { describe, expect, it } from 'vitest';
import { newDir, type FsNode } from '../../src/tree/types.js';
import { compareByteStrings, dataOrder, sortedNames, walkSorted } from '../../src/tree/walk.js';

const file = (size: number): FsNode => ({ kind: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, xattrs: new Map(), size });

function tree(spec: Record<string, FsNode | Record<string, unknown>>): FsNode {
  const dir = newDir();
  for (const [name, v] of Object.entries(spec)) {
    dir.children!.set(name, 'kind' in v ? (v as FsNode) : tree(v as Record<string, FsNode>));
  }
  return dir;
}

describe('walkSorted', () => {
  it('is depth first with children in byte order, root first', () => {
    const root = tree({ 'a.b': file(1), a: { b: file(1), c: {} }, B: file(0), '\xff': file(0), '\x80x': file(0) });
    expect([...walkSorted(root)].map((w) => [w.path, w.depth])).toEqual([
      ['', 0], ['B', 1], ['a', 1], ['a/b', 2], ['a/c', 2], ['a.b', 1], ['\x80x', 1], ['\xff', 1],
    ]);
  });

  it('yields a hardlinked node once per name', () => {
    const f = file(3);
    const root = tree({ x: f, d: { y: f } });
    expect([...walkSorted(root)].filter((w) => w.node === f).map((w) => w.path)).toEqual(['d/y', 'x']);
  });

  it('refuses a directory reached twice (hardlinked directory or cycle)', () => {
    const d = newDir();
    const root = tree({ a: d, b: d });
    expect(() => [...walkSorted(root)]).toThrow(/directory 'b' is reached twice/);
    const loop = newDir();
    loop.children!.set('up', loop);
    expect(() => [...walkSorted(loop)]).toThrow(RangeError);
  });

  it('walks 10,000 levels without recursion', () => {
    const root = newDir();
    let d = root;
    for (let i = 0; i < 10_000; i++) {
      const next = newDir();
      d.children!.set('d', next);
      d = next;
    }
    const items = [...walkSorted(root)];
    expect(items.length).toBe(10_001);
    expect(items.at(-1)!.depth).toBe(10_000);
  });
});

describe('dataOrder', () => {
  it('lists non-empty regular files once, in walk order, a hardlink at its first path', () => {
    const shared = file(5);
    const [a, b, c] = [file(1), file(2), file(3)];
    const root = tree({ z: shared, m: { n: a, o: shared }, c, e: file(0), b, l: { kind: 'symlink', mode: 0o777, uid: 0, gid: 0, mtimeNs: 0n, xattrs: new Map(), size: 0, target: 'z' } });
    const order = dataOrder(root);
    expect(order.length).toBe(4);
    [b, c, a, shared].forEach((n, i) => expect(order[i]).toBe(n));
  });
});

describe('helpers', () => {
  it('compareByteStrings is byte order and sortedNames uses it', () => {
    expect(['b', '\xff', 'B', 'a', 'a\x00'].sort(compareByteStrings)).toEqual(['B', 'a', 'a\x00', 'b', '\xff']);
    expect(sortedNames(tree({ b: file(0), a: file(0) }))).toEqual(['a', 'b']);
    expect(sortedNames(file(0))).toEqual([]);
  });
});
