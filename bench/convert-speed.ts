/**
 * Speed part of the convert benchmark: on the v1 rootfs copy, in one run, `bootfs convert dir:ROOTFS`
 * against `casync make --store=S x.caidx ROOTFS`, plus `bootfs convert oci:LAYOUT:v1` (the same
 * tree as one gzip layer built with umoci: bootfs also decompresses and parses the tar, casync has
 * no such step, so that row is reported separately). Every run writes a fresh store.
 *
 * Each tool runs with its default chunk digest: SHA-256 for bootfs convert, SHA-512/256 for casync.
 * That pair is judged; `casync make --digest=sha256` runs too, so the table also shows the ratio
 * at equal digests.
 */
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  bootfsConvertArgs, casyncMakeArgs, checkCasync, checkIndex, type CheckRecord, CONVERT_TARGETS, type ConvertSummary,
  parseConvertSummary, type PartContext, treeStats, verdictText,
} from './convert-shared.js';
import { runChecked, runTimedCapture, type TimedRun } from './proc.js';
import { fixed, formatColumns } from './report.js';
import { summarize, type ToolSummary } from './stats.js';
import { type ChunkStoreStats, chunkStoreStats } from './workdir.js';

/** The three timed commands, in the order each round runs them. */
const CELLS = ['bootfs-dir', 'casync-dir', 'casync-dir-sha256', 'bootfs-oci'] as const;
type CellName = (typeof CELLS)[number];

/** One timed run. */
export interface SpeedRun extends TimedRun {
  round: number;
  cell: CellName;
  /** bootfs: the parsed `convert --json` summary. */
  convert?: ConvertSummary;
}

/** A part result with the comparisons the table shows. */
export interface SpeedResult {
  dataBytes: number | null;
  input: { dir: string; fixtureDir: string; entries: number; files: number; dataBytes: number; copySeconds: number };
  ociLayout: { ref: string; layer: { digest: string; size: number }; buildSeconds: number };
  warmUp: { dir: string; runs: SpeedRun[] };
  runs: SpeedRun[];
  checks: CheckRecord[];
  /** First round's stores (informational). */
  stores: { cell: CellName; stats: ChunkStoreStats }[];
  dir: { bootfs: ToolSummary; casync: ToolSummary; ratio: number | null; targetRatio: number; pass: boolean | null };
  /** casync make --digest=sha256: bootfs's default digest on both sides (informational). */
  dirSameDigest: { casync: ToolSummary; ratio: number | null };
  oci: { bootfs: ToolSummary; ratioVsCasyncDir: number | null; ratioVsBootfsDir: number | null };
}

function logRun(r: SpeedRun, bytes: number, rounds: number | null): void {
  const what = `speed ${rounds === null ? 'warm-up' : `round ${r.round}/${rounds}`} ${r.cell.padEnd(10)}`;
  if (!r.ok) {
    process.stderr.write(`${what}  FAILED: ${r.error ?? ''}\n`);
    return;
  }
  const rss = r.peakRssKiB === null ? '?' : ((r.peakRssKiB * 1024) / 1e6).toFixed(0);
  process.stderr.write(`${what}  ${r.seconds.toFixed(3)} s  ${(bytes / 1e6 / r.seconds).toFixed(1)} MB/s  peak RSS ${rss} MB\n`);
}

interface CellPaths {
  dir: string;
  store: string;
  index: string;
  tmp: string;
}

async function cellPaths(base: string, cell: CellName): Promise<CellPaths> {
  const dir = path.join(base, cell);
  const tmp = path.join(dir, 'tmp');
  await mkdir(tmp, { recursive: true });
  return { dir, store: path.join(dir, 'store'), index: path.join(dir, cell.startsWith('casync') ? 'index.caidx' : 'index.bootfs'), tmp };
}

/** Run one cell; parse bootfs's summary (an unparsable summary fails the run). */
async function runCell(ctx: PartContext, cell: CellName, src: { dir: string; oci: string }, p: CellPaths, round: number): Promise<SpeedRun> {
  const { tools } = ctx;
  const r =
    cell === 'casync-dir' || cell === 'casync-dir-sha256'
      ? await runTimedCapture(tools.casync, casyncMakeArgs(p.store, p.index, src.dir, cell === 'casync-dir-sha256' ? 'sha256' : undefined))
      : await runTimedCapture(tools.node, bootfsConvertArgs(tools.bootfsBin, cell === 'bootfs-dir' ? `dir:${src.dir}` : src.oci, p.store, p.index, p.tmp));
  const run: SpeedRun = { round, cell, ...r.run };
  if (run.ok && !cell.startsWith('casync')) {
    try {
      run.convert = parseConvertSummary(r.stdout);
    } catch (err) {
      run.ok = false;
      run.error = (err as Error).message;
    }
  }
  return run;
}

