/**
 * The layout of a registry-backed chunk store, `oci://host[:port]/repo[:tag]` (spec in
 * docs/remote-stores.md, "Registry stores"). Everything here is pure: byte and JSON layouts,
 * their builders and their hostile-input parsers. The store itself is src/store/registry.ts.
 *
 *   tag (default `bootfs-chunks`) ──► OCI image index, artifactType application/vnd.bootfs.chunkstore.v1
 *        manifests[] ──► segment: OCI image manifest, artifactType application/vnd.bootfs.chunks.v1
 *                          config    = the OCI empty blob `{}`
 *                          layers[0] = chunk map blob (application/vnd.bootfs.chunkmap.v1)
 *                          layers[1…] = one blob per chunk, its exact `.cacnk` bytes
 *                                       (application/vnd.bootfs.chunk.v1+zstd), in chunk-ID order
 *
 * Every chunk blob is a layer of a manifest reachable from the tag, so `registry garbage-collect`
 * keeps it. The chunk map says which blob holds which chunk, so a reader needs one request per chunk.
 */
import { MAX_DOCUMENT_SIZE } from '../oci/read.js';
import { BootfsError, ExitCode } from '../errors.js';
import { SHA256_DIGEST, sha256Digest, short } from '../oci/digest.js';
import { OCI_INDEX, OCI_MANIFEST } from '../oci/media-types.js';

export { DEFAULT_TAG } from './registry-location.js';
/** artifactType of the index the tag points at: what marks a tag as a bootfs chunk store. */
export const STORE_ARTIFACT_TYPE = 'application/vnd.bootfs.chunkstore.v1';
/** artifactType of a segment manifest (and of its descriptor in the index). */
export const SEGMENT_ARTIFACT_TYPE = 'application/vnd.bootfs.chunks.v1';
/** Media type of a chunk layer: the stored form, one zstd frame (readers also accept gzip, as for .cacnk files). */
export const CHUNK_MEDIA_TYPE = 'application/vnd.bootfs.chunk.v1+zstd';
/** Media type of a chunk map layer (binary layout below). */
export const CHUNK_MAP_MEDIA_TYPE = 'application/vnd.bootfs.chunkmap.v1';
/** The OCI 1.1 empty descriptor: the config of an artifact manifest that has none. */
export const EMPTY_MEDIA_TYPE = 'application/vnd.oci.empty.v1+json';
export const EMPTY_BLOB = Buffer.from('{}');
export const EMPTY_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

/** Index-descriptor annotations: let a reader fetch a segment's map without its manifest. */
export const ANNOTATION_MAP_DIGEST = 'org.bootfs.chunkmap.digest';
export const ANNOTATION_MAP_SIZE = 'org.bootfs.chunkmap.size';
/** Number of chunks in a segment (on the manifest and on its descriptor in the index). */
export const ANNOTATION_COUNT = 'org.bootfs.chunks.count';

/**
 * Chunks per segment written by bootfs. A chunk layer descriptor is ~130 bytes of JSON, so 5000
 * make a ~650 KB manifest: far below distribution's 4 MiB manifest cap (and other registries').
 */
export const SEGMENT_MAX_CHUNKS = 5000;
/** Most entries one chunk map may hold: a 4 MiB manifest cannot list more layers than this. */
export const MAX_MAP_ENTRIES = 65_536;
/** Most segments an index may list: 4 MiB of descriptors of ~300 bytes each is ~14 000. */
export const MAX_SEGMENTS = 16_384;
/** Largest stored chunk: casync's cap on a chunk body, as for HTTP stores. */
export const MAX_STORED_CHUNK_BYTES = 16 * 1024 * 1024;

/** The store's metadata in the registry (index, segment manifest or chunk map) is malformed. */
export class StoreFormatError extends BootfsError {
  constructor(message: string) {
    super(message, { code: 'ERR_INDEX_FORMAT', exitCode: ExitCode.integrity });
  }
}

// ------------------------------------------------------------------------------------------------
// Chunk map: which blob holds which chunk.
//
//   offset  size  field (integers big-endian)
//   0       8     magic "BFSCMAP1"
//   8       4     u32 entry count N (≤ MAX_MAP_ENTRIES)
//   12      4     u32 reserved, 0
//   16      68·N  entries, strictly ascending by chunk ID (no duplicates):
//                   32  chunk ID (SHA-512/256 or SHA-256 of the plain chunk)
//                   32  SHA-256 of the stored bytes = the blob digest
//                    4  u32 stored size in bytes (1 … 16 MiB)
//
// The same set of entries always gives the same bytes (so the same blob digest).
// ------------------------------------------------------------------------------------------------

