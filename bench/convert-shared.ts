/**
 * What the parts of the convert benchmark share: the tools, argv builders, parsing and verifying
 * `bootfs convert --json`, the lazily prepared inputs (rootfs copies on the work dir, the OCI layout
 * built with umoci), and the metric table.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import type { ConvertBenchOptions } from './convert-options.js';
import { locateRootfsDir } from './inputs.js';
import { runChecked, runProcess, type TimedRun } from './proc.js';
import { formatColumns } from './report.js';
import { CHUNK_SIZE } from './tools.js';
import type { WorkDir } from './workdir.js';

/** Targets of the convert benchmark. */
export const CONVERT_TARGETS = {
  /** bootfs convert dir: MB/s ÷ casync make (caidx) MB/s must be at least this. */
  speedRatio: 1.5,
  /** bootfs new stored bytes for v2 ÷ casync store growth must be at most this. */
  dedupRatio: 1.0,
  /** Median read + decode of the 100k-entry index in a fresh process, ms (below). */
  loadMs: 200,
  /** In-memory bytes per entry of the loaded 100k-entry index (below). */
  bytesPerEntry: 200,
} as const;

/** Absolute paths of everything the benchmark runs. */
export interface ConvertTools {
  node: string;
  bootfsBin: string;
  casync: string;
  umoci: string;
  rsync: string;
}

/** State and services every part gets. */
export interface PartContext {
  opts: ConvertBenchOptions;
  work: WorkDir;
  tools: ConvertTools;
  inputs: ConvertInputs;
  repoRoot: string;
  /** Things one part leaves for a later one (the speed part's verified rootfs index). */
  shared: { rootfsIndex?: string };
}

import { InputUnavailable } from './common.js';

export { InputUnavailable };

/** A pass/fail result: null when there was nothing to judge. */
export type Verdict = boolean | null;

/** 'pass', 'FAIL' or 'n/a'. */
export const verdictText = (v: Verdict): string => (v === null ? 'n/a' : v ? 'pass' : 'FAIL');

/** One row of a part's table: what, the value, the target (or 'info'), and the verdict. */
export interface MetricRow {
  metric: string;
  value: string;
  target: string;
  result: string;
}

/** Render metric rows: the first column left-aligned, the others right-aligned. */
export function metricTable(rows: readonly MetricRow[]): string {
  return formatColumns(['metric', 'value', 'target', 'result'], rows.map((r) => [r.metric, r.value, r.target, r.result]), 1);
}

/** 12345678 → '12.35 MB' (10⁶ bytes). */
export const mb = (bytes: number | null | undefined): string => (bytes === null || bytes === undefined ? 'n/a' : `${(bytes / 1e6).toFixed(2)} MB`);

/** `bootfs convert` argv (after `node`): fixed chunk sizes (casync's defaults), JSON out, no progress. */
export function bootfsConvertArgs(bin: string, src: string, store: string | undefined, index: string, tmpDir: string): string[] {
  return [bin, 'convert', src, ...(store === undefined ? [] : ['--store', store]), '-o', index, '--chunk-size', CHUNK_SIZE, '--tmpdir', tmpDir, '--json', '--no-progress'];
}

/** `casync make --store=S x.caidx DIR` argv with the same chunk sizes. */
export function casyncMakeArgs(store: string, index: string, dir: string, digest?: 'sha256'): string[] {
  return ['make', `--store=${store}`, `--chunk-size=${CHUNK_SIZE}`, ...(digest ? [`--digest=${digest}`] : []), index, dir];
}

/** The fields of `bootfs convert --json` the benchmark uses. */
export interface ConvertSummary {
  entries: number;
  files: number;
  bytes: number;
  chunks: number;
  newChunks: number;
  newStoredBytes: number;
  dedupRatio: number;
  indexBytes: number;
  seconds: number;
  [key: string]: unknown;
}

const SUMMARY_NUMBERS = ['entries', 'files', 'bytes', 'chunks', 'newChunks', 'newStoredBytes', 'dedupRatio', 'indexBytes', 'seconds'] as const;

/** Parse convert's stdout; throws naming what is missing. */
export function parseConvertSummary(stdout: string): ConvertSummary {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new Error(`bootfs convert --json printed no JSON: ${stdout.slice(0, 200)}`);
  }
  const rec = doc as Record<string, unknown>;
  for (const k of SUMMARY_NUMBERS) {
    if (typeof rec[k] !== 'number') throw new Error(`bootfs convert --json: field ${k} is missing or not a number`);
  }
  return rec as ConvertSummary;
}

