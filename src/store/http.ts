/**
 * A chunk store behind HTTP(S): `bootfs serve`, desync's chunk-server, or any static web server
 * (nginx, python -m http.server) serving a store directory. Chunk URL = `<base>/<4hex>/<id>.cacnk`.
 *
 * GET 200 is the chunk, 404 is missing (ChunkNotFoundError), anything else an error; HEAD answers
 * hasChunk; PUT (200/201/204) stores. Network errors, timeouts and 5xx are retried with exponential
 * back-off; 4xx never are. Every operation has a per-try timeout and a total deadline.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, errors as undiciErrors } from 'undici';
import { decodeChunk, idToHex } from '../chunk.js';
import { ChunkCorruptError, ChunkNotFoundError, IoError, UsageError } from '../errors.js';
import { BodyTooLarge, readCapped, readPrefix, TryTimeout } from '../util/http-body.js';
import { backoffDelay, positiveInt, Semaphore, type RetryOptions } from '../util/limits.js';
import type { GetOptions, WriteStore } from './types.js';

/** Largest response body accepted: casync's own cap on an HTTP chunk (16 MiB). */
export const HTTP_MAX_BODY_BYTES = 16 * 1024 * 1024;

/**
 * Retries (RetryOptions) default to: a try of 30 s from sending to the last body byte, a 120 s
 * deadline, 3 tries, back-off from 200 ms without a cap.
 */
export interface HttpStoreOptions extends RetryOptions {
  /** Bearer token sent as `Authorization: Bearer …` on every request. */
  token?: string;
  /** Requests in flight at once (default 16; also the connection count). */
  concurrency?: number;
  /** Largest response body in bytes (default 16 MiB). */
  maxBodyBytes?: number;
  /**
   * HEAD before PUT so chunks the server has are not uploaded again (default true). It also makes
   * storeChunk's "new" result exact against servers that answer every PUT with 200 (desync).
   */
  headBeforePut?: boolean;
  /** Extra undici Pool options (e.g. `connect: { ca }` for a private CA). */
  poolOptions?: Pool.Options;
}

interface ResolvedOptions {
  concurrency: number;
  timeoutMs: number;
  deadlineMs: number;
  tries: number;
  backoffMs: number;
  maxBackoffMs: number;
  maxBodyBytes: number;
  headBeforePut: boolean;
}


/** A response worth retrying: a 5xx status. */
class RetryableStatus extends Error {
  constructor(readonly status: number, readonly body: string) {
    super(`HTTP ${status}`);
  }
}

/** A WriteStore speaking the casync/desync HTTP chunk protocol through an undici Pool. */
export class HttpStore implements WriteStore {
  /** The base URL without credentials, query or fragment, ending in `/`. */
  readonly location: string;
  private readonly base: URL;
  private readonly pool: Pool;
  private readonly opts: ResolvedOptions;
  private readonly auth: string | undefined;
  private readonly slots: Semaphore;
  private closed = false;

