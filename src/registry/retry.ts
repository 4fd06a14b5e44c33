/**
 * What the registry client retries, and how: network errors,
 * per-try timeouts and 5xx are retried with exponential back-off (±50 % jitter) within a deadline;
 * 4xx, TLS and our own errors never are (as src/store/http.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errors as undiciErrors } from 'undici';
import { BootfsError } from '../errors.js';
import { TryTimeout } from '../util/http-body.js';
import { backoffDelay, type RetryOptions } from '../util/limits.js';

/** A 5xx answer (retryable). */
export class RetryableStatus extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`HTTP ${status}${detail ? ` (${detail})` : ''}`);
  }
}

/** How often and how patiently to try. */
export type RetryPolicy = Required<Pick<RetryOptions, 'tries' | 'deadlineMs' | 'backoffMs' | 'maxBackoffMs'>>;

/** Why withRetries stopped: the last error, how many tries ran, whether the deadline ended it. */
export class GaveUp extends Error {
  constructor(
    readonly last: unknown,
    readonly tries: number,
    readonly deadlineHit: boolean,
  ) {
    super(last instanceof Error ? last.message : String(last));
  }
}

/** The back-off before retry number `attempt` (1-based). */
export function backoff(p: RetryPolicy, attempt: number): number {
  return backoffDelay(attempt, p.backoffMs, p.maxBackoffMs);
}

/**
 * `fn` until it returns, throws something not worth retrying, runs out of tries, or the deadline
 * (passed to `fn` for its requests) passes: then GaveUp. An abort of `signal` is thrown as is.
 */
export async function withRetries<T>(p: RetryPolicy, signal: AbortSignal | undefined, fn: (deadline: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = AbortSignal.timeout(p.deadlineMs);
  let last: unknown;
  let tries = 0;
  for (let attempt = 0; attempt < p.tries; attempt++) {
    if (attempt > 0) {
      try {
        await sleep(backoff(p, attempt), undefined, { signal: signal ? AbortSignal.any([signal, deadline]) : deadline });
      } catch {
        break;
      }
    }
    tries++;
    try {
      return await fn(deadline);
    } catch (err) {
      last = err;
      if (signal?.aborted) throw signal.reason;
      if (deadline.aborted || !isRetryable(err)) break;
    }
  }
  if (signal?.aborted) throw signal.reason;
  throw new GaveUp(last, tries, deadline.aborted);
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return code;
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return typeof cause === 'string' ? cause : undefined;
}

/** The server answered a TLS hello with something that is not TLS (a plain-http server). */
export function isNotTls(err: unknown): boolean {
  const code = codeOf(err);
  return code !== undefined && /^(EPROTO|ERR_SSL_(WRONG_VERSION_NUMBER|HTTP_REQUEST|PACKET_LENGTH_TOO_LONG|RECORD_LAYER_FAILURE))$/.test(code);
}

/** The server's certificate was not accepted. */
export function isTlsCertError(err: unknown): boolean {
  const code = codeOf(err);
  return code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_/.test(code);
}

/** Network failures, per-try timeouts and 5xx are worth another try; 4xx, TLS and our own errors are not. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof RetryableStatus || err instanceof TryTimeout) return true;
  if (err instanceof BootfsError || isTlsCertError(err) || isNotTls(err)) return false;
  if (err instanceof undiciErrors.InvalidArgumentError || err instanceof undiciErrors.RequestContentLengthMismatchError) return false;
  if (err instanceof undiciErrors.UndiciError) return true;
  const code = codeOf(err);
  return code !== undefined && /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|UND_ERR_.*)$/.test(code);
}

/** The `{"errors":[{code,message}]}` of a registry error body as text, or its first 200 characters. */
export function errorDetail(body: Buffer): string {
  const text = body.toString('utf8');
  try {
    const doc = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    if (Array.isArray(doc.errors) && doc.errors.length > 0) {
      return doc.errors
        .slice(0, 3)
        .map((e) => [e.code, e.message].filter((s) => typeof s === 'string' && s !== '').join(': '))
        .join('; ');
    }
  } catch {
    // not JSON
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, 200);
}

