import fc from 'fast-check';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BootfsError, UsageError } from '../../src/errors.js';
import { DEFAULT_TAR_LIMITS, LayerFormatError, readTar, resolveTarLimits } from '../../src/converter/tar-reader.js';
import { cleanup, run, tmpDir } from '../helpers/tools.js';
import { expectBootfsError, readAll, rejection } from './helpers.js';
import { chunked, entry, member, paxBody, writeTar } from './tar-writer.js';

afterAll(cleanup);

const L = 'sha256:feedface';
const fails = async (tar: Buffer, mentions: (string | RegExp)[], opts: Parameters<typeof readAll>[1] = {}): Promise<LayerFormatError> => {
  const err = await rejection(readAll(tar, { layer: L, ...opts }));
  expectBootfsError(err, LayerFormatError, L, mentions);
  expect((err as LayerFormatError).code).toBe('ERR_LAYER');
  expect((err as LayerFormatError).exitCode).toBe(3);
  return err as LayerFormatError;
};

describe('readTar: formats', () => {
  it('reads every ustar entry type with its metadata', async () => {
    const tar = writeTar([
      { path: 'd/', mode: 0o1777, uid: 5, gid: 6, mtime: 1_600_000_000 },
      { path: 'd/f', data: 'hello', mode: 0o4755, uid: 1000, gid: 100 },
      { path: 'd/h', type: '1', linkPath: 'd/f' },
      { path: 'd/s', type: '2', linkPath: '../x/y' },
      { path: 'dev/null', type: '3', devMajor: 1, devMinor: 3, mode: 0o666 },
      { path: 'dev/sda', type: '4', devMajor: 8, devMinor: 0 },
      { path: 'p', type: '6' },
      { path: 'c', type: '7', data: 'contig' },
      { path: 'typed-as-type-bits', mode: 0o100644, data: '' },
    ]);
    const es = await readAll(tar);
    expect(es.map((e) => [e.type, e.path, e.linkPath, e.mode.toString(8), e.body.toString()])).toEqual([
      ['dir', 'd/', '', '1777', ''],
      ['file', 'd/f', '', '4755', 'hello'],
      ['hardlink', 'd/h', 'd/f', '644', ''],
      ['symlink', 'd/s', '../x/y', '644', ''],
      ['char', 'dev/null', '', '666', ''],
      ['block', 'dev/sda', '', '644', ''],
      ['fifo', 'p', '', '644', ''],
      ['file', 'c', '', '644', 'contig'],
      ['file', 'typed-as-type-bits', '', '644', ''],
    ]);
    expect(es[0]!.mtimeNs).toBe(1_600_000_000_000_000_000n);
    expect([es[1]!.uid, es[1]!.gid, es[1]!.size]).toEqual([1000, 100, 5]);
    expect([es[4]!.devMajor, es[4]!.devMinor, es[5]!.devMajor]).toEqual([1, 3, 8]);
  });

  it('accepts signed and unsigned checksums', async () => {
    const name = Buffer.from('caf\xe9-\xff', 'latin1');
    for (const checksum of ['signed', 'unsigned'] as const) {
      const es = await readAll(writeTar([{ path: name, data: 'x', checksum }]));
      expect(Buffer.from(es[0]!.path, 'latin1')).toEqual(name);
    }
  });

  it('keeps names as raw bytes (not UTF-8 decoded)', async () => {
    const name = Buffer.from([0x66, 0xff, 0xfe, 0x80, 0x2f, 0xc3, 0xa9]);
    const es = await readAll(writeTar([{ path: name, data: '' }, { path: 'l', type: '2', linkPath: Buffer.from([0xff]) }]));
    expect(Buffer.from(es[0]!.path, 'latin1')).toEqual(name);
    expect(es[1]!.linkPath).toBe('\xff');
  });

  it('joins the ustar prefix field, but not in GNU headers', async () => {
    const prefixed = member({ path: 'name', data: 'p', mutate: (h) => h.write('some/prefix', 345, 'latin1') });
    const gnu = member({ path: 'g', format: 'gnu', mutate: (h) => h.write('12345', 345, 'latin1') });
    const es = await readAll(writeTar([prefixed, gnu]));
    expect(es.map((e) => e.path)).toEqual(['some/prefix/name', 'g']);
  });

  it('reads v7 headers and treats a \\0 type with a trailing slash as a directory', async () => {
    const es = await readAll(writeTar([{ path: 'olddir/', type: '\0', format: 'v7' }, { path: 'oldfile', type: '\0', format: 'v7', data: 'v7' }]));
    expect(es.map((e) => [e.type, e.path, e.body.toString()])).toEqual([
      ['dir', 'olddir/', ''],
      ['file', 'oldfile', 'v7'],
    ]);
  });

  it('reads base-256 numbers (large uid, negative mtime, large size)', async () => {
    const es = await readAll(
      writeTar([{ path: 'f', data: 'abc', base256: { uid: 3_000_000_000n, gid: 7n, mtime: -86400n, size: 3n } }]),
    );
    expect([es[0]!.uid, es[0]!.gid, es[0]!.mtimeNs, es[0]!.body.toString()]).toEqual([3_000_000_000, 7, -86_400_000_000_000n, 'abc']);
  });

  it('applies GNU long names and long links', async () => {
    const long = 'd/'.repeat(100) + 'f'.repeat(200);
    const es = await readAll(writeTar([{ path: long, data: 'x', gnuLongNames: true }, { path: 'h', type: '1', linkPath: long, gnuLongNames: true }]));
    expect(es.map((e) => [e.path, e.linkPath])).toEqual([
      [long, ''],
      ['h', long],
    ]);
  });

  it('applies PAX records: path, linkpath, size, uid, gid, mtime, xattrs, device numbers', async () => {
    const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const cap = Buffer.from('0100000200040000000000000000000000000000', 'hex');
    const tar = writeTar([
      {
        path: 'short',
        data: 'data!',
        pax: [
          ['path', 'p/'.repeat(80) + 'file'],
          ['uid', '4000000000'],
          ['gid', '12'],
          ['mtime', '1609556645.123456789123'],
          ['SCHILY.xattr.security.capability', cap],
          ['SCHILY.xattr.user.all', allBytes],
          ['SCHILY.xattr.user.empty', ''],
          [Buffer.from('SCHILY.xattr.user.\xff', 'latin1'), 'v=w'],
          ['LIBARCHIVE.xattr.user.b%3Dq%00', Buffer.from([0, 1, 0xff]).toString('base64')],
          ['atime', '1'],
          ['comment', 'ignored'],
          ['uname', 'ignored'],
        ],
      },
      { path: 'l', type: '2', pax: [['linkpath', 't'.repeat(300)]] },
      { path: 'neg', pax: [['mtime', '-1.5']] },
      { path: 'dev', type: '3', pax: [['SCHILY.devmajor', '4000'], ['SCHILY.devminor', '1048575']] },
      { path: 'sized', data: Buffer.alloc(700, 7), size: 1, pax: [['size', '700']] },
      { path: 'empty-path-record', data: 'e', pax: [['path', '']] },
    ]);
    const es = await readAll(tar);
    const [f, l, neg, dev, sized, emptyPath] = es;
    expect(f!.path).toBe('p/'.repeat(80) + 'file');
    expect([f!.uid, f!.gid, f!.mtimeNs]).toEqual([4_000_000_000, 12, 1_609_556_645_123_456_789n]);
    expect(f!.xattrs.get('security.capability')).toEqual(cap);
    expect(f!.xattrs.get('user.all')).toEqual(allBytes);
    expect(f!.xattrs.get('user.empty')).toEqual(Buffer.alloc(0));
    expect(f!.xattrs.get('user.\xff')).toEqual(Buffer.from('v=w'));
    expect(f!.xattrs.get('user.b=q\0')).toEqual(Buffer.from([0, 1, 0xff]));
    expect(f!.body.toString()).toBe('data!');
    expect(l!.linkPath).toBe('t'.repeat(300));
    expect(neg!.mtimeNs).toBe(-1_500_000_000n);
    expect([dev!.devMajor, dev!.devMinor]).toEqual([4000, 1048575]);
    expect(sized!.body).toEqual(Buffer.alloc(700, 7));
    expect(emptyPath!.path).toBe('empty-path-record');
  });

  it('skips PAX global headers and GNU volume labels', async () => {
    const g = member({ path: 'pax_global_header', type: 'g', data: paxBody([['comment', 'abc'], ['path', 'evil']]) });
    const v = member({ path: 'volume', type: 'V', data: 'label data' });
    const es = await readAll(writeTar([g, v, { path: 'a', data: 'A' }]));
    expect(es.map((e) => e.path)).toEqual(['a']);
  });

  it('gives the same entries whatever the input chunking', async () => {
    const tar = writeTar([
      { path: 'x'.repeat(150), data: Buffer.alloc(1000, 1) },
      { path: 'y', data: Buffer.alloc(513, 2), pax: [['SCHILY.xattr.user.a', 'b']] },
      { path: 'z', data: '' },
    ]);
    const want = await readAll(tar);
    for (const chunk of [1, 7, 511, 512, 513, 4096]) {
      expect(await readAll(tar, {}, chunk)).toEqual(want);
    }
  });

  it('skips unread data and refuses reads after moving on', async () => {
    const tar = writeTar([{ path: 'a', data: Buffer.alloc(5000, 1) }, { path: 'b', data: 'B' }]);
    const it = readTar(chunked(tar, 100), { layer: L });
    const a = (await it.next()).value!;
    const reader = a.data[Symbol.asyncIterator]();
    const first = (await reader.next()).value!.length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(100);
    const b = (await it.next()).value!;
    expect(b.path).toBe('b');
    await expect(reader.next()).rejects.toThrow(/after moving on/);
    const parts: Uint8Array[] = [];
    for await (const c of b.data) parts.push(c);
    expect(Buffer.concat(parts).toString()).toBe('B');
    expect((await it.next()).done).toBe(true);
  });

  it('accepts a lone zero block at the end and ignores (but reads) data after the end marker', async () => {
    expect((await readAll(writeTar([{ path: 'a' }], { end: 1 }))).length).toBe(1);
    let pulled = 0;
    async function* src(): AsyncGenerator<Uint8Array> {
      yield writeTar([{ path: 'a' }]);
      pulled++;
      yield Buffer.from('trailing junk, e.g. blocking-factor padding');
      pulled++;
    }
    expect((await readAll(src())).length).toBe(1);
    expect(pulled).toBe(2);
  });

  it('closes the source when it stops early (error or break)', async () => {
    let closed = 0;
    async function* src(buf: Buffer): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; i < buf.length; i += 512) yield buf.subarray(i, i + 512);
      } finally {
        closed++;
      }
    }
    await expect(readAll(src(writeTar([{ path: 'a' }, { path: 'b', checksum: 'bad' }, { path: 'c' }])))).rejects.toThrow(LayerFormatError);
    expect(closed).toBe(1);
    for await (const e of readTar(src(writeTar([{ path: 'a' }, { path: 'b' }])), { layer: L })) {
      expect(e.path).toBe('a');
      break;
    }
    expect(closed).toBe(2);
  });

  it('validates limits', () => {
    expect(resolveTarLimits()).toEqual(DEFAULT_TAR_LIMITS);
    expect(DEFAULT_TAR_LIMITS).toEqual({ maxEntries: 1_000_000, maxPaxHeaderSize: 1 << 20, maxPathLength: 4096, maxFileSize: 64 * 2 ** 30 });
    expect(resolveTarLimits({ maxEntries: 3 }).maxEntries).toBe(3);
    expect(() => resolveTarLimits({ maxFileSize: -1 })).toThrow(UsageError);
    expect(() => resolveTarLimits({ maxPathLength: 1.5 })).toThrow(/maxPathLength/);
  });
});

