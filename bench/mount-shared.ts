/**
 * What the parts of the mount benchmark share: targets, tools, the context, the images they mount
 * (prepared lazily, once per run: the Debian rootfs converted into a store and made with casync, the
 * pseudo-random file with a warmed cache), timed shell commands and small statistics.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { bootfsConvertArgs, type CheckRecord, type ConvertSummary, casyncMakeArgs, InputUnavailable, parseConvertSummary } from './convert-shared.js';
import { locateRootfsDir, RANDOM_RECIPE, writeRandomFile } from './inputs.js';
import type { LiveMount, MountRegistry, StopResult } from './mount-proc.js';
import type { MountBenchOptions } from './mount-options.js';
import { runChecked, runProcess } from './proc.js';
import { median } from './stats.js';
import type { WorkDir } from './workdir.js';

/** Targets of issue 4. */
export const MOUNT_TARGETS = {
  /** casync mount seconds ÷ bootfs warm-cache seconds to cat every rootfs file: at least this. */
  catWarmVsCasync: 5,
  /** dd bs=1M of the --seq-size file through a fresh mount over a warm cache: at least this many MB/s (10⁶ B/s). */
  seqMBps: 500,
  /** Σ remoteBytes of --procs mounts sharing one cache ÷ remoteBytes of one mount alone: at most this. */
  procsRemoteRatio: 1.05,
  /** Spawn of `bootfs mount` of the 100k-entry index until a stat inside it answers: below this many seconds. */
  mount100kSeconds: 1,
} as const;

/** Absolute paths (or PATH names) of everything the benchmark runs. */
export interface MountTools {
  node: string;
  bootfsBin: string;
  casync: string;
  python3: string;
}

/** State and services every part gets. */
export interface MountContext {
  opts: MountBenchOptions;
  work: WorkDir;
  tools: MountTools;
  repoRoot: string;
  mounts: MountRegistry;
  images: MountImages;
}

/** Median, min and max of a list (all null when it is empty). */
export interface Spread {
  n: number;
  median: number | null;
  min: number | null;
  max: number | null;
}

