/**
 * src/mount/data-reader.ts: random reads over a chunked data stream, checked against the plain
 * reference bytes, with a fake chunk source that counts (and can delay or fail) every fetch — so
 * the memory bound, single flight and readahead are observed, not assumed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkId, idToHex } from '../../src/chunk.js';
import { ChunkTable } from '../../src/index/chunk-table.js';
import { DataReader, type DataReaderOptions } from '../../src/mount/data-reader.js';
import { lcgBytes } from '../helpers/bytes.js';

const bytes = lcgBytes;

interface Fake {
  table: ChunkTable;
  ref: Buffer;
  /** Source calls per chunk number. */
  calls: number[];
  /** All source calls in order (chunk numbers). */
  log: number[];
  source: (id: Uint8Array, size: number) => Promise<Buffer>;
  /** Make the next `times` fetches of chunk `i` fail. */
  failNext(i: number, times?: number): void;
  /** Hold fetches until release() (for single-flight tests). */
  hold(): void;
  release(): void;
}

/** A stream of chunks with the given sizes over distinct content, and a counting source. */
function fake(sizes: number[], seed = 1): Fake {
  const ref = bytes(sizes.reduce((a, b) => a + b, 0), seed);
  const list: { size: number; id: Buffer }[] = [];
  const byHex = new Map<string, number>();
  let off = 0;
  for (const size of sizes) {
    const id = chunkId(ref.subarray(off, off + size));
    byHex.set(idToHex(id), list.length);
    list.push({ size, id });
    off += size;
  }
  const table = ChunkTable.fromChunks(list);
  const failures = new Map<number, number>();
  let gate: Promise<void> | undefined;
  let open: () => void = () => undefined;
  const f: Fake = {
    table,
    ref,
    calls: sizes.map(() => 0),
    log: [],
    async source(id, size) {
      const i = byHex.get(idToHex(id));
      if (i === undefined) throw new Error('fake source: unknown chunk');
      f.calls[i]!++;
      f.log.push(i);
      expect(size).toBe(table.size(i));
      if (gate) await gate;
      else await Promise.resolve();
      const left = failures.get(i) ?? 0;
      if (left > 0) {
        failures.set(i, left - 1);
        throw new Error(`fake source: chunk ${i} unavailable`);
      }
      // A copy, as a real source returns: nothing may rely on sharing the reference buffer.
      return Buffer.from(ref.subarray(table.start(i), table.end(i)));
    },
    failNext(i, times = 1) {
      failures.set(i, times);
    },
    hold() {
      gate = new Promise((resolve) => (open = resolve));
    },
    release() {
      gate = undefined;
      open();
    },
  };
  return f;
}

