import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile, chmod, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bootfsBin,
  cleanup,
  debianRootfs,
  debianRootfsScript,
  describeWithTools,
  hasTool,
  mountsUnder,
  parseEnvLines,
  removeTree,
  repoRoot,
  requireTools,
  run,
  tmpDir,
  tmpDirWithDispose,
  toolsGate,
  whichTool,
} from './tools.js';

const FAKE = 'bootfs-no-such-tool-7f3a';
const FAKE2 = 'bootfs-no-such-tool-91c2';

afterAll(cleanup);

/** Is `pid` gone (or a zombie nobody reaped, which is as dead as it gets)? */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

describe('paths', () => {
  it('repoRoot is the bootfs checkout, bootfsBin the built CLI', () => {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { name: string };
    expect(pkg.name).toBe('bootfs');
    expect(bootfsBin).toBe(path.join(repoRoot, 'dist', 'cli', 'bin.js'));
    expect(existsSync(debianRootfsScript)).toBe(true);
  });
});

describe('hasTool / requireTools', () => {
  it('finds a real tool on PATH and not a fake one', () => {
    expect(hasTool('sh')).toBe(true);
    expect(path.isAbsolute(whichTool('sh')!)).toBe(true);
    expect(hasTool(FAKE)).toBe(false);
    expect(hasTool(FAKE)).toBe(false); // cached answer
    expect(whichTool(FAKE)).toBeNull();
  });

  it('does not take a directory or a non-executable file for a tool', async () => {
    const dir = await tmpDir('bootfs-tools-test-');
    await mkdir(path.join(dir, 'adir'));
    await writeFile(path.join(dir, 'plain'), 'x');
    expect(hasTool(path.join(dir, 'adir'))).toBe(false);
    expect(hasTool(path.join(dir, 'plain'))).toBe(false);
    await writeFile(path.join(dir, 'exe'), '#!/bin/sh\n');
    await chmod(path.join(dir, 'exe'), 0o755);
    expect(hasTool(path.join(dir, 'exe'))).toBe(true);
  });

  it('names exactly the missing tools', () => {
    expect(requireTools('sh', 'cat')).toEqual({ ok: true });
    expect(requireTools('sh', FAKE, FAKE2)).toEqual({
      ok: false,
      reason: `missing tools ${FAKE}, ${FAKE2}: run scripts/setup`,
    });
  });

  it('toolsGate: run when present, skip outside CI, fail in CI', () => {
    expect(toolsGate(['sh'], 't', true)).toEqual({ mode: 'run', title: 't' });
    expect(toolsGate(['sh', FAKE], 't', false)).toEqual({
      mode: 'skip',
      title: `t [skipped: missing tools ${FAKE}: run scripts/setup]`,
      reason: `missing tools ${FAKE}: run scripts/setup`,
    });
    expect(toolsGate(['sh', FAKE], 't', true)).toMatchObject({ mode: 'fail', reason: `missing tools ${FAKE}: run scripts/setup` });
  });
});

// The real thing, both ways that can run in any environment.
let ranWithTools = false;
describeWithTools(['sh'], 'describeWithTools with the tools present', () => {
  it('runs the suite', () => {
    ranWithTools = true;
  });
});
// The missing-tool branch is covered by the toolsGate test above: registering a really skipped
// suite here would put a skip into every CI run, where skips count as failures.
describe('describeWithTools (afterwards)', () => {
  it('ran the suite whose tools exist', () => {
    expect(ranWithTools).toBe(true);
  });
});

describe('run', () => {
  it('reports a non-zero exit without throwing', async () => {
    const r = await run('sh', ['-c', 'exit 3']);
    expect(r).toMatchObject({ code: 3, signal: null, timedOut: false });
  });

  it('collects stdout and stderr separately, as Buffers', async () => {
    const r = await run('sh', ['-c', 'printf out; printf err >&2; printf more']);
    expect(Buffer.isBuffer(r.stdout)).toBe(true);
    expect(r.stdout.toString()).toBe('outmore');
    expect(r.stderr.toString()).toBe('err');
    expect(r.code).toBe(0);
  });

  it('feeds input to stdin (binary, larger than a pipe buffer)', async () => {
    const input = Buffer.alloc(3 << 20);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7 + (i >> 11)) & 0xff;
    const r = await run('cat', [], { input });
    expect(r.code).toBe(0);
    expect(r.stdout.equals(input)).toBe(true);
    const s = await run('sh', ['-c', 'read x; echo "got $x"'], { input: 'hello\n' });
    expect(s.stdout.toString()).toBe('got hello\n');
  });

  it('gives /dev/null as stdin when there is no input', async () => {
    const r = await run('cat', [], { timeoutMs: 10_000 });
    expect(r).toMatchObject({ code: 0, timedOut: false });
    expect(r.stdout.length).toBe(0);
  });

  it('does not fail when the child ignores its input', async () => {
    const r = await run('true', [], { input: Buffer.alloc(1 << 20) });
    expect(r.code).toBe(0);
  });

  it('passes cwd and env', async () => {
    const dir = await tmpDir('bootfs-tools-test-');
    const r = await run('sh', ['-c', 'pwd; echo "$BOOTFS_T"'], { cwd: dir, env: { PATH: process.env.PATH, BOOTFS_T: 'x y' } });
    expect(r.stdout.toString()).toBe(`${dir}\nx y\n`);
  });

  it('kills the whole process group on timeout', async () => {
    // sh starts a grandchild and prints its pid; both must die.
    const r = await run('sh', ['-c', 'sleep 30 & echo $!; wait'], { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.code).toBeNull();
    expect(r.signal).toBe('SIGTERM');
    expect(r.durationMs).toBeLessThan(5_000);
    const grandchild = Number(r.stdout.toString().trim());
    expect(grandchild).toBeGreaterThan(1);
    for (let i = 0; i < 50 && !processGone(grandchild); i++) await new Promise((res) => setTimeout(res, 20));
    expect(processGone(grandchild)).toBe(true);
  });

  it('uses SIGKILL when the group ignores SIGTERM', async () => {
    const r = await run('sh', ['-c', 'trap "" TERM; sleep 30'], { timeoutMs: 200, killGraceMs: 200 });
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.durationMs).toBeLessThan(5_000);
  });

  it('rejects when the program does not exist', async () => {
    await expect(run(FAKE, [])).rejects.toThrow(/ENOENT/);
  });
});

