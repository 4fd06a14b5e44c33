/**
 * Bounded reads from a BlobLocation: the head of a blob (for sniffing), whole JSON documents
 * (verified and size-capped), and exact-length streaming of large blobs.
 */
import { open } from 'node:fs/promises';
import { IoError } from '../errors.js';
import { sha256Digest } from './digest.js';
import { ImageFormatError } from './errors.js';
import { sniffCompression, SNIFF_BYTES, type Compression } from './media-types.js';
import type { BlobLocation } from './source.js';

/** Largest manifest, index or config document read (containerd and the distribution spec use 4 MiB). */
export const MAX_DOCUMENT_SIZE = 4 << 20;

/** Read size for streaming layers: large enough for syscall overhead not to matter. */
const READ_CHUNK = 1 << 20;

async function openFile(loc: BlobLocation, what: string) {
  try {
    return await open(loc.file, 'r');
  } catch (err) {
    throw new IoError(`cannot open ${what} (${loc.file}): ${(err as Error).message}`, err);
  }
}

/** Read exactly `n` bytes at `offset` of `loc` (n ≤ loc.size); a short read means the file shrank. */
export async function readExact(loc: BlobLocation, n: number, what: string): Promise<Buffer> {
  const fh = await openFile(loc, what);
  try {
    const buf = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await fh.read(buf, got, n - got, loc.offset + got);
      if (bytesRead === 0) throw new ImageFormatError(`${what}: truncated (${got} of ${n} bytes readable)`);
      got += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

/** What a caller knows about a document before reading it. */
export interface Expected {
  /** The digest it must have (verified). */
  digest?: string;
  /** The size it must have (from its descriptor). */
  size?: number;
}

/** Check a blob's actual size against its descriptor's: longer or shorter are both errors. */
export function checkSize(loc: BlobLocation, size: number, what: string): void {
  if (loc.size > size) throw new ImageFormatError(`${what}: blob is ${loc.size} bytes, longer than the ${size} bytes its descriptor says`);
  if (loc.size < size) throw new ImageFormatError(`${what}: blob is truncated (${loc.size} of ${size} bytes)`);
}

/**
 * Read a JSON document (manifest, index, config, index.json …) of at most MAX_DOCUMENT_SIZE bytes,
 * check its size and digest, and parse it. Returns the parsed value, its bytes and their digest.
 */
export async function readDocument(
  loc: BlobLocation,
  expected: Expected,
  what: string,
): Promise<{ value: unknown; bytes: Buffer; digest: string }> {
  if (expected.size !== undefined) checkSize(loc, expected.size, what);
  if (loc.size > MAX_DOCUMENT_SIZE) {
    throw new ImageFormatError(`${what}: ${loc.size} bytes is over the ${MAX_DOCUMENT_SIZE >> 20} MiB limit for JSON documents`);
  }
  const bytes = await readExact(loc, loc.size, what);
  const digest = sha256Digest(bytes);
  if (expected.digest !== undefined && digest !== expected.digest) {
    throw new ImageFormatError(`${what}: digest mismatch (got ${digest})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ImageFormatError(`${what}: not valid JSON (${(err as Error).message})`);
  }
  return { value, bytes, digest };
}

/**
 * Stream exactly `loc.size` bytes of `loc` in fresh buffers (the consumer may keep them). Never reads
 * past the range; a file that ends early is a truncation error. Checks `signal` before each read.
 */
export async function* readRange(loc: BlobLocation, what: string, signal?: AbortSignal): AsyncGenerator<Buffer, void, undefined> {
  signal?.throwIfAborted();
  const fh = await openFile(loc, what);
  try {
    let done = 0;
    while (done < loc.size) {
      signal?.throwIfAborted();
      const n = Math.min(READ_CHUNK, loc.size - done);
      const buf = Buffer.allocUnsafe(n);
      const { bytesRead } = await fh.read(buf, 0, n, loc.offset + done);
      if (bytesRead === 0) throw new ImageFormatError(`${what}: truncated (${done} of ${loc.size} bytes readable)`);
      done += bytesRead;
      yield bytesRead === n ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/** The compression a blob's first bytes show. */
export async function sniffBlob(loc: BlobLocation, what: string): Promise<Compression> {
  return sniffCompression(await readExact(loc, Math.min(SNIFF_BYTES, loc.size), what));
}
