/**
 * Benchmark for issue 4 (see bench/README.md, "mount benchmark"): `bootfs mount` reading the
 * Debian rootfs cold and warm against `casync mount`, sequential and random reads of a big file
 * with a warm cache, N mounts sharing one cache, and mounting a 100k-entry index. Prints one table
 * per part, writes bench/results/mount-*.json.
 */
import { existsSync } from 'node:fs';
import { cleanupOnSignal, describeEnvironment, findRepoRoot, finishParts, runBenchMain, runPartsInWorkDir, SetupError, bootfsBinIn } from './common.js';
import type { CheckRecord } from './convert-shared.js';
import { type Mount100kResult, mount100kTable, runMount100k } from './mount-100k.js';
import { type CatResult, catTable, runCat } from './mount-cat.js';
import { type FileResult, fileTable, runFilePart } from './mount-file.js';
import { type MountBenchOptions, type MountPartName, MOUNT_USAGE, parseMountArgs } from './mount-options.js';
import { MountRegistry, mountPoints } from './mount-proc.js';
import { type ProcsResult, procsTable, runProcs } from './mount-procs.js';
import { MountImages, MOUNT_TARGETS, type MountContext, type MountTools } from './mount-shared.js';
import { parseOrExit } from './options.js';
import { toolVersion, which } from './tools.js';
import { createWorkDir } from './workdir.js';

/** External tools each part needs (node and bootfs always). */
const PART_TOOLS: Record<MountPartName, readonly ('casync' | 'python3')[]> = {
  cat: ['casync'],
  seq: ['casync'],
  random: ['casync', 'python3'],
  procs: [],
  mount100k: [],
};

function findTools(repoRoot: string, parts: readonly MountPartName[]): MountTools {
  const bootfsBin = bootfsBinIn(repoRoot);
  if (!existsSync(bootfsBin)) throw new SetupError(`${bootfsBin} is missing: run npm run build first`);
  if (!existsSync('/dev/fuse')) throw new SetupError('/dev/fuse is missing: FUSE mounts need it (modprobe fuse, or run the container with --device /dev/fuse)');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new SetupError('the mount benchmark mounts FUSE file systems: run it as root');
  const found = { casync: which('casync'), python3: which('python3') };
  for (const name of new Set(parts.flatMap((p) => PART_TOOLS[p]))) {
    if (!found[name]) throw new SetupError(`${name} is not on PATH (needed by --parts ${parts.join(',')}): run scripts/setup`);
  }
  for (const name of ['dd', 'find', 'xargs', 'diff', 'cmp', 'umount']) if (!which(name)) throw new SetupError(`${name} is not on PATH`);
  return { node: process.execPath, bootfsBin, casync: found.casync ?? 'casync', python3: found.python3 ?? 'python3' };
}

/** Room the work dir needs: stores, caches and the big file in its three forms (source, store, cache) plus casync's store. */
function neededBytes(opts: MountBenchOptions): number {
  const has = (p: MountPartName): boolean => opts.parts.includes(p);
  let n = 64e6;
  if (has('cat') || has('procs')) n += 120e6; // bootfs + casync stores of the rootfs (~50 MB each)
  if (has('cat')) n += opts.runs * 60e6; // one full cache per round
  if (has('procs')) n += opts.runs * 2 * 15e6; // two boot-set caches per round
  if (has('seq') || has('random')) n += 4.2 * opts.seqSizeBytes;
  return Math.ceil(n);
}

interface PartResults {
  cat?: CatResult;
  seq?: FileResult;
  random?: FileResult;
  procs?: ProcsResult;
  mount100k?: Mount100kResult;
}

