/**
 * What `bootfs convert SRC DST` writes, without running it: layer sharing between conversions,
 * the config that makes the stub the entrypoint, the boot config in the last layer.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBootConfig } from '../../src/boot/config.js';
import { openImage, parseImageRef, writeImage, writeTarLayer, layerFromBlob } from '../../src/oci/index.js';
import { bootfs } from '../cli/cli-helpers.js';
import { removeTree, run, tmpDir } from '../helpers/tools.js';

interface Manifest {
  layers: { digest: string }[];
  config: { digest: string };
}

async function manifestOf(layout: string): Promise<{ manifest: Manifest; config: Record<string, unknown> }> {
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blob = (d: string): Promise<string> => readFile(path.join(layout, 'blobs', 'sha256', d.slice(7)), 'utf8');
  const manifest = JSON.parse(await blob(index.manifests[0]!.digest)) as Manifest;
  return { manifest, config: JSON.parse(await blob(manifest.config.digest)) as Record<string, unknown> };
}

describe('boot images as written by bootfs convert SRC DST', () => {
  let dir: string;
  let base: string;
  beforeAll(async () => {
    dir = await tmpDir('bootfs-bootimage-');
    // A tiny base: one layer; enough to check what is copied and what is added.
    const layer = await writeTarLayer(path.join(dir, 'base-layer.tar.gz'), [{ path: 'etc/base-release', type: 'file', mode: 0o644, content: Buffer.from('base\n') }]);
    base = path.join(dir, 'base');
    await writeImage(`oci:${base}:1`, {
      layers: [layerFromBlob(layer)],
      config: { architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/usr/bin:/bin', 'BASE=1'] } },
    });
    for (const [name, body] of [['a', 'first app\n'], ['b', 'second app\n']] as const) {
      await mkdir(path.join(dir, name, 'app'), { recursive: true });
      await writeFile(path.join(dir, name, 'app', 'main'), body);
    }
  });
  afterAll(async () => removeTree(dir));

  it('shares the base and runtime layers between conversions; only the index layer differs', async () => {
    const out: { manifest: Manifest; config: Record<string, unknown> }[] = [];
    for (const name of ['a', 'b']) {
      const c = await bootfs(['convert', `dir:${path.join(dir, name)}`, `oci:${path.join(dir, `boot-${name}`)}:1`, '--store', path.join(dir, 'store'), '--image-store', 'http://store:8080/', '--base', `oci:${base}:1`, '--json']);
      expect(c.code, c.stderr).toBe(0);
      expect(JSON.parse(c.stdout).bootImage.dest).toContain(`boot-${name}`);
      out.push(await manifestOf(path.join(dir, `boot-${name}`)));
    }
    const [a, b] = out as [typeof out[0], typeof out[0]];
    expect(a.manifest.layers).toHaveLength(3);
    const baseManifest = await manifestOf(base);
    expect(a.manifest.layers[0]).toEqual(baseManifest.manifest.layers[0]);
    expect(a.manifest.layers[1]!.digest).toBe(b.manifest.layers[1]!.digest);
    expect(a.manifest.layers[2]!.digest).not.toBe(b.manifest.layers[2]!.digest);

    const cfg = a.config.config as Record<string, unknown>;
    expect(cfg.Entrypoint).toEqual(['/usr/local/bin/node', '/bootfs/runtime/dist/bootstub/main.js']);
    expect(cfg.Cmd ?? []).toEqual([]);
    expect((cfg.Labels as Record<string, string>)['org.bootfs.store']).toBe('http://store:8080/');
    expect((cfg.Labels as Record<string, string>)['org.bootfs.version']).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('puts the index and a valid boot config in the last layer; the runtime layer holds the stub', async () => {
    const img = await openImage(parseImageRef(`oci:${path.join(dir, 'boot-a')}:1`));
    try {
      const x = path.join(dir, 'x');
      await mkdir(x, { recursive: true });
      for (const i of [1, 2]) {
        const chunks: Buffer[] = [];
        for await (const c of img.openLayer(i)) chunks.push(Buffer.from(c));
        await writeFile(path.join(dir, `layer${i}.tar`), Buffer.concat(chunks));
        const t = await run('tar', ['-xf', path.join(dir, `layer${i}.tar`), '-C', x]);
        expect(t.code, t.stderr.toString()).toBe(0);
      }
      const boot = parseBootConfig(await readFile(path.join(x, 'bootfs/boot.json'), 'utf8'), 'boot.json');
      expect(boot).toMatchObject({ index: '/bootfs/image.bootfs', stores: ['http://store:8080/'], cachePath: '/var/lib/bootfs/cache' });
      const info = await bootfs(['info', path.join(x, 'bootfs/image.bootfs'), '--json']);
      expect(info.code, info.stderr).toBe(0);
      // The stub and what it imports at run time are all there.
      const stub = await run(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(path.join(x, 'bootfs/runtime/dist/bootstub/main.js'))})`], { env: { ...process.env, BOOTFS_STORE: '' } });
      expect(stub.stderr.toString()).toMatch(/^bootfs: cannot read the boot config \/bootfs\/boot\.json/);
      for (const mod of ['zstd-napi', 'undici', 'ssh2']) {
        const r = await run(process.execPath, ['-e', `require(${JSON.stringify(path.join(x, 'bootfs/runtime/node_modules', mod))})`]);
        expect(r.code, `${mod}: ${r.stderr.toString()}`).toBe(0);
      }
    } finally {
      await img.close();
    }
  });

  it('defaults --base to the official Node image; refuses DST without --store, and a base that does not exist, before converting', async () => {
    // The default base is on Docker Hub, which these machines cannot reach: the error names it.
    const withoutBase = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'BOOTFS_BASE'));
    const noBase = await bootfs(['convert', `dir:${path.join(dir, 'a')}`, `oci:${path.join(dir, 'nb')}:1`, '--store', path.join(dir, 'store')], { env: withoutBase });
    expect(noBase.code).not.toBe(0);
    expect(noBase.stderr).toMatch(/docker\.io/);
    expect((await bootfs(['convert', '--help'])).stdout).toContain('docker://docker.io/library/node:20-bookworm-slim');
    const noStore = await bootfs(['convert', `dir:${path.join(dir, 'a')}`, `oci:${path.join(dir, 'ns')}:1`, '--base', `oci:${base}:1`], { env: { ...process.env, BOOTFS_STORE: '' } });
    expect(noStore.code).toBe(1);
    expect(noStore.stderr).toContain('--store');
    const missing = await bootfs(['convert', `dir:${path.join(dir, 'a')}`, `oci:${path.join(dir, 'nm')}:1`, '--store', path.join(dir, 'store'), '--base', `oci:${path.join(dir, 'nope')}:1`]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope');
  });
});
