/**
 * Benchmark for issue 6 (see bench/README.md, "boot benchmark"): time to the first output line and
 * to exit of an app image of >= 500 MB whose start reads < 10 % of it, cold, over an emulated
 * slower link — `podman pull` + `podman run` of the original from a registry against the converted
 * boot image (pulled from the same registry, its chunks fetched lazily from `bootfs serve` behind
 * the same link) — plus the bytes a cold boot fetched against the app's read set, and a warm boot.
 * Prints two tables, writes bench/results/boot-*.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { type BootBenchOptions, BOOT_USAGE, parseBootArgs } from './boot-options.js';
import { type BootTools, fixturePython, loadChunkSizes, locateFixtures, measureReadSet, prepareImages, type ChunkSizeMap, type PreparedImages, type ReadSet, APP_CMD, APP_LINE, CONTAINER_READAHEAD_KB, PAYLOAD_PATH } from './boot-images.js';
import { BenchLink, HOST_ADDR, NS_ADDR, writeRegistryConfig } from './boot-net.js';
import { BenchPodman } from './boot-podman.js';
import { BOOT_TARGETS, bytesTable, timingTable, verdicts } from './boot-report.js';
import { type BootRun, runRounds, summarizeCells } from './boot-runs.js';
import { cleanupOnSignal, describeEnvironment, findRepoRoot, finishParts, runBenchMain, runPart, SetupError, bootfsBinIn } from './common.js';
import type { CheckRecord } from './convert-shared.js';
import { mountPoints } from './mount-proc.js';
import { addCheck } from './mount-shared.js';
import { parseOrExit } from './options.js';
import { toolVersion, which } from './tools.js';
import { createWorkDir } from './workdir.js';

/** Debian's docker-registry package (distribution 2.x) installs the binary here. */
const REGISTRY_BIN = '/usr/bin/docker-registry';

