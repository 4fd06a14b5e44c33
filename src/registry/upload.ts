/**
 * Blob uploads (distribution spec, "pushing blobs"):
 *
 *   POST /v2/NAME/blobs/uploads/[?mount=DIGEST&from=OTHER]  → 201 mounted, or 202 + Location
 *   small blobs:  PUT Location?digest=D  with the whole body                       → 201
 *   large blobs:  PATCH Location  Content-Range: a-b  (each answer: 202, a new Location, Range: 0-b)
 *                 then PUT Location?digest=D with no body                          → 201
 *
 * Always the newest Location is used (distribution encodes the upload state in it). After a
 * network error, a 5xx or a refreshed token, the upload's status (GET Location → Range) says how
 * much the registry holds and the upload resumes there; an upload the registry no longer knows
 * (404, as distribution answers after an interrupted PATCH) starts over, unless a HEAD shows the
 * blob arrived after all. `tries` failures in a row without progress end it.
 *
 * The source is read through a one-piece look-ahead: its last bytes are sent only after it has
 * ended without error. Sources that verify themselves while streaming (writeImage's layers check
 * digest and diff_id at their end) therefore fail before the registry has the whole blob, and a
 * blob that does not match what its source promised is never completed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BootfsError, IoError } from '../errors.js';
import { repositoryScope } from './auth.js';
import type { Exchange, Reply, RegistryConnection } from './connection.js';
import { RegistryAuthError, RegistryDigestError } from './errors.js';
import type { BlobSource, UploadResult } from './types.js';

/** 416 on a PATCH: the registry's offset and ours disagree; start a new session. */
class RangeMismatch extends IoError {}

/** A 5xx during an upload step (retried through the status query). */
class RetryableUpload extends IoError {}

/** Reads a source in order, exactly `size` bytes, holding back one piece until the next is known. */
class SourceCursor {
  /** Bytes handed out so far. */
  position = 0;
  /** Set when the source itself failed (never retried). */
  failure: unknown;
  private readonly it: AsyncIterator<Uint8Array>;
  private pending: Uint8Array | undefined;
  private ended = false;

  constructor(private readonly source: BlobSource, private readonly what: string) {
    try {
      this.it = source.open()[Symbol.asyncIterator]();
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  /** The next piece of the source, or undefined at its (successful) end. */
  private async pull(): Promise<Uint8Array | undefined> {
    if (this.ended) return undefined;
    let r: IteratorResult<Uint8Array>;
    try {
      r = await this.it.next();
    } catch (err) {
      this.failure = err instanceof BootfsError ? err : new IoError(`${this.what}: reading the source failed: ${(err as Error).message}`, err);
      throw this.failure;
    }
    if (r.done) {
      this.ended = true;
      return undefined;
    }
    return r.value;
  }

  private fail(message: string): never {
    this.failure = new IoError(`${this.what}: ${message}`);
    throw this.failure;
  }

  /** Discard `n` bytes (to resume at the registry's offset); reaching the end checks the source ended cleanly. */
  async skip(n: number): Promise<void> {
    for await (const _ of this.take(n)) {
      // discarded
    }
  }

  /**
   * Exactly `n` bytes. When they reach the end of the blob, the last piece is released only after
   * the source has ended (so its own end-of-stream checks have passed).
   */
  async *take(n: number, holdLast = true): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      let piece = this.pending ?? (await this.pull());
      this.pending = undefined;
      if (piece === undefined) this.fail(`the source ended after ${this.position} of ${this.source.size} bytes`);
      if (piece.length === 0) continue;
      if (piece.length > left) {
        this.pending = piece.subarray(left);
        piece = piece.subarray(0, left);
      }
      left -= piece.length;
      if (left === 0 && holdLast && this.position + piece.length === this.source.size) {
        // The blob's last bytes: the source must end cleanly first.
        if (this.pending !== undefined && this.pending.length > 0) this.fail(`the source is longer than its ${this.source.size} bytes`);
        for (;;) {
          const extra = await this.pull();
          if (extra === undefined) break;
          if (extra.length > 0) this.fail(`the source is longer than its ${this.source.size} bytes`);
        }
      }
      this.position += piece.length;
      yield piece;
    }
  }

