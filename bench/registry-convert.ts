/**
 * Part `convert` of the registry benchmark: the Debian rootfs fixture as a one-layer OCI image
 * (umoci; plus an incompressible payload layer with --payload), pushed with skopeo into the
 * loopback docker-registry. Timed: `bootfs convert docker://HOST/bench/app:1 --tls-verify=false`
 * against `bootfs convert oci:LAYOUT:1`, each into a fresh store, order flipped every round. The
 * two indexes must agree except for the source reference they record (registry-index.ts).
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { InputUnavailable } from './common.js';
import { type Descriptor, readLayoutImage, umociUnpackArgs } from './convert-shared.js';
import { locateRootfsDir, writeRandomFile } from './inputs.js';
import { runChecked } from './proc.js';
import { fixed, formatColumns } from './report.js';
import { compareIndexes, type IndexComparison } from './registry-index.js';
import { addCheck, type BootfsRun, type CheckRecord, jsonNumber, logRun, ratioOf, type RegistryContext, roundOrder, runBootfs, times } from './registry-shared.js';
import { summarize, type ToolSummary } from './stats.js';
import { CHUNK_SIZE } from './tools.js';
import { type ChunkStoreStats, chunkStoreStats } from './workdir.js';

/** The two timed commands; odd rounds run them in this order. */
const CELLS = ['registry', 'oci'] as const;
type Cell = (typeof CELLS)[number];

/** Where the payload sits in the image (a directory the Debian rootfs does not have). */
const PAYLOAD_PATH = 'opt/bootfs-payload/data.bin';
/** The image's tag in the layout and in the registry. */
const TAG = '1';
const REPO = 'bench/app';

/** The image both commands convert. */
export interface ConvertImage {
  rootfsDir: string;
  layout: string;
  ociRef: string;
  dockerRef: string;
  manifestDigest: string;
  layers: Descriptor[];
  /** Σ layer sizes (gzip): what the registry convert downloads. */
  layerBytes: number;
  payloadBytes: number;
  buildSeconds: number;
  pushSeconds: number;
}

/** The part's results. */
export interface ConvertPartResult {
  image: ConvertImage;
  /** Regular-file bytes of the image (convert's `bytes`): the MB/s numerator. */
  dataBytes: number | null;
  chunks: number | null;
  warmUp: BootfsRun[];
  runs: BootfsRun[];
  registry: ToolSummary;
  oci: ToolSummary;
  /** Median seconds from the registry ÷ median seconds from the layout (lower is better; info). */
  ratio: number | null;
  /** Round 1's two indexes compared. */
  index: IndexComparison | null;
  /** Round 1's stores. */
  stores: { cell: Cell; stats: ChunkStoreStats }[];
  checks: CheckRecord[];
}

const since = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e9;

