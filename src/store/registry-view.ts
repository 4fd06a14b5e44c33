/**
 * What a registry store knows: the segments the tag's index lists (with their chunk maps) plus the
 * segments this store object wrote, and a lookup over all of them. Reading the tag merges it in;
 * the writer (src/store/registry.ts) adds and replaces segments and builds the next index from it.
 */
import { BootfsError } from '../errors.js';
import { MANIFEST_ACCEPT, OCI_MANIFEST } from '../oci/media-types.js';
import type { BlobRepo } from '../registry/types.js';
import { buildIndex, ChunkMap, type Descriptor, MAX_MAP_BYTES, parseIndex, parseSegmentMap, type SegmentRef, StoreFormatError } from './registry-format.js';
import { ChunkLookup } from './registry-lookup.js';
import { mapLimit } from '../util/limits.js';

/** One segment: its descriptor in the index and its chunk map. */
export interface Segment {
  descriptor: Descriptor;
  map: ChunkMap;
  /** Written by this store object (re-added to the index if another writer dropped it). */
  own: boolean;
}

// A tag is read accepting every manifest kind (MANIFEST_ACCEPT): a registry asked for an index
// only may answer 404 for an image manifest under the tag, and the store would then overwrite
// someone's image tag.

/** Chunk maps fetched at once when a tag is read. */
const MAP_FETCHES = 8;

export class StoreView {
  private segments = new Map<string, Segment>();
  private others: Descriptor[] = [];
  private lookup = new ChunkLookup();
  /** Digest of the index the tag held when last read or written (undefined: no tag). */
  indexDigest: string | undefined;
  /** performance.now() of the last read of the tag. */
  readAt = -Infinity;
  private loaded = false;

  constructor(
    /** `oci://…` for messages. */
    private readonly location: string,
    private readonly tag: string,
  ) {}

  /** Blob digest and stored size of chunk `id`, if a segment lists it. */
  find(id: Uint8Array): { digest: string; size: number } | undefined {
    const f = this.lookup.find(id);
    return f ? f.map.blob(f.index) : undefined;
  }

  /** Does this store object have segments of its own in the view? */
  hasOwn(): boolean {
    for (const s of this.segments.values()) if (s.own) return true;
    return false;
  }

  /** Segments holding fewer than `max` chunks. */
  smallSegments(max: number): Segment[] {
    return [...this.segments.values()].filter((s) => s.map.count < max);
  }

  /** Add a segment just written. */
  add(seg: Segment): void {
    this.segments.set(seg.descriptor.digest, seg);
    this.lookup.add(seg.map);
  }

  /** Replace `old` segments by `made` (after repacking), rebuilding the lookup. */
  replace(old: readonly Segment[], made: readonly Segment[]): void {
    for (const s of old) this.segments.delete(s.descriptor.digest);
    for (const s of made) this.segments.set(s.descriptor.digest, s);
    const lookup = new ChunkLookup();
    for (const s of this.segments.values()) lookup.add(s.map);
    this.lookup = lookup;
  }

  /** The index listing every segment of the view (and the foreign entries the tag had). */
  indexBody(): Buffer {
    return buildIndex([...[...this.segments.values()].map((s) => s.descriptor), ...this.others]);
  }

  /**
   * Read the index under the tag and make it the view: segments it lists (maps fetched for new
   * ones), plus this store's own segments it lacks — unless another writer's segments now cover
   * every chunk of them (it repacked them).
   */
  async read(repo: BlobRepo): Promise<void> {
    const got = await repo.getManifest(this.tag, MANIFEST_ACCEPT);
    this.readAt = performance.now();
    if (got?.digest === this.indexDigest && this.loaded) return;
    const what = `index ${got?.digest ?? ''} of ${this.location}`;
    const remote = got ? parseIndex(got.body, got.mediaType, what) : { segments: [], others: [] };
    const next = new Map<string, Segment>();
    const fresh: Segment[] = [];
    const toLoad: SegmentRef[] = [];
    for (const ref of remote.segments) {
      const known = this.segments.get(ref.descriptor.digest);
      if (known) next.set(ref.descriptor.digest, known);
      else toLoad.push(ref);
    }
    for (const seg of await mapLimit(toLoad, MAP_FETCHES, (ref) => this.loadSegment(repo, ref))) {
      next.set(seg.descriptor.digest, seg);
      fresh.push(seg);
    }
    const dropped = [...this.segments.values()].filter((s) => !next.has(s.descriptor.digest));
    if (dropped.length === 0) {
      for (const s of fresh) this.lookup.add(s.map);
    } else {
      const lookup = new ChunkLookup();
      for (const s of next.values()) lookup.add(s.map);
      for (const s of dropped) {
        if (!s.own || covered(lookup, s.map)) continue;
        next.set(s.descriptor.digest, s);
        lookup.add(s.map);
      }
      this.lookup = lookup;
    }
    this.segments = next;
    this.others = remote.others;
    this.indexDigest = got?.digest;
    this.loaded = true;
  }

  /** Fetch and validate one segment's chunk map (via its manifest when the index does not name it). */
  private async loadSegment(repo: BlobRepo, ref: SegmentRef): Promise<Segment> {
    const segDigest = ref.descriptor.digest;
    let mapRef = ref.map;
    if (!mapRef) {
      const m = await repo.getManifest(segDigest, [OCI_MANIFEST]);
      if (!m) throw new StoreFormatError(`segment ${segDigest} listed by ${this.location} is missing from the registry`);
      mapRef = parseSegmentMap(m.body, `segment ${segDigest} of ${this.location}`);
    }
    if (mapRef.size > MAX_MAP_BYTES) throw new StoreFormatError(`chunk map ${mapRef.digest} of ${this.location} is ${mapRef.size} bytes, over ${MAX_MAP_BYTES}`);
    let body: Buffer;
    try {
      body = await repo.getBlob(mapRef.digest, { maxBytes: mapRef.size });
    } catch (err) {
      if (err instanceof BootfsError && err.code === 'ERR_NOT_FOUND') {
        throw new StoreFormatError(`chunk map ${mapRef.digest} of segment ${segDigest} is missing from ${this.location} (deleted, or collected by garbage-collect --delete-untagged?)`);
      }
      throw err;
    }
    const map = ChunkMap.parse(body, `${mapRef.digest} of ${this.location}`);
    if (ref.count !== undefined && ref.count !== map.count) throw new StoreFormatError(`segment ${segDigest} of ${this.location} says ${ref.count} chunks, its map holds ${map.count}`);
    return { descriptor: ref.descriptor, map, own: false };
  }
}

/** Does `lookup` hold every chunk of `map`? */
function covered(lookup: ChunkLookup, map: ChunkMap): boolean {
  for (let i = 0; i < map.count; i++) if (!lookup.find(map.id(i))) return false;
  return true;
}
