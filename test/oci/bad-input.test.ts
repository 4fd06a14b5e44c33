// Hostile and broken images: every blob is verified, sizes are bounded, paths cannot escape.
import { appendFile, mkdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BootfsError, NotFoundError, UsageError } from '../../src/errors.js';
import { ImageFormatError, MAX_DOCUMENT_SIZE, openImage, parseImageRef } from '../../src/oci/index.js';
import { cleanup, tmpDir } from '../helpers/tools.js';
import { compressWith, digestOf, drain, flipByte, Layout, layerTar, OCI_LAYER, rejection, tagged, type Comp, type Desc } from './fixtures.js';

afterAll(cleanup);

const TAR1 = layerTar({ 'etc/one': 'one\n'.repeat(500) });
const TAR2 = layerTar({ 'srv/two': 'two\n'.repeat(700) });

/** A tagged two-layer image in a fresh layout. */
async function goodImage(compression: Comp = 'gzip', extra: Parameters<Layout['image']>[0] extends infer O ? Partial<O> : never = {}) {
  const dir = await tmpDir('bootfs-bad-');
  const lay = await Layout.create(dir);
  const img = await lay.image({ layers: [{ tar: TAR1, compression }, { tar: TAR2, compression }], ...extra });
  await lay.writeIndexJson([tagged(img.manifest, 'v1')]);
  return { dir, lay, ref: `oci:${dir}:v1`, ...img };
}

/** Rewrite the image's manifest with `edit` and point index.json at the new one. */
async function editManifest(lay: Layout, manifest: Desc, edit: (m: Record<string, unknown>) => void): Promise<Desc> {
  const m = JSON.parse(await readFile(lay.blobFile(manifest.digest), 'utf8'));
  edit(m);
  const d = await lay.json(m, manifest.mediaType);
  await lay.writeIndexJson([tagged(d, 'v1')]);
  return d;
}

function expectImageError(err: Error, ...parts: (string | RegExp)[]): void {
  expect(err).toBeInstanceOf(ImageFormatError);
  expect((err as BootfsError).code).toBe('ERR_IMAGE');
  expect((err as BootfsError).exitCode).toBe(3);
  for (const p of parts) expect(err.message).toMatch(p);
}

