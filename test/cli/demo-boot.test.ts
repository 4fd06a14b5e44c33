/**
 * `bootfs demo` part 3: a sample image booted lazily from its store served over HTTP. Checked
 * through the JSON result: the app's output matched the source bytes, and what crossed the
 * "network" is a small fraction of the image.
 */
import { existsSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootfsBin, cleanup, describeWithTools, inCI, repoRoot, run, tmpDir } from '../helpers/tools.js';
import { bootfs } from './cli-helpers.js';

const canFuse = process.getuid?.() === 0 && existsSync('/dev/fuse');
const WEIGHTS = 64 * 1024 * 1024;

interface BootField {
  mode: 'podman' | 'fuse' | 'skipped';
  reason?: string;
  imageBytes: number;
  appReadBytes: number;
  fetchedBytes: number;
  fetchedChunks: number;
  fetchedPercent: number;
  firstOutputMs: number;
  bootMs: number;
  outputOk: boolean;
}

async function demo(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; boot: BootField; stderr: string }> {
  const dir = await tmpDir('bootfs-demo-boot-');
  // --size 1: part 1 small; part 3 does not depend on it.
  const r = await bootfs(['demo', '--dir', dir, '--size', '1', '--json', ...args], { env });
  expect(r.code, r.stderr).toBe(0);
  const j = JSON.parse(r.stdout) as { boot: BootField };
  return { code: r.code, boot: j.boot, stderr: r.stderr };
}

/** The numbers every booted run must satisfy. */
function expectLazyBoot(b: BootField): void {
  expect(b.outputOk).toBe(true);
  // The app reads its config, 1 MiB of code and a 64 KiB header of the weights.
  expect(b.appReadBytes).toBeGreaterThan(1024 * 1024);
  expect(b.appReadBytes).toBeLessThan(1.2 * 1024 * 1024);
  expect(b.imageBytes).toBeGreaterThan(WEIGHTS + 1024 * 1024);
  expect(b.fetchedChunks).toBeGreaterThan(0);
  // Something was fetched (the app's bytes cannot come from nowhere), far below the image size:
  // the weights stay on the server.
  expect(b.fetchedBytes).toBeGreaterThan(b.appReadBytes / 4);
  expect(b.fetchedBytes).toBeLessThan(b.imageBytes / 10);
  expect(b.fetchedPercent).toBeCloseTo((100 * b.fetchedBytes) / b.imageBytes, 1);
  expect(b.firstOutputMs).toBeGreaterThan(0);
  expect(b.firstOutputMs).toBeLessThanOrEqual(b.bootMs);
}

afterAll(cleanup);

describe('bootfs demo part 3 (lazy boot)', () => {
  it.skipIf(!canFuse)('--boot fuse: reads the app through a FUSE mount over the HTTP store, fetching a few percent of the image', async () => {
    const { boot, stderr } = await demo(['--boot', 'fuse']);
    expect(boot.mode).toBe('fuse');
    expectLazyBoot(boot);
    // A fresh image of just the app: its size is the app's files.
    expect(boot.imageBytes).toBeLessThan(WEIGHTS + 2 * 1024 * 1024);
    expect(stderr).toMatch(/• part 3 — booting an image lazily/);
    expect(stderr).toMatch(/% of the image crossed the network/);
  }, 120_000);

  it('without root or /dev/fuse: part 3 says why it is skipped and the demo still succeeds', async () => {
    // As root, run the demo as nobody (setpriv) so this path is exercised everywhere.
    let result: { boot: BootField; stderr: string };
    if (process.getuid?.() === 0) {
      const dir = await tmpDir('bootfs-demo-nobody-');
      await chmod(dir, 0o777);
      const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, bootfsBin, 'demo', '--dir', path.join(dir, 'd'), '--size', '1', '--json'], {
        env: { ...process.env, HOME: dir },
        timeoutMs: 120_000,
      });
      expect(r.code, r.stderr.toString()).toBe(0);
      result = { boot: (JSON.parse(r.stdout.toString()) as { boot: BootField }).boot, stderr: r.stderr.toString() };
    } else {
      result = await demo([]);
    }
    const { boot, stderr } = result;
    expect(boot.mode).toBe('skipped');
    expect(boot.reason).toMatch(/root|\/dev\/fuse/);
    expect(stderr).toContain('• skipped: booting lazily needs');
  }, 120_000);

  it('--boot none skips part 3; --boot podman without its fixture fails at once, before part 1', async () => {
    const { boot } = await demo(['--boot', 'none']);
    expect(boot).toEqual({ mode: 'skipped', reason: 'not asked to (--boot none)' });
    const empty = await tmpDir('bootfs-demo-nocache-');
    const r = await bootfs(['demo', '--dir', path.join(empty, 'd'), '--boot', 'podman'], { env: { ...process.env, BOOTFS_CACHE_DIR: empty } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--boot podman: .*(not installed|not built|needs root)/);
    expect(r.stderr).not.toContain('part 1');
    const bad = await bootfs(['demo', '--boot', 'docker']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--boot');
  }, 120_000);
});

describeWithTools(['podman', 'runc'], 'bootfs demo part 3 under podman', () => {
  it.skipIf(!canFuse && !inCI())('boots the app from a boot image under podman (the default when podman and the base image are there)', async () => {
    // The base-image fixture (built once, shared with test/integration/boot.test.ts); the demo
    // itself never builds it.
    const env = await run('bash', [path.join(repoRoot, 'scripts', 'fixtures', 'base-image'), '--print-env'], { timeoutMs: 1_200_000 });
    expect(env.code, env.stderr.toString()).toBe(0);
    const { boot, stderr } = await demo([]);
    expect(boot.mode).toBe('podman');
    expectLazyBoot(boot);
    // The image is the Debian rootfs plus the app: the shell, md5sum and libc come lazily too.
    expect(boot.imageBytes).toBeGreaterThan(WEIGHTS + 50 * 1024 * 1024);
    // The loaded image is removed afterwards.
    const ref = /podman load: (\S+)/.exec(stderr)?.[1];
    expect(ref).toMatch(/bootfs-demo-\d+/);
    const exists = await run('podman', ['image', 'exists', ref!], { env: { ...process.env, CONTAINERS_CONF: path.join(repoRoot, 'test', 'podman', 'containers.conf') }, timeoutMs: 60_000 });
    expect(exists.code).toBe(1);
  }, 1_500_000);
});
