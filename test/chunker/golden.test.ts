/**
 * Golden cut points. Chunk boundaries are part of every store's identity (DESIGN §3.2): if this test
 * fails, the chunker changed and every existing store and index would stop deduplicating against
 * new output. Do not "fix" it by pasting new numbers unless that change is deliberate and versioned.
 */
import { createHash } from 'node:crypto';
import { describe, it, expect } from 'vitest';
import { chunkStream, cutPoints, refCutPoints, RONOMON_GEAR_TABLE, DEFAULT_CHUNK_SIZES } from '../../src/chunker/index.js';
import type { ChunkSizes } from '../../src/chunker/index.js';
import { xorshiftBytes } from './xorshift.js';


const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

/** 1 MiB of xorshift output. */
const RANDOM_1M = xorshiftBytes(0x9e3779b9, 1 << 20);
/** 600 KB of zeros (forced max-size cuts) followed by 400 KB of xorshift output. */
const ZEROS_THEN_RANDOM = new Uint8Array(1_000_000);
ZEROS_THEN_RANDOM.set(xorshiftBytes(2, 400_000), 600_000);

const SMALL: ChunkSizes = { min: 64, avg: 256, max: 1024 };

async function streamEnds(buf: Uint8Array, sizes: ChunkSizes, windowSize: number): Promise<number[]> {
  async function* pieces(): AsyncGenerator<Uint8Array> {
    for (let o = 0; o < buf.length; o += 100_003) yield buf.subarray(o, o + 100_003);
  }
  const ends: number[] = [];
  let end = 0;
  for await (const chunk of chunkStream(pieces(), { sizes, windowSize })) ends.push((end += chunk.length));
  return ends;
}

/** Every implementation path must give the golden cuts: WASM whole-buffer, the oracle, and streaming. */
async function expectAllPaths(buf: Uint8Array, sizes: ChunkSizes, check: (cuts: number[]) => void): Promise<void> {
  check(cutPoints(buf, sizes));
  check(refCutPoints(buf, sizes));
  check(await streamEnds(buf, sizes, sizes.max + 1)); // smallest window: a boundary every ~max bytes
}

describe('golden inputs', () => {
  it('are the bytes the goldens were recorded from', () => {
    // If this fails the PRNG changed, not the chunker; fix the generator, not the goldens.
    expect(sha256(RANDOM_1M)).toBe('3e75ec671075e4115fc876c4c55d5abbac3bfe487a67ff4ca2db38386a014f27');
  });

  it('gear table is the ronomon/fastcdc-rs 1.x table', () => {
    expect(RONOMON_GEAR_TABLE).toHaveLength(256);
    expect(RONOMON_GEAR_TABLE.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 31)).toBe(true);
    const bytes = Buffer.alloc(1024);
    RONOMON_GEAR_TABLE.forEach((v, i) => bytes.writeUInt32LE(v, i * 4));
    expect(sha256(bytes)).toBe('d499f6cdb238b999913ce6bc226452991b403b71cb0b144ca82ecf6e2ce2032a');
  });
});

describe('golden cut points', () => {
  it('1 MiB random, 16K:64K:256K', async () => {
    await expectAllPaths(RANDOM_1M, DEFAULT_CHUNK_SIZES, (cuts) =>
      expect(cuts).toEqual([
        70098, 169467, 246896, 374528, 462169, 517346, 602365, 631912, 695354, 739712, 952932, 974743, 1010532,
        1048576,
      ]),
    );
  });

  it('600 KB zeros + 400 KB random, 16K:64K:256K', async () => {
    await expectAllPaths(ZEROS_THEN_RANDOM, DEFAULT_CHUNK_SIZES, (cuts) =>
      expect(cuts).toEqual([
        262144, 524288, 625098, 671072, 706066, 736725, 755333, 801693, 864257, 976749, 994006, 1000000,
      ]),
    );
  });

  it('all zeros are cut at max', async () => {
    await expectAllPaths(new Uint8Array(1 << 20), DEFAULT_CHUNK_SIZES, (cuts) =>
      expect(cuts).toEqual([262144, 524288, 786432, 1048576]),
    );
  });

  it('first 16 KiB of the random input, 64:256:1024', async () => {
    await expectAllPaths(RANDOM_1M.subarray(0, 16384), SMALL, (cuts) =>
      expect(cuts).toEqual([
        189, 569, 1593, 1780, 1954, 2216, 2380, 2914, 3078, 3585, 3874, 4022, 4113, 4412, 4582, 4837, 5004, 5110,
        5557, 5721, 5900, 6214, 6405, 6681, 6959, 7277, 7485, 7707, 7960, 8148, 8319, 8614, 8919, 9080, 9561, 9894,
        10175, 10645, 11388, 11627, 11824, 12125, 12593, 12830, 13212, 13404, 13815, 14075, 14573, 14774, 14863,
        15099, 15291, 15491, 15678, 15817, 16170, 16384,
      ]),
    );
  });

  it('1 MiB random, 64:256:1024 (digest of 4076 cuts)', async () => {
    await expectAllPaths(RANDOM_1M, SMALL, (cuts) => {
      expect(cuts).toHaveLength(4076);
      expect(sha256(cuts.join(','))).toBe('63308ca111f4044bc7808001727f3d5477f813484024153736ef1f6738200d3a');
    });
  });

  it('non-power-of-two average 5000:20000:70000', async () => {
    await expectAllPaths(RANDOM_1M.subarray(0, 300_000), { min: 5000, avg: 20000, max: 70000 }, (cuts) =>
      expect(cuts).toEqual([
        18028, 32625, 39613, 54005, 70098, 82677, 98222, 128254, 144375, 169467, 174756, 187744, 199926, 214279,
        234060, 246896, 259851, 294695, 300000,
      ]),
    );
  });

  it('non-power-of-two average 1000:3000:10000 (digest of 317 cuts)', async () => {
    await expectAllPaths(RANDOM_1M, { min: 1000, avg: 3000, max: 10000 }, (cuts) => {
      expect(cuts).toHaveLength(317);
      expect(sha256(cuts.join(','))).toBe('120f4192e56af7dd89e55f88008383a7fe1b211a0107583b4efc15ce51e77456');
    });
  });
});
