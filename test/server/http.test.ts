import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeChunk, idToHex } from '../../src/chunk.js';
import { authorized, bearerToken, tokensEqual } from '../../src/server/auth.js';
import { parseChunkPath } from '../../src/server/chunk-path.js';
import { CHUNK_CACHE_CONTROL, createHttpStoreServer } from '../../src/server/http.js';
import { HttpStore } from '../../src/store/http.js';
import { LocalStore } from '../../src/store/local.js';
import { cleanup, describeWithTools, run, tmpDir } from '../helpers/tools.js';

afterAll(cleanup);

const TOKEN = 'write-secret-0123';
const hello = encodeChunk(Buffer.from('hello\n'));
const helloHex = idToHex(hello.id);
const helloPath = `/${helloHex.slice(0, 4)}/${helloHex}.cacnk`;
const pathOf = (hex: string) => `/${hex.slice(0, 4)}/${hex}.cacnk`;

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) if (e.isFile()) out.push(e.name);
  return out.sort();
}

let store: LocalStore;
beforeEach(async () => {
  store = await LocalStore.open(await tmpDir('bootfs-serve-'), { create: true });
  await store.storeChunk(hello.id, hello.stored);
});

describe('parseChunkPath', () => {
  it('accepts exactly /<4hex>/<64hex>.cacnk, ignoring a query', () => {
    expect(parseChunkPath(helloPath)?.hex).toBe(helloHex);
    expect(parseChunkPath(`${helloPath}?x=1`)?.hex).toBe(helloHex);
  });
  it.each([
    ['traversal', `/${helloHex.slice(0, 4)}/../${helloHex}.cacnk`],
    ['leading traversal', `/../../etc/passwd`],
    ['percent-encoded dots', `/%2e%2e/${helloHex.slice(0, 4)}/${helloHex}.cacnk`],
    ['percent-encoded hex digit', `/${helloHex.slice(0, 4)}/%37${helloHex.slice(1)}.cacnk`],
    ['encoded slash', `/${helloHex.slice(0, 4)}%2F${helloHex}.cacnk`],
    ['upper case', pathOf(helloHex.toUpperCase())],
    ['upper-case suffix', `${helloPath.slice(0, -6)}.CACNK`],
    ['wrong extension', `${helloPath.slice(0, -6)}.cacnk.tmp`],
    ['no extension', helloPath.slice(0, -6)],
    ['wrong shard', `/0000/${helloHex}.cacnk`],
    ['extra segment', `/x${helloPath}`],
    ['trailing slash', `${helloPath}/`],
    ['double slash', `//${helloHex.slice(0, 4)}/${helloHex}.cacnk`],
    ['short id', pathOf(helloHex.slice(0, 63))],
    ['empty', ''],
  ])('rejects %s', (_name, p) => {
    expect(parseChunkPath(p)).toBeUndefined();
  });
});

describe('tokens', () => {
  it('compares in constant time and exactly', () => {
    expect(tokensEqual('abc', 'abc')).toBe(true);
    expect(tokensEqual('abc', 'abd')).toBe(false);
    expect(tokensEqual('abc', 'abcd')).toBe(false);
    expect(tokensEqual('', 'abc')).toBe(false);
    expect(bearerToken('Bearer xyz')).toBe('xyz');
    expect(bearerToken('bearer  xyz ')).toBe('xyz');
    expect(bearerToken('Basic xyz')).toBeUndefined();
    expect(authorized('Bearer b', ['a', 'b'])).toBe(true);
    expect(authorized('Bearer c', ['a', 'b'])).toBe(false);
    expect(authorized(undefined, ['a'])).toBe(false);
  });
});

