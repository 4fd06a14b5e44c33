/**
 * Chunk-size parameters. They are part of every store's identity: two runs with different
 * parameters cut different chunks, so they are recorded in every index we write.
 */
import { UsageError } from '../errors.js';

export interface ChunkSizes {
  readonly min: number;
  readonly avg: number;
  readonly max: number;
}

/** casync, desync and puzzlefs defaults: 16 KiB / 64 KiB / 256 KiB. */
export const DEFAULT_CHUNK_SIZES: ChunkSizes = Object.freeze({ min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 });

/**
 * Smallest min we chunk with. desync refuses min < 48 (its rolling-hash window), and fastcdc-rs
 * (inside fastcdc-wasm) asserts min >= 64 — it aborts with an opaque WASM trap below that.
 */
export const MIN_CHUNK_SIZE_FLOOR = 64;
/** fastcdc-rs asserts max >= 1024. */
export const MIN_MAX_CHUNK_SIZE = 1024;
/** casync rejects indexes whose min/avg/max exceed 128 MiB. */
export const MAX_CHUNK_SIZE_CEILING = 128 * 1024 * 1024;
/** fastcdc-rs (the ronomon variant inside fastcdc-wasm) asserts avg >= 256. */
export const MIN_AVG_CHUNK_SIZE = 256;

/** Check min ≤ avg ≤ max and the bounds above; throws UsageError naming the offending value. */
export function validateChunkSizes(s: ChunkSizes): ChunkSizes {
  for (const [name, v] of Object.entries(s)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new UsageError(`chunk size ${name} must be a positive integer, got ${v}`);
    if (v > MAX_CHUNK_SIZE_CEILING) throw new UsageError(`chunk size ${name}=${v} exceeds the 128 MiB limit casync enforces`);
  }
  if (s.min < MIN_CHUNK_SIZE_FLOOR) throw new UsageError(`chunk size min=${s.min} is below ${MIN_CHUNK_SIZE_FLOOR}, the smallest the FastCDC chunker accepts`);
  if (s.max < MIN_MAX_CHUNK_SIZE) throw new UsageError(`chunk size max=${s.max} is below ${MIN_MAX_CHUNK_SIZE}, the smallest the FastCDC chunker accepts`);
  if (s.avg < MIN_AVG_CHUNK_SIZE) throw new UsageError(`chunk size avg=${s.avg} is below ${MIN_AVG_CHUNK_SIZE}`);
  if (!(s.min <= s.avg && s.avg <= s.max)) {
    throw new UsageError(`chunk sizes must satisfy min <= avg <= max, got ${s.min}:${s.avg}:${s.max}`);
  }
  return s;
}

/** Parse a size like `65536`, `64K`, `64KiB`, `1M`, `1MiB` (binary multiples, case-insensitive). */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+)\s*(?:([kmgt])(?:i?b)?|b)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`${what} '${text}' is not a size (examples: 65536, 64K, 1M, 2GiB)`);
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit === '' ? 1 : 1024 ** ('kmgt'.indexOf(unit) + 1);
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} '${text}' is too large`);
  return n;
}

/**
 * Parse `MIN:AVG:MAX` (each a size as accepted by parseSize) or a single `AVG`, which gives
 * casync's derivation min = avg/4, max = avg*4.
 */
export function parseChunkSizes(text: string): ChunkSizes {
  const parts = text.split(':');
  let sizes: ChunkSizes;
  if (parts.length === 1) {
    const avg = parseSize(parts[0] ?? '', 'chunk size');
    sizes = { min: Math.floor(avg / 4), avg, max: avg * 4 };
  } else if (parts.length === 3) {
    const [min, avg, max] = parts.map((p) => parseSize(p, 'chunk size')) as [number, number, number];
    sizes = { min, avg, max };
  } else {
    throw new UsageError(`--chunk-size takes MIN:AVG:MAX or AVG (e.g. 16K:64K:256K), got '${text}'`);
  }
  return validateChunkSizes(sizes);
}

/** `16K:64K:256K`-style rendering, exact (falls back to bytes when not a whole KiB/MiB). */
export function formatChunkSizes(s: ChunkSizes): string {
  const one = (n: number): string =>
    n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)}M` : n % 1024 === 0 ? `${n / 1024}K` : String(n);
  return `${one(s.min)}:${one(s.avg)}:${one(s.max)}`;
}
