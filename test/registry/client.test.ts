// RegistryRepo against a real docker-registry (distribution 2.8): blobs, uploads (monolithic,
// chunked, resumed), mounts, manifests, verification, retries through a fault-injecting proxy,
// Basic (htpasswd) and Bearer (token server) auth, and TLS with a self-signed certificate.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BootfsError, ExitCode, IoError, NotFoundError } from '../../src/errors.js';
import { RegistryRepo } from '../../src/registry/client.js';
import { RegistryAuthError, RegistryDigestError } from '../../src/registry/errors.js';
import type { RegistryOptions } from '../../src/registry/options.js';
import { cleanup, describeWithTools, tmpDir } from '../helpers/tools.js';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { startRegistry, type RegistryServer } from './registry-server.js';
import { rejection } from '../helpers/assert.js';

afterAll(cleanup);

const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
/** Fast retries, no host auth files, small chunks so that chunked uploads happen with small blobs. */
const BASE: RegistryOptions = { authFiles: [], backoffMs: 5, maxBackoffMs: 20, monolithicMaxBytes: 64 * 1024, chunkBytes: 100 * 1024 };

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

/** A source yielding `bytes` in pieces of `piece` bytes. */
function pieces(bytes: Buffer, piece = 16 * 1024) {
  return {
    size: bytes.length,
    open: async function* () {
      for (let i = 0; i < bytes.length; i += piece) yield bytes.subarray(i, i + piece);
    },
  };
}

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
function manifestFor(config: Buffer, layers: Buffer[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(l), size: l.length })),
    }),
  );
}

