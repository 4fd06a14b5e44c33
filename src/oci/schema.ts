/**
 * Validation of the JSON documents of an image: descriptors, image indexes / manifest lists, image
 * manifests (OCI and Docker schema 2) and image configs. Everything is checked for shape and type
 * before use; anything off is an ImageFormatError naming the document and the field.
 */
import type { ImageConfig } from '../tree/types.js';
import { checkDigest } from './digest.js';
import { ImageFormatError } from './errors.js';
import { DOCKER_SCHEMA1, isConfigType, isIndexType, isManifestType, OCI_INDEX, OCI_MANIFEST } from './media-types.js';
import type { Platform } from './platform.js';

/** The OCI annotation that tags a manifest in an image layout's index.json. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** A content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** An image index or Docker manifest list. */
export interface ParsedIndex {
  mediaType: string;
  manifests: Descriptor[];
}

/** An image manifest (OCI or Docker schema 2). */
export interface ParsedManifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** The parts of an image config bootfs uses. */
export interface ParsedConfig {
  os?: string;
  architecture?: string;
  variant?: string;
  /** rootfs.diff_ids, when the config has them. */
  diffIds?: string[];
  /** The runtime config, without `source`. */
  runtime: ImageConfig;
}

/** More layers than this is not an image any runtime could mount (overlayfs stops far earlier). */
export const MAX_LAYERS = 1024;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(o: Record<string, unknown>, key: string, what: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ImageFormatError(`${what}: ${key} is not a string`);
  return v;
}

function optStringArray(o: Record<string, unknown>, key: string, what: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new ImageFormatError(`${what}: ${key} is not a list of strings`);
  return v as string[];
}

function optStringMap(o: Record<string, unknown>, key: string, what: string): Record<string, string> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || !Object.values(v).every((s) => typeof s === 'string')) {
    throw new ImageFormatError(`${what}: ${key} is not a map of strings`);
  }
  // Sorted keys: the config ends up in the index, whose bytes must not depend on JSON key order.
  const out: Record<string, string> = {};
  for (const k of Object.keys(v).sort()) out[k] = v[k] as string;
  return out;
}

function parsePlatformField(v: unknown, what: string): Platform | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new ImageFormatError(`${what}: platform is not an object`);
  const os = optString(v, 'os', `${what} platform`);
  const architecture = optString(v, 'architecture', `${what} platform`);
  const variant = optString(v, 'variant', `${what} platform`);
  if (!os || !architecture) return undefined;
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Validate a descriptor; `what` names it in errors (e.g. `manifest entry 2 of oci:/x`). */
export function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw new ImageFormatError(`${what}: descriptor is not an object`);
  const mediaType = v.mediaType;
  if (typeof mediaType !== 'string' || mediaType === '') throw new ImageFormatError(`${what}: descriptor has no mediaType`);
  const digest = checkDigest(v.digest, what);
  const size = v.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new ImageFormatError(`${what}: descriptor size ${JSON.stringify(size)} is not a non-negative integer`);
  }
  const platform = parsePlatformField(v.platform, what);
  const annotations = optStringMap(v, 'annotations', what);
  return { mediaType, digest, size, ...(platform ? { platform } : {}), ...(annotations ? { annotations } : {}) };
}

/**
 * The kind of a fetched document: the media type inside it must agree with its descriptor's, and
 * when both are missing (allowed for OCI) the fields decide.
 */
export function documentKind(v: unknown, descriptorType: string | undefined, what: string): { kind: 'index' | 'manifest'; mediaType: string } {
  if (!isObject(v)) throw new ImageFormatError(`${what}: not a JSON object`);
  const own = v.mediaType;
  if (own !== undefined && typeof own !== 'string') throw new ImageFormatError(`${what}: mediaType is not a string`);
  if (own !== undefined && descriptorType !== undefined && own !== descriptorType) {
    throw new ImageFormatError(`${what}: media type ${own} does not match its descriptor's ${descriptorType}`);
  }
  const mediaType = own ?? descriptorType ?? (Array.isArray(v.manifests) ? OCI_INDEX : Array.isArray(v.layers) ? OCI_MANIFEST : undefined);
  if (mediaType !== undefined && DOCKER_SCHEMA1.includes(mediaType)) {
    throw new ImageFormatError(`${what}: Docker schema 1 manifests are not supported; convert with skopeo copy --format v2s2 or --format oci`);
  }
  if (isIndexType(mediaType)) return { kind: 'index', mediaType: mediaType! };
  if (isManifestType(mediaType)) return { kind: 'manifest', mediaType: mediaType! };
  throw new ImageFormatError(`${what}: media type ${mediaType ?? '(none)'} is not an image manifest or index`);
}