const MAP_MAGIC = Buffer.from('BFSCMAP1', 'latin1');
export const MAP_HEADER_BYTES = 16;
export const MAP_ENTRY_BYTES = 68;
/** Largest chunk map blob accepted. */
export const MAX_MAP_BYTES = MAP_HEADER_BYTES + MAP_ENTRY_BYTES * MAX_MAP_ENTRIES;

/** One chunk of a map: ID and blob digest as 32 raw bytes each. */
export interface MapEntry {
  id: Uint8Array;
  sha256: Uint8Array;
  size: number;
}

/** Encode entries (any order, duplicates of one ID allowed only if identical) as a chunk map. */
export function encodeChunkMap(entries: readonly MapEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => Buffer.compare(a.id, b.id));
  const unique: MapEntry[] = [];
  for (const e of sorted) {
    const prev = unique[unique.length - 1];
    if (prev && Buffer.compare(prev.id, e.id) === 0) {
      if (Buffer.compare(prev.sha256, e.sha256) !== 0) throw new Error(`chunk ${Buffer.from(e.id).toString('hex')} listed with two blobs`);
      continue;
    }
    unique.push(e);
  }
  if (unique.length > MAX_MAP_ENTRIES) throw new RangeError(`chunk map of ${unique.length} entries is over ${MAX_MAP_ENTRIES}`);
  const out = Buffer.alloc(MAP_HEADER_BYTES + MAP_ENTRY_BYTES * unique.length);
  MAP_MAGIC.copy(out, 0);
  out.writeUInt32BE(unique.length, 8);
  unique.forEach((e, i) => {
    const off = MAP_HEADER_BYTES + i * MAP_ENTRY_BYTES;
    if (e.id.length !== 32 || e.sha256.length !== 32) throw new RangeError('chunk map entry needs a 32-byte ID and a 32-byte sha256');
    if (!Number.isSafeInteger(e.size) || e.size < 1 || e.size > MAX_STORED_CHUNK_BYTES) throw new RangeError(`chunk map entry size ${e.size} out of range`);
    out.set(e.id, off);
    out.set(e.sha256, off + 32);
    out.writeUInt32BE(e.size, off + 64);
  });
  return out;
}

/** A parsed, validated chunk map (a view of its blob). */
export class ChunkMap {
  private constructor(
    private readonly buf: Buffer,
    readonly count: number,
  ) {}

  /** Validate `buf` as a chunk map; `what` names it in errors (StoreFormatError). */
  static parse(buf: Buffer, what: string): ChunkMap {
    const bad = (reason: string) => new StoreFormatError(`chunk map ${what} is invalid: ${reason}`);
    if (buf.length < MAP_HEADER_BYTES || !buf.subarray(0, 8).equals(MAP_MAGIC)) throw bad('bad magic (not a bootfs chunk map)');
    const count = buf.readUInt32BE(8);
    if (buf.readUInt32BE(12) !== 0) throw bad('reserved header field is not 0');
    if (count > MAX_MAP_ENTRIES) throw bad(`${count} entries, more than ${MAX_MAP_ENTRIES}`);
    if (buf.length !== MAP_HEADER_BYTES + count * MAP_ENTRY_BYTES) throw bad(`${buf.length} bytes for ${count} entries`);
    for (let i = 0; i < count; i++) {
      const off = MAP_HEADER_BYTES + i * MAP_ENTRY_BYTES;
      if (i > 0 && buf.compare(buf, off - MAP_ENTRY_BYTES, off - MAP_ENTRY_BYTES + 32, off, off + 32) <= 0) throw bad(`entry ${i} is not in ascending chunk-ID order`);
      const size = buf.readUInt32BE(off + 64);
      if (size < 1 || size > MAX_STORED_CHUNK_BYTES) throw bad(`entry ${i} has stored size ${size}`);
    }
    return new ChunkMap(buf, count);
  }

  /** The raw ID of entry `i` (a view). */
  id(i: number): Buffer {
    const off = MAP_HEADER_BYTES + i * MAP_ENTRY_BYTES;
    return this.buf.subarray(off, off + 32);
  }

  /** True when entry `i` has ID `id`. */
  idEquals(i: number, id: Uint8Array): boolean {
    const off = MAP_HEADER_BYTES + i * MAP_ENTRY_BYTES;
    return this.buf.compare(id, 0, 32, off, off + 32) === 0;
  }