function printPart(part: MountPartName, r: PartResults, opts: MountBenchOptions, tmpfs: boolean): void {
  const runs = `median of ${opts.runs}`;
  let title = '';
  let body = '';
  if (part === 'cat' && r.cat) {
    title = `cat: every file of the Debian rootfs (${r.cat.files} files, ${(r.cat.fileBytes / 1e6).toFixed(1)} MB), ${runs}`;
    body = catTable(r.cat);
  } else if ((part === 'seq' || part === 'random') && r[part]) {
    const f = r[part]!;
    title =
      part === 'seq'
        ? `seq: dd bs=1M of a ${(f.file.bytes / 1e6).toFixed(0)} MB random file, warm cache, fresh mount, ${runs}`
        : `random: 4 KiB preads at random aligned offsets for ${opts.randomSeconds} s, same file, warm cache, fresh mount, ${runs}`;
    body = fileTable(f, tmpfs);
  } else if (part === 'procs' && r.procs) {
    title = `procs: ${r.procs.procs} mounts sharing one fresh cache read the same boot set at once`;
    body = procsTable(r.procs);
  } else if (part === 'mount100k' && r.mount100k) {
    title = `mount100k: bootfs mount of a synthetic ${r.mount100k.index.entries}-entry index, ${runs}`;
    body = mount100kTable(r.mount100k);
  }
  if (title !== '') process.stdout.write(`\n${title}\n\n${body}\n`);
}

async function main(argv: string[]): Promise<number> {
  const opts = parseOrExit(argv, parseMountArgs, MOUNT_USAGE);
  if (typeof opts === 'number') return opts;
  const startedAt = new Date();
  const repoRoot = findRepoRoot();
  const tools = findTools(repoRoot, opts.parts);
  const env = await describeEnvironment(repoRoot, tools.casync);
  const versions = { python3Version: opts.parts.includes('random') ? await toolVersion(tools.python3) : null, ddVersion: await toolVersion('dd') };
  const work = await createWorkDir(opts.dir, neededBytes(opts));
  process.stderr.write(`work dir: ${work.path} (${work.note})\n`);
  const mounts = new MountRegistry(tools.node, tools.bootfsBin, tools.casync);
  // Registered before cleanupOnSignal's handler, so it runs first: nothing may be mounted under the
  // work dir when that handler deletes it.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => mounts.unmountAllSync(work.path));
  cleanupOnSignal(work, opts.keep);

  const ctx: MountContext = { opts, work, tools, repoRoot, mounts, images: new MountImages({ opts, tools, repoRoot, base: work.path }) };
  const results: PartResults = {};
  const { partSeconds, skipped, failures } = await runPartsInWorkDir({
    parts: opts.parts,
    work,
    keep: opts.keep,
    run: async (part) => {
      if (part === 'cat') results.cat = await runCat(ctx);
      else if (part === 'seq' || part === 'random') results[part] = await runFilePart(ctx, part);
      else if (part === 'procs') results.procs = await runProcs(ctx);
      else results.mount100k = await runMount100k(ctx);
    },
    after: (part) => printPart(part, results, opts, work.tmpfs),
    cleanup: async (failures) => {
      failures.push(...(await mounts.stopAll()));
      // Whatever still hangs under the work dir (it should be nothing) must go before rm walks into it.
      const left = mountPoints().filter((p) => p.startsWith(`${work.path}/`));
      if (left.length > 0) {
        failures.push(`still mounted at the end: ${left.join(', ')}`);
        mounts.unmountAllSync(work.path);
      }
    },
  });

  return finishParts({
    repoRoot,
    benchmark: 'mount',
    issue: 4,
    startedAt,
    env,
    checks: Object.values(results).flatMap((r: { checks: CheckRecord[] }) => r.checks),
    skipped,
    failures,
    body: {
      ...versions,
      tools,
      parameters: {
        runs: opts.runs,
        parts: opts.parts,
        seqSizeBytes: opts.seqSizeBytes,
        randomSeconds: opts.randomSeconds,
        procs: opts.procs,
        order: 'cat: odd rounds bootfs cold, bootfs warm, casync; even rounds casync first. seq/random: odd rounds bootfs, casync, direct; even casync first. procs: solo then shared, flipped in even rounds. Every timed read is on a new mount process.',
        bootfsMountDefaults: 'bootfs mount with its default --memory and --readahead',
        workDir: { ...work, kept: opts.keep },
        ci: process.env.CI === 'true',
      },
      targets: MOUNT_TARGETS,
      partSeconds,
      parts: results,
    },
  });
}

await runBenchMain(main);
