/**
 * The registry client for one repository: OCI distribution API v2 over undici (see connection.ts
 * for auth, TLS and retries, upload.ts for pushing blobs).
 *
 * | method | request | verified |
 * |---|---|---|
 * | getManifest | GET /v2/NAME/manifests/REF (Accept: OCI and Docker manifests and indexes) | sha256 of the body = the digest asked for, and = Docker-Content-Digest when sent; ≤ 4 MiB |
 * | putManifest | PUT /v2/NAME/manifests/REF | the registry's Docker-Content-Digest = ours |
 * | headBlob | HEAD /v2/NAME/blobs/D | — |
 * | getBlob / openBlob | GET /v2/NAME/blobs/D (redirects followed) | length and sha256; a broken stream resumes with Range |
 * | getBlobRange | GET with Range | not verifiable (a part of a blob has no digest) |
 * | putBlob | HEAD, then mount or upload | the registry checks the digest; we check its answer |
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BootfsError, IoError, NotFoundError, UsageError } from '../errors.js';
import { digestProblem, sha256Digest, short } from '../oci/digest.js';
import { MANIFEST_ACCEPT } from '../oci/media-types.js';
import { MAX_DOCUMENT_SIZE } from '../oci/read.js';
import { repositoryScope } from './auth.js';
import { RegistryConnection, type Exchange, type Reply, type StreamReply } from './connection.js';
import { discard } from '../util/http-body.js';
import { RegistryDigestError } from './errors.js';
import { resolveRegistryOptions, type RegistryOptions } from './options.js';
import { parseRepoLocation, type RepoLocation, TAG } from './reference.js';
import type { BlobRepo, BlobSource, FetchedManifest, UploadResult } from './types.js';
import { uploadBlob } from './upload.js';


/** getBlob's default cap: blobs read whole are documents or chunks, never layers. */
const DEFAULT_MAX_BLOB = 64 << 20;

/** A 206 answer must start at byte `at`; otherwise its body is dropped and the IoError reads `${lead}the registry sent …`. */
function checkRangeStart(r: StreamReply, at: number, lead: string): void {
  const range = r.headers['content-range'];
  const m = /^bytes (\d+)-/.exec(String(range ?? ''));
  if (!m || Number(m[1]) !== at) {
    discard(r.body);
    throw new IoError(`${lead}the registry sent ${String(range ?? 'no Content-Range')}`);
  }
}

/** `body` without its first `n` bytes (a registry that ignored Range sent them), and without empty pieces. */
async function* skipBytes(body: AsyncIterable<Buffer>, n: number): AsyncGenerator<Buffer> {
  for await (const piece of body) {
    if (n >= piece.length) {
      n -= piece.length;
      continue;
    }
    yield n > 0 ? piece.subarray(n) : piece;
    n = 0;
  }
}

function isStream(r: StreamReply | Reply): r is StreamReply {
  return !Buffer.isBuffer(r.body);
}

/** One repository of one registry (see the file comment). */
export class RegistryRepo implements BlobRepo {
  readonly location: string;
  readonly registry: string;
  readonly repository: string;
  private readonly conn: RegistryConnection;
  private readonly pull: string[];
  private readonly push: string[];

  /** `location` is `host[:port]/repo` (Docker Hub short names allowed) or a parsed RepoLocation. */
  constructor(location: string | RepoLocation, opts: RegistryOptions = {}) {
    const repo = typeof location === 'string' ? parseRepoLocation(location) : location;
    this.registry = repo.registry;
    this.repository = repo.repository;
    this.location = `${repo.registry}/${repo.repository}`;
    this.conn = new RegistryConnection(repo, resolveRegistryOptions(opts));
    this.pull = [repositoryScope(repo.repository, 'pull')];
    this.push = [repositoryScope(repo.repository, 'pull,push')];
  }

  private checkReference(reference: string): void {
    if (typeof reference !== 'string' || (!TAG.test(reference) && digestProblem(reference) !== undefined)) {
      throw new UsageError(`'${short(String(reference))}' is not a tag or sha256 digest (in ${this.location})`);
    }
  }

  private checkDigest(digest: string): void {
    const problem = digestProblem(digest);
    if (problem !== undefined) throw new UsageError(`blob of ${this.location}: ${problem}`);
  }

  async getManifest(reference: string, accept: readonly string[] = MANIFEST_ACCEPT): Promise<FetchedManifest | undefined> {
    this.checkReference(reference);
    const what = `manifest ${reference} of ${this.location}`;
    const x: Exchange = { method: 'GET', url: `/v2/${this.repository}/manifests/${reference}`, headers: { accept: accept.join(', ') }, scopes: this.pull, what };
    const r = await this.conn.call(x, MAX_DOCUMENT_SIZE);
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw this.conn.statusError(x, r);
    const digest = sha256Digest(r.body);
    if (reference.startsWith('sha256:') && digest !== reference) throw new RegistryDigestError(`${what}: digest mismatch (got ${digest})`, this.location, reference);
    const header = r.headers['docker-content-digest'];
    if (typeof header === 'string' && header.startsWith('sha256:') && header !== digest) {
      throw new RegistryDigestError(`${what}: the registry says its digest is ${header}, its bytes hash to ${digest}`, this.location, header);
    }
    return { mediaType: mediaTypeOf(r), digest, body: r.body };
  }

