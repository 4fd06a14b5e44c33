/**
 * openImage: resolve a reference through its transport, then hand out verified layer streams.
 */
import { BootfsError, UsageError } from '../errors.js';
import type { RegistryOptions } from '../registry/options.js';
import type { ImageConfig } from '../tree/types.js';
import { digestProblem } from './digest.js';
import { resolveDockerArchive } from './docker-archive.js';
import { layerStream, storedLayerStream } from './layer-stream.js';
import { resolveOciLayout, type ResolveOptions } from './oci-layout.js';
import { hostPlatform, normalizePlatform, type Platform } from './platform.js';
import { formatImageRef, type ImageRef } from './ref.js';
import { checkRootfsDir } from './rootfs-dir.js';
import { DirSource, TarSource } from './source.js';
import type { LayerInfo, OpenedImage, ResolvedImage } from './types.js';

/** Options of openImage. */
export interface OpenImageOptions {
  /** Platform to select from image indexes (default: hostPlatform()). When given, a single-platform image must match it. */
  platform?: Platform;
  /** docker:// sources: credentials, TLS and retry settings of the registry client. */
  registry?: RegistryOptions;
}

/** Reject references that parseImageRef would not have produced (callers may build them by hand). */
function checkRef(ref: ImageRef): void {
  if (!['oci', 'oci-archive', 'docker-archive', 'dir', 'docker'].includes(ref.transport)) throw new UsageError(`unknown transport ${String(ref.transport)}`);
  if (typeof ref.path !== 'string' || ref.path === '') throw new UsageError(`${ref.transport}: reference without a path`);
  if (ref.digest !== undefined) {
    const problem = digestProblem(ref.digest);
    if (problem !== undefined) throw new UsageError(`${ref.transport}:${ref.path}: ${problem}`);
    if (ref.transport === 'docker-archive' || ref.transport === 'dir') throw new UsageError(`${ref.transport}: references take no digest`);
  }
  if (ref.tag !== undefined && ref.transport === 'dir') throw new UsageError('dir: references take no tag');
}

/** Open an image for reading: loads and verifies its manifest and config, locates its layers. */
export async function openImage(ref: ImageRef, opts: OpenImageOptions = {}): Promise<OpenedImage> {
  checkRef(ref);
  const reference = formatImageRef(ref);
  const want = opts.platform ? normalizePlatform(opts.platform) : hostPlatform();
  const o: ResolveOptions = { image: reference, want, explicit: opts.platform !== undefined };

  if (ref.transport === 'dir') {
    const rootfsDir = await checkRootfsDir(ref.path, reference);
    const { variant, os, architecture } = want;
    const config: ImageConfig = { source: { reference, os, architecture, ...(variant ? { variant } : {}) } };
    return {
      reference,
      platform: want,
      config,
      layers: [],
      rootfsDir,
      openLayer(i: number): AsyncIterable<Uint8Array> {
        throw new RangeError(`${reference} has no layers (layer ${i} requested)`);
      },
      openStoredLayer(i: number): AsyncIterable<Uint8Array> {
        throw new RangeError(`${reference} has no layers (layer ${i} requested)`);
      },
      rawConfig: {},
      close: async () => undefined,
    };
  }

  let resolved: ResolvedImage;
  if (ref.transport === 'oci') resolved = await resolveOciLayout(await DirSource.open(ref.path, reference), ref, o);
  else if (ref.transport === 'oci-archive') resolved = await resolveOciLayout(await TarSource.open(ref.path, reference), ref, o);
  else if (ref.transport === 'docker') {
    // Loaded on use: the registry client (undici, auth) is not needed for local images.
    const { resolveRegistryImage } = await import('./docker-registry.js');
    resolved = await resolveRegistryImage(ref, o, opts.registry);
  } else resolved = await resolveDockerArchive(await TarSource.open(ref.path, reference), ref, o);
  return openedImage(reference, resolved);
}

function openedImage(reference: string, r: ResolvedImage): OpenedImage {
  const { os, architecture, variant } = r.platform;
  const config: ImageConfig = {
    ...r.config.runtime,
    source: {
      reference,
      ...(r.manifestDigest ? { manifestDigest: r.manifestDigest } : {}),
      ...(r.configDigest ? { configDigest: r.configDigest } : {}),
      os,
      architecture,
      ...(variant ? { variant } : {}),
    },
  };
  const layers: LayerInfo[] = r.layers.map((l) => ({
    digest: l.digest,
    ...(l.diffId !== undefined ? { diffId: l.diffId } : {}),
    mediaType: l.mediaType,
    size: l.size,
    compression: l.compression,
  }));
  let closed = false;
  return {
    reference,
    ...(r.manifestDigest ? { manifestDigest: r.manifestDigest } : {}),
    ...(r.configDigest ? { configDigest: r.configDigest } : {}),
    platform: r.platform,
    config,
    layers,
    openLayer(i: number, opts: { signal?: AbortSignal } = {}): AsyncIterable<Uint8Array> {
      if (closed) throw new BootfsError(`${reference} is closed`);
      const layer = r.layers[i];
      if (!Number.isInteger(i) || layer === undefined) throw new RangeError(`${reference} has ${r.layers.length} layers; layer ${i} requested`);
      return layerStream(layer, reference, opts.signal);
    },
    openStoredLayer(i: number, opts: { signal?: AbortSignal } = {}): AsyncIterable<Uint8Array> {
      if (closed) throw new BootfsError(`${reference} is closed`);
      const layer = r.layers[i];
      if (!Number.isInteger(i) || layer === undefined) throw new RangeError(`${reference} has ${r.layers.length} layers; layer ${i} requested`);
      return storedLayerStream(layer, reference, opts.signal);
    },
    rawConfig: r.rawConfig,
    close: async () => {
      if (closed) return;
      closed = true;
      await r.close?.();
    },
  };
}