/** Untimed checks of one round's outputs. */
async function checkRound(ctx: PartContext, runs: SpeedRun[], paths: Map<CellName, CellPaths>, expected: { entries: number; dataBytes: number }, label: string): Promise<CheckRecord[]> {
  const checks: CheckRecord[] = [];
  for (const r of runs) {
    const p = paths.get(r.cell)!;
    const what = `${label} ${r.cell}`;
    if (r.cell.startsWith('casync')) {
      checks.push(await checkCasync(r, p.index, what));
      continue;
    }
    if (!r.ok || !r.convert) {
      checks.push({ what, ok: false, detail: `bootfs convert failed: ${r.error ?? ''}` });
      continue;
    }
    checks.push(await checkIndex(ctx.tools, p.index, r.convert, what));
    const c = r.convert;
    const same = c.entries === expected.entries && c.bytes === expected.dataBytes;
    checks.push({
      what: `${what} counts`,
      ok: same,
      detail: `convert: ${c.entries} entries, ${c.bytes} bytes; the tree (lstat walk): ${expected.entries} entries, ${expected.dataBytes} bytes of regular files`,
    });
  }
  return checks;
}

/** The speed part. Throws InputUnavailable when the fixture is missing. */
export async function runSpeed(ctx: PartContext): Promise<SpeedResult> {
  const v1 = await ctx.inputs.rootfs('v1');
  const layout = await ctx.inputs.layoutV1();
  const base = path.join(ctx.work.path, 'speed');
  const expected = { entries: v1.stats.entries, dataBytes: v1.stats.dataBytes };
  const src = { dir: v1.dir, oci: layout.ref };
  const checks: CheckRecord[] = [];

  // Warm-up: both tools once on /etc of the copy (page cache, and proof they work before timing).
  const warmBase = path.join(base, 'warm-up');
  const warmDir = path.join(warmBase, 'etc');
  await mkdir(warmBase, { recursive: true });
  await runChecked('cp', ['-a', path.join(v1.dir, 'etc'), warmDir]);
  const warmBytes = (await treeStats(warmDir)).dataBytes;
  const warmRuns: SpeedRun[] = [];
  for (const cell of ['bootfs-dir', 'casync-dir'] as const) {
    const p = await cellPaths(warmBase, cell);
    const r = await runCell(ctx, cell, { dir: warmDir, oci: src.oci }, p, 0);
    logRun(r, warmBytes, null);
    warmRuns.push(r);
    const what = `warm-up ${cell}`;
    if (cell === 'casync-dir') checks.push(await checkCasync(r, p.index, what));
    else checks.push(r.ok && r.convert ? await checkIndex(ctx.tools, p.index, r.convert, what) : { what, ok: false, detail: r.error ?? 'failed' });
  }
  if (!ctx.opts.keep) await rm(warmBase, { recursive: true, force: true });

  const runs: SpeedRun[] = [];
  const stores: SpeedResult['stores'] = [];
  if (checks.every((c) => c.ok)) {
    for (let round = 1; round <= ctx.opts.runs; round++) {
      const paths = new Map<CellName, CellPaths>();
      const roundRuns: SpeedRun[] = [];
      for (const cell of CELLS) {
        const p = await cellPaths(path.join(base, `round${round}`), cell);
        paths.set(cell, p);
        const r = await runCell(ctx, cell, src, p, round);
        logRun(r, expected.dataBytes, ctx.opts.runs);
        roundRuns.push(r);
      }
      runs.push(...roundRuns);
      checks.push(...(await checkRound(ctx, roundRuns, paths, expected, `round ${round}`)));
      if (round === 1) {
        for (const r of roundRuns) if (r.ok) stores.push({ cell: r.cell, stats: await chunkStoreStats(paths.get(r.cell)!.store) });
        const dirRun = roundRuns.find((r) => r.cell === 'bootfs-dir' && r.ok);
        if (dirRun) {
          // The index part reuses this (verified) index instead of converting again.
          const keepAs = path.join(ctx.work.path, 'inputs', 'rootfs-v1.bootfs');
          await copyFile(paths.get('bootfs-dir')!.index, keepAs);
          ctx.shared.rootfsIndex = keepAs;
        }
      }
    }
    // dir: and oci: must describe the same tree and data stream.
    const d = runs.find((r) => r.cell === 'bootfs-dir' && r.convert)?.convert;
    const o = runs.find((r) => r.cell === 'bootfs-oci' && r.convert)?.convert;
    if (d && o) {
      const same = d.entries === o.entries && d.bytes === o.bytes && d.chunks === o.chunks;
      checks.push({ what: 'dir: vs oci: convert', ok: same, detail: `dir: ${d.entries} entries, ${d.bytes} bytes, ${d.chunks} chunks; oci: ${o.entries}, ${o.bytes}, ${o.chunks}` });
    }
  }
  // Stores go only after every round (deleting thousands of chunk files disturbs the next timing).
  if (!ctx.opts.keep) await rm(base, { recursive: true, force: true });

  const dataBytes = runs.find((r) => r.cell === 'bootfs-dir' && r.convert)?.convert?.bytes ?? null;
  const of = (cell: CellName): ToolSummary => summarize(runs.filter((r) => r.cell === cell), dataBytes ?? 0);
  const bootfs = of('bootfs-dir');
  const casync = of('casync-dir');
  const casyncSha256 = of('casync-dir-sha256');
  const oci = of('bootfs-oci');
  const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && dataBytes ? a / b : null);
  const dirRatio = ratio(bootfs.mbps, casync.mbps);
  return {
    dataBytes,
    input: { dir: v1.dir, fixtureDir: v1.fixtureDir, entries: v1.stats.entries, files: v1.stats.files, dataBytes: v1.stats.dataBytes, copySeconds: v1.copySeconds },
    ociLayout: { ref: layout.ref, layer: { digest: layout.image.layers[0]!.digest, size: layout.image.layers[0]!.size }, buildSeconds: layout.buildSeconds },
    warmUp: { dir: warmDir, runs: warmRuns },
    runs,
    checks,
    stores,
    dir: { bootfs, casync, ratio: dirRatio, targetRatio: CONVERT_TARGETS.speedRatio, pass: dirRatio === null ? null : dirRatio >= CONVERT_TARGETS.speedRatio },
    dirSameDigest: { casync: casyncSha256, ratio: ratio(bootfs.mbps, casyncSha256.mbps) },
    oci: { bootfs: oci, ratioVsCasyncDir: ratio(oci.mbps, casync.mbps), ratioVsBootfsDir: ratio(oci.mbps, bootfs.mbps) },
  };
}