  constructor(url: string, opts: HttpStoreOptions = {}) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new UsageError(`store location '${url}' is not a valid URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`store location '${url}': HttpStore needs an http:// or https:// URL`);
    this.opts = {
      concurrency: positiveInt('http', 'concurrency', opts.concurrency, 16),
      timeoutMs: positiveInt('http', 'timeoutMs', opts.timeoutMs, 30_000),
      deadlineMs: positiveInt('http', 'deadlineMs', opts.deadlineMs, 120_000),
      tries: positiveInt('http', 'tries', opts.tries, 3),
      backoffMs: positiveInt('http', 'backoffMs', opts.backoffMs, 200),
      maxBackoffMs: opts.maxBackoffMs ?? Infinity,
      maxBodyBytes: positiveInt('http', 'maxBodyBytes', opts.maxBodyBytes, HTTP_MAX_BODY_BYTES),
      headBeforePut: opts.headBeforePut ?? true,
    };
    this.slots = new Semaphore(this.opts.concurrency);
    if (opts.token !== undefined) {
      if (opts.token === '' || /\s/.test(opts.token)) throw new UsageError('http store token must be non-empty and contain no whitespace');
      this.auth = `Bearer ${opts.token}`;
    } else if (u.username || u.password) {
      // user:pass@host, as casync reads from .netrc and desync from its config: basic auth.
      this.auth = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
    }
    u.username = '';
    u.password = '';
    // casync cuts the store URL at '?' and ';' and strips trailing slashes; desync adds one.
    u.search = '';
    u.hash = '';
    if (!u.pathname.endsWith('/')) u.pathname += '/';
    this.base = u;
    this.location = u.href;
    this.pool = new Pool(u.origin, {
      connections: this.opts.concurrency,
      keepAliveTimeout: 10_000,
      // Our own AbortSignal timeouts bound each try; these stop a half-dead socket earlier.
      headersTimeout: this.opts.timeoutMs,
      bodyTimeout: this.opts.timeoutMs,
      ...opts.poolOptions,
    });
  }

  /** URL path of a chunk: `<base path><4hex>/<id>.cacnk`. */
  chunkUrlPath(hex: string): string {
    return `${this.base.pathname}${hex.slice(0, 4)}/${hex}.cacnk`;
  }

  async getStored(id: Uint8Array, opts: GetOptions = {}): Promise<Buffer> {
    const hex = idToHex(id);
    const r = await this.request('GET', hex, undefined, opts.signal);
    if (r.status === 200) return r.body;
    if (r.status === 404) throw new ChunkNotFoundError(hex, this.location);
    throw this.statusError('GET', hex, r.status, r.body);
  }

  async getChunk(id: Uint8Array, opts: GetOptions = {}): Promise<Buffer> {
    const stored = await this.getStored(id, opts);
    return decodeChunk(id, stored, this.location, opts.size === undefined ? {} : { size: opts.size });
  }

  async hasChunk(id: Uint8Array): Promise<boolean> {
    const hex = idToHex(id);
    const r = await this.request('HEAD', hex);
    if (r.status === 200) return true;
    if (r.status === 404) return false;
    // Static servers without HEAD support: fall back to a GET.
    if (r.status === 405 || r.status === 501) {
      const g = await this.request('GET', hex);
      if (g.status === 200) return true;
      if (g.status === 404) return false;
      throw this.statusError('GET', hex, g.status, g.body);
    }
    throw this.statusError('HEAD', hex, r.status, r.body);
  }

