/** Command-line flags of the registry benchmark (bench/registry.ts), parsed with node:util parseArgs. */
import { BenchUsageError, parseNameList, parseRuns, parseSize, strictArgs } from './options.js';

/** The parts of the registry benchmark, in the order they run. */
export const REGISTRY_PART_NAMES = ['convert', 'fetch'] as const;
/** One of REGISTRY_PART_NAMES. */
export type RegistryPartName = (typeof REGISTRY_PART_NAMES)[number];

/** Resolved options; defaults live in parseRegistryArgs. */
export interface RegistryBenchOptions {
  /** Timed rounds per part; results are medians over rounds. */
  runs: number;
  /** Bytes of the random file the fetch part stores and extracts. */
  sizeBytes: number;
  /** Bytes of the incompressible payload layer added to the convert part's image (0 = no such layer). */
  payloadBytes: number;
  /** Parts to run, always in REGISTRY_PART_NAMES order. */
  parts: RegistryPartName[];
  /** Base directory for the work dir; undefined picks /dev/shm or os.tmpdir(). */
  dir: string | undefined;
  /** Keep the work dir instead of deleting it. */
  keep: boolean;
  help: boolean;
}

/** Usage text printed by --help and after a flag error. */
export const REGISTRY_USAGE = `usage: node dist/bench/registry.js [options]      (after npm run build; npm run bench:registry -- …)

Measures issue 7 against Debian's docker-registry on 127.0.0.1 (plain http, no
rate limit) and writes bench/results/registry-<date>.json (and registry-latest.json):

  convert   the Debian rootfs fixture as a one-layer OCI image (umoci; plus a
            --payload layer), pushed with skopeo: bootfs convert docker://… vs
            bootfs convert oci:LAYOUT:1 (fresh store each run, alternating order,
            medians); ratio registry s / oci s (info; lower is better). The two
            indexes must be identical except the source reference they record.
  fetch     a --size random file: bootfs make into an oci:// store (one-off fill
            cost, also vs make through bootfs serve --writable and into a local
            dir), then bootfs extract from oci:// vs from bootfs serve of the same
            chunks (alternating, medians): MB/s, chunks/s, ratio oci / serve (info).
            Every extracted file must equal the input.

options:
  --runs N          timed rounds per part (default 3); medians are reported
  --size SIZE       random file of the fetch part (default 256M; K/M/G are binary)
  --payload SIZE    extra incompressible layer of the convert part's image (default
                    0 = none; e.g. 100M)
  --parts LIST      comma-separated subset of ${REGISTRY_PART_NAMES.join(',')} (default all)
  --dir DIR         create the work dir inside DIR (default /dev/shm when it has room,
                    else the OS temp dir)
  --keep            keep the work dir (layout, registry storage, stores, indexes, logs)
  --help            this text

Needs docker-registry (apt-get install docker-registry), skopeo, umoci, tar, GNU
time, the Debian rootfs fixture (scripts/fixtures/debian-rootfs --print-env) and a
built dist/.

exit status: 0 when every run and check succeeded (nothing here has a target: the
ratios are information), 1 when a run, a server or a check failed, 2 for bad usage
or a missing tool.`;

/** parseSize with the flag's own name in the message. */
function sizeFlag(flag: string, text: string, allowZero: boolean): number {
  if (allowZero && /^\s*0+\s*[kmg]?(?:i?b)?\s*$/i.test(text)) return 0;
  try {
    return parseSize(text);
  } catch (err) {
    throw new BenchUsageError((err as Error).message.replace('--size', flag));
  }
}

/** Turn argv (without node and script) into RegistryBenchOptions; throws BenchUsageError. */
export function parseRegistryArgs(argv: string[]): RegistryBenchOptions {
  const values = strictArgs(argv, {
    runs: { type: 'string', default: '3' },
    size: { type: 'string', default: '256M' },
    payload: { type: 'string', default: '0' },
    parts: { type: 'string', default: REGISTRY_PART_NAMES.join(',') },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  const sizeBytes = sizeFlag('--size', values.size, false);
  // At least one whole chunk at the maximum chunk size, so chunks/s means something.
  if (sizeBytes < 256 * 1024) throw new BenchUsageError(`--size '${values.size}' must be at least 256K`);
  return {
    runs: parseRuns(values.runs),
    sizeBytes,
    payloadBytes: sizeFlag('--payload', values.payload, true),
    parts: parseNameList('--parts', values.parts, REGISTRY_PART_NAMES, 'part'),
    dir: values.dir,
    keep: values.keep,
    help: values.help,
  };
}
