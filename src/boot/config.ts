/**
 * The boot config: what `bootfs convert SRC DST` writes beside the index in a boot image and the
 * boot stub reads at start. It carries the original image's process settings (the boot image's own
 * entrypoint is the stub) and where the chunks are. JSON, versioned, validated on read; the
 * environment can override the store and cache settings at run time (BOOTFS_STORE, BOOTFS_CACHE…).
 */
import { BootfsError, ExitCode } from '../errors.js';

export const BOOT_CONFIG_VERSION = 1;
/** Where a boot image keeps the index and the boot config. */
export const BOOT_DIR = '/bootfs';
export const BOOT_CONFIG_PATH = `${BOOT_DIR}/boot.json`;
export const BOOT_INDEX_PATH = `${BOOT_DIR}/image.bootfs`;
/** Where the runtime layer puts the stub and its modules. */
export const RUNTIME_DIR = `${BOOT_DIR}/runtime`;
export const DEFAULT_CACHE_PATH = '/var/lib/bootfs/cache';

/** The original image's process settings (OCI image config fields). */
export interface AppConfig {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  stopSignal?: string;
}

export interface BootConfig {
  version: number;
  /** bootfs version that wrote it. */
  bootfs: string;
  /** The index inside the image. */
  index: string;
  /** Chunk stores, tried in order. */
  stores: string[];
  /** The node cache directory inside the container (mount a shared volume there). */
  cachePath: string;
  app: AppConfig;
  /** Where the image came from (reference and digests), for humans and labels. */
  source?: Record<string, string>;
}

export class BootConfigError extends BootfsError {
  constructor(message: string) {
    super(message, { code: 'ERR_INDEX_FORMAT', exitCode: ExitCode.integrity });
  }
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** Parse and validate a boot config document; `name` is used in errors. */
export function parseBootConfig(text: string, name: string): BootConfig {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new BootConfigError(`${name}: not JSON (${(err as Error).message})`);
  }
  const bad = (why: string): never => {
    throw new BootConfigError(`${name}: ${why}`);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.version !== BOOT_CONFIG_VERSION) bad(`version ${String(o.version)} is not supported (this bootfs reads version ${BOOT_CONFIG_VERSION})`);
  if (typeof o.bootfs !== 'string') bad('"bootfs" must be a string');
  if (typeof o.index !== 'string' || !o.index.startsWith('/')) bad('"index" must be an absolute path');
  if (!isStrings(o.stores)) bad('"stores" must be a list of strings');
  if (typeof o.cachePath !== 'string' || !o.cachePath.startsWith('/')) bad('"cachePath" must be an absolute path');
  if (typeof o.app !== 'object' || o.app === null) bad('"app" must be an object');
  const app = o.app as Record<string, unknown>;
  for (const k of ['entrypoint', 'cmd', 'env'] as const) if (app[k] !== undefined && !isStrings(app[k])) bad(`"app.${k}" must be a list of strings`);
  for (const k of ['workingDir', 'user', 'stopSignal'] as const) if (app[k] !== undefined && typeof app[k] !== 'string') bad(`"app.${k}" must be a string`);
  if (o.source !== undefined && (typeof o.source !== 'object' || o.source === null || !Object.values(o.source).every((s) => typeof s === 'string'))) {
    bad('"source" must be an object of strings');
  }
  return o as unknown as BootConfig;
}

/** The canonical text of a boot config (stable key order, so equal configs give equal bytes). */
export function formatBootConfig(c: BootConfig): string {
  const app: AppConfig = {};
  for (const k of ['entrypoint', 'cmd', 'env', 'workingDir', 'user', 'stopSignal'] as const) {
    if (c.app[k] !== undefined) (app as Record<string, unknown>)[k] = c.app[k];
  }
  const doc: BootConfig = { version: c.version, bootfs: c.bootfs, index: c.index, stores: c.stores, cachePath: c.cachePath, app };
  if (c.source) doc.source = Object.fromEntries(Object.entries(c.source).sort(([a], [b]) => (a < b ? -1 : 1)));
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Run-time settings: the boot config with the environment's overrides applied. */
export interface BootSettings {
  stores: string[];
  cachePath: string;
  cacheMaxSize?: string;
  timeout?: string;
  /** Directory for the writable layer (default: a tmpfs). */
  upperDir?: string;
  /** The kernel's readahead for the FUSE mount, KiB (default: the kernel's 128). */
  kernelReadaheadKb?: string;
}

/**
 * Apply overrides: BOOTFS_STORE (one location, or several separated by spaces or commas),
 * BOOTFS_CACHE, BOOTFS_CACHE_MAX_SIZE, BOOTFS_TIMEOUT, BOOTFS_UPPER, BOOTFS_KERNEL_READAHEAD (KiB).
 */
export function bootSettings(c: BootConfig, env: NodeJS.ProcessEnv): BootSettings {
  const stores = env.BOOTFS_STORE?.trim() ? env.BOOTFS_STORE.trim().split(/[\s,]+/) : c.stores;
  const s: BootSettings = { stores, cachePath: env.BOOTFS_CACHE?.trim() || c.cachePath };
  if (env.BOOTFS_CACHE_MAX_SIZE?.trim()) s.cacheMaxSize = env.BOOTFS_CACHE_MAX_SIZE.trim();
  if (env.BOOTFS_TIMEOUT?.trim()) s.timeout = env.BOOTFS_TIMEOUT.trim();
  if (env.BOOTFS_UPPER?.trim()) s.upperDir = env.BOOTFS_UPPER.trim();
  if (env.BOOTFS_KERNEL_READAHEAD?.trim()) s.kernelReadaheadKb = env.BOOTFS_KERNEL_READAHEAD.trim();
  return s;
}
