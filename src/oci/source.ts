/**
 * Where an image's files live: a directory (OCI layout) or a tar archive (oci-archive,
 * docker-archive) indexed once and read by offset. Both answer "where are the bytes of member X"
 * with a BlobLocation (file, offset, size); nothing is ever extracted.
 */
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { IoError, NotFoundError, UsageError, errnoCode } from '../errors.js';
import { ImageFormatError } from './errors.js';
import { indexTar, normalizeMemberName, type TarMember } from './tar-index.js';
import { sniffCompression, SNIFF_BYTES } from './media-types.js';

/** A byte range of a file. */
export interface BlobLocation {
  file: string;
  offset: number;
  size: number;
}

/**
 * A blob fetched over the network (a registry layer): its exact size and its stored bytes as a
 * stream. Layer streams hash and check it as they do a BlobLocation.
 */
export interface RemoteBlob {
  size: number;
  /** Where it comes from, for messages (`registry/repo`). */
  remote: string;
  open(signal?: AbortSignal): AsyncIterable<Uint8Array>;
}

/** A set of named files: a directory or an archive. */
export interface FileSource {
  /** Locate a file by relative path (already validated by the caller); undefined when absent. */
  locate(relPath: string): Promise<BlobLocation | undefined>;
}

/** Stat `p`, mapping ENOENT to NotFoundError and anything else to IoError. */
async function statInput(p: string, what: string): Promise<import('node:fs').Stats> {
  try {
    return await stat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') throw new NotFoundError(`${what} not found`);
    throw new IoError(`cannot read ${what}: ${(err as Error).message}`, err);
  }
}

/** Files below a directory. Only regular files count (a FIFO or device never becomes a blob). */
export class DirSource implements FileSource {
  private constructor(readonly root: string) {}

  /** Open directory `root`; `what` names it in errors (e.g. `oci:/x:latest`). */
  static async open(root: string, what: string): Promise<DirSource> {
    const st = await statInput(root, `directory ${root} of ${what}`);
    if (!st.isDirectory()) throw new UsageError(`${what}: ${root} is not a directory (a tar archive of a layout is oci-archive:${root})`);
    return new DirSource(root);
  }

  async locate(relPath: string): Promise<BlobLocation | undefined> {
    const file = path.join(this.root, relPath);
    try {
      const st = await stat(file);
      if (!st.isFile()) return undefined;
      return { file, offset: 0, size: st.size };
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw new IoError(`cannot read ${file}: ${(err as Error).message}`, err);
    }
  }
}

/** Links followed in a row before giving up (docker save writes one level). */
const MAX_LINK_HOPS = 16;

/** The members of a tar archive, indexed once. */
export class TarSource implements FileSource {
  private constructor(
    readonly file: string,
    private readonly label: string,
    private readonly members: Map<string, TarMember>,
  ) {}

  /** Index archive `file`; `what` names the image in errors. */
  static async open(file: string, what: string): Promise<TarSource> {
    const st = await statInput(file, `archive ${file} of ${what}`);
    if (!st.isFile()) throw new UsageError(`${what}: ${file} is not a file`);
    const label = `archive ${file} of ${what}`;
    let fh;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      throw new IoError(`cannot open ${label}: ${(err as Error).message}`, err);
    }
    try {
      const head = Buffer.alloc(SNIFF_BYTES);
      await fh.read(head, 0, SNIFF_BYTES, 0);
      const c = sniffCompression(head);
      if (c !== 'none') {
        throw new ImageFormatError(`${label} is ${c}-compressed; decompress it first (${c === 'gzip' ? 'gunzip' : 'unzstd'}), bootfs reads archives by offset`);
      }
      return new TarSource(file, label, await indexTar(fh, label));
    } finally {
      await fh.close();
    }
  }

  async locate(relPath: string): Promise<BlobLocation | undefined> {
    let name = normalizeMemberName(relPath);
    for (let hop = 0; name !== undefined && hop <= MAX_LINK_HOPS; hop++) {
      const m = this.members.get(name);
      if (m === undefined) return undefined;
      if (m.kind === 'file') return { file: this.file, offset: m.offset, size: m.size };
      if (m.kind === 'other') return undefined;
      // Hard link targets are archive paths; symlink targets are relative to the link's directory.
      const target = m.kind === 'hardlink' ? m.target : m.target.startsWith('/') ? undefined : path.posix.join(path.posix.dirname(name), m.target);
      const next = target === undefined || target.startsWith('../') || target === '..' ? undefined : normalizeMemberName(target);
      if (next === undefined) throw new ImageFormatError(`${this.label}: member ${name} links outside the archive (${m.target})`);
      name = next;
    }
    throw new ImageFormatError(`${this.label}: member ${relPath} is a chain of more than ${MAX_LINK_HOPS} links`);
  }
}
