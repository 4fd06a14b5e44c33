// Test fixtures for the image-source tests: a tiny ustar writer, hand-written OCI layouts and
// docker archives, and byte-level damage helpers.

import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';
export { rejection } from '../helpers/assert.js';

export const sha256 = (b: Uint8Array | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface TarEntry {
  name: string;
  data?: Uint8Array | string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink';
  target?: string;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A ustar archive (names ≤ 100 bytes) with fixed metadata, so it is deterministic. */
export function tarBytes(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100, 'utf8');
    h.write(octal(e.type === 'dir' ? 0o755 : 0o644, 8), 100, 'latin1');
    h.write(octal(0, 8), 108, 'latin1');
    h.write(octal(0, 8), 116, 'latin1');
    h.write(octal(e.type === undefined || e.type === 'file' ? data.length : 0, 12), 124, 'latin1');
    h.write(octal(0, 12), 136, 'latin1');
    h.write(' '.repeat(8), 148, 'latin1');
    h.write({ file: '0', dir: '5', symlink: '2', hardlink: '1' }[e.type ?? 'file'], 156, 'latin1');
    if (e.target) h.write(e.target, 157, 100, 'utf8');
    h.write('ustar\0', 257, 'latin1');
    h.write('00', 263, 'latin1');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(octal(sum, 7) + ' ', 148, 'latin1');
    blocks.push(h);
    if ((e.type ?? 'file') === 'file' && data.length > 0) {
      blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** A small layer tar holding `files` (name → content). */
export function layerTar(files: Record<string, string>): Buffer {
  return tarBytes(Object.entries(files).map(([name, data]) => ({ name, data })));
}

export type Comp = 'gzip' | 'zstd' | 'none';

export function compressWith(c: Comp, b: Buffer): Buffer {
  return c === 'gzip' ? gzipSync(b) : c === 'zstd' ? zstdCompress(b) : b;
}

export const OCI_LAYER: Record<Comp, string> = {
  none: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

export interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

/** Writes blobs into an OCI layout directory. */
export class Layout {
  constructor(readonly dir: string) {}

  static async create(dir: string): Promise<Layout> {
    await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    return new Layout(dir);
  }

  blobFile(digest: string): string {
    return path.join(this.dir, 'blobs', 'sha256', digest.slice(7));
  }

  async blob(bytes: Buffer | string, mediaType: string): Promise<Desc> {
    const b = Buffer.from(bytes);
    const digest = sha256(b);
    await writeFile(this.blobFile(digest), b);
    return { mediaType, digest, size: b.length };
  }

  json(value: unknown, mediaType: string): Promise<Desc> {
    return this.blob(JSON.stringify(value), mediaType);
  }

  /**
   * An image: layers (tar + compression), a config with diff_ids and the given runtime config,
   * and its manifest. Returns the manifest descriptor plus the layer facts for assertions.
   */
  async image(opts: {
    layers: { tar: Buffer; compression: Comp; mediaType?: string }[];
    os?: string;
    architecture?: string;
    variant?: string;
    config?: Record<string, unknown>;
    docker?: boolean;
    diffIds?: string[] | null;
  }): Promise<{ manifest: Desc; config: Desc; layers: Desc[]; diffIds: string[] }> {
    const layers: Desc[] = [];
    for (const l of opts.layers) {
      const mt = l.mediaType ?? (opts.docker ? { none: 'application/vnd.docker.image.rootfs.diff.tar', gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip', zstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd' }[l.compression] : OCI_LAYER[l.compression]);
      layers.push(await this.blob(compressWith(l.compression, l.tar), mt));
    }
    const diffIds = opts.layers.map((l) => sha256(l.tar));
    const configDoc = {
      architecture: opts.architecture ?? 'amd64',
      os: opts.os ?? 'linux',
      ...(opts.variant ? { variant: opts.variant } : {}),
      config: opts.config ?? {},
      ...(opts.diffIds === null ? {} : { rootfs: { type: 'layers', diff_ids: opts.diffIds ?? diffIds } }),
    };
    const config = await this.json(configDoc, opts.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json');
    const mediaType = opts.docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json';
    const manifest = await this.json({ schemaVersion: 2, mediaType, config, layers }, mediaType);
    return { manifest, config, layers, diffIds };
  }

  async index(manifests: Desc[], mediaType = 'application/vnd.oci.image.index.v1+json'): Promise<Desc> {
    return this.json({ schemaVersion: 2, mediaType, manifests }, mediaType);
  }

  async writeIndexJson(manifests: Desc[]): Promise<void> {
    await writeFile(path.join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  }
}

export function tagged(d: Desc, tag: string): Desc {
  return { ...d, annotations: { ...d.annotations, 'org.opencontainers.image.ref.name': tag } };
}

export function withPlatform(d: Desc, os: string, architecture: string, variant?: string): Desc {
  return { ...d, platform: { os, architecture, ...(variant ? { variant } : {}) } };
}

/** Flip one bit of byte `at` (negative: from the end) of `file`. */
export async function flipByte(file: string, at: number): Promise<void> {
  const b = await readFile(file);
  const i = at < 0 ? b.length + at : at;
  b[i] = b[i]! ^ 0x01;
  await writeFile(file, b);
}

/** Drain an async iterable, returning its bytes. */
export async function drain(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

/** sha256 digest and length of everything an async iterable yields. */
export async function digestOf(it: AsyncIterable<Uint8Array>): Promise<{ digest: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const b of it) {
    h.update(b);
    bytes += b.length;
  }
  return { digest: `sha256:${h.digest('hex')}`, bytes };
}
