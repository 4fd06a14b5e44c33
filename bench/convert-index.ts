/**
 * Index part of the convert benchmark: how big and how fast to open a bootfs index is.
 *
 *   rootfs      the real index of the v1 rootfs (from the speed part, else converted here without a
 *               store): bytes per entry on disk; load time and memory (informational)
 *   synthetic   a 100k-entry tree (synthetic-index.ts) encoded with encodeBootfsIndex: bytes per
 *               entry on disk, and — judged — the median load time (read + BootfsIndex.decode) in a
 *               fresh process and the in-memory bytes per entry after GC (index-load-child.ts)
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeBootfsIndex } from '../src/index/bootfs-builder.js';
import { BootfsIndex } from '../src/index/bootfs-reader.js';
import {
  bootfsConvertArgs, checkIndex, type CheckRecord, CONVERT_TARGETS, InputUnavailable, type MetricRow, parseConvertSummary,
  type PartContext, verdictText,
} from './convert-shared.js';
import { runChecked, runTimedCapture, type TimedRun } from './proc.js';
import { median } from './stats.js';
import { buildSyntheticTree, SYNTHETIC_ENTRIES } from './synthetic-index.js';

/** Fresh-process loads per index: at least 5, so the median means something even with --runs 1. */
export const loadRunsFor = (runs: number): number => Math.max(5, runs);

/** What index-load-child.js prints. */
interface ChildReport {
  importMs: number;
  readMs: number;
  decodeMs: number;
  loadMs: number;
  fileBytes: number;
  entries: number;
  inodes: number;
  dataSize: number;
  chunks: number;
  checksum: string;
  heapUsedGrowth: number;
  arrayBuffersGrowth: number;
  externalGrowth: number;
  rssGrowth: number;
  [key: string]: unknown;
}

/** One fresh-process load. */
export interface LoadSample extends TimedRun {
  report?: ChildReport;
}

/** Loads of one index file and their medians. */
export interface IndexMeasurement {
  file: string;
  fileBytes: number;
  entries: number;
  bytesPerEntryOnDisk: number;
  loads: LoadSample[];
  median: {
    loadMs: number;
    readMs: number;
    decodeMs: number;
    importMs: number;
    /** (heapUsed growth + arrayBuffers growth) / entries, after GC, index still referenced. */
    bytesPerEntryInMemory: number;
    heapUsedGrowth: number;
    arrayBuffersGrowth: number;
  } | null;
}

export interface IndexResult {
  rootfs: ({ source: string } & IndexMeasurement) | { skipped: string };
  synthetic: IndexMeasurement & {
    counts: ReturnType<typeof buildSyntheticTree>['counts'];
    buildMs: number;
    encodeMs: number;
    loadPass: boolean | null;
    memoryPass: boolean | null;
  };
  loadRuns: number;
  checks: CheckRecord[];
}

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'index-load-child.js');

/** Load `file` in `n` fresh processes; checks that each saw `entries` entries and `checksum`. */
async function measureLoads(ctx: PartContext, file: string, fileBytes: number, entries: number, checksum: string, n: number, label: string, checks: CheckRecord[]): Promise<IndexMeasurement> {
  const loads: LoadSample[] = [];
  for (let i = 0; i < n; i++) {
    const r = await runTimedCapture(ctx.tools.node, ['--expose-gc', CHILD, file]);
    const sample: LoadSample = { ...r.run };
    if (sample.ok) {
      try {
        sample.report = JSON.parse(r.stdout) as ChildReport;
      } catch {
        sample.ok = false;
        sample.error = `the load child printed no JSON: ${r.stdout.slice(0, 200)}`;
      }
    }
    loads.push(sample);
  }
  const reports = loads.map((l) => l.report).filter((x): x is ChildReport => x !== undefined);
  const bad = loads.filter((l) => !l.report || l.report.entries !== entries || l.report.checksum !== checksum);
  checks.push({
    what: `index ${label} loads`,
    ok: bad.length === 0,
    detail: bad.length === 0 ? `${n} fresh-process loads, each ${entries} entries, checksum ${checksum.slice(0, 16)}…` : `${bad.length} of ${n} loads failed or disagreed: ${bad[0]!.error ?? `entries ${bad[0]!.report?.entries}, checksum ${bad[0]!.report?.checksum}`}`,
  });
  const med = (f: (r: ChildReport) => number): number => median(reports.map(f));
  return {
    file,
    fileBytes,
    entries,
    bytesPerEntryOnDisk: fileBytes / entries,
    loads,
    median:
      reports.length === 0
        ? null
        : {
            loadMs: med((r) => r.loadMs),
            readMs: med((r) => r.readMs),
            decodeMs: med((r) => r.decodeMs),
            importMs: med((r) => r.importMs),
            bytesPerEntryInMemory: med((r) => (r.heapUsedGrowth + r.arrayBuffersGrowth) / entries),
            heapUsedGrowth: med((r) => r.heapUsedGrowth),
            arrayBuffersGrowth: med((r) => r.arrayBuffersGrowth),
          },
  };
}