describe('createHttpStoreServer: reads', () => {
  it('serves a chunk with immutable caching headers and its ETag, and 304 on a match', async () => {
    const app = createHttpStoreServer(store);
    const r = await app.inject({ method: 'GET', url: helloPath });
    expect(r.statusCode).toBe(200);
    expect(r.rawPayload).toEqual(hello.stored);
    expect(r.headers['content-type']).toBe('application/octet-stream');
    expect(r.headers['cache-control']).toBe(CHUNK_CACHE_CONTROL);
    expect(r.headers.etag).toBe(`"${helloHex}"`);
    const h = await app.inject({ method: 'HEAD', url: helloPath });
    expect(h.statusCode).toBe(200);
    expect(h.headers['content-length']).toBe(String(hello.stored.length));
    expect(h.rawPayload.length).toBe(0);
    const c = await app.inject({ method: 'GET', url: helloPath, headers: { 'if-none-match': `W/"x", "${helloHex}"` } });
    expect(c.statusCode).toBe(304);
    expect(c.rawPayload.length).toBe(0);
    const other = await app.inject({ method: 'GET', url: helloPath, headers: { 'if-none-match': '"nope"' } });
    expect(other.statusCode).toBe(200);
    await app.close();
  });

  it('answers 404 for an absent chunk (GET and HEAD)', async () => {
    const app = createHttpStoreServer(store);
    const hex = idToHex(encodeChunk(Buffer.from('absent')).id);
    expect((await app.inject({ method: 'GET', url: pathOf(hex) })).statusCode).toBe(404);
    expect((await app.inject({ method: 'HEAD', url: pathOf(hex) })).statusCode).toBe(404);
    await app.close();
  });

  it('never serves a corrupt chunk: 500 and a log line', async () => {
    const lines: string[] = [];
    const app = createHttpStoreServer(store, { logger: { level: 'info', stream: { write: (l: string) => lines.push(l) } } });
    await writeFile(store.chunkPath(helloHex), encodeChunk(Buffer.from('imposter')).stored);
    const r = await app.inject({ method: 'GET', url: helloPath });
    expect(r.statusCode).toBe(500);
    expect(r.body).not.toContain('imposter');
    const logged = lines.map((l) => JSON.parse(l) as { level: number; chunk?: string; msg: string });
    expect(logged.some((l) => l.level >= 50 && l.chunk === helloHex && /corrupt/.test(l.msg))).toBe(true);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/bootfs_http_corrupt_chunks_total 1/);
    await app.close();
  });

  it.each([
    ['traversal', `/${helloHex.slice(0, 4)}/../../etc/passwd`],
    ['percent-encoded traversal', `/%2e%2e/%2e%2e/etc/passwd`],
    ['percent-encoded chunk path', `/${helloHex.slice(0, 4)}/${helloHex}%2ecacnk`],
    ['upper case', pathOf(helloHex.toUpperCase())],
    ['wrong extension', `${helloPath.slice(0, -6)}.txt`],
    ['extra segment', `/store${helloPath}`],
    ['root', '/'],
  ])('answers 400 for %s', async (_name, url) => {
    const app = createHttpStoreServer(store);
    expect((await app.inject({ method: 'GET', url })).statusCode).toBe(400);
    await app.close();
  });

  it('answers 405 for other methods, with Allow', async () => {
    const app = createHttpStoreServer(store);
    for (const method of ['POST', 'DELETE', 'PATCH', 'OPTIONS'] as const) {
      const r = await app.inject({ method, url: helloPath });
      expect(r.statusCode, method).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
    }
    await app.close();
  });

  it('requires the read token when one is set; a write token also reads', async () => {
    const app = createHttpStoreServer(store, { readTokens: ['reader'], writable: true, writeTokens: [TOKEN] });
    expect((await app.inject({ method: 'GET', url: helloPath })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: helloPath, headers: { authorization: 'Bearer wrong' } })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: helloPath, headers: { authorization: 'Bearer reader' } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'HEAD', url: helloPath, headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).body).toBe('ok\n');
    await app.close();
  });
});

