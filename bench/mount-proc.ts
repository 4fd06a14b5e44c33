/**
 * FUSE mount processes for the mount benchmark: start `bootfs mount` or `casync mount` in the
 * foreground, wait until the file system answers, stop it, and make sure nothing stays mounted —
 * not after an error, not after Ctrl-C (a mount left under the work dir would make deleting the
 * work dir walk into it).
 */
import type { MountStats } from '../src/mount/metrics.js';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

/** How long a mount may take to come up: 8 Node processes starting at once on 2 cores take seconds. */
const READY_TIMEOUT_MS = 120_000;
/** How long a mount may take to exit after SIGTERM or umount before it is killed. */
const STOP_TIMEOUT_MS = 20_000;
/** Poll interval while waiting for a mount to appear (casync prints nothing when it is ready). */
const POLL_MS = 5;
/** Keep this much of a mount process's stderr for error messages. */
const STDERR_TAIL = 8 * 1024;

/** The counters `bootfs mount --stats-file` writes. */
export type MountStatsFile = MountStats;

/** Mount points in this process's namespace (/proc/self/mountinfo field 5, octal escapes undone). */
export function mountPoints(): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** Is `dir` (absolute) a mount point right now? */
export function isMounted(dir: string): boolean {
  return mountPoints().includes(dir);
}

/** How a mount process ended. */
export interface StopResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Seconds from asking it to stop to its exit. */
  stopSeconds: number;
  /** Set when it had to be forced (lazy unmount, SIGKILL) or did not exit 0. */
  problem?: string;
}

/** A running mount. */
export interface LiveMount {
  tool: 'bootfs' | 'casync';
  mountpoint: string;
  pid: number;
  argv: string[];
  /** Seconds from spawn until the file system answered (see BootfsMountSpec.probe). */
  readySeconds: number;
  /** bootfs: seconds from spawn until its "mounted at" line (null before it, and for casync). */
  loggedSeconds: number | null;
  statsFile?: string;
  child: ChildProcess;
  stderrTail(): string;
}

/** What to mount with bootfs. */
export interface BootfsMountSpec {
  index: string;
  store: string;
  mountpoint: string;
  cache?: string;
  statsFile?: string;
  /**
   * Ready = stat(MOUNTPOINT/probe) succeeds (polled), instead of the "mounted at" line plus the
   * mount point in mountinfo: measures what a user waits for before the first file answers.
   */
  probe?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const since = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e9;

/** Wait for `child` to exit, at most `ms`; false on timeout. */
function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Every mount the benchmark started and has not stopped yet; stops them all on the way out. */
export class MountRegistry {
  private readonly live = new Set<LiveMount>();

  constructor(private readonly node: string, private readonly bootfsBin: string, private readonly casync: string) {}

  /** `bootfs mount INDEX MNT --store S [--cache C] [--stats-file F]`, ready once it logs "mounted at". */
  bootfs(spec: BootfsMountSpec): Promise<LiveMount> {
    const argv = [this.bootfsBin, 'mount', spec.index, spec.mountpoint, '--store', spec.store];
    if (spec.cache) argv.push('--cache', spec.cache);
    if (spec.statsFile) argv.push('--stats-file', spec.statsFile);
    const probe = spec.probe === undefined ? undefined : path.join(path.resolve(spec.mountpoint), spec.probe);
    const ready = async (m: LiveMount): Promise<boolean> => (probe === undefined ? m.loggedSeconds !== null && isMounted(m.mountpoint) : stat(probe).then(() => true, () => false));
    return this.start('bootfs', this.node, argv, spec.mountpoint, ready, spec.statsFile);
  }

  /** `casync mount --store=S X.caidx MNT`, ready once MNT shows up in mountinfo. */
  casyncMount(index: string, store: string, mountpoint: string): Promise<LiveMount> {
    return this.start('casync', this.casync, ['mount', `--store=${store}`, index, mountpoint], mountpoint, async (m) => isMounted(m.mountpoint));
  }

