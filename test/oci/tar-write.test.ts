// writeTarLayer: deterministic bytes, correct digests, PAX for what ustar cannot hold; judged by
// bootfs's own tar reader and by GNU tar (list and extract as root, with owners and modes).
import { createHash, randomBytes } from 'node:crypto';
import { lstat, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTar } from '../../src/converter/tar-reader.js';
import { UsageError } from '../../src/errors.js';
import { writeTarLayer, type TarEntry } from '../../src/oci/tar-write.js';
import { cleanup, describeWithTools, run, tmpDir } from '../helpers/tools.js';
import { rejection } from './fixtures.js';

afterAll(cleanup);

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A path over 100 bytes (PAX `path`), with a long directory component. */
const LONG_FILE = `deep/${'d'.repeat(120)}/${'f'.repeat(150)}.txt`;
const LONG_TARGET = `/${'t'.repeat(150)}`;
const UNICODE = 'etc/grüße.txt';
/** Just over the 11-digit octal mtime field (8^11 − 1), and still within ext4's range (year 2242). */
const BIG_MTIME = 0o77777777777 + 9;

let dir: string;
let big: Buffer;
let bigFile: string;

function entries(): TarEntry[] {
  return [
    { path: 'usr/bin/app', type: 'file', mode: 0o4755, mtimeSec: 1_700_000_000, content: Buffer.from('#!/bin/sh\necho app\n') },
    { path: 'etc/hello', type: 'file', mode: 0o644, uid: 1000, gid: 1001, content: Buffer.from('hello\n') },
    { path: 'srv', type: 'dir', mode: 0o700, uid: 1000, gid: 1000, mtimeSec: 1_600_000_000 },
    { path: 'srv/empty', type: 'file', mode: 0o600 },
    { path: 'bin', type: 'symlink', mode: 0o777, target: 'usr/bin' },
    { path: 'etc/long-link', type: 'symlink', mode: 0o777, target: LONG_TARGET },
    { path: LONG_FILE, type: 'file', mode: 0o640, content: Buffer.from('long\n') },
    { path: UNICODE, type: 'file', mode: 0o644, content: Buffer.from('grüße\n') },
    { path: 'var/big.bin', type: 'file', mode: 0o644, content: { file: bigFile } },
    { path: 'var/ids', type: 'file', mode: 0o644, uid: 3_000_000, gid: 4_000_000, mtimeSec: BIG_MTIME, content: Buffer.from('x') },
  ];
}

/** Every path in the order the writer must emit them (implicit parents included). */
const ORDER = ['bin', 'deep', `deep/${'d'.repeat(120)}`, LONG_FILE, 'etc', UNICODE, 'etc/hello', 'etc/long-link', 'srv', 'srv/empty', 'usr', 'usr/bin', 'usr/bin/app', 'var', 'var/big.bin', 'var/ids'];

beforeAll(async () => {
  dir = await tmpDir('bootfs-tar-write-');
  // Not a multiple of 512 and over one read chunk, so streaming and padding are both exercised.
  big = randomBytes(3 * (1 << 20) + 333);
  bigFile = path.join(dir, 'big.src');
  await writeFile(bigFile, big);
});

