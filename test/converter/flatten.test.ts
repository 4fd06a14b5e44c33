import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BootfsError } from '../../src/errors.js';
import { LayerFlattener } from '../../src/converter/flatten.js';
import { UnsafePathError } from '../../src/converter/paths.js';
import { Spool } from '../../src/converter/spool.js';
import { LayerFormatError } from '../../src/converter/tar-reader.js';
import type { FsNode } from '../../src/tree/types.js';
import { cleanup, tmpDir } from '../helpers/tools.js';
import { expectBootfsError, rejection, spoolContent } from './helpers.js';
import { chunked, type TarSpec, writeTar } from './tar-writer.js';

afterAll(cleanup);

let spools: Spool[] = [];
afterEach(async () => {
  for (const s of spools) await s.close();
  spools = [];
});

async function newFlattener(): Promise<{ fl: LayerFlattener; spool: Spool }> {
  const spool = await Spool.create(await tmpDir('bootfs-flatten-'));
  spools.push(spool);
  return { fl: new LayerFlattener({ spool, sourceIndex: 3 }), spool };
}

/** Apply layers named L1, L2, … */
async function flatten(...layers: TarSpec[][]): Promise<{ fl: LayerFlattener; spool: Spool; root: FsNode }> {
  const { fl, spool } = await newFlattener();
  for (const [i, specs] of layers.entries()) await fl.applyLayer(chunked(writeTar(specs), 4096), `L${i + 1}`);
  return { fl, spool, root: fl.root };
}

function get(root: FsNode, p: string): FsNode | undefined {
  let n: FsNode | undefined = root;
  for (const c of p.split('/').filter((x) => x !== '')) n = n?.children?.get(c);
  return n;
}

/** Sorted `path kind` lines of the whole tree (root excluded). */
function listing(root: FsNode): string[] {
  const out: string[] = [];
  const walk = (n: FsNode, p: string): void => {
    for (const [name, child] of [...(n.children ?? new Map<string, FsNode>())].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const cp = p === '' ? name : `${p}/${name}`;
      out.push(`${cp} ${child.kind}`);
      walk(child, cp);
    }
  };
  walk(root, '');
  return out;
}

const text = async (spool: Spool, n: FsNode | undefined): Promise<string> => (await spoolContent(spool, n!)).toString();