/** The result of one check (recorded in the JSON; a failed check fails the benchmark). */
export interface CheckRecord {
  what: string;
  ok: boolean;
  detail: string;
}

/**
 * `bootfs info INDEX --json` must succeed and agree with convert's summary: entries, data bytes,
 * chunk count and index size.
 */
export async function checkIndex(tools: ConvertTools, index: string, summary: ConvertSummary, what: string): Promise<CheckRecord> {
  const r = await runProcess(tools.node, [tools.bootfsBin, 'info', index, '--json']);
  if (r.code !== 0) return { what, ok: false, detail: `bootfs info exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` };
  let info: Record<string, unknown>;
  try {
    info = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    return { what, ok: false, detail: 'bootfs info --json printed no JSON' };
  }
  const pairs: [string, unknown, number][] = [
    ['entries', info.entries, summary.entries],
    ['dataBytes', info.dataBytes, summary.bytes],
    ['chunks', info.chunks, summary.chunks],
    ['indexBytes', info.indexBytes, summary.indexBytes],
  ];
  const bad = pairs.filter(([, got, want]) => got !== want).map(([k, got, want]) => `${k} ${String(got)} != convert's ${want}`);
  return bad.length === 0
    ? { what, ok: true, detail: `bootfs info: ${summary.entries} entries, ${summary.bytes} data bytes, ${summary.chunks} chunks` }
    : { what, ok: false, detail: `bootfs info disagrees with convert: ${bad.join('; ')}` };
}

/** casync make must have exited 0 and left a non-empty index. */
export async function checkCasync(run: TimedRun, index: string, what: string): Promise<CheckRecord> {
  if (!run.ok) return { what, ok: false, detail: `casync make failed: ${run.error ?? ''}` };
  const size = await stat(index).then((s) => s.size).catch(() => 0);
  return size > 0 ? { what, ok: true, detail: `exit 0, ${path.basename(index)} ${size} bytes` } : { what, ok: false, detail: `casync exited 0 but ${index} is missing or empty` };
}

/** Names and regular-file bytes of a directory tree (hardlinked files once), from lstat. */
export interface TreeStats {
  /** Names below the root (the root itself not counted), as `bootfs convert` counts entries. */
  entries: number;
  /** Distinct regular files (by inode). */
  files: number;
  /** Sum of their sizes: the data stream `bootfs convert` chunks. */
  dataBytes: number;
}

