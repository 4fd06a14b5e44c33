import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { encodeChunk, idToHex } from '../../src/chunk.js';
import { ChunkCorruptError, ChunkNotFoundError, IoError, UsageError } from '../../src/errors.js';
import { createHttpStoreServer } from '../../src/server/http.js';
import { HttpStore } from '../../src/store/http.js';
import { LocalStore } from '../../src/store/local.js';
import { openLocalStore, openStore, parseStoreLocation } from '../../src/store/location.js';
import { cleanup, describeWithTools, tmpDirWithDispose } from '../helpers/tools.js';
import { startNginx } from '../server/nginx.js';
import { describeChunkStore } from './conformance.js';

afterAll(cleanup);

const TOKEN = 'conformance-token';

describeChunkStore('http → bootfs serve', async () => {
  const dir = await tmpDirWithDispose('bootfs-http-');
  const local = await LocalStore.open(dir.path, { create: true });
  const app = createHttpStoreServer(local, { writable: true, writeTokens: [TOKEN] });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  // A base path with no trailing slash: chunks resolve below it.
  const store = new HttpStore(`http://127.0.0.1:${port}`, { token: TOKEN });
  return {
    store,
    corrupt: (hex, bytes) => writeFile(local.chunkPath(hex), bytes),
    cleanup: async () => {
      await app.close();
      await dir.dispose();
    },
  };
});

describeWithTools(['nginx'], 'HttpStore against nginx', () => {
  // Debian's nginx is built --with-http_dav_module, so the whole suite (PUT included) runs.
  describeChunkStore('http → nginx (dav PUT)', async () => {
    const dir = await tmpDirWithDispose('bootfs-http-nginx-');
    const local = await LocalStore.open(dir.path, { create: true });
    const nginx = await startNginx(dir.path, { writable: true });
    const store = new HttpStore(nginx.storeUrl);
    return {
      store,
      corrupt: (hex, bytes) => writeFile(local.chunkPath(hex), bytes),
      cleanup: async () => {
        await nginx.stop();
        await dir.dispose();
      },
    };
  });

  it('reads from a read-only nginx and gets an error (not "missing") for PUT', async () => {
    const dir = await tmpDirWithDispose('bootfs-http-nginx-ro-');
    const local = await LocalStore.open(dir.path, { create: true });
    const plain = randomBytes(10_000);
    const c = encodeChunk(plain);
    await local.storeChunk(c.id, c.stored);
    const nginx = await startNginx(dir.path);
    const store = new HttpStore(`${nginx.storeUrl}/`);
    try {
      expect(await store.hasChunk(c.id)).toBe(true);
      expect(await store.getChunk(c.id, { size: 10_000 })).toEqual(plain);
      const other = encodeChunk(Buffer.from('other'));
      expect(await store.hasChunk(other.id)).toBe(false);
      await expect(store.getStored(other.id)).rejects.toBeInstanceOf(ChunkNotFoundError);
      await expect(store.storeChunk(other.id, other.stored)).rejects.toThrow(/HTTP 403/);
      expect(await local.hasChunk(other.id)).toBe(false);
    } finally {
      await store.close();
      await nginx.stop();
      await dir.dispose();
    }
  });
});

