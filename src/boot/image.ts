/**
 * A boot image: the base image's layers, then the runtime layer (the same bytes for every
 * conversion by one bootfs version), then a small layer with the index and the boot config. Its
 * entrypoint is the boot stub; the original image's entrypoint, cmd, env, working dir and user
 * travel in the boot config. Only the last layer differs between two converted images.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { OpenedImage } from '../oci/types.js';
import type { RegistryOptions } from '../registry/options.js';
import { writeTarLayer } from '../oci/tar-write.js';
import { layerFromBlob, layerFromImage, writeImage, type WriteLayer, type WrittenImage } from '../oci/write.js';
import type { ImageConfig } from '../tree/types.js';
import { BOOT_CONFIG_PATH, BOOT_CONFIG_VERSION, BOOT_DIR, BOOT_INDEX_PATH, formatBootConfig, type BootConfig } from './config.js';
import { runtimeEntries, STUB_MAIN, STUB_NODE } from './runtime-layer.js';

export interface BootImageOptions {
  /** Where to write: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or docker://HOST/REPO[:TAG]. */
  dest: string;
  /** The opened base image (its layers are copied unchanged). */
  base: OpenedImage;
  /** The encoded bootfs index of the converted image. */
  index: Buffer;
  /** The converted image's config (entrypoint, cmd, env, …). */
  app: ImageConfig;
  stores: string[];
  cachePath: string;
  bootfsVersion: string;
  /** Source reference and digests, recorded in the boot config and as labels. */
  source: { reference: string; manifestDigest?: string };
  tmpDir?: string;
  /** docker:// destinations: registry credentials, TLS and retry settings. */
  registry?: RegistryOptions;
}

export const LABEL_PREFIX = 'org.bootfs';

/** Write the boot image; returns the digests the writer reports and the two bootfs layers' digests. */
export async function writeBootImage(o: BootImageOptions): Promise<WrittenImage & { runtimeLayer: string; indexLayer: string }> {
  const base = o.base;
  const raw = base.rawConfig;
  const tmp = await mkdtemp(path.join(o.tmpDir ?? tmpdir(), 'bootfs-bootimage-'));
  try {
    // Uncompressed: gzip output depends on the zlib Node bundles, and this layer must be the same
    // bytes for every conversion by one bootfs version, whatever Node ran it.
    const runtime = await writeTarLayer(path.join(tmp, 'runtime.tar'), await runtimeEntries(), { gzip: false });
    const boot: BootConfig = {
      version: BOOT_CONFIG_VERSION,
      bootfs: o.bootfsVersion,
      index: BOOT_INDEX_PATH,
      stores: o.stores,
      cachePath: o.cachePath,
      app: {
        ...(o.app.entrypoint ? { entrypoint: o.app.entrypoint } : {}),
        ...(o.app.cmd ? { cmd: o.app.cmd } : {}),
        ...(o.app.env ? { env: o.app.env } : {}),
        ...(o.app.workingDir ? { workingDir: o.app.workingDir } : {}),
        ...(o.app.user ? { user: o.app.user } : {}),
        ...(o.app.stopSignal ? { stopSignal: o.app.stopSignal } : {}),
      },
      source: { reference: o.source.reference, ...(o.source.manifestDigest ? { manifestDigest: o.source.manifestDigest } : {}) },
    };
    const dir = BOOT_DIR.replace(/^\//, '');
    const indexLayer = await writeTarLayer(path.join(tmp, 'index.tar.gz'), [
      { path: dir, type: 'dir', mode: 0o755 },
      { path: BOOT_INDEX_PATH.replace(/^\//, ''), type: 'file', mode: 0o644, content: o.index },
      { path: BOOT_CONFIG_PATH.replace(/^\//, ''), type: 'file', mode: 0o644, content: Buffer.from(formatBootConfig(boot)) },
    ]);
    const baseLayers: WriteLayer[] = [];
    for (let i = 0; i < base.layers.length; i++) baseLayers.push(await layerFromImage(base, i));
    const labels: Record<string, string> = {
      ...(o.app.labels ?? {}),
      [`${LABEL_PREFIX}.version`]: o.bootfsVersion,
      [`${LABEL_PREFIX}.source`]: o.source.reference,
      ...(o.source.manifestDigest ? { [`${LABEL_PREFIX}.source.digest`]: o.source.manifestDigest } : {}),
      [`${LABEL_PREFIX}.store`]: o.stores.join(' '),
    };
    const baseInner = (raw.config ?? {}) as Record<string, unknown>;
    const config: Record<string, unknown> = {
      ...(raw.created !== undefined ? { created: raw.created } : {}),
      architecture: raw.architecture,
      os: raw.os,
      ...(raw.variant !== undefined ? { variant: raw.variant } : {}),
      config: {
        // The stub runs as root (it mounts); the app's user is in the boot config.
        User: '0:0',
        // The container's environment is the app's: the runtime adds -e settings to it.
        Env: o.app.env ?? (baseInner.Env as string[] | undefined) ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        Entrypoint: [STUB_NODE, STUB_MAIN],
        WorkingDir: '/',
        Labels: labels,
        ...(o.app.exposedPorts?.length ? { ExposedPorts: Object.fromEntries(o.app.exposedPorts.map((p) => [p, {}])) } : {}),
        ...(o.app.stopSignal ? { StopSignal: o.app.stopSignal } : {}),
      },
      history: [
        ...((raw.history as unknown[] | undefined) ?? []),
        { created_by: `bootfs ${o.bootfsVersion}: runtime (boot stub)`, comment: 'bootfs runtime layer' },
        { created_by: `bootfs convert ${o.source.reference}`, comment: 'bootfs index and boot config' },
      ],
    };
    const written = await writeImage(o.dest, { layers: [...baseLayers, layerFromBlob(runtime), layerFromBlob(indexLayer)], config }, o.registry ? { registry: o.registry } : {});
    return { ...written, runtimeLayer: runtime.digest, indexLayer: indexLayer.digest };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
