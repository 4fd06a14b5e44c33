/** Run `bootfs mount` as a child process for tests: start, wait until mounted, stop. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { bootfsBin, run } from './tools.js';

export interface MountProcess {
  child: ChildProcess;
  mountpoint: string;
  /** stderr so far. */
  log(): string;
  /** SIGTERM (clean unmount) and wait for the exit status. */
  stop(): Promise<number | null>;
  /** Resolves with the exit status when the process ends. */
  exited: Promise<number | null>;
}

export function isMounted(mountpoint: string): boolean {
  const abs = path.resolve(mountpoint);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === abs);
}

/** Start `bootfs mount INDEX MNT ARGS…` and resolve once the filesystem answers. */
export async function startMount(index: string, mountpoint: string, args: string[]): Promise<MountProcess> {
  const child = spawn(process.execPath, [bootfsBin, 'mount', index, mountpoint, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const until = Date.now() + 20_000;
  while (!/ mounted at /.test(stderr)) {
    if (child.exitCode !== null || Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`bootfs mount did not come up (exit ${child.exitCode}): ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    child,
    mountpoint,
    log: () => stderr,
    exited,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** rsync's itemized differences between two trees (empty = identical), checksumming every file. */
export async function treeDiff(expected: string, actual: string): Promise<string> {
  const r = await run('rsync', ['-a', '-c', '-H', '-X', '-n', '-i', '--delete', '--numeric-ids', '--modify-window=-1', `${expected}/`, `${actual}/`], { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`rsync failed (${r.code}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}
