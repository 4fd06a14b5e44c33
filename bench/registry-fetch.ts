/**
 * Part `fetch` of the registry benchmark: a --size file of AES-CTR keystream (incompressible, no
 * duplicate chunks) stored three ways, each timed once — `bootfs make` into an `oci://` store on
 * the loopback docker-registry, through `bootfs serve --writable` (HTTP PUT) into an empty
 * directory, and into a local directory — then, in rounds with the order flipped every round,
 * `bootfs extract` of the same index from the `oci://` store against `bootfs serve` of the local
 * directory (the same chunks). Every extracted file must equal the input.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RANDOM_RECIPE, sha256File, writeRandomFile } from './inputs.js';
import { fixed, formatColumns } from './report.js';
import { startBootfsServe } from './registry-servers.js';
import { addCheck, type BootfsRun, type CheckRecord, jsonNumber, logRun, ratioOf, type RegistryContext, roundOrder, runBootfs, times } from './registry-shared.js';
import { summarize, type ToolSummary } from './stats.js';
import { CHUNK_SIZE } from './tools.js';
import { chunkStoreStats } from './workdir.js';

/** The two timed extracts; odd rounds run them in this order. */
const CELLS = ['oci', 'serve'] as const;
type Cell = (typeof CELLS)[number];
/** The one-off fills, in the order they run. */
const FILLS = ['oci', 'serve-writable', 'local'] as const;
type Fill = (typeof FILLS)[number];
/** Repository of the chunk store in the registry (the convert part's image is in bench/app). */
const REPO = 'bench/chunks';

/** A summary over rounds plus chunks per second. */
export type FetchSummary = ToolSummary & { chunksPerSecond: number | null };

/** One one-off fill. */
export interface FillResult {
  fill: Fill;
  store: string;
  run: BootfsRun | null;
  mbps: number | null;
  chunksPerSecond: number | null;
  /** Why it did not run. */
  skipped?: string;
}

/** The part's results. */
export interface FetchPartResult {
  input: { bytes: number; sha256: string; recipe: string };
  /** Chunks in the index (all distinct: random data). */
  chunks: number | null;
  /** Stored (zstd) bytes of those chunks. */
  storedBytes: number | null;
  ociStore: string;
  serveUrl: string | null;
  fills: FillResult[];
  /** oci make s ÷ make through bootfs serve --writable s (one run each; info). */
  fillRatio: number | null;
  runs: BootfsRun[];
  oci: FetchSummary;
  serve: FetchSummary;
  /** oci MB/s ÷ serve MB/s (medians; info). */
  ratio: number | null;
  checks: CheckRecord[];
}

const makeArgs = (store: string, index: string, input: string): string[] => ['make', '--store', store, '--chunk-size', CHUNK_SIZE, '--json', '--no-progress', index, input];
const extractArgs = (store: string, index: string, out: string): string[] => ['extract', '--store', store, '--json', '--no-progress', index, out];

function fillResult(fill: Fill, store: string, run: BootfsRun, bytes: number): FillResult {
  const chunks = jsonNumber(run, 'chunks');
  return { fill, store, run, mbps: run.ok ? bytes / 1e6 / run.seconds : null, chunksPerSecond: run.ok && chunks !== null ? chunks / run.seconds : null };
}

