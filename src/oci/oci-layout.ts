/**
 * The oci: and oci-archive: transports: an OCI image layout (oci-layout, index.json, blobs/sha256/…)
 * in a directory or a tar archive. The tag selects entries of index.json by their
 * org.opencontainers.image.ref.name annotation; indexes are resolved to one manifest by platform.
 */
import { NotFoundError, UsageError } from '../errors.js';
import { blobPath } from './digest.js';
import { ImageFormatError } from './errors.js';
import { layerCompression, OCI_INDEX } from './media-types.js';
import { formatPlatform, platformMatches, type Platform } from './platform.js';
import { checkSize, readDocument, sniffBlob } from './read.js';
import type { ImageRef } from './ref.js';
import { documentKind, parseConfig, parseIndex, parseManifest, REF_NAME_ANNOTATION, type Descriptor, type ParsedIndex } from './schema.js';
import { selectManifest } from './select.js';
import type { FileSource } from './source.js';
import type { ResolvedImage, ResolvedLayer } from './types.js';

/** Options shared by the transports. */
export interface ResolveOptions {
  /** The reference text, for messages. */
  image: string;
  /** The platform to select from indexes. */
  want: Platform;
  /** Whether `want` came from the caller (then a single-platform image must match it too). */
  explicit: boolean;
}

async function readBlobDocument(src: FileSource, desc: { digest: string; size?: number }, what: string) {
  const loc = await src.locate(blobPath(desc.digest));
  if (!loc) throw new NotFoundError(`${what} not found: blob ${desc.digest} is missing`);
  return readDocument(loc, desc.size === undefined ? { digest: desc.digest } : { digest: desc.digest, size: desc.size }, what);
}

function tagOf(d: Descriptor): string | undefined {
  return d.annotations?.[REF_NAME_ANNOTATION];
}

function describeTags(entries: Descriptor[]): string {
  const tags = [...new Set(entries.map(tagOf).filter((t): t is string => t !== undefined))].sort();
  const untagged = entries.filter((d) => tagOf(d) === undefined).length;
  const parts = tags.length > 0 ? [`available tags: ${tags.join(', ')}`] : ['it has no tagged images'];
  if (untagged > 0 && tags.length > 0) parts.push(`and ${untagged} untagged`);
  return parts.join(' ');
}

/** The index.json entries the reference selects (one, or several platform variants). */
function selectEntries(index: ParsedIndex, ref: ImageRef, o: ResolveOptions): Descriptor[] | { digest: string } {
  const all = index.manifests;
  const layout = `${ref.transport}:${ref.path}`;
  let chosen: Descriptor[];
  if (ref.tag !== undefined) {
    chosen = all.filter((d) => tagOf(d) === ref.tag);
    if (chosen.length === 0) throw new NotFoundError(`tag ${ref.tag} not found in ${layout}; ${describeTags(all)}`);
    if (ref.digest !== undefined) {
      const byDigest = chosen.filter((d) => d.digest === ref.digest);
      if (byDigest.length === 0) throw new NotFoundError(`${o.image}: tag ${ref.tag} does not point at ${ref.digest} (it points at ${chosen.map((d) => d.digest).join(', ')})`);
      chosen = byDigest;
    }
  } else if (ref.digest !== undefined) {
    const byDigest = all.filter((d) => d.digest === ref.digest);
    // A digest not listed in index.json may still name a blob of the layout (e.g. one platform's
    // manifest inside an index); it is loaded and verified by that digest.
    return byDigest.length > 0 ? byDigest.slice(0, 1) : { digest: ref.digest };
  } else {
    chosen = all;
    if (chosen.length === 0) throw new NotFoundError(`${layout} holds no images (index.json lists no manifests)`);
  }
  if (chosen.length === 1) return chosen;
  // Several entries: platform variants of one image (each with a platform, no competing tags).
  const platformVariants = chosen.every((d) => d.platform) && (ref.tag !== undefined || chosen.every((d) => tagOf(d) === undefined));
  if (platformVariants) return chosen;
  if (ref.tag !== undefined) throw new ImageFormatError(`${o.image}: tag ${ref.tag} names ${chosen.length} entries of index.json that are not platform variants`);
  throw new UsageError(`${layout} holds ${chosen.length} images; choose one with ${layout}:TAG (${describeTags(all)})`);
}

