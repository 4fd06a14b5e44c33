/**
 * Writing images: an OCI layout directory (`oci:DIR[:TAG]`), a tar of one (`oci-archive:FILE[:TAG]`),
 * a `docker save` archive (`docker-archive:FILE[:REF]`) or a registry (`docker://HOST/REPO[:TAG]`,
 * see docker-push.ts), from layers given as digest, size, diff_id and a byte stream, and a config JSON.
 *
 * - Every layer is hashed while it is copied: its length, digest and (decompressing alongside)
 *   diff_id must be what the spec says, or the write fails naming the layer and leaves nothing.
 * - Atomic: archives are written to a temp file beside FILE and renamed over it; a new layout is
 *   built in a temp directory beside DIR and renamed into place (DIR may exist if empty). An
 *   existing layout gets its new blobs staged inside it, moved into blobs/sha256 once all are
 *   verified, and then index.json replaced atomically (entries with the same tag are dropped).
 *   Concurrent writers to one layout race on index.json: serialize them.
 * - Deterministic: config and manifest JSON have a fixed form (config keys sorted), archive
 *   members have fixed metadata, so the same spec gives the same digests and archive bytes.
 * - docker-archive layers are stored as given (gzip stays gzip) under `blobs/sha256/<digest>`, as
 *   docker ≥ 25 names them; the config is `blobs/sha256/<digest>` too. `docker load`, `podman load`
 *   and skopeo (containers/image) decompress layer files themselves; only the config's diff_ids
 *   name uncompressed content. The archive holds manifest.json and the blobs, no legacy files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Transform } from 'node:stream';
import { finished } from 'node:stream/promises';
import { BootfsError, errnoCode, IoError, UsageError } from '../errors.js';
import type { RegistryOptions } from '../registry/options.js';
import { writeFileAtomic } from '../util/files.js';
import { blobPath, digestProblem, sha256Digest, short } from './digest.js';
import { ImageFormatError } from './errors.js';
import {
  DOCKER_LAYER_GZIP,
  DOCKER_LAYER_TAR,
  DOCKER_LAYER_ZSTD,
  layerCompression,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_LAYER_GZIP,
  OCI_LAYER_TAR,
  OCI_LAYER_ZSTD,
  OCI_MANIFEST,
} from './media-types.js';
import { decompressor } from './layer-stream.js';
import { MAX_DOCUMENT_SIZE, readDocument, readRange } from './read.js';
import { formatImageRef, parseImageRef } from './ref.js';
import { MAX_LAYERS, parseConfig, parseIndex, REF_NAME_ANNOTATION } from './schema.js';
import type { PushStats } from './docker-push.js';
import { TAR_END, tarHeader, tarPadding, type LayerBlob } from './tar-write.js';
import type { OpenedImage } from './types.js';

/** A layer to write: its facts, and its stored bytes on demand. */
export interface WriteLayer {
  /** A layer media type bootfs reads (OCI or Docker; Docker types become their OCI twins in OCI manifests). */
  mediaType: string;
  /** sha256 of the stored bytes. */
  digest: string;
  /** Stored size in bytes. */
  size: number;
  /** sha256 of the uncompressed tar. */
  diffId: string;
  /** The stored (compressed) bytes; opened once per write (again when an upload restarts), verified while copied. */
  open(): AsyncIterable<Uint8Array>;
  /** `host[:port]/repo` holding the same blob (a docker:// source): a push to that registry mounts it instead of uploading. */
  from?: string;
}

/** What writeImage writes. */
export interface WriteImageSpec {
  /** Bottom to top. */
  layers: WriteLayer[];
  /**
   * The full image config JSON (architecture and os required). rootfs.diff_ids is filled from the
   * layers when absent, and extended when it lists the diff_ids of the bottom layers only (a base
   * image's config); history gets one `{created_by: "bootfs"}` entry per layer it does not cover.
   * Keys are written sorted.
   */
  config: Record<string, unknown>;
  /** Manifest annotations. */
  annotations?: Record<string, string>;
}