describe('readTar: hostile and broken archives', () => {
  it('bad checksum', async () => {
    await fails(writeTar([{ path: 'ok', data: 'x' }, { path: 'broken', checksum: 'bad' }]), ['"broken"', 'checksum', 'at byte 1024']);
  });

  it('negative size in base-256', async () => {
    await fails(writeTar([{ path: 'neg', base256: { size: -5n } }]), ['"neg"', 'negative size']);
  });

  it('non-numeric size, uid or PAX values', async () => {
    await fails(writeTar([{ path: 'bad-octal', mutate: (h) => h.write('12x', 124, 'latin1') }]), ['"bad-octal"', 'size field']);
    await fails(writeTar([{ path: 'bad-uid', mutate: (h) => h.write('9', 108, 'latin1') }]), ['"bad-uid"', 'uid field']);
    await fails(writeTar([{ path: 'p', pax: [['size', '-1']] }]), ['"p"', 'PAX size']);
    await fails(writeTar([{ path: 'p', pax: [['uid', '12a']] }]), ['"p"', 'PAX uid']);
    await fails(writeTar([{ path: 'p', pax: [['gid', '99999999999']] }]), ['"p"', 'out of range']);
    await fails(writeTar([{ path: 'p', pax: [['mtime', '1e9']] }]), ['"p"', 'PAX mtime']);
    await fails(writeTar([{ path: 'p', pax: [['LIBARCHIVE.xattr.user.x', '!!!']] }]), ['"p"', 'base64']);
  });

  it('NUL byte inside a PAX path or linkpath, or a GNU long name', async () => {
    await fails(writeTar([{ path: 'x', pax: [['path', 'evil\0/../../etc/passwd']] }]), ['NUL', 'PAX path']);
    await fails(writeTar([{ path: 'x', type: '2', pax: [['linkpath', 'a\0b']] }]), ['"x"', 'NUL']);
    await fails(writeTar([member({ path: '././@LongLink', type: 'L', data: 'ab\0cd\0' }), { path: 'x' }]), ['NUL']);
  });

  it('PAX header above the cap', async () => {
    const big = writeTar([{ path: 'big', pax: [['comment', 'c'.repeat(2000)]] }]);
    await fails(big, ['"PaxHeader"', 'PAX header of 2014 bytes exceeds the limit of 1024'], { limits: { maxPaxHeaderSize: 1024 } });
    // the default cap is 1 MiB
    const huge = writeTar([member({ path: 'PaxHeader', type: 'x', size: (1 << 20) + 1 })]);
    await fails(huge, ['exceeds the limit of 1048576']);
  });

  it('malformed PAX records', async () => {
    for (const body of ['5 a=b\n', '100 a=b\n', '7 =bc\n', '6 abc\n', 'x a=b\n', '7 a=bc!']) {
      await fails(writeTar([member({ path: 'PaxHeader', type: 'x', data: body }), { path: 'f' }]), ['"PaxHeader"', /PAX record/]);
    }
  });

  it('entry count above the cap', async () => {
    const tar = writeTar(Array.from({ length: 4 }, (_, i) => ({ path: `f${i}` })));
    expect((await readAll(tar, { limits: { maxEntries: 4 } })).length).toBe(4);
    await fails(tar, ['"f3"', 'more than 3 entries'], { limits: { maxEntries: 3 } });
  });

  it('path and link target length', async () => {
    await fails(writeTar([{ path: 'a/'.repeat(2048) + 'b' }]), ['path of 4097 bytes exceeds the limit of 4096']);
    await fails(writeTar([{ path: 'x'.repeat(200), gnuLongNames: true }]), ['exceeds the path limit of 100'], { limits: { maxPathLength: 100 } });
    await fails(writeTar([{ path: 's', type: '2', linkPath: 'x'.repeat(200) }]), ['"s"', 'link target of 200 bytes'], { limits: { maxPathLength: 100 } });
  });

  it('file size above the cap', async () => {
    await fails(writeTar([{ path: 'f', data: Buffer.alloc(1000) }]), ['"f"', 'size 1000 exceeds the limit of 999'], { limits: { maxFileSize: 999 } });
    // 65 GiB via base-256, no data needed to fail
    await fails(writeTar([{ path: 'f', base256: { size: 65n << 30n } }]), ['"f"', 'exceeds the limit of 68719476736']);
  });

  it('size larger than the remaining data (truncated)', async () => {
    const tar = writeTar([{ path: 'a', data: 'A' }, { path: 'short', data: 'only this', size: 100_000 }]);
    await fails(tar, ['"short"', 'truncated inside the entry data', 'at byte 1024']);
  });

  it('truncated mid-header or mid-data fails; a missing end marker at a header boundary is the end (as Go archive/tar, for umoci layers)', async () => {
    const tar = writeTar([{ path: 'a', data: Buffer.alloc(2000, 1) }, { path: 'b' }], { end: 0 });
    await fails(tar.subarray(0, 300), ['truncated inside a header']);
    await fails(tar.subarray(0, 1000), ['"a"', 'truncated inside the entry data']);
    await fails(tar.subarray(0, 2560 + 100), ['truncated inside a header', 'after entry "a"']);
    expect((await readAll(tar)).map((e) => e.path)).toEqual(['a', 'b']);
    await fails(Buffer.concat([tar, Buffer.alloc(512), Buffer.from('x')]), ['data after a zero block']);
    expect(await readAll(Buffer.alloc(0))).toEqual([]);
    await fails(writeTar([member({ path: 'PaxHeader', type: 'x', data: paxBody([['path', 'p']]) })]), ['PAX or long-name header with no entry']);
  });

  it('sparse files are not supported', async () => {
    await fails(writeTar([{ path: 'sparse', type: 'S', format: 'gnu' }]), ['"sparse"', 'sparse files are not supported']);
    await fails(writeTar([{ path: 'GNUSparseFile.0/s', pax: [['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', 's']] }]), [
      'sparse files are not supported',
    ]);
  });

  it('unknown entry types name the entry', async () => {
    await fails(writeTar([{ path: 'weird', type: 'Z' }]), ['"weird"', "unsupported entry type 'Z'"]);
    await fails(writeTar([{ path: 'ctl', type: '\x01' }]), ['"ctl"', 'unsupported entry type 0x01']);
    await fails(writeTar([{ path: 'mv', type: 'M' }]), ['"mv"', 'multi-volume']);
  });

  it('too many metadata headers before one entry', async () => {
    const x = member({ path: 'PaxHeader', type: 'x', data: paxBody([['comment', 'c']]) });
    await fails(writeTar([...Array.from({ length: 17 }, () => x), { path: 'f' }]), ['more than 16 PAX/long-name headers']);
  });

  it('property: byte mutations and truncations never crash with a non-BootfsError, never hang', async () => {
    const base = writeTar([
      { path: 'd/', mode: 0o755 },
      { path: 'd/f', data: 'hello world', pax: [['SCHILY.xattr.user.a', Buffer.from([0, 1, 2])], ['mtime', '1.5']] },
      { path: 'd/' + 'long'.repeat(40), data: Buffer.alloc(600, 3), gnuLongNames: true },
      { path: 'd/l', type: '1', linkPath: 'd/f' },
      { path: 'd/s', type: '2', linkPath: 'f' },
      { path: 'dev', type: '3', devMajor: 1, devMinor: 2 },
      member({ path: 'g', type: 'g', data: paxBody([['comment', 'x']]) }),
    ]);
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(base.length - 1), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat(base.length), value: fc.constant(0) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(base.length), value: fc.integer({ min: 0, max: 255 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 2048 }), async (muts, chunk) => {
        let buf = Buffer.from(base);
        for (const m of muts) {
          if (m.kind === 'set') buf[Math.min(m.at, buf.length - 1)] = m.value;
          else if (m.kind === 'cut') buf = buf.subarray(0, m.at);
          else buf = Buffer.concat([buf.subarray(0, m.at), Buffer.from([m.value]), buf.subarray(m.at)]);
        }
        try {
          await readAll(buf, { layer: L }, chunk);
        } catch (err) {
          if (!(err instanceof BootfsError)) throw err;
          expect(err.message).toContain(L);
        }
      }),
      // `timeout`: a run that takes this long counts as a hang
      { numRuns: Number(process.env.BOOTFS_FUZZ_RUNS ?? 400), timeout: 5000 },
    );
  });

  it('property: mutations of the checksummed fields are caught by the checksum', async () => {
    const base = writeTar([{ path: 'file', data: 'x', uid: 1, mode: 0o644 }]);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 511 }).filter((i) => i < 148 || i >= 156), fc.integer({ min: 1, max: 255 }), async (at, delta) => {
        const buf = Buffer.from(base);
        buf[at] = (buf[at]! + delta) & 0xff;
        await fails(buf, ['checksum']);
      }),
      { numRuns: 100 },
    );
  });
});