  async storeChunk(id: Uint8Array, stored: Uint8Array): Promise<boolean> {
    const hex = idToHex(id);
    if (this.opts.headBeforePut && (await this.hasChunk(id))) return false;
    const r = await this.request('PUT', hex, stored);
    // 201 created. 204: nginx's dav module replaced an existing file (same bytes). 200: bootfs serve
    // says it existed; desync's chunk-server says 200 for every write, so after a HEAD that found
    // nothing, 200 counts as new.
    if (r.status === 201) return true;
    if (r.status === 204) return false;
    if (r.status === 200) return this.opts.headBeforePut;
    throw this.statusError('PUT', hex, r.status, r.body);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  private statusError(method: string, hex: string, status: number, body: Buffer): IoError {
    const text = body.subarray(0, 200).toString('utf8').replace(/\s+/g, ' ').trim();
    const hint = status === 401 || status === 403 ? ' (check the token: --store-token or BOOTFS_STORE_TOKEN)' : '';
    return new IoError(`${method} chunk ${hex} at ${this.location}: HTTP ${status}${text ? ` ${text}` : ''}${hint}`);
  }

  /** One operation: tries with back-off until a non-5xx answer, a 4xx, or the deadline. */
  private async request(method: 'GET' | 'HEAD' | 'PUT', hex: string, body?: Uint8Array, signal?: AbortSignal): Promise<{ status: number; body: Buffer }> {
    if (this.closed) throw new IoError(`http store ${this.location} is closed`);
    const deadline = AbortSignal.timeout(this.opts.deadlineMs);
    const outer = signal ? AbortSignal.any([signal, deadline]) : deadline;
    let lastError: unknown;
    for (let attempt = 0; attempt < this.opts.tries; attempt++) {
      if (attempt > 0) {
        const delay = backoffDelay(attempt, this.opts.backoffMs, this.opts.maxBackoffMs);
        try {
          await sleep(delay, undefined, { signal: outer });
        } catch {
          break;
        }
      }
      if (outer.aborted) break;
      try {
        return await this.once(method, hex, body, outer);
      } catch (err) {
        lastError = err;
        if (signal?.aborted) throw signal.reason;
        if (deadline.aborted) break;
        if (err instanceof ChunkCorruptError) throw err;
        if (!isRetryable(err)) break;
      }
    }
    if (signal?.aborted) throw signal.reason;
    const what = `${method} chunk ${hex} at ${this.location}`;
    if (lastError instanceof RetryableStatus) {
      throw new IoError(`${what}: HTTP ${lastError.status}${lastError.body ? ` ${lastError.body}` : ''} after ${this.opts.tries} tries`);
    }
    if (deadline.aborted) throw new IoError(`${what}: no answer within the ${this.opts.deadlineMs} ms deadline`, lastError);
    const reason = lastError instanceof Error ? lastError.message : String(lastError);
    throw new IoError(`${what} failed: ${reason}`, lastError);
  }

  /** One try, holding one of `concurrency` slots; 5xx becomes RetryableStatus. */
  private async once(method: 'GET' | 'HEAD' | 'PUT', hex: string, body: Uint8Array | undefined, outer: AbortSignal): Promise<{ status: number; body: Buffer }> {
    await this.slots.acquire();
    const tryTimeout = AbortSignal.timeout(this.opts.timeoutMs);
    const sig = AbortSignal.any([outer, tryTimeout]);
    try {
      const headers: Record<string, string> = {};
      if (this.auth) headers.authorization = this.auth;
      if (body) headers['content-type'] = 'application/octet-stream';
      const res = await this.pool.request({
        path: this.chunkUrlPath(hex),
        method,
        headers,
        ...(body ? { body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) } : {}),
        signal: sig,
      });
      // Only a chunk body matters; of an error page the first few KiB are enough for a message.
      const data = method === 'GET' && res.statusCode === 200 ? await readCapped(res.body, this.opts.maxBodyBytes, res.headers, `chunk ${hex} from ${this.location}`) : await readPrefix(res.body, 4096);
      if (res.statusCode === 500 && res.headers['bootfs-error'] === 'ERR_CHUNK_CORRUPT') {
        // bootfs serve verified the chunk and found it bad: another try would find the same.
        throw new ChunkCorruptError(hex, this.location, `the server reports: ${data.toString('utf8').trim()}`);
      }
      if (res.statusCode >= 500) throw new RetryableStatus(res.statusCode, data.subarray(0, 200).toString('utf8').trim());
      return { status: res.statusCode, body: data };
    } catch (err) {
      if (tryTimeout.aborted && !outer.aborted) throw new TryTimeout(this.opts.timeoutMs);
      throw err;
    } finally {
      this.slots.release();
    }
  }

}

/** Network failures, per-try timeouts and 5xx are worth another try; HTTP 4xx and our own errors are not. */
function isRetryable(err: unknown): boolean {
  if (err instanceof RetryableStatus || err instanceof TryTimeout) return true;
  if (err instanceof BodyTooLarge) return false;
  if (err instanceof undiciErrors.UndiciError) return !(err instanceof undiciErrors.InvalidArgumentError);
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|UND_ERR_.*)$/.test(code);
}
