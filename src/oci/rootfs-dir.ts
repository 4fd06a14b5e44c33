/**
 * The dir: transport: a plain root filesystem directory. It has no layers and no config; this
 * module only checks that it is a directory (and not skopeo's own `dir:` layout, which holds a
 * manifest and blobs rather than a root filesystem) and gives it a default config.
 */
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { IoError, NotFoundError, UsageError, errnoCode } from '../errors.js';

const SKOPEO_DIR_VERSION = 'Directory Transport Version';

async function startsWith(file: string, prefix: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return false;
  }
  try {
    const buf = Buffer.alloc(prefix.length);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.toString('latin1', 0, bytesRead) === prefix;
  } finally {
    await fh.close();
  }
}

/** Check `dir` (of reference `image`) and return its absolute path. */
export async function checkRootfsDir(dir: string, image: string): Promise<string> {
  const abs = path.resolve(dir);
  try {
    const st = await stat(abs);
    if (!st.isDirectory()) throw new UsageError(`${image}: ${dir} is not a directory (dir: takes a root filesystem directory)`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`${image}: directory ${dir} not found`);
    throw new IoError(`${image}: cannot read ${dir}: ${(err as Error).message}`, err);
  }
  if ((await startsWith(path.join(abs, 'version'), SKOPEO_DIR_VERSION)) && (await stat(path.join(abs, 'manifest.json')).catch(() => null))) {
    throw new UsageError(
      `${image}: ${dir} is a skopeo dir: image layout, not a root filesystem; convert it with skopeo copy dir:${dir} oci:LAYOUT:TAG and use oci:LAYOUT:TAG`,
    );
  }
  return abs;
}

