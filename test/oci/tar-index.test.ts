import { open, readFile, writeFile, mkdir, symlink, truncate, link } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageFormatError } from '../../src/oci/errors.js';
import { readExact } from '../../src/oci/read.js';
import { TarSource } from '../../src/oci/source.js';
import { indexTar, normalizeMemberName } from '../../src/oci/tar-index.js';
import { cleanup, run, tmpDir } from '../helpers/tools.js';
import { rejection, tarBytes } from './fixtures.js';

afterAll(cleanup);

async function contents(src: TarSource, name: string): Promise<string | undefined> {
  const loc = await src.locate(name);
  return loc ? (await readExact(loc, loc.size, name)).toString() : undefined;
}

describe('tar index', () => {
  it('normalises member names and drops those that leave the archive', () => {
    expect(normalizeMemberName('./a/b')).toBe('a/b');
    expect(normalizeMemberName('/a//b/')).toBe('a/b');
    expect(normalizeMemberName('a/./b')).toBe('a/b');
    expect(normalizeMemberName('../x')).toBeUndefined();
    expect(normalizeMemberName('a/../../x')).toBeUndefined();
    expect(normalizeMemberName('./')).toBeUndefined();
  });

  // GNU tar writes long names as L records (gnu), pax headers (pax) or the ustar prefix field.
  it.each(['gnu', 'pax', 'ustar'])('reads GNU tar --format=%s archives, long names and links', async (format) => {
    const dir = await tmpDir('bootfs-tar-');
    const tree = path.join(dir, 'tree');
    const longDir = path.join(tree, 'd'.repeat(60), 'e'.repeat(60));
    await mkdir(longDir, { recursive: true });
    await writeFile(path.join(longDir, 'f'.repeat(80)), 'long\n');
    await writeFile(path.join(tree, 'small'), 'small\n');
    await symlink('small', path.join(tree, 'sym'));
    await link(path.join(tree, 'small'), path.join(tree, 'hard'));
    const archive = path.join(dir, `t-${format}.tar`);
    const r = await run('tar', [`--format=${format}`, '-C', tree, '-cf', archive, '.']);
    expect(r.code, r.stderr.toString()).toBe(0);
    const src = await TarSource.open(archive, 'test');
    expect(await contents(src, 'small')).toBe('small\n');
    expect(await contents(src, `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(80)}`)).toBe('long\n');
    expect(await contents(src, 'sym')).toBe('small\n');
    expect(await contents(src, 'hard')).toBe('small\n');
    expect(await contents(src, 'missing')).toBeUndefined();
  });

  it('follows docker-save style symlinks and refuses links out of the archive', async () => {
    const dir = await tmpDir('bootfs-tar-');
    const file = path.join(dir, 'a.tar');
    await writeFile(
      file,
      tarBytes([
        { name: 'abc.tar', data: 'layer' },
        { name: 'id1/layer.tar', type: 'symlink', target: '../abc.tar' },
        { name: 'evil', type: 'symlink', target: '../../etc/passwd' },
        { name: 'abs', type: 'symlink', target: '/etc/passwd' },
        { name: 'loop1', type: 'symlink', target: 'loop2' },
        { name: 'loop2', type: 'symlink', target: 'loop1' },
        { name: '../escape', data: 'x' },
      ]),
    );
    const src = await TarSource.open(file, 'test');
    expect(await contents(src, 'id1/layer.tar')).toBe('layer');
    expect(await src.locate('escape')).toBeUndefined();
    for (const name of ['evil', 'abs']) {
      const err = await rejection(src.locate(name));
      expect(err).toBeInstanceOf(ImageFormatError);
      expect(err.message).toMatch(/links outside the archive/);
    }
    expect((await rejection(src.locate('loop1'))).message).toMatch(/chain of more than/);
  });

  it('refuses truncated, corrupt and compressed archives', async () => {
    const dir = await tmpDir('bootfs-tar-');
    const good = tarBytes([{ name: 'a', data: 'x'.repeat(2000) }]);
    const truncated = path.join(dir, 'trunc.tar');
    await writeFile(truncated, good.subarray(0, 1200));
    expect((await rejection(TarSource.open(truncated, 'test'))).message).toMatch(/runs past the end of the file/);

    const corrupt = path.join(dir, 'corrupt.tar');
    const c = Buffer.from(good);
    c[10] = 0x41;
    await writeFile(corrupt, c);
    expect((await rejection(TarSource.open(corrupt, 'test'))).message).toMatch(/is not a tar archive/);

    const gz = path.join(dir, 'a.tar.gz');
    await writeFile(gz, gzipSync(good));
    const err = await rejection(TarSource.open(gz, 'test'));
    expect(err).toBeInstanceOf(ImageFormatError);
    expect(err.message).toMatch(/gzip-compressed; decompress it first/);
  });

  it('tolerates a missing end-of-archive marker and stops at the first zero block', async () => {
    const dir = await tmpDir('bootfs-tar-');
    const file = path.join(dir, 'noend.tar');
    const full = tarBytes([{ name: 'a', data: 'hello' }]);
    await writeFile(file, full);
    await truncate(file, 1024); // header + one data block, no trailer
    const fh = await open(file, 'r');
    try {
      const members = await indexTar(fh, 'test');
      expect([...members.keys()]).toEqual(['a']);
    } finally {
      await fh.close();
    }
    expect((await readFile(file)).length).toBe(1024);
  });
});
