/**
 * The fetch locks of a cache directory (docs/cache.md): `<shard>/<id>.cacnk.lock`, created
 * exclusively by the one process that fetches a missing chunk, its mtime refreshed while it works
 * (the heartbeat), broken by peers once it is older than the stale limit. PIDs are useless across
 * containers, so time is the only liveness signal.
 */
import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { isHexId } from '../chunk.js';
import { errnoCode } from '../errors.js';
import { TEMP_PREFIX } from './local.js';

/** Suffix of a chunk's fetch lock; never ends in `.cacnk`, so no listing takes it for a chunk. */
export const LOCK_SUFFIX = '.cacnk.lock';
const SHARD = /^[0-9a-f]{4}$/;

/** A held lock file: open, heartbeated through its descriptor (futimes) so a rename cannot fool it. */
export interface HeldLock {
  file: string;
  fh: FileHandle;
  timer: NodeJS.Timeout;
}

export class FetchLocks {
  private readonly held = new Set<HeldLock>();

  constructor(
    private readonly dir: string,
    private readonly opts: { heartbeatMs: number; lockStaleMs: number },
  ) {}

  path(hex: string): string {
    return path.join(this.dir, hex.slice(0, 4), hex + LOCK_SUFFIX);
  }

  /**
   * Create the lock exclusively; 'busy' when a peer holds it, 'unavailable' when the directory is
   * not writable (`onError` is told why).
   */
  async tryLock(hex: string, onError: (err: unknown) => void): Promise<HeldLock | 'busy' | 'unavailable'> {
    const file = this.path(hex);
    for (let attempt = 0; ; attempt++) {
      try {
        const fh = await open(file, 'wx', 0o644);
        const timer = setInterval(() => {
          const now = Date.now() / 1000;
          fh.utimes(now, now).catch(() => undefined);
        }, this.opts.heartbeatMs);
        timer.unref(); // the fetch keeps the process alive, not its lock
        const lock = { file, fh, timer };
        this.held.add(lock);
        return lock;
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'EEXIST') return 'busy';
        if (code === 'ENOENT' && attempt === 0) {
          const made = await mkdir(path.dirname(file), { recursive: true }).then(() => true, (e: unknown) => e);
          if (made === true) continue;
          err = made;
        }
        onError(err);
        return 'unavailable';
      }
    }
  }

  /**
   * Remove our lock file, unless ours was broken as stale and the name now belongs to another
   * holder. Never throws: a lock left behind goes stale and costs peers lockStaleMs at most.
   */
  async release(lock: HeldLock): Promise<void> {
    clearInterval(lock.timer);
    this.held.delete(lock);
    try {
      const [mine, there] = await Promise.all([lock.fh.stat(), lstat(lock.file)]);
      if (there.ino === mine.ino && there.dev === mine.dev) await unlink(lock.file);
    } catch {
      // already gone (broken as stale), or the directory went away
    } finally {
      await lock.fh.close().catch(() => undefined);
    }
  }

  /**
   * Break a stale lock: rename it to a unique name first, so of two breakers only one gets it, then
   * check that what we took is still stale (not a fresh lock taken since our look) before
   * unlinking. True when a stale lock was broken.
   */
  async breakStale(hex: string): Promise<boolean> {
    const file = this.path(hex);
    // TEMP_PREFIX: if we die before the unlink, gc removes it as an abandoned temp file.
    const grave = path.join(path.dirname(file), `${TEMP_PREFIX}${hex}.lock.${randomBytes(6).toString('hex')}`);
    try {
      await rename(file, grave);
    } catch {
      return false; // gone already: released, or broken by a peer
    }
    const st = await lstat(grave).catch(() => undefined);
    let broken = true;
    if (st && Date.now() - st.mtimeMs <= this.opts.lockStaleMs) {
      // A live holder's lock: put it back, unless yet another lock has been taken meanwhile.
      await link(grave, file).catch(() => undefined);
      broken = false;
    }
    await unlink(grave).catch(() => undefined);
    return broken;
  }

  /** Lock files `<shard>/<id>.cacnk.lock` (LocalStore lists only `*.cacnk` and temp files). */
  async *list(): AsyncIterable<{ hex: string; mtimeMs: number }> {
    for (const shard of await readdir(this.dir).catch(() => [])) {
      if (!SHARD.test(shard)) continue;
      const dir = path.join(this.dir, shard);
      for (const name of await readdir(dir).catch(() => [])) {
        if (!name.endsWith(LOCK_SUFFIX)) continue;
        const hex = name.slice(0, -LOCK_SUFFIX.length);
        if (!isHexId(hex) || !hex.startsWith(shard)) continue;
        const st = await lstat(path.join(dir, name)).catch(() => undefined);
        if (st?.isFile()) yield { hex, mtimeMs: st.mtimeMs };
      }
    }
  }

  /** Stop every heartbeat (closing): the locks then go stale unless released. */
  stopHeartbeats(): void {
    for (const lock of this.held) clearInterval(lock.timer);
  }
}
