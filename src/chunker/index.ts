/** The chunker: FastCDC (ronomon variant) cut points, streaming, sizes, and the reference oracle. */
export { cutPoints, chunkStream, chunkBatches, chunkerBackend, WindowPool, validateFastcdcSizes, FASTCDC_LIMITS, DEFAULT_WINDOW_SIZE, MAX_WINDOW_SIZE } from './fastcdc.js';
export type { ChunkerOptions, ChunkBatch, FillSource } from './fastcdc.js';
export { refCutPoints, RONOMON_GEAR_TABLE } from './fastcdc-ref.js';
export {
  DEFAULT_CHUNK_SIZES,
  MIN_CHUNK_SIZE_FLOOR,
  MAX_CHUNK_SIZE_CEILING,
  MIN_AVG_CHUNK_SIZE,
  validateChunkSizes,
  parseSize,
  parseChunkSizes,
  formatChunkSizes,
} from './params.js';
export type { ChunkSizes } from './params.js';
