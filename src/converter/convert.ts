/**
 * The convert pipeline: image → flattened tree (in memory) → data stream in sorted path order →
 * content-defined chunks in a store → one bootfs index.
 *
 * Layers are read once: each layer's tar is decompressed, verified and parsed, and every regular
 * file's bytes are appended to a spool file while the merged tree is built from the headers. Only
 * when every layer has been applied (so a hostile layer fails before anything is stored) are the
 * surviving files read back from the spool in sorted path order and chunked. Nothing is extracted
 * to disk as a filesystem.
 */
import { tmpdir } from 'node:os';
import { type ChunkSizes, DEFAULT_CHUNK_SIZES, validateChunkSizes } from '../chunker/params.js';
import { finishBootfsIndex, type PreparedIndex, prepareBootfsIndex } from '../index/bootfs-builder.js';
import type { FillSource } from '../chunker/index.js';
import type { Digest } from '../chunk.js';
import { makeBlobIndex } from '../ops/make.js';
import { openImage, type ImageRef, type Platform } from '../oci/index.js';
import { ChunkPool } from '../pool/chunk-pool.js';
import type { RegistryOptions } from '../registry/options.js';
import type { WriteStore } from '../store/types.js';
import { dataOrder, walkSorted } from '../tree/walk.js';
import type { FsNode, ImageConfig } from '../tree/types.js';
import { type ContentSource, dataSource } from './content.js';
import { startDirWalk } from './dir-tree.js';
import { LayerFlattener } from './flatten.js';
import { Spool } from './spool.js';
import type { TarLimits } from './tar-reader.js';

export type ConvertProgress =
  | { phase: 'layer'; index: number; count: number; digest: string; bytes: number }
  /** `total` is unknown while a dir: source is still being walked. */
  | { phase: 'chunk'; bytes: number; total: number | undefined; chunks: number; newChunks: number };

/**
 * Converted images use SHA-256 chunk IDs: a mount verifies every chunk it reads from the cache, and
 * SHA-256 runs in hardware on current x86 (SHA-NI) and ARMv8 servers, at 2.2× SHA-512/256 here
 * (docs/index-format.md has the numbers). casync extracts either; desync needs `--digest sha256`.
 */
export const CONVERT_DIGEST: Digest = 'sha256';

