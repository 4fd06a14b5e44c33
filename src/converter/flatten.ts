/**
 * Apply image layers, lowest first, to one merged FsNode tree, by the OCI image-spec layer rules
 * (whiteouts, opaque directories), without extracting anything: regular file contents go to a
 * Spool and nodes point at them. The rules and the decisions taken where the spec is silent are in
 * docs/flattening.md.
 *
 * Each layer is applied in two steps, so the order of entries within a layer does not matter for
 * whiteouts (the spec: whiteouts only hide lower-layer entries):
 *   1. read the tar (spooling file data) into a list of operations, touching nothing;
 *   2. apply all whiteouts and opaque markers to the tree, then every other entry in archive order.
 */
import { type ByteString, type FsNode, newDir } from '../tree/types.js';
import { quotePath, sanitizeEntryPath, splitEntryPath, UnsafePathError } from './paths.js';
import type { Spool } from './spool.js';
import { LayerFormatError, readTar, type TarEntry, type TarLimits } from './tar-reader.js';

/** Whiteout prefix: `.wh.NAME` deletes NAME from lower layers. */
export const WHITEOUT_PREFIX = '.wh.';
/** An entry with this name makes its directory opaque: lower-layer children are hidden. */
export const OPAQUE_WHITEOUT = '.wh..wh..opq';
/** Other `.wh..wh.*` names are aufs bookkeeping (`.wh..wh.plnk`, …), skipped as docker does. */
const WHITEOUT_META_PREFIX = '.wh..wh.';

export interface LayerFlattenerOptions {
  /** Where regular file contents are appended. */
  spool: Spool;
  /** The spool's index in the converter's list of content sources (ContentRef.source). */
  sourceIndex: number;
  limits?: Partial<TarLimits>;
}

/** What one applyLayer call read. */
export interface LayerStats {
  /** Tar entries (PAX and long-name headers not counted). */
  entries: number;
  /** Regular file bytes spooled. */
  bytes: number;
}

type Op =
  | { kind: 'whiteout'; parent: ByteString[]; name: ByteString }
  | { kind: 'opaque'; dir: ByteString[] }
  | { kind: 'node'; comps: ByteString[]; node: FsNode; path: ByteString }
  | { kind: 'hardlink'; comps: ByteString[]; target: ByteString[]; path: ByteString; linkPath: ByteString };

/** Builds the merged tree of an image from its layers, applied in order, lowest first. */
export class LayerFlattener {
  /** The merged tree so far: a root directory (0755, root-owned, mtime 0 until a layer sets it). */
  readonly root: FsNode = newDir();
  private readonly spool: Spool;
  private readonly sourceIndex: number;
  private readonly limits: Partial<TarLimits> | undefined;
  private broken: string | null = null;

  constructor(opts: LayerFlattenerOptions) {
    this.spool = opts.spool;
    this.sourceIndex = opts.sourceIndex;
    this.limits = opts.limits;
  }

  /**
   * Read one layer (a decompressed tar stream) and apply it to `root`. `layerName` (its digest)
   * names the layer in errors. A format error leaves the tree untouched; after an error in step 2
   * (a hardlink to a missing file) the tree is half-applied and this flattener refuses more layers.
   */
  async applyLayer(tar: AsyncIterable<Uint8Array>, layerName: string): Promise<LayerStats> {
    if (this.broken !== null) throw new LayerFormatError(layerName, `not applied: an earlier layer failed (${this.broken})`);
    const ops: Op[] = [];
    let entries = 0;
    let bytes = 0;
    for await (const e of readTar(tar, { layer: layerName, limits: this.limits })) {
      entries++;
      const comps = sanitizeEntryPath(e.path, layerName);
      const fail = (reason: string): never => {
        throw new LayerFormatError(layerName, reason, { entry: e.path, offset: e.offset });
      };
      for (let i = 0; i < comps.length - 1; i++) {
        if (comps[i]!.startsWith(WHITEOUT_PREFIX)) fail('a whiteout name is used as a directory');
      }
      const name = comps[comps.length - 1];
      if (name !== undefined && name.startsWith(WHITEOUT_PREFIX)) {
        if (name === OPAQUE_WHITEOUT) ops.push({ kind: 'opaque', dir: comps.slice(0, -1) });
        else if (name.startsWith(WHITEOUT_META_PREFIX)) continue;
        else {
          const hidden = name.slice(WHITEOUT_PREFIX.length);
          if (hidden === '' || hidden === '.' || hidden === '..') fail('whiteout of an invalid name');
          ops.push({ kind: 'whiteout', parent: comps.slice(0, -1), name: hidden });
        }
        continue; // a whiteout's data, if any, is skipped by the reader
      }
      if (comps.length === 0 && e.type !== 'dir') fail(`the root must be a directory, not a ${e.type}`);
      if (e.type === 'hardlink') {
        const target = splitEntryPath(e.linkPath);
        if (!Array.isArray(target)) throw new UnsafePathError(layerName, e.path, `hardlink target ${quotePath(e.linkPath)}: ${target.problem}`);
        ops.push({ kind: 'hardlink', comps, target, path: e.path, linkPath: e.linkPath });
        continue;
      }
      const node = await this.makeNode(e);
      bytes += node.size;
      ops.push({ kind: 'node', comps, node, path: e.path });
    }
    try {
      this.applyOps(ops, layerName);
    } catch (err) {
      this.broken = err instanceof Error ? err.message : String(err);
      throw err;
    }
    return { entries, bytes };
  }

