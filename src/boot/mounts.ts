/**
 * The writable root a boot stub builds, and the runtime's mounts carried into it. The container
 * runtime prepared /proc, /sys, /dev, /etc/resolv.conf, /etc/hosts, /etc/hostname, secrets and
 * volumes for the stub's root; the app runs in a new root (an overlay over the FUSE mount of the
 * image), so each of those is bind-mounted to the same place there.
 */
import { lstat, mkdir, open, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { BootfsError } from '../errors.js';
import { runTool } from '../util/run-tool.js';

export interface MountInfo {
  id: number;
  parent: number;
  /** The mount's root inside its filesystem (for bind mounts: the source path). */
  root: string;
  mountPoint: string;
  options: string[];
  fsType: string;
  source: string;
}

/** Undo mountinfo's octal escapes (\040 for a space, …). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parse /proc/self/mountinfo text. */
export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [left, right] = line.split(' - ');
    const f = left!.split(' ');
    const r = (right ?? '').split(' ');
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      root: unescape(f[3] ?? ''),
      mountPoint: unescape(f[4] ?? ''),
      options: (f[5] ?? '').split(','),
      fsType: r[0] ?? '',
      source: unescape(r[1] ?? ''),
    });
  }
  return out;
}

function under(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * The runtime's mounts to carry into the app's root: everything mounted in the stub's view except
 * the root itself, what /proc, /sys and /dev cover (they are carried whole), and bootfs's own
 * places (the boot directory, the node cache, which the app must not be able to poison).
 */
export function mountsToCarry(all: MountInfo[], exclude: string[]): MountInfo[] {
  const skip = ['/proc', '/sys', '/dev', ...exclude];
  const seen = new Set<string>();
  const out: MountInfo[] = [];
  // Later entries for one mount point shadow earlier ones: keep the last, in mount order.
  for (let i = all.length - 1; i >= 0; i--) {
    const m = all[i]!;
    if (m.mountPoint === '/' || skip.some((d) => under(m.mountPoint, d)) || seen.has(m.mountPoint)) continue;
    seen.add(m.mountPoint);
    out.push(m);
  }
  return out.reverse();
}

/**
 * `p` (absolute, inside the new root) with every symlink resolved the way the kernel would
 * inside a chroot at `root`: absolute targets restart at `root`, `..` never leaves it. mount(8)
 * follows symlinks in the host's view, so a link in the image such as /etc/hosts → /bootfs/x
 * would otherwise put the runtime's file over the stub's own paths.
 */
export async function resolveInRoot(root: string, p: string): Promise<string> {
  let pending = p.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '..') {
      done.pop();
      continue;
    }
    const here = path.join(root, ...done, name);
    const st = await lstat(here).catch(() => undefined);
    if (st?.isSymbolicLink()) {
      if (++links > 40) throw new BootfsError(`${p}: too many levels of symbolic links in the image`);
      const target = await readlink(here);
      if (target.startsWith('/')) done.length = 0;
      pending = [...target.split('/').filter((c) => c !== '' && c !== '.'), ...pending];
      continue;
    }
    done.push(name);
  }
  return path.join(root, ...done);
}

/** Create `target` inside the new root as the same kind (directory or file) as `source`. */
async function ensureTarget(source: string, target: string): Promise<void> {
  const st = await stat(source);
  if (st.isDirectory()) {
    await mkdir(target, { recursive: true });
    return;
  }
  await mkdir(path.dirname(target), { recursive: true });
  const fh = await open(target, 'a').catch(() => undefined);
  await fh?.close();
}

/**
 * Bind /dev and /sys (recursively) and every carried mount into `root`; read-only mounts stay
 * read-only. /proc is mounted fresh by the app's PID namespace.
 */
export async function carryMounts(root: string, carried: MountInfo[]): Promise<string[]> {
  const done: string[] = [];
  for (const dir of ['/dev', '/sys']) {
    const target = await resolveInRoot(root, dir);
    await mkdir(target, { recursive: true });
    await runTool('mount', ['--rbind', dir, target]);
    done.push(target);
  }
  for (const m of carried) {
    let target = path.join(root, m.mountPoint);
    try {
      target = await resolveInRoot(root, m.mountPoint);
      await ensureTarget(m.mountPoint, target);
      await runTool('mount', ['--bind', m.mountPoint, target]);
      if (m.options.includes('ro')) await runTool('mount', ['-o', 'remount,bind,ro', target]);
      done.push(target);
    } catch (err) {
      throw new BootfsError(`cannot carry ${m.mountPoint} into the app's root: ${(err as Error).message}`, { cause: err });
    }
  }
  return done;
}