describe('LayerFlattener: layer rules', () => {
  it('stores file contents in the spool with content refs (none for empty files)', async () => {
    const { root, spool, fl } = await flatten([{ path: 'a', data: 'alpha' }, { path: 'e', data: '' }, { path: 'b', data: Buffer.alloc(3000, 2) }]);
    expect(get(root, 'a')!.content).toEqual({ source: 3, offset: 0, size: 5 });
    expect(get(root, 'e')!.content).toBeUndefined();
    expect(get(root, 'e')!.size).toBe(0);
    expect(await text(spool, get(root, 'a'))).toBe('alpha');
    expect(await spoolContent(spool, get(root, 'b')!)).toEqual(Buffer.alloc(3000, 2));
    expect(await fl.applyLayer(chunked(writeTar([{ path: 'c', data: 'xyz' }, { path: 'd/' }])), 'L9')).toEqual({ entries: 2, bytes: 3 });
  });

  it('whiteout of a file', async () => {
    const { root } = await flatten([{ path: 'a', data: '1' }, { path: 'b', data: '2' }], [{ path: '.wh.a' }]);
    expect(listing(root)).toEqual(['b file']);
  });

  it('whiteout of a directory subtree', async () => {
    const { root } = await flatten(
      [{ path: 'd/' }, { path: 'd/x/' }, { path: 'd/x/y', data: 'y' }, { path: 'd/z', data: 'z' }, { path: 'keep', data: 'k' }],
      [{ path: 'd/.wh.x' }],
      [{ path: '.wh.d' }],
    );
    expect(listing(root)).toEqual(['keep file']);
  });

  it('a whiteout only hides lower layers, wherever it is in its own layer', async () => {
    for (const order of [0, 1]) {
      const layer2: TarSpec[] = [{ path: '.wh.a' }, { path: 'a', data: 'new' }];
      if (order) layer2.reverse();
      const { root, spool } = await flatten([{ path: 'a', data: 'old' }], layer2);
      expect(await text(spool, get(root, 'a'))).toBe('new');
    }
  });

  it('opaque directory keeps same-layer children regardless of entry order', async () => {
    const lower: TarSpec[] = [{ path: 'd/' }, { path: 'd/old', data: 'o' }, { path: 'd/sub/' }, { path: 'd/sub/deep', data: 'x' }, { path: 'other', data: '' }];
    const upper: TarSpec[] = [{ path: 'd/', mode: 0o700 }, { path: 'd/.wh..wh..opq' }, { path: 'd/new', data: 'n' }, { path: 'd/sub/' }, { path: 'd/sub/fresh', data: 'f' }];
    const results = [];
    for (const perm of [[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [0, 2, 3, 4, 1], [4, 2, 3, 0, 1]]) {
      const { root } = await flatten(lower, perm.map((i) => upper[i]!));
      results.push(listing(root));
      expect(get(root, 'd')!.mode).toBe(0o700);
    }
    for (const r of results) expect(r).toEqual(['d dir', 'd/new file', 'd/sub dir', 'd/sub/fresh file', 'other file']);
  });

  it('opaque marker at the root, and for a directory that did not exist', async () => {
    const { root } = await flatten([{ path: 'a', data: '' }, { path: 'b/' }], [{ path: './.wh..wh..opq' }, { path: 'c', data: '' }, { path: 'n/.wh..wh..opq' }]);
    expect(listing(root)).toEqual(['c file', 'n dir']);
  });

  it('directory → file → directory across three layers', async () => {
    const { root } = await flatten(
      [{ path: 'd/' }, { path: 'd/x', data: 'x' }],
      [{ path: 'd', data: 'now a file' }],
      [{ path: 'd/', mode: 0o750 }, { path: 'd/y', data: 'y' }],
    );
    expect(listing(root)).toEqual(['d dir', 'd/y file']);
    expect(get(root, 'd')!.mode).toBe(0o750);
  });

  it('a file replaced by a directory, and re-adding a directory keeps its children', async () => {
    const { root } = await flatten(
      [{ path: 'f', data: 'x' }, { path: 'd/', mode: 0o755, uid: 1, mtime: 10, pax: [['SCHILY.xattr.user.a', '1']] }, { path: 'd/kid', data: '' }],
      [{ path: 'f/' }, { path: 'd/', mode: 0o700, uid: 2, mtime: 20 }],
    );
    expect(listing(root)).toEqual(['d dir', 'd/kid file', 'f dir']);
    const d = get(root, 'd')!;
    expect([d.mode, d.uid, d.mtimeNs, d.xattrs.size]).toEqual([0o700, 2, 20_000_000_000n, 0]);
  });

  it('creates missing parents implicitly (0755, root-owned, mtime 0) and keeps existing ones', async () => {
    const { root } = await flatten([{ path: 'keep/', mode: 0o711, uid: 7, mtime: 5 }], [{ path: 'keep/a/b/c', data: '' }]);
    const a = get(root, 'keep/a')!;
    expect([a.kind, a.mode, a.uid, a.gid, a.mtimeNs]).toEqual(['dir', 0o755, 0, 0, 0n]);
    expect([get(root, 'keep')!.mode, get(root, 'keep')!.uid]).toEqual([0o711, 7]);
  });

  it('the ./ entry sets the root metadata; a non-directory root is an error', async () => {
    const { root } = await flatten([{ path: './', mode: 0o700, mtime: 99 }, { path: './etc/passwd', data: 'root:x:0:0' }]);
    expect([root.mode, root.mtimeNs]).toEqual([0o700, 99_000_000_000n]);
    expect(listing(root)).toEqual(['etc dir', 'etc/passwd file']);
    const { fl } = await newFlattener();
    const err = await rejection(fl.applyLayer(chunked(writeTar([{ path: '.', type: '2', linkPath: 'x' }])), 'L1'));
    expectBootfsError(err, LayerFormatError, 'L1', ['root must be a directory']);
  });

  it('hardlinks share the node; replacing the target keeps the old content under the link', async () => {
    const { root, spool } = await flatten(
      [{ path: 'a', data: 'old', mode: 0o4755 }],
      [{ path: 'b', type: '1', linkPath: './a' }, { path: 'c', type: '1', linkPath: 'b' }],
      [{ path: 'a', data: 'new' }],
    );
    expect(get(root, 'b')).toBe(get(root, 'c'));
    expect(get(root, 'a')).not.toBe(get(root, 'b'));
    expect(await text(spool, get(root, 'a'))).toBe('new');
    expect(await text(spool, get(root, 'b'))).toBe('old');
    expect(get(root, 'b')!.mode).toBe(0o4755);
  });

  it('hardlinks to symlinks, devices and fifos are allowed; within one layer the target must come first', async () => {
    const { root } = await flatten([
      { path: 's', type: '2', linkPath: 'nowhere' },
      { path: 's2', type: '1', linkPath: 's' },
      { path: 'p', type: '6' },
      { path: 'p2', type: '1', linkPath: 'p' },
    ]);
    expect(get(root, 's2')).toBe(get(root, 's'));
    expect(get(root, 'p2')).toBe(get(root, 'p'));
    const { fl } = await newFlattener();
    const err = await rejection(fl.applyLayer(chunked(writeTar([{ path: 'link', type: '1', linkPath: 'later' }, { path: 'later', data: 'x' }])), 'L1'));
    expectBootfsError(err, LayerFormatError, 'L1', ['"link"', '"later"', 'not in this or a lower layer']);
  });

  it('a hardlink to a missing target or a directory is an error naming the layer and both paths', async () => {
    const { fl } = await newFlattener();
    await fl.applyLayer(chunked(writeTar([{ path: 'dir/' }])), 'sha256:1111');
    const missing = await rejection(fl.applyLayer(chunked(writeTar([{ path: 'x/link', type: '1', linkPath: 'no/such' }])), 'sha256:2222'));
    expectBootfsError(missing, LayerFormatError, 'sha256:2222', ['"x/link"', '"no/such"']);
    // the flattener refuses further layers after a half-applied one
    await expect(fl.applyLayer(chunked(writeTar([{ path: 'a' }])), 'sha256:3333')).rejects.toThrow(/earlier layer failed/);
    const { fl: fl2 } = await newFlattener();
    await fl2.applyLayer(chunked(writeTar([{ path: 'dir/' }])), 'sha256:1111');
    const dir = await rejection(fl2.applyLayer(chunked(writeTar([{ path: 'link', type: '1', linkPath: 'dir' }])), 'sha256:2222'));
    expectBootfsError(dir, LayerFormatError, 'sha256:2222', ['"link"', '"dir"', 'is a directory']);
  });

  it('symlinks are stored verbatim and never followed: a symlink parent is replaced by a directory', async () => {
    const { root } = await flatten(
      [{ path: 'usr/lib/', mode: 0o755 }, { path: 'usr/lib/libc.so', data: 'c' }, { path: 'lib', type: '2', linkPath: 'usr/lib' }, { path: 'abs', type: '2', linkPath: '/etc/../../x' }],
      [{ path: 'lib/extra.so', data: 'e' }, { path: 'abs/.wh.x' }, { path: 'h', type: '1', linkPath: 'abs' }],
    );
    expect(listing(root)).toEqual(['abs symlink', 'h symlink', 'lib dir', 'lib/extra.so file', 'usr dir', 'usr/lib dir', 'usr/lib/libc.so file']);
    expect(get(root, 'abs')!.target).toBe('/etc/../../x');
    expect(get(root, 'h')).toBe(get(root, 'abs'));
    // a hardlink target is not resolved through a symlink either
    const { fl } = await newFlattener();
    await fl.applyLayer(chunked(writeTar([{ path: 'real/' }, { path: 'real/f', data: '' }, { path: 'via', type: '2', linkPath: 'real' }])), 'L1');
    const err = await rejection(fl.applyLayer(chunked(writeTar([{ path: 'h', type: '1', linkPath: 'via/f' }])), 'L2'));
    expectBootfsError(err, LayerFormatError, 'L2', ['"via/f"']);
  });

  it('whiteouts never appear; aufs metadata is skipped; a whiteout name as a directory is an error', async () => {
    const { root } = await flatten([{ path: 'a', data: '' }], [{ path: '.wh.a' }, { path: '.wh.nothing' }, { path: '.wh..wh.plnk/' }, { path: '.wh..wh.aufs' }]);
    expect(listing(root)).toEqual([]);
    const { fl } = await newFlattener();
    const err = await rejection(fl.applyLayer(chunked(writeTar([{ path: '.wh.x/y', data: '' }])), 'L1'));
    expectBootfsError(err, LayerFormatError, 'L1', ['".wh.x/y"', 'whiteout name']);
    for (const bad of ['.wh.', 'd/.wh..']) {
      const e2 = await rejection(fl.applyLayer(chunked(writeTar([{ path: bad }])), 'L2'));
      expectBootfsError(e2, LayerFormatError, 'L2', [JSON.stringify(bad), 'invalid name']);
    }
  });

  it('keeps devices, fifos, xattrs (binary security.capability), ids, special mode bits and ns mtimes', async () => {
    const cap = Buffer.from('0100000200040000000000000000000000000000', 'hex');
    const { root } = await flatten([
      { path: 'dev/null', type: '3', devMajor: 1, devMinor: 3, mode: 0o666 },
      { path: 'dev/sda', type: '4', devMajor: 8, devMinor: 1, mode: 0o660, gid: 6 },
      { path: 'run/fifo', type: '6', mode: 0o600 },
      { path: 'bin/ping', data: 'elf', mode: 0o4755, uid: 0, gid: 0, pax: [['SCHILY.xattr.security.capability', cap], ['mtime', '1700000000.000000001']] },
      { path: 'bin/sgid', data: '', mode: 0o2711, uid: 1000, gid: 50 },
      { path: 'tmp/', mode: 0o1777 },
      { path: 'old', data: '', pax: [['mtime', '-100.25']] },
    ]);
    expect([get(root, 'dev/null')!.kind, get(root, 'dev/null')!.devMajor, get(root, 'dev/null')!.devMinor]).toEqual(['char', 1, 3]);
    expect([get(root, 'dev/sda')!.kind, get(root, 'dev/sda')!.devMajor, get(root, 'dev/sda')!.devMinor, get(root, 'dev/sda')!.gid]).toEqual(['block', 8, 1, 6]);
    expect(get(root, 'run/fifo')!.kind).toBe('fifo');
    const ping = get(root, 'bin/ping')!;
    expect(ping.xattrs.get('security.capability')).toEqual(cap);
    expect(ping.mode).toBe(0o4755);
    expect(ping.mtimeNs).toBe(1_700_000_000_000_000_001n);
    expect([get(root, 'bin/sgid')!.mode, get(root, 'bin/sgid')!.uid, get(root, 'bin/sgid')!.gid]).toEqual([0o2711, 1000, 50]);
    expect(get(root, 'tmp')!.mode).toBe(0o1777);
    expect(get(root, 'old')!.mtimeNs).toBe(-100_250_000_000n);
  });

  it('long names: 255-byte names, 200-deep directories, long paths via PAX and GNU, non-UTF-8 names', async () => {
    const n255 = 'n'.repeat(255);
    const deep = Array.from({ length: 200 }, (_, i) => `d${i}`).join('/');
    const latin = Buffer.from([0x66, 0xe9, 0xff, 0x80]);
    const { root, spool } = await flatten(
      [{ path: n255, data: '255' }, { path: `${deep}/leaf`, data: 'deep' }],
      [{ path: `g/${'x'.repeat(150)}/${n255}`, data: 'gnu', gnuLongNames: true }, { path: Buffer.concat([Buffer.from('bin/'), latin]), data: 'latin1' }],
    );
    expect(await text(spool, get(root, n255))).toBe('255');
    expect(await text(spool, get(root, `${deep}/leaf`))).toBe('deep');
    expect(await text(spool, get(root, `g/${'x'.repeat(150)}/${n255}`))).toBe('gnu');
    expect(await text(spool, get(root, 'bin/' + latin.toString('latin1')))).toBe('latin1');
    expect([...get(root, 'bin')!.children!.keys()]).toEqual(['f\xe9\xff\x80']);
    const { fl } = await newFlattener();
    const err = await rejection(fl.applyLayer(chunked(writeTar([{ path: 'n'.repeat(256) }])), 'L1'));
    expectBootfsError(err, UnsafePathError, 'L1', ['256 bytes']);
  });
});

describe('LayerFlattener: hostile layers', () => {
  const cases: [string, TarSpec[], typeof UnsafePathError | typeof LayerFormatError, string[]][] = [
    ['../x', [{ path: '../x', data: 'evil' }], UnsafePathError, ['"../x"', "'..'"]],
    ['/etc/passwd', [{ path: '/etc/passwd', data: 'evil' }], UnsafePathError, ['"/etc/passwd"', 'absolute']],
    ['a/../../x', [{ path: 'a/', type: '5' }, { path: 'a/../../x', data: 'evil' }], UnsafePathError, ['"a/../../x"']],
    ['hardlink to ../', [{ path: 'h', type: '1', linkPath: '../../etc/shadow' }], UnsafePathError, ['"h"', '"../../etc/shadow"']],
    ['hardlink to /', [{ path: 'h', type: '1', linkPath: '/etc/shadow' }], UnsafePathError, ['"h"', 'absolute']],
    ['NUL in PAX path', [{ path: 'x', pax: [['path', 'ok\0../../evil']] }], LayerFormatError, ['NUL']],
    ['bad checksum', [{ path: 'x', checksum: 'bad' }], LayerFormatError, ['"x"', 'checksum']],
    ['sparse', [{ path: 'sp', type: 'S', format: 'gnu' }], LayerFormatError, ['"sp"', 'sparse']],
  ];
  for (const [title, specs, cls, mentions] of cases) {
    it(title, async () => {
      const { fl } = await newFlattener();
      await fl.applyLayer(chunked(writeTar([{ path: 'base', data: 'b' }])), 'sha256:lower');
      const err = await rejection(fl.applyLayer(chunked(writeTar(specs)), 'sha256:hostile'));
      expectBootfsError(err, cls, 'sha256:hostile', mentions);
      // a layer rejected while reading leaves the tree as it was
      expect(listing(fl.root)).toEqual(['base file']);
    });
  }

  it('property: mutated layers fail only with BootfsErrors', async () => {
    const base = writeTar([
      { path: './', mode: 0o755 },
      { path: 'd/', mode: 0o755 },
      { path: 'd/f', data: 'hello' },
      { path: 'd/.wh.gone' },
      { path: 'd/h', type: '1', linkPath: 'd/f' },
      { path: 'e/.wh..wh..opq' },
      { path: 's', type: '2', linkPath: 'd' },
    ]);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), async (muts) => {
        const buf = Buffer.from(base);
        for (const [at, v] of muts) buf[at] = v;
        const { fl } = await newFlattener();
        try {
          await fl.applyLayer(chunked(buf, 1000), 'L');
        } catch (err) {
          if (!(err instanceof BootfsError)) throw err;
        }
      }),
      { numRuns: 150 },
    );
  });
});

