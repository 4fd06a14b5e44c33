/** Bearer-token checks for the HTTP store server. */
import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Constant-time comparison of a presented token with the expected one. Both are hashed first so
 * the comparison length (and so its time) does not depend on the expected token's length.
 */
export function tokensEqual(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  // Equal digests of different strings are not a practical concern for SHA-256; the length check
  // keeps the result exact anyway (it leaks only what the hash comparison already decided).
  return timingSafeEqual(a, b) && presented.length === expected.length;
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}

/** True when `header` carries one of the accepted tokens. */
export function authorized(header: string | undefined, accepted: readonly string[]): boolean {
  const presented = bearerToken(header);
  if (presented === undefined) return false;
  let ok = false;
  // Check every token (no early exit) so timing does not reveal which one matched.
  for (const t of accepted) ok = tokensEqual(presented, t) || ok;
  return ok;
}
