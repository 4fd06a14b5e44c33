/**
 * docker:// end to end with real peers (issue 7): Debian's docker-registry, images built by umoci
 * and pushed by skopeo. bootfs reads them with openImage, converts from docker:// and pushes the
 * boot image to docker:// (base layers mounted across repositories); skopeo inspects and copies
 * the result, our reader gets the same config and layers back, and a second push writes nothing.
 * Bad input: wrong credentials, a missing tag, a blob corrupted in the registry's storage, 5xx in
 * the middle of an upload (a fault-injecting proxy) — clear errors, retries where safe, and never
 * a tag pointing at a half-pushed image.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/errors.js';
import { ImageFormatError, openImage, parseImageRef, parsePlatform, type OpenedImage } from '../../src/oci/index.js';
import { layerFromImage, writeImage, type WriteLayer } from '../../src/oci/write.js';
import { RegistryRepo } from '../../src/registry/client.js';
import { RegistryAuthError } from '../../src/registry/errors.js';
import type { RegistryOptions } from '../../src/registry/options.js';
import { bootfs, snapshot } from '../cli/cli-helpers.js';
import { cleanup, describeWithTools, run, tmpDir } from '../helpers/tools.js';
import { Layout, layerTar, tagged, withPlatform } from '../oci/fixtures.js';
import { startFaultProxy, type FaultProxy } from '../registry/fault-proxy.js';
import { startRegistry, type RegistryServer } from '../registry/registry-server.js';
import { rejection } from '../helpers/assert.js';

afterAll(cleanup);

const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
/** No host auth files, fast retries. */
const OPTS: RegistryOptions = { authFiles: [], backoffMs: 5, maxBackoffMs: 20 };
/** The CLI without the host's auth files. */
const ENV = { ...process.env, REGISTRY_AUTH_FILE: '/nonexistent/auth.json', DOCKER_CONFIG: '/nonexistent', BOOTFS_REGISTRY_CREDS: '' };

