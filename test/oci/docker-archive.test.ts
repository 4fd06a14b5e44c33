// docker-archive: hand-written archives in the styles docker < 25 / podman / skopeo (<hex>.json,
// <id>/layer.tar symlinks) and docker ≥ 25 (blobs/sha256/<hex>), several images per archive.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BootfsError, NotFoundError, UsageError } from '../../src/errors.js';
import { ImageFormatError, openImage, parseImageRef } from '../../src/oci/index.js';
import { normalizeDockerRef } from '../../src/oci/docker-archive.js';
import { cleanup, tmpDir } from '../helpers/tools.js';
import { compressWith, digestOf, drain, layerTar, rejection, sha256, tarBytes, type TarEntry } from './fixtures.js';

afterAll(cleanup);

const A1 = layerTar({ 'a/one': 'one\n'.repeat(300) });
const A2 = layerTar({ 'a/two': 'two\n'.repeat(300) });
const B1 = layerTar({ 'b/one': 'bee\n'.repeat(300) });
const B2 = layerTar({ 'b/two': 'bzz\n'.repeat(300) });
const hex = (d: string): string => d.slice(7);

function config(diffIds: string[] | undefined, cmd: string[]): string {
  return JSON.stringify({ os: 'linux', architecture: 'amd64', config: { Cmd: cmd }, ...(diffIds ? { rootfs: { type: 'layers', diff_ids: diffIds } } : {}) });
}

interface Built {
  file: string;
  configA: string;
  configB: string;
  b2stored: string;
}

/** Write an archive; `mutate` may change members and manifest.json before writing. */
async function build(mutate: (entries: TarEntry[], manifest: Record<string, unknown>[]) => void = () => undefined): Promise<Built> {
  const dir = await tmpDir('bootfs-darc-');
  const cfgA = config([sha256(A1), sha256(A2)], ['a']);
  const cfgB = config([sha256(B1), sha256(B2)], ['b']);
  const a2gz = compressWith('gzip', A2);
  const b2zst = compressWith('zstd', B2);
  const entries: TarEntry[] = [
    // docker < 25 / skopeo style
    { name: `${hex(sha256(cfgA))}.json`, data: cfgA },
    { name: `${hex(sha256(A1))}.tar`, data: A1 },
    { name: 'id1/', type: 'dir' },
    { name: 'id1/layer.tar', type: 'symlink', target: `../${hex(sha256(A1))}.tar` },
    { name: 'id2/layer.tar', data: a2gz },
    // docker ≥ 25 style
    { name: `blobs/sha256/${hex(sha256(cfgB))}`, data: cfgB },
    { name: `blobs/sha256/${hex(sha256(B1))}`, data: B1 },
    { name: `blobs/sha256/${hex(sha256(b2zst))}`, data: b2zst },
  ];
  const manifest: Record<string, unknown>[] = [
    { Config: `${hex(sha256(cfgA))}.json`, RepoTags: ['example/a:1'], Layers: ['id1/layer.tar', 'id2/layer.tar'] },
    {
      Config: `blobs/sha256/${hex(sha256(cfgB))}`,
      RepoTags: ['docker.io/library/b:latest', 'b:2'],
      Layers: [`blobs/sha256/${hex(sha256(B1))}`, `blobs/sha256/${hex(sha256(b2zst))}`],
    },
  ];
  mutate(entries, manifest);
  entries.push({ name: 'manifest.json', data: JSON.stringify(manifest) });
  const file = path.join(dir, 'images.tar');
  await writeFile(file, tarBytes(entries));
  return { file, configA: sha256(cfgA), configB: sha256(cfgB), b2stored: sha256(b2zst) };
}

function expectImageError(err: Error, re: RegExp): void {
  expect(err).toBeInstanceOf(ImageFormatError);
  expect((err as BootfsError).exitCode).toBe(3);
  expect(err.message).toMatch(re);
}

