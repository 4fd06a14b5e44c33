/**
 * The docker-archive: transport: what `docker save`, `podman save` and skopeo write. manifest.json
 * lists images as {Config, RepoTags, Layers}, with paths inside the archive: `<hex>.json` and
 * `<id>/layer.tar` or `<hex>.tar` (docker < 25, podman, skopeo) or `blobs/sha256/<hex>` (docker ≥ 25).
 * Layers are uncompressed tars or gzip/zstd (sniffed: the archive records no media types).
 *
 * What is verified: a config named by its digest (`<hex>.json`, `blobs/sha256/<hex>`) against that
 * digest; a layer under `blobs/sha256/<hex>` against that digest; every layer's uncompressed bytes
 * against the config's rootfs.diff_ids, which docker archives must have.
 */
import path from 'node:path';
import { NotFoundError, UsageError } from '../errors.js';
import { short } from './digest.js';
import { ImageFormatError } from './errors.js';
import { dockerLayerType } from './media-types.js';
import { formatPlatform, platformMatches } from './platform.js';
import { imagePlatform, type ResolveOptions } from './oci-layout.js';
import { readDocument, sniffBlob } from './read.js';
import type { ImageRef } from './ref.js';
import { MAX_LAYERS, parseConfig } from './schema.js';
import type { TarSource } from './source.js';
import type { ResolvedImage, ResolvedLayer } from './types.js';

interface ArchiveEntry {
  config: string;
  repoTags: string[];
  layers: string[];
}

/**
 * A RepoTag or a user's NAME[:TAG] in the canonical form docker uses to compare them:
 * `alpine` → `docker.io/library/alpine:latest`, `me/app:1` → `docker.io/me/app:1`.
 */
export function normalizeDockerRef(ref: string): string {
  let name = ref;
  let tag = 'latest';
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) {
    name = ref.slice(0, colon);
    tag = ref.slice(colon + 1);
  }
  const first = name.split('/')[0]!;
  const hasRegistry = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (!hasRegistry) name = `docker.io/${name}`;
  if (name.startsWith('index.docker.io/')) name = `docker.io/${name.slice('index.docker.io/'.length)}`;
  if (name.startsWith('docker.io/') && !name.slice('docker.io/'.length).includes('/')) name = `docker.io/library/${name.slice('docker.io/'.length)}`;
  return `${name}:${tag}`;
}

/** A path from manifest.json, refused when it would leave the archive. */
function archivePath(p: unknown, what: string): string {
  if (typeof p !== 'string' || p === '' || p.includes('\0')) throw new ImageFormatError(`${what}: path ${JSON.stringify(p)} is not a file name`);
  const n = path.posix.normalize(p);
  if (p.startsWith('/') || n === '..' || n.startsWith('../') || p.split('/').includes('..')) {
    throw new ImageFormatError(`${what}: path ${short(p)} escapes the archive`);
  }
  return n;
}

/** The digest a member's name states, for names that state one. */
function digestFromName(p: string, json: boolean): string | undefined {
  const m = (json ? /^(?:blobs\/sha256\/([0-9a-f]{64})|([0-9a-f]{64})\.json)$/ : /^blobs\/sha256\/([0-9a-f]{64})$/).exec(p);
  const hex = m?.[1] ?? m?.[2];
  return hex === undefined ? undefined : `sha256:${hex}`;
}

function parseArchiveManifest(v: unknown, what: string): ArchiveEntry[] {
  if (!Array.isArray(v)) throw new ImageFormatError(`${what}: not a list of images`);
  return v.map((e: unknown, i) => {
    const w = `image ${i} in ${what}`;
    if (typeof e !== 'object' || e === null) throw new ImageFormatError(`${w}: not an object`);
    const { Config, RepoTags, Layers } = e as Record<string, unknown>;
    if (typeof Config !== 'string') throw new ImageFormatError(`${w}: Config is not a string`);
    if (RepoTags !== undefined && RepoTags !== null && (!Array.isArray(RepoTags) || !RepoTags.every((t) => typeof t === 'string'))) {
      throw new ImageFormatError(`${w}: RepoTags is not a list of strings`);
    }
    if (!Array.isArray(Layers)) throw new ImageFormatError(`${w}: Layers is not a list`);
    if (Layers.length > MAX_LAYERS) throw new ImageFormatError(`${w}: ${Layers.length} layers is over the limit of ${MAX_LAYERS}`);
    return {
      config: archivePath(Config, `config of ${w}`),
      repoTags: (RepoTags as string[] | null | undefined) ?? [],
      layers: Layers.map((l: unknown, j) => archivePath(l, `layer ${j} of ${w}`)),
    };
  });
}