async function sh(script: string, env: Record<string, string> = {}): Promise<string> {
  const r = await run('bash', ['-euo', 'pipefail', '-c', script], { env: { ...process.env, ...env }, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`script failed (${r.code}): ${r.stderr.toString()}\n${script}`);
  return r.stdout.toString();
}

async function skopeo(...args: string[]): Promise<string> {
  const r = await run('skopeo', args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')} failed (${r.code}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

async function drain(it: AsyncIterable<Uint8Array>): Promise<string> {
  const h = createHash('sha256');
  for await (const b of it) h.update(b);
  return `sha256:${h.digest('hex')}`;
}

/** Requests in the registry's access log since `mark` (a previous length). */
async function since(reg: RegistryServer, mark: number): Promise<string[]> {
  return (await reg.requests()).slice(mark);
}

const writes = (reqs: string[]): string[] => reqs.filter((l) => /^(POST|PUT|PATCH|DELETE) /.test(l));

describeWithTools(['docker-registry', 'skopeo', 'umoci', 'tar', 'htpasswd', 'openssl'], 'docker:// with docker-registry, skopeo and umoci', () => {
  let dir: string;
  let reg: RegistryServer;
  let host: string;
  let store: string;
  /** skopeo flags for the plain-http registry. */
  const noTls = '--tls-verify=false';

  beforeAll(async () => {
    dir = await tmpDir('bootfs-registry-peers-');
    reg = await startRegistry();
    host = reg.host;
    store = path.join(dir, 'store');
    // An app image (two layers: files, then a whiteout and a replacement) and a base image, by umoci.
    await sh(
      `
      cd "$DIR"
      umoci init --layout oci
      umoci new --image oci:empty
      umoci unpack --image oci:empty app >/dev/null
      mkdir -p app/rootfs/etc app/rootfs/usr/bin app/rootfs/srv/data
      printf 'app v1\\n' > app/rootfs/etc/app.conf
      printf 'gone\\n' > app/rootfs/etc/motd
      printf '#!/bin/sh\\necho app\\n' > app/rootfs/usr/bin/app && chmod 755 app/rootfs/usr/bin/app
      head -c 3000000 /dev/urandom > app/rootfs/srv/data/blob.bin
      umoci repack --image oci:app1 app >/dev/null
      umoci unpack --image oci:app1 app2 >/dev/null
      rm app2/rootfs/etc/motd && printf 'app v2\\n' > app2/rootfs/etc/app.conf
      umoci repack --image oci:app2 app2 >/dev/null
      umoci config --image oci:app2 --tag app --config.entrypoint /usr/bin/app --config.cmd serve --config.env APP=demo --config.workingdir /srv >/dev/null
      umoci unpack --image oci:empty base >/dev/null
      mkdir -p base/rootfs/usr/local/bin base/rootfs/etc
      printf 'base\\n' > base/rootfs/etc/base-release
      head -c 500000 /dev/urandom > base/rootfs/usr/local/bin/node
      umoci repack --image oci:base base >/dev/null
      skopeo copy --quiet --dest-tls-verify=false oci:oci:app docker://$HOST/src/app:v1
      skopeo copy --quiet --dest-tls-verify=false oci:oci:base docker://$HOST/base/node:20
      `,
      { DIR: dir, HOST: host },
    );
  }, 300_000);
  afterAll(async () => {
    await reg?.stop();
  });

  it('openImage reads docker:// as skopeo wrote it: same manifest, config and layer bytes as the layout', async () => {
    const remote = await openImage(parseImageRef(`docker://${host}/src/app:v1`), { registry: OPTS });
    const local = await openImage(parseImageRef(`oci:${dir}/oci:app`));
    try {
      expect(remote.reference).toBe(`docker://${host}/src/app:v1`);
      expect(remote.manifestDigest).toBe(local.manifestDigest);
      expect(remote.configDigest).toBe(local.configDigest);
      expect(remote.config).toEqual({ ...local.config, source: { ...local.config.source, reference: remote.reference } });
      expect(remote.config).toMatchObject({ entrypoint: ['/usr/bin/app'], cmd: ['serve'], workingDir: '/srv' });
      expect(remote.layers).toEqual(local.layers);
      expect(remote.layers.length).toBe(2);
      for (let i = 0; i < remote.layers.length; i++) {
        expect(await drain(remote.openStoredLayer(i))).toBe(remote.layers[i]!.digest);
        expect(await drain(remote.openLayer(i))).toBe(remote.layers[i]!.diffId);
      }
      // By digest too.
      const byDigest = await openImage(parseImageRef(`docker://${host}/src/app@${remote.manifestDigest}`), { registry: OPTS });
      expect(byDigest.configDigest).toBe(remote.configDigest);
      await byDigest.close();
    } finally {
      await Promise.all([remote.close(), local.close()]);
    }
  });

  it('bootfs convert docker:// → docker:// end to end; skopeo accepts it; a second push writes nothing', async () => {
    const mark = (await reg.requests()).length;
    const idx = path.join(dir, 'app.bootfs');
    const c = await bootfs(['convert', `docker://${host}/src/app:v1`, `docker://${host}/boot/app:v1`, '--store', store, '--base', `docker://${host}/base/node:20`, '--tls-verify=false', '-o', idx, '--json'], { env: ENV });
    expect(c.code, c.stderr).toBe(0);
    const summary = JSON.parse(c.stdout);
    expect(summary.layers).toBe(2);
    expect(summary.bootImage.dest).toBe(`docker://${host}/boot/app:v1`);
    const first = await since(reg, mark);
    // The base layer is mounted from base/node, not uploaded; the manifest goes last.
    const baseImg = await openImage(parseImageRef(`docker://${host}/base/node:20`), { registry: OPTS });
    const baseLayer = baseImg.layers[0]!.digest;
    await baseImg.close();
    expect(first).toContain(`POST /v2/boot/app/blobs/uploads/?mount=${encodeURIComponent(baseLayer)}&from=base%2Fnode 201`);
    const pushes = writes(first);
    expect(pushes.at(-1)).toMatch(/^PUT \/v2\/boot\/app\/manifests\/v1 201$/);
    expect(pushes.filter((l) => l.startsWith('PUT /v2/boot/app/manifests/')).length).toBe(1);

    // skopeo's view.
    const inspect = JSON.parse(await skopeo('inspect', noTls, `docker://${host}/boot/app:v1`));
    expect(inspect.Digest).toBe(summary.bootImage.manifestDigest);
    expect(inspect.Layers.length).toBe(3); // base + runtime + index
    expect(inspect.Layers[0]).toBe(baseLayer);
    expect(inspect.Labels['org.bootfs.source']).toBe(`docker://${host}/src/app:v1`);
    const copied = path.join(dir, 'copied');
    await skopeo('copy', '--quiet', '--preserve-digests', '--src-tls-verify=false', `docker://${host}/boot/app:v1`, `oci:${copied}:boot`);

    // Our reader gets the same image back as skopeo copied it.
    const back = await openImage(parseImageRef(`docker://${host}/boot/app:v1`), { registry: OPTS });
    const viaSkopeo = await openImage(parseImageRef(`oci:${copied}:boot`));
    expect(back.manifestDigest).toBe(summary.bootImage.manifestDigest);
    expect(back.configDigest).toBe(viaSkopeo.configDigest);
    expect(back.rawConfig).toEqual(viaSkopeo.rawConfig);
    expect(back.layers).toEqual(viaSkopeo.layers);
    for (let i = 0; i < back.layers.length; i++) expect(await drain(back.openLayer(i))).toBe(back.layers[i]!.diffId);
    await Promise.all([back.close(), viaSkopeo.close()]);

    // The same conversion to an OCI layout gives the same manifest: the transports write the same image.
    const o = await bootfs(['convert', `docker://${host}/src/app:v1`, `oci:${dir}/boot-layout:v1`, '--store', store, '--base', `docker://${host}/base/node:20`, '--tls-verify=false', '--json'], { env: ENV });
    expect(o.code, o.stderr).toBe(0);
    expect(JSON.parse(o.stdout).bootImage.manifestDigest).toBe(summary.bootImage.manifestDigest);

    // Again: every blob is there and the tag already points at the manifest — no writes at all.
    const mark2 = (await reg.requests()).length;
    const again = await bootfs(['convert', `docker://${host}/src/app:v1`, `docker://${host}/boot/app:v1`, '--store', store, '--base', `docker://${host}/base/node:20`, '--tls-verify=false', '--json'], { env: ENV });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).newChunks).toBe(0);
    const second = await since(reg, mark2);
    expect(writes(second)).toEqual([]);
    expect(second.filter((l) => l.startsWith('HEAD /v2/boot/app/blobs/')).length).toBe(4); // 3 layers + config
  });

  it('a missing tag is exit 2 naming the registry, repository and tag; nothing is written', async () => {
    const fresh = path.join(dir, 'missing-store');
    const c = await bootfs(['convert', `docker://${host}/src/app:nope`, '--store', fresh, '-o', path.join(dir, 'missing.bootfs'), '--tls-verify=false'], { env: ENV });
    expect(c.code).toBe(2);
    expect(c.stderr).toContain(`manifest tag nope not found in ${host}/src/app`);
    const d = await bootfs(['convert', `docker://${host}/no/such:v1`, '--store', fresh, '-o', path.join(dir, 'missing.bootfs'), '--tls-verify=false'], { env: ENV });
    expect(d.code).toBe(2);
    expect((await snapshot(fresh).catch(() => new Map())).size).toBe(0);
  });

  it('a blob corrupted in the registry storage: exit 3, digest mismatch naming the layer; no index, no chunks', async () => {
    // A copy of the app in its own repository, whose big layer is then damaged on disk (the blob
    // store is shared, so use a layer only this image has).
    const layout = await Layout.create(path.join(dir, 'corrupt-layout'));
    const img = await layout.image({ layers: [{ tar: layerTar({ 'etc/x': 'x'.repeat(100_000) }), compression: 'gzip' }] });
    await layout.writeIndexJson([tagged(img.manifest, 'c')]);
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', `oci:${layout.dir}:c`, `docker://${host}/src/corrupt:c`);
    const file = reg.blobFile(img.layers[0]!.digest);
    const bytes = await readFile(file);
    bytes[bytes.length >> 1]! ^= 0x20;
    await writeFile(file, bytes);
    const fresh = path.join(dir, 'corrupt-store');
    const idx = path.join(dir, 'corrupt.bootfs');
    const c = await bootfs(['convert', `docker://${host}/src/corrupt:c`, '--store', fresh, '-o', idx, '--tls-verify=false'], { env: ENV });
    expect(c.code).toBe(3);
    expect(c.stderr).toMatch(new RegExp(`layer ${img.layers[0]!.digest} of docker://${host}/src/corrupt:c: digest mismatch \\(got sha256:[0-9a-f]{64}\\)`));
    await expect(readFile(idx)).rejects.toThrow();
    expect((await snapshot(fresh).catch(() => new Map())).size).toBe(0);
  });

  it('picks the platform from an index of Docker manifests pushed with skopeo --all', async () => {
    const layout = await Layout.create(path.join(dir, 'multi-layout'));
    const amd = await layout.image({ layers: [{ tar: layerTar({ arch: 'amd64' }), compression: 'gzip' }], architecture: 'amd64', docker: true });
    const arm = await layout.image({ layers: [{ tar: layerTar({ arch: 'arm64' }), compression: 'gzip' }], architecture: 'arm64', docker: true });
    const list = await layout.index([withPlatform(amd.manifest, 'linux', 'amd64'), withPlatform(arm.manifest, 'linux', 'arm64', 'v8')]);
    await layout.writeIndexJson([tagged(list, 'multi')]);
    await skopeo('copy', '--quiet', '--all', '--dest-tls-verify=false', `oci:${layout.dir}:multi`, `docker://${host}/src/multi:1`);
    for (const [platform, want] of [['linux/amd64', amd], ['linux/arm64', arm]] as const) {
      const img = await openImage(parseImageRef(`docker://${host}/src/multi:1`), { platform: parsePlatform(platform), registry: OPTS });
      expect(img.manifestDigest).toBe(want.manifest.digest);
      expect(img.layers.map((l) => l.digest)).toEqual(want.layers.map((l) => l.digest));
      await img.close();
    }
    const err = await rejection(openImage(parseImageRef(`docker://${host}/src/multi:1`), { platform: parsePlatform('linux/s390x'), registry: OPTS }));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toMatch(/has no image for platform linux\/s390x; available platforms: linux\/amd64, linux\/arm64\/v8/);
  });

  it('through the CLI, a 5xx on a blob upload and a broken download are retried', async () => {
    const proxy = await startFaultProxy(host);
    try {
      const put = proxy.fail({ method: 'PUT', path: /^\/v2\/boot\/flaky\/blobs\/uploads\//, mode: 'before', status: 500 });
      const cut = proxy.fail({ method: 'GET', path: /^\/v2\/src\/app\/blobs\/sha256:/, mode: 'cut', afterBytes: 200_000 });
      const c = await bootfs(['convert', `docker://${proxy.host}/src/app:v1`, `docker://${proxy.host}/boot/flaky:v1`, '--store', store, '--base', `docker://${proxy.host}/base/node:20`, '--tls-verify=false', '--json'], { env: ENV });
      expect(c.code, c.stderr).toBe(0);
      expect([put.count, cut.count]).toEqual([1, 1]);
      expect(proxy.log.some((l) => /^GET \/v2\/src\/app\/blobs\//.test(l) && !l.endsWith('-> cut'))).toBe(true);
      const inspect = JSON.parse(await skopeo('inspect', noTls, `docker://${host}/boot/flaky:v1`));
      expect(inspect.Digest).toBe(JSON.parse(c.stdout).bootImage.manifestDigest);
    } finally {
      await proxy.stop();
    }
  });

  describe('credentials and TLS through the CLI', () => {
    let secure: RegistryServer;
    beforeAll(async () => {
      secure = await startRegistry({ tls: true, token: { users: { bob: 'builder' } } });
      await skopeo('copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', 'bob:builder', `oci:${dir}/oci:app`, `docker://${secure.host}/src/app:v1`);
      await skopeo('copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', 'bob:builder', `oci:${dir}/oci:base`, `docker://${secure.host}/base/node:20`);
    }, 120_000);
    afterAll(() => secure?.stop());

    it('no, wrong and right credentials; an untrusted certificate; --ca-file', async () => {
      const src = `docker://${secure.host}/src/app:v1`;
      const args = (...more: string[]) => ['convert', src, '--store', path.join(dir, 'secure-store'), '-o', path.join(dir, 'secure.bootfs'), ...more];
      const none = await bootfs(args('--ca-file', secure.certFile!), { env: ENV });
      expect(none.code).toBe(1);
      expect(none.stderr).toContain(`authentication failed for ${secure.host}/src/app: it needs credentials`);
      const wrong = await bootfs(args('--ca-file', secure.certFile!, '--creds', 'bob:guess'), { env: ENV });
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(new RegExp(`authentication failed for ${secure.host}/src/app as bob \\(credentials from --creds\\): the token service .* answered HTTP 401; check the user name and password`));
      const untrusted = await bootfs(args('--creds', 'bob:builder'), { env: ENV });
      expect(untrusted.code).toBe(1);
      expect(untrusted.stderr).toContain(`the TLS certificate of ${secure.host} is not trusted`);
      expect(untrusted.stderr).toContain('--ca-file');

      // Right: from an auth file (skopeo login's format) with the CA; from the environment without verification.
      const authFile = path.join(dir, 'auth.json');
      await writeFile(authFile, JSON.stringify({ auths: { [secure.host]: { auth: Buffer.from('bob:builder').toString('base64') } } }));
      const ok = await bootfs(args('--ca-file', secure.certFile!), { env: { ...ENV, REGISTRY_AUTH_FILE: authFile } });
      expect(ok.code, ok.stderr).toBe(0);
      const push = await bootfs(
        ['convert', src, `docker://${secure.host}/boot/app:v1`, '--store', path.join(dir, 'secure-store'), '--base', `docker://${secure.host}/base/node:20`, '--tls-verify=false', '--json'],
        { env: { ...ENV, BOOTFS_REGISTRY_CREDS: 'bob:builder' } },
      );
      expect(push.code, push.stderr).toBe(0);
      const inspect = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--creds', 'bob:builder', `docker://${secure.host}/boot/app:v1`));
      expect(inspect.Digest).toBe(JSON.parse(push.stdout).bootImage.manifestDigest);
    });
  });

  describe('failures while pushing', () => {
    let proxy: FaultProxy;
    let base: OpenedImage;
    let big: WriteLayer;
    beforeAll(async () => {
      proxy = await startFaultProxy(host);
      base = await openImage(parseImageRef(`docker://${host}/base/node:20`), { registry: OPTS });
      // A layer of 600 KiB of incompressible data: several PATCH chunks at 128 KiB.
      const { randomBytes } = await import('node:crypto');
      const tar = layerTar({ 'data/random': randomBytes(600 * 1024).toString('latin1') });
      const gz = gzipSync(tar);
      big = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(gz), size: gz.length, diffId: sha(tar), open: async function* () {
        for (let i = 0; i < gz.length; i += 50_000) yield gz.subarray(i, i + 50_000);
      } };
    });
    afterAll(async () => {
      await base?.close();
      await proxy?.stop();
    });
    const spec = async (extra: WriteLayer[] = [big]) => ({ layers: [await layerFromImage(base, 0), ...extra], config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['x'] } } });
    const chunked: RegistryOptions = { ...OPTS, monolithicMaxBytes: 64 * 1024, chunkBytes: 128 * 1024 };

    it('a 5xx in the middle of an upload is retried (resume or restart) and the push completes', async () => {
      const a = proxy.fail({ method: 'PATCH', path: /^\/v2\/push\/retry\//, mode: 'before', status: 503 });
      const b = proxy.fail({ method: 'PATCH', path: /^\/v2\/push\/retry\//, mode: 'after', status: 500 });
      const w = await writeImage(`docker://${proxy.host}/push/retry:v1`, await spec(), { registry: chunked });
      expect(a.count + b.count).toBe(2);
      expect(w.push).toEqual({ uploaded: 3, mounted: 0, existing: 0, manifestPushed: true }); // base layer, big layer, config: through the proxy the registry has another name, so no mount
      const img = await openImage(parseImageRef(`docker://${host}/push/retry:v1`), { registry: OPTS });
      expect(img.manifestDigest).toBe(w.manifestDigest);
      expect(await drain(img.openLayer(1))).toBe(big.diffId);
      await img.close();
    });

    it('a push that keeps failing, or a layer that does not match its digest, leaves no tag', async () => {
      proxy.fail({ method: 'PATCH', path: /^\/v2\/push\/broken\//, mode: 'before', status: 500, times: 100 });
      const e1 = await rejection(writeImage(`docker://${proxy.host}/push/broken:v1`, await spec(), { registry: chunked }));
      expect(e1.message).toMatch(new RegExp(`^blob sha256:[0-9a-f]{64} to ${proxy.host}/push/broken: upload failed after 4 tries in a row without progress: PATCH answered HTTP 500 \\(UNKNOWN: injected fault\\)$`));
      expect(proxy.log.some((l) => l.startsWith('PUT /v2/push/broken/manifests/'))).toBe(false);

      const bad: WriteLayer = { ...big, diffId: sha(Buffer.from('something else')) };
      const e2 = await rejection(writeImage(`docker://${host}/push/bad:v1`, await spec([bad]), { registry: chunked }));
      expect(e2).toBeInstanceOf(ImageFormatError);
      expect(e2.message).toMatch(/layer 1 \(sha256:[0-9a-f]{64}\) for docker:\/\/.*\/push\/bad:v1: uncompressed content does not match diff_id/);

      // Every blob arrives but the manifest PUT keeps failing: retried, then an error, no tag.
      proxy.fail({ method: 'PUT', path: /^\/v2\/push\/nomanifest\/manifests\//, mode: 'before', status: 502, times: 100 });
      const e3 = await rejection(writeImage(`docker://${proxy.host}/push/nomanifest:v1`, await spec(), { registry: chunked }));
      expect(e3.message).toBe(`manifest v1 of ${proxy.host}/push/nomanifest: PUT answered HTTP 502 (UNKNOWN: injected fault) after 4 tries`);

      for (const name of ['push/broken', 'push/bad', 'push/nomanifest']) {
        const r = new RegistryRepo(`${host}/${name}`, OPTS);
        expect(await r.getManifest('v1')).toBeUndefined();
        await r.close();
      }
      // The bad layer was never completed in the registry (its last bytes are held back until verified).
      const r = new RegistryRepo(`${host}/push/bad`, OPTS);
      expect(await r.headBlob(bad.digest)).toBeUndefined();
      await r.close();
    });
  });
});
