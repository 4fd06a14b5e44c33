/** The image-source API: what openImage returns, and the resolved form the transports produce. */
import type { ImageConfig } from '../tree/types.js';
import type { Compression } from './media-types.js';
import type { Platform } from './platform.js';
import type { ParsedConfig } from './schema.js';
import type { BlobLocation, RemoteBlob } from './source.js';

/** One layer of an image, bottom to top. */
export interface LayerInfo {
  /**
   * Digest of the stored (possibly compressed) blob. docker-archive layers stored compressed under a
   * name that is not `blobs/sha256/<hex>` have no known stored digest: there it is the diff_id.
   */
  digest: string;
  /** Digest of the uncompressed tar (the config's rootfs.diff_ids entry), when the config has one. */
  diffId?: string;
  mediaType: string;
  /** Stored size in bytes. */
  size: number;
  compression: Compression;
}

/** An image opened for reading: metadata is loaded and verified, layers stream on demand. */
export interface OpenedImage {
  /** Canonical text of the reference (formatImageRef). */
  reference: string;
  /** Digest of the selected image manifest (sha256:…); absent for docker-archive and dir. */
  manifestDigest?: string;
  configDigest?: string;
  platform: Platform;
  config: ImageConfig;
  /** Bottom to top. */
  layers: LayerInfo[];
  /** dir: transport only: the root filesystem directory (absolute). */
  rootfsDir?: string;
  /**
   * The decompressed tar bytes of layer i. Verified while streaming: the stored bytes against
   * `digest` and the uncompressed bytes against `diffId`; a mismatch throws at the end of the
   * stream, so treat what was read as untrusted until the iteration completes. Consume it fully or
   * call return().
   */
  openLayer(i: number, opts?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>;
  /**
   * The stored (possibly compressed) bytes of layer i exactly as in the source, for copying the
   * layer unchanged into another image; hashed while streaming and compared with `digest` at the
   * end (a mismatch throws there, as in openLayer). Exception: a docker-archive layer whose stored
   * digest is unknown (compressed, so `digest` is its diff_id: `digest === diffId` while
   * `compression !== 'none'`) yields its uncompressed tar instead, verified against the diff_id;
   * its size is then not `size` (that is the compressed size) and is known only after reading.
   */
  openStoredLayer(i: number, opts?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>;
  /**
   * The image config JSON as stored (architecture, os, config, rootfs, history, …), validated as
   * `config` is; `{}` for dir:. Shared, not copied: treat it as read-only.
   */
  rawConfig: Record<string, unknown>;
  /** Release the image; openLayer fails afterwards. Idempotent. */
  close(): Promise<void>;
}

/** A layer as a transport resolved it: its info plus where its bytes are. */
export interface ResolvedLayer extends LayerInfo {
  /** A byte range of a local file, or a registry blob. */
  location: BlobLocation | RemoteBlob;
  /** Whether the stored bytes must hash to `digest` (false only when no stored digest is known). */
  verifyDigest: boolean;
}

/** What a transport hands to openImage. */
export interface ResolvedImage {
  manifestDigest?: string;
  configDigest?: string;
  platform: Platform;
  config: ParsedConfig;
  /** The config document as parsed from JSON (an object: parseConfig checked). */
  rawConfig: Record<string, unknown>;
  layers: ResolvedLayer[];
  /** Releases what the transport holds open (a registry connection); called by OpenedImage.close. */
  close?: () => Promise<void>;
}