/** Options of writeImage. */
export interface WriteImageOptions {
  signal?: AbortSignal;
  /** docker:// destinations: credentials, TLS and retry settings of the registry client. */
  registry?: RegistryOptions;
}

/** What writeImage wrote. */
export interface WrittenImage {
  /** Digest of the OCI manifest (docker-archive stores none: the one the same spec gives in a layout). */
  manifestDigest: string;
  configDigest: string;
  /** docker:// only: what the push did (blobs uploaded, mounted, already there; whether the tag moved). */
  push?: PushStats;
}

/** Docker layer media types → their OCI twins (same bytes; an OCI manifest should not mix families). */
const OCI_TWIN: Readonly<Record<string, string>> = {
  [DOCKER_LAYER_TAR]: OCI_LAYER_TAR,
  [DOCKER_LAYER_GZIP]: OCI_LAYER_GZIP,
  [DOCKER_LAYER_ZSTD]: OCI_LAYER_ZSTD,
  'application/vnd.docker.image.rootfs.foreign.diff.tar': 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.zstd': 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
};
const OCI_LAYOUT_FILE = Buffer.from('{"imageLayoutVersion":"1.0.0"}');
/** The history entry added for a layer the config's history does not cover. */
const HISTORY_ENTRY = { created_by: 'bootfs' };

interface Prepared {
  /** The destination, for messages. */
  dest: string;
  layers: WriteLayer[];
  config: Buffer;
  configDigest: string;
  manifest: Buffer;
  manifestDigest: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `v` with every object's keys sorted (arrays keep their order). */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isObject(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
}

function checkLayer(l: WriteLayer, i: number): void {
  const where = `spec.layers[${i}]`;
  if (!isObject(l)) throw new UsageError(`${where} is not an object`);
  if (typeof l.mediaType !== 'string' || layerCompression(l.mediaType) === undefined) {
    throw new UsageError(`${where}.mediaType ${JSON.stringify(short(String(l.mediaType)))} is not a layer media type bootfs writes`);
  }
  for (const key of ['digest', 'diffId'] as const) {
    const problem = digestProblem(l[key]);
    if (problem !== undefined) throw new UsageError(`${where}.${key}: ${problem}`);
  }
  if (!Number.isSafeInteger(l.size) || l.size < 0) throw new UsageError(`${where}.size must be a non-negative integer`);
  if (layerCompression(l.mediaType) === 'none' && l.digest !== l.diffId) {
    throw new UsageError(`${where}: an uncompressed layer's digest is its diff_id (${l.digest} ≠ ${l.diffId})`);
  }
  if (typeof l.open !== 'function') throw new UsageError(`${where}.open is not a function`);
}

/** The config to write: a copy of spec.config with rootfs and history completed (see WriteImageSpec). */
function completeConfig(spec: WriteImageSpec): Record<string, unknown> {
  if (!isObject(spec.config)) throw new UsageError('spec.config must be an object (the image config JSON)');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(JSON.stringify(spec.config)) as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`spec.config is not JSON-serialisable: ${(err as Error).message}`);
  }
  for (const key of ['architecture', 'os'] as const) {
    if (typeof config[key] !== 'string' || config[key] === '') throw new UsageError(`spec.config.${key} must be a non-empty string`);
  }
  const diffIds = spec.layers.map((l) => l.diffId);
  const rootfs = config.rootfs;
  if (rootfs !== undefined && rootfs !== null && !isObject(rootfs)) throw new UsageError('spec.config.rootfs must be an object');
  const given = isObject(rootfs) ? rootfs.diff_ids : undefined;
  if (given !== undefined && given !== null) {
    const prefix = Array.isArray(given) && given.length <= diffIds.length && given.every((d, i) => d === diffIds[i]);
    if (!prefix) throw new UsageError("spec.config.rootfs.diff_ids does not match the layers' diff_ids (omit it to have it filled in)");
  }
  config.rootfs = { ...(isObject(rootfs) ? rootfs : {}), type: 'layers', diff_ids: diffIds };

  const history = config.history ?? [];
  if (!Array.isArray(history) || !history.every(isObject)) throw new UsageError('spec.config.history must be a list of objects');
  const covered = history.filter((h) => h.empty_layer !== true).length;
  if (covered > diffIds.length) throw new UsageError(`spec.config.history describes ${covered} layers, more than the ${diffIds.length} given`);
  config.history = [...history, ...Array.from({ length: diffIds.length - covered }, () => ({ ...HISTORY_ENTRY }))];
  return config;
}

