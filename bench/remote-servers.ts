/**
 * Servers for the remote benchmark, each a child process on 127.0.0.1 with its config and logs in
 * the work dir: `bootfs serve` (HTTP, and `--ssh` when it exists), nginx, OpenSSH's sshd.
 * Every one is stopped by its own pid (SIGTERM/SIGQUIT, SIGKILL after 5 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

/** A started server. */
export interface Server {
  name: string;
  /** What the client connects to: `http://127.0.0.1:PORT/…` or `HOST:PORT` for ssh. */
  url: string;
  host: string;
  port: number;
  pid: number | undefined;
  /** Command line, recorded in the results. */
  argv: string[];
  /** File the child's stdout and stderr go to. */
  log: string;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (nginx and sshd cannot listen on port 0 and report it). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

const STARTUP_MS = 15_000;

async function logTail(log: string): Promise<string> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-8).join('\n') || '(empty log)';
}

/** Spawn with stdout+stderr appended to `log`; `onStderr` sees the stderr text as it arrives. */
function spawnLogged(cmd: string, args: string[], log: string, onStderr?: (text: string) => void): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(log, { flags: 'a' });
  let err = '';
  child.stdout!.on('data', (b: Buffer) => out.write(b));
  child.stderr!.on('data', (b: Buffer) => {
    out.write(b);
    if (onStderr && err.length < 64 * 1024) {
      err += b.toString('utf8');
      onStderr(err);
    }
  });
  child.once('close', () => out.end());
  return child;
}

function stopper(child: ChildProcess, signal: NodeJS.Signals): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
}

/** Wait until 127.0.0.1:port accepts a connection, the child exits (error) or time runs out. */
async function waitForPort(name: string, port: number, child: ChildProcess, log: string): Promise<void> {
  const until = Date.now() + STARTUP_MS;
  let spawnError: Error | undefined;
  child.once('error', (e) => (spawnError = e));
  for (;;) {
    if (spawnError) throw new Error(`${name} could not be started: ${spawnError.message}`);
    if (child.exitCode !== null) throw new Error(`${name} exited with status ${child.exitCode}: ${await logTail(log)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${name} did not listen on 127.0.0.1:${port} within ${STARTUP_MS} ms: ${await logTail(log)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Start a child that prints its bound address on stderr; `pattern` captures it (group 1 = the URL
 * or HOST:PORT). Used for `bootfs serve`, which binds port 0 and says where.
 */
async function startAnnouncing(name: string, cmd: string, args: string[], log: string, pattern: RegExp): Promise<{ child: ChildProcess; found: string }> {
  let resolveFound!: (s: string) => void;
  const found = new Promise<string>((resolve) => (resolveFound = resolve));
  const child = spawnLogged(cmd, args, log, (text) => {
    const m = pattern.exec(text);
    const hit = m?.slice(1).find((g) => g !== undefined);
    if (hit !== undefined) resolveFound(hit);
  });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (e) => reject(new Error(`${name} could not be started: ${e.message}`)));
    child.once('exit', (code, sig) => {
      // Give the log stream a moment to flush before quoting it.
      setTimeout(() => void logTail(log).then((t) => reject(new Error(`${name} exited (${sig ?? `status ${code}`}) before announcing its address: ${t}`))), 100);
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => void logTail(log).then((t) => reject(new Error(`${name} printed no address within ${STARTUP_MS} ms: ${t}`))), STARTUP_MS);
  });
  try {
    const addr = await Promise.race([found, failed, timeout]);
    return { child, found: addr };
  } catch (err) {
    await stopper(child, 'SIGKILL')();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Split `http://HOST:PORT` / `ssh://HOST:PORT` / `HOST:PORT` / `[v6]:PORT`. */
export function hostPort(text: string): { host: string; port: number } {
  const m = /^(?:[a-z]+:\/\/)?(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+):(\d+)/i.exec(text.trim());
  if (!m) throw new Error(`cannot find HOST:PORT in '${text}'`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** `bootfs serve --store DIR --http 127.0.0.1:0` (read-only, chunks verified before sending). */
export async function startBootfsHttp(node: string, bin: string, storeDir: string, workDir: string): Promise<Server> {
  const log = path.join(workDir, 'bootfs-serve-http.log');
  const args = [bin, 'serve', '--store', storeDir, '--http', '127.0.0.1:0'];
  const { child, found } = await startAnnouncing('bootfs serve', node, args, log, /bootfs: serving .* over (https?:\/\/\S+)/);
  const { host, port } = hostPort(found);
  return { name: 'bootfs serve', url: found, host, port, pid: child.pid, argv: [node, ...args], log, stop: stopper(child, 'SIGTERM') };
}

/**
 * Debian's nginx in the foreground serving `storeDir` read-only at /store/: one worker, sendfile,
 * keep-alive with a high request limit (the whole pass fits on 16 connections), no access log.
 */
export async function startNginx(nginx: string, storeDir: string, workDir: string): Promise<Server & { config: string }> {
  const dir = path.join(workDir, 'nginx');
  for (const d of ['', 'body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(path.join(dir, d), { recursive: true });
  const port = await freePort();
  const errorLog = path.join(dir, 'error.log');
  // As root, workers would drop to nobody, who cannot read the 0700 work dir.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const config = `${user}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${errorLog} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    location /store/ {
      alias ${storeDir}/;
      limit_except GET HEAD { deny all; }
    }
  }
}
`;
  const confFile = path.join(dir, 'nginx.conf');
  await writeFile(confFile, config);
  const args = ['-p', dir, '-c', confFile, '-e', errorLog, '-g', 'daemon off;'];
  const log = path.join(dir, 'stdio.log');
  const child = spawnLogged(nginx, args, log);
  try {
    await waitForPort('nginx', port, child, errorLog);
  } catch (err) {
    await stopper(child, 'SIGKILL')();
    throw err;
  }
  return {
    name: 'nginx',
    url: `http://127.0.0.1:${port}/store/`,
    host: '127.0.0.1',
    port,
    pid: child.pid,
    argv: [nginx, ...args],
    log: errorLog,
    config,
    stop: stopper(child, 'SIGQUIT'), // graceful stop
  };
}

/** Files of a throwaway SSH setup: client key, host key, authorized_keys, known_hosts. */
export interface SshKeys {
  dir: string;
  clientKey: string;
  clientPub: string;
  hostKey: string;
  hostPub: string;
  authorizedKeys: string;
}

/** Generate ed25519 client and host keys (no passphrase) and authorized_keys in `dir`. */
export async function makeSshKeys(sshKeygen: string, dir: string, run: (cmd: string, args: string[]) => Promise<string>): Promise<SshKeys> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const clientKey = path.join(dir, 'client_ed25519');
  const hostKey = path.join(dir, 'host_ed25519');
  await run(sshKeygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'bootfs-bench-client', '-f', clientKey]);
  await run(sshKeygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'bootfs-bench-host', '-f', hostKey]);
  const authorizedKeys = path.join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, await readFile(`${clientKey}.pub`, 'utf8'), { mode: 0o600 });
  return { dir, clientKey, clientPub: `${clientKey}.pub`, hostKey, hostPub: `${hostKey}.pub`, authorizedKeys };
}

