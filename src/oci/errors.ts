/**
 * The image-source error: an image's content is malformed, of a kind bootfs does not read, or does
 * not match its digests and sizes. Exit code 3 (integrity), like a corrupt chunk or index.
 */
import { BootfsError, ExitCode } from '../errors.js';

/** Stable code of ImageFormatError. */
export const ERR_IMAGE = 'ERR_IMAGE' as const;

/**
 * Malformed, unsupported or mismatching image content. The message names the object and the image,
 * e.g. `layer sha256:ab12… of oci:/x:latest: digest mismatch (got sha256:…)`.
 */
export class ImageFormatError extends BootfsError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: ERR_IMAGE, exitCode: ExitCode.integrity, cause });
  }
}
