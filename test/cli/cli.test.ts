/** The CLI as users run it: make/extract round trips, JSON output, exit codes and bad input. */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/tools.js';
import { bootfs, fileSha, snapshot } from './cli-helpers.js';

let dir: string;
let store: string;
let input: string;
let index: string;
let chunkIds: string[];

beforeAll(async () => {
  dir = await tmpDir('bootfs-cli-');
  store = path.join(dir, 'store');
  input = path.join(dir, 'input.bin');
  index = path.join(dir, 'input.caibx');
  // Text-like data with a random part: several chunks, compressible.
  await writeFile(input, Buffer.concat([Buffer.from('bootfs '.repeat(200_000)), randomBytes(600_000)]));
  const r = await bootfs(['make', '--store', store, index, input, '--json']);
  expect(r.code, r.stderr).toBe(0);
  chunkIds = [];
  for (const shard of await readdir(store)) for (const f of await readdir(path.join(store, shard))) chunkIds.push(f.replace('.cacnk', ''));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A fresh copy of the good store to damage. */
async function storeCopy(name: string): Promise<string> {
  const copy = path.join(dir, name);
  await rm(copy, { recursive: true, force: true });
  await mkdir(copy);
  for (const shard of await readdir(store)) {
    await mkdir(path.join(copy, shard));
    for (const f of await readdir(path.join(store, shard))) await writeFile(path.join(copy, shard, f), await readFile(path.join(store, shard, f)));
  }
  return copy;
}

describe('bootfs make / extract', () => {
  it('round-trips a file and reports one JSON document', async () => {
    const out = path.join(dir, 'out.bin');
    const r = await bootfs(['extract', '--store', store, index, out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.bytes).toBe((await stat(input)).size);
    expect(await fileSha(out)).toBe(await fileSha(input));
  });

  it('reads stdin and writes stdout', async () => {
    const idx = path.join(dir, 'stdin.caibx');
    const data = await readFile(input);
    const m = await bootfs(['make', '-s', store, idx, '-', '--json'], { input: data });
    expect(m.code, m.stderr).toBe(0);
    expect(JSON.parse(m.stdout).newChunks).toBe(0); // same content: everything deduplicated
    expect(await readFile(idx)).toEqual(await readFile(index));
    const x = await bootfs(['extract', '-s', store, idx, '-']);
    expect(x.code, x.stderr).toBe(0);
    expect(x.stdoutBytes.equals(data)).toBe(true);
  });

  it('takes the store from BOOTFS_STORE', async () => {
    const out = path.join(dir, 'env.bin');
    const r = await bootfs(['extract', index, out], { env: { ...process.env, BOOTFS_STORE: store } });
    expect(r.code, r.stderr).toBe(0);
  });

  it('is deterministic and honours --chunk-size', async () => {
    const a = path.join(dir, 'a.caibx');
    const b = path.join(dir, 'b.caibx');
    expect((await bootfs(['make', '--chunk-size', '4K:16K:64K', a, input])).code).toBe(0);
    expect((await bootfs(['make', '--chunk-size', '4K:16K:64K', b, input])).code).toBe(0);
    expect(await readFile(a)).toEqual(await readFile(b));
    const hdr = await readFile(a);
    expect(hdr.readBigUInt64LE(24)).toBe(4096n);
    expect(hdr.readBigUInt64LE(32)).toBe(16384n);
    expect(hdr.readBigUInt64LE(40)).toBe(65536n);
  });

  it('--chunk-digest sha256: casync\'s SHA-256 flags, SHA-256 IDs, and extract verifies them', async () => {
    const s = path.join(dir, 'store256');
    const idx = path.join(dir, 'sha256.caibx');
    const m = await bootfs(['make', '-s', s, idx, input, '--chunk-digest', 'sha256', '--digest', '--json']);
    expect(m.code, m.stderr).toBe(0);
    const j = JSON.parse(m.stdout);
    expect(j.chunkDigest).toBe('sha256');
    // The whole-input digest stays SHA-512/256, as `casync digest` prints it for any index.
    expect(j.digest).toBe(createHash('sha512-256').update(await readFile(input)).digest('hex'));
    const bytes = await readFile(idx);
    expect(bytes.readBigUInt64LE(16)).toBe(0x9000000000000000n);
    const names = (await readdir(s)).length;
    expect(names).toBeGreaterThan(0);
    // Other names than the SHA-512/256 store's for the same chunks.
    for (const shard of await readdir(s)) for (const f of await readdir(path.join(s, shard))) expect(chunkIds).not.toContain(f.replace('.cacnk', ''));
    const out = path.join(dir, 'sha256.out');
    const x = await bootfs(['extract', '-s', s, idx, out]);
    expect(x.code, x.stderr).toBe(0);
    expect(await fileSha(out)).toBe(await fileSha(input));
    const bad = await bootfs(['make', idx, input, '--chunk-digest', 'md5']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/sha512-256, sha256/);
  });

  it('refuses invalid chunk sizes with exit 1 and says why', async () => {
    for (const bad of ['64K:16K:256K', '16:64:256', 'abc', '1:2']) {
      const r = await bootfs(['make', '--chunk-size', bad, path.join(dir, 'x.caibx'), input]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/chunk size|chunk-size/);
    }
    expect(existsSync(path.join(dir, 'x.caibx'))).toBe(false);
  });

  it('exits 2 for a missing input, index or store', async () => {
    const a = await bootfs(['make', path.join(dir, 'y.caibx'), path.join(dir, 'nope.bin')]);
    expect([a.code, a.stderr]).toEqual([2, expect.stringContaining('nope.bin')]);
    const b = await bootfs(['extract', '-s', store, path.join(dir, 'nope.caibx'), path.join(dir, 'o')]);
    expect([b.code, b.stderr]).toEqual([2, expect.stringContaining('nope.caibx')]);
    const c = await bootfs(['extract', '-s', path.join(dir, 'nostore'), index, path.join(dir, 'o')]);
    expect([c.code, c.stderr]).toEqual([2, expect.stringContaining('nostore')]);
  });

  it('documents exit codes in --help', async () => {
    const r = await bootfs(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/3\s+integrity failure/);
  });
});

describe('bad input leaves no partial output and an unchanged store', () => {
  async function extractFails(storeDir: string, idx: string, code: number, pattern: RegExp): Promise<void> {
    const before = await snapshot(storeDir);
    const out = path.join(dir, `fail-${Math.random().toString(36).slice(2)}.bin`);
    const r = await bootfs(['extract', '-s', storeDir, idx, out]);
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr).not.toMatch(/internal error|at .*\.js:\d+/);
    expect(existsSync(out)).toBe(false);
    // Neither the output nor a temp file beside it.
    expect((await readdir(dir)).filter((f) => f.includes('fail-'))).toEqual([]);
    expect(await snapshot(storeDir)).toEqual(before);
  }

  it('a flipped byte in a chunk: exit 3 naming the chunk', async () => {
    const s = await storeCopy('flipped');
    const id = chunkIds[0]!;
    const f = path.join(s, id.slice(0, 4), `${id}.cacnk`);
    const bytes = await readFile(f);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(f, bytes);
    await extractFails(s, index, 3, new RegExp(`chunk ${id}.*corrupt`));
  });

  it('a truncated .cacnk: exit 3', async () => {
    const s = await storeCopy('truncated');
    const id = chunkIds[1]!;
    await truncate(path.join(s, id.slice(0, 4), `${id}.cacnk`), 10);
    await extractFails(s, index, 3, new RegExp(id));
  });

  it('a .cacnk far larger than its chunk (a planted huge file): exit 3, not read into memory', async () => {
    const s = await storeCopy('huge');
    const id = chunkIds[1]!;
    // Sparse, 64 MiB: far above any chunk the index allows (the check is on the size, before any read).
    await truncate(path.join(s, id.slice(0, 4), `${id}.cacnk`), 64 * 1024 ** 2);
    await extractFails(s, index, 3, new RegExp(`chunk ${id}.*too large`));
  });

  it('a missing chunk: exit 2 naming the chunk and the store', async () => {
    const s = await storeCopy('missing');
    const id = chunkIds[2]!;
    await rm(path.join(s, id.slice(0, 4), `${id}.cacnk`));
    await extractFails(s, index, 2, new RegExp(`chunk ${id} not found in .*missing`));
  });

  const garble = async (name: string, mutate: (b: Buffer) => Buffer): Promise<string> => {
    const p = path.join(dir, name);
    await writeFile(p, mutate(Buffer.from(await readFile(index))));
    return p;
  };

  it('a truncated .caibx: exit 3 naming the index', async () => {
    const p = await garble('trunc.caibx', (b) => b.subarray(0, b.length - 17));
    await extractFails(store, p, 3, /index .*trunc\.caibx is invalid/);
  });

  it('a .caibx with bad magic: exit 3', async () => {
    const p = await garble('magic.caibx', (b) => {
      b[8]! ^= 0xff;
      return b;
    });
    await extractFails(store, p, 3, /magic/);
  });

  it('a .caibx with decreasing offsets: exit 3', async () => {
    const p = await garble('order.caibx', (b) => {
      // Swap the end offsets of items 0 and 1.
      const e0 = b.readBigUInt64LE(64);
      b.writeBigUInt64LE(b.readBigUInt64LE(104), 64);
      b.writeBigUInt64LE(e0, 104);
      return b;
    });
    await extractFails(store, p, 3, /increas|order/);
  });

  it('a .caibx with a chunk above the max size: exit 3', async () => {
    const p = await garble('max.caibx', (b) => {
      b.writeBigUInt64LE(1024n, 40); // max = 1 KiB, but chunks are larger
      b.writeBigUInt64LE(1024n, 32);
      b.writeBigUInt64LE(64n, 24);
      return b;
    });
    await extractFails(store, p, 3, /max/);
  });

  it('a .caibx with unknown feature flags: exit 3', async () => {
    const p = await garble('flags.caibx', (b) => {
      b.writeBigUInt64LE(0xb000000000000000n | (1n << 40n), 16);
      return b;
    });
    await extractFails(store, p, 3, /unknown feature flag bits/);
  });

  it('an unwritable output: exit 1, nothing written', async () => {
    const r = await bootfs(['extract', '-s', store, index, path.join(dir, 'no-such-dir', 'out.bin')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot write .*no-such-dir/);
    const r2 = await bootfs(['make', '-s', store, path.join(dir, 'no-such-dir', 'x.caibx'), input]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/no-such-dir/);
  });

  it('extract onto an existing file replaces it only on success', async () => {
    const out = path.join(dir, 'keep.bin');
    await writeFile(out, 'precious');
    const s = await storeCopy('missing2');
    const id = chunkIds[chunkIds.length - 1]!;
    await rm(path.join(s, id.slice(0, 4), `${id}.cacnk`));
    const r = await bootfs(['extract', '-s', s, index, out]);
    expect(r.code).toBe(2);
    expect(await readFile(out, 'utf8')).toBe('precious');
  });
});

describe('bootfs store verify / prune / stats', () => {
  it('verify passes a good store and fails (exit 3) a bad one; --repair removes the bad chunk', async () => {
    const good = await bootfs(['store', 'verify', store, '--json']);
    expect(good.code, good.stderr).toBe(0);
    expect(JSON.parse(good.stdout).chunks).toBe(chunkIds.length);
    const s = await storeCopy('verify');
    const id = chunkIds[0]!;
    const f = path.join(s, id.slice(0, 4), `${id}.cacnk`);
    await writeFile(f, Buffer.from('garbage'));
    const bad = await bootfs(['store', 'verify', s]);
    expect(bad.code).toBe(3);
    expect(bad.stdout).toContain(`bad chunk ${id}`);
    expect(existsSync(f)).toBe(true); // verify alone changes nothing
    const fix = await bootfs(['store', 'verify', s, '--repair']);
    expect(fix.code).toBe(3);
    expect(existsSync(f)).toBe(false);
    expect((await bootfs(['store', 'verify', s])).code).toBe(0);
  });

  it('prune keeps what the indexes name, removes the rest, and never touches in-flight temp files', async () => {
    const s = await storeCopy('prune');
    const other = path.join(dir, 'other.bin');
    await writeFile(other, randomBytes(300_000));
    const otherIdx = path.join(dir, 'other.caibx');
    expect((await bootfs(['make', '-s', s, otherIdx, other])).code).toBe(0);
    const id = chunkIds[0]!;
    const temp = path.join(s, id.slice(0, 4), `.tmp-${id}.999.abcdef`);
    await writeFile(temp, 'a writer is still writing this');
    const dry = await bootfs(['store', 'prune', s, '--keep', index, '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const dj = JSON.parse(dry.stdout);
    expect(dj.removed).toBeGreaterThan(0);
    expect(dj.kept).toBe(chunkIds.length);
    const r = await bootfs(['store', 'prune', s, '--keep', index, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).removed).toBe(dj.removed);
    expect(existsSync(temp)).toBe(true);
    // The kept index still extracts; the pruned one does not.
    expect((await bootfs(['extract', '-s', s, index, path.join(dir, 'pruned-ok.bin')])).code).toBe(0);
    expect((await bootfs(['extract', '-s', s, otherIdx, path.join(dir, 'pruned-gone.bin')])).code).toBe(2);
  });

  it('prune refuses to run when a --keep index is unreadable (deletes nothing)', async () => {
    const s = await storeCopy('prune-bad');
    const before = await snapshot(s);
    const r = await bootfs(['store', 'prune', s, '--keep', path.join(dir, 'missing.caibx')]);
    expect(r.code).toBe(2);
    expect(await snapshot(s)).toEqual(before);
  });

  it('stats counts chunks and bytes', async () => {
    const r = await bootfs(['store', 'stats', store, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.chunks).toBe(chunkIds.length);
    expect(j.storedBytes).toBeGreaterThan(0);
  });
});

describe('bootfs demo', () => {
  it('runs both parts on built-in data and reports success in JSON', async () => {
    const demoDir = path.join(dir, 'demo');
    const r = await bootfs(['demo', '--dir', demoDir, '--size', '4', '--boot', 'none', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.extractedOk).toBe(true);
    expect(j.v2NewChunks).toBeLessThan(j.v2Chunks / 2);
    expect(j.convert.unpackedOk).toBe(true);
    expect(j.convert.v2NewChunks).toBeLessThan(j.convert.v1NewChunks / 4);
    expect(existsSync(path.join(demoDir, 'app-v2.bootfs'))).toBe(true);
  });
});

describe('a reader that goes away', () => {
  it('ends bootfs quietly with 141 (as SIGPIPE ends C tools), no stack trace', async () => {
    const { spawn } = await import('node:child_process');
    const { bootfsBin } = await import('../helpers/tools.js');
    const child = spawn(process.execPath, [bootfsBin, 'extract', '-s', store, index, '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(141);
    expect(stderr).not.toMatch(/EPIPE|at .*\.js:\d+/);
  });
});
