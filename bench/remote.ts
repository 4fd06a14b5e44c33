/**
 * Benchmark for issue 5 (see bench/README.md, "remote benchmark"): fetch every chunk of a store of
 * real data with N requests in flight from HttpStore → bootfs serve vs HttpStore → nginx, and
 * SftpStore → OpenSSH vs SftpStore → bootfs serve --ssh when those exist. Prints a table, writes
 * bench/results/remote-*.json.
 */
import { existsSync } from 'node:fs';
import { lstat, open, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { HttpStore } from '../src/store/http.js';
import { cleanupOnSignal, describeEnvironment, findRepoRoot, SetupError, resultHeader, runBenchMain, bootfsBinIn } from './common.js';
import { readFixtureEnv } from './inputs.js';
import { parseOrExit } from './options.js';
import { runChecked } from './proc.js';
import { type CellSummary, type ChunkSet, type FetchMethod, fetchPass, loadChunkSet, type PassResult, passOk, summarizePasses } from './remote-fetch.js';
import { REMOTE_USAGE, type RemoteBenchOptions, type RemotePartName, parseRemoteArgs } from './remote-options.js';
import { type Server, startBootfsHttp, startNginx } from './remote-servers.js';
import { type OpenedClient, setupSftp, type SftpSetup, type Target } from './remote-sftp.js';
import { fileStamp, fixed, formatColumns, writeResults } from './report.js';
import { CHUNK_SIZE, toolVersion, which } from './tools.js';
import { chunkStoreStats, createWorkDir, type WorkDir } from './workdir.js';

/** bootfs serve chunks/s ÷ nginx chunks/s (getStored) must be at least this. */
export const REMOTE_TARGETS = { serveVsNginx: 0.7 } as const;
/** Chunks fetched per target and method in the untimed warm-up (JIT, connections, page cache). */
const WARMUP_CHUNKS = 300;
/** Host data used to top the store up past --min-chunks once the fixtures are in. */
const TOPUP_DIR = '/usr/lib';
const MAX_TOPUPS = 8;

interface Tools {
  node: string;
  bootfsBin: string;
  nginx: string | null;
}

function findTools(repoRoot: string, parts: readonly RemotePartName[]): Tools {
  const bootfsBin = bootfsBinIn(repoRoot);
  if (!existsSync(bootfsBin)) throw new SetupError(`${bootfsBin} is missing: run npm run build first`);
  const nginx = which('nginx') ?? (existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null);
  if (parts.includes('http') && !nginx) throw new SetupError('nginx is not on PATH (needed by --parts http): install the Debian package nginx');
  return { node: process.execPath, bootfsBin, nginx };
}

// ---------------------------------------------------------------------------------------------
// The store: real data, at least --min-chunks chunks.

/** One file that went into the store. */
interface StoreInput {
  name: string;
  source: string;
  bytes: number;
  /** Chunks in the store after this input. */
  chunksAfter: number;
  note?: string;
}

/** Regular files under `dir`, depth first in sorted order (symlinks and unreadable dirs skipped). */
async function* regularFiles(dir: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch {
    return;
  }
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) yield* regularFiles(full);
    else if (e.isFile()) yield full;
  }
}

/** Concatenate files from `files` into `out` until `bytes` are written; returns bytes and file count. */
async function writeConcatenation(files: AsyncGenerator<string>, out: string, bytes: number): Promise<{ bytes: number; files: number; first?: string; last?: string }> {
  const fh = await open(out, 'w');
  const buf = Buffer.alloc(1024 * 1024);
  let written = 0;
  let count = 0;
  let first: string | undefined;
  let last: string | undefined;
  try {
    while (written < bytes) {
      const next = await files.next();
      if (next.done) break;
      let src;
      try {
        if (!(await lstat(next.value)).isFile()) continue;
        src = await open(next.value, 'r');
      } catch {
        continue;
      }
      try {
        for (;;) {
          const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, bytes - written), null);
          if (bytesRead === 0) break;
          await fh.write(buf, 0, bytesRead);
          written += bytesRead;
          if (written >= bytes) break;
        }
      } finally {
        await src.close();
      }
      count++;
      first ??= next.value;
      last = next.value;
    }
  } finally {
    await fh.close();
  }
  return { bytes: written, files: count, ...(first ? { first } : {}), ...(last ? { last } : {}) };
}

