/**
 * Benchmark of `bootfs convert` (see bench/README.md, "convert"): speed against casync make on the
 * Debian rootfs, dedup of the v1 → v2 update against casync and an OCI diff layer, and the size and
 * load cost of the bootfs index. Prints one table per part, writes bench/results/convert-*.json.
 */
import { existsSync } from 'node:fs';
import { cleanupOnSignal, describeEnvironment, findRepoRoot, finishParts, runBenchMain, runPartsInWorkDir, SetupError, bootfsBinIn } from './common.js';
import { dedupRows, runDedup, type DedupResult } from './convert-dedup.js';
import { indexRows, loadRunsFor, runIndex, type IndexResult } from './convert-index.js';
import { CONVERT_USAGE, type ConvertBenchOptions, type PartName, parseConvertArgs } from './convert-options.js';
import { type CheckRecord, CONVERT_TARGETS, ConvertInputs, type ConvertTools, metricTable, type PartContext } from './convert-shared.js';
import { runSpeed, speedTable, type SpeedResult } from './convert-speed.js';
import { parseOrExit } from './options.js';
import { GNU_TIME } from './proc.js';
import { CHUNK_SIZE, toolVersion, which } from './tools.js';
import { createWorkDir } from './workdir.js';

/** Which external tools each part runs (besides node and GNU time). */
const PART_TOOLS: Record<PartName, readonly ('casync' | 'umoci' | 'rsync')[]> = {
  speed: ['casync', 'umoci'],
  dedup: ['casync', 'umoci', 'rsync'],
  index: [],
};

/** The tools the selected parts need, or a SetupError saying what to install or build. */
function findTools(repoRoot: string, parts: readonly PartName[]): ConvertTools {
  const bootfsBin = bootfsBinIn(repoRoot);
  if (!existsSync(bootfsBin)) throw new SetupError(`${bootfsBin} is missing: run npm run build first`);
  if (!existsSync(GNU_TIME)) throw new SetupError(`${GNU_TIME} is missing (it measures peak RSS): install the Debian package time`);
  const needed = new Set(parts.flatMap((p) => PART_TOOLS[p]));
  const found = { casync: which('casync'), umoci: which('umoci'), rsync: which('rsync') };
  for (const name of needed) {
    if (!found[name]) throw new SetupError(`${name} is not on PATH (needed by --parts ${parts.join(',')}): run scripts/setup`);
  }
  return { node: process.execPath, bootfsBin, casync: found.casync ?? 'casync', umoci: found.umoci ?? 'umoci', rsync: found.rsync ?? 'rsync' };
}

/**
 * Room the work dir needs: rootfs copies, the OCI layout and bundle, the stores (zstd chunks are
 * ~45 % of the data) and the convert spool, with slack. Generous on purpose.
 */
function neededBytes(opts: ConvertBenchOptions): number {
  const has = (p: PartName): boolean => opts.parts.includes(p);
  let n = 64 * 1024 * 1024 + 130e6; // v1 copy (every part may need it)
  if (has('speed') || has('dedup')) n += 60e6; // OCI layout v1
  if (has('speed')) n += opts.runs * 3 * 60e6 + 130e6; // three stores per round + oci: spool
  if (has('dedup')) n += 2 * 160e6 + 2 * 70e6 + 20e6; // v2 copy + bundle, two stores, layer v2
  if (has('index')) n += 30e6;
  return Math.ceil(n);
}

interface PartResults {
  speed?: SpeedResult;
  dedup?: DedupResult;
  index?: IndexResult;
}

function checksOf(r: PartResults): CheckRecord[] {
  return [...(r.speed?.checks ?? []), ...(r.dedup?.checks ?? []), ...(r.index?.checks ?? [])];
}

function printPart(part: PartName, r: PartResults, opts: ConvertBenchOptions): void {
  let title = '';
  let body = '';
  if (part === 'speed' && r.speed) {
    title = `speed: bootfs convert vs casync make, Debian rootfs v1 (median of ${opts.runs})`;
    body = speedTable(r.speed);
  } else if (part === 'dedup' && r.dedup) {
    title = 'dedup: shipping the v1 -> v2 update (v2 = v1 + python3-minimal)';
    body = metricTable(dedupRows(r.dedup));
  } else if (part === 'index' && r.index) {
    title = `index: size and fresh-process load (median of ${r.index.loadRuns})`;
    body = metricTable(indexRows(r.index));
  }
  if (title !== '') process.stdout.write(`\n${title}\n\n${body}\n`);
}

async function main(argv: string[]): Promise<number> {
  const opts = parseOrExit(argv, parseConvertArgs, CONVERT_USAGE);
  if (typeof opts === 'number') return opts;
  const startedAt = new Date();
  const repoRoot = findRepoRoot();
  const tools = findTools(repoRoot, opts.parts);
  const env = await describeEnvironment(repoRoot, tools.casync);
  const versions = { umociVersion: await toolVersion(tools.umoci), rsyncVersion: await toolVersion(tools.rsync) };
  const work = await createWorkDir(opts.dir, neededBytes(opts));
  process.stderr.write(`work dir: ${work.path} (${work.note})\n`);
  cleanupOnSignal(work, opts.keep);

  const ctx: PartContext = { opts, work, tools, repoRoot, inputs: new ConvertInputs(repoRoot, work.path, tools, opts.keep), shared: {} };
  const results: PartResults = {};
  const { partSeconds, skipped, failures } = await runPartsInWorkDir({
    parts: opts.parts,
    work,
    keep: opts.keep,
    run: async (part) => {
      if (part === 'speed') results.speed = await runSpeed(ctx);
      else if (part === 'dedup') results.dedup = await runDedup(ctx);
      else results.index = await runIndex(ctx);
    },
    after: (part) => printPart(part, results, opts),
  });

  for (const r of results.speed?.runs ?? []) if (!r.ok) failures.push(`speed round ${r.round} ${r.cell} failed: ${r.error ?? ''}`);
  return finishParts({
    repoRoot,
    benchmark: 'convert',
    issue: 3,
    startedAt,
    env,
    checks: checksOf(results),
    skipped,
    failures,
    body: {
      ...versions,
      tools,
      parameters: {
        runs: opts.runs,
        parts: opts.parts,
        indexLoadRuns: loadRunsFor(opts.runs),
        chunkSize: CHUNK_SIZE,
        order: 'speed, each round: bootfs convert dir:, casync make caidx, bootfs convert oci: (fresh store per run); dedup and index run once',
        workDir: { ...work, kept: opts.keep },
        ci: process.env.CI === 'true',
      },
      targets: CONVERT_TARGETS,
      partSeconds,
      parts: results,
    },
  });
}

await runBenchMain(main);
