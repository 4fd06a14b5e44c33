/**
 * One registry, as one repository's client talks to it: an undici Agent (TLS settings, keep-alive),
 * the scheme (https, or http where allowed), auth (none, Basic, or Bearer tokens per scope set) and
 * requests with retries (retry.ts).
 *
 * - The first request pings `GET /v2/`: it picks the scheme (https; http only for loopback hosts or
 *   with tlsVerify false, and only when the server does not speak TLS at all) and learns the auth
 *   scheme from the 401 challenge, so later requests carry credentials from the start.
 * - 401: the token is refreshed (or Basic credentials added) and the request sent once more; a
 *   second 401, a 403, or a token endpoint that refuses the credentials is a RegistryAuthError.
 * - GET and HEAD follow redirects (blob storage behind a CDN); credentials go only to the
 *   registry's own origin.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { BootfsError, IoError } from '../errors.js';
import { Semaphore } from '../util/limits.js';
import { challengeScopes, parseTokenResponse, parseWwwAuthenticate, scopeKey, type BearerToken } from './auth.js';
import { findCredentials, type Credentials } from './credentials.js';
import { RegistryAuthError } from './errors.js';
import type { ResolvedRegistryOptions } from './options.js';
import { apiHost, isLoopback, type RepoLocation } from './reference.js';
import { discard, readCapped, readPrefix, TryTimeout, type Body } from '../util/http-body.js';
import { backoff, errorDetail, GaveUp, isNotTls, isRetryable, isTlsCertError, RetryableStatus, withRetries } from './retry.js';

/** The HTTP methods the client sends. */
export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** One request as the client describes it. */
export interface Exchange {
  method: Method;
  /** `/v2/…` below the registry, or an absolute URL (an upload Location). */
  url: string;
  headers?: Record<string, string>;
  /** A Buffer, or a stream (never re-sent: a 401 or failure is the caller's to resume). */
  body?: Buffer | AsyncIterable<Uint8Array>;
  /** Token scopes the request needs (`repository:NAME:pull`, …). */
  scopes: readonly string[];
  /** The object, for messages: `manifest latest of host/repo`. */
  what: string;
  signal?: AbortSignal;
}

/** An answer with its body read (at most `maxBytes` of a 2xx, the first 4 KiB otherwise). */
export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  /** The URL that answered (after redirects), for resolving a relative Location. */
  url: URL;
  body: Buffer;
}

/** A 2xx answer whose body is left to the caller. */
export interface StreamReply {
  status: number;
  headers: IncomingHttpHeaders;
  url: URL;
  body: Body;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;
/** Error pages: a few KiB are enough for a message. */
const ERROR_PREFIX = 4096;
/** Token endpoint answers are small JSON documents. */
const MAX_TOKEN_RESPONSE = 1 << 20;
const USER_AGENT = 'bootfs';

type AuthState = { kind: 'unknown' } | { kind: 'none' } | { kind: 'basic' } | { kind: 'bearer'; realm: string; service: string | undefined };

/** A registry reached for one repository (credentials are looked up for that repository). */
export class RegistryConnection {
  /** `host[:port]/repo`, for messages. */
  readonly location: string;
  private readonly agent: Agent;
  private readonly slots: Semaphore;
  private origin: string | undefined;
  private pinging: Promise<string> | undefined;
  private auth: AuthState = { kind: 'unknown' };
  private readonly tokens = new Map<string, BearerToken>();
  private readonly tokenFetches = new Map<string, Promise<BearerToken>>();
  private creds: Promise<Credentials | undefined> | undefined;
  private closed = false;

  constructor(
    readonly repo: RepoLocation,
    readonly opts: ResolvedRegistryOptions,
  ) {
    this.location = `${repo.registry}/${repo.repository}`;
    this.slots = new Semaphore(opts.concurrency);
    this.agent = new Agent({
      connections: opts.concurrency,
      keepAliveTimeout: 10_000,
      // Inactivity limits: a stalled socket fails a try even when no per-try timer runs (streams).
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connect: { rejectUnauthorized: opts.tlsVerify, ...(opts.ca ? { ca: opts.ca } : {}) },
      ...opts.agentOptions,
    });
  }