describe('docker-archive', () => {
  it('normalises RepoTags as docker does', () => {
    expect(normalizeDockerRef('alpine')).toBe('docker.io/library/alpine:latest');
    expect(normalizeDockerRef('me/app:1')).toBe('docker.io/me/app:1');
    expect(normalizeDockerRef('localhost:5000/app')).toBe('localhost:5000/app:latest');
    expect(normalizeDockerRef('quay.io/x/y:2')).toBe('quay.io/x/y:2');
    expect(normalizeDockerRef('docker.io/library/b:latest')).toBe(normalizeDockerRef('b'));
  });

  it('several images: a usage error listing RepoTags without a REF; selection by any spelling', async () => {
    const b = await build();
    const err = await rejection(openImage(parseImageRef(`docker-archive:${b.file}`)));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toContain('RepoTags: example/a:1; docker.io/library/b:latest, b:2');
    for (const ref of ['example/a:1', 'docker.io/example/a:1']) {
      expect((await openImage(parseImageRef(`docker-archive:${b.file}:${ref}`))).config.cmd).toEqual(['a']);
    }
    for (const ref of ['b', 'b:latest', 'b:2', 'docker.io/library/b']) {
      expect((await openImage(parseImageRef(`docker-archive:${b.file}:${ref}`))).configDigest).toBe(b.configB);
    }
    const nf = await rejection(openImage(parseImageRef(`docker-archive:${b.file}:c:1`)));
    expect(nf).toBeInstanceOf(NotFoundError);
    expect(nf.message).toMatch(/image c:1 not found in docker-archive:.*RepoTags: example\/a:1; docker.io\/library\/b:latest, b:2/);
  });

  it('old style: <hex>.json config, symlinked and gzip layers identified by diff_id', async () => {
    const b = await build();
    const img = await openImage(parseImageRef(`docker-archive:${b.file}:example/a:1`));
    expect(img.manifestDigest).toBeUndefined();
    expect(img.configDigest).toBe(b.configA);
    expect(img.layers.map((l) => [l.digest, l.diffId, l.compression, l.mediaType])).toEqual([
      [sha256(A1), sha256(A1), 'none', 'application/vnd.docker.image.rootfs.diff.tar'],
      [sha256(A2), sha256(A2), 'gzip', 'application/vnd.docker.image.rootfs.diff.tar.gzip'],
    ]);
    expect(img.layers[0]!.size).toBe(A1.length);
    expect((await digestOf(img.openLayer(0))).digest).toBe(sha256(A1));
    expect((await drain(img.openLayer(1))).equals(A2)).toBe(true);
  });

  it('docker ≥ 25 style: blobs/sha256 paths, stored digests verified, zstd layer', async () => {
    const b = await build();
    const img = await openImage(parseImageRef(`docker-archive:${b.file}:b`));
    expect(img.layers.map((l) => [l.digest, l.diffId, l.compression])).toEqual([
      [sha256(B1), sha256(B1), 'none'],
      [b.b2stored, sha256(B2), 'zstd'],
    ]);
    expect((await drain(img.openLayer(1))).equals(B2)).toBe(true);
  });

  it('a damaged layer is refused by its stream', async () => {
    const b = await build((entries) => {
      const e = entries.find((x) => x.name === `blobs/sha256/${hex(sha256(B1))}`)!;
      const data = Buffer.from(e.data!);
      data[700] = data[700]! ^ 1;
      e.data = data;
    });
    const img = await openImage(parseImageRef(`docker-archive:${b.file}:b`));
    const err = await rejection(drain(img.openLayer(0)));
    expectImageError(err, new RegExp(`layer ${sha256(B1)} of docker-archive:.*:b: digest mismatch`));
  });

  it('a Layers path escaping the archive', async () => {
    const b = await build((_, m) => {
      (m[0]!.Layers as string[])[1] = '../x';
    });
    expectImageError(await rejection(openImage(parseImageRef(`docker-archive:${b.file}:example/a:1`))), /path \.\.\/x escapes the archive/);
    const c = await build((_, m) => {
      m[1]!.Config = '/etc/passwd';
    });
    expectImageError(await rejection(openImage(parseImageRef(`docker-archive:${c.file}:b`))), /escapes the archive/);
  });

  it('a config that does not match the digest in its name; one without diff_ids', async () => {
    const b = await build((entries) => {
      const e = entries.find((x) => x.name.endsWith('.json'))!;
      e.data = String(e.data).replace('"a"', '"z"');
    });
    expectImageError(await rejection(openImage(parseImageRef(`docker-archive:${b.file}:example/a:1`))), /config [0-9a-f]{64}\.json of .*: digest mismatch/);
    const c = await build((entries, m) => {
      const cfg = config(undefined, ['x']);
      entries.push({ name: 'plain.json', data: cfg });
      m[0]!.Config = 'plain.json';
    });
    expectImageError(await rejection(openImage(parseImageRef(`docker-archive:${c.file}:example/a:1`))), /rootfs.diff_ids is missing/);
  });

  it('a missing layer member; an OCI archive given as docker-archive', async () => {
    const b = await build((_, m) => {
      (m[0]!.Layers as string[])[0] = 'nothere/layer.tar';
    });
    const err = await rejection(openImage(parseImageRef(`docker-archive:${b.file}:example/a:1`)));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toMatch(/nothere\/layer.tar.* not found in the archive/);

    const dir = await tmpDir('bootfs-darc-');
    const file = path.join(dir, 'oci.tar');
    await writeFile(file, tarBytes([{ name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' }, { name: 'index.json', data: '{}' }]));
    expectImageError(await rejection(openImage(parseImageRef(`docker-archive:${file}`))), /use oci-archive:/);
  });
});