describe('readTar: GNU tar interop', () => {
  it('reads pax and gnu archives written by GNU tar', async () => {
    const dir = await tmpDir('bootfs-tar-');
    const src = path.join(dir, 'src');
    const cap = '0x0100000200040000000000000000000000000000';
    const long = 'l'.repeat(120) + '/' + 'n'.repeat(255);
    const script = `
      set -e
      mkdir -p src/${long.split('/')[0]} && cd src
      printf 'hello' > file && chmod 4755 file
      printf 'long' > ${long}
      ln file hardlink
      ln -s ${'t'.repeat(150)} longlink
      mkdir sticky && chmod 1777 sticky
      mkfifo fifo
      mknod null c 1 3
      printf 'bin' > $'\\xff\\xfename'
      setfattr -n user.bin -v 0x00ff01 file
      setfattr -n security.capability -v ${cap} file
      touch -h -d '@1609556645.123456789' file hardlink sticky fifo null longlink
    `;
    const r = await run('bash', ['-c', script], { cwd: dir });
    expect(r.stderr.toString()).toBe('');
    const list = ['file', 'hardlink', long, 'longlink', 'sticky', 'fifo', 'null', '\xff\xfename'];
    const pax = await run('tar', ['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '--owner=0', '--group=0', '-C', src, '-cf', path.join(dir, 'pax.tar'), '.']);
    expect(pax.code).toBe(0);
    const gnu = await run('tar', ['--format=gnu', '--numeric-owner', '--owner=3000000000', '--group=7', '-C', src, '-cf', path.join(dir, 'gnu.tar'), '.']);
    expect(gnu.code).toBe(0);

    const paxEntries = await readAll(await readFile(path.join(dir, 'pax.tar')), {}, 10_000);
    const byPath = new Map(paxEntries.map((e) => [e.path.replace(/^\.\//, '').replace(/\/$/, ''), e]));
    for (const p of list) expect(byPath.has(p), p).toBe(true);
    const file = byPath.get('file')!;
    expect(file.mode).toBe(0o4755);
    expect(file.body.toString()).toBe('hello');
    expect(file.mtimeNs).toBe(1_609_556_645_123_456_789n);
    expect(file.xattrs.get('security.capability')!.toString('hex')).toBe(cap.slice(2));
    expect(file.xattrs.get('user.bin')).toEqual(Buffer.from([0, 0xff, 1]));
    expect(byPath.get('hardlink')!.type).toBe('hardlink');
    expect(byPath.get('hardlink')!.linkPath).toBe('./file');
    expect(byPath.get(long)!.body.toString()).toBe('long');
    expect(byPath.get('longlink')!.linkPath).toBe('t'.repeat(150));
    expect(byPath.get('sticky')!.mode).toBe(0o1777);
    expect(byPath.get('fifo')!.type).toBe('fifo');
    expect([byPath.get('null')!.type, byPath.get('null')!.devMajor, byPath.get('null')!.devMinor]).toEqual(['char', 1, 3]);
    expect(byPath.get('\xff\xfename')!.body.toString()).toBe('bin');

    const gnuEntries = await readAll(await readFile(path.join(dir, 'gnu.tar')), {}, 777);
    const g = new Map(gnuEntries.map((e) => [e.path.replace(/^\.\//, '').replace(/\/$/, ''), e]));
    expect(g.get(long)!.body.toString()).toBe('long');
    expect(g.get('longlink')!.linkPath).toBe('t'.repeat(150));
    expect(g.get('file')!.uid).toBe(3_000_000_000); // base-256 in a GNU header
    expect(g.get('file')!.gid).toBe(7);
    expect(g.get('file')!.mtimeNs % 1_000_000_000n).toBe(0n);
    expect(g.get('\xff\xfename')!.body.toString()).toBe('bin');
  });
});

describe('readTar: entry objects', () => {
  it('passes entries through without buffering whole files', async () => {
    const big = Buffer.alloc(3 << 20, 9);
    let maxChunk = 0;
    for await (const e of readTar(chunked(writeTar([{ path: 'big', data: big }]), 65536), { layer: L })) {
      for await (const c of e.data) maxChunk = Math.max(maxChunk, c.length);
    }
    expect(maxChunk).toBeLessThanOrEqual(65536);
  });

  it('entry() helper round trip sanity', () => {
    expect(entry({ path: 'x' }).length).toBe(512);
  });
});
