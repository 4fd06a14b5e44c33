/**
 * Deterministic layer tars: the same entries always give the same bytes, so a layer built twice
 * has the same digest and diff_id (and the image the same manifest digest).
 *
 * What makes the bytes depend on the entries only:
 * - entries are sorted by path component by component (parents before children, a directory's
 *   subtree contiguous), with missing parent directories added (0755, root, mtime 0);
 * - no wall clock: mtime defaults to 0, the gzip header's mtime is 0, its OS byte is 255
 *   ("unknown", as Go's compress/gzip writes, so the host does not leak in), no file name;
 * - uname/gname are empty, devmajor/devminor 0, PAX header names are fixed (`PaxHeaders.0/<name>`)
 *   and PAX records sorted by key;
 * - deflate runs at level 6 (zlib's default) with memLevel 8 and a 32 KiB window. Changing any of
 *   these changes the compressed bytes (the digest), not the diff_id. The deflate stream comes from
 *   Node's bundled zlib: another Node version may compress differently; the diff_id never changes.
 *
 * Header layout (POSIX ustar), at byte offsets of the 512-byte block; numbers are octal text:
 *   0 name[100]  100 mode[8]  108 uid[8]  116 gid[8]  124 size[12]  136 mtime[12]  148 chksum[8]
 *   156 typeflag  157 linkname[100]  257 magic "ustar\0"  263 version "00"  265 uname[32]
 *   297 gname[32]  329 devmajor[8]  337 devminor[8]  345 prefix[155] (unused here)
 * A value that does not fit its field (a name over 100 bytes or not ASCII, a size or mtime of
 * 8 GiB / year 2242 and over, an id over 2097151) goes into a PAX `x` header before the entry
 * (records `LEN key=value\n`, POSIX.1-2001), and the ustar field holds a truncated stand-in.
 * The archive ends with two zero blocks.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, crc32, createDeflateRaw } from 'node:zlib';
import { BootfsError, errnoCode, IoError, UsageError } from '../errors.js';
import { short } from './digest.js';
import { OCI_LAYER_GZIP, OCI_LAYER_TAR } from './media-types.js';

/** One member of a layer to write. */
export interface TarEntry {
  /** Relative, '/'-separated, no leading '/', no '.', '..' or empty components. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** Permission bits, setuid/setgid/sticky included (≤ 0o7777). */
  mode: number;
  /** Default 0. */
  uid?: number;
  /** Default 0. */
  gid?: number;
  /** Seconds since the epoch; default 0 (no wall clock in the bytes). */
  mtimeSec?: number;
  /** Files: the content, or the path of a file on disk to copy (streamed, not loaded whole). Default empty. */
  content?: Buffer | { file: string };
  /** Symlinks: the target, stored as given. */
  target?: string;
}

/** A layer blob written to disk. */
export interface LayerBlob {
  file: string;
  /** sha256 of the stored (compressed) bytes. */
  digest: string;
  /** Stored size in bytes. */
  size: number;
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids entry). */
  diffId: string;
  mediaType: string;
}

/** Options of writeTarLayer. */
export interface WriteTarOptions {
  /** gzip-compress the tar (default true); false writes a plain tar whose digest is its diff_id. */
  gzip?: boolean;
  signal?: AbortSignal;
}

const BLOCK = 512;
/** Two zero blocks end a tar archive. */
export const TAR_END: Buffer = Buffer.alloc(2 * BLOCK);
/** Largest value of a 12-byte numeric field (11 octal digits): 8 GiB − 1 for sizes. */
const MAX_OCTAL_11 = 0o77777777777;
/** Largest value of an 8-byte numeric field (7 octal digits). */
const MAX_OCTAL_7 = 0o7777777;
/** Largest uid/gid: Linux ids are 32-bit (and bootfs's tar reader caps them there). */
const MAX_ID = 0xffff_ffff;
const NAME_LEN = 100;
/** Bytes gathered before handing them to deflate/the file (fewer, larger writes). */
const BATCH = 64 << 10;
/** Read size when streaming a file's content. */
const READ_CHUNK = 1 << 20;
/** zlib level 6 = zlib's own default: the usual size/speed balance (docker, containerd use it too). */
const GZIP_LEVEL = 6;
/** gzip member header (RFC 1952): magic, CM=deflate, FLG=0, MTIME=0, XFL=0, OS=255 (unknown). */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]);

