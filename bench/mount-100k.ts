/**
 * Part `mount100k` of the mount benchmark: how fast a big index mounts and what it costs to hold.
 * The synthetic 100k-entry tree of the convert benchmark (synthetic-index.ts) is encoded once; its
 * chunk IDs are made up, so the store is an empty directory — nothing here reads file data. Each run
 * is a fresh `bootfs mount` process:
 *
 *   mount time   spawn → the first successful stat of a file in the last directory (polled)
 *   VmRSS        of the mount process (/proc/PID/status) right then, and after `find MNT | wc -l`
 *                has looked up and stat-ed every entry (VmHWM = its peak)
 *   traversal    wall time of that find, which must list every entry
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { encodeBootfsIndex } from '../src/index/bootfs-builder.js';
import { type CheckRecord, verdictText } from './convert-shared.js';
import { processMemory } from './mount-proc.js';
import { addCheck, MOUNT_TARGETS, type MountContext, num, spread, type Spread, timeShell, withMount, workSubdir } from './mount-shared.js';
import { formatColumns } from './report.js';
import { buildSyntheticTree, SYNTHETIC_ENTRIES } from './synthetic-index.js';

/** One mount of the 100k-entry index. */
export interface Mount100kRun {
  round: number;
  ok: boolean;
  /** Spawn → a stat inside the mount answered. */
  mountSeconds: number | null;
  /** Spawn → bootfs's "mounted at" line (informational). */
  loggedSeconds: number | null;
  rssAfterMountBytes: number | null;
  rssAfterFindBytes: number | null;
  hwmAfterFindBytes: number | null;
  findSeconds: number | null;
  /** Lines find printed (entries + the mountpoint itself). */
  found: number | null;
  error?: string;
}

export interface Mount100kResult {
  index: { entries: number; bytes: number; probe: string };
  mountSeconds: Spread;
  rssAfterMountBytes: Spread;
  rssAfterFindBytes: Spread;
  hwmAfterFindBytes: Spread;
  findSeconds: Spread;
  pass: boolean | null;
  runs: Mount100kRun[];
  checks: CheckRecord[];
}

/** The mount100k part. */
export async function runMount100k(ctx: MountContext): Promise<Mount100kResult> {
  const base = await workSubdir(ctx, 'mount100k');
  const tree = buildSyntheticTree();
  const bytes = encodeBootfsIndex({ root: tree.root, sizes: tree.sizes, table: tree.table, config: tree.config });
  const index = path.join(base, 'synthetic-100k.bootfs');
  await writeFile(index, bytes);
  const store = path.join(base, 'empty-store');
  await mkdir(store, { recursive: true });
  // A file in the last directory: the deepest lookup path the tree has.
  const probe = [...tree.probes].reverse().find((p) => p.kind === 'file')!.path;
  process.stderr.write(`mount100k: ${tree.counts.entries} entries, index ${bytes.length} bytes, probe /${probe}\n`);
  const runs: Mount100kRun[] = [];
  const checks: CheckRecord[] = [];

  for (let round = 1; round <= ctx.opts.runs; round++) {
    const mnt = await workSubdir(ctx, `mount100k/mnt${round}`);
    const r = await withMount(
      ctx,
      () => ctx.mounts.bootfs({ index, store, mountpoint: mnt, probe }),
      async (m) => {
        const afterMount = await processMemory(m.pid);
        const find = await timeShell('find "$1" | wc -l', [m.mountpoint]);
        const afterFind = await processMemory(m.pid);
        if (!find.ok) throw new Error(`find: ${find.error ?? ''}`);
        return { afterMount, afterFind, find, loggedSeconds: m.loggedSeconds };
      },
    );
    const v = r.value;
    const run: Mount100kRun = {
      round,
      ok: r.error === undefined && v !== undefined,
      mountSeconds: r.mount?.readySeconds ?? null,
      loggedSeconds: v?.loggedSeconds ?? null,
      rssAfterMountBytes: v?.afterMount?.rssBytes ?? null,
      rssAfterFindBytes: v?.afterFind?.rssBytes ?? null,
      hwmAfterFindBytes: v?.afterFind?.hwmBytes ?? null,
      findSeconds: v?.find.seconds ?? null,
      found: v ? Number(v.find.stdout.trim()) : null,
    };
    if (r.error) run.error = r.error;
    // find prints the mountpoint itself too.
    if (run.ok && run.found !== SYNTHETIC_ENTRIES + 1) {
      run.ok = false;
      run.error = `find listed ${run.found} paths, want ${SYNTHETIC_ENTRIES + 1} (the entries and the mountpoint)`;
    }
    if (run.ok && (run.rssAfterMountBytes === null || run.rssAfterFindBytes === null)) {
      run.ok = false;
      run.error = `cannot read /proc/${r.mount?.pid}/status`;
    }
    runs.push(run);
    const mb = (b: number | null): string => num(b === null ? null : b / 1e6, 0, ' MB');
    addCheck(checks, `mount100k round ${round}`, run.ok, run.ok ? `mounted in ${num(run.mountSeconds, 3)} s, find listed ${run.found} paths` : run.error ?? 'failed');
    process.stderr.write(
      `mount100k round ${round}/${ctx.opts.runs} ${run.ok ? `mount ${num(run.mountSeconds, 3)} s (logged ${num(run.loggedSeconds, 3)} s), RSS ${mb(run.rssAfterMountBytes)} -> ${mb(run.rssAfterFindBytes)} after find (${num(run.findSeconds, 2)} s)` : `FAILED: ${run.error ?? ''}`}\n`,
    );
  }

  const ok = runs.filter((r) => r.ok);
  const mountSeconds = spread(ok.map((r) => r.mountSeconds!));
  return {
    index: { entries: tree.counts.entries, bytes: bytes.length, probe },
    mountSeconds,
    rssAfterMountBytes: spread(ok.map((r) => r.rssAfterMountBytes!)),
    rssAfterFindBytes: spread(ok.map((r) => r.rssAfterFindBytes!)),
    hwmAfterFindBytes: spread(ok.map((r) => r.hwmAfterFindBytes!)),
    findSeconds: spread(ok.map((r) => r.findSeconds!)),
    pass: mountSeconds.median === null ? null : mountSeconds.median < MOUNT_TARGETS.mount100kSeconds,
    runs,
    checks,
  };
}

/** The part's table. */
export function mount100kTable(r: Mount100kResult): string {
  const mb = (s: Spread): string => num(s.median === null ? null : s.median / 1e6, 1, ' MB');
  const rows = [
    [`index: ${r.index.entries} entries`, `${(r.index.bytes / 1e6).toFixed(2)} MB`, '', ''],
    ['mount: spawn -> stat answered', num(r.mountSeconds.median, 3, ' s'), `<${MOUNT_TARGETS.mount100kSeconds} s`, verdictText(r.pass)],
    ['VmRSS after mount', mb(r.rssAfterMountBytes), 'info', ''],
    ['find MNT | wc -l (every entry)', num(r.findSeconds.median, 2, ' s'), 'info', ''],
    ['VmRSS after find', mb(r.rssAfterFindBytes), 'info', ''],
    ['VmHWM after find', mb(r.hwmAfterFindBytes), 'info', ''],
  ];
  return formatColumns(['metric', 'value', 'target', 'result'], rows, 1);
}