describe('layer blobs are verified while streaming', () => {
  it.each(['gzip', 'zstd', 'none'] as const)('a flipped byte in a %s layer: the stream throws, naming the layer and image', async (c) => {
    const g = await goodImage(c);
    const layer = g.layers[1]!;
    await flipByte(g.lay.blobFile(layer.digest), Math.floor(layer.size / 2));
    const img = await openImage(parseImageRef(g.ref)); // metadata is fine; the damage is in the data
    expect((await digestOf(img.openLayer(0))).digest).toBe(g.diffIds[0]);
    const err = await rejection(drain(img.openLayer(1)));
    expectImageError(err, `layer ${layer.digest} of ${g.ref}: digest mismatch (got sha256:`);
  });

  it('an uncompressed layer is yielded in full, and only then refused', async () => {
    const g = await goodImage('none');
    await flipByte(g.lay.blobFile(g.layers[0]!.digest), 600);
    const img = await openImage(parseImageRef(g.ref));
    let seen = 0;
    const err = await rejection(
      (async () => {
        for await (const b of img.openLayer(0)) seen += b.length;
      })(),
    );
    expect(seen).toBe(TAR1.length);
    expectImageError(err, /digest mismatch/);
  });

  it('a flipped byte in the gzip trailer is still reported as a digest mismatch', async () => {
    const g = await goodImage('gzip');
    await flipByte(g.lay.blobFile(g.layers[0]!.digest), -2);
    const img = await openImage(parseImageRef(g.ref));
    expectImageError(await rejection(drain(img.openLayer(0))), `layer ${g.layers[0]!.digest}`, /digest mismatch/);
  });

  it('uncompressed bytes that do not match diff_ids', async () => {
    const g = await goodImage('gzip', { diffIds: [`sha256:${'0'.repeat(64)}`, `sha256:${'1'.repeat(64)}`] });
    const img = await openImage(parseImageRef(g.ref));
    const err = await rejection(drain(img.openLayer(0)));
    expectImageError(err, `layer ${g.layers[0]!.digest} of ${g.ref}: uncompressed content does not match diff_id sha256:${'0'.repeat(64)} (got ${g.diffIds[0]})`);
  });

  it('a blob truncated after openImage: the stream fails', async () => {
    const g = await goodImage('none');
    const img = await openImage(parseImageRef(g.ref));
    await truncate(g.lay.blobFile(g.layers[0]!.digest), 100);
    expectImageError(await rejection(drain(img.openLayer(0))), /truncated \(100 of/);
  });

  it('an aborted signal stops the stream', async () => {
    const g = await goodImage('zstd');
    const img = await openImage(parseImageRef(g.ref));
    const ac = new AbortController();
    ac.abort(new Error('stop now'));
    expect((await rejection(drain(img.openLayer(0, { signal: ac.signal })))).message).toBe('stop now');
  });

  it('a closed image opens no layers; bad indexes are refused', async () => {
    const g = await goodImage();
    const img = await openImage(parseImageRef(g.ref));
    expect(() => img.openLayer(2)).toThrow(RangeError);
    await img.close();
    expect(() => img.openLayer(0)).toThrow(BootfsError);
  });
});

describe('metadata is verified before anything streams', () => {
  it('a config whose digest does not match', async () => {
    const g = await goodImage();
    const file = g.lay.blobFile(g.config.digest);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('"amd64"', '"arm64"')); // same size, other bytes
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), `config ${g.config.digest} of ${g.ref}: digest mismatch (got sha256:`);
  });

  it('a manifest whose digest does not match', async () => {
    const g = await goodImage();
    await flipByte(g.lay.blobFile(g.manifest.digest), 5);
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), `manifest ${g.manifest.digest} of ${g.ref}: digest mismatch`);
  });

  it('a truncated layer blob and one longer than its descriptor', async () => {
    const g = await goodImage();
    const file = g.lay.blobFile(g.layers[0]!.digest);
    await appendFile(file, 'junk');
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), `layer ${g.layers[0]!.digest}`, /longer than the \d+ bytes its descriptor says/);
    await truncate(file, 10);
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), /blob is truncated \(10 of \d+ bytes\)/);
  });

  it('missing blobs are not found (exit 2)', async () => {
    const g = await goodImage();
    await rm(g.lay.blobFile(g.layers[1]!.digest));
    const err = await rejection(openImage(parseImageRef(g.ref)));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toContain(`layer ${g.layers[1]!.digest} of ${g.ref} not found`);
    await rm(g.lay.blobFile(g.config.digest));
    expect(await rejection(openImage(parseImageRef(g.ref)))).toBeInstanceOf(NotFoundError);
    await rm(g.lay.blobFile(g.manifest.digest));
    expect(await rejection(openImage(parseImageRef(g.ref)))).toBeInstanceOf(NotFoundError);
  });

  it('a missing layout, a missing tag, a directory that is no layout', async () => {
    const g = await goodImage();
    expect(await rejection(openImage(parseImageRef(`oci:${g.dir}/nope:v1`)))).toBeInstanceOf(NotFoundError);
    const err = await rejection(openImage(parseImageRef(`oci:${g.dir}:v2`)));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toMatch(/tag v2 not found .*available tags: v1/);
    await rm(path.join(g.dir, 'oci-layout'));
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), /not an OCI image layout/);
  });

  it('digests with ../ (or another algorithm) are refused before any path is built', async () => {
    const g = await goodImage();
    // A file the traversal would reach, so a path built from the digest would find something.
    await writeFile(path.join(g.dir, 'blobs', 'secret'), TAR1);
    await editManifest(g.lay, g.manifest, (m) => {
      (m.layers as Desc[])[0]!.digest = 'sha256:../secret';
    });
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), /"sha256:\.\.\/secret" is not a sha256 digest/);
    await g.lay.writeIndexJson([{ ...tagged(g.manifest, 'v1'), digest: 'sha256:../../../../etc/passwd' }]);
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), /index\.json .* is not a sha256 digest/);
    await editManifest(g.lay, g.manifest, (m) => {
      (m.layers as Desc[])[0]!.digest = `sha512:${'a'.repeat(128)}`;
    });
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), /digest algorithm sha512 is not supported \(only sha256\)/);
  });

  it('a manifest (or index.json) over 4 MiB is refused unread', async () => {
    const g = await goodImage();
    await editManifest(g.lay, g.manifest, (m) => {
      m.annotations = { pad: 'x'.repeat(MAX_DOCUMENT_SIZE) };
    });
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), /bytes is over the 4 MiB limit for JSON documents/);
    await writeFile(path.join(g.dir, 'index.json'), ' '.repeat(MAX_DOCUMENT_SIZE + 1));
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), /index\.json of .* over the 4 MiB limit/);
  });

  it('a media type claiming gzip over zstd bytes (and the reverse, and tar over gzip)', async () => {
    for (const [declared, actual] of [['gzip', 'zstd'], ['zstd', 'gzip'], ['none', 'gzip'], ['gzip', 'none']] as const) {
      const g = await goodImage(actual);
      await editManifest(g.lay, g.manifest, (m) => {
        (m.layers as Desc[])[1]!.mediaType = OCI_LAYER[declared];
      });
      const err = await rejection(openImage(parseImageRef(g.ref)));
      expectImageError(err, `layer ${g.layers[1]!.digest} of ${g.ref}: media type ${OCI_LAYER[declared]} says`);
    }
  });

  it('unsupported documents: schema 1, artifacts, encrypted layers, bad JSON, diff_id count', async () => {
    const g = await goodImage();
    const check = async (edit: (m: Record<string, unknown>) => void, msg: RegExp) => {
      await editManifest(g.lay, g.manifest, edit);
      expectImageError(await rejection(openImage(parseImageRef(g.ref))), msg);
    };
    await check((m) => (m.mediaType = 'application/vnd.docker.distribution.manifest.v1+prettyjws'), /does not match its descriptor/);
    const s1 = await g.lay.json({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }, 'application/vnd.docker.distribution.manifest.v1+prettyjws');
    await g.lay.writeIndexJson([tagged(s1, 'v1')]);
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), /Docker schema 1 manifests are not supported/);
    await check((m) => ((m.config as Desc).mediaType = 'application/vnd.cncf.helm.config.v1+json'), /not a container image config/);
    await check((m) => ((m.layers as Desc[])[0]!.mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted'), /encrypted layers are not supported/);
    await check((m) => (m.layers = (m.layers as Desc[]).slice(0, 1)), /2 diff_ids for 1 layers/);
    await check((m) => (m.schemaVersion = 1), /schemaVersion 1 is not supported/);
    const bad = await g.lay.blob('{"schemaVersion":2,', 'application/vnd.oci.image.manifest.v1+json');
    await g.lay.writeIndexJson([tagged(bad, 'v1')]);
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), /not valid JSON/);
  });

  it('config fields of the wrong type are named', async () => {
    const g = await goodImage('gzip', { config: { Env: 'A=1' } });
    expectImageError(await rejection(openImage(parseImageRef(g.ref))), /Env is not a list of strings/);
  });
});

