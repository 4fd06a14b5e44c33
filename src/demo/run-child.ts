/** Running the demo's external programs: output captured, time to first output measured, bounded. */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { BootfsError } from '../errors.js';

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** ms from spawn to the first byte on stdout (undefined: none). */
  firstOutputMs?: number;
  /** ms from spawn to exit. */
  ms: number;
}

/**
 * Run `cmd args` asynchronously (the main thread stays free: it may be answering FUSE requests for
 * files the child reads), killing it after `timeoutMs`.
 */
export function runChild(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let firstOutputMs: number | undefined;
    child.stdout.on('data', (b: Buffer) => {
      firstOutputMs ??= performance.now() - started;
      out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new BootfsError(`cannot run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        ...(firstOutputMs !== undefined ? { firstOutputMs } : {}),
        ms: performance.now() - started,
      });
    });
  });
}

/** Run and require exit 0; the error names the command and quotes its stderr. */
export async function runChecked(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<ChildResult> {
  const r = await runChild(cmd, args, opts);
  if (r.code !== 0) {
    const why = r.signal ? `killed by ${r.signal}${r.signal === 'SIGKILL' ? ` (timeout ${opts.timeoutMs / 1000} s)` : ''}` : `exit ${r.code}`;
    throw new BootfsError(`${cmd} ${args.slice(0, 2).join(' ')} failed (${why}): ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  }
  return r;
}

/** Is executable `name` on PATH? */
export function onPath(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    try {
      const file = path.join(dir, name);
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}