// ------------------------------------------------------------------------------------------------
// Property: random layer operations against a reference model
// ------------------------------------------------------------------------------------------------

type ModelOp =
  | { op: 'file'; path: string; content: string }
  | { op: 'dir'; path: string; mtime: number }
  | { op: 'symlink'; path: string; target: string }
  | { op: 'whiteout'; path: string }
  | { op: 'opaque'; path: string };

type MNode = { kind: 'file' | 'dir' | 'symlink'; tag: string };

/**
 * The reference model: a flat map from path to node. Per layer, whiteouts and opaque markers delete
 * lower entries first (only where the parent path is a directory), then the other entries apply in
 * order; a parent that is missing or not a directory becomes an implicit directory (tag '0').
 */
function modelApply(m: Map<string, MNode>, layer: ModelOp[]): void {
  const isDir = (p: string): boolean => p === '' || m.get(p)?.kind === 'dir';
  const parentOf = (p: string): string => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
  const under = (p: string): string[] => [...m.keys()].filter((k) => p === '' || k.startsWith(p + '/'));
  const removeTree = (p: string): void => {
    m.delete(p);
    for (const k of under(p)) m.delete(k);
  };
  const ensureDir = (p: string): void => {
    const parts = p === '' ? [] : p.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const q = parts.slice(0, i).join('/');
      if (!isDir(q)) {
        m.delete(q);
        m.set(q, { kind: 'dir', tag: '0' });
      }
    }
  };
  for (const o of layer) {
    if (o.op === 'whiteout' && isDir(parentOf(o.path))) removeTree(o.path);
    if (o.op === 'opaque' && isDir(o.path)) for (const k of under(o.path)) m.delete(k);
  }
  for (const o of layer) {
    if (o.op === 'whiteout') continue;
    if (o.op === 'opaque') {
      ensureDir(o.path);
      continue;
    }
    ensureDir(parentOf(o.path));
    if (o.op === 'dir' && m.get(o.path)?.kind === 'dir') {
      m.get(o.path)!.tag = String(o.mtime);
      continue;
    }
    removeTree(o.path);
    if (o.op === 'file') m.set(o.path, { kind: 'file', tag: o.content });
    else if (o.op === 'dir') m.set(o.path, { kind: 'dir', tag: String(o.mtime) });
    else m.set(o.path, { kind: 'symlink', tag: o.target });
  }
}

