/**
 * Benchmark for issue 7 (see bench/README.md, "registry benchmark"), against Debian's
 * docker-registry on 127.0.0.1: `bootfs convert` of the same image from the registry vs from an
 * `oci:` layout (overhead ratio), and chunk fetch throughput of `bootfs extract` from an `oci://`
 * store vs from `bootfs serve` of the same chunks, plus the one-off cost of filling each. Prints
 * one table per part, writes bench/results/registry-*.json.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { cleanupOnSignal, describeEnvironment, findRepoRoot, finishParts, runBenchMain, runPartsInWorkDir, SetupError, bootfsBinIn } from './common.js';
import { parseOrExit } from './options.js';
import { GNU_TIME } from './proc.js';
import { type ConvertPartResult, convertTable, runConvertPart } from './registry-convert.js';
import { type FetchPartResult, fetchTables, runFetchPart } from './registry-fetch.js';
import { parseRegistryArgs, type RegistryBenchOptions, type RegistryPartName, REGISTRY_USAGE } from './registry-options.js';
import { type BenchServer, ServerSet, startDockerRegistry } from './registry-servers.js';
import type { RegistryContext, RegistryTools } from './registry-shared.js';
import { CHUNK_SIZE, toolVersion, which } from './tools.js';
import { createWorkDir } from './workdir.js';

/** Debian's docker-registry package (distribution 2.x) installs the binary here. */
const REGISTRY_BIN = '/usr/bin/docker-registry';

function findTools(repoRoot: string, parts: readonly RegistryPartName[]): RegistryTools {
  const bootfsBin = bootfsBinIn(repoRoot);
  if (!existsSync(bootfsBin)) throw new SetupError(`${bootfsBin} is missing: run npm run build first`);
  const registry = which('docker-registry') ?? (existsSync(REGISTRY_BIN) ? REGISTRY_BIN : null);
  if (!registry) throw new SetupError('docker-registry is not installed: apt-get install docker-registry (scripts/setup installs it)');
  if (!existsSync(GNU_TIME)) throw new SetupError(`${GNU_TIME} (GNU time) is missing: apt-get install time`);
  const found: Record<string, string | null> = {};
  const needed = ['env', 'cp', ...(parts.includes('convert') ? ['skopeo', 'umoci', 'tar'] : [])];
  for (const name of needed) {
    found[name] = which(name);
    if (!found[name]) throw new SetupError(`${name} is not on PATH (needed by --parts ${parts.join(',')}): run scripts/setup`);
  }
  return { node: process.execPath, bootfsBin, registry, skopeo: found.skopeo ?? 'skopeo', umoci: found.umoci ?? 'umoci' };
}

/**
 * Room in the work dir, generously (incompressible data): convert — the layout (~50 MB + payload),
 * the bundle copy while building (~130 MB), payload source and tar, the registry's copy, spool and
 * store per run and source; fetch — the input, the registry's blobs, the local and writable stores
 * and two extracted files at a time.
 */
function neededBytes(o: RegistryBenchOptions): number {
  let n = 64e6;
  if (o.parts.includes('convert')) n += 400e6 + 4 * o.payloadBytes + o.runs * 2 * (200e6 + 2.1 * o.payloadBytes);
  if (o.parts.includes('fetch')) n += 7 * o.sizeBytes;
  return Math.ceil(n);
}

interface PartResults {
  convert?: ConvertPartResult;
  fetch?: FetchPartResult;
}

