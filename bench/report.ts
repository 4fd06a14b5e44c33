/** Human table and JSON file for the benchmark results. */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Comparison } from './stats.js';
import type { StoreStats } from './workdir.js';
import type { ToolName } from './tools.js';

/** `v` with `digits` decimals, or 'n/a'. */
export const fixed = (v: number | null, digits: number): string => (v === null ? 'n/a' : v.toFixed(digits));

/** Render rows as aligned columns: the first `leftColumns` left-aligned, the rest right-aligned. */
export function formatColumns(header: string[], rows: string[][], leftColumns = 2): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r.map((cell, i) => (i < leftColumns ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

function verdict(c: Comparison): string {
  if (c.pass === null) return 'n/a';
  if (c.pass) return 'pass';
  const why = [c.throughputPass ? '' : 'speed', c.rssPass ? '' : 'rss'].filter((s) => s !== '');
  return `FAIL (${why.join('+')})`;
}

/** The main table: one row per input and operation. */
export function comparisonTable(comparisons: readonly Comparison[]): string {
  const header = ['input', 'op', 'bootfs MB/s', 'casync MB/s', 'ratio', 'target', 'result', 'bootfs RSS MB', 'casync RSS MB'];
  const rows = comparisons.map((c) => [
    c.input,
    c.op,
    fixed(c.bootfs.mbps, 1),
    fixed(c.casync.mbps, 1),
    c.ratio === null ? 'n/a' : `${c.ratio.toFixed(2)}x`,
    `>=${c.targetRatio.toFixed(1)}x, <${c.targetPeakRssMB}MB`,
    verdict(c),
    fixed(c.bootfs.peakRssMB, 0),
    fixed(c.casync.peakRssMB, 0),
  ]);
  return formatColumns(header, rows);
}

/** Stores made for one input by one tool, one entry per round. */
export interface StoreRecord {
  input: string;
  tool: ToolName;
  round: number;
  stats: StoreStats;
}

/** Informational table: chunk count and stored size per input and tool (first round's store). */
export function storeTable(stores: readonly StoreRecord[], inputBytes: ReadonlyMap<string, number>): string {
  const firsts = stores.filter((s) => s.round === 1);
  const rows = firsts.map((s) => {
    const bytes = inputBytes.get(s.input) ?? 0;
    return [s.input, s.tool, String(s.stats.chunks), fixed(s.stats.bytes / 1e6, 1), bytes ? `${((100 * s.stats.bytes) / bytes).toFixed(1)}%` : 'n/a'];
  });
  return formatColumns(['input', 'tool', 'chunks', 'stored MB', 'of input'], rows);
}

/** ISO time without characters that are awkward in file names (`:` and milliseconds). */
export function fileStamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
}

/** Write <name>-<stamp>.json and <name>-latest.json (name: make-extract, convert); returns the dated path. */
export async function writeResults(resultsDir: string, stamp: string, doc: unknown, name = 'make-extract'): Promise<string> {
  await mkdir(resultsDir, { recursive: true });
  const dated = path.join(resultsDir, `${name}-${stamp}.json`);
  await writeFile(dated, `${JSON.stringify(doc, null, 2)}\n`);
  await copyFile(dated, path.join(resultsDir, `${name}-latest.json`));
  return dated;
}
