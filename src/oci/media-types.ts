/**
 * Media types bootfs reads, and compression sniffing by magic bytes. Layer compression comes from
 * the media type and is cross-checked against the first bytes of the blob (readers that trust only
 * one of them decode garbage or reject good images; bootfs refuses a disagreement).
 */

// Manifest, index and config media types (OCI image-spec media-types.md; Docker registry v2).
/** OCI image index. */
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
/** OCI image manifest. */
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** OCI image config. */
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
/** Docker manifest list (the Docker form of an index). */
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
/** Docker image manifest, schema 2. */
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
/** Docker image config. */
/** What a manifest GET accepts by default: image manifests and indexes, OCI and Docker schema 2. */
export const MANIFEST_ACCEPT: readonly string[] = [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST];
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
/** Docker schema 1 (signed and unsigned): long deprecated, refused with a message saying so. */
export const DOCKER_SCHEMA1 = ['application/vnd.docker.distribution.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws'];

/** Docker layer media types (uncompressed, gzip, zstd). */
export const DOCKER_LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const DOCKER_LAYER_ZSTD = 'application/vnd.docker.image.rootfs.diff.tar.zstd';

/** OCI layer media types (uncompressed, gzip, zstd): what bootfs writes. */
export const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Layer media type → compression. Nondistributable/foreign layers read like the others. */
const LAYER_TYPES: ReadonlyMap<string, Compression> = new Map([
  ['application/vnd.oci.image.layer.v1.tar', 'none'],
  ['application/vnd.oci.image.layer.v1.tar+gzip', 'gzip'],
  ['application/vnd.oci.image.layer.v1.tar+zstd', 'zstd'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar', 'none'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', 'gzip'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar+zstd', 'zstd'],
  [DOCKER_LAYER_TAR, 'none'],
  [DOCKER_LAYER_GZIP, 'gzip'],
  [DOCKER_LAYER_ZSTD, 'zstd'],
  ['application/vnd.docker.image.rootfs.foreign.diff.tar', 'none'],
  ['application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'gzip'],
  ['application/vnd.docker.image.rootfs.foreign.diff.tar.zstd', 'zstd'],
]);

/** The compression a layer media type declares, or undefined for a type that is not a layer bootfs reads. */
export function layerCompression(mediaType: string): Compression | undefined {
  return LAYER_TYPES.get(mediaType);
}

/** Is this an image index / manifest list media type? */
export function isIndexType(mediaType: string | undefined): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST;
}

/** Is this an image manifest media type bootfs reads? */
export function isManifestType(mediaType: string | undefined): boolean {
  return mediaType === OCI_MANIFEST || mediaType === DOCKER_MANIFEST;
}

/** Is this an image config media type? (Artifacts such as Helm charts have other config types.) */
export function isConfigType(mediaType: string | undefined): boolean {
  return mediaType === OCI_CONFIG || mediaType === DOCKER_CONFIG;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Bytes needed by sniffCompression. */
export const SNIFF_BYTES = 4;

/** Compression recognised from the first bytes of a blob ('none' for anything else). */
export function sniffCompression(head: Uint8Array): Compression {
  const starts = (magic: number[]): boolean => head.length >= magic.length && magic.every((b, i) => head[i] === b);
  if (starts(GZIP_MAGIC)) return 'gzip';
  if (starts(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/** The Docker layer media type for a compression (docker-archive layers carry no media type). */
export function dockerLayerType(c: Compression): string {
  return c === 'gzip' ? DOCKER_LAYER_GZIP : c === 'zstd' ? DOCKER_LAYER_ZSTD : DOCKER_LAYER_TAR;
}
