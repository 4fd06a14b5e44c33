/**
 * Part `cat` of the mount benchmark: `find MNT -type f -print0 | xargs -0 cat > /dev/null` over
 * the Debian rootfs mounted three ways, each round:
 *
 *   bootfs cold   a fresh, empty cache dir; every chunk comes from the store (a local dir on the work dir)
 *   bootfs warm   a new mount process over the cache the cold run filled: no remote fetch, and both
 *                 the process's memory and the kernel's page cache for the mount start empty
 *   casync        `casync mount` of the same tree made with `casync make` (same chunk sizes)
 *
 * Mount start-up is not in the timing: the clock starts once the file system answers.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { type CheckRecord, verdictText } from './convert-shared.js';
import { type MountStatsFile, readStatsFile } from './mount-proc.js';
import { addCheck, MOUNT_TARGETS, type MountContext, num, ratioOf, regularFiles, spread, type Spread, timeShell, withMount, workSubdir } from './mount-shared.js';
import { formatColumns } from './report.js';

/** The three ways the rootfs is mounted. */
export const CAT_CELLS = ['bootfs-cold', 'bootfs-warm', 'casync'] as const;
/** One of CAT_CELLS. */
export type CatCell = (typeof CAT_CELLS)[number];

const CAT_SCRIPT = 'find "$1" -type f -print0 | xargs -0 cat > /dev/null';
/** Untimed, after the timed read: the number of regular files the mount shows. */
const COUNT_SCRIPT = 'find "$1" -type f -printf . | wc -c';

/** One timed cat of every file. */
export interface CatRun {
  round: number;
  cell: CatCell;
  ok: boolean;
  /** Wall seconds of the find | xargs cat pipeline. */
  seconds: number | null;
  readySeconds: number | null;
  stopSeconds: number | null;
  /** Regular files the mount showed (untimed count after the read). */
  files: number | null;
  stats?: MountStatsFile;
  error?: string;
}

/** One cell over the rounds. */
export interface CatSummary {
  cell: CatCell;
  seconds: Spread;
  msPerFile: number | null;
  mbPerSecond: number | null;
}

export interface CatResult {
  fixture: string;
  files: number;
  fileBytes: number;
  cells: CatSummary[];
  /** casync median s ÷ bootfs warm median s (judged) and ÷ bootfs cold (informational). */
  casyncOverWarm: number | null;
  casyncOverCold: number | null;
  pass: boolean | null;
  runs: CatRun[];
  checks: CheckRecord[];
}

/** Cells in round order: bootfs first in odd rounds, casync first in even ones (warm always right after cold: it needs that cache). */
function orderFor(round: number): CatCell[] {
  return round % 2 === 1 ? ['bootfs-cold', 'bootfs-warm', 'casync'] : ['casync', 'bootfs-cold', 'bootfs-warm'];
}