/** A local HTTP server whose handler the test scripts; counts requests. */
async function scripted(handler: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void) {
  let n = 0;
  const srv = http.createServer((req, res) => handler(req, res, ++n));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/base/`;
  return {
    url,
    count: () => n,
    close: () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  };
}

describe('HttpStore', () => {
  const chunk = encodeChunk(Buffer.from('retry me '.repeat(100)));
  const hex = idToHex(chunk.id);
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
  });

  it('retries 5xx with back-off, then succeeds, and asks for the desync/casync chunk path', async () => {
    const paths: string[] = [];
    const srv = await scripted((req, res, n) => {
      paths.push(req.url!);
      if (n <= 2) {
        res.writeHead(503).end('busy');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(chunk.stored);
    });
    closers.push(srv.close);
    const store = new HttpStore(srv.url, { backoffMs: 10 });
    closers.push(() => store.close());
    expect(await store.getChunk(chunk.id)).toEqual(Buffer.from('retry me '.repeat(100)));
    expect(srv.count()).toBe(3);
    expect(paths[0]).toBe(`/base/${hex.slice(0, 4)}/${hex}.cacnk`);
  });

  it('gives up after the configured tries on persistent 5xx', async () => {
    const srv = await scripted((_req, res) => res.writeHead(502).end('bad gateway'));
    closers.push(srv.close);
    const store = new HttpStore(srv.url, { backoffMs: 5, tries: 3 });
    closers.push(() => store.close());
    const err = await store.getStored(chunk.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as Error).message).toMatch(/HTTP 502 bad gateway after 3 tries/);
    expect(srv.count()).toBe(3);
  });

  it('never retries 4xx: 404 is ChunkNotFoundError, 401 an error naming the token', async () => {
    const srv = await scripted((req, res) => res.writeHead(req.url!.includes(hex.slice(0, 8)) ? 404 : 401).end());
    closers.push(srv.close);
    const store = new HttpStore(srv.url, { backoffMs: 5 });
    closers.push(() => store.close());
    const err = await store.getChunk(chunk.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChunkNotFoundError);
    expect((err as Error).message).toContain(srv.url);
    expect(srv.count()).toBe(1);
    expect(await store.hasChunk(chunk.id)).toBe(false);
    expect(srv.count()).toBe(2);
    const other = encodeChunk(Buffer.from('x'));
    await expect(store.getStored(other.id)).rejects.toThrow(/HTTP 401.*token/);
    expect(srv.count()).toBe(3);
  });

  it('times out a stalled server within the deadline', async () => {
    const srv = await scripted(() => {
      // never answer
    });
    closers.push(srv.close);
    const store = new HttpStore(srv.url, { timeoutMs: 200, deadlineMs: 1_000, tries: 100, backoffMs: 10 });
    closers.push(() => store.close());
    const t0 = Date.now();
    const err = await store.getStored(chunk.id).catch((e: unknown) => e);
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(IoError);
    expect((err as Error).message).toMatch(/deadline/);
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(2_500);
    // Per-try timeouts were retried before the deadline hit.
    expect(srv.count()).toBeGreaterThanOrEqual(2);
  });

  it('refuses a response body over the cap', async () => {
    const srv = await scripted((_req, res) => res.writeHead(200).end(Buffer.alloc(5000)));
    closers.push(srv.close);
    const store = new HttpStore(srv.url, { maxBodyBytes: 4096 });
    closers.push(() => store.close());
    await expect(store.getStored(chunk.id)).rejects.toThrow(/over 4096 bytes/);
    expect(srv.count()).toBe(1);
  });

  it('bounds requests in flight and sends the bearer token', async () => {
    let inFlight = 0;
    let peak = 0;
    const auths = new Set<string | undefined>();
    const srv = await scripted((req, res) => {
      auths.add(req.headers.authorization);
      inFlight++;
      peak = Math.max(peak, inFlight);
      setTimeout(() => {
        inFlight--;
        res.writeHead(404).end();
      }, 20);
    });
    closers.push(srv.close);
    const store = new HttpStore(srv.url, { concurrency: 3, token: 'tok' });
    closers.push(() => store.close());
    const ids = Array.from({ length: 12 }, (_, i) => encodeChunk(Buffer.from(`c${i}`)).id);
    expect(await Promise.all(ids.map((id) => store.hasChunk(id)))).toEqual(ids.map(() => false));
    expect(peak).toBe(3);
    expect([...auths]).toEqual(['Bearer tok']);
  });

  it('turns a corrupt chunk reported by bootfs serve into ChunkCorruptError without retrying', async () => {
    const dir = await tmpDirWithDispose('bootfs-http-corrupt-');
    const local = await LocalStore.open(dir.path, { create: true });
    await local.storeChunk(chunk.id, chunk.stored);
    await writeFile(local.chunkPath(hex), encodeChunk(Buffer.from('imposter')).stored);
    let requests = 0;
    const app = createHttpStoreServer(local);
    app.addHook('onRequest', async () => {
      requests++;
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const store = new HttpStore(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`, { backoffMs: 5 });
    try {
      const err = await store.getStored(chunk.id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChunkCorruptError);
      expect((err as Error).message).toMatch(/hashes to/);
      expect(requests).toBe(1);
    } finally {
      await store.close();
      await app.close();
      await dir.dispose();
    }
  });

  it('validates options and URLs', () => {
    expect(() => new HttpStore('ftp://x/')).toThrow(UsageError);
    expect(() => new HttpStore('http://x/', { concurrency: 0 })).toThrow(/concurrency/);
    expect(new HttpStore('http://u:p@host:81/a/b?x=1#f').location).toBe('http://host:81/a/b/');
  });
});

describe('store locations', () => {
  it('parses paths, file: and http(s) URLs; ssh:// is a clear error', () => {
    expect(parseStoreLocation('/srv/store')).toEqual({ kind: 'local', path: '/srv/store' });
    expect(parseStoreLocation('file:///srv/store')).toEqual({ kind: 'local', path: '/srv/store' });
    expect(parseStoreLocation('http://h:8080/s')).toEqual({ kind: 'http', url: 'http://h:8080/s' });
    expect(parseStoreLocation('HTTPS://h/')).toEqual({ kind: 'http', url: 'https://h/' });
    expect(() => parseStoreLocation('ssh://h/store')).toThrow(UsageError); // casync's own protocol: not implemented; sftp:// is
    expect(() => parseStoreLocation('http://')).toThrow(UsageError);
  });

  it('opens an HttpStore for URLs with BOOTFS_STORE_TOKEN, and refuses URLs where a directory is needed', async () => {
    const seen: (string | undefined)[] = [];
    const srv = await scripted((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(404).end();
    });
    const old = process.env.BOOTFS_STORE_TOKEN;
    process.env.BOOTFS_STORE_TOKEN = 'from-env';
    try {
      const store = await openStore(srv.url);
      expect(store).toBeInstanceOf(HttpStore);
      expect(await store.hasChunk(encodeChunk(Buffer.from('q')).id)).toBe(false);
      await store.close();
      const explicit = await openStore(srv.url, { token: 'flag' });
      await explicit.hasChunk(encodeChunk(Buffer.from('q')).id);
      await explicit.close();
      expect(seen).toEqual(['Bearer from-env', 'Bearer flag']);
    } finally {
      if (old === undefined) delete process.env.BOOTFS_STORE_TOKEN;
      else process.env.BOOTFS_STORE_TOKEN = old;
      await srv.close();
    }
    await expect(openLocalStore('http://h/store')).rejects.toThrow(/local store directories only/);
  });
});
