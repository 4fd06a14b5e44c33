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

/** Where the bytes of ContentRefs with one `source` index come from. */
export type ContentSource = { kind: 'spool'; spool: Spool } | { kind: 'dir'; root: string };

/** Largest single read: big enough for few syscalls, small enough to bound memory. */
const READ_SIZE = 1 << 20;

/**
 * The data stream: the contents of `files` (in that order) back to back. Runs of files that sit
 * next to each other in the same spool are read as one range (layers are usually written in path
 * order, so sorted order often is spool order). Throws IoError when a dir: file changed size.
 */
export async function* dataStream(files: readonly FsNode[], sources: readonly ContentSource[]): AsyncGenerator<Uint8Array> {
  let i = 0;
  while (i < files.length) {
    const ref = contentOf(files[i]!);
    const source = sources[ref.source];
    if (!source) throw new IoError(`content source ${ref.source} does not exist (internal error)`);
    if (source.kind === 'spool') {
      // Extend the run while the next file continues exactly where this one ends.
      let end = ref.offset + ref.size;
      let j = i + 1;
      while (j < files.length) {
        const next = contentOf(files[j]!);
        if (next.source !== ref.source || next.offset !== end) break;
        end += next.size;
        j++;
      }
      yield* source.spool.readRange(ref.offset, end - ref.offset);
      i = j;
    } else {
      yield* readDirFile(source.root, ref);
      i++;
    }
  }
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
