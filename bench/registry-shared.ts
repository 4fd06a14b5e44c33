/**
 * What the parts of the registry benchmark share: the tools, the context each part gets, timed
 * `bootfs` runs with their `--json` summary, checks and a few formatting helpers.
 */
import type { CheckRecord } from './convert-shared.js';
import { runTimedCapture, type TimedRun } from './proc.js';
import type { RegistryBenchOptions } from './registry-options.js';
import type { BenchServer, ServerSet } from './registry-servers.js';
import type { WorkDir } from './workdir.js';

export type { CheckRecord };

/** Absolute paths of everything the benchmark runs. */
export interface RegistryTools {
  node: string;
  bootfsBin: string;
  registry: string;
  skopeo: string;
  umoci: string;
}

/** State and services every part gets. */
export interface RegistryContext {
  opts: RegistryBenchOptions;
  work: WorkDir;
  tools: RegistryTools;
  repoRoot: string;
  servers: ServerSet;
  /** The one docker-registry of the run, started on first use. */
  registry(): Promise<BenchServer>;
}

/** One timed `bootfs` run. */
export interface BootfsRun extends TimedRun {
  /** 0 = warm-up or one-off (untimed rounds are not in the medians). */
  round: number;
  cell: string;
  /** The command's `--json` summary (a run whose stdout is not JSON is failed). */
  json?: Record<string, unknown>;
}

/**
 * Run `node bootfs ARGS` under GNU time; `env` entries are set for the child only (through
 * env(1), so the token never lands in this process's environment and other children).
 */
export async function runBootfs(tools: RegistryTools, args: string[], round: number, cell: string, env: Record<string, string> = {}): Promise<BootfsRun> {
  const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const argv = [tools.node, tools.bootfsBin, ...args];
  const r = pairs.length > 0 ? await runTimedCapture('env', [...pairs, ...argv]) : await runTimedCapture(argv[0]!, argv.slice(1));
  const run: BootfsRun = { round, cell, ...r.run };
  if (run.ok) {
    try {
      run.json = JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      run.ok = false;
      run.error = `printed no JSON on stdout: ${r.stdout.slice(0, 200)}`;
    }
  }
  return run;
}

/** A number field of a run's JSON summary, or null. */
export function jsonNumber(run: BootfsRun | undefined, key: string): number | null {
  const v = run?.json?.[key];
  return typeof v === 'number' ? v : null;
}

/** Progress line for a run on stderr: what, seconds, MB/s of `bytes`, peak RSS. Round 0 is called `zero`. */
export function logRun(part: string, r: BootfsRun, bytes: number | null, rounds: number, zero = 'once'): void {
  const what = `${part} ${r.round === 0 ? zero : `round ${r.round}/${rounds}`} ${r.cell.padEnd(14)}`;
  if (!r.ok) {
    process.stderr.write(`${what}  FAILED: ${r.error ?? ''}\n`);
    return;
  }
  const rate = bytes ? `  ${(bytes / 1e6 / r.seconds).toFixed(1)} MB/s` : '';
  const rss = r.peakRssKiB === null ? '?' : ((r.peakRssKiB * 1024) / 1e6).toFixed(0);
  process.stderr.write(`${what}  ${r.seconds.toFixed(3)} s${rate}  peak RSS ${rss} MB\n`);
}

/** Record a check (and say so on stderr when it failed). */
export function addCheck(checks: CheckRecord[], what: string, ok: boolean, detail: string): void {
  checks.push({ what, ok, detail });
  if (!ok) process.stderr.write(`check failed: ${what}: ${detail}\n`);
}

/** `1.23x`, or 'n/a'. */
export const times = (v: number | null): string => (v === null || !Number.isFinite(v) ? 'n/a' : `${v.toFixed(2)}x`);

/** a ÷ b when both are known and b > 0. */
export const ratioOf = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? a / b : null);

/** Order of a two-cell round: as given in odd rounds, reversed in even ones (drift hits both alike). */
export function roundOrder<T>(cells: readonly T[], round: number): T[] {
  return round % 2 === 1 ? [...cells] : [...cells].reverse();
}
