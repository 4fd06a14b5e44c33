/**
 * The runtime layer of a boot image: the boot stub and the modules it loads, taken from this bootfs
 * installation (its built dist/ and node_modules/) and laid out under /bootfs/runtime. Nothing
 * in it depends on the image being converted, and the tar is written deterministically (fixed
 * times, owners and modes, sorted), so every conversion by the same bootfs version produces the
 * same layer digest and registries and nodes store it once.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BootfsError } from '../errors.js';
import type { TarEntry } from '../oci/tar-write.js';
import { RUNTIME_DIR } from './config.js';

/** Packages the stub loads at run time (zstd for chunks, undici and ssh2 for remote stores) and theirs. */
const RUNTIME_PACKAGES = ['zstd-napi', 'undici', 'ssh2', 'asn1', 'safer-buffer', 'bcrypt-pbkdf', 'tweetnacl'];
/** Within a package: files a running program never reads. */
const SKIP = /(^|\/)(test|tests|docs|\.github)(\/|$)|\.(md|map|ts|gyp|gypi|cc|c|h|mk)$|(^|\/)Makefile$/;
/** zstd-napi ships its C sources and build tree; only the compiled addon and its loader are needed. */
const ZSTD_KEEP = /^(package\.json|binding\.js|LICENSE|NOTICE|dist\/.*\.js|build\/Release\/[^/]+\.node)$/;

/** The node binary a boot image runs the stub with: the official Node images' path. */
export const STUB_NODE = '/usr/local/bin/node';
export const STUB_MAIN = `${RUNTIME_DIR}/dist/bootstub/main.js`;

/** The root of this bootfs installation (the directory with its package.json and dist/). */
export function installRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'bootfs') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new BootfsError('cannot find the bootfs installation (package.json) to build the runtime layer from');
    dir = up;
  }
}

async function walk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(dir, r)));
    else if (e.isFile()) out.push(r);
  }
  return out;
}

async function fileEntry(source: string, dest: string): Promise<TarEntry> {
  const st = await stat(source);
  return { path: dest, type: 'file', mode: st.mode & 0o111 ? 0o755 : 0o644, content: { file: source } };
}

/** The runtime layer's entries (paths relative to the image root), from the installation at `root`. */
export async function runtimeEntries(root = installRoot()): Promise<TarEntry[]> {
  const base = RUNTIME_DIR.replace(/^\//, '');
  const dist = path.join(root, 'dist');
  if (!existsSync(path.join(dist, 'bootstub', 'main.js'))) throw new BootfsError(`${dist}/bootstub/main.js is missing: build bootfs first (npm run build)`);
  const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const entries: TarEntry[] = [
    { path: `${base}/package.json`, type: 'file', mode: 0o644, content: Buffer.from(`${JSON.stringify({ name: 'bootfs-runtime', version, type: 'module', private: true })}\n`) },
  ];
  for (const sub of ['src', 'bootstub']) {
    for (const f of await walk(path.join(dist, sub))) {
      if (f.endsWith('.js')) entries.push(await fileEntry(path.join(dist, sub, f), `${base}/dist/${sub}/${f}`));
    }
  }
  for (const pkg of RUNTIME_PACKAGES) {
    const dir = path.join(root, 'node_modules', pkg);
    if (!existsSync(dir)) throw new BootfsError(`${dir} is missing: the runtime layer needs the installed package ${pkg} (npm ci)`);
    for (const f of await walk(dir)) {
      if (f.startsWith('node_modules/')) continue;
      if (pkg === 'zstd-napi' ? !ZSTD_KEEP.test(f) : SKIP.test(f) && f !== 'package.json') continue;
      entries.push(await fileEntry(path.join(dir, f), `${base}/node_modules/${pkg}/${f}`));
    }
  }
  return entries;
}
