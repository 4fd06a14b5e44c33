/**
 * Content digests. Only sha256 is supported; a digest must match SHA256_DIGEST before it is used for
 * anything, in particular before it becomes part of a path (blobs/sha256/<hex>), so a hostile
 * manifest cannot reach outside the layout with a digest like `sha256:../../etc/passwd`.
 */
import { createHash } from 'node:crypto';
import { ImageFormatError } from './errors.js';

/** The only digest form bootfs accepts: lower-case hex SHA-256. */
export const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;

/** The OCI digest grammar (any algorithm), used to tell "unsupported algorithm" from "garbage". */
export const ANY_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Why `value` is not a usable digest, or undefined when it is one. */
export function digestProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'digest is missing or not a string';
  if (SHA256_DIGEST.test(value)) return undefined;
  if (ANY_DIGEST.test(value)) {
    const alg = value.slice(0, value.indexOf(':'));
    if (alg !== 'sha256') return `digest algorithm ${alg} is not supported (only sha256)`;
  }
  return `${JSON.stringify(short(value))} is not a sha256 digest (sha256: and 64 lower-case hex digits)`;
}

/** `value` as a validated sha256 digest; ImageFormatError naming `what` otherwise. */
export function checkDigest(value: unknown, what: string): string {
  const problem = digestProblem(value);
  if (problem !== undefined) throw new ImageFormatError(`${what}: ${problem}`);
  return value as string;
}

/** The path of a blob inside an OCI layout; the digest must already be validated. */
export function blobPath(digest: string): string {
  if (!SHA256_DIGEST.test(digest)) throw new Error(`blobPath: unvalidated digest ${digest}`);
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}

/** sha256 digest (`sha256:<hex>`) of some bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Cut long hostile strings in messages. */
export function short(s: string, max = 100): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}