  /** Entry `i` (views into the map). */
  entry(i: number): MapEntry {
    const off = MAP_HEADER_BYTES + i * MAP_ENTRY_BYTES;
    return { id: this.buf.subarray(off, off + 32), sha256: this.buf.subarray(off + 32, off + 64), size: this.buf.readUInt32BE(off + 64) };
  }

  /** Blob digest (`sha256:<hex>`) and stored size of entry `i`. */
  blob(i: number): { digest: string; size: number } {
    const off = MAP_HEADER_BYTES + i * MAP_ENTRY_BYTES;
    return { digest: `sha256:${this.buf.toString('hex', off + 32, off + 64)}`, size: this.buf.readUInt32BE(off + 64) };
  }
}

// ------------------------------------------------------------------------------------------------
// Segment manifests and the index.
// ------------------------------------------------------------------------------------------------

/** An OCI descriptor as bootfs writes and reads them. */
export interface Descriptor {
  mediaType: string;
  artifactType?: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A segment manifest ready to put: its bytes, digest and the descriptor the index lists it by. */
export interface BuiltSegment {
  body: Buffer;
  digest: string;
  /** Digest of the chunk map blob (layers[0]). */
  mapDigest: string;
  descriptor: Descriptor;
}

/**
 * The segment manifest for a chunk map (already uploaded as `mapBody`'s blob): config = empty blob,
 * layers = the map, then every chunk blob in map order. Deterministic for a given map.
 */
export function buildSegment(map: ChunkMap, mapBody: Buffer): BuiltSegment {
  const mapDigest = sha256Digest(mapBody);
  const layers: Descriptor[] = [{ mediaType: CHUNK_MAP_MEDIA_TYPE, digest: mapDigest, size: mapBody.length }];
  for (let i = 0; i < map.count; i++) layers.push({ mediaType: CHUNK_MEDIA_TYPE, ...map.blob(i) });
  const count = String(map.count);
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: SEGMENT_ARTIFACT_TYPE,
    config: { mediaType: EMPTY_MEDIA_TYPE, digest: EMPTY_DIGEST, size: EMPTY_BLOB.length },
    layers,
    annotations: { [ANNOTATION_COUNT]: count },
  };
  const body = Buffer.from(JSON.stringify(manifest));
  if (body.length > MAX_DOCUMENT_SIZE) throw new RangeError(`segment manifest of ${body.length} bytes is over ${MAX_DOCUMENT_SIZE}`);
  const digest = sha256Digest(body);
  return {
    body,
    digest,
    mapDigest,
    descriptor: {
      mediaType: OCI_MANIFEST,
      artifactType: SEGMENT_ARTIFACT_TYPE,
      digest,
      size: body.length,
      annotations: { [ANNOTATION_COUNT]: count, [ANNOTATION_MAP_DIGEST]: mapDigest, [ANNOTATION_MAP_SIZE]: String(mapBody.length) },
    },
  };
}

/** The index the tag points at: `segments` (and entries bootfs does not know, kept as they are), sorted by digest. */
export function buildIndex(descriptors: readonly Descriptor[]): Buffer {
  const byDigest = new Map(descriptors.map((d) => [d.digest, d]));
  const manifests = [...byDigest.values()].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, artifactType: STORE_ARTIFACT_TYPE, manifests }));
  if (body.length > MAX_DOCUMENT_SIZE) throw new RangeError(`store index of ${body.length} bytes is over ${MAX_DOCUMENT_SIZE}`);
  return body;
}

/** A segment as the index lists it. `map` is undefined when the descriptor carries no map annotations. */
export interface SegmentRef {
  descriptor: Descriptor;
  count?: number;
  map?: { digest: string; size: number };
}

/** A parsed store index: our segments, and other entries (kept on rewrite, otherwise ignored). */
export interface ParsedIndex {
  segments: SegmentRef[];
  others: Descriptor[];
}

