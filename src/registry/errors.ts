/**
 * Registry errors callers branch on. Everything else the client raises is a NotFoundError (a
 * manifest or blob the registry does not have, exit 2), a UsageError (bad options) or an IoError
 * (network, 5xx after retries, unexpected statuses).
 */
import { BootfsError } from '../errors.js';
import { ImageFormatError } from '../oci/errors.js';

/**
 * The registry refused the credentials (401 after a fresh token, or the token endpoint said no) or
 * denied access (403). Never retried. Code ERR_IO, exit 1: the user fixes it with other credentials.
 */
export class RegistryAuthError extends BootfsError {
  constructor(
    message: string,
    /** `host[:port]/repo`. */
    readonly location: string,
    /** The HTTP status that ended it (401 or 403), when there was one. */
    readonly status?: number,
  ) {
    super(message, { code: 'ERR_IO' });
  }
}

/**
 * A blob or manifest whose bytes do not hash to the digest they were asked for (or that the
 * registry named), or whose length is not the expected one. Code ERR_IMAGE, exit 3, as every image
 * digest mismatch.
 */
export class RegistryDigestError extends ImageFormatError {
  constructor(
    message: string,
    readonly location: string,
    readonly digest: string,
  ) {
    super(message);
  }
}
