/** Registry client options: defaults and validation in one place. */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Agent } from 'undici';
import { errnoCode, IoError, NotFoundError, UsageError } from '../errors.js';
import { positiveInt, type RetryOptions } from '../util/limits.js';
import type { CredentialOptions } from './credentials.js';

/**
 * How to reach and authenticate to a registry. Retries (RetryOptions): timeoutMs is one try, from
 * sending to the last body byte, for small requests and the inactivity limit for streams (default
 * 30 000); deadlineMs one operation across all tries (default 120 000; streams and uploads are
 * bounded by progress instead); tries per operation (default 4; for uploads and streams: tries in
 * a row without progress); backoffMs 250 and maxBackoffMs 8 000 by default.
 */
export interface RegistryOptions extends CredentialOptions, RetryOptions {
  /**
   * Verify TLS certificates (default true). false: certificates are not checked, and plain http is
   * used when the registry does not speak TLS. Loopback registries may be plain http either way.
   */
  tlsVerify?: boolean;
  /** A PEM file of CA certificates trusted in addition to the system's. */
  caFile?: string;
  /** Requests in flight at once, per repository (default 8). */
  concurrency?: number;
  /** Blobs up to this size are uploaded with one PUT; larger ones in PATCH chunks (default 32 MiB). */
  monolithicMaxBytes?: number;
  /** Size of one PATCH chunk (default 32 MiB). */
  chunkBytes?: number;
  /** Extra undici Agent options. */
  agentOptions?: Agent.Options;
}

/** Options with defaults applied. */
export interface ResolvedRegistryOptions extends Required<RetryOptions> {
  tlsVerify: boolean;
  ca: string[] | undefined;
  caFile: string | undefined;
  concurrency: number;
  monolithicMaxBytes: number;
  chunkBytes: number;
  agentOptions: Agent.Options;
  credentials: CredentialOptions;
}

const KIND = 'registry';

/** Apply defaults, validate, and read the CA file. */
export function resolveRegistryOptions(o: RegistryOptions = {}): ResolvedRegistryOptions {
  if (o.tlsVerify !== undefined && typeof o.tlsVerify !== 'boolean') throw new UsageError('registry option tlsVerify must be true or false');
  let ca: string[] | undefined;
  if (o.caFile !== undefined) {
    let pem: string;
    try {
      pem = readFileSync(o.caFile, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new NotFoundError(`CA file ${o.caFile} not found (--ca-file)`);
      throw new IoError(`cannot read CA file ${o.caFile}: ${(err as Error).message}`, err);
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`CA file ${o.caFile} holds no PEM certificate (--ca-file)`);
    // Setting `ca` replaces Node's roots: keep them, so the file adds to the system's trust.
    ca = [...rootCertificates, pem];
  }
  const monolithicMaxBytes = positiveInt(KIND, 'monolithicMaxBytes', o.monolithicMaxBytes, 32 << 20);
  const chunkBytes = positiveInt(KIND, 'chunkBytes', o.chunkBytes, 32 << 20);
  return {
    tlsVerify: o.tlsVerify ?? true,
    ca,
    caFile: o.caFile,
    concurrency: positiveInt(KIND, 'concurrency', o.concurrency, 8),
    timeoutMs: positiveInt(KIND, 'timeoutMs', o.timeoutMs, 30_000),
    deadlineMs: positiveInt(KIND, 'deadlineMs', o.deadlineMs, 120_000),
    tries: positiveInt(KIND, 'tries', o.tries, 4),
    backoffMs: positiveInt(KIND, 'backoffMs', o.backoffMs, 250),
    maxBackoffMs: positiveInt(KIND, 'maxBackoffMs', o.maxBackoffMs, 8_000),
    monolithicMaxBytes,
    chunkBytes,
    agentOptions: o.agentOptions ?? {},
    credentials: {
      ...(o.creds !== undefined ? { creds: o.creds } : {}),
      ...(o.authFiles !== undefined ? { authFiles: o.authFiles } : {}),
      ...(o.env !== undefined ? { env: o.env } : {}),
    },
  };
}

/** Parse a `--tls-verify` value: true/false (also 1/0, yes/no). */
export { parseTlsVerify } from '../util/parse.js';
