/**
 * The client side of the remote benchmark: the store's chunk list and expected bytes, a
 * worker-pool fetch loop with per-request latency, and summaries over rounds.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { decodeChunk } from '../src/chunk.js';
import { median } from './stats.js';

/** Every chunk of the store: hex IDs (sorted) and the stored bytes of each file on disk. */
export interface ChunkSet {
  hex: string[];
  ids: Uint8Array[];
  /** Stored (.cacnk) bytes by hex ID, read from the store directory before any fetch. */
  expected: Map<string, Buffer>;
  /** Decoded size of each chunk (what an index tells `extract`), same order as `hex`. */
  sizes: number[];
  storedBytes: number;
}

/**
 * List `<store>/<4hex>/<64hex>.cacnk` and read every file (the store is ~100 MB: fits in memory).
 * Each chunk is decoded and hashed once here: the store itself is checked before any server is
 * blamed, and the decoded sizes let getChunk bound decompression as `extract` does with an index.
 */
export async function loadChunkSet(storeDir: string): Promise<ChunkSet> {
  const hex: string[] = [];
  for (const shard of (await readdir(storeDir)).sort()) {
    if (!/^[0-9a-f]{4}$/.test(shard)) continue;
    for (const name of (await readdir(path.join(storeDir, shard))).sort()) {
      const m = /^([0-9a-f]{64})\.cacnk$/.exec(name);
      if (m && m[1]!.startsWith(shard)) hex.push(m[1]!);
    }
  }
  const expected = new Map<string, Buffer>();
  const ids = hex.map((h) => new Uint8Array(Buffer.from(h, 'hex')));
  const sizes: number[] = [];
  let storedBytes = 0;
  for (const [i, h] of hex.entries()) {
    const b = await readFile(path.join(storeDir, h.slice(0, 4), `${h}.cacnk`));
    expected.set(h, b);
    storedBytes += b.length;
    sizes.push(decodeChunk(ids[i]!, b, storeDir, { into: 'scratch' }).length);
  }
  return { hex, ids, expected, sizes, storedBytes };
}

/** The two read paths measured: raw stored bytes, or decoded and hash-verified (client-side zstd). */
export type FetchMethod = 'getStored' | 'getChunk';

/** The part of a store the loop uses (HttpStore, SftpStore, anything with getStored/getChunk). */
export interface FetchClient {
  getStored(id: Uint8Array): Promise<Uint8Array>;
  getChunk(id: Uint8Array, opts: { size: number }): Promise<Uint8Array>;
}

/** One pass over (a prefix of) the chunk set against one server with one method. */
export interface PassResult {
  chunks: number;
  okChunks: number;
  /** Stored bytes of the chunks fetched successfully (for getChunk too: what crossed the wire). */
  storedBytes: number;
  /** Decoded bytes (getChunk only). */
  decodedBytes: number;
  seconds: number;
  chunksPerSecond: number;
  mbPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  /** Fetch errors (count) and the first few messages. */
  errors: number;
  /** getStored answers whose bytes differ from the file on disk; getChunk answers of the wrong size (the hash is checked by getChunk itself). */
  mismatches: number;
  firstProblems: string[];
}

/** Nearest-rank percentile (p in 0..100) of an ascending list; null when empty. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * Fetch chunks 0..count-1 of `set` with `concurrency` workers, each taking the next index until
 * none is left. Latency = performance.now() around one call; wall time around the whole pass.
 * getStored answers are compared byte for byte with the file on disk (memcmp, outside the
 * per-request latency but inside the wall time: ~10 ms for 100 MB). getChunk gets the decoded
 * size, as `extract` passes it from the index, and verifies the hash itself.
 */
export async function fetchPass(client: FetchClient, set: ChunkSet, method: FetchMethod, concurrency: number, count = set.ids.length): Promise<PassResult> {
  const n = Math.min(count, set.ids.length);
  const latencies: number[] = [];
  let next = 0;
  let storedBytes = 0;
  let decodedBytes = 0;
  let errors = 0;
  let mismatches = 0;
  const firstProblems: string[] = [];
  const problem = (msg: string): void => {
    if (firstProblems.length < 5) firstProblems.push(msg);
  };
  const worker = async (): Promise<void> => {
    for (let i = next++; i < n; i = next++) {
      const hex = set.hex[i]!;
      const want = set.expected.get(hex)!;
      const t0 = performance.now();
      let got: Uint8Array;
      try {
        got = method === 'getStored' ? await client.getStored(set.ids[i]!) : await client.getChunk(set.ids[i]!, { size: set.sizes[i]! });
      } catch (err) {
        errors++;
        problem(`${method} ${hex}: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      latencies.push(performance.now() - t0);
      if (method === 'getStored') {
        if (!Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(want)) {
          mismatches++;
          problem(`getStored ${hex}: ${got.byteLength} bytes differ from the ${want.length}-byte file on disk`);
          continue;
        }
      } else if (got.byteLength !== set.sizes[i]) {
        mismatches++;
        problem(`getChunk ${hex}: decoded to ${got.byteLength} bytes, expected ${set.sizes[i]}`);
        continue;
      } else {
        decodedBytes += got.byteLength;
      }
      storedBytes += want.length;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, n)) }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const okChunks = latencies.length - mismatches;
  return {
    chunks: n,
    okChunks,
    storedBytes,
    decodedBytes,
    seconds,
    chunksPerSecond: okChunks / seconds,
    mbPerSecond: storedBytes / 1e6 / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.length ? latencies[latencies.length - 1]! : null,
    meanMs: latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : null,
    errors,
    mismatches,
    firstProblems,
  };
}

/** A pass is clean when every chunk came back and matched. */
export const passOk = (p: PassResult): boolean => p.errors === 0 && p.mismatches === 0 && p.okChunks === p.chunks;

/** Medians over the clean rounds of one server and method. */
export interface CellSummary {
  okRounds: number;
  failedRounds: number;
  chunksPerSecond: number | null;
  mbPerSecond: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  minChunksPerSecond: number | null;
  maxChunksPerSecond: number | null;
}

const med = (xs: (number | null)[]): number | null => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? median(v) : null;
};

/** Summarize the rounds of one cell (failed rounds are counted, not averaged in). */
export function summarizePasses(passes: readonly PassResult[]): CellSummary {
  const ok = passes.filter(passOk);
  const cps = ok.map((p) => p.chunksPerSecond);
  return {
    okRounds: ok.length,
    failedRounds: passes.length - ok.length,
    chunksPerSecond: med(cps),
    mbPerSecond: med(ok.map((p) => p.mbPerSecond)),
    p50Ms: med(ok.map((p) => p.p50Ms)),
    p99Ms: med(ok.map((p) => p.p99Ms)),
    minChunksPerSecond: cps.length ? Math.min(...cps) : null,
    maxChunksPerSecond: cps.length ? Math.max(...cps) : null,
  };
}
