/**
 * Reading file contents back for the data stream. A converted image's regular files live in
 * content sources — the spool a layer pass filled, or the source directory of a dir: image — and
 * are read in data-stream order (sorted paths), which is rarely the order they were written in.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { IoError } from '../errors.js';
import type { ContentRef, FsNode } from '../tree/types.js';
import { displayName, fromByteString } from '../tree/types.js';
import type { Spool } from './spool.js';
import { mapOrdered } from '../ops/ordered.js';
import type { FillSource } from '../chunker/index.js';

/** Where the bytes of ContentRefs with one `source` index come from. */
export type ContentSource = { kind: 'spool'; spool: Spool } | { kind: 'dir'; root: string };

/**
 * A piece of the data stream: a run of adjacent spool bytes, one (large) file of a directory
 * source, or a group of small files of one directory source.
 */
type Task =
  | { kind: 'spool'; spool: Spool; offset: number; size: number }
  | { kind: 'dir'; root: string; ref: ContentRef }
  | { kind: 'dir-group'; root: string; refs: ContentRef[]; size: number };

/** Spool tasks up to this size are read ahead whole, several at once; larger ones stream when their turn comes. */
const PREFETCH_MAX = 1 << 20;
/** Spool reads in flight. */
const PREFETCH_DEPTH = 32;
/** Small files per dir-group task. */
const GROUP_FILES = 64;

/**
 * The data stream: the contents of `files` (in that order, pulled as needed) back to back, as a
 * FillSource that writes them straight into the chunker's window. Runs of files that sit next to
 * each other in the same spool are read as one range (layers are usually written in path order,
 * so sorted order often is spool order) and read ahead in parallel, in order.
 *
 * Files of a dir: source are read with synchronous calls on this thread, directly into the
 * window: no buffer of ours, no copy. Measured on the Debian rootfs in tmpfs: the chunk workers
 * are the busy part of a convert (hash and zstd), and this thread, which also walks the tree and
 * cuts chunks, is the next busiest; a copy of every byte and a read per file to check its end
 * were ~60 ms of it. A file's end is checked with the read that finishes it: asking for one byte
 * more than is left, a full answer means the file grew.
 * Throws IoError when a dir: file changed size.
 */
export function dataSource(files: Iterable<FsNode>, sources: readonly ContentSource[]): FillSource {
  const reads = mapOrdered(tasks(files, sources), PREFETCH_DEPTH, async (t) => {
    if (t.kind !== 'spool' || t.size > PREFETCH_MAX) return t; // read when its turn comes
    return concat(t.spool.readRange(t.offset, t.size));
  })[Symbol.asyncIterator]();
  /** Bytes handed over but not yet written out (a spool piece), and where they continue. */
  let piece: Uint8Array | undefined;
  let pieceOff = 0;
  /** A large spool task being streamed. */
  let spool: AsyncIterator<Uint8Array> | undefined;
  /** The dir: files being read, and the open one. */
  let dir: DirCursor | undefined;
  return {
    close(): void {
      dir?.close();
      dir = undefined;
    },
    async fill(dst: Uint8Array): Promise<number> {
      let n = 0;
      while (n < dst.length) {
        if (piece) {
          const take = Math.min(dst.length - n, piece.length - pieceOff);
          dst.set(piece.subarray(pieceOff, pieceOff + take), n);
          n += take;
          pieceOff += take;
          if (pieceOff === piece.length) piece = undefined;
          continue;
        }
        if (dir) {
          const got = dir.fill(dst, n);
          n += got;
          if (got === 0) dir = undefined;
          continue;
        }
        // Hand over what we have before waiting for more.
        if (n > 0 && spool === undefined) break;
        if (spool) {
          const r = await spool.next();
          if (r.done) spool = undefined;
          else [piece, pieceOff] = [r.value, 0];
          continue;
        }
        const r = await reads.next();
        if (r.done) break;
        const t = r.value;
        if (t instanceof Uint8Array) [piece, pieceOff] = [t, 0];
        else if (t.kind === 'spool') spool = t.spool.readRange(t.offset, t.size)[Symbol.asyncIterator]();
        else dir = new DirCursor(t.root, t.kind === 'dir' ? [t.ref] : t.refs);
      }
      return n;
    },
  };
}

/** Reads the files of a dir task one after another into whatever buffers it is given. */
class DirCursor {
  private next = 0;
  private file: DirFile | undefined;
  private pos = 0;

  constructor(
    private readonly root: string,
    private readonly refs: ContentRef[],
  ) {}

  /** Close the open file, if any (the stream was abandoned). */
  close(): void {
    this.file?.close();
    this.file = undefined;
  }

