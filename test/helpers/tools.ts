// Test helpers: external tools, fixtures, temp dirs and a child-process runner for vitest tests.
//
// Integration tests use real programs (casync, rsync, debootstrap, …; DESIGN.md §8). They declare
// what they need with describeWithTools(); scripts/setup installs it.

import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync, rmSync, statSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, lstat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';

/** The repository root (this file is test/helpers/tools.ts). */
export const repoRoot: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The built CLI; run it as `run(process.execPath, [bootfsBin, ...args])` (needs `npm run build`). */
export const bootfsBin: string = path.join(repoRoot, 'dist', 'cli', 'bin.js');

/** scripts/fixtures/debian-rootfs */
export const debianRootfsScript: string = path.join(repoRoot, 'scripts', 'fixtures', 'debian-rootfs');

// ------------------------------------------------------------------------------------------------
// Tools
// ------------------------------------------------------------------------------------------------

const toolCache = new Map<string, string | null>();

/** Absolute path of executable `name` as a spawn would find it through PATH, or null. Cached. */
export function whichTool(name: string): string | null {
  const cached = toolCache.get(name);
  if (cached !== undefined) return cached;
  let found: string | null = null;
  const candidates = name.includes('/')
    ? [path.resolve(name)]
    : (process.env.PATH ?? '')
        .split(path.delimiter)
        .filter((d) => d !== '')
        .map((d) => path.join(d, name));
  for (const file of candidates) {
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, fsConstants.X_OK);
      found = file;
      break;
    } catch {
      // not here
    }
  }
  toolCache.set(name, found);
  return found;
}

/** Is executable `name` on PATH? Cached per name. */
export function hasTool(name: string): boolean {
  return whichTool(name) !== null;
}

/** Check that every tool exists; `reason` names the missing ones. */
export function requireTools(...names: string[]): { ok: boolean; reason?: string } {
  const missing = names.filter((n) => !hasTool(n));
  if (missing.length === 0) return { ok: true };
  return { ok: false, reason: `missing tools ${missing.join(', ')}: run scripts/setup` };
}

/** True when running in CI (`CI=true`), where a skipped integration test counts as a failure. */
export function inCI(): boolean {
  return process.env.CI === 'true';
}

/** What describeWithTools does for `names`: run the suite, skip it, or fail it (CI). */
export function toolsGate(
  names: readonly string[],
  title: string,
  ci: boolean = inCI(),
): { mode: 'run' | 'skip' | 'fail'; title: string; reason?: string } {
  const r = requireTools(...names);
  if (r.ok) return { mode: 'run', title };
  if (ci) return { mode: 'fail', title, reason: r.reason! };
  return { mode: 'skip', title: `${title} [skipped: ${r.reason!}]`, reason: r.reason! };
}

/**
 * `describe(title, fn)` when every tool in `names` is on PATH. Otherwise:
 * - in CI (`CI=true`) a single test that fails with "missing tools X, Y: run scripts/setup"
 *   (a skipped integration test in CI is a failure);
 * - elsewhere `describe.skip`, with the reason in the title.
 *
 * vitest still calls `fn` to collect a skipped suite, so `fn` must only register tests and hooks
 * (do tool and fixture work in beforeAll / the tests, never in the describe body itself).
 */
export function describeWithTools(names: string[], title: string, fn: () => void): void {
  const g = toolsGate(names, title);
  if (g.mode === 'run') {
    describe(title, fn);
  } else if (g.mode === 'fail') {
    describe(title, () => {
      it(`has the tools it needs (${names.join(', ')})`, () => {
        throw new Error(g.reason);
      });
    });
  } else {
    describe.skip(g.title, fn);
  }
}

// ------------------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------------------

export interface RootfsFixture {
  /** the root filesystem tree */
  dir: string;
  /** `tar --numeric-owner --xattrs --sort=name -C dir -cf tar .` */
  tar: string;
  /** the contents of every regular file of `dir`, concatenated in sorted path order */
  stream: string;
}

/**
 * Parse `KEY=VALUE` lines as written by scripts/fixtures/debian-rootfs --print-env: VALUE is a
 * shell word made of bare characters, '…' single-quoted runs and \-escapes.
 */