describe('writeTarLayer', () => {
  it('gives the same bytes for the same entries in any order, with a fixed gzip header', async () => {
    const a = await writeTarLayer(path.join(dir, 'a.tar.gz'), entries());
    const b = await writeTarLayer(path.join(dir, 'b.tar.gz'), entries().reverse());
    const [ba, bb] = [await readFile(a.file), await readFile(b.file)];
    expect(ba.equals(bb)).toBe(true);
    expect(a.digest).toBe(b.digest);
    // magic, deflate, no flags, mtime 0, xfl 0, OS 255: nothing about the host or the time.
    expect([...ba.subarray(0, 10)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  });

  it('reports the digest and size of the file and the diff_id of the tar', async () => {
    const l = await writeTarLayer(path.join(dir, 'd.tar.gz'), entries());
    const bytes = await readFile(l.file);
    expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(l.size).toBe(bytes.length);
    expect(l.digest).toBe(sha256(bytes));
    expect(l.diffId).toBe(sha256(gunzipSync(bytes)));
    expect(l.diffId).not.toBe(l.digest);
  });

  it('writes a plain tar with gzip: false, the same tar that is inside the gzip one', async () => {
    const gz = await writeTarLayer(path.join(dir, 'p.tar.gz'), entries());
    const plain = await writeTarLayer(path.join(dir, 'p.tar'), entries(), { gzip: false });
    const bytes = await readFile(plain.file);
    expect(plain.mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
    expect(plain.digest).toBe(sha256(bytes));
    expect(plain.diffId).toBe(plain.digest);
    expect(plain.diffId).toBe(gz.diffId);
    expect(gunzipSync(await readFile(gz.file)).equals(bytes)).toBe(true);
    expect(bytes.length % 512).toBe(0);
    expect(bytes.subarray(-1024).every((b) => b === 0)).toBe(true);
  });

  it('is read back by bootfs’s tar reader: order, types, modes, owners, times, targets, contents', async () => {
    const l = await writeTarLayer(path.join(dir, 'r.tar'), entries(), { gzip: false });
    const seen: { path: string; type: string; mode: number; uid: number; gid: number; mtime: bigint; link: string; data: Buffer }[] = [];
    const src = (async function* () {
      yield await readFile(l.file);
    })();
    for await (const e of readTar(src, { layer: 'r.tar' })) {
      const parts: Uint8Array[] = [];
      for await (const b of e.data) parts.push(b);
      const utf8 = (s: string): string => Buffer.from(s, 'latin1').toString('utf8');
      seen.push({ path: utf8(e.path).replace(/\/$/, ''), type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtimeNs / 1_000_000_000n, link: utf8(e.linkPath), data: Buffer.concat(parts) });
    }
    expect(seen.map((e) => e.path)).toEqual(ORDER);
    const by = new Map(seen.map((e) => [e.path, e]));
    expect(by.get('usr/bin/app')).toMatchObject({ type: 'file', mode: 0o4755, uid: 0, gid: 0, mtime: 1_700_000_000n });
    expect(by.get('etc/hello')).toMatchObject({ type: 'file', mode: 0o644, uid: 1000, gid: 1001, mtime: 0n });
    expect(by.get('etc/hello')!.data.toString()).toBe('hello\n');
    expect(by.get('srv')).toMatchObject({ type: 'dir', mode: 0o700, uid: 1000, gid: 1000, mtime: 1_600_000_000n });
    expect(by.get('usr')).toMatchObject({ type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0n });
    expect(by.get('bin')).toMatchObject({ type: 'symlink', link: 'usr/bin' });
    expect(by.get('etc/long-link')).toMatchObject({ type: 'symlink', link: LONG_TARGET });
    expect(by.get(LONG_FILE)!.data.toString()).toBe('long\n');
    expect(by.get(UNICODE)!.data.toString()).toBe('grüße\n');
    expect(by.get('var/big.bin')!.data.equals(big)).toBe(true);
    expect(by.get('var/ids')).toMatchObject({ uid: 3_000_000, gid: 4_000_000, mtime: BigInt(BIG_MTIME) });
    expect(by.get('srv/empty')!.data.length).toBe(0);
  });

  it('refuses bad entries with a message naming the entry, and leaves no file', async () => {
    const bad: [Partial<TarEntry> & { path: string }, RegExp][] = [
      [{ path: '/etc/passwd', type: 'file', mode: 0o644 }, /tar entry 0 \("\/etc\/passwd"\): path must be relative/],
      [{ path: 'a/../b', type: 'file', mode: 0o644 }, /path must be relative and normalised/],
      [{ path: 'a//b', type: 'file', mode: 0o644 }, /normalised/],
      [{ path: './a', type: 'file', mode: 0o644 }, /normalised/],
      [{ path: '', type: 'file', mode: 0o644 }, /non-empty string/],
      [{ path: 'a', type: 'file', mode: 0o100644 }, /mode must be permission bits/],
      [{ path: 'a', type: 'file', mode: 0o644, uid: -1 }, /uid must be an integer/],
      [{ path: 'a', type: 'file', mode: 0o644, mtimeSec: 1.5 }, /mtimeSec/],
      [{ path: 'a', type: 'symlink', mode: 0o777 }, /symlink needs a non-empty target/],
      [{ path: 'a', type: 'dir', mode: 0o755, content: Buffer.from('x') }, /only files have content/],
      [{ path: 'a', type: 'fifo' as 'file', mode: 0o644 }, /type must be/],
    ];
    for (const [e, msg] of bad) {
      const err = await rejection(writeTarLayer(path.join(dir, 'bad.tar.gz'), [e as TarEntry]));
      expect(err).toBeInstanceOf(UsageError);
      expect(err.message).toMatch(msg);
    }
    const dup = await rejection(writeTarLayer(path.join(dir, 'bad.tar.gz'), [{ path: 'a', type: 'dir', mode: 0o755 }, { path: 'a', type: 'file', mode: 0o644 }]));
    expect(dup.message).toMatch(/tar entry 1 \("a"\): path appears twice/);
    const under = await rejection(writeTarLayer(path.join(dir, 'bad.tar.gz'), [{ path: 'l', type: 'symlink', mode: 0o777, target: '/etc' }, { path: 'l/x', type: 'file', mode: 0o644 }]));
    expect(under.message).toMatch(/"l\/x" is below "l", which is a symlink/);
    const missing = await rejection(writeTarLayer(path.join(dir, 'bad.tar.gz'), [{ path: 'x', type: 'file', mode: 0o644, content: { file: path.join(dir, 'nope') } }]));
    expect(missing.message).toMatch(/tar entry "x": cannot open .*nope/);
    expect((await readdir(dir)).filter((n) => n.includes('bad'))).toEqual([]);
  });
});

describeWithTools(['tar'], 'writeTarLayer output read by GNU tar', () => {
  let layer: string;
  beforeAll(async () => {
    layer = (await writeTarLayer(path.join(dir, 'gnu.tar.gz'), entries())).file;
  });

  it('lists every entry with its owner, mode and link target, without warnings', async () => {
    const r = await run('tar', ['--numeric-owner', '--full-time', '-tvzf', layer]);
    expect(r.stderr.toString()).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.toString().trimEnd().split('\n');
    expect(lines.map((l) => l.split(/\s+/).slice(5).join(' ').replace(/ -> .*/, '').replace(/\/$/, ''))).toEqual(ORDER);
    const line = (p: string): string => lines[ORDER.indexOf(p)]!;
    expect(line('usr/bin/app')).toMatch(/^-rwsr-xr-x 0\/0 +19 2023-11-14 22:13:20 usr\/bin\/app$/);
    expect(line('etc/hello')).toMatch(/^-rw-r--r-- 1000\/1001 +6 1970-01-01 00:00:00 etc\/hello$/);
    expect(line('srv')).toMatch(/^drwx------ 1000\/1000 +0 2020-09-13 12:26:40 srv\/$/);
    expect(line('etc/long-link')).toMatch(new RegExp(`^lrwxrwxrwx 0/0 +0 1970-01-01 00:00:00 etc/long-link -> ${LONG_TARGET}$`));
    expect(line('var/ids')).toMatch(/^-rw-r--r-- 3000000\/4000000 +1 2242-03-16 12:56:40 var\/ids$/);
  });

  it('extracts the tree with the right modes, owners, times, links and contents', async () => {
    const out = path.join(dir, 'gnu-out');
    await run('mkdir', [out]);
    const r = await run('tar', ['--numeric-owner', '--same-owner', '-xpzf', layer, '-C', out]);
    // The one warning expected: var/ids's mtime lies in the future (it needs the PAX mtime record).
    expect(r.stderr.toString()).toMatch(/^tar: var\/ids: time stamp 2242-03-16 12:56:40 is [\d.]+ s in the future\n$/);
    expect(r.code).toBe(0);
    const st = (p: string) => lstat(path.join(out, p));
    const root = process.getuid?.() === 0;
    expect(((await st('usr/bin/app')).mode & 0o7777).toString(8)).toBe('4755');
    expect(((await st('srv')).mode & 0o7777).toString(8)).toBe('700');
    expect(((await st('srv/empty')).mode & 0o7777).toString(8)).toBe('600');
    expect(((await st(LONG_FILE)).mode & 0o7777).toString(8)).toBe('640');
    expect(((await st('usr')).mode & 0o7777).toString(8)).toBe('755');
    if (root) {
      expect(await st('etc/hello')).toMatchObject({ uid: 1000, gid: 1001 });
      expect(await st('var/ids')).toMatchObject({ uid: 3_000_000, gid: 4_000_000 });
    }
    expect((await st('usr/bin/app')).mtimeMs).toBe(1_700_000_000_000);
    expect((await st('var/ids')).mtimeMs).toBe(BIG_MTIME * 1000);
    expect(await readlink(path.join(out, 'bin'))).toBe('usr/bin');
    expect(await readlink(path.join(out, 'etc/long-link'))).toBe(LONG_TARGET);
    expect(await readFile(path.join(out, LONG_FILE), 'utf8')).toBe('long\n');
    expect(await readFile(path.join(out, UNICODE), 'utf8')).toBe('grüße\n');
    expect((await readFile(path.join(out, 'var/big.bin'))).equals(big)).toBe(true);
  });
});
