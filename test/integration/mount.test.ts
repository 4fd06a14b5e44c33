/**
 * `bootfs mount` with real peers (issue 4): a debootstrap rootfs converted, served by nginx and
 * mounted through the kernel's FUSE; rsync judges the tree, chroot runs the image's programs, and
 * nginx's access log counts what crossed the "network".
 */
import { readFile, readdir, writeFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BootfsIndex } from '../../src/index/bootfs-reader.js';
import { bootfs } from '../cli/cli-helpers.js';
import { isMounted, startMount, treeDiff, type MountProcess } from '../helpers/mount.js';
import { debianRootfs, describeWithTools, removeTree, run, tmpDir } from '../helpers/tools.js';
import { freePort, startNginx, type Nginx } from '../server/nginx.js';

const isRoot = process.getuid?.() === 0;

async function sh(script: string, timeoutMs = 600_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await run('bash', ['-c', script], { timeoutMs });
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Chunk fetches nginx answered (one line per GET of a .cacnk), by path. */
async function chunkGets(log: string): Promise<string[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => /^GET \S+\.cacnk /.test(l)).map((l) => l.split(' ')[1]!);
}

describeWithTools(['rsync', 'nginx', 'chroot', 'mount', 'umount'], 'bootfs mount of a converted Debian rootfs', () => {
  let dir: string;
  let rootfs: string;
  let index: string;
  let store: string;
  let distinctChunks: number;
  const mounts: MountProcess[] = [];
  const servers: Nginx[] = [];

  async function mountAt(name: string, args: string[]): Promise<MountProcess> {
    const mnt = path.join(dir, name);
    // A mountpoint left dead by a killed mount answers ENOTCONN; bootfs mount detaches it itself.
    await mkdir(mnt, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTCONN') throw err;
    });
    const m = await startMount(index, mnt, args);
    mounts.push(m);
    return m;
  }

  async function nginxWithLog(name: string, port?: number): Promise<{ nginx: Nginx; log: string }> {
    const log = path.join(dir, `${name}.log`);
    const nginx = await startNginx(store, { accessLog: log, ...(port ? { port } : {}) });
    servers.push(nginx);
    return { nginx, log };
  }

  beforeAll(async () => {
    if (!isRoot) throw new Error('mounting FUSE needs root');
    dir = await tmpDir('bootfs-mount-');
    rootfs = debianRootfs('v1').dir;
    index = path.join(dir, 'deb.bootfs');
    store = path.join(dir, 'store');
    const r = await bootfs(['convert', `dir:${rootfs}`, '--store', store, '-o', index]);
    if (r.code !== 0) throw new Error(`convert failed: ${r.stderr}`);
    const idx = await BootfsIndex.readFile(index);
    distinctChunks = new Set(Array.from({ length: idx.table.count }, (_, i) => idx.table.hexId(i))).size;
  }, 900_000);

  afterAll(async () => {
    await Promise.allSettled(mounts.map((m) => m.stop()));
    await Promise.allSettled(servers.map((s) => s.stop()));
    if (dir && !process.env.BOOTFS_KEEP_TEST_DIRS) await removeTree(dir);
  });

  it('shows the tree exactly (rsync -c -H -X, nanosecond mtimes), fetches each chunk once, refuses writes', async () => {
    const { nginx, log } = await nginxWithLog('single');
    const stats = path.join(dir, 'single-stats.json');
    const metricsPort = await freePort();
    const m = await mountAt('single', ['--store', nginx.storeUrl, '--cache', path.join(dir, 'cache-single'), '--stats-file', stats, '--metrics', `127.0.0.1:${metricsPort}`]);
    expect(await treeDiff(rootfs, m.mountpoint)).toBe('');
    const prom = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(prom).toContain(`bootfs_mount_remote_fetches_total ${distinctChunks}\n`);
    expect(prom).toMatch(/bootfs_mount_requests_total\{op="read"\} \d+/);
    // rsync -c read every file: every distinct chunk crossed the network exactly once.
    const gets = await chunkGets(log);
    expect(gets.length).toBe(distinctChunks);
    expect(new Set(gets).size).toBe(gets.length);

    const w = await sh(`{ touch ${m.mountpoint}/new; mkdir ${m.mountpoint}/d; echo x >> ${m.mountpoint}/etc/hostname; rm ${m.mountpoint}/etc/hostname; } 2>&1; true`);
    expect(w.stdout.match(/Read-only file system/g)?.length).toBe(4);
    const df = await sh(`stat -f -c '%T %b %c' ${m.mountpoint}`);
    expect(df.stdout).toMatch(/^fuseblk|^fuse/);

    expect(await m.stop()).toBe(0);
    expect(isMounted(m.mountpoint)).toBe(false);
    const s = JSON.parse(await readFile(stats, 'utf8')) as { remoteFetches: number; verifyFailures: number; errors: Record<string, number> };
    expect(s.remoteFetches).toBe(distinctChunks);
    expect(s.verifyFailures).toBe(0);
    expect(s.errors).toEqual({});
  });

  it('runs the image\'s programs in a chroot of the mount', async () => {
    const { nginx } = await nginxWithLog('chroot');
    const m = await mountAt('chroot', ['--store', nginx.storeUrl]);
    const root = m.mountpoint;
    const r = await sh(
      `set -e; mount --bind /proc ${root}/proc; mount --bind /dev ${root}/dev; mount -t tmpfs tmpfs ${root}/tmp
       trap 'umount ${root}/tmp ${root}/dev ${root}/proc' EXIT
       chroot ${root} /bin/sh -c 'echo "sh says $((6*7))"; dpkg -l dash | tail -1; apt-cache policy dash | sed -n 2p; perl -e "print qq(perl says ), 6*7, qq(\\n)"; cat /etc/debian_version'`,
      120_000,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const version = (await readFile(path.join(rootfs, 'etc/debian_version'), 'utf8')).trim();
    expect(r.stdout).toContain('sh says 42');
    expect(r.stdout).toMatch(/^ii {2}dash /m);
    expect(r.stdout).toMatch(/Installed: \d/);
    expect(r.stdout).toContain('perl says 42');
    expect(r.stdout.trim().endsWith(version)).toBe(true);
    expect(await m.stop()).toBe(0);
  });

  it('6 mounts sharing one cache directory fetch each chunk from the store once', async () => {
    const { nginx, log } = await nginxWithLog('shared');
    const cache = path.join(dir, 'cache-shared');
    const ms = await Promise.all([0, 1, 2, 3, 4, 5].map((k) => mountAt(`shared-${k}`, ['--store', nginx.storeUrl, '--cache', cache])));
    // All read every file at the same moment.
    const r = await sh(ms.map((m) => `(cd ${m.mountpoint} && find . -type f -print0 | xargs -0 cat > /dev/null) &`).join('\n') + '\nwait', 600_000);
    expect(r.stderr).toBe('');
    const gets = await chunkGets(log);
    expect(new Set(gets).size).toBe(distinctChunks);
    expect(gets.length).toBe(distinctChunks);
    await Promise.all(ms.map((m) => m.stop()));
  });

  it('a mount killed with -9 while filling the cache leaves nothing partial or corrupt behind', async () => {
    const { nginx } = await nginxWithLog('kill');
    const cache = path.join(dir, 'cache-kill');
    for (const delay of [150, 400, 900]) {
      const m = await mountAt('kill', ['--store', nginx.storeUrl, '--cache', cache]);
      const reader = sh(`cd ${m.mountpoint} && find . -type f -print0 | xargs -0 cat > /dev/null 2>&1; true`);
      await new Promise((r) => setTimeout(r, delay));
      m.child.kill('SIGKILL');
      await m.exited;
      await reader;
    }
    // Every complete-looking entry in the cache verifies (temp files are not chunks)…
    const v = await bootfs(['store', 'verify', cache]);
    expect(v.stderr).toBe('');
    expect(v.code).toBe(0);
    // …and a new mount on the same (dead) mountpoint serves the whole tree correctly from it.
    const m = await mountAt('kill', ['--store', nginx.storeUrl, '--cache', cache]);
    expect(await treeDiff(rootfs, m.mountpoint)).toBe('');
    expect(await m.stop()).toBe(0);
  });

  it('SIGTERM while four readers are mid-file: the mount unmounts and exits 0 within seconds', async () => {
    const { nginx } = await nginxWithLog('term');
    const cache = path.join(dir, 'cache-term');
    // Warm first, so the readers are in the middle of big replies (written off the main thread) when the signal comes.
    expect((await bootfs(['cache', 'warm', index, '--cache', cache, '--store', nginx.storeUrl])).code).toBe(0);
    for (const delay of [100, 300]) {
      const m = await mountAt('term', ['--store', nginx.storeUrl, '--cache', cache]);
      const loop = `while mountpoint -q ${m.mountpoint}; do find ${m.mountpoint}/usr -type f -size +256k -print0 2>/dev/null | xargs -0 -r cat > /dev/null 2>&1; done`;
      const readers = sh(`${loop} &\n${loop} &\n${loop} &\n${loop} &\nwait`, 60_000);
      await new Promise((r) => setTimeout(r, delay));
      const started = Date.now();
      expect(await m.stop()).toBe(0);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(isMounted(m.mountpoint)).toBe(false);
      expect(m.log()).not.toMatch(/not written|answered EIO|Error/);
      await readers;
    }
  });

  it('a corrupt chunk in the cache or in the first store is replaced from the next source', async () => {
    const idx = await BootfsIndex.readFile(index);
    const ino = idx.resolve('usr/bin/perl')!;
    const ext = idx.fileExtent(ino);
    const first = idx.table.findChunk(ext.offset);
    const hex = idx.table.hexId(first);
    const rel = path.join(hex.slice(0, 4), `${hex}.cacnk`);
    // A store holding a corrupt copy of perl's first chunk (and nothing else), tried first.
    const bad = path.join(dir, 'bad-store');
    await mkdir(path.join(bad, hex.slice(0, 4)), { recursive: true });
    const good = await readFile(path.join(store, rel));
    const flipped = Buffer.from(good);
    flipped[flipped.length >> 1]! ^= 0xff;
    await writeFile(path.join(bad, rel), flipped);
    // A cache holding the same corrupt copy.
    const cache = path.join(dir, 'cache-corrupt');
    await mkdir(path.join(cache, hex.slice(0, 4)), { recursive: true });
    await writeFile(path.join(cache, rel), flipped);
    const stats = path.join(dir, 'corrupt-stats.json');
    const m = await mountAt('corrupt', ['--store', bad, '--store', store, '--cache', cache, '--stats-file', stats, '--quiet']);
    const r = await run('cmp', [path.join(rootfs, 'usr/bin/perl'), path.join(m.mountpoint, 'usr/bin/perl')]);
    expect(r.code).toBe(0);
    expect(await m.stop()).toBe(0);
    // The cache now holds the good copy.
    expect((await readFile(path.join(cache, rel))).equals(good)).toBe(true);
    const s = JSON.parse(await readFile(stats, 'utf8')) as { verifyFailures: number };
    expect(s.verifyFailures).toBe(2);

    // Only corrupt copies: the read fails with EIO, the mount stays up.
    await rm(cache, { recursive: true });
    const m2 = await mountAt('corrupt2', ['--store', bad, '--quiet']);
    const r2 = await sh(`cat ${m2.mountpoint}/usr/bin/perl > /dev/null`);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toContain('Input/output error');
    expect((await sh(`cat ${m2.mountpoint}/etc/hostname`)).code).not.toBe(0); // not in the bad store either
    expect((await readdir(m2.mountpoint)).length).toBeGreaterThan(5);
    expect(await m2.stop()).toBe(0);
  });

  it('a dead store fails reads with EIO at the deadline; a store back in time, or later, serves the same mount', async () => {
    const port = await freePort();
    let { nginx } = await nginxWithLog('flaky', port);
    const m = await mountAt('flaky', ['--store', nginx.storeUrl, '--timeout', '3s', '--readahead', '0', '--quiet']);
    expect((await sh(`cat ${m.mountpoint}/etc/hostname`)).code).toBe(0);
    await nginx.stop();
    const started = Date.now();
    const r = await sh(`cat ${m.mountpoint}/usr/bin/perl > /dev/null`, 60_000);
    const took = Date.now() - started;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Input/output error');
    // Retried until the 3 s deadline, not longer.
    expect(took).toBeGreaterThan(2_500);
    expect(took).toBeLessThan(12_000);
    // Down when the read starts, back a second later: the read waits and succeeds.
    const slow = run('cmp', [path.join(rootfs, 'usr/bin/dpkg'), path.join(m.mountpoint, 'usr/bin/dpkg')], { timeoutMs: 60_000 });
    await new Promise((res) => setTimeout(res, 1_000));
    ({ nginx } = await nginxWithLog('flaky2', port));
    expect((await slow).code).toBe(0);
    // And the file that failed before is served now, byte for byte, without a remount.
    const c = await run('cmp', [path.join(rootfs, 'usr/bin/perl'), path.join(m.mountpoint, 'usr/bin/perl')]);
    expect(c.code).toBe(0);
    expect(await m.stop()).toBe(0);
  });
});
