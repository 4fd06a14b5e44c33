/** Image sources: read container images (OCI layouts, archives, root filesystem dirs) without extracting them. */
export { ImageFormatError, ERR_IMAGE } from './errors.js';
export { parseImageRef, formatImageRef, type ImageRef, type Transport } from './ref.js';
export { parsePlatform, formatPlatform, hostPlatform, normalizePlatform, platformMatches, type Platform } from './platform.js';
export { openImage, type OpenImageOptions } from './open.js';
export type { LayerInfo, OpenedImage } from './types.js';
export { writeImage, layerFromBlob, layerFromImage, type WriteImageSpec, type WriteLayer, type WriteImageOptions, type WrittenImage } from './write.js';
export { writeTarLayer, type TarEntry, type LayerBlob, type WriteTarOptions } from './tar-write.js';
export type { Compression } from './media-types.js';
export { MAX_DOCUMENT_SIZE } from './read.js';