describe('oci-archive', () => {
  it('a truncated archive and a gzip-compressed one', async () => {
    const dir = await tmpDir('bootfs-bad-');
    const file = path.join(dir, 'x.tar');
    await writeFile(file, compressWith('gzip', TAR1));
    expectImageError(await rejection(openImage(parseImageRef(`oci-archive:${file}`))), /gzip-compressed; decompress it first/);
    expect(await rejection(openImage(parseImageRef(`oci-archive:${dir}/missing.tar`)))).toBeInstanceOf(NotFoundError);
  });
});

describe('dir:', () => {
  it('returns the directory with no layers and a default config', async () => {
    const dir = await tmpDir('bootfs-rootfs-');
    await mkdir(path.join(dir, 'etc'));
    const img = await openImage(parseImageRef(`dir:${dir}`), { platform: { os: 'linux', architecture: 'arm64' } });
    expect(img.rootfsDir).toBe(dir);
    expect(img.layers).toEqual([]);
    expect(img.platform).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(img.config).toEqual({ source: { reference: `dir:${dir}`, os: 'linux', architecture: 'arm64' } });
    expect(() => img.openLayer(0)).toThrow(RangeError);
  });

  it('refuses what is not a root filesystem directory', async () => {
    const dir = await tmpDir('bootfs-rootfs-');
    expect(await rejection(openImage(parseImageRef(`dir:${dir}/missing`)))).toBeInstanceOf(NotFoundError);
    await writeFile(path.join(dir, 'file'), 'x');
    expect(await rejection(openImage(parseImageRef(`dir:${dir}/file`)))).toBeInstanceOf(UsageError);
    // skopeo's own dir: layout
    await writeFile(path.join(dir, 'version'), 'Directory Transport Version: 1.1\n');
    await writeFile(path.join(dir, 'manifest.json'), '{}');
    const err = await rejection(openImage(parseImageRef(`dir:${dir}`)));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(/skopeo dir: image layout/);
  });
});