/** Resolve an image in an OCI layout (directory or archive) to its manifest, config and layers. */
export async function resolveOciLayout(src: FileSource, ref: ImageRef, o: ResolveOptions): Promise<ResolvedImage> {
  const layoutLoc = await src.locate('oci-layout');
  if (!layoutLoc) throw new ImageFormatError(`${o.image}: ${ref.path} is not an OCI image layout (it has no oci-layout file)`);
  const layout = (await readDocument(layoutLoc, {}, `oci-layout file of ${o.image}`)).value as { imageLayoutVersion?: unknown } | null;
  const version = layout?.imageLayoutVersion;
  if (typeof version !== 'string' || !/^1\./.test(version)) {
    throw new ImageFormatError(`oci-layout file of ${o.image}: imageLayoutVersion ${JSON.stringify(version)} is not supported (expected 1.x)`);
  }
  const indexLoc = await src.locate('index.json');
  if (!indexLoc) throw new ImageFormatError(`${o.image}: ${ref.path} is not an OCI image layout (it has no index.json)`);
  const indexWhat = `index.json of ${o.image}`;
  const top = parseIndex((await readDocument(indexLoc, {}, indexWhat)).value, OCI_INDEX, indexWhat);

  const loadIndex = async (desc: Descriptor): Promise<ParsedIndex> => {
    const what = `index ${desc.digest} of ${o.image}`;
    const doc = await readBlobDocument(src, desc, what);
    const kind = documentKind(doc.value, desc.mediaType, what);
    if (kind.kind !== 'index') throw new ImageFormatError(`${what}: expected an index, found a ${kind.mediaType}`);
    return parseIndex(doc.value, kind.mediaType, what);
  };

  // Find the one image manifest: start at the selected entries and descend through indexes.
  const entries = selectEntries(top, ref, o);
  let start: { digest: string; size?: number; mediaType?: string; platform?: Platform };
  let fromIndex = false;
  if (Array.isArray(entries) && entries.length > 1) {
    start = await selectManifest({ mediaType: OCI_INDEX, manifests: entries }, o.want, loadIndex, o.image).then((s) => ({ ...s.desc, ...(s.platform ? { platform: s.platform } : {}) }));
    fromIndex = true;
  } else {
    start = Array.isArray(entries) ? entries[0]! : entries;
  }
  let manifestWhat = `manifest ${start.digest} of ${o.image}`;
  let doc = await readBlobDocument(src, start, manifestWhat);
  let kind = documentKind(doc.value, start.mediaType, manifestWhat);
  if (kind.kind === 'index') {
    const index = parseIndex(doc.value, kind.mediaType, `index ${start.digest} of ${o.image}`);
    const chosen = await selectManifest(index, o.want, loadIndex, o.image);
    start = { ...chosen.desc, ...(chosen.platform ? { platform: chosen.platform } : {}) };
    fromIndex = true;
    manifestWhat = `manifest ${start.digest} of ${o.image}`;
    doc = await readBlobDocument(src, start, manifestWhat);
    kind = documentKind(doc.value, start.mediaType, manifestWhat);
    if (kind.kind !== 'manifest') throw new ImageFormatError(`${manifestWhat}: expected an image manifest, found a ${kind.mediaType}`);
  }
  const manifest = parseManifest(doc.value, kind.mediaType, manifestWhat);

  const configWhat = `config ${manifest.config.digest} of ${o.image}`;
  const configDoc = await readBlobDocument(src, manifest.config, configWhat);
  const config = parseConfig(configDoc.value, configWhat);
  if (config.diffIds && config.diffIds.length !== manifest.layers.length) {
    throw new ImageFormatError(`${configWhat}: ${config.diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  }

  const layers: ResolvedLayer[] = [];
  for (const [i, desc] of manifest.layers.entries()) {
    const what = `layer ${desc.digest} of ${o.image}`;
    const compression = layerCompression(desc.mediaType);
    if (compression === undefined) {
      const why = desc.mediaType.includes('encrypted') ? 'encrypted layers are not supported' : 'not a layer media type bootfs reads';
      throw new ImageFormatError(`${what}: media type ${desc.mediaType}: ${why}`);
    }
    const loc = await src.locate(blobPath(desc.digest));
    if (!loc) {
      const hint = /nondistributable|foreign/.test(desc.mediaType) ? ' (a non-distributable layer: copy it into the layout first)' : '';
      throw new NotFoundError(`${what} not found: blob is missing${hint}`);
    }
    checkSize(loc, desc.size, what);
    const sniffed = await sniffBlob(loc, what);
    if (sniffed !== compression) {
      throw new ImageFormatError(`${what}: media type ${desc.mediaType} says ${compression === 'none' ? 'uncompressed' : compression} but the blob is ${sniffed === 'none' ? 'not compressed' : `${sniffed} data`}`);
    }
    const diffId = config.diffIds?.[i];
    layers.push({
      digest: desc.digest,
      ...(diffId !== undefined ? { diffId } : {}),
      mediaType: desc.mediaType,
      size: desc.size,
      compression,
      location: loc,
      verifyDigest: true,
    });
  }

  const platform = imagePlatform(config, start.platform, o.image);
  if (!fromIndex && o.explicit && !platformMatches(o.want, platform)) {
    throw new NotFoundError(`${o.image} is an image for ${formatPlatform(platform)}, not ${formatPlatform(o.want)}`);
  }
  return { manifestDigest: doc.digest, configDigest: configDoc.digest, platform, config, rawConfig: configDoc.value as Record<string, unknown>, layers };
}

/** The platform an image is for: its config's, else its index entry's. */
export function imagePlatform(config: { os?: string; architecture?: string; variant?: string }, fromDescriptor: Platform | undefined, image: string): Platform {
  if (config.os && config.architecture) {
    const variant = config.variant ?? fromDescriptor?.variant;
    return variant ? { os: config.os, architecture: config.architecture, variant } : { os: config.os, architecture: config.architecture };
  }
  if (fromDescriptor) return fromDescriptor;
  throw new ImageFormatError(`config of ${image}: os and architecture are missing`);
}
