/**
 * A throwaway registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1 and a
 * free port, filesystem storage in a temp dir, optionally behind htpasswd (Basic) auth, token
 * (Bearer) auth served by a tiny token server in this process, and/or TLS with a self-signed
 * certificate. Its access log (one line per request) is kept for counting requests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, sign, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { run, tmpDir, whichTool } from '../helpers/tools.js';

export interface RegistryServer {
  /** `127.0.0.1:PORT`, as docker:// references name it. */
  host: string;
  /** `http://…` or `https://…` */
  url: string;
  /** The storage root (filesystem driver). */
  storage: string;
  /** The self-signed certificate (PEM file) when TLS is on. */
  certFile?: string;
  /** The stored file of a blob. */
  blobFile(digest: string): string;
  /** Access-log request lines so far: `METHOD PATH STATUS`. */
  requests(): Promise<string[]>;
  stop(): Promise<void>;
}

export interface RegistryServerOptions {
  /** Basic auth with these users (htpasswd -B). */
  htpasswd?: Record<string, string>;
  /** Bearer token auth: these users may push; anonymous may pull when `anonymousPull`; `denied` lists repositories a user gets no rights on. */
  token?: { users: Record<string, string>; anonymousPull?: boolean; denied?: Record<string, string[]> };
  /** Serve https with a self-signed certificate for 127.0.0.1 and localhost. */
  tls?: boolean;
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function sh(cmd: string, args: string[], input?: string): Promise<string> {
  const r = await run(cmd, args, { timeoutMs: 60_000, ...(input !== undefined ? { input } : {}) });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** A self-signed certificate (CA:TRUE, so it can be its own trust anchor) for 127.0.0.1/localhost. */
export async function selfSignedCert(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  await sh('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  return { cert, key };
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** distribution's token server protocol: GET /token?service&scope… with optional Basic auth → a JWT. */
async function startTokenServer(dir: string, users: Record<string, string>, anonymousPull: boolean, denied: Record<string, string[]>): Promise<{ realm: string; certFile: string; stop: () => Promise<void>; issued: string[] }> {
  const { cert, key } = await selfSignedCert(dir, 'token-signer');
  const privateKey = createPrivateKey(await readFile(key));
  const x5c = [new X509Certificate(await readFile(cert)).raw.toString('base64')];
  const issued: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [u, p] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(/:(.*)/s);
      if (u === undefined || users[u] === undefined || users[u] !== p) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
        return;
      }
      user = u;
    }
    const access = url.searchParams
      .getAll('scope')
      .flatMap((s) => s.split(' '))
      .map((s) => /^repository:([^:]+):(.+)$/.exec(s))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ type: 'repository', name: m[1]!, actions: m[2]!.split(',').filter((a) => (user ? !denied[user]?.includes(m[1]!) : anonymousPull && a === 'pull')) }));
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c }));
    const claims = b64url(JSON.stringify({ iss: 'bootfs-test-issuer', sub: user ?? '', aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: createHash('sha256').update(`${now}${Math.random()}`).digest('hex'), access }));
    const signature = b64url(sign('sha256', Buffer.from(`${header}.${claims}`), privateKey));
    issued.push(`${user ?? '(anonymous)'} ${access.map((a) => `${a.name}:${a.actions.join(',')}`).join(' ')}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${signature}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certFile: cert,
    issued,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function waitForPort(port: number, child: ChildProcess, log: string): Promise<void> {
  const until = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${await readFile(log, 'utf8').catch(() => '')}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`docker-registry did not listen on ${port}: ${await readFile(log, 'utf8').catch(() => '')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start docker-registry (see the file comment). */
export async function startRegistry(opts: RegistryServerOptions = {}): Promise<RegistryServer> {
  const dir = await tmpDir('bootfs-registry-');
  const storage = path.join(dir, 'storage');
  const port = await freePort();
  const log = path.join(dir, 'registry.log');
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: bootfs-test-secret',
  ];
  let certFile: string | undefined;
  if (opts.tls) {
    const { cert, key } = await selfSignedCert(dir, 'registry');
    certFile = cert;
    lines.push('  tls:', `    certificate: ${cert}`, `    key: ${key}`);
  }
  let token: Awaited<ReturnType<typeof startTokenServer>> | undefined;
  if (opts.htpasswd) {
    const file = path.join(dir, 'htpasswd');
    await writeFile(file, '');
    for (const [user, password] of Object.entries(opts.htpasswd)) await sh('htpasswd', ['-B', '-b', file, user, password]);
    lines.push('auth:', '  htpasswd:', '    realm: bootfs-test', `    path: ${file}`);
  } else if (opts.token) {
    token = await startTokenServer(dir, opts.token.users, opts.token.anonymousPull ?? false, opts.token.denied ?? {});
    lines.push('auth:', '  token:', `    realm: ${token.realm}`, '    service: bootfs-test', '    issuer: bootfs-test-issuer', `    rootcertbundle: ${token.certFile}`);
  }
  const config = path.join(dir, 'config.yml');
  await writeFile(config, `${lines.join('\n')}\n`);
  const { openSync, closeSync } = await import('node:fs');
  const fd = openSync(log, 'a');
  const child = spawn(whichTool('docker-registry')!, ['serve', config], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  await waitForPort(port, child, log);
  const host = `127.0.0.1:${port}`;
  return {
    host,
    url: `${opts.tls ? 'https' : 'http'}://${host}`,
    storage,
    ...(certFile ? { certFile } : {}),
    blobFile: (digest) => {
      const hex = digest.slice('sha256:'.length);
      return path.join(storage, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    },
    requests: async () => {
      const text = await readFile(log, 'utf8');
      // Access log (combined format): 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 401 87 "" "bootfs"
      return [...text.matchAll(/"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3})/g)].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
    },
    stop: async () => {
      await token?.stop();
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
