/**
 * The foreground life of `bootfs mount`: open everything, mount, log, and unmount cleanly on
 * SIGINT/SIGTERM, on an unmount from outside, and on an internal error (a FUSE server that exits
 * without unmounting leaves a dead mount behind, and its reader thread would keep Node alive).
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BootfsError, errnoCode, NotFoundError, UsageError } from '../errors.js';
import { unmount } from '../fuse/device.js';
import { BootfsIndex } from '../index/bootfs-reader.js';
import { openStore, untilDeadline, type OpenStoreOptions } from '../store/location.js';
import type { ChunkStore } from '../store/types.js';
import { Mount } from './mount.js';

export interface RunMountOptions {
  indexPath: string;
  mountpoint: string;
  stores: string[];
  storeOptions: OpenStoreOptions;
  cacheDir?: string;
  cacheMaxSize?: number;
  allowOther: boolean;
  memoryBytes: number;
  readaheadChunks: number;
  kernelReadaheadKb: number;
  timeoutMs: number;
  metricsAddr?: string;
  statsFile?: string;
  quiet: boolean;
}

/** Mount, serve until unmounted or signalled, unmount. Resolves when the mount is gone. */
export async function runMount(opts: RunMountOptions): Promise<void> {
  // Absolute, as /proc/self/mountinfo and umount(8) name it.
  const o = { ...opts, mountpoint: resolve(opts.mountpoint) };
  const index = await BootfsIndex.readFile(o.indexPath);
  await prepareMountpoint(o.mountpoint);
  const stores: ChunkStore[] = [];
  try {
    for (const loc of o.stores) {
      stores.push(await openStore(loc, untilDeadline(o.storeOptions, o.timeoutMs)));
    }
  } catch (err) {
    await Promise.allSettled(stores.map((s) => s.close()));
    throw err;
  }
  const log = o.quiet ? () => undefined : (m: string) => process.stderr.write(`bootfs mount: ${m}\n`);
  const mount = await Mount.start({
    index,
    mountpoint: o.mountpoint,
    stores,
    ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
    ...(o.cacheMaxSize !== undefined ? { cacheMaxSize: o.cacheMaxSize } : {}),
    allowOther: o.allowOther,
    memoryBytes: o.memoryBytes,
    readaheadChunks: o.readaheadChunks,
    kernelReadaheadKb: o.kernelReadaheadKb,
    ...(o.metricsAddr ? { metricsAddr: o.metricsAddr } : {}),
    ...(o.statsFile ? { statsFile: o.statsFile } : {}),
    log,
  });
  process.stderr.write(`bootfs mount: ${o.indexPath} mounted at ${o.mountpoint} (${index.inodeCount} inodes, ${index.table.count} chunks)\n`);

  let closing: Promise<void> | undefined;
  const shutdown = (): Promise<void> => (closing ??= mount.close());
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: unmounting ${o.mountpoint}`);
    void shutdown();
  };
  const onFatal = (err: unknown): void => {
    process.stderr.write(`bootfs mount: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
    void shutdown();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  try {
    await mount.closed().catch((err: unknown) => {
      throw new BootfsError(`${o.mountpoint}: ${(err as Error).message}`, { cause: err });
    });
  } finally {
    await shutdown();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('uncaughtException', onFatal);
    process.off('unhandledRejection', onFatal);
  }
}

/**
 * The mountpoint must be a directory. A dead FUSE mount left there by a killed server
 * ("Transport endpoint is not connected") is detached first, so a restart just works.
 */
async function prepareMountpoint(mountpoint: string): Promise<void> {
  try {
    const st = await stat(mountpoint);
    if (!st.isDirectory()) throw new UsageError(`mountpoint ${mountpoint} is not a directory`);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') {
      await unmount(mountpoint, { lazy: true });
      return prepareMountpoint(mountpoint);
    }
    if (code === 'ENOENT') throw new NotFoundError(`mountpoint ${mountpoint} does not exist`);
    throw err;
  }
}