  async close(): Promise<void> {
    await this.it.return?.().catch(() => undefined);
  }
}

/** `url` with `digest=D` added to its query. */
function withDigest(url: string, digest: string): string {
  const u = new URL(url);
  u.searchParams.set('digest', digest);
  return u.href;
}

/** The Location of an upload answer, absolute. */
function locationOf(r: Reply, what: string): string {
  const loc = r.headers.location;
  if (typeof loc !== 'string' || loc === '') throw new IoError(`${what}: the registry answered ${r.status} without a Location`);
  return new URL(loc, r.url).href;
}

/** The offset after the registry's `Range: 0-N` (N+1; "0-0" is read as nothing, see the 416 handling). */
function rangeEnd(r: Reply): number | undefined {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(String(r.headers.range ?? ''));
  if (!m) return undefined;
  const last = Number(m[1]);
  return last === 0 ? 0 : last + 1;
}

/** Upload `digest` from `source` into `repository` (the caller checked it is absent). */
export async function uploadBlob(
  conn: RegistryConnection,
  repository: string,
  digest: string,
  source: BlobSource,
  opts: { mountFrom?: string; signal?: AbortSignal } = {},
): Promise<Exclude<UploadResult, 'exists'>> {
  const what = `blob ${digest} to ${conn.location}`;
  const push = [repositoryScope(repository, 'pull,push')];
  const sig = opts.signal ? { signal: opts.signal } : {};
  const base = `/v2/${repository}/blobs/uploads/`;

  /** A new upload session (or a finished mount). */
  const start = async (mountFrom?: string): Promise<string | 'mounted'> => {
    const url = mountFrom ? `${base}?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}` : base;
    const scopes = mountFrom ? [...push, repositoryScope(mountFrom, 'pull')] : push;
    const x: Exchange = { method: 'POST', url, scopes, what, headers: { 'content-length': '0' }, ...sig };
    const r = await conn.call(x);
    if (r.status === 201 && mountFrom) {
      checkDigestHeader(r, digest, what, conn.location);
      return 'mounted';
    }
    if (r.status === 202) return locationOf(r, what);
    throw conn.statusError(x, r);
  };

  /** How much of the upload the registry holds, or 'gone'. */
  const status = async (session: string): Promise<{ session: string; offset: number } | 'gone'> => {
    const x: Exchange = { method: 'GET', url: session, scopes: push, what, ...sig };
    const r = await conn.call(x);
    if (r.status === 404) return 'gone';
    if (r.status !== 204 && r.status !== 200) throw conn.statusError(x, r);
    const end = rangeEnd(r);
    return { session: r.headers.location ? locationOf(r, what) : session, offset: end ?? 0 };
  };

  let begun: string | 'mounted';
  try {
    begun = await start(opts.mountFrom);
  } catch (err) {
    // No pull right on the other repository (a 401/403 for the mount's scopes) is no reason to
    // fail the push: upload instead.
    if (!(opts.mountFrom && err instanceof RegistryAuthError)) throw err;
    begun = await start();
  }
  if (begun === 'mounted') return 'mounted';
  let session = begun;
  let offset = 0;
  let cursor: SourceCursor | undefined;
  let failures = 0;
  const reopen = async (at: number): Promise<SourceCursor> => {
    await cursor?.close();
    cursor = new SourceCursor(source, what);
    await cursor.skip(at);
    return cursor;
  };

  try {
    for (;;) {
      try {
        if (cursor === undefined || cursor.position !== offset) cursor = await reopen(offset);
        if (offset === 0 && source.size <= conn.opts.monolithicMaxBytes) {
          // Small blob: one PUT with the body.
          const x: Exchange = {
            method: 'PUT',
            url: withDigest(session, digest),
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(source.size) },
            body: cursor.take(source.size),
            scopes: push,
            what,
            ...sig,
          };
          const r = await conn.once(x);
          if (r.status === 201) return finish(r, digest, what, conn.location);
          throw failedStatus(conn, x, r, digest);
        }
        while (offset < source.size) {
          const n = Math.min(conn.opts.chunkBytes, source.size - offset);
          const x: Exchange = {
            method: 'PATCH',
            url: session,
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(n), 'content-range': `${offset}-${offset + n - 1}` },
            body: cursor.take(n),
            scopes: push,
            what,
            ...sig,
          };
          const r = await conn.once(x);
          if (r.status !== 202) throw failedStatus(conn, x, r, digest);
          session = locationOf(r, what);
          const end = rangeEnd(r);
          offset += n;
          failures = 0;
          if (end !== undefined && end !== offset) {
            // The registry holds a different amount than sent: continue from what it says.
            offset = end;
          }
          if (cursor.position !== offset) cursor = await reopen(offset);
        }
        const x: Exchange = { method: 'PUT', url: withDigest(session, digest), headers: { 'content-length': '0' }, scopes: push, what, ...sig };
        const r = await conn.once(x);
        if (r.status === 201) return finish(r, digest, what, conn.location);
        throw failedStatus(conn, x, r, digest);
      } catch (err) {
        if (cursor?.failure !== undefined) throw cursor.failure;
        if (opts.signal?.aborted) throw opts.signal.reason;
        const restart = err instanceof RangeMismatch;
        if (!restart && !(err instanceof RetryableUpload) && !conn.retryable(err)) throw err;
        failures++;
        if (failures >= conn.opts.tries) {
          const detail = (err as Error).message;
          const reason = detail.startsWith(`${what}: `) ? detail.slice(what.length + 2) : detail;
          throw new IoError(`${what}: upload failed after ${failures} tries in a row without progress: ${reason}`, err);
        }
        await sleep(conn.backoff(failures), undefined, sig);
        const s = restart ? 'gone' : await status(session).catch((e: unknown) => (conn.retryable(e) ? undefined : Promise.reject(e)));
        if (s === undefined) continue; // the status query failed too: try again from where we were
        if (s === 'gone') {
          // The registry may have completed the blob before the failure reached us.
          const head = await conn.call({ method: 'HEAD', url: `/v2/${repository}/blobs/${digest}`, scopes: push, what, ...sig });
          if (head.status === 200) return 'uploaded';
          session = (await start()) as string;
          offset = 0;
        } else {
          if (s.offset > offset) failures = 0; // progress the registry kept
          session = s.session;
          offset = s.offset;
        }
      }
    }
  } finally {
    await cursor?.close();
  }
}