/** The part. */
export async function runFetchPart(ctx: RegistryContext): Promise<FetchPartResult> {
  const { opts, tools } = ctx;
  const base = path.join(ctx.work.path, 'fetch');
  await mkdir(base, { recursive: true });
  const checks: CheckRecord[] = [];
  const input = path.join(base, 'input.bin');
  process.stderr.write(`writing ${(opts.sizeBytes / 1e6).toFixed(1)} MB of AES-CTR keystream to ${input}\n`);
  await writeRandomFile(input, opts.sizeBytes);
  const sha256 = await sha256File(input);
  const registry = await ctx.registry();
  const ociStore = `oci://${registry.host}/${REPO}`;
  const localStore = path.join(base, 'local-store');
  const index = (fill: Fill): string => path.join(base, `${fill}.caibx`);

  // One-off fills. oci first: it is the store measured; the other two are its references.
  const fills: FillResult[] = [];
  const oci = await runBootfs(tools, makeArgs(ociStore, index('oci'), input), 0, 'make oci://');
  logRun('fill', oci, opts.sizeBytes, opts.runs);
  fills.push(fillResult('oci', ociStore, oci, opts.sizeBytes));
  if (!oci.ok) throw new Error(`bootfs make into ${ociStore} failed: ${oci.error ?? ''}`);

  const writableDir = path.join(base, 'writable-store');
  const tokenFile = path.join(base, 'token');
  const token = randomBytes(16).toString('hex');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  let writable: FillResult;
  try {
    const server = await startBootfsServe(ctx.servers, tools.node, tools.bootfsBin, writableDir, path.join(base, 'serve-writable.log'), tokenFile);
    const url = `${server.url}/`;
    const run = await runBootfs(tools, makeArgs(url, index('serve-writable'), input), 0, 'make serve -w', { BOOTFS_STORE_TOKEN: token });
    logRun('fill', run, opts.sizeBytes, opts.runs);
    writable = fillResult('serve-writable', url, run, opts.sizeBytes);
    const stopped = await ctx.servers.stop(server);
    if (stopped) addCheck(checks, 'bootfs serve --writable stops', false, stopped);
  } catch (err) {
    writable = { fill: 'serve-writable', store: 'http://127.0.0.1:?/', run: null, mbps: null, chunksPerSecond: null, skipped: (err as Error).message };
    process.stderr.write(`fill serve-writable: ${(err as Error).message}\n`);
  }
  fills.push(writable);

  const local = await runBootfs(tools, makeArgs(localStore, index('local'), input), 0, 'make local dir');
  logRun('fill', local, opts.sizeBytes, opts.runs);
  fills.push(fillResult('local', localStore, local, opts.sizeBytes));
  if (!local.ok) throw new Error(`bootfs make into ${localStore} failed: ${local.error ?? ''}`);

  // Fill checks: every store got every chunk once; the three indexes are the same bytes.
  const chunks = jsonNumber(oci, 'chunks');
  const storedBytes = jsonNumber(oci, 'newStoredBytes');
  for (const f of fills) {
    if (!f.run) {
      addCheck(checks, `fill ${f.fill}`, false, f.skipped ?? 'did not run');
      continue;
    }
    const ok = f.run.ok && jsonNumber(f.run, 'bytes') === opts.sizeBytes && jsonNumber(f.run, 'newChunks') === chunks && jsonNumber(f.run, 'newStoredBytes') === storedBytes;
    addCheck(checks, `fill ${f.fill}`, ok, f.run.ok ? `${jsonNumber(f.run, 'bytes')} bytes, ${jsonNumber(f.run, 'chunks')} chunks, ${jsonNumber(f.run, 'newChunks')} new, ${jsonNumber(f.run, 'newStoredBytes')} stored bytes (oci: ${chunks} new, ${storedBytes} stored)` : (f.run.error ?? 'failed'));
    if (f.fill !== 'oci' && f.run.ok) {
      const same = (await readFile(index('oci'))).equals(await readFile(index(f.fill)));
      addCheck(checks, `fill ${f.fill} index = oci's`, same, same ? 'byte-identical .caibx' : `${index(f.fill)} differs from ${index('oci')}`);
    }
  }
  const localStats = await chunkStoreStats(localStore);
  addCheck(checks, 'local store holds every chunk', localStats.chunks === chunks && localStats.chunkBytes === storedBytes, `${localStats.chunks} chunks, ${localStats.chunkBytes} bytes`);
  if (writable.run?.ok) {
    const w = await chunkStoreStats(writableDir);
    addCheck(checks, 'serve --writable store = local store', w.chunks === localStats.chunks && w.chunkBytes === localStats.chunkBytes, `${w.chunks} chunks, ${w.chunkBytes} bytes`);
  }
  // Not needed any more, and it holds --size bytes of RAM on tmpfs.
  if (!opts.keep) await rm(writableDir, { recursive: true, force: true });

  // Timed extracts of the same index from both stores.
  const serve = await startBootfsServe(ctx.servers, tools.node, tools.bootfsBin, localStore, path.join(base, 'serve.log'));
  const stores: Record<Cell, string> = { oci: ociStore, serve: `${serve.url}/` };
  const runs: BootfsRun[] = [];
  for (let round = 1; round <= opts.runs; round++) {
    const outs = new Map<BootfsRun, string>();
    for (const cell of roundOrder(CELLS, round)) {
      const out = path.join(base, `round${round}-${cell}.out`);
      const r = await runBootfs(tools, extractArgs(stores[cell], index('oci'), out), round, cell);
      logRun('extract', r, opts.sizeBytes, opts.runs);
      runs.push(r);
      outs.set(r, out);
    }
    // Untimed, after both runs: each output equals the input; then it goes (--size of RAM each).
    for (const [r, out] of outs) {
      const what = `round ${round} extract from ${r.cell}`;
      if (!r.ok) {
        addCheck(checks, what, false, r.error ?? 'failed');
        continue;
      }
      const got = await sha256File(out).catch((err: Error) => `unreadable: ${err.message}`);
      const ok = got === sha256 && jsonNumber(r, 'bytes') === opts.sizeBytes && jsonNumber(r, 'chunks') === chunks;
      addCheck(checks, what, ok, ok ? `output sha256 = input's, ${chunks} chunks` : `output sha256 ${got} (input ${sha256}), ${jsonNumber(r, 'bytes')} bytes, ${jsonNumber(r, 'chunks')} chunks`);
      if (!opts.keep) await rm(out, { force: true });
    }
  }
  const problem = await ctx.servers.stop(serve);
  if (problem) addCheck(checks, 'bootfs serve stops', false, problem);

  const of = (cell: Cell): FetchSummary => {
    const s = summarize(runs.filter((r) => r.cell === cell), opts.sizeBytes);
    return { ...s, chunksPerSecond: s.medianSeconds !== null && chunks !== null ? chunks / s.medianSeconds : null };
  };
  const o = of('oci');
  const s = of('serve');
  return {
    input: { bytes: opts.sizeBytes, sha256, recipe: RANDOM_RECIPE },
    chunks,
    storedBytes,
    ociStore,
    serveUrl: stores.serve,
    fills,
    fillRatio: writable.run?.ok ? ratioOf(oci.seconds, writable.run.seconds) : null,
    runs,
    oci: o,
    serve: s,
    ratio: ratioOf(o.mbps, s.mbps),
    checks,
  };
}