describeWithTools(['docker-registry', 'htpasswd', 'openssl'], 'RegistryRepo against docker-registry', () => {
  describe('no auth', () => {
    let reg: RegistryServer;
    let proxy: FaultProxy;
    beforeAll(async () => {
      reg = await startRegistry();
      proxy = await startFaultProxy(reg.host);
    });
    afterAll(async () => {
      await proxy?.stop();
      await reg?.stop();
    });
    const repo = (name: string, o: RegistryOptions = {}, host = reg.host) => new RegistryRepo(`${host}/${name}`, { ...BASE, ...o });

    it('uploads small blobs in one PUT and large ones in chunks, reads them back verified', async () => {
      const r = repo('t/blobs');
      const small = randomBytes(1000);
      const large = randomBytes(350 * 1024 + 7);
      expect(await r.putBlob(sha(small), small)).toBe('uploaded');
      expect(await r.putBlob(sha(small), small)).toBe('exists');
      expect(await r.putBlob(sha(large), pieces(large))).toBe('uploaded');
      expect(await r.headBlob(sha(large))).toBe(large.length);
      expect((await r.getBlob(sha(small))).equals(small)).toBe(true);
      expect((await collect(r.openBlob(sha(large), { size: large.length }))).equals(large)).toBe(true);
      expect((await r.getBlobRange(sha(large), 300_000, 100)).equals(large.subarray(300_000, 300_100))).toBe(true);
      expect(await r.headBlob(sha(randomBytes(8)))).toBeUndefined();
      const nf = await rejection(r.getBlob(sha(randomBytes(8))));
      expect(nf).toBeInstanceOf(NotFoundError);
      expect(nf.message).toMatch(new RegExp(`blob sha256:[0-9a-f]{64} of ${reg.host}/t/blobs not found`));
      await r.close();
      const reqs = await reg.requests();
      expect(reqs.filter((l) => l.startsWith('PATCH /v2/t/blobs/')).length).toBe(4); // 350 KiB in 100 KiB chunks
      expect(reqs.filter((l) => /^PUT \/v2\/t\/blobs\/blobs\/uploads\/.*digest=/.test(l)).length).toBe(2);
    });

    it('mounts a blob from another repository, and uploads when the registry answers 202', async () => {
      const a = repo('t/mount-a');
      const b = repo('t/mount-b');
      const blob = randomBytes(5000);
      await a.putBlob(sha(blob), blob);
      expect(await b.putBlob(sha(blob), blob, { mountFrom: 't/mount-a' })).toBe('mounted');
      const other = randomBytes(5000);
      expect(await b.putBlob(sha(other), other, { mountFrom: 't/nowhere' })).toBe('uploaded');
      expect((await b.getBlob(sha(other))).equals(other)).toBe(true);
      await Promise.all([a.close(), b.close()]);
    });

    it('puts and gets manifests by tag and digest', async () => {
      const r = repo('t/manifests');
      const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
      const layer = randomBytes(100);
      await r.putBlob(sha(config), config);
      await r.putBlob(sha(layer), layer);
      const m = manifestFor(config, [layer]);
      expect(await r.putManifest('v1', MANIFEST_TYPE, m)).toBe(sha(m));
      const got = await r.getManifest('v1');
      expect(got).toEqual({ mediaType: MANIFEST_TYPE, digest: sha(m), body: m });
      expect((await r.getManifest(sha(m)))?.body.equals(m)).toBe(true);
      expect(await r.headManifest('v1')).toBe(sha(m));
      expect(await r.getManifest('v2')).toBeUndefined();
      expect(await repo('t/nonexistent').getManifest('latest')).toBeUndefined();
      // A manifest naming a blob the registry lacks is refused, not half-stored.
      const bad = manifestFor(config, [randomBytes(10)]);
      const err = await rejection(r.putManifest('bad', MANIFEST_TYPE, bad));
      expect(err).toBeInstanceOf(IoError);
      expect(err.message).toMatch(/manifest bad of .*t\/manifests: PUT answered HTTP 400 \(MANIFEST_BLOB_UNKNOWN/);
      expect(await r.getManifest('bad')).toBeUndefined();
      await r.close();
    });

    it('a blob corrupted in the registry fails with a digest mismatch naming it (exit 3)', async () => {
      const r = repo('t/corrupt');
      const blob = randomBytes(200 * 1024);
      await r.putBlob(sha(blob), blob);
      const file = reg.blobFile(sha(blob));
      const bytes = await readFile(file);
      bytes[1000]! ^= 0xff;
      await writeFile(file, bytes);
      for (const read of [() => r.getBlob(sha(blob)), () => collect(r.openBlob(sha(blob)))]) {
        const err = await rejection(read());
        expect(err).toBeInstanceOf(RegistryDigestError);
        expect((err as BootfsError).exitCode).toBe(ExitCode.integrity);
        expect(err.message).toBe(`blob ${sha(blob)} of ${reg.host}/t/corrupt: digest mismatch (got ${sha(bytes)})`);
      }
      // Unverified range reads still work (a part of a blob has no digest).
      expect((await r.getBlobRange(sha(blob), 0, 10)).equals(blob.subarray(0, 10))).toBe(true);
      await r.close();
    });

    it('a source that does not match its size or digest never becomes a blob', async () => {
      const r = repo('t/bad-source');
      const blob = randomBytes(300 * 1024);
      const short = { size: blob.length + 10, open: pieces(blob).open };
      expect((await rejection(r.putBlob(sha(blob), short))).message).toMatch(/the source ended after 307200 of 307210 bytes/);
      const long = { size: blob.length - 10, open: pieces(blob).open };
      expect((await rejection(r.putBlob(sha(blob), long))).message).toMatch(/longer than its 307190 bytes/);
      const wrong = randomBytes(1000);
      const err = await rejection(r.putBlob(sha(blob), pieces(wrong)));
      expect(err).toBeInstanceOf(RegistryDigestError);
      expect(err.message).toMatch(/the registry refused the uploaded bytes as not matching/);
      expect(await r.headBlob(sha(blob))).toBeUndefined();
      await r.close();
    });

    it('resumes a chunked upload at the registry offset after a 5xx that was not forwarded', async () => {
      const hit = proxy.fail({ method: 'PATCH', path: /\/t\/resume\//, mode: 'before', status: 503, times: 1 });
      proxy.log.length = 0;
      const r = repo('t/resume', {}, proxy.host);
      const blob = randomBytes(450 * 1024);
      // Skip the first PATCH (let it through), fail the second.
      hit.count = 0;
      expect(await r.putBlob(sha(blob), pieces(blob))).toBe('uploaded');
      expect(hit.count).toBe(1);
      const patches = proxy.log.filter((l) => l.startsWith('PATCH'));
      expect(patches.length).toBe(6); // 5 chunks + the one that failed
      expect(proxy.log.filter((l) => l.startsWith('POST')).length).toBe(1); // resumed, not restarted
      expect(proxy.log.some((l) => /^GET \/v2\/t\/resume\/blobs\/uploads\//.test(l))).toBe(true); // status query
      expect((await collect(r.openBlob(sha(blob)))).equals(blob)).toBe(true);
      await r.close();
    });

    it('restarts an upload the registry lost after a forwarded PATCH failed, and finds a blob completed behind a failed PUT', async () => {
      proxy.fail({ method: 'PATCH', path: /\/t\/restart\//, mode: 'after', status: 500 });
      proxy.log.length = 0;
      const r = repo('t/restart', {}, proxy.host);
      const blob = randomBytes(250 * 1024);
      expect(await r.putBlob(sha(blob), pieces(blob))).toBe('uploaded');
      expect(proxy.log.filter((l) => l.startsWith('POST')).length).toBe(2); // a new session
      expect((await r.getBlob(sha(blob))).equals(blob)).toBe(true);

      proxy.fail({ method: 'PUT', path: /\/t\/restart\/blobs\/uploads\/.*digest=/, mode: 'after', status: 502 });
      proxy.log.length = 0;
      const small = randomBytes(3000);
      expect(await r.putBlob(sha(small), small)).toBe('uploaded');
      // PUT failed after the registry stored it; the status query says the session is gone and a HEAD finds the blob.
      expect(proxy.log.filter((l) => l.startsWith('PUT')).length).toBe(1);
      expect(proxy.log.filter((l) => l.startsWith('HEAD')).length).toBe(2);
      await r.close();
    });

    it('retries 5xx and broken connections for reads, resuming a broken download with Range', async () => {
      const r = repo('t/reads', {}, proxy.host);
      const blob = randomBytes(500 * 1024);
      await r.putBlob(sha(blob), blob);
      proxy.fail({ method: 'HEAD', path: /\/t\/reads\//, mode: 'before', status: 503, times: 2 });
      expect(await r.headBlob(sha(blob))).toBe(blob.length);
      proxy.fail({ method: 'GET', path: /\/t\/reads\/blobs\/sha256/, mode: 'cut', afterBytes: 100_000 });
      proxy.log.length = 0;
      expect((await collect(r.openBlob(sha(blob)))).equals(blob)).toBe(true);
      expect(proxy.log.filter((l) => l.startsWith('GET')).length).toBe(2);
      // 4xx is never retried.
      proxy.log.length = 0;
      expect(await r.getManifest('nope')).toBeUndefined();
      expect(proxy.log).toEqual([`GET /v2/t/reads/manifests/nope`]);
      // A registry that keeps failing: an IoError after `tries` tries, naming the object.
      proxy.fail({ method: 'GET', path: /\/t\/reads\/manifests\/down/, mode: 'before', status: 500, times: 10 });
      const err = await rejection(r.getManifest('down'));
      expect(err).toBeInstanceOf(IoError);
      expect(err.message).toBe(`manifest down of ${proxy.host}/t/reads: GET answered HTTP 500 (UNKNOWN: injected fault) after 4 tries`);
      await r.close();
    });

    it('cannot reach a closed port: a clear error after retries', async () => {
      const r = new RegistryRepo('127.0.0.1:1/x', { ...BASE, tries: 2 });
      expect((await rejection(r.getManifest('latest'))).message).toMatch(/^cannot reach registry 127\.0\.0\.1:1: .*ECONNREFUSED/);
      await r.close();
    });
  });

  describe('htpasswd (Basic) auth', () => {
    let reg: RegistryServer;
    let dir: string;
    beforeAll(async () => {
      reg = await startRegistry({ htpasswd: { alice: 'wonderland' } });
      dir = await tmpDir('bootfs-registry-auth-');
    });
    afterAll(() => reg?.stop());

    it('works with --creds and with an auth file; wrong or missing credentials are clear errors', async () => {
      const blob = randomBytes(100);
      const good = new RegistryRepo(`${reg.host}/team/app`, { ...BASE, creds: 'alice:wonderland' });
      expect(await good.putBlob(sha(blob), blob)).toBe('uploaded');
      await good.close();

      const file = `${dir}/auth.json`;
      await writeFile(file, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:wonderland').toString('base64') } } }));
      const fromFile = new RegistryRepo(`${reg.host}/team/app`, { ...BASE, authFiles: [file] });
      expect((await fromFile.getBlob(sha(blob))).equals(blob)).toBe(true);
      await fromFile.close();

      const wrong = new RegistryRepo(`${reg.host}/team/app`, { ...BASE, creds: 'alice:nope' });
      const e1 = await rejection(wrong.getBlob(sha(blob)));
      expect(e1).toBeInstanceOf(RegistryAuthError);
      expect(e1.message).toMatch(new RegExp(`^authentication failed for ${reg.host}/team/app as alice \\(credentials from --creds\\): blob sha256:.* GET answered HTTP 401; check the user name and password`));
      await wrong.close();

      const anonymous = new RegistryRepo(`${reg.host}/team/app`, BASE);
      const e2 = await rejection(anonymous.headBlob(sha(blob)));
      expect(e2).toBeInstanceOf(RegistryAuthError);
      expect(e2.message).toMatch(/needs credentials .* give --creds USER:PASSWORD or log in/);
      await anonymous.close();
    });
  });

  describe('token (Bearer) auth', () => {
    let reg: RegistryServer;
    beforeAll(async () => {
      reg = await startRegistry({ token: { users: { bob: 'builder', carol: 'admin' }, anonymousPull: true, denied: { bob: ['secret/base'] } } });
    });
    afterAll(() => reg?.stop());

    it('anonymous tokens pull, credentials push and mount; wrong passwords and missing rights are clear errors', async () => {
      const blob = randomBytes(150 * 1024);
      const bob = new RegistryRepo(`${reg.host}/team/app`, { ...BASE, creds: 'bob:builder' });
      expect(await bob.putBlob(sha(blob), pieces(blob))).toBe('uploaded');
      const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
      await bob.putBlob(sha(config), config);
      const m = manifestFor(config, [blob]);
      await bob.putManifest('v1', MANIFEST_TYPE, m);
      const bob2 = new RegistryRepo(`${reg.host}/team/copy`, { ...BASE, creds: 'bob:builder' });
      expect(await bob2.putBlob(sha(blob), pieces(blob), { mountFrom: 'team/app' })).toBe('mounted');
      await Promise.all([bob.close(), bob2.close()]);

      const anon = new RegistryRepo(`${reg.host}/team/app`, BASE);
      expect((await anon.getManifest('v1'))?.digest).toBe(sha(m));
      expect((await collect(anon.openBlob(sha(blob)))).equals(blob)).toBe(true);
      const fresh = randomBytes(100);
      const e1 = await rejection(anon.putBlob(sha(fresh), fresh));
      expect(e1).toBeInstanceOf(RegistryAuthError);
      expect(e1.message).toMatch(new RegExp(`^authentication failed for ${reg.host}/team/app: it needs credentials`));
      await anon.close();

      const wrong = new RegistryRepo(`${reg.host}/team/app`, { ...BASE, creds: 'bob:guess' });
      const e2 = await rejection(wrong.getManifest('v1'));
      expect(e2).toBeInstanceOf(RegistryAuthError);
      expect(e2.message).toMatch(new RegExp(`^authentication failed for ${reg.host}/team/app as bob \\(credentials from --creds\\): the token service http://127\\.0\\.0\\.1:\\d+/token answered HTTP 401`));
      await wrong.close();
      // A mount from a repository the user may not read falls back to an upload.
      const carol = new RegistryRepo(`${reg.host}/secret/base`, { ...BASE, creds: 'carol:admin' });
      const secret = randomBytes(2000);
      await carol.putBlob(sha(secret), secret);
      await carol.close();
      const bob3 = new RegistryRepo(`${reg.host}/team/app`, { ...BASE, creds: 'bob:builder' });
      expect(await bob3.putBlob(sha(secret), secret, { mountFrom: 'secret/base' })).toBe('uploaded');
      await bob3.close();
      // The mount was tried (and refused) before the upload.
      expect((await reg.requests()).filter((l) => l.startsWith('POST /v2/team/app/blobs/uploads/?mount=') && l.includes('from=secret%2Fbase')).map((l) => l.slice(-3))).toEqual(['401', '401']);
    });
  });

  describe('TLS', () => {
    let reg: RegistryServer;
    beforeAll(async () => {
      reg = await startRegistry({ tls: true });
    });
    afterAll(() => reg?.stop());

    it('refuses an unknown certificate with a hint; --ca-file or --tls-verify=false make it work', async () => {
      const blob = randomBytes(100);
      const strict = new RegistryRepo(`${reg.host}/x`, BASE);
      const err = await rejection(strict.putBlob(sha(blob), blob));
      expect(err).toBeInstanceOf(IoError);
      expect(err.message).toMatch(new RegExp(`^the TLS certificate of ${reg.host} is not trusted \\(.*\\); give its CA with --ca-file FILE, or --tls-verify=false`));
      await strict.close();
      const withCa = new RegistryRepo(`${reg.host}/x`, { ...BASE, caFile: reg.certFile! });
      expect(await withCa.putBlob(sha(blob), blob)).toBe('uploaded');
      await withCa.close();
      const insecure = new RegistryRepo(`localhost:${reg.host.split(':')[1]}/x`, { ...BASE, tlsVerify: false });
      expect((await insecure.getBlob(sha(blob))).equals(blob)).toBe(true);
      await insecure.close();
    });
  });
});
