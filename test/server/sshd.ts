/**
 * Test peers for SSH stores: an OpenSSH sshd of our own on 127.0.0.1 (own host key, own
 * authorized_keys, never the system service), and key pairs made with ssh-keygen.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { onCleanup, run, tmpDir } from '../helpers/tools.js';

/** Where Debian puts sshd (not on a normal user's PATH). */
export const SSHD = '/usr/sbin/sshd';

export interface KeyPair {
  privateFile: string;
  publicFile: string;
  /** `TYPE BASE64 COMMENT` */
  publicLine: string;
  /** base64 public blob */
  blobBase64: string;
}

/** `ssh-keygen -t ed25519 -N '' -f DIR/NAME`. */
export async function makeKeyPair(dir: string, name: string, type = 'ed25519'): Promise<KeyPair> {
  const privateFile = path.join(dir, name);
  const r = await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `bootfs-test-${name}`, '-f', privateFile], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`ssh-keygen failed: ${r.stderr.toString()}`);
  const publicLine = (await readFile(`${privateFile}.pub`, 'utf8')).trim();
  return { privateFile, publicFile: `${privateFile}.pub`, publicLine, blobBase64: publicLine.split(/\s+/)[1]! };
}

/** The SHA256 fingerprint `ssh-keygen -lf` prints for a key file. */
export async function keygenFingerprint(file: string): Promise<string> {
  const r = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', file], { timeoutMs: 30_000 });
  const m = /(SHA256:[A-Za-z0-9+/]+)/.exec(r.stdout.toString());
  if (!m) throw new Error(`ssh-keygen -lf ${file}: ${r.stderr.toString()}`);
  return m[1]!;
}

/** A free TCP port on 127.0.0.1 (bound and released; sshd cannot listen on port 0). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolve once 127.0.0.1:port accepts a connection. */
export async function waitForPort(port: number, child: ChildProcess, log: () => string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`port ${port} not open after ${timeoutMs} ms: ${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface Sshd {
  port: number;
  user: string;
  /** The client key sshd accepts. */
  clientKey: KeyPair;
  hostKey: KeyPair;
  /** A known_hosts file naming this sshd (`[127.0.0.1]:PORT`). */
  knownHosts: string;
  log(): string;
  stop(): Promise<void>;
}

/** Start `/usr/sbin/sshd -D -e -f CONFIG` on a free 127.0.0.1 port (internal-sftp, keys only). */
export async function startSshd(): Promise<Sshd> {
  const dir = await tmpDir('bootfs-sshd-');
  const hostKey = await makeKeyPair(dir, 'host_key');
  const clientKey = await makeKeyPair(dir, 'client_key');
  await writeFile(path.join(dir, 'authorized_keys'), `${clientKey.publicLine}\n`);
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${hostKey.privateFile}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      'Subsystem sftp internal-sftp',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  // sshd refuses to start without its privilege-separation directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const knownHosts = path.join(dir, 'known_hosts');
  await writeFile(knownHosts, `[127.0.0.1]:${port} ${hostKey.publicLine.split(/\s+/).slice(0, 2).join(' ')}\n`);
  const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await exited;
  };
  // Registered before its temp dir's removal runs (cleanup runs last-registered first).
  onCleanup(stop);
  await waitForPort(port, child, () => log);
  return {
    port,
    user: os.userInfo().username,
    clientKey,
    hostKey,
    knownHosts,
    log: () => log,
    stop,
  };
}
