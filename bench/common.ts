/** Pieces every benchmark entry point needs: the repo root, setup errors, the environment record, cleanup. */
import { existsSync, rmSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProcess, TIMED_ENV_KEYS } from './proc.js';
import { toolVersion } from './tools.js';
import type { WorkDir } from './workdir.js';

/** The repository root: the nearest ancestor with package.json (works from dist/bench and bench/). */
export function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find package.json above the benchmark');
    dir = up;
  }
  return dir;
}

/** The CLI as installed: the bundle `npm run build` writes (package.json "bin"). */
export function bootfsBinIn(repoRoot: string): string {
  return path.join(repoRoot, 'dist', 'cli', 'bin.js');
}

/** A problem that stops the benchmark before it measures anything (exit 2). */
export class SetupError extends Error {}

/** Static facts about the machine and software, for comparing result files later. */
export async function describeEnvironment(repoRoot: string, casync: string) {
  const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const git = await runProcess('git', ['-C', repoRoot, 'rev-parse', 'HEAD']).catch(() => null);
  const cpus = os.cpus();
  return {
    machine: {
      platform: os.platform(),
      release: os.release(),
      arch: os.arch(),
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      totalMemBytes: os.totalmem(),
      nodeVersion: process.version,
      loadavgAtStart: os.loadavg(),
    },
    // Timed tools get only these variables (bench/proc.ts timedEnv); the host's NODE_* ones are listed.
    timedEnv: { kept: [...TIMED_ENV_KEYS], hostNodeVariablesDropped: Object.keys(process.env).filter((k) => k.startsWith('NODE_')) },
    bootfsVersion: pkg.version,
    gitCommit: git?.code === 0 ? git.stdout.trim() : null,
    casyncVersion: await toolVersion(casync),
  };
}

/** Remove the work dir on Ctrl-C too: a forgotten tmpfs dir holds gigabytes of RAM. */
export function cleanupOnSignal(work: WorkDir, keep: boolean): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      if (!keep) rmSync(work.path, { recursive: true, force: true });
      process.stderr.write(`\ninterrupted${keep ? `; work dir kept: ${work.path}` : ''}\n`);
      process.exit(130);
    });
  }
}

/**
 * Run a benchmark's main() as the process: its return value is the exit status; a SetupError
 * (missing tool or fixture) exits 2, anything else 1, each with one line on stderr.
 */
export async function runBenchMain(main: (argv: string[]) => Promise<number>): Promise<void> {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof SetupError ? '' : 'error: '}${(err as Error).message}\n`);
    process.exitCode = err instanceof SetupError ? 2 : 1;
  }
}

/** The fields every results document starts with: what ran, when, whether it all passed, on what. */
export function resultHeader(benchmark: string, issue: number, startedAt: Date, ok: boolean, env: object): Record<string, unknown> {
  return {
    benchmark,
    issue,
    schemaVersion: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    ok,
    ...env,
    loadavgAtEnd: os.loadavg(),
  };
}

/** A part could not run because an input is unavailable (not a tool failure). */
export class InputUnavailable extends Error {}

/**
 * Run one part of a benchmark and return its wall time in seconds. An unavailable input skips the
 * part, except in CI, where a silently skipped part would look like a full run; any other error
 * is a failure. Neither stops the remaining parts.
 */
export async function runPart(part: string, body: () => Promise<void>, skipped: { part: string; reason: string }[], failures: string[]): Promise<number> {
  const started = process.hrtime.bigint();
  process.stderr.write(`\n== part ${part} ==\n`);
  try {
    await body();
  } catch (err) {
    if (err instanceof InputUnavailable && process.env.CI !== 'true') {
      process.stderr.write(`note: skipping part ${part}: ${err.message}\n`);
      skipped.push({ part, reason: err.message });
    } else {
      failures.push(`part ${part}: ${err instanceof InputUnavailable ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/**
 * Run the selected parts in order (runPart each), calling `after` with each part's name when it
 * is done (to print its table), and return the wall seconds per part.
 */
export async function runParts<P extends string>(
  parts: readonly P[],
  run: (part: P) => Promise<void>,
  o: { skipped: { part: string; reason: string }[]; failures: string[]; after?: (part: P) => void },
): Promise<Partial<Record<P, number>>> {
  const seconds: Partial<Record<P, number>> = {};
  for (const part of parts) {
    seconds[part] = await runPart(part, () => run(part), o.skipped, o.failures);
    o.after?.(part);
  }
  return seconds;
}

/**
 * runParts inside a work dir: the parts in order, then `cleanup` (stop servers or mounts; it may
 * add failures), then the work dir is removed unless kept. Cleanup and removal happen also when
 * a part's `after` throws.
 */
export async function runPartsInWorkDir<P extends string>(o: {
  parts: readonly P[];
  work: WorkDir;
  keep: boolean;
  run: (part: P) => Promise<void>;
  after?: (part: P) => void;
  cleanup?: (failures: string[]) => Promise<void>;
}): Promise<{ partSeconds: Partial<Record<P, number>>; skipped: { part: string; reason: string }[]; failures: string[] }> {
  const failures: string[] = [];
  const skipped: { part: string; reason: string }[] = [];
  let partSeconds: Partial<Record<P, number>> = {};
  try {
    partSeconds = await runParts(o.parts, o.run, { skipped, failures, ...(o.after ? { after: o.after } : {}) });
  } finally {
    await o.cleanup?.(failures);
    if (!o.keep) await rm(o.work.path, { recursive: true, force: true });
  }
  return { partSeconds, skipped, failures };
}

/**
 * The end of a parts benchmark: failed checks become failures, skips and failures are printed, and
 * the results document (header, then `body`, then the lists) is written. Returns the exit code.
 */
export async function finishParts(o: {
  repoRoot: string;
  benchmark: string;
  issue: number;
  startedAt: Date;
  env: object;
  checks: { ok: boolean; what: string; detail: string }[];
  skipped: { part: string; reason: string }[];
  failures: string[];
  body: Record<string, unknown>;
}): Promise<number> {
  const { writeResults, fileStamp } = await import('./report.js');
  for (const c of o.checks) if (!c.ok) o.failures.push(`check failed: ${c.what}: ${c.detail}`);
  for (const s of o.skipped) process.stdout.write(`\nskipped ${s.part}: ${s.reason}\n`);
  for (const f of o.failures) process.stdout.write(`\nFAILURE: ${f}\n`);
  const exitCode = o.failures.length === 0 ? 0 : 1;
  const doc = { ...resultHeader(o.benchmark, o.issue, o.startedAt, exitCode === 0, o.env), ...o.body, skipped: o.skipped, failures: o.failures };
  const file = await writeResults(path.join(o.repoRoot, 'bench', 'results'), fileStamp(o.startedAt), doc, o.benchmark);
  process.stdout.write(`\nresults: ${file}\n`);
  return exitCode;
}
