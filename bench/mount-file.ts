/**
 * Parts `seq` and `random` of the mount benchmark, on one --seq-size file of pseudo-random
 * (incompressible) bytes, converted once, its cache filled once with `bootfs cache warm`. Every run
 * is a new mount process, so neither bootfs's memory nor the kernel's page cache holds the file:
 *
 *   seq      dd if=MNT/big of=/dev/null bs=1M → MB/s (dd's own bytes and seconds)
 *   random   python3: os.pread of 4 KiB at uniformly random 4 KiB-aligned offsets for
 *            --random-seconds → reads/s (every 64th read compared with the source file)
 *
 * Reference rows, informational: `casync mount` of the same file (casync make, same chunk sizes)
 * and the source file read directly on the work dir (tmpfs: the ceiling for any FUSE mount).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type CheckRecord, verdictText } from './convert-shared.js';
import { type LiveMount, type MountStatsFile, readStatsFile } from './mount-proc.js';
import { addCheck, MOUNT_TARGETS, type MountContext, type MountedResult, num, ratioOf, spread, type Spread, timeShell, withMount, workSubdir } from './mount-shared.js';
import { formatColumns } from './report.js';

/** Ways the file is read. */
export const FILE_CELLS = ['bootfs', 'casync', 'direct'] as const;
/** One of FILE_CELLS. */
export type FileCell = (typeof FILE_CELLS)[number];
/** Which of the two parts. */
export type FilePart = 'seq' | 'random';

/** Reads per batch of the python loop between clock checks; the last read of a batch is verified. */
const BATCH = 64;

const RANDOM_READER = `import json, os, random, sys, time
path, seconds, seed, ref = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
BLOCK = 4096
fd = os.open(path, os.O_RDONLY)
rfd = os.open(ref, os.O_RDONLY)
blocks = os.fstat(fd).st_size // BLOCK
rng = random.Random(seed)
reads = short = mismatches = verified = 0
start = now = time.perf_counter()
deadline = start + seconds
while now < deadline:
    for _ in range(${BATCH}):
        off = rng.randrange(blocks) * BLOCK
        data = os.pread(fd, BLOCK, off)
        reads += 1
        if len(data) != BLOCK:
            short += 1
    verified += 1
    if data != os.pread(rfd, BLOCK, off):
        mismatches += 1
    now = time.perf_counter()
print(json.dumps({"reads": reads, "seconds": now - start, "readsPerSecond": reads / (now - start), "short": short, "verified": verified, "mismatches": mismatches, "blocks": blocks, "seed": seed}))
`;

/** One timed pass. */
export interface FileRun {
  part: FilePart;
  round: number;
  cell: FileCell;
  ok: boolean;
  /** seq: MB/s from dd's bytes and seconds; random: reads/s. */
  value: number | null;
  detail?: Record<string, unknown>;
  readySeconds: number | null;
  stats?: MountStatsFile;
  error?: string;
}

/** One cell over the rounds. */
export interface FileSummary {
  cell: FileCell;
  value: Spread;
  /** bootfs ÷ this cell's median (bootfs row: null). */
  bootfsOverThis: number | null;
}

export interface FileResult {
  part: FilePart;
  file: { bytes: number; recipe: string; chunks: number; warm: Record<string, unknown> };
  unit: 'MB/s' | 'reads/s';
  cells: FileSummary[];
  /**
   * Round 0: one untimed pass of each mount before the rounds. The first read after the part's
   * set-up (writing, converting and casync-making a 1 GB file) ran about half speed for both
   * tools in every run; the medians leave it out.
   */
  warmUp: FileRun[];
  /** seq: bootfs median MB/s ≥ MOUNT_TARGETS.seqMBps; random: no target (null). */
  pass: boolean | null;
  runs: FileRun[];
  checks: CheckRecord[];
}

const DD_LINE = /^(\d+) bytes\b.*copied, ([0-9.eE+-]+) s\b/m;

function orderFor(round: number): FileCell[] {
  return round % 2 === 1 ? ['bootfs', 'casync', 'direct'] : ['casync', 'bootfs', 'direct'];
}

