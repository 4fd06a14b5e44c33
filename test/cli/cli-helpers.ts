/** Running the built `bootfs` binary from tests, and small store snapshot helpers. */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { bootfsBin, run } from '../helpers/tools.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Run `bootfs ARGS` (the built dist/, as users run it). */
export async function bootfs(args: string[], opts: { input?: Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> {
  if (!existsSync(bootfsBin)) throw new Error(`${bootfsBin} is missing: run npm run build (npm test does)`);
  const r = await run(process.execPath, [bootfsBin, ...args], { timeoutMs: 600_000, ...opts });
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString(), stdoutBytes: r.stdout };
}

/** Map of every file under `dir` (relative path → sha256), to prove a store was not modified. */
export async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(d: string): Promise<void> {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(path.relative(dir, p), createHash('sha256').update(await readFile(p)).digest('hex'));
    }
  }
  await walk(dir);
  return out;
}

/** sha256 of a file. */
export async function fileSha(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}
