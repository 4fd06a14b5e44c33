/**
 * SftpStore against real servers: the conformance suite on OpenSSH's sshd (read-write), the read
 * half against `bootfs serve --ssh` (read-only), and host-key verification (known_hosts plain,
 * `[host]:port` and hashed; pinned fingerprints; refusals name the host and the offered key).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { encodeChunk, idToHex } from '../../src/chunk.js';
import { ChunkCorruptError, ChunkNotFoundError, IoError, UsageError } from '../../src/errors.js';
import { serveSsh, type RunningSshServer } from '../../src/server/ssh.js';
import { LocalStore } from '../../src/store/local.js';
import { openStore, parseStoreLocation } from '../../src/store/location.js';
import { HostKeyError, SftpStore, sftpOptionsFromEnv } from '../../src/store/sftp.js';
import { cleanup, describeWithTools, run, tmpDir } from '../helpers/tools.js';
import { keygenFingerprint, makeKeyPair, SSHD, startSshd, type Sshd } from '../server/sshd.js';
import { describeChunkStore } from './conformance.js';

afterAll(cleanup);

let sshd: Promise<Sshd> | undefined;
/** One sshd for the whole file, started on first use. */
function sharedSshd(): Promise<Sshd> {
  // startSshd registers its own stop with cleanup() (afterAll above).
  sshd ??= startSshd();
  return sshd;
}

it('parses sftp:// locations', () => {
  expect(parseStoreLocation('sftp://u@h:2222/srv/store')).toEqual({ kind: 'sftp', url: 'sftp://u@h:2222/srv/store' });
  expect(() => parseStoreLocation('sftp://u:pw@h/s')).toThrow(/passwords are not supported/);
  expect(() => parseStoreLocation('ssh://h/s')).toThrow(/ssh:\/\/ stores are not supported/);
  const s = new SftpStore('sftp://alice@example.com:2222/srv/store/', { agent: '/nonexistent' });
  expect(s.location).toBe('sftp://alice@example.com:2222/srv/store/');
  expect(s.chunkPath('ab'.repeat(32))).toBe(`/srv/store/abab/${'ab'.repeat(32)}.cacnk`);
  const home = new SftpStore('sftp://bob@h/~/chunks', { agent: '/x' });
  expect(home.chunkPath('ab'.repeat(32))).toBe(`chunks/abab/${'ab'.repeat(32)}.cacnk`);
  expect(home.location).toBe('sftp://bob@h:22/~/chunks/');
  expect(new SftpStore('sftp://c@h:1/', { agent: '/x' }).chunkPath('cd'.repeat(32))).toBe(`/cdcd/${'cd'.repeat(32)}.cacnk`);
  expect(() => new SftpStore('sftp://h/s', { hostFingerprint: 'MD5:aa' })).toThrow(UsageError);
  expect(sftpOptionsFromEnv({ BOOTFS_SSH_KEY: '/k', BOOTFS_SSH_INSECURE_SKIP_HOST_KEY_CHECK: '1' })).toEqual({ privateKeyFile: '/k', insecureSkipHostKeyCheck: true });
  expect(() => sftpOptionsFromEnv({ BOOTFS_SSH_INSECURE_SKIP_HOST_KEY_CHECK: 'yes' })).toThrow(UsageError);
});