  /** The digest a tag or digest points at (HEAD), or undefined when absent. */
  async headManifest(reference: string, accept: readonly string[] = MANIFEST_ACCEPT): Promise<string | undefined> {
    this.checkReference(reference);
    const what = `manifest ${reference} of ${this.location}`;
    const x: Exchange = { method: 'HEAD', url: `/v2/${this.repository}/manifests/${reference}`, headers: { accept: accept.join(', ') }, scopes: this.pull, what };
    const r = await this.conn.call(x);
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw this.conn.statusError(x, r);
    const header = r.headers['docker-content-digest'];
    if (typeof header === 'string' && digestProblem(header) === undefined) return header;
    return (await this.getManifest(reference, accept))?.digest;
  }

  async putManifest(reference: string, mediaType: string, body: Buffer): Promise<string> {
    this.checkReference(reference);
    if (body.length > MAX_DOCUMENT_SIZE) throw new UsageError(`manifest for ${this.location}: ${body.length} bytes is over the ${MAX_DOCUMENT_SIZE >> 20} MiB limit`);
    const digest = sha256Digest(body);
    if (reference.startsWith('sha256:') && reference !== digest) throw new UsageError(`manifest for ${this.location}@${reference}: its bytes hash to ${digest}`);
    const what = `manifest ${reference} of ${this.location}`;
    const x: Exchange = {
      method: 'PUT',
      url: `/v2/${this.repository}/manifests/${reference}`,
      headers: { 'content-type': mediaType, 'content-length': String(body.length) },
      body,
      scopes: this.push,
      what,
    };
    const r = await this.conn.call(x);
    if (r.status !== 201 && r.status !== 200 && r.status !== 202) throw this.conn.statusError(x, r);
    const header = r.headers['docker-content-digest'];
    if (typeof header === 'string' && header !== '' && header !== digest) throw new RegistryDigestError(`${what}: the registry stored it as ${header}, not ${digest}`, this.location, digest);
    return digest;
  }

  async headBlob(digest: string): Promise<number | undefined> {
    this.checkDigest(digest);
    const x: Exchange = { method: 'HEAD', url: `/v2/${this.repository}/blobs/${digest}`, scopes: this.pull, what: `blob ${digest} of ${this.location}` };
    const r = await this.conn.call(x);
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw this.conn.statusError(x, r);
    const n = Number(r.headers['content-length']);
    if (!Number.isSafeInteger(n) || n < 0) throw new IoError(`${x.what}: HEAD answered without a Content-Length`);
    return n;
  }

  async getBlob(digest: string, opts: { maxBytes?: number; signal?: AbortSignal } = {}): Promise<Buffer> {
    this.checkDigest(digest);
    const what = `blob ${digest} of ${this.location}`;
    const x: Exchange = { method: 'GET', url: `/v2/${this.repository}/blobs/${digest}`, scopes: this.pull, what, ...(opts.signal ? { signal: opts.signal } : {}) };
    const r = await this.conn.call(x, opts.maxBytes ?? DEFAULT_MAX_BLOB);
    if (r.status === 404) throw new NotFoundError(`${what} not found`);
    if (r.status !== 200) throw this.conn.statusError(x, r);
    const got = sha256Digest(r.body);
    if (got !== digest) throw new RegistryDigestError(`${what}: digest mismatch (got ${got})`, this.location, digest);
    return r.body;
  }

  /**
   * A blob as a stream. Verified at its end against `digest` (and `size` when given) unless
   * `verify` is false, for a caller that hashes the same bytes itself. A connection that breaks
   * off is resumed with a Range request from the last byte received (`tries` times in a row).
   */
  async *openBlob(digest: string, opts: { signal?: AbortSignal; size?: number; verify?: boolean } = {}): AsyncGenerator<Uint8Array, void, undefined> {
    this.checkDigest(digest);
    const what = `blob ${digest} of ${this.location}`;
    const verify = opts.verify ?? true;
    const hash = verify ? createHash('sha256') : undefined;
    let got = 0;
    let failures = 0;
    for (;;) {
      const x: Exchange = {
        method: 'GET',
        url: `/v2/${this.repository}/blobs/${digest}`,
        ...(got > 0 ? { headers: { range: `bytes=${got}-` } } : {}),
        scopes: this.pull,
        what,
        ...(opts.signal ? { signal: opts.signal } : {}),
      };
      const r = await this.conn.open(x);
      if (!isStream(r)) {
        if (r.status === 404) throw new NotFoundError(`${what} not found`);
        throw this.conn.statusError(x, r);
      }
      let skip = 0;
      if (got > 0 && r.status === 206) {
        checkRangeStart(r, got, `${what}: asked to resume at byte ${got}, `);
      } else if (got > 0 && r.status === 200) {
        skip = got; // the server ignored Range: drop what we already have
      } else if (r.status !== 200) {
        throw this.conn.statusError(x, r);
      }
      const before = got;
      try {
        for await (const b of skipBytes(r.body as AsyncIterable<Buffer>, skip)) {
          opts.signal?.throwIfAborted();
          got += b.length;
          if (opts.size !== undefined && got > opts.size) throw new RegistryDigestError(`${what}: longer than the ${opts.size} bytes its descriptor says`, this.location, digest);
          hash?.update(b);
          yield b;
        }
        break;
      } catch (err) {
        discard(r.body);
        if (err instanceof BootfsError || opts.signal?.aborted || !this.conn.retryable(err)) throw err;
        failures = got > before ? 1 : failures + 1;
        if (failures >= this.conn.opts.tries) throw new IoError(`${what}: the download broke off ${failures} times in a row at byte ${got}: ${(err as Error).message}`, err);
        await sleep(this.conn.backoff(failures), undefined, opts.signal ? { signal: opts.signal } : {});
      }
    }
    if (opts.size !== undefined && got !== opts.size) throw new RegistryDigestError(`${what}: truncated (${got} of ${opts.size} bytes)`, this.location, digest);
    if (hash) {
      const d = `sha256:${hash.digest('hex')}`;
      if (d !== digest) throw new RegistryDigestError(`${what}: digest mismatch (got ${d})`, this.location, digest);
    }
  }