/** Run the seq or random part. */
export async function runFilePart(ctx: MountContext, part: FilePart): Promise<FileResult> {
  const img = await ctx.images.bigFile();
  const cimg = await ctx.images.bigFileCasync();
  const base = await workSubdir(ctx, part);
  const script = path.join(base, 'random-read.py');
  if (part === 'random') await writeFile(script, RANDOM_READER);
  const runs: FileRun[] = [];
  const checks: CheckRecord[] = [];

  /** The timed read of `file`; the result's value is MB/s or reads/s. */
  const measure = async (file: string, round: number): Promise<{ value: number; detail: Record<string, unknown> }> => {
    if (part === 'seq') {
      const r = await timeShell('dd if="$1" of=/dev/null bs=1M', [file]);
      const m = DD_LINE.exec(r.stderr);
      if (!r.ok || !m) throw new Error(`dd: ${r.error ?? `no summary line in: ${r.stderr.trim().slice(-200)}`}`);
      const bytes = Number(m[1]);
      const secs = Number(m[2]);
      if (bytes !== img.bytes) throw new Error(`dd read ${bytes} bytes of a ${img.bytes}-byte file`);
      return { value: bytes / 1e6 / secs, detail: { bytes, ddSeconds: secs, wallSeconds: r.seconds } };
    }
    // Same seed for every cell of a round: each reads the same offsets.
    const r = await timeShell('exec "$1" "$2" "$3" "$4" "$5" "$6"', [ctx.tools.python3, script, file, String(ctx.opts.randomSeconds), String(round), img.file]);
    if (!r.ok) throw new Error(`random reader: ${r.error ?? ''}`);
    const doc = JSON.parse(r.stdout) as { readsPerSecond: number; short: number; mismatches: number };
    if (doc.short !== 0 || doc.mismatches !== 0) throw new Error(`random reader: ${doc.short} short reads, ${doc.mismatches} mismatches with the source`);
    return { value: doc.readsPerSecond, detail: doc };
  };

  const warmUp: FileRun[] = [];
  for (let round = 0; round <= ctx.opts.runs; round++) {
    for (const cell of round === 0 ? (['bootfs', 'casync'] as const) : orderFor(round)) {
      const mnt = await workSubdir(ctx, `${part}/round${round}-${cell}`);
      const statsFile = path.join(base, `round${round}-${cell}.stats.json`);
      let r: MountedResult<{ value: number; detail: Record<string, unknown> }>;
      if (cell === 'direct') {
        try {
          r = { value: await measure(img.file, round) };
        } catch (err) {
          r = { error: (err as Error).message };
        }
      } else {
        const start = (): Promise<LiveMount> =>
          cell === 'casync' ? ctx.mounts.casyncMount(cimg.caidx, cimg.store, mnt) : ctx.mounts.bootfs({ index: img.index, store: img.store, mountpoint: mnt, cache: img.cache, statsFile });
        r = await withMount(ctx, start, async (m) => {
          const v = await measure(path.join(m.mountpoint, img.name), round);
          if (round === 1 && part === 'seq') {
            const cmp = await timeShell('cmp "$1" "$2"', [path.join(m.mountpoint, img.name), img.file]);
            addCheck(checks, `seq ${cell}: file equals its source`, cmp.ok, cmp.ok ? `cmp: identical (${img.bytes} bytes)` : cmp.stdout.trim() || (cmp.error ?? 'cmp failed'));
          }
          return v;
        });
      }
      const run: FileRun = { part, round, cell, ok: r.error === undefined && r.value !== undefined, value: r.value?.value ?? null, readySeconds: r.mount?.readySeconds ?? null };
      if (r.value) run.detail = r.value.detail;
      if (r.error) run.error = r.error;
      if (cell === 'bootfs' && r.mount) {
        try {
          run.stats = await readStatsFile(statsFile);
          // The cache was warmed: a read that reaches the store is not the warm-cache case this part measures.
          if (run.stats.remoteFetches !== 0) {
            run.ok = false;
            run.error ??= `${run.stats.remoteFetches} chunks were fetched from the store despite the warm cache`;
          }
        } catch (err) {
          run.ok = false;
          run.error ??= (err as Error).message;
        }
      }
      (round === 0 ? warmUp : runs).push(run);
      addCheck(checks, `${part} ${round === 0 ? 'warm-up' : `round ${round}`} ${cell}`, run.ok, run.ok ? `${num(run.value, 1)} ${part === 'seq' ? 'MB/s' : 'reads/s'}` : run.error ?? 'failed');
      process.stderr.write(`${part} ${round === 0 ? 'warm-up' : `round ${round}/${ctx.opts.runs}`} ${cell.padEnd(6)} ${run.ok ? `${num(run.value, 1)} ${part === 'seq' ? 'MB/s' : 'reads/s'}` : `FAILED: ${run.error ?? ''}`}${run.stats ? ` (${run.stats.reads} FUSE reads reached bootfs)` : ''}\n`);
    }
  }

  const med = new Map(FILE_CELLS.map((c) => [c, spread(runs.filter((x) => x.cell === c && x.ok).map((x) => x.value!))]));
  const bootfs = med.get('bootfs')!.median;
  const cells = FILE_CELLS.map((cell): FileSummary => ({ cell, value: med.get(cell)!, bootfsOverThis: cell === 'bootfs' ? null : ratioOf(bootfs, med.get(cell)!.median) }));
  return {
    part,
    file: { bytes: img.bytes, recipe: img.recipe, chunks: img.convert.chunks, warm: img.warm },
    unit: part === 'seq' ? 'MB/s' : 'reads/s',
    cells,
    warmUp,
    pass: part === 'seq' && bootfs !== null ? bootfs >= MOUNT_TARGETS.seqMBps : null,
    runs,
    checks,
  };
}

/** The part's table: one row per cell. */
export function fileTable(r: FileResult, workIsTmpfs: boolean): string {
  const labels: Record<FileCell, string> = { bootfs: 'bootfs, warm cache', casync: 'casync mount', direct: workIsTmpfs ? 'source file on tmpfs' : 'source file on the work dir' };
  const digits = r.part === 'seq' ? 1 : 0;
  const rows = r.cells.map((c) => [
    labels[c.cell],
    num(c.value.median, digits),
    `${num(c.value.min, digits)}-${num(c.value.max, digits)}`,
    c.cell === 'bootfs' ? '' : num(c.bootfsOverThis, 2, 'x'),
    c.cell === 'bootfs' && r.part === 'seq' ? `>=${MOUNT_TARGETS.seqMBps} MB/s` : c.cell === 'bootfs' ? 'info' : 'ref',
    c.cell === 'bootfs' && r.part === 'seq' ? verdictText(r.pass) : '',
  ]);
  return formatColumns(['read via', r.unit, 'min-max', 'bootfs/this', 'target', 'result'], rows, 1);
}
