/**
 * An HTTP(S) server for a local chunk store, speaking the protocol casync's and desync's HTTP
 * clients use (docs/remote-stores.md):
 *
 *   GET|HEAD /<4hex>/<64hex>.cacnk   200 stored bytes (verified first), 304, 404; 500 if corrupt
 *   PUT      /<4hex>/<64hex>.cacnk   201 stored, 200 already present (writable + token only)
 *   GET      /healthz, /metrics      liveness and Prometheus metrics
 *
 * Everything else is 400 (a path that is not exactly a chunk path, as desync's chunk-server) or
 * 405 (a method other than GET/HEAD/PUT, or PUT on a read-only server).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { decodeChunk, DEFAULT_MAX_DECODED_SIZE } from '../chunk.js';
import { ChunkCorruptError, errnoCode, IoError, UsageError } from '../errors.js';
import type { LocalStore } from '../store/local.js';
import { authorized } from './auth.js';
import { DEFAULT_MAX_BODY_BYTES, parseChunkPath, type ChunkPath } from './chunk-path.js';
import { ServerMetrics } from './metrics.js';

export { DEFAULT_MAX_BODY_BYTES };
/**
 * Default time to receive a whole request (headers and body): a stalled uploader is cut off
 * after this instead of holding a connection and a buffer forever. 16 MiB in 60 s is ~280 KiB/s.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** Default socket inactivity timeout: a client silent this long mid-request is disconnected. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** Response header marking a 500 as "the stored chunk failed verification" (value ERR_CHUNK_CORRUPT). */
export const CORRUPT_HEADER = 'Bootfs-Error';
/** Cache-Control of a chunk: its name is its content hash, so it never changes. */
export const CHUNK_CACHE_CONTROL = 'public, max-age=31536000, immutable';

export interface HttpStoreServerOptions {
  /** Accept PUT (default false). Requires `writeTokens`. */
  writable?: boolean;
  /** Bearer tokens accepted for PUT (and also for reads). */
  writeTokens?: string[];
  /** When set, GET/HEAD of chunks need one of these (or a write token). */
  readTokens?: string[];
  /** Largest PUT body in bytes (default 16 MiB); larger ones get 413. */
  maxBodyBytes?: number;
  /** Time to receive a whole request in ms (default 60 000; 0 disables). */
  requestTimeoutMs?: number;
  /** Socket inactivity timeout in ms (default 30 000; 0 disables). */
  connectionTimeoutMs?: number;
  /** Serve HTTPS with this PEM certificate and key. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** fastify/pino logger option (default false: silent). */
  logger?: FastifyServerOptions['logger'];
  /** Log every request at info (default false; errors are always logged). */
  logRequests?: boolean;
}

type Method = 'GET' | 'HEAD' | 'PUT';
const ALLOWED_WRITABLE = 'GET, HEAD, PUT';
const ALLOWED_READONLY = 'GET, HEAD';

declare module 'fastify' {
  interface FastifyRequest {
    chunk?: ChunkPath;
  }
}