const reader = (f: Fake, opts: DataReaderOptions = {}): DataReader => new DataReader(f.table, f.source, { readaheadChunks: 0, ...opts });
const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
/** Let fire-and-forget fetches (readahead) settle. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

describe('DataReader reads', () => {
  it('returns the reference bytes for any offset and size (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.tuple(fc.nat(4000), fc.nat(4000), fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined })), { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 1, max: 1200 }),
        fc.integer({ min: 0, max: 3 }),
        async (sizes, reads, memoryBytes, readaheadChunks) => {
          const f = fake(sizes);
          const total = f.ref.length;
          const r = reader(f, { memoryBytes, readaheadChunks });
          for (const [rawOff, size, stream] of reads) {
            const offset = rawOff % (total + 10);
            const got = await r.read(offset, size, stream);
            const want = f.ref.subarray(Math.min(offset, total), Math.min(offset + size, total));
            // Buffer.equals first: toEqual walks buffers byte by byte and would dominate the run time.
            if (!got.equals(want)) expect(got).toEqual(want);
          }
          await settle();
        },
      ),
      { numRuns: 200 },
    );
  });

  it('assembles reads across many chunk boundaries, including one-byte chunks', async () => {
    const f = fake([1, 1, 7, 100, 1, 64, 3]);
    const r = reader(f);
    expect(await r.read(0, 177)).toEqual(f.ref);
    expect(await r.read(1, 9)).toEqual(f.ref.subarray(1, 10));
    expect(await r.read(108, 2)).toEqual(f.ref.subarray(108, 110)); // last byte of 100-byte chunk + the 1-byte chunk
  });

  it('clips at the end of the stream and returns nothing at or past it, or for size 0', async () => {
    const f = fake([100, 100]);
    const r = reader(f);
    expect(await r.read(195, 100)).toEqual(f.ref.subarray(195));
    expect((await r.read(200, 10)).length).toBe(0);
    expect((await r.read(1e9, 10)).length).toBe(0);
    expect((await r.read(10, 0)).length).toBe(0);
    expect((await r.read(10, -5)).length).toBe(0);
    expect(f.calls).toEqual([0, 1]);
  });

  it('handles an empty stream', async () => {
    const r = new DataReader(ChunkTable.fromChunks([]), async () => {
      throw new Error('no chunks');
    });
    expect((await r.read(0, 10, 1)).length).toBe(0);
  });
});

describe('DataReader memory', () => {
  it('answers repeated reads of a chunk from memory', async () => {
    const f = fake([100, 100, 100]);
    const r = reader(f);
    await r.read(0, 10);
    await r.read(50, 10);
    await r.read(90, 20); // chunk 0 again plus chunk 1
    expect(f.calls).toEqual([1, 1, 0]);
    expect(r.counters).toEqual({ memoryHits: 2, sourceReads: 2, readaheads: 0 });
  });

  it('keeps at most memoryBytes of chunks, evicting the least recently used', async () => {
    const f = fake([100, 100, 100, 100]);
    const r = reader(f, { memoryBytes: 250 }); // room for two chunks
    await r.read(0, 1); // [0]
    await r.read(100, 1); // [0, 1]
    await r.read(0, 1); // hit; order [1, 0]
    await r.read(200, 1); // [0, 2]: 1 evicted
    expect(f.calls).toEqual([1, 1, 1, 0]);
    await r.read(0, 1); // still there
    expect(f.calls[0]).toBe(1);
    await r.read(100, 1); // refetched; evicts 2
    expect(f.calls).toEqual([1, 2, 1, 0]);
    await r.read(200, 1);
    expect(f.calls).toEqual([1, 2, 2, 0]);
  });

  it('never keeps a chunk larger than the memory bound', async () => {
    const f = fake([500, 10]);
    const r = reader(f, { memoryBytes: 100 });
    await r.read(0, 1);
    await r.read(0, 1);
    await r.read(500, 1);
    await r.read(500, 1);
    expect(f.calls).toEqual([2, 1]);
  });

  it('with memoryBytes 0 fetches every time', async () => {
    const f = fake([10]);
    const r = reader(f, { memoryBytes: 0 });
    for (let k = 0; k < 3; k++) expect(await r.read(0, 10)).toEqual(f.ref);
    expect(f.calls).toEqual([3]);
  });

  it('holds a bounded working set under a random read load', async () => {
    const sizes = Array.from({ length: 40 }, (_, i) => 50 + ((i * 37) % 60));
    const f = fake(sizes);
    const r = reader(f, { memoryBytes: 300 });
    let x = 7;
    for (let k = 0; k < 300; k++) {
      x = (x * 1103515245 + 12345) >>> 0;
      const off = x % f.ref.length;
      expect(await r.read(off, 120)).toEqual(f.ref.subarray(off, off + 120));
    }
    // The private LRU is the bound's only evidence: its bytes never exceed memoryBytes.
    const lru = (r as unknown as { lru: Map<number, Buffer> }).lru;
    expect(sum([...lru.values()].map((b) => b.length))).toBeLessThanOrEqual(300);
    expect(sum(f.calls)).toBeGreaterThan(40); // chunks were evicted and refetched
  });
});

describe('DataReader single flight', () => {
  it('fetches a chunk once for concurrent reads', async () => {
    const f = fake([100, 100, 100]);
    const r = reader(f);
    f.hold();
    const reads = [r.read(110, 10), r.read(150, 10), r.read(190, 20), r.read(50, 60), r.read(100, 100)];
    await settle();
    expect(f.calls).toEqual([1, 1, 1]);
    f.release();
    const got = await Promise.all(reads);
    expect(got).toEqual([f.ref.subarray(110, 120), f.ref.subarray(150, 160), f.ref.subarray(190, 210), f.ref.subarray(50, 110), f.ref.subarray(100, 200)]);
    expect(f.calls).toEqual([1, 1, 1]);
    expect(r.counters.sourceReads).toBe(3);
  });
});

describe('DataReader readahead', () => {
  const ten = (): Fake => fake(Array.from({ length: 10 }, () => 100));

  it('fetches the following chunks for sequential reads on one stream, growing the window', async () => {
    const f = ten();
    const r = reader(f, { readaheadChunks: 4 });
    await r.read(0, 100, 1); // first read: no evidence of sequential access yet
    expect(r.counters.readaheads).toBe(0);
    expect(f.calls).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    await r.read(100, 100, 1); // sequential: window 1 → chunk 2
    expect(r.counters.readaheads).toBe(1);
    expect(f.calls.slice(0, 4)).toEqual([1, 1, 1, 0]);
    await r.read(200, 100, 1); // window 2 → chunks 3, 4; chunk 2 came from memory
    await settle();
    expect(r.counters.readaheads).toBe(3);
    expect(f.calls).toEqual([1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
    expect(r.counters.memoryHits).toBeGreaterThanOrEqual(1);
    await r.read(300, 100, 1); // window 4 → 5, 6, 7 (4 is in memory)
    await settle();
    expect(f.calls).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    await r.read(400, 100, 1); // window capped at 4 → 8 (5–7 in memory)
    await r.read(500, 100, 1); // → 9; then the end of the stream
    await settle();
    expect(f.calls).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    for (let off = 600; off < 1000; off += 100) expect(await r.read(off, 100, 1)).toEqual(f.ref.subarray(off, off + 100));
    expect(f.calls).toEqual(Array(10).fill(1)); // every chunk fetched once, most of them ahead of time
    expect(r.counters.readaheads).toBe(8);
  });

  it('recognises sequential reads within a chunk and across several', async () => {
    const f = ten();
    const r = reader(f, { readaheadChunks: 2 });
    await r.read(0, 10, 1);
    await r.read(10, 10, 1); // sequential inside chunk 0 → chunk 1
    expect(f.log).toEqual([0, 1]);
    await r.read(20, 280, 1); // up to chunk 2 → ahead of 2: chunks 3, 4
    await settle();
    expect(f.calls.slice(0, 6)).toEqual([1, 1, 1, 1, 1, 0]);
  });

  it('does nothing for random reads', async () => {
    const f = ten();
    const r = reader(f, { readaheadChunks: 8 });
    for (const off of [500, 0, 900, 300, 310, 700, 100]) await r.read(off, 5, 1);
    await settle();
    expect(r.counters.readaheads).toBe(0);
    expect(sum(f.calls)).toBe(6);
  });

  it('does nothing without a stream, with readaheadChunks 0, or after endStream', async () => {
    const f = ten();
    const r = reader(f, { readaheadChunks: 8 });
    for (let off = 0; off < 300; off += 100) await r.read(off, 100);
    expect(r.counters.readaheads).toBe(0);
    const off = reader(ten(), { readaheadChunks: 0 });
    for (let o = 0; o < 300; o += 100) await off.read(o, 100, 1);
    expect(off.counters.readaheads).toBe(0);
    await r.read(500, 100, 3);
    r.endStream(3);
    // 800 continues neither stream 3 (forgotten) nor the walk of the data stream (chunk 5 → 8).
    await r.read(800, 100, 3);
    expect(r.counters.readaheads).toBe(0);
  });

  it('reads walking the data stream in order across files (streams) read ahead too', async () => {
    const f = ten();
    const r = reader(f, { readaheadChunks: 4 });
    // Files in data order, each read once by its own stream: chunk 0, 1, 2 …
    await r.read(0, 100, 10);
    await r.read(100, 100, 11);
    await r.read(200, 100, 12);
    await settle();
    expect(r.counters.readaheads).toBeGreaterThan(0);
    expect(f.calls.slice(3, 5)).toEqual([1, 1]);
    expect(f.calls.every((n) => n <= 1)).toBe(true);
  });

  it('keeps separate state per stream', async () => {
    const f = ten();
    const r = reader(f, { readaheadChunks: 1 });
    await r.read(0, 100, 1);
    await r.read(500, 100, 2);
    await r.read(100, 100, 1); // stream 1 sequential → chunk 2 (the data-stream walk broke at 5)
    await r.read(600, 100, 2); // stream 2 sequential → chunk 7
    await settle();
    expect(r.counters.readaheads).toBe(2);
    expect(f.calls).toEqual([1, 1, 1, 0, 0, 1, 1, 1, 0, 0]);
  });

  it('does not fetch ahead what is already being fetched', async () => {
    const f = ten();
    const r = reader(f, { readaheadChunks: 2 });
    await r.read(0, 100, 1);
    f.hold();
    const pending = r.read(200, 10); // chunk 2 in flight, no stream
    const seq = r.read(100, 100, 1); // sequential, window 1: chunk 2, which is in flight
    await settle();
    expect(f.calls.slice(0, 4)).toEqual([1, 1, 1, 0]);
    f.release();
    await Promise.all([pending, seq]);
    expect(r.counters.readaheads).toBe(0);
  });
});

describe('DataReader failures', () => {
  it('rejects a read whose chunk cannot be fetched, and retries on the next read', async () => {
    const f = fake([100, 100]);
    const r = reader(f);
    f.failNext(1);
    await expect(r.read(50, 100)).rejects.toThrow(/chunk 1 unavailable/);
    expect(await r.read(50, 100)).toEqual(f.ref.subarray(50, 150));
    expect(f.calls).toEqual([1, 2]);
  });

  it('rejects every reader waiting on the failed fetch, and caches nothing for it', async () => {
    const f = fake([100]);
    const r = reader(f);
    f.failNext(0);
    f.hold();
    const reads = [r.read(0, 10), r.read(10, 10), r.read(20, 10)];
    f.release();
    const results = await Promise.allSettled(reads);
    expect(results.map((x) => x.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(f.calls).toEqual([1]);
    expect(await r.read(0, 100)).toEqual(f.ref);
    expect(await r.read(0, 100)).toEqual(f.ref);
    expect(f.calls).toEqual([2]);
  });

  it('drops a failed readahead quietly and fetches the chunk again when it is read', async () => {
    const f = fake([100, 100, 100]);
    const r = reader(f, { readaheadChunks: 1 });
    f.failNext(2);
    await r.read(0, 100, 1);
    await r.read(100, 100, 1); // readahead of chunk 2 fails in the background
    await settle();
    expect(f.calls).toEqual([1, 1, 1]);
    expect(await r.read(200, 100, 1)).toEqual(f.ref.subarray(200));
    expect(f.calls).toEqual([1, 1, 2]);
  });
});