/** Build the layout with umoci and push it with skopeo. InputUnavailable without the fixture. */
async function prepareImage(ctx: RegistryContext, base: string): Promise<ConvertImage> {
  const found = await locateRootfsDir(ctx.repoRoot);
  if (!found.ok) throw new InputUnavailable(`rootfs: ${found.reason}`);
  const { umoci, skopeo } = ctx.tools;
  const layout = path.join(base, 'layout');
  const bundle = path.join(base, 'bundle');
  process.stderr.write(`building ${layout}:${TAG} with umoci from ${found.dir}\n`);
  let t = process.hrtime.bigint();
  await runChecked(umoci, ['init', '--layout', layout]);
  await runChecked(umoci, ['new', '--image', `${layout}:empty`]);
  await runChecked(umoci, umociUnpackArgs(layout, 'empty', bundle));
  await runChecked('cp', ['-a', `${found.dir}/.`, path.join(bundle, 'rootfs')]);
  await runChecked(umoci, ['repack', '--image', `${layout}:${TAG}`, bundle]);
  await rm(bundle, { recursive: true, force: true });
  if (ctx.opts.payloadBytes > 0) {
    const src = path.join(base, 'payload-src');
    const file = path.join(src, PAYLOAD_PATH);
    await mkdir(path.dirname(file), { recursive: true });
    process.stderr.write(`adding a layer of ${(ctx.opts.payloadBytes / 1e6).toFixed(0)} MB of incompressible payload (${PAYLOAD_PATH})\n`);
    await writeRandomFile(file, ctx.opts.payloadBytes);
    const tar = path.join(base, 'payload.tar');
    // Only the new directory and the file: /opt itself keeps the rootfs's metadata.
    await runChecked('tar', ['--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '--no-recursion', '-C', src, '-cf', tar, path.dirname(PAYLOAD_PATH), PAYLOAD_PATH]);
    await rm(src, { recursive: true, force: true });
    await runChecked(umoci, ['raw', 'add-layer', '--image', `${layout}:${TAG}`, '--history.created_by', `bench/registry.ts: ${ctx.opts.payloadBytes} bytes of AES-CTR keystream`, tar]);
    await rm(tar, { force: true });
  }
  await runChecked(umoci, ['gc', '--layout', layout]);
  const buildSeconds = since(t);
  const image = await readLayoutImage(layout, TAG);

  const registry = await ctx.registry();
  const dockerRef = `docker://${registry.host}/${REPO}:${TAG}`;
  process.stderr.write(`skopeo copy oci:${layout}:${TAG} ${dockerRef}\n`);
  t = process.hrtime.bigint();
  await runChecked(skopeo, ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:${TAG}`, dockerRef]);
  const pushSeconds = since(t);
  const pushed = JSON.parse(await runChecked(skopeo, ['inspect', '--raw', '--tls-verify=false', dockerRef])) as { layers?: Descriptor[] };
  const same = JSON.stringify(pushed.layers?.map((l) => l.digest)) === JSON.stringify(image.layers.map((l) => l.digest));
  if (!same) throw new Error(`skopeo changed the layers on push: layout ${image.layers.map((l) => l.digest).join(', ')}; registry ${pushed.layers?.map((l) => l.digest).join(', ') ?? 'none'}`);
  return {
    rootfsDir: found.dir,
    layout,
    ociRef: `oci:${layout}:${TAG}`,
    dockerRef,
    manifestDigest: image.manifest.digest,
    layers: image.layers,
    layerBytes: image.layers.reduce((a, l) => a + l.size, 0),
    payloadBytes: ctx.opts.payloadBytes,
    buildSeconds,
    pushSeconds,
  };
}

interface CellPaths {
  store: string;
  index: string;
  tmp: string;
}

async function cellPaths(dir: string): Promise<CellPaths> {
  const tmp = path.join(dir, 'tmp');
  await mkdir(tmp, { recursive: true });
  return { store: path.join(dir, 'store'), index: path.join(dir, 'index.bootfs'), tmp };
}

/** `bootfs convert SRC --store S -o X` with the benchmark's fixed chunk sizes and spool dir. */
function convertArgs(img: ConvertImage, cell: Cell, p: CellPaths): string[] {
  const src = cell === 'registry' ? img.dockerRef : img.ociRef;
  const tls = cell === 'registry' ? ['--tls-verify=false'] : [];
  return ['convert', src, '--store', p.store, '-o', p.index, ...tls, '--chunk-size', CHUNK_SIZE, '--tmpdir', p.tmp, '--json', '--no-progress'];
}

/** Both cells of one round (round 0 = warm-up); returns the runs and each cell's paths. */
async function runRound(ctx: RegistryContext, img: ConvertImage, base: string, round: number): Promise<{ runs: BootfsRun[]; paths: Map<Cell, CellPaths> }> {
  const runs: BootfsRun[] = [];
  const paths = new Map<Cell, CellPaths>();
  // The warm-up runs in round 1's order.
  for (const cell of roundOrder(CELLS, Math.max(1, round))) {
    const p = await cellPaths(path.join(base, round === 0 ? `warm-up-${cell}` : `round${round}-${cell}`));
    paths.set(cell, p);
    const r = await runBootfs(ctx.tools, convertArgs(img, cell, p), round, cell);
    runs.push(r);
    logRun('convert', r, jsonNumber(r, 'bytes'), ctx.opts.runs, 'warm-up');
  }
  return { runs, paths };
}

/** The part. Throws InputUnavailable when the fixture is missing. */
export async function runConvertPart(ctx: RegistryContext): Promise<ConvertPartResult> {
  const base = path.join(ctx.work.path, 'convert');
  await mkdir(base, { recursive: true });
  const img = await prepareImage(ctx, base);
  process.stderr.write(`image: ${img.layers.length} layer(s), ${(img.layerBytes / 1e6).toFixed(1)} MB (gzip), pushed in ${img.pushSeconds.toFixed(1)} s\n`);
  const checks: CheckRecord[] = [];
  const cells = path.join(base, 'cells');

  // Warm-up: proof both sources convert before minutes are spent timing, and warm caches (the
  // registry's blob descriptor cache, the page cache of the layout).
  const warm = await runRound(ctx, img, cells, 0);
  for (const r of warm.runs) addCheck(checks, `warm-up ${r.cell}`, r.ok, r.ok ? 'exit 0' : (r.error ?? 'failed'));

  const runs: BootfsRun[] = [];
  let index: IndexComparison | null = null;
  const stores: ConvertPartResult['stores'] = [];
  const first = new Map<Cell, string>();
  if (warm.runs.every((r) => r.ok)) {
    for (let round = 1; round <= ctx.opts.runs; round++) {
      const { runs: roundRuns, paths } = await runRound(ctx, img, cells, round);
      runs.push(...roundRuns);
      const label = `round ${round}`;
      for (const r of roundRuns) addCheck(checks, `${label} ${r.cell}`, r.ok, r.ok ? `exit 0, ${jsonNumber(r, 'entries')} entries, ${jsonNumber(r, 'bytes')} bytes, ${jsonNumber(r, 'chunks')} chunks` : (r.error ?? 'failed'));
      if (!roundRuns.every((r) => r.ok)) continue;
      // Untimed checks after both runs of the round.
      const cmp = await compareIndexes(paths.get('registry')!.index, paths.get('oci')!.index);
      const refsOk = cmp.a.reference === img.dockerRef && cmp.b.reference === img.ociRef;
      addCheck(checks, `${label} indexes: identical except source.reference`, cmp.identicalExceptReference && refsOk, cmp.identicalExceptReference ? `yes (references ${cmp.a.reference} / ${cmp.b.reference}${refsOk ? '' : ': not the converted sources'}; whole files byte-identical: ${cmp.byteIdentical})` : cmp.differences.join('; '));
      if (round === 1) {
        index = cmp;
        for (const cell of CELLS) {
          first.set(cell, paths.get(cell)!.index);
          stores.push({ cell, stats: await chunkStoreStats(paths.get(cell)!.store) });
        }
        const [s1, s2] = stores;
        addCheck(checks, 'round 1 stores hold the same chunks', s1!.stats.chunks === s2!.stats.chunks && s1!.stats.chunkBytes === s2!.stats.chunkBytes, `registry ${s1!.stats.chunks} chunks ${s1!.stats.chunkBytes} B; oci ${s2!.stats.chunks} chunks ${s2!.stats.chunkBytes} B`);
      } else {
        // Determinism: the same source gives the same index bytes every round.
        for (const cell of CELLS) {
          const again = await compareIndexes(first.get(cell)!, paths.get(cell)!.index);
          addCheck(checks, `${label} ${cell} index = round 1's`, again.byteIdentical, again.byteIdentical ? `sha256 ${again.a.sha256}` : `differs: ${again.differences.join('; ') || 'header checksum/config'}`);
        }
      }
    }
  }
  // Stores go only after every round (deleting thousands of chunk files disturbs the next timing).
  if (!ctx.opts.keep) await rm(cells, { recursive: true, force: true });

  const okRun = runs.find((r) => r.ok);
  const dataBytes = jsonNumber(okRun, 'bytes');
  const of = (cell: Cell): ToolSummary => summarize(runs.filter((r) => r.cell === cell), dataBytes ?? 0);
  const registry = of('registry');
  const oci = of('oci');
  return { image: img, dataBytes, chunks: jsonNumber(okRun, 'chunks'), warmUp: warm.runs, runs, registry, oci, ratio: ratioOf(registry.medianSeconds, oci.medianSeconds), index, stores, checks };
}

