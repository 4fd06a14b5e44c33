/** A read outside the bounds of a stream or file: a bug in the caller or a corrupt index. */
import { BootfsError, ExitCode } from '../errors.js';

export class RangeError extends BootfsError {
  constructor(message: string) {
    super(message, { code: 'ERR_BOOTFS', exitCode: ExitCode.integrity });
  }
}
