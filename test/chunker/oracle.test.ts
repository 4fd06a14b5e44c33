/**
 * The WASM chunker against the pure-TypeScript oracle: same cuts on random, all-zero, low-entropy
 * and real-file data, across parameter sets that hit each branch of the ronomon rules.
 */
import { openSync, readSync, closeSync, existsSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { cutPoints, refCutPoints, chunkStream, DEFAULT_CHUNK_SIZES, DEFAULT_WINDOW_SIZE } from '../../src/chunker/index.js';
import type { ChunkSizes } from '../../src/chunker/index.js';
import { UsageError } from '../../src/errors.js';
import { xorshiftBytes } from './xorshift.js';


/** Runs of zeros, short repeats and noise: forces max-size cuts and both mask phases. */
function mixedBytes(seed: number, length: number): Uint8Array {
  const noise = xorshiftBytes(seed, length);
  const out = new Uint8Array(length);
  for (let o = 0, k = 0; o < length; k++) {
    const run = 1 + ((noise[k % length]! * 977 + k * 131) % 40_000);
    const kind = k % 3;
    for (let i = o; i < Math.min(length, o + run); i++) out[i] = kind === 0 ? 0 : kind === 1 ? noise[i % 61]! : noise[i]!;
    o += run;
  }
  return out;
}

function readPrefix(path: string, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    const n = readSync(fd, buf, 0, length, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

const PARAMS: Record<string, ChunkSizes> = {
  'defaults 16K:64K:256K': DEFAULT_CHUNK_SIZES,
  'smallest 64:256:1024': { min: 64, avg: 256, max: 1024 },
  'non-power-of-two 1000:3000:10000 (log2 rounds up)': { min: 1000, avg: 3000, max: 10000 },
  'non-power-of-two 20000:90000:300000 (log2 rounds down)': { min: 20000, avg: 90000, max: 300000 },
  'center <= min, no strict phase 200:256:1024': { min: 200, avg: 256, max: 1024 },
  'min = avg = max (fixed size) 1024:1024:1024': { min: 1024, avg: 1024, max: 1024 },
  'avg = max 4096:8192:8192': { min: 4096, avg: 8192, max: 8192 },
  'odd min (ceil(min/2)) 4097:32768:65537': { min: 4097, avg: 32768, max: 65537 },
  // Many small chunks, so the one-byte shift of the normal point a floor(min/2) would cause shows up.
  'odd min, small 65:256:1024': { min: 65, avg: 256, max: 1024 },
};

describe('cutPoints equals refCutPoints', () => {
  for (const [name, sizes] of Object.entries(PARAMS)) {
    it(`random, zeros and mixed data, ${name}`, () => {
      for (const buf of [xorshiftBytes(7, 3_000_001), new Uint8Array(1_234_567), mixedBytes(11, 2_000_000)]) {
        const cuts = cutPoints(buf, sizes);
        expect(cuts).toEqual(refCutPoints(buf, sizes));
        expect(cuts.at(-1)).toBe(buf.length);
      }
    });
  }

  const realFiles = ['/usr/bin/node', '/usr/lib/x86_64-linux-gnu/libc.so.6'].filter((p) => existsSync(p));
  it('real files (first 8 MiB)', () => {
    expect(realFiles.length).toBeGreaterThan(0);
    for (const path of realFiles) {
      const buf = readPrefix(path, 8 << 20);
      for (const sizes of [DEFAULT_CHUNK_SIZES, PARAMS['smallest 64:256:1024']!, PARAMS['non-power-of-two 1000:3000:10000 (log2 rounds up)']!]) {
        expect(cutPoints(buf, sizes)).toEqual(refCutPoints(buf, sizes));
      }
    }
  });

  it('buffers larger than the internal WASM window (cutPoints windows them too)', () => {
    // 20 MiB crosses two 8 MiB windows; zero runs make window ends land inside forced chunks.
    const buf = mixedBytes(3, 20 << 20);
    expect(buf.length).toBeGreaterThan(2 * DEFAULT_WINDOW_SIZE);
    expect(cutPoints(buf, DEFAULT_CHUNK_SIZES)).toEqual(refCutPoints(buf, DEFAULT_CHUNK_SIZES));
    // max = 6 MiB: the window becomes 2 * max = 12 MiB.
    const big: ChunkSizes = { min: 1 << 20, avg: 3 << 20, max: 6 << 20 };
    expect(cutPoints(buf, big)).toEqual(refCutPoints(buf, big));
  });
});

describe('chunk size validation', () => {
  // fastcdc-rs asserts min >= 64 and max >= 1024; the WASM build would trap with "unreachable".
  const bad: ChunkSizes[] = [
    { min: 48, avg: 256, max: 1024 },
    { min: 64, avg: 256, max: 1000 },
    { min: 64, avg: 255, max: 1024 },
    { min: 2048, avg: 1024, max: 4096 },
  ];
  for (const sizes of bad) {
    it(`rejects ${sizes.min}:${sizes.avg}:${sizes.max} with UsageError in every entry point`, () => {
      const buf = new Uint8Array(5000);
      expect(() => cutPoints(buf, sizes)).toThrow(UsageError);
      expect(() => refCutPoints(buf, sizes)).toThrow(UsageError);
      expect(() => chunkStream((async function* () {})(), { sizes })).toThrow(UsageError);
    });
  }
});
