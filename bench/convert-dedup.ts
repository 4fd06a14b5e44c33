/**
 * Dedup part of the convert benchmark: what an update from rootfs v1 to v2 (v1 + python3-minimal)
 * costs to ship, three ways:
 *
 *   bootfs  convert dir:v1 then dir:v2 into one store → v2's newStoredBytes (cross-checked against
 *           the growth of the store's .cacnk bytes)
 *   casync  make v1.caidx then v2.caidx into one store → growth of the store's .cacnk bytes
 *   OCI     umoci: unpack the v1 image, rsync v2 over the bundle's rootfs, repack as v2 → the new
 *           layer blob (gzip) and its uncompressed size (cross-checked against its diff ID)
 *
 * Deterministic (no timing is judged), so it runs once whatever --runs says.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  blobPath, bootfsConvertArgs, casyncMakeArgs, checkCasync, checkIndex, type CheckRecord, CONVERT_TARGETS, type ConvertSummary,
  gunzipStats, mb, type MetricRow, parseConvertSummary, type PartContext, readLayoutImage, umociUnpackArgs, verdictText,
} from './convert-shared.js';
import { runChecked, runTimedCapture, type TimedRun } from './proc.js';
import { type ChunkStoreStats, chunkStoreStats } from './workdir.js';

/** One command of the part, with the store after it. */
export interface DedupStep extends TimedRun {
  tool: 'bootfs' | 'casync';
  version: 'v1' | 'v2';
  convert?: ConvertSummary;
  storeAfter: ChunkStoreStats | null;
}

export interface DedupResult {
  inputs: { v1: { dir: string; dataBytes: number; entries: number }; v2: { dir: string; dataBytes: number; entries: number } };
  steps: DedupStep[];
  checks: CheckRecord[];
  bootfs: { newStoredBytes: number | null; newChunks: number | null; storeGrowthBytes: number | null; storeGrowthChunks: number | null; v2Chunks: number | null };
  casync: { storeGrowthBytes: number | null; newChunks: number | null; v1StoreBytes: number | null; v2StoreBytes: number | null };
  oci: { layerDigest: string | null; gzipBytes: number | null; uncompressedBytes: number | null; diffId: string | null; seconds: { unpack: number; rsync: number; repack: number } | null };
  ratios: { bootfsVsCasync: number | null; bootfsVsOciGzip: number | null; bootfsVsOciUncompressed: number | null; casyncVsOciGzip: number | null };
  target: number;
  pass: boolean | null;
}

const since = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e9;
const div = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : a / b);