/** Check the spec and compute the config and manifest bytes. */
function prepare(spec: WriteImageSpec, dest: string): Prepared {
  if (!isObject(spec) || !Array.isArray(spec.layers)) throw new UsageError('spec.layers must be a list of layers');
  if (spec.layers.length > MAX_LAYERS) throw new UsageError(`spec.layers: ${spec.layers.length} layers is over the limit of ${MAX_LAYERS}`);
  spec.layers.forEach(checkLayer);
  const config = completeConfig(spec);
  try {
    parseConfig(config, 'spec.config');
  } catch (err) {
    if (err instanceof ImageFormatError) throw new UsageError(err.message);
    throw err;
  }
  const configBytes = Buffer.from(JSON.stringify(sortKeys(config)));
  if (configBytes.length > MAX_DOCUMENT_SIZE) throw new UsageError(`spec.config is ${configBytes.length} bytes as JSON, over the ${MAX_DOCUMENT_SIZE >> 20} MiB limit`);
  const configDigest = sha256Digest(configBytes);

  const annotations = spec.annotations;
  if (annotations !== undefined && (!isObject(annotations) || !Object.values(annotations).every((v) => typeof v === 'string'))) {
    throw new UsageError('spec.annotations must map strings to strings');
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: configBytes.length },
    layers: spec.layers.map((l) => ({ mediaType: OCI_TWIN[l.mediaType] ?? l.mediaType, digest: l.digest, size: l.size })),
    ...(annotations && Object.keys(annotations).length > 0 ? { annotations: sortKeys(annotations) } : {}),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { dest, layers: spec.layers, config: configBytes, configDigest, manifest: manifestBytes, manifestDigest: sha256Digest(manifestBytes) };
}

type Sink = (b: Uint8Array) => Promise<void>;

/**
 * Copy layer i to `sink`, checking its length, digest and diff_id on the way; ImageFormatError
 * naming the layer on a mismatch (after the last byte, so the caller discards what it wrote).
 */
