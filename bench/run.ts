/**
 * Benchmark for issue 2: bootfs make/extract against casync make/extract on the same inputs
 * (random bytes; the Debian rootfs stream). Prints a table, writes bench/results/*.json.
 * See bench/README.md.
 */
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { cleanupOnSignal, describeEnvironment, findRepoRoot, SetupError, resultHeader, runBenchMain, bootfsBinIn } from './common.js';
import { locateRootfsStream, RANDOM_RECIPE, sha256File, writeRandomFile } from './inputs.js';
import { type InputMeasurement, measureInput, type PreparedInput, warmUp } from './measure.js';
import { type BenchOptions, type InputName, parseBenchArgs, parseOrExit, USAGE } from './options.js';
import { GNU_TIME } from './proc.js';
import { comparisonTable, fileStamp, storeTable, writeResults } from './report.js';
import { compare, type RunRecord, TARGETS } from './stats.js';
import { bootfsTool, CHUNK_SIZE, casyncTool, type Tool, which } from './tools.js';
import { createWorkDir, estimateNeededBytes, type WorkDir } from './workdir.js';

/** Size of the untimed warm-up input: big enough to exercise every code path, small enough to be instant. */
const WARMUP_BYTES = 1024 * 1024;

/** An input to prepare in the work dir. */
interface PlannedInput {
  name: InputName;
  bytes: number;
  source: string;
  /** Write the input to `file` (inside the work dir, so reads come from the same tmpfs). */
  prepare(file: string): Promise<void>;
}

/** The tools, or a SetupError saying what to install or build. */
function findTools(repoRoot: string): { tools: Tool[]; bootfsBin: string; casync: string } {
  const bootfsBin = bootfsBinIn(repoRoot);
  if (!existsSync(bootfsBin)) throw new SetupError(`${bootfsBin} is missing: run npm run build first`);
  const casync = which('casync');
  if (!casync) throw new SetupError('casync is not on PATH: run scripts/setup (Debian package casync)');
  if (!existsSync(GNU_TIME)) throw new SetupError(`${GNU_TIME} is missing (it measures peak RSS): install the Debian package time`);
  // Order matters: each round runs tools in this order (ABAB across rounds).
  return { tools: [bootfsTool(bootfsBin), casyncTool(casync)], bootfsBin, casync };
}

/** Inputs to measure, plus notes on those skipped and failures (a missing fixture in CI). */
async function planInputs(opts: BenchOptions, repoRoot: string) {
  const planned: PlannedInput[] = [];
  const skipped: { input: string; reason: string }[] = [];
  const failures: string[] = [];
  for (const name of opts.inputs) {
    if (name === 'random') {
      planned.push({ name, bytes: opts.sizeBytes, source: RANDOM_RECIPE, prepare: (file) => writeRandomFile(file, opts.sizeBytes) });
      continue;
    }
    const fixture = await locateRootfsStream(repoRoot);
    if (fixture.ok) {
      planned.push({ name, bytes: fixture.bytes, source: fixture.file, prepare: (file) => copyFile(fixture.file, file) });
    } else if (process.env.CI === 'true') {
      // In CI a silently skipped input would make the run look complete when it is not.
      failures.push(`rootfs input unavailable (CI=true, so this is an error): ${fixture.reason}`);
    } else {
      process.stderr.write(`note: skipping the rootfs input: ${fixture.reason}\n`);
      skipped.push({ input: name, reason: fixture.reason });
    }
  }
  return { planned, skipped, failures };
}

async function prepareInput(p: PlannedInput, file: string): Promise<PreparedInput> {
  await p.prepare(file);
  return { name: p.name, file, bytes: p.bytes, sha256: await sha256File(file) };
}

/** Measure every planned input; stores are deleted between inputs, never just before a timed run. */
async function measureAll(planned: PlannedInput[], tools: Tool[], opts: BenchOptions, work: WorkDir) {
  const prepared: PreparedInput[] = [];
  const all: InputMeasurement = { runs: [], verifications: [], stores: [] };
  for (const p of planned) {
    const dir = path.join(work.path, p.name);
    await mkdir(dir, { recursive: true });
    process.stderr.write(`preparing ${p.name} input (${(p.bytes / 1e6).toFixed(1)} MB)\n`);
    const input = await prepareInput(p, path.join(dir, 'input'));
    prepared.push(input);
    const m = await measureInput(input, opts.runs, tools, dir);
    all.runs.push(...m.runs);
    all.verifications.push(...m.verifications);
    all.stores.push(...m.stores);
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  }
  return { prepared, ...all };
}