describe('createHttpStoreServer: writes', () => {
  const auth = { authorization: `Bearer ${TOKEN}` };

  it('stores a verified chunk (201), then reports it exists (200)', async () => {
    const app = createHttpStoreServer(store, { writable: true, writeTokens: [TOKEN] });
    const c = encodeChunk(randomBytes(3000));
    const url = pathOf(idToHex(c.id));
    const r = await app.inject({ method: 'PUT', url, payload: c.stored, headers: { ...auth, 'content-type': 'application/octet-stream' } });
    expect(r.statusCode).toBe(201);
    expect(await store.getStored(c.id)).toEqual(c.stored);
    // No Content-Type at all is fine too.
    const again = await app.inject({ method: 'PUT', url, payload: c.stored, headers: auth });
    expect(again.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/bootfs_http_stored_chunks_total 1/);
    await app.close();
  });

  it('rejects a body that does not hash to the ID: 400, nothing stored', async () => {
    const app = createHttpStoreServer(store, { writable: true, writeTokens: [TOKEN] });
    const target = encodeChunk(Buffer.from('target'));
    const before = await allFiles(store.root);
    const wrong = await app.inject({ method: 'PUT', url: pathOf(idToHex(target.id)), payload: encodeChunk(Buffer.from('other')).stored, headers: auth });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.body).toMatch(/hashes to/);
    const garbage = await app.inject({ method: 'PUT', url: pathOf(idToHex(target.id)), payload: Buffer.from('not zstd'), headers: auth });
    expect(garbage.statusCode).toBe(400);
    expect(await allFiles(store.root)).toEqual(before);
    await app.close();
  });

  it('rejects PUT without or with a wrong token: 401, nothing stored', async () => {
    const app = createHttpStoreServer(store, { writable: true, writeTokens: [TOKEN], readTokens: ['reader'] });
    const c = encodeChunk(Buffer.from('unauthorized'));
    const url = pathOf(idToHex(c.id));
    for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 'Bearer reader' }, { authorization: `Basic ${TOKEN}` }]) {
      const r = await app.inject({ method: 'PUT', url, payload: c.stored, headers });
      expect(r.statusCode).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    expect(await store.hasChunk(c.id)).toBe(false);
    await app.close();
  });

  it('refuses PUT on a read-only server with 405, and a writable server without a token', async () => {
    const app = createHttpStoreServer(store);
    const c = encodeChunk(Buffer.from('read-only'));
    const r = await app.inject({ method: 'PUT', url: pathOf(idToHex(c.id)), payload: c.stored, headers: auth });
    expect(r.statusCode).toBe(405);
    expect(await store.hasChunk(c.id)).toBe(false);
    await app.close();
    expect(() => createHttpStoreServer(store, { writable: true })).toThrow(/write token/);
  });

  it('answers 413 for a body over the cap, nothing stored', async () => {
    const app = createHttpStoreServer(store, { writable: true, writeTokens: [TOKEN], maxBodyBytes: 1024 });
    const c = encodeChunk(randomBytes(4096));
    const r = await app.inject({ method: 'PUT', url: pathOf(idToHex(c.id)), payload: c.stored, headers: auth });
    expect(r.statusCode).toBe(413);
    expect(await store.hasChunk(c.id)).toBe(false);
    await app.close();
  });

  it('answers 400 for a PUT to a bad path', async () => {
    const app = createHttpStoreServer(store, { writable: true, writeTokens: [TOKEN] });
    const r = await app.inject({ method: 'PUT', url: `/../${helloHex}.cacnk`, payload: hello.stored, headers: auth });
    expect(r.statusCode).toBe(400);
    await app.close();
  });
});

describe('createHttpStoreServer: timeouts', () => {
  it('cuts off a stalled upload instead of waiting forever', async () => {
    const app = createHttpStoreServer(store, { writable: true, writeTokens: [TOKEN], requestTimeoutMs: 500 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const t0 = Date.now();
    const answer = await new Promise<string>((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.write(`PUT ${pathOf(helloHex)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 1000\r\n\r\n0123456789`);
      });
      let got = '';
      sock.on('data', (b) => (got += b.toString()));
      sock.on('close', () => resolve(got));
      sock.on('error', () => undefined);
    });
    const took = Date.now() - t0;
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(took).toBeLessThan(3_000);
    await app.close();
  });
});

describeWithTools(['openssl'], 'createHttpStoreServer: TLS', () => {
  it('serves HTTPS that HttpStore reads with the server certificate as CA', async () => {
    const dir = await tmpDir('bootfs-tls-');
    const r = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`]);
    expect(r.code, r.stderr.toString()).toBe(0);
    const cert = await readFile(`${dir}/cert.pem`);
    const app = createHttpStoreServer(store, { tls: { cert, key: await readFile(`${dir}/key.pem`) } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const client = new HttpStore(`https://127.0.0.1:${port}/`, { poolOptions: { connect: { ca: cert } } });
    try {
      expect(await client.getChunk(hello.id)).toEqual(Buffer.from('hello\n'));
      // Without the CA the certificate is refused (and that is not retried into success).
      const strict = new HttpStore(`https://127.0.0.1:${port}/`, { tries: 1 });
      await expect(strict.hasChunk(hello.id)).rejects.toThrow(/certificate/);
      await strict.close();
    } finally {
      await client.close();
      await app.close();
    }
  });
});