/** The header facts of one tar member. */
export interface TarHeaderFields {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  /** Data bytes (files only). */
  size: number;
  target?: string;
}

const isAscii = (s: string): boolean => /^[\x01-\x7f]*$/.test(s);

/** A NUL-terminated octal field of `width` bytes (`width - 1` digits); 0 when the value needs PAX. */
function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A PAX record `LEN key=value\n`, where LEN counts the whole record including its own digits. */
function paxRecord(key: string, value: string): Buffer {
  const body = Buffer.byteLength(key) + Buffer.byteLength(value) + 3; // ' ', '=', '\n'
  let len = body + String(body).length;
  if (String(len).length > String(body).length) len++;
  return Buffer.from(`${len} ${key}=${value}\n`, 'utf8');
}

/** An ASCII stand-in for a string that does not fit a ustar field (the PAX record has the real one). */
function standIn(s: string, max: number): string {
  return s.replace(/[^\x20-\x7e]/g, '_').slice(0, max);
}

function ustarBlock(f: { name: string; mode: number; uid: number; gid: number; size: number; mtime: number; typeflag: string; linkname: string }): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(f.name, 0, NAME_LEN, 'utf8');
  h.write(octal(f.mode, 8), 100, 'latin1');
  h.write(octal(f.uid, 8), 108, 'latin1');
  h.write(octal(f.gid, 8), 116, 'latin1');
  h.write(octal(f.size, 12), 124, 'latin1');
  h.write(octal(f.mtime, 12), 136, 'latin1');
  h.write(f.typeflag, 156, 'latin1');
  h.write(f.linkname, 157, NAME_LEN, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(octal(0, 8), 329, 'latin1');
  h.write(octal(0, 8), 337, 'latin1');
  // The checksum is the byte sum with the checksum field itself counted as eight spaces.
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  return h;
}

/** Zero bytes that pad `size` data bytes to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The header block(s) of one member: a PAX `x` header when a value does not fit ustar, then the ustar header. */
export function tarHeader(e: TarHeaderFields): Buffer {
  const name = e.type === 'dir' ? `${e.path}/` : e.path;
  const link = e.target ?? '';
  const pax: [string, string][] = [];
  const fitsName = (s: string): boolean => isAscii(s) && Buffer.byteLength(s) <= NAME_LEN;
  if (!fitsName(name)) pax.push(['path', name]);
  if (!fitsName(link)) pax.push(['linkpath', link]);
  if (e.size > MAX_OCTAL_11) pax.push(['size', String(e.size)]);
  if (e.mtimeSec > MAX_OCTAL_11) pax.push(['mtime', String(e.mtimeSec)]);
  if (e.uid > MAX_OCTAL_7) pax.push(['uid', String(e.uid)]);
  if (e.gid > MAX_OCTAL_7) pax.push(['gid', String(e.gid)]);
  const main = ustarBlock({
    name: fitsName(name) ? name : standIn(name, NAME_LEN),
    mode: e.mode,
    uid: e.uid > MAX_OCTAL_7 ? 0 : e.uid,
    gid: e.gid > MAX_OCTAL_7 ? 0 : e.gid,
    size: e.size > MAX_OCTAL_11 ? 0 : e.size,
    mtime: e.mtimeSec > MAX_OCTAL_11 ? 0 : e.mtimeSec,
    typeflag: e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2',
    linkname: fitsName(link) ? link : standIn(link, NAME_LEN),
  });
  if (pax.length === 0) return main;
  pax.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const records = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
  const base = standIn(path.posix.basename(e.path), NAME_LEN - 'PaxHeaders.0/'.length);
  const paxHeader = ustarBlock({ name: `PaxHeaders.0/${base}`, mode: 0o644, uid: 0, gid: 0, size: records.length, mtime: 0, typeflag: 'x', linkname: '' });
  return Buffer.concat([paxHeader, records, tarPadding(records.length), main]);
}

/** An entry checked and with defaults applied. */
interface Member extends TarHeaderFields {
  content: Buffer | { file: string } | undefined;
  /** The sort key: the path's UTF-8 bytes with '/' as NUL, so parents sort first and subtrees stay together. */
  key: Buffer;
}

function intIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

