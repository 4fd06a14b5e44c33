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

/** Where the bytes of ContentRefs with one `source` index come from. */
export type ContentSource = { kind: 'spool'; spool: Spool } | { kind: 'dir'; root: string };

/** Largest single read of a dir: file: big enough for few syscalls, small enough to bound memory. */
const READ_SIZE = 1 << 20;

/**
 * A piece of the data stream: a run of adjacent spool bytes, one (large) file of a directory
 * source, or a group of small files of one directory source.
 */
type Task =
  | { kind: 'spool'; spool: Spool; offset: number; size: number }
  | { kind: 'dir'; root: string; ref: ContentRef }
  | { kind: 'dir-group'; root: string; refs: ContentRef[]; size: number };

type DirTask = Extract<Task, { kind: 'dir' | 'dir-group' }>;

/** Spool tasks up to this size are read ahead whole, several at once; larger ones stream when their turn comes. */
const PREFETCH_MAX = 1 << 20;
/** Spool reads in flight. */
const PREFETCH_DEPTH = 32;
/** Small files per dir-group task. */
const GROUP_FILES = 64;

/**
 * The data stream: the contents of `files` (in that order, pulled as needed) back to back. Runs
 * of files that sit next to each other in the same spool are read as one range (layers are
 * usually written in path order, so sorted order often is spool order) and read ahead in
 * parallel, in order.
 *
 * Files of a dir: source are read with synchronous calls on this thread into one reused buffer,
 * so **a yielded piece is valid only until the next one is requested** (the chunker copies each
 * piece into its window at once). Measured on the Debian rootfs in tmpfs: the chunk workers are
 * the busy part of a convert (hash and zstd), while this thread idles half the time; reading here
 * takes the reads, their buffers' page faults and a copy off the workers.
 * Throws IoError when a dir: file changed size.
 */
export async function* dataStream(files: Iterable<FsNode>, sources: readonly ContentSource[]): AsyncGenerator<Uint8Array> {
  const reads = mapOrdered(tasks(files, sources), PREFETCH_DEPTH, async (t) => {
    if (t.kind !== 'spool' || t.size > PREFETCH_MAX) return t; // read when its turn comes
    return concat(t.spool.readRange(t.offset, t.size));
  });
  const scratch = new ReadBuffer();
  for await (const r of reads) {
    if (r instanceof Uint8Array) yield r;
    else if (r.kind === 'spool') yield* r.spool.readRange(r.offset, r.size);
    else yield* readDir(r, scratch);
  }
}

/** One growable buffer that dir: reads land in. */
class ReadBuffer {
  private buf = Buffer.allocUnsafeSlow(2 * READ_SIZE);

  /** A buffer of at least `n` bytes (its contents are not kept). */
  get(n: number): Buffer {
    if (this.buf.length < n) this.buf = Buffer.allocUnsafeSlow(n);
    return this.buf;
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

/** A dir task's bytes: a group of small files as one piece, a large file in READ_SIZE pieces. */
function* readDir(t: DirTask, scratch: ReadBuffer): Generator<Uint8Array> {
  if (t.kind === 'dir-group') {
    const buf = scratch.get(t.size);
    let off = 0;
    for (const ref of t.refs) {
      const file = openDirFile(t.root, ref);
      try {
        file.readExactly(buf, off, 0, ref.size);
        file.checkEnd();
      } finally {
        file.close();
      }
      off += ref.size;
    }
    yield buf.subarray(0, t.size);
    return;
  }
  const file = openDirFile(t.root, t.ref);
  try {
    for (let pos = 0; pos < t.ref.size; ) {
      const want = Math.min(READ_SIZE, t.ref.size - pos);
      const buf = scratch.get(want);
      file.readExactly(buf, 0, pos, want);
      pos += want;
      yield buf.subarray(0, want);
    }
    file.checkEnd();
  } finally {
    file.close();
  }
}

/** A file under `root` opened for reading exactly ref.size bytes; one that shrank or grew since the walk is an error. */
function openDirFile(root: string, ref: ContentRef) {
  const rel = ref.path ?? '';
  // Raw bytes: a JS string path would be re-encoded as UTF-8 and miss non-UTF-8 names.
  const file = Buffer.concat([Buffer.from(path.resolve(root)), Buffer.from('/'), fromByteString(rel)]);
  const name = (): string => `${displayName(rel)} in ${root}`;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new IoError(`cannot read ${name()}: ${(err as Error).message}`, err);
  }
  const read = (buf: Buffer, off: number, len: number, pos: number): number => {
    try {
      return readSync(fd, buf, off, len, pos);
    } catch (err) {
      throw new IoError(`cannot read ${name()}: ${(err as Error).message}`, err);
    }
  };
  return {
    /** Bytes [pos, pos + len) of the file into buf at off. */
    readExactly(buf: Buffer, off: number, pos: number, len: number): void {
      for (let got = 0; got < len; ) {
        const n = read(buf, off + got, len - got, pos + got);
        if (n === 0) throw new IoError(`${name()} shrank while it was converted (expected ${ref.size} bytes)`);
        got += n;
      }
    },
    /** The file must end at ref.size. */
    checkEnd(): void {
      if (read(Buffer.alloc(1), 0, 1, ref.size) !== 0) throw new IoError(`${name()} grew while it was converted (expected ${ref.size} bytes)`);
    },
    close(): void {
      closeSync(fd);
    },
  };
}
