// Test helpers for podman (boot images run as real containers; DESIGN.md §8, docs/boot-notes.md).
//
// Every podman call goes through `podman()`, which adds what this host needs:
//   - CONTAINERS_CONF=test/podman/containers.conf (default_ulimits = [], runc, cgroupfs, file
//     events, host network). The host's own podman configuration is not read or changed.
//   - a storage of our own (--root/--runroot/--tmpdir): other podman users on the machine cannot
//     remove our containers or images ("podman rm -a", a wiped /run/libpod), nor we theirs. The
//     image store lives in the cache (${BOOTFS_CACHE_DIR:-~/.cache/bootfs}/podman/storage), so the
//     base image is loaded once per fixture build; the runtime state lives in /run/bootfs-podman.
//     BOOTFS_PODMAN_STORAGE=system uses podman's default storage instead.
//
// Containers and images made by a test are removed at `cleanup()` (tools.ts) when registered with
// trackContainer()/trackImage() (uniqueName() + run/load helpers do that).

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onCleanup, parseEnvLines, repoRoot, run, whichTool, type RunOptions, type RunResult } from './tools.js';

/** test/podman/containers.conf */
export const podmanConf: string = path.join(repoRoot, 'test', 'podman', 'containers.conf');

/** scripts/fixtures/base-image */
export const baseImageScript: string = path.join(repoRoot, 'scripts', 'fixtures', 'base-image');

/** The `podman run` options a boot image needs (docs/boot-notes.md). */
export const BOOT_RUN_ARGS: readonly string[] = ['--device', '/dev/fuse', '--cap-add', 'SYS_ADMIN'];

function cacheDir(): string {
  return process.env.BOOTFS_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'bootfs');
}

export interface PodmanStorage {
  /** image and container store (persistent) */
  root: string;
  /** runtime state (container states, locks) */
  runroot: string;
  /** libpod's tmpdir (its "alive" file, events, exit files) */
  tmpdir: string;
}

/** Our storage, or null with BOOTFS_PODMAN_STORAGE=system (podman's defaults). */
export function podmanStorage(): PodmanStorage | null {
  if (process.env.BOOTFS_PODMAN_STORAGE === 'system') return null;
  return {
    root: path.join(cacheDir(), 'podman', 'storage'),
    runroot: '/run/bootfs-podman/runroot',
    tmpdir: '/run/bootfs-podman/tmp',
  };
}

/** Global podman options (before the subcommand). */
export function podmanGlobalArgs(): string[] {
  const s = podmanStorage();
  return s ? ['--root', s.root, '--runroot', s.runroot, '--tmpdir', s.tmpdir] : [];
}

/** The environment for podman: `base` plus CONTAINERS_CONF. */
export function podmanEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...base, CONTAINERS_CONF: podmanConf };
}

/** skopeo's name for an image in our store: containers-storage:[overlay@ROOT+RUNROOT]NAME. */
export function storageRef(name: string): string {
  const s = podmanStorage();
  return s ? `containers-storage:[overlay@${s.root}+${s.runroot}]${name}` : `containers-storage:${name}`;
}

let availability: { ok: boolean; reason?: string } | undefined;

/**
 * Can the tests run containers here? Needs root (boot images need CAP_SYS_ADMIN and /dev/fuse,
 * which rootless podman cannot give), podman, runc and skopeo on PATH, /dev/fuse, and a working
 * `podman info` with our configuration. Memoized; `reason` says what is missing.
 */