/** The dedup part. Throws InputUnavailable when a fixture is missing. */
export async function runDedup(ctx: PartContext): Promise<DedupResult> {
  const { tools } = ctx;
  const v1 = await ctx.inputs.rootfs('v1');
  const v2 = await ctx.inputs.rootfs('v2');
  const layout = await ctx.inputs.layoutV1();
  const base = path.join(ctx.work.path, 'dedup');
  const tmp = path.join(base, 'tmp');
  await mkdir(tmp, { recursive: true });
  const stores = { bootfs: path.join(base, 'bootfs-store'), casync: path.join(base, 'casync-store') };
  const checks: CheckRecord[] = [];
  const steps: DedupStep[] = [];
  const versions = { v1, v2 };

  for (const version of ['v1', 'v2'] as const) {
    const copy = versions[version];
    for (const tool of ['bootfs', 'casync'] as const) {
      const index = path.join(base, `${version}.${tool === 'bootfs' ? 'bootfs' : 'caidx'}`);
      const what = `dedup ${tool} ${version}`;
      const r =
        tool === 'bootfs'
          ? await runTimedCapture(tools.node, bootfsConvertArgs(tools.bootfsBin, `dir:${copy.dir}`, stores.bootfs, index, tmp))
          : await runTimedCapture(tools.casync, casyncMakeArgs(stores.casync, index, copy.dir));
      const step: DedupStep = { tool, version, ...r.run, storeAfter: null };
      if (step.ok && tool === 'bootfs') {
        try {
          step.convert = parseConvertSummary(r.stdout);
        } catch (err) {
          step.ok = false;
          step.error = (err as Error).message;
        }
      }
      if (step.ok) step.storeAfter = await chunkStoreStats(stores[tool]);
      steps.push(step);
      process.stderr.write(`${what}: ${step.ok ? `${step.seconds.toFixed(3)} s, store ${mb(step.storeAfter?.chunkBytes)} in ${step.storeAfter?.chunks} chunks` : `FAILED: ${step.error ?? ''}`}\n`);
      if (tool === 'casync') checks.push(await checkCasync(step, index, what));
      else if (!step.convert) checks.push({ what, ok: false, detail: `bootfs convert failed: ${step.error ?? ''}` });
      else {
        checks.push(await checkIndex(tools, index, step.convert, what));
        const c = step.convert;
        checks.push({
          what: `${what} counts`,
          ok: c.entries === copy.stats.entries && c.bytes === copy.stats.dataBytes,
          detail: `convert: ${c.entries} entries, ${c.bytes} bytes; the tree: ${copy.stats.entries} entries, ${copy.stats.dataBytes} bytes`,
        });
      }
    }
  }
  const step = (tool: 'bootfs' | 'casync', version: 'v1' | 'v2'): DedupStep | undefined => steps.find((s) => s.tool === tool && s.version === version && s.ok);
  const b1 = step('bootfs', 'v1');
  const b2 = step('bootfs', 'v2');
  const c1 = step('casync', 'v1');
  const c2 = step('casync', 'v2');

  const bootfs: DedupResult['bootfs'] = { newStoredBytes: null, newChunks: null, storeGrowthBytes: null, storeGrowthChunks: null, v2Chunks: null };
  if (b1?.storeAfter && b2?.storeAfter && b2.convert) {
    Object.assign(bootfs, {
      newStoredBytes: b2.convert.newStoredBytes,
      newChunks: b2.convert.newChunks,
      storeGrowthBytes: b2.storeAfter.chunkBytes - b1.storeAfter.chunkBytes,
      storeGrowthChunks: b2.storeAfter.chunks - b1.storeAfter.chunks,
      v2Chunks: b2.convert.chunks,
    });
    checks.push({
      what: 'dedup bootfs newStoredBytes = store growth',
      ok: bootfs.newStoredBytes === bootfs.storeGrowthBytes && bootfs.newChunks === bootfs.storeGrowthChunks,
      detail: `convert reported ${bootfs.newChunks} new chunks, ${bootfs.newStoredBytes} bytes; the store grew by ${bootfs.storeGrowthChunks} .cacnk files, ${bootfs.storeGrowthBytes} bytes`,
    });
  }
  const casync: DedupResult['casync'] = { storeGrowthBytes: null, newChunks: null, v1StoreBytes: null, v2StoreBytes: null };
  if (c1?.storeAfter && c2?.storeAfter) {
    Object.assign(casync, {
      storeGrowthBytes: c2.storeAfter.chunkBytes - c1.storeAfter.chunkBytes,
      newChunks: c2.storeAfter.chunks - c1.storeAfter.chunks,
      v1StoreBytes: c1.storeAfter.chunkBytes,
      v2StoreBytes: c2.storeAfter.chunkBytes,
    });
  }

  // The OCI way: the diff layer umoci writes for v1 → v2.
  const oci: DedupResult['oci'] = { layerDigest: null, gzipBytes: null, uncompressedBytes: null, diffId: null, seconds: null };
  const bundle = path.join(base, 'bundle-v1');
  try {
    let t = process.hrtime.bigint();
    await runChecked(tools.umoci, umociUnpackArgs(layout.layout, 'v1', bundle));
    const unpack = since(t);
    t = process.hrtime.bigint();
    await runChecked(tools.rsync, ['-aHAX', '--delete', `${v2.dir}/`, `${path.join(bundle, 'rootfs')}/`]);
    const rsync = since(t);
    t = process.hrtime.bigint();
    await runChecked(tools.umoci, ['repack', '--image', `${layout.layout}:v2`, bundle]);
    const repack = since(t);
    const img1 = await readLayoutImage(layout.layout, 'v1');
    const img2 = await readLayoutImage(layout.layout, 'v2');
    const prefixOk = img2.layers.length === img1.layers.length + 1 && img1.layers.every((l, i) => l.digest === img2.layers[i]!.digest);
    const layer = img2.layers[img2.layers.length - 1]!;
    const file = blobPath(layout.layout, layer.digest);
    const size = (await stat(file)).size;
    const unzipped = await gunzipStats(file);
    const diffId = img2.diffIds[img2.diffIds.length - 1] ?? null;
    Object.assign(oci, { layerDigest: layer.digest, gzipBytes: size, uncompressedBytes: unzipped.bytes, diffId, seconds: { unpack, rsync, repack } });
    process.stderr.write(`dedup OCI diff layer: ${mb(size)} gzip, ${mb(unzipped.bytes)} uncompressed (unpack ${unpack.toFixed(1)} s, rsync ${rsync.toFixed(1)} s, repack ${repack.toFixed(1)} s)\n`);
    checks.push({
      what: 'dedup OCI v2 = v1 layers + one diff layer',
      ok: prefixOk && layer.mediaType.endsWith('+gzip') && size === layer.size,
      detail: `v1 ${img1.layers.length} layer(s), v2 ${img2.layers.length}; new layer ${layer.mediaType}, descriptor size ${layer.size}, blob ${size} bytes`,
    });
    checks.push({ what: 'dedup OCI diff layer diff ID', ok: diffId === unzipped.digest, detail: `config diff_id ${diffId}, sha256 of the gunzipped blob ${unzipped.digest}` });
  } catch (err) {
    checks.push({ what: 'dedup OCI diff layer', ok: false, detail: (err as Error).message });
  }
  if (!ctx.opts.keep) await rm(base, { recursive: true, force: true });

  const ratio = div(bootfs.newStoredBytes, casync.storeGrowthBytes);
  return {
    inputs: {
      v1: { dir: v1.dir, dataBytes: v1.stats.dataBytes, entries: v1.stats.entries },
      v2: { dir: v2.dir, dataBytes: v2.stats.dataBytes, entries: v2.stats.entries },
    },
    steps,
    checks,
    bootfs,
    casync,
    oci,
    ratios: {
      bootfsVsCasync: ratio,
      bootfsVsOciGzip: div(bootfs.newStoredBytes, oci.gzipBytes),
      bootfsVsOciUncompressed: div(bootfs.newStoredBytes, oci.uncompressedBytes),
      casyncVsOciGzip: div(casync.storeGrowthBytes, oci.gzipBytes),
    },
    target: CONVERT_TARGETS.dedupRatio,
    pass: ratio === null ? null : ratio <= CONVERT_TARGETS.dedupRatio,
  };
}