function parseJson(body: Buffer, what: string): Record<string, unknown> {
  if (body.length > MAX_DOCUMENT_SIZE) throw new StoreFormatError(`${what} is ${body.length} bytes, over ${MAX_DOCUMENT_SIZE}`);
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new StoreFormatError(`${what} is not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new StoreFormatError(`${what} is not a JSON object`);
  return doc as Record<string, unknown>;
}

/** Validate one descriptor; `annotations` keeps only string values. */
function parseDescriptor(value: unknown, what: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw new StoreFormatError(`${what} is not an object`);
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== 'string') throw new StoreFormatError(`${what} has no mediaType`);
  if (typeof d.digest !== 'string' || !SHA256_DIGEST.test(d.digest)) throw new StoreFormatError(`${what} has digest ${JSON.stringify(short(String(d.digest)))}, not a sha256 digest`);
  if (!Number.isSafeInteger(d.size) || (d.size as number) < 0) throw new StoreFormatError(`${what} has an invalid size`);
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size as number };
  if (typeof d.artifactType === 'string') out.artifactType = d.artifactType;
  if (typeof d.annotations === 'object' && d.annotations !== null) {
    const a: Record<string, string> = {};
    for (const [k, v] of Object.entries(d.annotations)) if (typeof v === 'string') a[k] = v;
    out.annotations = a;
  }
  return out;
}

function parseCount(text: string | undefined, max: number, what: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,9}$/.test(text) || Number(text) > max) throw new StoreFormatError(`${what}: ${JSON.stringify(short(text))} is not a number up to ${max}`);
  return Number(text);
}

/**
 * Parse the index a store's tag points at. `mediaType` is what the registry said. A tag holding
 * anything but a bootfs store index is refused, so a writer never overwrites someone's image tag.
 */
export function parseIndex(body: Buffer, mediaType: string, what: string): ParsedIndex {
  if (mediaType !== OCI_INDEX) throw new StoreFormatError(`${what} is a ${short(mediaType)}, not a bootfs chunk store index; choose another tag (oci://host/repo:TAG)`);
  const doc = parseJson(body, what);
  if (doc.schemaVersion !== 2) throw new StoreFormatError(`${what} has schemaVersion ${short(String(doc.schemaVersion))}, not 2`);
  if (doc.mediaType !== undefined && doc.mediaType !== OCI_INDEX) throw new StoreFormatError(`${what} says mediaType ${short(String(doc.mediaType))}`);
  if (doc.artifactType !== STORE_ARTIFACT_TYPE) {
    throw new StoreFormatError(`${what} is an OCI index but not a bootfs chunk store (artifactType ${JSON.stringify(short(String(doc.artifactType)))}); choose another tag (oci://host/repo:TAG)`);
  }
  if (!Array.isArray(doc.manifests)) throw new StoreFormatError(`${what} has no manifests array`);
  if (doc.manifests.length > MAX_SEGMENTS) throw new StoreFormatError(`${what} lists ${doc.manifests.length} manifests, more than ${MAX_SEGMENTS}`);
  const segments: SegmentRef[] = [];
  const others: Descriptor[] = [];
  doc.manifests.forEach((m, i) => {
    const d = parseDescriptor(m, `${what} manifests[${i}]`);
    if (d.mediaType !== OCI_MANIFEST || d.artifactType !== SEGMENT_ARTIFACT_TYPE) {
      others.push(d);
      return;
    }
    if (d.size > MAX_DOCUMENT_SIZE) throw new StoreFormatError(`${what} manifests[${i}] is ${d.size} bytes, over ${MAX_DOCUMENT_SIZE}`);
    const a = d.annotations ?? {};
    const ref: SegmentRef = { descriptor: d };
    const count = parseCount(a[ANNOTATION_COUNT], MAX_MAP_ENTRIES, `${what} manifests[${i}] ${ANNOTATION_COUNT}`);
    if (count !== undefined) ref.count = count;
    const mapDigest = a[ANNOTATION_MAP_DIGEST];
    const mapSize = parseCount(a[ANNOTATION_MAP_SIZE], MAX_MAP_BYTES, `${what} manifests[${i}] ${ANNOTATION_MAP_SIZE}`);
    if (mapDigest !== undefined && SHA256_DIGEST.test(mapDigest) && mapSize !== undefined) ref.map = { digest: mapDigest, size: mapSize };
    segments.push(ref);
  });
  return { segments, others };
}

/** The chunk map descriptor of a segment manifest (for indexes whose descriptors lack the annotations). */
export function parseSegmentMap(body: Buffer, what: string): { digest: string; size: number } {
  const doc = parseJson(body, what);
  if (!Array.isArray(doc.layers) || doc.layers.length === 0) throw new StoreFormatError(`${what} has no layers`);
  const first = parseDescriptor(doc.layers[0], `${what} layers[0]`);
  if (first.mediaType !== CHUNK_MAP_MEDIA_TYPE) throw new StoreFormatError(`${what}: layers[0] is a ${short(first.mediaType)}, not a chunk map`);
  if (first.size > MAX_MAP_BYTES) throw new StoreFormatError(`${what}: chunk map of ${first.size} bytes is over ${MAX_MAP_BYTES}`);
  return { digest: first.digest, size: first.size };
}