/**
 * `bootfs make` the Debian rootfs v1 and v2 streams into one store (v2 adds only ~370 chunks: it
 * is v1 + python3-minimal), then /usr/lib files concatenated until the store has `minChunks`.
 */
async function buildStore(tools: Tools, repoRoot: string, work: WorkDir, minChunks: number) {
  const store = path.join(work.path, 'store');
  const inputs: StoreInput[] = [];
  const notes: string[] = [];
  let chunks = 0;
  const make = async (name: string, file: string, source: string, bytes: number, note?: string): Promise<void> => {
    const index = path.join(work.path, `${name}.caibx`);
    process.stderr.write(`bootfs make ${name} (${(bytes / 1e6).toFixed(1)} MB)\n`);
    await runChecked(tools.node, [tools.bootfsBin, 'make', '--store', store, '--chunk-size', CHUNK_SIZE, '--no-progress', index, file]);
    chunks = (await chunkStoreStats(store)).chunks;
    inputs.push({ name, source, bytes, chunksAfter: chunks, ...(note ? { note } : {}) });
  };
  for (const v2 of [false, true]) {
    const name = v2 ? 'rootfs-v2' : 'rootfs-v1';
    const env = await readFixtureEnv(repoRoot, v2 ? ['--v2'] : []);
    const file = env.ok ? env.env.ROOTFS_STREAM : undefined;
    if (!env.ok || file === undefined || !existsSync(file)) {
      const reason = env.ok ? `no ROOTFS_STREAM file (${file ?? 'not printed'})` : env.reason;
      if (process.env.CI === 'true') throw new SetupError(`${name} fixture unavailable (CI=true, so this is an error): ${reason}`);
      process.stderr.write(`note: ${name} fixture unavailable, using more ${TOPUP_DIR} data instead: ${reason}\n`);
      notes.push(`${name} fixture unavailable: ${reason}`);
      continue;
    }
    const st = await lstat(file);
    await make(name, file, file, st.size);
  }
  const files = regularFiles(TOPUP_DIR);
  for (let i = 1; chunks < minChunks && i <= MAX_TOPUPS; i++) {
    // ~64 KiB average chunks; ask for a quarter more than the shortfall (duplicates, small files).
    const want = Math.ceil((minChunks - chunks) * 65536 * 1.25) + 4 * 1024 * 1024;
    const out = path.join(work.path, `usr-lib-${i}`);
    const w = await writeConcatenation(files, out, want);
    if (w.bytes === 0) break;
    await make(`usr-lib-${i}`, out, `${TOPUP_DIR} regular files in sorted order, concatenated (this host's files: not reproducible elsewhere)`, w.bytes, `${w.files} files, ${w.first ?? ''} .. ${w.last ?? ''}`);
    await rm(out, { force: true });
  }
  if (chunks < minChunks) throw new SetupError(`the store has only ${chunks} chunks after the fixtures and ${TOPUP_DIR}; lower --min-chunks`);
  return { store, inputs, notes, chunks };
}

// ---------------------------------------------------------------------------------------------
// Rounds.

/** One timed (or warm-up) pass, as recorded in the JSON. */
interface PassRecord extends PassResult {
  part: RemotePartName;
  target: string;
  method: FetchMethod;
  /** 0 = warm-up (untimed, first WARMUP_CHUNKS chunks). */
  round: number;
  client?: string;
}

/** Open a fresh client, warm its connections (untimed), run one pass, close it. */
async function onePass(t: Target, part: RemotePartName, set: ChunkSet, method: FetchMethod, concurrency: number, round: number): Promise<PassRecord> {
  let opened: OpenedClient;
  try {
    opened = await t.open();
  } catch (err) {
    const msg = `cannot open a client for ${t.label}: ${(err as Error).message}`;
    return { part, target: t.key, method, round, chunks: 0, okChunks: 0, storedBytes: 0, decodedBytes: 0, seconds: 0, chunksPerSecond: 0, mbPerSecond: 0, p50Ms: null, p99Ms: null, maxMs: null, meanMs: null, errors: 1, mismatches: 0, firstProblems: [msg] };
  }
  try {
    // Untimed: one request per connection, so the timed pass does not include connection set-up.
    await fetchPass(opened.client, set, 'getStored', concurrency, concurrency);
    const r = await fetchPass(opened.client, set, method, concurrency, round === 0 ? WARMUP_CHUNKS : set.ids.length);
    return { part, target: t.key, method, round, client: opened.how, ...r };
  } finally {
    await opened.close().catch(() => undefined);
  }
}