async function copyLayer(p: Prepared, i: number, sink: Sink, signal?: AbortSignal): Promise<void> {
  const layer = p.layers[i]!;
  const name = `layer ${i} (${layer.digest}) for ${p.dest}`;
  const compression = layerCompression(layer.mediaType)!;
  const stored = createHash('sha256');
  const plain = createHash('sha256');
  let dec: Transform | undefined;
  let decodeError: Error | undefined;
  if (compression !== 'none') {
    dec = decompressor(compression);
    dec.on('data', (b: Buffer) => plain.update(b));
    dec.on('error', (err: Error) => (decodeError ??= err));
  }
  let n = 0;
  try {
    let source: AsyncIterable<Uint8Array>;
    try {
      source = layer.open();
    } catch (err) {
      throw new IoError(`${name}: cannot open it: ${(err as Error).message}`, err);
    }
    try {
      for await (const b of source) {
        signal?.throwIfAborted();
        n += b.length;
        if (n > layer.size) throw new ImageFormatError(`${name}: longer than the ${layer.size} bytes its size says`);
        stored.update(b);
        if (dec && decodeError === undefined && !dec.destroyed && !dec.write(b)) await once(dec, 'drain').catch(() => undefined);
        await sink(b);
      }
    } catch (err) {
      // Ours (mismatch, sink's IoError) or an abort pass through; anything else came from the source.
      if (err instanceof BootfsError || signal?.aborted) throw err;
      throw new IoError(`${name}: cannot read it: ${(err as Error).message}`, err);
    }
    if (dec && decodeError === undefined && !dec.destroyed) {
      dec.end();
      await finished(dec).catch((err: Error) => (decodeError ??= err));
    }
  } finally {
    dec?.destroy();
  }
  if (n !== layer.size) throw new ImageFormatError(`${name}: truncated (${n} of the ${layer.size} bytes its size says)`);
  const got = `sha256:${stored.digest('hex')}`;
  if (got !== layer.digest) throw new ImageFormatError(`${name}: digest mismatch (got ${got})`);
  if (decodeError !== undefined) throw new ImageFormatError(`${name}: ${compression} data does not decode (${decodeError.message})`, decodeError);
  const plainGot = dec ? `sha256:${plain.digest('hex')}` : got;
  if (plainGot !== layer.diffId) throw new ImageFormatError(`${name}: uncompressed content does not match diff_id ${layer.diffId} (got ${plainGot})`);
}

