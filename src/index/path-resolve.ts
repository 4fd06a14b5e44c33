/**
 * Path resolution inside an image, following symlinks the way the kernel would inside a chroot of
 * the image: absolute targets start at the image root, `..` never leaves it, at most 40 links.
 */
import { NotFoundError, UsageError } from '../errors.js';
import type { ByteString } from '../tree/types.js';
import { displayName } from '../tree/types.js';
import type { BootfsIndex } from './bootfs-reader.js';

/** Linux's MAXSYMLINKS: more links than this in one resolution is ELOOP. */
export const MAX_SYMLINKS = 40;

/**
 * The ino `path` names, following symlinks in every component (and in the last one unless
 * `noFollowLast`). Throws NotFoundError for a missing component, UsageError for a loop or a
 * non-directory in the middle of the path.
 */
export function resolveFollow(index: BootfsIndex, path: ByteString, opts: { noFollowLast?: boolean } = {}): number {
  let links = 0;
  // `stack` holds the inos from the root to the current directory, so `..` can go up.
  const stack: number[] = [index.rootIno];
  let pending = split(path);
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      if (stack.length > 1) stack.pop();
      continue;
    }
    const dir = stack[stack.length - 1]!;
    if (index.kind(dir) !== 'dir') throw new UsageError(`${displayName(path)}: a path component is not a directory`);
    const ino = index.lookup(dir, name);
    if (ino === undefined) throw new NotFoundError(`${displayName(path)} not found in the image`);
    const last = pending.length === 0;
    if (index.kind(ino) === 'symlink' && !(last && opts.noFollowLast)) {
      if (++links > MAX_SYMLINKS) throw new UsageError(`${displayName(path)}: too many levels of symbolic links`);
      const target = index.readlink(ino);
      if (target.startsWith('/')) stack.length = 1;
      pending = [...split(target), ...pending];
      continue;
    }
    stack.push(ino);
  }
  return stack[stack.length - 1]!;
}

function split(p: ByteString): ByteString[] {
  return p.split('/').filter((c) => c !== '');
}
