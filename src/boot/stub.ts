/**
 * The boot stub's work, as PID 1 of a boot image's container: read the boot config, FUSE-mount the
 * image's index over the node cache and the stores, put a writable overlay on top, carry the
 * runtime's mounts into it, and run the original entrypoint there in a new PID namespace (so the
 * app can neither see nor signal the FUSE server). Signals are forwarded; the app's exit status
 * becomes ours (128 + n for a signal); everything is unmounted on the way out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import path from 'node:path';
import { parseSize } from '../chunker/params.js';
import { BootfsError } from '../errors.js';
import { FuseUnavailableError, unmount } from '../fuse/device.js';
import { BootfsIndex } from '../index/bootfs-reader.js';
import { Mount } from '../mount/mount.js';
import { openStore, untilDeadline } from '../store/location.js';
import type { ChunkStore } from '../store/types.js';
import { BOOT_CONFIG_PATH, BOOT_DIR, bootSettings, parseBootConfig, type BootConfig } from './config.js';
import { carryMounts, mountsToCarry, parseMountInfo, resolveInRoot } from './mounts.js';
import { runTool } from '../util/run-tool.js';
import { resolveUser } from './user.js';
import { parseDuration } from '../util/duration.js';

const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGQUIT'];
const CAP_SYS_ADMIN = 21;

export interface BootOptions {
  /** Arguments given to the container (`docker run IMAGE ARGS`): they replace the image's cmd. */
  args: string[];
  env: NodeJS.ProcessEnv;
  configPath?: string;
  /** Progress lines (BOOTFS_VERBOSE=1). */
  log?: (line: string) => void;
}

/** Check /dev/fuse and CAP_SYS_ADMIN before anything else, with the settings that provide them. */
export function preflight(): void {
  const runtimes =
    'docker/podman: run --device /dev/fuse --cap-add SYS_ADMIN (docker also --security-opt apparmor=unconfined); ' +
    'Kubernetes: a FUSE device plugin resource or securityContext.privileged: true, with capabilities.add: [SYS_ADMIN]';
  if (!existsSync('/dev/fuse')) throw new FuseUnavailableError(`/dev/fuse is missing in this container, so the image cannot be mounted. Give the container the FUSE device: ${runtimes}`);
  const status = readFileSync('/proc/self/status', 'utf8');
  const capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1];
  if (capEff !== undefined && (BigInt(`0x${capEff}`) & (1n << BigInt(CAP_SYS_ADMIN))) === 0n) {
    throw new FuseUnavailableError(`this container lacks CAP_SYS_ADMIN, which mounting FUSE and overlayfs needs. ${runtimes}`);
  }
}

/** The app's command line: entrypoint + (container args, or the image's cmd). */
export function appArgv(c: BootConfig, args: string[]): string[] {
  const argv = [...(c.app.entrypoint ?? []), ...(args.length > 0 ? args : (c.app.cmd ?? []))];
  if (argv.length === 0) throw new BootfsError('the image has no entrypoint and no cmd, and no command was given');
  return argv;
}

/** The app's environment: the container's, without bootfs's own settings. */
export function appEnv(env: NodeJS.ProcessEnv, home: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !k.startsWith('BOOTFS_')) out[k] = v;
  if (out.HOME === undefined && home) out.HOME = home;
  out.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return out;
}

const O_CLOEXEC = 0o2000000;

/**
 * Close file descriptors the stub inherited from the runtime (anything above stderr without
 * O_CLOEXEC: Node opens all of its own with it), so the app starts with only stdin, stdout and
 * stderr, as it would under the runtime directly. Call it first thing.
 */
export function closeInheritedFds(): number[] {
  const closed: number[] = [];
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return closed;
  }
  for (const name of fds) {
    const fd = Number(name);
    if (!(fd > 2)) continue;
    try {
      const flags = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      if (flags !== undefined && (parseInt(flags, 8) & O_CLOEXEC) === 0) {
        closeSync(fd);
        closed.push(fd);
      }
    } catch {
      /* gone meanwhile (the directory listing's own fd) */
    }
  }
  return closed;
}