/** A temp name beside `final` (dot-prefixed, .tmp: never mistaken for the real thing). */
function tempBeside(final: string): string {
  return path.join(path.dirname(final), `.${path.basename(final)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Fill a new file `file` through a sink (IoError naming `what` when writing fails); fsync it. The caller removes it on failure. */
async function fillFile(file: string, fill: (sink: Sink) => Promise<void>, what: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'wx', 0o644);
  } catch (err) {
    const hint = errnoCode(err) === 'ENOENT' ? ` (does ${path.dirname(file)} exist?)` : '';
    throw new IoError(`cannot create ${what}: ${(err as Error).message}${hint}`, err);
  }
  try {
    await fill(async (b) => {
      let done = 0;
      try {
        while (done < b.length) done += (await fh.write(b, done, b.length - done)).bytesWritten;
      } catch (err) {
        throw new IoError(`cannot write ${what}: ${(err as Error).message}`, err);
      }
    });
    await fh.sync().catch((err: unknown) => {
      throw new IoError(`cannot write ${what}: ${(err as Error).message}`, err);
    });
  } finally {
    await fh.close();
  }
}

/** The blobs of the image, each once: layers (bottom to top), config, manifest. */
function blobs(p: Prepared): { digest: string; size: number; bytes?: Buffer; layer?: number }[] {
  const out = new Map<string, { digest: string; size: number; bytes?: Buffer; layer?: number }>();
  p.layers.forEach((l, i) => out.has(l.digest) || out.set(l.digest, { digest: l.digest, size: l.size, layer: i }));
  out.set(p.configDigest, { digest: p.configDigest, size: p.config.length, bytes: p.config });
  out.set(p.manifestDigest, { digest: p.manifestDigest, size: p.manifest.length, bytes: p.manifest });
  return [...out.values()];
}

/** index.json with this image's entry (replacing entries with the same tag, or the same untagged digest). */
function indexJson(existing: Record<string, unknown> | undefined, tag: string | undefined, p: Prepared): Buffer {
  const refName = (d: unknown): unknown => (isObject(d) && isObject(d.annotations) ? d.annotations[REF_NAME_ANNOTATION] : undefined);
  const old = (existing?.manifests as unknown[] | undefined) ?? [];
  const kept = old.filter((d) => (tag !== undefined ? refName(d) !== tag : !(isObject(d) && d.digest === p.manifestDigest && refName(d) === undefined)));
  const entry = { mediaType: OCI_MANIFEST, digest: p.manifestDigest, size: p.manifest.length, ...(tag !== undefined ? { annotations: { [REF_NAME_ANNOTATION]: tag } } : {}) };
  return Buffer.from(JSON.stringify({ ...(existing ?? { schemaVersion: 2, mediaType: OCI_INDEX }), manifests: [...kept, entry] }));
}

/** Write one blob file (a layer verified while copied, or JSON bytes). */
async function writeBlob(file: string, b: ReturnType<typeof blobs>[number], p: Prepared, signal?: AbortSignal): Promise<void> {
  await fillFile(file, (sink) => (b.bytes ? sink(b.bytes) : copyLayer(p, b.layer!, sink, signal)), `blob ${b.digest} for ${p.dest}`);
}

/** Is `dir` absent, an empty directory, or an OCI layout? Anything else is refused. */
async function layoutState(dir: string, dest: string): Promise<'new' | 'layout'> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return 'new';
    if (code === 'ENOTDIR') throw new UsageError(`${dest}: ${dir} is a file, not a directory (to write a tar of a layout use oci-archive:${dir})`);
    throw new IoError(`cannot read ${dir}: ${(err as Error).message}`, err);
  }
  if (entries.length === 0) return 'new';
  if (entries.includes('oci-layout')) return 'layout';
  throw new UsageError(`${dest}: ${dir} exists and is not an OCI layout (no oci-layout file); choose a new or empty directory`);
}

async function writeOciDir(dir: string, tag: string | undefined, p: Prepared, signal?: AbortSignal): Promise<void> {
  if ((await layoutState(dir, p.dest)) === 'new') {
    const tmp = tempBeside(dir);
    try {
      try {
        await mkdir(tmp); // not recursive: the parent must exist, as for archives
        await mkdir(path.join(tmp, 'blobs', 'sha256'), { recursive: true });
      } catch (err) {
        const hint = errnoCode(err) === 'ENOENT' ? ` (does ${path.dirname(dir)} exist?)` : '';
        throw new IoError(`cannot create ${dir}: ${(err as Error).message}${hint}`, err);
      }
      for (const b of blobs(p)) await writeBlob(path.join(tmp, blobPath(b.digest)), b, p, signal);
      await fillFile(path.join(tmp, 'oci-layout'), (sink) => sink(OCI_LAYOUT_FILE), `oci-layout of ${p.dest}`);
      await fillFile(path.join(tmp, 'index.json'), (sink) => sink(indexJson(undefined, tag, p)), `index.json of ${p.dest}`);
      // rename(2) replaces an empty directory, so an empty DIR is filled atomically too.
      await rename(tmp, dir).catch((err: unknown) => {
        throw new IoError(`cannot move the new layout into place at ${dir}: ${(err as Error).message}`, err);
      });
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    return;
  }

  // An existing layout: check it, stage new blobs inside it, move them in, then swap index.json.
  const read = async (name: string) => readDocument({ file: path.join(dir, name), offset: 0, size: (await stat(path.join(dir, name))).size }, {}, `${name} of ${p.dest}`);
  const version = ((await read('oci-layout')).value as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
  if (typeof version !== 'string' || !/^1\./.test(version)) throw new ImageFormatError(`oci-layout of ${p.dest}: imageLayoutVersion ${JSON.stringify(version)} is not supported (expected 1.x)`);
  let existing: Record<string, unknown> | undefined;
  try {
    existing = (await read('index.json')).value as Record<string, unknown>;
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  if (existing !== undefined) parseIndex(existing, OCI_INDEX, `index.json of ${p.dest}`);

  const staging = path.join(dir, `.bootfs-write.${randomBytes(6).toString('hex')}.tmp`);
  const io = (what: string) => (err: unknown) => {
    throw new IoError(`cannot ${what} in ${dir}: ${(err as Error).message}`, err);
  };
  try {
    await mkdir(staging).catch(io('create a staging directory'));
    const staged: string[] = [];
    for (const b of blobs(p)) {
      // A blob already present with the right size is kept: blobs are content-addressed, and
      // readers (openImage, skopeo, umoci) verify its digest whenever they use it.
      const have = await stat(path.join(dir, blobPath(b.digest))).catch(() => undefined);
      if (have?.isFile() && have.size === b.size) continue;
      await writeBlob(path.join(staging, b.digest.slice('sha256:'.length)), b, p, signal);
      staged.push(b.digest);
    }
    // Blobs first, index.json last: a reader never sees an entry whose blobs are missing.
    await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true }).catch(io('create blobs/sha256'));
    for (const d of staged) await rename(path.join(staging, d.slice('sha256:'.length)), path.join(dir, blobPath(d))).catch(io(`move blob ${d} into place`));
    await writeFileAtomic(path.join(dir, 'index.json'), indexJson(existing, tag, p), `index.json of ${p.dest}`);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** A member of an archive to write. */
type Member = { name: string; dir: true } | { name: string; blob: ReturnType<typeof blobs>[number] } | { name: string; bytes: Buffer };

/** Write a tar archive of `members` to `file` (temp file, then rename). */
async function writeArchive(file: string, members: Member[], p: Prepared, signal?: AbortSignal): Promise<void> {
  const tmp = tempBeside(file);
  const fixed = { mode: 0o644, uid: 0, gid: 0, mtimeSec: 0 };
  try {
    await fillFile(
      tmp,
      async (sink) => {
        for (const m of members) {
          if ('dir' in m) {
            await sink(tarHeader({ ...fixed, path: m.name, type: 'dir', mode: 0o755, size: 0 }));
            continue;
          }
          const size = 'bytes' in m ? m.bytes.length : m.blob.size;
          await sink(tarHeader({ ...fixed, path: m.name, type: 'file', size }));
          if ('bytes' in m) await sink(m.bytes);
          else if (m.blob.bytes) await sink(m.blob.bytes);
          else await copyLayer(p, m.blob.layer!, sink, signal);
          await sink(tarPadding(size));
        }
        await sink(TAR_END);
      },
      p.dest,
    );
    await rename(tmp, file).catch((err: unknown) => {
      throw new IoError(`cannot move the archive into place at ${file}: ${(err as Error).message}`, err);
    });
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** The RepoTag for a docker-archive REF (`:latest` when it has no tag). */
function repoTag(ref: string): string {
  return ref.lastIndexOf(':') > ref.lastIndexOf('/') ? ref : `${ref}:latest`;
}

/**
 * Write an image to `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:REF]` (see
 * the file comment). Archives replace FILE; a layout directory is created or added to. The parent
 * directory must exist.
 */
export async function writeImage(dest: string, spec: WriteImageSpec, opts: WriteImageOptions = {}): Promise<WrittenImage> {
  const ref = parseImageRef(dest);
  if (ref.transport === 'dir') throw new UsageError(`'${short(dest)}': dir: is a root filesystem, not an image destination; write oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or docker://HOST/REPO[:TAG]`);
  if (ref.digest !== undefined) throw new UsageError(`'${short(dest)}': a destination takes a tag, not a digest`);
  const p = prepare(spec, formatImageRef(ref));
  const { signal } = opts;
  signal?.throwIfAborted();
  const all = blobs(p);
  if (ref.transport === 'docker') {
    // Loaded on use: the registry client is not needed for local destinations.
    const { pushImage, sinkToStream } = await import('./docker-push.js');
    const push = await pushImage(
      ref,
      {
        blobs: all
          .filter((b) => b.layer !== undefined)
          .map((b) => ({
            digest: b.digest,
            size: b.size,
            // Verified while it streams; the upload holds back the last bytes until the checks passed.
            source: { size: b.size, open: () => sinkToStream((sink) => copyLayer(p, b.layer!, sink, signal)) },
            ...(p.layers[b.layer!]!.from !== undefined ? { from: p.layers[b.layer!]!.from! } : {}),
          })),
        config: { digest: p.configDigest, bytes: p.config },
        manifest: { digest: p.manifestDigest, bytes: p.manifest, mediaType: OCI_MANIFEST },
      },
      { ...(opts.registry ? { registry: opts.registry } : {}), ...(signal ? { signal } : {}) },
    );
    return { manifestDigest: p.manifestDigest, configDigest: p.configDigest, push };
  }
  if (ref.transport === 'oci') {
    await writeOciDir(ref.path, ref.tag, p, signal);
  } else if (ref.transport === 'oci-archive') {
    const members: Member[] = [
      { name: 'oci-layout', bytes: OCI_LAYOUT_FILE },
      { name: 'index.json', bytes: indexJson(undefined, ref.tag, p) },
      { name: 'blobs', dir: true },
      { name: 'blobs/sha256', dir: true },
      ...all.map((b) => ({ name: blobPath(b.digest), blob: b })),
    ];
    await writeArchive(ref.path, members, p, signal);
  } else {
    const manifestJson = [{ Config: blobPath(p.configDigest), RepoTags: ref.tag !== undefined ? [repoTag(ref.tag)] : [], Layers: p.layers.map((l) => blobPath(l.digest)) }];
    const members: Member[] = [
      { name: 'manifest.json', bytes: Buffer.from(JSON.stringify(manifestJson)) },
      { name: 'blobs', dir: true },
      { name: 'blobs/sha256', dir: true },
      // The OCI manifest is not part of a docker archive.
      ...all.filter((b) => b.digest !== p.manifestDigest).map((b) => ({ name: blobPath(b.digest), blob: b })),
    ];
    await writeArchive(ref.path, members, p, signal);
  }
  return { manifestDigest: p.manifestDigest, configDigest: p.configDigest };
}