/** A fastify instance serving `store`; call `.listen()` or use `.inject()` in tests. */
export function createHttpStoreServer(store: LocalStore, opts: HttpStoreServerOptions = {}): FastifyInstance {
  const writable = !!opts.writable;
  const writeTokens = opts.writeTokens ?? [];
  const readTokens = opts.readTokens ?? [];
  if (writable && writeTokens.length === 0) throw new UsageError('a writable store server needs a write token (--token-file or BOOTFS_TOKEN)');
  if ([...writeTokens, ...readTokens].some((t) => t.trim() === '' || /\s/.test(t))) throw new UsageError('store server tokens must be non-empty and contain no whitespace');
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(maxBody) || maxBody < 1) throw new UsageError(`maxBodyBytes must be a positive integer, got ${maxBody}`);
  const metrics = new ServerMetrics();

  const app = Fastify({
    logger: opts.logger ?? false,
    logController: new LogController({ disableRequestLogging: !opts.logRequests }),
    bodyLimit: maxBody,
    // Our own server, because Node checks requestTimeout only every connectionsCheckingInterval
    // (30 s by default): a stalled upload should be cut off close to its deadline.
    serverFactory: (handler) => {
      const requestTimeout = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
      const base = { requestTimeout, connectionsCheckingInterval: Math.min(1_000, Math.max(100, requestTimeout / 4)) };
      const server = opts.tls ? https.createServer({ ...base, cert: opts.tls.cert, key: opts.tls.key }, handler) : http.createServer(base, handler);
      server.setTimeout(opts.connectionTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
      return server as http.Server;
    },
  }) as unknown as FastifyInstance;
  app.decorate('metrics', metrics);

  // Chunk bodies are opaque bytes whatever Content-Type the client sends (or none).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxBody }, (_req, body, done) => done(null, body));

  app.addHook('onResponse', async (req, reply) => {
    metrics.requests.inc({ method: req.method, status: String(reply.statusCode) });
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) req.log.error({ err, url: req.url, method: req.method }, 'request failed');
    else req.log.info({ url: req.url, method: req.method, status, code: err.code, reason: err.message }, 'request rejected');
    void reply.code(status).type('text/plain; charset=utf-8').send(status >= 500 ? 'internal server error\n' : `${err.message}\n`);
  });

  const refuse = (req: FastifyRequest, reply: FastifyReply, status: number, message: string): FastifyReply => {
    req.log.info({ url: req.url, method: req.method, status, reason: message }, 'request rejected');
    return reply.code(status).type('text/plain; charset=utf-8').send(`${message}\n`);
  };

  app.get('/healthz', async (_req, reply) => reply.type('text/plain; charset=utf-8').send('ok\n'));
  app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));

  // Checks that need no body run before it is read: an unauthorized or misdirected PUT is
  // answered without buffering up to 16 MiB of it.
  const gate = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const method = req.method as Method;
    if (method === 'PUT' && !writable) {
      await refuse(req, reply.header('Allow', ALLOWED_READONLY), 405, 'this store is read-only (start bootfs serve with --writable)');
      return;
    }
    const tokens = method === 'PUT' ? writeTokens : readTokens.length > 0 ? [...readTokens, ...writeTokens] : [];
    if (tokens.length > 0 && !authorized(req.headers.authorization, tokens)) {
      await refuse(req, reply.header('WWW-Authenticate', 'Bearer realm="bootfs"'), 401, 'missing or wrong bearer token');
      return;
    }
    const chunk = parseChunkPath(req.raw.url ?? '');
    if (!chunk) {
      await refuse(req, reply, 400, `invalid chunk path ${JSON.stringify(req.raw.url ?? '')}: expected /<4 hex>/<64 lower-case hex>.cacnk`);
      return;
    }
    req.chunk = chunk;
  };

  app.route({
    method: ['GET', 'HEAD', 'PUT'],
    url: '*',
    exposeHeadRoute: false,
    onRequest: gate,
    handler: async (req, reply) => {
      const chunk = req.chunk!;
      if (req.method === 'PUT') return putChunk(req, reply, chunk);
      return getChunk(req, reply, chunk);
    },
  });

  // Any other method on any path.
  app.setNotFoundHandler((req, reply) => refuse(req, reply.header('Allow', writable ? ALLOWED_WRITABLE : ALLOWED_READONLY), 405, `method ${req.method} not allowed`));

  const verified = new VerifiedCache(VERIFIED_CACHE_ENTRIES);

  async function getChunk(req: FastifyRequest, reply: FastifyReply, chunk: ChunkPath): Promise<FastifyReply> {
    const etag = `"${chunk.hex}"`;
    const file = store.chunkPath(chunk.hex);
    if (req.method === 'HEAD') {
      // HEAD answers presence only (desync's HasChunk); GET verifies before sending bytes.
      const st = await stat(file).catch(() => undefined);
      if (!st?.isFile()) return refuse(req, reply, 404, `chunk ${chunk.hex} not found`);
      return reply.code(200).headers(chunkHeaders(etag)).header('Content-Length', st.size).send();
    }
    let read: { stored: Buffer; identity: string } | undefined;
    try {
      read = readChunkFile(file);
    } catch (err) {
      throw new IoError(`cannot read chunk ${chunk.hex} from ${store.location}: ${(err as Error).message}`, err);
    }
    if (!read) return refuse(req, reply, 404, `chunk ${chunk.hex} not found`);
    const { stored, identity } = read;
    try {
      // A chunk file is immutable once in place: verify it once per file identity, not per
      // request (a replaced or rewritten file has a new inode or mtime and is verified again).
      if (verified.get(chunk.hex) !== identity) {
        decodeChunk(chunk.id, stored, store.location, { maxSize: DEFAULT_MAX_DECODED_SIZE, into: 'scratch' });
        verified.set(chunk.hex, identity);
      }
    } catch (err) {
      if (!(err instanceof ChunkCorruptError)) throw err;
      metrics.corruptChunks.inc();
      req.log.error({ chunk: chunk.hex, file, reason: err.reason }, 'corrupt chunk in store, not served (run bootfs store verify --repair)');
      // A distinct marker, so bootfs clients raise ChunkCorruptError (no retry) instead of a 5xx
      // retry loop; other clients just see a 500, as from desync's chunk-server.
      return reply.code(500).header(CORRUPT_HEADER, 'ERR_CHUNK_CORRUPT').type('text/plain; charset=utf-8').send(`${err.reason}\n`);
    }
    if (ifNoneMatch(req.headers['if-none-match'], etag)) return reply.code(304).headers(chunkHeaders(etag)).send();
    metrics.bytesServed.inc(stored.length);
    metrics.chunksServed.inc();
    return reply.code(200).headers(chunkHeaders(etag)).type('application/octet-stream').send(stored);
  }

  async function putChunk(req: FastifyRequest, reply: FastifyReply, chunk: ChunkPath): Promise<FastifyReply> {
    const body = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) return refuse(req, reply, 400, `PUT of chunk ${chunk.hex} has an empty body`);
    try {
      decodeChunk(chunk.id, body, 'the request body', { maxSize: DEFAULT_MAX_DECODED_SIZE, into: 'scratch' });
    } catch (err) {
      if (err instanceof ChunkCorruptError) return refuse(req, reply, 400, err.message);
      throw err;
    }
    const created = await store.storeChunk(chunk.id, body);
    if (created) metrics.chunksStored.inc();
    return reply.code(created ? 201 : 200).header('ETag', `"${chunk.hex}"`).type('text/plain; charset=utf-8').send(created ? 'created\n' : 'exists\n');
  }

  return app;
}

