/**
 * The kernel side of a FUSE mount without libfuse: open /dev/fuse, mount it with mount(8), read
 * requests in a worker thread and write replies from the main thread (big ones from the thread
 * pool).
 *
 * Why no libfuse: the bindings available to Node (fuse-native, libfuse 2's path API) pass
 * timestamps in milliseconds and names as UTF-8 strings, while an image has nanosecond mtimes and
 * names that are arbitrary bytes; the wire protocol is small and stable, and speaking it directly
 * also means nothing native to ship in a boot image beyond the `mount` program.
 *
 * Reading /dev/fuse blocks, so it happens in a worker; a thread blocked there keeps Node from
 * exiting, which is why every way out goes through `close()` (unmount, then wake the reader).
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmdirSync, writeFileSync, writeSync, writev, writevSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { BootfsError, errnoCode } from '../errors.js';

/** Raised when the machine or container cannot mount FUSE; the message says what to change. */
export class FuseUnavailableError extends BootfsError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'ERR_FUSE', cause });
  }
}

export interface MountOptions {
  /** Let users other than the mounting one see the files (mount option allow_other). */
  allowOther?: boolean;
  /** Shown as the source in /proc/mounts. */
  fsname?: string;
  /** Largest read request the kernel sends, bytes. */
  maxRead?: number;
  /**
   * The kernel's readahead for this mount, KiB (default: the kernel's 128). More keeps more reads
   * in flight for sequential readers, at the price of fetching more than a reader needs.
   */
  readaheadKb?: number;
  /**
   * Told of a reply that could not be written, other than ENOENT (the request was interrupted and
   * no longer waits for an answer) and ENODEV (unmounted).
   */
  onReplyError?: (err: unknown) => void;
}

// The reader: plain JS evaluated in a worker (no module resolution, so it runs the same from src
// under vitest and from dist). A request is copied out of the read buffer and transferred.
const READER = `
const { parentPort, workerData } = require('node:worker_threads');
const { readSync } = require('node:fs');
const buf = Buffer.allocUnsafe(workerData.bufSize);
for (;;) {
  let n;
  try {
    n = readSync(workerData.fd, buf, 0, buf.length, null);
  } catch (err) {
    // ENOENT: the request was interrupted before we read it; EINTR/EAGAIN: try again.
    if (err.code === 'ENOENT' || err.code === 'EINTR' || err.code === 'EAGAIN') continue;
    // ENODEV: the filesystem was unmounted. Anything else ends the session too.
    parentPort.postMessage({ end: err.code === 'ENODEV' ? null : String(err.message) });
    break;
  }
  if (n === 0) { parentPort.postMessage({ end: null }); break; }
  const req = new Uint8Array(n);
  req.set(buf.subarray(0, n));
  parentPort.postMessage(req, [req.buffer]);
}
`;

/** Replies with at least this many bytes are written off the main thread (see FuseDevice.write). */
const ASYNC_REPLY_BYTES = 32 * 1024;

function expectedWriteError(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENODEV';
}

export class FuseDevice {
  private worker: Worker | undefined;
  private closed = false;
  private ended = false;
  /** Replies handed to the thread pool and not yet written (see write). */
  private pendingWrites = 0;
  private readonly writesDrained: Array<() => void> = [];
  private readonly endWaiters: Array<() => void> = [];
  /** The kernel's connection number (fusectl), known once mounted. */
  connection: number | undefined;

  private constructor(
    readonly fd: number,
    readonly mountpoint: string,
    private readonly onReplyError: (err: unknown) => void = () => undefined,
  ) {}

  /** Start reading requests: only after mount(2), because /dev/fuse refuses reads (EPERM) until then. */
  private start(onRequest: (req: Buffer) => void, onEnd: (error?: string) => void): void {
    // Requests are small (no writes are accepted), but the kernel insists on room for max_write.
    const worker = new Worker(READER, { eval: true, workerData: { fd: this.fd, bufSize: 256 * 1024 } });
    this.worker = worker;
    worker.on('message', (m: Uint8Array | { end: string | null }) => {
      if (m instanceof Uint8Array) onRequest(Buffer.from(m.buffer, m.byteOffset, m.byteLength));
      else this.finish(() => onEnd(m.end ?? undefined));
    });
    worker.on('error', (err) => this.finish(() => onEnd(err.message)));
    worker.on('exit', () => this.finish(() => onEnd()));
  }