/** A WriteLayer reading a blob written by writeTarLayer back from its file. */
export function layerFromBlob(blob: LayerBlob): WriteLayer {
  return {
    mediaType: blob.mediaType,
    digest: blob.digest,
    size: blob.size,
    diffId: blob.diffId,
    open: () => readRange({ file: blob.file, offset: 0, size: blob.size }, `layer file ${blob.file}`),
  };
}

async function measure(it: AsyncIterable<Uint8Array>): Promise<{ digest: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const b of it) {
    h.update(b);
    bytes += b.length;
  }
  return { digest: `sha256:${h.digest('hex')}`, bytes };
}

/**
 * A WriteLayer copying layer i of an opened image unchanged (through openStoredLayer). The layer is
 * read once beforehand only when a fact is missing: a config without diff_ids (the diff_id is
 * computed), or a docker-archive layer without a known stored digest (it is copied uncompressed,
 * as openStoredLayer yields it, and its size is measured).
 */
export async function layerFromImage(img: OpenedImage, i: number, opts: { signal?: AbortSignal } = {}): Promise<WriteLayer> {
  const l = img.layers[i];
  if (!Number.isInteger(i) || l === undefined) throw new RangeError(`${img.reference} has ${img.layers.length} layers; layer ${i} requested`);
  const open = (): AsyncIterable<Uint8Array> => img.openStoredLayer(i, opts);
  // A registry image's blobs can be mounted into another repository of the same registry.
  const from = img.reference.startsWith('docker://') ? parseImageRef(img.reference).path : undefined;
  if (l.compression !== 'none' && l.digest === l.diffId) {
    const { bytes } = await measure(open());
    return { mediaType: OCI_LAYER_TAR, digest: l.diffId, size: bytes, diffId: l.diffId, open };
  }
  const diffId = l.diffId ?? (await measure(img.openLayer(i, opts))).digest;
  return { mediaType: l.mediaType, digest: l.digest, size: l.size, diffId, open, ...(from !== undefined ? { from } : {}) };
}
