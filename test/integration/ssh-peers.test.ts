/**
 * SSH stores with real peers: OpenSSH's `sftp` reads a chunk from `bootfs serve --ssh` and cannot
 * write one or escape the store; `bootfs extract --store sftp://…` rebuilds a blob from OpenSSH's
 * sshd and from `bootfs serve --ssh`; serve prints the host key fingerprint ssh-keygen computes and
 * stops cleanly (HTTP and SSH together) on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bootfs, fileSha, snapshot } from '../cli/cli-helpers.js';
import { bootfsBin, cleanup, describeWithTools, run, tmpDir } from '../helpers/tools.js';
import { keygenFingerprint, makeKeyPair, SSHD, startSshd, type KeyPair } from '../server/sshd.js';

afterAll(cleanup);

let dir: string;
let input: string;
let index: string;
let store: string;
let client: KeyPair;
let chunkFile: string;

beforeAll(async () => {
  dir = await tmpDir('bootfs-ssh-peers-');
  input = path.join(dir, 'input.bin');
  const part = randomBytes(700_000);
  await writeFile(input, Buffer.concat([part, randomBytes(700_000), part]));
  index = path.join(dir, 'input.caibx');
  store = path.join(dir, 'store');
  const made = await bootfs(['make', '--store', store, index, input]);
  expect(made.code, made.stderr).toBe(0);
  const snap = await snapshot(store);
  chunkFile = [...snap.keys()].find((k) => k.endsWith('.cacnk'))!;
});

interface Served {
  sftpPort: number;
  fingerprint: string;
  stderr: () => string;
  stop(): Promise<number | null>;
}

/** Start `bootfs serve ARGS` and wait for the ssh lines on stderr. */
async function startServe(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [bootfsBin, 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const found = await new Promise<{ port: number; fp: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bootfs serve did not start: ${err}`)), 15_000);
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      const fp = /^bootfs: ssh host key \S+ (SHA256:\S+)/m.exec(err);
      const m = /^bootfs: serving .* read-only over sftp:\/\/127\.0\.0\.1:(\d+)\/$/m.exec(err);
      if (fp && m) {
        clearTimeout(timer);
        resolve({ port: Number(m[1]), fp: fp[1]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`bootfs serve exited with ${code}: ${err}`));
    });
  });
  return {
    sftpPort: found.port,
    fingerprint: found.fp,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      return exited;
    },
  };
}

describeWithTools(['ssh-keygen', 'sftp'], 'bootfs serve --ssh with OpenSSH sftp and bootfs extract', () => {
  let served: Served;
  let knownHosts: string;
  const sftpBatch = async (commands: string) => {
    const batch = path.join(dir, `batch-${Math.random().toString(36).slice(2)}`);
    await writeFile(batch, commands);
    const args = ['-i', client.privateFile, '-P', String(served.sftpPort), '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-b', batch, 'reader@127.0.0.1'];
    const r = await run('sftp', args, { cwd: dir, timeoutMs: 60_000 });
    return { code: r.code, out: r.stdout.toString() + r.stderr.toString() };
  };

  beforeAll(async () => {
    client = await makeKeyPair(dir, 'client');
    await writeFile(path.join(dir, 'authorized_keys'), `${client.publicLine}\n`);
    served = await startServe(['--store', store, '--ssh', '127.0.0.1:0', '--http', '127.0.0.1:0', '--authorized-keys', path.join(dir, 'authorized_keys'), '--host-key', path.join(dir, 'host_key')]);
    knownHosts = path.join(dir, 'known_hosts_serve');
    const pub = (await readFile(path.join(dir, 'host_key.pub'), 'utf8')).split(/\s+/).slice(0, 2).join(' ');
    await writeFile(knownHosts, `[127.0.0.1]:${served.sftpPort} ${pub}\n`);
  });
  afterAll(async () => {
    if (served) await served.stop();
  });

  it('prints the SHA256 fingerprint ssh-keygen -lf computes', async () => {
    expect(served.fingerprint).toBe(await keygenFingerprint(path.join(dir, 'host_key.pub')));
    expect(served.stderr()).toMatch(/generated ssh host key/);
  });

  it('sftp get reads a chunk; put, rm, mkdir and ../ escapes fail; the store is unchanged', async () => {
    const before = await snapshot(store);
    const got = await sftpBatch(`get ${chunkFile} fetched.cacnk\n`);
    expect(got.code, got.out).toBe(0);
    expect(await readFile(path.join(dir, 'fetched.cacnk'))).toEqual(await readFile(path.join(store, chunkFile)));

    const put = await sftpBatch(`put ${input} ${chunkFile.slice(0, 4)}/new.cacnk\n`);
    expect(put.code).not.toBe(0);
    expect(put.out).toMatch(/permission denied/i);
    for (const cmd of [`rm ${chunkFile}`, 'mkdir abcd', `rename ${chunkFile} x`, 'get ../../etc/passwd passwd', 'get /../../etc/passwd passwd']) {
      const r = await sftpBatch(`${cmd}\n`);
      expect(r.code, `${cmd}: ${r.out}`).not.toBe(0);
    }
    expect(await snapshot(store)).toEqual(before);
  });

  it('bootfs extract --store sftp://… from bootfs serve --ssh, pinned by fingerprint', async () => {
    const out = path.join(dir, 'from-serve.bin');
    const r = await bootfs(['extract', '--store', `sftp://reader@127.0.0.1:${served.sftpPort}/`, index, out], {
      env: { ...process.env, BOOTFS_SSH_KEY: client.privateFile, BOOTFS_SSH_HOST_FINGERPRINT: served.fingerprint },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(await fileSha(out)).toBe(await fileSha(input));
  });

  it('an unknown host key stops bootfs extract with the host and the offered fingerprint', async () => {
    const empty = path.join(dir, 'empty_known_hosts');
    await writeFile(empty, '');
    const r = await bootfs(['extract', '--store', `sftp://reader@127.0.0.1:${served.sftpPort}/`, index, path.join(dir, 'never.bin')], {
      env: { ...process.env, BOOTFS_SSH_KEY: client.privateFile, BOOTFS_SSH_KNOWN_HOSTS: empty },
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`[127.0.0.1]:${served.sftpPort}`);
    expect(r.stderr).toContain(served.fingerprint);
  });

  it('--insecure-skip-host-key-check is the one way past an unknown host key; --ssh-key names the key', async () => {
    const empty = path.join(dir, 'empty_known_hosts2');
    await writeFile(empty, '');
    const out = path.join(dir, 'insecure.bin');
    const env: NodeJS.ProcessEnv = { ...process.env, BOOTFS_SSH_KNOWN_HOSTS: empty };
    delete env.BOOTFS_SSH_KEY;
    const r = await bootfs(['extract', '--store', `sftp://reader@127.0.0.1:${served.sftpPort}/`, '--ssh-key', client.privateFile, '--insecure-skip-host-key-check', index, out], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await fileSha(out)).toBe(await fileSha(input));
  });

  it('SIGTERM stops serve (HTTP and SSH) with status 0', async () => {
    const other = await startServe(['--store', store, '--ssh', '127.0.0.1:0', '--http', '127.0.0.1:0', '--authorized-keys', path.join(dir, 'authorized_keys'), '--host-key', path.join(dir, 'host_key')]);
    expect(other.fingerprint).toBe(served.fingerprint);
    expect(await other.stop()).toBe(0);
  });
});

describeWithTools([SSHD, 'ssh-keygen'], 'bootfs extract from OpenSSH sshd', () => {
  it('bootfs extract --store sftp://… rebuilds the input and exits', async () => {
    const d = await startSshd();
    try {
      const out = path.join(dir, 'from-sshd.bin');
      const r = await bootfs(['extract', '--store', `sftp://${d.user}@127.0.0.1:${d.port}${store}`, index, out], {
        env: { ...process.env, BOOTFS_SSH_KEY: d.clientKey.privateFile, BOOTFS_SSH_KNOWN_HOSTS: d.knownHosts },
      });
      expect(r.code, r.stderr).toBe(0);
      expect(await fileSha(out)).toBe(await fileSha(input));
    } finally {
      await d.stop();
    }
  });
});