  private finish(report: () => void): void {
    if (this.ended) return;
    this.ended = true;
    report();
    for (const w of this.endWaiters.splice(0)) w();
  }

  /**
   * Open /dev/fuse, mount it at `mountpoint` and start reading requests (INIT first). The caller
   * answers each request through `write`; `onEnd` runs once when the session is over (unmounted,
   * aborted, or a read error, given as text).
   */
  static async mount(mountpoint: string, opts: MountOptions, onRequest: (req: Buffer) => void, onEnd: (error?: string) => void): Promise<FuseDevice> {
    let fd: number;
    try {
      fd = openSync('/dev/fuse', constants.O_RDWR);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') {
        throw new FuseUnavailableError('/dev/fuse does not exist: load the fuse module, or give the container the device (docker/podman: --device /dev/fuse; Kubernetes: a FUSE device plugin or a privileged container)', err);
      }
      throw new FuseUnavailableError(`cannot open /dev/fuse (${code ?? (err as Error).message}): the container needs the device and CAP_SYS_ADMIN (--device /dev/fuse --cap-add SYS_ADMIN)`, err);
    }
    const dev = new FuseDevice(fd, mountpoint, opts.onReplyError);
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const options = [
      'fd=3', 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`, 'default_permissions', 'ro',
      ...(opts.allowOther ? ['allow_other'] : []),
      ...(opts.maxRead ? [`max_read=${opts.maxRead}`] : []),
    ];
    try {
      await runMount(['-i', '-t', 'fuse.bootfs', '-o', options.join(','), opts.fsname ?? 'bootfs', mountpoint], fd);
    } catch (err) {
      closeSync(fd);
      dev.closed = true;
      throw err;
    }
    dev.connection = connectionId(mountpoint);
    dev.start(onRequest, onEnd);
    return dev;
  }

  /**
   * Set the mount's readahead (its backing device info is bdi 0:<connection>). Call it after INIT
   * has been answered: the kernel lowers the value to the INIT reply's max_readahead then. Where
   * /sys is read-only (containers), a private sysfs mount is made for the write and removed again.
   * Best effort: false when neither works.
   */
  async setReadahead(kb: number): Promise<boolean> {
    if (this.connection === undefined) return false;
    const rel = `class/bdi/0:${this.connection}/read_ahead_kb`;
    try {
      writeFileSync(`/sys/${rel}`, String(kb));
      return true;
    } catch {
      /* read-only /sys: try a private sysfs mount */
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'bootfs-sysfs-'));
    try {
      if ((await runTool('mount', ['-t', 'sysfs', 'sysfs', dir])) !== 0) return false;
      try {
        writeFileSync(path.join(dir, rel), String(kb));
        return true;
      } catch {
        return false;
      } finally {
        await runTool('umount', [dir]);
      }
    } finally {
      rmdirSync(dir);
    }
  }

  /**
   * Write one reply: the 16-byte header followed by the body parts. Small replies are written at
   * once. A big one (file data) is written from libuv's thread pool: the kernel copies it into the
   * reader's page cache inside that write, which for a sequential reader is most of the mount's
   * work, and the main thread meanwhile dispatches the next requests. A failed write goes to
   * `onReplyError` (see MountOptions).
   */
  write(parts: Buffer[]): void {
    if (this.closed) return;
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    if (bytes < ASYNC_REPLY_BYTES) {
      try {
        if (parts.length === 1) writeSync(this.fd, parts[0]!);
        else writevSync(this.fd, parts);
      } catch (err) {
        if (!expectedWriteError(err)) this.onReplyError(err);
      }
      return;
    }
    this.pendingWrites++;
    writev(this.fd, parts, (err) => {
      if (err && !expectedWriteError(err)) this.onReplyError(err);
      if (--this.pendingWrites === 0) for (const w of this.writesDrained.splice(0)) w();
    });
  }

  /** Resolves when the reader has stopped (unmounted, aborted or closed). */
  waitEnd(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => this.endWaiters.push(resolve));
  }

  /**
   * Unmount and stop the reader. A busy mount is aborted through fusectl (its users get ENOTCONN),
   * or, where fusectl is unavailable, detached lazily. Safe to call more than once. Afterwards
   * nothing is left blocked in a read of /dev/fuse, so the process can exit.
   */
  async close(): Promise<void> {
    if (!this.ended) {
      try {
        await unmount(this.mountpoint);
      } catch {
        // Busy: abort the connection (users see ENOTCONN instead of hanging), then detach it.
        if (this.connection !== undefined) abortConnection(this.connection);
        await unmount(this.mountpoint, { lazy: true }).catch(() => undefined);
      }
      await this.waitEnd();
    }
    if (!this.closed) {
      this.closed = true;
      // A write still in the thread pool uses the fd number: closing first could let it land in
      // whatever file is opened next under that number. Writes to /dev/fuse never block.
      if (this.pendingWrites > 0) await new Promise<void>((resolve) => this.writesDrained.push(resolve));
      closeSync(this.fd);
    }
  }
}

/** Run mount(8) with /dev/fuse as its fd 3. */
function runMount(args: string[], fuseFd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    const child = spawn('mount', args, { stdio: ['ignore', 'ignore', 'pipe', fuseFd] });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => {
      reject(new FuseUnavailableError(errnoCode(err) === 'ENOENT' ? 'mount(8) is not installed (package util-linux / mount)' : `cannot run mount(8): ${err.message}`, err));
    });
    child.on('exit', (code) => {
      if (code === 0) return resolve();
      const why = stderr.trim().replace(/^mount: /, '');
      const hint = /permission denied|not permitted|must be superuser/i.test(why)
        ? ': mounting FUSE needs root or CAP_SYS_ADMIN (docker/podman: --cap-add SYS_ADMIN --device /dev/fuse)'
        : '';
      reject(new FuseUnavailableError(`mount failed: ${why || `exit status ${code}`}${hint}`));
    });
  });
}

/** umount(8) the mountpoint; `lazy` detaches it even while files are open (umount -l). */
export function unmount(mountpoint: string, opts: { lazy?: boolean } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    const child = spawn('umount', [...(opts.lazy ? ['-l'] : []), mountpoint], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => reject(new BootfsError(`cannot run umount(8): ${err.message}`, { cause: err })));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new BootfsError(`umount ${mountpoint}: ${stderr.trim().replace(/^umount: /, '') || `exit status ${code}`}`))));
  });
}

/** The FUSE connection number of the mount at `mountpoint` (its device minor, from mountinfo). */
export function connectionId(mountpoint: string): number | undefined {
  let id: number | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    // Fields: id parent major:minor root mountpoint … (mountpoints escape spaces as \040).
    if (f[4] === mountpoint.replace(/ /g, '\\040') && /^fuse/.test(line.split(' - ')[1] ?? '')) {
      id = Number(f[2]!.split(':')[1]);
    }
  }
  return id;
}

const FUSECTL = '/sys/fs/fuse/connections';

/**
 * Abort a FUSE connection through fusectl: every pending and future request fails with ENOTCONN
 * and our reader wakes up. Mounts fusectl when it is not mounted yet. Best effort: false when
 * fusectl is unavailable (e.g. a read-only /sys).
 */
export function abortConnection(id: number): boolean {
  const abort = `${FUSECTL}/${id}/abort`;
  if (!existsSync(abort)) spawnSync('mount', ['-t', 'fusectl', 'fusectl', FUSECTL], { stdio: 'ignore' });
  try {
    writeFileSync(abort, '1');
    return true;
  } catch {
    return false;
  }
}

/** Run a tool quietly; its exit status (-1 when it cannot start). */
function runTool(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'ignore' });
    child.on('error', () => resolve(-1));
    child.on('exit', (code) => resolve(code ?? -1));
  });
}