export function podmanAvailable(): { ok: boolean; reason?: string } {
  if (availability) return availability;
  const missing = ['podman', 'runc', 'skopeo'].filter((t) => whichTool(t) === null);
  if (missing.length > 0) {
    availability = { ok: false, reason: `missing tools ${missing.join(', ')}: run scripts/setup` };
  } else if (process.getuid?.() !== 0) {
    availability = { ok: false, reason: 'podman tests need root (boot images need CAP_SYS_ADMIN and /dev/fuse)' };
  } else if (!existsSync('/dev/fuse')) {
    availability = { ok: false, reason: '/dev/fuse does not exist (modprobe fuse)' };
  } else {
    const r = spawnSync('podman', [...podmanGlobalArgs(), 'info', '--format', '{{.Host.OCIRuntime.Name}}'], {
      env: podmanEnv(),
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (r.status !== 0) {
      availability = { ok: false, reason: `podman info failed: ${(r.stderr || r.error?.message || '').trim()}` };
    } else if (r.stdout.trim() !== 'runc') {
      availability = { ok: false, reason: `podman uses runtime ${r.stdout.trim()}, expected runc (${podmanConf})` };
    } else {
      availability = { ok: true };
    }
  }
  return availability;
}

/**
 * Run `podman ARGS` with our configuration and storage. Resolves with the result whatever the
 * exit status (see tools.ts run()). `opts.env` replaces the environment as in run(); CONTAINERS_CONF
 * is added to it.
 */
export function podman(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('podman', [...podmanGlobalArgs(), ...args], { ...opts, env: podmanEnv(opts.env ?? process.env) });
}

/** podman() that throws unless the exit status is 0; returns stdout (trailing newline removed). */
export async function podmanOk(args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await podman(args, opts);
  if (r.code !== 0) {
    throw new Error(
      `podman ${args.join(' ')} failed (${r.timedOut ? 'timed out' : r.code !== null ? `exit ${r.code}` : r.signal}): ${r.stderr.toString().trim()}`,
    );
  }
  return r.stdout.toString().replace(/\n$/, '');
}

let nameCounter = 0;

/** A container or image name no other test (or process) uses: bootfs-test-PREFIX-PID-N-RAND. */
export function uniqueName(prefix: string): string {
  const rand = Math.random().toString(36).slice(2, 8);
  return `bootfs-test-${prefix}-${process.pid}-${++nameCounter}-${rand}`;
}

/** Remove container `name` (running or not) at cleanup(). */
export function trackContainer(name: string): void {
  onCleanup(() => removeContainer(name));
}

/** Remove image `name` at cleanup() (after the containers registered later than it). */
export function trackImage(name: string): void {
  onCleanup(() => removeImage(name));
}

/** `podman rm -f -i -t 0 NAME`: kill and remove; no error if it is gone already. */
export async function removeContainer(name: string): Promise<void> {
  await podmanOk(['rm', '--force', '--ignore', '--time', '0', name], { timeoutMs: 60_000 });
}

/** `podman rmi -f -i NAME`. */
export async function removeImage(name: string): Promise<void> {
  await podmanOk(['rmi', '--force', '--ignore', name], { timeoutMs: 60_000 });
}

/** Does image `name` exist in our store? */
export async function imageExists(name: string): Promise<boolean> {
  const r = await podman(['image', 'exists', name], { timeoutMs: 60_000 });
  return r.code === 0;
}

/**
 * Copy an image into our store under `name` (e.g. "localhost/bootfs-test/x:1") with skopeo, which
 * takes any source it knows: `oci:DIR:TAG`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`,
 * `dir:DIR`. (podman itself names images pulled from `oci:DIR` after DIR and rejects paths such
 * as ~/.cache; `podman load` does not take an OCI layout directory. See docs/boot-notes.md.)
 * Removed at cleanup() unless `keep`.
 */
export async function loadImage(src: string, name: string, opts: { keep?: boolean } = {}): Promise<string> {
  if (!opts.keep) trackImage(name);
  const r = await run('skopeo', ['copy', '--quiet', src, storageRef(name)], { timeoutMs: 600_000, env: podmanEnv() });
  if (r.code !== 0) throw new Error(`skopeo copy ${src} ${storageRef(name)} failed (exit ${r.code}): ${r.stderr.toString().trim()}`);
  return name;
}

export interface BaseImageFixture {
  /** the OCI layout directory */
  oci: string;
  /** oci:DIR:base */
  ref: string;
  /** unique per fixture build */
  id: string;
}

let baseFixture: BaseImageFixture | undefined;

/**
 * scripts/fixtures/base-image --print-env: Debian bookworm minbase + this machine's node at
 * /usr/local/bin/node, as an OCI layout. Builds it on first use (root; builds the debian-rootfs
 * fixture first if needed, a few minutes; otherwise about 15 s), then from the cache. Synchronous
 * and memoized; call it in beforeAll (generous timeout), not at collection time.
 */
export function baseImageFixture(): BaseImageFixture {
  if (baseFixture) return baseFixture;
  let stdout: string;
  try {
    stdout = execFileSync('bash', [baseImageScript, '--print-env'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 30 * 60_000,
      env: { ...process.env, BOOTFS_NODE: process.execPath },
    });
  } catch (err) {
    throw new Error(`${baseImageScript} --print-env failed; its log is on stderr above`, { cause: err });
  }
  const env = parseEnvLines(stdout);
  const { BASE_IMAGE_OCI: oci, BASE_IMAGE_REF: ref, BASE_IMAGE_ID: id } = env;
  if (!oci || !ref || !id) throw new Error(`unexpected output from ${baseImageScript} --print-env: ${JSON.stringify(stdout)}`);
  baseFixture = { oci, ref, id };
  return baseFixture;
}

let baseImageName: Promise<string> | undefined;

/**
 * The base image in our store, as "localhost/bootfs-test/base:<fixture build id>": loaded once
 * per fixture build and kept (it is the cache, not a test's leftover). Memoized per process.
 */
export function baseImage(): Promise<string> {
  baseImageName ??= (async () => {
    const fx = baseImageFixture();
    const name = `localhost/bootfs-test/base:${fx.id}`;
    if (!(await imageExists(name))) await loadImage(fx.ref, name, { keep: true });
    return name;
  })();
  baseImageName.catch(() => (baseImageName = undefined));
  return baseImageName;
}

export interface ContainerRun {
  /** the container's name (removed at cleanup()) */
  name: string;
  result: RunResult;
}

/**
 * `podman run --name N [--rm] ARGS…` in the foreground (ARGS: options, the image, the command).
 * The container is removed at cleanup() even if the run times out; its exit status is the
 * container's (podman run passes it through).
 */
export async function runContainer(args: readonly string[], opts: RunOptions & { prefix?: string; rm?: boolean } = {}): Promise<ContainerRun> {
  const name = uniqueName(opts.prefix ?? 'run');
  trackContainer(name);
  const result = await podman(['run', '--name', name, ...(opts.rm === false ? [] : ['--rm']), ...args], opts);
  return { name, result };
}

/** `podman run -d --name N ARGS…`; returns the name (removed at cleanup()). */
export async function startContainer(args: readonly string[], opts: { prefix?: string } = {}): Promise<string> {
  const name = uniqueName(opts.prefix ?? 'ctr');
  trackContainer(name);
  await podmanOk(['run', '--detach', '--name', name, ...args], { timeoutMs: 120_000 });
  return name;
}

/** The exit code podman recorded for a stopped container. */
export async function containerExitCode(name: string): Promise<number> {
  return Number(await podmanOk(['inspect', '--format', '{{.State.ExitCode}}', name]));
}