/** Median, min and max of `values`. */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { n: 0, median: null, min: null, max: null };
  return { n: values.length, median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** a ÷ b, or null when either is missing or b is 0. */
export const ratioOf = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;

/** A shell command's outcome, timed from spawn to exit. */
export interface ShellRun {
  ok: boolean;
  seconds: number;
  exitCode: number | null;
  stdout: string;
  /** The last 64 KiB of stderr. */
  stderr: string;
  /** The last lines of stderr when it failed. */
  error?: string;
}

/** Run `script` with `bash -o pipefail -c`, `$1…` = args; wall time with hrtime around the process. */
export async function timeShell(script: string, args: readonly string[] = []): Promise<ShellRun> {
  const t = process.hrtime.bigint();
  const r = await runProcess('bash', ['-o', 'pipefail', '-c', script, 'bash', ...args]);
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  const ok = r.code === 0;
  return { ok, seconds, exitCode: r.code, stdout: r.stdout, stderr: r.stderr, ...(ok ? {} : { error: `exit ${r.code ?? r.signal}: ${r.stderr.trim().split('\n').slice(-3).join(' | ') || '(no stderr)'}` }) };
}

/** Regular files below `root` as relative paths, sorted (symlinks not followed; hardlinks once per name, as find -type f lists them). */
export async function regularFiles(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = (await readdir(path.join(root, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const r = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...(await regularFiles(root, r)));
    else if (e.isFile()) out.push(r);
  }
  return out;
}

/** An index and the store holding its chunks, plus the same tree made with casync when asked for. */
export interface Image {
  /** The source directory. */
  dir: string;
  index: string;
  store: string;
  convert: ConvertSummary;
}

/** A casync index of an image's directory and its store. */
export interface CasyncImage {
  caidx: string;
  store: string;
  seconds: number;
}

/** The --seq-size file image: its source, index, store and a cache dir holding every chunk. */
export interface BigFileImage extends Image {
  file: string;
  /** Path of the file inside the image. */
  name: string;
  bytes: number;
  recipe: string;
  cache: string;
  warm: Record<string, unknown>;
}

const seconds = (from: bigint): number => Number(process.hrtime.bigint() - from) / 1e9;

/** The images the parts mount, each prepared on first use. */
export class MountImages {
  private rootfsP: Promise<Image> | undefined;
  private rootfsCasyncP: Promise<CasyncImage> | undefined;
  private bigP: Promise<BigFileImage> | undefined;
  private bigCasyncP: Promise<CasyncImage> | undefined;

  constructor(private readonly ctx: { opts: MountBenchOptions; tools: MountTools; repoRoot: string; base: string }) {}

  /** The Debian rootfs fixture (used in place) converted into `images/rootfs-store`. */
  rootfs(): Promise<Image> {
    return (this.rootfsP ??= this.convertRootfs());
  }

  /** The same fixture made with `casync make` (same chunk sizes) into its own store. */
  rootfsCasync(): Promise<CasyncImage> {
    return (this.rootfsCasyncP ??= this.rootfs().then((img) => this.casyncMake('rootfs', img.dir)));
  }

  /** The pseudo-random file, converted, with a cache dir warmed by `bootfs cache warm`. */
  bigFile(): Promise<BigFileImage> {
    return (this.bigP ??= this.makeBigFile());
  }

  /** The pseudo-random file's directory made with casync. */
  bigFileCasync(): Promise<CasyncImage> {
    return (this.bigCasyncP ??= this.bigFile().then((img) => this.casyncMake('big', img.dir)));
  }

  private async convertRootfs(): Promise<Image> {
    const found = await locateRootfsDir(this.ctx.repoRoot);
    if (!found.ok) throw new InputUnavailable(`rootfs: ${found.reason}`);
    return this.convert('rootfs', found.dir);
  }

  private async convert(name: string, dir: string): Promise<Image> {
    const base = path.join(this.ctx.base, 'images');
    const tmp = path.join(base, `${name}-tmp`);
    await mkdir(tmp, { recursive: true });
    const index = path.join(base, `${name}.bootfs`);
    const store = path.join(base, `${name}-store`);
    process.stderr.write(`bootfs convert dir:${dir} -> ${index}\n`);
    const out = await runChecked(this.ctx.tools.node, bootfsConvertArgs(this.ctx.tools.bootfsBin, `dir:${dir}`, store, index, tmp));
    await rm(tmp, { recursive: true, force: true });
    return { dir, index, store, convert: parseConvertSummary(out) };
  }

  private async casyncMake(name: string, dir: string): Promise<CasyncImage> {
    const base = path.join(this.ctx.base, 'images');
    const caidx = path.join(base, `${name}.caidx`);
    const store = path.join(base, `${name}-casync-store`);
    process.stderr.write(`casync make ${dir} -> ${caidx}\n`);
    const t = process.hrtime.bigint();
    await runChecked(this.ctx.tools.casync, casyncMakeArgs(store, caidx, dir));
    return { caidx, store, seconds: seconds(t) };
  }

  private async makeBigFile(): Promise<BigFileImage> {
    const dir = path.join(this.ctx.base, 'images', 'big-src');
    await mkdir(dir, { recursive: true });
    const name = 'big';
    const file = path.join(dir, name);
    const bytes = this.ctx.opts.seqSizeBytes;
    process.stderr.write(`writing ${(bytes / 1e6).toFixed(0)} MB of pseudo-random bytes to ${file}\n`);
    await writeRandomFile(file, bytes);
    const img = await this.convert('big', dir);
    const cache = path.join(this.ctx.base, 'images', 'big-cache');
    process.stderr.write(`bootfs cache warm ${img.index} -c ${cache}\n`);
    const t = process.hrtime.bigint();
    const out = await runChecked(this.ctx.tools.node, [this.ctx.tools.bootfsBin, 'cache', 'warm', img.index, '-c', cache, '-s', img.store, '--json', '--no-progress']);
    const warm: Record<string, unknown> = { ...(JSON.parse(out) as Record<string, unknown>), wallSeconds: seconds(t) };
    if (typeof warm.chunks !== 'number' || warm.chunks === 0 || (warm.cached as number) + (warm.fetched as number) !== warm.chunks) {
      throw new Error(`bootfs cache warm of ${img.index} did not cache every chunk: ${out.trim()}`);
    }
    return { ...img, file, name, bytes, recipe: RANDOM_RECIPE, cache, warm };
  }
}

/** A mount's life around `body`: what body returned (or why it failed) and how the mount stopped. */
export interface MountedResult<T> {
  value?: T;
  mount?: LiveMount;
  stop?: StopResult;
  /** Why the mount, the body or the stop failed (first problem). */
  error?: string;
}

/** Start a mount, run `body` on it, always stop it; never throws. */
export async function withMount<T>(ctx: MountContext, start: () => Promise<LiveMount>, body: (m: LiveMount) => Promise<T>): Promise<MountedResult<T>> {
  let mount: LiveMount;
  try {
    mount = await start();
  } catch (err) {
    return { error: (err as Error).message };
  }
  const out: MountedResult<T> = { mount };
  try {
    out.value = await body(mount);
  } catch (err) {
    out.error = (err as Error).message;
  } finally {
    out.stop = await ctx.mounts.stop(mount);
    if (out.stop.problem) out.error ??= out.stop.problem;
  }
  return out;
}

/** Push a check and log a failed one on stderr. */
export function addCheck(checks: CheckRecord[], what: string, ok: boolean, detail: string): void {
  checks.push({ what, ok, detail });
  if (!ok) process.stderr.write(`check failed: ${what}: ${detail}\n`);
}

/** Make (if needed) and return `<work>/<rel>`. */
export async function workSubdir(ctx: MountContext, rel: string): Promise<string> {
  const dir = path.join(ctx.work.path, rel);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** `n` with `digits` decimals and a unit, or 'n/a'. */
export const num = (n: number | null | undefined, digits: number, unit = ''): string => (n === null || n === undefined ? 'n/a' : `${n.toFixed(digits)}${unit}`);