export function parseEnvLines(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    const raw = m[2]!;
    let value = '';
    for (let i = 0; i < raw.length; i++) {
      const c = raw[i]!;
      if (c === "'") {
        const end = raw.indexOf("'", i + 1);
        if (end < 0) throw new Error(`unterminated quote in: ${line}`);
        value += raw.slice(i + 1, end);
        i = end;
      } else if (c === '\\' && i + 1 < raw.length) {
        value += raw[++i];
      } else {
        value += c;
      }
    }
    out[m[1]!] = value;
  }
  return out;
}

const rootfsCache = new Map<string, RootfsFixture>();

/**
 * The Debian bookworm minbase fixture (v1), or with 'v2' the same plus python3-minimal.
 * Builds it on first use (debootstrap, needs root and the network; about a minute), afterwards
 * it comes from the cache (${BOOTFS_CACHE_DIR:-~/.cache/bootfs}/fixtures). Synchronous and
 * memoized; the script's log goes to this process's stderr. Call it inside tests or beforeAll
 * (with a generous timeout), not at collection time.
 */
export function debianRootfs(variant: 'v1' | 'v2' = 'v1'): RootfsFixture {
  const cached = rootfsCache.get(variant);
  if (cached) return cached;
  const args = variant === 'v2' ? ['--v2', '--print-env'] : ['--print-env'];
  let stdout: string;
  try {
    // via bash: works even if the checkout lost the script's executable bit
    stdout = execFileSync('bash', [debianRootfsScript, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 30 * 60_000,
      maxBuffer: 1 << 20,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { status?: number | null; signal?: string | null };
    const how = e.code === 'ETIMEDOUT' ? 'timed out' : e.status != null ? `exit ${e.status}` : (e.signal ?? e.message);
    throw new Error(`${debianRootfsScript} ${args.join(' ')} failed (${how}); its log is on stderr above`, { cause: err });
  }
  const env = parseEnvLines(stdout);
  const { ROOTFS_DIR: dir, ROOTFS_TAR: tar, ROOTFS_STREAM: stream } = env;
  if (!dir || !tar || !stream) {
    throw new Error(`unexpected output from ${debianRootfsScript} ${args.join(' ')}: ${JSON.stringify(stdout)}`);
  }
  const fx: RootfsFixture = { dir, tar, stream };
  rootfsCache.set(variant, fx);
  return fx;
}

// ------------------------------------------------------------------------------------------------
// Temp dirs and cleanup
// ------------------------------------------------------------------------------------------------

type Cleanup = () => unknown;
const cleanups: Cleanup[] = [];
const liveTmpDirs = new Set<string>();

/** Register `fn` to run at `cleanup()` (last registered runs first). */
export function onCleanup(fn: Cleanup): void {
  cleanups.push(fn);
}

/**
 * Run (and forget) every registered cleanup, last first; use as `afterAll(cleanup)`. All run even
 * if some fail; then the first error is thrown (an AggregateError if several failed).
 */
export async function cleanup(): Promise<void> {
  const errors: unknown[] = [];
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanups failed`);
}

/** Decode the octal escapes of /proc/self/mounts (\040 for a space, …). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below `dir` (Linux), deepest first. */
export function mountsUnder(dir: string): string[] {
  let table: string;
  try {
    table = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return [];
  }
  const base = path.resolve(dir);
  return table
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((m): m is string => m !== undefined)
    .map(unescapeMount)
    .filter((m) => m === base || m.startsWith(base + '/'))
    .sort((a, b) => b.length - a.length);
}

/**
 * Remove a tree made by a test. Anything still mounted below it (a FUSE mount of a failed test)
 * is lazily unmounted first, and if that fails the tree is left alone rather than deleting through
 * the mount. Directories the test made read-only are made writable again.
 */
export async function removeTree(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) {
    for (const [cmd, args] of [
      ['fusermount3', ['-u', '-z', m]],
      ['fusermount', ['-u', '-z', m]],
      ['umount', ['-l', m]],
    ] as const) {
      if (!hasTool(cmd)) continue;
      const r = await run(cmd, [...args], { timeoutMs: 30_000 });
      if (r.code === 0) break;
    }
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`not removing ${dir}: still mounted: ${left.join(', ')}`);
  try {
    await rm(dir, { recursive: true, force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'ENOTEMPTY') throw err;
    await makeWritable(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

async function makeWritable(dir: string): Promise<void> {
  const st = await lstat(dir).catch(() => null);
  if (!st?.isDirectory()) return;
  await chmod(dir, 0o700).catch(() => undefined);
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) await makeWritable(path.join(dir, e.name));
  }
}

/**
 * A fresh directory `os.tmpdir()/<prefix>XXXXXX` (mkdtemp; pass e.g. 'bootfs-cli-'). It is removed
 * by `cleanup()` (register `afterAll(cleanup)`), or by the returned path's owner; whatever is
 * left is removed when the process exits, unless BOOTFS_KEEP_TMP=1.
 */
export async function tmpDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  liveTmpDirs.add(dir);
  onCleanup(async () => {
    if (process.env.BOOTFS_KEEP_TMP === '1') return;
    await removeTree(dir);
    liveTmpDirs.delete(dir);
  });
  return dir;
}

/** tmpDir() plus its own disposer, for a directory that should go before the file's cleanup(). */
export async function tmpDirWithDispose(prefix: string): Promise<{ path: string; dispose: () => Promise<void> }> {
  const dir = await tmpDir(prefix);
  return {
    path: dir,
    dispose: async () => {
      if (process.env.BOOTFS_KEEP_TMP === '1') return;
      await removeTree(dir);
      liveTmpDirs.delete(dir);
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Running programs
// ------------------------------------------------------------------------------------------------

export interface RunOptions {
  cwd?: string;
  /** the child's whole environment (default: this process's) */
  env?: NodeJS.ProcessEnv;
  /** written to the child's stdin, which is then closed; without it stdin is /dev/null */
  input?: string | Uint8Array;
  /** kill the child's process group after this long (default 300 000 ms) */
  timeoutMs?: number;
  /** after a timeout: SIGTERM, then SIGKILL after this grace period (default 2000 ms) */
  killGraceMs?: number;
}

export interface RunResult {
  /** exit code, or null if killed by a signal */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  /** true if the timeout fired and the process group was killed */
  timedOut: boolean;
  durationMs: number;
}

/** Process groups of children still running; killed if this process exits first. */
const liveGroups = new Set<number>();

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Run `cmd args` and collect its output. Never rejects because of the exit status (check `code`);
 * rejects only if the program cannot be started (e.g. ENOENT). The child leads its own process
 * group, so the timeout (SIGTERM, then SIGKILL) reaches everything it started.
 */
export function run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const grace = opts.killGraceMs ?? 2_000;
  const t0 = performance.now();
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(cmd, [...args], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true, // own process group
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let settled = false;
    let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const timers: NodeJS.Timeout[] = [];

    const finish = (): void => {
      if (settled || !exitInfo) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      resolve({
        code: exitInfo.code,
        signal: exitInfo.signal,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err),
        timedOut,
        durationMs: performance.now() - t0,
      });
    };

    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      // Normally 'close' follows at once. If something the child left running (in another process
      // group) still holds the pipes, stop waiting for it.
      timers.push(
        setTimeout(() => {
          child.stdout!.destroy();
          child.stderr!.destroy();
          finish();
        }, 2_000).unref(),
      );
    });
    child.on('close', (code, signal) => {
      exitInfo ??= { code, signal };
      finish();
    });

    if (child.pid !== undefined) {
      liveGroups.add(child.pid);
      const pid = child.pid;
      timers.push(
        setTimeout(() => {
          timedOut = true;
          killGroup(pid, 'SIGTERM');
          timers.push(setTimeout(() => killGroup(pid, 'SIGKILL'), grace));
        }, timeoutMs),
      );
    }

    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {
        // EPIPE: the child did not read all of its input; its exit status tells the story.
      });
      child.stdin!.end(opts.input);
    }
  });
}

/** Run the built CLI (the bundle package.json names as bin): `node dist/cli/bin.js ARGS`. */
export function runBootfs(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [bootfsBin, ...args], opts);
}

// Last resort when a test file's process exits: kill what is still running, remove temp dirs.
process.once('exit', () => {
  for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
  if (process.env.BOOTFS_KEEP_TMP === '1') return;
  for (const dir of liveTmpDirs) {
    if (mountsUnder(dir).length > 0) continue;
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
});