function printPart(part: RegistryPartName, r: PartResults, opts: RegistryBenchOptions): void {
  const runs = `median of ${opts.runs} round${opts.runs === 1 ? '' : 's'}`;
  if (part === 'convert' && r.convert) {
    const img = r.convert.image;
    const layers = img.payloadBytes > 0 ? `rootfs + ${(img.payloadBytes / 1e6).toFixed(0)} MB payload layer` : 'one layer';
    process.stdout.write(`\nconvert: Debian rootfs image (${layers}, ${(img.layerBytes / 1e6).toFixed(1)} MB gzip) from docker-registry vs oci: layout, ${runs}\n\n${convertTable(r.convert)}\n`);
  } else if (part === 'fetch' && r.fetch) {
    const f = r.fetch;
    const t = fetchTables(f);
    process.stdout.write(
      `\nfetch: bootfs extract of a ${(f.input.bytes / 1e6).toFixed(1)} MB random file (${f.chunks ?? '?'} chunks, ${((f.storedBytes ?? 0) / 1e6).toFixed(1)} MB stored) from oci:// vs bootfs serve, ${runs}\n\n${t.extract}\n` +
        `\nfill: the same file stored once each way (one-off cost)\n\n${t.fill}\n`,
    );
  }
}

async function main(argv: string[]): Promise<number> {
  const opts = parseOrExit(argv, parseRegistryArgs, REGISTRY_USAGE);
  if (typeof opts === 'number') return opts;
  const startedAt = new Date();
  const repoRoot = findRepoRoot();
  const tools = findTools(repoRoot, opts.parts);
  const { casyncVersion: _casync, ...env } = await describeEnvironment(repoRoot, 'casync');
  const versions = {
    registryVersion: await toolVersion(tools.registry),
    skopeoVersion: opts.parts.includes('convert') ? await toolVersion(tools.skopeo) : null,
    umociVersion: opts.parts.includes('convert') ? await toolVersion(tools.umoci) : null,
  };
  const work = await createWorkDir(opts.dir, neededBytes(opts));
  process.stderr.write(`work dir: ${work.path} (${work.note})\n`);
  const servers = new ServerSet();
  // Registered before cleanupOnSignal's handler, so it runs first: no server may still write into
  // the work dir when that handler deletes it.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => servers.killAllSync());
  cleanupOnSignal(work, opts.keep);

  let registry: Promise<BenchServer> | undefined;
  const ctx: RegistryContext = {
    opts,
    work,
    tools,
    repoRoot,
    servers,
    registry: () => (registry ??= startDockerRegistry(servers, tools.registry, path.join(work.path, 'registry'))),
  };
  const results: PartResults = {};
  const { partSeconds, skipped, failures } = await runPartsInWorkDir({
    parts: opts.parts,
    work,
    keep: opts.keep,
    run: async (part) => {
      if (part === 'convert') results.convert = await runConvertPart(ctx);
      else results.fetch = await runFetchPart(ctx);
    },
    after: (part) => printPart(part, results, opts),
    cleanup: async (failures) => {
      for (const p of await servers.stopAll()) failures.push(`stopping servers: ${p}`);
    },
  });

  return finishParts({
    repoRoot,
    benchmark: 'registry',
    issue: 7,
    startedAt,
    env,
    checks: [...(results.convert?.checks ?? []), ...(results.fetch?.checks ?? [])],
    skipped,
    failures,
    body: {
      ...versions,
      tools,
      parameters: {
        runs: opts.runs,
        parts: opts.parts,
        sizeBytes: opts.sizeBytes,
        payloadBytes: opts.payloadBytes,
        chunkSize: CHUNK_SIZE,
        order: 'convert: a warm-up of both sources, then each round registry then oci (odd rounds) or oci then registry (even); fetch: fills once (oci, serve --writable, local), then each round extract oci then serve (odd) or serve then oci (even)',
        registry: 'Debian docker-registry on 127.0.0.1, plain http, filesystem storage in the work dir, inmemory blob descriptor cache, log level warn, no access log, no rate limit',
        clients: 'the bootfs CLI with its defaults (concurrency, retries); convert with --tls-verify=false for docker://; make with BOOTFS_STORE_TOKEN for serve --writable',
        workDir: { ...work, kept: opts.keep },
        ci: process.env.CI === 'true',
      },
      servers: servers.started,
      partSeconds,
      parts: results,
    },
  });
}

await runBenchMain(main);