  /** A fresh node for a non-hardlink entry; regular file data goes to the spool. */
  private async makeNode(e: TarEntry): Promise<FsNode> {
    const kind = e.type === 'hardlink' ? 'file' : e.type;
    const node: FsNode = { kind, mode: e.mode, uid: e.uid, gid: e.gid, mtimeNs: e.mtimeNs, xattrs: e.xattrs, size: 0 };
    if (kind === 'dir') node.children = new Map();
    else if (kind === 'symlink') node.target = e.linkPath;
    else if (kind === 'char' || kind === 'block') {
      node.devMajor = e.devMajor;
      node.devMinor = e.devMinor;
    } else if (kind === 'file' && e.size > 0) {
      const r = await this.spool.append(e.data);
      node.size = r.size;
      node.content = { source: this.sourceIndex, offset: r.offset, size: r.size };
    }
    return node;
  }

  private applyOps(ops: readonly Op[], layer: string): void {
    // Step 2a: whiteouts and opaque markers hide lower-layer entries only.
    for (const op of ops) {
      if (op.kind === 'whiteout') this.lookupDir(op.parent)?.children!.delete(op.name);
      else if (op.kind === 'opaque') this.lookupDir(op.dir)?.children!.clear();
    }
    // Step 2b: everything else, in archive order.
    for (const op of ops) {
      if (op.kind === 'whiteout') continue;
      if (op.kind === 'opaque') {
        // the marker says its directory exists in this layer
        this.ensureDir(op.dir, op.dir.length);
        continue;
      }
      if (op.comps.length === 0) {
        if (op.kind === 'node') copyDirMetadata(this.root, op.node);
        continue;
      }
      const parent = this.ensureDir(op.comps, op.comps.length - 1);
      const name = op.comps[op.comps.length - 1]!;
      if (op.kind === 'hardlink') {
        const target = this.lookup(op.target);
        const what = `hardlink ${quotePath(op.path)} → ${quotePath(op.linkPath)}`;
        if (target === undefined) {
          throw new LayerFormatError(layer, `${what}: the target is not in this or a lower layer (a hardlink must follow its target)`);
        }
        if (target.kind === 'dir') throw new LayerFormatError(layer, `${what}: the target is a directory`);
        parent.children!.set(name, target);
        continue;
      }
      const old = parent.children!.get(name);
      // Re-adding an existing directory updates its metadata and keeps its children.
      if (op.node.kind === 'dir' && old?.kind === 'dir') copyDirMetadata(old, op.node);
      else parent.children!.set(name, op.node);
    }
  }

  /** The node at `comps`, walking directories only (symlinks are never followed). */
  private lookup(comps: readonly ByteString[]): FsNode | undefined {
    let node: FsNode = this.root;
    for (const c of comps) {
      const next = node.children?.get(c);
      if (next === undefined) return undefined;
      node = next;
    }
    return node;
  }

  private lookupDir(comps: readonly ByteString[]): FsNode | undefined {
    const node = this.lookup(comps);
    return node?.kind === 'dir' ? node : undefined;
  }

  /**
   * The directory at comps[0..n), creating missing ones (0755, root-owned, mtime 0) and replacing
   * anything that is not a directory (a symlink is replaced, never followed: see docs/flattening.md).
   */
  private ensureDir(comps: readonly ByteString[], n: number): FsNode {
    let dir = this.root;
    for (let i = 0; i < n; i++) {
      const c = comps[i]!;
      let next = dir.children!.get(c);
      if (next === undefined || next.kind !== 'dir') {
        next = newDir();
        dir.children!.set(c, next);
      }
      dir = next;
    }
    return dir;
  }
}

/** Give directory `dir` the metadata of directory entry `from`, keeping `dir`'s children. */
function copyDirMetadata(dir: FsNode, from: FsNode): void {
  dir.mode = from.mode;
  dir.uid = from.uid;
  dir.gid = from.gid;
  dir.mtimeNs = from.mtimeNs;
  dir.xattrs = from.xattrs;
}
