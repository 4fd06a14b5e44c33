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

/** Ask scripts/fixtures/debian-rootfs for ROOTFS_STREAM (building it needs root the first time). */
export async function locateRootfsStream(repoRoot: string): Promise<FixtureLookup> {
  const script = path.join(repoRoot, 'scripts', 'fixtures', 'debian-rootfs');
  let r;
  try {
    r = await runProcess('bash', [script, '--print-env']);
  } catch (err) {
    return { ok: false, reason: `cannot run ${script}: ${(err as Error).message}` };
  }
  if (r.code !== 0) {
    const tail = r.stderr.trim().split('\n').slice(-3).join(' | ');
    return { ok: false, reason: `${script} --print-env failed (exit ${r.code}): ${tail}` };
  }
  const line = r.stdout.split('\n').find((l) => l.startsWith('ROOTFS_STREAM='));
  if (!line) return { ok: false, reason: `${script} --print-env printed no ROOTFS_STREAM line` };
  const file = shellUnquote(line.slice('ROOTFS_STREAM='.length));
  try {
    const st = await stat(file);
    if (!st.isFile() || st.size === 0) return { ok: false, reason: `rootfs stream ${file} is not a non-empty file` };
    return { ok: true, file, bytes: st.size };
  } catch (err) {
    return { ok: false, reason: `rootfs stream ${file}: ${(err as Error).message}` };
  }
}
