/** The bootfs version (package.json), printed by --version and recorded in what bootfs writes. */
import { createRequire } from 'node:module';

const pkg = createRequire(import.meta.url)('../../../package.json') as { version: string };

export const BOOTFS_VERSION: string = pkg.version;