function member(e: TarEntry, i: number): Member {
  const p: unknown = e?.path;
  const where = `tar entry ${i}${typeof p === 'string' ? ` (${JSON.stringify(short(p))})` : ''}`;
  if (typeof p !== 'string' || p === '') throw new UsageError(`${where}: path must be a non-empty string`);
  if (p.includes('\0')) throw new UsageError(`${where}: path contains a NUL byte`);
  if (p.startsWith('/') || p.split('/').some((c) => c === '' || c === '.' || c === '..')) {
    throw new UsageError(`${where}: path must be relative and normalised (no leading '/', no '.', '..' or empty components)`);
  }
  if (e.type !== 'file' && e.type !== 'dir' && e.type !== 'symlink') throw new UsageError(`${where}: type must be 'file', 'dir' or 'symlink'`);
  if (!intIn(e.mode, 0, 0o7777)) throw new UsageError(`${where}: mode must be permission bits (an integer from 0 to 0o7777)`);
  const uid = e.uid ?? 0;
  const gid = e.gid ?? 0;
  const mtimeSec = e.mtimeSec ?? 0;
  if (!intIn(uid, 0, MAX_ID)) throw new UsageError(`${where}: uid must be an integer from 0 to ${MAX_ID}`);
  if (!intIn(gid, 0, MAX_ID)) throw new UsageError(`${where}: gid must be an integer from 0 to ${MAX_ID}`);
  if (!intIn(mtimeSec, 0, Number.MAX_SAFE_INTEGER)) throw new UsageError(`${where}: mtimeSec must be a non-negative integer`);
  if (e.type !== 'file' && e.content !== undefined) throw new UsageError(`${where}: only files have content`);
  if (e.type !== 'symlink' && e.target !== undefined) throw new UsageError(`${where}: only symlinks have a target`);
  if (e.type === 'symlink' && (typeof e.target !== 'string' || e.target === '' || e.target.includes('\0'))) {
    throw new UsageError(`${where}: a symlink needs a non-empty target without NUL bytes`);
  }
  const c = e.content;
  if (c !== undefined && !Buffer.isBuffer(c) && !(typeof c === 'object' && c !== null && typeof c.file === 'string' && c.file !== '')) {
    throw new UsageError(`${where}: content must be a Buffer or { file: PATH }`);
  }
  return {
    path: p,
    type: e.type,
    mode: e.mode,
    uid,
    gid,
    mtimeSec,
    size: Buffer.isBuffer(c) ? c.length : 0,
    ...(e.type === 'symlink' ? { target: e.target! } : {}),
    content: c,
    key: Buffer.from(p.replaceAll('/', '\0'), 'utf8'),
  };
}

/** Check the entries, add missing parent directories, and sort them. */
function prepareEntries(entries: readonly TarEntry[]): Member[] {
  if (!Array.isArray(entries)) throw new UsageError('tar entries must be an array');
  const byPath = new Map<string, Member>();
  entries.forEach((e, i) => {
    const m = member(e, i);
    if (byPath.has(m.path)) throw new UsageError(`tar entry ${i} (${JSON.stringify(short(m.path))}): path appears twice`);
    byPath.set(m.path, m);
  });
  for (const m of [...byPath.values()]) {
    const parts = m.path.split('/');
    for (let n = 1; n < parts.length; n++) {
      const parent = parts.slice(0, n).join('/');
      const have = byPath.get(parent);
      if (have === undefined) {
        byPath.set(parent, { path: parent, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeSec: 0, size: 0, content: undefined, key: Buffer.from(parent.replaceAll('/', '\0'), 'utf8') });
      } else if (have.type !== 'dir') {
        throw new UsageError(`tar entry ${JSON.stringify(short(m.path))} is below ${JSON.stringify(short(parent))}, which is a ${have.type}, not a directory`);
      }
    }
  }
  return [...byPath.values()].sort((a, b) => Buffer.compare(a.key, b.key));
}

/** Write all of `b` at the file position. */
async function writeAll(fh: FileHandle, b: Uint8Array): Promise<void> {
  let done = 0;
  while (done < b.length) {
    const { bytesWritten } = await fh.write(b, done, b.length - done);
    done += bytesWritten;
  }
}