describeWithTools([SSHD, 'ssh-keygen'], 'SftpStore against OpenSSH sshd', () => {
  describeChunkStore('sftp → OpenSSH sshd', async () => {
    const d = await sharedSshd();
    const dir = await tmpDir('bootfs-sftp-store-');
    const local = await LocalStore.open(dir, { create: true });
    const store = new SftpStore(`sftp://${d.user}@127.0.0.1:${d.port}${dir}`, { privateKeyFile: d.clientKey.privateFile, knownHostsFile: d.knownHosts });
    return { store, corrupt: (hex, bytes) => writeFile(local.chunkPath(hex), bytes), cleanup: async () => undefined };
  });

  it('writes temp files that never end in .cacnk, and leaves none behind', async () => {
    const d = await sharedSshd();
    const dir = await tmpDir('bootfs-sftp-tmp-');
    const store = new SftpStore(`sftp://${d.user}@127.0.0.1:${d.port}${dir}`, { privateKeyFile: d.clientKey.privateFile, knownHostsFile: d.knownHosts, channels: 2 });
    try {
      const chunks = Array.from({ length: 30 }, () => encodeChunk(randomBytes(3000)));
      expect(await Promise.all(chunks.map((c) => store.storeChunk(c.id, c.stored)))).toEqual(chunks.map(() => true));
      const local = await LocalStore.open(dir);
      const listed: string[] = [];
      for await (const c of local.listChunks()) listed.push(c.id);
      expect(listed.sort()).toEqual(chunks.map((c) => idToHex(c.id)).sort());
      const temps: string[] = [];
      for await (const t of local.listTempFiles()) temps.push(t.path);
      expect(temps).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('refuses an unknown host (empty known_hosts), naming the host and the offered fingerprint', async () => {
    const d = await sharedSshd();
    const dir = await tmpDir('bootfs-sftp-hk-');
    const empty = path.join(dir, 'known_hosts');
    await writeFile(empty, '');
    const offered = await keygenFingerprint(d.hostKey.publicFile);
    const store = new SftpStore(`sftp://${d.user}@127.0.0.1:${d.port}${dir}`, { privateKeyFile: d.clientKey.privateFile, knownHostsFile: empty });
    const err = await store.hasChunk(Buffer.alloc(32)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyError);
    expect((err as Error).message).toContain(`[127.0.0.1]:${d.port}`);
    expect((err as Error).message).toContain(offered);
    expect((err as Error).message).toMatch(/not in .*known_hosts/);
    await store.close();

    // A different key on record for the host: "does not match".
    const other = await makeKeyPair(dir, 'other');
    await writeFile(empty, `[127.0.0.1]:${d.port} ${other.publicLine}\n`);
    const s2 = new SftpStore(`sftp://${d.user}@127.0.0.1:${d.port}${dir}`, { privateKeyFile: d.clientKey.privateFile, knownHostsFile: empty });
    await expect(s2.hasChunk(Buffer.alloc(32))).rejects.toThrow(/does not match .* offered SHA256:/);
    await s2.close();
    // An entry for the same host on port 22 does not vouch for another port.
    await writeFile(empty, `127.0.0.1 ${d.hostKey.publicLine}\n`);
    const s3 = new SftpStore(`sftp://${d.user}@127.0.0.1:${d.port}${dir}`, { privateKeyFile: d.clientKey.privateFile, knownHostsFile: empty });
    await expect(s3.hasChunk(Buffer.alloc(32))).rejects.toBeInstanceOf(HostKeyError);
    await s3.close();
  });

  it('refuses a wrong pinned fingerprint; accepts the right one, a hashed known_hosts entry, and the insecure skip', async () => {
    const d = await sharedSshd();
    const dir = await tmpDir('bootfs-sftp-pin-');
    const url = `sftp://${d.user}@127.0.0.1:${d.port}${dir}`;
    const offered = await keygenFingerprint(d.hostKey.publicFile);
    const wrong = `SHA256:${'A'.repeat(43)}`;
    const s1 = new SftpStore(url, { privateKeyFile: d.clientKey.privateFile, hostFingerprint: wrong, knownHostsFile: d.knownHosts });
    const err = await s1.hasChunk(Buffer.alloc(32)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyError);
    expect((err as Error).message).toContain(offered);
    expect((err as Error).message).toContain(wrong);
    await s1.close();

    const s2 = new SftpStore(url, { privateKeyFile: d.clientKey.privateFile, hostFingerprint: offered, knownHostsFile: '/nonexistent' });
    expect(await s2.hasChunk(Buffer.alloc(32))).toBe(false);
    await s2.close();

    const hashed = path.join(dir, 'known_hosts_hashed');
    await writeFile(hashed, await readFile(d.knownHosts));
    const r = await run('ssh-keygen', ['-H', '-f', hashed], { timeoutMs: 30_000 });
    expect(r.code, r.stderr.toString()).toBe(0);
    expect(await readFile(hashed, 'utf8')).toMatch(/^\|1\|/);
    const s3 = new SftpStore(url, { privateKeyFile: d.clientKey.privateFile, knownHostsFile: hashed });
    expect(await s3.hasChunk(Buffer.alloc(32))).toBe(false);
    await s3.close();

    const s4 = new SftpStore(url, { privateKeyFile: d.clientKey.privateFile, knownHostsFile: '/nonexistent', insecureSkipHostKeyCheck: true });
    expect(await s4.hasChunk(Buffer.alloc(32))).toBe(false);
    await s4.close();
  });

  it('fails a wrong client key as a login error, without retries', async () => {
    const d = await sharedSshd();
    const dir = await tmpDir('bootfs-sftp-badkey-');
    const stranger = await makeKeyPair(dir, 'stranger');
    const store = new SftpStore(`sftp://${d.user}@127.0.0.1:${d.port}${dir}`, { privateKeyFile: stranger.privateFile, knownHostsFile: d.knownHosts });
    await expect(store.hasChunk(Buffer.alloc(32))).rejects.toThrow(/login as .* refused/);
    await store.close();
  });

  it('opens through openStore with BOOTFS_SSH_* settings and retries a refused connection until the deadline', async () => {
    const d = await sharedSshd();
    const dir = await tmpDir('bootfs-sftp-open-');
    const store = await openStore(`sftp://${d.user}@127.0.0.1:${d.port}${dir}`, { sftp: { privateKeyFile: d.clientKey.privateFile, knownHostsFile: d.knownHosts } });
    expect(store).toBeInstanceOf(SftpStore);
    const c = encodeChunk(Buffer.from('via openStore'));
    expect(await store.storeChunk(c.id, c.stored)).toBe(true);
    await store.close();
    // Nothing listens on port 1: ECONNREFUSED is retried, then reported with the tries.
    const dead = new SftpStore(`sftp://x@127.0.0.1:1/s`, { privateKeyFile: d.clientKey.privateFile, knownHostsFile: d.knownHosts, tries: 3, backoffMs: 10 });
    const err = await dead.hasChunk(Buffer.alloc(32)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as Error).message).toMatch(/after 3 tries: cannot connect to 127\.0\.0\.1:1/);
    await dead.close();
  });

  it('reconnects after the server drops the connection', async () => {
    const d = await sharedSshd();
    const dir = await tmpDir('bootfs-sftp-reconnect-');
    const store = new SftpStore(`sftp://${d.user}@127.0.0.1:${d.port}${dir}`, { privateKeyFile: d.clientKey.privateFile, knownHostsFile: d.knownHosts, backoffMs: 10 });
    try {
      const c = encodeChunk(Buffer.from('reconnect'));
      await store.storeChunk(c.id, c.stored);
      // Cut the pooled connection under the store: the next operation must reconnect.
      const conn = await (store as unknown as { conn: Promise<{ sock: { destroy(): void } }> }).conn;
      conn.sock.destroy();
      expect(await store.getChunk(c.id)).toEqual(Buffer.from('reconnect'));
    } finally {
      await store.close();
    }
  });
});

describeWithTools(['ssh-keygen'], 'SftpStore against bootfs serve --ssh (read-only)', () => {
  // The conformance suite writes in most tests, and this server refuses writes, so the read half
  // runs here on a store filled through LocalStore.
  it('reads, stats, reports missing and corrupt chunks, and refuses writes', async () => {
    const dir = await tmpDir('bootfs-sftp-serve-');
    const root = path.join(dir, 'store');
    const local = await LocalStore.open(root, { create: true });
    const client = await makeKeyPair(dir, 'client');
    await writeFile(path.join(dir, 'authorized_keys'), `${client.publicLine}\n`);
    const server: RunningSshServer = await serveSsh({ store: root, listen: '127.0.0.1:0', authorizedKeysFile: path.join(dir, 'authorized_keys') });
    const store = new SftpStore(`sftp://reader@${server.address}/`, { privateKeyFile: client.privateFile, hostFingerprint: server.hostKey.fingerprint });
    try {
      const plain = randomBytes(300_000);
      const c = encodeChunk(plain);
      await local.storeChunk(c.id, c.stored);
      expect(await store.hasChunk(c.id)).toBe(true);
      expect(await store.getStored(c.id)).toEqual(c.stored);
      expect(await store.getChunk(c.id, { size: plain.length })).toEqual(plain);
      const many = Array.from({ length: 40 }, (_, i) => encodeChunk(Buffer.from(`parallel ${i}`.repeat(200))));
      for (const m of many) await local.storeChunk(m.id, m.stored);
      const got = await Promise.all(many.map((m) => store.getChunk(m.id)));
      expect(got.map((g) => g.toString().slice(0, 12))).toEqual(many.map((_, i) => `parallel ${i}`.repeat(2).slice(0, 12)));

      const absent = encodeChunk(Buffer.from('absent'));
      expect(await store.hasChunk(absent.id)).toBe(false);
      const nf = await store.getChunk(absent.id).catch((e: unknown) => e);
      expect(nf).toBeInstanceOf(ChunkNotFoundError);
      expect((nf as Error).message).toContain(store.location);

      await mkdir(path.dirname(local.chunkPath(absent.id)), { recursive: true });
      await writeFile(local.chunkPath(absent.id), c.stored);
      await expect(store.getChunk(absent.id)).rejects.toBeInstanceOf(ChunkCorruptError);

      const w = encodeChunk(Buffer.from('write me'));
      await expect(store.storeChunk(w.id, w.stored)).rejects.toThrow(/permission denied|read-only/i);
      expect(await local.hasChunk(w.id)).toBe(false);

      // A chunk file that is a symlink out of the store reads as an error, never the outside file.
      const outside = encodeChunk(Buffer.from('outside'));
      const outFile = path.join(dir, 'outside.cacnk');
      await writeFile(outFile, outside.stored);
      await mkdir(path.dirname(local.chunkPath(outside.id)), { recursive: true });
      await symlink(outFile, local.chunkPath(outside.id));
      await expect(store.getStored(outside.id)).rejects.toThrow(/path outside the store/);
    } finally {
      await store.close();
      await server.close();
    }
  });
});