  private async start(tool: LiveMount['tool'], cmd: string, argv: string[], mnt: string, ready: (m: LiveMount) => Promise<boolean>, statsFile?: string): Promise<LiveMount> {
    const mountpoint = path.resolve(mnt);
    if (isMounted(mountpoint)) throw new Error(`${mountpoint} is already a mount point`);
    const started = process.hrtime.bigint();
    const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const m: LiveMount = { tool, mountpoint, pid: child.pid ?? -1, argv: [cmd, ...argv], readySeconds: 0, loggedSeconds: null, child, stderrTail: () => stderr.trim(), ...(statsFile ? { statsFile } : {}) };
    child.stderr!.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-STDERR_TAIL);
      if (m.loggedSeconds === null && tool === 'bootfs' && stderr.includes(' mounted at ')) m.loggedSeconds = since(started);
    });
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));
    this.live.add(m);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (spawnError) {
        this.live.delete(m);
        throw new Error(`cannot start ${cmd}: ${spawnError.message}`);
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        this.live.delete(m);
        throw new Error(`${tool} mount of ${mountpoint} exited (${child.exitCode ?? child.signalCode}) before it was ready: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
      }
      if (await ready(m)) break;
      if (Date.now() > deadline) {
        await this.stop(m);
        throw new Error(`${tool} mount of ${mountpoint} was not ready after ${READY_TIMEOUT_MS / 1000} s: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
      }
      await sleep(POLL_MS);
    }
    m.readySeconds = since(started);
    return m;
  }

  /**
   * Stop a mount: bootfs gets SIGTERM (it unmounts and exits 0), casync is unmounted with
   * umount(8) (it exits when its file system goes away). Forced (lazy unmount, SIGKILL) after
   * STOP_TIMEOUT_MS; a forced stop or a non-zero bootfs exit is reported in `problem`.
   */
  async stop(m: LiveMount): Promise<StopResult> {
    const t = process.hrtime.bigint();
    const problems: string[] = [];
    if (m.tool === 'bootfs') {
      m.child.kill('SIGTERM');
    } else {
      const r = spawnSync('umount', [m.mountpoint], { encoding: 'utf8' });
      if (r.status !== 0 && isMounted(m.mountpoint)) problems.push(`umount ${m.mountpoint}: ${(r.stderr ?? '').trim()}`);
    }
    if (!(await waitExit(m.child, STOP_TIMEOUT_MS))) {
      problems.push(`did not exit within ${STOP_TIMEOUT_MS / 1000} s; forced`);
      spawnSync('umount', ['-l', m.mountpoint]);
      m.child.kill('SIGKILL');
      await waitExit(m.child, 5000);
    }
    if (isMounted(m.mountpoint)) {
      problems.push('still mounted after the process exited; lazily unmounted');
      spawnSync('umount', ['-l', m.mountpoint]);
    }
    this.live.delete(m);
    const exitCode = m.child.exitCode;
    const signal = m.child.signalCode;
    if (m.tool === 'bootfs' && exitCode !== 0) problems.push(`exited ${exitCode ?? signal} after SIGTERM: ${m.stderrTail().split('\n').slice(-3).join(' | ')}`);
    return { exitCode, signal, stopSeconds: since(t), ...(problems.length ? { problem: `${m.tool} mount ${m.mountpoint}: ${problems.join('; ')}` } : {}) };
  }

  /** Stop every live mount (in parallel); returns the problems. */
  async stopAll(): Promise<string[]> {
    const results = await Promise.all([...this.live].map((m) => this.stop(m).catch((err: Error) => ({ problem: err.message }))));
    return results.map((r) => r.problem).filter((p): p is string => p !== undefined);
  }

  /**
   * The signal path (cannot await): lazily unmount everything we mounted and anything else under
   * `under`, kill the mount processes and wait (synchronously, bounded) until they are gone — one
   * still writing its stats file would make deleting the work dir fail with ENOTEMPTY.
   */
  unmountAllSync(under: string): void {
    for (const m of this.live) {
      spawnSync('umount', ['-l', m.mountpoint]);
      m.child.kill('SIGKILL');
    }
    const prefix = `${path.resolve(under)}/`;
    for (const mp of mountPoints().filter((p) => p.startsWith(prefix)).reverse()) spawnSync('umount', ['-l', mp]);
    const deadline = Date.now() + 5000;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (const m of this.live) {
      while (Date.now() < deadline && !exited(m.pid)) Atomics.wait(pause, 0, 0, 10);
    }
    this.live.clear();
  }
}

/** Has `pid` exited (gone, or a zombie nobody reaped yet)? */
function exited(pid: number): boolean {
  try {
    // /proc/PID/stat: "PID (comm) STATE …"; comm may contain spaces and parentheses, STATE follows the last ')'.
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** Read a `--stats-file` (after the mount exited, so it holds the final counters). */
export async function readStatsFile(file: string): Promise<MountStatsFile> {
  const doc = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  for (const k of ['reads', 'bytesServed', 'remoteFetches', 'remoteBytes', 'cacheHits', 'cacheMisses']) {
    if (typeof doc[k] !== 'number') throw new Error(`${file}: field ${k} is missing or not a number`);
  }
  return doc as unknown as MountStatsFile;
}

/** VmRSS and VmHWM of a process in bytes (from /proc/PID/status), or null when it is gone. */
export async function processMemory(pid: number): Promise<{ rssBytes: number; hwmBytes: number } | null> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    const rss = kib('VmRSS');
    const hwm = kib('VmHWM');
    return Number.isFinite(rss) ? { rssBytes: rss * 1024, hwmBytes: hwm * 1024 } : null;
  } catch {
    return null;
  }
}
