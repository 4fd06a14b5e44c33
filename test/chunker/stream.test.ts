/**
 * chunkStream: windowing must not change a single cut, whatever the window size and however the
 * source splits its bytes; memory and ownership guarantees; edge cases.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { chunkBatches, chunkerBackend, chunkStream, cutPoints, refCutPoints, DEFAULT_CHUNK_SIZES, MAX_WINDOW_SIZE, WindowPool } from '../../src/chunker/index.js';
import type { ChunkSizes } from '../../src/chunker/index.js';
import { UsageError } from '../../src/errors.js';
import { xorshiftBytes } from './xorshift.js';


type Kind = 'random' | 'zeros' | 'sparse' | 'pattern';
/** Data shapes that exercise content cuts (random), forced max cuts (zeros) and mixtures of both. */
function makeData(kind: Kind, seed: number, length: number): Uint8Array {
  const noise = xorshiftBytes(seed, length);
  if (kind === 'random') return noise;
  const out = new Uint8Array(length);
  if (kind === 'sparse') for (let i = 0; i < length; i++) out[i] = noise[i]! < 8 ? noise[(i * 7) % length]! : 0;
  if (kind === 'pattern') for (let i = 0; i < length; i++) out[i] = noise[i % (1 + (seed % 97))]!;
  return out;
}

/** Yields `data` in pieces whose lengths cycle through `lengths` (0-length pieces included). */
async function* split(data: Uint8Array, lengths: number[]): AsyncGenerator<Uint8Array> {
  for (let o = 0, k = 0; o < data.length; k++) {
    const n = lengths[k % lengths.length]!;
    yield data.subarray(o, o + n);
    o += n;
    if (lengths.every((l) => l === 0)) throw new Error('test bug: no progress');
  }
}

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of gen) out.push(c);
  return out;
}

function endsOf(chunks: Uint8Array[]): number[] {
  let end = 0;
  return chunks.map((c) => (end += c.length));
}

const sizesArb: fc.Arbitrary<ChunkSizes> = fc
  .integer({ min: 64, max: 3000 })
  .chain((min) =>
    fc.integer({ min: Math.max(256, min), max: 6000 }).chain((avg) =>
      fc.integer({ min: Math.max(1024, avg), max: 12000 }).map((max) => ({ min, avg, max })),
    ),
  );

describe('chunkStream equals cutPoints on the whole buffer (property)', () => {
  it('for any sizes, window and split', async () => {
    const caseArb = sizesArb.chain((sizes) =>
      fc.record({
        sizes: fc.constant(sizes),
        windowSize: fc.oneof(fc.constant(sizes.max + 1), fc.integer({ min: sizes.max + 1, max: 4 * sizes.max })),
        kind: fc.constantFrom<Kind>('random', 'zeros', 'sparse', 'pattern'),
        seed: fc.integer({ min: 1, max: 2 ** 31 }),
        length: fc.integer({ min: 0, max: 80_000 }),
        lengths: fc.array(
          fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 1, max: 3 * (sizes.max + 1) }), fc.integer({ min: 1, max: 100_000 })),
          { minLength: 1, maxLength: 12 },
        ).filter((ls) => ls.some((l) => l > 0)),
      }),
    );
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ sizes, windowSize, kind, seed, length, lengths }) => {
        const data = makeData(kind, seed, length);
        const chunks = await collect(chunkStream(split(data, lengths), { sizes, windowSize }));
        const expected = cutPoints(data, sizes);
        expect(endsOf(chunks)).toEqual(expected);
        expect(expected).toEqual(refCutPoints(data, sizes));
        expect(Buffer.concat(chunks).equals(data)).toBe(true);
        chunks.forEach((c, i) => {
          expect(c.length).toBeLessThanOrEqual(sizes.max);
          if (i < chunks.length - 1) expect(c.length).toBeGreaterThanOrEqual(sizes.min);
          else expect(c.length).toBeGreaterThan(0);
        });
      }),
      { numRuns: 300 },
    );
  });
});

describe('chunkStream piece sizes and memory', () => {
  const data = makeData('sparse', 5, 700_000);
  const expected = cutPoints(data, DEFAULT_CHUNK_SIZES);
  const windowSize = DEFAULT_CHUNK_SIZES.max + 1;

  it('1-byte pieces', async () => {
    const chunks = await collect(chunkStream(split(data, [1]), { windowSize }));
    expect(endsOf(chunks)).toEqual(expected);
  });

  it('one piece many windows long', async () => {
    const chunks = await collect(chunkStream(split(data, [data.length]), { windowSize }));
    expect(endsOf(chunks)).toEqual(expected);
  });

  it('default window over several windows of input', async () => {
    const big = makeData('random', 9, 20 << 20);
    const chunks = await collect(chunkStream(split(big, [1 << 20, 3, 5_000_000])));
    expect(endsOf(chunks)).toEqual(cutPoints(big, DEFAULT_CHUNK_SIZES));
  });

  it('a source that reuses one buffer for every piece (like a read loop)', async () => {
    async function* reused(): AsyncGenerator<Uint8Array> {
      const buf = Buffer.alloc(10_000);
      for (let o = 0; o < data.length; o += buf.length) {
        const n = Math.min(buf.length, data.length - o);
        buf.set(data.subarray(o, o + n));
        yield buf.subarray(0, n);
      }
    }
    const chunks = await collect(chunkStream(reused(), { windowSize }));
    expect(endsOf(chunks)).toEqual(expected);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });

  it('yields chunks that own their memory and survive later windows', async () => {
    const chunks = await collect(chunkStream(split(data, [4096]), { windowSize }));
    // Compared only after the stream ended: a chunk aliasing the reused window would be overwritten.
    let o = 0;
    for (const c of chunks) {
      expect(Buffer.isBuffer(c)).toBe(true);
      expect(c.buffer.byteLength).toBe(c.length);
      expect(c.equals(data.subarray(o, o + c.length))).toBe(true);
      o += c.length;
    }
    expect(o).toBe(data.length);
  });

  it('reads ahead at most one window (plus one piece) beyond what it has yielded', async () => {
    const sizes: ChunkSizes = { min: 64, avg: 256, max: 1024 };
    const pieceSize = 4096;
    const window = 64 * 1024;
    let pulled = 0;
    let stopped = false;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        for (let seed = 1; ; seed++) {
          pulled += pieceSize;
          yield xorshiftBytes(seed, pieceSize);
        }
      } finally {
        stopped = true;
      }
    }
    let yielded = 0;
    let n = 0;
    for await (const c of chunkStream(endless(), { sizes, windowSize: window })) {
      yielded += c.length;
      expect(pulled).toBeLessThanOrEqual(yielded + window + pieceSize);
      if (++n === 2000) break;
    }
    expect(yielded).toBeGreaterThan(4 * window);
    expect(stopped).toBe(true); // breaking out of the consumer loop closes the source
  });
});