  /** The credentials in use (looked up once). */
  credentials(): Promise<Credentials | undefined> {
    this.creds ??= findCredentials(this.repo, this.opts.credentials);
    return this.creds;
  }

  /** A request with retries; the body is read (2xx: at most `maxBytes`, else refused; HEAD: none). */
  async call(x: Exchange, maxBytes = ERROR_PREFIX): Promise<Reply> {
    return this.retrying(x, true, async (sig) => {
      const { res, url } = await this.send(x, sig);
      if (x.method === 'HEAD') {
        await res.body.dump();
        return { status: res.statusCode, headers: res.headers, url, body: Buffer.alloc(0) };
      }
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      const body = ok ? await readCapped(res.body, maxBytes, res.headers, x.what) : await readPrefix(res.body, ERROR_PREFIX);
      return { status: res.statusCode, headers: res.headers, url, body };
    });
  }

  /**
   * A request with retries until its headers arrive; a 2xx body is returned unread (no per-try
   * timer runs on it: undici's inactivity timeout does). Other statuses come back as `call`
   * returns them.
   */
  async open(x: Exchange): Promise<StreamReply | Reply> {
    return this.retrying(x, false, async (sig) => {
      const { res, url } = await this.send(x, sig);
      if (res.statusCode >= 200 && res.statusCode < 300) return { status: res.statusCode, headers: res.headers, url, body: res.body };
      return { status: res.statusCode, headers: res.headers, url, body: await readPrefix(res.body, ERROR_PREFIX) };
    });
  }

  /**
   * One try, no retries: for requests with a streamed body (upload chunks), which the caller
   * resumes from the registry's offset. 5xx comes back as a reply, network errors are thrown.
   */
  async once(x: Exchange): Promise<Reply> {
    this.checkOpen();
    await this.ready(x.signal);
    const { res, url } = await this.send(x, x.signal);
    return { status: res.statusCode, headers: res.headers, url, body: await readPrefix(res.body, ERROR_PREFIX) };
  }

  /** An IoError for an unexpected answer, naming the request and the registry's error text. */
  statusError(x: Pick<Exchange, 'method' | 'what'>, r: { status: number; body: Buffer | Body }): IoError {
    const detail = Buffer.isBuffer(r.body) ? errorDetail(r.body) : '';
    if (!Buffer.isBuffer(r.body)) discard(r.body);
    return new IoError(`${x.what}: ${x.method} answered HTTP ${r.status}${detail ? ` (${detail})` : ''}`);
  }

  /** Is `err` worth a retry (network, timeout, 5xx)? For the upload and stream loops. */
  retryable(err: unknown): boolean {
    return isRetryable(err);
  }

  /** The back-off before retry number `attempt` (1-based). */
  backoff(attempt: number): number {
    return backoff(this.opts, attempt);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.agent.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new IoError(`registry client for ${this.location} is closed`);
  }

  /** `fn` with retries, one slot of `concurrency` per try, and (for small requests) a per-try timeout. */
  private async retrying<T extends { status: number; body: Buffer | Body }>(x: Exchange, perTryTimeout: boolean, fn: (sig: AbortSignal) => Promise<T>): Promise<T> {
    this.checkOpen();
    await this.ready(x.signal);
    try {
      return await withRetries(this.opts, x.signal, async (deadline) => {
        // The deadline bounds waiting for an answer, not reading a stream: it is linked to this
        // try's signal only until fn returns.
        const ctl = new AbortController();
        const onDeadline = () => ctl.abort(deadline.reason);
        deadline.addEventListener('abort', onDeadline, { once: true });
        const tryTimeout = perTryTimeout ? AbortSignal.timeout(this.opts.timeoutMs) : undefined;
        const sig = AbortSignal.any([ctl.signal, ...(x.signal ? [x.signal] : []), ...(tryTimeout ? [tryTimeout] : [])]);
        await this.slots.acquire();
        try {
          const r = await fn(sig);
          if (r.status >= 500) throw new RetryableStatus(r.status, Buffer.isBuffer(r.body) ? errorDetail(r.body) : '');
          return r;
        } catch (err) {
          if (tryTimeout?.aborted && !deadline.aborted && !x.signal?.aborted) throw new TryTimeout(this.opts.timeoutMs);
          throw err;
        } finally {
          deadline.removeEventListener('abort', onDeadline);
          this.slots.release();
        }
      });
    } catch (err) {
      throw err instanceof GaveUp ? this.finalError(x, err) : err;
    }
  }

