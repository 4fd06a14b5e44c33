/**
 * Interoperability with real casync (Debian's): casync extracts what bootfs makes, bootfs extracts
 * what casync makes, byte for byte. Inputs per issue 2: empty, 1 byte, exactly one max-size chunk,
 * 300 MB of random data, and the concatenated files of a real Debian rootfs.
 */
import { createHash, createCipheriv } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeCaibx } from '../../src/index/caibx.js';
import { bootfs } from '../cli/cli-helpers.js';
import { debianRootfs, describeWithTools, run, tmpDir } from '../helpers/tools.js';

/** sha256 of a file, streamed (inputs here reach 300 MB). */
async function sha(file: string): Promise<string> {
  const r = await run('sha256sum', [file]);
  return r.stdout.toString().split(' ')[0]!;
}

/** `size` pseudo-random bytes, fast: AES-CTR keystream (random for chunking, reproducible). */
async function writeRandom(file: string, size: number): Promise<void> {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const out = createWriteStream(file);
  const block = Buffer.alloc(4 * 1024 * 1024);
  for (let left = size; left > 0; ) {
    const n = Math.min(left, block.length);
    if (!out.write(cipher.update(block.subarray(0, n)))) await new Promise<void>((r) => out.once('drain', () => r()));
    left -= n;
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

describeWithTools(['casync', 'sha256sum'], 'casync interoperability', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tmpDir('bootfs-casync-');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** bootfs make → casync extract must give back the input. */
  async function bootfsToCasync(name: string, file: string, digest?: 'sha256'): Promise<{ chunks: number; maxChunk: number }> {
    const store = path.join(dir, `${name}.store`);
    const index = path.join(dir, `${name}.caibx`);
    const made = await bootfs(['make', '--store', store, index, file, '--json', '--digest', ...(digest ? ['--chunk-digest', digest] : [])]);
    expect(made.code, made.stderr).toBe(0);
    const out = path.join(dir, `${name}.casync-out`);
    const x = await run('casync', ['extract', `--store=${store}`, index, out], { timeoutMs: 600_000 });
    expect(x.code, x.stderr.toString()).toBe(0);
    expect(await sha(out)).toBe(await sha(file));
    // casync's own digest of the blob equals the one bootfs printed.
    const d = await run('casync', ['digest', `--store=${store}`, index]);
    expect(d.stdout.toString().trim()).toBe(JSON.parse(made.stdout).digest);
    const idx = decodeCaibx(await readFile(index), index);
    await rm(out);
    return { chunks: idx.table.count, maxChunk: idx.table.maxChunkSize() };
  }

  /** casync make → bootfs extract must give back the input. */
  async function casyncToBootfs(name: string, file: string, digest?: 'sha256'): Promise<void> {
    const store = path.join(dir, `${name}.cstore`);
    const index = path.join(dir, `${name}.c.caibx`);
    const m = await run('casync', ['make', `--store=${store}`, ...(digest ? [`--digest=${digest}`] : []), index, file], { timeoutMs: 600_000 });
    expect(m.code, m.stderr.toString()).toBe(0);
    const out = path.join(dir, `${name}.bootfs-out`);
    const x = await bootfs(['extract', '--store', store, index, out]);
    expect(x.code, x.stderr).toBe(0);
    expect(await sha(out)).toBe(await sha(file));
    await rm(out);
  }

  it('an empty file', async () => {
    const f = path.join(dir, 'empty');
    await writeFile(f, '');
    expect(await bootfsToCasync('empty', f)).toEqual({ chunks: 0, maxChunk: 0 });
    await casyncToBootfs('empty', f);
  });

  it('one byte', async () => {
    const f = path.join(dir, 'one');
    await writeFile(f, 'x');
    expect(await bootfsToCasync('one', f)).toEqual({ chunks: 1, maxChunk: 1 });
    await casyncToBootfs('one', f);
  });

  it('exactly one max-size chunk', async () => {
    // Zeros never satisfy the FastCDC cut condition, so the only cut is forced at max = 256 KiB.
    const f = path.join(dir, 'max');
    await writeFile(f, Buffer.alloc(256 * 1024));
    expect(await bootfsToCasync('max', f)).toEqual({ chunks: 1, maxChunk: 256 * 1024 });
    await casyncToBootfs('max', f);
  });

  it('300 MB of random data', async () => {
    const f = path.join(dir, 'random300');
    await writeRandom(f, 300 * 1000 * 1000);
    const r = await bootfsToCasync('random300', f);
    expect(r.chunks).toBeGreaterThan(3000);
    expect(r.maxChunk).toBeLessThanOrEqual(256 * 1024);
    await casyncToBootfs('random300', f);
    await rm(f);
  }, 900_000);

  it('SHA-256 chunk IDs (bootfs --chunk-digest sha256, casync --digest=sha256), both ways', async () => {
    const f = path.join(dir, 'random-sha256');
    await writeRandom(f, 20_000_000);
    const r = await bootfsToCasync('sha256', f, 'sha256');
    expect(r.chunks).toBeGreaterThan(100);
    const idx = decodeCaibx(await readFile(path.join(dir, 'sha256.caibx')), 'sha256.caibx');
    expect(idx.flags).toBe(0x9000000000000000n); // what casync writes with --digest=sha256
    await casyncToBootfs('sha256', f, 'sha256');
    await rm(f);
  }, 300_000);

  it('the concatenated files of a Debian rootfs', async () => {
    const { stream } = debianRootfs();
    expect((await stat(stream)).size).toBeGreaterThan(50_000_000);
    const r = await bootfsToCasync('rootfs', stream);
    expect(r.chunks).toBeGreaterThan(500);
    await casyncToBootfs('rootfs', stream);
  }, 1_800_000);

  it('a store both tools write into stays readable by both', async () => {
    // bootfs and casync chunks of different inputs share one store directory.
    const store = path.join(dir, 'shared.store');
    const a = path.join(dir, 'a.bin');
    const b = path.join(dir, 'b.bin');
    await writeRandom(a, 2_000_000);
    await writeFile(b, createHash('sha512').update('b').digest().toString('hex').repeat(20_000));
    expect((await bootfs(['make', '-s', store, path.join(dir, 'a.caibx'), a])).code).toBe(0);
    expect((await run('casync', ['make', `--store=${store}`, path.join(dir, 'b.caibx'), b])).code).toBe(0);
    // …and chunks named by SHA-256 beside those named by SHA-512/256.
    expect((await run('casync', ['make', `--store=${store}`, '--digest=sha256', path.join(dir, 'b256.caibx'), b])).code).toBe(0);
    const v = await bootfs(['store', 'verify', store]);
    expect(v.code, v.stderr).toBe(0);
    expect((await bootfs(['extract', '-s', store, path.join(dir, 'b256.caibx'), path.join(dir, 'b256.out')])).code).toBe(0);
    expect(await sha(path.join(dir, 'b256.out'))).toBe(await sha(b));
    expect((await bootfs(['extract', '-s', store, path.join(dir, 'b.caibx'), path.join(dir, 'b.out')])).code).toBe(0);
    expect(await sha(path.join(dir, 'b.out'))).toBe(await sha(b));
    const x = await run('casync', ['extract', `--store=${store}`, path.join(dir, 'a.caibx'), path.join(dir, 'a.out')]);
    expect(x.code).toBe(0);
    expect(await sha(path.join(dir, 'a.out'))).toBe(await sha(a));
  });
});