describe('chunkStream edge cases', () => {
  const { max } = DEFAULT_CHUNK_SIZES;

  it('empty stream and empty pieces yield nothing; cutPoints of empty is []', async () => {
    expect(await collect(chunkStream((async function* () {})()))).toEqual([]);
    expect(await collect(chunkStream(split(new Uint8Array(0), [0])))).toEqual([]);
    async function* empties(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 5; i++) yield new Uint8Array(0);
    }
    expect(await collect(chunkStream(empties()))).toEqual([]);
    expect(cutPoints(new Uint8Array(0), DEFAULT_CHUNK_SIZES)).toEqual([]);
    expect(refCutPoints(new Uint8Array(0), DEFAULT_CHUNK_SIZES)).toEqual([]);
  });

  it('1 byte is one chunk', async () => {
    const chunks = await collect(chunkStream(split(Uint8Array.of(42), [1])));
    expect(chunks.map((c) => [...c])).toEqual([[42]]);
    expect(cutPoints(Uint8Array.of(42), DEFAULT_CHUNK_SIZES)).toEqual([1]);
  });

  it('exactly max bytes', async () => {
    // Zeros never match a mask, so max zeros are one forced chunk and max + 1 zeros are two.
    expect(cutPoints(new Uint8Array(max), DEFAULT_CHUNK_SIZES)).toEqual([max]);
    expect(cutPoints(new Uint8Array(max + 1), DEFAULT_CHUNK_SIZES)).toEqual([max, max + 1]);
    for (const data of [new Uint8Array(max), xorshiftBytes(1, max), new Uint8Array(max + 1)]) {
      const chunks = await collect(chunkStream(split(data, [777]), { windowSize: max + 1 }));
      expect(endsOf(chunks)).toEqual(refCutPoints(data, DEFAULT_CHUNK_SIZES));
    }
  });

  it('rejects windowSize <= max (and other bad windows) with UsageError at call time', () => {
    const src = (async function* () {})();
    for (const windowSize of [max, max - 1, 0, -1, max + 0.5, Number.NaN, MAX_WINDOW_SIZE + 1]) {
      expect(() => chunkStream(src, { windowSize })).toThrow(UsageError);
    }
    expect(() => chunkStream(src, { windowSize: 4096, sizes: { min: 64, avg: 256, max: 4096 } })).toThrow(/windowSize/);
    expect(() => chunkStream(src, { windowSize: max + 1 })).not.toThrow();
  });

  it('rejects pieces that are not bytes', async () => {
    async function* strings(): AsyncGenerator<unknown> {
      yield 'text';
    }
    await expect(collect(chunkStream(strings() as AsyncIterable<Uint8Array>))).rejects.toThrow(UsageError);
  });
});

describe('chunkBatches with recycled windows', () => {
  it('calls the WASM chunker directly, not through its copying glue', () => {
    expect(chunkerBackend()).toBe('direct');
  });

  it('reuses windows given back and still cuts exactly as the oracle', async () => {
    const data = makeData('random', 11, 3_000_000);
    const windowSize = 300_000;
    const windows = new WindowPool(windowSize, 2);
    const seen = new Set<ArrayBufferLike>();
    const ends: number[] = [];
    let base = 0;
    for await (const { data: batch, ends: batchEnds } of chunkBatches(split(data, [65_536, 1, 99_999]), { windowSize, windows })) {
      seen.add(batch.buffer);
      for (const e of batchEnds) ends.push(base + e);
      base += batch.length;
      // As a worker would: the bytes are consumed, then the window is given back (scribbled on).
      new Uint8Array(batch.buffer).fill(0xa5);
      windows.give(batch.buffer);
    }
    expect(ends).toEqual(refCutPoints(data, DEFAULT_CHUNK_SIZES));
    expect(base).toBe(data.length);
    // 10 windows' worth of input through at most 3 distinct buffers (one filling, one handed out, one spare).
    expect(seen.size).toBeLessThanOrEqual(3);
  });

  it('ignores buffers of another size and refuses a pool that does not match the window size', () => {
    const windows = new WindowPool(1 << 20, 4);
    windows.give(new ArrayBuffer(1000));
    expect(windows.take().length).toBe(1 << 20);
    expect(() => chunkBatches(split(new Uint8Array(10), [10]), { windowSize: 1 << 21, windows })).toThrow(UsageError);
  });
});
