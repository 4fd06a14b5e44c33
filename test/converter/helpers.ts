/** Shared helpers for converter tests: reading tars fully, flattening buffers, describing trees. */
import { expect } from 'vitest';
import { BootfsError } from '../../src/errors.js';
import type { Spool } from '../../src/converter/spool.js';
import { readTar, type TarEntry, type TarReadOptions } from '../../src/converter/tar-reader.js';
import type { FsNode } from '../../src/tree/types.js';
import { chunked } from './tar-writer.js';
export { rejection } from '../helpers/assert.js';

export type ReadEntry = Omit<TarEntry, 'data'> & { body: Buffer };

/** Read every entry and its data. */
export async function readAll(tar: Uint8Array | AsyncIterable<Uint8Array>, opts: Partial<TarReadOptions> = {}, chunk?: number): Promise<ReadEntry[]> {
  const src = tar instanceof Uint8Array ? chunked(tar, chunk) : tar;
  const out: ReadEntry[] = [];
  for await (const e of readTar(src, { layer: 'test-layer', ...opts })) {
    const parts: Buffer[] = [];
    for await (const c of e.data) parts.push(Buffer.from(c));
    const { data: _data, ...rest } = e;
    out.push({ ...rest, body: Buffer.concat(parts) });
  }
  return out;
}

/** Assert `err` is a `cls` whose message names the layer and every string in `mentions`. */
export function expectBootfsError(err: Error, cls: abstract new (...a: never[]) => BootfsError, layer: string, mentions: (string | RegExp)[] = []): void {
  expect(err).toBeInstanceOf(cls);
  expect(err.message).toContain(layer);
  for (const m of mentions) {
    if (typeof m === 'string') expect(err.message).toContain(m);
    else expect(err.message).toMatch(m);
  }
}

/** One line per node of a tree: path, kind, metadata, xattrs, content (via `content`), link identity. */
export interface NodeRecord {
  path: string;
  kind: string;
  mode: string;
  uid: number;
  gid: number;
  mtimeNs: string;
  size: number;
  target?: string;
  dev?: string;
  xattrs: string;
  /** For hardlinked nodes: the first path the node was seen at (sorted walk). */
  linkOf?: string;
  content?: string;
}

/** Flatten a tree into sorted records; `content` turns a file node into a digest/string of its bytes. */
export async function describeTree(
  root: FsNode,
  content?: (node: FsNode, path: string) => Promise<string>,
  opts: { mtimeResolution?: bigint; skipRootMeta?: boolean } = {},
): Promise<NodeRecord[]> {
  const out: NodeRecord[] = [];
  const seen = new Map<FsNode, string>();
  const res = opts.mtimeResolution ?? 1n;
  const walk = async (node: FsNode, path: string): Promise<void> => {
    const rec: NodeRecord = {
      path,
      kind: node.kind,
      mode: node.mode.toString(8),
      uid: node.uid,
      gid: node.gid,
      mtimeNs: String((node.mtimeNs / res) * res),
      size: node.size,
      xattrs: [...node.xattrs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v.toString('hex')}`).join(','),
    };
    if (node.target !== undefined) rec.target = node.target;
    if (node.kind === 'char' || node.kind === 'block') rec.dev = `${node.devMajor}:${node.devMinor}`;
    const first = seen.get(node);
    if (first !== undefined) rec.linkOf = first;
    else if (node.kind !== 'dir') seen.set(node, path);
    if (content && node.kind === 'file' && first === undefined) rec.content = await content(node, path);
    if (!(opts.skipRootMeta && path === '')) out.push(rec);
    if (node.children) {
      for (const name of [...node.children.keys()].sort()) await walk(node.children.get(name)!, path === '' ? name : `${path}/${name}`);
    }
  };
  await walk(root, '');
  return out;
}

/** A file node's bytes from a spool. */
export async function spoolContent(spool: Spool, node: FsNode): Promise<Buffer> {
  if (!node.content) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  for await (const c of spool.readRange(node.content.offset, node.content.size)) parts.push(c);
  return Buffer.concat(parts);
}
