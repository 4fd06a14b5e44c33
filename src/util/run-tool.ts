/** Running a system tool (touch, setfattr, mknod…) where Node has no API of its own. */
import { spawn } from 'node:child_process';
import { IoError } from '../errors.js';

/** Run `cmd args` (no shell); resolve on exit 0, else IoError with its stderr. */
export function runTool(cmd: string, args: readonly string[], opts: { cwd?: string; input?: Buffer } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'ignore', 'pipe'] });
    const err: Buffer[] = [];
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => reject(new IoError(`cannot run ${cmd}: ${e.message}`, e)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new IoError(`${cmd} failed (${signal ?? `exit ${code}`}): ${Buffer.concat(err).toString().trim().slice(0, 2000)}`));
    });
    child.stdin.on('error', () => undefined); // the tool may exit before reading everything; its exit code tells
    child.stdin.end(opts.input ?? Buffer.alloc(0));
  });
}

/**
 * Run `cmd args... PATH...` over raw-byte paths through `xargs -0`: Node encodes argv strings as
 * UTF-8, so names that are not UTF-8 can only reach a tool through stdin. xargs also splits the
 * list so no argv is too long. With `perPath`, `{}` in args is replaced by each path (one call each).
 */
export function runToolOnPaths(cmd: string, args: readonly string[], paths: readonly Buffer[], opts: { cwd?: string; perPath?: boolean } = {}): Promise<void> {
  if (paths.length === 0) return Promise.resolve();
  const input = Buffer.concat(paths.flatMap((p) => [p, Buffer.from([0])]));
  return runTool('xargs', ['-0', '-r', ...(opts.perPath ? ['-I{}'] : []), cmd, ...args], { ...opts, input });
}
