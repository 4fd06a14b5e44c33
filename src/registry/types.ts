/**
 * The registry client's interface (OCI distribution API v2), as the rest of bootfs uses it: image
 * transports (docker://) and the registry-backed chunk store (oci://). One repository at a time;
 * the client handles auth, retries and TLS.
 */

/** A manifest or index as fetched: its media type, digest (of `body`) and exact bytes. */
export interface FetchedManifest {
  mediaType: string;
  digest: string;
  body: Buffer;
}

export type UploadResult = 'exists' | 'mounted' | 'uploaded';

export interface BlobSource {
  /** Exact size in bytes. */
  size: number;
  /** The bytes; called again when an upload is retried from the start. */
  open(): AsyncIterable<Uint8Array>;
}

/** One repository of one registry, e.g. host:5000 + "team/app". */
export interface BlobRepo {
  /** `host[:port]/repo`, for messages. */
  readonly location: string;
  /** The manifest for a tag or digest; undefined when the registry says it does not exist. */
  getManifest(reference: string, accept?: readonly string[]): Promise<FetchedManifest | undefined>;
  /** Store a manifest under a tag or its digest; returns its digest. */
  putManifest(reference: string, mediaType: string, body: Buffer): Promise<string>;
  /** Size of a blob, or undefined when absent. */
  headBlob(digest: string): Promise<number | undefined>;
  /** A whole blob, verified against `digest`. Throws a not-found error (BootfsError code ERR_NOT_FOUND) when absent. */
  getBlob(digest: string, opts?: { maxBytes?: number; signal?: AbortSignal }): Promise<Buffer>;
  /** A blob as a stream, verified against `digest` when it ends. */
  openBlob(digest: string, opts?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>;
  /**
   * Make the blob present: nothing when it exists, a cross-repository mount from `mountFrom`
   * (a repository name on the same registry) when possible, else an upload (monolithic for small
   * blobs, chunked for large ones). The registry verifies the digest.
   */
  putBlob(digest: string, source: BlobSource | Buffer, opts?: { mountFrom?: string }): Promise<UploadResult>;
  close(): Promise<void>;
}