function toSpec(o: ModelOp): TarSpec {
  const dir = o.path.includes('/') ? o.path.slice(0, o.path.lastIndexOf('/') + 1) : '';
  const base = o.path.slice(dir.length);
  switch (o.op) {
    case 'file':
      return { path: o.path, data: o.content };
    case 'dir':
      return { path: o.path + '/', mtime: o.mtime };
    case 'symlink':
      return { path: o.path, type: '2', linkPath: o.target };
    case 'whiteout':
      return { path: `${dir}.wh.${base}` };
    case 'opaque':
      return { path: o.path === '' ? '.wh..wh..opq' : `${o.path}/.wh..wh..opq` };
  }
}

describe('LayerFlattener: reference model', () => {
  const pathArb = fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 3 }).map((p) => p.join('/'));
  const opArb: fc.Arbitrary<ModelOp> = fc.oneof(
    fc.record({ op: fc.constant('file' as const), path: pathArb, content: fc.string({ maxLength: 3 }) }),
    fc.record({ op: fc.constant('dir' as const), path: pathArb, mtime: fc.integer({ min: 1, max: 99 }) }),
    fc.record({ op: fc.constant('symlink' as const), path: pathArb, target: fc.constantFrom('a', '../b', '/c') }),
    fc.record({ op: fc.constant('whiteout' as const), path: pathArb }),
    fc.record({ op: fc.constant('opaque' as const), path: fc.oneof(fc.constant(''), pathArb) }),
  );

  it('property: the merged tree equals the model for random layer sequences', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(opArb, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }), async (layers) => {
        const model = new Map<string, MNode>();
        const { fl, spool } = await newFlattener();
        for (const [i, layer] of layers.entries()) {
          modelApply(model, layer);
          await fl.applyLayer(chunked(writeTar(layer.map(toSpec))), `L${i}`);
        }
        const got = new Map<string, MNode>();
        const walk = async (n: FsNode, p: string): Promise<void> => {
          for (const [name, c] of n.children ?? []) {
            const cp = p === '' ? name : `${p}/${name}`;
            const tag = c.kind === 'file' ? Buffer.from(await spoolContent(spool, c)).toString() : c.kind === 'dir' ? String(c.mtimeNs / 1_000_000_000n) : c.target!;
            got.set(cp, { kind: c.kind as MNode['kind'], tag });
            await walk(c, cp);
          }
        };
        await walk(fl.root, '');
        const sorted = (mm: Map<string, MNode>): [string, MNode][] => [...mm].sort(([a], [b]) => (a < b ? -1 : 1));
        expect(sorted(got)).toEqual(sorted(model));
        await spool.close();
      }),
      { numRuns: 300 },
    );
  });
});
