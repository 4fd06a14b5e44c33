/**
 * The timed rounds of the boot benchmark. Each round runs two blocks (original first in odd
 * rounds, boot first in even ones):
 *
 *   original  rmi; [original-cold] pull + run; [original-warm] run again (image present); rmi
 *   boot      rmi boot and base; fresh cache A; [boot-cold-base] pull + run (the base's layers
 *             come over the link too); pull base (untimed: its layers are there now); rmi boot;
 *             fresh cache B; [boot-cold] pull + run (base on the node); [boot-warm] run again
 *             over cache B (image present)
 *
 * Every cell's clock starts just before `podman pull` (or `podman run` when there is no pull);
 * first output = the first line on the container's stdout, exit = podman run's exit. Link bytes
 * are the host veth's rx counter; store bytes are deltas of `bootfs serve`'s /metrics.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { CheckRecord } from './convert-shared.js';
import { APP_LINE, cacheContents, type CacheContents, type ChunkSizeMap, type PreparedImages } from './boot-images.js';
import { type BenchLink, readStoreCounters } from './boot-net.js';
import type { BenchPodman } from './boot-podman.js';
import { addCheck, spread, type Spread } from './mount-shared.js';

/** The cells, in table order. */
export const BOOT_CELLS = ['original-cold', 'original-warm', 'boot-cold', 'boot-cold-base', 'boot-warm'] as const;
/** One of BOOT_CELLS. */
export type BootCell = (typeof BOOT_CELLS)[number];

/** What each cell is, for tables and the JSON. */
export const CELL_LABELS: Record<BootCell, string> = {
  'original-cold': 'original: pull + run',
  'original-warm': 'original: run, image present',
  'boot-cold': 'boot: pull + run, cold cache, base on node',
  'boot-cold-base': 'boot: pull + run, cold cache, base pulled too',
  'boot-warm': 'boot: run, warm cache, image present',
};

/** One timed cell of one round. */
export interface BootRun {
  round: number;
  cell: BootCell;
  ok: boolean;
  pullSeconds: number | null;
  firstOutputSeconds: number | null;
  exitSeconds: number | null;
  /** Bytes received over the link during the pull / during the run. */
  pullLinkBytes: number | null;
  runLinkBytes: number | null;
  /** Stored chunk bytes and chunks `bootfs serve` sent during the cell. */
  storeBytes: number | null;
  storeChunks: number | null;
  /** The node cache after the cell (boot cells). */
  cache?: CacheContents;
  stdout: string;
  /** The tail of podman's stderr (pull and run). */
  stderr: string;
  error?: string;
}

/** What the rounds need. */
export interface RoundContext {
  runs: number;
  workDir: string;
  podman: BenchPodman;
  link: BenchLink;
  storeUrl: string;
  images: PreparedImages;
  sizes: ChunkSizeMap;
  checks: CheckRecord[];
}

const since = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e9;
const tailOf = (s: string): string => s.trim().split('\n').slice(-3).join(' | ');