function checkSchemaVersion(v: Record<string, unknown>, what: string): void {
  if (v.schemaVersion !== 2) throw new ImageFormatError(`${what}: schemaVersion ${JSON.stringify(v.schemaVersion)} is not supported (expected 2)`);
}

/** Validate an image index / manifest list (also index.json of a layout). */
export function parseIndex(v: unknown, mediaType: string, what: string): ParsedIndex {
  if (!isObject(v)) throw new ImageFormatError(`${what}: not a JSON object`);
  checkSchemaVersion(v, what);
  if (!Array.isArray(v.manifests)) throw new ImageFormatError(`${what}: manifests is not a list`);
  const manifests = v.manifests.map((d, i) => parseDescriptor(d, `manifest entry ${i} of ${what}`));
  return { mediaType, manifests };
}

/** Validate an image manifest. */
export function parseManifest(v: unknown, mediaType: string, what: string): ParsedManifest {
  if (!isObject(v)) throw new ImageFormatError(`${what}: not a JSON object`);
  checkSchemaVersion(v, what);
  const config = parseDescriptor(v.config, `config descriptor of ${what}`);
  if (!isConfigType(config.mediaType)) {
    throw new ImageFormatError(`${what}: config media type ${config.mediaType} is not a container image config (an artifact, not an image?)`);
  }
  if (!Array.isArray(v.layers)) throw new ImageFormatError(`${what}: layers is not a list`);
  if (v.layers.length > MAX_LAYERS) throw new ImageFormatError(`${what}: ${v.layers.length} layers is over the limit of ${MAX_LAYERS}`);
  const layers = v.layers.map((d, i) => parseDescriptor(d, `layer ${i} of ${what}`));
  return { mediaType, config, layers };
}

/** Validate an image config and pick out what bootfs uses. */
export function parseConfig(v: unknown, what: string): ParsedConfig {
  if (!isObject(v)) throw new ImageFormatError(`${what}: not a JSON object`);
  const os = optString(v, 'os', what);
  const architecture = optString(v, 'architecture', what);
  const variant = optString(v, 'variant', what);
  let diffIds: string[] | undefined;
  if (v.rootfs !== undefined && v.rootfs !== null) {
    if (!isObject(v.rootfs)) throw new ImageFormatError(`${what}: rootfs is not an object`);
    if (v.rootfs.type !== undefined && v.rootfs.type !== 'layers') {
      throw new ImageFormatError(`${what}: rootfs type ${JSON.stringify(v.rootfs.type)} is not supported (expected "layers")`);
    }
    const ids = v.rootfs.diff_ids;
    if (ids !== undefined && ids !== null) {
      if (!Array.isArray(ids)) throw new ImageFormatError(`${what}: rootfs.diff_ids is not a list`);
      diffIds = ids.map((d, i) => checkDigest(d, `diff_id ${i} of ${what}`));
    }
  }
  const c = v.config;
  if (c !== undefined && c !== null && !isObject(c)) throw new ImageFormatError(`${what}: config is not an object`);
  const cw = `${what} (config)`;
  const runtime: ImageConfig = {};
  if (isObject(c)) {
    const entrypoint = optStringArray(c, 'Entrypoint', cw);
    const cmd = optStringArray(c, 'Cmd', cw);
    const env = optStringArray(c, 'Env', cw);
    const workingDir = optString(c, 'WorkingDir', cw);
    const user = optString(c, 'User', cw);
    const labels = optStringMap(c, 'Labels', cw);
    const stopSignal = optString(c, 'StopSignal', cw);
    let exposedPorts: string[] | undefined;
    if (c.ExposedPorts !== undefined && c.ExposedPorts !== null) {
      if (!isObject(c.ExposedPorts)) throw new ImageFormatError(`${cw}: ExposedPorts is not an object`);
      exposedPorts = Object.keys(c.ExposedPorts).sort();
    }
    if (entrypoint) runtime.entrypoint = entrypoint;
    if (cmd) runtime.cmd = cmd;
    if (env) runtime.env = env;
    // Docker writes "" for unset strings; an empty working dir or user means the default.
    if (workingDir) runtime.workingDir = workingDir;
    if (user) runtime.user = user;
    if (labels) runtime.labels = labels;
    if (exposedPorts) runtime.exposedPorts = exposedPorts;
    if (stopSignal) runtime.stopSignal = stopSignal;
  }
  return {
    ...(os ? { os } : {}),
    ...(architecture ? { architecture } : {}),
    ...(variant ? { variant } : {}),
    ...(diffIds ? { diffIds } : {}),
    runtime,
  };
}
