/**
 * The oci:// chunk store against a real registry: Debian's docker-registry (distribution 2.8) on
 * loopback. `bootfs make` → `bootfs extract`; `bootfs convert dir:` → `bootfs mount`; then
 * `docker-registry garbage-collect` keeps every chunk the store's manifests reference (and does
 * collect a blob nothing references, so the collection provably ran).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readCaibxFile } from '../../src/index/caibx.js';
import { RegistryRepo } from '../../src/registry/client.js';
import { parseIndex } from '../../src/store/registry-format.js';
import { RegistryStore } from '../../src/store/registry.js';
import { bootfs } from '../cli/cli-helpers.js';
import { startMount, treeDiff } from '../helpers/mount.js';
import { cleanup, describeWithTools, onCleanup, run, tmpDir } from '../helpers/tools.js';

afterAll(cleanup);

interface Registry {
  port: number;
  /** Access-log request lines so far: `METHOD PATH STATUS`. */
  requests(): string[];
  stop(): Promise<void>;
}

/** distribution's config: filesystem storage under `root`, plain http on 127.0.0.1, a free port. */
function registryConfig(root: string): string {
  return [
    'version: 0.1',
    'log: { level: info, formatter: text, accesslog: { disabled: false } }',
    'storage:',
    `  filesystem: { rootdirectory: ${JSON.stringify(root)} }`,
    // No background purge of upload directories while a test runs.
    '  maintenance: { uploadpurging: { enabled: false } }',
    'http:',
    '  addr: 127.0.0.1:0',
    '',
  ].join('\n');
}

/**
 * Start `docker-registry serve CONFIG` and wait for its "listening on 127.0.0.1:PORT" line. (Not
 * test/registry/registry-server.ts: garbage collection needs the config file and a restart on the
 * same storage, which that helper does not offer.)
 */
