import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compressChunk, DecodeFailure, decompressStored, decompressToScratch } from '../../src/codec/zstd.js';

describe('zstd codec', () => {
  it('round-trips text, random and empty data', () => {
    for (const plain of [Buffer.from('hello\n'.repeat(1000)), randomBytes(70_000), Buffer.alloc(0)]) {
      const stored = compressChunk(plain);
      expect(stored.subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
      expect(decompressStored(stored, plain.length).equals(plain)).toBe(true);
    }
  });

  it('is deterministic', () => {
    const plain = randomBytes(50_000);
    expect(compressChunk(plain).equals(compressChunk(plain))).toBe(true);
  });

  it('refuses output above the bound without inflating a bomb', () => {
    const bomb = compressChunk(Buffer.alloc(64 * 1024 * 1024)); // 64 MiB of zeros → a few KiB
    expect(bomb.length).toBeLessThan(10_000);
    expect(() => decompressStored(bomb, 256 * 1024)).toThrow(/more than 262144/);
  });

  it('bounds frames that do not declare their size (casync and the zstd CLI on a pipe write such frames)', () => {
    // 64 MiB of zeros through `zstd` from stdin: no content-size field in the frame header.
    const bomb = execFileSync('sh', ['-c', 'head -c 67108864 /dev/zero | zstd -q -c'], { maxBuffer: 1 << 20 });
    expect(() => decompressStored(bomb, 256 * 1024)).toThrow(/decompresses to more than 262144 bytes/);
    const plain = randomBytes(300_000);
    const ok = execFileSync('zstd', ['-q', '-c'], { input: plain, maxBuffer: 1 << 22 }); // stdin: size not declared
    expect(decompressStored(ok, 300_000).equals(plain)).toBe(true); // grows past the first 128 KiB buffer
    expect(decompressToScratch(ok, 300_000).equals(plain)).toBe(true);
  });

  it('accepts exactly the bound', () => {
    const plain = randomBytes(1000);
    expect(decompressStored(compressChunk(plain), 1000).length).toBe(1000);
    expect(() => decompressStored(compressChunk(plain), 999)).toThrow(DecodeFailure);
  });

  it('rejects truncated frames, garbage and empty input', () => {
    const stored = compressChunk(randomBytes(10_000));
    for (const cut of [5, 20, stored.length - 1]) {
      expect(() => decompressStored(stored.subarray(0, cut), 10_000)).toThrow(DecodeFailure);
    }
    expect(() => decompressStored(Buffer.from('not compressed'), 100)).toThrow(/unknown compression/);
    expect(() => decompressStored(Buffer.alloc(0), 100)).toThrow(/empty/);
    const xz = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3]);
    expect(() => decompressStored(xz, 100)).toThrow(/xz/);
  });

  it('reads concatenated frames (zstd CLI multi-frame output) and gzip chunks (casync --compression=gzip)', () => {
    const a = randomBytes(3000);
    const b = Buffer.from('second frame');
    expect(decompressStored(Buffer.concat([compressChunk(a), compressChunk(b)]), 10_000)).toEqual(Buffer.concat([a, b]));
    expect(decompressStored(gzipSync(a), 3000)).toEqual(a);
    expect(() => decompressStored(gzipSync(Buffer.alloc(100_000)), 1000)).toThrow(DecodeFailure);
  });

  it('never throws anything but DecodeFailure on corrupted frames', () => {
    const stored = compressChunk(Buffer.from('some text '.repeat(5000)));
    for (let i = 0; i < 300; i++) {
      const bad = Buffer.from(stored);
      bad[4 + (i % (bad.length - 4))]! ^= 1 << (i % 8);
      try {
        decompressStored(bad, 50_000);
      } catch (err) {
        expect(err).toBeInstanceOf(DecodeFailure);
      }
    }
  });
});
