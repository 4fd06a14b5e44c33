/**
 * Boot images end to end (issue 6): a debootstrap-based app image (built with umoci, with an
 * entrypoint, cmd, env, working dir and user) converted by `bootfs convert SRC DST` onto the base
 * fixture (Debian + Node), loaded into podman and run with /dev/fuse and CAP_SYS_ADMIN.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bootfs } from '../cli/cli-helpers.js';
import { describeWithTools, removeTree, repoRoot, run, tmpDir } from '../helpers/tools.js';
import { startNginx, type Nginx } from '../server/nginx.js';
import { podman as podmanRun, podmanEnv, podmanGlobalArgs } from '../helpers/podman.js';
import { startRegistry } from '../registry/registry-server.js';

const isRoot = process.getuid?.() === 0;

/** podman with the test configuration and storage (test/helpers/podman.ts). */
async function podman(args: string[], timeoutMs = 180_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await podmanRun(args, { timeoutMs });
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

async function sh(script: string): Promise<string> {
  const r = await run('bash', ['-euo', 'pipefail', '-c', script], { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`script failed (${r.code}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

describeWithTools(['podman', 'runc', 'umoci', 'nginx', 'mount', 'docker-registry', 'skopeo'], 'boot images under podman', () => {
  let dir: string;
  let store: string;
  let rootfs: string;
  const tag = `bootfs-test-${process.pid}`;
  const images: string[] = [];
  const servers: Nginx[] = [];
  /** `podman run` options every boot needs: the device, the capability, the store and a cache. */
  let common: string[];

  /** Build an OCI app image from the rootfs with umoci, convert it to a boot image, load it. */
  async function bootImage(name: string, config: string[]): Promise<string> {
    const layout = path.join(dir, 'app-layout');
    await sh(`umoci config --image "${layout}:rootfs" --tag "${name}" ${config.map((c) => `'${c}'`).join(' ')}`);
    const archive = path.join(dir, `${name}.tar`);
    const c = await bootfs(['convert', `oci:${layout}:${name}`, `oci-archive:${archive}:${tag}-${name}`, '--store', store, '--base', baseRef]);
    expect(c.code, c.stderr).toBe(0);
    const l = await podman(['load', '-i', archive]);
    expect(l.code, l.stderr).toBe(0);
    const ref = `localhost/${tag}-${name}:latest`;
    images.push(ref);
    return ref;
  }

  let baseRef: string;
  let rootImage: string;
  let userImage: string;

  beforeAll(async () => {
    if (!isRoot) throw new Error('boot images need root (podman with /dev/fuse and CAP_SYS_ADMIN)');
    dir = await tmpDir('bootfs-boot-');
    store = path.join(dir, 'store');
    const env = await sh(`bash "${repoRoot}/scripts/fixtures/base-image" --print-env`);
    baseRef = /^BASE_IMAGE_REF=(.*)$/m.exec(env)![1]!;
    rootfs = /^ROOTFS_DIR=(.*)$/m.exec(await sh(`bash "${repoRoot}/scripts/fixtures/debian-rootfs" --print-env`))![1]!;
    const layout = path.join(dir, 'app-layout');
    await sh(`umoci init --layout "${layout}" && umoci new --image "${layout}:rootfs" && tar --numeric-owner --xattrs -C "${rootfs}" -cf "${dir}/rootfs.tar" . && umoci raw add-layer --image "${layout}:rootfs" "${dir}/rootfs.tar"`);
    const entry = ['--config.entrypoint=/bin/sh', '--config.entrypoint=-c', '--config.env=GREETING=hello', '--config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
    rootImage = await bootImage('root', [...entry, '--config.workingdir=/srv/app', '--config.cmd=echo "$GREETING from $(pwd) as $(id -un)"; cat /etc/debian_version']);
    userImage = await bootImage('user', [...entry, '--config.workingdir=/tmp', '--config.user=www-data', '--config.cmd=echo "$GREETING from $(pwd) as $(id -un):$(id -gn)"; echo data > /tmp/written && cat /tmp/written']);
    const cache = path.join(dir, 'cache');
    await mkdir(cache, { recursive: true });
    common = ['run', '--rm', '--device', '/dev/fuse', '--cap-add', 'SYS_ADMIN', '-v', `${store}:${store}:ro`, '-v', `${cache}:/var/lib/bootfs/cache`];
  }, 1_200_000);

  afterAll(async () => {
    await Promise.allSettled(servers.map((s) => s.stop()));
    if (images.length > 0) await podman(['rmi', '-f', ...images]).catch(() => undefined);
    if (dir && !process.env.BOOTFS_KEEP_TEST_DIRS) await removeTree(dir);
  });

  it('runs the original entrypoint + cmd with its env and working dir; exit status is the app\'s', async () => {
    const r = await podman([...common, rootImage]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const version = (await readFile(path.join(rootfs, 'etc/debian_version'), 'utf8')).trim();
    expect(r.stdout).toBe(`hello from /srv/app as root\n${version}\n`);
  });

  it('raises the FUSE mount\'s kernel readahead when asked, even though the container\'s /sys is read-only', async () => {
    // A value no other mount uses (bootfs mount: 4096, the kernel: 128), since tests run side by side.
    const r = await podman([...common, '-e', 'BOOTFS_KERNEL_READAHEAD=3084', rootImage, 'grep -l "^3084$" /sys/class/bdi/*/read_ahead_kb | wc -l; touch /sys/x 2>&1 | grep -c "Read-only"']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n').map(Number)).toEqual([1, 1]);
  });

  it('arguments replace cmd; -e overrides env; the exit status comes through', async () => {
    const r = await podman([...common, '-e', 'GREETING=bonjour', rootImage, 'echo "$GREETING"; exit 3']);
    expect(r.stdout).toBe('bonjour\n');
    expect(r.code).toBe(3);
  });

  it('honours USER (names from the image\'s /etc/passwd); / is writable through the overlay', async () => {
    const r = await podman([...common, userImage]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello from /tmp as www-data:www-data\ndata\n');
    expect(r.code).toBe(0);
    const w = await podman([...common, rootImage, 'echo new > /etc/new-file && mkdir -p /opt/x && echo ok > /opt/x/f && cat /etc/new-file /opt/x/f && rm /etc/debian_version && ! test -e /etc/debian_version']);
    expect(w.stdout).toBe('new\nok\n');
    expect(w.code).toBe(0);
  });

  it('runs the app in its own PID namespace with its own /proc, and carries volumes, hosts and resolv.conf', async () => {
    const vol = path.join(dir, 'vol');
    await mkdir(vol, { recursive: true });
    await writeFile(path.join(vol, 'in'), 'from the host\n');
    await chmod(vol, 0o777);
    const r = await podman([...common, '-v', `${vol}:/data`, '--add-host', 'bootfs-test-host:10.1.2.3', rootImage, 'echo $$; ls /proc | grep -c "^[0-9]"; cat /data/in; echo out > /data/out; grep bootfs-test-host /etc/hosts; test -s /etc/resolv.conf && echo resolv; test -e /var/lib/bootfs/cache || echo no-cache']);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('1'); // the app is PID 1 of its namespace
    expect(Number(lines[1])).toBeLessThan(5); // it sees only its own processes, not the FUSE server
    expect(lines.slice(2)).toEqual(['from the host', '10.1.2.3\tbootfs-test-host', 'resolv', 'no-cache']);
    expect(await readFile(path.join(vol, 'out'), 'utf8')).toBe('out\n');
  });

  it('podman stop delivers SIGTERM to the app; the container exits with the app\'s status', async () => {
    const name = `${tag}-stop`;
    const start = await podman([...common.filter((a) => a !== '--rm'), '-d', '--name', name, rootImage, 'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.1; done']);
    expect(start.code, start.stderr).toBe(0);
    try {
      for (let i = 0; i < 100 && !(await podman(['logs', name])).stdout.includes('ready'); i++) await new Promise((r) => setTimeout(r, 100));
      const stop = await podman(['stop', '-t', '20', name]);
      expect(stop.code, stop.stderr).toBe(0);
      const inspect = await podman(['inspect', '--format', '{{.State.ExitCode}}', name]);
      expect(inspect.stdout.trim()).toBe('42');
      expect((await podman(['logs', name])).stdout).toContain('got TERM');
    } finally {
      await podman(['rm', '-f', name]);
    }
  });

  it('two containers booting at once from an HTTP store share the node cache: each chunk is fetched once', async () => {
    const log = path.join(dir, 'nginx.log');
    const nginx = await startNginx(store, { accessLog: log });
    servers.push(nginx);
    const cache = path.join(dir, 'cache-shared');
    await mkdir(cache, { recursive: true });
    const opts = ['run', '--rm', '--device', '/dev/fuse', '--cap-add', 'SYS_ADMIN', '-v', `${cache}:/var/lib/bootfs/cache`, '-e', `BOOTFS_STORE=${nginx.storeUrl}/`];
    const read = 'cd / && find usr/bin usr/lib/x86_64-linux-gnu -type f -print0 | LC_ALL=C sort -z | xargs -0 cat | md5sum';
    const [a, b] = await Promise.all([podman([...opts, rootImage, read]), podman([...opts, rootImage, read])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    const gets = (await readFile(log, 'utf8')).split('\n').filter((l) => /^GET \S+\.cacnk /.test(l)).map((l) => l.split(' ')[1]);
    expect(gets.length).toBeGreaterThan(100);
    expect(new Set(gets).size).toBe(gets.length);
    // And what they read is right: the same digest as the source tree.
    const expected = await sh(`cd "${rootfs}" && find usr/bin usr/lib/x86_64-linux-gnu -type f -print0 | LC_ALL=C sort -z | xargs -0 cat | md5sum`);
    expect(a.stdout).toBe(expected);
  });

  it('closes file descriptors the runtime passed to the stub before starting the app', async () => {
    // fd 3 is open in podman and passed on (--preserve-fds 1); the app lists its own fds.
    const inner = `'ls /proc/$$/fd | sort -n | tr "\\n" " "'`;
    const r = await run('bash', ['-c', `podman ${[...podmanGlobalArgs(), ...common, '--preserve-fds', '1', rootImage].join(' ')} ${inner} 3</etc/hostname`], {
      env: podmanEnv(),
      timeoutMs: 120_000,
    });
    expect(r.stderr.toString()).toBe('');
    expect(r.stdout.toString().trim()).toBe('0 1 2');
  });

  it('a store that cannot be reached: retries until BOOTFS_TIMEOUT, then one clear error', async () => {
    const cache = path.join(dir, 'cache-empty');
    await mkdir(cache, { recursive: true });
    const started = Date.now();
    const r = await podman(['run', '--rm', '--device', '/dev/fuse', '--cap-add', 'SYS_ADMIN', '-v', `${cache}:/var/lib/bootfs/cache`, '-e', 'BOOTFS_STORE=http://127.0.0.1:9/store/', '-e', 'BOOTFS_TIMEOUT=3s', rootImage]);
    const took = Date.now() - started;
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^bootfs: cannot fetch chunks from http:\/\/127\.0\.0\.1:9\/store\/: /m);
    expect(took).toBeGreaterThan(2_500);
    expect(took).toBeLessThan(30_000);
  });

  it('podman pulls a boot image from a registry and boots it from an oci:// chunk store there, with no other infrastructure', async () => {
    const registry = await startRegistry();
    try {
      const storeUrl = `oci://${registry.host}/bootfs/chunks`;
      const layout = path.join(dir, 'app-layout');
      // The boot image goes to the registry too; podman pulls it (plain http on loopback).
      const c = await bootfs(['convert', `oci:${layout}:root`, `docker://${registry.host}/bootfs/app:1`, '--store', storeUrl, '--base', baseRef, '--tls-verify', 'false']);
      expect(c.code, c.stderr).toBe(0);
      const ref = `${registry.host}/bootfs/app:1`;
      const pull = await podman(['pull', '--tls-verify=false', ref]);
      expect(pull.code, pull.stderr).toBe(0);
      images.push(ref);
      const cache = path.join(dir, 'cache-oci');
      await mkdir(cache, { recursive: true });
      const r = await podman(['run', '--rm', ...['--device', '/dev/fuse', '--cap-add', 'SYS_ADMIN'], '-v', `${cache}:/var/lib/bootfs/cache`, ref, 'cat /etc/debian_version; md5sum < /usr/bin/perl']);
      expect(r.stderr).toBe('');
      const version = (await readFile(path.join(rootfs, 'etc/debian_version'), 'utf8')).trim();
      const perl = (await sh(`md5sum < "${rootfs}/usr/bin/perl"`)).trim();
      expect(r.stdout.trim().split('\n')).toEqual([version, perl]);
      // The chunks came from the registry: one blob GET per chunk, nothing from anywhere else.
      const gets = (await registry.requests()).filter((l) => /^GET \/v2\/bootfs\/chunks\/blobs\/sha256:/.test(l));
      expect(gets.length).toBeGreaterThan(10);
      // skopeo accepts what bootfs pushed.
      const inspect = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]);
      expect(inspect.code, inspect.stderr.toString()).toBe(0);
      expect(JSON.parse(inspect.stdout.toString()).Labels['org.bootfs.store']).toBe(storeUrl);
    } finally {
      await registry.stop();
    }
  });

  it('without /dev/fuse the stub says which settings are missing and exits non-zero', async () => {
    const r = await podman(['run', '--rm', '-v', `${store}:${store}:ro`, rootImage]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/\/dev\/fuse is missing/);
    expect(r.stderr).toContain('--device /dev/fuse --cap-add SYS_ADMIN');
    expect(r.stderr).toContain('Kubernetes');
    const noCap = await podman(['run', '--rm', '--device', '/dev/fuse', '-v', `${store}:${store}:ro`, rootImage]);
    expect(noCap.code).not.toBe(0);
    expect(noCap.stderr).toMatch(/CAP_SYS_ADMIN/);
  });
});
