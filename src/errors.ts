/**
 * Errors with stable codes. Callers branch on `code` (or the subclass), never on message text.
 * Messages are lower-case, name the object and the place, and say what to do when the user can fix it.
 */

/** Process exit codes used by the CLI; documented in README and `bootfs --help`. */
export const ExitCode = {
  ok: 0,
  error: 1,
  notFound: 2,
  integrity: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type BootfsErrorCode =
  | 'ERR_BOOTFS'
  | 'ERR_USAGE'
  | 'ERR_CHUNK_NOT_FOUND'
  | 'ERR_CHUNK_CORRUPT'
  | 'ERR_INDEX_FORMAT'
  | 'ERR_NOT_FOUND'
  | 'ERR_IO'
  | 'ERR_IMAGE'
  | 'ERR_LAYER'
  | 'ERR_UNSAFE_PATH'
  | 'ERR_FUSE';

/** Base class of every error bootfs raises on purpose. */
export class BootfsError extends Error {
  readonly code: BootfsErrorCode;
  readonly exitCode: ExitCode;
  constructor(message: string, opts: { code?: BootfsErrorCode; exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = opts.code ?? 'ERR_BOOTFS';
    this.exitCode = opts.exitCode ?? ExitCode.error;
  }
}

/** Bad flags, options or arguments: the user can fix the call. */
export class UsageError extends BootfsError {
  constructor(message: string) {
    super(message, { code: 'ERR_USAGE' });
  }
}

/** A chunk is absent from a store. Routers and caches branch on this to try the next store. */
export class ChunkNotFoundError extends BootfsError {
  readonly chunkId: string;
  readonly location: string;
  constructor(chunkId: string, location: string) {
    super(`chunk ${chunkId} not found in ${location}`, { code: 'ERR_CHUNK_NOT_FOUND', exitCode: ExitCode.notFound });
    this.chunkId = chunkId;
    this.location = location;
  }
}

/** A chunk's stored bytes do not decode, or decode to bytes whose digest is not the chunk ID. */
export class ChunkCorruptError extends BootfsError {
  readonly chunkId: string;
  readonly location: string;
  readonly reason: string;
  constructor(chunkId: string, location: string, reason: string) {
    super(`chunk ${chunkId} in ${location} is corrupt: ${reason}`, {
      code: 'ERR_CHUNK_CORRUPT',
      exitCode: ExitCode.integrity,
    });
    this.chunkId = chunkId;
    this.location = location;
    this.reason = reason;
  }
}

/** An index file (.caibx, bootfs index) is malformed, truncated or of an unsupported kind. */
export class IndexFormatError extends BootfsError {
  readonly file: string;
  constructor(file: string, reason: string) {
    super(`index ${file} is invalid: ${reason}`, { code: 'ERR_INDEX_FORMAT', exitCode: ExitCode.integrity });
    this.file = file;
  }
}

/** A named input (file, directory, store) does not exist. */
export class NotFoundError extends BootfsError {
  constructor(message: string) {
    super(message, { code: 'ERR_NOT_FOUND', exitCode: ExitCode.notFound });
  }
}

/** A file-system or network operation failed; wraps the system error as `cause`. */
export class IoError extends BootfsError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'ERR_IO', cause });
  }
}

/** The system error code (`ENOENT`, `EEXIST`, …) of an unknown thrown value, if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