/** The real rootfs index: the speed part's, or one converted here (no store needed for the index). */
async function rootfsIndex(ctx: PartContext, base: string, checks: CheckRecord[]): Promise<{ file: string; source: string } | { skipped: string }> {
  if (ctx.shared.rootfsIndex) return { file: ctx.shared.rootfsIndex, source: 'speed part, round 1, bootfs convert dir:' };
  let v1;
  try {
    v1 = await ctx.inputs.rootfs('v1');
  } catch (err) {
    if (err instanceof InputUnavailable) return { skipped: err.message };
    throw err;
  }
  const file = path.join(base, 'rootfs-v1.bootfs');
  const tmp = path.join(base, 'tmp');
  await mkdir(tmp, { recursive: true });
  const r = await runTimedCapture(ctx.tools.node, bootfsConvertArgs(ctx.tools.bootfsBin, `dir:${v1.dir}`, undefined, file, tmp));
  if (!r.run.ok) {
    checks.push({ what: 'index rootfs convert', ok: false, detail: r.run.error ?? 'failed' });
    return { skipped: `bootfs convert dir:${v1.dir} failed` };
  }
  const check = await checkIndex(ctx.tools, file, parseConvertSummary(r.stdout), 'index rootfs convert');
  checks.push(check);
  return check.ok ? { file, source: 'bootfs convert dir: (no store), in the index part' } : { skipped: check.detail };
}

