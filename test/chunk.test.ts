import { describe, expect, it } from 'vitest';
import { chunkId, decodeChunk, encodeChunk, hexToId, idToHex, isHexId } from '../src/chunk.js';
import { ChunkCorruptError } from '../src/errors.js';

describe('chunk identity', () => {
  it('is SHA-512/256 of the plain bytes (casync vectors)', () => {
    expect(idToHex(chunkId(Buffer.alloc(0)))).toBe('c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a');
    expect(idToHex(chunkId(Buffer.from('hello\n')))).toBe('7f3f0c0d5219f51459578305ed2bbc198588758da85d08024c79c1195d1cd611');
  });

  it('is SHA-256 with digest sha256 (casync --digest=sha256)', () => {
    expect(idToHex(chunkId(Buffer.from('hello\n'), 'sha256'))).toBe('5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03');
  });

  it('verifies IDs of either digest, in any order, and still refuses bytes matching neither', () => {
    const a = Buffer.from('chunk a '.repeat(500));
    const b = Buffer.from('chunk b '.repeat(500));
    for (const digest of ['sha256', 'sha512-256', 'sha256', 'sha256', 'sha512-256'] as const) {
      for (const plain of [a, b]) {
        const { id, stored } = encodeChunk(plain, digest);
        expect(decodeChunk(id, stored, 'here').equals(plain)).toBe(true);
        // A chunk stored under one name must not pass as another one's.
        const other = encodeChunk(plain === a ? b : a, digest);
        expect(() => decodeChunk(id, other.stored, 'here')).toThrow(ChunkCorruptError);
      }
    }
  });

  it('parses only lower-case 64-hex IDs', () => {
    const hex = '7f3f0c0d5219f51459578305ed2bbc198588758da85d08024c79c1195d1cd611';
    expect(isHexId(hex)).toBe(true);
    expect(hexToId(hex)?.length).toBe(32);
    for (const bad of [hex.toUpperCase(), hex.slice(1), hex + '0', '../' + hex.slice(3), 'g'.repeat(64)]) {
      expect(hexToId(bad)).toBeUndefined();
    }
  });

  it('encodes and verifies', () => {
    const plain = Buffer.from('hello\n');
    const { id, stored } = encodeChunk(plain);
    expect(decodeChunk(id, stored, 'here', { size: 6 })).toEqual(plain);
  });

  it('names the chunk and location on a hash mismatch, size mismatch or undecodable bytes', () => {
    const { id, stored } = encodeChunk(Buffer.from('hello\n'));
    const other = encodeChunk(Buffer.from('world\n'));
    const err = (() => {
      try {
        decodeChunk(id, other.stored, '/srv/store');
      } catch (e) {
        return e as ChunkCorruptError;
      }
    })();
    expect(err).toBeInstanceOf(ChunkCorruptError);
    expect(err?.message).toContain(idToHex(id));
    expect(err?.message).toContain('/srv/store');
    expect(err?.exitCode).toBe(3);
    expect(() => decodeChunk(id, stored, 'x', { size: 5 })).toThrow(ChunkCorruptError);
    expect(() => decodeChunk(id, stored, 'x', { size: 7 })).toThrow(/decoded to 6 bytes, the index says 7/);
    expect(() => decodeChunk(id, Buffer.from('junk'), 'x')).toThrow(ChunkCorruptError);
  });
});
