/** Benchmark inputs: reproducible random bytes, the Debian rootfs fixture, and streaming sha256. */
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { runProcess } from './proc.js';

/**
 * Fixed AES-128 key and zero IV: the CTR keystream is the same bytes on every machine and run, and
 * a smaller --size is a prefix of a larger one. AES-NI makes it ~GB/s, far faster than the tools.
 */
const RANDOM_KEY = Buffer.from('bootfs-bench-key', 'latin1'); // exactly 16 bytes
const RANDOM_IV = Buffer.alloc(16);
/** Bytes per write: large enough to amortize stream overhead, small enough to stay cache-friendly. */
const BLOCK = 1024 * 1024;

/** How the random input is made, recorded in the results. */
export const RANDOM_RECIPE = "AES-128-CTR keystream, key 'bootfs-bench-key', IV 0";

/** Write `bytes` of reproducible pseudo-random data to `file`. */
export async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const cipher = createCipheriv('aes-128-ctr', RANDOM_KEY, RANDOM_IV);
  const zeros = Buffer.alloc(BLOCK);
  async function* keystream(): AsyncGenerator<Buffer> {
    for (let left = bytes; left > 0; left -= BLOCK) {
      yield cipher.update(left >= BLOCK ? zeros : zeros.subarray(0, left));
    }
  }
  await pipeline(Readable.from(keystream()), createWriteStream(file));
}

/** Hex sha256 of a file, streamed (inputs can be larger than we want in memory). */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(file, { highWaterMark: BLOCK })) hash.update(piece as Buffer);
  return hash.digest('hex');
}

/** Where the rootfs stream is, or why it is unavailable. */
export type FixtureLookup = { ok: true; file: string; bytes: number } | { ok: false; reason: string };

/** Undo the script's shell quoting: values are bare or '…' with ' written as '\''. */
function shellUnquote(value: string): string {
  if (!value.startsWith("'")) return value;
  return value.slice(1, -1).replaceAll("'\\''", "'");
}

/** The variables `debian-rootfs --print-env` printed, or why it could not be asked. */
export type FixtureEnv = { ok: true; script: string; env: Record<string, string> } | { ok: false; reason: string };

/**
 * Run scripts/fixtures/debian-rootfs [extra…] --print-env (building the fixture needs root the
 * first time) and parse its ROOTFS_DIR=…, ROOTFS_TAR=…, ROOTFS_STREAM=… lines.
 */
export async function readFixtureEnv(repoRoot: string, extraArgs: readonly string[] = []): Promise<FixtureEnv> {
  const script = path.join(repoRoot, 'scripts', 'fixtures', 'debian-rootfs');
  let r;
  try {
    r = await runProcess('bash', [script, ...extraArgs, '--print-env']);
  } catch (err) {
    return { ok: false, reason: `cannot run ${script}: ${(err as Error).message}` };
  }
  if (r.code !== 0) {
    const tail = r.stderr.trim().split('\n').slice(-3).join(' | ');
    return { ok: false, reason: `${[script, ...extraArgs].join(' ')} --print-env failed (exit ${r.code}): ${tail}` };
  }
  const env: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1]!] = shellUnquote(m[2]!);
  }
  return { ok: true, script, env };
}

/** Ask scripts/fixtures/debian-rootfs for ROOTFS_STREAM (building it needs root the first time). */
export async function locateRootfsStream(repoRoot: string): Promise<FixtureLookup> {
  const found = await readFixtureEnv(repoRoot);
  if (!found.ok) return found;
  const file = found.env.ROOTFS_STREAM;
  if (file === undefined) return { ok: false, reason: `${found.script} --print-env printed no ROOTFS_STREAM line` };
  try {
    const st = await stat(file);
    if (!st.isFile() || st.size === 0) return { ok: false, reason: `rootfs stream ${file} is not a non-empty file` };
    return { ok: true, file, bytes: st.size };
  } catch (err) {
    return { ok: false, reason: `rootfs stream ${file}: ${(err as Error).message}` };
  }
}

/** Where a rootfs directory fixture is, or why it is unavailable. */
export type RootfsDirLookup = { ok: true; dir: string } | { ok: false; reason: string };

/** ROOTFS_DIR of fixture v1, or of v2 (v1 + python3-minimal) with `v2`. */
export async function locateRootfsDir(repoRoot: string, v2 = false): Promise<RootfsDirLookup> {
  const found = await readFixtureEnv(repoRoot, v2 ? ['--v2'] : []);
  if (!found.ok) return found;
  const dir = found.env.ROOTFS_DIR;
  const what = `${found.script}${v2 ? ' --v2' : ''}`;
  if (dir === undefined) return { ok: false, reason: `${what} --print-env printed no ROOTFS_DIR line` };
  try {
    if (!(await stat(dir)).isDirectory()) return { ok: false, reason: `rootfs ${dir} is not a directory` };
    return { ok: true, dir };
  } catch (err) {
    return { ok: false, reason: `rootfs ${dir}: ${(err as Error).message}` };
  }
}