/** Time one cell: optionally pull `pull`, then `podman run --rm --pull=never ARGS`. */
async function timedCell(ctx: RoundContext, round: number, cell: BootCell, pull: string | null, runArgs: string[], cache?: string): Promise<BootRun> {
  const c0 = await readStoreCounters(ctx.storeUrl);
  const rx0 = ctx.link.rxBytes();
  const t0 = process.hrtime.bigint();
  const r: BootRun = { round, cell, ok: false, pullSeconds: null, firstOutputSeconds: null, exitSeconds: null, pullLinkBytes: null, runLinkBytes: null, storeBytes: null, storeChunks: null, stdout: '', stderr: '' };
  let rxRun = rx0;
  if (pull !== null) {
    const p = await ctx.podman.run(['pull', '-q', '--tls-verify=false', pull]);
    r.pullSeconds = p.exitSeconds;
    rxRun = ctx.link.rxBytes();
    r.pullLinkBytes = rxRun - rx0;
    r.stderr = p.stderr;
    if (p.code !== 0) r.error = `podman pull ${pull}: ${p.timedOut ? 'timed out' : `exit ${p.code ?? p.signal}`}: ${tailOf(p.stderr)}`;
  }
  if (r.error === undefined) {
    const offset = since(t0);
    const run = await ctx.podman.run(['run', '--rm', '--pull=never', '--name', ctx.podman.nextName(), ...runArgs]);
    r.runLinkBytes = ctx.link.rxBytes() - rxRun;
    r.stdout = run.stdout;
    r.stderr = (r.stderr + run.stderr).slice(-8192);
    r.firstOutputSeconds = run.firstLineSeconds === null ? null : offset + run.firstLineSeconds;
    r.exitSeconds = offset + run.exitSeconds;
    if (run.code !== 0) r.error = `podman run: ${run.timedOut ? 'timed out' : `exit ${run.code ?? run.signal}`}: ${tailOf(run.stderr)}`;
    else if (run.stdout !== `${APP_LINE}\n`) r.error = `the app printed ${JSON.stringify(run.stdout.slice(0, 200))}, expected ${JSON.stringify(`${APP_LINE}\n`)}`;
  }
  const c1 = await readStoreCounters(ctx.storeUrl);
  r.storeBytes = c1.servedBytes - c0.servedBytes;
  r.storeChunks = c1.servedChunks - c0.servedChunks;
  if (cache !== undefined) r.cache = await cacheContents(cache, ctx.sizes);
  r.ok = r.error === undefined;
  const mb = (n: number | null): string => (n === null ? '-' : (n / 1e6).toFixed(1));
  process.stderr.write(
    `round ${round}/${ctx.runs} ${cell.padEnd(14)} ${r.ok ? `first output ${r.firstOutputSeconds?.toFixed(2)} s, exit ${r.exitSeconds?.toFixed(2)} s` : `FAILED: ${r.error ?? ''}`}` +
      `${r.pullSeconds === null ? '' : `, pull ${r.pullSeconds.toFixed(2)} s`}, link ${mb(r.pullLinkBytes)}+${mb(r.runLinkBytes)} MB, store ${mb(r.storeBytes)} MB (${r.storeChunks} chunks)\n`,
  );
  checkRun(ctx, r);
  return r;
}

/** Per-run checks: it worked, and the bytes say the cold runs were cold and the warm ones warm. */
/** Chunks a warm boot may fetch (readahead beyond the cold run's): see checkRun. */
const WARM_READAHEAD_SLACK = 2;

function checkRun(ctx: RoundContext, r: BootRun): void {
  const what = `round ${r.round} ${r.cell}`;
  if (!r.ok) {
    addCheck(ctx.checks, what, false, r.error ?? 'failed');
    return;
  }
  const img = ctx.images;
  const problems: string[] = [];
  const link = r.pullLinkBytes ?? 0;
  if (r.cell === 'original-cold' && link < 0.99 * img.original.layerBytes) problems.push(`the pull moved ${link} bytes over the link, less than the image's ${img.original.layerBytes} layer bytes`);
  if (r.cell === 'boot-cold-base' && link < 0.99 * img.boot.layerBytes) problems.push(`the pull moved ${link} bytes, less than the boot image's ${img.boot.layerBytes} layer bytes (was the base still there?)`);
  // Wire overhead (TCP/IP headers, HTTP, manifests) stays well under 10 % + 1 MB.
  if (r.cell === 'boot-cold' && link > 1.1 * img.boot.ownLayerBytes + 1e6) problems.push(`the pull moved ${link} bytes, more than the boot image's own ${img.boot.ownLayerBytes} layer bytes: the base's layers were pulled again`);
  if ((r.cell === 'boot-cold' || r.cell === 'boot-cold-base') && !r.storeBytes) problems.push('a cold boot fetched nothing from the chunk store');
  // A warm boot reads from the cache. Readahead past the end of what the app reads depends on
  // timing, so a faster (warm) run may ask for a chunk or two the cold run never fetched: allow a
  // few, report them, fail on more.
  if (r.cell === 'boot-warm' && (r.storeChunks ?? 0) > WARM_READAHEAD_SLACK) problems.push(`a warm boot fetched ${r.storeBytes} bytes (${r.storeChunks} chunks) from the chunk store`);
  if (r.cell.startsWith('original') && r.storeBytes !== 0) problems.push(`the original image's run fetched ${r.storeBytes} bytes from the chunk store`);
  if (r.firstOutputSeconds === null) problems.push('no output line');
  addCheck(ctx.checks, what, problems.length === 0, problems.length === 0 ? `first output ${r.firstOutputSeconds!.toFixed(2)} s, exit ${r.exitSeconds!.toFixed(2)} s` : problems.join('; '));
}

