/** Command-line flags of the mount benchmark (bench/mount.ts), parsed with node:util parseArgs. */
import { BenchUsageError, parseNameList, parseRuns, parseSize, strictArgs } from './options.js';

/** The parts of the mount benchmark, in the order they run. */
export const MOUNT_PART_NAMES = ['cat', 'seq', 'random', 'procs', 'mount100k'] as const;
/** One of MOUNT_PART_NAMES. */
export type MountPartName = (typeof MOUNT_PART_NAMES)[number];

/** Resolved options; defaults live in parseMountArgs. */
export interface MountBenchOptions {
  /** Timed rounds per part; results are medians over rounds. */
  runs: number;
  /** Parts to run, always in MOUNT_PART_NAMES order. */
  parts: MountPartName[];
  /** Bytes of the pseudo-random file read by the seq and random parts. */
  seqSizeBytes: number;
  /** Seconds each random-read pass runs. */
  randomSeconds: number;
  /** Concurrent mounts (and readers) in the procs part. */
  procs: number;
  /** Base directory for the work dir; undefined picks /dev/shm or os.tmpdir(). */
  dir: string | undefined;
  /** Keep the work dir instead of deleting it. */
  keep: boolean;
  help: boolean;
}

/** Usage text printed by --help and after a flag error. */
export const MOUNT_USAGE = `usage: node dist/bench/mount.js [options]      (after npm run build)

Measures bootfs mount (issue 4) and writes bench/results/mount-<date>.json (and
mount-latest.json):

  cat        cat every file of the Debian rootfs: bootfs cold (empty cache), bootfs
             warm (new mount over the filled cache) vs casync mount; target
             casync s / bootfs warm s >= 5
  seq        dd bs=1M of a --seq-size pseudo-random file, warm cache, fresh mount:
             MB/s, target >= 500 (casync mount and the file on tmpfs for reference)
  random     python3 os.pread of 4 KiB at random aligned offsets for
             --random-seconds on the same file, warm cache, fresh mount: reads/s
  procs      --procs mounts sharing one fresh cache read the same boot set at
             once: sum of their remoteBytes / remoteBytes of one mount alone,
             target <= 1.05
  mount100k  a synthetic 100k-entry index: spawn to a stat answered (target < 1 s),
             VmRSS after mount and after find traverses everything, find time

options:
  --runs N             timed rounds per part (default 3); medians are reported
  --parts LIST         comma-separated subset of ${MOUNT_PART_NAMES.join(',')} (default all)
  --seq-size SIZE      size of the seq/random file (default 1G; K/M/G are binary)
  --random-seconds S   duration of each random-read pass (default 5)
  --procs N            concurrent mounts in the procs part (default 8)
  --dir DIR            create the work dir inside DIR (default /dev/shm when it has room,
                       else the OS temp dir)
  --keep               keep the work dir (indexes, stores, caches, logs, stats files)
  --help               this text

Needs root, /dev/fuse, casync, python3, dd, the Debian rootfs fixture
(scripts/fixtures/debian-rootfs --print-env) and a built dist/.

exit status: 0 when every mount, read and check succeeded (even if a target is
missed: this is a measurement), 1 when one failed, 2 for bad usage or a missing tool.`;

function positiveNumber(flag: string, text: string, max: number, integer: boolean): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || n > max || (integer && !Number.isSafeInteger(n))) {
    throw new BenchUsageError(`${flag} '${text}' must be a positive ${integer ? 'integer' : 'number'} up to ${max}`);
  }
  return n;
}

/** Turn argv (without node and script) into MountBenchOptions; throws BenchUsageError. */
export function parseMountArgs(argv: string[]): MountBenchOptions {
  const values = strictArgs(argv, {
    runs: { type: 'string', default: '3' },
    parts: { type: 'string', default: MOUNT_PART_NAMES.join(',') },
    'seq-size': { type: 'string', default: '1G' },
    'random-seconds': { type: 'string', default: '5' },
    procs: { type: 'string', default: '8' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  let seqSizeBytes: number;
  try {
    seqSizeBytes = parseSize(values['seq-size']);
  } catch (err) {
    throw new BenchUsageError((err as Error).message.replace('--size', '--seq-size'));
  }
  // The random part picks 4 KiB-aligned offsets: it needs at least one whole block.
  if (seqSizeBytes < 4096) throw new BenchUsageError(`--seq-size '${values['seq-size']}' must be at least 4K`);
  return {
    runs: parseRuns(values.runs),
    parts: parseNameList('--parts', values.parts, MOUNT_PART_NAMES, 'part'),
    seqSizeBytes,
    randomSeconds: positiveNumber('--random-seconds', values['random-seconds'], 600, false),
    procs: positiveNumber('--procs', values.procs, 64, true),
    dir: values.dir,
    keep: values.keep,
    help: values.help,
  };
}
