/**
 * HTTP stores with real peers: casync extracts through `bootfs serve`; `bootfs extract` reads a
 * store served by nginx; `bootfs make` uploads to `bootfs serve --writable`; serve stops cleanly
 * on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bootfs, fileSha, snapshot } from '../cli/cli-helpers.js';
import { bootfsBin, cleanup, describeWithTools, run, tmpDir } from '../helpers/tools.js';
import { startNginx } from '../server/nginx.js';

afterAll(cleanup);

interface Served {
  url: string;
  child: ChildProcess;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Start `bootfs serve ARGS` and wait for the "serving … over URL" line on stderr. */
async function startServe(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Served> {
  const child = spawn(process.execPath, [bootfsBin, 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bootfs serve did not start: ${err}`)), 15_000);
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      const m = /^bootfs: serving .* over (https?:\/\/\S+)$/m.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`bootfs serve exited with ${code}: ${err}`));
    });
  });
  return {
    url,
    child,
    stderr: () => err,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill(signal);
      return exited;
    },
  };
}

let dir: string;
let input: string;
let index: string;
let store: string;

async function setup(): Promise<void> {
  dir = await tmpDir('bootfs-http-peers-');
  input = path.join(dir, 'input.bin');
  // ~3 MB: about 50 chunks at the default 64 KiB average, some repeated.
  const part = randomBytes(1_000_000);
  await writeFile(input, Buffer.concat([part, randomBytes(1_000_000), part]));
  index = path.join(dir, 'input.caibx');
  store = path.join(dir, 'store');
  const made = await bootfs(['make', '--store', store, index, input]);
  expect(made.code, made.stderr).toBe(0);
}

describeWithTools(['casync'], 'casync reads a store served by bootfs serve', () => {
  beforeAll(setup);

  it('casync extract --store=http://… gives back the input; SIGTERM stops serve with status 0', async () => {
    const served = await startServe(['--store', store, '--http', '127.0.0.1:0']);
    try {
      expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const out = path.join(dir, 'casync-out.bin');
      const x = await run('casync', ['extract', `--store=${served.url}/`, index, out], { timeoutMs: 120_000 });
      expect(x.code, x.stderr.toString()).toBe(0);
      expect(await fileSha(out)).toBe(await fileSha(input));
    } finally {
      expect(await served.stop('SIGTERM')).toBe(0);
    }
    expect(served.stderr()).toMatch(/SIGTERM: finishing requests in flight/);
  });
});

describeWithTools(['nginx'], 'bootfs over HTTP with nginx and bootfs serve', () => {
  beforeAll(setup);

  it('bootfs extract --store http://… reads a store nginx serves', async () => {
    const before = await snapshot(store);
    const nginx = await startNginx(store);
    try {
      const out = path.join(dir, 'nginx-out.bin');
      const x = await bootfs(['extract', '--store', nginx.storeUrl, index, out]);
      expect(x.code, x.stderr).toBe(0);
      expect(await fileSha(out)).toBe(await fileSha(input));
      // A chunk missing on the server fails the extract with "not found" (exit 2), naming the URL.
      const empty = path.join(dir, 'empty-store');
      const nginx2 = await startNginx(empty);
      try {
        const miss = await bootfs(['extract', '--store', nginx2.storeUrl, index, path.join(dir, 'never.bin')]);
        expect(miss.code).toBe(2);
        expect(miss.stderr).toContain(`${nginx2.storeUrl}/`);
      } finally {
        await nginx2.stop();
      }
    } finally {
      await nginx.stop();
    }
    expect(await snapshot(store)).toEqual(before);
  });

  it('bootfs make --store http://… uploads to bootfs serve --writable (token from the environment)', async () => {
    const target = path.join(dir, 'uploaded');
    await run('mkdir', ['-p', target]);
    const served = await startServe(['--store', target, '--http', '127.0.0.1:0', '--writable'], { ...process.env, BOOTFS_TOKEN: 'sekrit' });
    try {
      const idx2 = path.join(dir, 'uploaded.caibx');
      const denied = await bootfs(['make', '--store', served.url, idx2, input], { env: { ...process.env, BOOTFS_STORE_TOKEN: 'wrong' } });
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toMatch(/HTTP 401/);
      const made = await bootfs(['make', '--store', served.url, idx2, input, '--json'], { env: { ...process.env, BOOTFS_STORE_TOKEN: 'sekrit' } });
      expect(made.code, made.stderr).toBe(0);
      const result = JSON.parse(made.stdout) as { chunks: number; newChunks: number };
      expect(result.newChunks).toBeGreaterThan(0);
      expect(result.newChunks).toBeLessThan(result.chunks); // the repeated megabyte dedups
      // Same chunks as the local make, and they extract locally.
      expect(await snapshot(target)).toEqual(await snapshot(store));
      const out = path.join(dir, 'uploaded-out.bin');
      const x = await bootfs(['extract', '--store', target, idx2, out]);
      expect(x.code, x.stderr).toBe(0);
      expect(await fileSha(out)).toBe(await fileSha(input));
    } finally {
      expect(await served.stop('SIGINT')).toBe(0);
    }
  });
});
