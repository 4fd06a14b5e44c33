/**
 * Reading file contents back for the data stream. A converted image's regular files live in
 * content sources — the spool a layer pass filled, or the source directory of a dir: image — and
 * are read in data-stream order (sorted paths), which is rarely the order they were written in.
 */
import { open } from 'node:fs/promises';
import path from 'node:path';
import { IoError } from '../errors.js';
import type { ContentRef, FsNode } from '../tree/types.js';
import { displayName, fromByteString } from '../tree/types.js';
import type { Spool } from './spool.js';
import { mapOrdered } from '../ops/ordered.js';
import type { ChunkPool } from '../pool/chunk-pool.js';

/** Where the bytes of ContentRefs with one `source` index come from. */
export type ContentSource = { kind: 'spool'; spool: Spool } | { kind: 'dir'; root: string };

/** Largest single read of a dir: file: big enough for few syscalls, small enough to bound memory. */
const READ_SIZE = 1 << 20;

/**
 * A piece of the data stream: a run of adjacent spool bytes, one (large) file of a directory
 * source, or a group of small files of one directory source read by a worker thread.
 */
type Task =
  | { kind: 'spool'; spool: Spool; offset: number; size: number }
  | { kind: 'dir'; root: string; ref: ContentRef }
  | { kind: 'dir-group'; root: string; refs: ContentRef[]; size: number };

/** Tasks up to this size are read ahead whole, several at once; larger ones stream when their turn comes. */
const PREFETCH_MAX = 1 << 20;
/** Reads in flight: hides the per-file open/read/close latency of small files (most of a rootfs). */
const PREFETCH_DEPTH = 32;
/** Small files per worker read: enough to amortize the message, few enough to spread over workers. */
const GROUP_FILES = 64;

/**
 * The data stream: the contents of `files` (in that order) back to back. Runs of files that sit
 * next to each other in the same spool are read as one range (layers are usually written in path
 * order, so sorted order often is spool order); small reads run ahead in parallel, in order.
 * Throws IoError when a dir: file changed size.
 */
export async function* dataStream(files: readonly FsNode[], sources: readonly ContentSource[], pool: ChunkPool): AsyncGenerator<Uint8Array> {
  const reads = mapOrdered(tasks(files, sources), PREFETCH_DEPTH, async (t) => {
    // Small files: one worker message reads a whole group with sync syscalls, which costs the
    // main thread far less than an open/read/close promise round trip per file.
    if (t.kind === 'dir-group') return pool.readFiles(t.root, t.refs.map((r) => fromByteString(r.path ?? '')), t.refs.map((r) => r.size));
    return taskSize(t) <= PREFETCH_MAX ? concat(read(t)) : t;
  });
  for await (const r of reads) {
    if (r instanceof Uint8Array) yield r;
    else yield* read(r);
  }
}

function* tasks(files: readonly FsNode[], sources: readonly ContentSource[]): Generator<Task> {
  let i = 0;
  while (i < files.length) {
    const ref = contentOf(files[i]!);
    const source = sources[ref.source];
    if (!source) throw new IoError(`content source ${ref.source} does not exist (internal error)`);
    if (source.kind === 'dir') {
      if (ref.size > PREFETCH_MAX) {
        yield { kind: 'dir', root: source.root, ref };
        i++;
        continue;
      }
      const group: ContentRef[] = [ref];
      let size = ref.size;
      let j = i + 1;
      while (j < files.length && group.length < GROUP_FILES && size < PREFETCH_MAX) {
        const next = contentOf(files[j]!);
        if (next.source !== ref.source || next.size > PREFETCH_MAX) break;
        group.push(next);
        size += next.size;
        j++;
      }
      yield { kind: 'dir-group', root: source.root, refs: group, size };
      i = j;
      continue;
    }
    // Extend the run while the next file continues exactly where this one ends (up to a bound,
    // so one run never becomes a huge prefetch).
    let end = ref.offset + ref.size;
    let j = i + 1;
    while (j < files.length && end - ref.offset < PREFETCH_MAX) {
      const next = contentOf(files[j]!);
      if (next.source !== ref.source || next.offset !== end) break;
      end += next.size;
      j++;
    }
    yield { kind: 'spool', spool: source.spool, offset: ref.offset, size: end - ref.offset };
    i = j;
  }
}

function taskSize(t: Exclude<Task, { kind: 'dir-group' }>): number {
  return t.kind === 'spool' ? t.size : t.ref.size;
}

function read(t: Exclude<Task, { kind: 'dir-group' }>): AsyncIterable<Uint8Array> {
  return t.kind === 'spool' ? t.spool.readRange(t.offset, t.size) : readDirFile(t.root, t.ref);
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

/** Exactly ref.size bytes of a file under `root`; a file that shrank or grew since the walk is an error. */
async function* readDirFile(root: string, ref: ContentRef): AsyncGenerator<Uint8Array> {
  const rel = ref.path ?? '';
  // Raw bytes: a JS string path would be re-encoded as UTF-8 and miss non-UTF-8 names.
  const file = Buffer.concat([Buffer.from(path.resolve(root)), Buffer.from('/'), fromByteString(rel)]);
  const name = displayName(rel);
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw new IoError(`cannot read ${name} in ${root}: ${(err as Error).message}`, err);
  }
  try {
    let pos = 0;
    while (pos < ref.size) {
      const want = Math.min(READ_SIZE, ref.size - pos);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      if (bytesRead === 0) throw new IoError(`${name} in ${root} shrank while it was converted (expected ${ref.size} bytes)`);
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
    const probe = Buffer.alloc(1);
    if ((await fh.read(probe, 0, 1, ref.size)).bytesRead !== 0) {
      throw new IoError(`${name} in ${root} grew while it was converted (expected ${ref.size} bytes)`);
    }
  } finally {
    await fh.close();
  }
}