/** known_hosts line for the host key at 127.0.0.1:port (`[127.0.0.1]:PORT ssh-ed25519 AAAA…`). */
export async function writeKnownHosts(file: string, hostPub: string, host: string, port: number): Promise<void> {
  const [type, key] = (await readFile(hostPub, 'utf8')).trim().split(/\s+/);
  const name = port === 22 ? host : `[${host}]:${port}`;
  await writeFile(file, `${name} ${type} ${key}\n`, { mode: 0o600 });
}

/**
 * OpenSSH sshd in the foreground (-D -e) on 127.0.0.1 with everything in `dir`: our host key, our
 * authorized_keys, public-key auth only, internal-sftp, StrictModes no, UsePAM no.
 */
export async function startSshd(sshd: string, keys: SshKeys, dir: string): Promise<Server & { config: string }> {
  const port = await freePort();
  const config = `ListenAddress 127.0.0.1
Port ${port}
HostKey ${keys.hostKey}
PidFile ${path.join(dir, 'sshd.pid')}
AuthorizedKeysFile ${keys.authorizedKeys}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
MaxStartups 64:30:128
MaxSessions 64
Subsystem sftp internal-sftp
LogLevel ERROR
`;
  const confFile = path.join(dir, 'sshd_config');
  await writeFile(confFile, config);
  const log = path.join(dir, 'sshd.log');
  const args = ['-D', '-e', '-f', confFile];
  const child = spawnLogged(sshd, args, log);
  try {
    await waitForPort('sshd', port, child, log);
  } catch (err) {
    await stopper(child, 'SIGKILL')();
    throw err;
  }
  return { name: 'OpenSSH sshd', url: `127.0.0.1:${port}`, host: '127.0.0.1', port, pid: child.pid, argv: [sshd, ...args], log, config, stop: stopper(child, 'SIGTERM') };
}

/**
 * `bootfs serve --ssh …` with the flags its --help offers (passed in by the caller, which read
 * them at run time). The address is taken from its stderr: the first `ssh://` or `sftp://` URL,
 * else a `HOST:PORT` after "ssh" on a `bootfs: serving` line.
 */
export async function startBootfsSsh(node: string, bin: string, args: string[], workDir: string): Promise<Server> {
  const log = path.join(workDir, 'bootfs-serve-ssh.log');
  const all = [bin, 'serve', ...args];
  const { child, found } = await startAnnouncing(
    'bootfs serve --ssh',
    node,
    all,
    log,
    /((?:sftp|ssh):\/\/[^\s,;]+)|bootfs: serving[^\n]*?ssh[^\n]*?(\d{1,3}(?:\.\d{1,3}){3}:\d+)/,
  );
  const { host, port } = hostPort(found);
  return { name: 'bootfs serve --ssh', url: found, host, port, pid: child.pid, argv: [node, ...all], log, stop: stopper(child, 'SIGTERM') };
}
