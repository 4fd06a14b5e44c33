/**
 * `unpack`: materialize an index's tree in a directory — contents, hardlinks, symlinks, devices,
 * fifos, owners, modes, xattrs and nanosecond mtimes — reading file data from a store in one
 * sequential, verified pass over the data stream.
 *
 * Safety: DIR must be new or empty, every name comes from a validated index (no '/', '..', NUL),
 * parents are directories this run created, and every creating call fails on an existing name
 * instead of following it (mkdir, open O_EXCL, symlink, link); metadata calls use the no-follow
 * variants (lchown, touch -h, setfattr -h; chmod only on non-symlinks). So nothing is written
 * through a symlink, inside DIR or out of it.
 */
import { link, lchown, chmod, mkdir, open, readdir, symlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, IoError } from '../errors.js';
import type { BootfsIndex } from '../index/bootfs-reader.js';
import type { ChunkPool } from '../pool/chunk-pool.js';
import type { ChunkStore } from '../store/types.js';
import { fromByteString, type ByteString } from '../tree/types.js';
import { displayName } from '../tree/types.js';
import { runTool, runToolOnPaths } from '../util/run-tool.js';
import { extractBlob, type BlobSink } from './extract.js';

export interface UnpackOptions {
  pool?: ChunkPool;
  /** Set owners (default: when running as root, as tar does). */
  owners?: boolean;
  onProgress?: (bytes: number, total: number) => void;
  /** Problems that do not stop the unpack (a device node without privileges, …). */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

export interface UnpackResult {
  entries: number;
  bytes: number;
  warnings: number;
}

/** `dest` + '/' + raw name bytes: names may not be UTF-8, so paths are Buffers. */
function abs(dest: Buffer, rel: ByteString): Buffer {
  return rel === '' ? dest : Buffer.concat([dest, Buffer.from('/'), fromByteString(rel)]);
}

/** Relative path (raw bytes) for tools run with cwd = dest; "./" keeps names starting with "-" safe. */
function argPath(rel: ByteString): Buffer {
  return Buffer.concat([Buffer.from('./'), rel === '' ? Buffer.from('.') : fromByteString(rel)]);
}

/** Materialize `index` (contents from `store`) in `dir`, which must not exist or be empty. */
export async function unpackIndex(index: BootfsIndex, store: ChunkStore, dir: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  const destStr = path.resolve(dir);
  const dest = Buffer.from(destStr);
  await prepareDest(destStr);
  const owners = opts.owners ?? process.getuid?.() === 0;
  let warnings = 0;
  const warn = (m: string): void => {
    warnings++;
    opts.onWarning?.(m);
  };

  // 1. The tree, in sorted depth-first order (parents before children).
  const firstPath = new Map<number, ByteString>();
  const fifos: Buffer[] = [];
  let entries = 0;
  for (const { path: rel, ino } of index.walk()) {
    opts.signal?.throwIfAborted();
    const st = index.stat(ino);
    const p = abs(dest, rel);
    try {
      const first = firstPath.get(ino);
      if (first !== undefined && st.kind !== 'dir') {
        await link(abs(dest, first), p); // another name of an inode already created
        continue;
      }
      firstPath.set(ino, rel);
      if (rel === '') continue;
      entries++;
      switch (st.kind) {
        case 'dir':
          await mkdir(p, 0o700);
          break;
        case 'file':
          await (await open(p, 'wx', 0o600)).close();
          break;
        case 'symlink':
          await symlink(fromByteString(index.readlink(ino)), p);
          break;
        case 'fifo':
          fifos.push(argPath(rel));
          break;
        case 'char':
        case 'block':
          await runToolOnPaths('mknod', ['-m', '600', '--', '{}', st.kind === 'char' ? 'c' : 'b', String(st.devMajor), String(st.devMinor)], [argPath(rel)], {
            cwd: destStr,
            perPath: true,
          }).catch((err: Error) => warn(`cannot create device ${displayName(rel)}: ${err.message}`));
          break;
        case 'socket':
          warn(`skipping socket ${displayName(rel)} (sockets are created by the programs that listen on them)`);
          break;
      }
    } catch (err) {
      throw new IoError(`cannot create ${displayName(rel)} in ${destStr}: ${(err as Error).message}`, err);
    }
  }
  await runToolOnPaths('mkfifo', ['-m', '600', '--'], fifos, { cwd: destStr });

  // 2. File contents: the data stream, in order, cut at file boundaries.
  const files: { rel: ByteString; offset: number; size: number }[] = [];
  for (const [ino, rel] of firstPath) {
    if (index.kind(ino) !== 'file') continue;
    const ext = index.fileExtent(ino);
    if (ext.size > 0) files.push({ rel, ...ext });
  }
  files.sort((a, b) => a.offset - b.offset);
  const sink = demuxSink(dest, files);
  const total = index.dataSize;
  const done = await extractBlob(index.toBlobIndex(), store, sink, {
    ...(opts.pool ? { pool: opts.pool } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    onProgress: (p) => opts.onProgress?.(p.bytes, total),
  });

  // 3. Metadata, in an order that keeps each step's effect: owners before modes (chown clears
  // setuid/setgid), modes before xattrs is irrelevant, xattrs after owners (chown clears
  // security.capability), mtimes last (creating entries and writing files change them).
  const present = [...firstPath].filter(([ino]) => index.kind(ino) !== 'socket');
  if (owners) {
    for (const [ino, rel] of present) {
      const st = index.stat(ino);
      await lchown(abs(dest, rel), st.uid, st.gid).catch((err: Error) => warn(`cannot chown ${displayName(rel)}: ${err.message}`));
    }
  }
  const dirs: [number, ByteString][] = [];
  for (const [ino, rel] of present) {
    const st = index.stat(ino);
    if (st.kind === 'symlink') continue;
    if (st.kind === 'dir') dirs.push([ino, rel]);
    else await chmod(abs(dest, rel), st.mode).catch((err: Error) => warn(`cannot chmod ${displayName(rel)}: ${err.message}`));
  }
  // Directories last and deepest first, so a read-only directory never blocks work inside it.
  for (const [ino, rel] of dirs.reverse()) await chmod(abs(dest, rel), index.stat(ino).mode);
  await applyXattrs(index, present, destStr, warn);
  await applyMtimes(index, present, destStr);
  return { entries, bytes: done.bytes, warnings };
}

async function prepareDest(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: false, mode: 0o755 });
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw new IoError(`cannot create ${dir}: ${(err as Error).message}`, err);
    const names = await readdir(dir).catch((e: Error) => {
      throw new IoError(`cannot use ${dir}: ${e.message}`, e);
    });
    // A non-empty target could hold symlinks planted to redirect our writes.
    if (names.length > 0) throw new IoError(`${dir} is not empty: unpack only into a new or empty directory`);
  }
}