/** The dedup table rows. */
export function dedupRows(d: DedupResult): MetricRow[] {
  const x = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)}x`);
  const n = (v: number | null): string => (v === null ? 'n/a' : String(v));
  const info = { target: '-', result: 'info' };
  return [
    { metric: 'bootfs new stored bytes (v2 after v1)', value: mb(d.bootfs.newStoredBytes), ...info },
    { metric: 'casync store growth (v2 after v1)', value: mb(d.casync.storeGrowthBytes), ...info },
    { metric: 'bootfs / casync', value: x(d.ratios.bootfsVsCasync), target: `<=${d.target.toFixed(2)}x`, result: verdictText(d.pass) },
    { metric: 'new chunks bootfs / casync', value: `${n(d.bootfs.newChunks)} / ${n(d.casync.newChunks)}`, ...info },
    { metric: 'OCI diff layer, gzip', value: mb(d.oci.gzipBytes), ...info },
    { metric: 'OCI diff layer, uncompressed', value: mb(d.oci.uncompressedBytes), ...info },
    { metric: 'bootfs / OCI diff layer (gzip)', value: x(d.ratios.bootfsVsOciGzip), ...info },
    { metric: 'bootfs / OCI diff layer (uncompressed)', value: x(d.ratios.bootfsVsOciUncompressed), ...info },
    { metric: 'casync / OCI diff layer (gzip)', value: x(d.ratios.casyncVsOciGzip), ...info },
  ];
}
