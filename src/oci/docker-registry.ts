/**
 * The docker:// transport, reading: `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]` through the registry
 * client. The tag or digest names a manifest or an index (with both, the digest is fetched: it is
 * the stronger name); indexes are resolved to one manifest by platform as in layouts. Manifests,
 * indexes and the config are fetched whole and verified against their digests and descriptor
 * sizes; each layer's presence and size are checked with a HEAD at open, and its bytes stream
 * from the registry when read (layer-stream.ts verifies digest and diff_id at the end).
 */
import { NotFoundError } from '../errors.js';
import { mapLimit } from '../util/limits.js';
import { RegistryRepo } from '../registry/client.js';
import type { RegistryOptions } from '../registry/options.js';
import { ImageFormatError } from './errors.js';
import { layerCompression } from './media-types.js';
import { imagePlatform, type ResolveOptions } from './oci-layout.js';
import { formatPlatform, platformMatches, type Platform } from './platform.js';
import { MAX_DOCUMENT_SIZE } from './read.js';
import type { ImageRef } from './ref.js';
import { documentKind, parseConfig, parseIndex, parseManifest, type Descriptor, type ParsedIndex } from './schema.js';
import { selectManifest } from './select.js';
import type { ResolvedImage, ResolvedLayer } from './types.js';

/** HEAD requests in flight while checking layers at open. */
const HEAD_CONCURRENCY = 4;

function parseJson(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new ImageFormatError(`${what}: not valid JSON (${(err as Error).message})`);
  }
}

/** Resolve a docker:// reference to its manifest, config and layers (the connection stays open for the layers). */
export async function resolveRegistryImage(ref: ImageRef, o: ResolveOptions, opts: RegistryOptions = {}): Promise<ResolvedImage> {
  const repo = new RegistryRepo(ref.path, opts);
  try {
    return await resolve(repo, ref, o);
  } catch (err) {
    await repo.close();
    throw err;
  }
}

async function resolve(repo: RegistryRepo, ref: ImageRef, o: ResolveOptions): Promise<ResolvedImage> {
  const reference = ref.digest ?? ref.tag ?? 'latest';
  /** A manifest or index by its descriptor: verified digest (by the client), size and media type. */
  const fetch = async (desc: { digest: string; size?: number; mediaType?: string }, what: string): Promise<{ value: unknown; kind: ReturnType<typeof documentKind>; digest: string }> => {
    const m = await repo.getManifest(desc.digest);
    if (!m) throw new NotFoundError(`${what} not found in ${repo.location}`);
    if (desc.size !== undefined && m.body.length !== desc.size) throw new ImageFormatError(`${what}: ${m.body.length} bytes, its descriptor says ${desc.size}`);
    const value = parseJson(m.body, what);
    return { value, kind: documentKind(value, desc.mediaType ?? m.mediaType, what), digest: m.digest };
  };
  const loadIndex = async (desc: Descriptor): Promise<ParsedIndex> => {
    const what = `index ${desc.digest} of ${o.image}`;
    const doc = await fetch(desc, what);
    if (doc.kind.kind !== 'index') throw new ImageFormatError(`${what}: expected an index, found a ${doc.kind.mediaType}`);
    return parseIndex(doc.value, doc.kind.mediaType, what);
  };

  const top = await repo.getManifest(reference);
  if (!top) {
    const name = ref.digest ?? `tag ${reference}`;
    throw new NotFoundError(`manifest ${name} not found in ${repo.location} (${o.image}); check the tag, or list the repository's tags (skopeo list-tags docker://${repo.location})`);
  }
  let manifestWhat = `manifest ${top.digest} of ${o.image}`;
  let value = parseJson(top.body, manifestWhat);
  let kind = documentKind(value, top.mediaType || undefined, manifestWhat);
  let manifestDigest = top.digest;
  let fromIndex: Platform | undefined;
  let viaIndex = false;
  if (kind.kind === 'index') {
    const index = parseIndex(value, kind.mediaType, `index ${top.digest} of ${o.image}`);
    const chosen = await selectManifest(index, o.want, loadIndex, o.image);
    viaIndex = true;
    fromIndex = chosen.platform;
    manifestWhat = `manifest ${chosen.desc.digest} of ${o.image}`;
    const doc = await fetch(chosen.desc, manifestWhat);
    if (doc.kind.kind !== 'manifest') throw new ImageFormatError(`${manifestWhat}: expected an image manifest, found a ${doc.kind.mediaType}`);
    value = doc.value;
    kind = doc.kind;
    manifestDigest = doc.digest;
  }
  const manifest = parseManifest(value, kind.mediaType, manifestWhat);

  const configWhat = `config ${manifest.config.digest} of ${o.image}`;
  if (manifest.config.size > MAX_DOCUMENT_SIZE) throw new ImageFormatError(`${configWhat}: ${manifest.config.size} bytes is over the ${MAX_DOCUMENT_SIZE >> 20} MiB limit for JSON documents`);
  const configBytes = await repo.getBlob(manifest.config.digest, { maxBytes: MAX_DOCUMENT_SIZE });
  if (configBytes.length !== manifest.config.size) throw new ImageFormatError(`${configWhat}: ${configBytes.length} bytes, its descriptor says ${manifest.config.size}`);
  const rawConfig = parseJson(configBytes, configWhat);
  const config = parseConfig(rawConfig, configWhat);
  if (config.diffIds && config.diffIds.length !== manifest.layers.length) {
    throw new ImageFormatError(`${configWhat}: ${config.diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  }

  const layers = await mapLimit(manifest.layers, HEAD_CONCURRENCY, async (desc, i): Promise<ResolvedLayer> => {
    const what = `layer ${desc.digest} of ${o.image}`;
    const compression = layerCompression(desc.mediaType);
    if (compression === undefined) {
      const why = desc.mediaType.includes('encrypted') ? 'encrypted layers are not supported' : 'not a layer media type bootfs reads';
      throw new ImageFormatError(`${what}: media type ${desc.mediaType}: ${why}`);
    }
    const size = await repo.headBlob(desc.digest);
    if (size === undefined) throw new NotFoundError(`${what} not found: ${repo.location} does not have blob ${desc.digest}`);
    if (size !== desc.size) throw new ImageFormatError(`${what}: the registry has ${size} bytes, the manifest says ${desc.size}`);
    const diffId = config.diffIds?.[i];
    return {
      digest: desc.digest,
      ...(diffId !== undefined ? { diffId } : {}),
      mediaType: desc.mediaType,
      size: desc.size,
      compression,
      location: {
        size: desc.size,
        remote: repo.location,
        // Not verified here: layer-stream.ts hashes these same bytes and compares them with
        // desc.digest (verifyDigest below) before its stream ends, so one hash pass suffices.
        open: (signal?: AbortSignal) => repo.openBlob(desc.digest, { size: desc.size, verify: false, ...(signal ? { signal } : {}) }),
      },
      verifyDigest: true,
    };
  });

  const platform = imagePlatform(config, fromIndex, o.image);
  if (!viaIndex && o.explicit && !platformMatches(o.want, platform)) {
    throw new NotFoundError(`${o.image} is an image for ${formatPlatform(platform)}, not ${formatPlatform(o.want)}`);
  }
  return {
    manifestDigest,
    configDigest: manifest.config.digest,
    platform,
    config,
    rawConfig: rawConfig as Record<string, unknown>,
    layers,
    close: () => repo.close(),
  };
}
