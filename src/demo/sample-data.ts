/**
 * Built-in sample data for the demo: deterministic, compressible-but-not-trivial bytes that look
 * like a disk image (text, binary and zero runs), plus a "next version" with edits and an insertion
 * that shifts every later byte — the case where content-defined chunking beats fixed blocks.
 */
import { createCipheriv } from 'node:crypto';

/** xorshift32: a tiny deterministic PRNG so the sample is the same on every machine. */
function* xorshift(seed: number): Generator<number> {
  let x = seed >>> 0 || 1;
  for (;;) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    yield x;
  }
}

const WORDS = 'kernel module driver network packet route table image layer chunk store index cache node pod boot mount fuse overlay lazy fetch verify digest'.split(' ');

/** `size` bytes of sample "image" data from `seed`: segments of words, random bytes and zeros. */
export function sampleImage(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  const rnd = xorshift(seed);
  const next = (): number => rnd.next().value as number;
  let off = 0;
  while (off < size) {
    const kind = next() % 4;
    const len = Math.min(size - off, 4096 + (next() % (192 * 1024)));
    if (kind === 0 || kind === 1) {
      // Text: compresses ~4×, like configuration, scripts and docs.
      let p = off;
      while (p < off + len) {
        const w = WORDS[next() % WORDS.length]!;
        p += out.write(w + (next() % 8 === 0 ? '\n' : ' '), p, off + len - p);
      }
    } else if (kind === 2) {
      for (let p = off; p < off + len; p += 4) out.writeUInt32LE(next(), p <= off + len - 4 ? p : off + len - 4);
    } // kind 3: zeros (sparse regions of an image)
    off += len;
  }
  return out;
}

/** The next version of `v1`: a few bytes patched in place and a block inserted near the start. */
export function nextVersion(v1: Buffer, seed = 2): Buffer {
  const insert = sampleImage(300 * 1024, seed);
  const at = Math.floor(v1.length / 10);
  const v2 = Buffer.concat([v1.subarray(0, at), insert, v1.subarray(at)]);
  // Patch a few places: changed configuration values.
  for (const frac of [0.5, 0.75, 0.9]) v2.write('PATCHED', Math.floor(v2.length * frac));
  return v2;
}

/**
 * `size` pseudo-random bytes from `seed` (an AES-128-CTR keystream: deterministic, fast, and as
 * incompressible as real model weights are nearly so).
 */
export function pseudoRandomBytes(size: number, seed = 1): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32BE(seed >>> 0, 0);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}
