/**
 * The one accepted shape of a chunk URL path, `/<4hex>/<64hex>.cacnk` (casync/desync layout, lower
 * case, shard = first four digits of the ID). Request paths are hostile: they are matched raw,
 * before any percent-decoding or dot-segment handling, so `/../`, `%2e%2e`, `%2F`, upper case, a
 * wrong suffix or extra segments can never name a file outside the store.
 */
import { hexToId } from '../chunk.js';

const CHUNK_PATH = /^\/([0-9a-f]{4})\/([0-9a-f]{64})\.cacnk$/;

/** A validated chunk request: the raw ID and its hex form. */
export interface ChunkPath {
  id: Buffer;
  hex: string;
}

/**
 * Parse the raw request target (path plus optional query, which is ignored as desync's server
 * ignores it). Returns undefined for anything that is not exactly a chunk path.
 */
export function parseChunkPath(rawUrl: string): ChunkPath | undefined {
  const q = rawUrl.indexOf('?');
  const p = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const m = CHUNK_PATH.exec(p);
  if (!m) return undefined;
  const [, shard, hex] = m as unknown as [string, string, string];
  if (!hex.startsWith(shard)) return undefined;
  const id = hexToId(hex);
  return id ? { id, hex } : undefined;
}

/** Largest PUT body accepted by default: casync's cap on a chunk body (16 MiB). Lives here, not in http.ts, so the CLI can show it without loading fastify. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