/** A file's header and bytes: its size at open time; a file that changes size meanwhile is an error. */
async function* fileMember(m: Member, file: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const where = `tar entry ${JSON.stringify(short(m.path))}`;
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw new IoError(`${where}: cannot open ${file}: ${(err as Error).message}`, err);
  }
  try {
    // The header needs the size first: stat the open handle, then stream from it.
    const st = await fh.stat();
    if (!st.isFile()) throw new UsageError(`${where}: ${file} is not a regular file`);
    const size = st.size;
    yield tarHeader({ ...m, size });
    let done = 0;
    while (done < size) {
      signal?.throwIfAborted();
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - done));
      const { bytesRead } = await fh.read(buf, 0, buf.length, done);
      if (bytesRead === 0) break;
      done += bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
    if (done !== size || (await fh.stat()).size !== size) throw new IoError(`${where}: ${file} changed size while it was being copied`);
    yield tarPadding(size);
  } finally {
    await fh.close();
  }
}

/** The tar bytes of `members`, in batches of about BATCH bytes. */
async function* tarStream(members: Member[], signal?: AbortSignal): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  function* push(b: Buffer): Generator<Buffer> {
    if (b.length === 0) return;
    pending.push(b);
    pendingBytes += b.length;
    if (pendingBytes >= BATCH) {
      yield pending.length === 1 ? pending[0]! : Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
    }
  }
  for (const m of members) {
    signal?.throwIfAborted();
    const c = m.content;
    if (c === undefined || Buffer.isBuffer(c)) {
      yield* push(tarHeader(m));
      if (c !== undefined) {
        yield* push(c);
        yield* push(tarPadding(c.length));
      }
    } else {
      for await (const b of fileMember(m, c.file, signal)) yield* push(b);
    }
  }
  yield* push(TAR_END);
  if (pendingBytes > 0) yield Buffer.concat(pending);
}

/** sha256 digest text. */
const hexDigest = (h: ReturnType<typeof createHash>): string => `sha256:${h.digest('hex')}`;

/**
 * Write `entries` as a tar layer to `file` (gzip-compressed unless `gzip: false`): sorted by path,
 * parents before children, missing directories added; the same entries always give the same bytes
 * (see the file comment). Atomic: written to a temp file beside `file`, fsynced, then renamed.
 */
export async function writeTarLayer(file: string, entries: TarEntry[], opts: WriteTarOptions = {}): Promise<LayerBlob> {
  const gzip = opts.gzip ?? true;
  const members = prepareEntries(entries);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const plain = createHash('sha256');
  const stored = createHash('sha256');
  let size = 0;
  let fh: FileHandle | undefined;
  try {
    try {
      fh = await open(tmp, 'wx', 0o644);
    } catch (err) {
      throw new IoError(`cannot create layer file ${file}: ${(err as Error).message}`, err);
    }
    const out = async (b: Uint8Array): Promise<void> => {
      stored.update(b);
      size += b.length;
      await writeAll(fh!, b);
    };
    if (!gzip) {
      for await (const b of tarStream(members, opts.signal)) {
        plain.update(b);
        await out(b);
      }
    } else {
      let crc = 0;
      let isize = 0;
      async function* source(): AsyncGenerator<Buffer> {
        for await (const b of tarStream(members, opts.signal)) {
          plain.update(b);
          crc = crc32(b, crc);
          isize = (isize + b.length) % 2 ** 32;
          yield b;
        }
      }
      await out(GZIP_HEADER);
      const deflate = createDeflateRaw({ level: GZIP_LEVEL, memLevel: 8, windowBits: 15, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
      await pipeline(Readable.from(source(), { objectMode: false }), deflate, async (compressed: AsyncIterable<Buffer>) => {
        for await (const b of compressed) await out(b);
      });
      // gzip trailer: CRC-32 and the uncompressed length mod 2^32, little-endian.
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(crc >>> 0, 0);
      trailer.writeUInt32LE(isize, 4);
      await out(trailer);
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, file);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    // System errors (ENOSPC, EIO, …) of the write itself become IoErrors naming the file.
    if (!(err instanceof BootfsError) && /^E[A-Z0-9]+$/.test(errnoCode(err) ?? '')) {
      throw new IoError(`cannot write layer file ${file}: ${(err as Error).message}`, err);
    }
    throw err;
  }
  const diffId = hexDigest(plain);
  return { file, digest: gzip ? hexDigest(stored) : diffId, size, diffId, mediaType: gzip ? OCI_LAYER_GZIP : OCI_LAYER_TAR };
}