/** Host PIDs of the direct children of `pid` (unshare --fork's child is the app, PID 1 inside). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function positiveKb(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 4) throw new BootfsError(`BOOTFS_KERNEL_READAHEAD '${text}' must be a number of KiB (e.g. 4096)`);
  return n;
}

/** Boot and run the app; resolves with the exit status to exit with. */
export async function boot(o: BootOptions): Promise<number> {
  const log = o.log ?? (() => undefined);
  const started = performance.now();
  const step = (what: string): void => log(`${what} (${Math.round(performance.now() - started)} ms)`);
  const configPath = o.configPath ?? BOOT_CONFIG_PATH;
  const config = parseBootConfig(await readFile(configPath, 'utf8').catch((err: Error) => {
    throw new BootfsError(`cannot read the boot config ${configPath}: ${err.message} (is this a boot image made by bootfs convert?)`);
  }), configPath);
  const settings = bootSettings(config, o.env);
  preflight();
  const argv = appArgv(config, o.args);
  const index = await BootfsIndex.readFile(config.index);
  const lower = path.join(BOOT_DIR, 'lower');
  const rw = settings.upperDir ?? path.join(BOOT_DIR, 'rw');
  const root = path.join(BOOT_DIR, 'root');
  for (const d of [lower, rw, root, settings.cachePath]) await mkdir(d, { recursive: true });

  const timeoutMs = settings.timeout ? parseDuration(settings.timeout, 'BOOTFS_TIMEOUT') : 30_000;
  const stores: ChunkStore[] = [];
  for (const loc of settings.stores) stores.push(await openStore(loc, untilDeadline({}, timeoutMs)));
  if (stores.length === 0) throw new BootfsError('no chunk store configured: set BOOTFS_STORE or convert with --store');
  const mount = await Mount.start({
    index,
    mountpoint: lower,
    stores,
    cacheDir: settings.cachePath,
    ...(settings.cacheMaxSize ? { cacheMaxSize: parseSize(settings.cacheMaxSize, 'BOOTFS_CACHE_MAX_SIZE') } : {}),
    // Left at the kernel's 128 KiB unless asked: a boot reads scattered pieces of big files, and
    // more readahead fetches more than it reads (bench/boot: 1.01x of the read set at 128 KiB,
    // 1.33x at 4 MiB); sequential-heavy apps can raise it.
    ...(settings.kernelReadaheadKb ? { kernelReadaheadKb: positiveKb(settings.kernelReadaheadKb) } : {}),
    log: (m) => process.stderr.write(`bootfs: ${m}\n`),
  });
  step(`mounted ${config.index} at ${lower}`);
  try {
    await mount.probe();
  } catch (err) {
    await mount.close();
    throw err;
  }
  step('store reachable');
  const mounted: string[] = [];
  let app: ChildProcess | undefined;
  try {
    if (!settings.upperDir) {
      await runTool('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'bootfs-rw', rw]);
      mounted.push(rw);
    }
    await mkdir(path.join(rw, 'upper'), { recursive: true });
    await mkdir(path.join(rw, 'work'), { recursive: true });
    await runTool('mount', ['-t', 'overlay', '-o', `lowerdir=${lower},upperdir=${rw}/upper,workdir=${rw}/work`, 'bootfs', root]);
    mounted.push(root);
    const carried = mountsToCarry(parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')), [BOOT_DIR, settings.cachePath]);
    mounted.push(...(await carryMounts(root, carried)));
    step(`root ready (${carried.length} runtime mounts carried)`);

    const user = await resolveUser(root, config.app.user);
    const wd = config.app.workingDir || '/';
    await mkdir(await resolveInRoot(root, wd), { recursive: true });
    const env = appEnv(o.env, user.home);
    const unshareArgs = ['unshare', '--pid', '--fork', '--kill-child', '--mount-proc', `--root=${root}`, `--wd=${wd}`];
    if (user.uid !== 0) unshareArgs.push('--setuid', String(user.uid));
    // Groups first, with setpriv (unshare --setgid would clear the supplementary ones); unshare,
    // still uid 0, then makes the namespaces, chroots and switches the uid last.
    const groups = user.groups.length > 0 ? ['--groups', user.groups.join(',')] : ['--clear-groups'];
    const launcher = user.uid !== 0 || user.gid !== 0 || user.groups.length > 0 ? ['setpriv', `--regid=${user.gid}`, ...groups, '--', ...unshareArgs] : unshareArgs;
    app = spawn(launcher[0]!, [...launcher.slice(1), '--', ...argv], { env, stdio: 'inherit' });
    const child = app;
    const forward = (sig: NodeJS.Signals): void => {
      // unshare --fork does not pass signals on: signal the app (PID 1 of its namespace) itself.
      const targets = child.pid ? childrenOf(child.pid) : [];
      for (const pid of targets.length > 0 ? targets : child.pid ? [child.pid] : []) {
        try {
          process.kill(pid, sig);
        } catch {
          /* already gone */
        }
      }
    };
    for (const s of FORWARDED) process.on(s, forward);
    step(`started ${argv[0]}`);
    const status = await new Promise<number>((resolve, reject) => {
      child.once('error', (err) => reject(new BootfsError(`cannot start the app: ${err.message}`)));
      child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 1) : 1)));
    });
    for (const s of FORWARDED) process.off(s, forward);
    step(`app exited with status ${status}`);
    return status;
  } finally {
    if (app && app.exitCode === null && app.signalCode === null) app.kill('SIGKILL');
    for (const m of mounted.reverse()) await unmount(m, { lazy: true }).catch(() => undefined);
    await mount.close();
  }
}