  /** The error after the last try: ours as they are, others as an IoError naming the request. */
  private finalError(x: Pick<Exchange, 'method' | 'what'>, g: GaveUp): Error {
    const err = g.last;
    // Ours (auth failures, refused bodies, "not a registry") already say what happened.
    if (err instanceof BootfsError) return err;
    const what = `${x.what}: ${x.method}`;
    if (err instanceof RetryableStatus) return new IoError(`${what} answered HTTP ${err.status}${err.detail ? ` (${err.detail})` : ''} after ${g.tries} tries`);
    if (g.deadlineHit) return new IoError(`${what}: no answer within the ${this.opts.deadlineMs} ms deadline`, err);
    if (isTlsCertError(err)) return this.certError(err);
    const reason = err instanceof Error ? err.message : String(err);
    return new IoError(`${what} failed${g.tries > 1 ? ` after ${g.tries} tries` : ''}: ${reason}`, err);
  }

  private certError(err: unknown): IoError {
    const reason = err instanceof Error ? err.message : String(err);
    const tried = this.opts.caFile ? ` (${this.opts.caFile} did not verify it)` : '';
    return new IoError(`the TLS certificate of ${this.repo.registry} is not trusted (${reason}); give its CA with --ca-file FILE${tried}, or --tls-verify=false to skip verification (unsafe)`, err);
  }

  /** The origin to use, after the ping. */
  private async ready(signal?: AbortSignal): Promise<string> {
    if (this.origin !== undefined) return this.origin;
    this.pinging ??= this.ping(signal).finally(() => {
      this.pinging = undefined;
    });
    return this.pinging;
  }

  /** `GET /v2/` over https, else (where allowed, and the server does not speak TLS) http. */
  private async ping(signal?: AbortSignal): Promise<string> {
    const host = apiHost(this.repo.registry);
    const httpAllowed = !this.opts.tlsVerify || isLoopback(this.repo.registry);
    let last: unknown;
    for (const scheme of httpAllowed ? ['https', 'http'] : ['https']) {
      const origin = `${scheme}://${host}`;
      try {
        const res = await withRetries(this.opts, signal, async (deadline) => {
          const sig = AbortSignal.any([deadline, AbortSignal.timeout(this.opts.timeoutMs), ...(signal ? [signal] : [])]);
          const r = await this.agent.request({ origin, path: '/v2/', method: 'GET', headers: { 'user-agent': USER_AGENT }, signal: sig });
          const body = await readPrefix(r.body, ERROR_PREFIX);
          if (r.statusCode >= 500) throw new RetryableStatus(r.statusCode, errorDetail(body));
          return r;
        });
        if (res.statusCode === 401) this.learnChallenge(res.headers);
        else if (res.statusCode === 200) this.auth = { kind: 'none' };
        else throw new IoError(`${host} does not look like a registry: GET ${origin}/v2/ answered HTTP ${res.statusCode}`);
        this.origin = origin;
        return origin;
      } catch (err) {
        if (!(err instanceof GaveUp)) throw err;
        last = err.last;
        if (scheme === 'https' && isNotTls(last)) continue;
        break;
      }
    }
    if (isTlsCertError(last)) throw this.certError(last);
    if (isNotTls(last)) throw new IoError(`${this.repo.registry} does not speak TLS; for a plain-http registry use --tls-verify=false`, last);
    const reason = last instanceof Error ? last.message : String(last);
    throw new IoError(`cannot reach registry ${this.repo.registry}: ${reason}`, last);
  }