describe('tmpDir / cleanup', () => {
  it('makes fresh dirs under os.tmpdir() and removes them, read-only parts included', async () => {
    const a = await tmpDir('bootfs-tools-test-');
    const b = await tmpDir('bootfs-tools-test-');
    expect(a).not.toBe(b);
    expect(path.dirname(a)).toBe(os.tmpdir());
    expect(path.basename(a).startsWith('bootfs-tools-test-')).toBe(true);
    await mkdir(path.join(a, 'ro', 'deep'), { recursive: true });
    await writeFile(path.join(a, 'ro', 'deep', 'f'), 'x');
    await chmod(path.join(a, 'ro', 'deep'), 0o500);
    await chmod(path.join(a, 'ro'), 0o500);
    const d = await tmpDirWithDispose('bootfs-tools-test-');
    await d.dispose();
    expect(existsSync(d.path)).toBe(false);
    await cleanup();
    expect(existsSync(a)).toBe(false);
    expect(existsSync(b)).toBe(false);
  });
});

describe('removeTree', () => {
  it('unmounts what a test left mounted inside instead of deleting through it', async (ctx) => {
    if (process.getuid?.() !== 0 || !hasTool('mount') || !hasTool('umount')) ctx.skip();
    const outside = await tmpDir('bootfs-tools-test-');
    await writeFile(path.join(outside, 'precious'), 'keep me');
    const inside = await tmpDir('bootfs-tools-test-');
    await mkdir(path.join(inside, 'mnt'));
    const m = await run('mount', ['--bind', outside, path.join(inside, 'mnt')]);
    if (m.code !== 0) ctx.skip(); // no CAP_SYS_ADMIN here
    expect(mountsUnder(inside)).toEqual([path.join(inside, 'mnt')]);
    await removeTree(inside);
    expect(existsSync(inside)).toBe(false);
    expect(await readFile(path.join(outside, 'precious'), 'utf8')).toBe('keep me');
  });
});

describe('debianRootfs --print-env parsing', () => {
  it('parses bare, quoted and escaped values', () => {
    expect(parseEnvLines("A=/x/y\nB='/a b/c'\\''d'\nC=p\\ q\nnot a line\n")).toEqual({
      A: '/x/y',
      B: "/a b/c'd",
      C: 'p q',
    });
  });

  it('reads a finished fixture from the cache without building (odd characters in the path)', async () => {
    // A fake, complete fixture in a cache dir whose name needs quoting: the script must only
    // print it (no root, no debootstrap), and debianRootfs() must parse the quoted paths back.
    const base = await tmpDir("bootfs-tools-test-it's ");
    const version = /^FIXTURE_VERSION=(\S+)$/m.exec(await readFile(debianRootfsScript, 'utf8'))?.[1];
    expect(version).toBeDefined();
    const unit = path.join(base, 'fixtures', 'debian-rootfs');
    await mkdir(path.join(unit, 'rootfs'), { recursive: true });
    await writeFile(path.join(unit, '.complete'), `${version}\n`);
    const saved = process.env.BOOTFS_CACHE_DIR;
    process.env.BOOTFS_CACHE_DIR = base;
    try {
      const fx = debianRootfs();
      expect(fx).toEqual({
        dir: path.join(unit, 'rootfs'),
        tar: path.join(unit, 'debian-rootfs.tar'),
        stream: path.join(unit, 'debian-rootfs.stream'),
      });
      expect(debianRootfs()).toBe(fx); // memoized
      expect((await stat(fx.dir)).isDirectory()).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.BOOTFS_CACHE_DIR;
      else process.env.BOOTFS_CACHE_DIR = saved;
    }
    // Without --print-env: just the directory.
    const plain = await run('bash', [debianRootfsScript], { env: { ...process.env, BOOTFS_CACHE_DIR: base } });
    expect(plain.code, plain.stderr.toString()).toBe(0);
    expect(plain.stdout.toString()).toBe(`${path.join(unit, 'rootfs')}\n`);
  });

  it('refuses to build without root, naming the reason', async (ctx) => {
    // As root, drop to nobody (a real build is not what this test is about).
    const asRoot = process.getuid?.() === 0;
    if (asRoot && !hasTool('setpriv')) ctx.skip();
    const base = await tmpDir('bootfs-tools-test-');
    const argv = ['bash', debianRootfsScript, '--print-env'];
    const [cmd, ...args] = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...argv] : argv;
    const r = await run(cmd!, args, { env: { ...process.env, BOOTFS_CACHE_DIR: base } });
    expect(r.code).not.toBe(0);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr.toString()).toMatch(/needs root/);
  });
});
