/** Whole-file reads and atomic writes of the small files bootfs produces (indexes). */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errnoCode, IoError, NotFoundError } from '../errors.js';

/** Read a whole file; ENOENT → NotFoundError(`WHAT PATH not found`), other errors → IoError naming it. */
export async function readNamedFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new NotFoundError(`${what} ${path} not found`);
    throw new IoError(`cannot read ${what} ${path}: ${(err as Error).message}`, err);
  }
}

/**
 * Write `bytes` to `path` atomically: a temp file `.<name>.<random>.tmp` beside it (dot-prefixed and
 * ending in .tmp, so globs and store scans never pick up a half-written file), fsync, rename, then
 * fsync the directory (best effort). On failure the temp file is removed and IoError names `path`.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array, what: string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    const fh = await open(tmp, 'wx', 0o666);
    created = true;
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    created = false;
  } catch (err) {
    if (created) await unlink(tmp).catch(() => undefined);
    throw new IoError(`cannot write ${what} ${path}: ${(err as Error).message}`, err);
  }
  try {
    const fh = await open(dir, 'r');
    await fh.sync().finally(() => fh.close());
  } catch {
    // The file is in place; a file system that cannot fsync a directory gives no stronger guarantee.
  }
}