/** Chunk files whose verification is remembered (~100 bytes each): 1M entries ≈ 100 MB of index, ~64 GB of chunks. */
const VERIFIED_CACHE_ENTRIES = 1_000_000;

/** chunk hex → file identity (inode:size:mtime) that passed verification; oldest entries evicted first. */
class VerifiedCache {
  private readonly map = new Map<string, string>();
  constructor(private readonly max: number) {}
  get(key: string): string | undefined {
    return this.map.get(key);
  }
  set(key: string, identity: string): void {
    this.map.delete(key);
    this.map.set(key, identity);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
}

/**
 * A chunk file's bytes and identity, or undefined when it does not exist. Sync syscalls on purpose:
 * a chunk is at most a few hundred KiB, usually in the page cache, and four promise round trips
 * (open, fstat, read, close) cost the server more than the read itself (measured: ~0.37 ms vs
 * ~0.03 ms per chunk). A store on a slow network file system would want the async path back.
 */
function readChunkFile(file: string): { stored: Buffer; identity: string } | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    const stored = Buffer.allocUnsafe(st.size);
    for (let got = 0; got < st.size; ) {
      const n = readSync(fd, stored, got, st.size - got, got);
      if (n === 0) return { stored: stored.subarray(0, got), identity: '' }; // shrank: never cached as verified
      got += n;
    }
    return { stored, identity: `${st.ino}:${st.size}:${st.mtimeMs}` };
  } finally {
    closeSync(fd);
  }
}

function chunkHeaders(etag: string): Record<string, string> {
  return { 'Cache-Control': CHUNK_CACHE_CONTROL, ETag: etag, 'Content-Type': 'application/octet-stream' };
}

/** RFC 9110 If-None-Match: `*`, or a list of (weak or strong) tags compared weakly. */
function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The server's metrics (also rendered at /metrics). */
    metrics: ServerMetrics;
  }
}
