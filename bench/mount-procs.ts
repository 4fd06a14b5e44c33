/**
 * Part `procs` of the mount benchmark: does a shared node cache make N mounts that boot at once
 * fetch each chunk once? Each round, in alternating order:
 *
 *   solo     one mount of the rootfs index with its own fresh cache dir reads the boot set
 *   shared   --procs mounts of the same index sharing one fresh cache dir (each with its own
 *            mountpoint and stats file) are all started, then each reads the boot set, all readers
 *            spawned at the same moment
 *
 * ratio = Σ remoteBytes over the shared mounts' stats files ÷ the solo mount's remoteBytes.
 */
import { lstat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type CheckRecord, verdictText } from './convert-shared.js';
import { type LiveMount, type MountStatsFile, readStatsFile } from './mount-proc.js';
import { addCheck, MOUNT_TARGETS, type MountContext, num, regularFiles, spread, type Spread, timeShell, type ShellRun, workSubdir } from './mount-shared.js';
import { formatColumns } from './report.js';

/**
 * What a perl script's start touches, roughly: the interpreter, the C library and loader, perl's
 * core modules, /etc. About 11 MB of the Debian fixture. Directories are taken whole (regular files
 * only); a path the fixture lacks is left out and noted.
 */
export const BOOT_SET = [
  'usr/bin/perl',
  'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
  'usr/lib/x86_64-linux-gnu/libc.so.6',
  'usr/lib/x86_64-linux-gnu/libm.so.6',
  'usr/lib/x86_64-linux-gnu/libcrypt.so.1.1.0',
  'usr/lib/x86_64-linux-gnu/perl-base',
  'usr/share/perl5',
  'etc',
] as const;

/** Reads the NUL-separated list `$2` of paths relative to the mountpoint `$1`. */
const READ_SCRIPT = 'cd "$1" && xargs -0 -a "$2" cat > /dev/null';

/** One mount's share of a pass. */
export interface ProcsMountRecord {
  mountpoint: string;
  readySeconds: number | null;
  readSeconds: number | null;
  stats?: MountStatsFile;
  error?: string;
}

/** One solo or shared pass. */
export interface ProcsPass {
  round: number;
  kind: 'solo' | 'shared';
  ok: boolean;
  /** Σ remoteBytes / remoteFetches over the pass's mounts. */
  remoteBytes: number | null;
  remoteFetches: number | null;
  /** From the first reader's spawn to the last reader's exit. */
  readWallSeconds: number | null;
  mounts: ProcsMountRecord[];
}

export interface ProcsResult {
  procs: number;
  bootSet: { paths: readonly string[]; missing: string[]; files: number; bytes: number };
  /** Per round: shared Σ remoteBytes ÷ solo remoteBytes. */
  roundRatios: (number | null)[];
  ratio: Spread;
  solo: { remoteBytes: Spread; readSeconds: Spread };
  shared: { remoteBytes: Spread; readWallSeconds: Spread };
  pass: boolean | null;
  passes: ProcsPass[];
  checks: CheckRecord[];
}

/** The boot set's files in the fixture, relative, sorted. */
async function bootSetFiles(root: string): Promise<{ files: string[]; missing: string[]; bytes: number }> {
  const files: string[] = [];
  const missing: string[] = [];
  for (const p of BOOT_SET) {
    const st = await lstat(path.join(root, p)).catch(() => null);
    if (st?.isDirectory()) files.push(...(await regularFiles(root, p)));
    else if (st?.isFile()) files.push(p);
    else missing.push(p);
  }
  let bytes = 0;
  for (const f of files) bytes += (await lstat(path.join(root, f))).size;
  return { files, missing, bytes };
}

