/**
 * The FUSE path of the boot demo: the sample app as a root filesystem directory, converted into
 * the store, mounted lazily (Mount over the served store and a fresh cache directory), and the
 * app's start-up reads run through the mount by a child process.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { convertImage } from '../converter/convert.js';
import { BootfsIndex } from '../index/bootfs-reader.js';
import { Mount } from '../mount/mount.js';
import { parseImageRef } from '../oci/ref.js';
import type { ChunkPool } from '../pool/chunk-pool.js';
import { openStore } from '../store/location.js';
import type { WriteStore } from '../store/types.js';
import { APP_DIR, writeSampleApp, type SampleApp } from './boot-sample.js';
import { runChecked } from './run-child.js';

/** What one boot path did. */
export interface BootRun {
  /** Bytes of file data in the converted image. */
  imageBytes: number;
  /** What the app printed. */
  output: string;
  /** ms from the start of the boot (podman run, or the mount) to the app's first output. */
  firstOutputMs: number;
  /** ms from the start of the boot to the app's exit. */
  bootMs: number;
  /** How the app was started, for the log. */
  how: string;
}

export interface FuseBootOptions {
  /** Work directory of this part (created). */
  work: string;
  store: WriteStore;
  pool: ChunkPool;
  app: SampleApp;
  log: (line: string) => void;
  /** Start serving the store; returns its URL. */
  serve: () => Promise<string>;
}

/** Convert, serve, mount, run the app's reads through the mount, unmount. */
export async function fuseBoot(o: FuseBootOptions): Promise<BootRun> {
  const { work, log, app } = o;
  const rootfs = path.join(work, 'rootfs');
  await writeSampleApp(rootfs, app);
  log(`sample app image dir:${rootfs}: ${APP_DIR}/config, 1 MiB ${APP_DIR}/app.bin, ${app.files[2]!.content.length >> 20} MiB ${APP_DIR}/weights.bin`);
  const converted = await convertImage(parseImageRef(`dir:${rootfs}`), { store: o.store, pool: o.pool });
  const indexFile = path.join(work, 'app.bootfs');
  await writeFile(indexFile, converted.index);
  log(`bootfs convert dir:…/rootfs: ${(converted.bytes / 1e6).toFixed(1)} MB of files in ${converted.chunks} chunks (${(converted.newStoredBytes / 1e6).toFixed(1)} MB stored)`);

  const url = await o.serve();
  const index = BootfsIndex.decode(converted.index, indexFile);
  const mnt = path.join(work, 'mnt');
  const cache = path.join(work, 'cache');
  await mkdir(mnt, { recursive: true });
  const started = performance.now();
  // Problems the mount absorbs are shown while the app runs. After it exits, the kernel's
  // readahead may still have reads in flight that the unmount cuts off (their EIO goes nowhere).
  let appRunning = true;
  const mountLog = (m: string): void => void (appRunning && log(`mount: ${m}`));
  const mount = await Mount.start({ index, mountpoint: mnt, stores: [await openStore(url)], cacheDir: cache, log: mountLog });
  const mountedMs = performance.now() - started;
  log(`bootfs mount app.bootfs ${mnt} --store ${url} --cache <fresh>: mounted in ${mountedMs.toFixed(0)} ms`);
  try {
    // The app's reads run in a child process: this thread answers the FUSE requests they cause, so
    // it must not block on them. The child changes into the mount itself (spawn's cwd option would
    // make the blocked spawn call wait for a lookup only this thread can answer).
    const r = await runChecked('/bin/sh', ['-c', `cd "$BOOTFS_DEMO_ROOT${APP_DIR}" && ${app.command}`], { env: { ...process.env, BOOTFS_DEMO_ROOT: mnt }, timeoutMs: 60_000 });
    return { imageBytes: converted.bytes, output: r.stdout, firstOutputMs: mountedMs + (r.firstOutputMs ?? r.ms), bootMs: mountedMs + r.ms, how: `sh -c '${app.command}' in the mount` };
  } finally {
    appRunning = false;
    await mount.close();
  }
}