async function freshDir(ctx: RoundContext, rel: string): Promise<string> {
  const dir = path.join(ctx.workDir, 'rounds', rel);
  await mkdir(dir, { recursive: true });
  return dir;
}

const bootRunArgs = (cache: string, ref: string): string[] => ['--device', '/dev/fuse', '--cap-add', 'SYS_ADMIN', '-v', `${cache}:/var/lib/bootfs/cache`, ref];

async function originalBlock(ctx: RoundContext, round: number): Promise<BootRun[]> {
  const ref = ctx.images.original.ref;
  await ctx.podman.removeImages([ref]);
  const out = [await timedCell(ctx, round, 'original-cold', ref, [ref])];
  if (out[0]!.ok) out.push(await timedCell(ctx, round, 'original-warm', null, [ref]));
  await ctx.podman.removeImages([ref]);
  return out;
}

async function bootBlock(ctx: RoundContext, round: number): Promise<BootRun[]> {
  const { boot, base } = ctx.images;
  await ctx.podman.removeImages([boot.ref, base.ref]);
  const out: BootRun[] = [];
  const cacheA = await freshDir(ctx, `round${round}/cache-base-pulled`);
  out.push(await timedCell(ctx, round, 'boot-cold-base', boot.ref, bootRunArgs(cacheA, boot.ref), cacheA));
  // The node's steady state: the base image present. Its layers are there already (the boot image
  // brought them), so this pull only moves its manifest and config.
  await ctx.podman.checked(['pull', '-q', '--tls-verify=false', base.ref]);
  await ctx.podman.removeImages([boot.ref]);
  const cacheB = await freshDir(ctx, `round${round}/cache`);
  const cold = await timedCell(ctx, round, 'boot-cold', boot.ref, bootRunArgs(cacheB, boot.ref), cacheB);
  out.push(cold);
  if (cold.ok) out.push(await timedCell(ctx, round, 'boot-warm', null, bootRunArgs(cacheB, boot.ref), cacheB));
  return out;
}

/** Run every round; returns every cell run (failed ones included). */
export async function runRounds(ctx: RoundContext): Promise<BootRun[]> {
  const runs: BootRun[] = [];
  for (let round = 1; round <= ctx.runs; round++) {
    const blocks = round % 2 === 1 ? [originalBlock, bootBlock] : [bootBlock, originalBlock];
    for (const block of blocks) runs.push(...(await block(ctx, round)));
  }
  await ctx.podman.removeImages([ctx.images.boot.ref, ctx.images.base.ref, ctx.images.original.ref]);
  return runs;
}

/** One cell over the rounds (successful runs only). */
export interface CellSummary {
  cell: BootCell;
  label: string;
  okRuns: number;
  failedRuns: number;
  pullSeconds: Spread;
  firstOutputSeconds: Spread;
  exitSeconds: Spread;
  pullLinkBytes: Spread;
  runLinkBytes: Spread;
  storeBytes: Spread;
  storeChunks: Spread;
  /** Uncompressed bytes of the chunks in the cache after the run (boot cells). */
  cachePlainBytes: Spread;
}

/** Medians per cell. */
export function summarizeCells(runs: readonly BootRun[]): CellSummary[] {
  return BOOT_CELLS.map((cell) => {
    const mine = runs.filter((r) => r.cell === cell);
    const ok = mine.filter((r) => r.ok);
    const of = (f: (r: BootRun) => number | null | undefined): Spread => spread(ok.map(f).filter((v): v is number => typeof v === 'number'));
    return {
      cell,
      label: CELL_LABELS[cell],
      okRuns: ok.length,
      failedRuns: mine.length - ok.length,
      pullSeconds: of((r) => r.pullSeconds),
      firstOutputSeconds: of((r) => r.firstOutputSeconds),
      exitSeconds: of((r) => r.exitSeconds),
      pullLinkBytes: of((r) => r.pullLinkBytes),
      runLinkBytes: of((r) => r.runLinkBytes),
      storeBytes: of((r) => r.storeBytes),
      storeChunks: of((r) => r.storeChunks),
      cachePlainBytes: of((r) => r.cache?.plainBytes),
    };
  });
}