/** A sink that writes the data stream into the files, in data order. */
function demuxSink(dest: Buffer, files: { rel: ByteString; offset: number; size: number }[]): BlobSink {
  let i = 0;
  let written = 0; // bytes of files[i] written
  let fh: FileHandle | undefined;
  const close = async (): Promise<void> => {
    await fh?.close();
    fh = undefined;
  };
  return {
    async write(buf) {
      let off = 0;
      while (off < buf.length) {
        const f = files[i];
        if (!f) throw new IoError('data stream is longer than the files in the index (corrupt index)');
        fh ??= await open(abs(dest, f.rel), 'r+');
        const n = Math.min(buf.length - off, f.size - written);
        await fh.write(buf, off, n, written);
        off += n;
        written += n;
        if (written === f.size) {
          await close();
          i++;
          written = 0;
        }
      }
    },
    async commit() {
      await close();
      if (i !== files.length) throw new IoError('data stream ended before the last file (corrupt index)');
    },
    async abort() {
      await close().catch(() => undefined);
    },
  };
}

/** Every xattr in one `setfattr --restore` call (its input format is getfattr's dump). */
async function applyXattrs(index: BootfsIndex, present: [number, ByteString][], cwd: string, warn: (m: string) => void): Promise<void> {
  const parts: Buffer[] = [];
  for (const [ino, rel] of present) {
    const names = index.listXattrs(ino);
    if (names.length === 0) continue;
    parts.push(Buffer.from(`# file: ${escapeDumpPath(argPath(rel).toString('latin1'))}\n`, 'latin1'));
    for (const name of names) {
      const value = index.getXattr(ino, name)!;
      parts.push(Buffer.from(`${escapeDumpPath(name)}=0x${value.toString('hex')}\n`, 'latin1'));
    }
    parts.push(Buffer.from('\n'));
  }
  if (parts.length === 0) return;
  await runTool('setfattr', ['-h', '--restore=-'], { cwd, input: Buffer.concat(parts) }).catch((err: Error) => warn(`cannot set xattrs: ${err.message}`));
}

/** getfattr's quoting: backslash, control bytes, '=' and bytes ≥ 0x80 as \ooo (setfattr undoes it). */
function escapeDumpPath(s: string): string {
  let out = '';
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    out += c < 0x21 || c >= 0x7f || c === 0x5c || c === 0x3d ? '\\' + c.toString(8).padStart(3, '0') : s[k];
  }
  return out;
}

/** Nanosecond mtimes via `touch -h -m -d @S.N` (Node's utimes rounds to ~µs), one call per distinct time. */
async function applyMtimes(index: BootfsIndex, present: [number, ByteString][], cwd: string): Promise<void> {
  const byTime = new Map<bigint, Buffer[]>();
  for (const [ino, rel] of present) {
    const t = index.stat(ino).mtimeNs;
    let list = byTime.get(t);
    if (!list) byTime.set(t, (list = []));
    list.push(argPath(rel));
  }
  for (const [t, paths] of byTime) {
    let sec = t / 1_000_000_000n;
    let ns = t % 1_000_000_000n;
    if (ns < 0n) {
      ns += 1_000_000_000n;
      sec -= 1n;
    }
    await runToolOnPaths('touch', ['-h', '-m', '-c', '-d', `@${sec}.${ns.toString().padStart(9, '0')}`, '--'], paths, { cwd });
  }
}
