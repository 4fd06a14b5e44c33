/**
 * The in-memory filesystem tree the converter builds from image layers and the bootfs index is
 * written from. Metadata only: file contents stay where they are (a spool file, a source directory)
 * and are referenced by ContentRef, because conversion never extracts an image to disk.
 *
 * Names and paths are **byte strings**: every UTF-16 code unit holds one byte (latin1 decoding), so
 * names that are not UTF-8 survive unchanged, Map lookups need no conversion, and `<` on two byte
 * strings is byte order (the order the index sorts children in).
 */

/** A name or path whose characters are bytes 0–255 (see file comment). */
export type ByteString = string;

/** Convert raw bytes to a ByteString. */
export function toByteString(bytes: Uint8Array): ByteString {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** Convert a ByteString back to its raw bytes. */
export function fromByteString(s: ByteString): Buffer {
  return Buffer.from(s, 'latin1');
}

/** Render a ByteString for humans (UTF-8 where valid; invalid bytes become U+FFFD). */
export function displayName(s: ByteString): string {
  return fromByteString(s).toString('utf8');
}

/** A JS (UTF-16) string as a ByteString of its UTF-8 bytes, e.g. for paths typed by users. */
export function utf8ToByteString(s: string): ByteString {
  return Buffer.from(s, 'utf8').toString('latin1');
}

export type NodeKind = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

/** Where a regular file's bytes are: `size` bytes at `offset` of content source `source`. */
export interface ContentRef {
  /** Index into the converter's list of ContentSources (one per spool file or source directory). */
  source: number;
  offset: number;
  size: number;
  /** For sources that are directories of files (dir: images): the file's path inside the source (a ByteString). */
  path?: ByteString;
}

/**
 * One inode. Hardlinks are the same FsNode object reachable under several names: that is the
 * hardlink identity (the index gives them one inode number, the data stream holds their bytes once).
 */
export interface FsNode {
  kind: NodeKind;
  /** Permission bits including setuid, setgid and sticky (mask 0o7777); the type is `kind`. */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in nanoseconds since the epoch (may be negative for pre-1970 files). */
  mtimeNs: bigint;
  /** Extended attributes (e.g. `security.capability`), name → raw value. */
  xattrs: Map<ByteString, Buffer>;
  /** Regular files: content size in bytes; 0 for every other kind. */
  size: number;
  /** Regular files with size > 0: where the content is. */
  content?: ContentRef;
  /** Symlinks: the target, verbatim (may dangle, loop or be absolute). */
  target?: ByteString;
  /** Character and block devices. */
  devMajor?: number;
  devMinor?: number;
  /** Directories: children by name (never '.', '..', '' or containing '/'). */
  children?: Map<ByteString, FsNode>;
}

/** A new directory node with the given metadata and no children. */
export function newDir(mode = 0o755, uid = 0, gid = 0, mtimeNs = 0n): FsNode {
  return { kind: 'dir', mode, uid, gid, mtimeNs, xattrs: new Map(), size: 0, children: new Map() };
}

/** The image configuration that travels with the index (OCI image config, the parts a runtime uses). */
export interface ImageConfig {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  labels?: Record<string, string>;
  exposedPorts?: string[];
  stopSignal?: string;
  /** Where the image came from: e.g. `oci:/path:tag`, and the manifest digest, os/arch. */
  source?: { reference: string; manifestDigest?: string; configDigest?: string; os?: string; architecture?: string; variant?: string };
}
