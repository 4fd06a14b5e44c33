// writeImage against real peers: each transport written from a writeTarLayer layer and from the
// layers of a umoci-built image, then judged by skopeo (inspect, copy) and umoci (unpack), and read
// back by openImage. Plus: bad layer bytes leave nothing behind, same spec → same digests/bytes,
// adding to an existing layout, and openStoredLayer/rawConfig on the read side.
import { lstat, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { ImageFormatError, openImage, parseImageRef, type OpenedImage } from '../../src/oci/index.js';
import { writeTarLayer, type LayerBlob } from '../../src/oci/tar-write.js';
import { layerFromBlob, layerFromImage, writeImage, type WriteImageSpec, type WriteLayer } from '../../src/oci/write.js';
import { cleanup, describeWithTools, run, tmpDir } from '../helpers/tools.js';
import { compressWith, digestOf, layerTar, rejection, sha256, tarBytes } from './fixtures.js';

afterAll(cleanup);

/** Run a bash script; fail with its stderr when it fails. */
async function sh(script: string, env: Record<string, string> = {}): Promise<string> {
  const r = await run('bash', ['-euo', 'pipefail', '-c', script], { env: { ...process.env, ...env }, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`script failed (${r.code}): ${r.stderr.toString()}\n${script}`);
  return r.stdout.toString();
}

async function skopeo(...args: string[]): Promise<string> {
  const r = await run('skopeo', args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')} failed (${r.code}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

const TRANSPORTS = ['oci', 'oci-archive', 'docker-archive'] as const;
type Transport = (typeof TRANSPORTS)[number];

describeWithTools(['skopeo', 'umoci', 'tar'], 'writeImage judged by skopeo and umoci', () => {
  let dir: string;
  let app: LayerBlob;
  let base: OpenedImage;
  /** Spec (a): one writeTarLayer layer; (b): the base image's two layers plus that one. */
  const specs: Record<'a' | 'b', () => Promise<WriteImageSpec>> = {
    a: async () => ({
      layers: [layerFromBlob(app)],
      config: {
        architecture: 'amd64',
        os: 'linux',
        config: { Entrypoint: ['/usr/bin/app'], Cmd: ['--serve'], Env: ['PATH=/usr/bin:/bin', 'APP=demo'], WorkingDir: '/srv', Labels: { 'org.test': 'yes', 'org.bootfs.kind': 'a' } },
      },
      annotations: { 'org.opencontainers.image.title': 'bootfs test' },
    }),
    b: async () => {
      const raw = base.rawConfig;
      const inner = raw.config as Record<string, unknown>;
      return {
        // rootfs.diff_ids and history as the base has them: the writer extends both.
        layers: [...(await Promise.all(base.layers.map((_, i) => layerFromImage(base, i)))), layerFromBlob(app)],
        config: { ...raw, config: { ...inner, Entrypoint: ['/usr/bin/app'], Env: ['PATH=/usr/bin:/bin', 'APP=demo'], Labels: { ...(inner.Labels as object), 'org.test': 'yes', 'org.bootfs.kind': 'b' } } },
      };
    },
  };
  const destOf = (t: Transport, s: string, name = 'out'): string =>
    t === 'oci' ? `oci:${dir}/${name}-${s}:t1` : t === 'oci-archive' ? `oci-archive:${dir}/${name}-${s}.tar:t1` : `docker-archive:${dir}/${name}-${s}-docker.tar:localhost/app:1`;

  beforeAll(async () => {
    dir = await tmpDir('bootfs-write-');
    app = await writeTarLayer(path.join(dir, 'app.tar.gz'), [
      { path: 'usr/bin/app', type: 'file', mode: 0o755, content: Buffer.from('#!/bin/sh\necho app\n') },
      { path: 'etc/app.conf', type: 'file', mode: 0o640, uid: 1000, gid: 1000, content: Buffer.from('port=80\n') },
      { path: 'srv', type: 'dir', mode: 0o750, uid: 1000, gid: 1000 },
      { path: 'bin', type: 'symlink', mode: 0o777, target: 'usr/bin' },
    ]);
    // A base image made by umoci: two layers, a config with history, env, entrypoint and a label.
    await sh(
      `
      cd "$DIR"
      umoci init --layout base
      umoci new --image base:b
      umoci unpack --image base:b bundle >/dev/null
      mkdir -p bundle/rootfs/etc bundle/rootfs/usr/bin
      printf 'base\\n' > bundle/rootfs/etc/base-release
      printf '#!/bin/sh\\necho hello\\n' > bundle/rootfs/usr/bin/hello
      chmod 755 bundle/rootfs/usr/bin/hello
      umoci repack --image base:b bundle >/dev/null
      # repack diffs against what was unpacked: unpack again for a second layer.
      umoci unpack --image base:b bundle2 >/dev/null
      printf 'second\\n' > bundle2/rootfs/etc/second
      umoci repack --image base:b bundle2 >/dev/null
      umoci config --image base:b --config.entrypoint /usr/bin/hello --config.env BASE=1 --config.label org.base=yes >/dev/null
      `,
      { DIR: dir },
    );
    base = await openImage(parseImageRef(`oci:${dir}/base:b`));
  });

  async function checkWritten(t: Transport, s: 'a' | 'b', dest: string, written: { manifestDigest: string; configDigest: string }, spec: WriteImageSpec): Promise<void> {
    // skopeo's view: config through inspect and inspect --config.
    const info = JSON.parse(await skopeo('inspect', dest)) as { Labels: Record<string, string>; Env: string[]; Architecture: string; Os: string; Layers: string[]; Digest: string };
    expect(info.Labels).toMatchObject({ 'org.test': 'yes', 'org.bootfs.kind': s, ...(s === 'b' ? { 'org.base': 'yes' } : {}) });
    expect(info.Env).toEqual(['PATH=/usr/bin:/bin', 'APP=demo']);
    expect([info.Os, info.Architecture]).toEqual(['linux', 'amd64']);
    // docker-archive: skopeo names layers by diff_id (it decompresses them itself).
    expect(info.Layers).toEqual(spec.layers.map((l) => (t === 'docker-archive' ? l.diffId : l.digest)));
    if (t !== 'docker-archive') expect(info.Digest).toBe(written.manifestDigest);
    const cfg = JSON.parse(await skopeo('inspect', '--config', dest)) as { config: Record<string, unknown>; rootfs: { diff_ids: string[] }; history: { empty_layer?: boolean; created_by?: string }[] };
    expect(cfg.config.Entrypoint).toEqual(['/usr/bin/app']);
    expect(cfg.rootfs.diff_ids).toEqual(spec.layers.map((l) => l.diffId));
    // One history entry per layer: the base's own (umoci's, plus its empty config step), then ours.
    const layerSteps = cfg.history.filter((h) => h.empty_layer !== true).map((h) => h.created_by);
    expect(layerSteps).toEqual(s === 'a' ? ['bootfs'] : ['umoci repack', 'umoci repack', 'bootfs']);

    // skopeo copy reads every blob and checks digests and sizes on the way.
    const copy = path.join(dir, `copy-${t}-${s}`);
    await skopeo('copy', '--quiet', dest, `oci:${copy}:c`);
    // umoci unpack of the copy (and of the written layout itself) gives the files.
    const bundles = [[`${copy}:c`, `${copy}-bundle`]];
    if (t === 'oci') bundles.push([parseImageRef(dest).path + ':t1', path.join(dir, `bundle-${s}`)]);
    for (const [image, bundle] of bundles) {
      await sh(`umoci unpack --image "$IMAGE" "$BUNDLE" >/dev/null`, { IMAGE: image!, BUNDLE: bundle! });
      const root = path.join(bundle!, 'rootfs');
      expect(await readFile(path.join(root, 'usr/bin/app'), 'utf8')).toBe('#!/bin/sh\necho app\n');
      expect((await lstat(path.join(root, 'usr/bin/app'))).mode & 0o7777).toBe(0o755);
      expect(await lstat(path.join(root, 'etc/app.conf'))).toMatchObject({ uid: 1000, gid: 1000, mode: 0o100640 });
      expect(await lstat(path.join(root, 'srv'))).toMatchObject({ uid: 1000, mode: 0o40750 });
      expect(await readlink(path.join(root, 'bin'))).toBe('usr/bin');
      if (s === 'b') {
        expect(await readFile(path.join(root, 'etc/base-release'), 'utf8')).toBe('base\n');
        expect(await readFile(path.join(root, 'etc/second'), 'utf8')).toBe('second\n');
        expect(await readFile(path.join(root, 'usr/bin/hello'), 'utf8')).toBe('#!/bin/sh\necho hello\n');
      }
    }

    // Our own reader: same config, same layers, every layer verifies.
    const img = await openImage(parseImageRef(dest));
    try {
      expect(img.configDigest).toBe(written.configDigest);
      if (t !== 'docker-archive') expect(img.manifestDigest).toBe(written.manifestDigest);
      expect(img.config).toMatchObject({ entrypoint: ['/usr/bin/app'], env: ['PATH=/usr/bin:/bin', 'APP=demo'], labels: { 'org.test': 'yes' } });
      expect(s === 'a' ? img.config.cmd : undefined).toEqual(s === 'a' ? ['--serve'] : undefined);
      expect(img.layers.map((l) => [l.digest, l.diffId, l.size])).toEqual(spec.layers.map((l) => [l.digest, l.diffId, l.size]));
      for (let i = 0; i < img.layers.length; i++) {
        expect((await digestOf(img.openLayer(i))).digest).toBe(spec.layers[i]!.diffId);
        expect((await digestOf(img.openStoredLayer(i))).digest).toBe(spec.layers[i]!.digest);
      }
    } finally {
      await img.close();
    }
  }

  for (const t of TRANSPORTS) {
    for (const s of ['a', 'b'] as const) {
      it(`writes ${t} from ${s === 'a' ? 'a writeTarLayer layer' : "a umoci image's layers plus one"}`, async () => {
        const spec = await specs[s]();
        const dest = destOf(t, s);
        const written = await writeImage(dest, spec);
        await checkWritten(t, s, dest, written, spec);
      });
    }
  }

  it('writes the same spec to the same digests and, for archives, the same bytes', async () => {
    const spec = await specs.b();
    const results = [];
    for (const t of TRANSPORTS) {
      for (const name of ['same1', 'same2']) results.push(await writeImage(destOf(t, 'b', name), spec));
    }
    expect(new Set(results.map((r) => r.manifestDigest)).size).toBe(1);
    expect(new Set(results.map((r) => r.configDigest)).size).toBe(1);
    for (const f of ['b.tar', 'b-docker.tar']) {
      expect((await readFile(path.join(dir, `same1-${f}`))).equals(await readFile(path.join(dir, `same2-${f}`)))).toBe(true);
    }
    expect(await readFile(path.join(dir, 'same1-b/index.json'), 'utf8')).toBe(await readFile(path.join(dir, 'same2-b/index.json'), 'utf8'));
  });

  it('adds to an existing layout, replacing a tag, leaving no temp files', async () => {
    const layout = path.join(dir, 'multi');
    const a = await writeImage(`oci:${layout}:one`, await specs.a());
    const b = await writeImage(`oci:${layout}:two`, await specs.b());
    const again = await writeImage(`oci:${layout}:one`, await specs.b());
    expect(again.manifestDigest).toBe(b.manifestDigest);
    const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations: Record<string, string> }[] };
    expect(index.manifests.map((m) => [m.annotations['org.opencontainers.image.ref.name'], m.digest])).toEqual([
      ['two', b.manifestDigest],
      ['one', b.manifestDigest],
    ]);
    expect(a.manifestDigest).not.toBe(b.manifestDigest);
    expect((await readdir(layout)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
    expect(JSON.parse(await skopeo('inspect', `oci:${layout}:one`)).Digest).toBe(b.manifestDigest);
    const img = await openImage(parseImageRef(`oci:${layout}:two`));
    expect(img.manifestDigest).toBe(b.manifestDigest);
    // An untagged write adds one untagged entry, once.
    await writeImage(`oci:${layout}`, await specs.a());
    await writeImage(`oci:${layout}`, await specs.a());
    const index2 = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: unknown }[] };
    expect(index2.manifests.filter((m) => m.annotations === undefined).map((m) => m.digest)).toEqual([a.manifestDigest]);
  });

  it('copies zstd and uncompressed layers, checking their diff_ids too', async () => {
    const tar = layerTar({ 'etc/z': 'zstd layer\n'.repeat(100) });
    const zst = compressWith('zstd', tar);
    const bytes = (b: Buffer) => async function* () {
      yield b;
    };
    const zLayer: WriteLayer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: sha256(zst), size: zst.length, diffId: sha256(tar), open: bytes(zst) };
    const tLayer: WriteLayer = { mediaType: 'application/vnd.docker.image.rootfs.diff.tar', digest: sha256(tar), size: tar.length, diffId: sha256(tar), open: bytes(tar) };
    const dest = `oci:${dir}/mixed:m`;
    const w = await writeImage(dest, { layers: [zLayer, tLayer], config: { architecture: 'amd64', os: 'linux' } });
    const manifest = JSON.parse(await readFile(path.join(dir, 'mixed/blobs/sha256', w.manifestDigest.slice(7)), 'utf8')) as { layers: { mediaType: string }[] };
    // The Docker type is written as its OCI twin in an OCI manifest.
    expect(manifest.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar']);
    await skopeo('copy', '--quiet', dest, `oci:${dir}/mixed-copy:m`);
    const img = await openImage(parseImageRef(dest));
    expect(img.layers.map((l) => l.compression)).toEqual(['zstd', 'none']);
    const wrong = sha256('other');
    const err = await rejection(writeImage(`oci:${dir}/mixed-bad`, { layers: [{ ...zLayer, diffId: wrong }], config: { architecture: 'amd64', os: 'linux' } }));
    expect(err.message).toContain(`layer 0 (${zLayer.digest}) for oci:${dir}/mixed-bad: uncompressed content does not match diff_id ${wrong}`);
    const garbage = Buffer.concat([zst.subarray(0, 8), Buffer.alloc(64, 0xaa)]);
    const err2 = await rejection(writeImage(`oci:${dir}/mixed-bad`, { layers: [{ ...zLayer, digest: sha256(garbage), size: garbage.length, open: bytes(garbage) }], config: { architecture: 'amd64', os: 'linux' } }));
    expect(err2.message).toMatch(/layer 0 .*: zstd data does not decode/);
    await expect(lstat(`${dir}/mixed-bad`)).rejects.toThrow(/ENOENT/);
  });

  describe('bad input', () => {
    /** The app layer with one byte of its stored bytes flipped. */
    const flipped = (): WriteLayer => ({
      ...layerFromBlob(app),
      async *open() {
        const b = await readFile(app.file);
        b[b.length >> 1]! ^= 0x10;
        yield b;
      },
    });

    it('refuses a layer whose bytes do not match its digest, naming it, with no output left', async () => {
      const before = (await readdir(dir)).sort();
      for (const t of TRANSPORTS) {
        const dest = destOf(t, 'bad');
        const err = await rejection(writeImage(dest, { ...(await specs.a()), layers: [flipped()] }));
        expect(err).toBeInstanceOf(ImageFormatError);
        expect(err.message).toContain(`layer 0 (${app.digest}) for ${dest}: digest mismatch (got sha256:`);
      }
      expect((await readdir(dir)).sort()).toEqual(before);
    });

    it('leaves an existing layout as it was', async () => {
      const layout = path.join(dir, 'keep');
      await writeImage(`oci:${layout}:one`, await specs.a());
      const index = await readFile(path.join(layout, 'index.json'));
      const blobs = (await readdir(path.join(layout, 'blobs/sha256'))).sort();
      // The app layer is in the layout already (and would be kept); damage a base layer instead.
      const spec = await specs.b();
      const good = spec.layers[1]!;
      spec.layers[1] = {
        ...good,
        async *open() {
          for await (const b of good.open()) yield Buffer.from(b).fill(0, 0, 1);
        },
      };
      const err = await rejection(writeImage(`oci:${layout}:two`, spec));
      expect(err.message).toContain(`layer 1 (${good.digest}) for oci:${layout}:two: digest mismatch`);
      expect((await readFile(path.join(layout, 'index.json'))).equals(index)).toBe(true);
      expect((await readdir(path.join(layout, 'blobs/sha256'))).sort()).toEqual(blobs);
      expect((await readdir(layout)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
    });

    it('refuses wrong sizes and diff_ids', async () => {
      const dest = `oci-archive:${dir}/bad-facts.tar`;
      const short = await rejection(writeImage(dest, { ...(await specs.a()), layers: [{ ...layerFromBlob(app), size: app.size + 1 }] }));
      expect(short.message).toMatch(/layer 0 .*: truncated \(\d+ of the \d+ bytes its size says\)/);
      const long = await rejection(writeImage(dest, { ...(await specs.a()), layers: [{ ...layerFromBlob(app), size: app.size - 1, open: () => layerFromBlob(app).open() }] }));
      expect(long.message).toMatch(/layer 0 .*: longer than the \d+ bytes its size says/);
      const wrongDiff = sha256('something else');
      const diff = await rejection(writeImage(dest, { layers: [{ ...layerFromBlob(app), diffId: wrongDiff }], config: { architecture: 'amd64', os: 'linux' } }));
      expect(diff).toBeInstanceOf(ImageFormatError);
      expect(diff.message).toContain(`uncompressed content does not match diff_id ${wrongDiff} (got ${app.diffId})`);
      await expect(lstat(`${dir}/bad-facts.tar`)).rejects.toThrow(/ENOENT/);
    });

    it('stops when aborted, and needs the parent directory, leaving nothing either way', async () => {
      const before = (await readdir(dir)).sort();
      const ac = new AbortController();
      const layer = layerFromBlob(app);
      const aborting: WriteLayer = {
        ...layer,
        async *open() {
          const b = await readFile(app.file);
          yield b.subarray(0, 10);
          ac.abort();
          yield b.subarray(10);
        },
      };
      for (const t of TRANSPORTS) {
        const err = await rejection(writeImage(destOf(t, 'aborted'), { ...(await specs.a()), layers: [aborting] }, { signal: ac.signal }));
        expect(err.name).toBe('AbortError');
      }
      for (const t of TRANSPORTS) {
        const dest = destOf(t, 'x').replace(dir, `${dir}/no/such`);
        const err = await rejection(writeImage(dest, await specs.a()));
        expect(err.message).toMatch(/cannot create .*\(does .*\/no\/such exist\?\)/);
      }
      expect((await readdir(dir)).sort()).toEqual(before);
    });

    it('refuses bad destinations and specs with usage errors', async () => {
      const ok = await specs.a();
      const cases: [string, WriteImageSpec, RegExp][] = [
        [`dir:${dir}/x`, ok, /not an image destination/],
        [`oci:${dir}/x@sha256:${'0'.repeat(64)}`, ok, /takes a tag, not a digest/],
        [`docker://localhost:1/y@sha256:${'0'.repeat(64)}`, ok, /takes a tag, not a digest/],
        [`oci:${dir}/app.tar.gz`, ok, /is a file, not a directory/],
        [`oci:${dir}/x`, { ...ok, config: { os: 'linux' } }, /spec\.config\.architecture must be a non-empty string/],
        [`oci:${dir}/x`, { ...ok, config: { ...ok.config, rootfs: { type: 'layers', diff_ids: [sha256('x')] } } }, /rootfs\.diff_ids does not match/],
        [`oci:${dir}/x`, { ...ok, config: { ...ok.config, config: { Env: 'A=1' } } }, /Env is not a list of strings/],
        [`oci:${dir}/x`, { ...ok, layers: [{ ...layerFromBlob(app), mediaType: 'text/plain' }] }, /spec\.layers\[0\]\.mediaType "text\/plain" is not a layer media type/],
        [`oci:${dir}/x`, { ...ok, layers: [{ ...layerFromBlob(app), digest: 'md5:abc' }] }, /spec\.layers\[0\]\.digest/],
      ];
      for (const [dest, spec, msg] of cases) {
        const err = await rejection(writeImage(dest, spec));
        expect(err, dest).toBeInstanceOf(UsageError);
        expect(err.message).toMatch(msg);
      }
      await expect(lstat(`${dir}/x`)).rejects.toThrow(/ENOENT/);
    });
  });

  describe('the read side: openStoredLayer and rawConfig', () => {
    it('yields the stored bytes and verifies them at the end', async () => {
      expect(base.rawConfig).toMatchObject({ architecture: 'amd64', os: 'linux', config: { Entrypoint: ['/usr/bin/hello'] } });
      expect((base.rawConfig.history as unknown[]).length).toBeGreaterThanOrEqual(2);
      const l = base.layers[0]!;
      const got = await digestOf(base.openStoredLayer(0));
      expect(got).toEqual({ digest: l.digest, bytes: l.size });
      await sh('cp -a "$DIR/base" "$DIR/damaged"', { DIR: dir });
      const blob = path.join(dir, 'damaged/blobs/sha256', l.digest.slice(7));
      const bytes = await readFile(blob);
      bytes[bytes.length >> 1]! ^= 1;
      await writeFile(blob, bytes);
      const img = await openImage(parseImageRef(`oci:${dir}/damaged:b`));
      const err = await rejection(digestOf(img.openStoredLayer(0)));
      expect(err.message).toContain(`layer ${l.digest} of oci:${dir}/damaged:b: digest mismatch`);
    });

    it('copies a docker-archive layer without a known stored digest uncompressed', async () => {
      // docker-archive with a gzip layer under <id>/layer.tar: its stored digest is unknown.
      const tar = layerTar({ 'etc/legacy': 'legacy\n' });
      const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } });
      const manifest = JSON.stringify([{ Config: `${sha256(cfg).slice(7)}.json`, RepoTags: ['legacy:1'], Layers: ['abc/layer.tar'] }]);
      const archive = path.join(dir, 'legacy.tar');
      await writeFile(
        archive,
        tarBytes([
          { name: 'manifest.json', data: manifest },
          { name: `${sha256(cfg).slice(7)}.json`, data: cfg },
          { name: 'abc/layer.tar', data: compressWith('gzip', tar) },
        ]),
      );
      const img = await openImage(parseImageRef(`docker-archive:${archive}`));
      expect(img.layers[0]).toMatchObject({ digest: sha256(tar), diffId: sha256(tar), compression: 'gzip' });
      expect((await digestOf(img.openStoredLayer(0))).digest).toBe(sha256(tar));
      const layer = await layerFromImage(img, 0);
      expect(layer).toMatchObject({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(tar), size: tar.length, diffId: sha256(tar) });
      const dest = `oci-archive:${dir}/from-legacy.tar:l`;
      await writeImage(dest, { layers: [layer], config: img.rawConfig });
      await skopeo('copy', '--quiet', dest, `oci:${dir}/from-legacy-copy:l`);
      const back = await openImage(parseImageRef(dest));
      expect(back.layers.map((l) => [l.digest, l.compression])).toEqual([[sha256(tar), 'none']]);
    });

    it('copies a skopeo-written docker-archive (uncompressed layers) as it is', async () => {
      const archive = path.join(dir, 'skopeo-docker.tar');
      await skopeo('copy', '--quiet', `oci:${dir}/base:b`, `docker-archive:${archive}:base/b:1`);
      const img = await openImage(parseImageRef(`docker-archive:${archive}`));
      const layers = await Promise.all(img.layers.map((_, i) => layerFromImage(img, i)));
      expect(layers.map((l) => l.digest)).toEqual(base.layers.map((l) => l.diffId));
      const dest = `docker-archive:${dir}/rewritten.tar:localhost/rewritten`;
      await writeImage(dest, { layers, config: img.rawConfig });
      // The same config (keys sorted, so not the same bytes as skopeo's).
      expect(JSON.parse(await skopeo('inspect', '--config', '--raw', dest))).toEqual(img.rawConfig);
      const info = JSON.parse(await skopeo('inspect', dest)) as { Layers: string[] };
      expect(info.Layers).toEqual(base.layers.map((l) => l.diffId));
    });
  });
});
