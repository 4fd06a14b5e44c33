/** `bootfs mount`, `umount` and `cache` on bad input: clear errors, the documented exit codes, no mount left behind. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMounted } from '../helpers/mount.js';
import { removeTree, tmpDir } from '../helpers/tools.js';
import { bootfs } from './cli-helpers.js';

describe('bootfs mount / umount / cache: usage and bad input', () => {
  let dir: string;
  let index: string;
  let store: string;
  beforeAll(async () => {
    dir = await tmpDir('bootfs-mount-cli-');
    const tree = path.join(dir, 'tree');
    await mkdir(path.join(tree, 'etc'), { recursive: true });
    await writeFile(path.join(tree, 'etc', 'hostname'), 'box\n');
    index = path.join(dir, 'x.bootfs');
    store = path.join(dir, 'store');
    const c = await bootfs(['convert', `dir:${tree}`, '--store', store, '-o', index]);
    expect(c.code, c.stderr).toBe(0);
  });
  afterAll(async () => {
    if (dir) await removeTree(dir);
  });

  it('--help teaches: read path, cache, timeout, examples', async () => {
    const r = await bootfs(['mount', '--help']);
    expect(r.code).toBe(0);
    for (const word of ['--cache', '--cache-max-size', '--allow-other', '--timeout', '--metrics', '--stats-file', 'EIO', 'Examples:', 'bootfs umount']) expect(r.stdout).toContain(word);
    const c = await bootfs(['cache', '--help']);
    for (const word of ['warm', 'gc', 'stats']) expect(c.stdout).toContain(word);
  });

  it('refuses a mount without a store, a missing index, a missing mountpoint and a bad index', async () => {
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt, { recursive: true });
    const noStore = await bootfs(['mount', index, mnt], { env: { ...process.env, BOOTFS_STORE: '' } });
    expect(noStore.code).toBe(1);
    expect(noStore.stderr).toContain('--store');
    const noIndex = await bootfs(['mount', path.join(dir, 'nope.bootfs'), mnt, '-s', store]);
    expect(noIndex.code).toBe(2);
    expect(noIndex.stderr).toContain('nope.bootfs');
    const noMnt = await bootfs(['mount', index, path.join(dir, 'no-such-dir'), '-s', store]);
    expect(noMnt.code).toBe(2);
    expect(noMnt.stderr).toContain('no-such-dir');
    const bad = path.join(dir, 'bad.bootfs');
    await writeFile(bad, 'not an index at all');
    const badIndex = await bootfs(['mount', bad, mnt, '-s', store]);
    expect(badIndex.code).toBe(3);
    expect(badIndex.stderr).toContain('bad.bootfs');
    const onFile = await bootfs(['mount', index, bad, '-s', store]);
    expect(onFile.code).toBe(1);
    expect(onFile.stderr).toContain('not a directory');
    const maxNoCache = await bootfs(['mount', index, mnt, '-s', store, '--cache-max-size', '1G']);
    expect(maxNoCache.code).toBe(1);
    expect(maxNoCache.stderr).toContain('--cache-max-size needs --cache');
    expect(isMounted(mnt)).toBe(false);
  });

  it('cache commands: missing directory → 2, bad sizes → 1, warm needs a cache and a store', async () => {
    const gc = await bootfs(['cache', 'gc', path.join(dir, 'no-cache'), '--max-size', '1G']);
    expect(gc.code).toBe(2);
    const size = await bootfs(['cache', 'gc', dir, '--max-size', 'lots']);
    expect(size.code).toBe(1);
    expect(size.stderr).toContain('lots');
    const warm = await bootfs(['cache', 'warm', index, '-s', store], { env: { ...process.env, BOOTFS_CACHE: '' } });
    expect(warm.code).toBe(1);
    expect(warm.stderr).toContain('--cache');
    const missingPath = await bootfs(['cache', 'warm', index, 'etc/nope', '-c', path.join(dir, 'c'), '-s', store]);
    expect(missingPath.code).toBe(2);
    const ok = await bootfs(['cache', 'warm', index, '-c', path.join(dir, 'c'), '-s', store, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ chunks: 1, fetched: 1, cached: 0 });
    const again = await bootfs(['cache', 'warm', index, '-c', path.join(dir, 'c'), '-s', store, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ chunks: 1, fetched: 0, cached: 1 });
    const stats = await bootfs(['cache', 'stats', path.join(dir, 'c'), '--json']);
    expect(JSON.parse(stats.stdout)).toMatchObject({ chunks: 1, locks: 0 });
  });

  it('umount of something that is not mounted fails clearly', async () => {
    const r = await bootfs(['umount', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(dir);
  });
});