function findTools(repoRoot: string): BootTools {
  const bootfsBin = bootfsBinIn(repoRoot);
  if (!existsSync(bootfsBin)) throw new SetupError(`${bootfsBin} is missing: run npm run build first`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new SetupError('the boot benchmark creates a network namespace and runs podman with /dev/fuse: run it as root');
  if (!existsSync('/dev/fuse')) throw new SetupError('/dev/fuse is missing: boot images mount FUSE file systems (modprobe fuse)');
  if (!existsSync(REGISTRY_BIN)) throw new SetupError(`${REGISTRY_BIN} is missing: apt-get install docker-registry (scripts/setup installs it)`);
  const containersConf = path.join(repoRoot, 'test', 'podman', 'containers.conf');
  if (!existsSync(containersConf)) throw new SetupError(`${containersConf} is missing (podman needs its runc and ulimit settings here)`);
  const found: Record<string, string | null> = {};
  for (const name of ['podman', 'runc', 'umoci', 'skopeo', 'ip', 'tc', 'tar', 'chroot', 'umount']) {
    found[name] = which(name);
    if (!found[name]) throw new SetupError(`${name} is not on PATH: run scripts/setup`);
  }
  return { node: process.execPath, bootfsBin, podman: found.podman!, umoci: found.umoci!, skopeo: found.skopeo!, registry: REGISTRY_BIN, containersConf };
}

/** Room in the work dir: the payload as source, tar, layer, chunks, registry blob, spool and pulled image; plus fixtures' copies. */
const neededBytes = (o: BootBenchOptions): number => Math.ceil(7 * o.payloadBytes + 1.5e9);

/** Lazily unmount whatever is still mounted under `dir` (podman's overlays, the read-set mount). */
function unmountUnder(dir: string): string[] {
  const left = mountPoints().filter((p) => p.startsWith(`${dir}/`));
  for (const mp of left.reverse()) spawnSync('umount', ['-l', mp]);
  return left;
}

async function main(argv: string[]): Promise<number> {
  const opts = parseOrExit(argv, parseBootArgs, BOOT_USAGE);
  if (typeof opts === 'number') return opts;
  const startedAt = new Date();
  const repoRoot = findRepoRoot();
  const tools = findTools(repoRoot);
  const env = await describeEnvironment(repoRoot, which('casync') ?? 'casync');
  const versions = {
    podmanVersion: await toolVersion(tools.podman),
    runcVersion: await toolVersion('runc'),
    skopeoVersion: await toolVersion(tools.skopeo),
    umociVersion: await toolVersion(tools.umoci),
    registryVersion: await toolVersion(tools.registry),
    tcVersion: await toolVersion('tc', ['-V']),
  };
  const work = await createWorkDir(opts.dir, neededBytes(opts));
  process.stderr.write(`work dir: ${work.path} (${work.note})\n`);
  const link = new BenchLink(opts.rate);
  const podman = new BenchPodman(work.path, tools.containersConf, tools.podman);
  // Registered before cleanupOnSignal's handler, so they run first: containers, images and mounts
  // must be gone (and the servers stopped) before that handler deletes the work dir.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      podman.cleanupSync();
      link.teardownSync();
      unmountUnder(work.path);
    });
  }
  cleanupOnSignal(work, opts.keep);

  const storeUrl = `http://${NS_ADDR}:8080/`;
  const failures: string[] = [];
  const skipped: { part: string; reason: string }[] = [];
  const checks: CheckRecord[] = [];
  const partSeconds: Record<string, number> = {};
  let images: PreparedImages | undefined;
  let sizes: ChunkSizeMap | undefined;
  let readSet: ReadSet | undefined;
  /** The same with the kernel readahead bootfs mount sets on the host (informational). */
  let readSetMountReadahead: ReadSet | undefined;
  let runs: BootRun[] = [];
  let qdisc: { host: string; ns: string } | undefined;
  let pythonVersion = 'unknown';
  let servers: { name: string; argv: string[]; log: string }[] = [];
  try {
    partSeconds.prepare = await runPart(
      'prepare',
      async () => {
        const fixtures = await locateFixtures(repoRoot);
        pythonVersion = await fixturePython(fixtures.rootfsDir);
        await podman.init();
        await link.create();
        const regDir = path.join(work.path, 'registry');
        const store = path.join(work.path, 'store');
        for (const d of [regDir, store]) await mkdir(d, { recursive: true });
        const registry = await writeRegistryConfig(path.join(regDir, 'config.yml'), path.join(regDir, 'data'));
        await link.startServer('docker-registry', [tools.registry, 'serve', path.join(regDir, 'config.yml')], path.join(regDir, 'log'), `http://${registry}`, '/v2/');
        await link.startServer('bootfs serve', [tools.node, tools.bootfsBin, 'serve', '--store', store, '--http', `${NS_ADDR}:8080`, '--log-level', 'warn'], path.join(work.path, 'serve.log'), storeUrl, 'healthz');
        servers = link.servers.map((s) => ({ name: s.name, argv: s.argv, log: s.log }));
        images = await prepareImages({ tools, workDir: work.path, payloadBytes: opts.payloadBytes, registry, storeUrl, fixtures });
        process.stderr.write(`images: original ${(images.original.layerBytes / 1e6).toFixed(1)} MB, boot ${(images.boot.layerBytes / 1e6).toFixed(1)} MB (own ${(images.boot.ownLayerBytes / 1e6).toFixed(1)} MB), base ${(images.base.layerBytes / 1e6).toFixed(1)} MB\n`);
        sizes = await loadChunkSizes(images.boot.index);
        const rs = { tools, workDir: work.path, index: images.boot.index, store: images.store, sizes };
        readSet = await measureReadSet({ ...rs, name: 'readset', readaheadKb: CONTAINER_READAHEAD_KB });
        readSetMountReadahead = await measureReadSet({ ...rs, name: 'readset-mount-readahead', readaheadKb: null });
        process.stderr.write(`read set: ${(readSet.readBytes / 1e6).toFixed(2)} MB read, ${readSet.touchedChunks} chunks = ${(readSet.touchedPlainBytes / 1e6).toFixed(2)} MB plain, ${(readSet.touchedStoredBytes / 1e6).toFixed(2)} MB stored (kernel readahead ${readSet.kernelReadaheadKb.measured} KiB; ${readSetMountReadahead.touchedChunks} chunks with bootfs mount's ${readSetMountReadahead.kernelReadaheadKb.measured} KiB)\n`);
        addCheck(checks, 'read set: the app ran in a chroot of the mount', readSet.stdout === `${APP_LINE}\n`, `printed ${JSON.stringify(readSet.stdout.slice(0, 200))}`);
        addCheck(checks, 'read set: the start reads < 10 % of the image', readSet.readFraction < BOOT_TARGETS.startReadFraction, `${(100 * readSet.readFraction).toFixed(2)} % of ${readSet.imageDataBytes} file bytes`);
        addCheck(checks, 'boot image starts with the base image\'s layers', images.boot.sharedWithBase === images.base.layers.length, `${images.boot.sharedWithBase} of the base's ${images.base.layers.length} layers in the boot image`);
        await link.shape();
        process.stderr.write(`link shaped: tbf rate ${opts.rate} on ${link.hostDev} (host ${HOST_ADDR}) and ${link.nsDev} (netns ${link.ns}, ${NS_ADDR})\n`);
      },
      skipped,
      failures,
    );
    if (images && sizes && link.shaped) {
      const ready = { images, sizes };
      partSeconds.boot = await runPart('boot', async () => {
        runs = await runRounds({ runs: opts.runs, workDir: work.path, podman, link, storeUrl, images: ready.images, sizes: ready.sizes, checks });
      }, skipped, failures);
    }
  } finally {
    if (link.shaped) qdisc = await link.qdiscStats().catch(() => undefined);
    podman.cleanupSync();
    failures.push(...(await link.stopServers()));
    link.teardownSync();
    const left = unmountUnder(work.path);
    if (left.length > 0) process.stderr.write(`note: lazily unmounted what podman left under the work dir: ${left.join(', ')}\n`);
    if (!opts.keep) await rm(work.path, { recursive: true, force: true });
  }

  const cells = summarizeCells(runs);
  const v = verdicts(cells, readSet);
  if (runs.length > 0 || readSet) {
    process.stdout.write(`\nboot: python3 prints one line and exits; payload ${opts.payloadText}, link tbf ${opts.rate}; median of ${opts.runs} round${opts.runs === 1 ? '' : 's'}; seconds from the start of podman pull (or run)\n\n${timingTable(cells, v)}\n`);
    process.stdout.write(`\nbytes: original ${opts.payloadText} payload; pull/run MB = bytes received over the link\n\n${bytesTable(images, readSet, readSetMountReadahead, cells, v)}\n`);
  }
  return finishParts({
    repoRoot,
    benchmark: 'boot',
    issue: 6,
    startedAt,
    env,
    checks,
    skipped,
    failures,
    body: {
      ...versions,
      pythonVersion,
      tools,
      parameters: {
        runs: opts.runs,
        payloadBytes: opts.payloadBytes,
        payload: opts.payloadText,
        rate: opts.rate,
        link: { netns: link.ns, hostDev: link.hostDev, nsDev: link.nsDev, hostAddr: HOST_ADDR, nsAddr: NS_ADDR, qdisc: `tbf rate ${opts.rate} burst 64kb latency 100ms, both ends` },
        app: { cmd: APP_CMD, payloadPath: `/${PAYLOAD_PATH}` },
        podman: { storage: 'own --root/--runroot/TMPDIR in the work dir (overlay)', containersConf: tools.containersConf },
        servers,
        order: 'odd rounds: original block (rmi; original-cold pull+run; original-warm run; rmi) then boot block (rmi boot+base; boot-cold-base pull+run, fresh cache; pull base untimed; rmi boot; boot-cold pull+run, fresh cache; boot-warm run over that cache); even rounds: boot block first',
        workDir: { ...work, kept: opts.keep },
        ci: process.env.CI === 'true',
      },
      targets: BOOT_TARGETS,
      partSeconds,
      images,
      readSet,
      readSetMountReadahead,
      cells,
      verdicts: v,
      runs,
      qdisc,
      checks,
    },
  });
}

await runBenchMain(main);
