/**
 * RegistryStore (oci://) against an in-memory BlobRepo that behaves like distribution: manifests
 * must reference blobs and manifests that exist, blobs are content-addressed and verified, and
 * `gc()` is `registry garbage-collect` (keep what any manifest references, delete the rest).
 */
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeChunk, idToHex } from '../../src/chunk.js';
import { ChunkCorruptError, ChunkNotFoundError, IoError, NotFoundError, UsageError } from '../../src/errors.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../src/oci/media-types.js';
import { RegistryDigestError } from '../../src/registry/errors.js';
import type { BlobRepo, BlobSource, FetchedManifest, UploadResult } from '../../src/registry/types.js';
import { parseStoreLocation } from '../../src/store/location.js';
import { parseRegistryStoreLocation, RegistryStore, type RegistryStoreOptions } from '../../src/store/registry.js';
import {
  ANNOTATION_MAP_DIGEST,
  buildIndex,
  buildSegment,
  CHUNK_MAP_MEDIA_TYPE,
  CHUNK_MEDIA_TYPE,
  ChunkMap,
  EMPTY_DIGEST,
  encodeChunkMap,
  MAP_ENTRY_BYTES,
  MAP_HEADER_BYTES,
  parseIndex,
  SEGMENT_ARTIFACT_TYPE,
  STORE_ARTIFACT_TYPE,
  StoreFormatError,
} from '../../src/store/registry-format.js';
import { ChunkLookup } from '../../src/store/registry-lookup.js';
import { describeChunkStore } from './conformance.js';

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

type Call = 'getManifest' | 'putManifest' | 'headBlob' | 'getBlob' | 'putBlob';

/** An in-memory registry repository with distribution's rules for manifests and garbage collection. */
class FakeRepo implements BlobRepo {
  readonly location = 'registry.test:5000/chunks';
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, { mediaType: string; body: Buffer }>();
  readonly tags = new Map<string, string>();
  calls: Record<Call, number> = { getManifest: 0, putManifest: 0, headBlob: 0, getBlob: 0, putBlob: 0 };
  /** Verify blob digests on read, as the real client does. */
  verify = true;
  closed = false;

  resetCalls(): void {
    this.calls = { getManifest: 0, putManifest: 0, headBlob: 0, getBlob: 0, putBlob: 0 };
  }

  async getManifest(reference: string): Promise<FetchedManifest | undefined> {
    this.calls.getManifest++;
    const digest = DIGEST.test(reference) ? reference : this.tags.get(reference);
    const m = digest === undefined ? undefined : this.manifests.get(digest);
    return m && { mediaType: m.mediaType, digest: digest!, body: Buffer.from(m.body) };
  }

  async putManifest(reference: string, mediaType: string, body: Buffer): Promise<string> {
    this.calls.putManifest++;
    const digest = sha256(body);
    if (DIGEST.test(reference) && reference !== digest) throw new Error(`manifest digest ${digest} is not ${reference}`);
    const doc = JSON.parse(body.toString('utf8')) as { config?: { digest: string }; layers?: { digest: string }[]; manifests?: { digest: string }[] };
    // distribution refuses a manifest whose blobs (or an index whose manifests) it does not have.
    for (const d of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) if (!this.blobs.has(d.digest)) throw new Error(`MANIFEST_BLOB_UNKNOWN ${d.digest}`);
    for (const d of doc.manifests ?? []) if (!this.manifests.has(d.digest)) throw new Error(`MANIFEST_UNKNOWN ${d.digest}`);
    this.manifests.set(digest, { mediaType, body: Buffer.from(body) });
    if (!DIGEST.test(reference)) this.tags.set(reference, digest);
    return digest;
  }

  async headBlob(digest: string): Promise<number | undefined> {
    this.calls.headBlob++;
    return this.blobs.get(digest)?.length;
  }

  async getBlob(digest: string, opts: { maxBytes?: number } = {}): Promise<Buffer> {
    this.calls.getBlob++;
    const b = this.blobs.get(digest);
    if (!b) throw new NotFoundError(`blob ${digest} not found in ${this.location}`);
    if (opts.maxBytes !== undefined && b.length > opts.maxBytes) throw new IoError(`blob ${digest} is over ${opts.maxBytes} bytes`);
    if (this.verify && sha256(b) !== digest) throw new RegistryDigestError(`blob ${digest} of ${this.location}: digest mismatch`, this.location, digest);
    return Buffer.from(b);
  }