  /**
   * `length` bytes of a blob from `offset` (fewer at its end). Not verified: a part of a blob has
   * no digest of its own, so callers must check what they read at their level (chunk IDs,
   * diff_ids, a later whole-blob read).
   */
  async getBlobRange(digest: string, offset: number, length: number, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
    this.checkDigest(digest);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 1 || length > DEFAULT_MAX_BLOB) {
      throw new UsageError(`blob range ${offset}+${length} of ${this.location}: offset must be ≥ 0 and length 1…${DEFAULT_MAX_BLOB}`);
    }
    const what = `blob ${digest} of ${this.location} (bytes ${offset}-${offset + length - 1})`;
    const x: Exchange = {
      method: 'GET',
      url: `/v2/${this.repository}/blobs/${digest}`,
      headers: { range: `bytes=${offset}-${offset + length - 1}` },
      scopes: this.pull,
      what,
      ...(opts.signal ? { signal: opts.signal } : {}),
    };
    const r = await this.conn.open(x);
    if (!isStream(r)) {
      if (r.status === 404) throw new NotFoundError(`blob ${digest} of ${this.location} not found`);
      if (r.status === 416) return Buffer.alloc(0);
      throw this.conn.statusError(x, r);
    }
    // 206: the range asked for; 200: the whole blob, whose first `offset` bytes are dropped.
    if (r.status === 206) checkRangeStart(r, offset, `${what}: `);
    const parts: Buffer[] = [];
    let have = 0;
    try {
      for await (const b of skipBytes(r.body as AsyncIterable<Buffer>, r.status === 206 ? 0 : offset)) {
        parts.push(b.subarray(0, length - have));
        have += Math.min(b.length, length - have);
        if (have >= length) break;
      }
    } finally {
      discard(r.body);
    }
    return Buffer.concat(parts, have);
  }

  async putBlob(digest: string, source: BlobSource | Buffer, opts: { mountFrom?: string; signal?: AbortSignal } = {}): Promise<UploadResult> {
    this.checkDigest(digest);
    const src: BlobSource = Buffer.isBuffer(source)
      ? {
          size: source.length,
          open: async function* () {
            yield source;
          },
        }
      : source;
    if (Buffer.isBuffer(source)) {
      const actual = sha256Digest(source);
      if (actual !== digest) throw new UsageError(`blob for ${this.location}: the bytes hash to ${actual}, not ${digest}`);
    }
    if (!Number.isSafeInteger(src.size) || src.size < 0) throw new UsageError(`blob ${digest} for ${this.location}: size must be a non-negative integer`);
    const have = await this.headBlob(digest);
    if (have !== undefined) {
      if (have !== src.size) throw new RegistryDigestError(`blob ${digest} of ${this.location}: the registry has it with ${have} bytes, not ${src.size}`, this.location, digest);
      return 'exists';
    }
    const mountFrom = opts.mountFrom !== undefined && opts.mountFrom !== this.repository ? parseRepoLocation(`${this.registry}/${opts.mountFrom}`).repository : undefined;
    return uploadBlob(this.conn, this.repository, digest, src, { ...(mountFrom ? { mountFrom } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}

/** The media type of a manifest answer: Content-Type without parameters, else the document's own. */
function mediaTypeOf(r: Reply): string {
  const ct = String(r.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  if (ct !== '' && ct !== 'application/json' && ct !== 'text/plain' && ct !== 'application/octet-stream') return ct;
  try {
    const doc = JSON.parse(r.body.toString('utf8')) as { mediaType?: unknown };
    if (typeof doc.mediaType === 'string') return doc.mediaType;
  } catch {
    // not JSON: the caller's parser says so
  }
  return ct;
}

/** A client for `host[:port]/repo` (Docker Hub short names allowed). */