/** Walk `root` with lstat (symlinks not followed). */
export async function treeStats(root: string): Promise<TreeStats> {
  const out: TreeStats = { entries: 0, files: 0, dataBytes: 0 };
  const seen = new Set<string>();
  const pending = [root];
  for (let d = pending.pop(); d !== undefined; d = pending.pop()) {
    for (const e of await readdir(d, { withFileTypes: true })) {
      out.entries++;
      const full = path.join(d, e.name);
      if (e.isDirectory()) pending.push(full);
      else if (e.isFile()) {
        const st = await lstat(full);
        const key = `${st.dev}:${st.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.files++;
        out.dataBytes += st.size;
      }
    }
  }
  return out;
}

/** A rootfs fixture copied into the work dir. */
export interface RootfsCopy {
  version: 'v1' | 'v2';
  /** The cached fixture it was copied from. */
  fixtureDir: string;
  /** The copy (on the work dir's file system). */
  dir: string;
  stats: TreeStats;
  copySeconds: number;
}

/** An OCI descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A tagged image of an OCI layout: its manifest descriptor, layers and diff IDs. */
export interface LayoutImage {
  tag: string;
  manifest: Descriptor;
  layers: Descriptor[];
  diffIds: string[];
}

/** The v1 OCI image built with umoci from the rootfs copy. */
export interface OciLayout {
  layout: string;
  /** `oci:LAYOUT:v1` */
  ref: string;
  image: LayoutImage;
  buildSeconds: number;
}

/** Path of a blob in an OCI layout. */
export function blobPath(layout: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  return path.join(layout, 'blobs', alg!, hex!);
}

/** Read the image tagged `tag` (org.opencontainers.image.ref.name) from a layout. */
export async function readLayoutImage(layout: string, tag: string): Promise<LayoutImage> {
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const manifest = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!manifest) throw new Error(`${layout}: no image tagged ${tag}`);
  const m = JSON.parse(await readFile(blobPath(layout, manifest.digest), 'utf8')) as { config: Descriptor; layers: Descriptor[] };
  const config = JSON.parse(await readFile(blobPath(layout, m.config.digest), 'utf8')) as { rootfs?: { diff_ids?: string[] } };
  return { tag, manifest, layers: m.layers, diffIds: config.rootfs?.diff_ids ?? [] };
}

/** Uncompressed size and sha256 of a gzip file (what `zcat FILE | wc -c` and the layer's diff ID say). */
export async function gunzipStats(file: string): Promise<{ bytes: number; digest: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const gunzip = createGunzip();
  createReadStream(file).on('error', (err) => gunzip.destroy(err)).pipe(gunzip);
  for await (const piece of gunzip) {
    bytes += (piece as Buffer).length;
    hash.update(piece as Buffer);
  }
  return { bytes, digest: `sha256:${hash.digest('hex')}` };
}

/** `umoci unpack` needs --rootless when not run as root. */
export function umociUnpackArgs(layout: string, tag: string, bundle: string): string[] {
  const rootless = typeof process.getuid === 'function' && process.getuid() !== 0;
  return ['unpack', ...(rootless ? ['--rootless'] : []), '--image', `${layout}:${tag}`, bundle];
}

const seconds = (from: bigint): number => Number(process.hrtime.bigint() - from) / 1e9;

/**
 * Inputs prepared on demand, once per benchmark run, in `<work>/inputs`: the rootfs copies (so
 * every tool reads from the same tmpfs) and the OCI layout of v1.
 */
export class ConvertInputs {
  private readonly copies = new Map<'v1' | 'v2', Promise<RootfsCopy>>();
  private layout: Promise<OciLayout> | undefined;

  constructor(
    private readonly repoRoot: string,
    private readonly base: string,
    private readonly tools: ConvertTools,
    private readonly keep: boolean,
  ) {}

  /** The fixture `version` copied with `cp -a` into the work dir; InputUnavailable when there is no fixture. */
  rootfs(version: 'v1' | 'v2'): Promise<RootfsCopy> {
    let p = this.copies.get(version);
    if (p === undefined) {
      p = this.copyRootfs(version);
      this.copies.set(version, p);
    }
    return p;
  }

  private async copyRootfs(version: 'v1' | 'v2'): Promise<RootfsCopy> {
    const found = await locateRootfsDir(this.repoRoot, version === 'v2');
    if (!found.ok) throw new InputUnavailable(`rootfs ${version}: ${found.reason}`);
    const dir = path.join(this.base, 'inputs', `rootfs-${version}`);
    await mkdir(path.dirname(dir), { recursive: true });
    process.stderr.write(`copying rootfs ${version} (${found.dir}) to ${dir}\n`);
    const started = process.hrtime.bigint();
    await runChecked('cp', ['-a', found.dir, dir]);
    const copySeconds = seconds(started);
    return { version, fixtureDir: found.dir, dir, stats: await treeStats(dir), copySeconds };
  }

  /** The OCI layout with image v1 (one gzip layer of the v1 copy), built once with umoci. */
  layoutV1(): Promise<OciLayout> {
    this.layout ??= this.buildLayout();
    return this.layout;
  }

  private async buildLayout(): Promise<OciLayout> {
    const v1 = await this.rootfs('v1');
    const layout = path.join(this.base, 'inputs', 'oci-layout');
    const bundle = path.join(this.base, 'inputs', 'bundle-base');
    const umoci = this.tools.umoci;
    process.stderr.write(`building the OCI layout ${layout}:v1 with umoci\n`);
    const started = process.hrtime.bigint();
    await runChecked(umoci, ['init', '--layout', layout]);
    await runChecked(umoci, ['new', '--image', `${layout}:base`]);
    await runChecked(umoci, umociUnpackArgs(layout, 'base', bundle));
    await runChecked('cp', ['-a', `${v1.dir}/.`, path.join(bundle, 'rootfs')]);
    await runChecked(umoci, ['repack', '--image', `${layout}:v1`, bundle]);
    const buildSeconds = seconds(started);
    if (!this.keep) await rm(bundle, { recursive: true, force: true });
    const image = await readLayoutImage(layout, 'v1');
    if (image.layers.length !== 1 || !image.layers[0]!.mediaType.endsWith('+gzip')) {
      throw new Error(`umoci built ${layout}:v1 with ${image.layers.length} layers (${image.layers.map((l) => l.mediaType).join(', ')}), expected one gzip layer`);
    }
    return { layout, ref: `oci:${layout}:v1`, image, buildSeconds };
  }
}