/** The part's table: one row per source, the ratio on the registry row. */
export function convertTable(r: ConvertPartResult): string {
  const row = (label: string, s: ToolSummary, ratio: string): string[] => [
    label,
    fixed(s.medianSeconds, 2),
    s.minSeconds === null ? 'n/a' : `${s.minSeconds.toFixed(2)}-${(s.maxSeconds ?? s.minSeconds).toFixed(2)}`,
    fixed(s.mbps, 1),
    fixed(s.peakRssMB, 0),
    ratio,
  ];
  const rows = [
    row(r.image.dockerRef, r.registry, `${times(r.ratio)} (info)`),
    row('oci:LAYOUT:1', r.oci, 'ref'),
  ];
  const table = formatColumns(['bootfs convert', 'median s', 'min-max s', 'MB/s', 'RSS MB', 'registry/oci'], rows, 1);
  const idx =
    r.index === null
      ? 'indexes: not compared (a run failed)'
      : `indexes: ${r.index.identicalExceptReference ? 'identical except config.source.reference' : `DIFFER: ${r.index.differences.join('; ')}`} (whole files byte-identical: ${r.index.byteIdentical ? 'yes' : 'no'}, ${r.index.a.bytes} vs ${r.index.b.bytes} bytes)`;
  const note = `registry/oci = median s from the registry / median s from the layout (lower is better); MB/s = ${r.dataBytes === null ? '?' : (r.dataBytes / 1e6).toFixed(1)} MB of regular-file data / median wall s; ${r.chunks ?? '?'} chunks; fresh store every run`;
  return `${table}\n${note}\n${idx}`;
}