/** The index part. */
export async function runIndex(ctx: PartContext): Promise<IndexResult> {
  const base = path.join(ctx.work.path, 'index');
  await mkdir(base, { recursive: true });
  const n = loadRunsFor(ctx.opts.runs);
  const checks: CheckRecord[] = [];

  let rootfs: IndexResult['rootfs'];
  const found = await rootfsIndex(ctx, base, checks);
  if ('skipped' in found) rootfs = found;
  else {
    const idx = await BootfsIndex.readFile(found.file);
    process.stderr.write(`index: loading the rootfs index ${n} times in fresh processes\n`);
    rootfs = { source: found.source, ...(await measureLoads(ctx, found.file, idx.byteLength, idx.entryCount, idx.checksum, n, 'rootfs', checks)) };
  }

  // Synthetic 100k entries.
  let t = performance.now();
  const tree = buildSyntheticTree();
  const buildMs = performance.now() - t;
  t = performance.now();
  const bytes = encodeBootfsIndex({ root: tree.root, sizes: tree.sizes, table: tree.table, config: tree.config });
  const encodeMs = performance.now() - t;
  const file = path.join(base, 'synthetic-100k.bootfs');
  await writeFile(file, bytes);
  process.stderr.write(`index: synthetic tree ${tree.counts.entries} entries built in ${buildMs.toFixed(0)} ms, encoded in ${encodeMs.toFixed(0)} ms (${bytes.length} bytes)\n`);

  // It must decode to what we built, and bootfs info must read it.
  const idx = BootfsIndex.decode(bytes, file);
  const problems: string[] = [];
  if (tree.counts.entries !== SYNTHETIC_ENTRIES || idx.entryCount !== SYNTHETIC_ENTRIES) problems.push(`entries: built ${tree.counts.entries}, decoded ${idx.entryCount}, want ${SYNTHETIC_ENTRIES}`);
  if (idx.dataSize !== tree.counts.dataBytes || tree.table.totalSize !== tree.counts.dataBytes) problems.push(`data size ${idx.dataSize}, table ${tree.table.totalSize}, files ${tree.counts.dataBytes}`);
  if (idx.xattrCount !== tree.counts.xattrs) problems.push(`xattrs ${idx.xattrCount} != ${tree.counts.xattrs}`);
  for (const p of tree.probes) {
    const ino = idx.resolve(p.path);
    if (ino === undefined || idx.kind(ino) !== p.kind) {
      problems.push(`/${p.path}: ${ino === undefined ? 'not found' : `a ${idx.kind(ino)}, not a ${p.kind}`}`);
      continue;
    }
    if (p.size !== undefined && idx.stat(ino).size !== p.size) problems.push(`/${p.path}: size ${idx.stat(ino).size} != ${p.size}`);
    if (p.target !== undefined && idx.readlink(ino) !== p.target) problems.push(`/${p.path}: target ${idx.readlink(ino)} != ${p.target}`);
    if (p.xattr && !idx.getXattr(ino, p.xattr.name)?.equals(p.xattr.value)) problems.push(`/${p.path}: xattr ${p.xattr.name} differs`);
  }
  try {
    const info = JSON.parse(await runChecked(ctx.tools.node, [ctx.tools.bootfsBin, 'info', file, '--json'])) as { entries?: unknown; dataBytes?: unknown };
    if (info.entries !== SYNTHETIC_ENTRIES || info.dataBytes !== tree.counts.dataBytes) problems.push(`bootfs info: entries ${String(info.entries)}, dataBytes ${String(info.dataBytes)}`);
  } catch (err) {
    problems.push((err as Error).message);
  }
  checks.push({
    what: 'index synthetic decode',
    ok: problems.length === 0,
    detail: problems.length === 0 ? `decodes to ${idx.entryCount} entries, ${idx.inodeCount} inodes, ${idx.xattrCount} xattrs, ${idx.dataSize} data bytes; ${tree.probes.length} probed paths match; bootfs info agrees` : problems.join('; '),
  });

  process.stderr.write(`index: loading the synthetic index ${n} times in fresh processes\n`);
  const m = await measureLoads(ctx, file, bytes.length, idx.entryCount, idx.checksum, n, 'synthetic', checks);
  if (!ctx.opts.keep) await rm(base, { recursive: true, force: true });
  return {
    rootfs,
    synthetic: {
      ...m,
      counts: tree.counts,
      buildMs,
      encodeMs,
      loadPass: m.median === null ? null : m.median.loadMs < CONVERT_TARGETS.loadMs,
      memoryPass: m.median === null ? null : m.median.bytesPerEntryInMemory < CONVERT_TARGETS.bytesPerEntry,
    },
    loadRuns: n,
    checks,
  };
}

/** The index table rows. */
export function indexRows(r: IndexResult): MetricRow[] {
  const info = { target: '-', result: 'info' };
  const ms = (v: number | undefined): string => (v === undefined ? 'n/a' : `${v.toFixed(1)} ms`);
  const b = (v: number | undefined): string => (v === undefined ? 'n/a' : `${v.toFixed(1)} B`);
  const rows: MetricRow[] = [];
  if ('skipped' in r.rootfs) rows.push({ metric: 'rootfs index', value: 'skipped', ...info });
  else {
    const f = r.rootfs;
    rows.push(
      { metric: `rootfs index: entries (${f.fileBytes} bytes)`, value: String(f.entries), ...info },
      { metric: 'rootfs index: bytes per entry on disk', value: b(f.bytesPerEntryOnDisk), ...info },
      { metric: `rootfs index: load time (median of ${f.loads.length})`, value: ms(f.median?.loadMs), ...info },
      { metric: 'rootfs index: in-memory bytes per entry', value: b(f.median?.bytesPerEntryInMemory), ...info },
    );
  }
  const s = r.synthetic;
  rows.push(
    { metric: `synthetic index: entries (${s.fileBytes} bytes)`, value: String(s.entries), ...info },
    { metric: 'synthetic index: bytes per entry on disk', value: b(s.bytesPerEntryOnDisk), ...info },
    { metric: `synthetic index: load time (median of ${s.loads.length})`, value: ms(s.median?.loadMs), target: `<${CONVERT_TARGETS.loadMs} ms`, result: verdictText(s.loadPass) },
    { metric: 'synthetic index: in-memory bytes per entry', value: b(s.median?.bytesPerEntryInMemory), target: `<${CONVERT_TARGETS.bytesPerEntry} B`, result: verdictText(s.memoryPass) },
    { metric: 'synthetic index: encode time', value: ms(s.encodeMs), ...info },
  );
  return rows;
}