  async *openBlob(digest: string): AsyncIterable<Uint8Array> {
    yield await this.getBlob(digest);
  }

  async putBlob(digest: string, source: BlobSource | Buffer): Promise<UploadResult> {
    this.calls.putBlob++;
    if (this.blobs.has(digest)) return 'exists';
    let bytes: Buffer;
    if (Buffer.isBuffer(source)) bytes = source;
    else {
      const parts: Uint8Array[] = [];
      for await (const p of source.open()) parts.push(p);
      bytes = Buffer.concat(parts);
    }
    if (sha256(bytes) !== digest) throw new Error(`DIGEST_INVALID ${digest}`);
    this.blobs.set(digest, Buffer.from(bytes));
    return 'uploaded';
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** `registry garbage-collect` without --delete-untagged: blobs no manifest references are deleted. */
  gc(): string[] {
    const marked = new Set<string>();
    for (const { body } of this.manifests.values()) {
      const doc = JSON.parse(body.toString('utf8')) as { config?: { digest: string }; layers?: { digest: string }[] };
      for (const d of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) marked.add(d.digest);
    }
    const deleted = [...this.blobs.keys()].filter((d) => !marked.has(d));
    for (const d of deleted) this.blobs.delete(d);
    return deleted;
  }

  /** The parsed index under `tag`. */
  index(tag = 'bootfs-chunks') {
    const digest = this.tags.get(tag)!;
    const m = this.manifests.get(digest)!;
    return parseIndex(m.body, m.mediaType, 'index');
  }
}

const URL = 'oci://registry.test:5000/chunks';
const fast: RegistryStoreOptions = { commitDelayMs: 0 };
const open = (repo: FakeRepo, opts: RegistryStoreOptions = {}) => new RegistryStore(URL, { repo, ...fast, ...opts });
const chunks = (n: number, tag = 'c') => Array.from({ length: n }, (_, i) => ({ plain: Buffer.from(`${tag} ${i} `.repeat(100 + i)), ...encodeChunk(Buffer.from(`${tag} ${i} `.repeat(100 + i))) }));

describeChunkStore('registry (in-memory repository)', async () => {
  const repo = new FakeRepo();
  // The suite overwrites stored bytes in place. A registry serving tampered bytes is caught by the
  // real client's digest check first (tested below); with it off here, decoding must catch them.
  repo.verify = false;
  const store = open(repo, { commitDelayMs: 5 });
  return {
    store,
    corrupt: async (hex, bytes) => {
      const blob = await store.blobOf(Buffer.from(hex, 'hex'));
      repo.blobs.set(blob!.digest, Buffer.from(bytes));
    },
    cleanup: async () => undefined,
  };
});

describe('oci:// locations', () => {
  it('parses host, port, repository and tag', () => {
    expect(parseRegistryStoreLocation('oci://127.0.0.1:5000/chunks')).toEqual({ registry: '127.0.0.1:5000', repository: 'chunks', tag: 'bootfs-chunks' });
    expect(parseRegistryStoreLocation('oci://reg.example.com/team/app:v1-chunks')).toEqual({ registry: 'reg.example.com', repository: 'team/app', tag: 'v1-chunks' });
    expect(parseRegistryStoreLocation('OCI://localhost/x')).toEqual({ registry: 'localhost', repository: 'x', tag: 'bootfs-chunks' });
    expect(new RegistryStore('oci://h.test:1/a/b', { repo: new FakeRepo() }).location).toBe('oci://h.test:1/a/b:bootfs-chunks');
    expect(parseStoreLocation('oci://127.0.0.1:5000/chunks:t')).toEqual({ kind: 'oci', url: 'oci://127.0.0.1:5000/chunks:t' });
  });

  it('refuses what is not a repository with a tag', () => {
    expect(() => parseRegistryStoreLocation('oci://127.0.0.1:5000')).toThrow(/has no repository/);
    expect(() => parseRegistryStoreLocation('oci://registry/chunks')).toThrow(/'registry' is not a registry host/);
    expect(() => parseRegistryStoreLocation('oci://u:p@h.test/chunks')).toThrow(/credentials do not go in the URL/);
    expect(() => parseRegistryStoreLocation(`oci://h.test/chunks@sha256:${'a'.repeat(64)}`)).toThrow(/names a tag, not a digest/);
    expect(() => parseRegistryStoreLocation('oci://h.test/Chunks')).toThrow(UsageError);
    expect(() => parseRegistryStoreLocation('oci://h.test/chunks:-bad')).toThrow(/not a valid tag/);
    expect(() => parseRegistryStoreLocation('oci://h.test/chunks?x=1')).toThrow(/no query/);
    expect(() => parseStoreLocation('docker://h.test/chunks')).toThrow(/docker:\/\/ stores are not supported/);
    expect(() => parseStoreLocation('oci://registry/chunks')).toThrow(/not a registry host/);
  });
});

describe('chunk map format', () => {
  const entry = (seed: number) => ({ id: createHash('sha256').update(`id${seed}`).digest(), sha256: createHash('sha256').update(`blob${seed}`).digest(), size: 100 + seed });

  it('encodes sorted entries, the same bytes for any order, and parses them back', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 10_000 }), { maxLength: 60 }), (seeds) => {
        const entries = seeds.map(entry);
        const a = encodeChunkMap(entries);
        const b = encodeChunkMap([...entries].reverse().concat(entries.slice(0, 3)));
        expect(a.equals(b)).toBe(true);
        expect(a.length).toBe(MAP_HEADER_BYTES + MAP_ENTRY_BYTES * entries.length);
        const map = ChunkMap.parse(a, 't');
        expect(map.count).toBe(entries.length);
        const sorted = [...entries].sort((x, y) => Buffer.compare(x.id, y.id));
        sorted.forEach((e, i) => {
          expect(map.id(i).equals(e.id)).toBe(true);
          expect(map.blob(i)).toEqual({ digest: `sha256:${e.sha256.toString('hex')}`, size: e.size });
        });
      }),
    );
  });

  it('refuses malformed maps', () => {
    const good = encodeChunkMap([entry(1), entry(2), entry(3)]);
    const bad = (mutate: (b: Buffer) => Buffer) => () => ChunkMap.parse(mutate(Buffer.from(good)), 'm');
    expect(bad((b) => Buffer.concat([Buffer.from('XFSCMAP1'), b.subarray(8)]))).toThrow(/bad magic/);
    expect(bad((b) => b.subarray(0, b.length - 1))).toThrow(/bytes for 3 entries/);
    expect(bad((b) => (b.writeUInt32BE(4, 8), b))).toThrow(/bytes for 4 entries/);
    expect(bad((b) => (b.writeUInt32BE(1, 12), b))).toThrow(/reserved/);
    expect(bad((b) => (b.writeUInt32BE(0x7fffffff, 8), b))).toThrow(/more than 65536/);
    expect(bad((b) => (b.writeUInt32BE(0, MAP_HEADER_BYTES + 64), b))).toThrow(/stored size 0/);
    // Two entries swapped: not ascending.
    expect(
      bad((b) => {
        const first = Buffer.from(b.subarray(MAP_HEADER_BYTES, MAP_HEADER_BYTES + MAP_ENTRY_BYTES));
        b.copy(b, MAP_HEADER_BYTES, MAP_HEADER_BYTES + MAP_ENTRY_BYTES, MAP_HEADER_BYTES + 2 * MAP_ENTRY_BYTES);
        first.copy(b, MAP_HEADER_BYTES + MAP_ENTRY_BYTES);
        return b;
      }),
    ).toThrow(/ascending/);
    expect(() => encodeChunkMap([entry(1), { ...entry(1), sha256: entry(2).sha256 }])).toThrow(/two blobs/);
  });

  it('builds segment manifests and indexes deterministically, and refuses foreign tags', () => {
    const body = encodeChunkMap([entry(2), entry(1)]);
    const seg = buildSegment(ChunkMap.parse(body, 'm'), body);
    const doc = JSON.parse(seg.body.toString()) as { artifactType: string; config: { digest: string }; layers: { mediaType: string; digest: string; size: number }[] };
    expect(doc.artifactType).toBe(SEGMENT_ARTIFACT_TYPE);
    expect(doc.config.digest).toBe(EMPTY_DIGEST);
    expect(EMPTY_DIGEST).toBe(sha256(Buffer.from('{}')));
    expect(doc.layers.map((l) => l.mediaType)).toEqual([CHUNK_MAP_MEDIA_TYPE, CHUNK_MEDIA_TYPE, CHUNK_MEDIA_TYPE]);
    expect(doc.layers[0]).toEqual({ mediaType: CHUNK_MAP_MEDIA_TYPE, digest: sha256(body), size: body.length });
    expect(buildSegment(ChunkMap.parse(encodeChunkMap([entry(1), entry(2)]), 'm'), body).body.equals(seg.body)).toBe(true);
    const other = { mediaType: OCI_MANIFEST, digest: `sha256:${'0'.repeat(64)}`, size: 5 };
    const index = buildIndex([seg.descriptor, other]);
    expect(buildIndex([other, seg.descriptor, seg.descriptor]).equals(index)).toBe(true);
    const parsed = parseIndex(index, OCI_INDEX, 'i');
    expect(parsed.segments).toEqual([{ descriptor: seg.descriptor, count: 2, map: { digest: sha256(body), size: body.length } }]);
    expect(parsed.others).toEqual([other]);
    expect(() => parseIndex(index, OCI_MANIFEST, 'i')).toThrow(/not a bootfs chunk store index; choose another tag/);
    const image = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }));
    expect(() => parseIndex(image, OCI_INDEX, 'i')).toThrow(/not a bootfs chunk store/);
    const hostile = Buffer.from(JSON.stringify({ schemaVersion: 2, artifactType: STORE_ARTIFACT_TYPE, manifests: [{ ...seg.descriptor, digest: 'sha256:../../x' }] }));
    expect(() => parseIndex(hostile, OCI_INDEX, 'i')).toThrow(StoreFormatError);
    expect(() => parseIndex(Buffer.from('{'), OCI_INDEX, 'i')).toThrow(/not JSON/);
  });

  it('looks chunk IDs up across many maps', () => {
    const lookup = new ChunkLookup();
    const maps: ChunkMap[] = [];
    for (let m = 0; m < 30; m++) {
      const map = ChunkMap.parse(encodeChunkMap(Array.from({ length: 200 }, (_, i) => entry(m * 150 + i))), `m${m}`);
      maps.push(map);
      lookup.add(map);
    }
    // Maps overlap by 50 entries each: the first map holding an ID answers.
    expect(lookup.size).toBe(29 * 150 + 200);
    for (const probe of [0, 149, 150, 2000, 4549]) {
      const f = lookup.find(entry(probe).id)!;
      expect(f.map.blob(f.index)).toEqual({ digest: `sha256:${entry(probe).sha256.toString('hex')}`, size: 100 + probe });
      expect(f.map === maps[Math.max(0, Math.ceil((probe - 199) / 150))]).toBe(true);
    }
    expect(lookup.find(entry(99_999).id)).toBeUndefined();
  });
});