function describeImages(entries: ArchiveEntry[]): string {
  return entries.map((e, i) => (e.repoTags.length > 0 ? e.repoTags.join(', ') : `(untagged image ${i})`)).join('; ');
}

function selectEntry(entries: ArchiveEntry[], ref: ImageRef): ArchiveEntry {
  const archive = `docker-archive:${ref.path}`;
  if (entries.length === 0) throw new NotFoundError(`${archive} holds no images (manifest.json is empty)`);
  if (ref.tag === undefined) {
    if (entries.length === 1) return entries[0]!;
    throw new UsageError(`${archive} holds ${entries.length} images; choose one with ${archive}:NAME:TAG (RepoTags: ${describeImages(entries)})`);
  }
  const want = normalizeDockerRef(ref.tag);
  const found = entries.find((e) => e.repoTags.some((t) => t === ref.tag || normalizeDockerRef(t) === want));
  if (!found) throw new NotFoundError(`image ${ref.tag} not found in ${archive}; RepoTags: ${describeImages(entries)}`);
  return found;
}

/** Resolve an image in a docker archive to its config and layers. */
export async function resolveDockerArchive(src: TarSource, ref: ImageRef, o: ResolveOptions): Promise<ResolvedImage> {
  const manifestLoc = await src.locate('manifest.json');
  if (!manifestLoc) {
    const oci = await src.locate('oci-layout');
    const hint = oci ? `; it is an OCI archive: use oci-archive:${ref.path}` : '';
    throw new ImageFormatError(`${o.image}: ${ref.path} is not a docker archive (it has no manifest.json)${hint}`);
  }
  const manifestWhat = `manifest.json of ${o.image}`;
  const entries = parseArchiveManifest((await readDocument(manifestLoc, {}, manifestWhat)).value, manifestWhat);
  const entry = selectEntry(entries, ref);

  const configWhat = `config ${entry.config} of ${o.image}`;
  const configLoc = await src.locate(entry.config);
  if (!configLoc) throw new NotFoundError(`${configWhat} not found in the archive`);
  const named = digestFromName(entry.config, true);
  const configDoc = await readDocument(configLoc, named ? { digest: named } : {}, configWhat);
  const config = parseConfig(configDoc.value, configWhat);
  const diffIds = config.diffIds;
  if (!diffIds) throw new ImageFormatError(`${configWhat}: rootfs.diff_ids is missing, so the layers cannot be verified`);
  if (diffIds.length !== entry.layers.length) {
    throw new ImageFormatError(`${configWhat}: ${diffIds.length} diff_ids for ${entry.layers.length} layers in manifest.json`);
  }

  const layers: ResolvedLayer[] = [];
  for (const [i, p] of entry.layers.entries()) {
    const diffId = diffIds[i]!;
    const storedDigest = digestFromName(p, false);
    const what = `layer ${storedDigest ?? diffId} (${p}) of ${o.image}`;
    const loc = await src.locate(p);
    if (!loc) throw new NotFoundError(`${what} not found in the archive`);
    const compression = await sniffBlob(loc, what);
    // Without a digest in its name, a compressed layer's stored bytes have no known digest: it is
    // identified (and verified) by its diff_id. An uncompressed layer's stored digest is the diff_id.
    const digest = storedDigest ?? diffId;
    layers.push({
      digest,
      diffId,
      mediaType: dockerLayerType(compression),
      size: loc.size,
      compression,
      location: loc,
      verifyDigest: storedDigest !== undefined || compression === 'none',
    });
  }

  const platform = imagePlatform(config, undefined, o.image);
  if (o.explicit && !platformMatches(o.want, platform)) {
    throw new NotFoundError(`${o.image} is an image for ${formatPlatform(platform)}, not ${formatPlatform(o.want)}`);
  }
  return { configDigest: configDoc.digest, platform, config, rawConfig: configDoc.value as Record<string, unknown>, layers };
}