async function main(argv: string[]): Promise<number> {
  const opts = parseOrExit(argv, parseBenchArgs, USAGE);
  if (typeof opts === 'number') return opts;
  const startedAt = new Date();
  const repoRoot = findRepoRoot();
  const { tools, bootfsBin, casync } = findTools(repoRoot);
  const env = await describeEnvironment(repoRoot, casync);
  const plan = await planInputs(opts, repoRoot);
  const failures = [...plan.failures];

  const largest = Math.max(WARMUP_BYTES, ...plan.planned.map((p) => p.bytes));
  const work = await createWorkDir(opts.dir, estimateNeededBytes(largest, opts.runs));
  process.stderr.write(`work dir: ${work.path} (${work.note})\n`);
  cleanupOnSignal(work, opts.keep);

  let measured: Awaited<ReturnType<typeof measureAll>> = { prepared: [], runs: [], verifications: [], stores: [] };
  let warmUpRuns: RunRecord[] = [];
  try {
    const warmDir = path.join(work.path, 'warm-up');
    await mkdir(warmDir);
    const warm = await prepareInput(
      { name: 'random', bytes: WARMUP_BYTES, source: RANDOM_RECIPE, prepare: (f) => writeRandomFile(f, WARMUP_BYTES) },
      path.join(warmDir, 'input'),
    );
    const warmed = await warmUp({ ...warm, name: 'warm-up' }, tools, warmDir);
    warmUpRuns = warmed.runs;
    failures.push(...warmed.problems);
    // Timing tools that just failed on 1 MiB would only produce numbers for a broken run.
    if (warmed.problems.length === 0) measured = await measureAll(plan.planned, tools, opts, work);
  } finally {
    if (!opts.keep) await rm(work.path, { recursive: true, force: true });
  }

  for (const r of measured.runs) if (!r.ok) failures.push(`${r.input} round ${r.round} ${r.tool} ${r.op} failed: ${r.error ?? ''}`);
  for (const v of measured.verifications) if (!v.ok) failures.push(`${v.input} round ${v.round} ${v.tool}: extracted file differs from the input`);

  const comparisons = measured.prepared.flatMap((i) => (['make', 'extract'] as const).map((op) => compare(i.name, op, i.bytes, measured.runs)));
  const inputBytes = new Map(measured.prepared.map((i) => [i.name, i.bytes]));
  if (comparisons.length > 0) process.stdout.write(`\n${comparisonTable(comparisons)}\n\n${storeTable(measured.stores, inputBytes)}\n`);
  else process.stdout.write('\nnothing was measured\n');
  for (const s of plan.skipped) process.stdout.write(`\nskipped ${s.input}: ${s.reason}\n`);
  for (const f of failures) process.stdout.write(`\nFAILURE: ${f}\n`);

  const exitCode = failures.length === 0 ? 0 : 1;
  const doc = {
    ...resultHeader('make-extract', 2, startedAt, exitCode === 0, env),
    bootfsBin,
    casyncPath: casync,
    parameters: {
      sizeBytes: opts.sizeBytes,
      runs: opts.runs,
      inputs: opts.inputs,
      chunkSize: CHUNK_SIZE,
      order: 'each round: make bootfs, make casync, extract bootfs, extract casync (fresh store and output per round)',
      warmUpBytes: WARMUP_BYTES,
      workDir: { ...work, kept: opts.keep },
      ci: process.env.CI === 'true',
    },
    targets: TARGETS,
    inputs: measured.prepared.map(({ name, bytes, sha256 }) => ({ name, bytes, sha256, source: plan.planned.find((p) => p.name === name)?.source })),
    skipped: plan.skipped,
    comparisons,
    runs: measured.runs,
    // Untimed in the comparison; on 1 MiB their wall time is mostly process start-up.
    warmUpRuns,
    verifications: measured.verifications,
    stores: measured.stores,
    failures,
  };
  const file = await writeResults(path.join(repoRoot, 'bench', 'results'), fileStamp(startedAt), doc);
  process.stdout.write(`\nresults: ${file}\n`);
  return exitCode;
}

await runBenchMain(main);