function progress(p: PassRecord, label: string): void {
  const what = p.round === 0 ? 'warm-up' : `round ${p.round}`;
  const status = passOk(p) ? '' : `  FAILED: ${p.errors} errors, ${p.mismatches} mismatches; ${p.firstProblems[0] ?? ''}`;
  process.stderr.write(
    `${what} ${label} ${p.method}: ${p.okChunks}/${p.chunks} chunks in ${p.seconds.toFixed(2)} s, ${p.chunksPerSecond.toFixed(0)} chunks/s, ${p.mbPerSecond.toFixed(1)} MB/s, p50 ${fixed(p.p50Ms, 2)} ms, p99 ${fixed(p.p99Ms, 2)} ms${status}\n`,
  );
}

/**
 * Warm-up then `runs` rounds for one part's targets. Within a round: per method, every target back
 * to back; the target order flips each round (A B, B A, …) so drift hits both alike.
 */
async function measurePart(part: RemotePartName, targets: Target[], set: ChunkSet, opts: RemoteBenchOptions, passes: PassRecord[], failures: string[]): Promise<void> {
  const methods: FetchMethod[] = ['getStored', 'getChunk'];
  let warmOk = true;
  for (const t of targets) {
    for (const m of methods.filter((x) => t.methods.includes(x))) {
      const p = await onePass(t, part, set, m, opts.concurrency, 0);
      passes.push(p);
      progress(p, t.label);
      if (!passOk(p)) {
        warmOk = false;
        failures.push(`${t.label} ${m} warm-up failed: ${p.firstProblems.join('; ')}`);
      }
    }
  }
  // Timing a server that just failed on a few hundred chunks would only produce numbers for a broken run.
  if (!warmOk) return;
  for (let round = 1; round <= opts.runs; round++) {
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    for (const m of methods) {
      for (const t of order) {
        if (!t.methods.includes(m)) continue;
        const p = await onePass(t, part, set, m, opts.concurrency, round);
        passes.push(p);
        progress(p, t.label);
        if (!passOk(p)) failures.push(`${t.label} ${m} round ${round}: ${p.errors} errors, ${p.mismatches} mismatches: ${p.firstProblems.join('; ')}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Results.

interface Cell {
  part: RemotePartName;
  target: string;
  label: string;
  role: Target['role'];
  method: FetchMethod;
  summary: CellSummary;
}

interface RemoteComparison {
  part: RemotePartName;
  method: FetchMethod;
  bootfs: string;
  reference: string;
  /** bootfs chunks/s ÷ reference chunks/s (median rounds). */
  ratio: number | null;
  /** Only HTTP getStored is judged; other rows are informational. */
  targetRatio: number | null;
  pass: boolean | null;
}

function cellsOf(part: RemotePartName, targets: Target[], passes: PassRecord[]): Cell[] {
  const cells: Cell[] = [];
  for (const t of targets) {
    for (const method of ['getStored', 'getChunk'] as const) {
      if (!t.methods.includes(method)) continue;
      const mine = passes.filter((p) => p.part === part && p.target === t.key && p.method === method && p.round > 0);
      if (mine.length === 0) continue;
      cells.push({ part, target: t.key, label: t.label, role: t.role, method, summary: summarizePasses(mine) });
    }
  }
  return cells;
}

function compareCells(cells: Cell[]): RemoteComparison[] {
  const out: RemoteComparison[] = [];
  for (const c of cells.filter((x) => x.role === 'bootfs')) {
    const ref = cells.find((x) => x.part === c.part && x.method === c.method && x.role === 'reference');
    if (!ref) continue;
    const a = c.summary.chunksPerSecond;
    const b = ref.summary.chunksPerSecond;
    const ratio = a !== null && b !== null && b > 0 ? a / b : null;
    const judged = c.part === 'http' && c.method === 'getStored';
    const targetRatio = judged ? REMOTE_TARGETS.serveVsNginx : null;
    out.push({ part: c.part, method: c.method, bootfs: c.target, reference: ref.target, ratio, targetRatio, pass: targetRatio === null || ratio === null ? null : ratio >= targetRatio });
  }
  return out;
}

function resultTable(cells: Cell[], comparisons: RemoteComparison[], sftpLine: string | null): string {
  const header = ['store -> server', 'method', 'chunks/s', 'MB/s', 'p50 ms', 'p99 ms', 'vs ref', 'target', 'result'];
  const rows = cells.map((c) => {
    const cmp = c.role === 'bootfs' ? comparisons.find((x) => x.part === c.part && x.method === c.method && x.bootfs === c.target) : undefined;
    const failed = c.summary.okRounds === 0 ? 'FAIL (no clean round)' : null;
    return [
      c.label,
      c.method,
      fixed(c.summary.chunksPerSecond, 0),
      fixed(c.summary.mbPerSecond, 1),
      fixed(c.summary.p50Ms, 2),
      fixed(c.summary.p99Ms, 2),
      cmp ? (cmp.ratio === null ? 'n/a' : `${cmp.ratio.toFixed(2)}x`) : c.role === 'reference' ? 'ref' : '',
      cmp?.targetRatio ? `>=${cmp.targetRatio.toFixed(1)}x` : cmp ? 'info' : '',
      failed ?? (cmp ? (cmp.pass === null ? (cmp.targetRatio === null ? '' : 'n/a') : cmp.pass ? 'pass' : 'FAIL') : ''),
    ];
  });
  // A skip reason is long: below the rows rather than in a column it would stretch.
  const table = rows.length > 0 ? formatColumns(header, rows, 2) : '';
  return [table, sftpLine ?? ''].filter((s) => s !== '').join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  const opts = parseOrExit(argv, parseRemoteArgs, REMOTE_USAGE);
  if (typeof opts === 'number') return opts;
  const startedAt = new Date();
  const repoRoot = findRepoRoot();
  const tools = findTools(repoRoot, opts.parts);
  const { casyncVersion: _unused, ...env } = await describeEnvironment(repoRoot, 'casync');
  const versions = { nginxVersion: tools.nginx ? await toolVersion(tools.nginx, ['-v']) : null };
  // Store (~100 MB of zstd chunks) + one /usr/lib top-up file at a time + slack.
  const work = await createWorkDir(opts.dir, 600e6);
  process.stderr.write(`work dir: ${work.path} (${work.note})\n`);
  cleanupOnSignal(work, opts.keep);

  const failures: string[] = [];
  const servers: Server[] = [];
  const passes: PassRecord[] = [];
  const cells: Cell[] = [];
  let built: Awaited<ReturnType<typeof buildStore>> | undefined;
  let set: ChunkSet | undefined;
  let sftp: SftpSetup | undefined;
  let sftpSkipped: string | null = opts.parts.includes('sftp') ? null : 'not selected (--parts)';
  const serverRecords: Record<string, unknown>[] = [];
  try {
    built = await buildStore(tools, repoRoot, work, opts.minChunks);
    set = await loadChunkSet(built.store);
    process.stderr.write(`store: ${set.ids.length} chunks, ${(set.storedBytes / 1e6).toFixed(1)} MB stored\n`);

    if (opts.parts.includes('http')) {
      const httpTargets: Target[] = [];
      // tries: 1 — a failed request must show up as an error, not hide in a retry's latency.
      const httpOpen = (url: string) => async (): Promise<OpenedClient> => {
        const s = new HttpStore(url, { concurrency: opts.concurrency, tries: 1 });
        return { client: s, methods: ['getStored', 'getChunk'], close: () => s.close(), how: `new HttpStore('${url}', { concurrency: ${opts.concurrency}, tries: 1 })` };
      };
      try {
        const serve = await startBootfsHttp(tools.node, tools.bootfsBin, built.store, work.path);
        servers.push(serve);
        httpTargets.push({ key: 'serve', label: 'HttpStore -> bootfs serve', role: 'bootfs', server: serve, methods: ['getStored', 'getChunk'], open: httpOpen(`${serve.url}/`) });
        const nginx = await startNginx(tools.nginx!, built.store, work.path);
        servers.push(nginx);
        httpTargets.push({ key: 'nginx', label: 'HttpStore -> nginx', role: 'reference', server: nginx, methods: ['getStored', 'getChunk'], open: httpOpen(nginx.url) });
      } catch (err) {
        failures.push(`http: a server did not start: ${(err as Error).message}`);
      }
      if (httpTargets.length === 2) {
        await measurePart('http', httpTargets, set, opts, passes, failures);
        cells.push(...cellsOf('http', httpTargets, passes));
      }
    }

    if (opts.parts.includes('sftp')) {
      sftp = await setupSftp(
        { repoRoot, node: tools.node, bootfsBin: tools.bootfsBin, storeDir: built.store, workDir: work.path, concurrency: opts.concurrency, probe: { id: set.ids[0]!, bytes: set.expected.get(set.hex[0]!)! } },
        servers,
      );
      for (const n of sftp.notes) process.stderr.write(`sftp: ${n}\n`);
      if (sftp.skipped !== null) {
        sftpSkipped = sftp.skipped;
      } else {
        await measurePart('sftp', sftp.targets, set, opts, passes, failures);
        cells.push(...cellsOf('sftp', sftp.targets, passes));
      }
    }
  } finally {
    sftp?.restore();
    for (const s of servers) {
      serverRecords.push({ name: s.name, url: s.url, argv: s.argv, pid: s.pid, ...('config' in s ? { config: (s as { config: string }).config } : {}) });
      await s.stop().catch((err: Error) => failures.push(`stopping ${s.name}: ${err.message}`));
    }
    if (!opts.keep) await rm(work.path, { recursive: true, force: true });
  }

  const comparisons = compareCells(cells);
  const sftpNotes = sftp?.notes ?? [];
  const sftpLine = sftpSkipped !== null ? `sftp: skipped (${sftpSkipped})` : sftpNotes.length ? `sftp: ${sftpNotes.join('; ')}` : null;
  process.stdout.write(
    `\nfetch ${set?.ids.length ?? 0} chunks (${((set?.storedBytes ?? 0) / 1e6).toFixed(1)} MB stored), concurrency ${opts.concurrency}, median of ${opts.runs} round${opts.runs === 1 ? '' : 's'}\n\n`,
  );
  process.stdout.write(cells.length > 0 || sftpLine ? `${resultTable(cells, comparisons, sftpLine)}\n` : 'nothing was measured\n');
  for (const f of failures) process.stdout.write(`\nFAILURE: ${f}\n`);

  const exitCode = failures.length === 0 ? 0 : 1;
  const doc = {
    ...resultHeader('remote', 5, startedAt, exitCode === 0, env),
    ...versions,
    tools,
    parameters: {
      runs: opts.runs,
      concurrency: opts.concurrency,
      minChunks: opts.minChunks,
      parts: opts.parts,
      chunkSize: CHUNK_SIZE,
      warmUpChunks: WARMUP_CHUNKS,
      order: 'warm-up pass per target and method; then each round, per method (getStored, getChunk), every target back to back, the target order flipping each round',
      client: 'in the benchmark process: a fresh store client per pass, one untimed getStored per connection first; workers = concurrency; latency = performance.now() around each call; getStored bytes compared with the file on disk',
      workDir: { ...work, kept: opts.keep },
      ci: process.env.CI === 'true',
    },
    targets: REMOTE_TARGETS,
    store: built ? { chunks: set?.ids.length ?? built.chunks, storedBytes: set?.storedBytes ?? null, inputs: built.inputs, notes: built.notes } : null,
    servers: serverRecords,
    sftp: { skipped: sftpSkipped, notes: sftpNotes, detected: sftp?.detected ?? null },
    cells,
    comparisons,
    passes,
    failures,
  };
  const file = await writeResults(path.join(repoRoot, 'bench', 'results'), fileStamp(startedAt), doc, 'remote');
  process.stdout.write(`\nresults: ${file}\n`);
  return exitCode;
}

await runBenchMain(main);