/** The speed table: one row for dir: (judged), one for oci: (informational). */
export function speedTable(s: SpeedResult): string {
  const rss = (t: ToolSummary): string => fixed(t.peakRssMB, 0);
  const x = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)}x`);
  const rows = [
    ['dir:rootfs', fixed(s.dir.bootfs.mbps, 1), fixed(s.dir.casync.mbps, 1), x(s.dir.ratio), `>=${s.dir.targetRatio.toFixed(1)}x`, verdictText(s.dir.pass), rss(s.dir.bootfs), rss(s.dir.casync)],
    ['dir:rootfs vs casync --digest=sha256', fixed(s.dir.bootfs.mbps, 1), fixed(s.dirSameDigest.casync.mbps, 1), x(s.dirSameDigest.ratio), '-', 'info', rss(s.dir.bootfs), rss(s.dirSameDigest.casync)],
    ['oci:layout:v1 (gzip)', fixed(s.oci.bootfs.mbps, 1), fixed(s.dir.casync.mbps, 1), x(s.oci.ratioVsCasyncDir), '-', 'info', rss(s.oci.bootfs), rss(s.dir.casync)],
  ];
  const header = ['bootfs input', 'bootfs MB/s', 'casync MB/s', 'ratio', 'target', 'result', 'bootfs RSS MB', 'casync RSS MB'];
  const note =
    `MB/s = ${s.dataBytes === null ? '?' : (s.dataBytes / 1e6).toFixed(1)} MB of regular-file data / median wall seconds; casync always reads the directory (caidx)\n` +
    'chunk digests: bootfs SHA-256 (its default), casync SHA-512/256 (its default) unless --digest=sha256';
  return `${formatColumns(header, rows, 1)}\n${note}`;
}