/** The error for an unexpected upload answer: 5xx retryable, digest problems as RegistryDigestError. */
function failedStatus(conn: RegistryConnection, x: Exchange, r: Reply, digest: string): Error {
  if (r.status === 416) return new RangeMismatch(`${x.what}: ${x.method} answered 416 (the registry holds a different amount)`);
  if (r.status >= 500) return new RetryableUpload(conn.statusError(x, r).message);
  const e = conn.statusError(x, r);
  if (r.status === 400 && /DIGEST_INVALID|digest did not match|SIZE_INVALID/i.test(e.message)) {
    return new RegistryDigestError(`${x.what}: the registry refused the uploaded bytes as not matching ${digest} (${e.message.slice(x.what.length + 2)})`, conn.location, digest);
  }
  return e;
}

/** Check the Docker-Content-Digest of a 201, then report success. */
function finish(r: Reply, digest: string, what: string, location: string): 'uploaded' {
  checkDigestHeader(r, digest, what, location);
  return 'uploaded';
}

function checkDigestHeader(r: Reply, digest: string, what: string, location: string): void {
  const got = r.headers['docker-content-digest'];
  if (typeof got === 'string' && got !== '' && got !== digest) throw new RegistryDigestError(`${what}: the registry stored it as ${got}`, location, digest);
}

