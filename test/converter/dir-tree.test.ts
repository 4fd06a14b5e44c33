import { createReadStream, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/errors.js';
import { readDirTree, startDirWalk } from '../../src/converter/dir-tree.js';
import { dataOrder } from '../../src/tree/walk.js';
import { LayerFlattener } from '../../src/converter/flatten.js';
import { Spool } from '../../src/converter/spool.js';
import { type FsNode, fromByteString } from '../../src/tree/types.js';
import { cleanup, debianRootfs, describeWithTools, run, tmpDir } from '../helpers/tools.js';
import { describeTree, spoolContent } from './helpers.js';

afterAll(cleanup);

const CAP = '0100000200040000000000000000000000000000';

/** A directory with one of everything; returns its path. */
async function makeSampleDir(): Promise<string> {
  const base = await tmpDir('bootfs-dirtree-');
  const dir = path.join(base, 'root');
  const script = `
    set -e
    mkdir -p root/sub/deeper && cd root
    printf 'hello' > file && chmod 4755 file
    ln file hardlink
    ln file sub/hardlink2
    printf '' > empty
    ln -s loop1 loop2 && ln -s loop2 loop1
    ln -s /etc/passwd abs
    mkfifo fifo
    mknod null c 1 3
    mknod disk b 8 17
    mknod bigdev c 300 70000
    printf 'latin' > $'caf\\xe9\\xff'
    printf 'x' > sub/deeper/${'n'.repeat(255)}
    mkdir sticky && chmod 1777 sticky
    setfattr -n user.test -v 0x0001ff file
    setfattr -n security.capability -v 0x${CAP} sub/deeper/${'n'.repeat(255)}
    setfattr -n user.dir -v 0x01 sub
    touch -h -d '@1609556645.123456789' file loop1 sticky
    # a socket inode (python leaves it behind; node's server.close() would unlink it)
    python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"
  `;
  const r = await run('bash', ['-c', script], { cwd: base });
  if (r.code !== 0) throw new Error(`setup failed: ${r.stderr.toString()}`);
  return dir;
}

function get(root: FsNode, p: string): FsNode | undefined {
  let n: FsNode | undefined = root;
  for (const c of p.split('/')) n = n?.children?.get(c);
  return n;
}

describeWithTools(['getfattr', 'setfattr', 'mknod', 'tar', 'python3'], 'readDirTree', () => {
  it('reads hardlinks, symlink loops, fifos, sockets, devices, xattrs and non-UTF-8 names', async () => {
    const dir = await makeSampleDir();
    const warnings: string[] = [];
    const root = await readDirTree(dir, { sourceIndex: 5, onWarning: (m) => warnings.push(m) });
    expect(warnings).toEqual([]);
    const file = get(root, 'file')!;
    expect(get(root, 'hardlink')).toBe(file);
    expect(get(root, 'sub/hardlink2')).toBe(file);
    expect(file.mode).toBe(0o4755);
    expect(file.mtimeNs).toBe(1_609_556_645_123_456_789n);
    expect(file.xattrs.get('user.test')).toEqual(Buffer.from([0x00, 0x01, 0xff]));
    expect(file.content).toEqual({ source: 5, offset: 0, size: 5, path: 'file' });
    expect(get(root, 'empty')!.content).toBeUndefined();
    expect([get(root, 'loop1')!.kind, get(root, 'loop1')!.target, get(root, 'loop2')!.target]).toEqual(['symlink', 'loop2', 'loop1']);
    expect(get(root, 'loop1')!.mtimeNs).toBe(1_609_556_645_123_456_789n);
    expect(get(root, 'abs')!.target).toBe('/etc/passwd');
    expect(get(root, 'fifo')!.kind).toBe('fifo');
    expect(get(root, 'sock')!.kind).toBe('socket');
    expect([get(root, 'null')!.kind, get(root, 'null')!.devMajor, get(root, 'null')!.devMinor]).toEqual(['char', 1, 3]);
    expect([get(root, 'disk')!.kind, get(root, 'disk')!.devMajor, get(root, 'disk')!.devMinor]).toEqual(['block', 8, 17]);
    expect([get(root, 'bigdev')!.devMajor, get(root, 'bigdev')!.devMinor]).toEqual([300, 70000]);
    const latin = get(root, 'caf\xe9\xff')!;
    expect(latin.content!.path).toBe('caf\xe9\xff');
    expect((await readFile(Buffer.concat([Buffer.from(dir + '/'), fromByteString(latin.content!.path!)]))).toString()).toBe('latin');
    const long = get(root, 'sub/deeper/' + 'n'.repeat(255))!;
    expect(long.xattrs.get('security.capability')!.toString('hex')).toBe(CAP);
    expect(long.content!.path).toBe('sub/deeper/' + 'n'.repeat(255));
    expect(get(root, 'sub')!.xattrs.get('user.dir')).toEqual(Buffer.from([1]));
    expect(get(root, 'sticky')!.mode).toBe(0o1777);
    expect(get(root, 'sticky')!.children!.size).toBe(0);
  });

  it('warns and reads no xattrs when getfattr is missing; getfattr: false skips them', async () => {
    const dir = await makeSampleDir();
    const warnings: string[] = [];
    const root = await readDirTree(dir, { sourceIndex: 0, getfattr: '/nonexistent/getfattr', onWarning: (m) => warnings.push(m) });
    expect(warnings.join('\n')).toMatch(/getfattr not found.*install the attr package/);
    expect(get(root, 'file')!.xattrs.size).toBe(0);
    const quiet = await readDirTree(dir, { sourceIndex: 0, getfattr: false, onWarning: (m) => warnings.push(m) });
    expect(get(quiet, 'file')!.xattrs.size).toBe(0);
    expect(warnings.length).toBe(1);
  });

  it('a missing directory is a NotFoundError', async () => {
    await expect(readDirTree('/nonexistent/bootfs-dir', { sourceIndex: 0 })).rejects.toThrow(NotFoundError);
  });

  it('interop: flattening a GNU tar of a directory gives the same tree as reading the directory', async () => {
    const dir = await makeSampleDir();
    // sockets cannot be archived; GNU tar warns and skips them
    await run('rm', [path.join(dir, 'sock')]);
    const tarFile = path.join(path.dirname(dir), 'layer.tar');
    for (const format of ['pax', 'gnu'] as const) {
      const args = [`--format=${format}`, '--numeric-owner', '-C', dir, '-cf', tarFile, '.'];
      if (format === 'pax') args.unshift('--xattrs', '--xattrs-include=*');
      const r = await run('tar', args);
      expect(r.code, r.stderr.toString()).toBe(0);
      const fromDir = await readDirTree(dir, { sourceIndex: 1 });
      const spool = await Spool.create(path.dirname(dir));
      try {
        const fl = new LayerFlattener({ spool, sourceIndex: 0 });
        await fl.applyLayer(createReadStream(tarFile), `gnu-tar-${format}`);
        const dirContent = async (n: FsNode): Promise<string> => (await readFile(Buffer.concat([Buffer.from(dir + '/'), fromByteString(n.content!.path!)]))).toString('hex');
        const spoolHex = async (n: FsNode): Promise<string> => (await spoolContent(spool, n)).toString('hex');
        // gnu format keeps whole seconds and no xattrs
        const res = format === 'gnu' ? 1_000_000_000n : 1n;
        const strip = <T extends { xattrs: string }>(recs: T[]): T[] => (format === 'gnu' ? recs.map((r) => ({ ...r, xattrs: '' })) : recs);
        const a = strip(await describeTree(fromDir, (n) => (n.content ? dirContent(n) : Promise.resolve('')), { mtimeResolution: res }));
        const b = strip(await describeTree(fl.root, (n) => spoolHex(n), { mtimeResolution: res }));
        expect(b).toEqual(a);
      } finally {
        await spool.close();
      }
    }
  });
});

describeWithTools(['getfattr', 'setfattr', 'mknod', 'python3'], 'startDirWalk', () => {
  it('hands out files in data order while it walks, and finishes to the same tree', async () => {
    const dir = await makeSampleDir();
    const setup = await run('bash', ['-c', 'mkdir -p a/b zz && printf 1 > a/b/f && printf 22 > a.b && printf 333 > zz/g && ln a/b/f zz/h'], { cwd: dir });
    expect(setup.code).toBe(0);
    const walk = await startDirWalk(dir, { sourceIndex: 0 });
    const it = walk.files[Symbol.iterator]();
    const first = it.next();
    expect(first.done).toBe(false);
    // Lazy: the first file came before the last directory was listed.
    expect(get(walk.root, 'zz')!.children!.size).toBe(0);
    const rest: FsNode[] = [];
    for (let r = it.next(); !r.done; r = it.next()) rest.push(r.value);
    const root = await walk.finish();
    expect(root).toBe(walk.root);
    const pulled = [first.value as FsNode, ...rest];
    // Exactly dataOrder: sorted depth-first (a, a/b/f, a.b, …), each hardlinked inode once.
    const order = dataOrder(root);
    expect(pulled.length).toBe(order.length);
    pulled.forEach((n, i) => expect(n).toBe(order[i]));
    expect(pulled.slice(0, 2).map((n) => n.content!.path)).toEqual(['a/b/f', 'a.b']);
    expect(get(root, 'zz/h')).toBe(get(root, 'a/b/f'));
    // xattrs arrive at finish.
    expect(get(root, 'file')!.xattrs.get('user.test')).toEqual(Buffer.from('0001ff', 'hex'));
    expect(await readDirTree(dir, { sourceIndex: 0 })).toEqual(root);
  });
});

describe('interop: the Debian rootfs fixture', () => {
  // In a hook: building the fixture (when scripts/test has not) gets the hook timeout, not the test's.
  let fx: ReturnType<typeof debianRootfs>;
  beforeAll(() => {
    fx = debianRootfs();
  });

  it('flatten(rootfs.tar) equals readDirTree(rootfs/), contents included', async () => {
    const spool = await Spool.create(await tmpDir('bootfs-rootfs-'));
    try {
      const fl = new LayerFlattener({ spool, sourceIndex: 0 });
      const t0 = performance.now();
      const stats = await fl.applyLayer(createReadStream(fx.tar, { highWaterMark: 1 << 20 }), 'debian-rootfs.tar');
      const secs = (performance.now() - t0) / 1000;
      process.stderr.write(`flatten ${fx.tar}: ${stats.entries} entries, ${stats.bytes} file bytes in ${secs.toFixed(2)} s\n`);
      const fromDir = await readDirTree(fx.dir, { sourceIndex: 1 });
      const hash = async (it: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<string> => {
        const { createHash } = await import('node:crypto');
        const h = createHash('sha256');
        for await (const c of it) h.update(c);
        return h.digest('hex');
      };
      const a = await describeTree(fromDir, (n) => (n.content ? hash(createReadStream(Buffer.concat([Buffer.from(fx.dir + '/'), fromByteString(n.content.path!)]))) : hash([])));
      const b = await describeTree(fl.root, (n) => (n.content ? hash(spool.readRange(n.content.offset, n.content.size)) : hash([])));
      expect(b.length).toBeGreaterThan(5000);
      expect(b).toEqual(a);
      expect(existsSync(spool.path)).toBe(true);
    } finally {
      await spool.close();
    }
  }, 300_000);
});
