/** Command-line flags of the boot benchmark (bench/boot.ts), parsed with node:util parseArgs. */
import { BenchUsageError, parseRuns, parseSize, strictArgs } from './options.js';

/** Resolved options; defaults live in parseBootArgs. */
export interface BootBenchOptions {
  /** Timed rounds; each round runs every cell once. Results are medians over rounds. */
  runs: number;
  /** Bytes of incompressible payload in the app image's second layer (never read by the app). */
  payloadBytes: number;
  /** The flag as given (recorded in the results). */
  payloadText: string;
  /** tc rate of the emulated link, both directions (tc syntax: 100mbit, 1gbit, 500kbit). */
  rate: string;
  /** Base directory for the work dir; undefined picks /dev/shm or os.tmpdir(). */
  dir: string | undefined;
  /** Keep the work dir (images, stores, registry, caches, logs) instead of deleting it. */
  keep: boolean;
  help: boolean;
}

/** Usage text printed by --help and after a flag error. */
export const BOOT_USAGE = `usage: node dist/bench/boot.js [options]      (after npm run build; npm run bench:boot -- …)

Measures issue 6: time to the first output line and to exit of an app image of
>= 500 MB whose start reads < 10 % of it, with a cold cache, over an emulated
slower link (a veth pair into a network namespace, tc tbf --rate both ways):

  original      podman pull of the app image from a docker-registry behind the
                link, then podman run (cold: image removed before every run)
  boot          podman pull of the converted boot image from the same registry,
                then podman run with /dev/fuse, CAP_SYS_ADMIN and a fresh node
                cache volume; chunks come from bootfs serve behind the same link.
                Judged variant: the base image is already on the node (steady
                state); also reported: the base is pulled over the link too
  boot warm     podman run again over the filled cache (image present)

Targets: original first output / boot first output >= 5; chunk bytes fetched
<= 1.3 x the app's read set rounded up to whole chunks. Writes
bench/results/boot-<date>.json (and boot-latest.json).

options:
  --runs N          timed rounds (default 3); medians are reported
  --payload SIZE    incompressible payload layer of the app image (default 500M;
                    K/M/G are binary: 100M = 100 MiB)
  --rate RATE       tc tbf rate of the link (default 100mbit)
  --dir DIR         create the work dir inside DIR (default /dev/shm when it has room,
                    else the OS temp dir)
  --keep            keep the work dir (layouts, stores, registry data, podman storage,
                    caches, server logs)
  --help            this text

Needs root, /dev/fuse, podman + runc, umoci, skopeo, ip + tc (iproute2), tar,
chroot, docker-registry (apt-get install docker-registry), the Debian rootfs
fixture with python3 (scripts/fixtures/debian-rootfs --v2), the base image
fixture (scripts/fixtures/base-image) and a built dist/.

exit status: 0 when every run and check succeeded (even if a target is missed:
this is a measurement), 1 when one failed, 2 for bad usage or a missing tool.`;

/** tc rate syntax this benchmark accepts: a number and a bit-rate unit. */
const RATE = /^\d+(?:\.\d+)?(?:bit|kbit|mbit|gbit)$/i;

/** Turn argv (without node and script) into BootBenchOptions; throws BenchUsageError. */
export function parseBootArgs(argv: string[]): BootBenchOptions {
  const values = strictArgs(argv, {
    runs: { type: 'string', default: '3' },
    payload: { type: 'string', default: '500M' },
    rate: { type: 'string', default: '100mbit' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  let payloadBytes: number;
  try {
    payloadBytes = parseSize(values.payload);
  } catch (err) {
    throw new BenchUsageError((err as Error).message.replace('--size', '--payload'));
  }
  // Below a megabyte the payload is lost in the rootfs and the comparison says nothing.
  if (payloadBytes < 1024 * 1024) throw new BenchUsageError(`--payload '${values.payload}' must be at least 1M`);
  if (!RATE.test(values.rate)) throw new BenchUsageError(`--rate '${values.rate}' is not a tc rate (examples: 100mbit, 1gbit, 20mbit)`);
  return {
    runs: parseRuns(values.runs),
    payloadBytes,
    payloadText: values.payload,
    rate: values.rate.toLowerCase(),
    dir: values.dir,
    keep: values.keep,
    help: values.help,
  };
}
