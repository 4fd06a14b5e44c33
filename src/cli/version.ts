/** The bootfs version (package.json), printed by --version and recorded in what bootfs writes. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The version in the nearest package.json above this module. Looked up rather than imported at a
 * fixed relative path, because the module runs from several depths: src/ (tests), dist/src/ (tsc),
 * dist/cli/ (the bundled CLI) and a boot image's runtime directory.
 */
function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const up = path.dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

export const BOOTFS_VERSION: string = packageVersion();