  /** Remember the auth scheme a 401 asked for (Bearer preferred over Basic) and the scopes it names. */
  private learnChallenge(headers: IncomingHttpHeaders): { scopes: string[] } | undefined {
    const challenges = parseWwwAuthenticate(headers['www-authenticate']);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      this.auth = { kind: 'bearer', realm: bearer.params.realm!, service: bearer.params.service };
      return { scopes: challengeScopes(bearer) };
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      this.auth = { kind: 'basic' };
      return { scopes: [] };
    }
    return undefined;
  }

  /** The Authorization header for a request needing `scopes`, fetching a token when needed. */
  private async authorization(scopes: readonly string[]): Promise<string | undefined> {
    if (this.auth.kind === 'basic') {
      const c = await this.credentials();
      return c ? `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` : undefined;
    }
    if (this.auth.kind !== 'bearer') return undefined;
    const key = scopeKey(scopes);
    let t = this.tokens.get(key);
    if (t === undefined || t.expiresAt <= Date.now()) {
      // Requests in flight at once (16 for a chunk store) share one token fetch per scope set.
      let pending = this.tokenFetches.get(key);
      if (!pending) {
        // Not tied to this caller's signal: others wait on it too (the client's timeouts bound it).
        pending = this.fetchToken(scopes).finally(() => this.tokenFetches.delete(key));
        this.tokenFetches.set(key, pending);
      }
      t = await pending;
      this.tokens.set(key, t);
    }
    return `Bearer ${t.token}`;
  }