/** The cat part. */
export async function runCat(ctx: MountContext): Promise<CatResult> {
  const img = await ctx.images.rootfs();
  const cimg = await ctx.images.rootfsCasync();
  const files = await regularFiles(img.dir);
  let fileBytes = 0;
  for (const f of files) fileBytes += (await stat(path.join(img.dir, f))).size;
  const runs: CatRun[] = [];
  const checks: CheckRecord[] = [];

  for (let round = 1; round <= ctx.opts.runs; round++) {
    const base = await workSubdir(ctx, `cat/round${round}`);
    const cache = await workSubdir(ctx, `cat/round${round}/cache`);
    for (const cell of orderFor(round)) {
      const mnt = await workSubdir(ctx, `cat/round${round}/mnt-${cell}`);
      const statsFile = path.join(base, `${cell}.stats.json`);
      const start = () => (cell === 'casync' ? ctx.mounts.casyncMount(cimg.caidx, cimg.store, mnt) : ctx.mounts.bootfs({ index: img.index, store: img.store, mountpoint: mnt, cache, statsFile }));
      const r = await withMount(ctx, start, async (m) => {
        const timed = await timeShell(CAT_SCRIPT, [m.mountpoint]);
        const count = await timeShell(COUNT_SCRIPT, [m.mountpoint]);
        // Once per cell: the whole tree must read back identical to the fixture (untimed).
        if (round === 1) {
          const diff = await timeShell('diff -r --no-dereference "$1" "$2" | head -c 2000', [img.dir, m.mountpoint]);
          addCheck(checks, `cat ${cell}: tree equals the fixture`, diff.ok && diff.stdout === '', diff.ok && diff.stdout === '' ? `diff -r --no-dereference ${img.dir} MNT: no differences (${diff.seconds.toFixed(1)} s)` : diff.stdout.trim() || (diff.error ?? 'diff failed'));
        }
        return { timed, files: count.ok ? Number(count.stdout.trim()) : null };
      });
      const t = r.value?.timed;
      const run: CatRun = {
        round,
        cell,
        ok: r.error === undefined && t?.ok === true,
        seconds: t?.ok ? t.seconds : null,
        readySeconds: r.mount?.readySeconds ?? null,
        stopSeconds: r.stop?.stopSeconds ?? null,
        files: r.value?.files ?? null,
      };
      const err = r.error ?? t?.error;
      if (err) run.error = err;
      if (cell !== 'casync' && r.mount) {
        try {
          run.stats = await readStatsFile(statsFile);
        } catch (e) {
          run.ok = false;
          run.error ??= (e as Error).message;
        }
      }
      runs.push(run);
      process.stderr.write(`cat round ${round}/${ctx.opts.runs} ${cell.padEnd(11)} ${run.ok ? `${run.seconds!.toFixed(2)} s, ${run.files} files, mounted in ${run.readySeconds!.toFixed(2)} s` : `FAILED: ${run.error ?? ''}`}${run.stats ? `, ${run.stats.remoteFetches} remote fetches, ${run.stats.cacheHits} cache hits` : ''}\n`);
      checkRun(checks, run, files.length, img.convert.bytes);
    }
  }

  const cells = CAT_CELLS.map((cell): CatSummary => {
    const s = spread(runs.filter((r) => r.cell === cell && r.ok).map((r) => r.seconds!));
    return { cell, seconds: s, msPerFile: s.median === null ? null : (s.median * 1000) / files.length, mbPerSecond: s.median === null ? null : fileBytes / 1e6 / s.median };
  });
  const med = (c: CatCell): number | null => cells.find((x) => x.cell === c)!.seconds.median;
  const casyncOverWarm = ratioOf(med('casync'), med('bootfs-warm'));
  return {
    fixture: img.dir,
    files: files.length,
    fileBytes,
    cells,
    casyncOverWarm,
    casyncOverCold: ratioOf(med('casync'), med('bootfs-cold')),
    pass: casyncOverWarm === null ? null : casyncOverWarm >= MOUNT_TARGETS.catWarmVsCasync,
    runs,
    checks,
  };
}

/** Per run: it worked, it showed every file, and (bootfs) the counters say cold was cold and warm was warm. */
function checkRun(checks: CheckRecord[], r: CatRun, files: number, dataBytes: number): void {
  const what = `cat round ${r.round} ${r.cell}`;
  if (!r.ok) {
    addCheck(checks, what, false, r.error ?? 'failed');
    return;
  }
  const problems: string[] = [];
  if (r.files !== files) problems.push(`the mount shows ${r.files ?? '?'} regular files, the fixture has ${files}`);
  const s = r.stats;
  if (s) {
    // Hardlinked files share page cache, so a full read serves at least the index's data bytes.
    if (s.bytesServed < dataBytes) problems.push(`bytesServed ${s.bytesServed} < the image's ${dataBytes} data bytes`);
    if (r.cell === 'bootfs-cold' && s.remoteFetches === 0) problems.push('a cold run fetched nothing from the store');
    if (r.cell === 'bootfs-warm' && (s.remoteFetches !== 0 || s.cacheMisses !== 0)) problems.push(`a warm run fetched ${s.remoteFetches} chunks (${s.cacheMisses} cache misses)`);
    if (s.verifyFailures !== 0 || s.remoteErrors !== 0) problems.push(`${s.verifyFailures} verify failures, ${s.remoteErrors} remote errors`);
  }
  addCheck(checks, what, problems.length === 0, problems.length === 0 ? `${r.files} files read${s ? `, ${s.remoteFetches} remote fetches, ${s.cacheHits} cache hits` : ''}` : problems.join('; '));
}

/** The part's table: one row per cell. */
export function catTable(r: CatResult): string {
  const labels: Record<CatCell, string> = { 'bootfs-cold': 'bootfs, cold cache', 'bootfs-warm': 'bootfs, warm cache', casync: 'casync mount' };
  const rows = r.cells.map((c) => {
    const judged = c.cell === 'bootfs-warm';
    const ratio = c.cell === 'bootfs-warm' ? r.casyncOverWarm : c.cell === 'bootfs-cold' ? r.casyncOverCold : null;
    return [
      labels[c.cell],
      num(c.seconds.median, 2),
      `${num(c.seconds.min, 2)}-${num(c.seconds.max, 2)}`,
      num(c.msPerFile, 3),
      num(c.mbPerSecond, 1),
      c.cell === 'casync' ? 'ref' : num(ratio, 2, 'x'),
      judged ? `>=${MOUNT_TARGETS.catWarmVsCasync}x` : c.cell === 'casync' ? '' : 'info',
      judged ? verdictText(r.pass) : '',
    ];
  });
  return formatColumns(['mount', 'seconds', 'min-max', 'ms/file', 'MB/s', 'casync/this', 'target', 'result'], rows, 1);
}