/** The extract table (one row per store) and the fill table (one row per fill). */
export function fetchTables(r: FetchPartResult): { extract: string; fill: string } {
  const row = (label: string, s: FetchSummary, ratio: string): string[] => [
    label,
    fixed(s.medianSeconds, 2),
    s.minSeconds === null ? 'n/a' : `${s.minSeconds.toFixed(2)}-${(s.maxSeconds ?? s.minSeconds).toFixed(2)}`,
    fixed(s.mbps, 1),
    fixed(s.chunksPerSecond, 0),
    fixed(s.peakRssMB, 0),
    ratio,
  ];
  const extract = formatColumns(
    ['bootfs extract --store', 'median s', 'min-max s', 'MB/s', 'chunks/s', 'RSS MB', 'oci/serve'],
    [row(`${r.ociStore} (docker-registry)`, r.oci, `${times(r.ratio)} (info)`), row(`${r.serveUrl ?? 'http://…'} (bootfs serve)`, r.serve, 'ref')],
    1,
  );
  const label: Record<Fill, string> = { oci: `${r.ociStore} (docker-registry)`, 'serve-writable': 'http:// (bootfs serve --writable)', local: 'local directory' };
  const fill = formatColumns(
    ['bootfs make --store (once)', 's', 'MB/s', 'chunks/s', 'RSS MB', 's vs serve -w'],
    r.fills.map((f) => [
      label[f.fill],
      f.run?.ok ? f.run.seconds.toFixed(2) : f.skipped ? 'skipped' : 'FAILED',
      fixed(f.mbps, 1),
      fixed(f.chunksPerSecond, 0),
      f.run?.peakRssKiB ? ((f.run.peakRssKiB * 1024) / 1e6).toFixed(0) : 'n/a',
      f.fill === 'oci' ? `${times(r.fillRatio)} (info)` : f.fill === 'serve-writable' ? 'ref' : '',
    ]),
    1,
  );
  return { extract, fill };
}