  /** A token from the realm for `scopes`, with the credentials when there are any. */
  private async fetchToken(scopes: readonly string[], signal?: AbortSignal): Promise<BearerToken> {
    if (this.auth.kind !== 'bearer') throw new Error('fetchToken without a bearer challenge');
    const { realm, service } = this.auth;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new IoError(`registry ${this.repo.registry} names an invalid token realm ${JSON.stringify(realm)}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new IoError(`registry ${this.repo.registry} names a token realm that is not http(s): ${realm}`);
    const creds = await this.credentials();
    if (creds && url.protocol === 'http:' && this.opts.tlsVerify && !isLoopback(url.host)) {
      throw new IoError(`the token service ${realm} of ${this.repo.registry} is plain http: refusing to send the credentials from ${creds.source} (--tls-verify=false allows it)`);
    }
    if (service !== undefined) url.searchParams.set('service', service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { 'user-agent': USER_AGENT };
    if (creds) {
      url.searchParams.set('account', creds.username);
      headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    }
    const service_ = `the token service ${url.origin}${url.pathname}`;
    const what = `token for ${this.location} from ${url.origin}${url.pathname}`;
    try {
      return await withRetries(this.opts, signal, async (deadline) => {
        const sig = AbortSignal.any([deadline, AbortSignal.timeout(this.opts.timeoutMs), ...(signal ? [signal] : [])]);
        const res = await this.agent.request({ origin: url.origin, path: url.pathname + url.search, method: 'GET', headers, signal: sig });
        if (res.statusCode === 200) {
          const body = await readCapped(res.body, MAX_TOKEN_RESPONSE, res.headers, what);
          let doc: unknown;
          try {
            doc = JSON.parse(body.toString('utf8'));
          } catch {
            doc = undefined;
          }
          const token = parseTokenResponse(doc);
          if (!token) throw new IoError(`${what}: the answer holds no token`);
          return token;
        }
        const body = await readPrefix(res.body, ERROR_PREFIX);
        if (res.statusCode >= 500) throw new RetryableStatus(res.statusCode, errorDetail(body));
        if (res.statusCode === 401 || res.statusCode === 403) {
          const why = `${service_} answered HTTP ${res.statusCode}`;
          throw creds ? this.authFailed(creds, why, res.statusCode) : this.needsCredentials(why, res.statusCode);
        }
        throw new IoError(`${what}: HTTP ${res.statusCode}${errorDetail(body) ? ` (${errorDetail(body)})` : ''}`);
      });
    } catch (err) {
      throw err instanceof GaveUp ? this.finalError({ method: 'GET', what }, err) : err;
    }
  }

  private authFailed(c: Credentials, why: string, status?: number): RegistryAuthError {
    return new RegistryAuthError(`authentication failed for ${this.location} as ${c.username} (credentials from ${c.source}): ${why}; check the user name and password`, this.location, status);
  }

  private needsCredentials(why: string, status?: number): RegistryAuthError {
    return new RegistryAuthError(
      `authentication failed for ${this.location}: it needs credentials (${why}); give --creds USER:PASSWORD or log in with skopeo login / podman login`,
      this.location,
      status,
    );
  }

  /** One exchange: credentials, redirects (GET/HEAD), and one more try after a 401 with fresh auth. */
  private async send(x: Exchange, signal: AbortSignal | undefined): Promise<{ res: Dispatcher.ResponseData; url: URL }> {
    const origin = this.origin!;
    for (let authTry = 0; ; authTry++) {
      let url = x.url.startsWith('/') ? new URL(x.url, origin) : new URL(x.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new IoError(`${x.what}: the registry sent a non-http URL ${url.href}`);
      const auth = await this.authorization(x.scopes);
      let res: Dispatcher.ResponseData;
      for (let hops = 0; ; hops++) {
        const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...x.headers };
        if (auth !== undefined && url.origin === origin) headers.authorization = auth;
        // A stream body goes through Readable.from: backpressure, and a source error aborts the request.
        const body = x.body === undefined ? undefined : Buffer.isBuffer(x.body) ? x.body : Readable.from(x.body, { objectMode: false });
        res = await this.agent.request({ origin: url.origin, path: url.pathname + url.search, method: x.method, headers, ...(body !== undefined ? { body } : {}), ...(signal ? { signal } : {}) });
        if ((x.method === 'GET' || x.method === 'HEAD') && REDIRECTS.has(res.statusCode) && res.headers.location !== undefined) {
          await res.body.dump();
          if (hops >= MAX_REDIRECTS) throw new IoError(`${x.what}: more than ${MAX_REDIRECTS} redirects`);
          url = new URL(String(res.headers.location), url);
          if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new IoError(`${x.what}: redirected to a non-http URL ${url.href}`);
          continue;
        }
        break;
      }
      if (res.statusCode === 403) {
        await res.body.dump();
        const c = await this.credentials();
        const why = `${x.what}: ${x.method} answered HTTP 403 (access denied)`;
        throw c ? this.authFailed(c, why, 403) : this.needsCredentials(why, 403);
      }
      if (res.statusCode !== 401 || url.origin !== origin) return { res, url };
      await res.body.dump();
      const c = await this.credentials();
      const why = `${x.what}: ${x.method} answered HTTP 401`;
      const before = this.auth.kind;
      const learned = this.learnChallenge(res.headers);
      // A second 401 after fresh credentials is final; so is Basic without (other) credentials to add.
      if (authTry > 0 || !learned || (this.auth.kind === 'basic' && (before === 'basic' || !c))) throw c ? this.authFailed(c, why, 401) : this.needsCredentials(why, 401);
      if (this.auth.kind === 'bearer') {
        const scopes = [...new Set([...x.scopes, ...learned.scopes])];
        this.tokens.set(scopeKey(x.scopes), await this.fetchToken(scopes, signal));
      }
      // A streamed body cannot be sent again: the caller's loop resumes the upload.
      if (x.body !== undefined && !Buffer.isBuffer(x.body)) throw new RetryableStatus(401, 'credentials refreshed; resend');
    }
  }
}
