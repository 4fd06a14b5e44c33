/** Command-line flags of the convert benchmark (bench/convert.ts), parsed with node:util parseArgs. */
import { parseNameList, parseRuns, strictArgs } from './options.js';

/** The parts of the convert benchmark, in the order they run. */
export const PART_NAMES = ['speed', 'dedup', 'index'] as const;
/** One of PART_NAMES. */
export type PartName = (typeof PART_NAMES)[number];

/** Resolved options; defaults live in parseConvertArgs. */
export interface ConvertBenchOptions {
  /** Timed repetitions per command (speed); index loads use max(5, runs). */
  runs: number;
  /** Parts to run, always in PART_NAMES order. */
  parts: PartName[];
  /** Base directory for the work dir; undefined picks /dev/shm or os.tmpdir(). */
  dir: string | undefined;
  /** Keep the work dir instead of deleting it. */
  keep: boolean;
  help: boolean;
}

/** Usage text printed by --help and after a flag error. */
export const CONVERT_USAGE = `usage: node dist/bench/convert.js [options]      (after npm run build)

Benchmarks bootfs convert on the Debian rootfs fixtures and writes
bench/results/convert-<date>.json (and convert-latest.json):

  speed   bootfs convert dir:ROOTFS vs casync make x.caidx ROOTFS (fresh store each
          run, alternating, medians), plus bootfs convert oci:LAYOUT:v1 (umoci, gzip)
  dedup   v1 then v2 into one store: bootfs new stored bytes vs casync store growth
          vs the OCI diff layer umoci writes for v1 -> v2
  index   bytes per entry of the rootfs index; a synthetic 100k-entry index: load
          time and in-memory bytes per entry in a fresh process

options:
  --runs N           timed repetitions per command (default 3; index loads: max(5, N))
  --parts LIST       comma-separated subset of speed,dedup,index (default all)
  --dir DIR          create the work dir inside DIR (default /dev/shm when it has room,
                     else the OS temp dir)
  --keep             keep the work dir (rootfs copies, OCI layout, stores, indexes)
  --help             this text

exit status: 0 when every run succeeded and every check passed (even if a target is
missed: this is a measurement), 1 when a run or a check failed, 2 for bad usage or a
missing tool.`;

function parseParts(text: string): PartName[] {
  return parseNameList('--parts', text, PART_NAMES, 'part');
}

/** Turn argv (without node and script) into ConvertBenchOptions; throws BenchUsageError. */
export function parseConvertArgs(argv: string[]): ConvertBenchOptions {
  const values = strictArgs(argv, {
    runs: { type: 'string', default: '3' },
    parts: { type: 'string', default: PART_NAMES.join(',') },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  return { runs: parseRuns(values.runs), parts: parseParts(values.parts), dir: values.dir, keep: values.keep, help: values.help };
}