  /** Write the next bytes at dst[off…]; returns how many (0: every file is read). */
  fill(dst: Uint8Array, off: number): number {
    const start = off;
    while (off < dst.length) {
      if (!this.file) {
        const ref = this.refs[this.next++];
        if (ref === undefined) break;
        this.file = openDirFile(this.root, ref);
        this.pos = 0;
      }
      const { ref } = this.file;
      const left = ref.size - this.pos;
      if (left === 0) {
        // An empty file (the data stream has none, but nothing breaks if it does).
        this.file.checkEnd();
        this.file.close();
        this.file = undefined;
        continue;
      }
      const want = Math.min(dst.length - off, left);
      // With room for it, ask for one byte more than is left: getting it means the file grew.
      const probe = want === left && off + want < dst.length ? 1 : 0;
      const got = this.file.read(dst, off, want + probe, this.pos);
      if (got > want) throw this.file.changed('grew');
      if (got === 0) throw this.file.changed('shrank');
      off += got;
      this.pos += got;
      if (this.pos < ref.size) continue;
      // A short answer to the probe showed the end; without a probe, look once more.
      if (!(probe && got === want)) this.file.checkEnd();
      this.file.close();
      this.file = undefined;
    }
    return off - start;
  }
}

function* tasks(files: Iterable<FsNode>, sources: readonly ContentSource[]): Generator<Task> {
  const it = files[Symbol.iterator]();
  // One file of lookahead: the one that ended the previous group or run.
  let pending: ContentRef | undefined;
  const next = (): ContentRef | undefined => {
    if (pending) {
      const p = pending;
      pending = undefined;
      return p;
    }
    const r = it.next();
    return r.done ? undefined : contentOf(r.value);
  };
  for (let ref = next(); ref !== undefined; ref = next()) {
    const source = sources[ref.source];
    if (!source) throw new IoError(`content source ${ref.source} does not exist (internal error)`);
    if (source.kind === 'dir') {
      if (ref.size > PREFETCH_MAX) {
        yield { kind: 'dir', root: source.root, ref };
        continue;
      }
      const group: ContentRef[] = [ref];
      let size = ref.size;
      while (group.length < GROUP_FILES && size < PREFETCH_MAX) {
        const n = next();
        if (n === undefined) break;
        if (n.source !== ref.source || n.size > PREFETCH_MAX) {
          pending = n;
          break;
        }
        group.push(n);
        size += n.size;
      }
      yield { kind: 'dir-group', root: source.root, refs: group, size };
      continue;
    }
    // Extend the run while the next file continues exactly where this one ends (up to a bound,
    // so one run never becomes a huge prefetch).
    let end = ref.offset + ref.size;
    while (end - ref.offset < PREFETCH_MAX) {
      const n = next();
      if (n === undefined) break;
      if (n.source !== ref.source || n.offset !== end) {
        pending = n;
        break;
      }
      end += n.size;
    }
    yield { kind: 'spool', spool: source.spool, offset: ref.offset, size: end - ref.offset };
  }
}

async function concat(pieces: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of pieces) parts.push(p);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

function contentOf(node: FsNode): ContentRef {
  if (!node.content || node.content.size !== node.size) {
    throw new IoError(`file of ${node.size} bytes has no matching content reference (internal error)`);
  }
  return node.content;
}

type DirFile = ReturnType<typeof openDirFile>;

let lastRoot: { root: string; prefix: Buffer } | undefined;

/** `root` resolved, with a trailing slash, as bytes: computed once, not per file (~30 ms of the rootfs's 6.7k files). */
function rootPrefix(root: string): Buffer {
  if (lastRoot?.root !== root) lastRoot = { root, prefix: Buffer.from(`${path.resolve(root)}/`) };
  return lastRoot.prefix;
}

/** A file under `root` opened for reading exactly ref.size bytes; one that shrank or grew since the walk is an error. */
function openDirFile(root: string, ref: ContentRef) {
  const rel = ref.path ?? '';
  // Raw bytes: a JS string path would be re-encoded as UTF-8 and miss non-UTF-8 names.
  const file = Buffer.concat([rootPrefix(root), fromByteString(rel)]);
  const name = (): string => `${displayName(rel)} in ${root}`;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new IoError(`cannot read ${name()}: ${(err as Error).message}`, err);
  }
  const read = (buf: Uint8Array, off: number, len: number, pos: number): number => {
    try {
      return readSync(fd, buf, off, len, pos);
    } catch (err) {
      throw new IoError(`cannot read ${name()}: ${(err as Error).message}`, err);
    }
  };
  let open = true;
  return {
    ref,
    read,
    changed(how: 'shrank' | 'grew'): IoError {
      return new IoError(`${name()} ${how} while it was converted (expected ${ref.size} bytes)`);
    },
    /** The file must end at ref.size. */
    checkEnd(): void {
      if (read(Buffer.alloc(1), 0, 1, ref.size) !== 0) throw this.changed('grew');
    },
    close(): void {
      if (open) closeSync(fd);
      open = false;
    },
  };
}