describe('RegistryStore', () => {
  it('keeps every chunk referenced from the tag, so garbage collection keeps it', async () => {
    const repo = new FakeRepo();
    const store = open(repo, { segmentMaxChunks: 4, compactAfter: 2 });
    const cs = chunks(30);
    // One at a time: 30 commits, so small segments pile up and get repacked.
    for (const c of cs) expect(await store.storeChunk(c.id, c.stored)).toBe(true);
    const stray = Buffer.from('not referenced by any manifest');
    await repo.putBlob(sha256(stray), stray);
    expect(repo.gc()).toEqual([sha256(stray)]);

    const index = repo.index();
    expect(index.others).toEqual([]);
    const counts = index.segments.map((s) => s.count!);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(30);
    expect(Math.max(...counts)).toBeLessThanOrEqual(4);
    expect(counts.filter((n) => n < 4).length).toBeLessThanOrEqual(2);
    // Each segment manifest lists its map and exactly its chunks' blobs.
    for (const s of index.segments) {
      const m = JSON.parse(repo.manifests.get(s.descriptor.digest)!.body.toString()) as { layers: { digest: string }[] };
      expect(m.layers[0]!.digest).toBe(s.descriptor.annotations![ANNOTATION_MAP_DIGEST]);
      expect(m.layers.length).toBe(s.count! + 1);
    }
    await store.close();
    expect(repo.closed).toBe(false); // not ours to close

    const reader = open(repo);
    for (const c of cs) expect(await reader.getChunk(c.id, { size: c.plain.length })).toEqual(c.plain);
    await reader.close();
  });

  it('makes a chunk visible to other readers when storeChunk resolves, without flush or close', async () => {
    const repo = new FakeRepo();
    const writer = open(repo, { commitDelayMs: 10 });
    const cs = chunks(50);
    expect(await Promise.all(cs.map((c) => writer.storeChunk(c.id, c.stored)))).toEqual(cs.map(() => true));
    // The burst became few commits, not fifty.
    expect(repo.index().segments.length).toBeLessThanOrEqual(3);
    const reader = open(repo);
    for (const c of cs) expect(await reader.hasChunk(c.id)).toBe(true);
    repo.gc();
    for (const c of cs) expect(await reader.getStored(c.id)).toEqual(c.stored);
  });

  it('reads a chunk with one request once the maps are loaded', async () => {
    const repo = new FakeRepo();
    const writer = open(repo, { segmentMaxChunks: 10 });
    const cs = chunks(40);
    await Promise.all(cs.map((c) => writer.storeChunk(c.id, c.stored)));
    await writer.close();
    const segments = repo.index().segments.length;
    expect(segments).toBeGreaterThanOrEqual(4);

    repo.resetCalls();
    const reader = open(repo);
    expect(await reader.getChunk(cs[0]!.id)).toEqual(cs[0]!.plain);
    // The index, one map per segment (named by the index: no segment manifest fetched), the chunk.
    expect(repo.calls).toEqual({ getManifest: 1, putManifest: 0, headBlob: 0, getBlob: segments + 1, putBlob: 0 });
    repo.resetCalls();
    for (const c of cs) expect(await reader.getStored(c.id)).toEqual(c.stored);
    expect(repo.calls).toEqual({ getManifest: 0, putManifest: 0, headBlob: 0, getBlob: 40, putBlob: 0 });
    // A reader never writes, not even when closing.
    await reader.close();
    expect(repo.calls.putManifest + repo.calls.putBlob).toBe(0);
  });

  it('answers a concurrent put of the same chunk only once its commit is done', async () => {
    const repo = new FakeRepo();
    const store = open(repo);
    const [c] = chunks(1);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const put = repo.putManifest.bind(repo);
    repo.putManifest = async (ref, mediaType, body) => {
      if (ref === 'bootfs-chunks') await gate;
      return put(ref, mediaType, body);
    };
    const first = store.storeChunk(c!.id, c!.stored);
    // The blob is uploaded and the commit waits at the gate when the second put comes.
    await new Promise((r) => setTimeout(r, 20));
    expect(repo.blobs.has(sha256(c!.stored))).toBe(true);
    const second = store.storeChunk(c!.id, c!.stored);
    let settled = false;
    void second.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(settled).toBe(false);
    expect(repo.tags.has('bootfs-chunks')).toBe(false);
    release();
    expect(await first).toBe(true);
    expect(await second).toBe(false);
    expect(await open(repo).hasChunk(c!.id)).toBe(true);
  });

  it('writes the same index for the same chunks, whatever their order', async () => {
    const cs = chunks(12);
    const digests: string[] = [];
    for (const order of [cs, [...cs].reverse()]) {
      const repo = new FakeRepo();
      const store = open(repo, { commitDelayMs: 50 });
      await Promise.all(order.map((c) => store.storeChunk(c.id, c.stored)));
      digests.push(repo.tags.get('bootfs-chunks')!);
    }
    expect(digests[0]).toBe(digests[1]);
  });

  it('re-reads the tag on a miss, at most every refreshAfterMs', async () => {
    const repo = new FakeRepo();
    const [a, b] = chunks(2);
    const writer = open(repo);
    await writer.storeChunk(a!.id, a!.stored);
    const eager = open(repo, { refreshAfterMs: 0 });
    const lazy = open(repo, { refreshAfterMs: 60_000 });
    expect(await eager.hasChunk(a!.id)).toBe(true);
    expect(await lazy.hasChunk(a!.id)).toBe(true);
    await writer.storeChunk(b!.id, b!.stored);
    expect(await eager.getStored(b!.id)).toEqual(b!.stored);
    await expect(lazy.getStored(b!.id)).rejects.toBeInstanceOf(ChunkNotFoundError);
    await lazy.refresh();
    expect(await lazy.getStored(b!.id)).toEqual(b!.stored);
  });

  it('merges with another writer, and repairs a lost index update on close', async () => {
    const repo = new FakeRepo();
    const [x, y, z] = chunks(3);
    const a = open(repo);
    const b = open(repo);
    // Both load the (empty) tag before either writes.
    expect(await a.hasChunk(x!.id)).toBe(false);
    expect(await b.hasChunk(x!.id)).toBe(false);
    await a.storeChunk(x!.id, x!.stored);
    await b.storeChunk(y!.id, y!.stored);
    expect(repo.index().segments.length).toBe(2);
    // A third writer that read the tag before a and b wrote puts its index last: theirs are lost.
    await repo.putManifest('bootfs-chunks', OCI_INDEX, buildIndex([]));
    const reader = open(repo, { refreshAfterMs: 0 });
    expect(await reader.hasChunk(x!.id)).toBe(false);
    await a.storeChunk(z!.id, z!.stored); // a's next commit re-adds its own segments…
    expect(await reader.hasChunk(x!.id)).toBe(true);
    expect(await reader.hasChunk(y!.id)).toBe(false);
    await b.close(); // …and close() re-adds b's.
    for (const c of [x!, y!, z!]) expect(await reader.getStored(c.id)).toEqual(c.stored);
  });

  it('does not resurrect its segments once another writer has repacked them', async () => {
    const repo = new FakeRepo();
    const cs = chunks(4);
    const a = open(repo, { compactAfter: 100 });
    for (const c of cs.slice(0, 3)) await a.storeChunk(c.id, c.stored);
    expect(repo.index().segments.length).toBe(3);
    const b = open(repo, { compactAfter: 1 });
    await b.storeChunk(cs[3]!.id, cs[3]!.stored);
    expect(repo.index().segments.map((s) => s.count)).toEqual([4]);
    await a.close();
    expect(repo.index().segments.map((s) => s.count)).toEqual([4]);
  });

  it('refuses a tag that holds something else, and writes nothing', async () => {
    const repo = new FakeRepo();
    const config = Buffer.from('{}');
    await repo.putBlob(sha256(config), config);
    const image = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: 2 }, layers: [] }));
    await repo.putManifest('latest', OCI_MANIFEST, image);
    repo.resetCalls();
    const store = new RegistryStore(`${URL}:latest`, { repo, ...fast });
    const [c] = chunks(1);
    await expect(store.storeChunk(c!.id, c!.stored)).rejects.toThrow(/not a bootfs chunk store index; choose another tag/);
    await expect(store.getStored(c!.id)).rejects.toBeInstanceOf(StoreFormatError);
    expect(repo.calls.putManifest + repo.calls.putBlob).toBe(0);
    expect(repo.tags.get('latest')).toBe(sha256(image));
  });

  it('reports blobs gone from the registry as not found, and tampered blobs as corrupt', async () => {
    const repo = new FakeRepo();
    const store = open(repo);
    const [a, b] = chunks(2);
    await store.storeChunk(a!.id, a!.stored);
    await store.storeChunk(b!.id, b!.stored);
    repo.blobs.delete(sha256(a!.stored));
    const gone = await store.getChunk(a!.id).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(ChunkNotFoundError);
    expect((gone as Error).message).toBe(`chunk ${idToHex(a!.id)} not found in oci://registry.test:5000/chunks:bootfs-chunks`);
    repo.blobs.set(sha256(b!.stored), Buffer.from(b!.stored.subarray(1)));
    await expect(store.getChunk(b!.id)).rejects.toBeInstanceOf(ChunkCorruptError);
  });

  it('detects a map that names the wrong blob for a chunk', async () => {
    const repo = new FakeRepo();
    const good = chunks(1)[0]!;
    const imposter = encodeChunk(Buffer.from('imposter'));
    await repo.putBlob(sha256(imposter.stored), imposter.stored);
    await repo.putBlob(EMPTY_DIGEST, Buffer.from('{}'));
    const mapBody = encodeChunkMap([{ id: good.id, sha256: createHash('sha256').update(imposter.stored).digest(), size: imposter.stored.length }]);
    await repo.putBlob(sha256(mapBody), mapBody);
    const seg = buildSegment(ChunkMap.parse(mapBody, 'm'), mapBody);
    await repo.putManifest(seg.digest, OCI_MANIFEST, seg.body);
    await repo.putManifest('bootfs-chunks', OCI_INDEX, buildIndex([seg.descriptor]));
    const store = open(repo);
    await expect(store.getChunk(good.id)).rejects.toThrow(/hashes to/);
  });

  it('finds a map through the segment manifest when the index does not name it; reads an absent tag as empty', async () => {
    const repo = new FakeRepo();
    expect(await open(repo).hasChunk(chunks(1)[0]!.id)).toBe(false);
    expect(repo.calls.putManifest + repo.calls.putBlob).toBe(0);
    const writer = open(repo);
    const cs = chunks(3);
    for (const c of cs) await writer.storeChunk(c.id, c.stored);
    const bare = repo.index().segments.map(({ descriptor: { annotations: _, ...d } }) => d);
    await repo.putManifest('bootfs-chunks', OCI_INDEX, buildIndex(bare));
    repo.resetCalls();
    const reader = open(repo);
    for (const c of cs) expect(await reader.getStored(c.id)).toEqual(c.stored);
    // The tag, then per segment its manifest and its map; then one GET per chunk.
    expect(repo.calls).toEqual({ getManifest: 1 + bare.length, putManifest: 0, headBlob: 0, getBlob: bare.length + 3, putBlob: 0 });
  });

  it('refuses an index whose chunk map is missing or malformed', async () => {
    const repo = new FakeRepo();
    const writer = open(repo);
    const [c] = chunks(1);
    await writer.storeChunk(c!.id, c!.stored);
    const mapDigest = repo.index().segments[0]!.map!.digest;
    const map = repo.blobs.get(mapDigest)!;
    repo.blobs.delete(mapDigest);
    await expect(open(repo).hasChunk(c!.id)).rejects.toThrow(/chunk map sha256:.* is missing/);
    repo.verify = false;
    repo.blobs.set(mapDigest, Buffer.concat([Buffer.from('BADMAGIC'), map.subarray(8)]));
    await expect(open(repo).hasChunk(c!.id)).rejects.toThrow(/chunk map sha256:.* is invalid: bad magic/);
  });

  it('fails storeChunk when the commit fails, and succeeds on a retry', async () => {
    const repo = new FakeRepo();
    const store = open(repo);
    const [c] = chunks(1);
    const put = repo.putManifest.bind(repo);
    repo.putManifest = async () => {
      throw new IoError('registry down');
    };
    await expect(store.storeChunk(c!.id, c!.stored)).rejects.toThrow(/registry down/);
    repo.putManifest = put;
    expect(await store.storeChunk(c!.id, c!.stored)).toBe(true);
    expect(await open(repo).getStored(c!.id)).toEqual(c!.stored);
  });

  it('validates options and refuses oversized chunks', async () => {
    expect(() => new RegistryStore(URL, { repo: new FakeRepo(), segmentMaxChunks: 0 })).toThrow(/segmentMaxChunks/);
    expect(() => new RegistryStore(URL, { repo: new FakeRepo(), segmentMaxChunks: 70_000 })).toThrow(/at most 65536/);
    const store = open(new FakeRepo());
    await expect(store.storeChunk(randomBytes(32), Buffer.alloc(0))).rejects.toThrow(/not between 1 and/);
    await store.close();
    await expect(store.storeChunk(randomBytes(32), Buffer.alloc(1))).rejects.toThrow(/is closed/);
  });
});
