/** The timed part: rounds of make then extract, alternating tools, each output verified. */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { sha256File } from './inputs.js';
import { runTimed } from './proc.js';
import type { StoreRecord } from './report.js';
import type { RunRecord } from './stats.js';
import type { Op, Tool, ToolName } from './tools.js';
import { storeStats } from './workdir.js';

/** An input ready to be measured: a file in the work dir and its digest. */
export interface PreparedInput {
  name: string;
  file: string;
  bytes: number;
  sha256: string;
}

/** Did an extracted file equal its input? */
export interface VerifyRecord {
  input: string;
  round: number;
  tool: ToolName;
  ok: boolean;
  sha256: string;
}

/** Everything measured for one input. */
export interface InputMeasurement {
  runs: RunRecord[];
  verifications: VerifyRecord[];
  stores: StoreRecord[];
}

/** Paths one tool uses in one round; a fresh directory per round, so every make starts empty. */
interface Cell {
  tool: Tool;
  store: string;
  index: string;
  output: string;
}

/** Progress lines go to stderr; stdout is kept for the table. */
function logRun(r: RunRecord, bytes: number, rounds: number): void {
  const what = `${r.input} round ${r.round}/${rounds} ${r.op.padEnd(7)} ${r.tool.padEnd(6)}`;
  if (!r.ok) {
    process.stderr.write(`${what}  FAILED: ${r.error ?? ''}\n`);
    return;
  }
  const mbps = (bytes / 1e6 / r.seconds).toFixed(1);
  const rss = r.peakRssKiB === null ? '?' : ((r.peakRssKiB * 1024) / 1e6).toFixed(0);
  process.stderr.write(`${what}  ${r.seconds.toFixed(3)} s  ${mbps} MB/s  peak RSS ${rss} MB\n`);
}

async function timeOne(input: PreparedInput, round: number, op: Op, cell: Cell): Promise<RunRecord> {
  const args = op === 'make' ? cell.tool.makeArgs(cell.store, cell.index, input.file) : cell.tool.extractArgs(cell.store, cell.index, cell.output);
  const run = await runTimed(cell.tool.command, args);
  return { input: input.name, round, tool: cell.tool.name, op, ...run };
}

/**
 * One round: every tool's make (A then B), then every tool's extract from its own store, then the
 * checks. Running the same operation back to back keeps machine drift out of the comparison, and
 * hashing happens after the timed steps so it cannot disturb them.
 */
async function runRound(input: PreparedInput, round: number, rounds: number, tools: readonly Tool[], dir: string): Promise<InputMeasurement> {
  const cells: Cell[] = [];
  for (const tool of tools) {
    const cellDir = path.join(dir, `round${round}-${tool.name}`);
    await mkdir(cellDir, { recursive: true });
    cells.push({ tool, store: path.join(cellDir, 'store'), index: path.join(cellDir, 'index.caibx'), output: path.join(cellDir, 'extracted') });
  }
  const out: InputMeasurement = { runs: [], verifications: [], stores: [] };
  const madeOk = new Set<Cell>();
  for (const cell of cells) {
    const r = await timeOne(input, round, 'make', cell);
    logRun(r, input.bytes, rounds);
    out.runs.push(r);
    if (r.ok) madeOk.add(cell);
  }
  const extractedOk: Cell[] = [];
  for (const cell of cells.filter((c) => madeOk.has(c))) {
    const r = await timeOne(input, round, 'extract', cell);
    logRun(r, input.bytes, rounds);
    out.runs.push(r);
    if (r.ok) extractedOk.push(cell);
  }
  for (const cell of extractedOk) {
    const sha256 = await sha256File(cell.output);
    const ok = sha256 === input.sha256;
    if (!ok) process.stderr.write(`${input.name} round ${round} ${cell.tool.name}: extracted file differs from the input (sha256 ${sha256})\n`);
    out.verifications.push({ input: input.name, round, tool: cell.tool.name, ok, sha256 });
  }
  for (const cell of madeOk) {
    out.stores.push({ input: input.name, tool: cell.tool.name, round, stats: await storeStats(cell.store) });
  }
  return out;
}

/** All rounds for one input, in `dir` (stores are deleted only by the caller, after the last round). */
export async function measureInput(input: PreparedInput, rounds: number, tools: readonly Tool[], dir: string): Promise<InputMeasurement> {
  const all: InputMeasurement = { runs: [], verifications: [], stores: [] };
  for (let round = 1; round <= rounds; round++) {
    const r = await runRound(input, round, rounds, tools, dir);
    all.runs.push(...r.runs);
    all.verifications.push(...r.verifications);
    all.stores.push(...r.stores);
  }
  return all;
}

/**
 * One untimed make + extract per tool on a small input: loads each tool's binaries and libraries
 * into the page cache so the first timed run is not penalized, and proves the tools work before
 * we spend minutes timing them. Returns its runs (their times are mostly start-up cost) and the
 * problems found (empty when all is well).
 */
export async function warmUp(input: PreparedInput, tools: readonly Tool[], dir: string): Promise<{ runs: RunRecord[]; problems: string[] }> {
  const m = await runRound(input, 1, 1, tools, dir);
  await rm(dir, { recursive: true, force: true });
  const problems = m.runs.filter((r) => !r.ok).map((r) => `warm-up ${r.tool} ${r.op} failed: ${r.error ?? ''}`);
  for (const v of m.verifications) if (!v.ok) problems.push(`warm-up ${v.tool}: extracted file differs from the input`);
  return { runs: m.runs, problems };
}