async function startRegistry(config: string): Promise<Registry> {
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGTERM');
    await exited;
  };
  onCleanup(stop);
  const until = Date.now() + 15_000;
  for (;;) {
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
    if (m) {
      // Access log (combined format): 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "…"
      const requests = () => [...log.matchAll(/"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3})/g)].map((r) => `${r[1]} ${r[2]} ${r[3]}`);
      return { port: Number(m[1]), requests, stop };
    }
    if (child.exitCode !== null || Date.now() > until) {
      await stop();
      throw new Error(`docker-registry did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The registry logs a request after answering it: wait until no new line came for 200 ms. */
async function quiet(registry: Registry): Promise<string[]> {
  let n = -1;
  while (registry.requests().length !== n) {
    n = registry.requests().length;
    await new Promise((r) => setTimeout(r, 200));
  }
  return registry.requests();
}

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describeWithTools(['docker-registry', 'rsync'], 'oci:// chunk store on docker-registry', () => {
  let dir: string;
  let config: string;
  let registry: Registry;
  let input: string;
  let tree: string;
  const store = () => `oci://127.0.0.1:${registry.port}/bootfs/chunks`;
  const caibx = () => path.join(dir, 'input.caibx');
  const treeIndex = () => path.join(dir, 'tree.bootfs');

  beforeAll(async () => {
    dir = await tmpDir('bootfs-oci-store-');
    config = path.join(dir, 'registry.yml');
    await writeFile(config, registryConfig(path.join(dir, 'registry')));
    registry = await startRegistry(config);
    // 12 MiB: 4 MiB random, the same 4 MiB again (deduplicated) and 4 MiB of zeros.
    const random = randomBytes(4 << 20);
    input = path.join(dir, 'input.bin');
    await writeFile(input, Buffer.concat([random, random, Buffer.alloc(4 << 20)]));
    tree = path.join(dir, 'tree');
    await mkdir(path.join(tree, 'etc', 'app'), { recursive: true });
    await mkdir(path.join(tree, 'usr', 'lib'), { recursive: true });
    await writeFile(path.join(tree, 'etc', 'app', 'config.toml'), 'name = "demo"\nworkers = 4\n');
    await writeFile(path.join(tree, 'etc', 'empty'), '');
    await writeFile(path.join(tree, 'usr', 'lib', 'big.so'), randomBytes(3 << 20));
    for (let i = 0; i < 40; i++) await writeFile(path.join(tree, 'usr', 'lib', `small-${i}.txt`), `file ${i}\n`.repeat(i * 50 + 1));
    await symlink('../usr/lib/big.so', path.join(tree, 'etc', 'link'));
  }, 120_000);

  it('make stores chunks as blobs; extract reads them back; a second make uploads nothing', async () => {
    const made = await bootfs(['make', '--store', store(), '--json', '--no-progress', caibx(), input]);
    expect(made.code, made.stderr).toBe(0);
    const summary = JSON.parse(made.stdout) as { chunks: number; newChunks: number; store: string };
    expect(summary.store).toBe(`${store()}:bootfs-chunks`);
    const index = await readCaibxFile(caibx());
    const distinct = new Set(Array.from({ length: index.table.count }, (_, i) => index.table.hexId(i))).size;
    expect(summary.newChunks).toBe(distinct);
    expect(distinct).toBeLessThan(summary.chunks); // the repeated 4 MiB and the zeros

    // The tag's index lists segments whose maps name every chunk: make exited without a flush
    // of its own, so storeChunk itself committed them.
    const repo = new RegistryRepo(`127.0.0.1:${registry.port}/bootfs/chunks`);
    try {
      const got = (await repo.getManifest('bootfs-chunks'))!;
      const parsed = parseIndex(got.body, got.mediaType, 'index');
      expect(parsed.segments.reduce((n, s) => n + s.count!, 0)).toBe(distinct);
    } finally {
      await repo.close();
    }

    const out = path.join(dir, 'extracted.bin');
    const ex = await bootfs(['extract', '--store', store(), caibx(), out]);
    expect(ex.code, ex.stderr).toBe(0);
    expect(sha256(await readFile(out))).toBe(sha256(await readFile(input)));

    const again = await bootfs(['make', '--store', store(), '--json', '--no-progress', path.join(dir, 'again.caibx'), input]);
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { newChunks: number }).newChunks).toBe(0);
  }, 300_000);

  it('convert writes a tree to the store and mount reads its files through it', async () => {
    if (process.getuid?.() !== 0) throw new Error('mounting FUSE needs root');
    const conv = await bootfs(['convert', `dir:${tree}`, '--store', store(), '-o', treeIndex(), '--no-progress']);
    expect(conv.code, conv.stderr).toBe(0);
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt);
    const m = await startMount(treeIndex(), mnt, ['--store', store(), '--cache', path.join(dir, 'cache-1')]);
    try {
      expect(await treeDiff(tree, mnt)).toBe('');
    } finally {
      expect(await m.stop()).toBe(0);
    }
  }, 300_000);

  it('garbage-collect keeps every chunk the store references and collects a blob nothing references', async () => {
    if (process.getuid?.() !== 0) throw new Error('mounting FUSE needs root');
    const stray = Buffer.from(`referenced by no manifest ${randomBytes(8).toString('hex')}`);
    let repo = new RegistryRepo(`127.0.0.1:${registry.port}/bootfs/chunks`);
    await repo.putBlob(sha256(stray), stray);
    expect(await repo.headBlob(sha256(stray))).toBe(stray.length);
    await repo.close();

    // distribution wants no writers while it collects: stop, collect, start again (a new port).
    await registry.stop();
    const gc = await run('docker-registry', ['garbage-collect', config], { timeoutMs: 120_000 });
    expect(gc.code, gc.stderr.toString()).toBe(0);
    expect(gc.stdout.toString()).toMatch(/blob eligible for deletion: sha256:/);
    registry = await startRegistry(config);

    repo = new RegistryRepo(`127.0.0.1:${registry.port}/bootfs/chunks`);
    try {
      expect(await repo.headBlob(sha256(stray))).toBeUndefined();
    } finally {
      await repo.close();
    }
    // Every chunk of both indexes is still there: extract and mount read them all.
    const out = path.join(dir, 'extracted-after-gc.bin');
    const ex = await bootfs(['extract', '--store', store(), caibx(), out]);
    expect(ex.code, ex.stderr).toBe(0);
    expect(sha256(await readFile(out))).toBe(sha256(await readFile(input)));
    const mnt = path.join(dir, 'mnt-after-gc');
    await mkdir(mnt);
    const m = await startMount(treeIndex(), mnt, ['--store', store(), '--cache', path.join(dir, 'cache-2')]);
    try {
      expect(await treeDiff(tree, mnt)).toBe('');
    } finally {
      expect(await m.stop()).toBe(0);
    }
    // A reader loads the index and the maps once, then reads each chunk with one GET of its blob.
    const reader = new RegistryStore(store());
    try {
      const index = await readCaibxFile(caibx());
      const ids = [...new Set(Array.from({ length: index.table.count }, (_, i) => index.table.hexId(i)))].slice(0, 40);
      const before = (await quiet(registry)).length;
      expect(await reader.getChunk(Buffer.from(ids[0]!, 'hex'))).toBeInstanceOf(Buffer);
      const opening = (await quiet(registry)).slice(before);
      expect(opening.filter((r) => r.startsWith('GET /v2/bootfs/chunks/manifests/')).length).toBe(1); // the tag, no segment manifest
      expect(opening.every((r) => r.startsWith('GET ') && r.endsWith(' 200'))).toBe(true);
      const mid = opening.length + before;
      for (const hex of ids.slice(1)) expect(await reader.getChunk(Buffer.from(hex, 'hex'))).toBeInstanceOf(Buffer);
      const reads = (await quiet(registry)).slice(mid);
      expect(reads).toHaveLength(ids.length - 1);
      for (const r of reads) expect(r).toMatch(/^GET \/v2\/bootfs\/chunks\/blobs\/sha256:[0-9a-f]{64} 200$/);
    } finally {
      await reader.close();
    }
  }, 300_000);
});
