/**
 * The boot part of the demo: a sample image (a small app plus large weights it does not read at
 * start) converted into a fresh store, the store served over HTTP on loopback, the app booted
 * lazily — under podman from a boot image when podman and the base-image fixture are there, else
 * through the FUSE mount — and the bytes that crossed the "network" compared with the image size.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { BootfsError, UsageError } from '../errors.js';
import type { ChunkPool } from '../pool/chunk-pool.js';
import { serveStore, type RunningServer } from '../server/serve.js';
import { LocalStore } from '../store/local.js';
import { fuseBoot, type BootRun } from './boot-fuse.js';
import { findBaseImage, podmanBoot } from './boot-podman.js';
import { sampleApp } from './boot-sample.js';
import { onPath } from './run-child.js';

/** How to boot: podman when possible else FUSE (auto), one of them (failing when impossible), or not at all. */
export type BootMode = 'auto' | 'podman' | 'fuse' | 'none';

export interface BootDemoOptions {
  dir: string;
  pool: ChunkPool;
  log: (line: string) => void;
  /** From planBoot. */
  plan: BootPlan;
  bootfsVersion: string;
  /** Size of the weights file (default 64 MiB). */
  weightsMiB?: number;
}

export type BootDemoResult =
  | { mode: 'skipped'; reason: string }
  | {
      mode: 'podman' | 'fuse';
      /** Bytes of file data in the image. */
      imageBytes: number;
      /** Bytes the app reads from the image's files at start (its own reads; not the shell and tools). */
      appReadBytes: number;
      /** Stored (zstd) chunk bytes the HTTP store sent, and how many chunks. */
      fetchedBytes: number;
      fetchedChunks: number;
      /** fetchedBytes as a percentage of imageBytes. */
      fetchedPercent: number;
      firstOutputMs: number;
      bootMs: number;
      storeUrl: string;
      /** The app printed exactly what the source bytes say it must. */
      outputOk: boolean;
    };

/** How part 3 will boot on this machine (planBoot). */
export type BootPlan = { path: 'podman'; baseRef: string } | { path: 'fuse'; note?: string } | { path: 'skip'; reason: string };

/**
 * Decide how to boot on this machine, cheaply (no fixture is built): call it before the demo's
 * long parts so a forced mode that cannot work fails at once.
 */
export async function planBoot(mode: BootMode): Promise<BootPlan> {
  if (mode === 'none') return { path: 'skip', reason: 'not asked to (--boot none)' };
  const missing = [process.getuid?.() !== 0 ? 'root' : '', existsSync('/dev/fuse') ? '' : '/dev/fuse'].filter((m) => m !== '');
  if (missing.length > 0) {
    const reason = `booting lazily needs ${missing.join(' and ')} (FUSE mounts; podman with --device /dev/fuse)`;
    if (mode === 'auto') return { path: 'skip', reason };
    throw new UsageError(`--boot ${mode}: ${reason}`);
  }
  if (mode === 'fuse') return { path: 'fuse' };
  const tools = ['podman', 'runc'].filter((t) => !onPath(t));
  const base = tools.length === 0 ? await findBaseImage() : undefined;
  if (tools.length === 0 && base && 'ref' in base) return { path: 'podman', baseRef: base.ref };
  const why = tools.length > 0 ? `${tools.join(' and ')} not installed` : (base as { missing: string }).missing;
  if (mode === 'podman') throw new UsageError(`--boot podman: ${why}`);
  return { path: 'fuse', note: `${why}: booting through the FUSE mount instead of podman` };
}

/** Run part 3 in `dir` (its files under dir/boot), logging the story through `log`. */
export async function runBootDemo(o: BootDemoOptions): Promise<BootDemoResult> {
  const { log } = o;
  const choice = o.plan;
  if (choice.path === 'skip') {
    log(`skipped: ${choice.reason}`);
    return { mode: 'skipped', reason: choice.reason };
  }
  if (choice.path === 'fuse' && choice.note) log(choice.note);
  const work = path.join(o.dir, 'boot');
  // A fresh store and cache every run, so the bytes counted are the whole story.
  await rm(work, { recursive: true, force: true });
  const storeDir = path.join(work, 'store');
  const store = await LocalStore.open(storeDir, { create: true });
  const app = sampleApp(o.weightsMiB ?? 64);
  let server: RunningServer | undefined;
  const serve = async (): Promise<string> => {
    server = await serveStore({ store: storeDir, listen: '127.0.0.1:0' });
    log(`bootfs serve --store ${storeDir} --http 127.0.0.1:0: ${server.url}`);
    return server.url;
  };
  let run: BootRun;
  let fetchedBytes: number;
  let fetchedChunks: number;
  try {
    const common = { work, store, pool: o.pool, app, log, serve };
    run = choice.path === 'podman' ? await podmanBoot({ ...common, baseRef: choice.baseRef, bootfsVersion: o.bootfsVersion }) : await fuseBoot(common);
    if (!server) throw new BootfsError('internal error: the store was never served');
    const { metrics } = server.app;
    fetchedBytes = (await metrics.bytesServed.get()).values[0]?.value ?? 0;
    fetchedChunks = (await metrics.chunksServed.get()).values[0]?.value ?? 0;
  } finally {
    await server?.close();
    await store.close();
  }
  const outputOk = run.output === app.expectedOutput;
  const pct = (n: number): string => `${((100 * n) / run.imageBytes).toFixed(1)}%`;
  log(`${run.how}: first output after ${(run.firstOutputMs / 1000).toFixed(2)} s, done after ${(run.bootMs / 1000).toFixed(2)} s; output ${outputOk ? 'correct (config and digests of the bytes read match the source)' : 'WRONG'}`);
  if (!outputOk) log(`expected ${JSON.stringify(app.expectedOutput)}, got ${JSON.stringify(run.output)}`);
  log(
    `image ${(run.imageBytes / 1e6).toFixed(1)} MB of files; the app read ${(app.startReadBytes / 1e6).toFixed(2)} MB; ` +
      `fetched ${(fetchedBytes / 1e6).toFixed(2)} MB (stored, zstd) in ${fetchedChunks} chunks = ${pct(fetchedBytes)} of the image crossed the network`,
  );
  return {
    mode: choice.path,
    imageBytes: run.imageBytes,
    appReadBytes: app.startReadBytes,
    fetchedBytes,
    fetchedChunks,
    fetchedPercent: Number(((100 * fetchedBytes) / run.imageBytes).toFixed(2)),
    firstOutputMs: Math.round(run.firstOutputMs),
    bootMs: Math.round(run.bootMs),
    storeUrl: (server as RunningServer | undefined)?.url ?? '',
    outputOk,
  };
}
