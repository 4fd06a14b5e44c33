/**
 * Sorted depth-first walks over an FsNode tree. "Sorted path order" in bootfs means exactly this
 * walk: depth first, pre-order, the children of every directory visited in byte order of their names
 * (so `a`, `a/b`, `a.b` — not the plain sort of full paths, which would put `a.b` before `a/b`).
 * It is the order of the bootfs index's inode numbers and of its data stream, so the converter
 * (which streams file contents into the chunker in `dataOrder`) and the index builder agree on every
 * file's offset by construction.
 */
import { displayName, type ByteString, type FsNode } from './types.js';

/** One name in the walk: its path (relative, '/'-separated, '' for the root), last name ('' for the root), node and depth (root 0). */
export interface WalkItem {
  path: ByteString;
  name: ByteString;
  node: FsNode;
  depth: number;
}

/** Byte order of two ByteStrings (UTF-16 code unit order is byte order when every unit is a byte). */
export function compareByteStrings(a: ByteString, b: ByteString): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The names of a directory's children in byte order ([] for a node without children). */
export function sortedNames(dir: FsNode): ByteString[] {
  return dir.children === undefined ? [] : Array.from(dir.children.keys()).sort(compareByteStrings);
}

/**
 * Every name in sorted depth-first pre-order, the root first (path '', depth 0). A hardlinked node
 * is yielded once per name. Iterative, so deep trees cost no call stack. Throws RangeError when a
 * directory is reached twice (a hardlinked directory or a cycle), which no valid tree has and which
 * would otherwise make the walk endless.
 */
export function* walkSorted(root: FsNode): Generator<WalkItem> {
  const seenDirs = new Set<FsNode>([root]);
  yield { path: '', name: '', node: root, depth: 0 };
  // One frame per open directory: its path, sorted child names and the next one to visit.
  const stack: { path: ByteString; dir: FsNode; names: ByteString[]; next: number }[] = [
    { path: '', dir: root, names: sortedNames(root), next: 0 },
  ];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.names.length) {
      stack.pop();
      continue;
    }
    const name = top.names[top.next++]!;
    const node = top.dir.children!.get(name)!;
    const path = top.path === '' ? name : `${top.path}/${name}`;
    yield { path, name, node, depth: stack.length };
    if (node.kind === 'dir') {
      if (seenDirs.has(node)) {
        throw new RangeError(`directory '${displayName(path)}' is reached twice (a hardlinked directory or a cycle)`);
      }
      seenDirs.add(node);
      stack.push({ path, dir: node, names: sortedNames(node), next: 0 });
    }
  }
}

/**
 * The regular files whose contents make up the data stream, in stream order: files with size > 0,
 * each node once (a hardlinked file at the place of its first path in sorted path order).
 */
export function dataOrder(root: FsNode): FsNode[] {
  const seen = new Set<FsNode>();
  const out: FsNode[] = [];
  for (const { node } of walkSorted(root)) {
    if (node.kind === 'file' && node.size > 0 && !seen.has(node)) {
      seen.add(node);
      out.push(node);
    }
  }
  return out;
}