export interface ConvertOptions {
  /** Where chunks go; without a store only the index is computed. */
  store?: WriteStore;
  sizes?: ChunkSizes;
  /** The chunk IDs' digest (default CONVERT_DIGEST). */
  digest?: Digest;
  platform?: Platform;
  /** docker:// sources: registry credentials, TLS and retry settings. */
  registry?: RegistryOptions;
  /** Parent directory of the spool (default os.tmpdir()); needs room for the image's file data. */
  tmpDir?: string;
  pool?: ChunkPool;
  /** Let this thread take batches when the workers are full (MakeOptions.mainThread). */
  mainThread?: boolean;
  limits?: Partial<TarLimits>;
  onProgress?: (p: ConvertProgress) => void;
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

export interface TreeCounts {
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  other: number;
}

export interface ConvertResult {
  /** The encoded bootfs index. */
  index: Buffer;
  root: FsNode;
  config: ImageConfig;
  reference: string;
  layers: number;
  counts: TreeCounts;
  /** Bytes in the data stream (regular file contents, hardlinks once). */
  bytes: number;
  chunks: number;
  newChunks: number;
  newStoredBytes: number;
  /** Fraction of the data stream's chunks the store already had (0 = all new, 1 = all reused). */
  dedupRatio: number;
}

/** Convert `ref` into chunks in `opts.store` and return the bootfs index describing it. */
export async function convertImage(ref: ImageRef, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const sizes = validateChunkSizes(opts.sizes ?? DEFAULT_CHUNK_SIZES);
  const digest = opts.digest ?? CONVERT_DIGEST;
  const image = await openImage(ref, { ...(opts.platform ? { platform: opts.platform } : {}), ...(opts.registry ? { registry: opts.registry } : {}) });
  const pool = opts.pool ?? new ChunkPool();
  let spool: Spool | undefined;
  try {
    const sources: ContentSource[] = [];
    let files: Iterable<FsNode>;
    let total: number | undefined;
    let tree: () => Promise<FsNode>;
    if (image.rootfsDir !== undefined) {
      sources.push({ kind: 'dir', root: image.rootfsDir });
      // The walk goes on as the data stream pulls files, so the workers start before it ends.
      const walk = await startDirWalk(image.rootfsDir, { sourceIndex: 0, ...(opts.onWarning ? { onWarning: opts.onWarning } : {}) });
      files = walk.files;
      tree = () => walk.finish();
    } else {
      spool = await Spool.create(opts.tmpDir ?? tmpdir());
      sources.push({ kind: 'spool', spool });
      const flattener = new LayerFlattener({ spool, sourceIndex: 0, ...(opts.limits ? { limits: opts.limits } : {}) });
      for (let i = 0; i < image.layers.length; i++) {
        opts.signal?.throwIfAborted();
        const layer = image.layers[i]!;
        const stats = await flattener.applyLayer(image.openLayer(i, opts.signal ? { signal: opts.signal } : {}), layer.digest);
        opts.onProgress?.({ phase: 'layer', index: i, count: image.layers.length, digest: layer.digest, bytes: stats.bytes });
      }
      const merged = flattener.root;
      tree = async () => merged;
      await spool.flush();
      const ordered = dataOrder(merged);
      total = ordered.reduce((sum, f) => sum + f.size, 0);
      files = ordered;
    }
    // The tree's part of the index is built while the workers hash and store the last windows:
    // it starts once the data stream has handed out its last byte (~40 ms on the main thread for
    // the Debian rootfs, which otherwise came after the chunks).
    let whole: Promise<FsNode> | undefined;
    const finalTree = (): Promise<FsNode> => (whole ??= tree());
    let prepared: Promise<PreparedIndex> | undefined;
    const prepare = (): Promise<PreparedIndex> => (prepared ??= finalTree().then((root) => prepareBootfsIndex({ root, sizes, digest, config: image.config })));
    const data = dataSource(files, sources);
    const source: FillSource = {
      close: () => data.close?.(),
      async fill(dst) {
        const n = await data.fill(dst);
        // After the chunker has sent the last window on its way; errors surface at the await below.
        if (n === 0) setImmediate(() => void prepare().catch(() => undefined));
        return n;
      },
    };
    const made = await makeBlobIndex(source, {
      sizes,
      digest,
      pool,
      ...(opts.mainThread ? { mainThread: true } : {}),
      ...(opts.store ? { store: opts.store } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      onProgress: (p) => opts.onProgress?.({ phase: 'chunk', bytes: p.bytes, total, chunks: p.chunks, newChunks: p.newChunks }),
    });
    const index = finishBootfsIndex(await prepare(), made.index.table);
    const root = await finalTree();
    return {
      index,
      root,
      config: image.config,
      reference: image.reference,
      layers: image.layers.length,
      counts: countTree(root),
      bytes: made.bytes,
      chunks: made.chunks,
      newChunks: made.newChunks,
      newStoredBytes: made.newStoredBytes,
      dedupRatio: made.chunks === 0 ? 1 : 1 - made.newChunks / made.chunks,
    };
  } finally {
    await spool?.close();
    await image.close();
    if (!opts.pool) await pool.close();
  }
}

/** Names by kind (the root, which has no name, is not counted); a name of an inode already seen counts as a hardlink. */
export function countTree(root: FsNode): TreeCounts {
  const counts: TreeCounts = { entries: 0, files: 0, dirs: 0, symlinks: 0, hardlinks: 0, other: 0 };
  const seen = new Set<FsNode>();
  for (const { node } of walkSorted(root)) {
    if (node === root) continue;
    counts.entries++;
    if (seen.has(node)) {
      counts.hardlinks++;
      continue;
    }
    seen.add(node);
    if (node.kind === 'file') counts.files++;
    else if (node.kind === 'dir') counts.dirs++;
    else if (node.kind === 'symlink') counts.symlinks++;
    else counts.other++;
  }
  return counts;
}
