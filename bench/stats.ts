/** Turning raw runs into medians, throughput, ratios and pass/fail against the targets. */
import type { TimedRun } from './proc.js';
import type { Op, ToolName } from './tools.js';

/** Targets from issue 2: throughput as a multiple of casync's, and a hard RSS ceiling for bootfs. */
export const TARGETS = {
  /** bootfs make MB/s ÷ casync make MB/s must be at least this. */
  make: 1.5,
  /** bootfs extract MB/s ÷ casync extract MB/s must be at least this. */
  extract: 1.0,
  /** bootfs peak RSS must stay below this many MB (1e6 bytes), whatever the input size. */
  peakRssMB: 300,
} as const;

/** A timed run and where it belongs. */
export interface RunRecord extends TimedRun {
  input: string;
  round: number;
  tool: ToolName;
  op: Op;
}

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** One tool's result for one input and operation, over its successful runs. */
export interface ToolSummary {
  okRuns: number;
  failedRuns: number;
  medianSeconds: number | null;
  minSeconds: number | null;
  maxSeconds: number | null;
  /** input bytes / 1e6 / median seconds */
  mbps: number | null;
  /** Maximum over runs. */
  peakRssKiB: number | null;
  /** peakRssKiB × 1024 / 1e6, the unit of TARGETS.peakRssMB. */
  peakRssMB: number | null;
}

/** Summarize one tool's runs of one operation on an input of `bytes`. */
export function summarize(runs: readonly TimedRun[], bytes: number): ToolSummary {
  const ok = runs.filter((r) => r.ok);
  const secs = ok.map((r) => r.seconds);
  const rss = ok.map((r) => r.peakRssKiB).filter((v): v is number => v !== null);
  const med = secs.length ? median(secs) : null;
  const peak = rss.length ? Math.max(...rss) : null;
  return {
    okRuns: ok.length,
    failedRuns: runs.length - ok.length,
    medianSeconds: med,
    minSeconds: secs.length ? Math.min(...secs) : null,
    maxSeconds: secs.length ? Math.max(...secs) : null,
    mbps: med ? bytes / 1e6 / med : null,
    peakRssKiB: peak,
    peakRssMB: peak === null ? null : (peak * 1024) / 1e6,
  };
}

/** bootfs vs casync for one input and operation. */
export interface Comparison {
  input: string;
  op: Op;
  bytes: number;
  bootfs: ToolSummary;
  casync: ToolSummary;
  /** bootfs MB/s ÷ casync MB/s */
  ratio: number | null;
  targetRatio: number;
  targetPeakRssMB: number;
  throughputPass: boolean | null;
  rssPass: boolean | null;
  /** Both targets met; null when a tool had no successful run. */
  pass: boolean | null;
}

/** Compare the two tools' runs of `op` on one input against the targets. */
export function compare(input: string, op: Op, bytes: number, runs: readonly RunRecord[]): Comparison {
  const mine = runs.filter((r) => r.input === input && r.op === op);
  const bootfs = summarize(mine.filter((r) => r.tool === 'bootfs'), bytes);
  const casync = summarize(mine.filter((r) => r.tool === 'casync'), bytes);
  const ratio = bootfs.mbps !== null && casync.mbps !== null ? bootfs.mbps / casync.mbps : null;
  const targetRatio = TARGETS[op];
  const throughputPass = ratio === null ? null : ratio >= targetRatio;
  const rssPass = bootfs.peakRssMB === null ? null : bootfs.peakRssMB < TARGETS.peakRssMB;
  const pass = throughputPass === null || rssPass === null ? null : throughputPass && rssPass;
  return { input, op, bytes, bootfs, casync, ratio, targetRatio, targetPeakRssMB: TARGETS.peakRssMB, throughputPass, rssPass, pass };
}