/** Start `n` mounts of the rootfs sharing `cache`, read the list in each at once, stop them all. */
async function pass(ctx: MountContext, round: number, kind: ProcsPass['kind'], list: string, setBytes: number, checks: CheckRecord[]): Promise<ProcsPass> {
  const img = await ctx.images.rootfs();
  const n = kind === 'solo' ? 1 : ctx.opts.procs;
  const base = await workSubdir(ctx, `procs/round${round}-${kind}`);
  const cache = await workSubdir(ctx, `procs/round${round}-${kind}/cache`);
  const records: ProcsMountRecord[] = [];
  const mounts: (LiveMount | null)[] = [];
  let wall: number | null = null;
  try {
    for (let i = 0; i < n; i++) records.push({ mountpoint: await workSubdir(ctx, `procs/round${round}-${kind}/mnt${i}`), readySeconds: null, readSeconds: null });
    const started = await Promise.allSettled(
      records.map((r, i) => ctx.mounts.bootfs({ index: img.index, store: img.store, mountpoint: r.mountpoint, cache, statsFile: path.join(base, `mnt${i}.stats.json`) })),
    );
    started.forEach((s, i) => {
      mounts[i] = s.status === 'fulfilled' ? s.value : null;
      if (s.status === 'rejected') records[i]!.error = (s.reason as Error).message;
      else records[i]!.readySeconds = s.value.readySeconds;
    });
    // Only read when every mount is up: fewer readers would not be the case being measured.
    if (mounts.every((m) => m !== null)) {
      const t = process.hrtime.bigint();
      const reads: ShellRun[] = await Promise.all(mounts.map((m) => timeShell(READ_SCRIPT, [m!.mountpoint, list])));
      wall = Number(process.hrtime.bigint() - t) / 1e9;
      reads.forEach((r, i) => {
        if (r.ok) records[i]!.readSeconds = r.seconds;
        else records[i]!.error = `reading the boot set: ${r.error ?? ''}`;
      });
    }
  } finally {
    for (const [i, m] of mounts.entries()) {
      if (!m) continue;
      const stop = await ctx.mounts.stop(m);
      if (stop.problem) records[i]!.error ??= stop.problem;
    }
  }
  for (const [i, m] of mounts.entries()) {
    if (!m) continue;
    try {
      records[i]!.stats = await readStatsFile(m.statsFile!);
    } catch (err) {
      records[i]!.error ??= (err as Error).message;
    }
  }
  const ok = records.length === n && records.every((r) => r.error === undefined && r.stats !== undefined);
  const sum = (f: (s: MountStatsFile) => number): number | null => (ok ? records.reduce((a, r) => a + f(r.stats!), 0) : null);
  const p: ProcsPass = { round, kind, ok, remoteBytes: sum((s) => s.remoteBytes), remoteFetches: sum((s) => s.remoteFetches), readWallSeconds: wall, mounts: records };
  const problems = records.flatMap((r, i) => [
    ...(r.error ? [`mount ${i}: ${r.error}`] : []),
    ...(r.stats && r.stats.bytesServed < setBytes ? [`mount ${i} served ${r.stats.bytesServed} bytes of a ${setBytes}-byte boot set`] : []),
  ]);
  if (ok && p.remoteBytes === 0) problems.push('no bytes were fetched from the store (the cache was not fresh?)');
  addCheck(checks, `procs round ${round} ${kind}`, problems.length === 0, problems.length === 0 ? `${n} mount(s): ${p.remoteFetches} remote fetches, ${p.remoteBytes} remote bytes` : problems.join('; '));
  process.stderr.write(`procs round ${round}/${ctx.opts.runs} ${kind.padEnd(6)} ${ok ? `${n} mount(s), ${p.remoteFetches} fetches, ${((p.remoteBytes ?? 0) / 1e6).toFixed(2)} MB remote, reads ${num(wall, 2)} s` : `FAILED: ${problems[0] ?? ''}`}\n`);
  return p;
}

/** The procs part. */
export async function runProcs(ctx: MountContext): Promise<ProcsResult> {
  const img = await ctx.images.rootfs();
  const set = await bootSetFiles(img.dir);
  if (set.bytes < 1e6) throw new Error(`the boot set has only ${set.bytes} bytes in ${img.dir} (missing: ${set.missing.join(', ')})`);
  const list = path.join(await workSubdir(ctx, 'procs'), 'boot-set.list');
  await writeFile(list, set.files.map((f) => `${f}\0`).join(''));
  process.stderr.write(`procs: boot set ${set.files.length} files, ${(set.bytes / 1e6).toFixed(1)} MB${set.missing.length ? ` (not in the fixture: ${set.missing.join(', ')})` : ''}\n`);
  const checks: CheckRecord[] = [];
  const passes: ProcsPass[] = [];
  const roundRatios: (number | null)[] = [];
  for (let round = 1; round <= ctx.opts.runs; round++) {
    const kinds: ProcsPass['kind'][] = round % 2 === 1 ? ['solo', 'shared'] : ['shared', 'solo'];
    const mine: ProcsPass[] = [];
    for (const kind of kinds) mine.push(await pass(ctx, round, kind, list, set.bytes, checks));
    passes.push(...mine);
    const solo = mine.find((p) => p.kind === 'solo')!;
    const shared = mine.find((p) => p.kind === 'shared')!;
    roundRatios.push(solo.ok && shared.ok && solo.remoteBytes ? shared.remoteBytes! / solo.remoteBytes : null);
  }
  const ratio = spread(roundRatios.filter((r): r is number => r !== null));
  const okOf = (k: ProcsPass['kind']): ProcsPass[] => passes.filter((p) => p.kind === k && p.ok);
  return {
    procs: ctx.opts.procs,
    bootSet: { paths: BOOT_SET, missing: set.missing, files: set.files.length, bytes: set.bytes },
    roundRatios,
    ratio,
    solo: { remoteBytes: spread(okOf('solo').map((p) => p.remoteBytes!)), readSeconds: spread(okOf('solo').map((p) => p.readWallSeconds!)) },
    shared: { remoteBytes: spread(okOf('shared').map((p) => p.remoteBytes!)), readWallSeconds: spread(okOf('shared').map((p) => p.readWallSeconds!)) },
    pass: ratio.median === null ? null : ratio.median <= MOUNT_TARGETS.procsRemoteRatio,
    passes,
    checks,
  };
}

/** The part's table. */
export function procsTable(r: ProcsResult): string {
  const mb = (v: number | null): string => num(v === null ? null : v / 1e6, 2, ' MB');
  const rows = [
    ['boot set', `${r.bootSet.files} files, ${mb(r.bootSet.bytes)}`, '', ''],
    ['1 mount alone: remoteBytes', mb(r.solo.remoteBytes.median), 'info', ''],
    [`${r.procs} mounts, one cache: sum of remoteBytes`, mb(r.shared.remoteBytes.median), 'info', ''],
    [`ratio (median of ${r.ratio.n} round${r.ratio.n === 1 ? '' : 's'})`, num(r.ratio.median, 3, 'x'), `<=${MOUNT_TARGETS.procsRemoteRatio}x`, verdictText(r.pass)],
    ['1 mount alone: read time', num(r.solo.readSeconds.median, 2, ' s'), 'info', ''],
    [`${r.procs} mounts at once: read time (all)`, num(r.shared.readWallSeconds.median, 2, ' s'), 'info', ''],
  ];
  return formatColumns(['metric', 'value', 'target', 'result'], rows, 1);
}
