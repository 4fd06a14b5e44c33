/**
 * podman for the boot benchmark: its own storage (root, runroot and temp dir in the work dir, so
 * the images other work on this machine keeps in /var/lib/containers neither help nor suffer),
 * the repository's containers.conf (runc, host networking, no ulimits), and a timed `podman run`
 * that notes when the first line of output arrives.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type ProcessResult } from './proc.js';

/** Keep this much of a child's output. */
const CAPTURE_LIMIT = 64 * 1024;
/** A pull or run that takes longer than this is killed and fails (a 500 MB pull at 10 mbit is ~7 min). */
const COMMAND_TIMEOUT_MS = 20 * 60_000;

/** A podman command timed from spawn: when its first stdout line came and when it exited. */
export interface TimedCommand extends ProcessResult {
  /** Seconds from spawn to the first newline on stdout (null if none came). */
  firstLineSeconds: number | null;
  /** Seconds from spawn to exit. */
  exitSeconds: number;
  timedOut: boolean;
}

/** podman with the benchmark's storage and configuration. */
export class BenchPodman {
  readonly root: string;
  readonly runroot: string;
  readonly tmpdir: string;
  private readonly env: NodeJS.ProcessEnv;
  private containerSeq = 0;

  constructor(workDir: string, readonly containersConf: string, readonly bin = 'podman') {
    this.root = path.join(workDir, 'podman', 'root');
    this.runroot = path.join(workDir, 'podman', 'run');
    this.tmpdir = path.join(workDir, 'podman', 'tmp');
    // TMPDIR: where podman spools blobs while pulling (default /var/tmp, on disk).
    this.env = { ...process.env, CONTAINERS_CONF: containersConf, TMPDIR: this.tmpdir };
  }

  async init(): Promise<void> {
    for (const d of [this.root, this.runroot, this.tmpdir]) await mkdir(d, { recursive: true });
  }

  /** Global flags: this benchmark's storage only. */
  private globals(): string[] {
    return ['--root', this.root, '--runroot', this.runroot, '--storage-driver', 'overlay'];
  }

  /** A container name this process owns (so cleanup can find leftovers). */
  nextName(): string {
    return `bootfs-bench-${process.pid}-${++this.containerSeq}`;
  }

  /** Run `podman ARGS`, timed; never rejects for a failing podman (only when it cannot start). */
  run(args: readonly string[]): Promise<TimedCommand> {
    return new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      const since = (): number => Number(process.hrtime.bigint() - started) / 1e9;
      const child = spawn(this.bin, [...this.globals(), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env });
      let stdout = '';
      let stderr = '';
      let firstLineSeconds: number | null = null;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, COMMAND_TIMEOUT_MS);
      child.stdout.on('data', (b: Buffer) => {
        if (firstLineSeconds === null && b.includes(10)) firstLineSeconds = since();
        stdout = (stdout + b.toString('utf8')).slice(-CAPTURE_LIMIT);
      });
      child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-CAPTURE_LIMIT)));
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr, firstLineSeconds, exitSeconds: since(), timedOut });
      });
    });
  }

  /** Run `podman ARGS` and return stdout; throws with the stderr tail unless it exits 0. */
  async checked(args: readonly string[]): Promise<string> {
    const r = await this.run(args);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}): ${r.stderr.trim().split('\n').slice(-3).join(' | ') || '(no stderr)'}`);
    return r.stdout;
  }

  /** Remove images by reference if present (`podman rmi -f`; a missing image is not an error). */
  async removeImages(refs: readonly string[]): Promise<void> {
    const present: string[] = [];
    for (const ref of refs) if ((await this.run(['image', 'exists', ref])).code === 0) present.push(ref);
    if (present.length > 0) await this.checked(['rmi', '-f', ...present]);
  }

  /** Everything in this storage gone (containers, then images); for the end and the signal path. */
  cleanupSync(): void {
    const opts = { env: this.env, stdio: 'ignore' as const, timeout: 60_000 };
    spawnSync(this.bin, [...this.globals(), 'rm', '-af'], opts);
    spawnSync(this.bin, [...this.globals(), 'rmi', '-af'], opts);
  }
}
